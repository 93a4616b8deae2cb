/**
 * Writes HTTP/1.1 heads (always `HTTP/1.1`) from a flat [name, value, …]
 * list into one exactly-sized Uint8Array.
 *
 * Every method, target, name and value is checked as it is copied, one char
 * at a time in the same pass: the inputs may come from an HTTP/2 client, and a
 * CR, LF or a char above U+00FF (latin1 would truncate U+010A to LF) would
 * otherwise split the message — request smuggling by downgrade. A bad input
 * returns an error value (status 400 for requests: the client sent it; 502 for
 * responses: the backend did) and nothing is written.
 *
 * Measured on Bun 1.4.4 for a 5-field head: this loop ~150 ns; a concatenated
 * string plus `Buffer.from(s, "latin1")` ~500 ns (rope flattening) plus a
 * regex per field ~200 ns.
 */
import { CR, FIELD_VCHAR, HTAB, LF, SP, TARGET_CHAR, TOKEN } from "./bytes.ts";
import { type H1Error, type H1ErrorReason, h1Error } from "./errors.ts";

/** `method SP target SP HTTP/1.1 CRLF`, the fields, CRLF. */
export function serializeRequestHead(method: string, target: string, headers: readonly string[]): Uint8Array | H1Error {
  const out = Buffer.allocUnsafe(method.length + target.length + 12 + fieldsLength(headers));
  let p = copyToken(out, 0, method);
  if (p < 0 || method.length === 0) return h1Error("invalid_method", 400);
  out[p++] = SP;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c > 0x7e || TARGET_CHAR[c] !== 1) return h1Error("invalid_target", 400);
    out[p++] = c;
  }
  if (target.length === 0) return h1Error("invalid_target", 400);
  p = copyLatin1(out, p, " HTTP/1.1\r\n");
  const r = copyFields(out, p, headers);
  return typeof r === "string" ? h1Error(r, 400) : out;
}

/** `HTTP/1.1 SP status SP reason CRLF`, the fields, CRLF. `status` must be 100–999. */
export function serializeResponseHead(status: number, reason: string, headers: readonly string[]): Uint8Array | H1Error {
  if (!Number.isInteger(status) || status < 100 || status > 999) return h1Error("invalid_status", 502);
  const out = Buffer.allocUnsafe(15 + reason.length + fieldsLength(headers));
  let p = copyLatin1(out, 0, "HTTP/1.1 ");
  out[p++] = 0x30 + Math.floor(status / 100);
  out[p++] = 0x30 + (Math.floor(status / 10) % 10);
  out[p++] = 0x30 + (status % 10);
  out[p++] = SP;
  for (let i = 0; i < reason.length; i++) {
    const c = reason.charCodeAt(i);
    if (c > 0xff || (FIELD_VCHAR[c] !== 1 && c !== SP && c !== HTAB)) return h1Error("invalid_status", 502);
    out[p++] = c;
  }
  out[p++] = CR;
  out[p++] = LF;
  const r = copyFields(out, p, headers);
  return typeof r === "string" ? h1Error(r, 502) : out;
}

/** Bytes of `name: value\r\n` for every field plus the final CRLF. */
function fieldsLength(headers: readonly string[]): number {
  let n = 2;
  for (let i = 0; i < headers.length; i++) n += headers[i].length;
  return n + (headers.length >> 1) * 4;
}

/** Copies the fields and the final CRLF (filling `out` exactly); returns the end offset or the reason a field is bad. */
function copyFields(out: Uint8Array, p: number, headers: readonly string[]): number | H1ErrorReason {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    p = copyToken(out, p, name);
    if (p < 0 || name.length === 0) return "invalid_header_name";
    out[p++] = 0x3a;
    out[p++] = SP;
    const n = value.length;
    if (n > 0) {
      const first = value.charCodeAt(0);
      const last = value.charCodeAt(n - 1);
      if (first === SP || first === HTAB || last === SP || last === HTAB) return "invalid_header_value";
    }
    for (let k = 0; k < n; k++) {
      const c = value.charCodeAt(k);
      if (c > 0xff || (FIELD_VCHAR[c] !== 1 && c !== SP && c !== HTAB)) return "invalid_header_value";
      out[p++] = c;
    }
    out[p++] = CR;
    out[p++] = LF;
  }
  out[p++] = CR;
  out[p++] = LF;
  return p;
}

/** Copies token `s` into out at p; returns the new offset, or -1 on a non-token char. */
function copyToken(out: Uint8Array, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7e || TOKEN[c] !== 1) return -1;
    out[p++] = c;
  }
  return p;
}

function copyLatin1(out: Uint8Array, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[p++] = s.charCodeAt(i);
  return p;
}
