/**
 * TLS termination on the accepted socket, natively: after the pipeline has
 * peeked the ClientHello and chosen the route from its SNI, the raw socket is
 * upgraded in place with the route's certificate, replaying the peeked bytes
 * (`initialData`). Undocumented Bun API (probed on 1.4.4, each detail pinned
 * by a test in test/l7e2e/tls.test.ts):
 * - `isServer: true`, or Bun starts a client handshake (EPROTO);
 * - `secureContext` must be the inner `.context` of tls.createSecureContext;
 * - ALPN must be wire format (length-prefixed bytes), not a list;
 * - `minVersion` on the context is honoured (`l7_min_tls`);
 * - the call returns `[raw, tls]`; the listener's handlers stay attached to
 *   `raw` and keep receiving the ciphertext (ignore it), `tls.open` and even
 *   `handshake`/`close` may fire before the call returns;
 * - `handshake(socket, authorized, err)`: authorized is false (err EPROTO)
 *   when the handshake failed; on success err may still name an unverified
 *   client certificate, which we never ask for.
 */
import type { Socket } from "bun";
import { socketError } from "../net/socket-error.ts";
import tls from "node:tls";
import type { MinTls } from "../config/types.ts";
import type { CertPair } from "../tls/certs.ts";

/** ALPN we offer, in wire format: h2, then http/1.1, then http/1.0 (the HTTP/1.1 front serves 1.0; a client offering only that, e.g. `curl --http1.0`, would otherwise get alert 120). */
export const ALPN_WIRE = Buffer.from("\x02h2\x08http/1.1\x08http/1.0", "latin1");

/** One SecureContext per CertPair object and minimum version (a SIGHUP reload replaces the object, so the cache follows). */
export class TlsContexts {
  private readonly cache = new WeakMap<CertPair, { min: MinTls; ctx: tls.SecureContext }>();

  get(cert: CertPair, min: MinTls): tls.SecureContext {
    const c = this.cache.get(cert);
    if (c && c.min === min) return c.ctx;
    const ctx = tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem, minVersion: min === "1.3" ? "TLSv1.3" : "TLSv1.2" });
    this.cache.set(cert, { min, ctx });
    return ctx;
  }
}

/** The TLS socket handlers' view of their owner (`socket.data`). */
export interface TlsPeer {
  /** `err` is Bun's (see the module comment); null on success. */
  onHandshake(ok: boolean, err: Error | null): void;
  onData(chunk: Uint8Array): void;
  onEnd(): void;
  onDrain(): void;
  onClose(err?: Error): void;
}

export type TlsSock = Socket<TlsPeer>;

const handlers = {
  binaryType: "uint8array" as const, // see CONN_HANDLERS (src/l7/h1/connection.ts)
  handshake(s: TlsSock, authorized: boolean, err: Error | null) {
    s.data.onHandshake(authorized, authorized ? null : err);
  },
  data(s: TlsSock, chunk: Uint8Array) {
    s.data.onData(chunk);
  },
  end(s: TlsSock) {
    s.data.onEnd();
  },
  drain(s: TlsSock) {
    s.data.onDrain();
  },
  close(s: TlsSock, err?: Error) {
    s.data.onClose(err);
  },
  error(s: TlsSock, err: Error) {
    socketError("l7.client", s, err, (e) => s.data.onClose(e));
  },
};

/**
 * Starts the server handshake on `raw` with `initialData` (the peeked
 * ClientHello) replayed first; every later event goes to `peer`. Returns the
 * TLS socket (events may already have fired on `peer` by then).
 */
export function startTls(raw: Socket<unknown>, initialData: Uint8Array, ctx: tls.SecureContext, peer: TlsPeer): TlsSock {
  // Not in bun-types: the server side of upgradeTLS (see the module comment).
  const up = raw.upgradeTLS as unknown as (o: object) => [Socket<unknown>, TlsSock];
  const pair = up.call(raw, {
    isServer: true,
    initialData,
    tls: { secureContext: (ctx as unknown as { context: unknown }).context, ALPNProtocols: ALPN_WIRE },
    socket: handlers,
    data: peer,
  });
  return pair[1];
}

/** A human reason for a failed handshake, from the BoringSSL error. */
export function tlsFailureReason(e: unknown): string {
  const err = e as { code?: string; reason?: string; message?: string } | null;
  const r = `${err?.reason ?? ""} ${err?.code ?? ""} ${err?.message ?? ""}`.toUpperCase();
  if (r.includes("UNSUPPORTED_PROTOCOL") || r.includes("VERSION")) return "no shared TLS version";
  if (r.includes("NO_SHARED_CIPHER")) return "no shared cipher suite";
  if (r.includes("NO_APPLICATION_PROTOCOL")) return "no shared ALPN protocol";
  if (r.includes("HTTP_REQUEST") || r.includes("WRONG_VERSION_NUMBER")) return "not a TLS handshake";
  if (r.includes("DISCONNECTED BEFORE SECURE") || r.includes("ECONNRESET") || r.includes("EPIPE")) return "client closed the connection during the handshake";
  return err?.reason || err?.message || "handshake failed";
}
