/**
 * One client connection at L7: TLS terminated natively on the accepted
 * socket, then HTTP/1.1 (src/l7/h1/front.ts) or HTTP/2 (src/l7/h2front.ts)
 * chosen by ALPN. Owns the TLS socket's
 * events, the connection's deadlines (handshake, idle, request head, and the
 * exchanges' backend_timeout — all checked from the server's sweeper through
 * `tick`), graceful drain and the summary reported when it closes.
 */
import type { Socket } from "bun";
import type { ProxyConfig } from "../config/types.ts";
import { L7_CLOSE_GRACE_MS } from "../limits.ts";
import type { Endpoint } from "../net/addr.ts";
import { log } from "../obs/log.ts";
import { classifyTlsError, metrics, type TlsFailure } from "../obs/metrics.ts";
import type { RouteRecord } from "../records.ts";
import type { RouteEntry } from "../state/state.ts";
import { encodeProxyV2 } from "../wire/proxyproto.ts";
import { BackendPool } from "./backend/pool.ts";
import type { Exchange, ExchangeInfo } from "./exchange.ts";
import { H1Front } from "./h1/front.ts";
import { H2Front } from "./h2front.ts";
import type { L7Runtime } from "./runtime.ts";
import { startTls, tlsFailureReason, type TlsPeer, type TlsSock } from "./tls.ts";

export type { Endpoint, RouteEntry };

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
  /** When the client's first byte arrived (ms, Date.now()): the handshake must end within hello_timeout of it. */
  firstByteAt: number;
  /** The server's coarse clock. */
  now(): number;
  /** Called exactly once when the client connection is gone. */
  onClose(summary: ConnSummary): void;
}

/** What a request built for a backend was built from (forward.ts `sameInputs`): the same inputs give the same result. */
export interface RequestInputs {
  method: string;
  path: string;
  authority: string;
  body: string;
  contentLength: number;
  /** The request's field list (name, value, …) — compared element by element. */
  fields: readonly string[];
}

/** A request head serialized for an HTTP/1.1 backend and its inputs (never modified once built). */
export interface H1HeadMemo extends RequestInputs {
  head: Uint8Array;
}

/** The same for an HTTP/2 backend (forward.ts sendH2): the inputs, and the field list built from them (shared: never modified). */
export interface H2FieldsMemo extends RequestInputs {
  scheme: string;
  out: readonly string[];
}

/** What a protocol front (HTTP/1.1 or HTTP/2) does with the TLS socket's events once the handshake is done. */
export interface ProtocolFront {
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  onDrain(): void;
  /** The socket is gone: cancel what is in flight. */
  onClose(): void;
  tick(now: number): void;
  beginDrain(): void;
}

export class L7Conn implements TlsPeer {
  requests = 0;
  /** Plaintext bytes from / to the client (plus the peeked hello). */
  bytesIn = 0;
  bytesOut = 0;
  /** Graceful shutdown has begun: no new requests are wanted on this connection. */
  draining = false;
  outcome = "tls_error";
  readonly info: ExchangeInfo;
  readonly tls: TlsSock;
  private front: ProtocolFront | null = null;
  private secure = false;
  private done = false;
  private readonly exchanges = new Set<Exchange>();
  private ownPool: BackendPool | null = null;
  /** Set once we ended the connection ourselves: destroy it at this time whatever the client does. */
  private closeBy = 0;
  /** The last request authority found to name this connection's SNI (forward.ts; null = none yet). */
  checkedAuthority: string | null = null;
  /** The last HTTP/1.1 request head built for a backend from a parsed request, and what it was built from (forward.ts sendH1). */
  lastH1Head: H1HeadMemo | null = null;
  /** The last client head passed through to an HTTP/1.1 backend (its RequestIn.rawKey) and the bytes built from it (forward.ts). */
  lastRawKey: object | null = null;
  lastRawHead: Uint8Array | null = null;
  /** The last field list built for an HTTP/2 backend, and what it was built from (forward.ts sendH2). */
  lastH2Fields: H2FieldsMemo | null = null;
  /** The forwarding fields and the blank line that end a request head passed through to an HTTP/1.1 backend (see forward.ts). */
  private forwarded: Uint8Array | null = null;
  /** Bytes for the client the socket has not taken yet (see `send`). */
  private queued: Uint8Array | null = null;
  private closeWhenSent = false;

  constructor(
    readonly runtime: L7Runtime,
    readonly ctx: L7Context,
    raw: Socket<unknown>,
    peeked: Uint8Array,
    entry: RouteEntry,
  ) {
    this.bytesIn = peeked.byteLength;
    this.info = {
      listenerAddr: ctx.listenerAddr,
      clientAddress: ctx.client.address,
      backendTimeoutMs: ctx.proxy.backendTimeoutMs,
      idleTimeoutMs: ctx.proxy.idleTimeoutMs,
    };
    const context = runtime.contexts.get(entry.cert!, ctx.proxy.l7MinTls);
    this.tls = startTls(raw, peeked, context, this);
  }

  /** `X-Forwarded-For`, `X-Real-IP` (the real client), `X-Forwarded-Proto: https`, CRLF: what `backendRequestFields` appends, as bytes, built once per connection. */
  get forwardedFields(): Uint8Array {
    if (this.forwarded === null) {
      const ip = this.ctx.client.address;
      this.forwarded = Buffer.from(`x-forwarded-for: ${ip}\r\nx-real-ip: ${ip}\r\nx-forwarded-proto: https\r\n\r\n`, "latin1");
    }
    return this.forwarded;
  }

  // ------------------------------------------------ TLS socket events

  onHandshake(ok: boolean, err: Error | null): void {
    if (this.done) return;
    if (!ok) {
      const reason = tlsFailureReason(err);
      const cls = classifyTlsError(err);
      return this.handshakeFailed(cls === "version" ? `${reason} (minimum TLS ${this.ctx.proxy.l7MinTls})` : reason, cls);
    }
    this.secure = true;
    this.outcome = "ok";
    const alpn = this.tls.alpnProtocol;
    this.front = alpn === "h2" ? new H2Front(this) : new H1Front(this);
    if (this.draining) this.front.beginDrain();
  }

  onData(chunk: Uint8Array): void {
    this.bytesIn += chunk.byteLength;
    this.front?.onData(chunk);
  }

  onEnd(): void {
    if (this.front) this.front.onEnd();
    else this.rawEnd();
  }

  /**
   * The client's FIN reached the raw socket. During the handshake Bun does
   * not report it on the TLS socket: a client that sends a ClientHello then
   * FIN (scanners; a client gone before its Finished) is released at once.
   */
  rawEnd(): void {
    if (this.secure || this.done) return;
    this.handshakeFailed("client closed the connection during the handshake", "other");
    this.abort();
  }

  onDrain(): void {
    this.front?.onDrain();
  }

  onClose(err?: Error): void {
    if (!this.secure) this.handshakeFailed(err ? `connection error during the handshake (${(err as { code?: string }).code ?? err.message})` : "client closed the connection during the handshake", "other");
    this.finish();
  }

  // ------------------------------------------------ for the fronts

  /** Hands the socket's events to another front (an HTTP/1.1 connection turning into a WebSocket tunnel). */
  replaceFront(f: ProtocolFront): void {
    this.front = f;
  }


  /**
   * Writes to the client (`data[offset, offset + length)` when given: no view
   * needed); returns bytes accepted (-1 when closed). Partial = wait for onDrain.
   */
  write(data: Uint8Array | string, offset?: number, length?: number): number {
    const n = offset === undefined ? this.tls.write(data) : this.tls.write(data, offset, length);
    if (n > 0) this.bytesOut += n;
    return n;
  }

  /**
   * Writes `data` to the client after anything still queued; what the socket
   * does not take is kept (a copy: `data` may be a view of a backend chunk)
   * until `flushQueued`. Returns the bytes now queued (0 = all written).
   */
  send(data: Uint8Array): number {
    if (this.queued !== null) {
      this.queued = Buffer.concat([this.queued, data]);
      return this.queued.byteLength;
    }
    const n = this.write(data);
    if (n < 0 || n === data.byteLength) return 0;
    this.queued = data.slice(n);
    return this.queued.byteLength;
  }

  /** The socket drained: writes what `send` queued. True once nothing is left (a pending close then happens). */
  flushQueued(): boolean {
    const q = this.queued;
    if (q === null) return true;
    const n = this.write(q);
    if (n < 0) return false;
    if (n < q.byteLength) {
      this.queued = q.subarray(n);
      return false;
    }
    this.queued = null;
    if (this.closeWhenSent) this.closeGently();
    return true;
  }

  /**
   * close_notify + FIN once everything `send` queued is written; destroyed
   * L7_CLOSE_GRACE_MS later whatever the client does.
   */
  closeGently(): void {
    if (this.queued !== null) {
      this.closeWhenSent = true;
      return;
    }
    this.tls.shutdown();
    this.closeBy = this.ctx.now() + L7_CLOSE_GRACE_MS;
  }

  /** Reset now. */
  abort(): void {
    this.tls.terminate();
  }

  track(ex: Exchange): void {
    this.exchanges.add(ex);
  }
  untrack(ex: Exchange): void {
    this.exchanges.delete(ex);
  }

  /**
   * The backend pool for `record`: the runtime's, or for routes with
   * send_proxy_protocol one of this connection's own (each backend connection
   * starts with THIS client's PROXY v2 header; closed with the connection).
   */
  pool(record: RouteRecord): BackendPool {
    if (!record.sendProxyProtocol) return this.runtime.pool;
    if (!this.ownPool) {
      const { client, local, sni, proxy } = this.ctx;
      const header = encodeProxyV2({ source: client, destination: local, authority: sni });
      this.ownPool = new BackendPool(header, { connectTimeoutMs: proxy.connectTimeoutMs, idleTimeoutMs: proxy.idleTimeoutMs }, this.runtime.probe);
    }
    return this.ownPool;
  }

  // ------------------------------------------------ deadlines, drain, close

  /** The server's sweeper: handshake deadline, then the front's and the exchanges' deadlines. */
  tick(now: number): void {
    if (this.done) return;
    if (this.closeBy !== 0 && now >= this.closeBy) return this.abort();
    if (!this.secure) {
      if (now - this.ctx.firstByteAt >= this.ctx.proxy.helloTimeoutMs) {
        this.handshakeFailed("handshake not completed within hello_timeout", "timeout");
        this.abort();
      }
      return;
    }
    this.front?.tick(now);
    for (const ex of this.exchanges) ex.tick(now);
  }

  /**
   * Starts a graceful close (shutdown): HTTP/2 gets GOAWAY and closes once its
   * open streams end; HTTP/1.1 closes now when idle, else answers its current
   * request with `Connection: close` and closes after it. Idempotent.
   */
  beginDrain(): void {
    if (this.draining) return;
    this.draining = true;
    this.front?.beginDrain();
  }

  /** The client went away or we closed: exactly once. */
  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.front?.onClose();
    for (const ex of this.exchanges) ex.clientGone();
    this.exchanges.clear();
    this.ownPool?.close();
    this.ownPool = null;
    this.ctx.onClose({ outcome: this.outcome, bytesIn: this.bytesIn, bytesOut: this.bytesOut, requests: this.requests });
  }

  private failureLogged = false;
  /** Exactly one log line and one metric per failed handshake. */
  private handshakeFailed(reason: string, cls: TlsFailure): void {
    if (this.secure || this.failureLogged) return;
    this.failureLogged = true;
    this.outcome = "tls_error";
    metrics.tlsFailure(cls);
    log.info("l7.tls_error", { listener: this.ctx.listenerAddr, sni: this.ctx.sni, client: this.ctx.client.address, reason, class: cls });
  }
}
