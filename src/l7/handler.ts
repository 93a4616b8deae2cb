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
import tls from "node:tls";
import type { MinTls } from "../config/types.ts";
import { log } from "../obs/log.ts";
import { classifyTlsError, metrics, type TlsFailure } from "../obs/metrics.ts";
import type { CertPair } from "./certs.ts";
import { L7Conn, type L7Context } from "./context.ts";
import type { NativeSocketDuplex } from "./duplex.ts";
import { kConn, onH1Request, onH2Stream } from "./front.ts";
import { handleUpgrade } from "./websocket.ts";

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

let h2server: http2.Http2Server | null = null;
let h1server: http.Server | null = null;
// The session being created by h2server.emit('connection'); 'session' fires synchronously.
let connecting: L7Conn | null = null;

function getH2Server(): http2.Http2Server {
  if (h2server) return h2server;
  const s = http2.createServer({ settings: { initialWindowSize: 1 << 20 } });
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
  const s = http.createServer();
  // Our idle sweep owns connection lifetime; node's request deadlines would cut long uploads.
  s.requestTimeout = 0;
  s.headersTimeout = 0;
  s.keepAliveTimeout = 0;
  s.on("request", onH1Request);
  s.on("upgrade", (req: http.IncomingMessage, socket, head: Buffer) => {
    const conn = (req.socket as unknown as Record<symbol, L7Conn | undefined>)[kConn];
    if (!conn) return socket.destroy();
    handleUpgrade(conn, req, socket, head);
  });
  s.on("clientError", (_e, socket) => socket.destroy());
  return (h1server = s);
}

// ---------------------------------------------------------------- idle sweep

// One timer for all connections: a connection whose byte counters did not move
// for idleTimeoutMs is closed. Cheaper than a timer per connection.
interface Watched {
  duplex: NativeSocketDuplex;
  seen: number;
  since: number;
  limitMs: number;
  expire: () => void;
}
const watched = new Set<Watched>();
let sweeper: ReturnType<typeof setInterval> | null = null;
const SWEEP_MS = 250;

function watch(w: Watched): void {
  watched.add(w);
  if (!sweeper) {
    sweeper = setInterval(sweep, SWEEP_MS);
    sweeper.unref?.();
  }
}

function unwatch(w: Watched): void {
  watched.delete(w);
  if (watched.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = null;
  }
}

function sweep(): void {
  const now = Date.now();
  for (const w of watched) {
    const seen = w.duplex.bytesIn + w.duplex.bytesOut;
    if (seen !== w.seen) {
      w.seen = seen;
      w.since = now;
    } else if (now - w.since >= w.limitMs) {
      unwatch(w);
      w.expire();
    }
  }
}

// ---------------------------------------------------------------- entry

/**
 * Serves one client connection whose ClientHello is still unread in `duplex`.
 * Calls `ctx.onClose` exactly once, when the connection is gone. A route
 * without a loaded certificate and every failed handshake are logged with
 * their reason; the connection is then closed.
 */
export function serveL7(duplex: NativeSocketDuplex, ctx: L7Context): void {
  const conn = new L7Conn(ctx, duplex);
  let outcome = "tls_error";
  let done = false;
  // Until the handshake completes the stall limit is hello_timeout, not the
  // (long) idle timeout: a client that sends a ClientHello and then nothing
  // must not hold a connection for minutes.
  const w: Watched = { duplex, seen: -1, since: Date.now(), limitMs: Math.min(ctx.proxy.helloTimeoutMs, ctx.proxy.idleTimeoutMs), expire: () => {} };
  const finish = () => {
    if (done) return;
    done = true;
    unwatch(w);
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
    return;
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
  w.expire = () => {
    handshakeFailed("handshake not completed within hello_timeout", "timeout");
    outcome = secure ? "idle_timeout" : "tls_error";
    sock.destroy();
    duplex.destroy();
  };
  watch(w);

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
    } else getH1Server().emit("connection", sock);
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
}
