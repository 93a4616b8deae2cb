/**
 * The rate-limit table shared by data-path threads (src/firewall/shared-ratelimit.ts):
 * the same decisions as the one-thread limiter, and one limit however many
 * threads ask at once (real Workers hammering the same client).
 */
import { describe, expect, test } from "bun:test";
import { RateLimiter } from "../../src/firewall/ratelimit.ts";
import { SharedRateLimiter } from "../../src/firewall/shared-ratelimit.ts";
import { parseIpWords } from "../../src/net/ip.ts";

const words = new Uint32Array(4);
function allow(r: SharedRateLimiter, ip: string, now: number): boolean {
  const fam = parseIpWords(ip, words);
  return r.allowClient(fam, words, ip, now);
}

describe("SharedRateLimiter", () => {
  test("decides exactly as the one-thread limiter over a random trace", () => {
    const shared = new SharedRateLimiter(SharedRateLimiter.create(1000), 5, 1000, 1);
    const single = new RateLimiter(5, 1000);
    let seed = 42;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let now = 1_000_000;
    try {
      for (let i = 0; i < 20_000; i++) {
        now += Math.floor(rnd() * 60);
        const ip = `10.0.0.${Math.floor(rnd() * 8)}`;
        expect(allow(shared, ip, now)).toBe(single.allow(ip, now));
      }
    } finally {
      single.close();
    }
  });

  test("IPv6 clients are counted per /64; mapped IPv4 is IPv4; text that is not an IP has its own bucket", () => {
    const r = new SharedRateLimiter(SharedRateLimiter.create(100), 2, 60_000, 1);
    const t = 5_000;
    expect(allow(r, "2001:db8:1:2::1", t)).toBe(true);
    expect(allow(r, "2001:db8:1:2:ffff::9", t)).toBe(true);
    expect(allow(r, "2001:db8:1:2::77", t)).toBe(false); // same /64
    expect(allow(r, "2001:db8:1:3::1", t)).toBe(true); // another /64
    expect(allow(r, "192.0.2.7", t)).toBe(true);
    expect(allow(r, "::ffff:192.0.2.7", t)).toBe(true);
    expect(allow(r, "192.0.2.7", t)).toBe(false);
    expect(r.allowClient(0, words, "not-an-ip", t)).toBe(true);
    expect(r.allowClient(0, words, "not-an-ip", t)).toBe(true);
    expect(r.allowClient(0, words, "not-an-ip", t)).toBe(false);
    expect(r.allowClient(0, words, "other-text", t)).toBe(true);
  });

  test("a client a window old counts 0 and its slot is reused; when no slot is free new clients share the overflow budget", () => {
    // maxTracked 4 → 8 slots: every probe window covers the whole table.
    const r = new SharedRateLimiter(SharedRateLimiter.create(4), 1, 1000, 1);
    for (let i = 0; i < 8; i++) expect(allow(r, `10.1.0.${i}`, 0)).toBe(true);
    expect(r.size(0)).toBe(8);
    // Table full of live clients: newcomers share one budget of 1.
    expect(allow(r, "10.2.0.1", 10)).toBe(true);
    expect(allow(r, "10.2.0.2", 10)).toBe(false);
    // Tracked clients keep their own (spent) budgets.
    expect(allow(r, "10.1.0.3", 10)).toBe(false);
    // A window later every entry counts 0: slots are taken over by new clients with their own budgets.
    expect(allow(r, "10.3.0.1", 1500)).toBe(true);
    expect(allow(r, "10.3.0.2", 1500)).toBe(true);
    expect(allow(r, "10.3.0.1", 1500)).toBe(false);
  });

  test("one limit for every thread: 4 workers × 5,000 attempts from one client within the window admit exactly `limit`", async () => {
    const buffers = SharedRateLimiter.create(1000);
    const limit = 777;
    const code = `
      import { SharedRateLimiter } from ${JSON.stringify(import.meta.dir + "/../../src/firewall/shared-ratelimit.ts")};
      self.onmessage = (e) => {
        const { buffers, limit, owner } = e.data;
        const r = new SharedRateLimiter(buffers, limit, 60_000, owner);
        const w = new Uint32Array([0x0a000001, 0, 0, 0]);
        let ok = 0;
        for (let i = 0; i < 5000; i++) if (r.allowClient(4, w, "10.0.0.1", 1000)) ok++;
        postMessage(ok);
      };`;
    const url = URL.createObjectURL(new Blob([code], { type: "application/typescript" }));
    const workers = Array.from({ length: 4 }, () => new Worker(url));
    try {
      const counts = await Promise.all(
        workers.map(
          (w, i) =>
            new Promise<number>((resolve, reject) => {
              w.onmessage = (e) => resolve(e.data as number);
              w.onerror = (e) => reject(new Error(e.message));
              w.postMessage({ buffers, limit, owner: i + 1 });
            }),
        ),
      );
      expect(counts.reduce((a, b) => a + b, 0)).toBe(limit);
    } finally {
      for (const w of workers) w.terminate();
      URL.revokeObjectURL(url);
    }
  });
});
