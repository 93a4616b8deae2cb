/**
 * HTTP/2 message checks of RFC 9113 §8 on a decoded header list (the flat
 * `[name, value, …]` array HpackDecoder returns). Pure. A failure makes the
 * message malformed (§8.1.1): a stream PROTOCOL_ERROR, the connection lives.
 *
 * Checked for every list: field names non-empty and lower-case token
 * characters (§8.2.1, RFC 9110 §5.1 — stricter than §8.2.1's byte ranges so
 * that nothing we forward to HTTP/1.1 can split a header line); values
 * without NUL, CR or LF and without leading or trailing SP/HTAB (§8.2.1);
 * pseudo-headers only the defined ones, each once, all before regular
 * fields (§8.3); no connection-specific fields, TE other than "trailers"
 * (§8.2.2); content-length digits only, repeated values equal.
 */

import { H2_ERROR, H2Error, streamError } from "./errors.ts";
import { H2_MAX_CONTENT_LENGTH_DIGITS } from "../../limits.ts";
import { authorityPortValid } from "../authority.ts";

export { H2_MAX_CONTENT_LENGTH_DIGITS };


export interface RequestHead {
  readonly method: string;
  /** Null only for CONNECT without :protocol. */
  readonly scheme: string | null;
  readonly authority: string | null;
  /** Null only for CONNECT without :protocol. */
  readonly path: string | null;
  /** Extended CONNECT (RFC 8441) protocol, e.g. "websocket"; null otherwise. */
  readonly protocol: string | null;
  /** Parsed content-length, -1 when absent. */
  readonly contentLength: number;
  /** Index in `fields` of the first regular (non-pseudo) name; fields.length when none. */
  readonly regularStart: number;
}

export interface ResponseHead {
  status: number;
  /** Parsed content-length, -1 when absent. */
  contentLength: number;
  /** Index in `fields` of the first regular name. */
  regularStart: number;
}

export interface RequestCheckOptions {
  /** We advertised SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441): accept :protocol on CONNECT. */
  extendedConnect?: boolean;
  /** The names and values already passed the character checks (HeaderList.checked): skip them. */
  checked?: boolean;
}

// RFC 9110 tchar, lower-case only: "!#$%&'*+-.^_`|~", digits, a–z.
const NAME_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_CHAR[c.charCodeAt(0)] = 1;

/** Connection-specific fields (§8.2.2): meaningless in HTTP/2, dangerous to forward. */
const CONNECTION_SPECIFIC = new Set(["connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"]);

const malformed = (reason: string) => streamError(H2_ERROR.PROTOCOL_ERROR, reason);

/** True when `name` is a valid regular field name: non-empty lower-case token characters. */
export function isValidFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || NAME_CHAR[c] === 0) return false;
  }
  return true;
}

/** True when `value` has no NUL/CR/LF, no char above 0xFF and no leading/trailing SP or HTAB (§8.2.1). */
export function isValidFieldValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return true;
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(n - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return false;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d || c > 0xff) return false;
  }
  return true;
}

/**
 * Checks of §8.2 shared by requests, responses and trailers from `start` on;
 * tracks content-length. `checked`: names and values already passed the
 * character checks (HeaderList.checked).
 */
function checkRegular(fields: readonly string[], start: number, cl: { value: number }, checked: boolean): H2Error | null {
  for (let i = start; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (name.charCodeAt(0) === 0x3a) return malformed("pseudo_header_after_regular");
    if (!checked) {
      if (!isValidFieldName(name)) return malformed(hasUpper(name) ? "uppercase_field_name" : "bad_field_name");
      if (!isValidFieldValue(value)) return malformed("bad_field_value");
    }
    if (CONNECTION_SPECIFIC.has(name)) return malformed("connection_specific_field");
    if (name === "te" && value.toLowerCase() !== "trailers") return malformed("te_not_trailers");
    if (name === "content-length") {
      const n = parseContentLength(value);
      if (n < 0) return malformed("bad_content_length");
      if (cl.value >= 0 && cl.value !== n) return malformed("conflicting_content_length");
      cl.value = n;
    }
  }
  return null;
}

function hasUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return true;
  }
  return false;
}

/** Digits only, 1..H2_MAX_CONTENT_LENGTH_DIGITS of them; -1 otherwise (no sign, no spaces, no lists). */
export function parseContentLength(value: string): number {
  const n = value.length;
  if (n === 0 || n > H2_MAX_CONTENT_LENGTH_DIGITS) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/**
 * Checks a request header list (§8.3.1) and extracts its pseudo-headers.
 * :method is required; :scheme and :path are required and :authority
 * optional, except for CONNECT (§8.5), which needs :authority and forbids
 * :scheme and :path — unless it carries :protocol (RFC 8441, only with
 * `extendedConnect`), which needs all four. :path must be non-empty and, for
 * http/https, start with "/" (or be "*" for OPTIONS). :authority must not
 * carry userinfo, and a host field must name the same authority.
 */
export function validateRequestHeaders(fields: readonly string[], opts: RequestCheckOptions = {}): RequestHead | H2Error {
  const checked = opts.checked === true;
  let method: string | null = null;
  let scheme: string | null = null;
  let authority: string | null = null;
  let path: string | null = null;
  let protocol: string | null = null;
  let i = 0;
  for (; i < fields.length; i += 2) {
    const name = fields[i];
    if (name.charCodeAt(0) !== 0x3a) break;
    const value = fields[i + 1];
    if (!checked && !isValidFieldValue(value)) return malformed("bad_field_value");
    switch (name) {
      case ":method":
        if (method !== null) return malformed("duplicate_pseudo_header");
        method = value;
        break;
      case ":scheme":
        if (scheme !== null) return malformed("duplicate_pseudo_header");
        scheme = value;
        break;
      case ":authority":
        if (authority !== null) return malformed("duplicate_pseudo_header");
        authority = value;
        break;
      case ":path":
        if (path !== null) return malformed("duplicate_pseudo_header");
        path = value;
        break;
      case ":protocol":
        if (!opts.extendedConnect) return malformed("unknown_pseudo_header");
        if (protocol !== null) return malformed("duplicate_pseudo_header");
        protocol = value;
        break;
      case ":status":
        return malformed("response_pseudo_header_in_request");
      default:
        return malformed("unknown_pseudo_header");
    }
  }
  const regularStart = i;
  const cl = { value: -1 };
  const bad = checkRegular(fields, regularStart, cl, checked);
  if (bad) return bad;

  if (method === null) return malformed("missing_method");
  if (!isToken(method)) return malformed("bad_method");
  if (protocol !== null && method !== "CONNECT") return malformed("protocol_without_connect");
  if (method === "CONNECT" && protocol === null) {
    if (scheme !== null || path !== null) return malformed("connect_with_scheme_or_path");
    if (authority === null || authority === "") return malformed("connect_without_authority");
  } else {
    if (scheme === null) return malformed("missing_scheme");
    if (path === null) return malformed("missing_path");
    if (path === "") return malformed("empty_path");
    const s = scheme.toLowerCase();
    if (s === "http" || s === "https") {
      if (path.charCodeAt(0) !== 0x2f && !(path === "*" && method === "OPTIONS")) return malformed("bad_path");
      // :path is the path and query (RFC 9113 §8.3.1): a fragment is never sent.
      if (path.includes("#")) return malformed("fragment_in_path");
      if (authority !== null && authority.includes("@")) return malformed("authority_with_userinfo");
      if (authority !== null && !authorityPortValid(authority)) return malformed("authority_bad_port");
    }
    if (protocol !== null && (authority === null || authority === "")) return malformed("connect_without_authority");
  }
  if (authority !== null) {
    for (let j = regularStart; j < fields.length; j += 2) {
      if (fields[j] === "host" && fields[j + 1].toLowerCase() !== authority.toLowerCase()) return malformed("host_authority_mismatch");
    }
  }
  return { method, scheme, authority, path, protocol, contentLength: cl.value, regularStart };
}

/**
 * Checks a response header list (§8.3.2): exactly one :status of three
 * digits in 100..599 other than 101 (§8.6: no Upgrade in HTTP/2), no
 * request pseudo-headers, then the regular-field checks.
 */
export function validateResponseHeaders(fields: readonly string[], checked = false): ResponseHead | H2Error {
  let status = -1;
  let i = 0;
  for (; i < fields.length; i += 2) {
    const name = fields[i];
    if (name.charCodeAt(0) !== 0x3a) break;
    if (name !== ":status") return malformed(REQUEST_PSEUDO.has(name) ? "request_pseudo_header_in_response" : "unknown_pseudo_header");
    if (status !== -1) return malformed("duplicate_pseudo_header");
    const v = fields[i + 1];
    status = v.length === 3 ? parseContentLength(v) : -1;
    if (status < 100 || status > 599 || status === 101) return malformed("bad_status");
  }
  if (status === -1) return malformed("missing_status");
  const cl = { value: -1 };
  const bad = checkRegular(fields, i, cl, checked);
  if (bad) return bad;
  return { status, contentLength: cl.value, regularStart: i };
}

const REQUEST_PSEUDO = new Set([":method", ":scheme", ":authority", ":path", ":protocol"]);

/** Checks a trailer list (§8.1): no pseudo-headers at all, then the regular-field checks. Null when valid. */
export function validateTrailers(fields: readonly string[], checked = false): H2Error | null {
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i].charCodeAt(0) === 0x3a) return malformed("pseudo_header_in_trailers");
  }
  return checkRegular(fields, 0, { value: -1 }, checked);
}

/** RFC 9110 token (method names keep their case). */
function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c >= 128 || NAME_CHAR[c] === 0) return false;
  }
  return true;
}
