/**
 * Our HTTP/2 server side (src/l7/h2/session.ts) on the native TLS socket:
 * every stream becomes an exchange through `H2StreamFront`. Flow control is
 * end to end: a stream's DATA is credited back to the client only once the
 * backend has taken it, and a response is read from the backend only as fast
 * as the client's windows let it leave (bounded per-stream queues).
 *
 * Rapid reset: an exchange starts in a microtask after the read that opened
 * its stream, so HEADERS + RST_STREAM in one read never reach a backend; a
 * connection that keeps resetting is cut by the session's budget (GOAWAY
 * ENHANCE_YOUR_CALM). Idle: no open stream for idle_timeout → GOAWAY,
 * whatever PINGs arrive (the session's own rule).
 */
import { H2_ERROR } from "./h2/errors.ts";
import { H2Session, type H2Transport } from "./h2/session.ts";
import type { H2Stream } from "./h2/stream.ts";
import type { L7Conn, ProtocolFront } from "./conn.ts";
import type { Exchange, FrontSide } from "./exchange.ts";
import { forward, newExchange, type RequestIn } from "./forward.ts";
import { field, type Fields } from "./headers.ts";

const NO_DROP: readonly number[] = [];
const NO_FIELDS: readonly string[] = [];

/** The HTTP/2 side of one L7 connection. */
export class H2Front implements ProtocolFront, H2Transport {
  private readonly session: H2Session;
  /** Streams opened in the current read, started in a microtask (rapid reset). */
  private opened: H2StreamFront[] = [];

  constructor(private readonly conn: L7Conn) {
    const p = conn.ctx.proxy;
    this.session = new H2Session(this, {
      role: "server",
      idleTimeoutMs: p.idleTimeoutMs,
      now: conn.ctx.now,
      onStream: (s) => {
        if (this.opened.length === 0) queueMicrotask(this.startOpened);
        this.opened.push(new H2StreamFront(s, this.conn));
      },
      onClose: (err) => {
        if (err !== null && err.code === H2_ERROR.ENHANCE_YOUR_CALM) this.conn.outcome = "h2_abuse";
        this.conn.closeGently();
      },
    });
  }

  // ------------------------------------------------ H2Transport (the TLS socket)

  writeRange(data: Uint8Array, offset: number, length: number): number {
    return this.conn.write(data, offset, length);
  }
  shutdown(): void {
    this.conn.closeGently();
  }
  terminate(): void {
    this.conn.abort();
  }

  // ------------------------------------------------ ProtocolFront

  onData(chunk: Uint8Array): void {
    this.session.receive(chunk);
  }
  /**
   * The client's FIN: a request it had not finished can never be (reset, so
   * its backend side is let go: it used to wait forever for the body); the
   * whole ones finish (GOAWAY), then close.
   */
  onEnd(): void {
    this.session.peerInputEnded();
    if (this.session.openStreams === 0) return this.conn.closeGently();
    this.session.goaway(H2_ERROR.NO_ERROR, false);
  }
  onDrain(): void {
    this.session.drained();
  }
  onClose(): void {
    this.session.transportClosed();
  }
  tick(now: number): void {
    if (this.session.closed) return;
    const wasOpen = this.session.openStreams;
    this.session.tick(now);
    if (wasOpen === 0 && this.session.closed) this.conn.outcome = "idle_timeout";
  }
  /** GOAWAY: streams already open complete, new ones are refused; then close. */
  beginDrain(): void {
    if (this.session.openStreams === 0) {
      this.session.goaway(H2_ERROR.NO_ERROR, false);
      return this.conn.closeGently();
    }
    this.session.goaway();
  }

  private readonly startOpened = (): void => {
    const list = this.opened;
    this.opened = [];
    for (const f of list) f.start();
  };
}

/** One HTTP/2 stream as the client side of an exchange, and its request as forward() takes it (one object per stream). */
class H2StreamFront implements FrontSide, RequestIn {
  // RequestIn: set in start().
  method = "";
  path = "";
  authority = "";
  fields: readonly string[] = NO_FIELDS;
  body: RequestIn["body"] = "none";
  contentLength = -1;
  ex: Exchange | null = null;
  private paused = false;
  /** Request bytes delivered while the backend was full: credited back when it drains. */
  private uncredited = 0;
  private done = false;
  /** Body bytes that arrived in the read that opened the stream (copied; not credited yet). */
  private early: Uint8Array[] | null = null;
  /** The request ended before the exchange started (undefined: not yet). */
  private earlyEnd: readonly string[] | null | undefined = undefined;
  private reset = false;

  constructor(
    private readonly s: H2Stream,
    private readonly conn: L7Conn,
  ) {
    // Shared functions, this = the stream (no closures per stream: src/l7/h2/stream.ts).
    s.context = this;
    s.onData = frontOnData;
    s.onEnd = frontOnEnd;
    s.onReset = frontOnReset;
    s.onWritable = frontOnWritable;
  }

  // Constants on the prototype, not in every stream's object.
  get protocol(): "h2" {
    return "h2";
  }
  get raw(): null {
    return null;
  }
  get rawStart(): number {
    return 0;
  }
  get rawEnd(): number {
    return 0;
  }
  get rawDrop(): readonly number[] {
    return NO_DROP;
  }
  get rawKey(): null {
    return null;
  }

  onData(chunk: Uint8Array): void {
    const ex = this.ex;
    if (ex === null) {
      (this.early ??= []).push(chunk.slice());
      return;
    }
    ex.requestData(chunk);
    if (this.paused) this.uncredited += chunk.byteLength;
    else this.s.consumed(chunk.byteLength);
  }

  onEnd(trailers: readonly string[] | null): void {
    if (this.ex === null) this.earlyEnd = trailers;
    else this.ex.requestEnd(trailers);
  }

  onReset(): void {
    this.reset = true;
    this.finish(true);
  }

  /** Starts the exchange, unless the client reset the stream in the read that opened it. */
  start(): void {
    const s = this.s;
    if (this.reset || s.closed) return;
    const h = s.head!;
    const noBody = this.early === null && this.earlyEnd !== undefined;
    this.method = h.method;
    this.path = h.path ?? "/";
    this.authority = h.authority ?? field(s.fields, "host") ?? "";
    this.fields = s.fields;
    this.body = noBody ? "none" : h.contentLength >= 0 ? "length" : "stream";
    this.contentLength = h.contentLength;
    const ex = newExchange(this.conn, this, this);
    this.ex = ex;
    forward(this.conn, this, ex, this);
    // Expect: 100-continue is answered here, as the HTTP/1.1 front does (the field is not
    // forwarded): the client sends its body now instead of after its own timeout.
    if (!noBody && !this.done && !s.headSent && !s.closed && field(s.fields, "expect")?.toLowerCase() === "100-continue") s.respond(100, []);
    const early = this.early;
    this.early = null;
    if (early) {
      let n = 0;
      for (const c of early) {
        ex.requestData(c);
        n += c.byteLength;
      }
      if (this.paused) this.uncredited += n;
      else s.consumed(n);
    }
    if (this.earlyEnd !== undefined) ex.requestEnd(this.earlyEnd);
  }

  informational(status: number, fields: Fields): void {
    this.s.respond(status, fields, false);
  }

  head(status: number, fields: readonly string[], endStream: boolean, _contentLength: number): void {
    this.s.respond(status, fields, endStream);
    if (endStream) this.finish(false);
  }

  data(buf: Uint8Array, start: number, end: number): boolean {
    // Borrowed: the stream writes it out at once or copies what it queues.
    return this.s.write(buf, start, end);
  }

  end(trailers: Fields): void {
    this.s.end(trailers.length > 0 ? trailers : null);
    this.finish(false);
  }

  /** A response of our own (an error): its text as the body, except to a HEAD request (head only, RFC 9110 §9.3.2). */
  fail(status: number, text: string): void {
    const body = Buffer.from(text);
    const fields = ["content-type", "text/plain; charset=utf-8", "content-length", String(body.byteLength)];
    if (this.method === "HEAD") this.s.respond(status, fields, true);
    else {
      this.s.respond(status, fields, false);
      this.s.write(body);
      this.s.end(null);
    }
    this.finish(false);
  }

  abort(): void {
    this.s.reset(H2_ERROR.INTERNAL_ERROR);
    this.finish(true);
  }

  pauseRequest(): void {
    this.paused = true;
  }

  resumeRequest(): void {
    this.paused = false;
    const n = this.uncredited;
    this.uncredited = 0;
    if (n > 0) this.s.consumed(n);
  }

  /** The stream is over for the exchange (answered, or reset by either side). Once. */
  private finish(reset: boolean): void {
    if (this.done) return;
    this.done = true;
    const ex = this.ex;
    if (!ex) return;
    if (reset) ex.clientGone();
    this.conn.untrack(ex);
    ex.logDone();
  }
}

function frontOnData(this: H2Stream, chunk: Uint8Array): void {
  (this.context as H2StreamFront).onData(chunk);
}
function frontOnEnd(this: H2Stream, trailers: readonly string[] | null): void {
  (this.context as H2StreamFront).onEnd(trailers);
}
function frontOnReset(this: H2Stream): void {
  (this.context as H2StreamFront).onReset();
}
function frontOnWritable(this: H2Stream): void {
  (this.context as H2StreamFront).ex?.responseWritable();
}
