/**
 * HTTP/1.1 codec errors are values: a reason code for logs and metrics and the
 * status the front should answer with. Errors found in a backend response
 * carry 502 (the proxy's answer to its client), whatever the reason.
 */

export type H1ErrorReason =
  // line structure (RFC 9112 §2.2, §5.2)
  | "bare_lf" // LF not preceded by CR
  | "bare_cr" // CR not followed by LF
  | "obs_fold" // field line starting with SP/HTAB
  | "too_many_empty_lines" // more CRLFs before the request line than H1_MAX_EMPTY_LINES
  // start line (§3, §4)
  | "invalid_method"
  | "invalid_target"
  | "target_too_long" // request line alone exceeds the head limit
  | "invalid_version" // not HTTP/DIGIT.DIGIT
  | "unsupported_version" // HTTP/x.y other than 1.0 / 1.1
  | "connect_unsupported" // CONNECT: the proxy does not tunnel
  | "invalid_status"
  // fields (§5, RFC 9110 §5)
  | "space_before_colon"
  | "invalid_header_name"
  | "invalid_header_value"
  | "head_too_large"
  | "too_many_headers"
  | "missing_host"
  | "empty_host"
  | "duplicate_host"
  | "invalid_host"
  // framing (§6)
  | "cl_and_te"
  | "duplicate_cl"
  | "invalid_cl"
  | "invalid_te" // chunked not final, or applied twice
  | "unsupported_te" // a coding other than chunked
  | "te_in_http10"
  // chunked body (§7.1)
  | "invalid_chunk"
  | "chunk_line_too_long"
  | "trailers_too_large"
  | "too_many_trailers";

export type H1ErrorStatus = 400 | 413 | 414 | 431 | 501 | 502 | 505;

export interface H1Error {
  readonly kind: "error";
  readonly reason: H1ErrorReason;
  readonly status: H1ErrorStatus;
}

export function h1Error(reason: H1ErrorReason, status: H1ErrorStatus): H1Error {
  return { kind: "error", reason, status };
}

/** The answer while the bytes so far are a valid prefix of a head; shared, never mutated. */
export interface NeedMore {
  readonly kind: "more";
}
export const NEED_MORE: NeedMore = Object.freeze({ kind: "more" });
