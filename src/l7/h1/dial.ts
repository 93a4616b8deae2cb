/**
 * Dial primitive for backend connections: a descriptor we own from the first
 * SYN, taken over as a native Bun socket once TCP is up — or, for a backend
 * known to answer, `Bun.connect` (below).
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
 * Fast dials: node:net's connect costs ~30 µs per dial more than
 * `Bun.connect` (W2: a new backend connection per client connection). A
 * target whose address answered (connected or refused) since its last
 * abandoned dial (`DialHint.answered`, kept by the caller per target) is
 * dialled with `Bun.connect`, as long as fewer than `FAST_DIAL_MAX_PENDING`
 * such dials are in flight on this thread. Abandoning one (connect_timeout,
 * client gone) cannot close its descriptor, so it marks the target silent:
 * its next dials are abortable until one answers. A backend that goes dark
 * therefore pins at most the fast dials already in flight (≤ the cap per
 * thread) for the kernel's SYN timeout; a black-holed address that never
 * answered is never dialled the fast way.
 *
 * TLS: Bun.connect({ tls }) starts the handshake on connect, so a PROXY header
 * could not precede the ClientHello. We write the header on the raw TCP socket
 * and then call `upgradeTLS` client-side (ALPN http/1.1, SNI, verification);
 * the TLS socket reports through the shared handlers' `handshake`. One path
 * for every dial, with or without the header.
 */
import type { Socket, SocketHandler, TLSOptions } from "bun";
import net from "node:net";
import { FAST_DIAL_MAX_PENDING } from "../../limits.ts";
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

/** A connect in progress: `destroy()` abandons it (no callback follows). */
export interface PendingDial {
  destroy(): void;
}

/** Per target, kept by the caller: whether its address answered since its last abandoned dial (see the top of this file). */
export interface DialHint {
  answered: boolean;
}

/**
 * Starts a TCP connect to host:port. On success the socket reports to
 * `handlers` with `client` as its data, and `client.onTcpConnected` runs;
 * on failure `client.onTcpError`. With a `hint` whose target answered, the
 * fast dial (Bun.connect) is used when allowed; else an abortable one
 * (`destroy()` closes the descriptor at once).
 */
export function dialTcp<C extends DialClient>(
  host: string,
  port: number,
  handlers: SocketHandler<C>,
  client: C,
  allowHalfOpen = false,
  hint: DialHint | null = null,
): PendingDial {
  if (hint !== null && hint.answered && fastPending < FAST_DIAL_MAX_PENDING) return fastDial(host, port, handlers, client, allowHalfOpen, hint);
  return abortableDial(host, port, handlers, client, allowHalfOpen, hint);
}

/** Bun.connect dials in flight on this thread (an abandoned one counts until the kernel gives up on it). */
let fastPending = 0;

/** Fast dials in flight on this thread (tests). */
export function fastDialsInFlight(): number {
  return fastPending;
}

/** Dials started on this thread, by kind (tests, benchmarks). */
export const dialCounts = { fast: 0, abortable: 0 };

class FastDial<C extends DialClient> implements PendingDial {
  abandoned = false;
  settled = false;
  constructor(
    readonly client: C,
    readonly handlers: SocketHandler<C>,
    readonly hint: DialHint,
  ) {}
  destroy(): void {
    if (this.settled || this.abandoned) return;
    this.abandoned = true;
    this.hint.answered = false; // its descriptor stays until the kernel gives up: dial this target abortably from now on
  }
  /** The connect failed: from `connectError`, or the promise's rejection (both may come; the first counts). */
  failed(err: Error & { code?: string }): void {
    if (this.settled) return;
    this.settled = true;
    fastPending--;
    if (!this.abandoned) reportDialError(this.client, err, this.hint);
  }
}

type AnyFastDial = FastDial<DialClient>;

const FAST_HANDLERS: SocketHandler<AnyFastDial> = {
  open(s) {
    const d = s.data;
    if (d.settled) return;
    fastPending--;
    d.settled = true;
    if (d.abandoned) {
      s.terminate();
      return;
    }
    const sock = s as unknown as Socket<DialClient>;
    sock.data = d.client;
    sock.reload({ socket: d.handlers });
    d.client.onTcpConnected(sock);
  },
  connectError(s, err) {
    s.data.failed(err as Error & { code?: string });
  },
  data() {},
  close() {},
};

function fastDial<C extends DialClient>(host: string, port: number, handlers: SocketHandler<C>, client: C, allowHalfOpen: boolean, hint: DialHint): PendingDial {
  const d = new FastDial(client, handlers, hint);
  fastPending++;
  dialCounts.fast++;
  // A failure calls connectError and rejects the promise; a DNS failure may only reject it.
  Bun.connect({ hostname: host, port, allowHalfOpen, data: d as unknown as AnyFastDial, socket: FAST_HANDLERS }).catch((e: Error & { code?: string }) => d.failed(e));
  return d;
}

function reportDialError(client: DialClient, e: Error & { code?: string }, hint: DialHint | null): void {
  const code = e.code ?? "ECONNREFUSED";
  // Bun reports a socket() that failed with EMFILE as ECONNREFUSED (measured on 1.4.4).
  if (code === "ECONNREFUSED" && fdBudget.dialRefusedNearLimit()) {
    client.onTcpError(code, `${e.message} (possible descriptor exhaustion: the process is near its file descriptor limit)`);
    return;
  }
  if (code === "ECONNREFUSED" && hint !== null) hint.answered = true; // a RST is an answer: the address is not black-holed
  client.onTcpError(code, e.message);
}

/** node:net's connect, whose native handle is taken over once connected: `destroy()` closes the descriptor at once. */
function abortableDial<C extends DialClient>(host: string, port: number, handlers: SocketHandler<C>, client: C, allowHalfOpen: boolean, hint: DialHint | null): PendingDial {
  dialCounts.abortable++;
  const s = net.connect({ host, port, allowHalfOpen });
  s.once("connect", () => {
    const h = (s as unknown as { _handle: Socket<C> | null })._handle;
    (s as unknown as { _handle: null })._handle = null;
    s.removeAllListeners();
    if (h === null) {
      client.onTcpError("ECONNRESET", "connection closed while connecting");
      return;
    }
    if (hint !== null) hint.answered = true;
    h.data = client;
    h.reload({ socket: handlers });
    client.onTcpConnected(h);
  });
  s.once("error", (e: Error & { code?: string }) => {
    s.removeAllListeners();
    reportDialError(client, e, hint);
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
