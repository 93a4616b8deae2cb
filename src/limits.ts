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

// ---------------------------------------------------------------- file descriptors (src/net/fds.ts)

/** Descriptors kept free near RLIMIT_NOFILE: accept() must never meet EMFILE (Bun's accept loop then spins at 100 % CPU), and admitted connections still need their dials. At least this many… */
export const FD_RESERVE_MIN = 64;
/** …or this share of the limit if more (6553 of 65536): L7 backend sockets opened between two readings come out of it. */
export const FD_RESERVE_FRACTION = 0.1;
/** /proc/self/fd is read at most this often (a stat() on Linux ≥ 6.2): a quarter second of accepts is counted by the estimate below. */
export const FD_MEASURE_MS = 250;
/** Reading /proc/self/fd (a directory read on kernels before 6.2) may take at most this share of one core; past it, readings space out. */
export const FD_MEASURE_MAX_CPU_SHARE = 0.02;
/** Descriptors a client connection accepted since the last reading is assumed to cost: its own and its backend's. */
export const FD_PER_CONNECTION = 2;
/** `server.fd_exhausted` is logged at most this often (with counts), however many connections are refused. */
export const FD_WARN_INTERVAL_MS = 1000;

// ---------------------------------------------------------------- L7 front (HTTP/1.1; HTTP/2 below)

/** HTTP/1.1: pipelined request bytes buffered while a response is written before the socket is paused. */
export const H1_PIPELINE_MAX_BYTES = 64 * 1024;
/** HTTP/1.1: response bytes the client socket has not taken before the backend is paused (HAProxy's tune.bufsize order). */
export const H1_RESPONSE_HIGH_WATER_BYTES = 64 * 1024;
/** After we end a connection (408, drain, close_notify), the socket is destroyed this long later whatever the client does. */
export const L7_CLOSE_GRACE_MS = 1000;
/** Largest certificate, key or CA file read (a chain of a few certificates is ~10 KB). */
export const PEM_FILE_MAX_BYTES = 1024 * 1024;
/** Informational (1xx) heads relayed per response; a backend sending more has the rest dropped (the 504 still counts from the request's end). */
export const L7_MAX_INFORMATIONAL_HEADS = 16;
/** Longest L7 policy value (a User-Agent substring or a header name), in characters: longer ones could only be typos or abuse of the database. */
export const L7_POLICY_VALUE_MAX_CHARS = 1024;

// ---------------------------------------------------------------- L7 backends

/** HTTP/2 connections per backend target: streams are multiplexed, a second connection opens only when the peer's MAX_CONCURRENT_STREAMS is reached. */
export const BACKEND_H2_MAX_CONNECTIONS = 16;
/** Times a request refused unprocessed by an HTTP/2 backend (REFUSED_STREAM, above a GOAWAY's last stream id) is sent again before 502. */
export const BACKEND_H2_REFUSED_RETRIES = 3;
/**
 * A request body up to this many bytes is kept (copied) until the HTTP/2
 * backend's response head arrives, so that a request the backend refused
 * unprocessed can be sent again with its body (nginx refuses the streams in
 * flight when it ends a connection at keepalive_requests; gRPC unary calls
 * are POSTs). A longer body is not kept: its refusal is 502. At most this
 * per stream, so H2_MAX_CONCURRENT_STREAMS × this per client connection.
 * HAProxy's L7 retries likewise need the request whole in its 16 KiB buffer.
 */
export const BACKEND_H2_RETRY_BODY_BYTES = 16 * 1024;
/** Stream window we give HTTP/2 backends: what one slow client can make us hold of its response (HAProxy: 64 KiB); connection credit is returned on receipt. */
export const BACKEND_H2_STREAM_WINDOW_BYTES = 64 * 1024;
/** HTTP/1.1 connections per backend address (one per request in flight); past this, requests wait (H1_CLIENT_MAX_QUEUED). */
export const BACKEND_H1_MAX_SOCKETS = 256;
/** `backend_protocol = auto` in cleartext: a backend silent this long after our h2 preface is taken for HTTP/1.1 (capped by connect_timeout). */
export const BACKEND_PROBE_ANSWER_MS = 2000;

// ---------------------------------------------------------------- firewall and metrics

/** Clients the rate limiter tracks at once (175–245 B each, measured: ≤ ~25 MB); when full of live clients, new ones share one overflow budget. */
export const RATE_LIMIT_MAX_TRACKED = 100_000;
/** The limiter's expiry sweep runs every window, but not more often than this (a short window must not spin a timer). */
export const RATE_LIMIT_MIN_SWEEP_MS = 1000;
/** Shared (multi-worker) rate-limit table: a client is looked for within this many slots of its hash (open addressing); none free there → the overflow budget. */
export const RATE_LIMIT_PROBE_SLOTS = 32;
/** Label sets per metric: a bound on memory whatever a client sends (hostnames, statuses). */
export const METRICS_MAX_SERIES = 10_000;

// ---------------------------------------------------------------- admin

/** A unix socket whose server does not answer within this is taken to be alive (we refuse to unlink it). */
export const ADMIN_SOCKET_PROBE_MS = 1000;
/** gRPC server shutdown waits this long for calls in flight before forcing. */
export const ADMIN_FORCE_SHUTDOWN_MS = 2000;

// ---------------------------------------------------------------- HTTP/1.1 codec (RFC 9112)

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

// ---------------------------------------------------------------- HTTP/1.1 backend pool

/** Requests waiting for a connection per backend once all its connections are busy: a burst of 4× the socket cap, then fail fast (EPOOLFULL) instead of queueing without bound. */
export const H1_CLIENT_MAX_QUEUED = 4 * BACKEND_H1_MAX_SOCKETS;
/** Idle sweeps run at a quarter of idleTimeoutMs (eviction within 125% of it), but not more often than this… */
export const H1_CLIENT_SWEEP_MIN_MS = 20;
/** …nor less often than this, so a long idle timeout is still honoured to within a second. */
export const H1_CLIENT_SWEEP_MAX_MS = 1000;
/**
 * Idle HTTP/1.1 backend connections beyond what traffic uses are closed
 * progressively, as HAProxy does (`pool-purge-delay`, default 5 s): every
 * H1_IDLE_PURGE_MS, half of the connections of a backend that stayed idle
 * that whole period — past the first H1_IDLE_PURGE_KEEP — are closed, oldest
 * first. A burst that opened hundreds (one per request in flight) no longer
 * holds them, and the backend's worker slots, for idle_timeout (default 5 min);
 * a steady load keeps every connection it uses, and a quiet backend keeps a
 * few warm ones until idle_timeout.
 */
export const H1_IDLE_PURGE_MS = 5000;
export const H1_IDLE_PURGE_KEEP = 4;

// ---------------------------------------------------------------- HTTP/2 session (RFC 9113)

/** SETTINGS_MAX_CONCURRENT_STREAMS we advertise: RFC 9113 §6.5.2 recommends at least 100; browsers rarely use more. */
export const H2_MAX_CONCURRENT_STREAMS = 100;
/** What a client assumes of the server's MAX_CONCURRENT_STREAMS until its SETTINGS arrive (the RFC's "unlimited" would let us flood it). */
export const H2_ASSUMED_PEER_MAX_CONCURRENT_STREAMS = 100;
/** Our per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE): the most one stream can make us hold when its reader is slow. */
export const H2_STREAM_WINDOW_BYTES = 256 * 1024;
/** Our connection receive window: the most all streams of one connection can make us hold together. */
export const H2_CONNECTION_WINDOW_BYTES = 1024 * 1024;
/**
 * Server role: after a complete response while the request body is still
 * coming (RFC 9113 §8.1), the rest of the body is read and dropped (its
 * window credited) for at most this long, then RST_STREAM(NO_ERROR) asks the
 * client to stop. Resetting at once is allowed, but curl (7.88, Debian 12)
 * then discards the response, e.g. a backend's early 413; HAProxy reads on.
 * Costs bandwidth only, like any upload; bounded in time like nginx's
 * lingering close.
 */
export const H2_DISCARD_AFTER_RESPONSE_MS = 10_000;
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
/** A WINDOW_UPDATE smaller than this is counted (`smallWindowUpdates`); not a glitch, as peers legitimately credit back small DATA frames one by one. */
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
/** Initial capacity: one default-size frame plus its header fits without growing. */
export const H2_WRITER_INITIAL_BYTES = 16 * 1024 + 9;
/** `reset()` drops a buffer grown beyond this, so one burst does not pin memory for the connection's life. */
export const H2_WRITER_RETAIN_BYTES = 256 * 1024;
/** Compressed header block cap (HEADERS + CONTINUATIONs): 4× the default header-list cap, so legal lists always fit and the decoding work per block stays bounded. */
export const H2_MAX_HEADER_BLOCK_BYTES = 64 * 1024;
/** CONTINUATION frames allowed after one HEADERS: nghttp2's default; floods of tiny CONTINUATIONs (CVE-2024-27316 class) hit this first. */
export const H2_MAX_CONTINUATION_FRAMES = 8;
/** Longest content-length accepted: 15 digits stay below 2^53, so the value is exact as a JS number. */
export const H2_MAX_CONTENT_LENGTH_DIGITS = 15;
/** Largest dynamic table we advertise or use, per direction: each costs up to this much memory per connection. */
export const H2_HPACK_MAX_TABLE_SIZE = 64 * 1024;
/**
 * HPACK decoder: literal values after a static-table name are remembered per
 * name (one per static index) when their encoded form is at most this long,
 * so a peer that repeats a value without indexing it (nginx sends every
 * response head as literals) costs a byte compare, not a decode. Bounds the
 * cache at 61 × this per connection.
 */
export const H2_HPACK_LITERAL_CACHE_BYTES = 64;
/** Largest header block the HPACK encoder keeps to repeat when the same fields come again with the table unchanged. */
export const H2_HPACK_BLOCK_MEMO_BYTES = 1024;
/**
 * Largest header block the HPACK decoder remembers with its header list: the
 * same octets again, with the dynamic table unchanged, give the same list
 * (a client repeating a request, a server repeating a response head, sends
 * all-indexed or non-indexed blocks). Bounds the copy kept per connection.
 */
export const H2_HPACK_DECODE_MEMO_BYTES = 256;

/**
 * An HTTP/1.1 backend connection remembers the last value after each
 * interned header name up to this long: the backend's next head repeating it
 * (nginx repeats all but Date) reuses the same string, whose hash the HPACK
 * encoder already has (~0.8 µs per HTTP/2 response head). At most one value
 * per interned name per connection.
 */
export const H1_VALUE_MEMO_BYTES = 64;

/**
 * The connections of an HTTP/1.1 backend keep a copy of their last response
 * head up to this size, with what it parsed to: a next head with exactly those bytes
 * (the same method, the same parse mode) reuses the result instead of being
 * parsed again (a native compare, ~60 ns, against ~0.7–1 µs for nginx's
 * 8-field head), and its strings, which the HPACK encoder has seen.
 */
export const H1_HEAD_MEMO_BYTES = 1024;

/**
 * An L7 client connection keeps the last request head it had serialized for
 * an HTTP/1.1 backend (from HTTP/2, or a head that could not pass through)
 * up to this size, with its inputs: the next request with the same method,
 * path, authority, framing and fields reuses the bytes.
 */
export const H1_REQUEST_HEAD_MEMO_BYTES = 2048;
/**
 * Response field lists from HTTP/2 backends, as the client gets them,
 * remembered by the identity of the decoder's list (ClientFieldsMemo in
 * src/l7/headers.ts): one entry per backend connection answering at the same
 * time, for this many. A list of at most H2_HPACK_DECODE_MEMO_BYTES' fields each.
 */
export const H2_RESPONSE_FIELDS_MEMO_ENTRIES = 4;
/**
 * The same for an HTTP/2 backend: an L7 client connection keeps the last
 * field list it built for one (names and values up to this many octets)
 * with its inputs, and the next request with the same inputs reuses it.
 */
export const H2_REQUEST_FIELDS_MEMO_BYTES = 2048;
/**
 * An HTTP/1.1 client connection keeps a copy of its last request head up to
 * this size with what it parsed to: the next head with exactly those bytes
 * reuses the result (a byte compare instead of a parse). At most this many
 * bytes per connection.
 */
export const H1_REQUEST_HEAD_PARSE_MEMO_BYTES = 1024;
/** Default SETTINGS_MAX_HEADER_LIST_SIZE we enforce (name + value + 32 per field): browsers stay far below, abuse does not. */
export const H2_MAX_HEADER_LIST_BYTES = 16 * 1024;

// ---------------------------------------------------------------- workers (src/server/workers.ts)

/** A worker must bind its listeners and report ready within this, or start-up fails. */
export const WORKER_START_TIMEOUT_MS = 15_000;
/** An admin change, a reload or a metrics scrape waits at most this for each worker's answer. */
export const WORKER_CALL_TIMEOUT_MS = 5_000;
/** A worker that dies is replaced; more than this many deaths within WORKER_RESTART_WINDOW_MS and the process exits 1 (a crash loop is not service). */
export const WORKER_MAX_RESTARTS = 5;
export const WORKER_RESTART_WINDOW_MS = 60_000;

/**
 * Backend dials made with `Bun.connect` (which cannot be aborted) in flight
 * per data-path thread; beyond it dials use the abortable path. Bounds the
 * descriptors a backend that goes dark can pin (each until the kernel's SYN
 * timeout, ~2 min) — see src/l7/h1/dial.ts. Loopback and LAN dials complete
 * in well under a millisecond, so a healthy backend never comes near it.
 */
export const FAST_DIAL_MAX_PENDING = 64;

// ---------------------------------------------------------------- internal errors

/**
 * `server.handler_exception` lines (a socket handler threw: a bug, see
 * src/net/socket-error.ts): at most this many at once, then
 * HANDLER_EXCEPTION_LOG_PER_MINUTE; the rest are counted in the next line's
 * `suppressed`. A bug that hostile input can trigger on every connection must
 * not become a log flood (each line carries a stack).
 */
export const HANDLER_EXCEPTION_LOG_BURST = 10;
export const HANDLER_EXCEPTION_LOG_PER_MINUTE = 10;
