/**
 * L7: the connection is handed to the L7 runtime with the peeked ClientHello,
 * which it replays into TLS. This stage forwards the client socket's events
 * to the L7 side's duplex and the server's clock to its deadlines.
 */
import type { L7Conn } from "../l7/context.ts";
import { NativeSocketDuplex } from "../l7/duplex.ts";
import type { CloseOutcome } from "../obs/metrics.ts";
import type { RouteEntry } from "../state/state.ts";
import { Stage, type Conn } from "./conn.ts";
import type { Peeked } from "./peeked.ts";

export class L7Stage extends Stage {
  private readonly duplex: NativeSocketDuplex;
  private readonly l7: L7Conn;

  constructor(conn: Conn, entry: RouteEntry, peeked: Peeked) {
    super(conn);
    const { lc, sni } = conn;
    const { state, ls } = lc;
    this.duplex = new NativeSocketDuplex(conn.sock, peeked.take());
    this.l7 = lc.l7.serve(this.duplex, {
      route: () => state.lookupRoute(ls, sni) ?? entry,
      sni,
      client: conn.client,
      local: conn.local,
      listenerAddr: ls.record.addr,
      proxy: lc.proxy,
      onClose: (s) => {
        conn.bytesUp = s.bytesIn;
        conn.bytesDown = s.bytesOut;
        conn.fail(l7Outcome(s.outcome), s.outcome === "ok" ? "" : s.outcome);
        conn.finish();
      },
    });
    if (conn.draining) this.l7.beginDrain();
  }

  onData(chunk: Uint8Array): void {
    this.duplex.feed(chunk);
  }
  override onEnd(): void {
    this.duplex.feedEnd();
  }
  override onDrain(): void {
    this.duplex.drained();
  }
  onClose(err?: Error): void {
    this.duplex.socketClosed(err);
  }
  override tick(now: number): void {
    this.l7.tick(now);
  }
  override beginDrain(): void {
    this.l7.beginDrain();
  }
  override cut(): void {
    this.duplex.destroy(new Error("shutdown"));
    this.conn.sock.terminate();
  }
}

/** Maps the L7 handler's summary outcome onto the connection outcomes counted in metrics. */
function l7Outcome(o: string): CloseOutcome {
  if (o === "ok" || o === "idle_timeout") return o;
  if (o === "header_timeout") return "idle_timeout"; // HTTP/1.1 head not complete within hello_timeout
  if (o.startsWith("tls") || o === "no_cert") return "tls_failed";
  return "other";
}
