/**
 * GetStatus output shared by `mcproxyctl status` and `mc-proxy status -c <config>`, and the
 * latter's whole implementation (`runStatus`). For a TCP admin address `mc-proxy status`
 * trusts `--cacert` or, by default, the certificates in the server's own `[grpc] tls_cert` file
 * (right for a self-signed certificate, or a fullchain file that ends with its root); with
 * `client_ca` set it needs `--cert`/`--key`.
 */
import { AdminClient, isServiceError, type AdminConnectOptions } from "../admin/client.ts";
import { grpcCodeName } from "../admin/codes.ts";
import { dialString, parseAdminAddr } from "../admin/addr.ts";
import type { Config } from "../config/types.ts";
import type { GetStatusResponse } from "../gen/mc_proxy/v1/admin.ts";
import { maxText, proxySetting, table, type Json } from "./format.ts";

/** "3d4h5m6s" style, largest unit first, zero units dropped ("0s" for zero). */
export function formatDuration(ms: number): string {
  let s = Math.max(0, Math.floor(ms / 1000));
  const parts: string[] = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join("");
}

function startedAt(st: GetStatusResponse): Date {
  const t = st.startedAt ?? { seconds: 0, nanos: 0 };
  return new Date(t.seconds * 1000 + Math.floor(t.nanos / 1e6));
}

/** Human text: version, start time and uptime, total connections, then one row per listener. */
export function formatStatus(st: GetStatusResponse, now: Date = new Date()): string {
  const start = startedAt(st);
  const head =
    `mc-proxy ${st.version}\n` +
    `started  ${start.toISOString()} (up ${formatDuration(now.getTime() - start.getTime())})\n` +
    `connections total ${st.totalConnections}\n` +
    (st.workers > 0 ? `workers  ${st.workers} data-path thread${st.workers === 1 ? "" : "s"}\n\n` : "\n");
  if (st.listeners.length === 0) return head + "no listeners\n";
  return (
    head +
    table(
      ["LISTENER", "ROUTES", "ACTIVE", "MAX", "PROXY PROTOCOL"],
      st.listeners.map((l) => [
        l.addr,
        String(l.routeCount),
        String(l.activeConnections),
        maxText(l.maxConnections),
        proxySetting(l.proxyProtocol, l.proxyProtocolTrusted),
      ]),
    )
  );
}

/** The `--json` document for a status. */
export function statusJson(st: GetStatusResponse, now: Date = new Date()): Json {
  const start = startedAt(st);
  return {
    version: st.version,
    started_at: start.toISOString(),
    uptime_seconds: Math.max(0, Math.floor((now.getTime() - start.getTime()) / 1000)),
    total_connections: st.totalConnections,
    workers: st.workers,
    listeners: st.listeners.map((l) => ({
      addr: l.addr,
      route_count: l.routeCount,
      active_connections: l.activeConnections,
      max_connections: l.maxConnections,
      proxy_protocol: l.proxyProtocol,
      proxy_protocol_trusted: l.proxyProtocolTrusted,
    })),
  };
}

/** Where runStatus writes (tests capture it). */
export interface StatusIO {
  out(text: string): void;
  err(text: string): void;
}
const processIO: StatusIO = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export interface StatusOptions {
  cacert?: string;
  cert?: string;
  key?: string;
  serverName?: string;
  json?: boolean;
}

/** Maps a failed admin call to (exit code, one stderr line): 3 = cannot connect, 1 = server error. */
export function describeFailure(e: unknown, addr: string): { code: number; line: string } {
  if (isServiceError(e)) {
    const name = grpcCodeName(e.code);
    if (name === "UNAVAILABLE" || name === "DEADLINE_EXCEEDED") {
      // grpc-js wraps the socket error: "No connection established. Last error: Error: connect ENOENT … Resolution note: "
      const m = /Last error: (?:\w*Error: )?(.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(e.details);
      return { code: 3, line: `error: cannot connect to ${addr}: ${m ? m[1] : e.details || name}` };
    }
    return { code: 1, line: `error: ${name}: ${e.details}` };
  }
  return { code: 1, line: `error: ${e instanceof Error ? e.message : String(e)}` };
}


/**
 * `mc-proxy status -c <config>`: asks the running instance named by the config's `[grpc]` for
 * GetStatus and prints it (stdout); errors are one line on stderr. Returns the exit code:
 * 0 ok, 1 server error, 2 no `[grpc]` section or bad flags, 3 cannot connect.
 */
export async function runStatus(cfg: Config, opts: StatusOptions = {}, io: StatusIO = processIO): Promise<number> {
  if (!cfg.grpc) {
    io.err("error: the config has no [grpc] section, so there is no admin API to ask\n");
    return 2;
  }
  const g = cfg.grpc;
  const where = parseAdminAddr(g.addr);
  const tcp = where.kind === "tcp";
  if (tcp && g.clientCa && !(opts.cert && opts.key)) {
    io.err("error: [grpc] client_ca is set: pass --cert and --key (a client certificate from that CA)\n");
    return 2;
  }
  const conn: AdminConnectOptions = tcp
    ? { addr: dialString(where), caCert: opts.cacert || g.tlsCert, tlsCert: opts.cert, tlsKey: opts.key, serverName: opts.serverName }
    : { addr: dialString(where) };
  let client: AdminClient;
  try {
    client = new AdminClient(conn);
  } catch (e) {
    io.err(`error: ${(e as Error).message}\n`);
    return 2;
  }
  try {
    const st = await client.getStatus();
    io.out(opts.json ? JSON.stringify(statusJson(st)) + "\n" : formatStatus(st));
    return 0;
  } catch (e) {
    const f = describeFailure(e, g.addr);
    io.err(f.line + "\n");
    return f.code;
  } finally {
    client.close();
  }
}
