/**
 * The L7 front against hostile clients, through the REAL pipeline (an
 * in-process mc-proxy with L7 routes): HTTP/2 stream caps, rapid reset,
 * floods, flow control and header-list limits with a raw frame writer;
 * HTTP/1.1 slowloris, head size limits, smuggling attempts and pipelining
 * with raw bytes over TLS.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import type net from "node:net";
import tls from "node:tls";
import type { TestProxy } from "../helpers/proxy.ts";
import { startH1Backend, startH2cBackend, type Backend } from "../l7/backends.ts";
import { testPki } from "../l7/harness.ts";
import { HOST, routeToml, startL7Proxy } from "../l7pipe/pipe.ts";
import { connectRawH2, ERR, frame, FRAME, getBlock, headersFrame, headersFrames, rstFrame, statusOf, type RawH2 } from "./h2raw.ts";

// bunfig's [test] timeout is not honoured by Bun 1.4.4: set it here (covers hooks too).
setDefaultTimeout(60_000);

const HELLO_TIMEOUT_MS = 2000;
let h2c: Backend, h1: Backend;
let h2Proxy: TestProxy, h1Proxy: TestProxy, bigProxy: TestProxy;
let ca: Buffer;
/** Bytes the "firehose" backend managed to write (it honours backpressure). */
let firehoseWritten = 0;
let firehose: http2.Http2Server;
const raws: RawH2[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rawH2(p: TestProxy): Promise<RawH2> {
  const c = await connectRawH2(p.port(), HOST, ca);
  raws.push(c);
  return c;
}

beforeAll(async () => {
  testPki();
  ca = readFileSync(testPki().ca.certPath);
  [h2c, h1] = await Promise.all([startH2cBackend(), startH1Backend()]);
  // An h2c backend that streams an endless body as fast as the proxy takes it.
  firehose = http2.createServer();
  firehose.on("stream", (s: http2.ServerHttp2Stream) => {
    s.respond({ ":status": 200 });
    const chunk = Buffer.alloc(65536, 0x61);
    const more = () => {
      while (!s.destroyed && firehoseWritten < 1 << 30) {
        firehoseWritten += chunk.length;
        if (!s.write(chunk)) return void s.once("drain", more);
      }
    };
    more();
    s.on("error", () => {});
  });
  await new Promise<void>((r) => firehose.listen(0, "127.0.0.1", () => r()));
  const firehoseAddr = `127.0.0.1:${(firehose.address() as net.AddressInfo).port}`;
  const proxy = [`hello_timeout = "${HELLO_TIMEOUT_MS}ms"`];
  [h2Proxy, h1Proxy, bigProxy] = await Promise.all([
    startL7Proxy([routeToml(h2c.addr, { backendProtocol: "h2" })], proxy),
    startL7Proxy([routeToml(h1.addr, { backendProtocol: "http1" })], proxy),
    startL7Proxy([routeToml(firehoseAddr, { backendProtocol: "h2" })], proxy),
  ]);
});

afterAll(async () => {
  for (const c of raws) c.destroy();
  await Promise.all([h2Proxy?.stop(), h1Proxy?.stop(), bigProxy?.stop()]);
  await Promise.all([h2c?.stop(), h1?.stop(), new Promise<void>((r) => (firehose ? firehose.close(() => r()) : r()))]);
});

describe("HTTP/2 front", () => {
  test("advertises SETTINGS_MAX_CONCURRENT_STREAMS 100 and refuses streams beyond it", async () => {
    const c = await rawH2(h2Proxy);
    const before = h2c.seen.length;
    const parts: Buffer[] = [];
    for (let i = 0; i < 150; i++) parts.push(headersFrame(1 + 2 * i, getBlock("/hang", HOST)));
    c.write(Buffer.concat(parts));
    await sleep(1500);
    // SETTINGS_MAX_CONCURRENT_STREAMS is setting id 3.
    const settings = c.frames.find((f) => f.type === FRAME.SETTINGS && (f.flags & 1) === 0)!;
    const advertised = new Map<number, number>();
    for (let o = 0; o + 6 <= settings.payload.length; o += 6) advertised.set(settings.payload.readUInt16BE(o), settings.payload.readUInt32BE(o + 2));
    expect(advertised.get(3)).toBe(100);
    const refused = [...c.rstCodes().values()].filter((x) => x === ERR.REFUSED_STREAM).length;
    expect(refused).toBeGreaterThanOrEqual(50);
    expect(h2c.seen.length - before).toBeLessThanOrEqual(100);
    c.destroy();
  });

  test("a client that keeps opening streams past the cap gets GOAWAY ENHANCE_YOUR_CALM; others are served", async () => {
    const c = await rawH2(h2Proxy);
    const parts: Buffer[] = [];
    for (let i = 0; i < 300; i++) parts.push(headersFrame(1 + 2 * i, getBlock("/hang", HOST)));
    c.write(Buffer.concat(parts));
    expect(await c.closedWithin(5000)).toBe(true);
    expect(c.goaway()?.code).toBe(ERR.ENHANCE_YOUR_CALM);
    const ok = await rawH2(h2Proxy);
    ok.write(headersFrame(1, getBlock("/hello", HOST)));
    const deadline = Date.now() + 5000;
    while (statusOf(ok.frames, 1) === null && Date.now() < deadline) await sleep(20);
    expect(statusOf(ok.frames, 1)).toBe(200);
    ok.destroy();
  });

  test("streams the client resets right after HEADERS never reach the backend (rapid reset)", async () => {
    const c = await rawH2(h2Proxy);
    const before = h2c.seen.length;
    let id = 1;
    // 150 HEADERS+RST_STREAM pairs: within the rapid-reset budget (H2_RAPID_RESET_BURST), so the session survives.
    for (let batch = 0; batch < 3; batch++) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 50; i++, id += 2) parts.push(headersFrame(id, getBlock("/hello", HOST)), rstFrame(id));
      c.write(Buffer.concat(parts));
      await sleep(5);
    }
    await sleep(1000);
    expect(h2c.seen.length - before).toBeLessThanOrEqual(10);
    // The connection still serves an honest request.
    c.write(headersFrame(id, getBlock("/hello", HOST)));
    const deadline = Date.now() + 5000;
    while (statusOf(c.frames, id) === null && Date.now() < deadline) await sleep(20);
    expect(statusOf(c.frames, id)).toBe(200);
    c.destroy();
  });

  test("a reset flood past Bun's cap is cut with GOAWAY ENHANCE_YOUR_CALM", async () => {
    // Regression guard for Bun's built-in limit (≈1000 resets): our config must not disable it.
    const c = await rawH2(h2Proxy);
    let id = 1;
    for (let batch = 0; batch < 100 && !c.closed; batch++) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 50; i++, id += 2) parts.push(headersFrame(id, getBlock("/hello", HOST)), rstFrame(id));
      c.write(Buffer.concat(parts));
      await sleep(2);
    }
    expect(await c.closedWithin(5000)).toBe(true);
    expect(c.goaway()?.code).toBe(ERR.ENHANCE_YOUR_CALM);
  });

  test("PING and SETTINGS floods are cut with GOAWAY ENHANCE_YOUR_CALM", async () => {
    // Regression guard for Bun's built-in cap (like nghttp2: ~1000 unanswered
    // control frames queued); a flood the server can answer as it goes is just bounded work.
    for (const type of [FRAME.PING, FRAME.SETTINGS]) {
      const c = await rawH2(h2Proxy);
      const one = type === FRAME.PING ? frame(FRAME.PING, 0, 0, Buffer.alloc(8)) : frame(FRAME.SETTINGS, 0, 0);
      c.write(Buffer.concat(Array.from({ length: 5000 }, () => one)));
      expect(await c.closedWithin(5000)).toBe(true);
      expect(c.goaway()?.code).toBe(ERR.ENHANCE_YOUR_CALM);
    }
  });

  test("a client that never reads its response holds a bounded amount of backend data", async () => {
    const c = await rawH2(bigProxy);
    c.write(headersFrame(1, getBlock("/firehose", HOST)));
    // Our raw client never sends WINDOW_UPDATE: the proxy may send it 64 KiB.
    await sleep(2500);
    const received = c.frames.filter((f) => f.type === FRAME.DATA).reduce((n, f) => n + f.payload.length, 0);
    expect(received).toBeLessThanOrEqual(65535);
    const w1 = firehoseWritten;
    expect(w1).toBeLessThan(16 * 1024 * 1024); // backpressure reached the backend
    await sleep(1000);
    expect(firehoseWritten - w1).toBeLessThan(1024 * 1024); // and it stays there
    c.destroy();
  });

  test("a header list over 16 KiB is refused; 12 KiB passes", async () => {
    const c = await rawH2(h2Proxy);
    const before = h2c.seen.length;
    c.write(headersFrames(1, getBlock("/headers", HOST, [["x-pad", Buffer.alloc(12 * 1024, 0x61)]])));
    const deadline = Date.now() + 5000;
    while (statusOf(c.frames, 1) === null && Date.now() < deadline) await sleep(20);
    expect(statusOf(c.frames, 1)).toBe(200);
    expect(h2c.seen.length - before).toBe(1);
    c.write(headersFrames(3, getBlock("/headers", HOST, [["x-pad", Buffer.alloc(20 * 1024, 0x61)]])));
    await sleep(1000);
    expect(statusOf(c.frames, 3)).not.toBe(200);
    // Refused: an error status (431; the connection lives, HPACK state in sync), a reset, or GOAWAY.
    const refused = statusOf(c.frames, 3) !== null || c.rstCodes().has(3) || c.goaway() !== null;
    expect(refused).toBe(true);
    expect(h2c.seen.length - before).toBe(1);
    c.destroy();
  });
});

interface RawResult {
  text: string;
  closed: boolean;
  ms: number;
}

/** Writes `chunks` over TLS (ALPN http/1.1), `gapMs` apart, and collects the answer until close or `waitMs`. */
function rawH1(port: number, chunks: (string | Buffer)[], o: { gapMs?: number; waitMs?: number } = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let text = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    const s = tls.connect({ host: "127.0.0.1", port, servername: HOST, ca, ALPNProtocols: ["http/1.1"] }, async () => {
      for (const c of chunks) {
        if (s.destroyed) break;
        s.write(c);
        if (o.gapMs) await sleep(o.gapMs);
      }
    });
    s.on("data", (d: Buffer) => (text += d.toString("latin1")));
    s.on("error", () => {});
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    s.on("close", () => done(true));
    timer = setTimeout(() => done(false), o.waitMs ?? 5000);
  });
}

describe("HTTP/1.1 front", () => {
  test("slowloris: a request head trickled byte by byte is cut with 408 after hello_timeout", async () => {
    const head = `GET /hello HTTP/1.1\r\nHost: ${HOST}\r\nX-Slow: ${"a".repeat(200)}\r\n\r\n`;
    const r = await rawH1(h1Proxy.port(), [...head], { gapMs: 200, waitMs: 4 * HELLO_TIMEOUT_MS });
    expect(r.closed).toBe(true);
    expect(r.text.startsWith("HTTP/1.1 408 ")).toBe(true);
    expect(r.ms).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 100);
    expect(r.ms).toBeLessThan(HELLO_TIMEOUT_MS + 2000);
  });

  test("a keep-alive connection idle between requests is not cut by the head deadline", async () => {
    const req = `GET /hello HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
    const r = await rawH1(h1Proxy.port(), [req, req], { gapMs: HELLO_TIMEOUT_MS + 1000, waitMs: 2 * HELLO_TIMEOUT_MS + 2500 });
    expect(r.text.match(/HTTP\/1\.1 200 /g)?.length).toBe(2);
    expect(r.text).not.toContain("408");
  });

  test("a request head over 16 KiB gets 431; 12 KiB passes", async () => {
    const before = h1.seen.length;
    const ok = await rawH1(h1Proxy.port(), [`GET /hello HTTP/1.1\r\nHost: ${HOST}\r\nX-Pad: ${"a".repeat(12 * 1024)}\r\nConnection: close\r\n\r\n`]);
    expect(ok.text.startsWith("HTTP/1.1 200 ")).toBe(true);
    const big = await rawH1(h1Proxy.port(), [`GET /hello HTTP/1.1\r\nHost: ${HOST}\r\nX-Pad: ${"a".repeat(20 * 1024)}\r\n\r\n`]);
    expect(big.text.startsWith("HTTP/1.1 431 ")).toBe(true);
    expect(big.closed).toBe(true);
    expect(h1.seen.length - before).toBe(1);
  });

  const smuggling: [string, string][] = [
    ["Content-Length with Transfer-Encoding", `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ["two different Content-Lengths", `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`],
    ["Transfer-Encoding not ending in chunked", `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`],
    ["an unknown Transfer-Encoding", `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
    ["an obs-fold continuation line", `GET /headers HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\r\n b\r\n\r\n`],
    ["a control character in a header value", `GET /headers HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\x01b\r\n\r\n`],
    ["whitespace before the colon", `GET /headers HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`],
  ];
  for (const [what, bytes] of smuggling) {
    test(`a request with ${what} gets 400 and never reaches the backend`, async () => {
      const before = h1.seen.length;
      const r = await rawH1(h1Proxy.port(), [bytes]);
      expect(r.text.startsWith("HTTP/1.1 400 ")).toBe(true);
      expect(r.closed).toBe(true);
      await sleep(100);
      expect(h1.seen.length - before).toBe(0);
    });
  }

  test("pipelined requests are all answered, in order", async () => {
    const before = h1.seen.length;
    const req = (p: string, last = false) => `GET ${p} HTTP/1.1\r\nHost: ${HOST}\r\n${last ? "Connection: close\r\n" : ""}\r\n`;
    const r = await rawH1(h1Proxy.port(), [req("/status/201") + req("/status/202") + req("/status/203", true)]);
    expect([...r.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1])).toEqual(["201", "202", "203"]);
    expect(h1.seen.length - before).toBe(3);
  });
});
