/**
 * Our HTTP/1.1 server side, on the native TLS socket: parses requests
 * (pipelined; one exchange at a time, in order), streams request bodies to
 * the exchange and responses back with backpressure both ways, and enforces
 * the connection's HTTP deadlines:
 * - a request head must arrive whole within hello_timeout of its first byte
 *   (the first one: of the handshake's end) — else 408 and close; a trickle
 *   cannot extend it (absolute deadline);
 * - an idle keep-alive connection is closed after idle_timeout;
 * - a request or response that stalls for idle_timeout is cut.
 * Malformed requests (RFC 9112 §6 smuggling shapes, too many or too large
 * headers, …) get 400/431/501/505 from the codec's verdict and the
 * connection is closed: nothing ambiguous ever reaches a backend. A client
 * that sends its request and then FIN (half-close) still gets its answer.
 */
import { H1_PIPELINE_MAX_BYTES, H1_REQUEST_HEAD_PARSE_MEMO_BYTES, H1_RESPONSE_HIGH_WATER_BYTES } from "../../limits.ts";
import { log } from "../../obs/log.ts";
import type { L7Conn, ProtocolFront } from "../conn.ts";
import type { Exchange, FrontSide } from "../exchange.ts";
import { forward, newExchange, type RequestIn } from "../forward.ts";
import { field, type Fields } from "../headers.ts";
import { startWebSocket } from "../websocket.ts";
import { copyWithout, rangeEquals } from "./bytes.ts";
import {
  ChunkedDecoder,
  encodeLastChunk,
  LengthDecoder,
  parseRequestHead,
  serializeResponseHead,
  type BodySink,
  type H1BodyDecoder,
  type H1Error,
  type RequestHead,
} from "./codec.ts";

const enum State {
  /** Waiting for (or reading) a request head. */
  Head,
  /** Reading the current request's body. */
  Body,
  /** The request is complete; its response is being written. */
  Response,
  /** Handed over to a WebSocket tunnel, or closing: ignore input. */
  Done,
}

const CONTINUE_100 = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
const CRLF = Buffer.from("\r\n", "latin1");
const EMPTY = new Uint8Array(0);

export class H1Front implements ProtocolFront, FrontSide {
  readonly protocol = "http1";
  private state = State.Head;
  /** Unparsed input: buf[lo, hi). */
  private buf: Uint8Array = EMPTY;
  private lo = 0;
  private hi = 0;
  /** When the head being awaited started (0 = no byte of it yet). */
  private headStartedAt: number;
  /** Coarse time of the last byte in either direction. */
  private lastActivity: number;
  private ex: Exchange | null = null;
  private req: RequestHead | null = null;
  /**
   * The last request head parsed and a copy of its bytes (up to
   * H1_REQUEST_HEAD_PARSE_MEMO_BYTES): clients repeat their heads byte for
   * byte (keep-alive loops, health checks, API clients), and the same bytes
   * parse to the same head — a RequestHead holds no buffer offsets and is
   * never modified, so it is returned again for a byte compare (~60 ns)
   * instead of a parse, with its strings and lists.
   */
  private lastHead: RequestHead | null = null;
  private lastHeadBytes: Uint8Array | null = null;
  private decoder: H1BodyDecoder | null = null;
  private readonly sink: BodySink = (buf, start, end) => this.ex!.requestData(buf.subarray(start, end));
  /** The backend (or an unchosen backend) cannot take more request body: the socket is paused. */
  private requestPaused = false;
  private pipelinePaused = false;
  private processing = false;
  // Response side.
  private headSent = false;
  private chunkedOut = false;
  /** The current response has no content (HEAD, 204, 304, or its head ended it): data() drops bytes. */
  private noContent = false;
  private closeAfter = false;
  private clientEnded = false;
  /** Output of this event-loop turn, written as one buffer (one TLS record burst) in a microtask. */
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  private flushQueued = false;
  /** Bytes the socket has not taken yet (L7Conn.send); past the high-water mark the backend pauses. */
  private queuedBytes = 0;
  private shutdownWhenFlushed = false;

  constructor(private readonly conn: L7Conn) {
    const now = conn.ctx.now();
    this.headStartedAt = Date.now(); // the first head is due within hello_timeout of the handshake
    this.lastActivity = now;
  }

  // ------------------------------------------------ socket events

  onData(chunk: Uint8Array): void {
    this.lastActivity = this.conn.ctx.now();
    if (this.state === State.Done) return;
    if (this.lo === this.hi) {
      // Nothing left over: parse straight from the socket's chunk.
      this.buf = chunk;
      this.lo = 0;
      this.hi = chunk.byteLength;
    } else this.append(chunk);
    this.process();
  }

  onEnd(): void {
    this.clientEnded = true;
    if (this.state === State.Body) {
      // The body was cut short: the request cannot be forwarded whole.
      this.ex?.fail(400, "400 Bad Request: request body incomplete\n", "client closed during the request body");
      return this.conn.abort();
    }
    if (this.state === State.Head && this.ex === null) this.closeWhenFlushed();
    // State.Response: answer first (half-close), then close — see finishResponse.
  }

  onDrain(): void {
    if (!this.conn.flushQueued()) return;
    this.queuedBytes = 0;
    this.ex?.responseWritable();
  }

  onClose(): void {
    this.state = State.Done;
    this.ex?.clientGone();
  }

  tick(now: number): void {
    const p = this.conn.ctx.proxy;
    if (this.state === State.Head && this.ex === null) {
      if (this.lo === this.hi && now - this.lastActivity >= p.idleTimeoutMs) {
        // Nothing of a next request: an idle keep-alive connection.
        this.conn.outcome = "idle_timeout";
        this.closeWhenFlushed();
      } else if (this.headStartedAt !== 0 && now - this.headStartedAt >= p.helloTimeoutMs) this.headTimedOut();
      return;
    }
    if (this.state !== State.Done && now - this.lastActivity >= p.idleTimeoutMs) {
      this.conn.outcome = "idle_timeout";
      this.ex?.clientGone();
      this.conn.abort();
    }
  }

  beginDrain(): void {
    this.closeAfter = true;
    if (this.state === State.Head && this.ex === null && this.lo === this.hi) this.closeWhenFlushed();
  }

  // ------------------------------------------------ requests

  private append(chunk: Uint8Array): void {
    const have = this.hi - this.lo;
    const need = have + chunk.byteLength;
    if (this.lo > 0 || need > this.buf.byteLength || this.buf === chunk) {
      const next = new Uint8Array(Math.max(need, Math.min(2 * need, H1_PIPELINE_MAX_BYTES + chunk.byteLength)));
      next.set(this.buf.subarray(this.lo, this.hi));
      this.buf = next;
      this.lo = 0;
      this.hi = have;
    }
    this.buf.set(chunk, this.hi);
    this.hi += chunk.byteLength;
  }

  /** Parses and runs what the buffer holds, as far as the current exchange allows. */
  private process(): void {
    if (this.processing) return; // re-entered from an exchange that finished synchronously: the loop below goes on
    this.processing = true;
    try {
      this.parse();
    } finally {
      this.processing = false;
    }
  }

  private parse(): void {
    for (;;) {
      if (this.state === State.Head) {
        if (this.ex !== null || this.lo === this.hi) break;
        if (this.headStartedAt === 0) this.headStartedAt = Date.now(); // exact: the coarse clock lags by up to a sweep
        const r = this.parseHead();
        if (r.kind === "more") break;
        if (r.kind === "error") return this.badRequest(r);
        this.lo += r.length;
        this.headStartedAt = 0;
        this.begin(r);
        continue;
      }
      if (this.state === State.Body) {
        if (this.requestPaused || this.lo === this.hi) break;
        const n = this.decoder!.push(this.buf, this.lo, this.hi, this.sink);
        if (typeof n !== "number") return this.badBody(n);
        this.lo += n;
        if (this.decoder!.done) {
          const trailers = this.decoder instanceof ChunkedDecoder && this.decoder.trailers.length ? this.decoder.trailers : null;
          this.decoder = null;
          this.state = State.Response;
          this.ex?.requestEnd(trailers);
        }
        continue;
      }
      break;
    }
    if (this.lo === this.hi) {
      this.buf = EMPTY;
      this.lo = this.hi = 0;
    } else if (this.buf.byteLength === this.hi && this.lo === 0 && this.state !== State.Done) {
      // The leftover is a view of the socket's chunk: keep a copy (the chunk is not ours after this call).
      this.buf = this.buf.slice(this.lo, this.hi);
      this.hi -= this.lo;
      this.lo = 0;
    }
    // Pipelined requests wait in the buffer while a response is written; bound it.
    const buffered = this.hi - this.lo;
    if (!this.pipelinePaused && this.state === State.Response && buffered > H1_PIPELINE_MAX_BYTES) {
      this.pipelinePaused = true;
      this.conn.tls.pause();
    }
  }

  /** parseRequestHead of buf[lo, hi), or the previous head when these start with exactly its bytes. */
  private parseHead(): ReturnType<typeof parseRequestHead> {
    const prev = this.lastHead;
    if (prev !== null && this.hi - this.lo >= prev.length && rangeEquals(this.lastHeadBytes!, this.buf, this.lo)) return prev;
    const r = parseRequestHead(this.buf, this.lo, this.hi);
    if (r.kind === "request" && r.length <= H1_REQUEST_HEAD_PARSE_MEMO_BYTES) {
      this.lastHead = r;
      this.lastHeadBytes = this.buf.slice(this.lo, this.lo + r.length);
    }
    return r;
  }

  private begin(h: RequestHead): void {
    this.req = h;
    this.headSent = false;
    this.chunkedOut = false;
    this.noContent = false;
    if (!h.keepAlive || this.conn.draining) this.closeAfter = true;
    if (h.websocket) {
      this.state = State.Done;
      const rest = this.buf.slice(this.lo, this.hi);
      this.buf = EMPTY;
      this.lo = this.hi = 0;
      startWebSocket(this.conn, h, rest);
      return;
    }
    const hasBody = h.framing === "length" ? h.contentLength > 0 : h.framing === "chunked";
    let path = h.target;
    if (h.targetForm === "absolute") {
      const slash = path.indexOf("/", path.indexOf("//") + 2);
      path = slash < 0 ? "/" : path.slice(slash);
    }
    this.state = hasBody ? State.Body : State.Response;
    this.decoder = !hasBody ? null : h.framing === "chunked" ? new ChunkedDecoder() : new LengthDecoder(h.contentLength);
    const req: RequestIn = {
      method: h.method,
      path,
      authority: h.host,
      fields: h.headers,
      body: !hasBody ? "none" : h.framing === "chunked" ? "chunked" : "length",
      contentLength: h.contentLength,
      // begin() runs after parse() advanced `lo` past this head.
      raw: h.forwardable ? this.buf : null,
      rawStart: this.lo - h.length + h.headOffset,
      rawEnd: this.lo - 2,
      rawDrop: h.dropLines,
      rawKey: h.forwardable ? h : null,
    };
    const ex = (this.ex = newExchange(this.conn, this, req));
    forward(this.conn, this, ex, req);
    // After forward(): a request answered at once (421, 403) gets that answer, not a 100 first.
    if (h.expectContinue && hasBody && !this.headSent && !ex.finished) this.out(CONTINUE_100);
    if (!hasBody) ex.requestEnd(null);
  }

  /** The codec refused a request head: answer its status and close (nothing reached a backend). */
  private badRequest(e: H1Error): void {
    const c = this.conn.ctx;
    log.info("l7.bad_request", { listener: c.listenerAddr, sni: c.sni, client: c.client.address, status: e.status, reason: e.reason });
    this.state = State.Done;
    this.closeAfter = true;
    this.simpleResponse(e.status, `${e.status} ${reasonPhrase(e.status)}: ${e.reason}\n`);
    this.closeWhenFlushed();
  }

  private badBody(e: H1Error): void {
    this.state = State.Done;
    this.closeAfter = true;
    const c = this.conn.ctx;
    log.info("l7.bad_request", { listener: c.listenerAddr, sni: c.sni, client: c.client.address, status: e.status, reason: `body: ${e.reason}` });
    if (this.ex && !this.headSent) {
      // The client's error, logged above: no l7.backend_error line.
      this.ex.fail(e.status, `${e.status} ${reasonPhrase(e.status)}: ${e.reason}\n`);
      // finishResponse() leaves a Done front alone: close here, or the connection stays open until idle_timeout.
      this.closeWhenFlushed();
    } else this.conn.abort();
  }

  private headTimedOut(): void {
    const c = this.conn.ctx;
    this.conn.outcome = "header_timeout";
    log.info("l7.header_timeout", { listener: c.listenerAddr, sni: c.sni, client: c.client.address, limit_ms: c.proxy.helloTimeoutMs });
    this.state = State.Done;
    this.closeAfter = true;
    this.simpleResponse(408, "Request Timeout\n");
    this.closeWhenFlushed();
  }

  // ------------------------------------------------ FrontSide: the current exchange's response

  informational(status: number, fields: Fields): void {
    // HTTP/1.0 has no 1xx (RFC 9110 §15.2); after the final head it is too late.
    if (this.headSent || this.req === null || this.req.version !== "1.1" || this.state === State.Done) return;
    const bytes = serializeResponseHead(status, reasonPhrase(status), fields);
    if (bytes instanceof Uint8Array) this.out(bytes);
  }

  head(status: number, fields: readonly string[], endStream: boolean, contentLength: number): void {
    const req = this.req!;
    // A copy: the framing and connection fields go on the end, and the list may be shared (H1Side's memo).
    const out = fields.slice();
    const bodyless = endStream || req.method === "HEAD" || status === 204 || status === 304 || status < 200;
    this.noContent = bodyless;
    if (!bodyless) {
      if (contentLength < 0) {
        if (req.version === "1.1") {
          out.push("transfer-encoding", "chunked");
          this.chunkedOut = true;
        } else this.closeAfter = true; // HTTP/1.0: the body ends with the connection
      } else if (field(out, "content-length") === undefined) out.push("content-length", String(contentLength));
    } else if (endStream && status >= 200 && status !== 204 && status !== 304 && req.method !== "HEAD" && field(out, "content-length") === undefined) {
      out.push("content-length", "0");
    }
    if (this.state === State.Body) this.closeAfter = true; // answered before the body was read: close after
    if (this.closeAfter) out.push("connection", "close");
    else if (req.version === "1.0") out.push("connection", "keep-alive");
    const bytes = serializeResponseHead(status, reasonPhrase(status), out);
    if (!(bytes instanceof Uint8Array)) {
      // The backend sent something HTTP/1.1 cannot carry (a CR in a value, …).
      this.headSent = false;
      this.ex?.fail(502, "502 Bad Gateway: backend response not representable\n", `response head: ${bytes.reason}`);
      return;
    }
    this.headSent = true;
    this.out(bytes);
    if (endStream) this.finishResponse();
  }

  canTakeRawHead(): boolean {
    // Only where `head` would add nothing: HTTP/1.1, the connection stays open, the request was read whole.
    return !this.closeAfter && this.state === State.Response && this.req !== null && this.req.version === "1.1";
  }

  rawHead(raw: Uint8Array, start: number, end: number, drop: readonly number[], body: Uint8Array | null, bodyStart: number, bodyEnd: number, endStream: boolean): boolean {
    if (!this.canTakeRawHead()) return false;
    this.headSent = true;
    this.noContent = endStream && body === null;
    // A copy: the buffers are the backend's read buffers. With its whole body it goes out now.
    this.out(copyWithout(raw, start, end, drop, null, body, bodyStart, bodyEnd), body !== null);
    if (body !== null) this.lastActivity = this.conn.ctx.now();
    if (endStream) this.finishResponse();
    return true;
  }

  data(buf: Uint8Array, start: number, end: number): boolean {
    // A response without content (HEAD, 204, 304, or ended with its head) takes no bytes: any would
    // be read by the client as the next response. Backends are checked too; this is the last guard.
    if (start === end || this.noContent) return true;
    const chunk = buf.subarray(start, end);
    // Written now (with the head, if it still waits): the chunk is only valid during this call.
    if (this.chunkedOut) {
      this.out(Buffer.from(chunk.byteLength.toString(16) + "\r\n", "latin1"));
      this.out(chunk);
      this.out(CRLF, true);
    } else this.out(chunk, true);
    this.lastActivity = this.conn.ctx.now();
    return this.queuedBytes < H1_RESPONSE_HIGH_WATER_BYTES;
  }

  end(trailers: Fields): void {
    if (this.chunkedOut) {
      const last = encodeLastChunk(trailers);
      this.out(last instanceof Uint8Array ? last : encodeLastChunk() as Uint8Array);
    }
    this.flush();
    this.finishResponse();
  }

  fail(status: number, text: string): void {
    if (this.headSent) return this.abort();
    if (this.state === State.Body) this.closeAfter = true; // the rest of the body is not read
    this.simpleResponse(status, text);
    this.finishResponse();
  }

  /**
   * The response broke after its head (the backend sent an invalid chunk,
   * reset, …): what is queued goes to the socket (the client sees the
   * response cut, not an empty reply), the exchange is counted and logged
   * like any other, and the connection is cut.
   */
  abort(): void {
    this.state = State.Done;
    this.flush();
    this.finishResponse(); // with State.Done: detaches and logs the exchange, nothing more
    this.conn.abort();
  }

  pauseRequest(): void {
    if (this.requestPaused) return;
    this.requestPaused = true;
    this.conn.tls.pause();
  }

  resumeRequest(): void {
    if (!this.requestPaused) return;
    this.requestPaused = false;
    this.conn.tls.resume();
    if (this.state === State.Body) this.process();
  }

  // ------------------------------------------------ output

  /**
   * A response of our own (an error): its text as the body — except to a HEAD
   * request, which gets the head only (RFC 9110 §9.3.2; its Content-Length
   * says what a GET would get): a body there would be read as the start of
   * the next response by a client that, rightly, expects none.
   */
  private simpleResponse(status: number, text: string): void {
    const f: Fields = ["content-type", "text/plain; charset=utf-8", "content-length", String(Buffer.byteLength(text))];
    if (this.closeAfter) f.push("connection", "close");
    this.out(serializeResponseHead(status, reasonPhrase(status), f) as Uint8Array);
    if (this.req?.method !== "HEAD") this.out(Buffer.from(text));
    this.headSent = true;
  }

  /** The current response is complete: next request, or close. */
  private finishResponse(): void {
    const ex = this.ex;
    this.ex = null;
    this.req = null;
    if (ex) {
      this.conn.untrack(ex);
      ex.logDone();
    }
    if (this.state === State.Done) return;
    if (this.closeAfter || this.state === State.Body) {
      this.state = State.Done;
      return this.closeWhenFlushed();
    }
    this.state = State.Head;
    this.decoder = null;
    if (this.pipelinePaused) {
      this.pipelinePaused = false;
      this.conn.tls.resume();
    }
    if (this.requestPaused) {
      this.requestPaused = false;
      this.conn.tls.resume();
    }
    if (this.lo < this.hi) {
      this.process();
      return;
    }
    if (this.clientEnded) this.closeWhenFlushed();
  }

  /**
   * Queues bytes for the socket: a head waits for its body (one write, one TLS
   * record burst) until `data`/`end` flush, or a microtask when none follows;
   * `now` writes the batch at once (the last part of a response chunk).
   */
  private out(b: Uint8Array, now = false): void {
    this.batch.push(b);
    this.batchBytes += b.byteLength;
    if (now) return this.flush(); // written now: no microtask for it
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    const parts = this.batch;
    if (parts.length === 0) return;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    this.queuedBytes = this.conn.send(data);
    if (this.shutdownWhenFlushed) this.conn.closeGently();
  };

  /** close_notify + FIN once everything queued is written. */
  private closeWhenFlushed(): void {
    this.state = State.Done;
    if (this.shutdownWhenFlushed) return;
    this.shutdownWhenFlushed = true;
    // A batch still waiting for its microtask closes after it is sent (flush); else now (after L7Conn's queue).
    if (!this.flushQueued) this.conn.closeGently();
  }
}

const REASONS: Record<number, string> = {
  100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
  206: "Partial Content", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
  307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
  404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
  411: "Length Required", 413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
  421: "Misdirected Request", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
  500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
  504: "Gateway Timeout", 505: "HTTP Version Not Supported",
};

/** The standard reason phrase ("" for codes without one: the phrase is optional, RFC 9112 §4). */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? "";
}
