/**
 * The L7 side as one object the server creates, passes to its connections
 * and closes at shutdown: TLS contexts, the auto-protocol probe answers, the
 * shared backend pool. No module state: two
 * servers in one process (tests) share nothing.
 */
import type { Socket } from "bun";
import type { ProxyConfig } from "../config/types.ts";
import { log } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import type { RouteEntry } from "../state/state.ts";
import { BackendPool } from "./backend/pool.ts";
import { ProtocolProbe } from "./backend/probe.ts";
import { L7Conn, type L7Context } from "./conn.ts";
import { TlsContexts } from "./tls.ts";

export class L7Runtime {
  readonly contexts = new TlsContexts();
  readonly probe = new ProtocolProbe();
  readonly pool: BackendPool;

  constructor(proxy: ProxyConfig) {
    this.pool = new BackendPool(null, { connectTimeoutMs: proxy.connectTimeoutMs, idleTimeoutMs: proxy.idleTimeoutMs }, this.probe);
  }

  /**
   * Serves one client connection: terminates TLS on `raw` with the route's
   * certificate, replaying `peeked` (the ClientHello). Calls `ctx.onClose`
   * exactly once. A route without a loaded certificate is logged and closed
   * (null is returned, `ctx.onClose` has been called).
   */
  serve(raw: Socket<unknown>, peeked: Uint8Array, ctx: L7Context, entry: RouteEntry): L7Conn | null {
    if (!entry.cert) {
      log.warn("l7.no_cert", {
        listener: ctx.listenerAddr,
        sni: ctx.sni,
        client: ctx.client.address,
        reason: "the route has no loaded certificate (tls_cert/tls_key failed to load)",
      });
      metrics.tlsFailure("certificate"); // the handshake cannot even start: count it, never silent
      raw.terminate();
      ctx.onClose({ outcome: "no_cert", bytesIn: peeked.byteLength, bytesOut: 0, requests: 0 });
      return null;
    }
    return new L7Conn(this, ctx, raw, peeked, entry);
  }

  /** Closes every shared backend connection (after the drain). */
  close(): void {
    this.pool.close();
  }
}
