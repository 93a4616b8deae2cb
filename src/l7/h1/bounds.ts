/**
 * The HTTP/1.1 codec's limits as one object (values and reasons: src/limits.ts).
 * Parse functions take an `H1Limits` (default `H1_DEFAULT_LIMITS`); build a
 * custom one once with `{ ...H1_DEFAULT_LIMITS, maxHeaders: 50 }`, not per call.
 */
import { H1_MAX_CHUNK_LINE, H1_MAX_EMPTY_LINES, H1_MAX_HEAD_BYTES, H1_MAX_HEADERS, H1_MAX_TRAILER_BYTES, H1_MAX_TRAILERS } from "../../limits.ts";

export { H1_MAX_CHUNK_LINE, H1_MAX_EMPTY_LINES, H1_MAX_HEAD_BYTES, H1_MAX_HEADERS, H1_MAX_TRAILER_BYTES, H1_MAX_TRAILERS };


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
