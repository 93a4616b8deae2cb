/**
 * Property-based tests of the PROXY protocol codec (src/wire/proxyproto.ts):
 * encode → parse round trips for v1 and v2 with any addresses, ports and
 * authority; every strict prefix of a header is need_more; arbitrary bytes
 * never throw, and a verdict never changes once given.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { normalizeIp } from "../../src/net/ip.ts";
import { encodeProxyV1, encodeProxyV2, parseProxyHeader, type ProxyResult } from "../../src/wire/proxyproto.ts";

const V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const addr = fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4().map((a) => `::ffff:${a}`));
const port = fc.integer({ min: 0, max: 65535 });
const endpoint = fc.record({ address: addr, port });
const isV4 = (a: string) => !normalizeIp(a)!.includes(":");

function ok(r: ProxyResult) {
  if (r.status !== "ok") throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r;
}

/** Asserts the parsed endpoints equal the encoded ones (the same address, whatever its text form). */
function sameEndpoints(r: ReturnType<typeof ok>, src: { address: string; port: number }, dst: { address: string; port: number }) {
  const fam = isV4(src.address) && isV4(dst.address) ? "tcp4" : "tcp6";
  expect(r.header.family).toBe(fam);
  expect(normalizeIp(r.header.source!.address)).toBe(normalizeIp(src.address));
  expect(normalizeIp(r.header.destination!.address)).toBe(normalizeIp(dst.address));
  expect(r.header.source!.port).toBe(src.port);
  expect(r.header.destination!.port).toBe(dst.port);
}

describe("PROXY protocol properties", () => {
  test("v2: encode → parse gives the same endpoints and authority, and exactly the header's length", () => {
    fc.assert(
      fc.property(endpoint, endpoint, fc.option(fc.string({ unit: "grapheme", maxLength: 200 }), { nil: undefined }), fc.uint8Array({ maxLength: 40 }), (src, dst, authority, tail) => {
        const h = encodeProxyV2({ source: src, destination: dst, authority });
        const r = ok(parseProxyHeader(new Uint8Array([...h, ...tail])));
        expect(r.length).toBe(h.length);
        expect(r.header.version).toBe(2);
        expect(r.header.command).toBe("proxy");
        sameEndpoints(r, src, dst);
        expect(r.header.authority).toBe(authority);
      }),
      { numRuns: 3000 },
    );
  });

  test("v1: encode → parse gives the same endpoints, and exactly the line's length", () => {
    fc.assert(
      fc.property(endpoint, endpoint, fc.uint8Array({ maxLength: 40 }), (src, dst, tail) => {
        const h = encodeProxyV1({ source: src, destination: dst });
        expect(h.length).toBeLessThanOrEqual(107);
        const r = ok(parseProxyHeader(new Uint8Array([...h, ...tail])));
        expect(r.length).toBe(h.length);
        expect(r.header.version).toBe(1);
        sameEndpoints(r, src, dst);
      }),
      { numRuns: 3000 },
    );
  });

  test("LOCAL / UNKNOWN headers round-trip without addresses", () => {
    fc.assert(
      fc.property(endpoint, endpoint, (src, dst) => {
        const v2 = ok(parseProxyHeader(encodeProxyV2({ source: src, destination: dst, command: "local" })));
        expect(v2.header).toEqual({ version: 2, command: "local", family: "unknown", tlvs: [] });
        const v1 = ok(parseProxyHeader(encodeProxyV1({ source: src, destination: dst, command: "local" })));
        expect(v1.header.family).toBe("unknown");
      }),
      { numRuns: 300 },
    );
  });

  test("every strict prefix of a valid header is need_more", () => {
    fc.assert(
      fc.property(endpoint, endpoint, fc.boolean(), fc.nat(), (src, dst, v2, cut) => {
        const h = v2 ? encodeProxyV2({ source: src, destination: dst, authority: "a.test" }) : encodeProxyV1({ source: src, destination: dst });
        expect(parseProxyHeader(h.subarray(0, cut % h.length))).toEqual({ status: "need_more" });
      }),
      { numRuns: 3000 },
    );
  });

  test("arbitrary bytes never throw, and once a verdict is given more bytes never change it", () => {
    // Half the cases start with a signature so the v1/v2 paths are explored, not only not_proxy.
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 120 }).map((b) => new Uint8Array([...new TextEncoder().encode("PROXY "), ...b])),
      fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 300 }), fc.uint8Array({ maxLength: 300 })).map(
        ([vc, fam, len, rest]) => new Uint8Array([...V2_SIG, vc, fam, len >> 8, len & 0xff, ...rest]),
      ),
    );
    fc.assert(
      fc.property(input, fc.nat(), (bytes, cut) => {
        const whole = parseProxyHeader(bytes);
        const early = parseProxyHeader(bytes.subarray(0, cut % (bytes.length + 1)));
        if (early.status === "ok") {
          expect(whole).toMatchObject({ status: "ok", length: early.length });
        } else if (early.status === "error") {
          expect(whole).toEqual(early);
        }
        if (whole.status === "ok") expect(whole.length).toBeLessThanOrEqual(bytes.length);
      }),
      { numRuns: 5000 },
    );
  });
});
