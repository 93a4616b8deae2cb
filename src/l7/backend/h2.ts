/**
 * HTTP/2 towards one backend target, on our own session (src/l7/h2/): h2c
 * with prior knowledge, or h2 over TLS (ALPN h2). Streams are multiplexed on
 * as few connections as the peer's MAX_CONCURRENT_STREAMS allows (at most
 * BACKEND_H2_MAX_CONNECTIONS); a session that got GOAWAY or ran out of stream
 * ids takes no new streams and closes when its last one ends. Every dial
 * owns its descriptor (src/l7/h1/dial.ts) and is bounded by connect_timeout;
 * an idle session closes after idle_timeout.
 */
import type { Socket, SocketHandler } from "bun";
import { socketError } from "../../net/socket-error.ts";
import { BACKEND_H2_MAX_CONNECTIONS, BACKEND_H2_STREAM_WINDOW_BYTES } from "../../limits.ts";
import { ALPN_H2, clientHandshakeError, dialTcp, startTls, type DialClient } from "../h1/dial.ts";
import { H2Session, type H2Transport } from "../h2/session.ts";
import type { H2Stream } from "../h2/stream.ts";
import type { BackendTarget } from "./target.ts";

export interface H2Failure {
  connect: boolean;
  code: string;
  message: string;
}

/** What a request waiting for a session is told: a stream, or why there is none (an object, not a closure: one per request). */
export interface StreamWaiter {
  onStream(s: H2Stream | null, err: H2Failure | null): void;
  /**
   * False once the request wants no stream any more (its client left or it
   * was answered): a waiting one is dropped, never sent — the sweeper prunes
   * such waiters (their requests and bodies would otherwise stay while the
   * backend's streams are all busy).
   */
  wanted(): boolean;
}

interface Waiter {
  fields: readonly string[];
  endStream: boolean;
  cb: StreamWaiter;
}

export class H2Client {
  private conns: H2Conn[] = [];
  private waiting: Waiter[] = [];
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private closed = false;

  constructor(
    readonly target: BackendTarget,
    readonly proxyHeader: Uint8Array | null,
    readonly connectTimeoutMs: number,
    readonly idleMs: number,
  ) {}

  /**
   * Opens a stream for `fields` (pseudo-headers first) — synchronously when a
   * connected session has room, else once one is dialed. `cb` runs once.
   */
  stream(fields: readonly string[], endStream: boolean, cb: StreamWaiter): void {
    if (this.closed) return cb.onStream(null, { connect: true, code: "EPOOLCLOSED", message: "backend pool closed" });
    if (this.waiting.length > 0) {
      // Others wait already: in turn, not ahead of them.
      this.waiting.push({ fields, endStream, cb });
      return this.serveSoon();
    }
    for (const c of this.conns) {
      if (!c.ready) continue;
      const s = c.session!.request(fields, endStream);
      if (s !== null) return cb.onStream(s, null);
    }
    this.waiting.push({ fields, endStream, cb });
    // A dial in progress will take the waiters; else open one more connection.
    if (this.conns.some((c) => !c.ready && !c.failed)) return;
    if (this.conns.length >= BACKEND_H2_MAX_CONNECTIONS) {
      // Every connection is full: the waiters go out as streams end (serveSoon).
      return;
    }
    this.dial();
  }

  /** Closes every session (streams in flight are cut). */
  close(): void {
    this.closed = true;
    for (const c of this.conns) c.close();
    this.conns = [];
    this.failWaiters({ connect: true, code: "EPOOLCLOSED", message: "backend pool closed" });
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private dial(): void {
    const c = new H2Conn(this);
    this.conns.push(c);
    c.start();
    if (!this.sweeper) {
      this.sweeper = setInterval(this.sweep, Math.max(50, Math.min(1000, this.idleMs / 4)));
      this.sweeper.unref?.();
    }
  }

  private readonly sweep = (): void => {
    const now = Date.now();
    for (const c of this.conns) c.session?.tick(now);
    if (this.waiting.length > 0) this.waiting = this.waiting.filter(isWanted);
  };

  /**
   * A stream closed (or a request joined the queue): when requests wait,
   * serve them at the end of this turn (not inside the session's frame
   * processing), in order, on every connection with room. Without this,
   * waiters went out only when a connection became ready or got GOAWAY, and
   * new requests overtook them.
   */
  serveSoon(): void {
    if (this.waiting.length === 0 || this.serveQueued) return;
    this.serveQueued = true;
    queueMicrotask(this.serveAll);
  }

  private serveQueued = false;
  private readonly serveAll = (): void => {
    this.serveQueued = false;
    for (const c of this.conns) {
      if (this.waiting.length === 0) break;
      if (c.ready) this.serveWaiters(c);
    }
  };

  /** A connection is ready (or has room again): give the waiters streams. */
  serveWaiters(c: H2Conn): void {
    while (this.waiting.length > 0 && c.ready) {
      const w = this.waiting[0]!;
      if (!w.cb.wanted()) {
        this.waiting.shift();
        continue;
      }
      const s = c.session!.request(w.fields, w.endStream);
      if (s === null) break;
      this.waiting.shift();
      w.cb.onStream(s, null);
    }
    if (this.waiting.length > 0 && this.conns.length < BACKEND_H2_MAX_CONNECTIONS && !this.conns.some((x) => !x.ready && !x.failed)) this.dial();
  }

  /** A dial failed: the waiters fail with it (one 502 each). */
  dialFailed(c: H2Conn, err: H2Failure): void {
    this.remove(c);
    this.failWaiters(err);
  }

  remove(c: H2Conn): void {
    const i = this.conns.indexOf(c);
    if (i >= 0) this.conns.splice(i, 1);
    if (this.conns.length === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
    if (this.waiting.length > 0 && !this.closed && this.conns.length === 0) this.dial();
  }

  private failWaiters(err: H2Failure): void {
    const w = this.waiting;
    this.waiting = [];
    for (const x of w) if (x.cb.wanted()) x.cb.onStream(null, err);
  }
}

function isWanted(w: Waiter): boolean {
  return w.cb.wanted();
}

type ConnSock = Socket<H2Conn>;

const handlers: SocketHandler<H2Conn> = {
  binaryType: "uint8array", // see CONN_HANDLERS (src/l7/h1/connection.ts)
  open() {},
  handshake(s, ok, err) {
    s.data.onHandshake(ok, err);
  },
  data(s, d) {
    s.data.session?.receive(d);
  },
  drain(s) {
    s.data.session?.drained();
  },
  end(s) {
    s.data.onClosed(undefined);
  },
  close(s, err) {
    s.data.onClosed(err);
  },
  error(s, err) {
    socketError("l7.backend_h2", s, err, (e) => s.data.onClosed(e));
  },
};

/** One backend connection and its session. */
class H2Conn implements DialClient, H2Transport {
  session: H2Session | null = null;
  ready = false;
  failed = false;
  /** Bun's node:net writes this onto the data object after 'connect' (see dial.ts). */
  req: unknown = null;
  private sock: ConnSock | null = null;
  private pendingDial: { destroy(): void } | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly owner: H2Client) {}

  start(): void {
    const t = this.owner.target;
    this.timer = setTimeout(() => this.fail({ connect: true, code: "ETIMEDOUT", message: `connect to ${t.host}:${t.port} timed out after ${this.owner.connectTimeoutMs}ms` }), this.owner.connectTimeoutMs);
    this.pendingDial = dialTcp(t.host, t.port, handlers, this, false, t.dial);
  }

  onTcpConnected(socket: Socket<this>): void {
    this.pendingDial = null;
    if (this.failed) return socket.terminate();
    let s = socket as unknown as ConnSock;
    const header = this.owner.proxyHeader;
    if (header) s.write(header);
    const tls = this.owner.target.tls;
    if (tls) {
      this.sock = startTls(s, tls, handlers, this, ALPN_H2);
      return; // ready after the handshake
    }
    this.sock = s;
    this.ready_();
  }

  onTcpError(code: string, message: string): void {
    this.pendingDial = null;
    this.fail({ connect: true, code, message });
  }

  onHandshake(ok: boolean, err: Error | null): void {
    if (this.ready || this.failed) return;
    const code = clientHandshakeError(ok, err, this.owner.target.tls!);
    if (code === null) this.ready_();
    else this.fail({ connect: true, code, message: err?.message ?? "TLS handshake failed" });
  }

  private ready_(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.session = new H2Session(this, {
      role: "client",
      idleTimeoutMs: this.owner.idleMs,
      // Shared by many clients: a slow one must not stall the others (stream credit still waits for the front).
      creditConnectionOnReceipt: true,
      streamWindow: BACKEND_H2_STREAM_WINDOW_BYTES,
      onGoaway: () => this.owner.serveWaiters(this),
      onLocalStreamClosed: () => this.owner.serveSoon(),
      onClose: () => this.gone(),
    });
    this.ready = true;
    this.owner.serveWaiters(this);
  }

  onClosed(err: Error | undefined): void {
    if (!this.ready) {
      const code = (err as { code?: string } | undefined)?.code ?? "ECONNRESET";
      return this.fail({ connect: true, code, message: err?.message ?? "backend closed the connection while connecting" });
    }
    this.session?.transportClosed(err);
    this.gone();
  }

  private fail(err: H2Failure): void {
    if (this.failed || this.ready) return;
    this.failed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pendingDial?.destroy();
    this.pendingDial = null;
    this.sock?.terminate();
    this.owner.dialFailed(this, err);
  }

  private gone(): void {
    if (!this.ready) return;
    this.ready = false;
    this.failed = true;
    this.owner.remove(this);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.pendingDial?.destroy();
    this.session?.destroy();
    this.sock?.terminate();
    this.failed = true;
    this.ready = false;
  }

  // H2Transport
  writeRange(data: Uint8Array, offset: number, length: number): number {
    return this.sock ? this.sock.write(data, offset, length) : -1;
  }
  shutdown(): void {
    this.sock?.end();
  }
  terminate(): void {
    this.sock?.terminate();
  }
}
