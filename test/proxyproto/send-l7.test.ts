/**
 * SPEC §6 "Send" on an L7 route, through the whole pipeline: TLS is
 * terminated by mc-proxy and every backend connection (h2c or HTTP/1.1)
 * starts with a v2 header naming the client (127.0.0.5 / 127.0.0.6), the
 * listener address, and AUTHORITY = the SNI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { parseProxyHeader, type ProxyHeader } from "../../src/wire/proxyproto.ts";
import { cleanupCerts, makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";

interface PPBackend {
  port: number;
  /** One entry per backend connection, in arrival order. */
  headers: ProxyHeader[];
  /** Connections that did not start with a valid PROXY header. */
  bad: number;
  /** Per request: the PROXY source address of its connection and its X-Forwarded-For. */
  requests: Array<{ proxySource: string; xff: string | undefined }>;
  close(): void;
}

/**
 * A backend that reads and records the PROXY header, then relays the rest of
 * the connection to an inner h2c / HTTP/1.1 server. (Under Bun, handing the
 * already-read node:net socket to a server with unshift + emit("connection")
 * does not work — the h2 session is torn down, HTTP/1.1 never answers.)
 */
async function ppBackend(kind: "h2c" | "http1"): Promise<PPBackend> {
  const b: PPBackend = { port: 0, headers: [], bad: 0, requests: [], close: () => {} };
  const sourceByInnerPort = new Map<number, string>();
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const proxySource = sourceByInnerPort.get(req.socket.remotePort ?? 0) ?? "?";
    b.requests.push({ proxySource, xff: req.headers["x-forwarded-for"] as string | undefined });
    (res as http.ServerResponse).writeHead(200, { "content-type": "text/plain" });
    (res as http.ServerResponse).end(`backend saw ${proxySource}\n`);
  };
  const inner: net.Server = kind === "h2c" ? (http2.createServer(handler) as unknown as net.Server) : http.createServer(handler);
  await new Promise<void>((r) => inner.listen(0, "127.0.0.1", () => r()));
  const innerPort = (inner.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  const front = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = parseProxyHeader(buf);
      if (r.status === "need_more") return;
      sock.off("data", onData);
      if (r.status === "error") {
        b.bad++;
        sock.destroy();
        return;
      }
      b.headers.push(r.header);
      sock.pause();
      const up = net.connect(innerPort, "127.0.0.1", () => {
        sourceByInnerPort.set(up.localPort!, `${r.header.source?.address}:${r.header.source?.port}`);
        up.write(buf.subarray(r.length));
        sock.pipe(up);
        up.pipe(sock);
        sock.resume();
      });
      sockets.add(up);
      up.on("close", () => {
        sockets.delete(up);
        sock.destroy();
      });
      up.on("error", () => {});
      sock.on("close", () => up.destroy());
    };
    sock.on("data", onData);
  });
  await new Promise<void>((r) => front.listen(0, "127.0.0.1", () => r()));
  b.port = (front.address() as net.AddressInfo).port;
  b.close = () => {
    for (const s of sockets) s.destroy();
    front.close();
    inner.close();
  };
  return b;
}

let ca: CA;
let leaf: CertFiles;
let proxy: TestProxy;
let h2c: PPBackend;
let h1: PPBackend;

beforeAll(async () => {
  ca = makeCA("mc-proxy pp-l7 CA");
  leaf = makeLeaf(ca, ["h2.test", "h1.test", "auto-h2.test", "auto-h1.test"]);
  h2c = await ppBackend("h2c");
  h1 = await ppBackend("http1");
  const route = (host: string, port: number, proto: string) => `
  [[listeners.routes]]
  hostname = "${host}"
  backend = "127.0.0.1:${port}"
  mode = "l7"
  tls_cert = "${leaf.fullchainPath}"
  tls_key = "${leaf.keyPath}"
  backend_protocol = "${proto}"
  send_proxy_protocol = true`;
  proxy = await startTestProxy(`
[[listeners]]
addr = "127.0.0.1:0"
${route("h2.test", h2c.port, "h2")}
${route("h1.test", h1.port, "http1")}
${route("auto-h2.test", h2c.port, "auto")}
${route("auto-h1.test", h1.port, "auto")}
`);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  h2c?.close();
  h1?.close();
  cleanupCerts();
});

async function curl(host: string, from: string, version: "--http2" | "--http1.1"): Promise<{ code: number; out: string; err: string }> {
  const port = proxy.port();
  const p = Bun.spawn(
    ["curl", "-sS", version, "--max-time", "15", "--interface", from, "--resolve", `${host}:${port}:127.0.0.1`, "--cacert", ca.caPath, `https://${host}:${port}/`],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

for (const [name, host, backendOf] of [
  ["h2c", "h2.test", () => h2c],
  ["HTTP/1.1", "h1.test", () => h1],
  // "auto" probes the cleartext backend for h2c: the probe must carry the header too.
  ["h2c (backend_protocol auto)", "auto-h2.test", () => h2c],
  ["HTTP/1.1 (backend_protocol auto)", "auto-h1.test", () => h1],
] as const) {
  describe(`L7 route to an ${name} backend with send_proxy_protocol`, () => {
    test("the backend connection starts with a v2 header: source 127.0.0.5, destination the listener, AUTHORITY = SNI", async () => {
      const b = backendOf();
      const before = b.headers.length;
      const r = await curl(host, "127.0.0.5", "--http2");
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(b.bad).toBe(0);
      expect(b.headers.length).toBeGreaterThan(before);
      const h = b.headers[b.headers.length - 1];
      expect(h.version).toBe(2);
      expect(h.family).toBe("tcp4");
      expect(h.source?.address).toBe("127.0.0.5");
      expect(h.source?.port).toBeGreaterThan(0);
      expect(h.destination).toEqual({ address: "127.0.0.1", port: proxy.port() });
      expect(h.authority).toBe(host);
      // The request really travelled on that connection, with the same client in X-Forwarded-For.
      const req = b.requests[b.requests.length - 1];
      expect(r.out).toBe(`backend saw ${req.proxySource}\n`);
      expect(req.proxySource.startsWith("127.0.0.5:")).toBe(true);
      expect(req.xff).toBe("127.0.0.5");
    }, 30_000);

    test("a second client (127.0.0.6, HTTP/1.1 front) gets its own backend connection with its own header", async () => {
      const b = backendOf();
      const r = await curl(host, "127.0.0.6", "--http1.1");
      expect(r.code).toBe(0);
      const req = b.requests[b.requests.length - 1];
      expect(req.proxySource.startsWith("127.0.0.6:")).toBe(true);
      expect(req.xff).toBe("127.0.0.6");
      expect(b.headers.some((h) => h.source?.address === "127.0.0.6" && h.authority === host)).toBe(true);
      expect(b.bad).toBe(0);
    }, 30_000);
  });
}
