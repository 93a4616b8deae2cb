/**
 * L7: the connection is handed to the L7 runtime with the peeked ClientHello,
 * which terminates TLS on the socket itself (src/l7/tls.ts). From then on the
 * TLS socket's own handlers carry every event; the listener's handlers still
 * see the raw socket's ciphertext and close, which this stage ignores. It
 * forwards the server's clock and shutdown to the L7 connection.
 */
import { normalizeHostname } from "../config/validate.ts";
import type { L7Conn } from "../l7/conn.ts";
import type { CloseOutcome } from "../obs/metrics.ts";
import type { RouteEntry } from "../state/state.ts";
import { Stage, type Conn } from "./conn.ts";
import type { Peeked } from "./peeked.ts";

export class L7Stage extends Stage {
  private l7: L7Conn | null = null;

  constructor(
    conn: Conn,
    private readonly entry: RouteEntry,
    private readonly peeked: Peeked,
  ) {
    super(conn);
  }

  /** Starts the TLS handshake (its failure may end the connection before this returns). */
  start(): void {
    const { conn, entry, peeked } = this;
    const { lc, sni } = conn;
    const { state, ls } = lc;
    // The name the connection was routed by, as routes are matched (one trailing dot dropped):
    // the 421 check compares the request's host with it (SPEC §5), and it is the route key.
    const key = normalizeHostname(sni);
    this.l7 = lc.l7.serve(
      conn.sock,
      peeked.take(),
      {
        route: () => state.lookupRouteKey(ls, key) ?? entry,
        sni: key,
        client: conn.client,
        local: conn.local,
        listenerAddr: ls.record.addr,
        proxy: lc.proxy,
        firstByteAt: conn.firstByteAt,
        now: lc.now,
        onClose: (s) => {
          conn.bytesUp = s.bytesIn;
          conn.bytesDown = s.bytesOut;
          conn.fail(l7Outcome(s.outcome), s.outcome === "ok" ? "" : s.outcome);
          conn.finish();
        },
      },
      entry,
    );
    if (conn.draining) this.l7?.beginDrain();
  }

  /** Ciphertext: the TLS layer reads it natively. */
  onData(): void {}
  /** FIN on the raw socket: during the handshake the TLS socket does not report it. */
  override onEnd(): void {
    this.l7?.rawEnd();
  }
  /** The raw socket's close arrives with the TLS socket's, which ends the connection. */
  onClose(): void {}
  override tick(now: number): void {
    this.l7?.tick(now);
  }
  override beginDrain(): void {
    this.l7?.beginDrain();
  }
  override cut(): void {
    this.l7?.abort();
  }
}

/** Maps the L7 connection's outcome onto the connection outcomes counted in metrics. */
function l7Outcome(o: string): CloseOutcome {
  if (o === "ok" || o === "idle_timeout" || o === "header_timeout") return o;
  if (o.startsWith("tls") || o === "no_cert") return "tls_failed";
  return "other";
}
