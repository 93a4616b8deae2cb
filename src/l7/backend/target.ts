/**
 * Where and how to reach a route's backend, derived once per RouteRecord
 * object (an admin change replaces the record, so the cache follows it).
 */
import fs from "node:fs";
import net from "node:net";
import type { BackendProtocol } from "../../config/types.ts";
import type { RouteRecord } from "../../state/model.ts";

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

/** Splits "host:port" / "[v6]:port". Throws on a malformed address (validated upstream). */
export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  if (i <= 0) throw new Error(`backend address without port: ${addr}`);
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad backend port: ${addr}`);
  return { host, port };
}

/** The BackendTarget of `record`, computed on first use and cached per record object. */
export function targetFor(record: RouteRecord): BackendTarget {
  let t = cache.get(record);
  if (t) return t;
  const { host, port } = splitHostPort(record.backend);
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
