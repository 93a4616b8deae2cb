/**
 * Graceful shutdown of L7 connections through the REAL server process (SPEC
 * §4, §10): on SIGTERM, keep-alive connections are told to go away — HTTP/2
 * gets GOAWAY, an idle HTTP/1.1 connection is closed at once, a busy one
 * answers its current request with `Connection: close` and closes after it —
 * so the process exits as soon as in-flight work is done. `shutdown_timeout`
 * is 20 s: every exit well below that proves the drain did not wait for the
 * deadline. New connections are refused by the kernel meanwhile.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import tls from "node:tls";
import { cleanupCerts } from "../fixtures/certs.ts";
import { rawConnect, waitUntil } from "../helpers/net.ts";
import { startProxyProc, type ServerProc } from "../helpers/subprocess.ts";
import { HOST, testPki } from "../l7/harness.ts";
import { listenerToml, routeToml } from "./pipe.ts";

const ADDR = "127.0.0.1:0";
/** Far below shutdown_timeout (20 s), generous for a loaded 2-core machine. */
const QUICK_MS = 8000;
const SLOW_MS = 1500;
const SLOW_BODY = "slow-".repeat(2000); // 10 kB: several TLS records

let backend: http.Server;
let backendPort = 0;
/** Requests the backend has received (by path), to know when one is in flight. */
const seen: string[] = [];
let server: ServerProc | null = null;

beforeAll(async () => {
  testPki();
  backend = http.createServer((req, res) => {
    seen.push(req.url ?? "");
    if (req.url === "/slow") {
      setTimeout(() => {
        res.writeHead(200, { "content-type": "text/plain", "content-length": String(SLOW_BODY.length) });
        res.end(SLOW_BODY);
      }, SLOW_MS);
      return;
    }
    res.writeHead(200, { "content-type": "text/plain", "content-length": "6" });
    res.end("hello\n");
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", () => r()));
  backendPort = (backend.address() as net.AddressInfo).port;
});
afterEach(() => {
  server?.cleanup();
  server = null;
});
afterAll(async () => {
  backend?.closeAllConnections?.();
  await new Promise<void>((r) => backend.close(() => r()));
  cleanupCerts();
});

async function startProxy(): Promise<number> {
  const toml = listenerToml([routeToml(`127.0.0.1:${backendPort}`, { backendProtocol: "http1" })], ['shutdown_timeout = "20s"']);
  server = await startProxyProc(toml);
  return server.port(ADDR);
}

/** SIGTERM, then: the listener refuses new connections while the drain runs. */
async function sigtermAndExpectRefusal(port: number): Promise<number> {
  const t0 = Date.now();
  server!.proc.kill("SIGTERM");
  await server!.waitLog((r) => r.event === "server.draining", 10_000, "server.draining");
  const refused = rawConnect(port);
  expect((await refused.outcome(5000)).kind).toBe("refused");
  return t0;
}

/** The process exits 0 within QUICK_MS of `t0` and logs server.stopped with nothing cut. */
async function expectQuickCleanExit(t0: number): Promise<void> {
  expect(await server!.exited(QUICK_MS)).toBe(0);
  expect(Date.now() - t0).toBeLessThan(QUICK_MS);
  const stopped = await server!.waitLog((r) => r.event === "server.stopped", 2000, "server.stopped");
  expect(stopped.cut).toBe(0);
  expect(server!.logs.some((r) => r.event === "shutdown.cut")).toBe(false);
}

// ---------------------------------------------------------------- HTTP/2

interface H2Client {
  session: http2.ClientHttp2Session;
  goaway: Promise<void>;
  closed: Promise<void>;
}

function h2connect(port: number): H2Client {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: testPki().ca.certPem, servername: HOST });
  session.on("error", () => {}); // the end is asserted through 'close'
  const goaway = new Promise<void>((r) => session.once("goaway", () => r()));
  const closed = new Promise<void>((r) => session.once("close", () => r()));
  return { session, goaway, closed };
}

function h2get(c: H2Client, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = c.session.request({ ":path": path, ":method": "GET" });
    let status = 0;
    let body = "";
    req.setEncoding("utf8");
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (d: string) => (body += d));
    req.on("end", () => resolve({ status, body }));
    req.on("error", reject);
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, Bun.sleep(ms).then(() => Promise.reject(new Error(`timed out waiting for ${what}`)))]);
}

// ---------------------------------------------------------------- HTTP/1.1 over raw TLS

interface H1Client {
  sock: tls.TLSSocket;
  text(): string;
  ended: Promise<void>;
}

async function h1connect(port: number): Promise<H1Client> {
  const sock = tls.connect({ host: "127.0.0.1", port, servername: HOST, ca: testPki().ca.certPem, ALPNProtocols: ["http/1.1"] });
  let buf = "";
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => (buf += d));
  sock.on("error", () => {});
  const ended = new Promise<void>((r) => sock.once("close", () => r()));
  await within(new Promise<void>((r) => sock.once("secureConnect", () => r())), 10_000, "TLS handshake");
  expect(sock.alpnProtocol).toBe("http/1.1");
  return { sock, text: () => buf, ended };
}

function h1send(c: H1Client, path: string): void {
  c.sock.write(`GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: keep-alive\r\n\r\n`);
}

/** Splits the first complete response (content-length framed) out of `text`, or null. */
function h1response(text: string): { status: number; head: string; body: string } | null {
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const head = text.slice(0, end);
  const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? "NaN");
  const body = text.slice(end + 4);
  if (!(body.length >= len)) return null;
  return { status: Number(head.split(" ")[1]), head, body: body.slice(0, len) };
}

// ---------------------------------------------------------------- tests

describe("SIGTERM drains L7 keep-alive connections instead of waiting for shutdown_timeout", () => {
  test("an idle HTTP/2 connection receives GOAWAY and the server exits 0 at once, nothing cut", async () => {
    const port = await startProxy();
    const c = h2connect(port);
    try {
      expect(await within(h2get(c, "/hello"), 10_000, "first response")).toEqual({ status: 200, body: "hello\n" });
      const t0 = await sigtermAndExpectRefusal(port);
      await within(c.goaway, QUICK_MS, "GOAWAY");
      await within(c.closed, QUICK_MS, "session close");
      await expectQuickCleanExit(t0);
    } finally {
      c.session.destroy();
    }
  });

  test("an idle HTTP/1.1 keep-alive connection is closed by the server and the server exits 0 at once", async () => {
    const port = await startProxy();
    const c = await h1connect(port);
    try {
      h1send(c, "/hello");
      const first = await waitUntil(() => h1response(c.text()), 10_000, "first response");
      expect(first.status).toBe(200);
      expect(first.body).toBe("hello\n");
      expect(c.sock.destroyed).toBe(false); // keep-alive: still open before SIGTERM
      const t0 = await sigtermAndExpectRefusal(port);
      await within(c.ended, QUICK_MS, "server closing the idle connection");
      await expectQuickCleanExit(t0);
    } finally {
      c.sock.destroy();
    }
  });

  test("an HTTP/2 request in flight at SIGTERM completes with its full body, then the session closes and the server exits 0", async () => {
    const port = await startProxy();
    const c = h2connect(port);
    try {
      expect((await within(h2get(c, "/hello"), 10_000, "warm-up response")).status).toBe(200);
      const before = seen.filter((p) => p === "/slow").length;
      const slow = h2get(c, "/slow");
      await waitUntil(() => seen.filter((p) => p === "/slow").length > before, 10_000, "slow request at the backend");
      const t0 = await sigtermAndExpectRefusal(port);
      await within(c.goaway, QUICK_MS, "GOAWAY");
      const r = await within(slow, QUICK_MS, "slow response");
      expect(r.status).toBe(200);
      expect(r.body).toBe(SLOW_BODY);
      await within(c.closed, QUICK_MS, "session close");
      await expectQuickCleanExit(t0);
    } finally {
      c.session.destroy();
    }
  });

  test("an HTTP/1.1 request in flight at SIGTERM completes with Connection: close and its full body, then the connection closes", async () => {
    const port = await startProxy();
    const c = await h1connect(port);
    try {
      const before = seen.filter((p) => p === "/slow").length;
      h1send(c, "/slow");
      await waitUntil(() => seen.filter((p) => p === "/slow").length > before, 10_000, "slow request at the backend");
      const t0 = await sigtermAndExpectRefusal(port);
      const r = await waitUntil(() => h1response(c.text()), QUICK_MS, "slow response");
      expect(r.status).toBe(200);
      expect(r.head).toMatch(/\r\nconnection: close\r?/i);
      expect(r.body).toBe(SLOW_BODY);
      await within(c.ended, QUICK_MS, "server closing the connection after the response");
      await expectQuickCleanExit(t0);
    } finally {
      c.sock.destroy();
    }
  });
});
