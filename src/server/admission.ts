/**
 * The first stages of a connection, before any byte is read or while only
 * the PROXY header is: descriptor budget → listener limit → trusted-proxy
 * check → [PROXY header] → firewall. Nothing is ever written to a client
 * rejected here: firewall, rate-limit and untrusted-proxy rejections are a
 * TCP RST, the others a plain close.
 */
import { PROXY_HEADER_INITIAL_BYTES } from "../limits.ts";
import { fdBudget } from "../net/fds.ts";
import { cidrContains, normalizeIp, parseCidr, type Cidr } from "../net/ip.ts";
import type { BlockReason } from "../obs/metrics.ts";
import type { ListenerState } from "../state/state.ts";
import { parseProxyHeader } from "../wire/proxyproto.ts";
import { Stage, type Conn } from "./conn.ts";
import { HelloStage, helloFailed } from "./hello.ts";

/** Parsed `proxy_protocol_trusted` lists, cached per listener record (an admin change replaces the record). */
const trustedCache = new WeakMap<object, Cidr[]>();
function trustedCidrs(ls: ListenerState): Cidr[] {
  let list = trustedCache.get(ls.record);
  if (!list) {
    list = ls.record.proxyProtocolTrusted.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
    trustedCache.set(ls.record, list);
  }
  return list;
}

/**
 * Admits a just-accepted connection and hands it to its first reading stage,
 * or rejects it. Deadlines start from the real clock: the coarse clock lags
 * by up to one sweep, which would make a timeout fire early.
 */
export function admit(conn: Conn): void {
  const { ls, metrics: m, proxy } = conn.lc;
  m.accepted();
  // Near the descriptor limit: close at once, so accept() never meets EMFILE (src/net/fds.ts).
  if (fdBudget.full()) {
    fdBudget.noteRefused();
    return reject(conn, "fd_limit", false);
  }
  // One cap for the process: the counter is shared by every data-path thread.
  if (!conn.lc.counters.tryAdmit(ls.slot, ls.record.maxConnections)) return reject(conn, "max_connections", false);
  conn.admitted = true;
  const deadline = Date.now() + proxy.helloTimeoutMs;

  if (ls.record.proxyProtocol) {
    const trusted = trustedCidrs(ls);
    if (trusted.length > 0 && !trusted.some((c) => cidrContains(c, conn.client.address))) {
      return reject(conn, "untrusted_proxy", true);
    }
    conn.enter(new ProxyHeaderStage(conn, deadline));
    return;
  }
  if (!admitFirewall(conn)) return;
  conn.enter(new HelloStage(conn, proxy.helloMaxBytes, deadline));
}

/** The firewall on the real client address. False = the connection was reset. */
function admitFirewall(conn: Conn): boolean {
  const blocked = conn.lc.firewall.check(conn.client.address);
  if (blocked === null) return true;
  reject(conn, blocked, true);
  return false;
}

/** Refuses the connection: RST for firewall-class reasons, else a plain close. */
function reject(conn: Conn, reason: BlockReason, rst: boolean): void {
  conn.lc.metrics.blocked(reason);
  conn.fail("blocked", reason);
  conn.finish(); // first: the close may be reported synchronously inside terminate()/end()
  if (rst) conn.sock.terminate();
  else conn.sock.end();
}

/**
 * Accumulates and parses the PROXY header (PROXY listeners only); its source
 * becomes the client, then the firewall runs and the rest of the bytes go to
 * the ClientHello stage. The header counts against `hello_max_bytes` and
 * `hello_timeout`.
 */
class ProxyHeaderStage extends Stage {
  private buf = new Uint8Array(PROXY_HEADER_INITIAL_BYTES);
  private len = 0;

  constructor(
    conn: Conn,
    private readonly deadline: number,
  ) {
    super(conn);
  }

  onData(chunk: Uint8Array): void {
    if (this.conn.firstByteAt === 0) this.conn.firstByteAt = Date.now();
    // Grow by doubling: a header dribbled one byte at a time must not cost
    // a copy of everything so far per byte.
    const len = this.len + chunk.length;
    if (len > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, len));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
    }
    this.buf.set(chunk, this.len);
    this.len = len;
    const bytes = this.buf.subarray(0, len);
    const r = parseProxyHeader(bytes);
    const conn = this.conn;
    const max = conn.lc.proxy.helloMaxBytes;
    if (r.status === "need_more") {
      if (len >= max) helloFailed(conn, "proxy_header", "too_large");
      return;
    }
    if (r.status === "error") return helloFailed(conn, "proxy_header", r.reason);
    const h = r.header;
    if (h.command === "proxy" && h.family !== "unknown" && h.source && h.destination) {
      conn.client = { address: normalizeIp(h.source.address) ?? h.source.address, port: h.source.port };
      conn.local = { address: normalizeIp(h.destination.address) ?? h.destination.address, port: h.destination.port };
    }
    if (!admitFirewall(conn)) return;
    const hello = new HelloStage(conn, Math.max(1, max - r.length), this.deadline);
    conn.enter(hello);
    if (r.length < len) hello.onData(bytes.subarray(r.length));
  }

  // A client that hangs up mid-header sent a truncated hello, not a malformed header.
  override onEnd(): void {
    helloFailed(this.conn, "truncated", "proxy_header:truncated");
  }

  onClose(): void {
    helloFailed(this.conn, "truncated", "proxy_header:truncated", false);
  }

  override tick(now: number): void {
    if (now >= this.deadline) helloFailed(this.conn, "proxy_header", "timeout");
  }
}
