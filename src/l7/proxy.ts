/**
 * One proxied request ("exchange"): policies, forwarding headers, the choice
 * of backend client, streaming both bodies with backpressure, trailers, and
 * the error answers (403 policy, 502 unreachable, 504 no answer in time).
 * The client side is a `Front` (HTTP/2 stream or HTTP/1.1 response); the
 * backend side is an HTTP/2 stream or an HTTP/1.1 request, so all four
 * combinations share this code.
 */
import http2 from "node:http2";
import type http from "node:http";
import type { Readable, Writable } from "node:stream";
import { log, logLevelEnabled } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import type { ProxyConfig } from "../config/types.ts";
import type { RouteRecord } from "../records.ts";
import { isConnectError } from "./backend/connect.ts";
import type { H1Client } from "./backend/h1.ts";
import type { H2Client } from "./backend/h2.ts";
import { BackendPool, type Client } from "./backend/pool.ts";
import { targetFor, type BackendTarget } from "./backend/target.ts";
import type { L7Conn } from "./context.ts";
import type { NativeSocketDuplex } from "./duplex.ts";
import { backendRequestHeaders, clientResponseHeaders, headerString, type HeaderMap } from "./headers.ts";
import { evaluatePolicies } from "./policy.ts";

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

export const BODY_502 = "502 Bad Gateway: backend unreachable\n";
export const BODY_502_ERR = "502 Bad Gateway: backend error\n";
export const BODY_504 = "504 Gateway Timeout: backend did not answer in time\n";
export const BODY_403 = "403 Forbidden: blocked by policy\n";

/** The client side of one exchange. */
export interface Front {
  readonly protocol: "h2" | "http1";
  readonly headSent: boolean;
  /** Sends the response head; `endStream` = no body follows (HTTP/2 trailers-only / empty). */
  head(status: number, headers: HeaderMap, endStream: boolean): void;
  /** Where the response body goes. */
  readonly body: Writable;
  /** Trailers to send when the body ends (set before ending `body`). */
  setTrailers(t: HeaderMap): void;
  /** A short text/plain error answer; only before `head`. */
  fail(status: number, text: string): void;
  /** The response broke after its head was sent: reset the stream / close the connection. */
  abort(): void;
}

let shared: BackendPool | null = null;

/** The process-wide backend pool (routes without send_proxy_protocol). */
export function sharedPool(proxy: ProxyConfig): BackendPool {
  if (!shared) shared = new BackendPool(null, { connectTimeoutMs: proxy.connectTimeoutMs, idleTimeoutMs: proxy.idleTimeoutMs });
  return shared;
}

/** Closes every shared backend connection (shutdown, tests). */
export function closeSharedBackends(): void {
  shared?.close();
  shared = null;
}

/**
 * Proxies one request. `src` are the client's request headers (lower-case
 * names; pseudo-headers allowed), `body` null when the request has none.
 * Never throws; every outcome ends in a response, a reset, or a logged error.
 */
export function forward(
  conn: L7Conn,
  front: Front,
  method: string,
  path: string,
  authority: string | undefined,
  src: HeaderMap,
  body: Readable | null,
): Exchange {
  conn.requests++;
  const record = conn.ctx.route().record;
  const ex = new Exchange(conn, front, record, method, path);
  const policies = record.l7Policies;
  if (policies.length > 0) {
    const v = evaluatePolicies(policies, (n) => headerString(src, n));
    if (v.blocked) {
      log.info("l7.policy_block", {
        listener: conn.ctx.listenerAddr,
        route: record.hostname,
        client: conn.ctx.client.address,
        policy: v.policy.type,
        value: v.policy.value,
      });
      ex.finished = true;
      ex.status = 403;
      front.fail(403, BODY_403);
      body?.resume(); // discard what the client still sends
      return ex;
    }
  }
  let target: BackendTarget;
  try {
    target = targetFor(record);
  } catch (e) {
    ex.fail(502, BODY_502, e);
    return ex;
  }
  const pool = record.sendProxyProtocol ? conn.proxyPool() : sharedPool(conn.ctx.proxy);
  const headers = backendRequestHeaders(src, conn.ctx.client.address);
  ex.start(target, pool, authority ?? target.defaultAuthority, headers, body);
  return ex;
}

/** State of one request in flight; see `forward`. */
export class Exchange {
  bytesIn = 0;
  bytesOut = 0;
  status = 0;
  backendProtocol = "";
  /** No more backend events matter (answered, failed, or cancelled). */
  finished = false;
  private readonly t0: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private cancelBackend: (() => void) | null = null;
  private trailers: HeaderMap | null = null;
  private target: BackendTarget | null = null;
  private pool: BackendPool | null = null;

  constructor(
    readonly conn: L7Conn,
    private readonly front: Front,
    private readonly record: RouteRecord,
    private readonly method: string,
    private readonly path: string,
  ) {
    this.t0 = performance.now(); // always: the latency histogram needs it even when info logs are off
  }

  start(target: BackendTarget, pool: BackendPool, authority: string, headers: HeaderMap, body: Readable | null): void {
    this.target = target;
    this.pool = pool;
    this.timer = setTimeout(() => this.timedOut(), this.conn.ctx.proxy.backendTimeoutMs);
    const client = pool.clientNow(target);
    if (client) return this.send(client, authority, headers, body);
    pool.resolve(target).then(
      (c) => {
        if (!this.finished) this.send(c, authority, headers, body);
      },
      (e) => this.backendError(e),
    );
  }

  /** The client went away (stream reset / connection closed): cancel the backend side. */
  clientGone(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.cancelBackend?.();
  }

  /**
   * Counts the request in `mcproxy_l7_requests_total` / the duration histogram
   * (route label = configured hostname) and writes the `l7.request` log line.
   * Call once, when the client side is done.
   */
  logDone(): void {
    const ms = performance.now() - this.t0;
    metrics.route(this.record.hostname).request(this.status, ms / 1000);
    if (!logLevelEnabled("info")) return;
    log.info("l7.request", {
      listener: this.conn.ctx.listenerAddr,
      route: this.record.hostname,
      client: this.conn.ctx.client.address,
      method: this.method,
      path: this.path,
      status: this.status,
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      duration_ms: Math.round(ms * 10) / 10,
      backend: this.record.backend,
      protocol: `${this.front.protocol}->${this.backendProtocol || "none"}`,
    });
  }

  fail(status: number, text: string, err?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.cancelBackend?.();
    if (this.front.headSent) return this.front.abort();
    this.status = status;
    if (err !== undefined || status === 504) {
      log.warn("l7.backend_error", {
        listener: this.conn.ctx.listenerAddr,
        route: this.record.hostname,
        backend: this.record.backend,
        status,
        reason: err instanceof Error ? `${(err as { code?: string }).code ?? ""} ${err.message}`.trim() : "timeout",
      });
    }
    this.front.fail(status, text);
  }

  private timedOut(): void {
    if (this.finished || this.front.headSent) return;
    this.fail(504, BODY_504);
  }

  private backendError(e: unknown): void {
    if (this.finished) {
      return;
    }
    if (this.front.headSent) {
      this.finished = true;
      this.front.abort();
      return;
    }
    if (isConnectError(e) && this.target && this.pool) {
      this.pool.connectFailed(this.target);
      metrics.listener(this.conn.ctx.listenerAddr).backendConnectFailure("l7");
      return this.fail(502, BODY_502, e);
    }
    this.fail(502, BODY_502_ERR, e);
  }

  private gotHead(status: number): void {
    clearTimeout(this.timer);
    this.status = status;
  }

  private send(c: Client, authority: string, headers: HeaderMap, body: Readable | null): void {
    if (c.kind === "h2") this.sendH2(c.client, authority, headers, body);
    else this.sendH1(c.client, authority, headers, body);
  }

  private sendH2(client: H2Client, authority: string, headers: HeaderMap, body: Readable | null): void {
    this.backendProtocol = "h2";
    headers[":method"] = this.method;
    headers[":path"] = this.path;
    headers[":authority"] = authority;
    headers[":scheme"] = this.target!.tls ? "https" : "http";
    let s: http2.ClientHttp2Stream;
    try {
      s = client.request(headers as http2.OutgoingHttpHeaders, body === null);
    } catch (e) {
      return this.backendError(e);
    }
    let ended = false;
    this.cancelBackend = () => {
      if (!s.destroyed) s.close(NGHTTP2_CANCEL);
    };
    s.on("response", (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number) => {
      if (this.finished) return;
      const status = Number(h[":status"]);
      this.gotHead(status);
      const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0 || s.endAfterHeaders === true;
      this.front.head(status, clientResponseHeaders(h as HeaderMap), endStream);
      if (endStream) {
        ended = true;
        this.finished = true;
        return;
      }
      pump(s, this.front.body, this, this.conn.duplex, () => {
        ended = true;
        this.finished = true;
        if (this.trailers) this.front.setTrailers(clientResponseHeaders(this.trailers));
        this.front.body.end();
      });
    });
    s.on("trailers", (t: HeaderMap) => {
      this.trailers = t;
    });
    s.on("error", (e) => this.backendError(e));
    s.on("close", () => {
      if (ended || this.finished) return;
      const code = s.rstCode ?? 0;
      if (this.front.headSent) {
        this.finished = true;
        this.front.abort();
      } else this.backendError(Object.assign(new Error(`backend reset the stream (code ${code})`), { code: "ERR_HTTP2_STREAM_ERROR" }));
    });
    if (body) pump(body, s, this, null, () => s.end());
  }

  private sendH1(client: H1Client, authority: string, headers: HeaderMap, body: Readable | null): void {
    this.backendProtocol = "http1";
    headers["host"] = authority;
    let r: http.ClientRequest;
    try {
      r = client.request(this.method, this.path, headers);
    } catch (e) {
      return this.backendError(e);
    }
    this.cancelBackend = () => r.destroy();
    r.on("response", (res: http.IncomingMessage) => {
      if (this.finished) {
        res.resume();
        return;
      }
      const status = res.statusCode ?? 502;
      this.gotHead(status);
      this.front.head(status, clientResponseHeaders(res.headers as HeaderMap), false);
      let ended = false;
      pump(res, this.front.body, this, this.conn.duplex, () => {
        ended = true;
        this.finished = true;
        const t = res.trailers;
        if (t && Object.keys(t).length > 0) this.front.setTrailers(clientResponseHeaders(t as HeaderMap));
        this.front.body.end();
      });
      res.on("close", () => {
        if (!ended && !this.finished) {
          this.finished = true;
          this.front.abort();
        }
      });
    });
    r.on("error", (e) => this.backendError(e));
    if (body) pump(body, r, this, null, () => r.end());
    else r.end();
  }
}

/**
 * Streams `src` into `dst` with backpressure (pause on a full `dst`, resume
 * on its drain), counting bytes into the exchange; `onEnd` runs when `src`
 * ends and must end `dst`. `client` is set for the response direction: the
 * client connection's buffer below TLS is checked too (Bun's TLS layer does
 * not pass that backpressure up to `dst`).
 */
function pump(src: Readable, dst: Writable, ex: Exchange, client: NativeSocketDuplex | null, onEnd: () => void): void {
  const resume = () => src.resume();
  src.on("data", (c: Buffer) => {
    if (client) ex.bytesOut += c.length;
    else ex.bytesIn += c.length;
    if (dst.destroyed) return;
    if (!dst.write(c)) src.pause();
    else if (client !== null && client.overloaded()) {
      src.pause();
      client.whenDrained(resume);
    }
  });
  dst.on("drain", () => {
    if (client !== null && client.overloaded()) client.whenDrained(resume);
    else src.resume();
  });
  src.on("end", () => {
    if (!dst.destroyed) onEnd();
  });
}
