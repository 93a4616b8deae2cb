/**
 * Receive-side flow control (RFC 9113 §5.2, §6.9) for one window — a stream's
 * or the connection's. Pure bookkeeping: the session sends the
 * WINDOW_UPDATE this returns.
 *
 * Credit comes back only when the application says it has passed bytes on
 * (consume), so a slow reader holds at most `size` bytes of ours. Updates are
 * batched: announced once at least half the window is consumed.
 */
export class InboundWindow {
  /** Bytes the peer may still send before it violates the window. */
  available: number;
  /** Received and handed to the application, not yet consumed. */
  held = 0;
  /** Consumed but not yet announced to the peer. */
  private unannounced = 0;
  private readonly threshold: number;

  constructor(readonly size: number) {
    this.available = size;
    this.threshold = Math.max(1, size >>> 1);
  }

  /** The peer sent `n` flow-controlled bytes: false when that exceeds the window (FLOW_CONTROL_ERROR). */
  receive(n: number): boolean {
    if (n > this.available) return false;
    this.available -= n;
    this.held += n;
    return true;
  }

  /**
   * `n` received bytes are done with (clamped to what is held). Returns the
   * WINDOW_UPDATE increment to send now, or 0 to keep batching.
   */
  consume(n: number): number {
    if (n > this.held) n = this.held;
    if (n <= 0) return 0;
    this.held -= n;
    this.unannounced += n;
    if (this.unannounced < this.threshold) return 0;
    const inc = this.unannounced;
    this.unannounced = 0;
    this.available += inc;
    return inc;
  }
}
