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

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5 micro sign, as Go accepts
  "μs": 1e-3, // U+03BC Greek mu, as Go accepts
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
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
  let total = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < s.length) {
    const at = TERM.lastIndex;
    const m = TERM.exec(s);
    if (!m) {
      throw new RangeError(`invalid duration "${s}" at "${s.slice(at)}" (want e.g. "5s", "300ms", "1h30m")`);
    }
    total += Number(m[1]) * UNIT_MS[m[2]];
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
