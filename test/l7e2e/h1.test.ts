/**
 * HTTP/1.1 front semantics through the real server (subprocess):
 * - half-close: a client that sends its complete request and then FIN
 *   (node:tls `end()`: close_notify + TCP FIN) still gets the full response;
 * - pipelining: requests written at once are answered in order;
 * - a chunked request body with trailers reaches an HTTP/1.1 backend intact;
 * - `Expect: 100-continue` gets a 100, then the final answer.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { cleanupCerts, curl, defaultReply, e2ePki, killAllServers, route, startProxy, startRawBackend, statuses, tlsClient, type RawBackend, type ServerProc } from "./e2e.ts";

let be: RawBackend;
let p: ServerProc;
let port: number;
const BIG = 3 * 1024 * 1024;
const big = Buffer.alloc(BIG, 0);
for (let i = 0; i < BIG; i++) big[i] = (i * 31 + 7) & 0xff;
const bigSha = createHash("sha256").update(big).digest("hex");

beforeAll(async () => {
  e2ePki();
  be = await startRawBackend((r) => {
    const path = r.req.path;
    if (path.startsWith("/big")) return r.send(200, big, { "content-type": "application/octet-stream" });
    if (path.startsWith("/slow")) return void setTimeout(() => r.send(200, `slow ${path}`), 300);
    if (path.startsWith("/echo")) return r.send(200, r.req.body, { "x-trailers": JSON.stringify(r.req.trailers) });
    if (path.startsWith("/order")) return void setTimeout(() => r.send(200, `answer ${path}`), path.endsWith("1") ? 200 : 0);
    defaultReply(r);
  });
  p = await startProxy([route({ backend: be.addr })], ['idle_timeout = "30s"']);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
});

/** Body of the single response in `text` (Content-Length framed). */
function bodyOf(text: string): Buffer {
  const i = text.indexOf("\r\n\r\n");
  return Buffer.from(text.slice(i + 4), "latin1");
}

describe("half-closed request", () => {
  test("request then end() (close_notify + FIN): the full 3 MB response still arrives", async () => {
    const c = await tlsClient(port, { allowHalfOpen: true });
    c.sock.write("GET /big-half HTTP/1.1\r\nHost: a.test\r\n\r\n");
    c.sock.end();
    expect(await c.closed(15_000)).toBe(true);
    expect(statuses(c.text())).toEqual([200]);
    const body = bodyOf(c.text());
    expect(body.byteLength).toBe(BIG);
    expect(createHash("sha256").update(body).digest("hex")).toBe(bigSha);
  });

  test("request then end() while the backend is still thinking (300 ms): the response arrives, then the close", async () => {
    const c = await tlsClient(port, { allowHalfOpen: true });
    c.sock.write("GET /slow-half HTTP/1.1\r\nHost: a.test\r\n\r\n");
    c.sock.end();
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200]);
    expect(c.text()).toEndWith("slow /slow-half");
  });

  test("a POST with its body, then end(): the backend gets the whole body and the client the answer", async () => {
    const c = await tlsClient(port, { allowHalfOpen: true });
    c.sock.write("POST /echo-half HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\n\r\nhello world");
    c.sock.end();
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200]);
    expect(c.text()).toEndWith("hello world");
  });

  test("two pipelined requests then end(): both answered, in order", async () => {
    const c = await tlsClient(port, { allowHalfOpen: true });
    c.sock.write("GET /slow-h1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /slow-h2 HTTP/1.1\r\nHost: a.test\r\n\r\n");
    c.sock.end();
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200, 200]);
    expect(c.text().indexOf("slow /slow-h1")).toBeLessThan(c.text().indexOf("slow /slow-h2"));
  });


  test("request then a bare TCP FIN (no close_notify: shutdown of the raw socket's write side): the response still arrives", async () => {
    const raw = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    raw.on("error", () => {});
    await new Promise((r) => raw.once("connect", r));
    const duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _e, cb) {
        if (raw.writableEnded) return cb();
        raw.write(chunk, () => cb());
      },
    });
    let rawClosed = false;
    raw.on("data", (d) => duplex.push(d));
    raw.on("end", () => duplex.push(null));
    raw.on("close", () => (rawClosed = true));
    const s = tls.connect({ socket: duplex, servername: "a.test", ca: e2ePki().ca.certPem, ALPNProtocols: ["http/1.1"] } as tls.ConnectionOptions);
    s.on("error", () => {});
    let text = "";
    s.on("data", (d: Buffer) => (text += d.toString("latin1")));
    expect(await Promise.race([new Promise<boolean>((r) => s.once("secureConnect", () => r(true))), Bun.sleep(5000).then(() => false)])).toBe(true);
    await new Promise<void>((r) => s.write("GET /slow-tcpfin HTTP/1.1\r\nHost: a.test\r\n\r\n", () => r()));
    await Bun.sleep(50);
    raw.end(); // FIN on the TCP level only
    const end = Date.now() + 5000;
    while (!text.includes("slow /slow-tcpfin") && Date.now() < end) await Bun.sleep(20);
    expect(statuses(text)).toEqual([200]);
    expect(text).toEndWith("slow /slow-tcpfin");
    const end2 = Date.now() + 5000;
    while (!rawClosed && Date.now() < end2) await Bun.sleep(20);
    expect(rawClosed).toBe(true); // and then the server closes
    s.destroy();
  });
});

describe("pipelining", () => {
  test("three requests in one write are answered in order, even when the first is the slowest", async () => {
    const c = await tlsClient(port);
    c.sock.write(["/order-1", "/order-2", "/order-3"].map((path, i) => `GET ${path} HTTP/1.1\r\nHost: a.test\r\n${i === 2 ? "Connection: close\r\n" : ""}\r\n`).join(""));
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200, 200, 200]);
    const t = c.text();
    const at = [1, 2, 3].map((n) => t.indexOf(`answer /order-${n}`));
    expect(at.every((x) => x > 0)).toBe(true);
    expect(at[0]! < at[1]! && at[1]! < at[2]!).toBe(true);
  });

  test("pipelined POSTs with bodies and GETs mixed: each body goes to its own request", async () => {
    const c = await tlsClient(port);
    c.sock.write(
      "POST /echo-p1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc" +
        "GET /plain-p2 HTTP/1.1\r\nHost: a.test\r\n\r\n" +
        "POST /echo-p3 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nde\r\n0\r\n\r\n",
    );
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200, 200, 200]);
    expect(be.seen.find((s) => s.path === "/echo-p1")!.body.toString()).toBe("abc");
    expect(be.seen.find((s) => s.path === "/plain-p2")!.body.byteLength).toBe(0);
    expect(be.seen.find((s) => s.path === "/echo-p3")!.body.toString()).toBe("de");
  });
});

describe("request bodies", () => {
  test("a chunked body with trailers reaches the HTTP/1.1 backend intact (data and trailer fields)", async () => {
    const c = await tlsClient(port);
    c.sock.write(
      "POST /echo-trailers HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nConnection: close\r\n\r\n" +
        "5\r\nhello\r\n" +
        "1;ext=1\r\n \r\n" +
        "5\r\nworld\r\n" +
        "0\r\nX-Checksum: abc123\r\nX-Other: two words\r\n\r\n",
    );
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200]);
    const seen = be.seen.find((s) => s.path === "/echo-trailers")!;
    expect(seen.body.toString()).toBe("hello world");
    expect(seen.headers.get("transfer-encoding")).toEqual(["chunked"]);
    expect(seen.headers.get("content-length")).toBeUndefined();
    const trailers = seen.trailers.toLowerCase().split("\r\n").sort();
    expect(trailers).toEqual(["x-checksum: abc123", "x-other: two words"]);
  });

  test("trailers cannot carry forwarding claims, Host or framing to the backend (SPEC §5; RFC 9110 §6.5.1)", async () => {
    const c = await tlsClient(port);
    c.sock.write(
      "POST /echo-trailer-claims HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
        "5\r\nhello\r\n" +
        "0\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nHost: evil.test\r\nContent-Length: 0\r\nX-Checksum: abc\r\n\r\n",
    );
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200]);
    const seen = be.seen.find((s) => s.path === "/echo-trailer-claims")!;
    expect(seen.body.toString()).toBe("hello");
    expect(seen.trailers.toLowerCase().split("\r\n").filter((l) => l !== "")).toEqual(["x-checksum: abc"]);
    expect(seen.headers.get("x-forwarded-for")).toEqual(["127.0.0.1"]);
  });

  test("a large chunked upload (curl, 3 MB from stdin) arrives byte-exact", async () => {
    const r = await curl(port, "/echo-chunked-big", ["--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary", "@-"], { stdin: new Blob([big]) });
    expect(r.status).toBe(200);
    const seen = be.seen.find((s) => s.path === "/echo-chunked-big")!;
    expect(seen.body.byteLength).toBe(BIG);
    expect(createHash("sha256").update(seen.body).digest("hex")).toBe(bigSha);
  });
});

describe("Expect: 100-continue", () => {
  test("a request answered at once (421: another host) gets that answer, not a 100 first", async () => {
    const c = await tlsClient(port);
    c.sock.write("POST /expect-421 HTTP/1.1\r\nHost: b.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    expect(await c.until((t) => t.includes("\r\n\r\n"), 5000)).toBe(true);
    expect(c.text()).toStartWith("HTTP/1.1 421 ");
    c.sock.destroy();
  });

  test("raw: the client waits for 100 before sending the body, then gets the final answer", async () => {
    const c = await tlsClient(port);
    c.sock.write("POST /echo-expect HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    expect(await c.until((t) => t.includes("\r\n\r\n"), 5000)).toBe(true);
    expect(c.text()).toStartWith("HTTP/1.1 100 Continue\r\n\r\n");
    expect(statuses(c.text())).toEqual([100]);
    c.sock.write("hello");
    expect(await c.until((t) => t.endsWith("hello"), 5000)).toBe(true);
    expect(statuses(c.text())).toEqual([100, 200]);
    expect(be.seen.find((s) => s.path === "/echo-expect")!.body.toString()).toBe("hello");
    c.sock.destroy();
  });

  test("curl with a 2 MB body and Expect: 100-continue sees 100, then 200 — without waiting out curl's 1 s expect timeout", async () => {
    const r = await curl(port, "/echo-curl-expect", ["--http1.1", "-H", "Expect: 100-continue", "--data-binary", "@-", "-o", "/dev/null"], { stdin: new Blob([big.subarray(0, 2 * 1024 * 1024)]) });
    expect(r.blocks.map((b) => b.status)).toEqual([100, 200]);
    expect(r.status).toBe(200);
    expect(r.ms).toBeLessThan(1000);
    expect(be.seen.find((s) => s.path === "/echo-curl-expect")!.body.byteLength).toBe(2 * 1024 * 1024);
  });
});
