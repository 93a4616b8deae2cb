/**
 * Absolute deadlines that a trickle of bytes cannot extend (SPEC §5), with
 * `hello_timeout = "1s"` on the real server (subprocess):
 * - the TLS handshake must complete within hello_timeout of the client's
 *   first byte, whether the ClientHello itself is trickled or a complete
 *   hello is followed by a trickled 16 KiB record;
 * - an HTTP/1.1 request head must arrive whole within hello_timeout of its
 *   first byte (the first request: of the handshake's end) — else 408 and
 *   close.
 * Cuts are measured from the first byte sent to the client socket's close;
 * the bound is hello_timeout + 1 s (sweep accuracy + scheduling slack).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { cleanupCerts, e2ePki, killAllServers, route, startProxy, startRawBackend, statuses, tcpClient, tlsClient, type RawBackend, type ServerProc } from "./e2e.ts";

const HELLO_MS = 1000;
let be: RawBackend;
let p: ServerProc;
let port: number;
let hello: Buffer;

/** A real ClientHello for `servername`, captured from node:tls over a Duplex that never answers. */
async function captureHello(servername: string): Promise<Buffer> {
  let got: Buffer | null = null;
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _e, cb) {
      got ??= Buffer.from(chunk);
      cb();
    },
  });
  const s = tls.connect({ socket: d, servername, ALPNProtocols: ["http/1.1"], rejectUnauthorized: false } as tls.ConnectionOptions);
  s.on("error", () => {});
  const end = Date.now() + 5000;
  while (!got && Date.now() < end) await Bun.sleep(10);
  s.destroy();
  if (!got) throw new Error("no ClientHello captured");
  return got;
}

beforeAll(async () => {
  e2ePki();
  be = await startRawBackend();
  p = await startProxy([route({ backend: be.addr })], [`hello_timeout = "${HELLO_MS}ms"`, 'idle_timeout = "30s"']);
  port = p.port();
  hello = await captureHello("a.test");
  expect(hello[0]).toBe(0x16); // a handshake record
});

afterAll(async () => {
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
});

/** Writes `bytes` one at a time every `gapMs` until the socket closes or `maxMs` passes; returns how many were written. */
async function trickle(sock: net.Socket | tls.TLSSocket, bytes: Uint8Array, gapMs: number, maxMs: number, closed: () => boolean): Promise<number> {
  const end = Date.now() + maxMs;
  let i = 0;
  while (i < bytes.byteLength && !closed() && Date.now() < end) {
    sock.write(bytes.subarray(i, i + 1));
    i++;
    await Bun.sleep(gapMs);
  }
  return i;
}

describe("TLS handshake deadline (hello_timeout of the first byte)", () => {
  test("a ClientHello trickled 1 byte / 300 ms is cut within hello_timeout + 1 s of its first byte", async () => {
    const c = await tcpClient(port);
    c.sock.setNoDelay(true);
    let closed = false;
    c.closed(20_000).then(() => (closed = true));
    const t0 = Date.now();
    const n = await trickle(c.sock, hello, 300, 8000, () => closed);
    expect(await c.closed(5000)).toBe(true);
    const took = c.closedAt - t0;
    expect(took).toBeLessThan(HELLO_MS + 1000);
    expect(took).toBeGreaterThanOrEqual(HELLO_MS - 100);
    expect(n).toBeLessThan(hello.byteLength); // it never got to send the whole hello
    expect(c.text()).toBe(""); // nothing written to an unrouted client
    expect(be.accepted).toBe(0);
  });

  test("a complete ClientHello followed by a 16 KiB record trickled 1 byte / 300 ms is cut within hello_timeout + 1 s, logged", async () => {
    const before = p.logs.length;
    const c = await tcpClient(port);
    c.sock.setNoDelay(true);
    let closed = false;
    c.closed(20_000).then(() => (closed = true));
    const t0 = Date.now();
    c.sock.write(hello);
    // A handshake record header announcing 16 KiB, then its body — never completed.
    const rec = Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0x40, 0x00]), Buffer.alloc(16 * 1024, 0x41)]);
    await Bun.sleep(100);
    const n = await trickle(c.sock, rec, 300, 8000, () => closed);
    expect(await c.closed(5000)).toBe(true);
    const took = c.closedAt - t0;
    expect(took).toBeLessThan(HELLO_MS + 1000);
    expect(took).toBeGreaterThanOrEqual(HELLO_MS - 100);
    expect(n).toBeGreaterThan(1); // the trickle was going on when it was cut
    expect(c.text().length).toBeGreaterThan(0); // the server did answer the hello (ServerHello …)
    const l = await p.waitLog((x, i = p.logs.indexOf(x)) => i >= before && x.event === "l7.tls_error" && String(x.reason).includes("hello_timeout"), 5000, "handshake timeout log");
    expect(l.class).toBe("timeout");
    expect(be.accepted).toBe(0);
  });
});

describe("HTTP/1.1 request head deadline (408)", () => {
  test("the first head dribbled 1 byte / 200 ms after the handshake gets 408 and close within hello_timeout (+ slack)", async () => {
    const c = await tlsClient(port);
    c.sock.setNoDelay(true);
    const t0 = Date.now();
    const head = Buffer.from("GET /slow-first HTTP/1.1\r\nHost: a.test\r\nX-Pad: " + "p".repeat(200) + "\r\n\r\n");
    const n = await trickle(c.sock, head, 200, 8000, () => c.isClosed || c.text().length > 0);
    expect(await c.closed(5000)).toBe(true);
    const took = c.closedAt - t0;
    expect(statuses(c.text())).toEqual([408]);
    expect(c.text()).toContain("connection: close");
    expect(took).toBeLessThan(HELLO_MS + 1000);
    expect(n).toBeLessThan(head.byteLength);
    expect(be.seen.some((s) => s.path === "/slow-first")).toBe(false);
    await p.waitLog((x) => x.event === "l7.header_timeout", 5000, "l7.header_timeout");
    // The connection's close is counted as a request-head timeout, not as idle.
    const line = await p.waitLog((x) => x.event === "conn" && x.outcome !== "ok" && x.reason === "header_timeout", 5000, "conn line");
    expect(line.outcome).toBe("header_timeout");
  });

  test("a later keep-alive head: its clock starts at ITS first byte (idle before is fine), then 408 within hello_timeout", async () => {
    const c = await tlsClient(port);
    c.sock.setNoDelay(true);
    c.sock.write("GET /fast HTTP/1.1\r\nHost: a.test\r\n\r\n");
    expect(await c.until((t) => t.includes('"path":"/fast"'), 5000)).toBe(true);
    // Idle for longer than hello_timeout: a keep-alive connection is governed by idle_timeout, not the head deadline.
    await Bun.sleep(HELLO_MS + 500);
    expect(c.isClosed).toBe(false);
    const seen = c.text().length;
    const t0 = Date.now();
    const head = Buffer.from("GET /slow-second HTTP/1.1\r\nHost: a.test\r\nX-Pad: " + "p".repeat(200) + "\r\n\r\n");
    const n = await trickle(c.sock, head, 200, 8000, () => c.isClosed || c.text().length > seen);
    expect(await c.closed(5000)).toBe(true);
    const took = c.closedAt - t0;
    expect(statuses(c.text().slice(seen))).toEqual([408]);
    expect(took).toBeLessThan(HELLO_MS + 1000);
    expect(took).toBeGreaterThanOrEqual(HELLO_MS - 100);
    expect(n).toBeLessThan(head.byteLength);
    expect(be.seen.some((s) => s.path === "/slow-second")).toBe(false);
  });
});
