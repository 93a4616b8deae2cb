/**
 * Property-based tests of the HTTP/2 engine's input side:
 *  - HPACK's `checked` lists (the decoder checks field characters as literals
 *    arrive and trusts its table while no bad entry entered it): for any
 *    sequence of header lists through one encoder/decoder pair, a checked
 *    list really is clean, and every validator gives the same verdict with
 *    the fast path as with the full character scans; a decoder that
 *    remembers literal values (backend connections) decodes the same lists.
 *  - A server session fed a mutated client byte stream in random chunks never
 *    throws, and every stream it hands the application has a validated head.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ByteWriter } from "../../src/l7/h2/bytes.ts";
import { H2Error } from "../../src/l7/h2/errors.ts";
import { CLIENT_PREFACE, H2_FLAG, H2_FRAME } from "../../src/l7/h2/frame.ts";
import { isValidFieldName, isValidFieldValue, validateRequestHeaders, validateResponseHeaders, validateTrailers } from "../../src/l7/h2/headers.ts";
import { HpackDecoder, HpackEncoder } from "../../src/l7/h2/hpack.ts";
import { H2Session } from "../../src/l7/h2/session.ts";
import type { H2Stream } from "../../src/l7/h2/stream.ts";
import { MemoryTransport, RawPeer } from "../l7/h2/wire.ts";

const NAMES = [":method", ":path", ":scheme", ":authority", ":status", ":bogus", "accept", "x-a", "te", "content-length", "etag", "connection", "X-Upper", "bad name", "", "x\u0000y", "caf\u00e9"];
const VALUES = ["GET", "/", "https", "example.com", "200", "trailers", "gzip", "12", "", " lead", "trail ", "a\u0000b", "a\rb", "a\nb", "\u00ff\u00e9", "x".repeat(40)];

const field = fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom(...VALUES));
const list = fc.array(field, { maxLength: 8 }).map((fs) => fs.flat());

/** The verdict of a validator as comparable data: the error's reason, or the parsed head. */
function verdict<T>(r: T | H2Error | null): unknown {
  return r instanceof H2Error ? `error ${r.scope} ${r.code} ${r.reason}` : r;
}

describe("HPACK checked lists", () => {
  test("a checked list is clean, and the validators agree with and without the fast path", () => {
    fc.assert(
      fc.property(fc.array(list, { minLength: 1, maxLength: 12 }), fc.constantFrom<"shorter" | "never">("shorter", "never"), fc.boolean(), (lists, huffman, neverSome) => {
        const enc = new HpackEncoder({ huffman });
        const dec = new HpackDecoder();
        // A backend connection's decoder, which remembers literal values: same lists, same verdicts.
        const memo = new HpackDecoder({ rememberLiterals: true });
        for (const fields of lists) {
          const w = new ByteWriter();
          enc.encode(fields, w, neverSome ? ["x-a", "accept", "etag", "content-length"] : null);
          const got = dec.decode(w.toBytes());
          if (got instanceof H2Error) throw new Error(`decode failed: ${got}`);
          expect(got.fields).toEqual(fields);
          const again = memo.decode(w.toBytes());
          if (again instanceof H2Error) throw new Error(`decode failed: ${again}`);
          expect(again.fields).toEqual(fields);
          expect(again.checked).toBe(got.checked);
          if (got.checked) {
            for (let i = 0; i < fields.length; i += 2) {
              expect(fields[i].startsWith(":") || isValidFieldName(fields[i])).toBe(true);
              expect(isValidFieldValue(fields[i + 1])).toBe(true);
            }
          }
          expect(verdict(validateRequestHeaders(fields, { checked: got.checked }))).toEqual(verdict(validateRequestHeaders(fields)));
          expect(verdict(validateResponseHeaders(fields, got.checked))).toEqual(verdict(validateResponseHeaders(fields)));
          expect(verdict(validateTrailers(fields, got.checked))).toEqual(verdict(validateTrailers(fields)));
        }
      }),
      { numRuns: 400 },
    );
  });
});

/** A valid client byte stream: preface, SETTINGS, then requests (some with bodies, one split over CONTINUATION). */
function clientStream(): Uint8Array {
  const peer = new RawPeer("server");
  const parts: Uint8Array[] = [CLIENT_PREFACE, RawPeer.settings([]), RawPeer.settings([])];
  const get = [":method", "GET", ":scheme", "https", ":authority", "example.com", ":path", "/a?b=1", "accept", "*/*", "x-a", "1"];
  const post = [":method", "POST", ":scheme", "https", ":authority", "example.com", ":path", "/up", "content-length", "5"];
  parts.push(peer.headers(1, get, true));
  parts.push(peer.headers(3, post, false), RawPeer.data(3, "hello", true));
  const block = peer.headers(5, get, true).subarray(9);
  parts.push(RawPeer.frame(H2_FRAME.HEADERS, H2_FLAG.END_STREAM | H2_FLAG.PADDED, 5, [2, ...block.subarray(0, 4), 0, 0]));
  parts.push(RawPeer.frame(H2_FRAME.CONTINUATION, H2_FLAG.END_HEADERS, 5, block.subarray(4)));
  parts.push(RawPeer.windowUpdate(0, 1000), RawPeer.ping(), peer.headers(7, get, true), RawPeer.rst(7, 8));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("dup" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
);

type Mutation = { kind: "flip"; at: number; bit: number } | { kind: "set"; at: number; value: number } | { kind: "cut"; at: number } | { kind: "dup"; at: number; len: number };

function mutate(src: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Array.from(src);
  for (const m of ms) {
    // Past the preface: a broken preface only ever tests one branch.
    const at = CLIENT_PREFACE.length + (m.at % Math.max(1, b.length - CLIENT_PREFACE.length));
    if (m.kind === "flip") b[at] ^= 1 << m.bit;
    else if (m.kind === "set") b[at] = m.value;
    else if (m.kind === "cut") b = b.slice(0, at);
    else b = [...b.slice(0, at), ...b.slice(at, at + m.len), ...b.slice(at)];
  }
  return Uint8Array.from(b);
}

describe("server session on mutated input", () => {
  const base = clientStream();

  test("the unmutated stream opens its four streams with validated heads", () => {
    const streams: H2Stream[] = [];
    const s = new H2Session(new MemoryTransport(), { role: "server", onStream: (st) => streams.push(st) });
    s.receive(base);
    expect(streams.map((st) => [st.id, st.head?.method, st.head?.path])).toEqual([
      [1, "GET", "/a?b=1"],
      [3, "POST", "/up"],
      [5, "GET", "/a?b=1"],
      [7, "GET", "/a?b=1"],
    ]);
  });

  test("never throws; every stream handed on has a validated head", () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), (ms, cuts) => {
        const bytes = mutate(base, ms);
        const streams: H2Stream[] = [];
        const s = new H2Session(new MemoryTransport(), {
          role: "server",
          onStream(st) {
            streams.push(st);
            st.onData = (c) => st.consumed(c.length);
            st.onEnd = () => st.respond(200, ["content-type", "text/plain"], true);
          },
        });
        let at = 0;
        for (let i = 0; at < bytes.length; i++) {
          const n = cuts[i % cuts.length];
          s.receive(bytes.subarray(at, at + n));
          at += n;
        }
        s.tick(Date.now());
        for (const st of streams) {
          const h = st.head!;
          expect(typeof h.method).toBe("string");
          for (let i = 0; i < st.fields.length; i += 2) {
            expect(st.fields[i].startsWith(":") || isValidFieldName(st.fields[i])).toBe(true);
            expect(isValidFieldValue(st.fields[i + 1])).toBe(true);
          }
        }
      }),
      { numRuns: 600 },
    );
  });
});
