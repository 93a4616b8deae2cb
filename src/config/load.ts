/**
 * TOML → validated Config (SPEC §2). Reads every key through a small typed
 * reader that remembers which keys it consumed, so every unknown key is an
 * error with its key path. All problems are collected, then thrown as ONE
 * ConfigError naming the first problem's key path and listing the rest
 * (`problems` holds each one, for `mc-proxy check`).
 *
 * Relative paths (database.path, tls_cert, tls_key, backend_tls_ca,
 * grpc addr when a unix socket, grpc tls_cert/tls_key/client_ca,
 * firewall.geoip_db) are resolved against the config file's directory, so a
 * config works the same whatever the process's working directory is.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { loadCertPair, CertError } from "../tls/certs.ts";
import { parseConfigDuration } from "./duration.ts";
import {
  FIREWALL_DEFAULTS, GRPC_DEFAULTS, HELLO_MAX_BYTES_MAX, HELLO_MAX_BYTES_MIN, LISTENER_DEFAULTS, LOG_DEFAULTS,
  PROXY_DEFAULTS, ROUTE_DEFAULTS, WORKERS_MAX,
} from "./defaults.ts";
import type {
  BackendProtocol, Config, FirewallConfig, GrpcConfig, ListenerConfig, LogLevel, MinTls, PolicyConfig, PolicyType,
  ProxyConfig, RouteConfig, RouteMode,
} from "./types.ts";
import {
  checkCaFile, checkCidr, checkCountry, checkIp, checkListenAddr, checkReadableFile, formatProblem, isUnixSocketAddr,
  normalizeHostname, parseListenAddr, validateRoute, type Problem,
} from "./validate.ts";

export interface LoadedConfig {
  config: Config;
  /** Non-fatal findings as "key.path: detail" lines; the caller logs them. */
  warnings: string[];
}

/** Read and validate the config file at `path`. Throws ConfigError (unreadable, TOML syntax with line, or §2 rules). */
export function loadConfig(path: string): LoadedConfig {
  // `-c` given without a value: resolve("") would name the working directory (EISDIR).
  if (path.trim() === "") throw new ConfigError("", "", "no config file given (-c/--config needs a path)");
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(file, "", `cannot read config file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return parseConfig(text, file);
}

/**
 * Validate TOML `text` as if read from `file` (relative paths resolve against
 * its directory; "" = the working directory). Throws ConfigError.
 */
export function parseConfig(text: string, file: string): LoadedConfig {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const first = e.message.replace(/^Invalid TOML document: /, "").split("\n")[0];
      throw new ConfigError(file, "", `TOML syntax error at line ${e.line}, column ${e.column}: ${first}`);
    }
    throw new ConfigError(file, "", `TOML parse failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const ctx: Ctx = { baseDir: file ? dirname(resolve(file)) : process.cwd(), problems: [], warnings: [] };
  const config = readConfig(new Table(doc, "", ctx), ctx, file ? resolve(file) : "");
  if (ctx.problems.length) {
    const [first, ...rest] = ctx.problems;
    const more = rest.length ? ` (and ${rest.length} more: ${rest.map(formatProblem).join("; ")})` : "";
    throw new ConfigError(file, first.path, first.detail + more, ctx.problems);
  }
  return { config, warnings: ctx.warnings.map(formatProblem) };
}

interface Ctx {
  baseDir: string;
  problems: Problem[];
  warnings: Problem[];
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (isObj(v)) return "a table";
  if (v instanceof Date) return "a date";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a float";
  return `a ${typeof v}`;
}

/** A TOML table being read: typed getters that fill defaults and record consumed keys. */
class Table {
  private readonly used = new Set<string>();
  constructor(
    private readonly obj: Obj,
    readonly path: string,
    private readonly ctx: Ctx,
  ) {}

  at(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }
  has(key: string): boolean {
    return key in this.obj;
  }
  problem(key: string, detail: string): void {
    this.ctx.problems.push({ path: key === "" ? this.path : this.at(key), detail });
  }
  warn(key: string, detail: string): void {
    this.ctx.warnings.push({ path: this.at(key), detail });
  }

  /** The raw value if present with the right type, else undefined (wrong type is reported). */
  private get<T>(key: string, ok: (v: unknown) => v is T, want: string): T | undefined {
    this.used.add(key);
    if (!(key in this.obj)) return undefined;
    const v = this.obj[key];
    if (ok(v)) return v;
    this.problem(key, `expected ${want}, got ${typeName(v)}`);
    return undefined;
  }
  str(key: string, def: string): string {
    return this.get(key, (v): v is string => typeof v === "string", "a string") ?? def;
  }
  bool(key: string, def: boolean): boolean {
    return this.get(key, (v): v is boolean => typeof v === "boolean", "a boolean (true/false)") ?? def;
  }
  int(key: string, def: number): number {
    return this.get(key, (v): v is number => typeof v === "number" && Number.isSafeInteger(v), "an integer") ?? def;
  }
  strArr(key: string, def: readonly string[]): string[] {
    const a = this.get(key, (v): v is unknown[] => Array.isArray(v), "an array of strings");
    if (!a) return [...def];
    const out: string[] = [];
    a.forEach((v, i) => {
      if (typeof v === "string") out.push(v);
      else this.problem(`${key}[${i}]`, `expected a string, got ${typeName(v)}`);
    });
    return out;
  }
  /** A Go-style duration string → ms; > 0 and ≤ 24 h (parseConfigDuration). */
  duration(key: string, defMs: number): number {
    const s = this.get(key, (v): v is string => typeof v === "string", 'a duration string like "5s"');
    if (s === undefined) return defMs;
    try {
      return parseConfigDuration(s);
    } catch (e) {
      this.problem(key, (e as Error).message);
    }
    return defMs;
  }
  /** A string from `allowed`. */
  oneOf<T extends string>(key: string, allowed: readonly T[], def: T): T {
    const s = this.get(key, (v): v is string => typeof v === "string", "a string");
    if (s === undefined) return def;
    if ((allowed as readonly string[]).includes(s)) return s as T;
    this.problem(key, `"${s}" is not one of ${allowed.map((a) => `"${a}"`).join(", ")}`);
    return def;
  }
  /** A sub-table, or null when absent. */
  table(key: string): Table | null {
    const v = this.get(key, isObj, "a table");
    return v ? new Table(v, this.at(key), this.ctx) : null;
  }
  /** An array of tables ([[key]]); empty when absent. */
  tables(key: string): Table[] {
    const a = this.get(key, (v): v is unknown[] => Array.isArray(v), "an array of tables ([[" + key + "]])");
    if (!a) return [];
    const out: Table[] = [];
    a.forEach((v, i) => {
      if (isObj(v)) out.push(new Table(v, `${this.at(key)}[${i}]`, this.ctx));
      else this.problem(`${key}[${i}]`, `expected a table, got ${typeName(v)}`);
    });
    return out;
  }
  /** Report every key that no getter asked for. Call after reading the table. */
  done(): void {
    for (const k of Object.keys(this.obj)) {
      if (!this.used.has(k)) this.problem(k, "unknown key");
    }
  }
}

function absPath(ctx: Ctx, p: string): string {
  return p === "" || isAbsolute(p) ? p : resolve(ctx.baseDir, p);
}

function readConfig(root: Table, ctx: Ctx, file: string): Config {
  const database = readDatabase(root, ctx);
  const listeners = root.tables("listeners").map((t) => readListener(t, ctx));
  checkListenerUniqueness(listeners, root);
  const grpcT = root.table("grpc");
  const grpc = grpcT ? readGrpc(grpcT, ctx) : null;
  const fwT = root.table("firewall");
  const firewall = fwT ? readFirewall(fwT, ctx) : { ...FIREWALL_DEFAULTS, blockedIps: [], blockedCidrs: [], blockedCountries: [] };
  const pT = root.table("proxy");
  const proxy = pT ? readProxy(pT) : { ...PROXY_DEFAULTS };
  const logT = root.table("log");
  let level: LogLevel = LOG_DEFAULTS.level;
  if (logT) {
    level = logT.oneOf<LogLevel>("level", ["debug", "info", "warn", "error"], LOG_DEFAULTS.level);
    logT.done();
  }
  const mT = root.table("metrics");
  let metrics: Config["metrics"] = null;
  if (mT) {
    if (!mT.has("addr")) mT.problem("addr", 'required when [metrics] is present (e.g. "127.0.0.1:9091")');
    const addr = mT.str("addr", "");
    if (mT.has("addr")) {
      const e = checkListenAddr(addr);
      if (e) mT.problem("addr", e);
    }
    mT.done();
    metrics = { addr };
  }
  root.done();
  return { file, database, listeners, grpc, firewall, proxy, log: { level }, metrics };
}

function readDatabase(root: Table, ctx: Ctx): { path: string } {
  const t = root.table("database");
  if (!t) {
    root.problem("database", "missing [database] table (database.path is required)");
    return { path: "" };
  }
  const p = t.str("path", "");
  if (p === "") t.problem("path", "required (path of the SQLite database file)");
  t.done();
  return { path: absPath(ctx, p) };
}

function readListener(t: Table, ctx: Ctx): ListenerConfig {
  if (!t.has("addr")) t.problem("addr", 'required (e.g. ":443")');
  const addr = t.str("addr", "");
  if (t.has("addr")) {
    const e = checkListenAddr(addr);
    if (e) t.problem("addr", e);
  }
  const proxyProtocol = t.bool("proxy_protocol", LISTENER_DEFAULTS.proxyProtocol);
  // A bare IP is accepted and stored as a host CIDR so matchers only see CIDRs.
  const proxyProtocolTrusted = t.strArr("proxy_protocol_trusted", LISTENER_DEFAULTS.proxyProtocolTrusted).map((s, i) => {
    if (checkIp(s) === null) return s.includes(":") ? `${s}/128` : `${s}/32`;
    const e = checkCidr(s);
    if (e) t.problem(`proxy_protocol_trusted[${i}]`, `${e} (want a CIDR or IP address)`);
    return s;
  });
  if (proxyProtocolTrusted.length && !proxyProtocol) {
    t.warn("proxy_protocol_trusted", "has no effect while proxy_protocol = false");
  }
  const maxConnections = t.int("max_connections", LISTENER_DEFAULTS.maxConnections);
  if (maxConnections < 0) t.problem("max_connections", "must be >= 0 (0 = unlimited)");
  const routes = t.tables("routes").map((r) => readRoute(r, ctx));
  // Hostnames are matched after normalisation, so uniqueness is checked after it too.
  const firstAt = new Map<string, number>();
  routes.forEach((r, i) => {
    if (!r.hostname) return;
    const prev = firstAt.get(r.hostname);
    if (prev !== undefined) t.problem(`routes[${i}].hostname`, `duplicate hostname "${r.hostname}" (also routes[${prev}])`);
    else firstAt.set(r.hostname, i);
  });
  t.done();
  return { addr, proxyProtocol, proxyProtocolTrusted, maxConnections, routes };
}

function checkListenerUniqueness(listeners: ListenerConfig[], root: Table): void {
  const seen = new Map<string, number>();
  listeners.forEach((l, i) => {
    if (checkListenAddr(l.addr) !== null) return;
    const { host, port } = parseListenAddr(l.addr);
    // Same string, or the same host and port written differently ("[::1]:443" vs "[0::1]:443" is not caught; fine).
    const key = port === 0 ? `${l.addr}#${i}` : `${host.toLowerCase()}|${port}`;
    const prev = seen.get(key);
    if (prev !== undefined) root.problem(`listeners[${i}].addr`, `duplicate listener "${l.addr}" (same address as listeners[${prev}])`);
    else seen.set(key, i);
  });
}

function readRoute(t: Table, ctx: Ctx): RouteConfig {
  for (const k of ["hostname", "backend"]) if (!t.has(k)) t.problem(k, "required");
  const raw = {
    hostname: t.str("hostname", ""),
    backend: t.str("backend", ""),
    // Enums are read as plain strings here; validateRoute reports bad values once.
    mode: t.str("mode", ROUTE_DEFAULTS.mode),
    tlsCert: absPath(ctx, t.str("tls_cert", ROUTE_DEFAULTS.tlsCert)),
    tlsKey: absPath(ctx, t.str("tls_key", ROUTE_DEFAULTS.tlsKey)),
    backendTls: t.bool("backend_tls", ROUTE_DEFAULTS.backendTls),
    backendProtocol: t.str("backend_protocol", ROUTE_DEFAULTS.backendProtocol),
    backendTlsVerify: t.bool("backend_tls_verify", ROUTE_DEFAULTS.backendTlsVerify),
    backendTlsCa: absPath(ctx, t.str("backend_tls_ca", ROUTE_DEFAULTS.backendTlsCa)),
    backendTlsServerName: t.str("backend_tls_server_name", ROUTE_DEFAULTS.backendTlsServerName),
    sendProxyProtocol: t.bool("send_proxy_protocol", ROUTE_DEFAULTS.sendProxyProtocol),
    l7Policies: t.tables("l7_policies").map((p): PolicyConfig => {
      for (const k of ["type", "value"]) if (!p.has(k)) p.problem(k, "required");
      const type = p.str("type", "") as PolicyType; // checked by validateRoute
      const value = p.str("value", "");
      p.done();
      return { type, value };
    }),
  };
  t.done();
  const check = validateRoute(raw, t.path);
  // A key already reported (missing, wrong type) is not reported again as "empty"/"invalid".
  const reported = new Set(ctx.problems.map((p) => p.path));
  for (const p of check.problems) if (!reported.has(p.path)) ctx.problems.push(p);
  ctx.warnings.push(...check.warnings);
  return {
    ...raw,
    hostname: normalizeHostname(raw.hostname),
    mode: raw.mode as RouteMode,
    backendProtocol: raw.backendProtocol as BackendProtocol,
    backendTlsServerName: raw.backendTlsServerName.toLowerCase(),
  };
}

function readGrpc(t: Table, ctx: Ctx): GrpcConfig {
  if (!t.has("addr")) t.problem("addr", 'required when [grpc] is present (unix socket path or host:port)');
  const rawAddr = t.str("addr", "");
  const unix = isUnixSocketAddr(rawAddr);
  const addr = unix ? absPath(ctx, rawAddr) : rawAddr;
  const tlsCert = absPath(ctx, t.str("tls_cert", GRPC_DEFAULTS.tlsCert));
  const tlsKey = absPath(ctx, t.str("tls_key", GRPC_DEFAULTS.tlsKey));
  const clientCa = absPath(ctx, t.str("client_ca", GRPC_DEFAULTS.clientCa));
  if (rawAddr !== "" && unix) {
    // Silently ignoring TLS settings would let an operator believe mTLS is on.
    if (tlsCert) t.problem("tls_cert", "only for a TCP addr (host:port); a unix socket is protected by file permissions");
    if (tlsKey) t.problem("tls_key", "only for a TCP addr (host:port)");
    if (clientCa) t.problem("client_ca", "only for a TCP addr (host:port)");
  } else if (rawAddr !== "") {
    if (!tlsCert || !tlsKey) {
      t.problem(tlsCert ? "tls_key" : "tls_cert", `a TCP addr (${rawAddr}) requires tls_cert and tls_key: the admin API is never plaintext on a network`);
    } else {
      try {
        const pair = loadCertPair(tlsCert, tlsKey);
        for (const w of pair.warnings) t.warn("tls_cert", w);
      } catch (e) {
        if (!(e instanceof CertError)) throw e;
        t.problem(e.which === "cert" ? "tls_cert" : "tls_key", e.message);
      }
    }
    if (!clientCa) {
      t.problem("client_ca", `a TCP addr (${rawAddr}) requires client_ca: the admin API is never anonymous on a network (mutual TLS)`);
    } else {
      const e = checkCaFile(clientCa);
      if (e) t.problem("client_ca", e);
    }
  }
  t.done();
  return { addr, tlsCert, tlsKey, clientCa };
}

function readFirewall(t: Table, ctx: Ctx): FirewallConfig {
  const geoipDb = absPath(ctx, t.str("geoip_db", FIREWALL_DEFAULTS.geoipDb));
  if (geoipDb) {
    const e = checkReadableFile(geoipDb);
    if (e) t.problem("geoip_db", e);
  }
  const list = (key: string, check: (s: string) => string | null, norm: (s: string) => string) => {
    const out: string[] = [];
    t.strArr(key, []).forEach((s, i) => {
      const e = check(s);
      if (e) return t.problem(`${key}[${i}]`, e);
      const v = norm(s);
      // The database keeps (type, value) unique; drop repeats rather than fail the seed.
      if (out.includes(v)) t.warn(`${key}[${i}]`, `duplicate "${s}" ignored`);
      else out.push(v);
    });
    return out;
  };
  const blockedIps = list("blocked_ips", checkIp, (s) => s.toLowerCase());
  const blockedCidrs = list("blocked_cidrs", checkCidr, (s) => s.toLowerCase());
  const blockedCountries = list("blocked_countries", checkCountry, (s) => s.toUpperCase());
  if (blockedCountries.length && !geoipDb) {
    t.problem("blocked_countries", "needs firewall.geoip_db (a GeoLite2/GeoIP2 Country database) to look countries up");
  }
  const rateLimit = t.int("rate_limit", FIREWALL_DEFAULTS.rateLimit);
  if (rateLimit < 0) t.problem("rate_limit", "must be >= 0 (0 = off)");
  const rateWindowMs = t.duration("rate_window", FIREWALL_DEFAULTS.rateWindowMs);
  t.done();
  return { geoipDb, blockedIps, blockedCidrs, blockedCountries, rateLimit, rateWindowMs };
}

function readProxy(t: Table): ProxyConfig {
  const d = PROXY_DEFAULTS;
  const p: ProxyConfig = {
    connectTimeoutMs: t.duration("connect_timeout", d.connectTimeoutMs),
    idleTimeoutMs: t.duration("idle_timeout", d.idleTimeoutMs),
    shutdownTimeoutMs: t.duration("shutdown_timeout", d.shutdownTimeoutMs),
    helloTimeoutMs: t.duration("hello_timeout", d.helloTimeoutMs),
    helloMaxBytes: t.int("hello_max_bytes", d.helloMaxBytes),
    backendTimeoutMs: t.duration("backend_timeout", d.backendTimeoutMs),
    l7MinTls: t.oneOf<MinTls>("l7_min_tls", ["1.2", "1.3"], d.l7MinTls),
    workers: t.int("workers", d.workers),
  };
  if (p.workers < 0 || p.workers > WORKERS_MAX) t.problem("workers", `${p.workers} out of range 0-${WORKERS_MAX} (0 = one per usable CPU)`);
  if (p.helloMaxBytes < HELLO_MAX_BYTES_MIN || p.helloMaxBytes > HELLO_MAX_BYTES_MAX) {
    t.problem("hello_max_bytes", `${p.helloMaxBytes} out of range ${HELLO_MAX_BYTES_MIN}-${HELLO_MAX_BYTES_MAX} (1 KiB-1 MiB)`);
  }
  t.done();
  return p;
}
