/**
 * HTTP/1.1 codec (RFC 9112): pure, incremental, no I/O. The L7 front parses
 * client requests with it, the backend client parses responses; both write
 * heads and chunked bodies with it. See README.md in this folder for the
 * design and the measurements behind it.
 *
 * Typical front loop over a connection's buffered bytes [start, end):
 *   const h = parseRequestHead(buf, start, end);
 *   if (h.kind === "more") wait; if (h.kind === "error") answer h.status, close;
 *   start += h.length; body: h.framing → LengthDecoder / ChunkedDecoder.push(...)
 */
export * from "./bounds.ts";
export * from "./errors.ts";
export { isFieldName, isFieldValue } from "./bytes.ts";
export * from "./head.ts";
export * from "./body.ts";
export * from "./serialize.ts";
