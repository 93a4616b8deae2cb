/**
 * Byte-level building blocks shared by the head parser, the chunked decoder
 * and the serializer: character tables, latin1 decoding, CRLF CRLF search,
 * header-name interning and the field-line parser. Pure; no I/O.
 *
 * Speed notes (measured on Bun 1.4.4): a native `latin1Slice` costs ~40 ns
 * per call whatever its length, a JS `substring` of an existing string ~8 ns,
 * a table-driven byte loop ~1 ns per byte. So a head is decoded to one latin1
 * string once and every method, target, name and value is a substring of it;
 * the bytes are validated in one pass over the Uint8Array.
 */
import { CONNECTION_SPECIFIC_FIELDS, FORWARDING_FIELDS, isForwardingField } from "../headers.ts";
import { H1_VALUE_MEMO_BYTES } from "../../limits.ts";
import { type H1Error, type H1ErrorStatus, h1Error } from "./errors.ts";

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;

/** tchar (RFC 9110 §5.6.2): ALPHA DIGIT and !#$%&'*+-.^_`|~ */
export const TOKEN = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;
for (const ch of "!#$%&'*+-.^_`|~") TOKEN[ch.charCodeAt(0)] = 1;

/** field-vchar (VCHAR / obs-text); SP and HTAB are handled by the callers (they may be trimmed). */
export const FIELD_VCHAR = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) FIELD_VCHAR[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VCHAR[c] = 1;

/**
 * Bytes allowed in a request-target: visible ASCII but `#` (a fragment is
 * never part of a request target, RFC 9112 §3.2; a backend would read it as
 * the path's). Stricter grammar (RFC 3986) breaks real clients that send
 * `|`, `{`, `"` raw.
 */
export const TARGET_CHAR = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET_CHAR[c] = 1;
TARGET_CHAR[0x23] = 0;

interface BufferMethods {
  latin1Slice(this: Uint8Array, start: number, end: number): string;
  indexOf(this: Uint8Array, value: Uint8Array | number, byteOffset: number): number;
  copy(this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number): number;
  compare(this: Uint8Array, target: Uint8Array, targetStart: number, targetEnd: number, sourceStart: number, sourceEnd: number): number;
}
// Buffer's native methods work on any Uint8Array under Bun (checked), so callers may pass either.
const bufferProto = Buffer.prototype as unknown as BufferMethods;
const nativeLatin1Slice = bufferProto.latin1Slice;
const nativeIndexOf = bufferProto.indexOf;
const nativeCopy = bufferProto.copy;
const nativeCompare = bufferProto.compare;

/**
 * Copies `src[start, end)` to `dst` at `at`; returns the bytes copied. One
 * native call from offsets, no view: see copyWithout. Shared with the HTTP/2
 * codec (ByteWriter.copyFrom).
 */
export function copyRange(src: Uint8Array, start: number, end: number, dst: Uint8Array, at: number): number {
  return nativeCopy.call(src, dst, at, start, end);
}

/** Whether buf[start, start + a.length) (which must exist) holds the bytes of `a`: one native compare from offsets, no view. */
export function rangeEquals(a: Uint8Array, buf: Uint8Array, start: number): boolean {
  return nativeCompare.call(a, buf, start, start + a.length, 0, a.length) === 0;
}

/** Whether a[0, n) and buf[start, start + n) are the same bytes: a JS loop, cheaper than a native call for short values. Shared with the HTTP/2 codec. */
export function sameBytes(a: Uint8Array, buf: Uint8Array, start: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== buf[start + i]) return false;
  return true;
}

/** buf[start, end) as a latin1 string (one native call). */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  return nativeLatin1Slice.call(buf, start, end);
}

const CRLFCRLF = new Uint8Array([CR, LF, CR, LF]);

/** Beyond this many bytes past `end`, searches run on a bounded view instead of scanning the caller's spare capacity. */
const SEARCH_SLACK = 4096;

/** Index of the first CRLF CRLF at or after `from` that ends by `end`, else -1. Native (memmem). */
export function indexOfCrlfCrlf(buf: Uint8Array, from: number, end: number): number {
  // A view costs an allocation (~35 ns); searching a little past `end` is cheaper.
  const hay = buf.length - end > SEARCH_SLACK ? buf.subarray(0, end) : buf;
  const p = nativeIndexOf.call(hay, CRLFCRLF, from);
  return p >= 0 && p + 4 <= end ? p : -1;
}

/** Index of the first LF in [from, end), else -1. */
export function indexOfLf(buf: Uint8Array, from: number, end: number): number {
  if (from >= end) return -1;
  const i = nativeIndexOf.call(buf, LF, from);
  return i < end ? i : -1;
}

/**
 * Common header names, interned: a name that matches one (case-insensitively)
 * costs no allocation and compares by identity downstream. Order is irrelevant.
 */
const KNOWN_NAMES = [
  "host", "user-agent", "accept", "accept-encoding", "accept-language", "accept-charset", "accept-ranges",
  "connection", "keep-alive", "proxy-connection", "content-length", "content-type", "content-encoding",
  "content-language", "content-disposition", "content-range", "content-security-policy", "transfer-encoding",
  "te", "trailer", "upgrade", "expect", "cookie", "set-cookie", "cache-control", "pragma", "expires", "age",
  "date", "server", "etag", "last-modified", "if-none-match", "if-modified-since", "if-match", "if-range",
  "if-unmodified-since", "range", "location", "vary", "via", "referer", "origin", "authorization",
  "proxy-authorization", "www-authenticate", "link", "priority", "dnt", "alt-svc", "strict-transport-security",
  "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
  "x-real-ip", "forwarded", "x-client-ip", "true-client-ip", "x-request-id", "x-requested-with",
  "x-content-type-options", "x-frame-options", "x-xss-protection", "access-control-allow-origin",
  "access-control-allow-credentials", "access-control-allow-headers", "access-control-allow-methods",
  "access-control-request-method", "access-control-request-headers", "sec-websocket-key",
  "sec-websocket-version", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions",
  "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "sec-ch-ua", "sec-ch-ua-mobile",
  "sec-ch-ua-platform", "upgrade-insecure-requests", "grpc-status", "grpc-message", "grpc-encoding",
  "grpc-accept-encoding", "grpc-timeout", "grpc-status-details-bin", "http2-settings",
];

/** `parseFieldLines` marks lines of these names for a pass-through copy to leave out (`dropMask`). */
export const NAME_HOP_BY_HOP = 1;
export const NAME_FORWARDING = 2;
/** The fields a head's framing and connection facts come from: all a framing-only parse keeps (`text` null). */
const NAME_FRAMING = 4;
const FRAMING_NAMES = ["content-length", "transfer-encoding", "connection", "upgrade"];
const KNOWN_FLAGS = new Uint8Array(KNOWN_NAMES.length);
/** Flags only interned names: a name missing from KNOWN_NAMES would silently never be cut out of a copy. */
function flagNames(names: readonly string[], flag: number): void {
  for (const n of names) {
    const k = KNOWN_NAMES.indexOf(n);
    if (k < 0) throw new Error(`header name ${n} must be in KNOWN_NAMES`);
    KNOWN_FLAGS[k] |= flag;
  }
}
flagNames(CONNECTION_SPECIFIC_FIELDS, NAME_HOP_BY_HOP);
flagNames(FORWARDING_FIELDS, NAME_FORWARDING);
flagNames(FRAMING_NAMES, NAME_FRAMING);
const INTERN_BITS = 9;
const INTERN_MASK = (1 << INTERN_BITS) - 1;
/** Open-addressed table: slot → index into KNOWN_NAMES, or -1. */
const INTERN_SLOTS = new Int16Array(1 << INTERN_BITS).fill(-1);
/** KNOWN_NAMES as bytes, each at KNOWN_OFFSET[k] (byte compares beat charCodeAt here). */
const KNOWN_BYTES = new TextEncoder().encode(KNOWN_NAMES.join(""));
const KNOWN_OFFSET = new Int32Array(KNOWN_NAMES.length);
const KNOWN_LENGTH = new Int32Array(KNOWN_NAMES.length);

/** The hash the field parser folds over name bytes (ASCII letters case-folded). */
export function nameHashStep(h: number, c: number): number {
  return (Math.imul(h, 31) + (c | 0x20)) | 0;
}
for (let k = 0, off = 0; k < KNOWN_NAMES.length; k++) {
  const name = KNOWN_NAMES[k];
  KNOWN_OFFSET[k] = off;
  KNOWN_LENGTH[k] = name.length;
  off += name.length;
  let h = 0;
  for (let i = 0; i < name.length; i++) h = nameHashStep(h, name.charCodeAt(i));
  let slot = h & INTERN_MASK;
  while (INTERN_SLOTS[slot] !== -1) slot = (slot + 1) & INTERN_MASK;
  INTERN_SLOTS[slot] = k;
}

/** The index in KNOWN_NAMES of the name equal (case-insensitively) to token bytes buf[start, end), or -1. */
function internedIndex(buf: Uint8Array, start: number, end: number, hash: number): number {
  const len = end - start;
  for (let slot = hash & INTERN_MASK; ; slot = (slot + 1) & INTERN_MASK) {
    const k = INTERN_SLOTS[slot];
    if (k === -1) return -1;
    if (KNOWN_LENGTH[k] !== len) continue;
    const off = KNOWN_OFFSET[k] - start;
    let i = start;
    // Token bytes: `| 0x20` folds A–Z onto a–z and maps no other token byte onto a letter.
    while (i < end && (buf[i] | 0x20) === KNOWN_BYTES[off + i]) i++;
    if (i === end) return k;
  }
}

/**
 * Added to `parseFieldLines`' count when `lenient` skipped whitespace before a
 * colon: the head is valid but its bytes must not be forwarded as they are
 * (RFC 9112 §5.1: a proxy removes that whitespace).
 */
export const FIELDS_REWRITE = 1 << 24;

/**
 * The last value seen after each interned name on one connection (a
 * backend's response heads): when the next head has the same bytes there, the
 * same string comes back — no decode, and a string whose hash is already
 * known to the maps it is looked up in (the HPACK encoder's). Values longer
 * than H1_VALUE_MEMO_BYTES are not kept; one entry per interned name, so a
 * connection keeps at most KNOWN_NAMES.length × that many bytes.
 */
export class ValueMemo {
  private readonly bytes: (Uint8Array | undefined)[] = [];
  private readonly strings: string[] = [];

  /** buf[start, end) (non-empty) after interned name `k`, as a string: the remembered one when the bytes are the same. */
  value(k: number, buf: Uint8Array, start: number, end: number): string {
    const n = end - start;
    const prev = this.bytes[k];
    if (prev !== undefined && prev.length === n && sameBytes(prev, buf, start, n)) return this.strings[k]!;
    const s = latin1(buf, start, end);
    if (n <= H1_VALUE_MEMO_BYTES) {
      // Own copies (a view would keep the whole socket chunk alive; a substring, the whole head).
      this.bytes[k] = buf.slice(start, end);
      this.strings[k] = s;
    }
    return s;
  }
}

/**
 * Parses field lines (RFC 9112 §5) from `pos` up to and including the blank
 * line that ends at `sectionEnd` (which the caller found as the first CRLF CRLF,
 * so every loop below stops at a CR before running past it). `text` is
 * latin1(buf[base, sectionEnd)), or null for a framing-only parse: every line
 * is validated the same, but only Content-Length, Transfer-Encoding,
 * Connection and Upgrade are kept (their values decoded one by one), which
 * skips decoding the rest. Appends lower-cased names and trimmed values
 * to `out` as [name, value, …] and returns the number of fields (plus
 * `FIELDS_REWRITE` if whitespace before a colon was skipped), or an error:
 * bare LF/CR, obs-fold, whitespace before the colon (`lenient` — responses —
 * skips it instead, as RFC 9112 §5.1 lets a proxy), empty or non-token name,
 * a control character (other than HTAB) in a value, or more than `maxFields`
 * (431 when `status` is 400). Errors carry `status`.
 *
 * `drop` (when given) receives, for every line whose name has a flag in
 * `dropMask`, the line's [start, end) offsets (CRLF included) relative to
 * `base`: what a byte-for-byte copy of the head leaves out.
 */
export function parseFieldLines(
  buf: Uint8Array,
  pos: number,
  sectionEnd: number,
  text: string | null,
  base: number,
  out: string[],
  lenient: boolean,
  maxFields: number,
  tooMany: "too_many_headers" | "too_many_trailers",
  status: H1ErrorStatus,
  drop: number[] | null = null,
  dropMask = 0,
  memo: ValueMemo | null = null,
): number | H1Error {
  let count = 0;
  let rewrite = 0;
  for (;;) {
    let c = buf[pos];
    if (c === CR) {
      if (buf[pos + 1] !== LF || pos + 2 !== sectionEnd) return h1Error("bare_cr", status);
      return count + rewrite;
    }
    if (c === SP || c === HTAB) return h1Error("obs_fold", status);
    const nameStart = pos;
    let hash = 0;
    while (TOKEN[c] === 1) {
      hash = nameHashStep(hash, c);
      c = buf[++pos];
    }
    const nameEnd = pos;
    if (c !== COLON) {
      if (c === LF) return h1Error("bare_lf", status);
      if (c !== SP && c !== HTAB) return h1Error("invalid_header_name", status);
      if (!lenient) return h1Error("space_before_colon", status);
      rewrite = FIELDS_REWRITE;
      while (c === SP || c === HTAB) c = buf[++pos];
      if (c !== COLON) return h1Error("invalid_header_name", status);
    }
    if (nameEnd === nameStart) return h1Error("invalid_header_name", status);
    const k = internedIndex(buf, nameStart, nameEnd, hash);
    c = buf[++pos];
    while (c === SP || c === HTAB) c = buf[++pos];
    const valueStart = pos;
    let valueEnd = pos;
    for (;;) {
      if (FIELD_VCHAR[c] === 1) valueEnd = ++pos;
      else if (c === SP || c === HTAB) pos++;
      else break;
      c = buf[pos];
    }
    if (c !== CR) return h1Error(c === LF ? "bare_lf" : "invalid_header_value", status);
    if (buf[pos + 1] !== LF) return h1Error("bare_cr", status);
    if (++count > maxFields) return h1Error(tooMany, status === 400 ? 431 : status);
    if (text !== null) {
      const name = k >= 0 ? KNOWN_NAMES[k] : text.substring(nameStart - base, nameEnd - base).toLowerCase();
      out.push(
        name,
        valueStart === valueEnd
          ? ""
          : memo !== null && k >= 0
            ? memo.value(k, buf, valueStart, valueEnd)
            : text.substring(valueStart - base, valueEnd - base),
      );
    } else if (k >= 0 && (KNOWN_FLAGS[k] & NAME_FRAMING) !== 0) {
      // No memo here: one latin1 decode of a framing value costs less than the compare.
      out.push(KNOWN_NAMES[k], valueStart === valueEnd ? "" : latin1(buf, valueStart, valueEnd));
    }
    pos += 2;
    if (drop === null) continue;
    if (k >= 0 ? (KNOWN_FLAGS[k] & dropMask) !== 0 : (dropMask & NAME_FORWARDING) !== 0 && isForwardingAlias(buf, nameStart, nameEnd)) drop.push(nameStart - base, pos - base);
  }
}

/** Token bytes buf[start, end) name a forwarding field spelled with "_" for "-" (isForwardingField); only such names are never interned. */
function isForwardingAlias(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end && buf[i] !== 0x5f /* _ */) i++;
  return i < end && isForwardingField(latin1(buf, start, end).toLowerCase());
}

/**
 * buf[from, to) without the [start, end) ranges in `drop` (offsets relative
 * to `from`, ascending, from `parseFieldLines`), then `tail`, then
 * body[bodyStart, bodyEnd): one exactly sized copy.
 *
 * Ranges, not views: the first `subarray` of a fresh socket chunk costs
 * ~150 ns under JSC (it materializes the chunk's ArrayBuffer) and dominated
 * a pass-through request; a native copy from offsets costs ~20 ns.
 */
export function copyWithout(
  buf: Uint8Array,
  from: number,
  to: number,
  drop: readonly number[],
  tail: Uint8Array | null,
  body: Uint8Array | null = null,
  bodyStart = 0,
  bodyEnd = 0,
): Uint8Array {
  let removed = 0;
  for (let i = 0; i < drop.length; i += 2) removed += drop[i + 1] - drop[i];
  const tailLength = tail === null ? 0 : tail.byteLength;
  const out = new Uint8Array(to - from - removed + tailLength + (bodyEnd - bodyStart));
  let p = 0;
  let at = from;
  for (let i = 0; i < drop.length; i += 2) {
    p += copyRange(buf, at, from + drop[i], out, p);
    at = from + drop[i + 1];
  }
  p += copyRange(buf, at, to, out, p);
  if (tail !== null) {
    out.set(tail, p);
    p += tailLength;
  }
  if (body !== null) copyRange(body, bodyStart, bodyEnd, out, p);
  return out;
}

const NOT_TOKEN = /[^!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const NOT_FIELD_VALUE = /[^\t\x20-\x7e\x80-\xff]|^[\t ]|[\t ]$/;

/** Whether `name` is a non-empty token (RFC 9110 §5.1). */
export function isFieldName(name: string): boolean {
  return name.length > 0 && !NOT_TOKEN.test(name);
}

/**
 * Whether `value` may be emitted as a field value: no control character but
 * HTAB, no character above U+00FF (latin1 encoding would truncate U+010A to
 * LF), no leading or trailing whitespace.
 */
export function isFieldValue(value: string): boolean {
  return !NOT_FIELD_VALUE.test(value);
}
