/**
 * L7 edge behaviour through the REAL pipeline: HTTP/1.1-only clients reach
 * h2c backends, WebSocket echo, 502 when the backend is down, 504 after
 * backend_timeout, and an L4 and an L7 route sharing one listener.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Server } from "bun";
import { X509Certificate } from "node:crypto";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import type { TestProxy } from "../helpers/proxy.ts";
import { cleanupCerts, makeCA, makeLeaf, type CertFiles } from "../fixtures/certs.ts";
import { startH1Backend, startH2cBackend, type Backend } from "../l7/backends.ts";
import { curl, testPki } from "../l7/harness.ts";
import { HOST, listenerToml, routeToml, startL7Proxy } from "./pipe.ts";
import { startTestProxy } from "../helpers/proxy.ts";

// bunfig's [test] timeout is not honoured by Bun 1.4.4: set it here (covers hooks too).
setDefaultTimeout(60_000);

let h2c: Backend, h1: Backend;
let wsBackend: Server<unknown>;
const wsUpgrades: Record<string, string>[] = [];
const proxies: TestProxy[] = [];

async function proxyTo(backend: string, o: Parameters<typeof routeToml>[1] = {}, proxy: string[] = []): Promise<TestProxy> {
  const p = await startL7Proxy([routeToml(backend, o)], proxy);
  proxies.push(p);
  return p;
}

/** A port nobody listens on: bind, read it, close. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  testPki();
  [h2c, h1] = await Promise.all([startH2cBackend(), startH1Backend()]);
  wsBackend = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      wsUpgrades.push(Object.fromEntries(req.headers.entries()));
      if (server.upgrade(req, { data: undefined })) return undefined;
      return new Response("not a websocket\n", { status: 400 });
    },
    websocket: {
      message(ws, msg) {
        ws.send(typeof msg === "string" ? `echo:${msg}` : msg);
      },
    },
  });
});

afterAll(async () => {
  for (const p of proxies) await p.stop();
  await Promise.all([h2c?.stop(), h1?.stop()]);
  wsBackend?.stop(true);
  cleanupCerts();
});

describe("HTTP/1.1-only clients", () => {
  test("an HTTP/1.1-only client (ALPN http/1.1) reaches an h2c backend", async () => {
    const p = await proxyTo(h2c.addr, { backendProtocol: "h2" });
    const r = await curl(p.port(), "/hello", ["--http1.1"]);
    expect(r.status).toBe(200);
    expect(r.httpVersion).toBe("1.1");
    expect(r.body).toBe("hello from h2c\n");
    expect(h2c.seen.at(-1)?.httpVersion).toBe("2.0");
  });

  test("a client with no ALPN at all is served over HTTP/1.1 and reaches an h2c backend", async () => {
    const p = await proxyTo(h2c.addr, { backendProtocol: "auto" });
    // node:https sends no ALPN extension by default.
    const body = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.get(
        { host: "127.0.0.1", port: p.port(), servername: HOST, path: "/hello", ca: testPki().ca.certPem, headers: { host: HOST }, agent: false },
        (res) => {
          let b = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (b += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: b }));
        },
      );
      req.on("error", reject);
      req.setTimeout(20000, () => req.destroy(new Error("timeout")));
    });
    expect(body).toEqual({ status: 200, body: "hello from h2c\n" });
  });
});

describe("WebSocket", () => {
  test("a WebSocket echo works through the proxy, text and binary, with forwarding headers set", async () => {
    const p = await proxyTo(`127.0.0.1:${wsBackend.port}`, { backendProtocol: "auto" });
    const ws = new WebSocket(`wss://127.0.0.1:${p.port()}/chat`, {
      headers: { "X-Forwarded-For": "6.6.6.6", host: HOST },
      tls: { ca: testPki().ca.certPem, serverName: HOST },
    } as unknown as string[]); // Bun's WebSocket takes an options object
    ws.binaryType = "arraybuffer";
    const queue: (string | ArrayBuffer)[] = [];
    let wake: (() => void) | null = null;
    ws.onmessage = (m) => {
      queue.push(m.data as string | ArrayBuffer);
      wake?.();
    };
    const next = async () => {
      const until = Date.now() + 15000;
      while (queue.length === 0 && Date.now() < until) await new Promise<void>((r) => ((wake = r), setTimeout(r, 200)));
      return queue.shift();
    };
    try {
      await new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error("websocket error"));
        setTimeout(() => reject(new Error("websocket open timed out")), 15000);
      });
      ws.send("hello");
      expect(await next()).toBe("echo:hello");
      const bin = new Uint8Array(200_000).map((_, i) => (i * 7) & 255);
      ws.send(bin);
      expect(new Uint8Array((await next()) as ArrayBuffer)).toEqual(bin);
    } finally {
      ws.close();
    }
    const h = wsUpgrades.at(-1)!;
    expect(h["upgrade"]?.toLowerCase()).toBe("websocket");
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    expect(h["x-real-ip"]).toBe("127.0.0.1");
  });
});

describe("backend errors", () => {
  for (const front of ["--http2", "--http1.1"]) {
    test(`backend down → 502 with a short text/plain body (${front.slice(2)} client)`, async () => {
      const p = await proxyTo(`127.0.0.1:${await deadPort()}`, { backendProtocol: "auto" });
      const r = await curl(p.port(), "/hello", [front]);
      expect(r.status).toBe(502);
      expect(r.headers["content-type"]).toStartWith("text/plain");
      expect(r.body.length).toBeGreaterThan(0);
      expect(r.body.length).toBeLessThan(200);
    });
  }

  for (const [name, b, proto] of [["h2c", () => h2c, "h2"], ["HTTP/1.1", () => h1, "http1"]] as const) {
    for (const front of ["--http2", "--http1.1"]) {
      test(`${name} backend that never answers → 504 within backend_timeout = 800ms (${front.slice(2)} client)`, async () => {
        const p = await proxyTo(b().addr, { backendProtocol: proto }, ['backend_timeout = "800ms"']);
        const t0 = Date.now();
        const r = await curl(p.port(), "/hang", [front]);
        const took = Date.now() - t0;
        expect(r.status).toBe(504);
        expect(r.headers["content-type"]).toStartWith("text/plain");
        expect(took).toBeGreaterThanOrEqual(700);
        expect(took).toBeLessThan(6000);
      });
    }
  }
});

describe("an L4 and an L7 route on the same listener", () => {
  let p: TestProxy;
  let backendLeaf: CertFiles;
  let backendCa: string;
  let tlsBackend: tls.Server;

  beforeAll(async () => {
    // The passthrough backend has its OWN CA and certificate for b.test.
    const ca = makeCA("l7pipe passthrough backend CA");
    backendCa = ca.certPath;
    backendLeaf = makeLeaf(ca, ["b.test"]);
    tlsBackend = https.createServer({ cert: backendLeaf.fullchainPem, key: backendLeaf.keyPem }, (req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`passthrough ${req.headers["x-forwarded-for"] ?? "no-xff"}\n`);
    });
    await new Promise<void>((r) => tlsBackend.listen(0, "127.0.0.1", () => r()));
    const bport = (tlsBackend.address() as net.AddressInfo).port;
    p = await startTestProxy(listenerToml([routeToml(`127.0.0.1:${bport}`, { hostname: "b.test", mode: "l4" }), routeToml(h2c.addr, { backendProtocol: "h2" })]));
    proxies.push(p);
  });
  afterAll(() => {
    tlsBackend?.close();
  });

  function peerCert(sni: string): Promise<X509Certificate> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port: p.port(), servername: sni, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
      s.setTimeout(15000, () => s.destroy(new Error("timeout")));
      s.once("secureConnect", () => {
        const raw = s.getPeerCertificate().raw;
        s.destroy();
        resolve(new X509Certificate(raw));
      });
      s.once("error", reject);
    });
  }

  test("the L4 client sees the backend's own certificate; the L7 client sees the proxy's", async () => {
    const l4 = await peerCert("b.test");
    expect(l4.fingerprint256).toBe(new X509Certificate(backendLeaf.certPem).fingerprint256);
    const l7 = await peerCert(HOST);
    expect(l7.fingerprint256).toBe(new X509Certificate(testPki().leaf.certPem).fingerprint256);
  });

  test("both routes serve requests (L4 untouched by the proxy, L7 with forwarding headers)", async () => {
    const port = p.port();
    const q = Bun.spawn(
      ["curl", "-sS", "--max-time", "20", "--resolve", `b.test:${port}:127.0.0.1`, "--cacert", backendCa, `https://b.test:${port}/`],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [out, code] = await Promise.all([new Response(q.stdout).text(), q.exited]);
    expect(code).toBe(0);
    expect(out).toBe("passthrough no-xff\n");
    const r = await curl(port, "/hello", ["--http2"]);
    expect(r.status).toBe(200);
    expect(r.body).toBe("hello from h2c\n");
  });
});
