/**
 * Writes HTTP/1.1 heads (always `HTTP/1.1`) from a flat [name, value, …]
 * list into one Uint8Array: one latin1 string, one `Buffer.from`.
 *
 * Every method, target, name and value is checked before it is written
 * (a hoisted regex per field, ~5 ns): the inputs may come from an HTTP/2
 * client, and a CR, LF or a char above U+00FF (which latin1 truncates, U+010A
 * → LF) would otherwise split the message — request smuggling by downgrade.
 * A bad input returns an error value (status 400 for requests: the client
 * sent it; 502 for responses: the backend did) and nothing is written.
 */
import { isFieldName, isFieldValue } from "./bytes.ts";
import { type H1Error, h1Error } from "./errors.ts";

const NOT_TARGET = /[^\x21-\x7e]/;
const NOT_REASON = /[^\t\x20-\x7e\x80-\xff]/;

/** `method SP target SP HTTP/1.1 CRLF`, the fields, CRLF. */
export function serializeRequestHead(method: string, target: string, headers: readonly string[]): Uint8Array | H1Error {
  if (!isFieldName(method)) return h1Error("invalid_method", 400);
  if (target.length === 0 || NOT_TARGET.test(target)) return h1Error("invalid_target", 400);
  return finish(method + " " + target + " HTTP/1.1\r\n", headers, 400);
}

/** `HTTP/1.1 SP status SP reason CRLF`, the fields, CRLF. `status` must be 100–999. */
export function serializeResponseHead(status: number, reason: string, headers: readonly string[]): Uint8Array | H1Error {
  if (!Number.isInteger(status) || status < 100 || status > 999) return h1Error("invalid_status", 502);
  if (NOT_REASON.test(reason)) return h1Error("invalid_status", 502);
  return finish("HTTP/1.1 " + status + " " + reason + "\r\n", headers, 502);
}

function finish(startLine: string, headers: readonly string[], status: 400 | 502): Uint8Array | H1Error {
  let s = startLine;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    if (!isFieldName(name)) return h1Error("invalid_header_name", status);
    if (!isFieldValue(value)) return h1Error("invalid_header_value", status);
    s += name + ": " + value + "\r\n";
  }
  return Buffer.from(s + "\r\n", "latin1");
}
