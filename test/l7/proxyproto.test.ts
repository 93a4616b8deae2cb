/**
 * send_proxy_protocol on an L7 route: every backend connection starts with a
 * PROXY v2 header for the client it serves, and is never shared between clients.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import type { BackendProtocol } from "../../src/config/types.ts";
import { parseProxyHeader, type ProxyHeader } from "../../src/wire/proxyproto.ts";
import { cleanupCerts } from "../fixtures/certs.ts";
import { curl, routeRecord, startHarness, testPki, type L7Harness } from "./harness.ts";

interface PPBackend {
  port: number;
  headers: ProxyHeader[];
  /** Backend connections that did NOT start with a valid PROXY header. */
  bad: number;
  /** PROXY source port of the connection each request arrived on. */
  requestConns: string[];
  close(): void;
}

/**
 * A TCP front that strips and records the PROXY header, then relays the rest
 * of the connection to `inner` over a fresh loopback connection (Bun's servers
 * do not accept a handed-over node:net socket that was already read from).
 */
async function ppBackend(kind: "http1" | "h2c" | "https"): Promise<PPBackend> {
  const b: PPBackend = { port: 0, headers: [], bad: 0, requestConns: [], close: () => {} };
  const { leaf } = testPki();
  const tagByPort = new Map<number, string>();
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const tag = tagByPort.get(req.socket.remotePort ?? 0) ?? "?";
    b.requestConns.push(tag);
    (res as http.ServerResponse).writeHead(200, { "content-type": "text/plain" });
    (res as http.ServerResponse).end(`via ${tag}\n`);
  };
  const inner: net.Server =
    kind === "h2c"
      ? (http2.createServer(handler) as unknown as net.Server)
      : kind === "https"
        ? https.createServer({ cert: leaf.fullchainPem, key: leaf.keyPem }, handler)
        : http.createServer(handler);
  await new Promise<void>((r) => inner.listen(0, "127.0.0.1", () => r()));
  const innerPort = (inner.address() as net.AddressInfo).port;
  let seq = 0;
  const relays = new Set<net.Socket>();
  const front = net.createServer((sock) => {
    relays.add(sock);
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
      const tag = `conn${++seq}`;
      const up = net.connect(innerPort, "127.0.0.1", () => {
        tagByPort.set(up.localPort ?? 0, tag);
        up.write(buf.subarray(r.length));
        sock.pipe(up);
        up.pipe(sock);
      });
      relays.add(up);
      up.on("error", () => sock.destroy());
      sock.on("error", () => up.destroy());
      sock.on("close", () => up.destroy());
    };
    sock.on("data", onData);
  });
  await new Promise<void>((r) => front.listen(0, "127.0.0.1", () => r()));
  b.port = (front.address() as net.AddressInfo).port;
  b.close = () => {
    for (const s of relays) s.destroy();
    front.close();
    inner.close();
  };
  return b;
}

const proxies: L7Harness[] = [];
const backends: PPBackend[] = [];

beforeAll(() => testPki());
afterAll(() => {
  for (const p of proxies) p.stop();
  for (const b of backends) b.close();
  cleanupCerts();
});

const cases: [string, "http1" | "h2c" | "https", BackendProtocol, boolean][] = [
  ["HTTP/1.1 backend", "http1", "http1", false],
  ["h2c backend", "h2c", "h2", false],
  ["auto-probed h2c backend", "h2c", "auto", false],
  ["TLS HTTP/1.1 backend", "https", "http1", true],
];

describe("send_proxy_protocol on L7 routes", () => {
  for (const [name, kind, proto, backendTls] of cases) {
    test(`${name}: each backend connection starts with a PROXY v2 header for its client, never shared`, async () => {
      const b = await ppBackend(kind);
      backends.push(b);
      const p = startHarness(routeRecord(`127.0.0.1:${b.port}`, { backendProtocol: proto, backendTls, sendProxyProtocol: true }));
      proxies.push(p);
      // Two client connections, two requests each (curl reuses its connection for both URLs).
      for (let i = 0; i < 2; i++) {
        const r = await curl(p.port, "/one", ["--http2", `https://a.test:${p.port}/two`]);
        expect(r.status).toBe(200);
      }
      expect(b.bad).toBe(0);
      expect(b.requestConns.length).toBe(4);
      // Requests of one client connection may share a backend connection
      // (h2 does; HTTP/1.1 with a PROXY header opens one per request); two clients never do.
      const [a1, a2, c1, c2] = b.requestConns;
      expect([a1, a2]).not.toContain(c1);
      expect([a1, a2]).not.toContain(c2);
      if (kind === "h2c") {
        expect(a1).toBe(a2);
        expect(c1).toBe(c2);
      }
      for (const h of b.headers) {
        expect(h.version).toBe(2);
        expect(h.command).toBe("proxy");
        expect(h.source).toEqual({ address: "127.0.0.1", port: 40000 });
        expect(h.destination?.address).toBe("127.0.0.1");
        expect(h.authority).toBe("a.test");
      }
    });
  }
});
