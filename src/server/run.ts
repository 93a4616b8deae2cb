/**
 * `mc-proxy server`: load the config, open/migrate/seed the store, build the
 * in-memory state, bind listeners, start the admin API and metrics, then run
 * until SIGINT/SIGTERM. Signals: SIGHUP reloads GeoIP and L7 certificates;
 * SIGINT/SIGTERM close the listening sockets, report NOT_SERVING, drain up to
 * `shutdown_timeout`, cut the rest and exit 0.
 */
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/types.ts";
import { startAdminServer, type AdminServer } from "../admin/server.ts";
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
import { ProxyServer } from "./proxy.ts";
import { holdSighup, onSighup } from "./sighup.ts";

export interface RunningServer {
  config: Config;
  /** Listeners and routes as loaded from the database (the source of truth, not the TOML). */
  state: State;
  proxy: ProxyServer;
  admin: AdminServer | null;
  /** Graceful stop; resolves with the number of connections cut. */
  shutdown(): Promise<number>;
  /** What SIGHUP does. */
  reload(): void;
}

/** Starts everything; throws (ConfigError, StoreError, bind errors) before serving anything. */
export async function startServer(configPath: string): Promise<RunningServer> {
  const { config, warnings } = loadConfig(configPath);
  setLogLevel(config.log.level);
  for (const w of warnings) log.warn("config.warning", { file: config.file, detail: w });

  const store = Store.open(config.database.path);
  const seeded = seedIfEmpty(store, config);
  if (!seeded) for (const d of diffConfig(store, config)) log.warn("config.diverged", { detail: d });
  const state = State.load(store);
  for (const l of state.listeners()) warnIfProxyUntrusted(l.record);

  const firewall = new Firewall({
    geoipPath: config.firewall.geoipDb,
    rateLimit: config.firewall.rateLimit,
    rateWindowMs: config.firewall.rateWindowMs,
  });
  firewall.setRules(state.firewallRules());
  state.onChange((what) => {
    if (what === "firewall") firewall.setRules(state.firewallRules());
  });

  // The descriptor limit: soft raised to hard (Bun normally did it already), and the budget sized from it.
  const fd = raiseFdLimit();
  if (fd.raiseFailed) log.warn("server.fd_limit", { soft: fd.limit?.soft, hard: fd.limit?.hard, detail: "could not raise the soft file descriptor limit to the hard limit" });
  fdBudget.init(fd.limit?.soft ?? null);

  const startedAt = new Date();
  let proxy: ProxyServer;
  try {
    proxy = ProxyServer.start({ state, firewall, proxy: config.proxy });
  } catch (e) {
    store.close();
    throw e;
  }

  let admin: AdminServer | null = null;
  let metricsSrv: { close(): Promise<void>; port: number } | null = null;
  try {
    if (config.grpc) {
      admin = await startAdminServer(config.grpc, {
        state,
        status: () => ({
          version: VERSION,
          startedAt,
          totalConnections: proxy.totalConnections,
          active: (addr: string) => state.listener(addr)?.active ?? 0,
        }),
        onRpc: (method, code) => metrics.adminRpc(method, code),
      });
    }
    if (config.metrics) metricsSrv = await startMetricsServer(config.metrics.addr);
  } catch (e) {
    proxy.stopAccepting();
    await proxy.drain(0);
    await admin?.close();
    store.close();
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
    fd_limit: fd.limit ?? undefined,
  });

  let stopping: Promise<number> | null = null;
  return {
    config,
    state,
    proxy,
    admin,
    reload() {
      const g = firewall.reloadGeoip();
      if (config.firewall.geoipDb) metrics.reload("geoip", g.ok);
      const c = state.reloadCertificates();
      metrics.reload("certificates", c.failed === 0);
      // A failed part is a warning: an operator running at level "warn" must still see it.
      const failed = (config.firewall.geoipDb && !g.ok) || c.failed > 0;
      (failed ? log.warn : log.info)("server.reload", { geoip: config.firewall.geoipDb ? (g.ok ? "ok" : g.error) : "none", certificates_reloaded: c.reloaded, certificates_failed: c.failed });
    },
    shutdown() {
      if (stopping) return stopping;
      stopping = (async () => {
        const open = proxy.conns.size;
        log.info("server.draining", { connections: open, timeout_ms: config.proxy.shutdownTimeoutMs });
        proxy.stopAccepting();
        admin?.setServing(false);
        const cut = await proxy.drain(config.proxy.shutdownTimeoutMs);
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
  const srv = await startServer(configPath);
  onStarted?.(srv);
  return await new Promise<number>((resolve) => {
    const stop = (sig: string) => {
      log.info("server.signal", { signal: sig });
      srv.shutdown().then(() => resolve(0));
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
    // Held since the entry point's first import (src/server/sighup.ts): one that arrived while starting reloads now.
    if (onSighup(() => srv.reload())) log.info("server.signal", { signal: "SIGHUP", held_during_start: true });
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
  if (!l.proxyProtocol || l.proxyProtocolTrusted.length > 0) return;
  log.warn("listener.proxy_untrusted", {
    listener: l.addr,
    detail: "proxy_protocol = true with an empty proxy_protocol_trusted: any peer can choose the client address that the firewall, the rate limit and X-Forwarded-For see; list the sending proxies' addresses",
  });
}

/** `host:port` of the metrics endpoint with the port it actually bound (the config may say 0). */
function boundAddr(configured: string, port: number): string {
  const hp = parseMetricsAddr(configured);
  return hp instanceof Error ? configured : formatHostPort(hp.host, port);
}
