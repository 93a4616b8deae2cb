/**
 * `[proxy] workers` (SPEC §2, §10): the main thread's side of the extra
 * data-path threads. With N workers the process runs N data paths: the main
 * thread's own ProxyServer (thread 0) and N−1 Bun Workers (threads 1…N−1,
 * worker.ts), all accepting on the same ports through SO_REUSEPORT, so the
 * kernel spreads connections. The main thread also keeps the store, the
 * admin API, the metrics endpoint and the signals — work that is rare and
 * small next to the data path — so `workers = 1` is exactly the one-thread
 * server with no worker at all.
 *
 * One worker's behaviour, whatever N:
 *   - `max_connections`, accepted totals and the rate limit live in shared
 *     memory (counters.ts, shared-ratelimit.ts): one limit, never N;
 *   - every committed admin change is sent to every worker as a snapshot and
 *     the RPC returns only once each has applied it (sync);
 *   - SIGHUP reloads GeoIP in every worker (certificates travel in the
 *     snapshot) before the reload is logged;
 *   - `/metrics` asks every worker for its counter deltas at scrape time and
 *     adds them into the main registry; GetStatus reads the shared counters;
 *   - SIGTERM drains every thread within the one `shutdown_timeout`.
 * A worker that dies (uncaught error, or exits) is logged, its open
 * connections are taken out of the shared counts and it is replaced with a
 * fresh one from the latest snapshot; more than WORKER_MAX_RESTARTS deaths in
 * WORKER_RESTART_WINDOW_MS is a crash loop and the process exits 1, so that
 * its supervisor (systemd, the container runtime) restarts it cleanly.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { LogLevel, ProxyConfig } from "../config/types.ts";
import { SharedRateLimiter, type SharedRateBuffers } from "../firewall/shared-ratelimit.ts";
import { WORKER_CALL_TIMEOUT_MS, WORKER_MAX_RESTARTS, WORKER_RESTART_WINDOW_MS, WORKER_START_TIMEOUT_MS } from "../limits.ts";
import { log } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import type { MetricDelta } from "../obs/prom.ts";
import type { Snapshot } from "../state/replica.ts";
import { ConnCounters, type CounterBuffers } from "./counters.ts";

export interface WorkerInit {
  t: "init";
  seq: number;
  thread: number;
  proxy: ProxyConfig;
  firewall: { geoipPath: string; rateLimit: number; rateWindowMs: number };
  rate: SharedRateBuffers | null;
  counters: CounterBuffers;
  /** Listener addr → the port the main thread bound. */
  ports: [string, number][];
  snapshot: Snapshot;
  logLevel: LogLevel;
  fdSoft: number | null;
}

export type ToWorker =
  | WorkerInit
  | { t: "sync"; seq: number; snapshot: Snapshot }
  | { t: "geoip"; seq: number }
  | { t: "metrics"; seq: number }
  | { t: "drain"; seq: number; timeoutMs: number };

export type ToMain =
  | { t: "ready"; seq: number }
  | { t: "failed"; seq: number; error: string }
  | { t: "done"; seq: number }
  | { t: "geoip"; seq: number; ok: boolean; error?: string }
  | { t: "metrics"; seq: number; delta: MetricDelta[] }
  | { t: "drained"; seq: number; cut: number; delta: MetricDelta[] };

/** An uncaught error's message, one line (Bun's ErrorEvent.message carries a source excerpt). */
function errorText(e: ErrorEvent): string {
  const err = (e as { error?: { name?: unknown; message?: unknown } | null }).error;
  if (err && typeof err.message === "string") return `${typeof err.name === "string" ? err.name : "Error"}: ${err.message}`;
  const lines = String(e.message).split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^(error|\w*Error):/i.test(l)) ?? lines[0] ?? "unknown";
}

/**
 * `workers = 0`: one per CPU the process may use — the CPUs it may run on
 * (sched_getaffinity: `taskset -c 1` means one) and, under a CPU quota (a
 * container's `--cpus`, Kubernetes limits, systemd `CPUQuota=`), no more than
 * the quota rounded up: a 2-CPU limit on a 64-core host is two workers, not
 * 64 heaps.
 */
export function resolveWorkers(configured: number, cpus: number = availableParallelism(), quota: number | null = cpuQuota()): number {
  if (configured > 0) return configured;
  const byQuota = quota !== null && quota > 0 ? Math.ceil(quota) : Infinity;
  return Math.max(1, Math.min(cpus, byQuota));
}

type ReadText = (path: string) => string;
const readText: ReadText = (p) => readFileSync(p, "utf8");

/**
 * The CPU quota (CPUs' worth of time per period) of this process's cgroup
 * and its ancestors, the tightest one; null when there is none or it cannot
 * be read. cgroup v2: `cpu.max` ("max 100000" or "200000 100000") along the
 * path in /proc/self/cgroup's "0::" line; cgroup v1: cpu.cfs_quota_us /
 * cpu.cfs_period_us (-1 = none) along the "cpu" controller's path.
 */
export function cpuQuota(read: ReadText = readText): number | null {
  let lines: string[];
  try {
    lines = read("/proc/self/cgroup").split("\n");
  } catch {
    return null;
  }
  let best: number | null = null;
  const consider = (q: number) => {
    if (Number.isFinite(q) && q > 0 && (best === null || q < best)) best = q;
  };
  const v2 = lines.find((l) => l.startsWith("0::"));
  if (v2 !== undefined) {
    for (const dir of ancestors(v2.slice(3))) {
      try {
        const [quota, period] = read(`/sys/fs/cgroup${dir}/cpu.max`).trim().split(/\s+/);
        if (quota !== "max") consider(Number(quota) / Number(period));
      } catch {
        // no cpu controller at this level (or v1 only): nothing to learn here
      }
    }
  }
  const v1 = lines.map((l) => l.split(":")).find((f) => f.length >= 3 && f[1]!.split(",").includes("cpu"));
  if (v1 !== undefined) {
    for (const dir of ancestors(v1.slice(2).join(":"))) {
      try {
        const quota = Number(read(`/sys/fs/cgroup/cpu${dir}/cpu.cfs_quota_us`).trim());
        const period = Number(read(`/sys/fs/cgroup/cpu${dir}/cpu.cfs_period_us`).trim());
        if (quota > 0 && period > 0) consider(quota / period);
      } catch {
        // not mounted there: nothing to learn here
      }
    }
  }
  return best;
}

/** "/a/b" → ["/a/b", "/a", ""]: a cgroup and its ancestors, as paths under the controller's mount. */
function ancestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push(i === 0 ? "" : `/${parts.slice(0, i).join("/")}`);
  return out;
}

/**
 * Where the worker's code is. From source, beside this file. In a compiled
 * binary, the build embeds src/server/worker.ts as a second entry point under
 * the bundle root (scripts/build.ts), and import.meta.url is the bundle's main
 * file, not this module's: resolve from the root there (probed on 1.4.4).
 */
function workerUrl(): string {
  const compiled = import.meta.url.includes("/$bunfs/");
  return new URL(compiled ? "./server/worker.ts" : "./worker.ts", import.meta.url).href;
}

interface Pending {
  resolve(m: ToMain | null): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Slot {
  thread: number;
  worker: Worker;
  /** False until it reported ready: start-up failures are errors, not deaths. */
  ready: boolean;
}

export interface WorkerPoolOptions {
  /** Total data-path threads including the main thread (≥ 2 to have a pool at all). */
  threads: number;
  /** The init message for thread `t` (made afresh for a replacement: it needs the latest snapshot). */
  init(thread: number, seq: number): WorkerInit;
  counters: CounterBuffers;
  rate: SharedRateBuffers | null;
  /** A crash loop: the process must exit. */
  onFatal(reason: string): void;
  /** Metric deltas a worker reported on its way out (drain). */
  absorb(delta: MetricDelta[]): void;
  /** The worker's code (default: worker.ts; tests pass a stand-in that misbehaves). */
  url?: string;
}

export class WorkerPool {
  private readonly slots = new Map<number, Slot>();
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private stopping = false;
  private readonly deaths: number[] = [];
  private readonly counters: ConnCounters;

  private constructor(private readonly opts: WorkerPoolOptions) {
    this.counters = new ConnCounters(opts.counters, 0);
  }

  /** Starts threads 1…N−1 and waits until each has bound its listeners; throws (after stopping them) if one fails. */
  static async start(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(opts);
    const results = await Promise.all(Array.from({ length: opts.threads - 1 }, (_, i) => pool.spawn(i + 1)));
    const failed = results.find((r) => r !== null);
    if (failed) {
      await pool.terminateAll();
      throw new Error(`worker: ${failed}`);
    }
    return pool;
  }

  /** Number of worker threads (the main thread not included). */
  get size(): number {
    return this.slots.size;
  }

  /** Sends a committed change to every worker; resolves once each has applied it (or timed out, logged). */
  async sync(snapshot: Snapshot): Promise<void> {
    await this.broadcast((seq) => ({ t: "sync", seq, snapshot }), "sync");
  }

  /** SIGHUP: every worker re-reads the GeoIP database; the failures, if any. */
  async reloadGeoip(): Promise<string[]> {
    const answers = await this.broadcast((seq) => ({ t: "geoip", seq }), "geoip");
    return answers.flatMap((a) => (a && a.t === "geoip" && !a.ok ? [a.error ?? "failed"] : []));
  }

  /** Every worker's metric deltas since the last scrape. */
  async collectMetrics(): Promise<MetricDelta[][]> {
    const answers = await this.broadcast((seq) => ({ t: "metrics", seq }), "metrics");
    return answers.flatMap((a) => (a && a.t === "metrics" ? [a.delta] : []));
  }

  /**
   * Drains every worker within `timeoutMs` (they stop accepting at once),
   * then stops them. Resolves with the number of connections they cut.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.stopping = true;
    const answers = await this.broadcast((seq) => ({ t: "drain", seq, timeoutMs }), "drain", timeoutMs + WORKER_CALL_TIMEOUT_MS);
    let cut = 0;
    for (const a of answers) {
      if (a && a.t === "drained") {
        cut += a.cut;
        this.opts.absorb(a.delta);
      }
    }
    await this.terminateAll();
    return cut;
  }

  /** Stops every worker at once (start-up failure, tests). */
  async terminateAll(): Promise<void> {
    this.stopping = true;
    const slots = [...this.slots.values()];
    this.slots.clear();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private async broadcast(make: (seq: number) => ToWorker, what: string, timeoutMs = WORKER_CALL_TIMEOUT_MS): Promise<(ToMain | null)[]> {
    return await Promise.all(
      [...this.slots.values()].map(async (s) => {
        const a = await this.call(s, make(++this.seq), timeoutMs);
        if (a === null && this.slots.get(s.thread) === s) log.error("worker.no_answer", { worker: s.thread, request: what, timeout_ms: timeoutMs });
        return a;
      }),
    );
  }

  private call(s: Slot, msg: ToWorker, timeoutMs: number): Promise<ToMain | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(msg.seq);
        resolve(null);
      }, timeoutMs);
      this.pending.set(msg.seq, { resolve, timer });
      s.worker.postMessage(msg);
    });
  }

  private answered(m: ToMain): void {
    const p = this.pending.get(m.seq);
    if (!p) {
      // An answer after its call timed out: the worker already reset the counts it reports, so keep them (next scrape).
      if (m.t === "metrics" || m.t === "drained") this.opts.absorb(m.delta);
      return;
    }
    this.pending.delete(m.seq);
    clearTimeout(p.timer);
    p.resolve(m);
  }

  /** Starts thread `t`; resolves null once it is serving, or with why it could not start. */
  private spawn(thread: number): Promise<string | null> {
    const worker = new Worker(this.opts.url ?? workerUrl());
    const slot: Slot = { thread, worker, ready: false };
    this.slots.set(thread, slot);
    worker.addEventListener("message", (e: MessageEvent<ToMain>) => this.answered(e.data));
    worker.addEventListener("error", (e: ErrorEvent) => this.died(slot, `uncaught error: ${errorText(e)}`));
    worker.addEventListener("close", (e: Event) => this.died(slot, `exited (code ${(e as CloseEvent).code ?? "?"})`));
    const seq = ++this.seq;
    return this.call(slot, this.opts.init(thread, seq), WORKER_START_TIMEOUT_MS).then((a) => {
      if (a?.t === "ready") {
        slot.ready = true;
        return null;
      }
      return a?.t === "failed" ? `thread ${thread}: ${a.error}` : `thread ${thread}: not ready within ${WORKER_START_TIMEOUT_MS} ms`;
    });
  }

  /** A worker is gone: fix the shared counts, answer its pending calls, replace it (or give up on a crash loop). */
  private died(slot: Slot, why: string): void {
    if (this.slots.get(slot.thread) !== slot) return; // already handled (error then close), or terminated by us
    this.slots.delete(slot.thread);
    void slot.worker.terminate();
    this.counters.forgetThread(slot.thread);
    if (this.opts.rate) SharedRateLimiter.releaseDead(this.opts.rate, slot.thread + 1);
    if (this.stopping) return;
    log.error("worker.died", { worker: slot.thread, reason: why, ready: slot.ready });
    metrics.workerDied();
    if (!slot.ready) return; // start-up: start() reports it
    const now = Date.now();
    this.deaths.push(now);
    while (this.deaths.length > 0 && this.deaths[0]! < now - WORKER_RESTART_WINDOW_MS) this.deaths.shift();
    if (this.deaths.length > WORKER_MAX_RESTARTS) {
      this.opts.onFatal(`${this.deaths.length} worker deaths within ${WORKER_RESTART_WINDOW_MS} ms`);
      return;
    }
    void this.spawn(slot.thread).then((err) => {
      if (err) {
        log.error("worker.restart_failed", { worker: slot.thread, reason: err });
        this.opts.onFatal(`worker ${slot.thread} could not be restarted: ${err}`);
      } else {
        log.warn("worker.restarted", { worker: slot.thread });
      }
    });
  }
}
