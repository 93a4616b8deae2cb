/**
 * What the pipeline hands the L7 handler for one client connection, and the
 * per-connection state the L7 handler keeps while serving it.
 */
import type { ProxyConfig } from "../config/types.ts";
import type { Endpoint } from "../net/addr.ts";
import type { RouteEntry } from "../state/state.ts";
import { encodeProxyV2 } from "../wire/proxyproto.ts";
import { BackendPool } from "./backend/pool.ts";
import type { NativeSocketDuplex } from "./duplex.ts";

export type { RouteEntry };

export type { Endpoint };

export interface ConnSummary {
  outcome: string;
  bytesIn: number;
  bytesOut: number;
  requests: number;
}

export interface L7Context {
  /** The CURRENT route entry for this SNI, re-read per request so admin changes apply to the next request. */
  route(): RouteEntry;
  /** Normalized SNI. */
  sni: string;
  /** The real client (PROXY source when present): X-Forwarded-For, X-Real-IP, outgoing PROXY headers. */
  client: Endpoint;
  /** The address the client connected to (PROXY destination when present). */
  local: Endpoint;
  listenerAddr: string;
  proxy: ProxyConfig;
  /** Called exactly once when the client connection is gone. */
  onClose(summary: ConnSummary): void;
}

/** One client connection being served at L7. */
export class L7Conn {
  requests = 0;
  /** The HTTP/2 session serving this connection (ALPN h2), once created. */
  h2session: import("node:http2").ServerHttp2Session | null = null;
  private ownPool: BackendPool | null = null;
  /** Graceful shutdown has begun: no new requests are wanted on this connection. */
  draining = false;
  /** Installed by the handler: checks the idle and request-head deadlines (the server's sweeper calls it with its clock). */
  tick: (now: number) => void = () => {};
  /** Installed by the handler: winds the connection's protocol down (see beginDrain). */
  onDrain: (() => void) | null = null;

  constructor(
    readonly ctx: L7Context,
    readonly duplex: NativeSocketDuplex,
  ) {}

  /**
   * The pool for routes with send_proxy_protocol: created on first use with a
   * PROXY v2 header for THIS client, closed with the connection, never shared.
   */
  proxyPool(): BackendPool {
    if (!this.ownPool) {
      const header = encodeProxyV2({ source: this.ctx.client, destination: this.ctx.local, authority: this.ctx.sni });
      this.ownPool = new BackendPool(header, {
        connectTimeoutMs: this.ctx.proxy.connectTimeoutMs,
        idleTimeoutMs: this.ctx.proxy.idleTimeoutMs,
      });
    }
    return this.ownPool;
  }

  /**
   * Starts a graceful close (shutdown): HTTP/2 gets GOAWAY and closes once its
   * open streams end; HTTP/1.1 closes now when idle, else answers its current
   * request with `Connection: close` and closes after it; a WebSocket is left
   * to run until the shutdown deadline. Idempotent.
   */
  beginDrain(): void {
    if (this.draining) return;
    this.draining = true;
    this.onDrain?.();
  }

  /** Releases per-connection backend connections. */
  dispose(): void {
    this.ownPool?.close();
    this.ownPool = null;
  }
}
