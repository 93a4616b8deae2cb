/**
 * L4: the relay stage. Owns both sockets until both are closed; the byte
 * copying, backpressure and half-close rules are `Relay`'s (src/l4/relay.ts).
 */
import { Relay, type RelayOutcome } from "../l4/relay.ts";
import { Stage, type Conn } from "./conn.ts";
import type { BackendPeer, BackendSocket } from "./dial.ts";

export class L4Stage extends Stage implements BackendPeer {
  private readonly relay: Relay;
  /** Coarse time of the last byte in either direction (idle timeout). */
  private lastActivity: number;

  constructor(conn: Conn, backend: BackendSocket) {
    super(conn);
    backend.data = this;
    this.lastActivity = conn.lc.now();
    this.relay = new Relay(conn.sock, backend, (o, reason) => this.done(o, reason));
  }

  /**
   * Delivers the bytes read before the backend was connected, then lets the
   * client flow. A partial first write leaves the client paused until the
   * backend drains (the relay's normal backpressure) — resuming it here
   * unconditionally would let the client fill memory.
   */
  start(first: Uint8Array, clientEnded: boolean): void {
    if (first.byteLength > 0) this.relay.fromClient(first);
    if (clientEnded) this.relay.clientEnd();
    if (this.relay.up.idle) this.conn.sock.resume();
  }

  /** Bytes accepted by the backend socket but not yet by the kernel: what the relay holds client→backend. */
  get queuedUp(): number {
    return this.relay.up.queuedBytes;
  }

  onData(chunk: Uint8Array): void {
    this.lastActivity = this.conn.lc.now();
    this.relay.fromClient(chunk);
  }
  override onEnd(): void {
    this.relay.clientEnd();
  }
  override onDrain(): void {
    this.relay.clientDrain();
  }
  onClose(err?: Error): void {
    this.relay.clientClosed(err);
  }

  override tick(now: number): void {
    if (now - this.lastActivity >= this.conn.lc.proxy.idleTimeoutMs) this.relay.abort("idle_timeout");
  }

  override cut(): void {
    this.relay.abort("shutdown");
  }

  backendOpen(): void {}
  backendData(chunk: Uint8Array): void {
    this.lastActivity = this.conn.lc.now();
    this.relay.fromBackend(chunk);
  }
  backendEnd(): void {
    this.relay.backendEnd();
  }
  backendDrain(): void {
    this.relay.backendDrain();
  }
  backendClosed(err?: Error): void {
    this.relay.backendClosed(err);
  }

  private done(o: RelayOutcome, reason: string): void {
    const conn = this.conn;
    conn.bytesUp = this.relay.clientToBackend;
    conn.bytesDown = this.relay.backendToClient;
    conn.fail(o, reason);
    conn.finish();
  }
}
