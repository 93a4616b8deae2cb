import { afterEach, describe, expect, test } from "bun:test";
import { RateLimiter } from "../../src/firewall/ratelimit.ts";

describe("RateLimiter", () => {
  const made: RateLimiter[] = [];
  const limiter = (limit: number, windowMs: number, maxTracked?: number) => {
    const r = new RateLimiter(limit, windowMs, maxTracked);
    made.push(r);
    return r;
  };
  afterEach(() => {
    for (const r of made.splice(0)) r.close();
  });

  test("N connections within the window are allowed, the N+1th is refused", () => {
    const r = limiter(3, 10_000);
    expect([0, 1, 2].map((t) => r.allow("192.0.2.1", 1000 + t))).toEqual([true, true, true]);
    expect(r.allow("192.0.2.1", 1003)).toBe(false);
    // Other IPs have their own budget.
    expect(r.allow("192.0.2.2", 1003)).toBe(true);
  });

  test("a client is admitted again once its oldest connection leaves the window", () => {
    const r = limiter(2, 1000);
    expect(r.allow("a", 0)).toBe(true);
    expect(r.allow("a", 500)).toBe(true);
    expect(r.allow("a", 999)).toBe(false);
    expect(r.allow("a", 1000)).toBe(true); // the t=0 attempt is now exactly one window old
    expect(r.allow("a", 1001)).toBe(false); // t=500 and t=1000 still inside
    expect(r.allow("a", 1500)).toBe(true);
  });

  test("the window slides: never more than N accepted in any window-long span", () => {
    const r = limiter(5, 1000);
    const accepted: number[] = [];
    for (let t = 0; t < 10_000; t += 37) if (r.allow("x", t)) accepted.push(t);
    for (let i = 0; i + 5 < accepted.length; i++) expect(accepted[i + 5] - accepted[i]).toBeGreaterThanOrEqual(1000);
    expect(accepted.length).toBeGreaterThan(40); // ~5 per second over 10 s, not shut out
  });

  test("refused attempts do not count: a hammering client gets back in after one window", () => {
    const r = limiter(2, 1000);
    expect(r.allow("h", 0)).toBe(true);
    expect(r.allow("h", 1)).toBe(true);
    // Hammer every ms for the rest of the window: all refused…
    for (let t = 2; t < 1000; t++) expect(r.allow("h", t)).toBe(false);
    // …and they left no trace: one window after the accepted ones, it is let in.
    expect(r.allow("h", 1000)).toBe(true);
    expect(r.allow("h", 1001)).toBe(true);
  });

  test("limit 0 means off", () => {
    const r = limiter(0, 1000);
    for (let i = 0; i < 1000; i++) expect(r.allow("z", 5)).toBe(true);
    expect(r.size()).toBe(0);
  });

  test("large limits work (ring grows on demand)", () => {
    const r = limiter(100, 1000);
    for (let i = 0; i < 100; i++) expect(r.allow("g", i)).toBe(true);
    expect(r.allow("g", 100)).toBe(false);
    expect(r.allow("g", 1000)).toBe(true);
    expect(r.allow("g", 1000)).toBe(false);
  });

  test("sweep removes IPs whose last connection left the window and keeps live ones", () => {
    const r = limiter(3, 1000);
    for (let i = 0; i < 500; i++) r.allow(`10.0.${i >> 8}.${i & 255}`, 100);
    r.allow("live", 1500);
    r.allow("10.0.0.1", 1600); // refreshed: must survive
    expect(r.size()).toBe(501);
    expect(r.sweep(2000)).toBe(499);
    expect(r.size()).toBe(2);
    // The refreshed IP kept its history (t=100, t=1600): the 4th attempt
    // within 1000 ms of t=1600 is refused.
    expect(r.allow("10.0.0.1", 1700)).toBe(true);
    expect(r.allow("10.0.0.1", 1800)).toBe(true);
    expect(r.allow("10.0.0.1", 1900)).toBe(false);
  });

  test("the tracked-IP cap holds: stale entries go first, then the least recently accepted", () => {
    const r = limiter(1, 1000, 3);
    r.allow("a", 0);
    r.allow("b", 10);
    r.allow("c", 2000);
    expect(r.size()).toBe(3);
    r.allow("d", 2001); // a and b are stale → swept
    expect(r.size()).toBe(2);
    r.allow("e", 2002);
    r.allow("f", 2003); // all live: c (least recent) is evicted
    expect(r.size()).toBe(3);
    expect(r.allow("c", 2004)).toBe(true); // forgotten, so admitted afresh
    expect(r.allow("f", 2005)).toBe(false); // still limited
  });

  test("the background sweep timer does not keep the process alive", async () => {
    const code = `import { RateLimiter } from ${JSON.stringify(import.meta.dir + "/../../src/firewall/ratelimit.ts")};
      const r = new RateLimiter(5, 60_000); r.allow("a"); console.log("done");`;
    const p = Bun.spawn([process.execPath, "-e", code], { stdout: "pipe", stderr: "pipe" });
    const timeout = setTimeout(() => p.kill(), 15_000);
    const code2 = await p.exited;
    clearTimeout(timeout);
    expect(await new Response(p.stdout).text()).toContain("done");
    expect(code2).toBe(0);
  }, 20_000);
});
