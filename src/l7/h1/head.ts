/**
 * HTTP/1.1 message heads (RFC 9112 §2–§6): request heads from clients,
 * response heads from backends. Pure and stateless: call again with more
 * bytes after `more`; a head is parsed only once its CRLF CRLF is present, so
 * the work per call is one native search plus, once, one pass over the head.
 *
 * The request side is strict because it guards request smuggling; every
 * rejection is an `H1Error` with its reason and the status to answer. Choices
 * where the RFC leaves room:
 * - Names are lower-cased (only): HTTP/2 needs them so, comparisons downstream
 *   become `===`, and raw case is never needed to forward (names are
 *   case-insensitive; we do not cater for backends that are not).
 * - Content-Length: any repetition is `duplicate_cl` on a request, even of
 *   the same value ("5, 5" or two fields), which RFC 9110 §8.6 would let us
 *   collapse; on a response identical values collapse, differing ones fail.
 * - Transfer-Encoding on a request must be exactly `chunked` (one or more
 *   fields, case-insensitive): `chunked` not last or twice → 400 `invalid_te`;
 *   `gzip, chunked` → 501 `unsupported_te` (§6.3: we would have to decode it);
 *   with Content-Length → 400 `cl_and_te`; on HTTP/1.0 → 400 `te_in_http10`.
 * - CONNECT → 501 `connect_unsupported` (the proxy does not tunnel; 405 would
 *   promise an Allow header). `*` only with OPTIONS; absolute-form is accepted
 *   and its authority, not Host, becomes `host` (§3.2.2); authority-form
 *   otherwise is `invalid_target`.
 * - Request lines are exactly `method SP target SP HTTP/1.x CRLF` (no lenient
 *   whitespace); targets are visible ASCII. Up to `maxEmptyLines` CRLFs before
 *   a request line are skipped (and counted in `length`).
 * - Responses (a backend we chose, §2.2 "MAY" leniencies only where harmless):
 *   whitespace before a colon is skipped, a missing reason phrase is fine,
 *   CL+TE → chunked wins and the connection is not reused, a coding other than
 *   a lone final `chunked` → `unsupported_te` (a TE-coded body cannot be
 *   forwarded once TE, hop-by-hop, is removed). Bare LF and obs-fold stay errors
 *   (502): we neither guess line ends nor rewrite folded values.
 */
import {
  CR,
  FIELDS_REWRITE,
  HTAB,
  LF,
  NAME_FORWARDING,
  NAME_HOP_BY_HOP,
  SP,
  TARGET_CHAR,
  TOKEN,
  indexOfCrlfCrlf,
  indexOfLf,
  latin1,
  parseFieldLines,
  type ValueMemo,
} from "./bytes.ts";
import { type H1Error, type H1ErrorReason, type H1ErrorStatus, NEED_MORE, type NeedMore, h1Error } from "./errors.ts";
import { H1_DEFAULT_LIMITS, type H1Limits } from "./bounds.ts";
import { authorityPortValid } from "../authority.ts";

export type H1Version = "1.0" | "1.1";

/**
 * How the body is delimited: none; `contentLength` bytes; chunked; or until
 * the server closes (responses only).
 */
export type H1Framing = "none" | "length" | "chunked" | "close";

const EMPTY_TOKENS: readonly string[] = Object.freeze([]);

/** Framing and connection facts shared by both heads, computed while parsing. */
export interface H1MessageFacts {
  /** HTTP minor version as written on the start line. */
  version: H1Version;
  /** Flat [name, value, name, value, …]: names lower-cased, values with OWS trimmed, in wire order. */
  headers: string[];
  /** Bytes consumed from `start`, including skipped empty lines; the body (if any) begins there. */
  length: number;
  framing: H1Framing;
  /** Content-Length value when present and valid (also for HEAD/304 responses with framing "none"), else -1. */
  contentLength: number;
  /** Whether the connection may carry another message after this one (version default, Connection, framing). */
  keepAlive: boolean;
  /** Lower-cased tokens of every Connection field (hop-by-hop names to strip), shared empty array if none. */
  connection: readonly string[];
  /** The Upgrade field value as received ("" if absent). */
  upgrade: string;
  /**
   * HTTP/1.1, and nothing the proxy would rewrite (a request's TE or
   * Transfer-Encoding, absolute-form target; a response's whitespace before a
   * colon, a body we re-frame; a Connection field naming anything but the
   * fields dropped anyway): the head's bytes minus `dropLines` may be
   * forwarded as they are, which costs far less than rebuilding them.
   */
  forwardable: boolean;
  /** Bytes of empty lines skipped before the start line (the head itself is buf[start + headOffset, start + length)). */
  headOffset: number;
  /**
   * Lines a forwarded copy leaves out, as [start, end) pairs relative to the
   * head's start line: hop-by-hop fields (both), forwarding claims (requests).
   */
  dropLines: number[];
}

export interface RequestHead extends H1MessageFacts {
  kind: "request";
  method: string;
  target: string;
  targetForm: "origin" | "absolute" | "asterisk";
  /** The authority: absolute-form target's if present (RFC 9112 §3.2.2), else Host ("" on HTTP/1.0 without one). */
  host: string;
  /** `Expect: 100-continue` on HTTP/1.1 (ignored on 1.0 per RFC 9110 §10.1.1). */
  expectContinue: boolean;
  /** GET on HTTP/1.1 with `Connection: upgrade` and `websocket` in Upgrade. */
  websocket: boolean;
  /** `TE` lists `trailers` (gRPC needs it forwarded). */
  teTrailers: boolean;
}

export interface ResponseHead extends H1MessageFacts {
  kind: "response";
  status: number;
  /** The reason phrase ("" after a framing-only parse). */
  reason: string;
  /** False after a framing-only parse: `headers` holds only the framing fields (parse again for all). */
  complete: boolean;
}

const BAD = 400 as const;
const BAD_GATEWAY = 502 as const;
const MAX_SAFE_DIV10 = Math.floor(Number.MAX_SAFE_INTEGER / 10);

/**
 * Parses one request head at buf[start, end). Returns the head (with
 * `length` = bytes consumed), `NEED_MORE` while the bytes are a valid prefix,
 * or an error. Never throws, never depends on bytes outside [start, end),
 * keeps no reference to `buf` (strings are decoded copies). A head trickling
 * in costs one native search (plus an LF walk) over what has arrived per call,
 * bounded by `maxHeadBytes`; the caller's head deadline bounds the rest.
 */
export function parseRequestHead(
  buf: Uint8Array,
  start: number,
  end: number,
  limits: H1Limits = H1_DEFAULT_LIMITS,
): RequestHead | NeedMore | H1Error {
  // Empty lines before the request line (RFC 9112 §2.2).
  let headStart = start;
  for (let empties = 0; headStart < end && buf[headStart] === CR; empties++) {
    if (empties === limits.maxEmptyLines) return h1Error("too_many_empty_lines", BAD);
    if (headStart + 1 === end) return NEED_MORE;
    if (buf[headStart + 1] !== LF) return h1Error("bare_cr", BAD);
    headStart += 2;
  }
  const found = findHead(buf, headStart, end, limits, true, BAD);
  if (typeof found !== "number") return found;
  const headEnd = found;

  // request-line = method SP request-target SP HTTP-version CRLF
  let pos = headStart;
  let c = buf[pos];
  while (TOKEN[c] === 1) c = buf[++pos];
  if (pos === headStart || c !== SP) return lineError(c, "invalid_method", BAD);
  const methodEnd = pos;
  const targetStart = ++pos;
  c = buf[pos];
  while (TARGET_CHAR[c] === 1) c = buf[++pos];
  if (pos === targetStart || c !== SP) return lineError(c, "invalid_target", BAD);
  const targetEnd = pos++;
  const minor = parseVersion(buf, pos, headEnd);
  if (minor < 0) return h1Error(minor === VERSION_UNSUPPORTED ? "unsupported_version" : "invalid_version", minor === VERSION_UNSUPPORTED ? 505 : BAD);
  pos += 8;
  if (buf[pos] !== CR) return lineError(buf[pos], "invalid_version", BAD);
  if (buf[pos + 1] !== LF) return h1Error("bare_cr", BAD);
  pos += 2;

  const text = latin1(buf, headStart, headEnd);
  const method = text.substring(0, methodEnd - headStart);
  if (method === "CONNECT") return h1Error("connect_unsupported", 501);
  const target = text.substring(targetStart - headStart, targetEnd - headStart);
  let targetForm: RequestHead["targetForm"];
  let targetHost = "";
  if (buf[targetStart] === 0x2f /* / */) targetForm = "origin";
  else if (targetEnd - targetStart === 1 && buf[targetStart] === 0x2a /* * */) {
    if (method !== "OPTIONS") return h1Error("invalid_target", BAD);
    targetForm = "asterisk";
  } else {
    const authority = absoluteFormAuthority(target);
    if (authority === undefined || !authorityPortValid(authority)) return h1Error("invalid_target", BAD);
    targetForm = "absolute";
    targetHost = authority;
  }

  const headers: string[] = [];
  const drop: number[] = [];
  const fields = parseFieldLines(buf, pos, headEnd, text, headStart, headers, false, limits.maxHeaders, "too_many_headers", BAD, drop, NAME_HOP_BY_HOP | NAME_FORWARDING);
  if (typeof fields !== "number") return fields;

  // Framing and connection facts (RFC 9112 §6, §9.3; RFC 9110 §7.2, §7.6.1, §10.1.1).
  const version: H1Version = minor === 1 ? "1.1" : "1.0";
  let contentLength = -1;
  let te: TeSummary | undefined;
  let host: string | undefined;
  let connection = EMPTY_TOKENS;
  let upgrade = "";
  let expectContinue = false;
  let teTrailers = false;
  let forwardable = minor === 1 && targetForm === "origin";
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    switch (name) {
      case "content-length":
        if (contentLength !== -1) return h1Error("duplicate_cl", BAD);
        contentLength = parseContentLength(value, false, -1);
        if (contentLength === CL_INVALID) return h1Error("invalid_cl", BAD);
        if (contentLength === CL_DUPLICATE) return h1Error("duplicate_cl", BAD);
        break;
      case "transfer-encoding":
        te = summarizeTransferEncoding(value, te);
        forwardable = false;
        break;
      case "host":
        if (host !== undefined) return h1Error("duplicate_host", BAD);
        if (!isValidHost(value) || !authorityPortValid(value)) return h1Error("invalid_host", BAD);
        host = value;
        break;
      case "connection":
        connection = appendTokens(value, connection);
        break;
      case "upgrade":
        upgrade = upgrade === "" ? value : upgrade + ", " + value;
        break;
      case "expect":
        if (minor === 1 && value.length === 12 && value.toLowerCase() === "100-continue") expectContinue = true;
        break;
      case "te":
        // Forwarded as `te: trailers` or not at all: rebuilt.
        if (hasToken(value, "trailers")) teTrailers = true;
        forwardable = false;
        break;
    }
  }
  if (forwardable && connection !== EMPTY_TOKENS && !onlyTokens(connection, REQUEST_CONNECTION_DROPPED)) forwardable = false;
  if (minor === 1 && host === undefined) return h1Error("missing_host", BAD);
  // An https URI with an empty host is invalid (RFC 9110 §4.2.2); an absolute-form target's authority replaces Host.
  if (host === "" && targetForm !== "absolute") return h1Error("empty_host", BAD);

  let framing: H1Framing = "none";
  if (te !== undefined) {
    if (minor === 0) return h1Error("te_in_http10", BAD);
    if (contentLength !== -1) return h1Error("cl_and_te", BAD);
    if (!te.chunkedLast || te.chunked > 1) return h1Error("invalid_te", BAD);
    if (te.codings > 1) return h1Error("unsupported_te", 501);
    framing = "chunked";
  } else if (contentLength !== -1) framing = "length";

  const close = connection.includes("close");
  const keepAlive = minor === 1 ? !close : !close && connection.includes("keep-alive");
  const websocket =
    minor === 1 && method === "GET" && upgrade !== "" && connection.includes("upgrade") && hasToken(upgrade, "websocket");
  return {
    kind: "request",
    method,
    target,
    targetForm,
    version,
    headers,
    length: headEnd - start,
    framing,
    contentLength,
    keepAlive,
    connection,
    upgrade,
    forwardable,
    headOffset: headStart - start,
    dropLines: drop,
    host: targetForm === "absolute" ? targetHost : (host ?? ""),
    expectContinue,
    websocket,
    teTrailers,
  };
}

/**
 * Parses one response head at buf[start, end); `requestMethod` is the method
 * of the request it answers (HEAD responses have no body). Same contract as
 * `parseRequestHead`; errors carry 502. A 1xx other than 101 is followed by
 * another head for the same request: parse again at `start + length`.
 *
 * `framingOnly`: validate the same, but keep only what framing, connection
 * reuse and pass-through need (`complete` false: `headers` holds just the
 * framing fields, `reason` is ""). For a head that will be forwarded as its
 * own bytes it saves decoding the rest (~0.5 µs of a ~0.9 µs parse of
 * nginx's 8-field head); anyone else parses again in full.
 *
 * `memo`: the connection's ValueMemo (backend connections), so values that
 * repeat from head to head come back as the same strings.
 */
export function parseResponseHead(
  buf: Uint8Array,
  start: number,
  end: number,
  requestMethod: string,
  limits: H1Limits = H1_DEFAULT_LIMITS,
  framingOnly = false,
  memo: ValueMemo | null = null,
): ResponseHead | NeedMore | H1Error {
  const found = findHead(buf, start, end, limits, false, BAD_GATEWAY);
  if (typeof found !== "number") return found;
  const headEnd = found;

  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF; the last SP may be missing.
  const minor = parseVersion(buf, start, headEnd);
  if (minor < 0) return h1Error("invalid_version", BAD_GATEWAY);
  let pos = start + 8;
  const d0 = buf[pos + 1] - 0x30;
  const d1 = buf[pos + 2] - 0x30;
  const d2 = buf[pos + 3] - 0x30;
  if (buf[pos] !== SP || !isDigit(d0) || !isDigit(d1) || !isDigit(d2) || d0 === 0) return h1Error("invalid_status", BAD_GATEWAY);
  const status = d0 * 100 + d1 * 10 + d2;
  pos += 4;
  let reasonStart = pos;
  if (buf[pos] === SP) {
    reasonStart = ++pos;
    let c = buf[pos];
    while (c === SP || c === HTAB || c >= 0x80 || (c > 0x20 && c < 0x7f)) c = buf[++pos];
  }
  const reasonEnd = pos;
  if (buf[pos] !== CR) return lineError(buf[pos], "invalid_status", BAD_GATEWAY);
  if (buf[pos + 1] !== LF) return h1Error("bare_cr", BAD_GATEWAY);
  pos += 2;

  const text = framingOnly ? null : latin1(buf, start, headEnd);
  const reason = reasonEnd === reasonStart || text === null ? "" : text.substring(reasonStart - start, reasonEnd - start);
  const headers: string[] = [];
  const drop: number[] = [];
  const fields = parseFieldLines(buf, pos, headEnd, text, start, headers, true, limits.maxHeaders, "too_many_headers", BAD_GATEWAY, drop, NAME_HOP_BY_HOP, memo);
  if (typeof fields !== "number") return fields;

  let contentLength = -1;
  let te: TeSummary | undefined;
  let connection = EMPTY_TOKENS;
  let upgrade = "";
  let forwardable = minor === 1 && fields < FIELDS_REWRITE;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    switch (name) {
      case "content-length":
        contentLength = parseContentLength(value, true, contentLength);
        if (contentLength === CL_INVALID) return h1Error("invalid_cl", BAD_GATEWAY);
        if (contentLength === CL_DUPLICATE) return h1Error("duplicate_cl", BAD_GATEWAY);
        break;
      case "transfer-encoding":
        te = summarizeTransferEncoding(value, te);
        break;
      case "connection":
        connection = appendTokens(value, connection);
        break;
      case "upgrade":
        upgrade = upgrade === "" ? value : upgrade + ", " + value;
        break;
    }
  }
  // Connection may name other fields to remove (RFC 9110 §7.6.1): then the head is rebuilt.
  if (forwardable && connection !== EMPTY_TOKENS && !onlyTokens(connection, RESPONSE_CONNECTION_DROPPED)) forwardable = false;

  // RFC 9112 §6.3, in its order.
  let keepAlive = minor === 1 ? !connection.includes("close") : !connection.includes("close") && connection.includes("keep-alive");
  let framing: H1Framing;
  if (requestMethod === "HEAD" || status < 200 || status === 204 || status === 304) framing = "none";
  else if (te !== undefined) {
    if (!te.chunkedLast || te.chunked > 1 || te.codings > 1) return h1Error("unsupported_te", BAD_GATEWAY);
    framing = "chunked";
    // Both present: TE wins; the sender is broken or hostile, so never reuse this connection.
    if (contentLength !== -1) {
      contentLength = -1;
      keepAlive = false;
    }
  } else if (contentLength !== -1) framing = "length";
  else {
    framing = "close";
    keepAlive = false;
  }
  // Rebuilt instead: 1xx/101 heads, bodies we re-frame (chunked, until close), and a 204 with a
  // Content-Length it must not have (RFC 9110 §8.6; HTTP/2 clients reject it): sent without.
  if (status < 200 || framing === "chunked" || framing === "close" || (status === 204 && contentLength !== -1)) forwardable = false;
  return {
    kind: "response",
    status,
    reason,
    version: minor === 1 ? "1.1" : "1.0",
    headers,
    length: headEnd - start,
    framing,
    contentLength,
    keepAlive,
    connection,
    upgrade,
    forwardable,
    headOffset: 0,
    dropLines: drop,
    complete: !framingOnly,
  };
}

/**
 * Locates the end of the head starting at `headStart`: the index just past
 * its CRLF CRLF, `NEED_MORE`, or an error (size limit; a bare LF seen early so
 * an LF-only client is refused at once rather than at its deadline).
 */
function findHead(
  buf: Uint8Array,
  headStart: number,
  end: number,
  limits: H1Limits,
  isRequest: boolean,
  status: H1ErrorStatus,
): number | NeedMore | H1Error {
  if (headStart >= end) return NEED_MORE;
  const max = limits.maxHeadBytes;
  const p = indexOfCrlfCrlf(buf, headStart, Math.min(end, headStart + max));
  if (p >= 0) return p + 4;
  // No terminator yet: refuse a bare LF now, else wait unless the limit is reached.
  let lineStart = headStart;
  for (;;) {
    const lf = indexOfLf(buf, lineStart, end);
    if (lf < 0) break;
    if (lf === lineStart || buf[lf - 1] !== CR) return h1Error("bare_lf", status);
    lineStart = lf + 1;
  }
  if (end - headStart < max) return NEED_MORE;
  const firstLf = indexOfLf(buf, headStart, headStart + max);
  return isRequest && firstLf < 0 ? h1Error("target_too_long", 414) : h1Error("head_too_large", isRequest ? 431 : status);
}

const VERSION_INVALID = -1;
const VERSION_UNSUPPORTED = -2;

/** Minor version (0 or 1) of `HTTP/1.x` at buf[pos, pos+8), or VERSION_INVALID / VERSION_UNSUPPORTED. */
function parseVersion(buf: Uint8Array, pos: number, limit: number): number {
  if (pos + 8 > limit) return VERSION_INVALID;
  if (buf[pos] !== 0x48 || buf[pos + 1] !== 0x54 || buf[pos + 2] !== 0x54 || buf[pos + 3] !== 0x50 || buf[pos + 4] !== 0x2f)
    return VERSION_INVALID;
  const major = buf[pos + 5] - 0x30;
  const minor = buf[pos + 7] - 0x30;
  if (!isDigit(major) || buf[pos + 6] !== 0x2e || !isDigit(minor)) return VERSION_INVALID;
  if (major !== 1 || minor > 1) return VERSION_UNSUPPORTED;
  return minor;
}

function isDigit(d: number): boolean {
  return d >= 0 && d <= 9;
}

/** The error for an unexpected byte on a start line: bare LF/CR get their own reason. */
function lineError(c: number, reason: H1ErrorReason, status: H1ErrorStatus): H1Error {
  return h1Error(c === LF ? "bare_lf" : reason, status);
}

const CL_INVALID = -2;
const CL_DUPLICATE = -3;

/**
 * Content-Length = 1*DIGIT, at most Number.MAX_SAFE_INTEGER. `lenient`
 * (responses) also accepts a list of identical values and a value equal to
 * `previous` (an earlier field); otherwise a second value is CL_DUPLICATE.
 */
function parseContentLength(value: string, lenient: boolean, previous: number): number {
  let result = previous;
  let i = 0;
  const n = value.length;
  for (;;) {
    let v = 0;
    const digitsStart = i;
    for (; i < n; i++) {
      const d = value.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) break;
      if (v > MAX_SAFE_DIV10 || (v === MAX_SAFE_DIV10 && d > Number.MAX_SAFE_INTEGER % 10)) return CL_INVALID;
      v = v * 10 + d;
    }
    if (i === digitsStart) return CL_INVALID;
    if (result !== -1 && (!lenient || result !== v)) return CL_DUPLICATE;
    result = v;
    if (i === n) return result;
    if (!lenient) return value.charCodeAt(i) === 0x2c ? CL_DUPLICATE : CL_INVALID;
    // lenient: `OWS "," OWS` then the next value
    while (i < n && isOws(value.charCodeAt(i))) i++;
    if (value.charCodeAt(i) !== 0x2c) return CL_INVALID;
    i++;
    while (i < n && isOws(value.charCodeAt(i))) i++;
  }
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

/** What a message's Transfer-Encoding fields say, accumulated over repeated fields. */
interface TeSummary {
  codings: number;
  chunked: number;
  chunkedLast: boolean;
}

/** Folds one Transfer-Encoding value (a comma list, empty elements ignored) into `acc`. */
function summarizeTransferEncoding(value: string, acc: TeSummary | undefined): TeSummary {
  const s = acc ?? { codings: 0, chunked: 0, chunkedLast: false };
  const lower = value.toLowerCase();
  if (lower === "chunked") {
    s.codings++;
    s.chunked++;
    s.chunkedLast = true;
    return s;
  }
  for (const part of lower.split(",")) {
    const coding = part.trim();
    if (coding === "") continue;
    s.codings++;
    s.chunkedLast = coding === "chunked";
    if (s.chunkedLast) s.chunked++;
  }
  return s;
}

/** Appends the lower-cased non-empty tokens of a comma list to `into` (a fresh array when it is the shared empty one). */
function appendTokens(value: string, into: readonly string[]): readonly string[] {
  const out = into === EMPTY_TOKENS ? [] : (into as string[]);
  // Common exact values first: toLowerCase on a substring costs ~90 ns under JSC.
  if (value === "keep-alive" || value === "close" || value === "upgrade") {
    out.push(value);
    return out;
  }
  const lower = value.toLowerCase();
  if (lower === "close" || lower === "keep-alive" || lower === "upgrade") {
    out.push(lower);
    return out;
  }
  for (const part of lower.split(",")) {
    const t = part.trim();
    if (t !== "") out.push(t);
  }
  return out;
}

/** Connection tokens a forwarded copy may leave behind: options, or fields that are dropped anyway. */
const REQUEST_CONNECTION_DROPPED: readonly string[] = ["close", "keep-alive", "upgrade", "http2-settings"];
const RESPONSE_CONNECTION_DROPPED: readonly string[] = ["close", "keep-alive"];

function onlyTokens(tokens: readonly string[], allowed: readonly string[]): boolean {
  for (let i = 0; i < tokens.length; i++) if (!allowed.includes(tokens[i])) return false;
  return true;
}

/** Whether comma list `value` contains `token` (case-insensitive; a `/version` suffix on the element is ignored). */
function hasToken(value: string, token: string): boolean {
  const lower = value.toLowerCase();
  if (lower === token) return true;
  for (const part of lower.split(",")) {
    const t = part.trim();
    if (t === token || (t.startsWith(token) && t.charCodeAt(token.length) === 0x2f)) return true;
  }
  return false;
}

/** uri-host [":" port] characters (RFC 3986 reg-name / IP-literal / IPv4) — no userinfo, path or whitespace. */
const HOST_CHAR = new Uint8Array(128);
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%")
  HOST_CHAR[ch.charCodeAt(0)] = 1;

function isValidHost(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 128 || HOST_CHAR[c] === 0) return false;
  }
  return true;
}

/** The authority of an absolute-form `http://` or `https://` target, or undefined (other scheme, userinfo, empty host). */
function absoluteFormAuthority(target: string): string | undefined {
  const lower = target.length > 8 ? target.substring(0, 8).toLowerCase() : target.toLowerCase();
  const schemeLen = lower.startsWith("http://") ? 7 : lower.startsWith("https://") ? 8 : 0;
  if (schemeLen === 0) return undefined;
  let end = schemeLen;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 0x2f || c === 0x3f || c === 0x23) break;
    end++;
  }
  const authority = target.substring(schemeLen, end);
  if (authority === "" || authority.includes("@") || !isValidHost(authority)) return undefined;
  return authority;
}
