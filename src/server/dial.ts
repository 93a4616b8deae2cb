/**
 * L4: dials the route's backend. Client bytes that arrive meanwhile join the
 * peeked bytes (and pause the client); once connected, the relay takes the
 * backend socket, the client socket and every peeked byte, in one hand-off.
 *
 * The dial owns its descriptor (src/l7/h1/dial.ts: node:net's connect, whose
 * native handle we take over once connected): at `connect_timeout` the
 * connect is destroyed and the descriptor closed at once. `Bun.connect` gives
 * no handle before the connect completes, so a black-holed backend kept every
 * timed-out descriptor in SYN_SENT for ~2 minutes (SPEC §4 rev 3).
 */
import type { Socket, SocketHandler } from "bun";
import { socketError } from "../net/socket-error.ts";
import { dialTcp, type DialClient, type DialHint } from "../l7/h1/dial.ts";
import { parseHostPort } from "../net/addr.ts";
import type { RouteRecord } from "../records.ts";
import type { RouteEntry } from "../state/state.ts";
import { encodeProxyV2 } from "../wire/proxyproto.ts";
import { Stage, type Conn } from "./conn.ts";
import { L4Stage } from "./l4.ts";
import type { Peeked } from "./peeked.ts";

/** What a backend socket's events are delivered to: the dial, then the relay. */
export interface BackendPeer {
  backendOpen(b: BackendSocket): void;
  backendData(chunk: Uint8Array): void;
  backendEnd(): void;
  backendDrain(): void;
  backendClosed(err?: Error): void;
}
export type BackendSocket = Socket<BackendPeer>;

/** Backend socket handlers, shared by every L4 connection; `socket.data` is the current peer. */
const backendHandlers = {
  open: (b: BackendSocket) => b.data.backendOpen(b),
  data: (b: BackendSocket, chunk: Uint8Array) => b.data.backendData(chunk),
  end: (b: BackendSocket) => b.data.backendEnd(),
  drain: (b: BackendSocket) => b.data.backendDrain(),
  close: (b: BackendSocket, err?: Error) => b.data.backendClosed(err),
  error: (b: BackendSocket, err: Error) => socketError("backend", b, err, (e) => b.data.backendClosed(e)),
  connectError: (b: BackendSocket, err: Error) => b.data.backendClosed(err),
};

/** Dial targets, parsed once per route record (validated when configured). */
interface L4Target {
  host: string;
  port: number;
  /** Whether the address answered since its last abandoned dial (fast dials, src/l7/h1/dial.ts). */
  dial: DialHint;
}
const targets = new WeakMap<RouteRecord, L4Target | null>();
function targetOf(r: RouteRecord): L4Target | null {
  let t = targets.get(r);
  if (t === undefined) {
    const hp = parseHostPort(r.backend, 1);
    t = hp === null ? null : { host: hp.host, port: hp.port, dial: { answered: false } };
    targets.set(r, t);
  }
  return t;
}

export class DialStage extends Stage implements BackendPeer, DialClient {
  private readonly deadline: number;
  private clientEnded = false;
  /** Still waiting for the connect (false once connected, failed, or given up). */
  private dialing = true;
  /** The connect in progress: destroying it closes the descriptor. */
  private pending: { destroy(): void } | null = null;
  /** Bun's node:net writes this onto the data object after 'connect' (see dial.ts). */
  req: unknown = null;

  constructor(
    conn: Conn,
    private readonly entry: RouteEntry,
    private readonly peeked: Peeked,
  ) {
    super(conn);
    this.deadline = Date.now() + conn.lc.proxy.connectTimeoutMs;
  }

  /** Starts the connect. */
  start(): void {
    const rec = this.entry.record;
    const target = targetOf(rec);
    if (!target) {
      this.failed(`bad backend address: ${rec.backend}`);
      return;
    }
    // Half-open: the relay passes each side's FIN on while the other direction flows.
    this.pending = dialTcp(target.host, target.port, backendHandlers as unknown as SocketHandler<DialStage>, this, true, target.dial);
  }

  onTcpConnected(s: Socket<this>): void {
    this.pending = null;
    this.backendOpen(s as unknown as BackendSocket);
  }

  onTcpError(code: string, message: string): void {
    this.pending = null;
    this.failed(code || message);
  }

  /** The first bytes the backend gets: [our PROXY v2 header] + everything peeked. */
  private firstBytes(): Uint8Array | string {
    const bytes = this.peeked.take();
    const conn = this.conn;
    if (!conn.route!.record.sendProxyProtocol) return bytes;
    let header: Uint8Array;
    try {
      header = encodeProxyV2({ source: conn.client, destination: conn.local, authority: conn.sni });
    } catch (e) {
      // Only an address the encoder cannot represent (e.g. a peer address Bun could not report).
      return `proxy_header_encode: ${(e as Error).message}`;
    }
    const joined = new Uint8Array(header.length + bytes.length);
    joined.set(header);
    joined.set(bytes, header.length);
    return joined;
  }

  onData(chunk: Uint8Array): void {
    this.peeked.append(chunk);
    this.conn.sock.pause();
  }

  override onEnd(): void {
    this.clientEnded = true;
  }

  onClose(): void {
    this.dialing = false;
    this.pending?.destroy();
    this.pending = null;
    this.conn.fail("error", "client closed while connecting");
    this.conn.finish();
  }

  override tick(now: number): void {
    if (now >= this.deadline) this.failed("connect_timeout");
  }

  override cut(): void {
    this.dialing = false;
    this.pending?.destroy();
    this.pending = null;
    super.cut();
  }

  backendOpen(b: BackendSocket): void {
    if (!this.dialing) {
      b.terminate(); // we gave up (timeout, client gone) while it was connecting
      return;
    }
    const first = this.firstBytes();
    if (typeof first === "string") {
      b.terminate();
      return this.failed(first);
    }
    this.dialing = false;
    const relay = new L4Stage(this.conn, b);
    this.conn.enter(relay);
    relay.start(first, this.clientEnded);
  }

  backendData(): void {}
  backendEnd(): void {}
  backendDrain(): void {}

  backendClosed(err?: Error): void {
    this.failed(err ?? "closed");
  }

  private failed(e: Error | string): void {
    if (!this.dialing) return;
    this.dialing = false;
    this.pending?.destroy();
    this.pending = null;
    const conn = this.conn;
    conn.lc.metrics.backendConnectFailure("l4");
    conn.fail("backend_connect_failed", typeof e === "string" ? e : ((e as NodeJS.ErrnoException).code ?? e.message));
    this.peeked.take();
    conn.finish(); // first: the close may be reported synchronously inside end()
    conn.sock.end();
  }
}
