/**
 * Every tunable that is not a config key, in one place, each with the reason
 * for its value (caddy-l4's `MaxMatchingBytes`, HAProxy's `tune.*`). Config
 * keys and their defaults live in `config/defaults.ts`; protocol constants
 * fixed by an RFC stay beside the code that implements them.
 *
 * Rule: a buffer, count, table or timer in the data path is bounded by a
 * constant from this file (or by a config key), never by nothing.
 */

// ---------------------------------------------------------------- pipeline

/** The server's sweeper runs at a tenth of the shortest hello/connect deadline, but never more often than this: deadlines are only checked, not timed per connection. */
export const SWEEP_MIN_MS = 20;
/** …and never less often than this, so idle and drain checks stay within a quarter second. */
export const SWEEP_MAX_MS = 250;
/** First allocation for a PROXY header being accumulated; doubles as bytes arrive (v1 is ≤ 107 bytes, v2 usually < 256). */
export const PROXY_HEADER_INITIAL_BYTES = 256;
/** First allocation for the ClientHello's handshake bytes; doubles up to `hello_max_bytes` (a typical hello takes one or two). */
export const HELLO_BUFFER_INITIAL_BYTES = 256;

// ---------------------------------------------------------------- L7 front

/** Request head cap: HTTP/1.1 header section (→ 431) and HTTP/2 header list (SETTINGS_MAX_HEADER_LIST_SIZE); HAProxy's tune.bufsize is 16 KiB. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** SETTINGS_MAX_CONCURRENT_STREAMS we advertise (HAProxy 100, nginx 128); Bun's default is 2^32-1. */
export const H2_MAX_CONCURRENT_STREAMS = 100;
/** Initial stream window we advertise: 1 MiB keeps a 10 ms RTT upload at 100 MB/s without holding more per stream. */
export const H2_INITIAL_WINDOW_BYTES = 1 << 20;
/** Streams refused for exceeding the concurrency cap before the session gets GOAWAY ENHANCE_YOUR_CALM (Bun honours it, measured). */
export const H2_MAX_REJECTED_STREAMS = 100;
/** Invalid frames tolerated per session (node's default, stated so a Bun that honours it keeps a sane value). */
export const H2_MAX_INVALID_FRAMES = 1000;
/** Unanswered PINGs we may have outstanding (node's default). */
export const H2_MAX_OUTSTANDING_PINGS = 10;
/** SETTINGS frames awaiting our ACK (node's default). */
export const H2_MAX_SETTINGS = 32;
/** HTTP/1.1: pipelined request bytes buffered while a response is written before the socket is paused. */
export const H1_PIPELINE_MAX_BYTES = 64 * 1024;
/** HTTP/1.1: response bytes the client socket has not taken before the backend is paused (HAProxy's tune.bufsize order). */
export const H1_RESPONSE_HIGH_WATER_BYTES = 64 * 1024;
/** After we end a connection (408, drain, close_notify), the socket is destroyed this long later whatever the client does. */
export const L7_CLOSE_GRACE_MS = 1000;
/** Bytes buffered above TLS towards one client before response producers pause (BUN-NOTES: Bun's TLS over a Duplex ignores backpressure). */
export const DUPLEX_OUT_BUFFER_MAX = 1 << 20;
/** Small writes are batched per event-loop turn up to this many bytes (one full TLS record). */
export const DUPLEX_COALESCE_MAX = 16 * 1024;

// ---------------------------------------------------------------- L7 backends

/** Streams we open on one backend h2 connection before the peer's SETTINGS arrive (RFC 9113 recommends assuming ≥ 100). */
export const BACKEND_H2_DEFAULT_MAX_STREAMS = 100;
/** HTTP/1.1 connections per backend address; past this, requests wait for a free one. */
export const BACKEND_H1_MAX_SOCKETS = 256;
/** Idle HTTP/1.1 connections kept per backend: as many as busy ones, or a burst of completions closes the surplus and the next burst reconnects (measured). */
export const BACKEND_H1_MAX_FREE_SOCKETS = BACKEND_H1_MAX_SOCKETS;
/** `backend_protocol = auto` in cleartext: a backend silent this long after our h2 preface is taken for HTTP/1.1 (capped by connect_timeout). */
export const BACKEND_PROBE_ANSWER_MS = 2000;

// ---------------------------------------------------------------- firewall and metrics

/** Clients the rate limiter tracks at once (175–245 B each, measured: ≤ ~25 MB); when full of live clients, new ones share one overflow budget. */
export const RATE_LIMIT_MAX_TRACKED = 100_000;
/** The limiter's expiry sweep runs every window, but not more often than this (a short window must not spin a timer). */
export const RATE_LIMIT_MIN_SWEEP_MS = 1000;
/** Label sets per metric: a bound on memory whatever a client sends (hostnames, statuses). */
export const METRICS_MAX_SERIES = 10_000;

// ---------------------------------------------------------------- admin

/** A unix socket whose server does not answer within this is taken to be alive (we refuse to unlink it). */
export const ADMIN_SOCKET_PROBE_MS = 1000;
/** gRPC server shutdown waits this long for calls in flight before forcing. */
export const ADMIN_FORCE_SHUTDOWN_MS = 2000;
