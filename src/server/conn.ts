/**
 * One accepted client connection: who it is, where it is going, how it ended
 * — and the stage that currently owns its socket events.
 *
 * A connection passes through stage objects, each owning the socket while it
 * is current and handing over exactly once (`Conn.enter`):
 *
 *   admission (limit, trust, firewall) → [ProxyHeaderStage] → HelloStage
 *     → DialStage → L4Stage        (src/server/dial.ts, src/server/l4.ts)
 *     → L7Stage                    (src/server/l7.ts)
 *
 * After a stage hands over it never touches the socket again; after
 * `finish()` the connection is in `CLOSED`, which ignores every event.
 */
import type { Socket } from "bun";
import type { ProxyConfig } from "../config/types.ts";
import type { Firewall } from "../firewall/firewall.ts";
import type { L7Runtime } from "../l7/runtime.ts";
import { normalizeIp } from "../net/ip.ts";
import { formatEndpoint, type Endpoint } from "../net/addr.ts";
import { log, logLevelEnabled } from "../obs/log.ts";
import type { CloseOutcome, ListenerMetrics } from "../obs/metrics.ts";
import type { ListenerState, RouteEntry, RouteTable } from "../state/state.ts";
import type { ConnCounters } from "./counters.ts";

/** What every connection of one bound listener shares. */
export interface ListenerContext {
  ls: ListenerState;
  metrics: ListenerMetrics;
  state: RouteTable;
  firewall: Firewall;
  /** Open/accepted connection counts shared by every data-path thread. */
  counters: ConnCounters;
  proxy: ProxyConfig;
  /** The L7 side, owned by the server (TLS termination, HTTP, backend pools). */
  l7: L7Runtime;
  /** Called once per accepted connection, before admission. */
  track(conn: Conn): void;
  /** Called once per connection when it is finished (the server untracks it). */
  release(conn: Conn): void;
  /** The server's coarse clock (ms), advanced by its sweeper. */
  now(): number;
}

export type ClientSocket = Socket<Conn>;

/**
 * The owner of a connection's client-socket events while it is current.
 * Handlers not overridden ignore the event.
 */
export abstract class Stage {
  constructor(readonly conn: Conn) {}
  /** Bytes from the client. */
  abstract onData(chunk: Uint8Array): void;
  /** The client sent FIN. */
  onEnd(): void {}
  /** The client socket can take more bytes. */
  onDrain(): void {}
  /** The client socket is closed (with an error: reset). */
  abstract onClose(err?: Error): void;
  /** The server's sweeper, with its coarse clock: check this stage's deadlines. */
  tick(_now: number): void {}
  /** Graceful shutdown has begun. */
  beginDrain(): void {}
  /** The shutdown deadline passed: end now. The default resets the client. */
  cut(): void {
    this.conn.finish(); // first: the close may be reported synchronously inside terminate()
    this.conn.sock.terminate();
  }
}

/** The stage before admission and after `finish()`: every event is ignored. */
class Closed extends Stage {
  onData(): void {}
  onClose(): void {}
  override cut(): void {}
}
// One for all connections: Closed never looks at its conn.
const CLOSED: Stage = new Closed(null as unknown as Conn);

export class Conn {
  /** The real client: the PROXY source when one was received, else the TCP peer. */
  client: Endpoint;
  /** Where the client connected to: the PROXY destination when present, else our local address. */
  local: Endpoint;
  readonly startedAt = performance.now();
  stage: Stage;
  sni = "";
  route: RouteEntry | null = null;
  outcome: CloseOutcome = "ok";
  reason = "";
  bytesUp = 0;
  bytesDown = 0;
  /** Graceful shutdown has begun (a connection routed later starts draining at once). */
  draining = false;
  /** When the first byte arrived (Date.now(); 0 = none yet): the L7 handshake deadline counts from it. */
  firstByteAt = 0;
  /** Holds a `max_connections` slot (released in finish). */
  admitted = false;
  private finished = false;

  constructor(
    readonly lc: ListenerContext,
    readonly sock: ClientSocket,
  ) {
    this.client = { address: normalizeIp(sock.remoteAddress) ?? sock.remoteAddress, port: sock.remotePort };
    this.local = { address: normalizeIp(sock.localAddress) ?? sock.localAddress, port: sock.localPort };
    this.stage = CLOSED;
  }

  /** The hand-off: `next` owns the socket's events from now on. */
  enter(next: Stage): void {
    if (!this.finished) this.stage = next;
  }

  /** Records why the connection ends (the first outcome that is not "ok" wins). */
  fail(outcome: CloseOutcome, reason: string): void {
    if (this.outcome !== "ok") return;
    this.outcome = outcome;
    this.reason = reason;
  }

  beginDrain(): void {
    this.draining = true;
    this.stage.beginDrain();
  }

  /** Cuts the connection now (shutdown deadline). */
  cut(): void {
    this.fail("shutdown", "");
    this.stage.cut();
  }

  /** Exactly once: release the slot, count, and write the connection's log line. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.stage = CLOSED;
    if (this.admitted) this.lc.counters.release(this.lc.ls.slot);
    const m = this.lc.metrics;
    m.closed(this.outcome);
    const mode = this.route?.record.mode ?? "l4";
    if (this.bytesUp || this.bytesDown) m.bytes(mode, this.bytesUp, this.bytesDown);
    this.lc.release(this);
    if (!logLevelEnabled("info")) return;
    log.info("conn", {
      listener: this.lc.ls.record.addr,
      client: formatEndpoint(this.client),
      sni: this.sni || undefined,
      route: this.route?.record.hostname,
      mode: this.route ? mode : undefined,
      backend: this.route?.record.backend,
      bytes_in: this.bytesUp,
      bytes_out: this.bytesDown,
      duration_ms: Math.round(performance.now() - this.startedAt),
      outcome: this.outcome,
      reason: this.reason || undefined,
    });
  }
}
