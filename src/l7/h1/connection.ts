/**
 * One HTTP/1.1 backend connection (`BackendConn`) and one request on it
 * (`Exchange`): the I/O layer over the pure codec. The pool (`client.ts`)
 * decides which connection serves which exchange; this file moves bytes.
 *
 * A connection's life: DIALING (dial.ts, bounded by the connect timer) →
 * READY, where it is either serving one exchange or idle in its route → CLOSED.
 * Each socket event goes to the one connection in `socket.data`; the response
 * is parsed straight from the socket's chunks (a head split across reads is
 * copied into a small buffer until complete), body bytes reach the sink as
 * views of those chunks. Per request: one Exchange, one ResponseHead (the
 * codec's), a ChunkedDecoder for chunked responses; no closures, timers or
 * promises.
 */
import type { Socket, SocketHandler } from "bun";
import { socketError } from "../../net/socket-error.ts";
import type { BackendTarget } from "../backend/target.ts";
import { ChunkedDecoder, LengthDecoder, encodeChunk, encodeLastChunk, type BodySink } from "./body.ts";
import { H1_HEAD_MEMO_BYTES } from "../../limits.ts";
import { rangeEquals, ValueMemo } from "./bytes.ts";
import { type ResponseHead, parseResponseHead } from "./head.ts";
import { H1_DEFAULT_LIMITS, H1_MAX_HEAD_BYTES } from "./bounds.ts";
import { clientHandshakeError, type DialClient, dialTcp, type PendingDial, startTls } from "./dial.ts";
import type { BackendError, BackendErrorKind, H1Exchange, ResponseSink } from "./client.ts";

/** What a connection needs from its pool: where to go when free or closed. */
/**
 * What the connections of one backend share to skip parsing: the last
 * response head parsed whole from one read, its bytes and how (method, lazy),
 * returned as is for the same bytes (H1_HEAD_MEMO_BYTES); and the header value
 * strings. Shared, the strings are the same objects on every connection, so
 * later comparisons (the HPACK block memo) stop at the pointer. Heads are
 * never modified after parsing.
 */
export class HeadMemo {
  readonly values = new ValueMemo();
  head: ResponseHead | null = null;
  bytes: Uint8Array | null = null;
  method = "";
  lazy = false;
}

export interface ConnOwner {
  readonly target: BackendTarget;
  readonly heads: HeadMemo;
  readonly proxyHeader: Uint8Array | null;
  readonly connectTimeoutMs: number;
  /** The connection finished an exchange and may be reused: hand it the next waiting exchange or keep it idle. */
  release(conn: BackendConn): void;
  /** The connection is gone (counted once, whatever the reason). */
  closed(conn: BackendConn): void;
  /** Send `ex` again on a fresh connection (the keep-alive race; see Exchange.retryable). */
  retry(ex: Exchange): void;
  /** A waiting exchange was cancelled: drop it from the queue. */
  dequeue(ex: Exchange): void;
  /** Call `conn.onDrain()` at the end of this event-loop turn: it writes what `send` kept (see BackendConn.send). */
  deferWrite(conn: BackendConn): void;
}

const EMPTY: string[] = [];
const NO_BYTES = new Uint8Array(0);

// Connection phases.
const C_DIALING = 0;
const C_READY = 1;
const C_CLOSED = 2;

// Response phases.
const R_HEAD = 0;
const R_BODY = 1; // Content-Length or chunked, through `decoder`
const R_UNTIL_CLOSE = 2; // framing "close", or a 101 tunnel

// Request body kinds.
export const B_NONE = 0;
export const B_LENGTH = 1;
export const B_CHUNKED = 2;
export const B_TUNNEL = 3; // after a 101: raw bytes both ways

// Exchange states.
const X_WAITING = 0; // queued, or its connection is still dialing
const X_ACTIVE = 1;
const X_DONE = 2;

/** A head that arrives in pieces is copied here; one byte over the codec's limit lets the codec say `head_too_large`. */
const HEAD_BUFFER_BYTES = H1_MAX_HEAD_BYTES + 1;

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function backendError(kind: BackendErrorKind, beforeResponse: boolean, code: string, message: string): BackendError {
  return { kind, beforeResponse, code, message };
}

/** The shared socket handlers: every event goes to the connection in `socket.data`. */
export const CONN_HANDLERS: SocketHandler<BackendConn> = {
  // Reads as plain Uint8Arrays: Bun makes a Buffer (its own subclass) per read otherwise, and we use
  // no Buffer method on them (the byte helpers call Buffer's natives on any Uint8Array).
  binaryType: "uint8array",
  open() {}, // TLS sockets report it during upgradeTLS; readiness comes from `handshake`
  handshake(_s, ok, err) {
    _s.data.onHandshake(ok, err);
  },
  data(s, d) {
    s.data.onData(d);
  },
  drain(s) {
    s.data.onDrain();
  },
  end(s) {
    s.data.onEof(undefined);
  },
  close(s, err) {
    s.data.onEof(err);
  },
  error(s, err) {
    // A sink callback threw, or an established TLS session failed: the connection is unusable.
    socketError("l7.backend_http1", s, err, (e) => s.data.onFatal(e));
  },
};

function onDialTimer(conn: BackendConn): void {
  conn.onDialTimeout();
}

export class BackendConn implements DialClient {
  socket: Socket<BackendConn> | null = null;
  /** Bun's node:net writes `data.req` once after 'connect' (measured on 1.4.4); declared so every connection has one shape. */
  req: unknown = undefined;
  phase = C_DIALING;
  ex: Exchange | null = null;
  /** Exchanges completed on this connection: > 0 means a request on it is sent on a reused connection. */
  served = 0;
  /** performance.now() when it last became idle (the pool's sweeper reads it). */
  idleSince = 0;

  private pending: PendingDial | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Unwritten remainder of the request bytes (ours: copied if it came from the caller). */
  private out: Uint8Array | null = null;

  // Response state, reset per exchange.
  private rphase = R_HEAD;
  /** A byte of the current exchange's response has arrived. */
  sawByte = false;
  private head: ResponseHead | null = null;
  private readonly lengthDecoder = new LengthDecoder(0);
  /** Response header values repeat from head to head, on every connection of a backend: the same strings come back (H1_VALUE_MEMO_BYTES). */
  private readonly memo: ValueMemo;
  private chunked: ChunkedDecoder | null = null;
  private headBuf: Uint8Array | null = null;
  private headLen = 0;
  // Backpressure: after onData returned false, body views already decoded from the chunk in hand wait in `stash`, undecoded bytes in `pendingIn`.
  private paused = false;
  /** socket.pause() is in effect. */
  private readPaused = false;
  private readonly stash: Uint8Array[] = [];
  private pendingIn: Uint8Array | null = null;
  private completePending = false;
  private eofPending = false;
  private readonly bodySink: BodySink;

  constructor(readonly owner: ConnOwner) {
    this.memo = owner.heads.values;
    this.bodySink = (buf, start, end) => this.deliver(buf, start, end);
  }

  // ---------------------------------------------------------------- dial

  /** Starts the dial; `ex` (if any) is served first once ready. */
  dial(ex: Exchange | null): void {
    this.ex = ex;
    if (ex !== null) ex.conn = this;
    const t = this.owner.target;
    this.timer = setTimeout(onDialTimer, this.owner.connectTimeoutMs, this);
    this.pending = dialTcp(t.host, t.port, CONN_HANDLERS, this, false, t.dial);
  }

  onTcpConnected(socket: Socket<BackendConn>): void {
    this.pending = null;
    if (this.phase !== C_DIALING) {
      socket.terminate(); // timed out or cancelled meanwhile
      return;
    }
    this.socket = socket;
    const header = this.owner.proxyHeader;
    const tls = this.owner.target.tls;
    if (header !== null) {
      const n = socket.write(header);
      if (n !== header.length) {
        if (tls !== null || n < 0) return this.dialFailed("connect", "EPROXYHEADER", "could not write the PROXY header in one piece");
        this.out = header.subarray(n);
      }
    }
    if (tls !== null) this.socket = startTls(socket, tls, CONN_HANDLERS, this);
    else this.ready();
  }

  onTcpError(code: string, message: string): void {
    this.pending = null;
    if (this.phase === C_DIALING) this.dialFailed("connect", code, message);
  }

  onHandshake(ok: boolean, err: Error | null): void {
    if (this.phase !== C_DIALING) return;
    const code = clientHandshakeError(ok, err, this.owner.target.tls!);
    if (code === null) this.ready();
    else this.dialFailed("connect", code, err?.message ?? "TLS handshake failed");
  }

  onDialTimeout(): void {
    this.timer = null;
    if (this.phase !== C_DIALING) return;
    this.dialFailed("timeout_connect", "ETIMEDOUT", `connect to ${this.owner.target.host}:${this.owner.target.port} timed out after ${this.owner.connectTimeoutMs}ms`);
  }

  private ready(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.phase = C_READY;
    const ex = this.ex;
    if (ex !== null) {
      this.ex = null;
      this.attach(ex);
    } else this.owner.release(this);
  }

  private dialFailed(kind: BackendErrorKind, code: string, message: string): void {
    const ex = this.ex;
    this.shut(true);
    if (ex !== null) ex.fail(backendError(kind, true, code, message));
  }

  // ---------------------------------------------------------------- request side

  /** Starts serving `ex` (connection READY and free). Writes what the exchange has so far. */
  attach(ex: Exchange): void {
    this.ex = ex;
    ex.conn = this;
    ex.state = X_ACTIVE;
    ex.reused = this.served > 0;
    this.rphase = R_HEAD;
    this.sawByte = false;
    let data = ex.pre;
    ex.pre = null;
    if (data === null && ex.body === B_NONE) {
      data = ex.head;
      ex.headSent = true;
    }
    if (data !== null && this.send(data, true) && ex.wantWritable) {
      ex.wantWritable = false;
      ex.writable();
    }
  }

  /**
   * Writes request bytes; false when some are kept for `drain`. `owned`:
   * `data` is ours to keep (else a remainder is copied). Owned bytes (a
   * request head, and body bytes we copied or framed) are written at the end of the
   * event-loop turn, together with every other connection's: a backend that
   * shares our core is then woken once for the requests of a turn instead of
   * preempting us after each write (measured on W4h1: about half the
   * preemptions per request; see ARCHITECTURE.md, Backend pool).
   */
  send(data: Uint8Array, owned: boolean): boolean {
    const s = this.socket;
    if (s === null) return true; // closing: the close path reports
    if (this.out !== null) {
      this.out = concat(this.out, data);
      return false;
    }
    if (owned) {
      this.out = data;
      this.owner.deferWrite(this);
      return true;
    }
    const n = s.write(data);
    if (n === data.length || n < 0) return true; // n < 0: closed, reported by `close`
    this.out = data.slice(n); // borrowed: owned bytes were kept whole above
    return false;
  }

  onDrain(): void {
    const o = this.out;
    const s = this.socket;
    if (o === null || s === null) return;
    const n = s.write(o);
    if (n >= 0 && n < o.length) {
      this.out = o.subarray(n);
      return;
    }
    this.out = null;
    const ex = this.ex;
    if (ex !== null && ex.wantWritable) {
      ex.wantWritable = false;
      ex.writable();
    }
  }

  /** Every request byte handed to the socket (or the request ended before any had to be). */
  requestFlushed(): boolean {
    return this.out === null;
  }

  // ---------------------------------------------------------------- response side

  onData(buf: Uint8Array): void {
    const ex = this.ex;
    if (ex === null) {
      // Bytes with no request outstanding: the backend is out of step; never reuse it.
      if (this.phase === C_READY) this.shut(true);
      return;
    }
    if (this.paused) {
      // Reading is paused but a read was already under way: keep it for resume().
      this.pendingIn = this.pendingIn === null ? buf : concat(this.pendingIn, buf);
      return;
    }
    this.sawByte = true;
    this.process(buf, 0, buf.length);
  }

  /** Parses buf[start, end) for the current exchange until it is consumed, paused, or the exchange ends. */
  private process(buf: Uint8Array, start: number, end: number): void {
    const ex = this.ex as Exchange;
    while (start < end) {
      if (this.rphase === R_HEAD) {
        let r: ReturnType<typeof parseResponseHead>;
        let headBytes = buf;
        let headAt = start;
        const lazy = ex.sink.wantsRawHead?.() === true;
        if (this.headLen === 0) {
          r = this.parseHead(buf, start, end, ex.method, lazy);
          if (r.kind === "more") {
            this.keepHead(buf, start, end);
            return;
          }
          if (r.kind === "response") start += r.length;
        } else {
          const hb = this.headBuf as Uint8Array;
          const take = Math.min(end - start, HEAD_BUFFER_BYTES - this.headLen);
          hb.set(buf.subarray(start, start + take), this.headLen);
          this.headLen += take;
          r = parseResponseHead(hb, 0, this.headLen, ex.method, H1_DEFAULT_LIMITS, lazy, this.memo);
          headBytes = hb;
          headAt = 0;
          if (r.kind === "more") {
            start += take;
            continue; // the codec fails a head over its limit, so this ends
          }
          // Bytes of hb past the head came from the end of what we just copied.
          if (r.kind === "response") start += take - (this.headLen - r.length);
          this.headBuf = null;
          this.headLen = 0;
        }
        if (r.kind === "error") return this.protocolError(r.reason);
        if (r.status < 200 && r.status !== 101) {
          // 1xx: the final head follows. Parsed framing-only when the sink wanted raw heads: parse it whole.
          const sink = ex.sink;
          if (sink.onInformational !== undefined) {
            const full = r.complete ? r : (parseResponseHead(headBytes, headAt, headAt + r.length, ex.method, H1_DEFAULT_LIMITS, false, this.memo) as ResponseHead);
            sink.onInformational(full.status, full.headers);
            if (this.ex !== ex) return; // cancelled meanwhile
          }
          continue;
        }
        // Framing-only, but it cannot go out as bytes: every field is needed (same bytes, so it parses).
        if (!r.complete && !r.forwardable) r = parseResponseHead(headBytes, headAt, headAt + r.length, ex.method, H1_DEFAULT_LIMITS, false, this.memo) as ResponseHead;
        this.startBody(r);
        const sink = ex.sink;
        if (r.forwardable && (this.rphase as number) === R_BODY && this.chunked === null && end - start >= r.contentLength && sink.onWholeResponse !== undefined) {
          // The whole (small) response is in this read: one copy, no views.
          const bodyEnd = start + r.contentLength;
          if (sink.onWholeResponse(r, headBytes, headAt, buf, start, bodyEnd)) {
            if (this.ex !== ex) return;
            this.complete(bodyEnd < end);
            return;
          }
        }
        sink.onHead(r, r.forwardable ? headBytes : null, headAt);
        if (this.ex !== ex) return; // cancelled in onHead
        if (this.rphase === R_HEAD) {
          // No body (HEAD, 204, 304): done.
          this.complete(start < end);
          return;
        }
        continue;
      }
      if (this.rphase === R_UNTIL_CLOSE) {
        this.deliver(buf, start, end);
        start = end;
        break;
      }
      const decoder = this.chunked ?? this.lengthDecoder;
      const r = decoder.push(buf, start, end, this.bodySink);
      if (typeof r !== "number") return this.protocolError(r.reason);
      if (this.ex !== ex) return; // cancelled in onData
      start += r;
      if (decoder.done) {
        if (this.paused) {
          this.completePending = true;
          break;
        }
        this.complete(start < end);
        return;
      }
    }
    if (this.paused) {
      this.pendingIn = start < end ? buf.subarray(start, end) : null;
      this.readPaused = true;
      this.socket?.pause();
    }
  }

  /**
   * parseResponseHead of buf[start, end), or this connection's previous head
   * when these are exactly its bytes (same method, same mode): a ResponseHead
   * is never modified and holds no buffer offsets, so it can be returned again.
   */
  private parseHead(buf: Uint8Array, start: number, end: number, method: string, lazy: boolean): ReturnType<typeof parseResponseHead> {
    const m = this.owner.heads;
    const prev = m.head;
    if (prev !== null && m.method === method && m.lazy === lazy) {
      const n = prev.length;
      if (end - start >= n && rangeEquals(m.bytes as Uint8Array, buf, start)) return prev;
    }
    const r = parseResponseHead(buf, start, end, method, H1_DEFAULT_LIMITS, lazy, this.memo);
    if (r.kind === "response" && r.length <= H1_HEAD_MEMO_BYTES) {
      m.head = r;
      m.method = method;
      m.lazy = lazy;
      m.bytes = buf.slice(start, start + r.length);
    }
    return r;
  }

  private keepHead(buf: Uint8Array, start: number, end: number): void {
    // A head split across reads (rare): the codec said "more", so this is < its limit.
    const hb = (this.headBuf = new Uint8Array(HEAD_BUFFER_BYTES));
    hb.set(buf.subarray(start, end), 0);
    this.headLen = end - start;
  }

  private startBody(h: ResponseHead): void {
    this.head = h;
    const ex = this.ex as Exchange;
    if (h.status === 101) {
      // Upgraded: raw bytes both ways until either side closes; never reused.
      ex.body = B_TUNNEL;
      this.rphase = R_UNTIL_CLOSE;
      return;
    }
    switch (h.framing) {
      case "none":
        this.rphase = R_HEAD; // signals "complete" to process()
        break;
      case "length":
        this.lengthDecoder.remaining = h.contentLength;
        this.chunked = null;
        this.rphase = h.contentLength === 0 ? R_HEAD : R_BODY;
        break;
      case "chunked":
        this.chunked = new ChunkedDecoder(undefined, 502);
        this.rphase = R_BODY;
        break;
      case "close":
        this.rphase = R_UNTIL_CLOSE;
        break;
    }
  }

  /** Hands body bytes buf[start, end) to the sink, or stashes a view of them while paused. */
  private deliver(buf: Uint8Array, start: number, end: number): void {
    const ex = this.ex;
    if (ex === null || start === end) return;
    if (this.paused) this.stash.push(buf.subarray(start, end));
    else if (ex.sink.onData(buf, start, end) === false) this.paused = true;
  }

  /** The caller drained what it had: deliver the stash and what was read, then read again. */
  resumeReading(): void {
    const ex = this.ex;
    if (!this.paused || ex === null) return;
    this.paused = false;
    const stash = this.stash;
    let i = 0;
    while (i < stash.length) {
      const d = stash[i++];
      if (ex.sink.onData(d, 0, d.length) === false) this.paused = true;
      if (this.ex !== ex) return;
      if (this.paused) break;
    }
    stash.splice(0, i);
    if (this.paused) return;
    const p = this.pendingIn;
    this.pendingIn = null;
    if (this.completePending) {
      this.completePending = false;
      this.complete(p !== null);
      return;
    }
    if (p !== null) {
      this.process(p, 0, p.length);
      if (this.paused || this.ex !== ex) return;
    }
    if (this.readPaused) {
      this.readPaused = false;
      this.socket?.resume();
    }
    if (this.eofPending) {
      this.eofPending = false;
      this.detach();
      ex.state = X_DONE;
      ex.sink.onEnd(EMPTY);
      return;
    }
  }

  /** The response is complete: free the connection (reuse only on a clean keep-alive finish), then tell the sink. */
  private complete(leftover: boolean): void {
    const ex = this.ex as Exchange;
    const h = this.head as ResponseHead;
    const trailers = this.chunked?.trailers ?? EMPTY;
    const reusable = !leftover && h.keepAlive && h.status !== 101 && ex.requestDone() && this.phase === C_READY;
    this.detach();
    this.served++;
    ex.state = X_DONE;
    if (reusable && this.readPaused) {
      this.readPaused = false;
      this.socket?.resume();
    }
    if (reusable) this.owner.release(this);
    else this.shut(false);
    ex.sink.onEnd(trailers);
  }

  private protocolError(reason: string): void {
    const ex = this.ex as Exchange;
    this.shut(true);
    ex.fail(backendError("protocol", !this.sawByte, reason, `invalid response from backend: ${reason}`));
  }

  /** FIN or close from the backend (or a close we caused: then phase is already CLOSED). */
  onEof(err: Error | undefined): void {
    if (this.phase === C_CLOSED) return;
    if (this.phase === C_DIALING) {
      const code = (err as { code?: string } | undefined)?.code ?? "ECONNRESET";
      return this.dialFailed("connect", code, err?.message ?? "backend closed the connection during the TLS handshake");
    }
    const ex = this.ex;
    if (ex !== null && this.paused && (this.completePending || (this.rphase === R_UNTIL_CLOSE && err === undefined))) {
      // Whole response read, the caller still draining it: resume() finishes it.
      if (!this.completePending) this.eofPending = true;
      this.shut(false);
      return;
    }
    this.shut(err !== undefined);
    if (ex === null) return;
    if (this.rphase === R_UNTIL_CLOSE && err === undefined) {
      // The close delimits the body (or ends the tunnel).
      ex.state = X_DONE;
      ex.sink.onEnd(EMPTY);
      return;
    }
    const before = !this.sawByte;
    if (before && ex.reused && ex.retryable()) {
      ex.retried = true;
      this.owner.retry(ex);
      return;
    }
    const code = (err as { code?: string } | undefined)?.code ?? "ECONNRESET";
    const msg = before ? "backend closed the connection before responding" : "backend closed the connection mid-response";
    ex.fail(backendError("closed", before, code, err?.message ?? msg));
  }

  onFatal(err: Error): void {
    if (this.phase === C_CLOSED) return;
    if (this.phase === C_DIALING) return this.dialFailed("connect", (err as { code?: string }).code ?? "ERR_TLS", err.message);
    const ex = this.ex;
    this.shut(true);
    if (ex !== null) ex.fail(backendError("closed", !this.sawByte, (err as { code?: string }).code ?? "EFATAL", err.message));
  }

  // ---------------------------------------------------------------- teardown

  /** Stops serving the current exchange (the exchange keeps its own state). */
  detach(): void {
    const ex = this.ex;
    if (ex !== null) ex.conn = null;
    this.ex = null;
    this.head = null;
    this.chunked = null;
    this.headBuf = null;
    this.headLen = 0;
    if (this.stash.length !== 0) this.stash.length = 0;
    this.completePending = false;
    if (!this.eofPending) this.pendingIn = null;
  }

  /**
   * Closes the connection once (abort: reset it now; else a FIN) and tells the
   * owner. The current exchange, if any, stays attached for the caller to
   * finish (it reads `ex` before calling this).
   */
  shut(abort: boolean): void {
    if (this.phase === C_CLOSED) return;
    this.phase = C_CLOSED;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending !== null) {
      this.pending.destroy(); // abandons an in-flight connect: the descriptor closes now
      this.pending = null;
    }
    const s = this.socket;
    this.socket = null;
    this.out = null;
    // A response fully read but still being drained stays attached for resume().
    if (!this.eofPending && !this.completePending) this.detach();
    if (s !== null) {
      if (abort) s.terminate();
      else s.end();
    }
    this.owner.closed(this);
  }

  /** Closes now and fails the exchange on it with `err` (`beforeResponse` from what was seen). */
  destroy(err: BackendError): void {
    const ex = this.ex;
    const before = this.phase === C_DIALING || !this.sawByte;
    this.eofPending = false;
    this.completePending = false;
    this.shut(true);
    this.detach();
    if (ex !== null) ex.fail(before ? { ...err, beforeResponse: true } : err);
  }

  /** Ready for request bytes: dialed (TLS handshake done) and not closed. */
  get writable(): boolean {
    return this.phase === C_READY && this.socket !== null;
  }

  /**
   * The exchange gives up (H1Exchange.cancel). A dial still running is kept
   * (nothing was sent on it: it serves the next request or goes idle);
   * otherwise the connection closes, never reused.
   */
  abandon(ex: Exchange): void {
    if (this.ex !== ex) return;
    if (this.phase === C_DIALING) {
      this.ex = null;
      ex.conn = null;
      return;
    }
    this.shut(true);
    this.detach();
  }
}

/** One request: from `H1Pool.request` until onEnd / onError / cancel. */
export class Exchange implements H1Exchange {
  conn: BackendConn | null = null;
  state = X_WAITING;
  /** Request bytes produced before a connection was ready (ours). */
  pre: Uint8Array | null = null;
  headSent = false;
  wantWritable = false;
  /** end() was called (always true for a bodiless request). */
  ended: boolean;
  written = 0;
  reused = false;
  retried = false;

  constructor(
    readonly owner: ConnOwner,
    readonly method: string,
    readonly head: Uint8Array,
    public body: number,
    readonly bodyLength: number,
    readonly sink: ResponseSink,
    readonly idempotent: boolean,
  ) {
    this.ended = body === B_NONE;
  }

  /** The request side can take bytes again: tell the sink. */
  writable(): void {
    this.sink.onWritable?.();
  }

  write(chunk: Uint8Array): boolean {
    if (this.state === X_DONE) return true; // finished early (response, error, cancel): drop
    if (this.body === B_TUNNEL) return this.emit(chunk, false);
    if (this.ended || chunk.length === 0) return !this.wantWritable;
    if (this.body === B_LENGTH) {
      this.written += chunk.length;
      if (this.written > this.bodyLength) {
        this.abort(backendError("protocol", !this.sawResponse(), "EREQBODYLENGTH", `request body exceeds its Content-Length ${this.bodyLength}`));
        return true;
      }
      return this.emit(chunk, false);
    }
    if (this.body === B_CHUNKED) return this.emit(encodeChunk(chunk), true);
    this.abort(backendError("protocol", !this.sawResponse(), "EREQBODY", "body written on a request without one"));
    return true;
  }

  end(trailers?: readonly string[]): void {
    if (this.state === X_DONE) return;
    if (this.body === B_TUNNEL) {
      this.conn?.socket?.shutdown();
      return;
    }
    if (this.ended) return;
    this.ended = true;
    if (this.body === B_LENGTH) {
      if (this.written !== this.bodyLength) {
        this.abort(backendError("protocol", !this.sawResponse(), "EREQBODYLENGTH", `request body ended after ${this.written} of ${this.bodyLength} bytes`));
        return;
      }
      if (!this.headSent) this.emit(NO_BYTES, true);
      return;
    }
    const last = encodeLastChunk(trailers);
    if (!(last instanceof Uint8Array)) {
      this.abort(backendError("protocol", !this.sawResponse(), last.reason, "invalid request trailer"));
      return;
    }
    this.emit(last, true);
  }

  resume(): void {
    this.conn?.resumeReading();
  }

  cancel(): void {
    if (this.state === X_DONE) return;
    const waiting = this.state === X_WAITING && this.conn === null;
    this.state = X_DONE;
    const c = this.conn;
    this.conn = null;
    if (c !== null) c.abandon(this);
    else if (waiting) this.owner.dequeue(this);
  }

  /** Back to waiting, for a retry on a fresh connection: the head will be sent again. */
  reset(): void {
    this.state = X_WAITING;
    this.conn = null;
    this.pre = null;
    this.headSent = false;
    this.wantWritable = false;
  }

  /** Request fully written: end() seen and every byte handed to the socket. */
  requestDone(): boolean {
    return this.ended && this.pre === null && (this.conn === null || this.conn.requestFlushed());
  }

  /** The keep-alive race: GET-like, no body, sent on a reused connection, first retry. */
  retryable(): boolean {
    return this.idempotent && this.body === B_NONE && !this.retried;
  }

  /** Ends the exchange with `err` (once). The caller has already closed the connection. */
  fail(err: BackendError): void {
    if (this.state === X_DONE) return;
    this.state = X_DONE;
    this.conn = null;
    this.sink.onError(err);
  }

  /** A request-side error: close the connection carrying it (or leave the queue), then fail. */
  private abort(err: BackendError): void {
    const c = this.conn;
    this.conn = null;
    if (c !== null && c.ex === this) c.shut(true);
    else if (c === null && this.state === X_WAITING) this.owner.dequeue(this);
    this.fail(err);
  }

  private sawResponse(): boolean {
    return this.conn !== null && this.conn.sawByte;
  }

  /** Adds request bytes: coalesced behind the head if it is not sent yet; held until a connection is ready. */
  private emit(data: Uint8Array, owned: boolean): boolean {
    if (!this.headSent) {
      this.headSent = true;
      data = data.length === 0 ? this.head : concat(this.head, data);
      owned = true;
    }
    const c = this.conn;
    if (c === null || !c.writable || c.ex !== this) {
      this.pre = this.pre === null ? (owned ? data : data.slice()) : concat(this.pre, data);
      this.wantWritable = true;
      return false;
    }
    if (c.send(data, owned)) return true;
    this.wantWritable = true;
    return false;
  }
}
