/**
 * HTTP/2 frame codec (RFC 9113 §4, §6): bytes ↔ frames, no I/O, no session
 * state. Three parts, in the order a session uses them:
 *
 *   - FrameReader: incoming bytes in chunks of any size → frames
 *     `{type, flags, streamId, payload}`, enforcing SETTINGS_MAX_FRAME_SIZE.
 *     A payload is a view into the pushed chunk (no copy) unless the frame
 *     straddles chunks, when it is assembled in the reader's own buffer.
 *   - parseX(frame): the checks of §6 that need nothing but the frame
 *     (lengths, padding, stream-id-0 rules, setting values), giving a typed
 *     view or an H2Error. Which frames are legal in which stream state is the
 *     session's business, as are unknown frame types (ignore them, §4.1).
 *   - HeaderBlockAssembler: HEADERS/PUSH_PROMISE + CONTINUATION → one header
 *     block for HpackDecoder, with caps against CONTINUATION floods.
 *   - writeX(out, …): frames appended to a ByteWriter.
 *
 * Errors are values (H2Error); nothing here throws on any input.
 */

import { ByteWriter } from "./bytes.ts";
import { connError, H2_ERROR, H2Error, streamError } from "./errors.ts";
import { H2_MAX_HEADER_BLOCK_BYTES, H2_MAX_CONTINUATION_FRAMES } from "../../limits.ts";

export { H2_MAX_HEADER_BLOCK_BYTES, H2_MAX_CONTINUATION_FRAMES };

/** RFC 9113 §4.2 initial (and smallest allowed) SETTINGS_MAX_FRAME_SIZE. */
export const H2_DEFAULT_MAX_FRAME_SIZE = 16384;
/** RFC 9113 §6.5.2 largest SETTINGS_MAX_FRAME_SIZE (2^24 - 1). */
export const H2_MAX_FRAME_SIZE_LIMIT = 16777215;
/** RFC 9113 §6.9.1 largest flow-control window (2^31 - 1). */
export const H2_MAX_WINDOW_SIZE = 0x7fffffff;
/** RFC 9113 §6.5.2 initial SETTINGS_INITIAL_WINDOW_SIZE. */
export const H2_DEFAULT_INITIAL_WINDOW_SIZE = 65535;

/** Octets of the fixed frame header (§4.1). */
export const FRAME_HEADER_BYTES = 9;

/** The client connection preface (§3.4): "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n". */
export const CLIENT_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Frame types (§6). */
export const H2_FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags (§6); ACK shares END_STREAM's bit on SETTINGS and PING. */
export const H2_FLAG = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** SETTINGS parameter identifiers (§6.5.2, RFC 8441 §3, RFC 9218 §2.1). */
export const H2_SETTING = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
  NO_RFC7540_PRIORITIES: 0x9,
} as const;

/**
 * A frame as read off the wire. The payload is `buf[start, end)`: a range of
 * the chunk given to FrameReader.push, or of the reader's own buffer, valid
 * until the next call of next() or push() — and so is the frame object
 * itself, which the reader refills for every frame. Copy what you keep
 * (`copy()`). The hot
 * parsers (DATA, HEADERS) cut their one view straight from `buf`: under JSC a
 * typed-array view costs 60–150 ns (the first one of a fresh socket chunk the
 * most), a noticeable share of a small request, so none is made that is not used.
 */
export class H2Frame {
  constructor(
    public type: number,
    public flags: number,
    /** Stream identifier with the reserved bit cleared. */
    public streamId: number,
    public buf: Uint8Array,
    public start: number,
    public end: number,
  ) {}

  /** Refills this object (FrameReader's one frame, reused for every frame it returns). */
  set(type: number, flags: number, streamId: number, buf: Uint8Array, start: number, end: number): H2Frame {
    this.type = type;
    this.flags = flags;
    this.streamId = streamId;
    this.buf = buf;
    this.start = start;
    this.end = end;
    return this;
  }

  /** Payload length (the header's length field). */
  get length(): number {
    return this.end - this.start;
  }

  /** The payload as a view (made on each call). */
  get payload(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }

  /** The same frame over a copy of its payload, to keep past the next read. */
  copy(): H2Frame {
    return new H2Frame(this.type, this.flags, this.streamId, this.buf.slice(this.start, this.end), 0, this.end - this.start);
  }
}

// ---------------------------------------------------------------------------
// Reader

export interface FrameReaderOptions {
  /** Our SETTINGS_MAX_FRAME_SIZE (default 16384). */
  maxFrameSize?: number;
  /** Server side: the input starts with CLIENT_PREFACE, checked and consumed before the first frame. */
  expectPreface?: boolean;
}

/**
 * Splits incoming bytes into frames. Feed each chunk with push(), then call
 * next() until it returns null (needs more bytes). An error is final: every
 * later next() returns it again.
 *
 * Errors (all connection errors): PROTOCOL_ERROR "bad_preface" when the
 * preface does not match; FRAME_SIZE_ERROR "frame_too_large" when a frame's
 * length exceeds maxFrameSize (§4.2: treated as a connection error for every
 * type, since the frame cannot be skipped without reading it).
 */
export class FrameReader {
  private maxFrameSize: number;
  private prefaceLeft: number;
  private chunk: Uint8Array = new Uint8Array(0);
  private pos = 0;
  /** Bytes of a frame that straddles chunks, gathered here. */
  private partial: Uint8Array = new Uint8Array(0);
  private partialLen = 0;
  private error: H2Error | null = null;
  /** The frame next() returns, refilled each time: one object per reader, none per frame. */
  private readonly frame = new H2Frame(0, 0, 0, new Uint8Array(0), 0, 0);

  constructor(opts: FrameReaderOptions = {}) {
    this.maxFrameSize = opts.maxFrameSize ?? H2_DEFAULT_MAX_FRAME_SIZE;
    this.prefaceLeft = opts.expectPreface ? CLIENT_PREFACE.length : 0;
  }

  /** Applies a new SETTINGS_MAX_FRAME_SIZE of ours, once the peer acknowledged it. */
  setMaxFrameSize(size: number): void {
    this.maxFrameSize = size;
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.partialLen + this.chunk.length - this.pos;
  }

  /** True while the client preface has not been fully received. */
  get awaitingPreface(): boolean {
    return this.prefaceLeft > 0;
  }

  /**
   * Adds received bytes. The reader keeps a reference to `chunk` (no copy)
   * until its frames are returned; bytes still unread from the previous
   * chunk are copied aside first.
   */
  push(chunk: Uint8Array): void {
    // Invariant: `partial` holds bytes only once the chunk is used up, so
    // unread bytes (next() was not drained) are joined with the new chunk.
    if (this.pos < this.chunk.length) {
      const rest = this.chunk.subarray(this.pos);
      const joined = new Uint8Array(rest.length + chunk.length);
      joined.set(rest);
      joined.set(chunk, rest.length);
      chunk = joined;
    }
    this.chunk = chunk;
    this.pos = 0;
  }

  /** The next complete frame, null when more bytes are needed, or the (final) error. */
  next(): H2Frame | H2Error | null {
    if (this.error) return this.error;
    if (this.prefaceLeft > 0 && !this.readPreface()) return this.error;
    if (this.partialLen > 0) return this.nextFromPartial();

    const chunk = this.chunk;
    const avail = chunk.length - this.pos;
    if (avail < FRAME_HEADER_BYTES) {
      if (avail > 0) this.stash(chunk.subarray(this.pos));
      this.pos = chunk.length;
      return null;
    }
    const p = this.pos;
    const len = (chunk[p] << 16) | (chunk[p + 1] << 8) | chunk[p + 2];
    if (len > this.maxFrameSize) return this.fail(connError(H2_ERROR.FRAME_SIZE_ERROR, "frame_too_large"));
    if (avail < FRAME_HEADER_BYTES + len) {
      this.stash(chunk.subarray(p));
      this.pos = chunk.length;
      return null;
    }
    this.pos = p + FRAME_HEADER_BYTES + len;
    return this.frame.set(
      chunk[p + 3],
      chunk[p + 4],
      ((chunk[p + 5] & 0x7f) << 24) | (chunk[p + 6] << 16) | (chunk[p + 7] << 8) | chunk[p + 8],
      chunk,
      p + FRAME_HEADER_BYTES,
      p + FRAME_HEADER_BYTES + len,
    );
  }

  /** Consumes preface bytes from the chunk; false when they mismatch or run out. */
  private readPreface(): boolean {
    const chunk = this.chunk;
    const at = CLIENT_PREFACE.length - this.prefaceLeft;
    const n = Math.min(this.prefaceLeft, chunk.length - this.pos);
    for (let i = 0; i < n; i++) {
      if (chunk[this.pos + i] !== CLIENT_PREFACE[at + i]) {
        this.fail(connError(H2_ERROR.PROTOCOL_ERROR, "bad_preface"));
        return false;
      }
    }
    this.pos += n;
    this.prefaceLeft -= n;
    return this.prefaceLeft === 0;
  }

  /** Continues a frame that began in an earlier chunk, moving bytes from the chunk into `partial`. */
  private nextFromPartial(): H2Frame | H2Error | null {
    if (this.partialLen < FRAME_HEADER_BYTES) {
      this.take(FRAME_HEADER_BYTES - this.partialLen);
      if (this.partialLen < FRAME_HEADER_BYTES) return null;
    }
    let h = this.partial;
    const len = (h[0] << 16) | (h[1] << 8) | h[2];
    if (len > this.maxFrameSize) return this.fail(connError(H2_ERROR.FRAME_SIZE_ERROR, "frame_too_large"));
    const total = FRAME_HEADER_BYTES + len;
    this.take(total - this.partialLen);
    if (this.partialLen < total) return null;
    h = this.partial; // take() may have grown it
    this.partialLen = 0;
    return this.frame.set(h[3], h[4], ((h[5] & 0x7f) << 24) | (h[6] << 16) | (h[7] << 8) | h[8], h, FRAME_HEADER_BYTES, total);
  }

  /** Moves up to `n` bytes from the chunk to `partial`. */
  private take(n: number): void {
    const m = Math.min(n, this.chunk.length - this.pos);
    if (m <= 0) return;
    this.stash(this.chunk.subarray(this.pos, this.pos + m));
    this.pos += m;
  }

  private stash(bytes: Uint8Array): void {
    const need = this.partialLen + bytes.length;
    if (need > this.partial.length) {
      const next = new Uint8Array(Math.max(need, Math.min(2 * this.partial.length, FRAME_HEADER_BYTES + this.maxFrameSize), 64));
      next.set(this.partial.subarray(0, this.partialLen));
      this.partial = next;
    }
    this.partial.set(bytes, this.partialLen);
    this.partialLen = need;
  }

  private fail(e: H2Error): H2Error {
    this.error = e;
    return e;
  }
}

// ---------------------------------------------------------------------------
// Payload parsers

const EMPTY_PAYLOAD = new Uint8Array(0);

/** Stream dependency of a HEADERS or PRIORITY frame (§5.3, deprecated by RFC 9113 but still parsed). */
export interface Priority {
  dependency: number;
  exclusive: boolean;
  /** 1..256 (the wire value plus one). */
  weight: number;
}

/**
 * A parsed DATA frame: the data (padding removed) is `buf[start, end)`. A
 * session parses every DATA frame into one object (`parseData`'s `into`).
 */
export class DataFrame {
  buf: Uint8Array = EMPTY_PAYLOAD;
  start = 0;
  end = 0;
  endStream = false;
  /** Octets that count against flow control: the whole payload, padding included (§6.9). */
  flowLength = 0;

  /** The data as a view (made on each call). */
  get data(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }
}

/**
 * A parsed HEADERS frame: its header block fragment is `buf[start, end)`
 * (padding and priority removed). A session parses every HEADERS frame into
 * one object (`parseHeaders`'s `into`).
 */
export class HeadersFrame {
  buf: Uint8Array = EMPTY_PAYLOAD;
  start = 0;
  end = 0;
  endStream = false;
  endHeaders = false;
  priority: Priority | null = null;
  /**
   * A stream error found in the frame (the priority names the stream itself,
   * §5.3.1), else null. The block must still be assembled and decoded so the
   * HPACK state stays in sync; the session then resets the stream.
   */
  streamError: H2Error | null = null;

  /** The fragment as a view (made on each call; the session decodes the range instead). */
  get fragment(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }
}

export interface SettingsFrame {
  ack: boolean;
  /** `[id, value, id, value, …]` in wire order, unknown ids included (the session ignores them, §6.5.2). */
  params: number[];
}

export interface PingFrame {
  ack: boolean;
  /** The 8 opaque octets (a view into the frame). */
  opaque: Uint8Array;
}

export interface GoawayFrame {
  lastStreamId: number;
  errorCode: number;
  debug: Uint8Array;
}

export interface PushPromiseFrame {
  promisedStreamId: number;
  fragment: Uint8Array;
  endHeaders: boolean;
}

const protocolError = (reason: string) => connError(H2_ERROR.PROTOCOL_ERROR, reason);
const frameSizeError = (reason: string) => connError(H2_ERROR.FRAME_SIZE_ERROR, reason);

/** Where a padded-or-not payload's content starts in `f.buf` (after the Pad Length octet when PADDED). */
function contentStart(f: H2Frame): number {
  return (f.flags & H2_FLAG.PADDED) === 0 ? f.start : f.start + 1;
}

/**
 * Removes padding (§6.1, §6.2). Returns the content's end in `f.buf` (it
 * starts at contentStart(f)), or the error.
 */
function unpaddedEnd(f: H2Frame): number | H2Error {
  const len = f.end - f.start;
  if ((f.flags & H2_FLAG.PADDED) === 0) return f.end;
  if (len < 1) return frameSizeError("padded_frame_too_short");
  const pad = f.buf[f.start];
  // §6.1: padding as long as the rest of the payload or longer is a PROTOCOL_ERROR.
  if (pad >= len) return protocolError("pad_too_long");
  return f.end - pad;
}

function readPriority(p: Uint8Array, at: number, streamId: number): Priority | H2Error {
  const dep = ((p[at] & 0x7f) << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3];
  // §5.3.1: a stream cannot depend on itself.
  if (dep === streamId) return streamError(H2_ERROR.PROTOCOL_ERROR, "priority_self_dependency");
  return { dependency: dep, exclusive: (p[at] & 0x80) !== 0, weight: p[at + 4] + 1 };
}

/** DATA (§6.1): stream 0 → PROTOCOL_ERROR; bad padding → PROTOCOL_ERROR / FRAME_SIZE_ERROR. Fills and returns `into` (valid until the next call with it). */
export function parseData(f: H2Frame, into: DataFrame = new DataFrame()): DataFrame | H2Error {
  if (f.streamId === 0) return protocolError("data_on_stream_0");
  const end = unpaddedEnd(f);
  if (end instanceof H2Error) return end;
  into.buf = f.buf;
  into.start = contentStart(f);
  into.end = end;
  into.endStream = (f.flags & H2_FLAG.END_STREAM) !== 0;
  into.flowLength = f.end - f.start;
  return into;
}

/**
 * HEADERS (§6.2): stream 0 → PROTOCOL_ERROR; padding as DATA; the PRIORITY
 * flag needs 5 more octets (else FRAME_SIZE_ERROR); self-dependency → the
 * frame with `streamError` set (stream PROTOCOL_ERROR, block still usable).
 */
export function parseHeaders(f: H2Frame, into: HeadersFrame = new HeadersFrame()): HeadersFrame | H2Error {
  if (f.streamId === 0) return protocolError("headers_on_stream_0");
  const end = unpaddedEnd(f);
  if (end instanceof H2Error) return end;
  let start = contentStart(f);
  let priority: Priority | null = null;
  let selfDependency: H2Error | null = null;
  if (f.flags & H2_FLAG.PRIORITY) {
    if (end - start < 5) return frameSizeError("headers_priority_too_short");
    const pr = readPriority(f.buf, start, f.streamId);
    if (pr instanceof H2Error) selfDependency = pr;
    else priority = pr;
    start += 5;
  }
  into.buf = f.buf;
  into.start = start;
  into.end = end;
  into.endStream = (f.flags & H2_FLAG.END_STREAM) !== 0;
  into.endHeaders = (f.flags & H2_FLAG.END_HEADERS) !== 0;
  into.priority = priority;
  into.streamError = selfDependency;
  return into;
}

/** PRIORITY (§6.3): stream 0 → PROTOCOL_ERROR; length ≠ 5 → stream FRAME_SIZE_ERROR; self-dependency → stream PROTOCOL_ERROR. */
export function parsePriority(f: H2Frame): Priority | H2Error {
  if (f.streamId === 0) return protocolError("priority_on_stream_0");
  if (f.length !== 5) return streamError(H2_ERROR.FRAME_SIZE_ERROR, "priority_length");
  return readPriority(f.buf, f.start, f.streamId);
}

/** RST_STREAM (§6.4): stream 0 → PROTOCOL_ERROR; length ≠ 4 → FRAME_SIZE_ERROR. Returns the error code. */
export function parseRstStream(f: H2Frame): { errorCode: number } | H2Error {
  if (f.streamId === 0) return protocolError("rst_stream_on_stream_0");
  if (f.length !== 4) return frameSizeError("rst_stream_length");
  return { errorCode: readU32(f.buf, f.start) };
}

/**
 * SETTINGS (§6.5): stream ≠ 0 → PROTOCOL_ERROR; ACK with a payload or a
 * length not a multiple of 6 → FRAME_SIZE_ERROR; ENABLE_PUSH,
 * ENABLE_CONNECT_PROTOCOL, NO_RFC7540_PRIORITIES not 0/1 → PROTOCOL_ERROR;
 * INITIAL_WINDOW_SIZE above 2^31-1 → FLOW_CONTROL_ERROR; MAX_FRAME_SIZE
 * outside 16384..16777215 → PROTOCOL_ERROR.
 */
export function parseSettings(f: H2Frame): SettingsFrame | H2Error {
  if (f.streamId !== 0) return protocolError("settings_on_stream");
  const p = f.payload;
  const ack = (f.flags & H2_FLAG.ACK) !== 0;
  if (ack) return p.length === 0 ? { ack, params: [] } : frameSizeError("settings_ack_with_payload");
  if (p.length % 6 !== 0) return frameSizeError("settings_length");
  const params: number[] = [];
  for (let i = 0; i < p.length; i += 6) {
    const id = (p[i] << 8) | p[i + 1];
    const value = readU32(p, i + 2);
    switch (id) {
      case H2_SETTING.ENABLE_PUSH:
      case H2_SETTING.ENABLE_CONNECT_PROTOCOL:
      case H2_SETTING.NO_RFC7540_PRIORITIES:
        if (value > 1) return protocolError("settings_bad_boolean");
        break;
      case H2_SETTING.INITIAL_WINDOW_SIZE:
        if (value > H2_MAX_WINDOW_SIZE) return connError(H2_ERROR.FLOW_CONTROL_ERROR, "settings_window_too_large");
        break;
      case H2_SETTING.MAX_FRAME_SIZE:
        if (value < H2_DEFAULT_MAX_FRAME_SIZE || value > H2_MAX_FRAME_SIZE_LIMIT) return protocolError("settings_bad_max_frame_size");
        break;
    }
    params.push(id, value);
  }
  return { ack, params };
}

/** PUSH_PROMISE (§6.6): stream 0 → PROTOCOL_ERROR; padding as DATA; needs 4 octets of promised id (else FRAME_SIZE_ERROR). */
export function parsePushPromise(f: H2Frame): PushPromiseFrame | H2Error {
  if (f.streamId === 0) return protocolError("push_promise_on_stream_0");
  const end = unpaddedEnd(f);
  if (end instanceof H2Error) return end;
  const start = contentStart(f);
  if (end - start < 4) return frameSizeError("push_promise_too_short");
  return {
    promisedStreamId: readU32(f.buf, start) & 0x7fffffff,
    fragment: f.buf.subarray(start + 4, end),
    endHeaders: (f.flags & H2_FLAG.END_HEADERS) !== 0,
  };
}

/** PING (§6.7): stream ≠ 0 → PROTOCOL_ERROR; length ≠ 8 → FRAME_SIZE_ERROR. */
export function parsePing(f: H2Frame): PingFrame | H2Error {
  if (f.streamId !== 0) return protocolError("ping_on_stream");
  if (f.length !== 8) return frameSizeError("ping_length");
  return { ack: (f.flags & H2_FLAG.ACK) !== 0, opaque: f.payload };
}

/** GOAWAY (§6.8): stream ≠ 0 → PROTOCOL_ERROR; shorter than 8 → FRAME_SIZE_ERROR. */
export function parseGoaway(f: H2Frame): GoawayFrame | H2Error {
  if (f.streamId !== 0) return protocolError("goaway_on_stream");
  if (f.length < 8) return frameSizeError("goaway_length");
  return {
    lastStreamId: readU32(f.buf, f.start) & 0x7fffffff,
    errorCode: readU32(f.buf, f.start + 4),
    debug: f.buf.subarray(f.start + 8, f.end),
  };
}

/**
 * WINDOW_UPDATE (§6.9): length ≠ 4 → FRAME_SIZE_ERROR; increment 0 →
 * PROTOCOL_ERROR, a stream error on a stream and a connection error on
 * stream 0 (§6.9). Returns the increment (1..2^31-1).
 */
export function parseWindowUpdate(f: H2Frame): { increment: number } | H2Error {
  if (f.length !== 4) return frameSizeError("window_update_length");
  const increment = readU32(f.buf, f.start) & 0x7fffffff;
  if (increment === 0) {
    return f.streamId === 0
      ? protocolError("window_update_zero")
      : streamError(H2_ERROR.PROTOCOL_ERROR, "window_update_zero");
  }
  return { increment };
}

/** CONTINUATION (§6.10): stream 0 → PROTOCOL_ERROR. Sequencing is HeaderBlockAssembler's job. */
export function parseContinuation(f: H2Frame): { fragment: Uint8Array; endHeaders: boolean } | H2Error {
  if (f.streamId === 0) return protocolError("continuation_on_stream_0");
  return { fragment: f.payload, endHeaders: (f.flags & H2_FLAG.END_HEADERS) !== 0 };
}

function readU32(p: Uint8Array, at: number): number {
  return ((p[at] << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3]) >>> 0;
}

// ---------------------------------------------------------------------------
// Header block assembly

export interface HeaderBlockLimits {
  /** Cap on the compressed block, default H2_MAX_HEADER_BLOCK_BYTES. */
  maxBytes?: number;
  /** Cap on CONTINUATION frames per block, default H2_MAX_CONTINUATION_FRAMES. */
  maxContinuations?: number;
}

/**
 * Joins a header block split over HEADERS (or PUSH_PROMISE) and CONTINUATION
 * frames (§4.3, §6.10). While `active`, the session must hand every frame to
 * continue(): anything but a CONTINUATION on the same stream is a connection
 * PROTOCOL_ERROR. A block that exceeds maxBytes or maxContinuations is a
 * connection ENHANCE_YOUR_CALM: it cannot be dropped without decoding it
 * (the HPACK state would desynchronize), so the connection goes.
 *
 * A HEADERS fragment that carried END_HEADERS is the whole block: begin()
 * only checks its size and the caller decodes it where it lies (no copy, no
 * view). Otherwise the fragments are joined in a buffer the assembler reuses
 * (one copy of each fragment) and continue() returns the joined block.
 */
export class HeaderBlockAssembler {
  private readonly maxBytes: number;
  private readonly maxContinuations: number;
  private readonly block = new ByteWriter(1024);
  private continuations = 0;
  /** Stream whose block is being assembled, 0 when idle. */
  streamId = 0;

  constructor(limits: HeaderBlockLimits = {}) {
    this.maxBytes = limits.maxBytes ?? H2_MAX_HEADER_BLOCK_BYTES;
    this.maxContinuations = limits.maxContinuations ?? H2_MAX_CONTINUATION_FRAMES;
  }

  /** True between a HEADERS without END_HEADERS and the CONTINUATION that ends the block. */
  get active(): boolean {
    return this.streamId !== 0;
  }

  /**
   * Starts a block with the fragment `buf[start, end)` of a parsed
   * HEADERS/PUSH_PROMISE frame (call only when not active). Returns
   * ENHANCE_YOUR_CALM when the fragment alone is too big, else null: with
   * `endHeaders` the fragment is the whole block (decode it in place),
   * otherwise it is kept and CONTINUATION frames are awaited (`active`).
   */
  begin(streamId: number, buf: Uint8Array, start: number, end: number, endHeaders: boolean): H2Error | null {
    if (end - start > this.maxBytes) return connError(H2_ERROR.ENHANCE_YOUR_CALM, "header_block_too_large");
    if (endHeaders) return null;
    this.streamId = streamId;
    this.continuations = 0;
    this.block.reset();
    this.block.copyFrom(buf, start, end);
    return null;
  }

  /**
   * Takes the next frame while active. Returns the whole block once a
   * CONTINUATION carries END_HEADERS (a view valid until the next begin()),
   * null while more are needed, or a connection error: PROTOCOL_ERROR for
   * any other frame (or for a CONTINUATION when idle), ENHANCE_YOUR_CALM past
   * the caps.
   */
  continue(f: H2Frame): Uint8Array | H2Error | null {
    if (f.type !== H2_FRAME.CONTINUATION) return protocolError(this.active ? "expected_continuation" : "unexpected_frame");
    if (!this.active || f.streamId !== this.streamId) return protocolError("unexpected_continuation");
    if (++this.continuations > this.maxContinuations) return this.abort("too_many_continuations");
    if (this.block.len + f.length > this.maxBytes) return this.abort("header_block_too_large");
    this.block.copyFrom(f.buf, f.start, f.end);
    if ((f.flags & H2_FLAG.END_HEADERS) === 0) return null;
    this.streamId = 0;
    return this.block.view();
  }

  private abort(reason: string): H2Error {
    this.streamId = 0;
    this.block.reset();
    return connError(H2_ERROR.ENHANCE_YOUR_CALM, reason);
  }
}

// ---------------------------------------------------------------------------
// Writers

/** Appends a 9-octet frame header (§4.1). */
export function writeFrameHeader(out: ByteWriter, length: number, type: number, flags: number, streamId: number): void {
  out.ensure(FRAME_HEADER_BYTES);
  const b = out.buf;
  let o = out.len;
  b[o++] = length >>> 16;
  b[o++] = length >>> 8;
  b[o++] = length;
  b[o++] = type;
  b[o++] = flags;
  b[o++] = (streamId >>> 24) & 0x7f;
  b[o++] = streamId >>> 16;
  b[o++] = streamId >>> 8;
  b[o++] = streamId;
  out.len = o;
}

/** DATA frame; `data` must fit the peer's max frame size and windows (the session splits). */
export function writeData(out: ByteWriter, streamId: number, data: Uint8Array, endStream: boolean): void {
  writeFrameHeader(out, data.length, H2_FRAME.DATA, endStream ? H2_FLAG.END_STREAM : 0, streamId);
  out.bytes(data);
}

/**
 * A header block (`block[0, blockLength)`) as HEADERS plus as many
 * CONTINUATION frames as the peer's SETTINGS_MAX_FRAME_SIZE requires (§4.3:
 * sent back to back, nothing between). END_STREAM goes on the HEADERS frame,
 * END_HEADERS on the last one.
 */
export function writeHeaders(
  out: ByteWriter,
  streamId: number,
  block: Uint8Array,
  endStream: boolean,
  maxFrameSize: number = H2_DEFAULT_MAX_FRAME_SIZE,
  priority: Priority | null = null,
  blockLength: number = block.length,
): void {
  const prio = priority ? 5 : 0;
  let n = Math.min(blockLength, maxFrameSize - prio);
  let flags = (endStream ? H2_FLAG.END_STREAM : 0) | (n === blockLength ? H2_FLAG.END_HEADERS : 0);
  if (priority) flags |= H2_FLAG.PRIORITY;
  out.ensure(blockLength + FRAME_HEADER_BYTES * (2 + Math.ceil(blockLength / maxFrameSize)) + prio);
  writeFrameHeader(out, n + prio, H2_FRAME.HEADERS, flags, streamId);
  if (priority) writePriorityFields(out, priority);
  out.copyFrom(block, 0, n);
  for (let at = n; at < blockLength; at += n) {
    n = Math.min(blockLength - at, maxFrameSize);
    writeFrameHeader(out, n, H2_FRAME.CONTINUATION, at + n === blockLength ? H2_FLAG.END_HEADERS : 0, streamId);
    out.copyFrom(block, at, at + n);
  }
}

/** PRIORITY frame (§6.3). */
export function writePriority(out: ByteWriter, streamId: number, priority: Priority): void {
  writeFrameHeader(out, 5, H2_FRAME.PRIORITY, 0, streamId);
  writePriorityFields(out, priority);
}

function writePriorityFields(out: ByteWriter, p: Priority): void {
  out.u32(((p.exclusive ? 0x80000000 : 0) | (p.dependency & 0x7fffffff)) >>> 0);
  out.u8(p.weight - 1);
}

/** RST_STREAM frame (§6.4). */
export function writeRstStream(out: ByteWriter, streamId: number, errorCode: number): void {
  writeFrameHeader(out, 4, H2_FRAME.RST_STREAM, 0, streamId);
  out.u32(errorCode);
}

/** SETTINGS frame from `[id, value, …]` (§6.5). */
export function writeSettings(out: ByteWriter, params: readonly number[]): void {
  const count = params.length >>> 1;
  writeFrameHeader(out, count * 6, H2_FRAME.SETTINGS, 0, 0);
  for (let i = 0; i < count * 2; i += 2) {
    out.u16(params[i]);
    out.u32(params[i + 1]);
  }
}

/** SETTINGS with ACK, empty (§6.5.3). */
export function writeSettingsAck(out: ByteWriter): void {
  writeFrameHeader(out, 0, H2_FRAME.SETTINGS, H2_FLAG.ACK, 0);
}

/** PING (§6.7) with 8 opaque octets; an ACK echoes the received ones. */
export function writePing(out: ByteWriter, opaque: Uint8Array, ack: boolean): void {
  writeFrameHeader(out, 8, H2_FRAME.PING, ack ? H2_FLAG.ACK : 0, 0);
  out.ensure(8);
  for (let i = 0; i < 8; i++) out.buf[out.len++] = opaque[i] ?? 0;
}

/** GOAWAY (§6.8); `debug` is opaque diagnostic data (keep it short and free of secrets). */
export function writeGoaway(out: ByteWriter, lastStreamId: number, errorCode: number, debug?: Uint8Array): void {
  const d = debug ?? new Uint8Array(0);
  writeFrameHeader(out, 8 + d.length, H2_FRAME.GOAWAY, 0, 0);
  out.u32(lastStreamId & 0x7fffffff);
  out.u32(errorCode);
  out.bytes(d);
}

/** WINDOW_UPDATE (§6.9); `increment` in 1..2^31-1. */
export function writeWindowUpdate(out: ByteWriter, streamId: number, increment: number): void {
  writeFrameHeader(out, 4, H2_FRAME.WINDOW_UPDATE, 0, streamId);
  out.u32(increment & 0x7fffffff);
}
