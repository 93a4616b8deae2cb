/**
 * Where and how to reach a route's backend, derived once per RouteEntry
 * object (an admin change or a SIGHUP replaces the entry, so the cache
 * follows it). The backend CA comes from the entry (read with the route), not
 * from the file at request time.
 */
import net from "node:net";
import type { BackendProtocol } from "../../config/types.ts";
import { parseHostPort } from "../../net/addr.ts";
import type { RouteEntry } from "../../state/state.ts";
import type { DialHint } from "../h1/dial.ts";

export interface BackendTls {
  /** SNI sent and name verified: backend_tls_server_name, else the route hostname. Empty for IP names. */
  servername: string;
  rejectUnauthorized: boolean;
  /** PEM bundle from backend_tls_ca; undefined = system roots. */
  ca: string | undefined;
}

export interface BackendTarget {
  /** Identifies connections that may be shared: same address, TLS settings and protocol. */
  key: string;
  /** Address identity for the auto-probe cache (protocol-independent). */
  addrKey: string;
  host: string;
  port: number;
  tls: BackendTls | null;
  protocol: BackendProtocol;
  /** Host/:authority when the client sent none. */
  defaultAuthority: string;
  /** Whether the address answered since its last abandoned dial: fast dials allowed (src/l7/h1/dial.ts). */
  dial: DialHint;
}

const cache = new WeakMap<RouteEntry, BackendTarget>();

/**
 * The BackendTarget of a route, computed on first use and cached per entry.
 * Throws (a route-level failure: 502, logged) when the route verifies with a
 * backend_tls_ca that could not be read when the route was loaded.
 */
export function targetFor(entry: RouteEntry): BackendTarget {
  let t = cache.get(entry);
  if (t) return t;
  const record = entry.record;
  const hp = parseHostPort(record.backend, 1);
  if (!hp || hp.host === "") throw new Error(`bad backend address: ${record.backend}`); // validated when configured
  const { host, port } = hp;
  let tls: BackendTls | null = null;
  if (record.backendTls) {
    const name = record.backendTlsServerName || record.hostname;
    tls = {
      servername: net.isIP(name) ? "" : name,
      rejectUnauthorized: record.backendTlsVerify,
      ca: record.backendTlsVerify && record.backendTlsCa ? caOf(entry) : undefined,
    };
  }
  const addrKey = `${host}|${port}|${tls ? "tls" : "clear"}`;
  t = {
    key: `${addrKey}|${record.backendProtocol}|${tls ? `${tls.servername}|${tls.rejectUnauthorized}|${record.backendTlsCa}` : ""}`,
    addrKey,
    host,
    port,
    tls,
    protocol: record.backendProtocol,
    defaultAuthority: record.hostname,
    dial: { answered: false },
  };
  cache.set(entry, t);
  return t;
}

function caOf(entry: RouteEntry): string {
  if (entry.backendCa === null) {
    throw new Error(`backend_tls_ca ${entry.record.backendTlsCa}: could not be read when the route was loaded (fix the file, then SIGHUP)`);
  }
  return entry.backendCa;
}
