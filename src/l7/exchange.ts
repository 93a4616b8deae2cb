/**
 * One proxied request ("exchange"), independent of the protocols on either
 * side: the client side is a `FrontSide` (our HTTP/1.1 connection or an
 * HTTP/2 stream), the backend side a `BackendStream` (our HTTP/1.1 pool or an
 * HTTP/2 stream). The exchange moves the request body one way and the
 * response the other with backpressure in both directions, relays trailers,
 * owns `backend_timeout` (counted from the end of the request body, checked
 * by the server's sweeper through `tick`) and answers 502/504 itself.
 */
import { L7_MAX_INFORMATIONAL_HEADS } from "../limits.ts";
import { log, logLevelEnabled } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import type { RouteEntry } from "../state/state.ts";
import type { RouteRecord } from "../records.ts";
import { requestTrailerFields, type Fields } from "./headers.ts";

export const BODY_502 = "502 Bad Gateway: backend unreachable\n";
export const BODY_502_ERR = "502 Bad Gateway: backend error\n";
export const BODY_504 = "504 Gateway Timeout: backend did not answer in time\n";
/** Exchange.bodyActiveAt: the body moved since the last tick. */
const BODY_MOVED = -1;
export const BODY_408 = "408 Request Timeout: the request body stopped coming\n";
export const BODY_403 = "403 Forbidden: blocked by policy\n";
export const BODY_421 = "421 Misdirected Request: this connection is not for that host\n";

/** The client side of one exchange. */
export interface FrontSide {
  readonly protocol: "h2" | "http1";
  /** Sends the response head; `endStream` = no body follows; `contentLength` -1 when unknown. */
  head(status: number, fields: readonly string[], endStream: boolean, contentLength: number): void;
  /** Sends an informational (1xx, not 100 or 101) head before the final one, where the client's protocol has them (RFC 9110 §15.2). */
  informational(status: number, fields: Fields): void;
  /**
   * Sends an HTTP/1.1 backend's response head raw[start, end) as it is, less
   * the `drop` lines (a forwardable head, see `H1MessageFacts.forwardable`),
   * followed by the whole body body[bodyStart, bodyEnd) when `body` is given
   * (`end` follows), when this side can (an HTTP/1.1 client whose connection
   * stays open); false = call `head` (and `data`) instead. Buffers are valid
   * only during the call.
   */
  rawHead?(raw: Uint8Array, start: number, end: number, drop: readonly number[], body: Uint8Array | null, bodyStart: number, bodyEnd: number, endStream: boolean): boolean;
  /** Whether `rawHead` would take a head right now. */
  canTakeRawHead?(): boolean;
  /** Response body bytes buf[start, end) (valid only during the call). False = stop until the front calls `Exchange.responseWritable`. */
  data(buf: Uint8Array, start: number, end: number): boolean;
  /** End of the response, with trailers (possibly empty). */
  end(trailers: Fields): void;
  /** A short text/plain answer; only before `head`. */
  fail(status: number, text: string): void;
  /** The response broke after its head was sent: reset the stream / close the connection. */
  abort(): void;
  /** Stop delivering request body bytes until `resumeRequest` (the backend is full or not chosen yet). */
  pauseRequest(): void;
  resumeRequest(): void;
}

/** The backend side of one exchange, once chosen. */
export interface BackendStream {
  /** Request body bytes; false = full, wait for `Exchange.backendWritable`. */
  write(chunk: Uint8Array): boolean;
  end(trailers: readonly string[] | null): void;
  /** The front can take response bytes again. */
  resume(): void;
  /** Abandon: the client went away or the exchange failed. */
  cancel(): void;
}

export interface BackendFailure {
  /** "connect": unreachable (→ 502, re-probe an auto backend); otherwise a broken exchange. */
  connect: boolean;
  code: string;
  message: string;
}

/** What the exchange reports when the client side is done (metrics, the l7.request log line). */
export interface ExchangeInfo {
  listenerAddr: string;
  clientAddress: string;
  backendTimeoutMs: number;
  /** A request body that makes no progress this long (while we are not holding it back) ends the exchange: 408. */
  idleTimeoutMs: number;
}

export class Exchange {
  bytesIn = 0;
  bytesOut = 0;
  status = 0;
  backendProtocol = "";
  /** Answered, failed or cancelled: no more backend events matter. */
  finished = false;
  /** Response head received or sent (the 504 no longer applies). */
  private headSeen = false;
  /** When the request body ended (0 = not yet): backend_timeout counts from here. */
  private requestDoneAt = 0;
  /**
   * While a request body is coming: the sweeper's time (ms) by which the
   * client last delivered some of it or we last let it send; BODY_MOVED when
   * that happened since the last tick (tick stamps it: no clock read per
   * chunk or per request); 0 before the backend side is attached. A body
   * stalled for idle_timeout is a 408 (tick), to within a sweep.
   */
  private bodyActiveAt = 0;
  /** We hold the client's body back (the backend side is full): a stall is ours, not the client's. */
  private holding = false;
  private backend: BackendStream | null = null;
  /** Request body parts that arrived before the backend was chosen (the front is paused meanwhile). */
  private early: Uint8Array[] | null = null;
  private earlyEnd: readonly string[] | null | undefined = undefined;
  private logged = false;
  /** 1xx heads seen (only the first L7_MAX_INFORMATIONAL_HEADS are relayed). */
  private informational = 0;
  private readonly t0 = performance.now();

  constructor(
    private readonly info: ExchangeInfo,
    private readonly front: FrontSide,
    /** The route as it was when the request arrived (its backend target and CA go with it). */
    readonly entry: RouteEntry,
    private readonly method: string,
    private readonly path: string,
  ) {}

  get record(): RouteRecord {
    return this.entry.record;
  }

  /** The backend side is ready: replay what the front delivered meanwhile and let the body flow. */
  attach(b: BackendStream, protocol: string): void {
    if (this.finished) return b.cancel();
    this.backend = b;
    this.backendProtocol = protocol;
    const early = this.early;
    this.early = null;
    let open = true;
    if (early) for (const c of early) open = b.write(c) && open;
    if (this.earlyEnd !== undefined) {
      b.end(this.earlyEnd);
      this.requestDoneAt = Date.now(); // exact: the coarse clock may lag by a sweep, which would fire the 504 early
      return;
    }
    this.bodyActiveAt = BODY_MOVED;
    this.holding = !open;
    if (open) this.front.resumeRequest();
  }

  // ------------------------------------------------ request direction (front → backend)

  requestData(chunk: Uint8Array): void {
    if (this.finished) return;
    this.bytesIn += chunk.byteLength;
    const b = this.backend;
    if (b === null) {
      // Copy: the chunk is a view of the front's read buffer.
      (this.early ??= []).push(chunk.slice());
      this.front.pauseRequest();
      return;
    }
    this.bodyActiveAt = BODY_MOVED;
    if (!b.write(chunk)) {
      this.holding = true;
      this.front.pauseRequest();
    }
  }

  requestEnd(trailers: readonly string[] | null): void {
    if (this.finished) return;
    // The header rules hold for trailers too: no forwarding claims, framing or routing from the client.
    if (trailers !== null && trailers.length > 0) trailers = requestTrailerFields(trailers);
    if (this.backend === null) {
      this.earlyEnd = trailers;
      return;
    }
    this.backend.end(trailers);
    this.requestDoneAt = Date.now(); // exact: the coarse clock may lag by a sweep, which would fire the 504 early
  }

  /** The backend can take request bytes again. */
  backendWritable(): void {
    if (this.finished) return;
    if (this.holding) {
      this.holding = false;
      this.bodyActiveAt = BODY_MOVED;
    }
    this.front.resumeRequest();
  }

  // ------------------------------------------------ response direction (backend → front)

  onHead(status: number, fields: readonly string[], endStream: boolean, contentLength: number): void {
    if (this.finished) return;
    this.headSeen = true;
    this.status = status;
    this.front.head(status, fields, endStream, contentLength);
    if (endStream) this.finished = true;
  }

  /**
   * A 1xx head from the backend (103 Early Hints, 102): a proxy forwards them
   * (RFC 9110 §15.2). Not 100: each front answers Expect: 100-continue itself,
   * and the backend's own 100 would be a second one. Not 101 (onHead: tunnel).
   */
  onInformational(status: number, fields: Fields): void {
    if (this.finished || this.headSeen || status === 100 || status === 101) return;
    if (++this.informational > L7_MAX_INFORMATIONAL_HEADS) return;
    this.front.informational(status, fields);
  }

  /** Whether a forwardable HTTP/1.1 response head would go to the client as its own bytes now (it is then parsed framing-only). */
  wantsRawHead(): boolean {
    return !this.finished && this.front.canTakeRawHead?.() === true;
  }

  /** The response head (and maybe its whole body) as an HTTP/1.1 backend sent it, if the front can forward it as is; false = call `onHead`. */
  onRawHead(
    status: number,
    raw: Uint8Array,
    start: number,
    end: number,
    drop: readonly number[],
    body: Uint8Array | null,
    bodyStart: number,
    bodyEnd: number,
    endStream: boolean,
  ): boolean {
    if (this.finished) return true;
    const front = this.front;
    if (front.rawHead === undefined || !front.rawHead(raw, start, end, drop, body, bodyStart, bodyEnd, endStream)) return false;
    this.bytesOut += bodyEnd - bodyStart;
    this.headSeen = true;
    this.status = status;
    if (endStream) this.finished = true;
    return true;
  }

  /** Response body bytes buf[start, end); false = the front is full (the backend pauses until `resume`). */
  onData(buf: Uint8Array, start: number, end: number): boolean {
    if (this.finished) return true;
    this.bytesOut += end - start;
    return this.front.data(buf, start, end);
  }

  onEnd(trailers: Fields): void {
    if (this.finished) return;
    // A backend stream that ends with no response head (Bun's node:http2 reports a reset before
    // HEADERS as a clean end): 502, never a stream ended without a status.
    if (!this.headSeen) return this.onError({ connect: false, code: "", message: "backend ended the stream without a response" });
    this.finished = true;
    this.front.end(trailers);
  }

  /** The front drained: let the backend send again. */
  responseWritable(): void {
    if (!this.finished) this.backend?.resume();
  }

  onError(e: BackendFailure): void {
    if (this.finished) return;
    if (this.headSeen) {
      this.finished = true;
      this.front.abort();
      return;
    }
    if (e.connect) metrics.listener(this.info.listenerAddr).backendConnectFailure("l7");
    this.fail(502, e.connect ? BODY_502 : BODY_502_ERR, `${e.code} ${e.message}`.trim());
  }

  // ------------------------------------------------ lifetime

  /** The server's sweeper: 504 once `backend_timeout` passed since the request body ended without a response head. */
  tick(now: number): void {
    if (this.finished) return;
    if (this.requestDoneAt === 0) {
      // The body is still coming: a client that stops sending it (not held back by us) is cut, like
      // the HTTP/1.1 front's idle check and nginx's client_body_timeout (HTTP/2 streams had none).
      if (this.bodyActiveAt === BODY_MOVED) this.bodyActiveAt = now;
      else if (this.bodyActiveAt !== 0 && !this.holding && now - this.bodyActiveAt >= this.info.idleTimeoutMs) {
        this.fail(408, BODY_408, "request_body_timeout");
      }
      return;
    }
    if (this.headSeen) return;
    if (now - this.requestDoneAt >= this.info.backendTimeoutMs) this.fail(504, BODY_504, "timeout");
  }

  /** The client went away (stream reset / connection closed): cancel the backend side. */
  clientGone(): void {
    if (this.finished) return;
    this.finished = true;
    this.backend?.cancel();
  }

  /** Answers `status` with a short text (or aborts when the head is out), cancels the backend, logs `reason`. */
  fail(status: number, text: string, reason?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.backend?.cancel();
    if (this.headSeen) return this.front.abort();
    this.status = status;
    if (reason !== undefined) {
      log.warn("l7.backend_error", {
        listener: this.info.listenerAddr,
        route: this.record.hostname,
        backend: this.record.backend,
        status,
        reason,
      });
    }
    this.front.fail(status, text);
  }

  /**
   * Counts the request in `mcproxy_l7_requests_total` and the duration
   * histogram (route label = configured hostname) and writes the `l7.request`
   * log line — the path without its query (tokens live there). Once.
   */
  logDone(): void {
    if (this.logged) return;
    this.logged = true;
    const ms = performance.now() - this.t0;
    metrics.route(this.record.hostname).request(this.status, ms / 1000);
    if (!logLevelEnabled("info")) return;
    const q = this.path.indexOf("?");
    log.info("l7.request", {
      listener: this.info.listenerAddr,
      route: this.record.hostname,
      client: this.info.clientAddress,
      method: this.method,
      path: q < 0 ? this.path : this.path.slice(0, q),
      status: this.status,
      bytes_in: this.bytesIn,
      bytes_out: this.bytesOut,
      duration_ms: Math.round(ms * 10) / 10,
      backend: this.record.backend,
      protocol: `${this.front.protocol}->${this.backendProtocol || "none"}`,
    });
  }
}
