/** Rate budgets for the HTTP/2 session's abuse limits (src/limits.ts). Pure. */

/** A token bucket on a millisecond clock: `take()` false once the burst is spent faster than the refill. */
export class RateBudget {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Spends one token at time `now`; false when none is left. */
  take(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
