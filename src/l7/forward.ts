/**
 * What happens to one request between the front and the backend: the host
 * check (421), policies (403), the forwarding headers, the choice of backend
 * client, and the adapters that connect an `Exchange` to our HTTP/1.1 pool or
 * to an HTTP/2 backend stream.
 */
import { log } from "../obs/log.ts";
import type { H2Client, H2Failure, StreamWaiter } from "./backend/h2.ts";
import type { BackendPool, Client } from "./backend/pool.ts";
import { targetFor, type BackendTarget } from "./backend/target.ts";
import type { L7Conn, RequestInputs } from "./conn.ts";
import { BODY_403, BODY_421, BODY_502_ERR, Exchange, type BackendStream, type FrontSide } from "./exchange.ts";
import type { BackendError, H1Exchange, H1Pool, RequestBody, ResponseSink } from "./h1/client.ts";
import { parseResponseHead, serializeRequestHead, type ResponseHead } from "./h1/codec.ts";
import { copyWithout } from "./h1/bytes.ts";
import { H2_ERROR } from "./h2/errors.ts";
import type { H2Stream } from "./h2/stream.ts";
import { authorityHost, backendRequestFields, ClientFieldsMemo, clientResponseFields, field, fieldJoined, joinCookies, type Fields } from "./headers.ts";
import { evaluatePolicies } from "./policy.ts";
import type { RouteRecord } from "../records.ts";
import { BACKEND_H2_REFUSED_RETRIES, BACKEND_H2_RETRY_BODY_BYTES, H1_REQUEST_HEAD_MEMO_BYTES, H2_REQUEST_FIELDS_MEMO_BYTES, H2_RESPONSE_FIELDS_MEMO_ENTRIES } from "../limits.ts";


/** A request as the front parsed it. */
export interface RequestIn {
  method: string;
  /** origin-form path (with query) */
  path: string;
  /** :authority or Host ("" when the client sent none). */
  authority: string;
  /** The client's header fields, lower-case names (pseudo-headers are skipped). */
  fields: readonly string[];
  /** How the request body is delimited: none, `contentLength` bytes, chunked, or a stream of unknown length (HTTP/2). */
  body: "none" | "length" | "chunked" | "stream";
  contentLength: number;
  /**
   * An HTTP/1.1 request head whose start line and field lines may go to an
   * HTTP/1.1 backend as they are, less `rawDrop` (`RequestHead.forwardable`):
   * raw[rawStart, rawEnd), without the final CRLF, valid only during
   * `forward`'s synchronous part. Null otherwise.
   */
  raw: Uint8Array | null;
  rawStart: number;
  rawEnd: number;
  rawDrop: readonly number[];
  /**
   * Stands for the raw head's bytes: the same object again means the same
   * bytes (the HTTP/1.1 front's parse memo returns the same RequestHead for
   * the same head), so the head built for the backend last time is reused.
   * Null when there is no raw head.
   */
  rawKey: object | null;
}

/**
 * The exchange for one request, not started yet: the front stores it before
 * `forward` runs (which may answer at once, e.g. 421 or 403).
 */
export function newExchange(conn: L7Conn, front: FrontSide, req: RequestIn): Exchange {
  conn.requests++;
  const ex = new Exchange(conn.info, front, conn.ctx.route(), req.method, req.path);
  conn.track(ex);
  return ex;
}

/**
 * Proxies one request: checks, then the backend. The front delivers the
 * body through `requestData`/`requestEnd`; every outcome ends in a response,
 * a reset, or a logged error.
 */
export function forward(conn: L7Conn, front: FrontSide, ex: Exchange, req: RequestIn): void {
  const ctx = conn.ctx;
  const record = ex.record;

  // The proxy does not tunnel (HTTP/1.1 CONNECT is refused by the codec already).
  if (req.method === "CONNECT") return answer(ex, front, 501, BODY_501_CONNECT);
  // SPEC §5: the request's host must be the name the connection was routed by
  // (checked once per distinct authority on a connection: clients repeat it).
  if (req.authority !== conn.checkedAuthority) {
    const host = req.authority === "" ? ctx.sni : authorityHost(req.authority);
    if (host !== ctx.sni) {
      log.info("l7.misdirected", { listener: ctx.listenerAddr, sni: ctx.sni, host, client: ctx.client.address });
      return answer(ex, front, 421, BODY_421);
    }
    conn.checkedAuthority = req.authority;
  }
  if (record.l7Policies.length > 0 && blockedByPolicy(conn, record, req)) return answer(ex, front, 403, BODY_403);
  let target: BackendTarget;
  try {
    target = targetFor(ex.entry);
  } catch (e) {
    // A route-level failure (e.g. an unreadable backend_tls_ca): 502 and one JSON log line.
    log.error("l7.route_error", { listener: ctx.listenerAddr, route: record.hostname, reason: (e as Error).message });
    ex.fail(502, BODY_502_ERR);
    return;
  }
  const pool = conn.pool(record);
  const c = pool.clientNow(target);
  if (c !== null && c.kind === "http1" && req.raw !== null) {
    // The common HTTP/1.1 → HTTP/1.1 case: the client's head as it is, plus our forwarding fields
    // (the same head as last time on this connection: the same bytes, built once).
    let head: Uint8Array;
    if (req.rawKey !== null && req.rawKey === conn.lastRawKey) head = conn.lastRawHead!;
    else {
      head = copyWithout(req.raw, req.rawStart, req.rawEnd, req.rawDrop, conn.forwardedFields);
      if (head.length <= H1_REQUEST_HEAD_MEMO_BYTES) {
        conn.lastRawKey = req.rawKey;
        conn.lastRawHead = head;
      }
    }
    return sendH1Head(ex, c.pool, target, req, head, pool);
  }
  const authority = req.authority === "" ? target.defaultAuthority : req.authority;
  if (c) dispatch(conn, ex, c, pool, target, req, authority);
  else resolveThenDispatch(conn, front, ex, pool, target, req, authority);
}

// The closures live in their own functions: a function whose locals an inner
// function captures gets a scope object on every call (JSC), and forward()
// runs once per request.

function blockedByPolicy(conn: L7Conn, record: RouteRecord, req: RequestIn): boolean {
  const v = evaluatePolicies(record.l7Policies, (n) => fieldJoined(req.fields, n));
  if (!v.blocked) return false;
  const ctx = conn.ctx;
  log.info("l7.policy_block", {
    listener: ctx.listenerAddr,
    route: record.hostname,
    client: ctx.client.address,
    policy: v.policy.type,
    value: v.policy.value,
  });
  return true;
}

/** An auto backend whose protocol is not known yet: probe (once per target), then dispatch. */
function resolveThenDispatch(conn: L7Conn, front: FrontSide, ex: Exchange, pool: BackendPool, target: BackendTarget, req: RequestIn, authority: string): void {
  front.pauseRequest();
  pool.resolve(target).then(
    (c2) => dispatch(conn, ex, c2, pool, target, req, authority),
    (e: Error & { code?: string }) => {
      pool.connectFailed(target);
      ex.onError({ connect: true, code: e.code ?? "", message: e.message });
    },
  );
}

function answer(ex: Exchange, front: FrontSide, status: number, text: string): void {
  ex.finished = true;
  ex.status = status;
  front.fail(status, text);
}

/** Sends the request to the chosen client; the backend's field list (req.fields filtered, plus ours) is built straight into the head's list. */
function dispatch(conn: L7Conn, ex: Exchange, c: Client, pool: BackendPool, target: BackendTarget, req: RequestIn, authority: string): void {
  if (ex.finished) return;
  // `pool`: an unreachable auto backend is probed again next time (pool.connectFailed).
  if (c.kind === "http1") sendH1(conn, ex, c.pool, target, req, authority, pool);
  else sendH2(conn, ex, c.client, target, req, authority, pool);
}

// ---------------------------------------------------------------- HTTP/1.1 backends

const BODY_501_CONNECT = "501 Not Implemented: CONNECT is not proxied\n";

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

function sendH1(conn: L7Conn, ex: Exchange, pool: H1Pool, target: BackendTarget, req: RequestIn, authority: string, backends: BackendPool): void {
  // Clients repeat their requests (HTTP/2 ones field for field, out of HPACK's table): the same
  // inputs on this connection reuse the head built last time (~0.5 µs of fields and serializing).
  const m = conn.lastH1Head;
  if (m !== null && sameInputs(m, req, authority)) return sendH1Head(ex, pool, target, req, m.head, backends);
  const hf = joinCookies(backendRequestFields(req.fields, conn.ctx.client.address, ["host", authority]));
  if (req.body === "length") hf.push("content-length", String(req.contentLength));
  else if (req.body !== "none") hf.push("transfer-encoding", "chunked");
  const head = serializeRequestHead(req.method, req.path, hf);
  if (!(head instanceof Uint8Array)) return ex.fail(400, "400 Bad Request: header not representable in HTTP/1.1\n", `request head: ${head.reason}`);
  if (head.length <= H1_REQUEST_HEAD_MEMO_BYTES) {
    conn.lastH1Head = { ...inputsOf(req, authority), head };
  }
  sendH1Head(ex, pool, target, req, head, backends);
}

/** What a request for a backend is built from, to remember with what was built (a copy of the list: the memo must not depend on whether a front reuses its arrays). */
function inputsOf(req: RequestIn, authority: string): RequestInputs {
  return { method: req.method, path: req.path, authority, body: req.body, contentLength: req.contentLength, fields: req.fields.slice() };
}

/** Whether `req` (with `authority`) has the inputs `m` remembers: then what was built from them is the same. */
function sameInputs(m: RequestInputs, req: RequestIn, authority: string): boolean {
  return m.method === req.method && m.path === req.path && m.authority === authority && m.body === req.body && m.contentLength === req.contentLength && sameFields(m.fields, req.fields);
}

function sameFields(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Sends a serialized request head (its framing field matching `req.body`) and attaches the exchange. */
function sendH1Head(ex: Exchange, pool: H1Pool, target: BackendTarget, req: RequestIn, head: Uint8Array, backends: BackendPool): void {
  const body = req.body === "none" ? NO_BODY : req.body === "length" ? { kind: "length" as const, length: req.contentLength } : CHUNKED;
  const side = new H1Side(ex, req.method, backends, target);
  side.x = pool.request(target, req.method, head, body, side, req.body === "none" && IDEMPOTENT.has(req.method));
  ex.attach(side, "http1");
}

const NO_BODY: RequestBody = { kind: "none" };
const CHUNKED: RequestBody = { kind: "chunked" };

/** Connects an Exchange to one request on our HTTP/1.1 pool. */
class H1Side implements ResponseSink, BackendStream {
  x: H1Exchange | null = null;

  constructor(
    private readonly ex: Exchange,
    private readonly method: string,
    private readonly backends: BackendPool,
    private readonly target: BackendTarget,
  ) {}

  wantsRawHead(): boolean {
    return this.ex.wantsRawHead();
  }

  onHead(h: ResponseHead, raw: Uint8Array | null, at: number): void {
    if (h.status === 101) {
      // forward() never asks for an upgrade (Upgrade is not forwarded; WebSocket has its own path),
      // and a server must not switch to a protocol nobody asked for (RFC 9110 §15.2.2): 502.
      this.x?.cancel();
      return this.ex.onError({ connect: false, code: "EPROTO", message: "backend answered 101 Switching Protocols to a request that asked for no upgrade" });
    }
    const noBody = h.framing === "none";
    if (raw !== null && this.ex.onRawHead(h.status, raw, at, at + h.length, h.dropLines, null, 0, 0, noBody)) return;
    // Parsed framing-only for a pass-through the front no longer takes: every field is needed now.
    if (!h.complete && raw !== null) h = parseResponseHead(raw, at, at + h.length, this.method) as ResponseHead;
    this.ex.onHead(h.status, clientFieldsOf(h), noBody, h.framing === "length" ? h.contentLength : -1);
  }
  onWholeResponse(h: ResponseHead, raw: Uint8Array, at: number, body: Uint8Array, bodyStart: number, bodyEnd: number): boolean {
    return this.ex.onRawHead(h.status, raw, at, at + h.length, h.dropLines, body, bodyStart, bodyEnd, false);
  }
  onInformational(status: number, fields: string[]): void {
    this.ex.onInformational(status, clientResponseFields(fields, false));
  }
  onData(buf: Uint8Array, start: number, end: number): boolean {
    return this.ex.onData(buf, start, end);
  }
  onEnd(trailers: string[]): void {
    this.ex.onEnd(trailers.length ? clientResponseFields(trailers, false) : trailers);
  }
  onError(e: BackendError): void {
    const connect = e.kind === "connect" || e.kind === "timeout_connect";
    if (connect) this.backends.connectFailed(this.target);
    this.ex.onError({ connect, code: e.code, message: e.message });
  }
  onWritable(): void {
    this.ex.backendWritable();
  }
  write(chunk: Uint8Array): boolean {
    return this.x!.write(chunk);
  }
  end(trailers: readonly string[] | null): void {
    this.x!.end(trailers && trailers.length ? trailers : undefined);
  }
  resume(): void {
    this.x!.resume();
  }
  cancel(): void {
    this.x?.cancel();
  }
}

/**
 * The client's fields for an HTTP/1.1 backend's response head, from a
 * one-entry memo: a pool route hands out the same ResponseHead object (and
 * so the same `headers` list) for a head it saw before (HeadMemo; never
 * modified), so a backend repeating its head costs an identity compare. The
 * list is shared: never modified.
 */
function clientFieldsOf(h: ResponseHead): readonly string[] {
  return headFieldsMemo.of(h.headers, h.contentLength >= 0 && h.status !== 204);
}
const headFieldsMemo = new ClientFieldsMemo(1);

// ---------------------------------------------------------------- HTTP/2 backends

function sendH2(conn: L7Conn, ex: Exchange, client: H2Client, target: BackendTarget, req: RequestIn, authority: string, backends: BackendPool): void {
  const bodyless = req.body === "none";
  const f = h2RequestFields(conn, req, target.tls ? "https" : "http", authority);
  client.stream(f, bodyless, new H2Side(ex, target, backends, client, f, bodyless));
}

/**
 * The request's fields for an HTTP/2 backend. Clients repeat their requests:
 * the same inputs on this connection reuse the list built last time (the
 * list is shared, never modified: a refused request is sent again with it).
 */
function h2RequestFields(conn: L7Conn, req: RequestIn, scheme: string, authority: string): readonly string[] {
  const m = conn.lastH2Fields;
  if (m !== null && m.scheme === scheme && sameInputs(m, req, authority)) return m.out;
  const f = backendRequestFields(req.fields, conn.ctx.client.address, [":method", req.method, ":scheme", scheme, ":authority", authority, ":path", req.path]);
  if (req.body === "length") f.push("content-length", String(req.contentLength));
  if (fieldBytes(f) <= H2_REQUEST_FIELDS_MEMO_BYTES) {
    conn.lastH2Fields = { ...inputsOf(req, authority), scheme, out: f };
  }
  return f;
}

/** Octets of a field list's names and values. */
function fieldBytes(f: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < f.length; i++) n += f[i]!.length;
  return n;
}

/**
 * Connects an Exchange to one stream on our HTTP/2 client session. Response
 * DATA is credited back to the backend only once the front has taken it:
 * a slow client holds at most the stream window here.
 */
class H2Side implements BackendStream, StreamWaiter {
  private uncredited = 0;
  /** Set by onStream before the exchange is attached; no other method runs before that. */
  private s!: H2Stream;
  private attached = false;
  private retries = 0;
  /**
   * The request body so far (copies), to send again with the request if the
   * backend refuses its stream; null once it passed BACKEND_H2_RETRY_BODY_BYTES
   * or the response head arrived (nothing is refused after that).
   */
  private kept: Uint8Array[] | null;
  private keptBytes = 0;
  /** end() was called, with these trailers; undefined before. */
  private ended: readonly string[] | null | undefined = undefined;
  /** Refused and sent again, no new stream yet: body writes are kept, not sent, and the front waits. */
  private waiting = false;
  /** A response head (1xx or final) came: the backend took the request, so it is never sent again. */
  private heard = false;

  constructor(
    readonly ex: Exchange,
    private readonly target: BackendTarget,
    private readonly backends: BackendPool,
    private readonly client: H2Client,
    /** The request's fields, kept to send it again if the backend refuses its stream (shared: never modified). */
    private readonly fields: readonly string[],
    private readonly bodyless: boolean,
  ) {
    this.kept = bodyless ? null : [];
  }

  /**
   * The backend refused the stream without processing it (REFUSED_STREAM, or
   * above a GOAWAY's last stream id: RFC 9113 §8.7): the request goes out
   * once more, on a connection that takes it (nginx ends every connection
   * after keepalive_requests with a GOAWAY, and streams sent meanwhile are
   * refused), at most BACKEND_H2_REFUSED_RETRIES times (the next connection
   * may refuse it too), with its body when that is still kept
   * (BACKEND_H2_RETRY_BODY_BYTES). True when it was sent again.
   */
  retry(): boolean {
    if (this.retries >= BACKEND_H2_REFUSED_RETRIES || this.ex.finished || this.heard || this.s.responded) return false;
    if (!this.bodyless) {
      if (this.kept === null) return false;
      this.waiting = true;
    }
    this.retries++;
    this.client.stream(this.fields, this.bodyless, this);
    return true;
  }

  /** The client gave the request a stream (or failed): attach it to the exchange. */
  onStream(s: H2Stream | null, err: H2Failure | null): void {
    const ex = this.ex;
    if (s === null) {
      if (err!.connect) this.backends.connectFailed(this.target);
      return ex.onError(err!);
    }
    if (ex.finished) return s.reset(H2_ERROR.CANCEL);
    this.s = s;
    // Shared functions, this = the stream (no closures per stream: src/l7/h2/stream.ts).
    s.context = this;
    s.onResponse = sideOnResponse;
    s.onInformational = sideOnInformational;
    s.onData = sideOnData;
    s.onEnd = sideOnEnd;
    s.onReset = sideOnReset;
    s.onWritable = sideOnWritable;
    if (this.attached) {
      // A retry: the exchange has this side already; the body so far goes out again.
      if (this.waiting) this.replay();
      return;
    }
    this.attached = true;
    ex.attach(this, "h2");
  }

  /** Sends the kept body (and its end) on the new stream, then lets the front go on. */
  private replay(): void {
    this.waiting = false;
    const kept = this.kept as Uint8Array[];
    let open = true;
    for (const c of kept) open = this.s.write(c) && open;
    const t = this.ended;
    if (t !== undefined) this.s.end(t && t.length ? t : null);
    else if (open) this.ex.backendWritable();
  }

  /**
   * A response head arrived, 1xx or final: the backend took the request (a
   * 100 Continue may come before it read the body), so a later refusal is
   * not "unprocessed" and the kept body is not needed.
   */
  answered(): void {
    this.heard = true;
    this.kept = null;
  }

  /** Still waiting for a stream only while the exchange is open: a client that left is never sent on (StreamWaiter). */
  wanted(): boolean {
    return !this.ex.finished;
  }

  onData(chunk: Uint8Array): void {
    if (this.ex.onData(chunk, 0, chunk.length) && this.uncredited === 0) this.s.consumed(chunk.byteLength);
    else this.uncredited += chunk.byteLength;
  }

  write(chunk: Uint8Array): boolean {
    const kept = this.kept;
    if (kept !== null) {
      this.keptBytes += chunk.byteLength;
      if (this.keptBytes > BACKEND_H2_RETRY_BODY_BYTES) this.kept = null;
      else kept.push(chunk.slice()); // the chunk is borrowed
    }
    if (this.waiting) {
      if (this.kept === null) {
        // The body outgrew what is kept before the new stream came: it cannot all be sent again.
        this.ex.onError({ connect: false, code: "H2_7", message: "backend refused the stream (request body too long to send again)" });
      }
      return false;
    }
    // Borrowed: the stream writes it out at once or copies what it queues.
    return this.s.write(chunk);
  }
  end(trailers: readonly string[] | null): void {
    this.ended = trailers;
    if (this.waiting) return;
    this.s.end(trailers && trailers.length ? trailers : null);
  }
  resume(): void {
    const n = this.uncredited;
    this.uncredited = 0;
    if (n > 0) this.s.consumed(n);
  }
  cancel(): void {
    this.s.reset(H2_ERROR.CANCEL);
  }
}

function sideOnResponse(this: H2Stream, status: number, fields: readonly string[], endStream: boolean): void {
  const cl = field(fields, "content-length");
  // No Content-Length in a 204 (RFC 9110 §8.6): HTTP/2 clients reject the response when it is there.
  // A response without content (HEAD, 204, 304) is whole with its head: the client gets it ended now,
  // and whatever the backend sends after it is not the client's (content there is a stream error).
  const side = this.context as H2Side;
  side.answered();
  side.ex.onHead(status, responseFieldsMemo.of(fields, status !== 204), endStream || this.noContent, cl === undefined ? -1 : Number(cl));
}
/** Response lists from HTTP/2 backends' decoders (shared, never modified): one entry per backend connection answering at once, for a few. */
const responseFieldsMemo = new ClientFieldsMemo(H2_RESPONSE_FIELDS_MEMO_ENTRIES);
function sideOnInformational(this: H2Stream, status: number, fields: readonly string[]): void {
  const side = this.context as H2Side;
  side.answered();
  side.ex.onInformational(status, clientResponseFields(fields, false));
}
function sideOnData(this: H2Stream, chunk: Uint8Array): void {
  (this.context as H2Side).onData(chunk);
}
function sideOnEnd(this: H2Stream, trailers: readonly string[] | null): void {
  (this.context as H2Side).ex.onEnd(trailers ? clientResponseFields(trailers, false) : EMPTY_FIELDS);
}
function sideOnReset(this: H2Stream, code: number, reason: string): void {
  if (code === H2_ERROR.REFUSED_STREAM && (this.context as H2Side).retry()) return;
  // A backend that sent a whole content-length body and then RST_STREAM(NO_ERROR) without
  // END_STREAM (node:http2 does, depending on the window updates it gets) gave a complete
  // response: the client gets it ended, not reset. Without a length the end is unknown: reset.
  if (code === H2_ERROR.NO_ERROR && reason === "peer_reset" && this.responded && this.contentLength >= 0 && this.received === this.contentLength) {
    return (this.context as H2Side).ex.onEnd(EMPTY_FIELDS);
  }
  (this.context as H2Side).ex.onError({ connect: false, code: `H2_${code}`, message: `backend reset the stream (${reason})` });
}
function sideOnWritable(this: H2Stream): void {
  (this.context as H2Side).ex.backendWritable();
}

const EMPTY_FIELDS: Fields = [];
