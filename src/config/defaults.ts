/**
 * Every optional configuration key's default, in one place, in the shape of
 * the validated Config (camelCase, durations in ms). The loader fills these;
 * the store and the admin API use ROUTE_DEFAULTS / LISTENER_DEFAULTS for
 * fields a caller left out.
 */
import type { FirewallConfig, ListenerConfig, LogLevel, ProxyConfig, RouteConfig } from "./types.ts";

export const PROXY_DEFAULTS: Readonly<ProxyConfig> = Object.freeze({
  connectTimeoutMs: 5_000,
  idleTimeoutMs: 300_000,
  shutdownTimeoutMs: 30_000,
  helloTimeoutMs: 10_000,
  helloMaxBytes: 65_536,
  backendTimeoutMs: 60_000,
  l7MinTls: "1.3",
  workers: 0,
});

export const FIREWALL_DEFAULTS: Readonly<FirewallConfig> = Object.freeze({
  geoipDb: "",
  blockedIps: [],
  blockedCidrs: [],
  blockedCountries: [],
  rateLimit: 0, // 0 = off
  rateWindowMs: 10_000,
});

export const LISTENER_DEFAULTS: Readonly<Omit<ListenerConfig, "addr" | "routes">> = Object.freeze({
  proxyProtocol: false,
  proxyProtocolTrusted: [], // empty = any peer may send a PROXY header
  maxConnections: 0, // 0 = unlimited
});

export const ROUTE_DEFAULTS: Readonly<Omit<RouteConfig, "hostname" | "backend">> = Object.freeze({
  mode: "l4",
  tlsCert: "",
  tlsKey: "",
  backendTls: false,
  backendProtocol: "auto",
  backendTlsVerify: false,
  backendTlsCa: "", // empty = system roots
  backendTlsServerName: "", // empty = the route hostname
  sendProxyProtocol: false,
  l7Policies: [],
});

export const GRPC_DEFAULTS = Object.freeze({ tlsCert: "", tlsKey: "", clientCa: "" });

export const LOG_DEFAULTS: Readonly<{ level: LogLevel }> = Object.freeze({ level: "info" });

/** All defaults, grouped like the TOML tables. */
export const DEFAULTS = Object.freeze({
  proxy: PROXY_DEFAULTS,
  firewall: FIREWALL_DEFAULTS,
  listener: LISTENER_DEFAULTS,
  route: ROUTE_DEFAULTS,
  grpc: GRPC_DEFAULTS,
  log: LOG_DEFAULTS,
});

/** Bounds checked by the loader (hello_max_bytes: 1 KiB .. 1 MiB). */
export const HELLO_MAX_BYTES_MIN = 1024;
export const HELLO_MAX_BYTES_MAX = 1024 * 1024;
/** `[proxy] workers` upper bound (SPEC §2). */
export const WORKERS_MAX = 256;
