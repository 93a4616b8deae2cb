/**
 * A request body that stops coming (HTTP/2: the stream stays open, the
 * connection too) is cut after idle_timeout with 408, as the HTTP/1.1 front
 * cuts an idle request in progress and as nginx's client_body_timeout does;
 * HTTP/2 streams had no such check, so a client could hold a stream — and
 * the backend connection behind it — forever. A body that keeps moving, or
 * one we hold back because the backend reads slowly, is never cut.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type http2 from "node:http2";
import net from "node:net";
import { cleanupCerts, h2Session, e2ePki, killAllServers, route, startProxy, type ServerProc } from "./e2e.ts";

let backend: net.Server;
let p: ServerProc;
let port: number;
/** Paths whose whole body the backend received (and answered). */
const answered: string[] = [];

beforeAll(async () => {
  e2ePki();
  // An HTTP/1.1 backend that reads each request whole (Content-Length), then answers with its size.
  // On /slow-reader it stops reading for 2.5 s first (the proxy must hold the client back, not cut it).
  backend = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let paused = false;
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.subarray(0, end).toString("latin1");
      const path = head.split(" ")[1]!;
      if (path === "/slow-reader" && !paused) {
        paused = true;
        sock.pause();
        setTimeout(() => sock.resume(), 2500);
      }
      const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length - end - 4 < len) return;
      answered.push(path);
      const body = String(len);
      sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      buf = buf.subarray(end + 4 + len);
    });
    sock.on("error", () => {});
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const bport = (backend.address() as net.AddressInfo).port;
  p = await startProxy([route({ backend: `127.0.0.1:${bport}` })], ['idle_timeout = "1s"']);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  backend?.close();
  killAllServers();
  cleanupCerts();
});

/** Sends `parts` of a `total`-byte body `gapMs` apart (ending it only when they add up); resolves with the status, body and when the response head came. */
function upload(s: http2.ClientHttp2Session, path: string, total: number, parts: Buffer[], gapMs: number): Promise<{ status: number; body: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = s.request({ ":method": "POST", ":path": path, "content-length": String(total) });
    let status = 0;
    let body = "";
    let ms = -1;
    req.on("response", (h) => {
      status = Number(h[":status"]);
      ms = Date.now() - t0;
    });
    req.on("data", (d: Buffer) => (body += d.toString()));
    // A response that ends before the request body: the stream closes when we reset it (RFC 9113 §8.1), later.
    req.on("end", () => resolve({ status, body, ms }));
    req.on("close", () => resolve({ status, body, ms }));
    req.on("error", () => {});
    let sent = 0;
    const next = (i: number) => {
      if (i >= parts.length || req.closed) return;
      sent += parts[i]!.length;
      if (sent >= total) req.end(parts[i]);
      else req.write(parts[i]);
      setTimeout(() => next(i + 1), gapMs);
    };
    next(0);
  });
}

test("HTTP/2: a body that stops after 10 of 100 bytes is cut with 408 after idle_timeout (1 s); the backend never gets a whole request", async () => {
  const s = h2Session(port);
  try {
    const r = await upload(s, "/stalled", 100, [Buffer.from("0123456789")], 0);
    expect(r.status).toBe(408);
    expect(r.ms).toBeGreaterThanOrEqual(900);
    expect(r.ms).toBeLessThan(3000);
    expect(answered).not.toContain("/stalled");
    const line = await p.waitLog((x) => x.event === "l7.request" && x.path === "/stalled", 3000, "l7.request /stalled");
    expect(line.status).toBe(408);
  } finally {
    s.destroy(); // not close(): a stream whose request never ended would hold the proxy's drain
  }
});

test("HTTP/2: a body that keeps moving (a part every 400 ms for 2.4 s) is not cut", async () => {
  const s = h2Session(port);
  try {
    const parts = Array.from({ length: 7 }, () => Buffer.alloc(10, 120));
    const r = await upload(s, "/trickle-ok", 70, parts, 400);
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: "70" });
  } finally {
    s.destroy(); // not close(): a stream whose request never ended would hold the proxy's drain
  }
});

test("HTTP/2: a body held back by a backend that stops reading for 2.5 s is not cut (the stall is ours)", async () => {
  const s = h2Session(port);
  try {
    const total = 8 * 1024 * 1024;
    const r = await upload(s, "/slow-reader", total, [Buffer.alloc(total, 97)], 0);
    expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: String(total) });
    expect(r.ms).toBeGreaterThan(2000);
  } finally {
    s.destroy(); // not close(): a stream whose request never ended would hold the proxy's drain
  }
}, 20_000);
