/**
 * The main thread's side of worker deaths (src/server/workers.ts), with a
 * stand-in worker that crashes 150 ms after it starts (test/fixtures/
 * crashing-worker.ts): each death is logged, the dead thread's open
 * connections leave the shared counts, a fresh worker replaces it, and more
 * than WORKER_MAX_RESTARTS deaths within the window is fatal.
 */
import { expect, test } from "bun:test";
import { ConnCounters } from "../../src/server/counters.ts";
import { WorkerPool } from "../../src/server/workers.ts";
import { WORKER_MAX_RESTARTS } from "../../src/limits.ts";
import { PROXY_DEFAULTS } from "../../src/config/defaults.ts";
import { captureLogs, waitUntil } from "../helpers/net.ts";
import { metrics } from "../../src/obs/metrics.ts";

test("a worker that dies is logged, its connections leave the shared counts, it is replaced; a crash loop is fatal", async () => {
  const logs = captureLogs();
  const deathsBefore = Number(/\nmcproxy_worker_deaths_total (\d+)\n/.exec(metrics.render())?.[1] ?? 0);
  const counters = ConnCounters.create(1, 2);
  const main = new ConnCounters(counters, 0);
  let inits = 0;
  let fatal: string | null = null;
  const pool = await WorkerPool.start({
    threads: 2,
    counters,
    rate: null,
    url: new URL("../fixtures/crashing-worker.ts", import.meta.url).href,
    init: (thread, seq) => {
      inits++;
      return {
        t: "init", seq, thread, proxy: PROXY_DEFAULTS, firewall: { geoipPath: "", rateLimit: 0, rateWindowMs: 1000 }, rate: null,
        counters, ports: [], snapshot: { listeners: [], rules: [], certs: [] }, logLevel: "info", fdSoft: null,
      };
    },
    absorb: () => {},
    onFatal: (reason) => {
      fatal = reason;
    },
  });
  try {
    // The stand-in took one slot on listener 0: it counts while it lives.
    expect(main.activeOn(0)).toBe(1);
    await waitUntil(() => logs.records.some((r) => r.event === "worker.restarted"), 5000, "a restart");
    const died = logs.records.find((r) => r.event === "worker.died")!;
    expect(died.worker).toBe(1);
    expect(String(died.reason)).toContain("stand-in worker crash");
    expect(String(died.reason)).not.toContain("\n");
    // Replaced: the new one took its own slot; the dead one's was taken back (never 2).
    expect(main.activeOn(0)).toBeLessThanOrEqual(1);
    // It keeps crashing: after WORKER_MAX_RESTARTS restarts the next death is fatal.
    await waitUntil(() => fatal !== null, 15_000, "the crash loop to be fatal");
    expect(fatal!).toContain(`${WORKER_MAX_RESTARTS + 1} worker deaths`);
    expect(inits).toBe(WORKER_MAX_RESTARTS + 1);
    expect(logs.records.filter((r) => r.event === "worker.died").length).toBe(WORKER_MAX_RESTARTS + 1);
    expect(metrics.render()).toContain(`\nmcproxy_worker_deaths_total ${deathsBefore + WORKER_MAX_RESTARTS + 1}\n`);
    await waitUntil(() => main.activeOn(0) === 0, 5000, "every dead worker's slot back");
  } finally {
    logs.stop();
    await pool.terminateAll();
  }
});
