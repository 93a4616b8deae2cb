/**
 * Every HTTP/1.1 codec limit, with why it has the value it has. Parse
 * functions take an `H1Limits` object (default `H1_DEFAULT_LIMITS`); build a
 * custom one once with `{ ...H1_DEFAULT_LIMITS, maxHeaders: 50 }`, not per call.
 */

/** Bytes of a head (start line, fields, blank line): Node's default and ≥ nginx's 4×8 KiB line cap in practice. */
export const H1_MAX_HEAD_BYTES = 16 * 1024;
/** Field lines in one head: SPEC §5 bounds the count as well as the size; browsers send ~20. */
export const H1_MAX_HEADERS = 100;
/** Empty lines tolerated before a request line: RFC 9112 §2.2 SHOULD ignore at least one (old clients add CRLF after a body). */
export const H1_MAX_EMPTY_LINES = 4;
/** Bytes of a chunk-size line incl. extensions and CRLF: extensions are ignored, so this only bounds wasted work. */
export const H1_MAX_CHUNK_LINE = 1024;
/** Bytes of a trailer section: gRPC trailers are ~100 bytes; they are buffered whole before parsing. */
export const H1_MAX_TRAILER_BYTES = 8 * 1024;
/** Field lines in a trailer section. */
export const H1_MAX_TRAILERS = 32;

export interface H1Limits {
  readonly maxHeadBytes: number;
  readonly maxHeaders: number;
  readonly maxEmptyLines: number;
  readonly maxChunkLine: number;
  readonly maxTrailerBytes: number;
  readonly maxTrailers: number;
}

export const H1_DEFAULT_LIMITS: H1Limits = Object.freeze({
  maxHeadBytes: H1_MAX_HEAD_BYTES,
  maxHeaders: H1_MAX_HEADERS,
  maxEmptyLines: H1_MAX_EMPTY_LINES,
  maxChunkLine: H1_MAX_CHUNK_LINE,
  maxTrailerBytes: H1_MAX_TRAILER_BYTES,
  maxTrailers: H1_MAX_TRAILERS,
});
