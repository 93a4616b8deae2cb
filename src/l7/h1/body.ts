/**
 * HTTP/1.1 message bodies (RFC 9112 §6, §7): incremental decoders for
 * Content-Length and chunked bodies, and the chunked encoder. Pure: the
 * decoders hold only their own counters and never keep a reference to the
 * caller's buffer.
 *
 * Decoder contract: `push(buf, start, end, sink)` consumes from buf[start, end),
 * hands each run of body bytes to `sink` as a range of `buf` (valid until the
 * caller reuses that memory — copy to keep; no view is made: a view of a
 * small buffer Bun just read makes JSC move its bytes out of the heap, about
 * 0.2 µs), and returns how many bytes it consumed, or an error. Once `done`, it has consumed exactly up
 * to the end of the body; the rest of `buf` is the next message (pipelining).
 */
import { CR, HTAB, LF, SP, indexOfCrlfCrlf, isFieldName, isFieldValue, latin1, parseFieldLines } from "./bytes.ts";
import { type H1Error, type H1ErrorStatus, h1Error } from "./errors.ts";
import { H1_DEFAULT_LIMITS, type H1Limits } from "./bounds.ts";

/** Body bytes buf[start, end). */
export type BodySink = (buf: Uint8Array, start: number, end: number) => void;

export interface H1BodyDecoder {
  push(buf: Uint8Array, start: number, end: number, sink: BodySink): number | H1Error;
  readonly done: boolean;
}

/** A Content-Length body: passes through exactly `length` bytes. */
export class LengthDecoder implements H1BodyDecoder {
  remaining: number;
  constructor(length: number) {
    this.remaining = length;
  }
  get done(): boolean {
    return this.remaining === 0;
  }
  push(buf: Uint8Array, start: number, end: number, sink: BodySink): number {
    const n = Math.min(this.remaining, end - start);
    if (n > 0) {
      sink(buf, start, start + n);
      this.remaining -= n;
    }
    return n;
  }
}

const S_SIZE = 0; // hex digits of a chunk-size line
const S_BWS = 1; // whitespace after the size: only ";" may follow
const S_EXT = 2; // chunk extensions, ignored until CR
const S_SIZE_LF = 3; // CR seen at the end of a size line
const S_DATA = 4;
const S_DATA_CR = 5;
const S_DATA_LF = 6;
const S_TRAILER_START = 7; // after the last chunk: CRLF (no trailers) or a field line
const S_TRAILER_START_LF = 8;
const S_TRAILERS = 9; // buffering a trailer section until its CRLF CRLF
const S_DONE = 10;

const MAX_SIZE_DIV16 = Math.floor(Number.MAX_SAFE_INTEGER / 16);
const INITIAL_TRAILER_BUFFER = 256;

/**
 * A chunked body (RFC 9112 §7.1). Strict on both sides: size lines are
 * 1*HEXDIG, optional `BWS ; ext` (ignored, bytes checked, line bounded by
 * `maxChunkLine`), CRLF; data must be followed by CRLF; sizes above
 * Number.MAX_SAFE_INTEGER are refused. Trailers (bounded by `maxTrailerBytes`
 * and `maxTrailers`) are parsed like header fields into `trailers` — names
 * lower-cased; framing fields in them are the caller's to drop (RFC 9110 §6.5.1).
 * Errors carry `errorStatus` (400 for requests, 502 for responses).
 */
export class ChunkedDecoder implements H1BodyDecoder {
  /** Trailer fields as [name, value, …] once `done` (empty when there were none). */
  trailers: string[] = [];
  private state = S_SIZE;
  private size = 0;
  private lineBytes = 0;
  private sawDigit = false;
  private pending: Buffer | undefined;
  private pendingLen = 0;

  constructor(
    private readonly limits: H1Limits = H1_DEFAULT_LIMITS,
    private readonly errorStatus: H1ErrorStatus = 400,
  ) {}

  get done(): boolean {
    return this.state === S_DONE;
  }

  push(buf: Uint8Array, start: number, end: number, sink: BodySink): number | H1Error {
    let i = start;
    while (i < end) {
      switch (this.state) {
        case S_DATA: {
          const n = Math.min(this.size, end - i);
          sink(buf, i, i + n);
          i += n;
          this.size -= n;
          if (this.size === 0) this.state = S_DATA_CR;
          break;
        }
        case S_SIZE: {
          const c = buf[i];
          const d = hexValue(c);
          if (d >= 0) {
            if (this.size > MAX_SIZE_DIV16) return this.fail("invalid_chunk");
            this.size = this.size * 16 + d;
            this.sawDigit = true;
          } else if (!this.sawDigit) return this.fail(c === LF ? "bare_lf" : "invalid_chunk");
          else if (c === CR) this.state = S_SIZE_LF;
          else if (c === 0x3b /* ; */) this.state = S_EXT;
          else if (c === SP || c === HTAB) this.state = S_BWS;
          else return this.fail(c === LF ? "bare_lf" : "invalid_chunk");
          if (++this.lineBytes > this.limits.maxChunkLine) return this.fail("chunk_line_too_long");
          i++;
          break;
        }
        case S_BWS: {
          const c = buf[i];
          if (c === 0x3b) this.state = S_EXT;
          else if (c !== SP && c !== HTAB) return this.fail(c === LF ? "bare_lf" : "invalid_chunk");
          if (++this.lineBytes > this.limits.maxChunkLine) return this.fail("chunk_line_too_long");
          i++;
          break;
        }
        case S_EXT: {
          // Skip extension bytes: VCHAR, obs-text, SP, HTAB; CR ends the line.
          const limit = Math.min(end, i + (this.limits.maxChunkLine - this.lineBytes) + 1);
          let j = i;
          let c = buf[j];
          while (j < limit && (c >= 0x20 ? c !== 0x7f : c === HTAB)) c = buf[++j];
          this.lineBytes += j - i;
          if (this.lineBytes > this.limits.maxChunkLine) return this.fail("chunk_line_too_long");
          i = j;
          if (j < end) {
            if (c === CR) this.state = S_SIZE_LF;
            else return this.fail(c === LF ? "bare_lf" : "invalid_chunk");
            this.lineBytes++;
            i++;
          }
          break;
        }
        case S_SIZE_LF:
          if (buf[i] !== LF) return this.fail("bare_cr");
          i++;
          this.lineBytes = 0;
          this.sawDigit = false;
          this.state = this.size === 0 ? S_TRAILER_START : S_DATA;
          break;
        case S_DATA_CR:
          if (buf[i] !== CR) return this.fail(buf[i] === LF ? "bare_lf" : "invalid_chunk");
          i++;
          this.state = S_DATA_LF;
          break;
        case S_DATA_LF:
          if (buf[i] !== LF) return this.fail("bare_cr");
          i++;
          this.state = S_SIZE;
          break;
        case S_TRAILER_START: {
          if (buf[i] === CR) {
            i++;
            this.state = S_TRAILER_START_LF;
            break;
          }
          if (buf[i] === LF) return this.fail("bare_lf");
          // Whole section in this buffer: parse in place, no copy.
          const limit = Math.min(end, i + this.limits.maxTrailerBytes);
          const p = indexOfCrlfCrlf(buf, i, limit);
          if (p >= 0) {
            const err = this.parseTrailers(buf, i, p + 4);
            if (err !== undefined) return err;
            this.state = S_DONE;
            return p + 4 - start;
          }
          this.state = S_TRAILERS;
          break;
        }
        case S_TRAILER_START_LF:
          if (buf[i] !== LF) return this.fail("bare_cr");
          this.state = S_DONE;
          return i + 1 - start;
        case S_TRAILERS: {
          const taken = this.bufferTrailers(buf, i, end);
          if (typeof taken !== "number") return taken;
          i += taken;
          if (this.done) return i - start;
          break;
        }
        case S_DONE:
          return i - start;
      }
    }
    return i - start;
  }

  /** Appends trailer bytes to the pending section; parses it once its CRLF CRLF has arrived. */
  private bufferTrailers(buf: Uint8Array, i: number, end: number): number | H1Error {
    const max = this.limits.maxTrailerBytes;
    const n = Math.min(end - i, max - this.pendingLen + 1);
    let pending = this.pending;
    if (pending === undefined || pending.length < this.pendingLen + n) {
      const grown = Buffer.allocUnsafe(Math.min(max + 1, Math.max(INITIAL_TRAILER_BUFFER, (this.pendingLen + n) * 2)));
      if (pending !== undefined) grown.set(pending.subarray(0, this.pendingLen));
      pending = this.pending = grown;
    }
    const searchFrom = Math.max(0, this.pendingLen - 3);
    pending.set(buf.subarray(i, i + n), this.pendingLen);
    this.pendingLen += n;
    const p = indexOfCrlfCrlf(pending, searchFrom, this.pendingLen);
    if (p < 0) {
      if (this.pendingLen > max) return this.fail("trailers_too_large");
      return n;
    }
    const err = this.parseTrailers(pending, 0, p + 4);
    if (err !== undefined) return err;
    const used = n - (this.pendingLen - (p + 4));
    this.pending = undefined;
    this.state = S_DONE;
    return used;
  }

  private parseTrailers(buf: Uint8Array, start: number, sectionEnd: number): H1Error | undefined {
    const text = latin1(buf, start, sectionEnd);
    const r = parseFieldLines(
      buf,
      start,
      sectionEnd,
      text,
      start,
      this.trailers,
      this.errorStatus === 502,
      this.limits.maxTrailers,
      "too_many_trailers",
      this.errorStatus,
    );
    return typeof r === "number" ? undefined : r;
  }

  private fail(reason: H1Error["reason"]): H1Error {
    return h1Error(reason, this.errorStatus);
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

const CRLF_BYTES = new Uint8Array([CR, LF]);

/**
 * One chunk — size line, `data`, CRLF — in a single new buffer (one copy of
 * `data`, so the socket gets one write). Empty `data` yields an empty buffer,
 * never the `0\r\n\r\n` that would end the body.
 */
export function encodeChunk(data: Uint8Array): Uint8Array {
  if (data.length === 0) return new Uint8Array(0);
  const line = data.length.toString(16);
  const out = Buffer.allocUnsafe(line.length + 2 + data.length + 2);
  out.write(line, 0, "latin1");
  let p = line.length;
  out[p++] = CR;
  out[p++] = LF;
  out.set(data, p);
  p += data.length;
  out[p++] = CR;
  out[p] = LF;
  return out;
}

/** The size line alone (`<hex>\r\n`), for callers that write header, data and `CHUNK_END` as a vector. `size` must be > 0. */
export function encodeChunkHeader(size: number): Uint8Array {
  return Buffer.from(size.toString(16) + "\r\n", "latin1");
}

/** The CRLF that follows chunk data. Shared; do not modify. */
export const CHUNK_END: Uint8Array = CRLF_BYTES;

const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1");

/**
 * The last chunk and trailer section: `0\r\n`, the trailer fields, `\r\n`.
 * Trailers are [name, value, …] and are validated like head fields
 * (`isFieldName`, `isFieldValue`); returns an error value instead of emitting a bad one.
 */
export function encodeLastChunk(trailers?: readonly string[]): Uint8Array | H1Error {
  if (trailers === undefined || trailers.length === 0) return LAST_CHUNK;
  let s = "0\r\n";
  for (let i = 0; i < trailers.length; i += 2) {
    const name = trailers[i];
    const value = trailers[i + 1];
    if (!isFieldName(name)) return h1Error("invalid_header_name", 502);
    if (!isFieldValue(value)) return h1Error("invalid_header_value", 502);
    s += name + ": " + value + "\r\n";
  }
  return Buffer.from(s + "\r\n", "latin1");
}
