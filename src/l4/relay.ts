/**
 * L4 relay between two of Bun's native sockets: bytes are copied unchanged in
 * both directions with backpressure, and a FIN on one side becomes a FIN
 * (`shutdown()`, never `end()` — BUN-NOTES) on the other while the opposite
 * direction keeps flowing. The relay never reads or changes the bytes.
 *
 * The owner forwards each socket's events to the matching method
 * (`fromClient`, `clientEnd`, `clientDrain`, `clientClosed`, and the backend
 * twins) and learns the end through `onDone`, called exactly once after both
 * sockets are closed.
 */

/** The part of Bun's native Socket the relay uses. */
export interface RelaySocket {
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  shutdown(): void;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
}

export type RelayOutcome = "ok" | "error" | "idle_timeout" | "shutdown";

/** One direction of the relay: from `src` to `dst`. */
class Direction {
  /** Bytes accepted by `dst` (what the peer will receive). */
  bytes = 0;
  /** Chunks not yet accepted by `dst`, oldest first (usually empty). */
  private queue: Uint8Array[] = [];
  /** `src` sent FIN (or closed): nothing more will come this way. */
  eof = false;
  /** We sent FIN to `dst`. */
  shut = false;
  /** `dst` is closed: drop whatever would still go there. */
  dstGone = false;

  constructor(
    readonly src: RelaySocket,
    readonly dst: RelaySocket,
  ) {}

  get idle(): boolean {
    return this.queue.length === 0;
  }

  /** Bytes held for `dst` (bounded: src is paused while any are held). */
  get queuedBytes(): number {
    let n = 0;
    for (const c of this.queue) n += c.byteLength;
    return n;
  }

  /** Writes `chunk` to dst, or queues the rest and pauses src until dst drains. */
  send(chunk: Uint8Array): void {
    if (this.dstGone) return;
    if (this.queue.length > 0) {
      this.queue.push(chunk);
      return;
    }
    const n = this.dst.write(chunk);
    if (n === chunk.byteLength) {
      this.bytes += n;
      return;
    }
    if (n < 0) return; // dst closing; its close event ends the relay
    this.bytes += n;
    this.queue.push(n === 0 ? chunk : chunk.subarray(n));
    this.src.pause();
  }

  /** dst drained: write what is queued; resume src once all of it is accepted. */
  flush(): void {
    const q = this.queue;
    while (q.length > 0 && !this.dstGone) {
      const c = q[0]!;
      const n = this.dst.write(c);
      if (n < 0) return;
      this.bytes += n;
      if (n < c.byteLength) {
        q[0] = c.subarray(n);
        return;
      }
      q.shift();
    }
    if (!this.eof) this.src.resume();
    this.finishIfDrained();
  }

  /** src is done sending: pass the FIN on once the queue is empty. */
  finishIfDrained(): void {
    if (this.eof && !this.shut && this.queue.length === 0 && !this.dstGone) {
      this.shut = true;
      this.dst.shutdown();
    }
  }

  drop(): void {
    this.queue.length = 0;
    this.dstGone = true;
  }
}

export class Relay {
  readonly up: Direction; // client → backend
  readonly down: Direction; // backend → client
  private clientOpen = true;
  private backendOpen = true;
  private outcome: RelayOutcome = "ok";
  /** With "error": which side failed and how ("client ECONNRESET", "backend EPIPE"); else "". */
  private reason = "";
  private done = false;

  constructor(
    readonly client: RelaySocket,
    readonly backend: RelaySocket,
    private readonly onDone: (outcome: RelayOutcome, reason: string) => void,
  ) {
    this.up = new Direction(client, backend);
    this.down = new Direction(backend, client);
  }

  /** Bytes delivered client → backend and backend → client. */
  get clientToBackend(): number {
    return this.up.bytes;
  }
  get backendToClient(): number {
    return this.down.bytes;
  }

  fromClient(chunk: Uint8Array): void {
    this.up.send(chunk);
  }
  fromBackend(chunk: Uint8Array): void {
    this.down.send(chunk);
  }
  clientDrain(): void {
    this.down.flush();
    this.check();
  }
  backendDrain(): void {
    this.up.flush();
    this.check();
  }

  /** Client sent FIN: forward it to the backend; the backend may keep sending. */
  clientEnd(): void {
    this.up.eof = true;
    this.up.finishIfDrained();
    this.check();
  }

  /** Backend sent FIN: forward it to the client; the client may keep sending. */
  backendEnd(): void {
    this.down.eof = true;
    this.down.finishIfDrained();
    this.check();
  }

  /**
   * The client socket is closed. Without an error that is an orderly end
   * (Bun reports `close`, not `end`, when FIN arrives after we already sent
   * ours): the backend gets FIN once queued bytes are delivered. With an
   * error the backend is reset.
   */
  clientClosed(err?: Error): void {
    if (!this.clientOpen && this.done) return;
    this.clientOpen = false;
    this.down.drop();
    this.up.eof = true;
    if (err) return this.abort("error", `client ${errorCode(err)}`);
    this.up.finishIfDrained();
    this.check();
  }

  backendClosed(err?: Error): void {
    if (!this.backendOpen && this.done) return;
    this.backendOpen = false;
    this.up.drop();
    this.down.eof = true;
    if (err) return this.abort("error", `backend ${errorCode(err)}`);
    this.down.finishIfDrained();
    this.check();
  }

  /** Cuts both sides at once (idle timeout, shutdown deadline, socket error). */
  abort(outcome: RelayOutcome, reason = ""): void {
    if (this.outcome === "ok") {
      this.outcome = outcome;
      this.reason = reason;
    }
    this.up.drop();
    this.down.drop();
    if (this.clientOpen) this.client.terminate();
    if (this.backendOpen) this.backend.terminate();
    this.clientOpen = this.backendOpen = false;
    this.finish();
  }

  /**
   * Closes what no longer carries anything: both sockets once both directions
   * have ended and their FINs were passed on, or the survivor once the side
   * that closed entirely has had everything delivered.
   */
  private check(): void {
    const upDone = this.up.eof && (this.up.shut || this.up.dstGone);
    const downDone = this.down.eof && (this.down.shut || this.down.dstGone);
    if (this.clientOpen && ((upDone && downDone) || (!this.backendOpen && downDone))) this.closeClient();
    if (this.backendOpen && ((upDone && downDone) || (!this.clientOpen && upDone))) this.closeBackend();
    this.finish();
  }

  private closeClient(): void {
    this.clientOpen = false;
    this.client.end();
  }
  private closeBackend(): void {
    this.backendOpen = false;
    this.backend.end();
  }

  private finish(): void {
    if (this.done || this.clientOpen || this.backendOpen) return;
    this.done = true;
    this.onDone(this.outcome, this.reason);
  }
}

/** A socket error's code (ECONNRESET, EPIPE, …), else its message. */
function errorCode(err: Error): string {
  return (err as Error & { code?: string }).code || err.message;
}
