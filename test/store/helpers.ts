/** Shared helpers for store/state tests: temp dirs, a Config builder, route inputs. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULTS } from "../../src/config/defaults.ts";
import type { Config, ListenerConfig, RouteConfig } from "../../src/config/types.ts";
import type { RouteInput } from "../../src/records.ts";

const dirs: string[] = [];

/** A fresh temp dir, removed by cleanupTempDirs(). */
export function tempDir(prefix = "mcp-store-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function route(hostname: string, backend: string, over: Partial<RouteConfig> = {}): RouteConfig {
  return { ...DEFAULTS.route, l7Policies: [], hostname, backend, ...over };
}

export function listener(addr: string, routes: RouteConfig[], over: Partial<ListenerConfig> = {}): ListenerConfig {
  return { ...DEFAULTS.listener, proxyProtocolTrusted: [], addr, routes, ...over };
}

export function config(dbPath: string, listeners: ListenerConfig[], fw: Partial<Config["firewall"]> = {}): Config {
  return {
    file: "",
    database: { path: dbPath },
    listeners,
    grpc: null,
    firewall: { ...DEFAULTS.firewall, blockedIps: [], blockedCidrs: [], blockedCountries: [], ...fw },
    proxy: { ...DEFAULTS.proxy },
    log: { level: "info" },
    metrics: null,
  };
}

/** An L4 route input for Store/State calls. */
export function l4(hostname: string, backend: string, over: Partial<RouteInput> = {}): RouteInput {
  const { l7Policies: _ignored, ...rest } = DEFAULTS.route;
  return { ...rest, hostname, backend, ...over };
}
