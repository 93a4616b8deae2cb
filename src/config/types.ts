/**
 * The validated configuration, as produced by `loadConfig`. Every optional key
 * has been filled from `DEFAULTS` (src/config/defaults.ts); durations are
 * milliseconds. Field names are the TOML keys in camelCase.
 */

export type RouteMode = "l4" | "l7";
export type BackendProtocol = "auto" | "h2" | "http1";
export type PolicyType = "block_user_agent" | "require_header";
export type FirewallRuleType = "ip" | "cidr" | "country";
export type LogLevel = "debug" | "info" | "warn" | "error";
export type MinTls = "1.2" | "1.3";

export interface PolicyConfig {
  type: PolicyType;
  value: string;
}

/** A route's own settings, as configured and as stored (records.ts adds ids and stored policies). */
export interface RouteSettings {
  /** Lower-cased, no trailing dot. */
  hostname: string;
  /** host:port */
  backend: string;
  mode: RouteMode;
  tlsCert: string;
  tlsKey: string;
  backendTls: boolean;
  backendProtocol: BackendProtocol;
  backendTlsVerify: boolean;
  backendTlsCa: string;
  backendTlsServerName: string;
  sendProxyProtocol: boolean;
}

export interface RouteConfig extends RouteSettings {
  l7Policies: PolicyConfig[];
}

export interface ListenerConfig {
  /** Exactly as written in the TOML (":443", "127.0.0.1:8443", "[::1]:443"). */
  addr: string;
  proxyProtocol: boolean;
  proxyProtocolTrusted: string[];
  maxConnections: number;
  routes: RouteConfig[];
}

export interface GrpcConfig {
  /** Unix socket path, or host:port (TCP requires tlsCert/tlsKey). */
  addr: string;
  tlsCert: string;
  tlsKey: string;
  clientCa: string;
}

export interface FirewallConfig {
  geoipDb: string;
  blockedIps: string[];
  blockedCidrs: string[];
  blockedCountries: string[];
  rateLimit: number;
  rateWindowMs: number;
}

export interface ProxyConfig {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  shutdownTimeoutMs: number;
  helloTimeoutMs: number;
  helloMaxBytes: number;
  backendTimeoutMs: number;
  l7MinTls: MinTls;
  /** Data-path threads; 0 = one per CPU the process may run on (resolved at start, see src/server/workers.ts). */
  workers: number;
}

export interface Config {
  /** Absolute path of the file this was loaded from ("" when built in code). */
  file: string;
  database: { path: string };
  listeners: ListenerConfig[];
  grpc: GrpcConfig | null;
  firewall: FirewallConfig;
  proxy: ProxyConfig;
  log: { level: LogLevel };
  metrics: { addr: string } | null;
}
