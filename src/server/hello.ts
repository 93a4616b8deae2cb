/**
 * Reads the ClientHello without consuming it, finds the route for its SNI and
 * hands the connection, with every byte read so far, to the L4 dial or the
 * L7 handler.
 */
import { metrics, type HelloFailure } from "../obs/metrics.ts";
import { ClientHelloReader } from "../wire/clienthello.ts";
import { Stage, type Conn } from "./conn.ts";
import { DialStage } from "./dial.ts";
import { L7Stage } from "./l7.ts";
import { Peeked } from "./peeked.ts";

/**
 * The header or hello could not be used: count it and close without writing
 * anything (`endSocket` false when the client already closed).
 */
export function helloFailed(conn: Conn, metricReason: HelloFailure | "proxy_header", reason: string, endSocket = true): void {
  if (metricReason === "proxy_header") conn.lc.metrics.blocked("proxy_header");
  else metrics.helloFailure(metricReason);
  conn.fail(reason === "no_route" ? "no_route" : "hello_failed", metricReason === "proxy_header" ? `proxy_header:${reason}` : reason);
  // finish() first: Bun may report the close synchronously inside end(), and
  // the finished connection's stage (Closed) must be the one that hears it.
  conn.finish();
  if (endSocket) conn.sock.end();
}

export class HelloStage extends Stage {
  private readonly reader: ClientHelloReader;

  /** `maxBytes`: what is left of `hello_max_bytes`; `deadline`: absolute, from the first byte's stage. */
  constructor(
    conn: Conn,
    maxBytes: number,
    private readonly deadline: number,
  ) {
    super(conn);
    this.reader = new ClientHelloReader(maxBytes);
  }

  onData(chunk: Uint8Array): void {
    if (this.conn.firstByteAt === 0) this.conn.firstByteAt = Date.now();
    const r = this.reader.push(chunk);
    if (r.status === "need_more") return;
    const conn = this.conn;
    if (r.status === "error") return helloFailed(conn, r.reason, r.reason);
    if (r.sni === null) return helloFailed(conn, "no_sni", "no_sni");
    const entry = conn.lc.state.lookupRoute(conn.lc.ls, r.sni);
    conn.sni = r.sni.toLowerCase();
    if (!entry) return helloFailed(conn, "unknown_sni", "no_route");
    conn.route = entry;
    const peeked = new Peeked(this.reader.bytes());
    // Hand over first, then start: the next stage's first events may fire synchronously.
    const next = entry.record.mode === "l7" ? new L7Stage(conn, entry, peeked) : new DialStage(conn, entry, peeked);
    conn.enter(next);
    next.start();
  }

  override onEnd(): void {
    this.reader.end();
    helloFailed(this.conn, "truncated", "truncated");
  }

  onClose(): void {
    helloFailed(this.conn, "truncated", "truncated", false);
  }

  override tick(now: number): void {
    if (now < this.deadline) return;
    this.reader.expire();
    helloFailed(this.conn, "timeout", "timeout");
  }
}
