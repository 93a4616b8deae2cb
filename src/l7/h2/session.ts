/**
 * HTTP/2 connection engine (RFC 9113) for either role: consumes frames,
 * keeps every stream's state and both directions' flow control, and writes
 * frames through a thin transport. No sockets and no timers of its own —
 * the owner feeds bytes in, reports drain/close, and calls tick(now) from
 * its sweeper. The model is nghttp2's session (frames in → state → frames
 * out) and HAProxy's mux_h2 (glitch counting, graceful GOAWAY).
 *
 * Output: frames are appended to one buffer and written once per event
 * (end of receive(), or a microtask after an application call), so the
 * frames of one turn go out in one write. A partial write blocks the
 * session until drained(); while blocked no DATA is pulled from the
 * streams, whose bounded queues then make write() return false.
 *
 * Errors: a connection error sends GOAWAY(last peer stream, code) and ends
 * the session; a stream error sends RST_STREAM and the connection lives.
 * Each stream error, refused stream and frame that does the application no
 * good spends a "glitch" token (limits.ts); an empty bucket is a GOAWAY
 * ENHANCE_YOUR_CALM.
 */

import { ByteWriter } from "./bytes.ts";
import { connError, H2_ERROR, H2Error, streamError } from "./errors.ts";
import {
  CLIENT_PREFACE,
  DataFrame,
  FrameReader,
  H2_DEFAULT_INITIAL_WINDOW_SIZE,
  H2_DEFAULT_MAX_FRAME_SIZE,
  H2_FLAG,
  H2_FRAME,
  H2_MAX_WINDOW_SIZE,
  H2_SETTING,
  HeaderBlockAssembler,
  HeadersFrame,
  parseData,
  parseGoaway,
  parseHeaders,
  parsePing,
  parsePriority,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  writeData,
  writeFrameHeader,
  writeGoaway,
  writeHeaders,
  writePing,
  writeRstStream,
  writeSettings,
  writeSettingsAck,
  writeWindowUpdate,
  type H2Frame,
} from "./frame.ts";
import { validateRequestHeaders, validateResponseHeaders, validateTrailers, type RequestCheckOptions, type RequestHead, type ResponseHead } from "./headers.ts";
import { H2_MAX_HEADER_LIST_BYTES, HpackDecoder, HpackEncoder, type HeaderList } from "./hpack.ts";
import { InboundWindow } from "./flow.ts";
import { H2_ASSUMED_PEER_MAX_CONCURRENT_STREAMS, H2_CLOSED_STREAMS_KEPT, H2_DISCARD_AFTER_RESPONSE_MS, H2_CONNECTION_WINDOW_BYTES, H2_GLITCH_BURST, H2_GLITCH_REFILL_PER_SECOND, H2_GOAWAY_PING_TIMEOUT_MS, H2_MAX_CONCURRENT_STREAMS, H2_MAX_QUEUED_CONTROL_FRAMES, H2_MAX_REFUSED_STREAMS, H2_OUTPUT_BATCH_BYTES, H2_RAPID_RESET_BURST, H2_RAPID_RESET_REFILL_PER_SECOND, H2_SEND_STALL_TIMEOUT_MS, H2_SETTINGS_TIMEOUT_MS, H2_SMALL_WINDOW_UPDATE_BYTES, H2_STREAM_SEND_BUFFER_BYTES, H2_STREAM_WINDOW_BYTES } from "../../limits.ts";
import { RateBudget } from "./budget.ts";
import { CLOSED, H2Stream, type ClosedHow, type StreamHost } from "./stream.ts";

/**
 * What the session writes through. `write` must take what it accepts
 * synchronously (the session reuses its buffer): it returns the bytes
 * accepted — fewer than given means "call drained() when writable", -1 means
 * closed. `shutdown` sends FIN after everything written; `terminate` resets.
 */
export interface H2Transport {
  /**
   * Writes `data[offset, offset + length)`; returns bytes accepted (-1 when
   * closed). A range, not a view (see ARCHITECTURE.md on `subarray`); named
   * apart from `write` so that a transport taking only `data` cannot
   * implement it by mistake.
   */
  writeRange(data: Uint8Array, offset: number, length: number): number;
  shutdown(): void;
  terminate(): void;
}

export interface H2SessionOptions {
  role: "server" | "client";
  /** Our per-stream receive window, advertised as SETTINGS_INITIAL_WINDOW_SIZE (≥ 65535). */
  streamWindow?: number;
  /** Our connection receive window (≥ 65535). */
  connectionWindow?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce (server role). */
  maxConcurrentStreams?: number;
  /** Decoded header-list cap, advertised as SETTINGS_MAX_HEADER_LIST_SIZE. */
  maxHeaderListBytes?: number;
  /** Per-stream send queue before write() returns false. */
  sendBufferBytes?: number;
  /** tick() sends GOAWAY after this long with no open stream; 0 (default) leaves it to the owner. */
  idleTimeoutMs?: number;
  /** Millisecond clock (default Date.now); the owner's coarse clock is fine. */
  now?: () => number;
  /** Server role: a stream opened with a valid request head. Set the stream's callbacks here. */
  onStream?: (stream: H2Stream) => void;
  /** The peer sent GOAWAY (client role: streams above lastStreamId were reset with REFUSED_STREAM, safe to retry). */
  onGoaway?: (code: number, lastStreamId: number) => void;
  /** The session ended: null after a clean finish, else the connection error (ours or the transport's). */
  onClose?: (error: H2Error | null) => void;
  /** Client role: a stream we opened closed, so the peer's MAX_CONCURRENT_STREAMS has room for another. */
  onLocalStreamClosed?: () => void;
  /**
   * Give connection-level credit as soon as DATA arrives (stream credit still
   * waits for `consumed`). For backend connections shared by many clients:
   * one slow client then holds at most its stream window and never stalls
   * the others on the same connection (HAProxy's mux does the same). Off for
   * client-facing sessions, where the connection window bounds what one
   * client can make us hold. Default false.
   */
  creditConnectionOnReceipt?: boolean;
}

/** Counters for logs and metrics; plain fields, read them any time. */
export interface H2SessionStats {
  streamsOpened: number;
  /** Streams refused with REFUSED_STREAM over MAX_CONCURRENT_STREAMS. */
  streamsRefused: number;
  /** Streams we reset for the peer's protocol errors. */
  streamErrors: number;
  /** RST_STREAMs received. */
  peerResets: number;
  /** Of those, before we sent a response head (server role). */
  rapidResets: number;
  glitches: number;
  pings: number;
  settingsFrames: number;
  priorityFrames: number;
  emptyDataFrames: number;
  smallWindowUpdates: number;
  unknownFrames: number;
  /** Header lists over maxHeaderListBytes (answered 431 or reset). */
  headerListOverflows: number;
  framesReceived: number;
  bytesWritten: number;
  /** The error that ended the connection (ours, or the peer's GOAWAY code as a connection error), else null. */
  error: H2Error | null;
}

const S_OPEN = 0;
const S_DRAINING = 1;
const S_CLOSED = 2;

const EMIT_DONE = 0;
const EMIT_MORE = 1;
const EMIT_STREAM_BLOCKED = 2;
const EMIT_CONN_BLOCKED = 3;

/** Opaque data of the PING that follows a graceful GOAWAY(2^31-1). */
const GOAWAY_PING = new TextEncoder().encode("mcgoaway");
const EMPTY = new Uint8Array(0);
/** Flush rounds per call before yielding to the event loop (each pulls up to H2_OUTPUT_BATCH_BYTES). */
const FLUSH_ROUNDS = 8;

const STATUS_FIELDS: string[][] = [];
function statusField(status: number): string[] {
  return (STATUS_FIELDS[status] ??= [":status", String(status)]);
}

export class H2Session implements StreamHost {
  readonly isServer: boolean;
  readonly sendBufferBytes: number;
  readonly stats: H2SessionStats = {
    streamsOpened: 0,
    streamsRefused: 0,
    streamErrors: 0,
    peerResets: 0,
    rapidResets: 0,
    glitches: 0,
    pings: 0,
    settingsFrames: 0,
    priorityFrames: 0,
    emptyDataFrames: 0,
    smallWindowUpdates: 0,
    unknownFrames: 0,
    headerListOverflows: 0,
    framesReceived: 0,
    bytesWritten: 0,
    error: null,
  };
  /** Clock time since which no stream is open; -1 while one is. The owner closes an idle connection from this. */
  idleSince: number;

  private readonly transport: H2Transport;
  private readonly now: () => number;
  private readonly onStreamCb: ((stream: H2Stream) => void) | null;
  private readonly onGoawayCb: ((code: number, lastStreamId: number) => void) | null;
  private readonly onCloseCb: ((error: H2Error | null) => void) | null;
  private readonly onLocalClosedCb: (() => void) | null;
  private readonly idleTimeoutMs: number;

  private readonly reader: FrameReader;
  private readonly assembler = new HeaderBlockAssembler();
  private readonly decoder: HpackDecoder;
  /** Every DATA / HEADERS frame is parsed into these (one object per session, none per frame). */
  private readonly dataFrame = new DataFrame();
  private readonly headersFrame = new HeadersFrame();
  /** The last request list validated and its head: the decoder's memo gives the same list object for a repeated block, and validation is pure. */
  private lastRequestList: HeaderList | null = null;
  private lastRequestHead: RequestHead | null = null;
  /** Client role, the same for responses: a backend repeating its response head costs an identity compare. */
  private lastResponseList: HeaderList | null = null;
  private lastResponseHead: ResponseHead | null = null;
  private readonly encoder = new HpackEncoder();
  private readonly out = new ByteWriter();
  private readonly scratch = new ByteWriter(1024);
  /** Bytes of `out` before this were written. */
  private outStart = 0;
  /** The last write was partial: wait for drained(). */
  private blocked = false;
  /** Streams dropping the rest of a request body after their response (onLocalEnd). */
  private discarding = 0;
  /** The DATA frame sendDataNow wrote last: its stream, the offset of its flags octet in `out`, and out.len right after it (-1: none). */
  private lastDataId = 0;
  private lastDataFlagsAt = 0;
  private lastDataEnd = -1;
  private flushing = false;
  private flushAgain = false;
  private flushScheduled = false;
  private inReceive = false;
  private pendingInput: Uint8Array[] | null = null;
  /** Control frames written while blocked. */
  private queuedControl = 0;
  private shutdownPending = false;
  private readonly flushTask = (): void => this.flush();

  private readonly streams = new Map<number, H2Stream>();
  /**
   * The last H2_CLOSED_STREAMS_KEPT closed ids and how they closed, as a ring
   * (slot closedPos is the oldest). Looked up only for frames on streams no
   * longer open — rare, and bounded by the glitch budget — so a scan beats
   * keeping a Map in step with every stream's close.
   */
  private readonly closedRing = new Int32Array(H2_CLOSED_STREAMS_KEPT);
  private readonly closedHow = new Uint8Array(H2_CLOSED_STREAMS_KEPT);
  private closedPos = 0;
  /** Streams with DATA, END_STREAM or trailers to send, served round-robin. */
  private readonly sendList: H2Stream[] = [];
  /** Streams to call onWritable on after this flush. */
  private writable: H2Stream[] = [];
  private peerStreams = 0;
  private localStreams = 0;
  private lastPeerStreamId = 0;
  private nextStreamId: number;

  private readonly streamWindow: number;
  private readonly maxConcurrent: number;
  private readonly connRecv: InboundWindow;
  private readonly eagerConnCredit: boolean;
  private settingsAcksOwed = 1;
  private settingsSentAt: number;

  private peerSettingsSeen = false;
  private peerInitialWindow = H2_DEFAULT_INITIAL_WINDOW_SIZE;
  private peerMaxFrameSize = H2_DEFAULT_MAX_FRAME_SIZE;
  private peerMaxConcurrent = H2_ASSUMED_PEER_MAX_CONCURRENT_STREAMS;
  private sendConnWindow = H2_DEFAULT_INITIAL_WINDOW_SIZE;

  private state = S_OPEN;
  /** Last stream id in the final GOAWAY we sent, -1 before. */
  private goawayLastId = -1;
  /** When the GOAWAY(2^31-1)+PING of a graceful shutdown went out, -1 otherwise. */
  private goawayPingAt = -1;
  private stalledSince = -1;
  /** DATA frames with content written (a progress counter for the stream-window stall check). */
  private dataFrames = 0;
  private dataFramesAtTick = 0;
  /** Server role: since when every stream with data to send has waited on its own window, nothing sent; -1 when not. */
  private windowStallSince = -1;
  private readonly glitches: RateBudget;
  private readonly resets: RateBudget;
  /** END_STREAM flag and frame-level stream error of the HEADERS whose block is being assembled. */
  private pendEndStream = false;
  private pendError: H2Error | null = null;

  constructor(
    transport: H2Transport,
    opts: H2SessionOptions,
  ) {
    this.transport = transport;
    this.isServer = opts.role === "server";
    this.now = opts.now ?? Date.now;
    this.onStreamCb = opts.onStream ?? null;
    this.onGoawayCb = opts.onGoaway ?? null;
    this.onCloseCb = opts.onClose ?? null;
    this.onLocalClosedCb = opts.onLocalStreamClosed ?? null;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 0;
    this.sendBufferBytes = opts.sendBufferBytes ?? H2_STREAM_SEND_BUFFER_BYTES;
    this.streamWindow = clampWindow(opts.streamWindow ?? H2_STREAM_WINDOW_BYTES);
    const connWindow = clampWindow(opts.connectionWindow ?? H2_CONNECTION_WINDOW_BYTES);
    this.connRecv = new InboundWindow(connWindow);
    this.eagerConnCredit = opts.creditConnectionOnReceipt ?? false;
    this.maxConcurrent = opts.maxConcurrentStreams ?? H2_MAX_CONCURRENT_STREAMS;
    const maxList = opts.maxHeaderListBytes ?? H2_MAX_HEADER_LIST_BYTES;
    // Backend connections: repeated literal values (nginx indexes nothing) are recognized, not decoded again.
    this.decoder = new HpackDecoder({ maxHeaderListBytes: maxList, rememberLiterals: !this.isServer });
    this.reader = new FrameReader({ expectPreface: this.isServer });
    this.nextStreamId = this.isServer ? 2 : 1;
    const now = this.now();
    this.idleSince = now;
    this.settingsSentAt = now;
    this.glitches = new RateBudget(H2_GLITCH_BURST, H2_GLITCH_REFILL_PER_SECOND, now);
    this.resets = new RateBudget(H2_RAPID_RESET_BURST, H2_RAPID_RESET_REFILL_PER_SECOND, now);

    const params = this.isServer
      ? [H2_SETTING.MAX_CONCURRENT_STREAMS, this.maxConcurrent]
      : [H2_SETTING.ENABLE_PUSH, 0];
    params.push(H2_SETTING.INITIAL_WINDOW_SIZE, this.streamWindow, H2_SETTING.MAX_HEADER_LIST_SIZE, maxList);
    if (!this.isServer) this.out.bytes(CLIENT_PREFACE);
    writeSettings(this.out, params);
    if (connWindow > H2_DEFAULT_INITIAL_WINDOW_SIZE) writeWindowUpdate(this.out, 0, connWindow - H2_DEFAULT_INITIAL_WINDOW_SIZE);
    this.scheduleFlush();
  }

  // -------------------------------------------------------------------------
  // Owner API

  /** Streams open (any state but closed). */
  get openStreams(): number {
    return this.streams.size;
  }

  /** True once the session ended (GOAWAY exchanged and streams done, connection error, or transport closed). */
  get closed(): boolean {
    return this.state === S_CLOSED;
  }

  /** True once either side sent GOAWAY: no new streams. */
  get draining(): boolean {
    return this.state !== S_OPEN;
  }

  /** Client role: whether request() would open a stream now. */
  get canRequest(): boolean {
    return this.state === S_OPEN && this.localStreams < this.peerMaxConcurrent && this.nextStreamId <= H2_MAX_WINDOW_SIZE;
  }

  /** Feeds bytes read from the transport. Frames it provokes are written before it returns. */
  receive(chunk: Uint8Array): void {
    if (this.state === S_CLOSED) return;
    if (this.inReceive) {
      (this.pendingInput ??= []).push(chunk);
      return;
    }
    this.inReceive = true;
    try {
      this.readFrames(chunk);
      while (this.pendingInput !== null && this.state !== S_CLOSED) {
        const more = this.pendingInput;
        this.pendingInput = null;
        for (const c of more) this.readFrames(c);
      }
    } finally {
      this.inReceive = false;
      this.pendingInput = null;
    }
    this.flush();
  }

  /** The transport can take more: writes what was left and pulls more DATA. */
  drained(): void {
    if (this.outStart < this.out.len) {
      this.writeOut();
      if (this.blocked) return;
    }
    if (this.shutdownPending) {
      this.shutdownPending = false;
      this.transport.shutdown();
      return;
    }
    this.flush();
  }

  /** The transport closed (`error` when it failed). Open streams get onReset(CANCEL, "connection_closed"). */
  transportClosed(error?: unknown): void {
    this.shutdownPending = false;
    if (this.state === S_CLOSED) return;
    const hadStreams = this.streams.size > 0;
    this.state = S_CLOSED;
    this.abortStreams(H2_ERROR.CANCEL, "connection_closed");
    const err = error !== undefined || hadStreams ? connError(H2_ERROR.CANCEL, error !== undefined ? "transport_error" : "transport_closed") : null;
    if (err) this.stats.error ??= err;
    this.onCloseCb?.(err);
  }

  /** Closes at once with a TCP reset (the owner's hard deadline). */
  destroy(): void {
    if (this.state !== S_CLOSED) this.transport.terminate();
    this.transportClosed();
  }

  /**
   * Client role: opens a stream with a request head (`[name, value, …]`,
   * pseudo-headers first). Null when the peer's MAX_CONCURRENT_STREAMS is
   * reached, stream ids are exhausted or either side sent GOAWAY: use
   * another connection.
   */
  request(fields: readonly string[], endStream: boolean, neverIndex: readonly string[] | null = null): H2Stream | null {
    if (this.isServer) throw new Error("h2: request() on a server session");
    if (!this.canRequest) return null;
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const s = new H2Stream(id, this, this.streamWindow, this.peerInitialWindow);
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === ":method") {
        s.isHeadRequest = fields[i + 1] === "HEAD";
        break;
      }
    }
    this.streams.set(id, s);
    this.localStreams++;
    this.idleSince = -1;
    this.stats.streamsOpened++;
    s.headSent = true;
    this.writeBlock(id, fields, 0, endStream, neverIndex);
    if (endStream) s.endQueued = s.localEnded = true;
    this.scheduleFlush();
    return s;
  }

  /**
   * Stops taking new streams. NO_ERROR (default): graceful — a server sends
   * GOAWAY(2^31-1) and a PING, then GOAWAY(last stream id) when the PING
   * comes back (requests already in flight are still served; nghttp2 and
   * HAProxy do the same), or at once when `graceful` is false; the session
   * ends when its streams are done. Another code: connection error now.
   */
  goaway(code: number = H2_ERROR.NO_ERROR, graceful = true): void {
    if (this.state === S_CLOSED) return;
    if (code !== H2_ERROR.NO_ERROR) {
      this.fail(new H2Error("connection", code as H2Error["code"], "local_goaway"));
      return;
    }
    if (this.goawayPingAt >= 0) {
      if (!graceful) this.sendFinalGoaway();
      this.scheduleFlush();
      return;
    }
    if (this.goawayLastId >= 0) return;
    this.state = S_DRAINING;
    if (this.isServer && graceful) {
      writeGoaway(this.out, H2_MAX_WINDOW_SIZE, H2_ERROR.NO_ERROR);
      writePing(this.out, GOAWAY_PING, false);
      this.goawayPingAt = this.now();
    } else {
      this.goawayLastId = this.isServer ? this.lastPeerStreamId : 0;
      writeGoaway(this.out, this.goawayLastId, H2_ERROR.NO_ERROR);
    }
    this.scheduleFlush();
    this.maybeFinish();
  }

  /**
   * The owner's sweeper: SETTINGS ack timeout (SETTINGS_TIMEOUT), the
   * graceful GOAWAY's PING timeout, a send side stalled for
   * H2_SEND_STALL_TIMEOUT_MS (ENHANCE_YOUR_CALM), and idleTimeoutMs.
   */
  tick(now: number): void {
    if (this.state === S_CLOSED) return;
    if (this.settingsAcksOwed > 0 && now - this.settingsSentAt > H2_SETTINGS_TIMEOUT_MS) {
      this.fail(connError(H2_ERROR.SETTINGS_TIMEOUT, "settings_timeout"));
      return;
    }
    if (this.stalledSince >= 0) {
      if (!(this.blocked || (this.sendConnWindow <= 0 && this.sendList.length > 0))) this.stalledSince = -1;
      else if (now - this.stalledSince > H2_SEND_STALL_TIMEOUT_MS) {
        this.fail(connError(H2_ERROR.ENHANCE_YOUR_CALM, "send_stalled"));
        return;
      }
    }
    if (this.isServer) {
      // A client that opens the connection window but never its streams' (or sets
      // SETTINGS_INITIAL_WINDOW_SIZE 0) holds its streams, and their backends, forever:
      // data waiting, none of it sendable, nothing sent for H2_SEND_STALL_TIMEOUT_MS → GOAWAY.
      // One paused stream among streams that move is left alone.
      if (this.dataFrames === this.dataFramesAtTick && this.allPendingOnStreamWindows()) {
        if (this.windowStallSince < 0) this.windowStallSince = now;
        else if (now - this.windowStallSince > H2_SEND_STALL_TIMEOUT_MS) {
          this.fail(connError(H2_ERROR.ENHANCE_YOUR_CALM, "send_stalled"));
          return;
        }
      } else this.windowStallSince = -1;
      this.dataFramesAtTick = this.dataFrames;
    }
    if (this.goawayPingAt >= 0 && now - this.goawayPingAt > H2_GOAWAY_PING_TIMEOUT_MS) {
      this.sendFinalGoaway();
      this.scheduleFlush();
    }
    if (this.idleTimeoutMs > 0 && this.streams.size === 0 && this.idleSince >= 0 && now - this.idleSince >= this.idleTimeoutMs) {
      this.goaway(H2_ERROR.NO_ERROR, false);
    }
    if (this.discarding > 0) {
      for (const s of [...this.streams.values()]) if (s.discardUntil >= 0 && now >= s.discardUntil) this.stopDiscarding(s);
    }
  }

  // -------------------------------------------------------------------------
  // StreamHost: what H2Stream calls

  sendHeaders(s: H2Stream, fields: readonly string[], status: number, endStream: boolean, neverIndex: readonly string[] | null): void {
    this.writeBlock(s.id, fields, status, endStream, neverIndex);
    if (endStream) {
      s.endQueued = true;
      this.onLocalEnd(s);
    }
    this.scheduleFlush();
  }

  sendDataNow(s: H2Stream, buf: Uint8Array, start: number, end: number): boolean {
    const n = end - start;
    const out = this.out;
    if (this.blocked || this.state === S_CLOSED || s.inSendList) return false;
    if (n > s.sendWindow || n > this.sendConnWindow || n > this.peerMaxFrameSize) return false;
    if (out.len - this.outStart >= H2_OUTPUT_BATCH_BYTES) return false;
    const at = out.len;
    writeFrameHeader(out, n, H2_FRAME.DATA, 0, s.id);
    out.copyFrom(buf, start, end);
    s.sendWindow -= n;
    this.sendConnWindow -= n;
    this.stalledSince = -1;
    this.dataFrames++;
    this.lastDataId = s.id;
    this.lastDataFlagsAt = at + 4;
    this.lastDataEnd = out.len;
    this.scheduleFlush();
    return true;
  }

  endOnLastData(s: H2Stream): boolean {
    // lastDataEnd is -1 once writeOut handed the frame to the transport (the only place outStart moves).
    if (this.lastDataId !== s.id || this.out.len !== this.lastDataEnd) return false;
    this.out.buf[this.lastDataFlagsAt] |= H2_FLAG.END_STREAM;
    this.lastDataEnd = -1;
    this.onLocalEnd(s);
    this.scheduleFlush();
    return true;
  }

  sendQueued(s: H2Stream): void {
    if (!s.inSendList) {
      s.inSendList = true;
      this.sendList.push(s);
    }
    this.scheduleFlush();
  }

  sendReset(s: H2Stream, code: number, reason: string): void {
    this.resetStream(s, code, reason, false);
    this.scheduleFlush();
  }

  sendCredit(s: H2Stream, n: number): void {
    const w = s.recv;
    if (w === null) return;
    const m = Math.min(n, w.held);
    if (!(m > 0)) return;
    const inc = w.consume(m);
    if (inc > 0 && !s.closed && !s.remoteEnded) writeWindowUpdate(this.out, s.id, inc);
    if (!this.eagerConnCredit) this.creditConnection(m);
    this.scheduleFlush();
  }

  // -------------------------------------------------------------------------
  // Frames in

  private readFrames(chunk: Uint8Array): void {
    this.reader.push(chunk);
    for (;;) {
      if (this.state === S_CLOSED) return;
      const f = this.reader.next();
      if (f === null) return;
      if (f instanceof H2Error) {
        this.fail(f);
        return;
      }
      this.stats.framesReceived++;
      const e = this.onFrame(f);
      if (e !== null) {
        if (e.scope === "connection") {
          this.fail(e);
          return;
        }
        this.streamFailed(f.streamId, e);
      }
      if (this.blocked && this.queuedControl > H2_MAX_QUEUED_CONTROL_FRAMES) {
        this.fail(connError(H2_ERROR.ENHANCE_YOUR_CALM, "control_frame_flood"));
        return;
      }
    }
  }

  private onFrame(f: H2Frame): H2Error | null {
    if (this.assembler.active) {
      const block = this.assembler.continue(f);
      if (block === null || block instanceof H2Error) return block;
      return this.onHeaderBlock(f.streamId, block, 0, block.length);
    }
    if (!this.peerSettingsSeen && (f.type !== H2_FRAME.SETTINGS || (f.flags & H2_FLAG.ACK) !== 0)) {
      return connError(H2_ERROR.PROTOCOL_ERROR, "preface_without_settings");
    }
    switch (f.type) {
      case H2_FRAME.DATA:
        return this.onData(f);
      case H2_FRAME.HEADERS:
        return this.onHeaders(f);
      case H2_FRAME.PRIORITY:
        return this.onPriority(f);
      case H2_FRAME.RST_STREAM:
        return this.onRstStream(f);
      case H2_FRAME.SETTINGS:
        return this.onSettings(f);
      case H2_FRAME.PUSH_PROMISE:
        // A client never pushes; we never enable push as a client (§8.4).
        return connError(H2_ERROR.PROTOCOL_ERROR, "push_promise");
      case H2_FRAME.PING:
        return this.onPing(f);
      case H2_FRAME.GOAWAY:
        return this.onGoaway(f);
      case H2_FRAME.WINDOW_UPDATE:
        return this.onWindowUpdate(f);
      case H2_FRAME.CONTINUATION:
        return connError(H2_ERROR.PROTOCOL_ERROR, "unexpected_continuation");
      default:
        // §4.1/§5.5: unknown types are ignored — but not for free.
        this.stats.unknownFrames++;
        return this.glitch("unknown_frame");
    }
  }

  private onData(f: H2Frame): H2Error | null {
    const d = parseData(f, this.dataFrame);
    if (d instanceof H2Error) return d;
    const id = f.streamId;
    const flow = d.flowLength;
    if (!this.connRecv.receive(flow)) return connError(H2_ERROR.FLOW_CONTROL_ERROR, "connection_window_exceeded");
    const s = this.streams.get(id);
    if (s === undefined) {
      this.creditConnection(flow);
      if (this.isIdle(id)) return connError(H2_ERROR.PROTOCOL_ERROR, "data_on_idle_stream");
      return this.onClosedStreamFrame(id, "data");
    }
    if (s.remoteEnded) {
      this.creditConnection(flow);
      return streamError(H2_ERROR.STREAM_CLOSED, "data_after_end_stream");
    }
    if (!this.isServer && !s.responded) {
      this.creditConnection(flow);
      return streamError(H2_ERROR.PROTOCOL_ERROR, "data_before_response");
    }
    if (!(s.recv ??= new InboundWindow(s.recvSize)).receive(flow)) {
      this.creditConnection(flow);
      return streamError(H2_ERROR.FLOW_CONTROL_ERROR, "stream_window_exceeded");
    }
    if (this.eagerConnCredit) this.creditConnection(flow);
    const n = d.end - d.start;
    if (flow > n) this.sendCredit(s, flow - n); // padding: nothing for the application
    s.received += n;
    // Content in a response that cannot have any (RFC 9110 §15.3.5, §9.3.2; RFC 9113 §8.1.1
    // malformed): passed on, an HTTP/1.1 client would read it as the next response.
    if (n > 0 && s.noContent) return streamError(H2_ERROR.PROTOCOL_ERROR, "content_in_response_without_content");
    if (s.contentLength >= 0 && (s.received > s.contentLength || (d.endStream && s.received !== s.contentLength))) {
      return streamError(H2_ERROR.PROTOCOL_ERROR, "content_length_mismatch");
    }
    if (n === 0 && !d.endStream) {
      this.stats.emptyDataFrames++;
      const g = this.glitch("empty_data");
      if (g) return g;
    }
    if (n > 0) {
      if (s.onData !== null) s.onData(d.buf.subarray(d.start, d.end));
      else this.sendCredit(s, n);
    }
    if (d.endStream && !s.closed) this.endRemote(s, null);
    return null;
  }

  private onHeaders(f: H2Frame): H2Error | null {
    const h = parseHeaders(f, this.headersFrame);
    if (h instanceof H2Error) return h;
    const e = this.assembler.begin(f.streamId, h.buf, h.start, h.end, h.endHeaders);
    if (e !== null) return e;
    this.pendEndStream = h.endStream;
    this.pendError = h.streamError;
    if (!h.endHeaders) return null;
    return this.onHeaderBlock(f.streamId, h.buf, h.start, h.end);
  }

  /** A complete header block `buf[start, end)` for stream `id`: always decoded first (§4.3: the HPACK state must follow every block). */
  private onHeaderBlock(id: number, buf: Uint8Array, start: number, end: number): H2Error | null {
    const list = this.decoder.decode(buf, start, end);
    if (list instanceof H2Error) return list;
    const endStream = this.pendEndStream;
    const frameErr = this.pendError;
    this.pendError = null;
    const s = this.streams.get(id);
    if (s !== undefined) {
      if (s.remoteEnded) return streamError(H2_ERROR.STREAM_CLOSED, "headers_after_end_stream");
      if (frameErr) return frameErr;
      if (!this.isServer && !s.responded) return this.onResponseHead(s, list, endStream);
      return this.onTrailers(s, list, endStream);
    }
    if (!this.isPeerInitiated(id)) {
      if (this.isIdle(id)) return connError(H2_ERROR.PROTOCOL_ERROR, this.isServer ? "even_stream_id" : "headers_on_idle_stream");
      return this.onClosedStreamFrame(id, "headers");
    }
    if (!this.isServer) return connError(H2_ERROR.PROTOCOL_ERROR, "server_initiated_stream");
    if (id <= this.lastPeerStreamId) return this.onClosedStreamFrame(id, "headers");
    return this.openStream(id, list, endStream, frameErr);
  }

  /** Server role: a request HEADERS on a new stream id. */
  private openStream(id: number, list: HeaderList, endStream: boolean, frameErr: H2Error | null): H2Error | null {
    this.lastPeerStreamId = id;
    if (this.goawayLastId >= 0 && id > this.goawayLastId) {
      this.remember(id, CLOSED.RESET_BY_US); // §6.8: after GOAWAY, new streams are ignored
      return null;
    }
    if (frameErr) return this.refuseNew(id, frameErr.code, "stream_error");
    if (list.overflow) {
      // HPACK bomb or just too many cookies: answer 431 (RFC 6585) rather than a bare reset.
      this.stats.headerListOverflows++;
      this.writeBlock(id, EMPTY_FIELDS, 431, true, null);
      if (!endStream) writeRstStream(this.out, id, H2_ERROR.NO_ERROR);
      this.remember(id, CLOSED.RESET_BY_US);
      return this.glitch("header_list_overflow");
    }
    let head: RequestHead | H2Error;
    if (list === this.lastRequestList) head = this.lastRequestHead!;
    else {
      head = validateRequestHeaders(list.fields, list.checked ? CHECKED : UNCHECKED);
      if (head instanceof H2Error) return this.refuseNew(id, head.code, "stream_error");
      this.lastRequestList = list;
      this.lastRequestHead = head;
    }
    if (endStream && head.contentLength > 0) return this.refuseNew(id, H2_ERROR.PROTOCOL_ERROR, "stream_error");
    if (this.peerStreams >= this.maxConcurrent) {
      this.stats.streamsRefused++;
      // A client that keeps opening streams past our limit is not waiting for them to finish.
      if (this.stats.streamsRefused > H2_MAX_REFUSED_STREAMS) return connError(H2_ERROR.ENHANCE_YOUR_CALM, "refused_stream_flood");
      return this.refuseNew(id, H2_ERROR.REFUSED_STREAM, "refused_stream");
    }
    const s = new H2Stream(id, this, this.streamWindow, this.peerInitialWindow);
    s.head = head;
    s.fields = list.fields;
    s.neverIndexed = list.neverIndexed;
    s.contentLength = head.contentLength;
    s.remoteEnded = endStream;
    this.streams.set(id, s);
    this.peerStreams++;
    this.idleSince = -1;
    this.stats.streamsOpened++;
    if (this.onStreamCb === null) {
      this.resetStream(s, H2_ERROR.REFUSED_STREAM, "no_handler", false);
      return null;
    }
    this.onStreamCb(s);
    if (endStream && (!s.closed || this.closedAs(id) === CLOSED.ENDED)) s.onEnd?.(null);
    return null;
  }

  /** RST_STREAM for a stream that never reached the application. */
  private refuseNew(id: number, code: number, glitch: string): H2Error | null {
    if (code !== H2_ERROR.REFUSED_STREAM) this.stats.streamErrors++;
    writeRstStream(this.out, id, code);
    this.controlWritten();
    this.remember(id, CLOSED.RESET_BY_US);
    return this.glitch(glitch);
  }

  /** Client role: response head (1xx or final) on one of our streams. */
  private onResponseHead(s: H2Stream, list: HeaderList, endStream: boolean): H2Error | null {
    if (list.overflow) {
      // RFC 9113 §10.5.1: a client can discard a response it cannot process.
      this.stats.headerListOverflows++;
      return streamError(H2_ERROR.CANCEL, "response_header_list_overflow");
    }
    let head: ResponseHead | H2Error;
    if (list === this.lastResponseList) head = this.lastResponseHead!;
    else {
      head = validateResponseHeaders(list.fields, list.checked);
      if (head instanceof H2Error) return head;
      this.lastResponseList = list;
      this.lastResponseHead = head;
    }
    if (head.status < 200) {
      if (endStream) return streamError(H2_ERROR.PROTOCOL_ERROR, "informational_with_end_stream");
      s.onInformational?.(head.status, list.fields);
      return null;
    }
    s.responded = true;
    s.status = head.status;
    s.fields = list.fields;
    s.neverIndexed = list.neverIndexed;
    // A HEAD response, 204 and 304 declare a length they do not carry (RFC 9110 §8.6), and carry no content.
    s.noContent = s.isHeadRequest || head.status === 204 || head.status === 304;
    s.contentLength = s.noContent ? -1 : head.contentLength;
    if (endStream && s.contentLength > 0) return streamError(H2_ERROR.PROTOCOL_ERROR, "content_length_mismatch");
    if (endStream) s.remoteEnded = true;
    s.onResponse?.(head.status, list.fields, endStream);
    if (endStream && !s.closed) this.endRemote(s, null);
    return null;
  }

  /** A second header block on a stream: trailers, which must end it (§8.1). */
  private onTrailers(s: H2Stream, list: HeaderList, endStream: boolean): H2Error | null {
    if (!endStream) return streamError(H2_ERROR.PROTOCOL_ERROR, "trailers_without_end_stream");
    if (list.overflow) {
      this.stats.headerListOverflows++;
      return streamError(H2_ERROR.PROTOCOL_ERROR, "trailers_too_large");
    }
    const bad = validateTrailers(list.fields, list.checked);
    if (bad) return bad;
    if (s.contentLength >= 0 && s.received !== s.contentLength) return streamError(H2_ERROR.PROTOCOL_ERROR, "content_length_mismatch");
    this.endRemote(s, list.fields);
    return null;
  }

  /** The peer's side of `s` ended normally. */
  private endRemote(s: H2Stream, trailers: readonly string[] | null): void {
    s.remoteEnded = true;
    // Closed before the callback, so its concurrency slot is free for a request made from onEnd.
    if (s.localEnded) this.closeStream(s, CLOSED.ENDED);
    s.onEnd?.(trailers);
  }

  /** DATA or HEADERS for a stream no longer in the table (§5.1 "closed"). */
  private onClosedStreamFrame(id: number, what: "data" | "headers"): H2Error | null {
    const how = this.closedAs(id);
    if (how === CLOSED.RESET_BY_US) return null; // in flight when we reset it
    if (how === CLOSED.RESET_BY_PEER) return streamError(H2_ERROR.STREAM_CLOSED, `${what}_after_rst_stream`);
    if (how === CLOSED.ENDED) return connError(H2_ERROR.STREAM_CLOSED, `${what}_on_closed_stream`);
    // Never opened (an id skipped over, §5.1.1) or closed too long ago to remember.
    if (what === "headers") return connError(H2_ERROR.PROTOCOL_ERROR, "stream_id_not_increasing");
    return this.glitch("data_on_closed_stream");
  }

  private onPriority(f: H2Frame): H2Error | null {
    const p = parsePriority(f);
    if (p instanceof H2Error) return p;
    // RFC 9113 deprecates the priority tree (§5.3.2); the frame is read and dropped.
    this.stats.priorityFrames++;
    return this.glitch("priority");
  }

  private onRstStream(f: H2Frame): H2Error | null {
    const r = parseRstStream(f);
    if (r instanceof H2Error) return r;
    const s = this.streams.get(f.streamId);
    if (s === undefined) return this.isIdle(f.streamId) ? connError(H2_ERROR.PROTOCOL_ERROR, "rst_stream_on_idle_stream") : null;
    this.stats.peerResets++;
    this.closeStream(s, CLOSED.RESET_BY_PEER);
    let err: H2Error | null = null;
    if (this.isServer && !s.headSent) {
      // CVE-2023-44487: open, cancel, repeat — each costs a backend request, never a concurrency slot.
      this.stats.rapidResets++;
      if (!this.resets.take(this.now())) err = connError(H2_ERROR.ENHANCE_YOUR_CALM, "rapid_reset");
    }
    s.onReset?.(r.errorCode, "peer_reset");
    return err;
  }

  private onSettings(f: H2Frame): H2Error | null {
    const st = parseSettings(f);
    if (st instanceof H2Error) return st;
    if (st.ack) {
      if (this.settingsAcksOwed === 0) return this.glitch("settings_ack");
      this.settingsAcksOwed--;
      return null;
    }
    if (this.peerSettingsSeen) {
      this.stats.settingsFrames++;
      const g = this.glitch("settings");
      if (g) return g;
    }
    this.peerSettingsSeen = true;
    const p = st.params;
    for (let i = 0; i < p.length; i += 2) {
      const v = p[i + 1];
      switch (p[i]) {
        case H2_SETTING.HEADER_TABLE_SIZE:
          this.encoder.setPeerMaxTableSize(v);
          break;
        case H2_SETTING.ENABLE_PUSH:
          if (!this.isServer && v !== 0) return connError(H2_ERROR.PROTOCOL_ERROR, "server_enabled_push");
          break;
        case H2_SETTING.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrent = v;
          break;
        case H2_SETTING.INITIAL_WINDOW_SIZE: {
          const delta = v - this.peerInitialWindow;
          this.peerInitialWindow = v;
          if (delta === 0) break;
          // §6.9.2: every stream window moves by the difference, possibly below zero.
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > H2_MAX_WINDOW_SIZE) return connError(H2_ERROR.FLOW_CONTROL_ERROR, "settings_window_overflow");
            if (delta > 0 && (s.queued > 0 || (s.endQueued && !s.localEnded))) this.sendQueued(s);
          }
          break;
        }
        case H2_SETTING.MAX_FRAME_SIZE:
          this.peerMaxFrameSize = v;
          break;
      }
    }
    writeSettingsAck(this.out);
    this.controlWritten();
    return null;
  }

  private onPing(f: H2Frame): H2Error | null {
    const p = parsePing(f);
    if (p instanceof H2Error) return p;
    if (p.ack) {
      // Never answered (§6.7). Ours: the graceful GOAWAY's round trip is done.
      if (this.goawayPingAt >= 0 && sameBytes(p.opaque, GOAWAY_PING)) this.sendFinalGoaway();
      return null;
    }
    this.stats.pings++;
    const g = this.glitch("ping");
    if (g) return g;
    writePing(this.out, p.opaque, true);
    this.controlWritten();
    return null;
  }

  private onGoaway(f: H2Frame): H2Error | null {
    const g = parseGoaway(f);
    if (g instanceof H2Error) return g;
    if (this.state === S_OPEN) this.state = S_DRAINING;
    if (g.errorCode !== H2_ERROR.NO_ERROR) this.stats.error ??= new H2Error("connection", g.errorCode as H2Error["code"], "peer_goaway");
    if (!this.isServer) {
      // Streams above lastStreamId were never processed: safe to retry elsewhere (§6.8).
      for (const s of [...this.streams.values()]) {
        if (s.id > g.lastStreamId) {
          this.closeStream(s, CLOSED.RESET_BY_PEER);
          s.onReset?.(H2_ERROR.REFUSED_STREAM, "goaway");
        }
      }
    }
    this.onGoawayCb?.(g.errorCode, g.lastStreamId);
    this.maybeFinish();
    return null;
  }

  private onWindowUpdate(f: H2Frame): H2Error | null {
    const id = f.streamId;
    const w = parseWindowUpdate(f);
    if (w instanceof H2Error) {
      if (w.scope === "connection" || this.streams.has(id)) return w;
      return this.isIdle(id) ? connError(H2_ERROR.PROTOCOL_ERROR, "window_update_on_idle_stream") : null;
    }
    const inc = w.increment;
    // Counted, never a glitch: a peer that credits back each DATA frame as it reads it
    // (HAProxy, nghttp2 with small windows) answers our small frames with small updates.
    // The cost stays the peer's: the updates of one read leave as one flush.
    if (inc < H2_SMALL_WINDOW_UPDATE_BYTES) this.stats.smallWindowUpdates++;
    if (id === 0) {
      this.sendConnWindow += inc;
      if (this.sendConnWindow > H2_MAX_WINDOW_SIZE) return connError(H2_ERROR.FLOW_CONTROL_ERROR, "connection_window_overflow");
      if (this.sendList.length > 0) this.scheduleFlush();
      return null;
    }
    const s = this.streams.get(id);
    if (s === undefined) return this.isIdle(id) ? connError(H2_ERROR.PROTOCOL_ERROR, "window_update_on_idle_stream") : null;
    s.sendWindow += inc;
    if (s.sendWindow > H2_MAX_WINDOW_SIZE) return streamError(H2_ERROR.FLOW_CONTROL_ERROR, "stream_window_overflow");
    if (s.queued > 0 || (s.endQueued && !s.localEnded)) this.sendQueued(s);
    return null;
  }

  /** A stream error on `id` (§5.4.2): RST_STREAM, tell the application, spend a glitch. */
  private streamFailed(id: number, err: H2Error): void {
    const s = this.streams.get(id);
    if (s !== undefined) {
      this.stats.streamErrors++;
      this.resetStream(s, err.code, err.reason, true);
    } else if (this.isIdle(id)) {
      // RST_STREAM must not name an idle stream (§6.4): escalate.
      this.fail(connError(err.code, err.reason));
      return;
    } else {
      this.stats.streamErrors++;
      writeRstStream(this.out, id, err.code);
      this.controlWritten();
      this.remember(id, CLOSED.RESET_BY_US);
    }
    const g = this.glitch("stream_error");
    if (g) this.fail(g);
  }

  // -------------------------------------------------------------------------
  // Stream bookkeeping

  private isPeerInitiated(id: number): boolean {
    return (id & 1) === (this.isServer ? 1 : 0);
  }

  /** Not yet opened by its initiator (§5.1 "idle"); only for ids not in the table. */
  private isIdle(id: number): boolean {
    return this.isPeerInitiated(id) ? id > this.lastPeerStreamId : id >= this.nextStreamId;
  }

  /** Records how `id` closed; the oldest of H2_CLOSED_STREAMS_KEPT ids is forgotten. */
  private remember(id: number, how: ClosedHow): void {
    const pos = this.closedPos;
    this.closedRing[pos] = id;
    this.closedHow[pos] = how;
    this.closedPos = pos + 1 === H2_CLOSED_STREAMS_KEPT ? 0 : pos + 1;
  }

  /** How `id` closed (its newest record), or undefined when not among the ids remembered. */
  private closedAs(id: number): ClosedHow | undefined {
    const ring = this.closedRing;
    const n = H2_CLOSED_STREAMS_KEPT;
    for (let k = 1, i = this.closedPos; k <= n; k++) {
      i = i === 0 ? n - 1 : i - 1;
      if (ring[i] === id) return this.closedHow[i] as ClosedHow;
    }
    return undefined;
  }

  private closeStream(s: H2Stream, how: ClosedHow): void {
    if (s.closed) return;
    s.closed = true;
    if (s.discardUntil >= 0) {
      s.discardUntil = -1;
      this.discarding--;
    }
    this.streams.delete(s.id);
    const local = !this.isPeerInitiated(s.id);
    if (local) this.localStreams--;
    else this.peerStreams--;
    this.remember(s.id, how);
    if (how !== CLOSED.ENDED) {
      // Reset: the application drops what it holds, so its share of the connection window comes back now.
      const w = s.recv;
      const held = w === null ? 0 : w.held;
      if (held > 0) {
        w!.held = 0;
        this.creditConnection(held);
      }
      s.queue = null;
      s.queued = 0;
    }
    if (this.streams.size === 0) {
      this.idleSince = this.now();
      this.maybeFinish();
    }
    if (local && this.onLocalClosedCb !== null) this.onLocalClosedCb();
  }

  /**
   * Server role: the client's input ended (TCP FIN). No frame can follow, so
   * a stream whose request is still open can never complete: each is reset
   * (CANCEL) and its application told. Streams with a whole request keep
   * going (their responses may still be read).
   */
  peerInputEnded(): void {
    const open: H2Stream[] = [];
    for (const st of this.streams.values()) if (!st.remoteEnded && this.isPeerInitiated(st.id)) open.push(st);
    for (const st of open) this.resetStream(st, H2_ERROR.CANCEL, "client_input_ended", true);
  }

  private resetStream(s: H2Stream, code: number, reason: string, notify: boolean): void {
    if (s.closed) return;
    writeRstStream(this.out, s.id, code);
    this.controlWritten();
    this.closeStream(s, CLOSED.RESET_BY_US);
    if (notify) s.onReset?.(code, reason);
  }

  /** We wrote END_STREAM on `s`. */
  private onLocalEnd(s: H2Stream): void {
    s.localEnded = true;
    if (s.remoteEnded) {
      this.closeStream(s, CLOSED.ENDED);
    } else if (this.isServer) {
      // §8.1: a complete response while the request is still coming. The request side is over for
      // the application; the rest of the body is read and dropped (credited) until the client ends
      // it, for at most H2_DISCARD_AFTER_RESPONSE_MS, then RST_STREAM(NO_ERROR) (see tick).
      s.discardUntil = this.now() + H2_DISCARD_AFTER_RESPONSE_MS;
      this.discarding++;
      const onReset = s.onReset;
      s.onData = s.onEnd = s.onWritable = s.onReset = null;
      if (s.recv !== null && s.recv.held > 0) this.sendCredit(s, s.recv.held);
      onReset?.call(s, H2_ERROR.NO_ERROR, "response_complete");
    }
  }

  /** A stream dropping the rest of its request body (onLocalEnd) stops now: RST_STREAM(NO_ERROR). */
  private stopDiscarding(s: H2Stream): void {
    writeRstStream(this.out, s.id, H2_ERROR.NO_ERROR);
    this.closeStream(s, CLOSED.RESET_BY_US);
    this.scheduleFlush();
  }

  private abortStreams(code: number, reason: string): void {
    if (this.streams.size === 0) return;
    for (const s of [...this.streams.values()]) {
      this.closeStream(s, CLOSED.RESET_BY_US);
      s.onReset?.(code, reason);
    }
  }

  private creditConnection(n: number): void {
    const inc = this.connRecv.consume(n);
    if (inc > 0 && this.state !== S_CLOSED) writeWindowUpdate(this.out, 0, inc);
  }

  private glitch(what: string): H2Error | null {
    this.stats.glitches++;
    return this.glitches.take(this.now()) ? null : connError(H2_ERROR.ENHANCE_YOUR_CALM, `${what}_flood`);
  }

  private controlWritten(): void {
    if (this.blocked) this.queuedControl++;
  }

  // -------------------------------------------------------------------------
  // Ending

  /** Some stream has data (or its end) queued, and every such stream waits on its own send window. */
  private allPendingOnStreamWindows(): boolean {
    let pending = false;
    for (const s of this.streams.values()) {
      if (s.closed || s.localEnded || (s.queued === 0 && !s.endQueued)) continue;
      if (s.queued === 0 || s.sendWindow > 0) return false;
      pending = true;
    }
    return pending;
  }

  private sendFinalGoaway(): void {
    this.goawayPingAt = -1;
    this.goawayLastId = this.lastPeerStreamId;
    writeGoaway(this.out, this.goawayLastId, H2_ERROR.NO_ERROR);
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.state !== S_DRAINING || this.streams.size > 0 || this.goawayPingAt >= 0) return;
    this.state = S_CLOSED;
    if (this.goawayLastId < 0) writeGoaway(this.out, this.lastPeerStreamId, H2_ERROR.NO_ERROR);
    this.writeOut();
    if (this.outStart < this.out.len) this.shutdownPending = true;
    else this.transport.shutdown();
    this.onCloseCb?.(null);
  }

  /** Connection error (§5.4.1): GOAWAY with the last stream we processed, then FIN (or a reset if the peer is not reading). */
  private fail(err: H2Error): void {
    if (this.state === S_CLOSED) return;
    this.stats.error = err;
    writeGoaway(this.out, this.lastPeerStreamId, err.code, new TextEncoder().encode(err.reason));
    this.state = S_CLOSED;
    this.abortStreams(err.code, err.reason);
    this.writeOut();
    if (this.outStart < this.out.len) this.transport.terminate();
    else this.transport.shutdown();
    this.onCloseCb?.(err);
  }

  // -------------------------------------------------------------------------
  // Frames out

  private writeBlock(id: number, fields: readonly string[], status: number, endStream: boolean, neverIndex: readonly string[] | null): void {
    const sc = this.scratch;
    sc.reset();
    this.encoder.encodeBlock(status > 0 ? statusField(status) : null, fields, sc, neverIndex);
    writeHeaders(this.out, id, sc.buf, endStream, this.peerMaxFrameSize, null, sc.len);
  }

  private scheduleFlush(): void {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    if (this.inReceive || this.flushScheduled || this.state === S_CLOSED) return;
    this.flushScheduled = true;
    // Server role: after this event-loop turn's I/O, so the responses of many
    // backend sockets read in one turn leave as one write (one TLS record burst):
    // measured +20 % req/s for h2 clients → HTTP/1.1 backends. Client role: at once.
    if (this.isServer) setImmediate(this.flushTask);
    else queueMicrotask(this.flushTask);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    if (this.state === S_CLOSED || this.blocked) return;
    this.flushing = true;
    try {
      for (let round = 0; round < FLUSH_ROUNDS; round++) {
        this.flushAgain = false;
        if (this.sendList.length > 0) this.fillData();
        this.writeOut();
        if (this.writable.length > 0) this.notifyWritable();
        if (this.state === S_CLOSED || this.blocked) break;
        if (!this.flushAgain && (this.sendList.length === 0 || this.sendConnWindow <= 0)) break;
      }
    } finally {
      this.flushing = false;
    }
    // Data waits on the connection window: the stall clock runs until the peer opens it (tick()).
    if (this.sendConnWindow <= 0 && this.sendList.length > 0 && this.stalledSince < 0) this.stalledSince = this.now();
    if (this.state !== S_CLOSED && !this.blocked && (this.flushAgain || this.out.len > this.outStart || (this.sendList.length > 0 && this.sendConnWindow > 0))) {
      this.scheduleFlush();
    }
  }

  /** Pulls DATA (and END_STREAM/trailers) from the streams, one frame per stream per pass, until the batch is full. */
  private fillData(): void {
    const list = this.sendList;
    const maxFrame = this.peerMaxFrameSize;
    let i = 0;
    let progressed = false;
    while (list.length > 0 && this.out.len - this.outStart < H2_OUTPUT_BATCH_BYTES) {
      if (i >= list.length) {
        if (!progressed) break;
        i = 0;
        progressed = false;
      }
      const s = list[i];
      const r = this.emitData(s, maxFrame);
      if (r === EMIT_MORE) {
        i++;
        progressed = true;
      } else if (r === EMIT_CONN_BLOCKED) {
        break;
      } else {
        list.splice(i, 1);
        s.inSendList = false;
        if (r === EMIT_DONE) progressed = true;
      }
    }
  }

  private emitData(s: H2Stream, maxFrame: number): number {
    if (s.closed || s.localEnded) return EMIT_DONE;
    if (s.queued > 0) {
      const win = s.sendWindow < this.sendConnWindow ? s.sendWindow : this.sendConnWindow;
      if (win <= 0) return this.sendConnWindow <= 0 ? EMIT_CONN_BLOCKED : EMIT_STREAM_BLOCKED;
      const n = Math.min(s.queued, maxFrame, win);
      const last = n === s.queued && s.endQueued && s.trailers === null;
      writeFrameHeader(this.out, n, H2_FRAME.DATA, last ? H2_FLAG.END_STREAM : 0, s.id);
      this.copyQueued(s, n);
      s.sendWindow -= n;
      this.sendConnWindow -= n;
      this.stalledSince = -1;
      this.dataFrames++;
      if (s.wantWritable && s.queued < s.sendCap()) {
        s.wantWritable = false;
        this.writable.push(s);
      }
      if (last) {
        this.onLocalEnd(s);
        return EMIT_DONE;
      }
      return s.queued > 0 || s.endQueued ? EMIT_MORE : EMIT_DONE;
    }
    if (s.endQueued) {
      if (s.trailers !== null) this.writeBlock(s.id, s.trailers, 0, true, null);
      else writeData(this.out, s.id, EMPTY, true);
      this.onLocalEnd(s);
    }
    return EMIT_DONE;
  }

  private copyQueued(s: H2Stream, n: number): void {
    const out = this.out;
    out.ensure(n);
    const q = s.queue!; // n <= queued, so there is one
    s.queued -= n;
    while (n > 0) {
      const c = q[0];
      const off = s.queueOffset;
      const avail = c.length - off;
      if (avail <= n) {
        out.buf.set(off === 0 ? c : c.subarray(off), out.len);
        out.len += avail;
        n -= avail;
        q.shift();
        s.queueOffset = 0;
      } else {
        out.buf.set(c.subarray(off, off + n), out.len);
        out.len += n;
        s.queueOffset = off + n;
        n = 0;
      }
    }
  }

  private notifyWritable(): void {
    const list = this.writable;
    this.writable = [];
    for (const s of list) if (!s.closed) s.onWritable?.();
  }

  private writeOut(): void {
    const len = this.out.len - this.outStart;
    if (len === 0) return;
    this.lastDataEnd = -1; // what is handed to the transport is not edited any more
    const n = this.transport.writeRange(this.out.buf, this.outStart, len);
    if (n < 0) {
      this.out.reset();
      this.outStart = 0;
      this.transportClosed();
      return;
    }
    this.stats.bytesWritten += n;
    if (n >= len) {
      this.out.reset();
      this.outStart = 0;
      if (this.blocked) this.stalledSince = -1;
      this.blocked = false;
      this.queuedControl = 0;
      return;
    }
    this.outStart += n;
    this.blocked = true;
    if (n > 0 || this.stalledSince < 0) this.stalledSince = this.now();
  }
}

const EMPTY_FIELDS: string[] = [];
/** validateRequestHeaders options for a list whose characters the decoder checked, or did not. */
const CHECKED: RequestCheckOptions = { checked: true };
const UNCHECKED: RequestCheckOptions = {};

function clampWindow(n: number): number {
  return Math.min(Math.max(n, H2_DEFAULT_INITIAL_WINDOW_SIZE), H2_MAX_WINDOW_SIZE);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
