/**
 * The gRPC admin server (SPEC §7): ProxyAdminService over the State, plus grpc.health.v1.
 * Handlers are synchronous around the State (it is synchronous and write-through), map typed
 * errors to status codes, and log one line per RPC. Transport: a unix socket (mode 0600, a
 * stale socket replaced) or TCP with TLS 1.3 and mutual TLS (client_ca required) — never plaintext
 * or anonymous TCP.
 */
import fs from "node:fs";
import net from "node:net";
import { isAbsolute } from "node:path";
import { Server, ServerCredentials, status as grpcStatus, type sendUnaryData, type ServerUnaryCall, type ServerCredentials as Creds } from "@grpc/grpc-js";
import type { SecureContextOptions } from "node:tls";
import type { FirewallRuleType, GrpcConfig, PolicyType } from "../config/types.ts";
import { ConfigError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { HealthService } from "../gen/grpc/health/v1/health.ts";
import { ProxyAdminServiceService, type ProxyAdminServiceServer } from "../gen/mc_proxy/v1/admin.ts";
import { log } from "../obs/log.ts";
import type { FirewallRuleRecord, ListenerRecord, PolicyRecord, RouteInput, RouteRecord } from "../records.ts";
import { grpcTarget, parseAdminAddr } from "./addr.ts";
import { grpcCodeName } from "./codes.ts";
import {
  firewallRuleToProto,
  firewallTypeName,
  listenerToProto,
  policyToProto,
  policyTypeName,
  routeFromProto,
  routeToProto,
} from "./convert.ts";
import { HealthReporter } from "./health.ts";
import { ADMIN_FORCE_SHUTDOWN_MS, ADMIN_SOCKET_PROBE_MS } from "../limits.ts";

/** The part of `State` (src/state/state.ts) the admin API uses; the real State satisfies it. */
export interface AdminState {
  listeners(): { record: ListenerRecord; routes: Map<string, { record: RouteRecord }> }[];
  listener(addr: string): { record: ListenerRecord; routes: Map<string, { record: RouteRecord }> } | undefined;
  firewallRules(): FirewallRuleRecord[];
  addRoute(listenerAddr: string, input: RouteInput): RouteRecord;
  removeRoute(listenerAddr: string, hostname: string): void;
  addFirewallRule(type: FirewallRuleType, value: string): FirewallRuleRecord;
  removeFirewallRule(type: FirewallRuleType, value: string): void;
  setMaxConnections(listenerAddr: string, n: number): ListenerRecord;
  listPolicies(listenerAddr: string, hostname: string): PolicyRecord[];
  addPolicy(listenerAddr: string, hostname: string, type: PolicyType, value: string): PolicyRecord;
  removePolicy(listenerAddr: string, hostname: string, type: PolicyType, value: string): void;
}

export interface AdminDeps {
  state: AdminState;
  status(): { version: string; startedAt: Date; totalConnections: number; active(addr: string): number; workers?: number };
  /**
   * After a successful mutation, the RPC answers only once this resolves:
   * every data-path worker has applied the change (src/server/workers.ts).
   */
  applied?(): Promise<void>;
  /**
   * Whether a GeoIP database is configured ([firewall] geoip_db): without one
   * a country rule could never match, so AddFirewallRule refuses it, as the
   * TOML does. Unset: not checked.
   */
  geoipConfigured?: boolean;
  /** Called once per RPC with the method name and the status code name ("OK", "NOT_FOUND", …); for metrics. */
  onRpc?(method: string, code: string): void;
}

export interface AdminServer {
  /** Stops accepting, ends health watches, waits briefly for in-flight RPCs; removes the socket file. */
  close(): Promise<void>;
  /** Health: SERVING (true) or NOT_SERVING (false) for "" and the admin service. */
  setServing(serving: boolean): void;
  /** The bound TCP port (0 for a unix socket): lets tests bind "127.0.0.1:0". */
  readonly port: number;
}

const MUTATIONS = new Set(["AddRoute", "RemoveRoute", "AddFirewallRule", "RemoveFirewallRule", "SetListenerMaxConnections", "AddL7Policy", "RemoveL7Policy"]);

/** Maps a thrown error to a gRPC status; unknown errors are INTERNAL with a generic message. */
export function toGrpcError(e: unknown): { code: grpcStatus; details: string } {
  const code = (e as { code?: unknown } | null)?.code;
  const msg = e instanceof Error ? e.message : String(e);
  if (code === "invalid_argument") return { code: grpcStatus.INVALID_ARGUMENT, details: msg };
  if (code === "not_found") return { code: grpcStatus.NOT_FOUND, details: msg };
  if (code === "failed_precondition") return { code: grpcStatus.FAILED_PRECONDITION, details: msg };
  if (code === "store") return { code: grpcStatus.INTERNAL, details: msg.startsWith("database") ? msg : `database: ${msg}` };
  return { code: grpcStatus.INTERNAL, details: "internal error (see server log)" };
}

function required(value: string, field: string): string {
  if (value === "") throw new InvalidArgumentError(field, "required");
  return value;
}

function listenerOf(state: AdminState, addr: string) {
  const l = state.listener(required(addr, "listener_addr"));
  if (!l) throw new NotFoundError(`listener "${addr}" not found`);
  return l;
}

function present<T>(v: T | undefined, field: string): T {
  if (v === undefined) throw new InvalidArgumentError(field, "required");
  return v;
}

type Svc = typeof ProxyAdminServiceService;
/** One plain function per RPC, typed by the generated request and response messages. */
type Handlers = { [K in keyof Svc]: (req: ReturnType<Svc[K]["requestDeserialize"]>) => Parameters<Svc[K]["responseSerialize"]>[0] };

/** The ProxyAdminService implementation; each handler is a plain function of its request. */
function adminHandlers(deps: AdminDeps): Handlers {
  const s = deps.state;
  return {
    listListeners: () => ({
      listeners: s.listeners().map((l) => listenerToProto(l.record, l.routes.size)),
    }),
    listRoutes: (req) => ({
      routes: [...listenerOf(s, req.listenerAddr).routes.values()]
        .map((e) => e.record)
        .sort((a, b) => a.hostname.localeCompare(b.hostname))
        .map(routeToProto),
    }),
    addRoute: (req) => {
      required(req.listenerAddr, "listener_addr");
      const input = routeFromProto(present(req.route, "route"));
      // A relative path would be resolved against the server's working directory now and
      // against another after a restart (systemd's is /): the route would then fail to load.
      for (const [field, path] of [["route.tls_cert", input.tlsCert], ["route.tls_key", input.tlsKey], ["route.backend_tls_ca", input.backendTlsCa]] as const) {
        if (path && !isAbsolute(path)) throw new InvalidArgumentError(field, `"${path}" must be an absolute path (the server does not share the client's working directory)`);
      }
      return { route: routeToProto(s.addRoute(req.listenerAddr, input)) };
    },
    removeRoute: (req) => {
      s.removeRoute(required(req.listenerAddr, "listener_addr"), required(req.hostname, "hostname"));
      return {};
    },
    getFirewallRules: () => ({ rules: s.firewallRules().map(firewallRuleToProto) }),
    addFirewallRule: (req) => {
      const rule = present(req.rule, "rule");
      const type = firewallTypeName(rule.type);
      if (type === "country" && deps.geoipConfigured === false) {
        throw new FailedPreconditionError("rule.type", "a country rule needs [firewall] geoip_db: without it the rule could never match");
      }
      return { rule: firewallRuleToProto(s.addFirewallRule(type, required(rule.value, "rule.value"))) };
    },
    removeFirewallRule: (req) => {
      const rule = present(req.rule, "rule");
      s.removeFirewallRule(firewallTypeName(rule.type), required(rule.value, "rule.value"));
      return {};
    },
    setListenerMaxConnections: (req) => {
      required(req.listenerAddr, "listener_addr");
      if (req.maxConnections < 0) throw new InvalidArgumentError("max_connections", "must be >= 0 (0 = unlimited)");
      const rec = s.setMaxConnections(req.listenerAddr, req.maxConnections);
      return { listener: listenerToProto(rec, s.listener(req.listenerAddr)?.routes.size ?? 0) };
    },
    listL7Policies: (req) => ({
      policies: s.listPolicies(required(req.listenerAddr, "listener_addr"), required(req.hostname, "hostname")).map(policyToProto),
    }),
    addL7Policy: (req) => {
      required(req.listenerAddr, "listener_addr");
      required(req.hostname, "hostname");
      const p = present(req.policy, "policy");
      const type = policyTypeName(p.type);
      return { policy: policyToProto(s.addPolicy(req.listenerAddr, req.hostname, type, required(p.value, "policy.value"))) };
    },
    removeL7Policy: (req) => {
      required(req.listenerAddr, "listener_addr");
      required(req.hostname, "hostname");
      const p = present(req.policy, "policy");
      s.removePolicy(req.listenerAddr, req.hostname, policyTypeName(p.type), required(p.value, "policy.value"));
      return {};
    },
    getStatus: () => {
      const st = deps.status();
      const ms = st.startedAt.getTime();
      return {
        version: st.version,
        startedAt: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 },
        totalConnections: st.totalConnections,
        workers: st.workers ?? 0,
        listeners: s.listeners().map((l) => ({
          addr: l.record.addr,
          routeCount: l.routes.size,
          activeConnections: st.active(l.record.addr),
          maxConnections: l.record.maxConnections,
          proxyProtocol: l.record.proxyProtocol,
          proxyProtocolTrusted: [...l.record.proxyProtocolTrusted],
        })),
      };
    },
  };
}

/** Wraps a plain handler as a grpc-js unary handler: error mapping, one log line, onRpc hook. */
function unary<Req, Res>(method: string, fn: (req: Req) => Res, deps: AdminDeps) {
  return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>): void => {
    const t0 = performance.now();
    let code: grpcStatus = grpcStatus.OK;
    let err: unknown;
    try {
      const res = fn(call.request);
      const wait = MUTATIONS.has(method) ? deps.applied?.() : undefined;
      if (wait) void wait.then(() => cb(null, res));
      else cb(null, res);
    } catch (e) {
      err = e;
      const st = toGrpcError(e);
      code = st.code;
      cb(st);
    }
    const fields = {
      method,
      code: grpcCodeName(code),
      ms: Math.round((performance.now() - t0) * 100) / 100,
      peer: peerName(call),
      error: err instanceof Error ? err.message : err === undefined ? undefined : String(err),
    };
    if (code === grpcStatus.INTERNAL) log.error("admin.rpc", fields);
    else if (MUTATIONS.has(method) || code !== grpcStatus.OK) log.info("admin.rpc", fields);
    else log.debug("admin.rpc", fields);
    deps.onRpc?.(method, grpcCodeName(code));
  };
}

/** The peer for the audit line: the mTLS client certificate's CN when there is one. */
function peerName<Req, Res>(call: ServerUnaryCall<Req, Res>): string {
  try {
    const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
    if (cn) return `cn=${cn}`;
  } catch {
    // getAuthContext is best effort: the peer string below still identifies the caller.
  }
  return call.getPeer();
}

/**
 * ServerCredentials for TLS 1.3 only. grpc-js's createSsl offers no minVersion, but the public
 * ServerCredentials constructor takes the http2.createSecureServer options directly.
 */
class Tls13Credentials extends ServerCredentials {
  constructor(ca: Buffer | null, cert: Buffer, key: Buffer) {
    const ctx: SecureContextOptions = { cert: [cert], key: [key], ...(ca ? { ca } : {}) };
    super({ requestCert: ca !== null, rejectUnauthorized: ca !== null, minVersion: "TLSv1.3" }, ctx);
  }
  _equals(other: Creds): boolean {
    return other === this;
  }
}

function readPem(file: string, key: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new ConfigError("", key, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** True when something accepts connections on the unix socket at `p` (a live server, not a stale file). */
function socketAnswers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(p);
    const done = (v: boolean) => {
      clearTimeout(timer);
      c.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(true), ADMIN_SOCKET_PROBE_MS); // no answer: assume alive, refuse
    c.once("connect", () => done(true));
    c.once("error", () => done(false));
  });
}

/**
 * Makes `p` free for binding: a stale socket file is removed; a socket another process still
 * answers on, or any non-socket file, is refused with a ConfigError naming grpc.addr.
 */
async function prepareSocketPath(p: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket()) throw new ConfigError("", "grpc.addr", `${p} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(p)) throw new ConfigError("", "grpc.addr", `${p} is in use by a running server`);
  fs.unlinkSync(p);
  log.info("admin.stale_socket_removed", { path: p });
}

/**
 * Starts the admin server on `cfg.addr` and resolves once it is bound. Rejects with a
 * ConfigError (bad path, unreadable cert, TCP without TLS or without client_ca) or the bind error.
 */
export async function startAdminServer(cfg: GrpcConfig, deps: AdminDeps): Promise<AdminServer> {
  const addr = parseAdminAddr(cfg.addr);
  let creds: Creds;
  if (addr.kind === "unix") {
    await prepareSocketPath(addr.path);
    creds = ServerCredentials.createInsecure(); // access control = file mode 0600
  } else {
    if (!cfg.tlsCert || !cfg.tlsKey) throw new ConfigError("", "grpc.tls_cert", "a TCP admin address requires tls_cert and tls_key");
    // SPEC §7: never anonymous on a network (the config loader refuses this first; this guards other callers).
    if (!cfg.clientCa) throw new ConfigError("", "grpc.client_ca", "a TCP admin address requires client_ca (mutual TLS)");
    const ca = readPem(cfg.clientCa, "grpc.client_ca");
    creds = new Tls13Credentials(ca, readPem(cfg.tlsCert, "grpc.tls_cert"), readPem(cfg.tlsKey, "grpc.tls_key"));
  }

  const health = new HealthReporter(true);
  const server = new Server();
  const handlers = adminHandlers(deps);
  const impl: Partial<Record<keyof Svc, unknown>> = {};
  for (const key of Object.keys(ProxyAdminServiceService) as (keyof Svc)[]) {
    const method = ProxyAdminServiceService[key].path.split("/").pop()!; // "AddRoute", as on the wire
    impl[key] = unary(method, handlers[key] as (req: unknown) => unknown, deps);
  }
  server.addService(ProxyAdminServiceService, impl as ProxyAdminServiceServer);
  server.addService(HealthService, health.impl);

  const port = await new Promise<number>((resolve, reject) => {
    // ":port" = every address: "[::]" is dual-stack (IPv4 too).
    const bindTo = addr.kind === "tcp" && addr.host === "" ? { ...addr, host: "::" } : addr;
    // grpc-js creates the socket with the process umask (0755 typically): bind
    // under umask 077 so it is never reachable by others, then chmod to be sure.
    const oldMask = addr.kind === "unix" ? process.umask(0o077) : null;
    server.bindAsync(grpcTarget(bindTo), creds, (err, p) => {
      if (oldMask !== null) process.umask(oldMask);
      return err ? reject(err) : resolve(p);
    });
  });
  if (addr.kind === "unix") fs.chmodSync(addr.path, 0o600);
  // grpc-js reports port 1 for a unix socket: log a port only for TCP.
  log.info("admin.listening", { addr: cfg.addr, transport: addr.kind === "unix" ? "unix" : "mtls", port: addr.kind === "tcp" ? port : undefined });

  let closed: Promise<void> | null = null;
  return {
    port: addr.kind === "tcp" ? port : 0,
    setServing: (serving) => health.setServing(serving),
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        health.setServing(false);
        health.closeWatchers();
        const force = setTimeout(() => server.forceShutdown(), ADMIN_FORCE_SHUTDOWN_MS);
        server.tryShutdown(() => {
          clearTimeout(force);
          if (addr.kind === "unix") {
            try {
              if (fs.lstatSync(addr.path).isSocket()) fs.unlinkSync(addr.path);
            } catch {
              // already gone
            }
          }
          resolve();
        });
      })),
  };
}
