/**
 * `mc-proxy server`: load the config, open/migrate/seed the store, build the
 * in-memory state, bind listeners, start the admin API and metrics, then run
 * until SIGINT/SIGTERM. Signals: SIGHUP reloads GeoIP and L7 certificates;
 * SIGINT/SIGTERM close the listening sockets, report NOT_SERVING, drain up to
 * `shutdown_timeout`, cut the rest and exit 0.
 */
import { existsSync, rmSync } from "node:fs";
import { missingSocketDir, parseAdminAddr } from "../admin/addr.ts";
import { loadConfig } from "../config/load.ts";
import { ConfigError } from "../errors.ts";
import { proxyUntrustedWarning } from "../config/validate.ts";
import type { Config } from "../config/types.ts";
import type { AdminServer } from "../admin/server.ts";
import { Firewall } from "../firewall/firewall.ts";
import { log, setLogLevel } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import { formatHostPort } from "../net/addr.ts";
import { fdBudget, raiseFdLimit } from "../net/fds.ts";
import { parseMetricsAddr, startMetricsServer } from "../obs/metrics-server.ts";
import type { ListenerRecord } from "../records.ts";
import { State } from "../state/state.ts";
import { Store } from "../store/store.ts";
import { diffConfig, seedIfEmpty } from "../store/seed.ts";
import { VERSION } from "../version.ts";
import { listenHostname, ProxyServer } from "./proxy.ts";
import { jscOptionsInEffect } from "./jsc.ts";
import { trimExecutablePages } from "./trim.ts";
import { holdSighup, onSighup } from "./sighup.ts";
import { holdStopSignals, onStopSignal } from "./stopsignal.ts";
import { ConnCounters } from "./counters.ts";
import { SharedRateLimiter } from "../firewall/shared-ratelimit.ts";
import { CertIds, takeSnapshot } from "../state/replica.ts";
import { setLogBase } from "../obs/log.ts";
import { parseHostPort } from "../net/addr.ts";
import { resolveWorkers, WorkerPool } from "./workers.ts";

export interface RunningServer {
  config: Config;
  /** Listeners and routes as loaded from the database (the source of truth, not the TOML). */
  state: State;
  proxy: ProxyServer;
  admin: AdminServer | null;
  /** Graceful stop; resolves with the number of connections cut. */
  shutdown(): Promise<number>;
  /** Data-path threads (the main thread included). */
  threads: number;
  /**
   * What SIGHUP does. The main thread's part (GeoIP, certificates) is done
   * when this returns; the promise resolves once every worker has it too.
   */
  reload(): Promise<void>;
}

/** Starts everything; throws (ConfigError, StoreError, bind errors) before serving anything. */
export async function startServer(configPath: string): Promise<RunningServer> {
  const { config, warnings } = loadConfig(configPath);
  setLogLevel(config.log.level);
  for (const w of warnings) log.warn("config.warning", { file: config.file, detail: w });

  // The admin socket's directory is checked before anything is created (as `mc-proxy check` does):
  // grpc-js's own message for it names no config key.
  const socketDir = config.grpc ? missingSocketDir(parseAdminAddr(config.grpc.addr), config.database.path) : null;
  if (socketDir !== null) throw new ConfigError(config.file, "grpc.addr", `directory ${socketDir} of the admin socket does not exist`);

  // A first start that fails before serving leaves no database behind: the next start seeds from
  // the (corrected) TOML instead of keeping what the failed one wrote (the database wins over the TOML).
  const fresh = !existsSync(config.database.path);
  const store = Store.open(config.database.path);
  const seeded = seedIfEmpty(store, config);
  const abandon = (): void => {
    store.close();
    if (fresh && seeded) for (const f of [config.database.path, `${config.database.path}-wal`, `${config.database.path}-shm`]) rmSync(f, { force: true });
  };
  if (!seeded) for (const d of diffConfig(store, config)) log.warn("config.diverged", { detail: d });
  const state = State.load(store);
  for (const l of state.listeners()) warnIfProxyUntrusted(l.record);

  // Data-path threads: this one plus threads−1 workers (src/server/workers.ts).
  const threads = resolveWorkers(config.proxy.workers);
  const counterBuffers = ConnCounters.create(state.listeners().length, threads);
  const counters = new ConnCounters(counterBuffers, 0);
  const rate = threads > 1 && config.firewall.rateLimit > 0 ? SharedRateLimiter.create() : null;
  if (threads > 1) setLogBase({ worker: 0 });
  metrics.setWorkers(threads);

  const firewall = new Firewall({
    geoipPath: config.firewall.geoipDb,
    rateLimit: config.firewall.rateLimit,
    rateWindowMs: config.firewall.rateWindowMs,
    sharedRate: rate ? { buffers: rate, owner: 1 } : undefined,
  });
  firewall.setRules(state.firewallRules());
  // Every committed change goes to every worker; admin RPCs wait for `syncing` (AdminDeps.applied).
  let pool: WorkerPool | null = null;
  let syncing: Promise<void> = Promise.resolve();
  const certIds = new CertIds();
  state.onChange((what) => {
    if (what === "firewall") firewall.setRules(state.firewallRules());
    if (pool) syncing = pool.sync(takeSnapshot(state, certIds));
  });

  // The descriptor limit: soft raised to hard (Bun normally did it already), and the budget sized from it.
  const fd = raiseFdLimit();
  if (fd.raiseFailed) log.warn("server.fd_limit", { soft: fd.limit?.soft, hard: fd.limit?.hard, detail: "could not raise the soft file descriptor limit to the hard limit" });
  fdBudget.init(fd.limit?.soft ?? null);
  if (threads > 1) fdBudget.share(new Int32Array(counterBuffers.fds), new BigInt64Array(counterBuffers.fdWarnAt));

  const startedAt = new Date();
  let proxy: ProxyServer;
  try {
    if (threads > 1) for (const l of state.listeners()) assertPortFree(l.record.addr);
    proxy = ProxyServer.start({ state, firewall, proxy: config.proxy, counters, shared: threads > 1 ? {} : undefined });
  } catch (e) {
    abandon();
    throw e;
  }
  if (threads > 1) {
    const ports = [...proxy.ports()];
    try {
      pool = await WorkerPool.start({
        threads,
        counters: counterBuffers,
        rate,
        init: (thread, seq) => ({
          t: "init",
          seq,
          thread,
          proxy: config.proxy,
          firewall: { geoipPath: config.firewall.geoipDb, rateLimit: config.firewall.rateLimit, rateWindowMs: config.firewall.rateWindowMs },
          rate,
          counters: counterBuffers,
          ports,
          snapshot: takeSnapshot(state, certIds),
          logLevel: config.log.level,
          fdSoft: fd.limit?.soft ?? null,
        }),
        absorb: (d) => metrics.registry.absorb(d),
        onFatal: (reason) => {
          log.error("server.fatal", { reason });
          process.exit(1);
        },
      });
    } catch (e) {
      proxy.stopAccepting();
      await proxy.drain(0);
      abandon();
      throw e;
    }
  }

  let admin: AdminServer | null = null;
  let metricsSrv: { close(): Promise<void>; port: number } | null = null;
  try {
    if (config.grpc) {
      // Loaded only when configured: @grpc/grpc-js costs +4–5 MiB of idle RSS and ~15k live JS
      // cells, which also raise how far the JS heap grows under load (ARCHITECTURE.md, Known limitations).
      const { startAdminServer } = await import("../admin/server.ts");
      admin = await startAdminServer(config.grpc, {
        state,
        status: () => ({
          version: VERSION,
          startedAt,
          totalConnections: counters.totalAccepted(),
          workers: threads,
          active: (addr: string) => {
            const l = state.listener(addr);
            return l ? counters.activeOn(l.slot) : 0;
          },
        }),
        applied: () => syncing,
        geoipConfigured: config.firewall.geoipDb !== "",
        onRpc: (method, code) => metrics.adminRpc(method, code),
      });
    }
    if (config.metrics) {
      // With workers, a scrape first adds up their counts (they keep deltas since the last one).
      const render = async () => {
        if (pool) for (const d of await pool.collectMetrics()) metrics.registry.absorb(d);
        return metrics.render();
      };
      metricsSrv = await startMetricsServer(config.metrics.addr, render);
    }
  } catch (e) {
    proxy.stopAccepting();
    await Promise.all([proxy.drain(0), pool?.drain(0)]);
    await admin?.close();
    abandon();
    throw e;
  }
  admin?.setServing(true);

  const listeners = state.listeners();
  const ports = proxy.ports();
  log.info("server.start", {
    version: VERSION,
    config: config.file,
    database: config.database.path,
    seeded,
    listeners: listeners.map((l) => ({ addr: l.record.addr, port: ports.get(l.record.addr), routes: l.routes.size, proxy_protocol: l.record.proxyProtocol, max_connections: l.record.maxConnections })),
    routes: listeners.reduce((n, l) => n + l.routes.size, 0),
    admin: config.grpc?.addr,
    metrics: metricsSrv && config.metrics ? boundAddr(config.metrics.addr, metricsSrv.port) : undefined,
    log_level: config.log.level,
    workers: threads,
    fd_limit: fd.limit ?? undefined,
    jsc: jscOptionsInEffect(),
  });

  let stopping: Promise<number> | null = null;
  return {
    config,
    state,
    proxy,
    admin,
    threads,
    async reload() {
      const g = firewall.reloadGeoip();
      const c = state.reloadCertificates(); // a change: the new certificates reach the workers in the snapshot
      // Every worker has the certificates and its own GeoIP reload before the reload is logged.
      const workerGeoip = pool && config.firewall.geoipDb ? await pool.reloadGeoip() : [];
      await syncing;
      const geoipOk = g.ok && workerGeoip.length === 0;
      if (config.firewall.geoipDb) metrics.reload("geoip", geoipOk);
      metrics.reload("certificates", c.failed === 0);
      // A failed part is a warning: an operator running at level "warn" must still see it.
      const failed = (config.firewall.geoipDb && !geoipOk) || c.failed > 0;
      const geoip = config.firewall.geoipDb ? (g.ok ? (workerGeoip[0] ?? "ok") : g.error) : "none";
      (failed ? log.warn : log.info)("server.reload", { geoip, certificates_reloaded: c.reloaded, certificates_failed: c.failed, workers: threads });
    },
    shutdown() {
      if (stopping) return stopping;
      stopping = (async () => {
        const open = counters.totalActive();
        log.info("server.draining", { connections: open, timeout_ms: config.proxy.shutdownTimeoutMs, workers: threads });
        proxy.stopAccepting();
        admin?.setServing(false);
        // Every thread drains within the same shutdown_timeout (workers stop accepting when told).
        const [cutHere, cutWorkers] = await Promise.all([proxy.drain(config.proxy.shutdownTimeoutMs), pool?.drain(config.proxy.shutdownTimeoutMs) ?? 0]);
        const cut = cutHere + cutWorkers;
        await admin?.close();
        await metricsSrv?.close();
        firewall.close();
        store.close();
        log.info("server.stopped", { drained: open - cut, cut });
        return cut;
      })();
      return stopping;
    },
  };
}

/**
 * The `server` command: start, wire signals, resolve when stopped (exit code 0).
 * `onStarted` runs once everything is bound and serving (the devserver prints
 * what to try next from it).
 */
export async function runServer(configPath: string, onStarted?: (srv: RunningServer) => void): Promise<number> {
  holdSighup(); // normally already held by the entry point; a SIGHUP while starting must not kill us
  holdStopSignals(); // a SIGTERM while starting drains once started (src/server/stopsignal.ts)
  const srv = await startServer(configPath);
  onStarted?.(srv);
  return await new Promise<number>((resolve) => {
    onStopSignal((signal, held) => {
      log.info("server.signal", held ? { signal, held_during_start: true } : { signal });
      srv.shutdown().then(() => resolve(0));
    });
    // Held since the entry point's first import (src/server/sighup.ts): one that arrived while starting reloads now.
    if (onSighup(() => srv.reload())) log.info("server.signal", { signal: "SIGHUP", held_during_start: true });
    // Start-up is over (and the signals are ours): the code only it ran need not stay resident (src/server/trim.ts).
    const trimmed = trimExecutablePages();
    if (trimmed !== null) log.debug("server.trim", { mappings: trimmed.mappings, bytes: trimmed.bytes });
  });
}

/**
 * SPEC §2: a listener that takes PROXY headers from any peer starts, with a
 * warning naming it: any peer can then choose the client address the
 * firewall, the rate limit and X-Forwarded-For see. (Listeners come from the
 * database, so this checks what will be served, not only the TOML; the admin
 * API cannot change proxy_protocol or its trusted list.)
 */
function warnIfProxyUntrusted(l: ListenerRecord): void {
  const detail = proxyUntrustedWarning(l);
  if (detail) log.warn("listener.proxy_untrusted", { listener: l.addr, detail });
}

/**
 * Several threads bind a listener with SO_REUSEPORT, which would also let
 * them join a port another process holds the same way (a second instance
 * would then silently share the traffic). So first bind it exclusively, the
 * way one thread does, and let go: a port in use fails the start here.
 * Port 0 is always free (each start picks its own).
 */
function assertPortFree(addr: string): void {
  const hp = parseHostPort(addr);
  if (!hp || hp.port === 0) return;
  try {
    const probe = Bun.listen({ hostname: listenHostname(hp.host), port: hp.port, exclusive: true, socket: { data() {} } });
    probe.stop(true);
  } catch (e) {
    throw new Error(`listener ${addr}: cannot bind: ${(e as Error).message}`);
  }
}

/** `host:port` of the metrics endpoint with the port it actually bound (the config may say 0). */
function boundAddr(configured: string, port: number): string {
  const hp = parseMetricsAddr(configured);
  return hp instanceof Error ? configured : formatHostPort(hp.host, port);
}
