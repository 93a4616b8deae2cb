/**
 * One HTTP/2 stream as the application sees it (RFC 9113 §5.1), for either
 * role. The stream holds its own state and queues; every frame is written by
 * its session (StreamHost), which owns the wire and the windows.
 *
 * Callbacks are plain assignable fields (no EventEmitter), set by the
 * application when it gets the stream (in onStream, or right after
 * session.request()). A chunk passed to onData is valid during the call only:
 * copy what you keep. Each byte passed to onData must be given back with
 * consumed(n) once it has been passed on (even after onEnd) — that, not the
 * read, reopens the peer's window. After onReset nothing is owed.
 */

import { H2_ERROR } from "./errors.ts";
import type { InboundWindow } from "./flow.ts";
import type { RequestHead } from "./headers.ts";
import { H2_STREAM_SEND_BUFFER_MIN_BYTES } from "../../limits.ts";

/** The part of the session a stream calls into. */
export interface StreamHost {
  readonly sendBufferBytes: number;
  sendHeaders(s: H2Stream, fields: readonly string[], status: number, endStream: boolean, neverIndex: readonly string[] | null): void;
  sendQueued(s: H2Stream): void;
  /** Writes buf[start, end) (borrowed) as one DATA frame now if nothing is queued ahead of it and the windows allow; false = queue it. */
  sendDataNow(s: H2Stream, buf: Uint8Array, start: number, end: number): boolean;
  /** Sets END_STREAM on this stream's DATA frame if it is still the last unsent frame; false = send END_STREAM the usual way. */
  endOnLastData(s: H2Stream): boolean;
  sendReset(s: H2Stream, code: number, reason: string): void;
  sendCredit(s: H2Stream, n: number): void;
}

export type H2StreamState = "open" | "half_closed_local" | "half_closed_remote" | "closed";

/** How a stream ended, remembered after it is gone (session bookkeeping). */
export const CLOSED = {
  /** Both END_STREAMs seen: a later DATA/HEADERS is a connection STREAM_CLOSED. */
  ENDED: 1,
  /** We sent RST_STREAM (or ignored the stream): frames in flight are dropped quietly. */
  RESET_BY_US: 2,
  /** The peer sent RST_STREAM: a later DATA/HEADERS is a stream STREAM_CLOSED. */
  RESET_BY_PEER: 3,
} as const;
export type ClosedHow = (typeof CLOSED)[keyof typeof CLOSED];

export class H2Stream {
  // --- application callbacks -------------------------------------------
  // Called as methods of the stream (`this` is the stream): one function shared by every
  // stream can find its own object in `context` instead of a closure per stream.

  /** A DATA payload (valid during the call only). Unset: bytes are dropped and credited back at once. */
  onData: ((chunk: Uint8Array) => void) | null = null;
  /** The peer finished its side: trailers (`[name, value, …]`) or null. Called once, after the last onData. */
  onEnd: ((trailers: readonly string[] | null) => void) | null = null;
  /**
   * The stream ended abnormally: the peer's RST_STREAM, our reset after a
   * protocol error (reason says which), the connection's end, or — server
   * role — our RST_STREAM(NO_ERROR) after a complete response while the
   * request was still coming (RFC 9113 §8.1). Called once; nothing follows.
   */
  onReset: ((code: number, reason: string) => void) | null = null;
  /** write() returned false earlier and the queue has room again. */
  onWritable: (() => void) | null = null;
  /** Client role: the final response head (`fields` includes :status). */
  onResponse: ((status: number, fields: readonly string[], endStream: boolean) => void) | null = null;
  /** Client role: a 1xx head (100-continue, 103 early hints); ignored when unset. */
  onInformational: ((status: number, fields: readonly string[]) => void) | null = null;

  // --- what the peer sent ------------------------------------------------
  /** Server role: the validated request head; `fields` holds the whole list (pseudo-headers first). */
  head: RequestHead | null = null;
  /** The peer's header list: request (server role) or final response (client role). */
  fields: readonly string[] = EMPTY_FIELDS;
  /** Field names the peer sent never-indexed (forward them the same way), or null. */
  neverIndexed: readonly string[] | null = null;
  /** Client role: final response status, 0 until it arrives. */
  status = 0;
  /** The application's object for this stream (what its callbacks act on), or anything it wants to hang on it. */
  context: unknown = null;

  // --- session-owned state -----------------------------------------------
  /** @internal Peer sent END_STREAM (or we stopped reading). */
  remoteEnded = false;
  /** @internal We wrote END_STREAM. */
  localEnded = false;
  /** @internal Gone from the session's table. */
  closed = false;
  /** @internal A response (server) or request (client) HEADERS went out. */
  headSent = false;
  /** @internal Client role: the final response head arrived. */
  responded = false;
  /** @internal Client role: the request was HEAD (a response content-length describes no body). */
  isHeadRequest = false;
  /** @internal Client role: the response can carry no content (HEAD, 204, 304): DATA with any is malformed. */
  noContent = false;
  /** @internal Declared content-length of what the peer sends, -1 when none or not applicable. */
  contentLength = -1;
  /** @internal DATA payload bytes received. */
  received = 0;
  /** @internal Receive window, made with the first DATA frame (most requests have none); `recvSize` until then. */
  recv: InboundWindow | null = null;
  /** @internal Size the receive window starts at. */
  readonly recvSize: number;
  /** @internal Peer's window for this stream; may go negative (§6.9.2). */
  sendWindow: number;
  /** @internal Chunks waiting for window; `queueOffset` bytes of queue[0] already sent. */
  queue: Uint8Array[] | null = null;
  queueOffset = 0;
  /** @internal Bytes in `queue` not yet sent. */
  queued = 0;
  /** @internal end() called: END_STREAM (or trailers) goes after the queue. */
  endQueued = false;
  trailers: readonly string[] | null = null;
  /** @internal write() returned false: call onWritable when the queue has room. */
  wantWritable = false;
  /** @internal In the session's list of streams with something to send. */
  inSendList = false;
  /** @internal Server role: response complete, request still coming: its DATA is dropped until this time (-1: not so). */
  discardUntil = -1;

  constructor(
    /** Stream identifier. */
    readonly id: number,
    private readonly host: StreamHost,
    recvWindow: number,
    sendWindow: number,
  ) {
    this.recvSize = recvWindow;
    this.sendWindow = sendWindow;
  }

  /** RFC 9113 §5.1 state (reserved states never occur: push is off). */
  get state(): H2StreamState {
    if (this.closed) return "closed";
    if (this.localEnded) return "half_closed_local";
    if (this.remoteEnded) return "half_closed_remote";
    return "open";
  }

  /** Bytes queued for sending (write() returns false from sendCap() on). */
  get bufferedBytes(): number {
    return this.queued;
  }

  /**
   * @internal Queued bytes at which write() says "pause": the session's
   * sendBufferBytes (H2_STREAM_SEND_BUFFER_BYTES), lowered to the peer's
   * stream window while that is smaller, but never below
   * H2_STREAM_SEND_BUFFER_MIN_BYTES (one frame ready when the window opens).
   */
  sendCap(): number {
    const max = this.host.sendBufferBytes;
    if (this.sendWindow >= max) return max;
    return Math.min(max, Math.max(H2_STREAM_SEND_BUFFER_MIN_BYTES, this.sendWindow));
  }

  /**
   * Server role: sends a response head. `fields` are regular fields only
   * (lower-case names, no connection-specific ones); :status is added. A 1xx
   * status sends an informational head and a final one must follow.
   * `endStream` ends the response with the head (no body; gRPC trailers-only).
   * Ignored on a closed stream; a second final head throws (a program bug).
   */
  respond(status: number, fields: readonly string[], endStream = false, neverIndex: readonly string[] | null = null): void {
    if (this.closed || this.localEnded) return;
    if (this.headSent) throw new Error(`h2 stream ${this.id}: response already sent`);
    const final = status >= 200;
    if (!final && endStream) throw new Error(`h2 stream ${this.id}: an informational response cannot end the stream`);
    this.host.sendHeaders(this, fields, status, endStream, neverIndex);
    if (final) this.headSent = true;
  }

  /**
   * Sends body bytes buf[start, end) (default: all of `buf`); server role:
   * after respond(), else it throws. The bytes are borrowed (read during the
   * call only): with nothing queued ahead and the windows open they go into
   * the session's output as one DATA frame at once, else a copy is queued. Returns false when the caller should pause
   * until onWritable: the queue holds at least H2_STREAM_SEND_BUFFER_BYTES.
   * Also false, with the bytes dropped, once the stream is closed or ended
   * (onReset/onEnd already told the caller).
   */
  write(buf: Uint8Array, start = 0, end = buf.length): boolean {
    if (this.closed || this.endQueued) return false;
    if (!this.headSent) throw new Error(`h2 stream ${this.id}: write() before respond()`);
    if (end > start && !(this.queued === 0 && this.host.sendDataNow(this, buf, start, end))) {
      (this.queue ??= []).push(buf.slice(start, end));
      this.queued += end - start;
      this.host.sendQueued(this);
    }
    if (this.queued < this.sendCap()) return true;
    this.wantWritable = true;
    return false;
  }

  /** Ends our side after the queued bytes: with trailers (`[name, value, …]`, e.g. grpc-status) or a bare END_STREAM. */
  end(trailers: readonly string[] | null = null): void {
    if (this.closed || this.endQueued) return;
    if (!this.headSent) throw new Error(`h2 stream ${this.id}: end() before respond()`);
    this.endQueued = true;
    this.trailers = trailers !== null && trailers.length > 0 ? trailers : null;
    // A response whose last DATA frame has not left yet ends on that frame (no empty DATA frame after it).
    if (this.queued === 0 && this.trailers === null && this.host.endOnLastData(this)) return;
    this.host.sendQueued(this);
  }

  /** Abandons the stream with RST_STREAM(code) (default CANCEL). onReset is not called for our own reset. */
  reset(code: number = H2_ERROR.CANCEL): void {
    if (this.closed) return;
    this.host.sendReset(this, code, "local_reset");
  }

  /** Gives back `n` bytes received through onData: they are passed on, the peer may send as many more. */
  consumed(n: number): void {
    this.host.sendCredit(this, n);
  }
}

const EMPTY_FIELDS: readonly string[] = [];
