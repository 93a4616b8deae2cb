/**
 * Per-client new-connection rate limit (SPEC §4): at most `limit` accepted
 * attempts per client within any `windowMs`, in constant memory per client
 * and a bounded table.
 *
 * Clients: an IPv4 address, or an IPv6 /64 (rateLimitKey) — one subscriber's
 * prefix, since anyone with a /64 can rotate through 2^64 addresses.
 *
 * Counting: a two-slot sliding-window counter. Time is cut per client into
 * back-to-back slots of `windowMs`; an entry keeps the accepted count of the
 * current slot, and of the previous slot with the time of its newest attempt.
 * The window (now − windowMs, now] overlaps only those two slots, so
 * "previous + current" counts every attempt in it — plus, while the previous
 * slot's newest attempt is still inside the window, some older ones. The
 * count therefore never underestimates, which gives:
 *   - never more than `limit` accepted in any window (safe);
 *   - a burst from a quiet client is exact: the first `limit` pass, the rest
 *     are refused;
 *   - refused attempts are not counted, and once the newest accepted attempt
 *     is a window old the count is 0: a client is let in again at most one
 *     window after its last accepted connection (not shut out longer).
 * The price of constant memory: a client spreading its connections evenly at
 * close to the limit may be refused some that an exact log would admit.
 *
 * Table: at most `maxTracked` clients. A client whose newest accepted attempt
 * is a window old counts 0 — exactly what a forgotten client counts — so such
 * entries are dropped (by a sweep on an unref'd timer, and on demand when the
 * table is full) without changing any decision. When the table is full of
 * live clients, nothing live is evicted: evicting would reset a real
 * offender's count, and an attacker rotating addresses could do that at will.
 * Instead, new clients share ONE overflow counter with the same limit, so the
 * limit still holds for them collectively (failing open would let the
 * rotating attacker through unlimited). Legitimate new clients then compete
 * for that budget until entries expire — a flood of that size is an
 * address-level DoS a per-client limit cannot separate anyway; tracked
 * clients keep their own budgets throughout.
 */
import { RATE_LIMIT_MAX_TRACKED, RATE_LIMIT_MIN_SWEEP_MS } from "../limits.ts";
import { formatIpWords, type Family } from "../net/ip.ts";

/** Most clients tracked at once: see RATE_LIMIT_MAX_TRACKED. */
export const MAX_TRACKED_CLIENTS = RATE_LIMIT_MAX_TRACKED;
/** IPv6 clients are counted per this prefix: one subscriber's allocation (an end site gets a /64 or more). */
export const IPV6_CLIENT_PREFIX_BITS = 64;

export interface Entry {
  /** Start of the current slot (slots are windowMs long, back to back). */
  start: number;
  /** Accepted attempts in the current slot. */
  count: number;
  /** Accepted attempts in the previous slot, and the newest of them. */
  prevCount: number;
  prevLast: number;
  /** Newest accepted attempt (drives expiry and the table's order). */
  last: number;
}

/**
 * The rate-limit bucket of a parsed client address: the IPv4 address
 * ("192.0.2.1"), or the /64 of an IPv6 one ("2001:db8:1:2::/64").
 * `raw` is used as is when `family` is 0 (not an IP).
 */
export function rateLimitKey(family: Family, w: ArrayLike<number>, raw: string): string {
  if (family === 0) return raw;
  if (family === 4) return formatIpWords(4, w);
  // IPV6_CLIENT_PREFIX_BITS = 64: the first two 32-bit words.
  return `${formatIpWords(6, [w[0], w[1], 0, 0])}/${IPV6_CLIENT_PREFIX_BITS}`;
}

export class RateLimiter {
  // Map iteration order = order of last accepted attempt (entries are
  // re-inserted on accept), so expired entries are always at the front.
  private readonly table = new Map<string, Entry>();
  /** Shared by new clients while the table is full of live ones. */
  private readonly overflow: Entry = { start: -Infinity, count: 0, prevCount: 0, prevLast: 0, last: -Infinity };
  private timer: ReturnType<typeof setInterval> | null = null;

  /**
   * `limit` 0 turns the limiter off (every attempt allowed, nothing tracked).
   * `windowMs` must be > 0 when `limit` > 0.
   */
  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly maxTracked = MAX_TRACKED_CLIENTS,
  ) {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError("rate limit must be an integer >= 0");
    if (limit > 0 && !(windowMs > 0)) throw new RangeError("rate window must be > 0");
    if (!Number.isInteger(maxTracked) || maxTracked < 1) throw new RangeError("maxTracked must be an integer >= 1");
    if (limit > 0) {
      // Background expiry; unref so it never keeps the process alive.
      this.timer = setInterval(() => this.sweep(), Math.max(windowMs, RATE_LIMIT_MIN_SWEEP_MS));
      this.timer.unref?.();
    }
  }

  /**
   * Records and allows a new connection from client `key` (see rateLimitKey),
   * or returns false when it already had `limit` accepted attempts within
   * the last `windowMs` (as counted above). A refused attempt leaves no trace.
   */
  allow(key: string, now: number = Date.now()): boolean {
    if (this.limit === 0) return true;
    let e = this.table.get(key);
    if (e === undefined) {
      if (this.table.size >= this.maxTracked) this.sweep(now);
      if (this.table.size >= this.maxTracked) return this.admit(this.overflow, now);
      e = { start: now, count: 1, prevCount: 0, prevLast: 0, last: now };
      this.table.set(key, e);
      return true;
    }
    if (!this.admit(e, now)) return false;
    // Move to the back: keeps the map ordered by last accepted attempt.
    this.table.delete(key);
    this.table.set(key, e);
    return true;
  }

  /** Forgets every client whose newest accepted attempt is a window old (it counts 0); returns how many. */
  sweep(now: number = Date.now()): number {
    const cutoff = now - this.windowMs;
    let removed = 0;
    for (const [key, e] of this.table) {
      // Ordered by `last`, so the first live entry ends the sweep. (A clock
      // step backwards only delays expiry until the clock catches up.)
      if (e.last > cutoff) break;
      this.table.delete(key);
      removed++;
    }
    return removed;
  }

  /** Number of clients currently tracked (the overflow counter not included). */
  size(): number {
    return this.table.size;
  }

  /** Stops the background sweep and forgets everything. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.table.clear();
  }

  private admit(e: Entry, now: number): boolean {
    return admitTwoSlot(e, now, this.windowMs, this.limit);
  }
}

/**
 * The two-slot decision for one entry (see the top of this file); counts the
 * attempt when it is allowed. Shared with the multi-worker table
 * (shared-ratelimit.ts), which loads a slot into an Entry and stores it back.
 */
export function admitTwoSlot(e: Entry, now: number, w: number, limit: number): boolean {
  if (now >= e.start + w) {
    if (now < e.start + 2 * w) {
      e.prevCount = e.count;
      e.prevLast = e.last;
      e.start += w;
    } else {
      e.prevCount = 0; // both slots are over: start afresh at now
      e.start = now;
    }
    e.count = 0;
  }
  const prev = e.prevCount > 0 && e.prevLast > now - w ? e.prevCount : 0;
  if (prev + e.count >= limit) return false;
  e.count++;
  e.last = now;
  return true;
}
