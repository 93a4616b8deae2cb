/**
 * The one duration parser of mc-proxy: Go-style strings ("5s", "300ms",
 * "2m", "1h30m", "1.5s") → milliseconds, and the one bound every configured
 * duration must meet (parseConfigDuration).
 */

/**
 * Longest configurable duration (SPEC §2): 24 h. Bun, like Node, fires a timer
 * set above 2^31−1 ms (~24.8 days) after about 1 ms, so "720h" as a timeout
 * would mean "at once"; 24 h is far below that and above any sane timeout.
 */
export const MAX_DURATION_MS = 24 * 3_600_000;

// Units in nanoseconds: each term is computed in nanoseconds (whole where the text is, as in
// Go) before it becomes milliseconds, so "2.038s" is exactly 2038 ms — 2.038 × 1000 gave
// 2037.9999999999998 (found by test/fuzz/duration.test.ts).
const UNIT_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  "µs": 1e3, // U+00B5 micro sign, as Go accepts
  "μs": 1e3, // U+03BC Greek mu, as Go accepts
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

// One "<number><unit>" term; units ordered so "ms" wins over "m".
const TERM = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parse a Go-style duration into milliseconds (possibly fractional below 1 ms).
 * A sequence of decimal numbers each with a unit (ns, us/µs, ms, s, m, h);
 * "0" alone is 0, as in Go. Throws RangeError on anything else: "", "5"
 * (no unit), "-1s" / "+1s" (no signs: config durations are never negative),
 * "5x", "s", spaces.
 */
export function parseDuration(s: string): number {
  if (s === "0") return 0;
  if (s === "") throw new RangeError("empty duration");
  let total = 0; // milliseconds, each term computed in nanoseconds first
  TERM.lastIndex = 0;
  while (TERM.lastIndex < s.length) {
    const at = TERM.lastIndex;
    const m = TERM.exec(s);
    if (!m) {
      throw new RangeError(`invalid duration "${s}" at "${s.slice(at)}" (want e.g. "5s", "300ms", "1h30m")`);
    }
    const unit = UNIT_NS[m[2]!]!;
    const num = m[1]!;
    const dot = num.indexOf(".");
    let ns: number;
    if (dot < 0) ns = Number(num) * unit;
    else {
      const frac = num.slice(dot + 1, dot + 16); // digits past the 15th change nothing a double can hold
      ns = Number(num.slice(0, dot) || "0") * unit + (frac === "" ? 0 : (Number(frac) * unit) / 10 ** frac.length);
    }
    total += ns / 1e6;
  }
  if (!Number.isFinite(total)) throw new RangeError(`duration "${s}" is too large`);
  return total;
}

/**
 * Parse a configured duration (every duration key of the TOML): like
 * parseDuration, and the result must be > 0 and at most MAX_DURATION_MS.
 * Throws RangeError whose message says what is wrong (the caller adds the key path).
 */
export function parseConfigDuration(s: string): number {
  const ms = parseDuration(s);
  if (!(ms > 0)) throw new RangeError("duration must be greater than 0");
  if (ms > MAX_DURATION_MS) throw new RangeError(`duration "${s}" is longer than the maximum of 24h`);
  return ms;
}

/**
 * Format milliseconds as a Go-style duration that parseDuration reads back:
 * 5400000 → "1h30m", 1500 → "1.5s", 300 → "300ms", 0 → "0s".
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`cannot format duration ${ms}`);
  if (ms === 0) return "0s";
  if (ms < 1000) return `${+ms.toFixed(6)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sec = +((ms % 60_000) / 1000).toFixed(6);
  return (h ? `${h}h` : "") + (m ? `${m}m` : "") + (sec ? `${sec}s` : "");
}
