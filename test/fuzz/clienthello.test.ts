/**
 * Property-based tests of the ClientHello reader (src/wire/clienthello.ts):
 * arbitrary bytes never throw; a hello split into any TLS records and any
 * TCP chunks reads the same as whole; the reader's bytes() are exactly the
 * input. Hellos are built here from generated fields, so the expected SNI,
 * ALPN and versions are known.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ClientHelloReader, parseClientHello, type HelloResult } from "../../src/wire/clienthello.ts";

const MAX = 64 * 1024;

const u16 = (n: number) => [n >> 8, n & 0xff];
const latin1 = (s: string) => Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const ext = (type: number, body: number[]) => [...u16(type), ...u16(body.length), ...body];

interface HelloSpec {
  sni: string | null;
  alpn: string[];
  versions: number[];
  sessionId: number[];
  ciphers: number;
  /** Unknown extensions (types that the reader skips) placed before ours. */
  extra: { type: number; body: number[] }[];
}

/** A ClientHello handshake message (header + body) for `h`. */
function buildHandshake(h: HelloSpec): Uint8Array {
  const exts: number[] = [];
  for (const e of h.extra) exts.push(...ext(e.type, e.body));
  if (h.sni !== null) {
    const name = latin1(h.sni);
    const entry = [0, ...u16(name.length), ...name];
    exts.push(...ext(0, [...u16(entry.length), ...entry]));
  }
  if (h.alpn.length) {
    const list = h.alpn.flatMap((p) => [latin1(p).length, ...latin1(p)]);
    exts.push(...ext(16, [...u16(list.length), ...list]));
  }
  if (h.versions.length) exts.push(...ext(43, [h.versions.length * 2, ...h.versions.flatMap(u16)]));
  const body = [
    3, 3, ...new Array(32).fill(7),
    h.sessionId.length, ...h.sessionId,
    ...u16(h.ciphers * 2), ...new Array(h.ciphers * 2).fill(0x13),
    1, 0,
    ...u16(exts.length), ...exts,
  ];
  return new Uint8Array([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff, ...body]);
}

/** Frames a handshake message into TLS records whose fragment sizes cycle through `sizes` (each 1..16384). */
function frame(hs: Uint8Array, sizes: number[]): Uint8Array {
  const out: number[] = [];
  for (let p = 0, i = 0; p < hs.length; i++) {
    const n = Math.min(sizes[i % sizes.length], hs.length - p);
    out.push(22, 3, 1, ...u16(n), ...hs.subarray(p, p + n));
    p += n;
  }
  return new Uint8Array(out);
}

/** Splits `b` at the given cut points (any values; sorted and clamped here). */
function split(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const parts: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, b.length]) {
    parts.push(b.subarray(prev, c));
    prev = c;
  }
  return parts;
}

/** A result without the `needed` hint (which legitimately depends on how far the input got). */
function comparable(r: HelloResult): unknown {
  return r.status === "need_more" ? { status: "need_more" } : r;
}

function feed(parts: Uint8Array[], max = MAX): ClientHelloReader {
  const reader = new ClientHelloReader(max);
  for (const p of parts) reader.push(p);
  return reader;
}

const specArb: fc.Arbitrary<HelloSpec> = fc.record({
  sni: fc.option(fc.domain(), { nil: null }),
  alpn: fc.array(fc.string({ minLength: 1, maxLength: 12 }), { maxLength: 4 }),
  versions: fc.array(fc.constantFrom(0x0304, 0x0303, 0x0302, 0x7f1c), { maxLength: 4 }).map((v) => (v.length === 1 ? [...v, 0x0303] : v)),
  sessionId: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 32 }),
  ciphers: fc.integer({ min: 1, max: 40 }),
  extra: fc.array(
    fc.record({ type: fc.constantFrom(5, 10, 11, 13, 21, 35, 45, 51, 0xfe0d), body: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }) }),
    { maxLength: 5 },
  ).map((es) => es.filter((e, i) => es.findIndex((o) => o.type === e.type) === i)), // one of each type
});
const recordSizes = fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 16384 })), { minLength: 1, maxLength: 6 });
const cuts = fc.array(fc.nat(), { maxLength: 12 });

describe("ClientHello reader properties", () => {
  test("arbitrary bytes never throw, whole or in chunks, and the reader agrees with the parser", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), cuts, fc.integer({ min: 0, max: 2048 }), (bytes, cutAt, max) => {
        const whole = parseClientHello(bytes, max);
        const reader = feed(split(bytes, cutAt), max);
        expect(comparable(reader.result())).toEqual(comparable(whole));
        reader.end();
        reader.expire();
      }),
      { numRuns: 3000 },
    );
  });

  test("arbitrary bytes after a plausible record header never throw either", () => {
    // Random bytes rarely start with 22 3 x: force that prefix so the record and handshake paths are explored.
    const framed = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 400 })).map(([v, rest]) => new Uint8Array([22, 3, v, ...rest]));
    fc.assert(
      fc.property(framed, cuts, (bytes, cutAt) => {
        const whole = parseClientHello(bytes, MAX);
        expect(comparable(feed(split(bytes, cutAt)).result())).toEqual(comparable(whole));
      }),
      { numRuns: 3000 },
    );
  });

  test("a generated hello split into any records and any chunks reads as whole: same SNI, ALPN, versions, length", () => {
    fc.assert(
      fc.property(specArb, recordSizes, cuts, fc.uint8Array({ maxLength: 50 }), (spec, sizes, cutAt, trailer) => {
        const wire = frame(buildHandshake(spec), sizes);
        const input = new Uint8Array([...wire, ...trailer]); // pipelined bytes after the hello
        const whole = parseClientHello(input, MAX);
        if (wire.length > MAX) {
          expect(whole).toEqual({ status: "error", reason: "too_large" });
          return;
        }
        expect(whole).toMatchObject({ status: "ok", sni: spec.sni, alpn: spec.alpn, supportedVersions: spec.versions, length: wire.length });
        const reader = feed(split(input, cutAt));
        expect(reader.result()).toEqual(whole);
        // bytes() is exactly what was pushed; the hello is its prefix of `length` bytes.
        expect(reader.bytes()).toEqual(input);
      }),
      { numRuns: 2000 },
    );
  });

  test("every strict prefix of a generated hello is need_more (never an early verdict)", () => {
    fc.assert(
      fc.property(specArb, recordSizes, fc.nat(), (spec, sizes, cut) => {
        const wire = frame(buildHandshake(spec), sizes);
        fc.pre(wire.length <= MAX);
        const prefix = wire.subarray(0, cut % wire.length);
        expect(parseClientHello(prefix, MAX).status).toBe("need_more");
        const r = feed([prefix]);
        expect(r.end()).toEqual({ status: "error", reason: "truncated" });
      }),
      { numRuns: 2000 },
    );
  });
});
