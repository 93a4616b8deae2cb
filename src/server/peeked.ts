/**
 * Bytes read from a client before its connection was handed to what serves
 * it — the ClientHello, and anything that arrived while the backend was being
 * dialed. The one replay path (caddy-l4's recorded `Connection`): whoever takes
 * over the socket takes these bytes first, exactly once, with `take()`.
 */
export class Peeked {
  private buf: Uint8Array;
  private len: number;

  /** Starts with `initial` (owned from now on, not copied). */
  constructor(initial: Uint8Array) {
    this.buf = initial;
    this.len = initial.byteLength;
  }

  get length(): number {
    return this.len;
  }

  /** Appends a chunk (grows by doubling: a dribbling client costs no quadratic copying). */
  append(chunk: Uint8Array): void {
    const need = this.len + chunk.byteLength;
    if (need > this.buf.byteLength) {
      const next = new Uint8Array(Math.max(need, this.buf.byteLength * 2));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(chunk, this.len);
    this.len = need;
  }

  /** Everything recorded, in order; the recording is empty afterwards. */
  take(): Uint8Array {
    const out = this.buf.subarray(0, this.len);
    this.buf = EMPTY;
    this.len = 0;
    return out;
  }
}

const EMPTY = new Uint8Array(0);
