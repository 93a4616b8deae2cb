/**
 * Where and how to reach a route's backend, derived once per RouteRecord
 * object (an admin change replaces the record, so the cache follows it).
 */
import fs from "node:fs";
import net from "node:net";
import type { BackendProtocol } from "../../config/types.ts";
import { parseHostPort } from "../../net/addr.ts";
import type { RouteRecord } from "../../records.ts";

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
}

const cache = new WeakMap<RouteRecord, BackendTarget>();

/** The BackendTarget of `record`, computed on first use and cached per record object. */
export function targetFor(record: RouteRecord): BackendTarget {
  let t = cache.get(record);
  if (t) return t;
  const hp = parseHostPort(record.backend, 1);
  if (!hp || hp.host === "") throw new Error(`bad backend address: ${record.backend}`); // validated when configured
  const { host, port } = hp;
  let tls: BackendTls | null = null;
  if (record.backendTls) {
    const name = record.backendTlsServerName || record.hostname;
    tls = {
      servername: net.isIP(name) ? "" : name,
      rejectUnauthorized: record.backendTlsVerify,
      ca: record.backendTlsVerify && record.backendTlsCa ? fs.readFileSync(record.backendTlsCa, "utf8") : undefined,
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
  };
  cache.set(record, t);
  return t;
}
