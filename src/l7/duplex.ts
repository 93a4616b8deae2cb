/**
 * The seam between Bun's native sockets (fast, callback-driven) and node:tls
 * (which wants a `stream.Duplex`). The pipeline has already read the
 * ClientHello from the socket; `NativeSocketDuplex` replays those bytes first
 * so TLS sees an untouched connection, then relays whatever the pipeline feeds
 * it. Backpressure is honoured both ways: a full readable buffer pauses the
 * native socket, a partial native write holds the write callback until drain.
 */
import { Duplex } from "node:stream";
import { DUPLEX_COALESCE_MAX, DUPLEX_OUT_BUFFER_MAX } from "../limits.ts";

/** The part of Bun's native `Socket` this adapter needs. */
export interface NativeSocketLike {
  /** Bytes accepted; -1 when closed; fewer than asked = kernel buffer full (wait for drain). */
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  /** Send FIN and keep reading (Bun's `end()` would close both directions). */
  shutdown(): void;
  /** Close with RST. */
  terminate(): void;
  /** Close fully after flushing (used only when the stream is destroyed cleanly). */
  end(): void;
  pause(): void;
  resume(): void;
}

type WriteCb = (err?: Error | null) => void;

/** Outgoing bytes buffered above TLS before producers are paused (see `overloaded`). */
export const OUT_BUFFER_MAX = DUPLEX_OUT_BUFFER_MAX;
const COALESCE_MAX = DUPLEX_COALESCE_MAX;

/**
 * A Duplex over a native socket. Contract: the owner forwards the socket's
 * events — data → `feed`, peer FIN → `feedEnd`, drain → `drained`,
 * close/error → `socketClosed(err?)` (not `closed`: Duplex already has a `closed` property) — and never writes to the socket itself.
 * Destroying the Duplex with an error resets the socket; a clean destroy
 * closes it gracefully.
 */
export class NativeSocketDuplex extends Duplex {
  /** Raw bytes received from / accepted for the peer, including the replayed initial bytes (TLS records, not plaintext). */
  bytesIn = 0;
  bytesOut = 0;
  /** The rest of a partial socket write; `cb` null for a batch (its callbacks already ran). */
  private pending: { buf: Uint8Array; off: number; cb: WriteCb | null } | null = null;
  /** A write that arrived while a batch remainder was pending: written after it. */
  private waiting: { chunk: Uint8Array; cb: WriteCb } | null = null;
  /** _final that arrived while a batch remainder was pending. */
  private finalWaiting: WriteCb | null = null;
  /** Small writes of this event-loop turn, not yet written (see `_write`). */
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  private drainWaiters: (() => void)[] = [];
  /**
   * When set: called when the Duplex is destroyed with an error; bytes it
   * returns are written last and the socket then ends with FIN, not RST
   * (which would discard them).
   */
  lastWords: ((err: Error) => Uint8Array | null) | null = null;
  private socketPaused = false;
  private socketGone = false;

  constructor(
    private readonly socket: NativeSocketLike,
    initial: Uint8Array,
  ) {
    super({ allowHalfOpen: true });
    this.bytesIn = initial.byteLength;
    if (initial.byteLength > 0) this.push(initial);
  }

  /**
   * True when more than `OUT_BUFFER_MAX` bytes wait to go out. Bun's TLSSocket
   * ignores this Duplex's write() return value (measured: a 200 MB response
   * piled up here), so producers above TLS must check this themselves.
   */
  overloaded(): boolean {
    return this.writableLength > OUT_BUFFER_MAX;
  }

  /** Calls `cb` once the outgoing buffer has drained (at once when it is not overloaded). */
  whenDrained(cb: () => void): void {
    if (!this.overloaded() || this.destroyed) return cb();
    if (this.drainWaiters.length === 0) {
      this.once("drain", this.wakeDrainWaiters);
      this.once("close", this.wakeDrainWaiters);
    }
    this.drainWaiters.push(cb);
  }

  private readonly wakeDrainWaiters = (): void => {
    this.off("drain", this.wakeDrainWaiters);
    this.off("close", this.wakeDrainWaiters);
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const cb of w) cb();
  };

  /** Bytes from the peer. Pauses the native socket when the reader is behind. */
  feed(chunk: Uint8Array): void {
    if (this.destroyed || this.readableEnded) return;
    this.bytesIn += chunk.byteLength;
    if (!this.push(chunk) && !this.socketPaused) {
      this.socketPaused = true;
      this.socket.pause();
    }
  }

  /** The peer sent FIN. */
  feedEnd(): void {
    if (!this.destroyed && !this.readableEnded) this.push(null);
  }

  /** The native socket can take more bytes: continue a held write. */
  drained(): void {
    const p = this.pending;
    if (!p) return;
    const n = this.socket.write(p.buf, p.off, p.buf.byteLength - p.off);
    if (n < 0) return this.failPending();
    p.off += n;
    this.bytesOut += n;
    if (p.off < p.buf.byteLength) return;
    this.pending = null;
    p.cb?.();
    const w = this.waiting;
    this.waiting = null;
    if (w) this._write(w.chunk, "buffer" as BufferEncoding, w.cb);
    else if (this.finalWaiting && !this.pending) {
      const cb = this.finalWaiting;
      this.finalWaiting = null;
      this._final(cb);
    }
  }

  /** The native socket closed (or failed): no more I/O is possible. */
  socketClosed(err?: Error): void {
    if (this.socketGone) return;
    this.socketGone = true;
    this.failPending();
    if (!this.readableEnded && !this.destroyed) this.push(null);
    this.destroy(err);
  }

  override _read(): void {
    if (this.socketPaused && !this.socketGone) {
      this.socketPaused = false;
      this.socket.resume();
    }
  }

  /**
   * Small writes are batched per event-loop turn: node:tls hands us one
   * record per HTTP/2 frame or HTTP/1.1 write, and a send() per record was
   * the largest cost of the L7 path. A small chunk is queued and its callback
   * runs at once (delaying callbacks stalls node:tls, which waits for them:
   * measured −20 % on HTTP/2 bulk); the batch goes out in one socket write on
   * setImmediate — after this turn's I/O callbacks, so no idle wait — or as
   * soon as it reaches COALESCE_MAX. Measured: 10-25x fewer client writes,
   * +25-30 % h2 req/s; process.nextTick gave nothing (every native callback
   * is its own tick). Large chunks are written at once, after the batch.
   * At most ~2 x COALESCE_MAX is thus outside `writableLength`.
   */
  override _write(chunk: Uint8Array, _enc: BufferEncoding, cb: WriteCb): void {
    if (this.socketGone) return cb(epipe());
    if (this.pending !== null) {
      // Only a batch remainder can be pending here (a chunk's own write holds its callback).
      this.waiting = { chunk, cb };
      return;
    }
    if (chunk.byteLength < COALESCE_MAX) {
      if (this.batchBytes === 0) setImmediate(this.flushBatch);
      this.batch.push(chunk);
      this.batchBytes += chunk.byteLength;
      if (this.batchBytes >= COALESCE_MAX) this.flushBatch();
      return cb();
    }
    this.flushBatch();
    if (this.pending !== null) {
      this.waiting = { chunk, cb };
      return;
    }
    this.send(chunk, cb);
  }

  /** Writes the batch (order kept: nothing else is written while it is non-empty). */
  private readonly flushBatch = (): void => {
    if (this.batchBytes === 0 || this.pending !== null || this.socketGone) return;
    const b = this.batch;
    const buf = b.length === 1 ? b[0]! : Buffer.concat(b);
    this.batch = [];
    this.batchBytes = 0;
    this.send(buf, null);
  };

  private send(buf: Uint8Array, cb: WriteCb | null): void {
    const n = this.socket.write(buf);
    if (n === buf.byteLength) {
      this.bytesOut += n;
      return cb?.();
    }
    if (n < 0) return cb?.(epipe());
    this.bytesOut += n;
    // Partial write: hold the rest (and the callback: that is the backpressure) until drained().
    this.pending = { buf, off: n, cb };
  }

  /**
   * A destroy first sends the batch: a final answer, or the GOAWAY node:http2
   * writes just before it destroys its socket for abuse (ENHANCE_YOUR_CALM) —
   * the client must see why it is cut.
   */
  override destroy(err?: Error): this {
    if (!this.destroyed) {
      this.flushBatch();
      if (err && this.lastWords) {
        const w = this.lastWords(err);
        if (w !== null && !this.socketGone && this.pending === null) this.socket.write(w);
      }
    }
    return super.destroy(err);
  }

  override _final(cb: WriteCb): void {
    // Node calls _final only after every write callback ran; a batch may still be unsent.
    this.flushBatch();
    if (this.pending !== null) {
      this.finalWaiting = cb;
      return;
    }
    if (!this.socketGone) this.socket.shutdown();
    cb();
  }

  override _destroy(err: Error | null, cb: WriteCb): void {
    this.failPending();
    if (!this.socketGone) {
      this.socketGone = true;
      if (err && this.lastWords === null) this.socket.terminate();
      else this.socket.end();
    }
    cb(err);
  }

  private failPending(): void {
    const p = this.pending;
    const w = this.waiting;
    const f = this.finalWaiting;
    this.pending = null;
    this.waiting = null;
    this.finalWaiting = null;
    this.batch = [];
    this.batchBytes = 0;
    p?.cb?.(epipe());
    w?.cb(epipe());
    f?.(epipe());
  }
}

function epipe(): Error {
  return Object.assign(new Error("socket closed"), { code: "EPIPE" });
}
