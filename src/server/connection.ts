/**
 * The per-connection pipeline (SPEC §4), top to bottom:
 *
 *   accept → listener limit → trusted-proxy check → [PROXY header] → firewall
 *          → ClientHello → route lookup → L4 relay | L7 handler → close + log
 *
 * One `Conn` per accepted socket; `ProxyServer` forwards the native socket's
 * events to it. Nothing is ever written to a client rejected before routing:
 * firewall, rate-limit and untrusted-proxy rejections are a TCP RST
 * (`terminate()`), the others a plain close.
 */
import type { Socket } from "bun";
import type { ProxyConfig } from "../config/types.ts";
import { parseBackendAddr } from "../config/validate.ts";
import { normalizeIp } from "../firewall/ip.ts";
import { cidrContains, parseCidr, type Cidr } from "../firewall/ip.ts";
import { Relay, type RelayOutcome } from "../l4/relay.ts";
import { NativeSocketDuplex } from "../l7/duplex.ts";
import type { L7Conn } from "../l7/context.ts";
import { serveL7, type L7Context } from "../l7/handler.ts";
import { log, logLevelEnabled } from "../obs/log.ts";
import { metrics, type CloseOutcome, type ListenerMetrics } from "../obs/metrics.ts";
import type { RouteRecord } from "../state/model.ts";
import type { ListenerState, RouteEntry, State } from "../state/state.ts";
import { ClientHelloReader } from "../wire/clienthello.ts";
import { encodeProxyV2, parseProxyHeader } from "../wire/proxyproto.ts";
import type { Firewall } from "../firewall/firewall.ts";

/** What every connection of one bound listener shares. */
export interface ListenerContext {
  ls: ListenerState;
  metrics: ListenerMetrics;
  state: State;
  firewall: Firewall;
  proxy: ProxyConfig;
  /** Called once per accepted connection, before `open()`. */
  track(conn: Conn): void;
  /** Called once per connection when it is finished (the server untracks it). */
  release(conn: Conn): void;
  /** The server's coarse clock (ms), advanced by its sweeper. */
  now(): number;
}

const enum Phase {
  ProxyHeader,
  Hello,
  Connecting,
  Relay,
  L7,
  Closed,
}

export interface Endpoint {
  address: string;
  port: number;
}

/** Parsed `proxy_protocol_trusted` lists, cached per listener record. */
const trustedCache = new WeakMap<object, Cidr[]>();
function trustedCidrs(ls: ListenerState): Cidr[] {
  let list = trustedCache.get(ls.record);
  if (!list) {
    list = ls.record.proxyProtocolTrusted.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
    trustedCache.set(ls.record, list);
  }
  return list;
}

/** Dial targets, parsed once per route record. */
const backendCache = new WeakMap<RouteRecord, { host: string; port: number }>();
function backendOf(r: RouteRecord): { host: string; port: number } {
  let b = backendCache.get(r);
  if (!b) {
    b = parseBackendAddr(r.backend);
    backendCache.set(r, b);
  }
  return b;
}

type BackendSocket = Socket<Conn>;

export class Conn {
  phase = Phase.Hello;
  /** The real client: the PROXY source when one was received, else the TCP peer. */
  client: Endpoint;
  /** Where the client connected to: the PROXY destination when present, else our local address. */
  local: Endpoint;
  readonly startedAt = performance.now();
  /** Coarse time of the last byte in either direction (idle timeout). */
  lastActivity: number;
  /** Absolute coarse deadline for the current phase (hello or connect); 0 = none. */
  deadline = 0;
  sni = "";
  route: RouteEntry | null = null;
  outcome: CloseOutcome = "ok";
  reason = "";
  private hello: ClientHelloReader | null = null;
  private headerBuf: Uint8Array | null = null;
  private headerLen = 0;
  private relay: Relay | null = null;
  private backend: BackendSocket | null = null;
  private duplex: NativeSocketDuplex | null = null;
  private l7: L7Conn | null = null;
  /** Graceful shutdown has begun (an L7 connection routed later starts draining at once). */
  private draining = false;
  private pendingUp: Uint8Array[] = [];
  private bytesUp = 0;
  private bytesDown = 0;
  private admitted = false;
  private finished = false;

  constructor(
    readonly lc: ListenerContext,
    readonly sock: Socket<Conn>,
  ) {
    this.client = { address: normalizeIp(sock.remoteAddress) ?? sock.remoteAddress, port: sock.remotePort };
    this.local = { address: normalizeIp(sock.localAddress) ?? sock.localAddress, port: sock.localPort };
    this.lastActivity = lc.now();
  }

  // ---------------------------------------------------------------- admission

  /** Steps 1–3 that can run before any byte is read. */
  open(): void {
    const { ls, metrics: m, proxy } = this.lc;
    m.accepted();
    const max = ls.record.maxConnections;
    if (max > 0 && ls.active >= max) return this.reject("max_connections", false);
    ls.active++;
    this.admitted = true;

    if (ls.record.proxyProtocol) {
      const trusted = trustedCidrs(ls);
      if (trusted.length > 0 && !trusted.some((c) => cidrContains(c, this.client.address))) {
        return this.reject("untrusted_proxy", true);
      }
      this.phase = Phase.ProxyHeader;
      this.headerBuf = new Uint8Array(0);
    } else if (!this.admitFirewall()) {
      return;
    } else {
      // PROXY listeners create the reader once the header is parsed (its cap shrinks by the header).
      this.hello = new ClientHelloReader(proxy.helloMaxBytes);
    }
    // Deadlines start from the real clock (one Date.now() per phase): the coarse
    // clock lags by up to one sweep, which would make a timeout fire early.
    this.deadline = Date.now() + proxy.helloTimeoutMs;
  }

  /** Step 3: the firewall on the real client address. False = reset sent. */
  private admitFirewall(): boolean {
    const blocked = this.lc.firewall.check(this.client.address);
    if (blocked === null) return true;
    this.reject(blocked, true);
    return false;
  }

  /** Refuses the connection: RST for firewall-class reasons, else a plain close. */
  private reject(reason: "max_connections" | "untrusted_proxy" | "ip" | "cidr" | "country" | "rate_limit" | "proxy_header", rst: boolean): void {
    this.lc.metrics.blocked(reason);
    this.outcome = "blocked";
    this.reason = reason;
    this.phase = Phase.Closed;
    if (rst) this.sock.terminate();
    else this.sock.end();
    this.finish();
  }

  // ---------------------------------------------------------------- bytes in

  /** Data from the client socket. */
  onData(chunk: Uint8Array): void {
    this.lastActivity = this.lc.now();
    switch (this.phase) {
      case Phase.Relay:
        this.relay!.fromClient(chunk);
        return;
      case Phase.L7:
        this.duplex!.feed(chunk);
        return;
      case Phase.ProxyHeader:
        return this.onHeaderBytes(chunk);
      case Phase.Hello:
        return this.onHelloBytes(chunk);
      case Phase.Connecting:
        this.pendingUp.push(chunk);
        this.sock.pause();
        return;
      case Phase.Closed:
        return;
    }
  }

  /** Step 2: accumulate and parse the PROXY header; the rest goes to the hello reader. */
  private onHeaderBytes(chunk: Uint8Array): void {
    // Grow by doubling: a header dribbled one byte at a time must not cost
    // a copy of everything so far per byte.
    let store = this.headerBuf!;
    const len = this.headerLen + chunk.length;
    if (len > store.length) {
      const next = new Uint8Array(Math.max(256, store.length * 2, len));
      next.set(store.subarray(0, this.headerLen));
      store = this.headerBuf = next;
    }
    store.set(chunk, this.headerLen);
    this.headerLen = len;
    const buf = store.subarray(0, len);
    const r = parseProxyHeader(buf);
    if (r.status === "need_more") {
      if (len >= this.lc.proxy.helloMaxBytes) return this.helloFailed("proxy_header", "too_large");
      return;
    }
    this.headerBuf = null;
    if (r.status === "error") return this.helloFailed("proxy_header", r.reason);
    const h = r.header;
    if (h.command === "proxy" && h.family !== "unknown" && h.source && h.destination) {
      this.client = { address: normalizeIp(h.source.address) ?? h.source.address, port: h.source.port };
      this.local = { address: normalizeIp(h.destination.address) ?? h.destination.address, port: h.destination.port };
    }
    if (!this.admitFirewall()) return;
    this.phase = Phase.Hello;
    this.hello = new ClientHelloReader(Math.max(1, this.lc.proxy.helloMaxBytes - r.length));
    if (r.length < buf.length) this.onHelloBytes(buf.subarray(r.length));
  }

  /** Step 4: read the ClientHello, then route. */
  private onHelloBytes(chunk: Uint8Array): void {
    const r = this.hello!.push(chunk);
    if (r.status === "need_more") return;
    if (r.status === "error") return this.helloFailed(r.reason, r.reason);
    if (r.sni === null) return this.helloFailed("no_sni", "no_sni");
    const entry = this.lc.state.lookupRoute(this.lc.ls, r.sni);
    this.sni = r.sni.toLowerCase();
    if (!entry) return this.helloFailed("unknown_sni", "no_route");
    this.route = entry;
    this.deadline = 0;
    if (entry.record.mode === "l7") this.startL7(entry);
    else this.startL4(entry);
  }

  /** The header or hello could not be used: count it, close without writing anything. */
  private helloFailed(metricReason: string, reason: string): void {
    if (metricReason === "proxy_header") this.lc.metrics.blocked("proxy_header");
    else metrics.helloFailure(metricReason as Parameters<typeof metrics.helloFailure>[0]);
    this.outcome = reason === "no_route" ? "no_route" : "hello_failed";
    this.reason = metricReason === "proxy_header" ? `proxy_header:${reason}` : reason;
    this.phase = Phase.Closed;
    this.sock.end();
    this.finish();
  }

  /** Hello/PROXY deadline passed (called by the server's sweeper). */
  expireHello(): void {
    if (this.phase === Phase.ProxyHeader) return this.helloFailed("proxy_header", "timeout");
    this.hello?.expire();
    this.helloFailed("timeout", "timeout");
  }

  // ---------------------------------------------------------------- L4

  private startL4(entry: RouteEntry): void {
    const rec = entry.record;
    this.phase = Phase.Connecting;
    this.deadline = Date.now() + this.lc.proxy.connectTimeoutMs;
    let first: Uint8Array = this.hello!.bytes();
    if (rec.sendProxyProtocol) {
      let header: Uint8Array;
      try {
        header = encodeProxyV2({ source: this.client, destination: this.local, authority: this.sni });
      } catch (e) {
        // Only an address the encoder cannot represent (e.g. a peer address Bun could not report): close, don't throw in a socket handler.
        return this.connectFailed(`proxy_header_encode: ${(e as Error).message}`);
      }
      const joined = new Uint8Array(header.length + first.length);
      joined.set(header);
      joined.set(first, header.length);
      first = joined;
    }
    this.pendingUp.push(first);
    this.hello = null;
    let target;
    try {
      target = backendOf(rec);
    } catch (e) {
      return this.connectFailed(e as Error);
    }
    Bun.connect<Conn>({
      hostname: target.host,
      port: target.port,
      allowHalfOpen: true,
      data: this,
      socket: backendHandlers,
    }).catch((e: Error) => this.connectFailed(e));
  }

  /** Backend socket connected. */
  onBackendOpen(b: BackendSocket): void {
    if (this.phase !== Phase.Connecting) {
      b.terminate(); // we gave up (timeout, client gone) while it was connecting
      return;
    }
    this.backend = b;
    this.deadline = 0;
    this.phase = Phase.Relay;
    this.relay = new Relay(this.sock, b, (o) => this.relayDone(o));
    const pending = this.pendingUp;
    this.pendingUp = [];
    for (const c of pending) this.relay.fromClient(c);
    if (this.clientEnded) this.relay.clientEnd();
    this.sock.resume();
  }

  private clientEnded = false;

  private connectFailed(e: Error | string): void {
    if (this.phase !== Phase.Connecting) return;
    this.lc.metrics.backendConnectFailure("l4");
    this.outcome = "backend_connect_failed";
    this.reason = typeof e === "string" ? e : (e as NodeJS.ErrnoException).code ?? e.message;
    this.phase = Phase.Closed;
    this.pendingUp = [];
    this.sock.end();
    this.finish();
  }

  /** Connect deadline passed (sweeper). */
  expireConnect(): void {
    this.connectFailed("connect_timeout");
  }

  private relayDone(o: RelayOutcome): void {
    this.bytesUp = this.relay!.clientToBackend;
    this.bytesDown = this.relay!.backendToClient;
    if (this.outcome === "ok") this.outcome = o;
    this.phase = Phase.Closed;
    this.finish();
  }

  onBackendData(chunk: Uint8Array): void {
    this.lastActivity = this.lc.now();
    this.relay?.fromBackend(chunk);
  }
  onBackendEnd(): void {
    this.relay?.backendEnd();
  }
  onBackendDrain(): void {
    this.relay?.backendDrain();
  }
  onBackendClose(err?: Error): void {
    if (this.relay) this.relay.backendClosed(err);
    else if (this.phase === Phase.Connecting) this.connectFailed(err ?? "closed");
  }

  // ---------------------------------------------------------------- L7

  private startL7(entry: RouteEntry): void {
    this.phase = Phase.L7;
    const duplex = new NativeSocketDuplex(this.sock, this.hello!.bytes());
    this.hello = null;
    this.duplex = duplex;
    const { state, ls } = this.lc;
    const sni = this.sni;
    const ctx: L7Context = {
      route: () => state.lookupRoute(ls, sni) ?? entry,
      sni,
      client: this.client,
      local: this.local,
      listenerAddr: ls.record.addr,
      proxy: this.lc.proxy,
      onClose: (s) => {
        this.bytesUp = s.bytesIn;
        this.bytesDown = s.bytesOut;
        // cut() at the shutdown deadline already decided the outcome.
        if (this.outcome !== "shutdown") {
          this.reason = s.outcome === "ok" ? "" : s.outcome;
          this.outcome = l7Outcome(s.outcome);
        }
        this.phase = Phase.Closed;
        this.finish();
      },
    };
    this.l7 = serveL7(duplex, ctx);
    if (this.draining) this.l7.beginDrain();
  }

  // ---------------------------------------------------------------- client events

  onClientEnd(): void {
    switch (this.phase) {
      case Phase.Relay:
        return this.relay!.clientEnd();
      case Phase.L7:
        return this.duplex!.feedEnd();
      case Phase.Connecting:
        this.clientEnded = true;
        return;
      case Phase.ProxyHeader:
        return this.helloFailed("proxy_header", "truncated");
      case Phase.Hello:
        this.hello?.end();
        return this.helloFailed("truncated", "truncated");
    }
  }

  onClientDrain(): void {
    if (this.phase === Phase.Relay) this.relay!.clientDrain();
    else if (this.phase === Phase.L7) this.duplex!.drained();
  }

  onClientClose(err?: Error): void {
    switch (this.phase) {
      case Phase.Relay:
        return this.relay!.clientClosed(err);
      case Phase.L7:
        return this.duplex!.socketClosed(err);
      case Phase.Connecting:
        this.phase = Phase.Closed;
        this.outcome = "error";
        this.reason = "client closed while connecting";
        this.finish();
        return;
      case Phase.ProxyHeader:
      case Phase.Hello:
        this.phase = Phase.Closed;
        metrics.helloFailure("truncated");
        this.outcome = "hello_failed";
        this.reason = "truncated";
        this.finish();
        return;
    }
  }

  // ---------------------------------------------------------------- timers and shutdown

  /** Called by the server's sweeper with its coarse clock. */
  tick(now: number): void {
    if (this.deadline !== 0 && now >= this.deadline) {
      if (this.phase === Phase.Connecting) this.expireConnect();
      else if (this.phase === Phase.ProxyHeader || this.phase === Phase.Hello) this.expireHello();
      return;
    }
    if (this.phase === Phase.Relay && now - this.lastActivity >= this.lc.proxy.idleTimeoutMs) {
      this.relay!.abort("idle_timeout");
    }
    // L7 connections keep their own idle timer (src/l7/handler.ts).
  }

  /**
   * Graceful shutdown has begun: an L7 connection is told to wind down
   * (HTTP/2 GOAWAY, HTTP/1.1 Connection: close — see L7Conn.beginDrain).
   * L4 relays are left to finish on their own; cut() ends what remains.
   */
  beginDrain(): void {
    this.draining = true;
    if (this.phase === Phase.L7) this.l7?.beginDrain();
  }

  /** Cuts the connection now (shutdown deadline). */
  cut(): void {
    if (this.outcome === "ok") this.outcome = "shutdown";
    switch (this.phase) {
      case Phase.Relay:
        return this.relay!.abort("shutdown");
      case Phase.L7:
        this.duplex!.destroy(new Error("shutdown"));
        this.sock.terminate();
        return;
      default:
        this.phase = Phase.Closed;
        this.backend?.terminate();
        this.sock.terminate();
        this.finish();
    }
  }

  // ---------------------------------------------------------------- close

  /** Exactly once: release the slot, count, and write the connection's log line. */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.admitted) this.lc.ls.active--;
    const m = this.lc.metrics;
    m.closed(this.outcome);
    const mode = this.route?.record.mode ?? "l4";
    if (this.bytesUp || this.bytesDown) m.bytes(mode, this.bytesUp, this.bytesDown);
    this.lc.release(this);
    if (!logLevelEnabled("info")) return;
    log.info("conn", {
      listener: this.lc.ls.record.addr,
      client: this.client.address.includes(":") ? `[${this.client.address}]:${this.client.port}` : `${this.client.address}:${this.client.port}`,
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

/** Maps the L7 handler's summary outcome onto the connection outcomes counted in metrics. */
function l7Outcome(o: string): CloseOutcome {
  if (o === "ok" || o === "idle_timeout") return o;
  if (o === "header_timeout") return "idle_timeout"; // HTTP/1.1 head not complete within hello_timeout
  if (o.startsWith("tls") || o === "no_cert") return "tls_failed";
  return "other";
}

/** Backend socket handlers, shared by every L4 connection. `socket.data` is the Conn. */
const backendHandlers = {
  open(b: BackendSocket) {
    b.data.onBackendOpen(b);
  },
  data(b: BackendSocket, chunk: Uint8Array) {
    b.data.onBackendData(chunk);
  },
  end(b: BackendSocket) {
    b.data.onBackendEnd();
  },
  drain(b: BackendSocket) {
    b.data.onBackendDrain();
  },
  close(b: BackendSocket, err?: Error) {
    b.data.onBackendClose(err);
  },
  error(b: BackendSocket, err: Error) {
    b.data.onBackendClose(err);
  },
  connectError(b: BackendSocket, err: Error) {
    b.data.onBackendClose(err);
  },
};
