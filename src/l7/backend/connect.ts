/**
 * Opens one transport connection to a backend: TCP, an optional PROXY v2
 * header as the very first bytes, then optional TLS (SNI + ALPN + optional
 * verification). Fails with code ETIMEDOUT when not ready within the timeout.
 */
import net from "node:net";
import tls from "node:tls";
import type { BackendTarget } from "./target.ts";

export interface ConnectOptions {
  /** Written before anything else (send_proxy_protocol); null = none. */
  proxyHeader: Uint8Array | null;
  /** ALPN to offer over TLS; ignored in cleartext. */
  alpn: string[];
  timeoutMs: number;
}

/**
 * Starts connecting and returns the socket at once (callers may write before
 * it is connected). Emits 'error' (code ECONNREFUSED, ETIMEDOUT, a TLS code…)
 * when the backend cannot be reached; TLS sockets are ready on 'secureConnect'.
 */
export function connectBackend(t: BackendTarget, o: ConnectOptions): net.Socket {
  const raw = net.connect({ host: t.host, port: t.port });
  raw.setNoDelay(true);
  if (o.proxyHeader) raw.write(o.proxyHeader);
  let sock: net.Socket = raw;
  if (t.tls) {
    sock = tls.connect({
      socket: raw,
      servername: t.tls.servername || undefined,
      rejectUnauthorized: t.tls.rejectUnauthorized,
      ca: t.tls.ca,
      ALPNProtocols: o.alpn,
    });
    // A raw-socket failure must surface on the socket the caller holds.
    raw.once("error", (e) => sock.destroy(e));
  }
  const readyEvent = t.tls ? "secureConnect" : "connect";
  const timer = setTimeout(() => {
    const e = Object.assign(new Error(`connect to ${t.host}:${t.port} timed out after ${o.timeoutMs}ms`), {
      code: "ETIMEDOUT",
    });
    sock.destroy(e);
    if (sock !== raw) raw.destroy();
  }, o.timeoutMs);
  const clear = () => clearTimeout(timer);
  sock.once(readyEvent, clear);
  sock.once("close", clear);
  return sock;
}
