/**
 * `mc-proxy check -c <config>`: what `nginx -t` and `haproxy -c` give an
 * operator before a restart. It runs every start-up check of `mc-proxy
 * server` that needs no socket — the config with every §2 rule (certificates,
 * CA files and the admin API's TLS files included, by the loader), the GeoIP
 * database, the admin socket path and metrics address, the database — and
 * prints what the server would serve and where the config and the database
 * disagree (SPEC §3).
 *
 * Errors are what would stop `mc-proxy server` from starting; warnings are
 * what it would log and start anyway (a database route whose certificate no
 * longer loads is one: the server starts and refuses that route's
 * handshakes). Nothing on disk is created or changed: the database is read
 * into memory (openDatabaseCopy), and migrations and first-start seeding are
 * applied to that copy only. What it cannot know without binding: whether
 * the ports are free.
 */
import { resolveWorkers } from "./server/workers.ts";
import { accessSync, constants, existsSync, lstatSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { formatDuration } from "./config/duration.ts";
import { loadConfig } from "./config/load.ts";
import type { BackendProtocol, Config, FirewallRuleType, RouteMode } from "./config/types.ts";
import { checkListenAddr, formatProblem, proxyUntrustedWarning, validateRoute } from "./config/validate.ts";
import { missingSocketDir, parseAdminAddr } from "./admin/addr.ts";
import { ConfigError, InvalidArgumentError, StoreError } from "./errors.ts";
import { GeoIp, GeoIpError } from "./firewall/geoip.ts";
import { parseMetricsAddr } from "./obs/metrics-server.ts";
import type { RouteRecord } from "./records.ts";
import { openDatabaseCopy } from "./store/db.ts";
import { diffConfig, sameRoute, seedIfEmpty } from "./store/seed.ts";
import { Store } from "./store/store.ts";
import { loadCertPair } from "./tls/certs.ts";

export interface ServedRoute {
  hostname: string;
  backend: string;
  mode: RouteMode;
  sendProxyProtocol: boolean;
  /** L7 routes only. */
  l7: {
    tlsCert: string;
    tlsKey: string;
    /** The leaf certificate's notAfter (ISO 8601), or null when it does not load. */
    certValidTo: string | null;
    backendTls: boolean;
    backendProtocol: BackendProtocol;
    backendTlsVerify: boolean;
    backendTlsCa: string;
    backendTlsServerName: string;
    policies: { type: string; value: string }[];
  } | null;
}

export interface ServedListener {
  addr: string;
  proxyProtocol: boolean;
  proxyProtocolTrusted: string[];
  maxConnections: number;
  routes: ServedRoute[];
}

export interface CheckReport {
  /** No errors: `mc-proxy server` would start with this config and database. */
  ok: boolean;
  /** The config file (absolute once it has been read). */
  config: string;
  /** One line each, every one naming the config file and a key path. */
  errors: string[];
  warnings: string[];
  /** Null when the config did not load (its path is unknown then). */
  database: {
    path: string;
    exists: boolean;
    /** Migrations the server would apply at start. */
    migrations: number[];
    /** The database is absent or empty: the server would seed it from the config. */
    seeds: boolean;
  } | null;
  /** Where `listeners` and `firewall` come from; null when they could not be worked out. */
  servedFrom: "database" | "config" | null;
  listeners: ServedListener[];
  firewall: {
    blockedIps: string[];
    blockedCidrs: string[];
    blockedCountries: string[];
    geoip: { path: string; type: string } | null;
    rateLimit: number;
    rateWindow: string;
  } | null;
  admin: { addr: string; transport: "unix" | "mtls"; clientCa: string } | null;
  metrics: string | null;
  /** Data-path threads as configured (0 = one per CPU) and what that means on this machine for this process. */
  workers: { configured: number; threads: number } | null;
}

/** Records an error at a config key path (the message names the config file, as the loader's do). */
type ErrorAt = (keyPath: string, detail: string) => void;

/** Runs every check on the config at `configPath` and the files it names. Never throws for what it checks. */
export function checkConfig(configPath: string): CheckReport {
  const report: CheckReport = {
    ok: false, config: configPath, errors: [], warnings: [], database: null, servedFrom: null,
    listeners: [], firewall: null, admin: null, metrics: null, workers: null,
  };
  let config: Config;
  try {
    const loaded = loadConfig(configPath);
    config = loaded.config;
    report.config = config.file;
    report.warnings.push(...loaded.warnings);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    // The loader collects every problem it can find in one pass; each is one line.
    for (const p of e.problems) report.errors.push(new ConfigError(e.file, p.path, p.detail).message);
    return report;
  }
  const error: ErrorAt = (keyPath, detail) => report.errors.push(new ConfigError(config.file, keyPath, detail).message);

  report.workers = { configured: config.proxy.workers, threads: resolveWorkers(config.proxy.workers) };
  const geoip = checkGeoip(config, error);
  checkAdmin(config, report, error);
  if (config.metrics) {
    const m = parseMetricsAddr(config.metrics.addr);
    if (m instanceof InvalidArgumentError) error("metrics.addr", `${m.detail} (the metrics endpoint binds exactly this host, never a wildcard)`);
    else report.metrics = `http://${config.metrics.addr}/metrics`;
  }
  checkDatabase(config, report, geoip, error);
  report.ok = report.errors.length === 0;
  return report;
}

/** The server opens the GeoIP file at start and refuses to start when it is not a country database. */
function checkGeoip(config: Config, error: ErrorAt): { path: string; type: string } | null {
  const path = config.firewall.geoipDb;
  if (!path) return null;
  try {
    return { path, type: GeoIp.open(path).databaseType };
  } catch (e) {
    if (!(e instanceof GeoIpError)) throw e;
    error("firewall.geoip_db", e.message);
    return null;
  }
}

/** The loader checked the TCP admin API's TLS files; a unix socket needs its directory, and no other file in its place. */
function checkAdmin(config: Config, report: CheckReport, error: ErrorAt): void {
  if (!config.grpc) return;
  const addr = parseAdminAddr(config.grpc.addr);
  if (addr.kind === "tcp") {
    report.admin = { addr: config.grpc.addr, transport: "mtls", clientCa: config.grpc.clientCa };
    return;
  }
  report.admin = { addr: addr.path, transport: "unix", clientCa: "" };
  const missing = missingSocketDir(addr, config.database.path);
  if (missing !== null) error("grpc.addr", `directory ${missing} of the admin socket does not exist`);
  try {
    // A socket here is a running server's (or a stale one): the server replaces it. Anything else it refuses.
    if (!lstatSync(addr.path).isSocket()) error("grpc.addr", `${addr.path} exists and is not a socket; the server refuses to replace it`);
  } catch {
    // nothing there: fine
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Opens an in-memory copy of the database and does to it what the server
 * does at start (migrate; seed when empty, else compare with the config),
 * then lists what it would serve from it.
 */
function checkDatabase(
  config: Config,
  report: CheckReport,
  geoip: { path: string; type: string } | null,
  error: ErrorAt,
): void {
  const path = config.database.path;
  let store: Store;
  let exists: boolean;
  let migrations: number[];
  try {
    const copy = openDatabaseCopy(path);
    store = new Store(copy.db);
    exists = copy.exists;
    migrations = exists ? copy.migrated : [];
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    error("database.path", e.message);
    return;
  }
  try {
    if (!exists) checkCreatable(path, report, error);
    const seeds = seedIfEmpty(store, config); // the in-memory copy only
    if (!seeds) report.warnings.push(...diffConfig(store, config));
    report.database = { path, exists, migrations, seeds };
    report.servedFrom = seeds ? "config" : "database";
    listServed(store, config, report);
    const rules = store.listFirewallRules();
    const of = (t: FirewallRuleType) => rules.filter((r) => r.type === t).map((r) => r.value);
    report.firewall = {
      blockedIps: of("ip"),
      blockedCidrs: of("cidr"),
      blockedCountries: of("country"),
      geoip,
      rateLimit: config.firewall.rateLimit,
      rateWindow: formatDuration(config.firewall.rateWindowMs),
    };
    if (report.firewall.blockedCountries.length > 0 && !config.firewall.geoipDb) {
      report.warnings.push(
        `firewall: the database blocks countries ${report.firewall.blockedCountries.join(", ")} but firewall.geoip_db is not set: those rules never match`,
      );
    }
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    error("database.path", e.message);
  } finally {
    store.close();
  }
}

/** The server creates a missing database file and its directories: say so now if it cannot. */
function checkCreatable(path: string, report: CheckReport, error: ErrorAt): void {
  let dir = dirname(path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  if (!isDir(dir)) {
    error("database.path", `cannot create ${path}: ${dir} is not a directory`);
    return;
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    report.warnings.push(`database.path: ${path} does not exist and this user cannot create it in ${dir} (the server's user may)`);
  }
}

/**
 * The listeners and routes as the server loads them from the database. Rows
 * that are not exactly a config route (added with mcproxyctl or sqlite3, or
 * changed since) were never validated by the loader: they are checked as the
 * admin API would, and what is wrong with them is a warning, because the
 * server starts and serves them as they are.
 */
function listServed(store: Store, config: Config, report: CheckReport): void {
  for (const l of store.listListeners()) {
    const at = `listener "${l.addr}"`;
    const addrProblem = checkListenAddr(l.addr);
    if (addrProblem) {
      report.errors.push(`${config.database.path}: ${at} (in the database): ${addrProblem}: the server cannot bind it`);
    }
    const untrusted = proxyUntrustedWarning(l);
    if (untrusted) report.warnings.push(`${at}: ${untrusted}`);
    const tomlRoutes = config.listeners.find((t) => t.addr === l.addr)?.routes ?? [];
    const routes: ServedRoute[] = [];
    for (const r of store.listRoutes(l.id)) {
      const validated = tomlRoutes.some((t) => sameRoute(t, r));
      if (!validated) {
        const check = validateRoute(r, "");
        const where = `route "${r.hostname}" on ${at} (in the database)`;
        for (const p of check.problems) {
          const cert = p.path === "tls_cert" || p.path === "tls_key";
          report.warnings.push(`${where}: ${formatProblem(p)}${cert ? " (the server starts, but refuses this route's TLS handshakes)" : ""}`);
        }
        for (const w of check.warnings) report.warnings.push(`${where}: ${formatProblem(w)}`);
      }
      routes.push(servedRoute(r));
    }
    report.listeners.push({
      addr: l.addr,
      proxyProtocol: l.proxyProtocol,
      proxyProtocolTrusted: l.proxyProtocolTrusted,
      maxConnections: l.maxConnections,
      routes,
    });
  }
}

function servedRoute(r: RouteRecord): ServedRoute {
  let l7: ServedRoute["l7"] = null;
  if (r.mode === "l7") {
    let certValidTo: string | null = null;
    try {
      certValidTo = new Date(loadCertPair(r.tlsCert, r.tlsKey).leaf.validTo).toISOString();
    } catch {
      // reported above (or by the loader)
    }
    l7 = {
      tlsCert: r.tlsCert,
      tlsKey: r.tlsKey,
      certValidTo,
      backendTls: r.backendTls,
      backendProtocol: r.backendProtocol,
      backendTlsVerify: r.backendTlsVerify,
      backendTlsCa: r.backendTlsCa,
      backendTlsServerName: r.backendTlsServerName,
      policies: r.l7Policies.map((p) => ({ type: p.type, value: p.value })),
    };
  }
  return { hostname: r.hostname, backend: r.backend, mode: r.mode, sendProxyProtocol: r.sendProxyProtocol, l7 };
}

// ---- output ----

/** The report as an operator reads it: the summary for stdout, errors and warnings for stderr. */
export function formatReport(r: CheckReport): { stdout: string; stderr: string } {
  const out: string[] = [];
  const err: string[] = [];
  for (const e of r.errors) err.push(`error: ${e}`);
  for (const w of r.warnings) err.push(`warning: ${w}`);
  if (r.database) {
    out.push(`config ${r.config}`);
    const d = r.database;
    const pending = d.migrations.length ? `; the server will apply schema migration(s) ${d.migrations.join(", ")} at start` : "";
    if (!d.exists) out.push(`database ${d.path}: does not exist; the server will create it and seed it from the config`);
    else if (d.seeds) out.push(`database ${d.path}: empty; the server will seed it from the config${pending}`);
    else out.push(`database ${d.path}: the server serves what it holds (the config only seeded it)${pending}`);
  }
  if (r.servedFrom) {
    out.push(`listeners (from the ${r.servedFrom}):`);
    if (r.listeners.length === 0) out.push("  none: the server would accept no connections");
    for (const l of r.listeners) {
      const n = l.routes.length;
      const pp = l.proxyProtocol ? `proxy_protocol on (trusted: ${l.proxyProtocolTrusted.join(", ") || "any peer"})` : "proxy_protocol off";
      out.push(`  ${l.addr}  ${n} route${n === 1 ? "" : "s"}, ${pp}, max_connections ${l.maxConnections || "unlimited"}`);
      for (const route of l.routes) out.push(`    ${formatRoute(route)}`);
    }
  }
  if (r.firewall) out.push(`firewall: ${formatFirewall(r.firewall)}`);
  if (r.database) {
    const a = r.admin;
    out.push(`admin API: ${!a ? "none" : a.transport === "unix" ? `unix socket ${a.addr}` : `${a.addr} (TLS 1.3, client certificates from ${a.clientCa})`}`);
    out.push(`metrics: ${r.metrics ?? "none"}`);
    if (r.workers) {
      const w = r.workers;
      out.push(`data path: ${w.threads} thread${w.threads === 1 ? "" : "s"}${w.configured === 0 ? " (workers = 0: one per CPU this process may use)" : ""}`);
    }
  }
  const nw = r.warnings.length;
  const warned = nw ? `, ${nw} warning${nw === 1 ? "" : "s"}` : "";
  if (r.ok) out.push(`configuration OK${warned}`);
  else err.push(`configuration invalid: ${r.errors.length} error${r.errors.length === 1 ? "" : "s"}${warned}`);
  const text = (ls: string[]) => (ls.length ? ls.join("\n") + "\n" : "");
  return { stdout: text(out), stderr: text(err) };
}

function formatRoute(r: ServedRoute): string {
  const extra: string[] = [];
  if (r.l7) {
    const backend = r.l7.backendTls
      ? `${r.l7.backendProtocol} over TLS${r.l7.backendTlsVerify ? `, verified against ${r.l7.backendTlsCa || "the system roots"}` : " (not verified)"}` +
        (r.l7.backendTlsServerName ? ` as ${r.l7.backendTlsServerName}` : "")
      : `${r.l7.backendProtocol} in cleartext`;
    extra.push(`backend ${backend}`);
    extra.push(`cert ${r.l7.tlsCert} ${r.l7.certValidTo ? `valid until ${r.l7.certValidTo}` : "DOES NOT LOAD"}`);
    if (r.l7.policies.length) extra.push(`policies ${r.l7.policies.map((p) => `${p.type} ${JSON.stringify(p.value)}`).join(", ")}`);
  }
  if (r.sendProxyProtocol) extra.push("PROXY v2 to the backend");
  return `${r.hostname} -> ${r.backend}  ${r.mode}${extra.length ? `  (${extra.join("; ")})` : ""}`;
}

function formatFirewall(f: NonNullable<CheckReport["firewall"]>): string {
  const parts: string[] = [];
  if (f.blockedIps.length) parts.push(`blocked IPs ${f.blockedIps.join(", ")}`);
  if (f.blockedCidrs.length) parts.push(`blocked CIDRs ${f.blockedCidrs.join(", ")}`);
  if (f.blockedCountries.length) parts.push(`blocked countries ${f.blockedCountries.join(", ")}`);
  if (parts.length === 0) parts.push("no blocking rules");
  parts.push(f.geoip ? `GeoIP ${f.geoip.path} (${f.geoip.type})` : "no GeoIP database");
  parts.push(f.rateLimit > 0 ? `rate limit ${f.rateLimit} new connections per client per ${f.rateWindow}` : "no rate limit");
  return parts.join("; ");
}

/** The `check` command: prints the report (or one JSON object with `json`); returns the exit code, 0 or 2. */
export function runCheck(configPath: string, opts: { json?: boolean } = {}): number {
  const report = checkConfig(configPath);
  if (opts.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  } else {
    const { stdout, stderr } = formatReport(report);
    process.stdout.write(stdout);
    process.stderr.write(stderr);
  }
  return report.ok ? 0 : 2;
}
