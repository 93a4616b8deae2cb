/**
 * Dial primitive for backend connections: a descriptor we own from the first
 * SYN, taken over as a native Bun socket once TCP is up.
 *
 * Why not `Bun.connect`: it gives no handle before the connect completes, so
 * a connect that outlives `connect_timeout` cannot be aborted and its
 * descriptor stays in SYN_SENT until the kernel gives up (~2 min; measured on
 * 1.4.4: three timed-out Bun.connect dials left three SYN_SENT sockets, three
 * `net.connect()` + `destroy()` left none). Bun's `node:net` is built on the
 * same native socket: on 'connect' we take its `_handle`, detach the
 * net.Socket, and point the handle at our shared handlers (`reload`). Dial
 * rate is the same as Bun.connect (~960/s each in the same probe). This uses
 * an undocumented part of Bun's node:net; `test/l7/h1/client-dial.test.ts`
 * pins it.
 *
 * TLS: Bun.connect({ tls }) starts the handshake on connect, so a PROXY header
 * could not precede the ClientHello. We write the header on the raw TCP socket
 * and then call `upgradeTLS` client-side (ALPN http/1.1, SNI, verification);
 * the TLS socket reports through the shared handlers' `handshake`. One path
 * for every dial, with or without the header.
 */
import type { Socket, SocketHandler, TLSOptions } from "bun";
import net from "node:net";
import { fdBudget } from "../../net/fds.ts";
import type { BackendTls } from "../backend/target.ts";

/** ALPN in wire format (Bun rejects a string list for it). */
export const ALPN_HTTP11 = Buffer.from("\x08http/1.1", "latin1");
export const ALPN_H2 = Buffer.from("\x02h2", "latin1");

/** What a dial reports to; it becomes the socket's `data`. */
export interface DialClient {
  /** TCP is up: `socket` is ours now (handlers reloaded, data = this client). */
  onTcpConnected(socket: Socket<this>): void;
  /** The connect failed before TCP was up (ECONNREFUSED, ENOTFOUND, …). */
  onTcpError(code: string, message: string): void;
}

/**
 * Starts a TCP connect to host:port and returns the pending node:net socket:
 * `destroy()` it to abandon the connect (the descriptor closes at once). On
 * success the native handle is moved to `handlers` with `client` as its data,
 * and `client.onTcpConnected` runs; the net.Socket is then inert.
 */
export function dialTcp<C extends DialClient>(host: string, port: number, handlers: SocketHandler<C>, client: C, allowHalfOpen = false): net.Socket {
  const s = net.connect({ host, port, allowHalfOpen });
  s.once("connect", () => {
    const h = (s as unknown as { _handle: Socket<C> | null })._handle;
    (s as unknown as { _handle: null })._handle = null;
    s.removeAllListeners();
    if (h === null) {
      client.onTcpError("ECONNRESET", "connection closed while connecting");
      return;
    }
    h.data = client;
    h.reload({ socket: handlers });
    client.onTcpConnected(h);
  });
  s.once("error", (e: Error & { code?: string }) => {
    s.removeAllListeners();
    const code = e.code ?? "ECONNREFUSED";
    // Bun reports a socket() that failed with EMFILE as ECONNREFUSED (measured on 1.4.4).
    if (code === "ECONNREFUSED" && fdBudget.dialRefusedNearLimit()) {
      client.onTcpError(code, `${e.message} (possible descriptor exhaustion: the process is near its file descriptor limit)`);
      return;
    }
    client.onTcpError(code, e.message);
  });
  return s;
}

/** Options for `upgradeTLS` from a target's TLS settings. */
export function clientTlsOptions(t: BackendTls, alpn: Buffer = ALPN_HTTP11): TLSOptions {
  return {
    serverName: t.servername === "" ? undefined : t.servername,
    rejectUnauthorized: t.rejectUnauthorized,
    ca: t.ca,
    ALPNProtocols: alpn,
  };
}

/**
 * The verdict on a client-side handshake from Bun's `handshake(socket,
 * authorized, err)`: `authorized` is false also when the handshake succeeded
 * but the certificate did not verify (wrong name, unknown CA) — fine without
 * backend_tls_verify. A failed handshake is EPROTO / ERR_SSL_*. Returns null
 * when the connection may be used, else the error code.
 */
export function clientHandshakeError(authorized: boolean, err: Error | null, t: BackendTls): string | null {
  const code = (err as { code?: string } | null)?.code ?? "ERR_TLS_HANDSHAKE";
  if (authorized) return null;
  const verifyOnly = err !== null && code !== "EPROTO" && !code.startsWith("ERR_SSL") && code !== "ERR_TLS_HANDSHAKE";
  return verifyOnly && !t.rejectUnauthorized ? null : code;
}

/** Handlers for the raw TCP side of a TLS socket: its ciphertext events are Bun's business; the TLS socket reports close. */
export const RAW_UNDER_TLS_HANDLERS: SocketHandler<unknown> = {
  open() {},
  data() {},
  close() {},
};

/**
 * Starts the client TLS handshake on `raw` (whose first bytes, e.g. a PROXY
 * header, are already written). The returned socket reports the handshake to
 * `handlers.handshake`; nothing may be written to it before that.
 */
export function startTls<C>(raw: Socket<C>, t: BackendTls, handlers: SocketHandler<C>, client: C, alpn: Buffer = ALPN_HTTP11): Socket<C> {
  raw.reload({ socket: RAW_UNDER_TLS_HANDLERS as SocketHandler<C> });
  const [, tls] = raw.upgradeTLS<C>({ tls: clientTlsOptions(t, alpn), socket: handlers, data: client });
  return tls;
}
