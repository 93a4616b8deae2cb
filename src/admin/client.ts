/**
 * Admin API client shared by `mcproxyctl` and `mc-proxy status`: dials a unix socket directly
 * or TCP with TLS (client certificate for mTLS), and wraps each RPC in a promise with a
 * deadline. Failed calls reject with grpc-js's ServiceError (`code`, `details`).
 */
import fs from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { ChannelCredentials, Metadata, type CallOptions, type ChannelOptions, type ServiceError } from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.ts";
import {
  ProxyAdminServiceClient,
  type FirewallRule,
  type GetStatusResponse,
  type L7Policy,
  type Listener,
  type Route,
} from "../gen/mc_proxy/v1/admin.ts";
import { grpcTarget, parseDialAddr } from "./addr.ts";

export interface AdminConnectOptions {
  /** `unix:<path>` (or a plain path), or host:port for TLS; see parseDialAddr. */
  addr: string;
  /** Client certificate (PEM file) for mTLS; TCP only. */
  tlsCert?: string;
  tlsKey?: string;
  /** CA bundle (PEM file) that signed the server certificate; default: system roots. TCP only. */
  caCert?: string;
  /** Name to verify the server certificate against (default: the host in `addr`). */
  serverName?: string;
}

function readFile(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function channelFor(opts: AdminConnectOptions): { target: string; creds: ChannelCredentials; options: ChannelOptions } {
  const addr = parseDialAddr(opts.addr);
  if (addr.kind === "unix") return { target: grpcTarget(addr), creds: ChannelCredentials.createInsecure(), options: {} };
  if (!!opts.tlsCert !== !!opts.tlsKey) throw new Error("--cert and --key go together");
  const name = opts.serverName || addr.host;
  // Bun's tls.connect refuses an IP address as SNI (Node only warns), and grpc-js always sends
  // the host as SNI. For an IP we send a placeholder SNI and verify the certificate's IP SAN.
  const byIp = net.isIP(name) !== 0;
  const creds = ChannelCredentials.createSsl(
    opts.caCert ? readFile(opts.caCert, "CA certificate") : null,
    opts.tlsKey ? readFile(opts.tlsKey, "client key") : null,
    opts.tlsCert ? readFile(opts.tlsCert, "client certificate") : null,
    byIp ? { checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert) } : {},
  );
  const options: ChannelOptions = byIp
    ? { "grpc.ssl_target_name_override": "mc-proxy-admin.invalid" }
    : opts.serverName
      ? { "grpc.ssl_target_name_override": opts.serverName, "grpc.default_authority": opts.serverName }
      : {};
  return { target: grpcTarget(addr), creds, options };
}

/** True when `e` is a gRPC status error (as opposed to a local failure). */
export function isServiceError(e: unknown): e is ServiceError {
  return typeof e === "object" && e !== null && typeof (e as ServiceError).code === "number" && "details" in e;
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res?: Res) => void) => unknown;

/** Promise-returning admin calls, each with a deadline (default 10 s). */
export class AdminClient {
  readonly raw: ProxyAdminServiceClient;
  private readonly health: HealthClient;

  constructor(opts: AdminConnectOptions, private readonly deadlineMs = 10_000) {
    const c = channelFor(opts);
    this.raw = new ProxyAdminServiceClient(c.target, c.creds, c.options);
    this.health = new HealthClient(c.target, c.creds, c.options);
  }

  private call<Req, Res>(fn: Unary<Req, Res>, client: object, req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn.call(client, req, new Metadata(), { deadline: Date.now() + this.deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res as Res),
      );
    });
  }

  listListeners = async (): Promise<Listener[]> => (await this.call(this.raw.listListeners, this.raw, {})).listeners;
  listRoutes = async (listenerAddr: string): Promise<Route[]> =>
    (await this.call(this.raw.listRoutes, this.raw, { listenerAddr })).routes;
  addRoute = async (listenerAddr: string, route: Route): Promise<Route> =>
    (await this.call(this.raw.addRoute, this.raw, { listenerAddr, route })).route!;
  removeRoute = async (listenerAddr: string, hostname: string): Promise<void> => {
    await this.call(this.raw.removeRoute, this.raw, { listenerAddr, hostname });
  };
  getFirewallRules = async (): Promise<FirewallRule[]> => (await this.call(this.raw.getFirewallRules, this.raw, {})).rules;
  addFirewallRule = async (rule: FirewallRule): Promise<FirewallRule> =>
    (await this.call(this.raw.addFirewallRule, this.raw, { rule })).rule!;
  removeFirewallRule = async (rule: FirewallRule): Promise<void> => {
    await this.call(this.raw.removeFirewallRule, this.raw, { rule });
  };
  setListenerMaxConnections = async (listenerAddr: string, maxConnections: number): Promise<Listener> =>
    (await this.call(this.raw.setListenerMaxConnections, this.raw, { listenerAddr, maxConnections })).listener!;
  listL7Policies = async (listenerAddr: string, hostname: string): Promise<L7Policy[]> =>
    (await this.call(this.raw.listL7Policies, this.raw, { listenerAddr, hostname })).policies;
  addL7Policy = async (listenerAddr: string, hostname: string, policy: L7Policy): Promise<L7Policy> =>
    (await this.call(this.raw.addL7Policy, this.raw, { listenerAddr, hostname, policy })).policy!;
  removeL7Policy = async (listenerAddr: string, hostname: string, policy: L7Policy): Promise<void> => {
    await this.call(this.raw.removeL7Policy, this.raw, { listenerAddr, hostname, policy });
  };
  getStatus = (): Promise<GetStatusResponse> => this.call(this.raw.getStatus, this.raw, {});
  /** grpc.health.v1 Check for `service` ("" = the whole server). */
  checkHealth = async (service = ""): Promise<HealthCheckResponse_ServingStatus> =>
    (await this.call(this.health.check, this.health, { service })).status;

  close(): void {
    this.raw.close();
    this.health.close();
  }
}
