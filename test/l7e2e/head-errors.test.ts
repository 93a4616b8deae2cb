/**
 * A HEAD request answered by the proxy itself (502 backend unreachable, 421
 * misdirected, …) gets the head only (RFC 9110 §9.3.2): a body after it would
 * be read as the start of the next response by a client that rightly expects
 * none, over HTTP/1.1 keep-alive; over HTTP/2 the stream ends with HEADERS.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cleanupCerts, h2Session, e2ePki, killAllServers, route, startProxy, tlsClient, type ServerProc } from "./e2e.ts";

let p: ServerProc;
let port: number;

beforeAll(async () => {
  e2ePki();
  // A port nothing listens on: every dial is refused (502).
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const dead = probe.port;
  probe.stop(true);
  p = await startProxy([route({ backend: `127.0.0.1:${dead}` }), route({ hostname: "b.test", backend: `127.0.0.1:${dead}`, backendProtocol: "h2" })]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  killAllServers();
  cleanupCerts();
});

/** The responses in `text`, each as its status line plus what follows its head up to the next status line. */
function responses(text: string): { status: string; length: string | undefined; after: string }[] {
  return text
    .split(/(?=HTTP\/1\.1 \d{3} )/)
    .filter((r) => r.length > 0)
    .map((r) => {
      const end = r.indexOf("\r\n\r\n");
      return { status: r.slice(0, r.indexOf("\r\n")), length: /\r\ncontent-length: (\d+)/i.exec(r.slice(0, end))?.[1], after: r.slice(end + 4) };
    });
}

test("HTTP/1.1: a HEAD answered 502 or 421 by the proxy has no body; the pipelined GET after it is answered in step", async () => {
  const c = await tlsClient(port);
  c.sock.write(
    "HEAD /h HTTP/1.1\r\nHost: a.test\r\n\r\n" +
      "HEAD /m HTTP/1.1\r\nHost: other.test\r\n\r\n" +
      "GET /g HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
  );
  expect(await c.closed(5000)).toBe(true);
  const r = responses(c.text());
  expect(r.map((x) => x.status)).toEqual(["HTTP/1.1 502 Bad Gateway", "HTTP/1.1 421 Misdirected Request", "HTTP/1.1 502 Bad Gateway"]);
  // The HEAD responses: a Content-Length (what a GET would get) and nothing after the head.
  expect(r[0]!.after).toBe("");
  expect(r[1]!.after).toBe("");
  expect(Number(r[0]!.length)).toBeGreaterThan(0);
  expect(r[2]!.after.length).toBe(Number(r[2]!.length));
});

test("HTTP/2: a HEAD answered 502 by the proxy ends with its HEADERS (no DATA); a GET on the same connection gets the text", async () => {
  const s = h2Session(port, "b.test");
  const one = (method: string) =>
    new Promise<{ status: number; bytes: number; length: string | undefined }>((resolve, reject) => {
      const req = s.request({ ":method": method, ":path": "/x" }, { endStream: true });
      let status = 0;
      let length: string | undefined;
      let bytes = 0;
      req.on("response", (h) => {
        status = Number(h[":status"]);
        length = h["content-length"] as string | undefined;
      });
      req.on("data", (d: Buffer) => (bytes += d.length));
      req.on("end", () => resolve({ status, bytes, length }));
      req.on("error", reject);
    });
  try {
    const head = await one("HEAD");
    const get = await one("GET");
    expect({ status: head.status, bytes: head.bytes }).toEqual({ status: 502, bytes: 0 });
    expect(Number(head.length)).toBeGreaterThan(0);
    expect(get.status).toBe(502);
    expect(get.bytes).toBe(Number(get.length));
  } finally {
    s.close();
  }
});
