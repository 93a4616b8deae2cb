/**
 * HPACK micro-benchmark: ns per header block for a browser-like request
 * (14 fields) and a typical response head (5 fields), encode and decode,
 * with a warm dynamic table (steady state on one connection) and a cold one
 * (first block of a connection). Also the frame reader on small frames.
 *
 *   node_modules/.bin/bun bench/hpack.ts
 *
 * Best of 7 rounds after warm-up; one process, no I/O.
 */
import { ByteWriter } from "../src/l7/h2/bytes.ts";
import { H2Error } from "../src/l7/h2/errors.ts";
import { FrameReader, writeData, writeHeaders, writeWindowUpdate } from "../src/l7/h2/frame.ts";
import { HpackDecoder, HpackEncoder } from "../src/l7/h2/hpack.ts";

const REQUEST = [
  ":method", "GET",
  ":scheme", "https",
  ":authority", "www.example.com",
  ":path", "/assets/app.3f9c2b.js?v=12",
  "sec-ch-ua", '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
  "sec-ch-ua-mobile", "?0",
  "user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "accept", "*/*",
  "sec-fetch-site", "same-origin",
  "sec-fetch-mode", "no-cors",
  "referer", "https://www.example.com/",
  "accept-encoding", "gzip, deflate, br, zstd",
  "accept-language", "en-US,en;q=0.9,fr;q=0.8",
  "cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
];

const RESPONSE = [
  ":status", "200",
  "content-type", "application/javascript; charset=utf-8",
  "content-length", "48213",
  "date", "Sun, 22 Nov 2026 10:00:00 GMT",
  "server", "mc-proxy",
];

const ROUNDS = 7;

function bench(label: string, iterations: number, run: (n: number) => void): number {
  run(Math.min(iterations, 2000)); // warm-up / JIT
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = Bun.nanoseconds();
    run(iterations);
    best = Math.min(best, (Bun.nanoseconds() - t0) / iterations);
  }
  console.log(`${label.padEnd(52)} ${best.toFixed(0).padStart(7)} ns`);
  return best;
}

/** Header blocks one encoder produces for `n` requests whose :path changes, as a connection would carry them. */
function blocks(fields: string[], n: number, vary: number): Uint8Array[] {
  const enc = new HpackEncoder();
  const w = new ByteWriter();
  const out: Uint8Array[] = [];
  const f = fields.slice();
  for (let i = 0; i < n; i++) {
    if (vary >= 0) f[vary] = fields[vary] + i;
    w.reset();
    enc.encode(f, w);
    out.push(w.toBytes());
  }
  return out;
}

function decodeAll(bs: Uint8Array[], n: number): void {
  let d = new HpackDecoder();
  for (let i = 0; i < n; i++) {
    const k = i % bs.length;
    if (k === 0) d = new HpackDecoder();
    const r = d.decode(bs[k]);
    if (r instanceof H2Error || r.overflow) throw new Error(`decode failed: ${r}`);
  }
}

console.log(`Bun ${Bun.version}, ${process.arch}; ns per header block (best of ${ROUNDS})`);
const N = 200_000;
const w = new ByteWriter();

// Encode, warm: one encoder, repeated heads (:path varies for requests, as it would).
{
  const enc = new HpackEncoder();
  const f = REQUEST.slice();
  bench("encode request, warm table (path varies)", N, (n) => {
    for (let i = 0; i < n; i++) {
      f[7] = REQUEST[7] + (i & 1023);
      w.reset();
      enc.encode(f, w);
    }
  });
}
{
  const enc = new HpackEncoder();
  bench("encode response head, warm table", N, (n) => {
    for (let i = 0; i < n; i++) {
      w.reset();
      enc.encode(RESPONSE, w);
    }
  });
}
bench("encode request, cold table (new encoder)", N / 10, (n) => {
  for (let i = 0; i < n; i++) {
    w.reset();
    new HpackEncoder().encode(REQUEST, w);
  }
});
bench("encode response head, cold table (new encoder)", N / 10, (n) => {
  for (let i = 0; i < n; i++) {
    w.reset();
    new HpackEncoder().encode(RESPONSE, w);
  }
});

// Decode: blocks from one encoder, decoded in order (a fresh decoder every 1000 blocks).
const reqBlocks = blocks(REQUEST, 1000, 7);
const resBlocks = blocks(RESPONSE, 1000, -1);
console.log(`  (request block: ${reqBlocks[0].length} B cold, ${reqBlocks[1].length} B warm; response: ${resBlocks[0].length} B cold, ${resBlocks[1].length} B warm)`);
bench("decode request, warm table", N, (n) => decodeAll(reqBlocks, n));
bench("decode response head, warm table", N, (n) => decodeAll(resBlocks, n));
bench("decode request, cold table (first block only)", N / 10, (n) => decodeAll(reqBlocks.slice(0, 1), n));
bench("decode response head, cold table (first block only)", N / 10, (n) => decodeAll(resBlocks.slice(0, 1), n));

// Round trip on one connection pair.
{
  const enc = new HpackEncoder();
  const dec = new HpackDecoder();
  bench("encode + decode response head, warm", N, (n) => {
    for (let i = 0; i < n; i++) {
      w.reset();
      enc.encode(RESPONSE, w);
      dec.decode(w.view());
    }
  });
}

// Frame reader: a burst of small frames in one chunk, then the same split into 1460-byte segments.
{
  const fw = new ByteWriter();
  for (let i = 0; i < 1000; i++) {
    writeHeaders(fw, 2 * i + 1, resBlocks[1], false);
    writeData(fw, 2 * i + 1, new Uint8Array(100), true);
    writeWindowUpdate(fw, 0, 100);
  }
  const bytes = fw.toBytes();
  const segments: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 1460) segments.push(bytes.subarray(at, at + 1460));
  const read = (chunks: Uint8Array[]) => {
    const r = new FrameReader();
    let frames = 0;
    for (const c of chunks) {
      r.push(c);
      for (let f = r.next(); f !== null; f = r.next()) {
        if (f instanceof H2Error) throw new Error(String(f));
        frames++;
      }
    }
    if (frames !== 3000) throw new Error(`read ${frames} frames`);
  };
  bench("FrameReader, per frame, one chunk", 3000 * 200, (n) => {
    for (let i = 0; i < n / 3000; i++) read([bytes]);
  });
  bench("FrameReader, per frame, 1460-byte segments", 3000 * 200, (n) => {
    for (let i = 0; i < n / 3000; i++) read(segments);
  });
}
