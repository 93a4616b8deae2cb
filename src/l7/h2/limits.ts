/**
 * Every limit of the HTTP/2 session engine, with its reason (the codec's own
 * caps — frame size, header block, CONTINUATION count, header list — live in
 * frame.ts and hpack.ts). Pure: constants and one token bucket.
 */

/** SETTINGS_MAX_CONCURRENT_STREAMS we advertise: RFC 9113 §6.5.2 recommends at least 100; browsers rarely use more. */
export const H2_MAX_CONCURRENT_STREAMS = 100;
/** What a client assumes of the server's MAX_CONCURRENT_STREAMS until its SETTINGS arrive (the RFC's "unlimited" would let us flood it). */
export const H2_ASSUMED_PEER_MAX_CONCURRENT_STREAMS = 100;
/** Our per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE): the most one stream can make us hold when its reader is slow. */
export const H2_STREAM_WINDOW_BYTES = 256 * 1024;
/** Our connection receive window: the most all streams of one connection can make us hold together. */
export const H2_CONNECTION_WINDOW_BYTES = 1024 * 1024;
/** Bytes one stream may queue for sending before write() says "pause": a peer that never opens its window costs at most this per stream. */
export const H2_STREAM_SEND_BUFFER_BYTES = 64 * 1024;
/**
 * …but while the peer's stream window is smaller than that, write() says
 * "pause" at max(this, the window): a slow reader (SETTINGS_INITIAL_WINDOW_SIZE
 * 0, a window never reopened) makes us hold one frame's worth per stream,
 * not H2_STREAM_SEND_BUFFER_BYTES (50 such streams: 0.8 MiB, not 3.2 MiB).
 */
export const H2_STREAM_SEND_BUFFER_MIN_BYTES = 16 * 1024;
/** DATA pulled from stream queues per write: one socket write (≈ four TLS records) without holding much when the socket is slow. */
export const H2_OUTPUT_BATCH_BYTES = 64 * 1024;
/** Recently closed stream ids remembered, to tell "in flight after our RST_STREAM" (ignore) from "after END_STREAM" (STREAM_CLOSED). */
export const H2_CLOSED_STREAMS_KEPT = 256;
/** Streams refused for exceeding MAX_CONCURRENT_STREAMS over a connection's life before GOAWAY ENHANCE_YOUR_CALM (the limit a well-behaved client never hits twice). */
export const H2_MAX_REFUSED_STREAMS = 100;
/** ACKs/RST_STREAMs queued while the peer is not reading our output: past this it is flooding us (nghttp2's max outbound flood items). */
export const H2_MAX_QUEUED_CONTROL_FRAMES = 1000;
/** A WINDOW_UPDATE smaller than this is a glitch: trickled credit makes us send tiny DATA frames (framing overhead, CPU). */
export const H2_SMALL_WINDOW_UPDATE_BYTES = 1024;

/**
 * "Glitches": frames that cost us work and give the application nothing —
 * PING, SETTINGS, PRIORITY, empty DATA, small WINDOW_UPDATE, unknown frame
 * types, refused or malformed streams (HAProxy's glitch counter). Each takes
 * a token; an empty bucket closes the connection with ENHANCE_YOUR_CALM.
 * A browser spends a few per page; a flood spends the burst in milliseconds.
 */
export const H2_GLITCH_BURST = 500;
/** Glitch tokens regained per second: long-lived healthy connections never run dry. */
export const H2_GLITCH_REFILL_PER_SECOND = 50;
/**
 * Rapid reset (CVE-2023-44487): streams the peer resets before we sent any
 * response head. Burst covers a browser cancelling a whole page of requests;
 * the refill is nghttp2's rate (33/s). Over it: GOAWAY ENHANCE_YOUR_CALM.
 */
export const H2_RAPID_RESET_BURST = 200;
export const H2_RAPID_RESET_REFILL_PER_SECOND = 33;

/** Our SETTINGS must be acknowledged within this (RFC 9113 §6.5.3, SETTINGS_TIMEOUT). */
export const H2_SETTINGS_TIMEOUT_MS = 10_000;
/** Graceful shutdown: wait this long for the PING that follows GOAWAY(2^31-1) before sending the real last stream id. */
export const H2_GOAWAY_PING_TIMEOUT_MS = 5_000;
/**
 * Data waiting and nothing sent for this long — the connection window stays
 * closed or the socket never drains: a peer that never opens its window or
 * never reads holds our buffers and streams; close it (ENHANCE_YOUR_CALM).
 * A stream window left closed alone is legitimate (a paused video) and costs
 * only H2_STREAM_SEND_BUFFER_BYTES, so it does not count.
 */
export const H2_SEND_STALL_TIMEOUT_MS = 30_000;

/** A token bucket on a millisecond clock: `take()` false once the burst is spent faster than the refill. */
export class RateBudget {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Spends one token at time `now`; false when none is left. */
  take(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
