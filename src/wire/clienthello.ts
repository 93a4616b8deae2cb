/**
 * TLS ClientHello reader (SPEC §1, §4 step 4): finds the SNI hostname and the
 * ALPN list in the first bytes a client sends, WITHOUT consuming them — the
 * caller keeps every byte and replays it unchanged to the backend (L4) or to
 * the local TLS stack (L7).
 *
 * Pure: no I/O, no timers, never throws on any input. The caller feeds the
 * bytes received so far and gets one of:
 *   - `ok`        the whole ClientHello handshake message has arrived;
 *   - `need_more` a prefix of a plausible ClientHello, read more bytes;
 *   - `error`     with a reason code for logs and metrics.
 *
 * Framing handled: the handshake message may be split across any number of
 * consecutive TLS records (type 22) and any TCP segmentation. A record whose
 * fragment is empty or longer than 2^14 bytes (RFC 8446 §5.1: the ClientHello
 * is sent in plaintext records, so the 2^14+256/2048 ciphertext allowances do
 * not apply) is malformed.
 *
 * Reason codes: `not_tls` (first bytes are not a TLS handshake record: plain
 * HTTP, SSLv2-style hello, garbage), `too_large` (the hello needs more than
 * `maxBytes` buffered bytes), `malformed` (a length overruns, a field is out
 * of range, the handshake message is not a ClientHello, or the SNI is not a
 * hostname). Two more codes are produced by the CALLER, not the parser:
 * `truncated` (peer closed while the result was `need_more`) and `timeout`
 * (the deadline passed while `need_more`) — see `ClientHelloReader.end()` /
 * `.expire()`. `no_sni` is also the caller's: a valid ClientHello without a
 * server_name extension parses as `ok` with `sni: null`, so the caller can
 * still log the ALPN and versions before closing.
 */
import { HELLO_BUFFER_INITIAL_BYTES } from "../limits.ts";

/** Why a ClientHello could not be used; the value appears in logs and metrics. */
export type HelloFailure = "not_tls" | "truncated" | "too_large" | "no_sni" | "malformed" | "timeout";

/** What the ClientHello said. `length` = bytes of the input holding the hello's records. */
export interface ClientHelloInfo {
  status: "ok";
  /** The server_name host_name exactly as sent (not lower-cased), or null when absent. */
  sni: string | null;
  /** ALPN protocol names in client order; empty when the extension is absent. */
  alpn: string[];
  /** ClientHello.legacy_version, e.g. 0x0303. */
  legacyVersion: number;
  /** supported_versions extension (e.g. [0x0304, 0x0303]); empty when absent. */
  supportedVersions: number[];
  /** Offset just past the TLS record that completed the ClientHello. */
  length: number;
}

/** Result of one parse attempt. `needed` (when known) = total bytes required before progress is possible. */
export type HelloResult =
  | ClientHelloInfo
  | { status: "need_more"; needed?: number }
  | { status: "error"; reason: HelloFailure };

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER = 5;
const MAX_PLAINTEXT = 16384; // 2^14, RFC 8446 §5.1
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_SUPPORTED_VERSIONS = 43;

/**
 * Where the record walk stopped; lets ClientHelloReader resume instead of
 * rescanning. Memory is bounded by bytes, not records: the handshake
 * fragments are copied into ONE buffer (grown by doubling, never past
 * maxBytes), so a hello sent as thousands of 1-byte records costs what its
 * bytes cost, not a JS object per record.
 */
interface ScanState {
  /** Offset of the next record header to read. */
  pos: number;
  /** The handshake stream so far: complete records' payloads, back to back, in hs[0, have). */
  hs: Uint8Array;
  /** Bytes of the handshake stream in `hs`. */
  have: number;
  /** Handshake body length once the 4-byte handshake header is known, else -1. */
  bodyLen: number;
}

type ScanOutcome =
  | { status: "complete"; end: number }
  | { status: "need_more"; needed: number }
  | { status: "error"; reason: HelloFailure };

const NO_BYTES = new Uint8Array(0);
/** First size of the handshake buffer: a typical hello (~500 B) takes one or two allocations. */
const HS_MIN_CAPACITY = HELLO_BUFFER_INITIAL_BYTES;

function newScan(): ScanState {
  return { pos: 0, hs: NO_BYTES, have: 0, bodyLen: -1 };
}

/** Byte `i` of the handshake stream: from `hs`, else from the record payload in progress at buf[recStart…). */
function hsByte(buf: Uint8Array, s: ScanState, recStart: number, i: number): number {
  return i < s.have ? s.hs[i] : buf[recStart + i - s.have];
}

/** Appends buf[a, b) to the handshake stream; the buffer doubles, capped at `maxBytes` (which bounds the stream). */
function appendHandshake(s: ScanState, buf: Uint8Array, a: number, b: number, maxBytes: number): void {
  const need = s.have + (b - a);
  if (need > s.hs.length) {
    const next = new Uint8Array(Math.max(need, Math.min(maxBytes, Math.max(HS_MIN_CAPACITY, s.hs.length * 2))));
    next.set(s.hs.subarray(0, s.have));
    s.hs = next;
  }
  s.hs.set(buf.subarray(a, b), s.have);
  s.have = need;
}

/**
 * Walks TLS record headers from `s.pos`, recording handshake fragments, until
 * the ClientHello message is complete, more bytes are needed, or the framing
 * is wrong. Touches only record headers and the 4-byte handshake header, so a
 * resumed scan is O(new records).
 */
function scanRecords(buf: Uint8Array, maxBytes: number, s: ScanState): ScanOutcome {
  for (;;) {
    if (s.bodyLen >= 0 && s.have >= 4 + s.bodyLen) return { status: "complete", end: s.pos };
    const first = s.pos === 0;
    // Another record is needed: if not even its header fits, that is known before any of its
    // bytes (so the verdict does not depend on how the input was chunked; found by test/fuzz).
    if (s.pos + RECORD_HEADER > maxBytes) return { status: "error", reason: "too_large" };
    // Record header: type, legacy_record_version (major must be 3), length.
    const avail = buf.length - s.pos;
    if (avail >= 1 && buf[s.pos] !== RECORD_HANDSHAKE) return { status: "error", reason: first ? "not_tls" : "malformed" };
    if (avail >= 2 && buf[s.pos + 1] !== 0x03) return { status: "error", reason: first ? "not_tls" : "malformed" };
    if (avail < RECORD_HEADER) {
      // The type and major version bytes are checked one by one as they arrive, so wake the
      // caller for each of them (found by test/fuzz: a bad type byte was only reported 5 bytes later).
      return { status: "need_more", needed: avail < 2 ? s.pos + avail + 1 : s.pos + RECORD_HEADER };
    }
    const len = (buf[s.pos + 3] << 8) | buf[s.pos + 4];
    // Zero-length handshake fragments are forbidden (RFC 8446 §5.1).
    if (len === 0 || len > MAX_PLAINTEXT) return { status: "error", reason: "malformed" };
    const end = s.pos + RECORD_HEADER + len;
    if (end > maxBytes) return { status: "error", reason: "too_large" };
    // Learn the handshake header as soon as its 4 bytes are here, even from a
    // partial record, so a wrong type or an oversized hello fails early.
    const payload = s.pos + RECORD_HEADER;
    const partial = Math.min(end, buf.length);
    const bad = s.bodyLen < 0 && s.have + partial - payload >= 4 ? learnHeader(buf, s, payload, end, len, maxBytes) : null;
    if (bad) return bad;
    if (end > buf.length) {
      // Wake the caller again when the handshake header becomes readable, else at the record's end.
      const headerAt = s.pos + RECORD_HEADER + Math.max(1, 4 - s.have);
      return { status: "need_more", needed: s.bodyLen < 0 ? Math.min(end, headerAt) : end };
    }
    appendHandshake(s, buf, payload, end, maxBytes);
    s.pos = end;
  }
}

/**
 * Reads the 4-byte handshake header (its last bytes may be in the current,
 * possibly partial, record whose payload starts at `recStart`) into
 * s.bodyLen; returns an error when it is not a ClientHello or the hello
 * cannot fit in maxBytes. `recEnd`/`recLen` describe the current record.
 */
function learnHeader(buf: Uint8Array, s: ScanState, recStart: number, recEnd: number, recLen: number, maxBytes: number): ScanOutcome | null {
  const at = (i: number) => hsByte(buf, s, recStart, i);
  if (at(0) !== HANDSHAKE_CLIENT_HELLO) return { status: "error", reason: "malformed" };
  s.bodyLen = (at(1) << 16) | (at(2) << 8) | at(3);
  // Each later record carries at most 2^14 bytes: the cheapest framing needs this many bytes.
  const rest = Math.max(0, 4 + s.bodyLen - (s.have + recLen));
  const minBytes = recEnd + rest + RECORD_HEADER * Math.ceil(rest / MAX_PLAINTEXT);
  if (minBytes > maxBytes) return { status: "error", reason: "too_large" };
  return null;
}

/** The handshake body (after the 4-byte header); the scan is complete, so it is all in `hs`. */
function assembleBody(s: ScanState): Uint8Array {
  return s.hs.subarray(4, 4 + s.bodyLen);
}

/** Bounded big-endian reader over one byte range; `ok` turns false on any overrun. */
class Cursor {
  ok = true;
  constructor(
    private readonly b: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}
  left(): number {
    return this.end - this.pos;
  }
  u8(): number {
    if (this.pos + 1 > this.end) return this.fail();
    return this.b[this.pos++];
  }
  u16(): number {
    if (this.pos + 2 > this.end) return this.fail();
    const v = (this.b[this.pos] << 8) | this.b[this.pos + 1];
    this.pos += 2;
    return v;
  }
  /** A sub-cursor over the next `n` bytes (advances past them). */
  sub(n: number): Cursor {
    if (this.pos + n > this.end) {
      this.fail();
      return new Cursor(this.b, this.end, this.end);
    }
    const c = new Cursor(this.b, this.pos, this.pos + n);
    this.pos += n;
    return c;
  }
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.end) {
      this.fail();
      return new Uint8Array(0);
    }
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  private fail(): number {
    this.ok = false;
    this.pos = this.end;
    return 0;
  }
}

/** Hostname syntax: LDH labels (plus '_', seen in the wild), 1–63 chars each, ≤ 253 chars + optional final dot. */
function isHostname(name: string): boolean {
  if (name.length === 0 || name.length > 254) return false;
  const bare = name.endsWith(".") ? name.slice(0, -1) : name;
  if (bare.length === 0 || bare.length > 253) return false;
  for (const label of bare.split(".")) {
    if (label.length === 0 || label.length > 63) return false;
    if (!/^[A-Za-z0-9_-]+$/.test(label)) return false;
  }
  return true;
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** Parses a complete ClientHello body (RFC 8446 §4.1.2); null when malformed. */
function parseBody(body: Uint8Array): Omit<ClientHelloInfo, "status" | "length"> | null {
  const c = new Cursor(body, 0, body.length);
  const legacyVersion = c.u16();
  if (!c.ok || legacyVersion >> 8 !== 0x03) return null;
  c.bytes(32); // random
  const sidLen = c.u8();
  if (sidLen > 32) return null;
  c.bytes(sidLen);
  const csLen = c.u16();
  if (!c.ok || csLen < 2 || csLen % 2 !== 0) return null;
  c.bytes(csLen);
  const compLen = c.u8();
  if (!c.ok || compLen < 1) return null;
  c.bytes(compLen);
  if (!c.ok) return null;

  let sni: string | null = null;
  const alpn: string[] = [];
  const supportedVersions: number[] = [];
  if (c.left() === 0) return { sni, alpn, legacyVersion, supportedVersions }; // no extensions block (pre-TLS 1.2 style)

  const extLen = c.u16();
  if (!c.ok || extLen !== c.left()) return null; // the extensions end the message exactly
  const seen = new Set<number>();
  while (c.left() > 0) {
    const type = c.u16();
    const len = c.u16();
    const ext = c.sub(len);
    if (!c.ok) return null;
    if (seen.has(type)) return null; // RFC 8446 §4.2: at most one extension of each type
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      // RFC 6066 §3: ServerNameList; one host_name (type 0); other name types skipped.
      const list = ext.sub(ext.u16());
      if (!ext.ok || ext.left() !== 0 || list.left() === 0) return null;
      while (list.left() > 0) {
        const nameType = list.u8();
        const name = list.bytes(list.u16());
        if (!list.ok) return null;
        if (nameType !== 0) continue;
        if (sni !== null) return null;
        const host = latin1(name);
        if (!isHostname(host)) return null;
        sni = host;
      }
    } else if (type === EXT_ALPN) {
      // RFC 7301 §3.1: ProtocolNameList<2..2^16-1> of ProtocolName<1..2^8-1>.
      const list = ext.sub(ext.u16());
      if (!ext.ok || ext.left() !== 0 || list.left() === 0) return null;
      while (list.left() > 0) {
        const n = list.u8();
        if (n === 0) return null;
        const p = list.bytes(n);
        if (!list.ok) return null;
        alpn.push(latin1(p));
      }
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      // RFC 8446 §4.2.1 (client form): versions<2..254>.
      const n = ext.u8();
      if (!ext.ok || n < 2 || n % 2 !== 0 || n !== ext.left()) return null;
      for (let i = 0; i < n; i += 2) supportedVersions.push(ext.u16());
    }
  }
  return { sni, alpn, legacyVersion, supportedVersions };
}

function finish(s: ScanState, outcome: ScanOutcome): HelloResult {
  if (outcome.status === "error") return outcome;
  if (outcome.status === "need_more") return { status: "need_more", needed: outcome.needed };
  const info = parseBody(assembleBody(s));
  if (!info) return { status: "error", reason: "malformed" };
  return { status: "ok", ...info, length: outcome.end };
}

/**
 * Parses the ClientHello at the start of `buf` (the bytes received so far)
 * without consuming anything; on any error returns a reason, never throws.
 * `maxBytes` caps the bytes the hello may occupy (records included): if
 * completing it would need more, the result is `too_large` as soon as that is
 * known. O(n) per call; for repeated calls on a growing buffer prefer
 * ClientHelloReader, which resumes instead of rescanning.
 */
export function parseClientHello(buf: Uint8Array, maxBytes: number): HelloResult {
  if (buf.length === 0) return { status: "need_more", needed: 1 };
  const s = newScan();
  return finish(s, scanRecords(buf, maxBytes, s));
}

/**
 * Accumulates a connection's first bytes and reports the ClientHello as soon
 * as it is complete. Keeps every pushed byte (hello and anything after it) so
 * `bytes()` can be replayed unchanged to the backend. Amortised O(1) per byte:
 * the buffer grows by doubling and the record walk resumes where it stopped.
 */
export class ClientHelloReader {
  private buf = new Uint8Array(2048);
  private len = 0;
  private scan = newScan();
  private last: HelloResult = { status: "need_more", needed: 1 };

  constructor(private readonly maxBytes: number) {}

  /** Appends a chunk and returns the current result (sticky once ok/error). */
  push(chunk: Uint8Array): HelloResult {
    if (chunk.length > 0) {
      if (this.len + chunk.length > this.buf.length) {
        let cap = this.buf.length * 2;
        while (cap < this.len + chunk.length) cap *= 2;
        const next = new Uint8Array(cap);
        next.set(this.buf.subarray(0, this.len));
        this.buf = next;
      }
      this.buf.set(chunk, this.len);
      this.len += chunk.length;
    }
    if (this.last.status !== "need_more") return this.last;
    if (this.len < (this.last.needed ?? 0)) return this.last; // nothing new to look at yet
    const view = this.buf.subarray(0, this.len);
    this.last = finish(this.scan, scanRecords(view, this.maxBytes, this.scan));
    return this.last;
  }

  /** The peer closed: a hello still incomplete becomes `truncated`. */
  end(): HelloResult {
    if (this.last.status === "need_more") this.last = { status: "error", reason: "truncated" };
    return this.last;
  }

  /** The hello deadline passed: a hello still incomplete becomes `timeout`. */
  expire(): HelloResult {
    if (this.last.status === "need_more") this.last = { status: "error", reason: "timeout" };
    return this.last;
  }

  /** Every byte pushed so far, in order, as one view (valid until the next push). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** The latest result without pushing anything. */
  result(): HelloResult {
    return this.last;
  }
}
