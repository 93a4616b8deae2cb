/**
 * The per-client rate limit when several data-path threads accept
 * connections (`[proxy] workers` > 1): the same two-slot counter as
 * ratelimit.ts (admitTwoSlot), kept in SharedArrayBuffers every thread maps,
 * so the limit is one limit for the process, never one per thread.
 *
 * Table: open addressing over `capacity` slots (a power of two, at least
 * twice RATE_LIMIT_MAX_TRACKED). A client is looked for within
 * RATE_LIMIT_PROBE_SLOTS slots of its hash. Slots are never emptied, only
 * reused: a slot whose newest accepted attempt is a window old counts 0 —
 * exactly what a forgotten client counts — so it is taken over by the next
 * new client that lands on it, and no sweep is needed. A new client that
 * finds no reusable slot in its probe window shares the overflow slot's
 * budget, as in ratelimit.ts (failing open would let an attacker rotating
 * addresses through).
 *
 * Keys: the client's address words (IPv4 address; IPv6 /64 prefix; anything
 * else hashed) and a family tag, so no strings are built per connection.
 *
 * Concurrency: one spin lock (Atomics.compareExchange) around each decision,
 * held for a few hundred nanoseconds; the plain loads and stores inside are
 * ordered by the lock's atomics. The owner's id is stored in the lock so that
 * the main thread can release it if a worker died holding it.
 * Memory: 44 bytes per slot of address space, touched only as clients
 * arrive (the kernel maps untouched pages of a SharedArrayBuffer lazily).
 */
import { RATE_LIMIT_MAX_TRACKED, RATE_LIMIT_PROBE_SLOTS } from "../limits.ts";
import { admitTwoSlot, type Entry } from "./ratelimit.ts";

const KEY_INTS = 8; // tag, w0..w3, count, prevCount, (pad)
const TIME_F64 = 3; // start, prevLast, last
const TAG_EMPTY = 0;
const TAG_TEXT = 1; // not an IP: words are a hash of the text

export interface SharedRateBuffers {
  lock: SharedArrayBuffer;
  keys: SharedArrayBuffer;
  times: SharedArrayBuffer;
  capacity: number;
}

export class SharedRateLimiter {
  private readonly lock: Int32Array;
  private readonly keys: Int32Array;
  private readonly times: Float64Array;
  private readonly mask: number;
  /** The overflow slot: index `capacity`, past the table. */
  private readonly overflow: number;
  private readonly scratch: Entry = { start: 0, count: 0, prevCount: 0, prevLast: 0, last: 0 };
  private readonly w = new Int32Array(4);

  constructor(
    readonly buffers: SharedRateBuffers,
    readonly limit: number,
    readonly windowMs: number,
    /** Lock owner id: the thread index + 1. */
    private readonly owner: number,
  ) {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError("rate limit must be an integer >= 0");
    if (limit > 0 && !(windowMs > 0)) throw new RangeError("rate window must be > 0");
    this.lock = new Int32Array(buffers.lock);
    this.keys = new Int32Array(buffers.keys);
    this.times = new Float64Array(buffers.times);
    this.mask = buffers.capacity - 1;
    this.overflow = buffers.capacity;
  }

  /** Buffers for a table that tracks at least `maxTracked` clients before sharing the overflow budget. */
  static create(maxTracked = RATE_LIMIT_MAX_TRACKED): SharedRateBuffers {
    let capacity = 1;
    while (capacity < 2 * maxTracked) capacity *= 2;
    const slots = capacity + 1; // + overflow
    const buffers = {
      lock: new SharedArrayBuffer(4),
      keys: new SharedArrayBuffer(4 * KEY_INTS * slots),
      times: new SharedArrayBuffer(8 * TIME_F64 * slots),
      capacity,
    };
    const t = new Float64Array(buffers.times);
    t[capacity * TIME_F64] = -Infinity; // overflow.start: its first slot starts at the first attempt
    t[capacity * TIME_F64 + 2] = -Infinity;
    return buffers;
  }

  /**
   * Records and allows a new connection from the client whose address is
   * `words` of family `fam` (4, 6, or 0 for text that is not an IP — then
   * `raw` is the key), or returns false when the client already had `limit`
   * accepted attempts within the window. IPv6 is counted per /64.
   */
  allowClient(fam: 0 | 4 | 6, words: ArrayLike<number>, raw: string, now: number = Date.now()): boolean {
    if (this.limit === 0) return true;
    const w = this.w;
    let tag: number;
    if (fam === 4) {
      tag = 4;
      w[0] = words[0]!;
      w[1] = w[2] = w[3] = 0;
    } else if (fam === 6) {
      tag = 6;
      w[0] = words[0]!;
      w[1] = words[1]!;
      w[2] = w[3] = 0; // the /64
    } else {
      tag = TAG_TEXT;
      hashText(raw, w);
    }
    this.acquire();
    try {
      return this.decide(tag, w, now);
    } finally {
      Atomics.store(this.lock, 0, 0);
    }
  }

  /** Clients with a live count (a scan; for tests and diagnostics). */
  size(now: number = Date.now()): number {
    let n = 0;
    const cutoff = now - this.windowMs;
    for (let s = 0; s < this.overflow; s++) {
      if (this.keys[s * KEY_INTS] !== TAG_EMPTY && this.times[s * TIME_F64 + 2]! > cutoff) n++;
    }
    return n;
  }

  /** Releases the lock if thread `owner` (index + 1) held it when it died. */
  static releaseDead(buffers: SharedRateBuffers, owner: number): void {
    Atomics.compareExchange(new Int32Array(buffers.lock), 0, owner, 0);
  }

  private acquire(): void {
    const lock = this.lock;
    let spins = 0;
    while (Atomics.compareExchange(lock, 0, 0, this.owner) !== 0) {
      // The holder runs a few hundred instructions; yield the CPU only if it was descheduled.
      if (++spins % 1024 === 0) Atomics.wait(lock, 0, Atomics.load(lock, 0), 1);
    }
  }

  private decide(tag: number, w: Int32Array, now: number): boolean {
    const keys = this.keys;
    const times = this.times;
    const cutoff = now - this.windowMs;
    const home = mix(tag, w) & this.mask;
    let reuse = -1;
    let found = -1;
    for (let i = 0; i < RATE_LIMIT_PROBE_SLOTS; i++) {
      const s = (home + i) & this.mask;
      const k = s * KEY_INTS;
      const t = keys[k];
      if (t === TAG_EMPTY) {
        if (reuse < 0) reuse = s;
        break; // never used: the chain ends here
      }
      if (t === tag && keys[k + 1] === w[0] && keys[k + 2] === w[1] && keys[k + 3] === w[2] && keys[k + 4] === w[3]) {
        found = s;
        break;
      }
      if (reuse < 0 && times[s * TIME_F64 + 2]! <= cutoff) reuse = s;
    }
    if (found < 0 && reuse >= 0) {
      // A new client (or one that counts 0): take the slot with its first attempt.
      const k = reuse * KEY_INTS;
      keys[k] = tag;
      keys[k + 1] = w[0]!;
      keys[k + 2] = w[1]!;
      keys[k + 3] = w[2]!;
      keys[k + 4] = w[3]!;
      keys[k + 5] = 1;
      keys[k + 6] = 0;
      const f = reuse * TIME_F64;
      times[f] = now;
      times[f + 1] = 0;
      times[f + 2] = now;
      return true;
    }
    const s = found >= 0 ? found : this.overflow;
    const k = s * KEY_INTS;
    const f = s * TIME_F64;
    const e = this.scratch;
    e.count = keys[k + 5]!;
    e.prevCount = keys[k + 6]!;
    e.start = times[f]!;
    e.prevLast = times[f + 1]!;
    e.last = times[f + 2]!;
    const ok = admitTwoSlot(e, now, this.windowMs, this.limit);
    keys[k + 5] = e.count;
    keys[k + 6] = e.prevCount;
    times[f] = e.start;
    times[f + 1] = e.prevLast;
    times[f + 2] = e.last;
    return ok;
  }
}

/** A 32-bit hash of the key words (murmur3's finaliser over a multiplicative mix). */
function mix(tag: number, w: Int32Array): number {
  let h = Math.imul(tag ^ 0x9e3779b9, 0x85ebca6b);
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ w[i]!, 0xcc9e2d51);
    h = (h << 13) | (h >>> 19);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Text that is not an IP (never seen from TCP peers in practice): two FNV-1a hashes as its words. */
function hashText(s: string, out: Int32Array): void {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  out[0] = a;
  out[1] = b;
  out[2] = s.length;
  out[3] = 0;
}
