/**
 * Entry point of an L7 connection. The pipeline has peeked the ClientHello
 * and found an L7 route; we terminate TLS over the NativeSocketDuplex with
 * the route's certificate (chosen here from the SNI: node:tls ignores
 * SNICallback over a generic Duplex), then hand the TLS socket to ONE shared
 * node:http2 server (ALPN h2) or ONE shared node:http server (http/1.1 or no
 * ALPN). The HTTP/2 server uses only a 'stream' handler: a compat 'request'
 * listener breaks trailers (gRPC).
 */
import http from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { MinTls } from "../config/types.ts";
import { log } from "../obs/log.ts";
import { classifyTlsError, metrics, type TlsFailure } from "../obs/metrics.ts";
import type { CertPair } from "../tls/certs.ts";
import { L7Conn, type L7Context } from "./context.ts";
import type { NativeSocketDuplex } from "./duplex.ts";
import { kConn, onH1Request, onH2Stream } from "./front.ts";
import { handleUpgrade } from "./websocket.ts";
import {
  H2_INITIAL_WINDOW_BYTES,
  H2_MAX_CONCURRENT_STREAMS,
  H2_MAX_INVALID_FRAMES,
  H2_MAX_OUTSTANDING_PINGS,
  H2_MAX_REJECTED_STREAMS,
  H2_MAX_SETTINGS,
  L7_CLOSE_GRACE_MS,
  MAX_HEADER_BYTES,
} from "../limits.ts";

export type { L7Context } from "./context.ts";

// ---------------------------------------------------------------- TLS contexts

const contexts = new WeakMap<CertPair, { min: MinTls; ctx: tls.SecureContext }>();

/** One SecureContext per CertPair object (a SIGHUP reload replaces the object, so the cache follows). */
export function secureContextFor(cert: CertPair, min: MinTls): tls.SecureContext {
  const c = contexts.get(cert);
  if (c && c.min === min) return c.ctx;
  // minVersion must be on the context: Bun ignores it as a TLSSocket option.
  const ctx = tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem, minVersion: min === "1.3" ? "TLSv1.3" : "TLSv1.2" });
  contexts.set(cert, { min, ctx });
  return ctx;
}

/** A human reason for a failed handshake, from the OpenSSL/BoringSSL error. */
export function tlsFailureReason(e: unknown, min: MinTls): string {
  const err = e as { code?: string; reason?: string; message?: string } | null;
  const r = `${err?.reason ?? ""} ${err?.code ?? ""} ${err?.message ?? ""}`.toUpperCase();
  if (r.includes("UNSUPPORTED_PROTOCOL") || r.includes("VERSION")) return `no shared TLS version (minimum TLS ${min})`;
  if (r.includes("NO_SHARED_CIPHER")) return "no shared cipher suite";
  if (r.includes("NO_APPLICATION_PROTOCOL")) return "no shared ALPN protocol";
  if (r.includes("HTTP_REQUEST") || r.includes("WRONG_VERSION_NUMBER")) return "not a TLS handshake";
  if (r.includes("ECONNRESET") || r.includes("EPIPE")) return "client reset the connection during the handshake";
  if (r.includes("TIMEOUT")) return "handshake timed out";
  return err?.reason || err?.message || String(e);
}

// ---------------------------------------------------------------- shared HTTP servers

// Limits for hostile clients (src/limits.ts, ARCHITECTURE.md "L7 hardening"),
// each pinned by a test in test/l7harden. PING/SETTINGS floods and reset
// floods are capped by Bun itself at ~1000 (GOAWAY ENHANCE_YOUR_CALM).

let h2server: http2.Http2Server | null = null;
let h1server: http.Server | null = null;
// The session being created by h2server.emit('connection'); 'session' fires synchronously.
let connecting: L7Conn | null = null;

function getH2Server(): http2.Http2Server {
  if (h2server) return h2server;
  const s = http2.createServer({
    settings: { initialWindowSize: H2_INITIAL_WINDOW_BYTES, maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS, maxHeaderListSize: MAX_HEADER_BYTES },
    maxSessionRejectedStreams: H2_MAX_REJECTED_STREAMS,
    maxSessionInvalidFrames: H2_MAX_INVALID_FRAMES,
    maxOutstandingPings: H2_MAX_OUTSTANDING_PINGS,
    maxSettings: H2_MAX_SETTINGS,
  });
  s.on("session", (session: http2.ServerHttp2Session) => {
    const conn = connecting;
    (session as unknown as Record<symbol, L7Conn | null>)[kConn] = conn;
    if (conn) conn.h2session = session;
    session.on("error", () => {}); // the TLS socket's close handles cleanup
  });
  s.on("stream", onH2Stream);
  s.on("sessionError", () => {});
  return (h2server = s);
}

function getH1Server(): http.Server {
  if (h1server) return h1server;
  const s = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES });
  // Our idle sweep owns connection lifetime; node's request deadlines would cut long uploads.
  s.requestTimeout = 0;
  s.headersTimeout = 0;
  s.keepAliveTimeout = 0;
  s.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    headArrived(req.socket, res);
    onH1Request(req, res);
  });
  s.on("upgrade", (req: http.IncomingMessage, socket, head: Buffer) => {
    headArrived(req.socket, null);
    const conn = (req.socket as unknown as Record<symbol, L7Conn | undefined>)[kConn];
    if (!conn) return socket.destroy();
    handleUpgrade(conn, req, socket, head);
  });
  s.on("clientError", onH1ClientError);
  return (h1server = s);
}

/**
 * The HTTP/1.1 parser refused a request (malformed, smuggling attempt, head
 * too large): answer like Node's default handler — 431 for an oversized head,
 * 400 otherwise — then close, so nothing ambiguous ever reaches a backend.
 */
function onH1ClientError(e: Error & { code?: string }, socket: Duplex): void {
  if (socket.writableEnded) return void socket.destroy(); // we are already closing it (408)
  const conn = (socket as unknown as Record<symbol, L7Conn | undefined>)[kConn];
  const code = e.code ?? "";
  const status = code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
  if (conn) {
    log.info("l7.bad_request", { listener: conn.ctx.listenerAddr, sni: conn.ctx.sni, client: conn.ctx.client.address, status, reason: code || e.message });
  }
  if (!socket.writable || socket.destroyed) return void socket.destroy();
  // end(), not destroy(): destroy would drop the answer still in the TLS buffer.
  const text = status === 431 ? "Request Header Fields Too Large" : "Bad Request";
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${text.length + 1}\r\nConnection: close\r\n\r\n${text}\n`);
}

// ---------------------------------------------------------------- HTTP/1.1 request-head deadline

/**
 * Slowloris: a client that sends its request head one byte every few seconds
 * keeps the byte counters moving, so the idle sweep never fires, and Bun does
 * not apply node's `headersTimeout` to sockets handed over with
 * emit('connection') (measured: still open after 40 s). So every HTTP/1.1
 * request head must arrive whole within hello_timeout, counted from the end
 * of the TLS handshake (first request) or from its first byte (later
 * keep-alive requests; an idle keep-alive connection is the idle sweep's).
 */
interface HeadWait {
  /** Requests whose head arrived and whose response is not finished yet. */
  busy: number;
  /** Those requests' responses (graceful shutdown marks them `Connection: close`). */
  live: Set<http.ServerResponse>;
  /** No head is awaited any more (the connection was upgraded). */
  upgraded: boolean;
  /** When the awaited head started (0: not yet — no byte since `bytesAtIdle`). */
  startedAt: number;
  bytesAtIdle: number;
}
const kHead = Symbol("mc-proxy.headwait");

function headArrived(sock: unknown, res: http.ServerResponse | null): void {
  const h = (sock as Record<symbol, HeadWait | undefined>)[kHead];
  const conn = (sock as Record<symbol, L7Conn | undefined>)[kConn];
  if (!h || !conn) return;
  if (res === null) {
    h.upgraded = true;
    return;
  }
  h.busy++;
  h.live.add(res);
  if (conn.draining) res.setHeader("connection", "close");
  res.once("close", () => {
    h.live.delete(res);
    if (--h.busy > 0) return;
    h.startedAt = 0;
    h.bytesAtIdle = conn.duplex.bytesIn;
    if (conn.draining) conn.onDrain?.(); // the last response of a draining connection: close it now
  });
}

/**
 * One graceful-shutdown step for an HTTP/1.1 connection: responses not yet
 * started get `Connection: close`; once nothing is in flight and no new head
 * has begun to arrive, the connection is closed. A head that has begun is
 * served (with `Connection: close`) or ends in the head deadline's 408.
 * An upgraded (WebSocket) connection is left alone until the shutdown deadline.
 */
function drainH1(h: HeadWait, sock: tls.TLSSocket, duplex: NativeSocketDuplex): void {
  if (h.upgraded || sock.destroyed) return;
  for (const res of h.live) if (!res.headersSent) res.setHeader("connection", "close");
  if (h.busy > 0 || h.startedAt !== 0 || duplex.bytesIn > h.bytesAtIdle) return; // called again when the last response closes
  closeGently(sock, duplex);
}

/** TLS close_notify + FIN; the connection is gone within a second whatever the client does. */
function closeGently(sock: tls.TLSSocket, duplex: NativeSocketDuplex): void {
  if (sock.destroyed || !sock.writable) return void sock.destroy();
  sock.end();
  setTimeout(() => duplex.destroy(), L7_CLOSE_GRACE_MS).unref?.();
}

/** True when `h` awaits a head that has been arriving for longer than `limitMs`. */
function headLate(h: HeadWait, duplex: NativeSocketDuplex, now: number, limitMs: number): boolean {
  if (h.busy > 0 || h.upgraded) return false;
  if (h.startedAt === 0) {
    if (duplex.bytesIn > h.bytesAtIdle) h.startedAt = now;
    return false;
  }
  return now - h.startedAt >= limitMs;
}

// ---------------------------------------------------------------- idle and head deadlines

// No timer per connection: the server's sweeper calls L7Conn.tick with its
// clock; a connection whose byte counters did not move for limitMs is closed.
interface Watched {
  duplex: NativeSocketDuplex;
  seen: number;
  since: number;
  limitMs: number;
  expire: () => void;
  /** HTTP/1.1 connections: the request-head deadline (see HeadWait). */
  head?: { wait: HeadWait; limitMs: number; expire: () => void };
}
/** One check of a watched connection's deadlines; false once it expired (stop watching). */
function checkWatched(w: Watched, now: number): boolean {
  const seen = w.duplex.bytesIn + w.duplex.bytesOut;
  if (seen !== w.seen) {
    w.seen = seen;
    w.since = now;
  } else if (now - w.since >= w.limitMs) {
    w.expire();
    return false;
  }
  if (w.head && headLate(w.head.wait, w.duplex, now, w.head.limitMs)) {
    const expire = w.head.expire;
    w.head = undefined; // once; the idle check still bounds the goodbye
    expire();
  }
  return true;
}

// ---------------------------------------------------------------- entry

/**
 * Serves one client connection whose ClientHello is still unread in `duplex`.
 * Calls `ctx.onClose` exactly once, when the connection is gone. A route
 * without a loaded certificate and every failed handshake are logged with
 * their reason; the connection is then closed. Returns the connection's
 * L7Conn (the server calls `beginDrain()` on it at shutdown).
 */
export function serveL7(duplex: NativeSocketDuplex, ctx: L7Context): L7Conn {
  const conn = new L7Conn(ctx, duplex);
  let outcome = "tls_error";
  let done = false;
  // Until the handshake completes the stall limit is hello_timeout, not the
  // (long) idle timeout: a client that sends a ClientHello and then nothing
  // must not hold a connection for minutes.
  const w: Watched = { duplex, seen: -1, since: Date.now(), limitMs: Math.min(ctx.proxy.helloTimeoutMs, ctx.proxy.idleTimeoutMs), expire: () => {} };
  let watching = false;
  const finish = () => {
    if (done) return;
    done = true;
    watching = false;
    conn.dispose();
    ctx.onClose({ outcome, bytesIn: duplex.bytesIn, bytesOut: duplex.bytesOut, requests: conn.requests });
  };

  let entry;
  try {
    entry = ctx.route();
  } catch (e) {
    entry = null;
  }
  if (!entry || !entry.cert) {
    outcome = "no_cert";
    log.warn("l7.no_cert", {
      listener: ctx.listenerAddr,
      sni: ctx.sni,
      client: ctx.client.address,
      reason: entry ? "the route has no loaded certificate (tls_cert/tls_key failed to load)" : "no route entry",
    });
    metrics.tlsFailure("certificate"); // the handshake cannot even start: count it, never silent
    duplex.destroy();
    finish();
    return conn;
  }

  const min = ctx.proxy.l7MinTls;
  const sock = new tls.TLSSocket(duplex, {
    isServer: true,
    secureContext: secureContextFor(entry.cert, min),
    ALPNProtocols: ["h2", "http/1.1"],
  });
  let secure = false;
  let failureLogged = false;
  // Exactly one log line and one metric per failed handshake, whichever event sees it first.
  const handshakeFailed = (reason: string, cls: TlsFailure) => {
    if (secure || failureLogged) return;
    failureLogged = true;
    metrics.tlsFailure(cls);
    log.info("l7.tls_error", { listener: ctx.listenerAddr, sni: ctx.sni, client: ctx.client.address, reason, class: cls });
  };
  // Like node's headersTimeout: answer 408 and close.
  const headTimedOut = () => {
    outcome = "header_timeout";
    log.info("l7.header_timeout", { listener: ctx.listenerAddr, sni: ctx.sni, client: ctx.client.address, limit_ms: ctx.proxy.helloTimeoutMs });
    if (sock.destroyed || !sock.writable) return void sock.destroy();
    sock.end("HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n");
    // Whatever the client does now, the connection is gone within a second.
    setTimeout(() => duplex.destroy(), L7_CLOSE_GRACE_MS).unref?.();
  };
  w.expire = () => {
    handshakeFailed("handshake not completed within hello_timeout", "timeout");
    outcome = secure ? "idle_timeout" : "tls_error";
    sock.destroy();
    duplex.destroy();
  };
  watching = true;
  conn.tick = (now) => {
    if (watching) watching = checkWatched(w, now);
  };
  // Graceful shutdown (L7Conn.beginDrain). Before the handshake completes
  // there is nothing to wind down: the 'secure' handler runs this again.
  conn.onDrain = () => {
    if (!secure) return;
    const session = conn.h2session;
    if (session) {
      // GOAWAY: streams already open complete, new ones are refused; then close.
      if (!session.closed && !session.destroyed) session.close(() => sock.destroy());
      return;
    }
    const wait = (sock as unknown as Record<symbol, HeadWait | undefined>)[kHead];
    if (wait) drainH1(wait, sock, duplex);
  };

  sock.on("secure", () => {
    secure = true;
    w.limitMs = ctx.proxy.idleTimeoutMs;
    outcome = "ok";
    (sock as unknown as Record<symbol, L7Conn>)[kConn] = conn;
    if (sock.alpnProtocol === "h2") {
      connecting = conn;
      try {
        getH2Server().emit("connection", sock);
      } finally {
        connecting = null;
      }
    } else {
      // The first head is due within hello_timeout of the handshake's end.
      const wait: HeadWait = { busy: 0, live: new Set(), upgraded: false, startedAt: Date.now(), bytesAtIdle: duplex.bytesIn };
      (sock as unknown as Record<symbol, HeadWait>)[kHead] = wait;
      w.head = { wait, limitMs: ctx.proxy.helloTimeoutMs, expire: () => headTimedOut() };
      getH1Server().emit("connection", sock);
    }
    if (conn.draining) conn.onDrain?.();
  });
  // Bun's http2 session does not react to the client's FIN: finish the open
  // streams, then close (Node would do this itself).
  sock.on("end", () => {
    const session = conn.h2session;
    if (!session) return;
    if (session.closed || session.destroyed) sock.destroy();
    else session.close(() => sock.destroy());
  });
  sock.on("error", (e: Error) => {
    handshakeFailed(tlsFailureReason(e, min), classifyTlsError(e));
    sock.destroy();
  });
  sock.on("close", () => {
    handshakeFailed("client closed the connection during the handshake", "other");
    if (!duplex.destroyed) duplex.destroy();
    finish();
  });
  // Bun's TLSSocket ignores EOF from its Duplex while the handshake is in
  // progress: a client that sends a ClientHello then FIN (scanners; a client
  // destroyed before its Finished went out) would hold the connection until
  // the idle timeout. Give up on the handshake at EOF ourselves.
  duplex.once("end", () => {
    if (!secure && !sock.destroyed) sock.destroy();
  });
  // The native socket went away underneath us.
  duplex.on("close", () => {
    if (!sock.destroyed) sock.destroy();
    finish();
  });
  return conn;
}
