/**
 * Per-IP new-connection rate limit with exact sliding-window semantics
 * (SPEC §4): at most `limit` accepted attempts per IP within any `windowMs`.
 *
 * Each IP keeps a ring of the timestamps of its last `limit` ACCEPTED
 * attempts. An attempt is allowed iff fewer than `limit` are recorded or the
 * oldest of them has left the window. Refused attempts are not recorded, so a
 * client that slows down is let in again at most one window later.
 *
 * Memory is bounded: an IP whose newest accepted attempt is older than the
 * window is forgotten (sweeps run every window on an unref'd timer and lazily
 * when the table is full). The table holds at most `maxTracked` IPs; when it
 * is full of live entries, the IP with the least recent accepted attempt is
 * evicted (its history resets) so new IPs are still limited. Per IP the ring
 * grows on demand up to `limit` numbers.
 */
import { RATE_LIMIT_MAX_TRACKED } from "../limits.ts";

interface Entry {
  /** Accepted timestamps, a ring starting at `head` with `count` items. */
  ts: Float64Array;
  head: number;
  count: number;
  /** Newest accepted timestamp (drives expiry and eviction order). */
  last: number;
}

export const DEFAULT_MAX_TRACKED = RATE_LIMIT_MAX_TRACKED;

export class RateLimiter {
  // Map iteration order = order of last accepted attempt (entries are
  // re-inserted on accept), so stale entries are always at the front.
  private readonly table = new Map<string, Entry>();
  private timer: ReturnType<typeof setInterval> | null = null;

  /**
   * `limit` 0 turns the limiter off (every attempt allowed, nothing tracked).
   * `windowMs` must be > 0 when `limit` > 0.
   */
  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly maxTracked = DEFAULT_MAX_TRACKED,
  ) {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError("rate limit must be an integer >= 0");
    if (limit > 0 && !(windowMs > 0)) throw new RangeError("rate window must be > 0");
    if (limit > 0) {
      // Background expiry; unref so it never keeps the process alive.
      this.timer = setInterval(() => this.sweep(), Math.max(windowMs, 1000));
      this.timer.unref?.();
    }
  }

  /**
   * Records and allows a new connection from `ip` (a normalized address), or
   * returns false when `ip` already had `limit` accepted attempts within the
   * last `windowMs` (i.e. in (now - windowMs, now]). A refused attempt leaves
   * no trace.
   */
  allow(ip: string, now: number = Date.now()): boolean {
    if (this.limit === 0) return true;
    const cutoff = now - this.windowMs;
    let e = this.table.get(ip);
    if (e === undefined) {
      if (this.table.size >= this.maxTracked) this.makeRoom(now);
      e = { ts: new Float64Array(Math.min(this.limit, 4)), head: 0, count: 0, last: now };
      e.ts[0] = now;
      e.count = 1;
      this.table.set(ip, e);
      return true;
    }
    if (e.count < this.limit) {
      if (e.count === e.ts.length) grow(e, this.limit);
      e.ts[(e.head + e.count) % e.ts.length] = now;
      e.count++;
    } else {
      // Full ring (length === limit): the oldest accepted attempt decides.
      if (e.ts[e.head] > cutoff) return false;
      e.ts[e.head] = now;
      e.head = (e.head + 1) % e.ts.length;
    }
    e.last = now;
    // Move to the back: keeps the map ordered by last accepted attempt.
    this.table.delete(ip);
    this.table.set(ip, e);
    return true;
  }

  /** Forgets every IP whose newest accepted attempt left the window; returns how many. */
  sweep(now: number = Date.now()): number {
    const cutoff = now - this.windowMs;
    let removed = 0;
    for (const [ip, e] of this.table) {
      // Ordered by `last`, so the first live entry ends the sweep. (A clock
      // step backwards only delays expiry until the clock catches up.)
      if (e.last > cutoff) break;
      this.table.delete(ip);
      removed++;
    }
    return removed;
  }

  /** Number of IPs currently tracked. */
  size(): number {
    return this.table.size;
  }

  /** Stops the background sweep and forgets everything. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.table.clear();
  }

  private makeRoom(now: number): void {
    if (this.sweep(now) > 0) return;
    // Every entry is live: evict the least recently accepted IP.
    const first = this.table.keys().next();
    if (!first.done) this.table.delete(first.value);
  }
}

/** Doubles the ring (up to `limit`), unrolling it so head = 0. */
function grow(e: Entry, limit: number): void {
  const next = new Float64Array(Math.min(limit, e.ts.length * 2));
  for (let i = 0; i < e.count; i++) next[i] = e.ts[(e.head + i) % e.ts.length];
  e.ts = next;
  e.head = 0;
}
