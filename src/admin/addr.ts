/**
 * Admin addresses. The server reads `[grpc] addr` by the config's rule (SPEC §2,
 * `isUnixSocketAddr`): a listen address (":9443", "127.0.0.1:9443", "[::1]:9443") is TCP with
 * TLS, anything else a unix socket path; `unix:/path` and `unix:///path` are also accepted.
 * Clients dial `unix:<path>` or `host:port` (a DNS name is fine there).
 */
import { statSync } from "node:fs";
import path from "node:path";
import { isUnixSocketAddr, parseListenAddr } from "../config/validate.ts";
import { formatHostPort, parseHostPort } from "../net/addr.ts";

export type AdminAddr =
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number };

function unixPath(addr: string): string {
  // unix:///abs → /abs, unix:/abs → /abs, unix:rel → rel (resolved against the working directory)
  return path.resolve(addr.slice("unix:".length).replace(/^\/\/(?=\/)/, ""));
}

/** Where the server binds for `[grpc] addr`. `:port` keeps host "" (all addresses). */
export function parseAdminAddr(addr: string): AdminAddr {
  if (addr.startsWith("unix:")) return { kind: "unix", path: unixPath(addr) };
  if (isUnixSocketAddr(addr)) return { kind: "unix", path: path.resolve(addr) };
  const { host, port } = parseListenAddr(addr);
  return { kind: "tcp", host, port };
}

/**
 * The directory of a unix admin socket when it does not exist and the server
 * will not create it (it creates the database's directory with its parents,
 * which may be this one or hold it); null otherwise, and for TCP addresses.
 * `mc-proxy check` reports it, `server` refuses to start on it.
 */
export function missingSocketDir(addr: AdminAddr, databasePath: string): string | null {
  if (addr.kind !== "unix") return null;
  const dir = path.dirname(addr.path);
  const dbDir = path.dirname(databasePath);
  const created = dbDir === dir || dbDir.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
  return created || isDirectory(dir) ? null : dir;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * What a client dials: `unix:<path>` is a socket, `host:port` / `[v6]:port` TCP, any other
 * string a socket path. A wildcard host (":9443", "0.0.0.0", "::") becomes loopback.
 */
export function parseDialAddr(addr: string): AdminAddr {
  if (addr.startsWith("unix:")) return { kind: "unix", path: unixPath(addr) };
  const hp = /[\s/]/.test(addr) ? null : parseHostPort(addr);
  if (!hp) return { kind: "unix", path: path.resolve(addr) };
  const host = hp.host;
  const loopback = host === "" || host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return { kind: "tcp", host: loopback, port: hp.port };
}

/** grpc-js target string: `unix:///abs` or `host:port` (IPv6 bracketed). */
export function grpcTarget(a: AdminAddr): string {
  if (a.kind === "unix") return `unix://${a.path}`;
  return formatHostPort(a.host, a.port);
}

/** The client form of a server address: `unix:<path>` or `host:port`. */
export function dialString(a: AdminAddr): string {
  return a.kind === "unix" ? `unix:${a.path}` : grpcTarget(a);
}
