/**
 * HTTP/1.1 backend client: a keep-alive connection pool on Bun's native
 * sockets, replacing node:http's Agent. The proxy calls `H1Pool.request` for
 * every request it forwards to an HTTP/1.1 backend; results come back through
 * a `ResponseSink` (plain callbacks: no EventEmitter, stream or promise per
 * request). Connections and parsing live in `connection.ts`, dialing in
 * `dial.ts`.
 *
 * Rules it keeps:
 * - Per backend key at most `BACKEND_H1_MAX_SOCKETS` connections; more
 *   requests wait in a FIFO of `H1_CLIENT_MAX_QUEUED`, beyond that they fail
 *   with kind "connect", code "EPOOLFULL".
 * - Every dial is bounded by `connectTimeoutMs` (kind "timeout_connect",
 *   code "ETIMEDOUT"); the descriptor is closed at once.
 * - A connection is reused only after a response that ended cleanly with
 *   keep-alive, its body read to the end and the request fully written;
 *   idle ones are closed after `idleTimeoutMs` by one sweeper per pool.
 * - Retry once, on a fresh connection, only a request the caller calls
 *   idempotent, without a body, sent on a reused connection that closed
 *   before any byte of the response (the keep-alive race).
 * - No response timeout here: the caller owns `backend_timeout` and calls
 *   `cancel()`.
 */
import { BACKEND_H1_MAX_SOCKETS, H1_CLIENT_MAX_QUEUED, H1_CLIENT_SWEEP_MAX_MS, H1_CLIENT_SWEEP_MIN_MS, H1_IDLE_PURGE_KEEP, H1_IDLE_PURGE_MS } from "../../limits.ts";

export { H1_CLIENT_MAX_QUEUED };
import type { BackendTarget } from "../backend/target.ts";
import { B_CHUNKED, B_LENGTH, B_NONE, BackendConn, type ConnOwner, Exchange, HeadMemo } from "./connection.ts";
import type { ResponseHead } from "./head.ts";

// Limits (to move to src/limits.ts).
/** setTimeout fires at once above 2^31-1 ms (BUN-NOTES): every duration is capped to it. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface H1PoolOptions {
  /** Bound on each dial: TCP connect, PROXY header, TLS handshake. */
  connectTimeoutMs: number;
  /** An idle connection is closed after this long. */
  idleTimeoutMs: number;
  /** Period of the purge of surplus idle connections (default H1_IDLE_PURGE_MS; see there). */
  idlePurgeMs?: number;
  /** Written first on every new connection, before TLS (send_proxy_protocol); null = none. */
  proxyHeader: Uint8Array | null;
}

export type RequestBody = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" };

export interface ResponseSink {
  /**
   * Final response head (status >= 200, or 101). Other 1xx heads go to onInformational. After a 101 the exchange is a raw tunnel: write() sends raw bytes, onData gets raw bytes, onEnd comes at the backend's close.
   * `raw`: when `head.forwardable`, the buffer holding the head's bytes at raw[at, at + head.length) (valid only during the call), else null.
   */
  onHead(head: ResponseHead, raw: Uint8Array | null, at: number): void;
  /** Optional: an informational head (1xx other than 101), fields as parsed; the final head follows. */
  onInformational?(status: number, fields: string[]): void;
  /**
   * Optional: true when a forwardable head would be taken as bytes right now
   * (onWholeResponse or onHead with `raw`): the head is then parsed
   * framing-only (`ResponseHead.complete` false) unless it turns out not
   * forwardable. Asked just before the head is parsed.
   */
  wantsRawHead?(): boolean;
  /**
   * Optional fast path for a forwardable head (raw[at, at + head.length))
   * whose whole Content-Length body, body[bodyStart, bodyEnd), came in the
   * same read: true = taken (no onHead/onData follow, onEnd does), false =
   * deliver it the usual way. Buffers valid only during the call.
   */
  onWholeResponse?(head: ResponseHead, raw: Uint8Array, at: number, body: Uint8Array, bodyStart: number, bodyEnd: number): boolean;
  /** Body bytes buf[start, end), valid only during the call (copy or write them synchronously). Return false to pause reading from the backend; no onData/onEnd follows until exchange.resume(). */
  onData(buf: Uint8Array, start: number, end: number): boolean;
  /** Response complete; trailers flat [name, value, …] (empty if none). The connection is already back in the pool. */
  onEnd(trailers: string[]): void;
  /** Failure; the exchange is over (no other callback follows). */
  onError(err: BackendError): void;
  /** Optional: the request body can flow again after the exchange's write() returned false. */
  onWritable?(): void;
}

export type BackendErrorKind = "connect" | "timeout_connect" | "closed" | "protocol";

export interface BackendError {
  /**
   * connect: the backend could not be reached (refused, DNS, TLS handshake, EPOOLFULL, EPOOLCLOSED);
   * timeout_connect: the dial outlived connectTimeoutMs; closed: the connection closed or reset
   * while the exchange was on it; protocol: an invalid response (code = the codec's reason) or an
   * invalid request body from the caller (EREQBODYLENGTH, EREQBODY, trailer reasons).
   */
  kind: BackendErrorKind;
  /** No byte of the response was seen (the proxy may still answer 502/504 cleanly). */
  beforeResponse: boolean;
  code: string;
  message: string;
}

export interface H1Exchange {
  /**
   * Request body bytes (framed here: Content-Length as is and counted, chunked
   * re-encoded). The chunk may be reused by the caller after the call. Returns
   * false when the bytes could not all go out (no connection yet, or the
   * socket is full): wait for the sink's onWritable. After the exchange ended, a no-op.
   */
  write(chunk: Uint8Array): boolean;
  /** End of the request body (trailers only with chunked). A Content-Length body of the wrong size fails the exchange (kind "protocol", EREQBODYLENGTH). */
  end(trailers?: readonly string[]): void;
  /** Resume delivering the response after onData returned false. */
  resume(): void;
  /** The client went away: abandon the exchange, no callback follows; a connection that carried it is closed, never reused. */
  cancel(): void;
}

export interface H1PoolStats {
  /** Connections open or dialing. */
  open: number;
  /** Of those, idle in the pool. */
  idle: number;
  /** Dials started since the pool was made. */
  dials: number;
  /** Requests waiting for a connection. */
  queued: number;
}

/** Connections and waiting requests of one backend key. */
class Route implements ConnOwner {
  /** Idle connections, oldest first; reuse takes the newest (warm), the sweeper drops from the front. */
  readonly idle: BackendConn[] = [];
  readonly queue: Exchange[] = [];
  /** Every connection open or dialing (changes per dial, not per request). */
  readonly conns = new Set<BackendConn>();
  open = 0;
  readonly heads = new HeadMemo();

  constructor(
    readonly pool: H1Pool,
    readonly target: BackendTarget,
    readonly proxyHeader: Uint8Array | null,
    readonly connectTimeoutMs: number,
  ) {}

  deferWrite(conn: BackendConn): void {
    this.pool.deferWrite(conn);
  }

  dialFor(ex: Exchange | null): void {
    const c = new BackendConn(this);
    this.conns.add(c);
    this.open++;
    this.pool.counters.open++;
    this.pool.counters.dials++;
    c.dial(ex);
  }

  release(conn: BackendConn): void {
    const next = this.queue.shift();
    if (next !== undefined) {
      this.pool.counters.queued--;
      conn.attach(next);
      return;
    }
    conn.idleSince = performance.now();
    this.idle.push(conn);
    this.pool.counters.idle++;
  }

  closed(conn: BackendConn): void {
    this.conns.delete(conn);
    this.open--;
    this.pool.counters.open--;
    const i = this.idle.lastIndexOf(conn);
    if (i >= 0) {
      this.idle.splice(i, 1);
      this.pool.counters.idle--;
    }
    // A slot is free: the oldest waiting request gets a new connection.
    if (this.queue.length > 0 && this.open < BACKEND_H1_MAX_SOCKETS && !this.pool.closed) {
      const next = this.queue.shift() as Exchange;
      this.pool.counters.queued--;
      this.dialFor(next);
    }
  }

  retry(ex: Exchange): void {
    ex.reset();
    if (this.pool.closed) ex.fail(POOL_CLOSED);
    else this.dialFor(ex);
  }

  dequeue(ex: Exchange): void {
    const i = this.queue.indexOf(ex);
    if (i >= 0) {
      this.queue.splice(i, 1);
      this.pool.counters.queued--;
    }
  }

  /**
   * Closes half of the connections idle since before `since` (performance.now()
   * time) beyond the first H1_IDLE_PURGE_KEEP, oldest first (see H1_IDLE_PURGE_MS).
   */
  purge(since: number): void {
    const idle = this.idle;
    let cold = 0;
    while (cold < idle.length && idle[cold]!.idleSince <= since) cold++;
    const excess = cold - H1_IDLE_PURGE_KEEP;
    for (let n = excess > 0 ? Math.ceil(excess / 2) : 0; n > 0; n--) {
      const c = idle.shift() as BackendConn;
      this.pool.counters.idle--;
      c.shut(false);
    }
  }

  /** Closes idle connections older than `cutoff` (performance.now() time). */
  sweep(cutoff: number): void {
    const idle = this.idle;
    while (idle.length > 0 && idle[0].idleSince <= cutoff) {
      const c = idle.shift() as BackendConn;
      this.pool.counters.idle--;
      c.shut(false);
    }
  }
}

const POOL_CLOSED: BackendError = Object.freeze({ kind: "connect", beforeResponse: true, code: "EPOOLCLOSED", message: "backend pool closed" });
const POOL_CLOSED_ON_CONN: BackendError = Object.freeze({ kind: "closed", beforeResponse: false, code: "EPOOLCLOSED", message: "backend pool closed" });
const POOL_FULL: BackendError = Object.freeze({ kind: "connect", beforeResponse: true, code: "EPOOLFULL", message: "too many requests waiting for a backend connection" });

function failLater(ex: Exchange, err: BackendError): void {
  // Never call the sink from inside request(): the caller is still setting up.
  queueMicrotask(() => ex.fail(err));
}

/** A keep-alive pool of HTTP/1.1 backend connections, keyed by `BackendTarget.key`. */
export class H1Pool {
  /** Live totals over every route (see H1PoolStats). */
  readonly counters: H1PoolStats = { open: 0, idle: 0, dials: 0, queued: 0 };
  closed = false;
  private readonly routes = new Map<string, Route>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  /** Connections with request bytes to write at the end of this event-loop turn (BackendConn.send). */
  private readonly deferred: BackendConn[] = [];
  private readonly purgeMs: number;
  private lastPurge = performance.now();

  constructor(private readonly opts: H1PoolOptions) {
    this.purgeMs = opts.idlePurgeMs ?? H1_IDLE_PURGE_MS;
    const every = Math.min(H1_CLIENT_SWEEP_MAX_MS, this.purgeMs, Math.max(H1_CLIENT_SWEEP_MIN_MS, Math.floor(opts.idleTimeoutMs / 4)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  /** Queues `conn.onDrain()` (which writes what `send` kept; a no-op once closed) for the end of this event-loop turn: one setImmediate for all of the turn's writes. */
  deferWrite(conn: BackendConn): void {
    if (this.deferred.push(conn) === 1) setImmediate(this.flushDeferred);
  }

  private readonly flushDeferred = (): void => {
    const list = this.deferred;
    // A flush may queue more (a drained body write sends its next part): they are in this pass too.
    for (let i = 0; i < list.length; i++) list[i]!.onDrain();
    list.length = 0;
  };

  /**
   * Sends one request. `head` is the serialized request head (start line,
   * fields incl. Host and the framing header that matches `body`, CRLF CRLF,
   * from serializeRequestHead); it is kept (for a retry) and must not be
   * modified afterwards. A bodiless request's head goes out as soon as a
   * connection is ready; with a body it goes out with the first write() or
   * end(), coalesced. Callbacks never run inside this call.
   */
  request(target: BackendTarget, method: string, head: Uint8Array, body: RequestBody, sink: ResponseSink, idempotent: boolean): H1Exchange {
    const route = this.route(target);
    const kind = body.kind === "none" ? B_NONE : body.kind === "length" ? B_LENGTH : B_CHUNKED;
    const ex = new Exchange(route, method, head, kind, body.kind === "length" ? body.length : 0, sink, idempotent);
    if (this.closed) {
      failLater(ex, POOL_CLOSED);
      return ex;
    }
    const conn = route.idle.pop();
    if (conn !== undefined) {
      this.counters.idle--;
      conn.attach(ex);
    } else if (route.open < BACKEND_H1_MAX_SOCKETS) route.dialFor(ex);
    else if (route.queue.length < H1_CLIENT_MAX_QUEUED) {
      route.queue.push(ex);
      this.counters.queued++;
    } else failLater(ex, POOL_FULL);
    return ex;
  }

  /** Totals now: open (incl. dialing), idle, dials so far, queued. */
  stats(): H1PoolStats {
    return { ...this.counters };
  }

  /** Closes every connection, idle or busy; exchanges in flight or waiting fail with EPOOLCLOSED (kind "closed" once on a connection). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    for (const route of this.routes.values()) {
      const waiting = route.queue.splice(0);
      this.counters.queued -= waiting.length;
      for (const ex of waiting) ex.fail(POOL_CLOSED);
      for (const c of [...route.conns]) c.destroy(POOL_CLOSED_ON_CONN);
    }
    this.routes.clear();
  }

  private route(target: BackendTarget): Route {
    let r = this.routes.get(target.key);
    if (r === undefined) {
      r = new Route(this, target, this.opts.proxyHeader, Math.min(MAX_TIMER_MS, Math.max(1, this.opts.connectTimeoutMs)));
      this.routes.set(target.key, r);
    }
    return r;
  }

  private sweep(): void {
    const now = performance.now();
    const cutoff = now - this.opts.idleTimeoutMs;
    // Once a purge period has passed: what stayed idle since the previous purge is surplus.
    const purgeSince = now - this.lastPurge >= this.purgeMs ? this.lastPurge : -1;
    if (purgeSince >= 0) this.lastPurge = now;
    for (const [key, r] of this.routes) {
      r.sweep(cutoff);
      if (purgeSince >= 0) r.purge(purgeSince);
      if (r.open === 0 && r.queue.length === 0) this.routes.delete(key);
    }
  }
}
