/**
 * HTTP/2 error codes (RFC 9113 §7) and the one error value every h2 codec
 * returns. Pure data: nothing here throws.
 *
 * Scope follows RFC 9113 §5.4: a `connection` error ends the connection with
 * GOAWAY(code); a `stream` error resets one stream with RST_STREAM(code) and
 * the connection goes on. `reason` is a short snake_case tag for logs and
 * metrics ("pad_too_long", "hpack_bad_index"), never shown to the peer.
 */

/** RFC 9113 §7 error codes. */
export const H2_ERROR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** A known error code; a peer may send others (they mean INTERNAL_ERROR, §7), so wire fields stay `number`. */
export type H2ErrorCode = (typeof H2_ERROR)[keyof typeof H2_ERROR];

export type H2ErrorScope = "connection" | "stream";

/**
 * Why a frame, header block or header list was refused. A plain value (not an
 * Error: no stack is captured, so a peer that provokes thousands of stream
 * errors costs nothing extra). Test with `instanceof H2Error`.
 */
export class H2Error {
  constructor(
    readonly scope: H2ErrorScope,
    readonly code: H2ErrorCode,
    readonly reason: string,
  ) {}

  toString(): string {
    return `h2 ${this.scope} error ${errorCodeName(this.code)}: ${this.reason}`;
  }
}

/** Connection error shorthand. */
export function connError(code: H2ErrorCode, reason: string): H2Error {
  return new H2Error("connection", code, reason);
}

/** Stream error shorthand. */
export function streamError(code: H2ErrorCode, reason: string): H2Error {
  return new H2Error("stream", code, reason);
}

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(H2_ERROR).map(([k, v]) => [v, k]));

/** "PROTOCOL_ERROR" for 1; "0x2a" for codes RFC 9113 does not define. */
export function errorCodeName(code: number): string {
  return NAMES[code] ?? `0x${code.toString(16)}`;
}
