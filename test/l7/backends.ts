/**
 * Real backend servers for the L7 tests: h2c (node:http2), HTTP/1.1-only
 * (node:http), TLS HTTP/1.1 (node:https) and TLS h2+http/1.1
 * (http2.createSecureServer). All run the same small app:
 *   /hello          → "hello"
 *   /headers        → the request headers as JSON
 *   /bytes?n=N      → N bytes of a deterministic pattern (streamed, not stored)
 *   /upload (POST)  → sha256 hex and byte count of the body
 *   /hang           → never answers
 *   /status/NNN     → that status, text body
 */
import { createHash } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import type net from "node:net";
import { testPki } from "./harness.ts";

export interface SeenRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  httpVersion: string;
}

export interface Backend {
  port: number;
  addr: string;
  seen: SeenRequest[];
  connections: number;
  stop(): Promise<void>;
}

/** Deterministic content: byte i is (i * 7 + 13) & 255. */
export function patternChunk(offset: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = ((offset + i) * 7 + 13) & 255;
  return b;
}

export function patternSha256(n: number): string {
  const h = createHash("sha256");
  for (let off = 0; off < n; off += 65536) h.update(patternChunk(off, Math.min(65536, n - off)));
  return h.digest("hex");
}

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

function app(b: Backend, protoLabel: string) {
  return (req: Req, res: Res) => {
    const url = new URL(req.url ?? "/", "http://x");
    b.seen.push({ method: req.method ?? "", path: req.url ?? "", headers: { ...req.headers }, httpVersion: req.httpVersion });
    const r = res as http.ServerResponse; // same surface for what we use
    if (url.pathname === "/hello") {
      r.writeHead(200, { "content-type": "text/plain", "x-backend": protoLabel, "x-multi": "v1" });
      return r.end(`hello from ${protoLabel}\n`);
    }
    if (url.pathname === "/headers") {
      r.writeHead(200, { "content-type": "application/json" });
      return r.end(JSON.stringify(req.headers));
    }
    if (url.pathname === "/bytes") {
      const n = Number(url.searchParams.get("n") ?? "0");
      r.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(n) });
      let off = 0;
      const more = () => {
        while (off < n) {
          const len = Math.min(65536, n - off);
          const ok = r.write(patternChunk(off, len));
          off += len;
          if (!ok) return void r.once("drain", more);
        }
        r.end();
      };
      return more();
    }
    if (url.pathname === "/upload") {
      const h = createHash("sha256");
      let n = 0;
      req.on("data", (d: Buffer) => {
        n += d.length;
        h.update(d);
      });
      req.on("end", () => {
        r.writeHead(200, { "content-type": "application/json" });
        r.end(JSON.stringify({ sha256: h.digest("hex"), bytes: n }));
      });
      return;
    }
    if (url.pathname === "/hang") return; // never answers
    const m = /^\/status\/(\d{3})$/.exec(url.pathname);
    if (m) {
      r.writeHead(Number(m[1]), { "content-type": "text/plain" });
      return r.end(`status ${m[1]}\n`);
    }
    r.writeHead(404, { "content-type": "text/plain" });
    r.end("not found\n");
  };
}

function listen(server: net.Server, b: Backend): Promise<Backend> {
  server.on("connection", () => b.connections++);
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      b.port = (server.address() as net.AddressInfo).port;
      b.addr = `127.0.0.1:${b.port}`;
      resolve(b);
    });
  });
}

function shell(stop: () => Promise<void>): Backend {
  return { port: 0, addr: "", seen: [], connections: 0, stop };
}

/** node:http2 cleartext (h2c, prior knowledge only). */
export function startH2cBackend(): Promise<Backend> {
  const s = http2.createServer();
  const b = shell(() => new Promise((r) => s.close(() => r())));
  s.on("request", app(b, "h2c"));
  return listen(s as unknown as net.Server, b);
}

/** node:http, HTTP/1.1 only. */
export function startH1Backend(): Promise<Backend> {
  const s = http.createServer();
  const b = shell(async () => {
    s.closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  });
  s.on("request", app(b, "http1"));
  return listen(s, b);
}

/** node:https, HTTP/1.1 over TLS with the test leaf certificate. */
export function startTlsH1Backend(): Promise<Backend> {
  const { leaf } = testPki();
  const s = https.createServer({ cert: leaf.fullchainPem, key: leaf.keyPem });
  const b = shell(async () => {
    s.closeAllConnections?.();
    await new Promise<void>((r) => s.close(() => r()));
  });
  s.on("request", app(b, "https1"));
  return listen(s, b);
}

/** http2.createSecureServer: h2 over TLS (ALPN h2), HTTP/1.1 allowed. */
export function startTlsH2Backend(): Promise<Backend> {
  const { leaf } = testPki();
  const s = http2.createSecureServer({ cert: leaf.fullchainPem, key: leaf.keyPem, allowHTTP1: true });
  const b = shell(() => new Promise((r) => s.close(() => r())));
  s.on("request", app(b, "h2tls"));
  return listen(s as unknown as net.Server, b);
}
