/**
 * Connection counters shared by every data-path thread (SPEC §10: behaviour
 * is exactly one worker's). Lives in SharedArrayBuffers handed to each
 * worker, so `max_connections` is one global cap, not one per thread, and the
 * admin API's GetStatus and `/metrics` read the sums without asking anyone.
 *
 * Layout (Int32Array `active`), L = listeners, T = threads:
 *   [0, L)              open connections per listener slot, all threads
 *   [L + t·L + l]       thread t's share of listener l
 * The per-thread shares exist so that a worker that dies can be taken out of
 * the global counts (forgetThread) instead of leaking slots for ever.
 * `totals` (Float64Array, one per thread) counts accepted connections; only
 * its own thread writes a slot, so it needs no atomics (an aligned 8-byte
 * store is never torn on the 64-bit targets Bun supports).
 *
 * The listener set is fixed at start (the admin API changes listeners'
 * settings, never the set), so slots are the listeners' database order.
 */
export interface CounterBuffers {
  active: SharedArrayBuffer;
  totals: SharedArrayBuffer;
  /** Int32 × 3 for the descriptor budget (src/net/fds.ts share()): client connections open in the process, connections refused and dials refused since the last warning. */
  fds: SharedArrayBuffer;
  /** BigInt64: when the process last warned about descriptors (ms since the epoch). */
  fdWarnAt: SharedArrayBuffer;
  listeners: number;
  threads: number;
}

export class ConnCounters {
  private readonly active: Int32Array;
  private readonly totals: Float64Array;
  private readonly base: number;
  private total: number;

  constructor(
    readonly buffers: CounterBuffers,
    /** This thread's index (0 = the main thread). */
    readonly thread: number,
  ) {
    this.active = new Int32Array(buffers.active);
    this.totals = new Float64Array(buffers.totals);
    this.base = buffers.listeners + thread * buffers.listeners;
    // A replacement worker continues its predecessor's count.
    this.total = this.totals[thread] ?? 0;
  }

  static create(listeners: number, threads: number): CounterBuffers {
    return {
      active: new SharedArrayBuffer(4 * listeners * (threads + 1)),
      totals: new SharedArrayBuffer(8 * threads),
      fds: new SharedArrayBuffer(12),
      fdWarnAt: new SharedArrayBuffer(8),
      listeners,
      threads,
    };
  }

  /** Counts an accepted connection (admitted or not). */
  accepted(): void {
    this.totals[this.thread] = ++this.total;
  }

  /**
   * Takes a slot on listener `slot` unless `max` (> 0) are open across all
   * threads. Atomic add-then-check: two threads racing for the last slot
   * cannot both win.
   */
  tryAdmit(slot: number, max: number): boolean {
    const before = Atomics.add(this.active, slot, 1);
    if (max > 0 && before >= max) {
      Atomics.sub(this.active, slot, 1);
      return false;
    }
    Atomics.add(this.active, this.base + slot, 1);
    return true;
  }

  /** Gives back a slot taken by tryAdmit. */
  release(slot: number): void {
    Atomics.sub(this.active, slot, 1);
    Atomics.sub(this.active, this.base + slot, 1);
  }

  /** Open connections on listener `slot`, all threads. */
  activeOn(slot: number): number {
    return Atomics.load(this.active, slot);
  }

  /** Open connections on every listener, all threads. */
  totalActive(): number {
    let n = 0;
    for (let l = 0; l < this.buffers.listeners; l++) n += Atomics.load(this.active, l);
    return n;
  }

  /** Connections accepted since start, all threads. */
  totalAccepted(): number {
    let n = 0;
    for (let t = 0; t < this.buffers.threads; t++) n += this.totals[t]!;
    return n;
  }

  /** A thread died: its open connections are gone, take them out of the global counts. */
  forgetThread(t: number): void {
    const L = this.buffers.listeners;
    for (let l = 0; l < L; l++) {
      const i = L + t * L + l;
      const n = Atomics.exchange(this.active, i, 0);
      if (n !== 0) {
        Atomics.sub(this.active, l, n);
        Atomics.sub(new Int32Array(this.buffers.fds), 0, n); // their descriptors are closed too
      }
    }
  }
}
