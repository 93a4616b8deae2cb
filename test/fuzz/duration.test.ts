/**
 * Property-based tests of the one duration parser (src/config/duration.ts):
 * parse(format(x)) round trips, sums of Go-style terms, the 24 h bound of
 * configured durations, and arbitrary strings throwing only RangeError.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { MAX_DURATION_MS, formatDuration, parseConfigDuration, parseDuration } from "../../src/config/duration.ts";

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

describe("duration properties", () => {
  test("parse(format(ms)) is ms for whole milliseconds, up to 100 days", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 * 24 * 3_600_000 }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
      { numRuns: 3000 },
    );
  });

  test("parse(format(ms)) is within a microsecond for fractional milliseconds", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 2 * MAX_DURATION_MS, noNaN: true }), (ms) => {
        expect(Math.abs(parseDuration(formatDuration(ms)) - ms)).toBeLessThanOrEqual(1e-3 + ms * 1e-12);
      }),
      { numRuns: 3000 },
    );
  });

  test("a sequence of <number><unit> terms is the sum of the terms", () => {
    const term = fc.tuple(fc.integer({ min: 0, max: 100_000 }), fc.option(fc.integer({ min: 0, max: 999 }), { nil: undefined }), fc.constantFrom(...Object.keys(UNIT_MS)));
    fc.assert(
      fc.property(fc.array(term, { minLength: 1, maxLength: 5 }), (terms) => {
        const text = terms.map(([i, f, u]) => `${i}${f === undefined ? "" : `.${String(f).padStart(3, "0")}`}${u}`).join("");
        const want = terms.reduce((sum, [i, f, u]) => sum + (i + (f ?? 0) / 1000) * UNIT_MS[u], 0);
        // Within a nanosecond (Go's resolution), plus a few ulps of the doubles at this magnitude
        // (the terms are rounded in a different order than `want`'s).
        expect(Math.abs(parseDuration(text) - want)).toBeLessThanOrEqual(1e-6 + Math.abs(want) * 1e-15);
      }),
      { numRuns: 3000 },
    );
  });

  test("decimal terms add up exactly in whole nanoseconds (the property below once found 2038 ms)", () => {
    expect(parseDuration("2.038s")).toBe(2038);
    expect(parseConfigDuration("23h59m2.038s")).toBe(86_342_038);
    expect(parseDuration("0.1s")).toBe(100);
    expect(parseDuration("1.5ms")).toBe(1.5);
    expect(parseDuration(".5h")).toBe(1_800_000);
    expect(parseDuration("1.s")).toBe(1000);
    expect(parseDuration(`1.${"0".repeat(400)}1s`)).toBe(1000);
    expect(parseDuration(`0.${"9".repeat(400)}s`)).toBeCloseTo(1000, 9);
  });

  test("a configured duration is accepted exactly when 0 < ms <= 24h", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 * MAX_DURATION_MS }), (ms) => {
        const text = formatDuration(ms);
        if (ms > 0 && ms <= MAX_DURATION_MS) expect(parseConfigDuration(text)).toBe(ms);
        else expect(() => parseConfigDuration(text)).toThrow(RangeError);
      }),
      { numRuns: 3000 },
    );
  });

  test("arbitrary strings either parse to a finite duration >= 0 or throw RangeError, nothing else", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.array(fc.constantFrom("1", "0", ".", "5", "9", "h", "m", "s", "ms", "us", "µs", "ns", "-", "+", " ", "e", "x"), { maxLength: 12 }).map((a) => a.join("")),
    );
    fc.assert(
      fc.property(text, (s) => {
        let ms: number;
        try {
          ms = parseDuration(s);
        } catch (e) {
          expect(e).toBeInstanceOf(RangeError);
          return;
        }
        expect(Number.isFinite(ms)).toBe(true);
        expect(ms).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 3000 },
    );
  });
});
