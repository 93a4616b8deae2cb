/**
 * The seam between Bun's native sockets (fast, callback-driven) and node:tls
 * (which wants a `stream.Duplex`). The pipeline has already read the
 * ClientHello from the socket; `NativeSocketDuplex` replays those bytes first
 * so TLS sees an untouched connection, then relays whatever the pipeline feeds
 * it. Backpressure is honoured both ways: a full readable buffer pauses the
 * native socket, a partial native write holds the write callback until drain.
 */
import { Duplex } from "node:stream";

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
export const OUT_BUFFER_MAX = 1 << 20;

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
  private pending: { buf: Uint8Array; off: number; cb: WriteCb } | null = null;
  private drainWaiters: (() => void)[] = [];
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
    if (p.off >= p.buf.byteLength) {
      this.pending = null;
      p.cb();
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

  override _write(chunk: Uint8Array, _enc: BufferEncoding, cb: WriteCb): void {
    if (this.socketGone) return cb(epipe());
    const n = this.socket.write(chunk);
    if (n === chunk.byteLength) {
      this.bytesOut += n;
      return cb();
    }
    if (n < 0) return cb(epipe());
    this.bytesOut += n;
    // Partial write: hold the callback (that is the backpressure) until drained().
    this.pending = { buf: chunk, off: n, cb };
  }

  override _final(cb: WriteCb): void {
    // Node calls _final only after every write callback ran, so nothing is pending.
    if (!this.socketGone) this.socket.shutdown();
    cb();
  }

  override _destroy(err: Error | null, cb: WriteCb): void {
    this.failPending();
    if (!this.socketGone) {
      this.socketGone = true;
      if (err) this.socket.terminate();
      else this.socket.end();
    }
    cb(err);
  }

  private failPending(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    p.cb(epipe());
  }
}

function epipe(): Error {
  return Object.assign(new Error("socket closed"), { code: "EPIPE" });
}
