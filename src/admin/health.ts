/**
 * The standard grpc.health.v1.Health service for the admin server. Service "" (the whole
 * server) and "mc_proxy.v1.ProxyAdminService" report SERVING or NOT_SERVING together, as set
 * by `setServing`; any other name is NOT_FOUND for Check and SERVICE_UNKNOWN for Watch.
 */
import { status as grpcStatus, type ServerWritableStream } from "@grpc/grpc-js";
import {
  HealthCheckResponse_ServingStatus as Serving,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
} from "../gen/grpc/health/v1/health.ts";

export const ADMIN_SERVICE_NAME = "mc_proxy.v1.ProxyAdminService";
const KNOWN = ["", ADMIN_SERVICE_NAME];

type Watcher = ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;

/** Health state plus the grpc-js implementation that serves it. */
export class HealthReporter {
  private serving: boolean;
  private readonly watchers = new Set<Watcher>();

  constructor(serving = true) {
    this.serving = serving;
  }

  /** Current status of `service`, or undefined when the service is unknown. */
  statusOf(service: string): Serving | undefined {
    if (!KNOWN.includes(service)) return undefined;
    return this.serving ? Serving.SERVING : Serving.NOT_SERVING;
  }

  /** Flips every known service; open Watch streams of known services get the new status. */
  setServing(serving: boolean): void {
    if (serving === this.serving) return;
    this.serving = serving;
    for (const w of this.watchers) {
      const s = this.statusOf(w.request.service);
      if (s !== undefined) w.write({ status: s });
    }
  }

  /** Ends every open Watch stream (so the server can shut down without waiting on them). */
  closeWatchers(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }

  readonly impl: HealthServer = {
    check: (call, cb) => {
      const s = this.statusOf(call.request.service);
      if (s === undefined) cb({ code: grpcStatus.NOT_FOUND, details: `unknown service "${call.request.service}"` });
      else cb(null, { status: s });
    },
    list: (_call, cb) => {
      const statuses: Record<string, HealthCheckResponse> = {};
      for (const name of KNOWN) statuses[name] = { status: this.statusOf(name)! };
      cb(null, { statuses });
    },
    watch: (call) => {
      call.write({ status: this.statusOf(call.request.service) ?? Serving.SERVICE_UNKNOWN });
      this.watchers.add(call);
      const drop = () => this.watchers.delete(call);
      call.on("cancelled", drop);
      call.on("close", drop);
      call.on("error", drop);
    },
  };
}
