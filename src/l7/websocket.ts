/**
 * WebSocket over HTTP/1.1 Upgrade (SPEC §5). After the host check and the
 * policies we dial a fresh backend connection (TLS and PROXY header as the
 * route says — always HTTP/1.1, whatever backend_protocol is), send the
 * upgrade request with the forwarding headers, and read the backend's answer:
 * - `101` with `Upgrade: websocket`: the answer is passed on and the
 *   connection becomes a byte tunnel (the L4 relay, src/l4/relay.ts);
 * - anything else is relayed as a normal response and the connection then
 *   closes: a refused upgrade never becomes a tunnel past the policies.
 */
import type { Socket } from "bun";
import { socketError } from "../net/socket-error.ts";
import { Relay } from "../l4/relay.ts";
import { log, logLevelEnabled } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import { encodeProxyV2 } from "../wire/proxyproto.ts";
import { targetFor, type BackendTarget } from "./backend/target.ts";
import type { L7Conn, ProtocolFront } from "./conn.ts";
import { BODY_403, BODY_421, BODY_502, BODY_502_ERR, BODY_504 } from "./exchange.ts";
import { ChunkedDecoder, LengthDecoder, parseResponseHead, serializeRequestHead, serializeResponseHead, type H1BodyDecoder, type RequestHead } from "./h1/codec.ts";
import { clientHandshakeError, dialTcp, startTls, type DialClient } from "./h1/dial.ts";
import { reasonPhrase } from "./h1/front.ts";
import { authorityHost, backendRequestFields, clientResponseFields, fieldJoined } from "./headers.ts";
import { evaluatePolicies } from "./policy.ts";

type BackSock = Socket<WsTunnel>;

const backHandlers = {
  open() {},
  handshake(s: BackSock, ok: boolean, err: Error | null) {
    s.data.backendHandshake(ok, err);
  },
  data(s: BackSock, chunk: Uint8Array) {
    s.data.backendData(chunk);
  },
  end(s: BackSock) {
    s.data.backendEnd();
  },
  drain(s: BackSock) {
    s.data.backendDrain();
  },
  close(s: BackSock, err?: Error) {
    s.data.backendClosed(err);
  },
  error(s: BackSock, err: Error) {
    socketError("l7.websocket_backend", s, err, (e) => s.data.backendClosed(e));
  },
};

/** Takes over `conn` for the WebSocket upgrade request `h`; `rest` = client bytes after its head. */
export function startWebSocket(conn: L7Conn, h: RequestHead, rest: Uint8Array): void {
  const t = new WsTunnel(conn, h, rest);
  conn.replaceFront(t);
  t.start();
}

const enum Phase {
  Dialing,
  AwaitHead,
  /** A refused upgrade: relaying the answer's body, then closing. */
  Refused,
  Tunnel,
  Done,
}

class WsTunnel implements ProtocolFront, DialClient {
  private phase = Phase.Dialing;
  private back: BackSock | null = null;
  private dial: { destroy(): void } | null = null;
  private relay: Relay | null = null;
  /** Client bytes that arrived before the tunnel (the client is paused meanwhile). */
  private early: Uint8Array[] = [];
  private clientEnded = false;
  private headBuf: Uint8Array = new Uint8Array(0);
  private decoder: H1BodyDecoder | null = null;
  private status = 0;
  private readonly t0 = performance.now();
  private readonly deadline: number;
  private lastActivity: number;
  private logged = false;
  private target: BackendTarget | null = null;

  constructor(
    private readonly conn: L7Conn,
    private readonly h: RequestHead,
    rest: Uint8Array,
  ) {
    if (rest.byteLength) this.early.push(rest);
    this.deadline = Date.now() + conn.ctx.proxy.connectTimeoutMs + conn.ctx.proxy.backendTimeoutMs;
    this.lastActivity = conn.ctx.now();
  }

  start(): void {
    const conn = this.conn;
    const ctx = conn.ctx;
    conn.requests++;
    const entry = ctx.route();
    const record = entry.record;
    const host = this.h.host === "" ? ctx.sni : authorityHost(this.h.host);
    if (host !== ctx.sni) return this.answer(421, BODY_421);
    if (record.l7Policies.length > 0) {
      const v = evaluatePolicies(record.l7Policies, (n) => fieldJoined(this.h.headers, n));
      if (v.blocked) {
        log.info("l7.policy_block", { listener: ctx.listenerAddr, route: record.hostname, client: ctx.client.address, policy: v.policy.type, value: v.policy.value });
        return this.answer(403, BODY_403);
      }
    }
    try {
      this.target = targetFor(entry);
    } catch (e) {
      log.error("l7.route_error", { listener: ctx.listenerAddr, route: record.hostname, reason: (e as Error).message });
      return this.answer(502, BODY_502_ERR);
    }
    conn.tls.pause();
    this.dial = dialTcp(this.target.host, this.target.port, backHandlers, this);
  }

  // ------------------------------------------------ backend

  onTcpConnected(s: Socket<this>): void {
    this.dial = null;
    if (this.phase === Phase.Done) return s.terminate();
    const rec = this.conn.ctx.route().record;
    let sock = s as BackSock;
    if (rec.sendProxyProtocol) {
      const c = this.conn.ctx;
      sock.write(encodeProxyV2({ source: c.client, destination: c.local, authority: c.sni }));
    }
    this.back = sock;
    if (this.target!.tls) {
      sock = startTls(sock, this.target!.tls, backHandlers, this);
      this.back = sock;
      return; // the request goes out once the handshake is done
    }
    this.sendRequest();
  }

  onTcpError(code: string, message: string): void {
    this.dial = null;
    this.backendFailed(`${code} ${message}`, true);
  }

  backendHandshake(ok: boolean, err: Error | null): void {
    if (this.phase !== Phase.Dialing) return;
    if (clientHandshakeError(ok, err, this.target!.tls!) !== null) return this.backendFailed(`TLS: ${err?.message ?? "handshake failed"}`, true);
    this.sendRequest();
  }

  private sendRequest(): void {
    const ctx = this.conn.ctx;
    const authority = this.h.host === "" ? this.target!.defaultAuthority : this.h.host;
    const fields = ["host", authority, "connection", "upgrade", "upgrade", "websocket", ...backendRequestFields(this.h.headers, ctx.client.address)];
    const head = serializeRequestHead(this.h.method, this.h.target, fields);
    if (!(head instanceof Uint8Array)) return this.backendFailed(`request head: ${head.reason}`, false);
    this.phase = Phase.AwaitHead;
    this.back!.write(head);
  }

  backendData(chunk: Uint8Array): void {
    this.lastActivity = this.conn.ctx.now();
    if (this.phase === Phase.Tunnel) return this.relay!.fromBackend(chunk);
    if (this.phase === Phase.Refused) return this.refusedBody(chunk, 0);
    if (this.phase !== Phase.AwaitHead) return;
    const buf = concat(this.headBuf, chunk);
    const r = parseResponseHead(buf, 0, buf.byteLength, "GET");
    if (r.kind === "more") {
      this.headBuf = buf;
      return;
    }
    this.headBuf = new Uint8Array(0);
    if (r.kind === "error") return this.backendFailed(`response head: ${r.reason}`, false);
    if (r.status >= 100 && r.status < 200 && r.status !== 101) {
      // An interim answer: wait for the final one.
      return this.backendData(buf.subarray(r.length));
    }
    this.status = r.status;
    const accepted = r.status === 101 && r.upgrade.toLowerCase().includes("websocket");
    if (accepted) {
      // Passed on as the backend sent it (its Connection/Upgrade fields are the handshake).
      this.toClient(buf.subarray(0, r.length));
      this.openTunnel(buf.subarray(r.length));
      return;
    }
    // Refused: a normal response, then the connection closes.
    const f = clientResponseFields(r.headers, r.contentLength >= 0);
    if (r.framing === "chunked") f.push("transfer-encoding", "chunked");
    f.push("connection", "close");
    const head = serializeResponseHead(r.status, reasonPhrase(r.status) || r.reason, f);
    if (!(head instanceof Uint8Array)) return this.backendFailed(`response head: ${head.reason}`, false);
    this.toClient(head);
    this.phase = Phase.Refused;
    this.decoder = r.framing === "length" ? new LengthDecoder(r.contentLength) : r.framing === "chunked" ? new ChunkedDecoder(undefined, 502) : null;
    if (r.framing === "none") return this.finishRefused();
    this.refusedBody(buf, r.length);
  }

  /** The refused answer's body, forwarded as framed (chunked stays chunked) until it ends. */
  private refusedBody(buf: Uint8Array, from: number): void {
    const d = this.decoder;
    if (d === null) {
      // Delimited by the backend's close.
      if (from < buf.byteLength) this.toClient(buf.subarray(from));
      return;
    }
    const n = d.push(buf, from, buf.byteLength, () => {});
    if (typeof n !== "number") return this.backendFailed(`response body: ${n.reason}`, false);
    this.toClient(buf.subarray(from, from + n));
    if (d.done) this.finishRefused();
  }

  private finishRefused(): void {
    this.phase = Phase.Done;
    this.back?.terminate();
    this.logDone();
    this.closeGently();
  }

  /** Writes to the client; what the socket does not take waits for its drain, and the backend pauses meanwhile. */
  private toClient(b: Uint8Array): void {
    if (this.conn.send(b) > 0) this.back?.pause();
  }

  private closeGently(): void {
    this.conn.closeGently();
  }

  private openTunnel(leftover: Uint8Array): void {
    this.phase = Phase.Tunnel;
    const conn = this.conn;
    const relay = (this.relay = new Relay(conn.tls, this.back!, () => {
      conn.bytesOut += relay.backendToClient;
      this.logDone();
    }));
    if (leftover.byteLength) relay.fromBackend(leftover);
    for (const c of this.early) relay.fromClient(c);
    this.early = [];
    if (this.clientEnded) relay.clientEnd();
    if (relay.up.idle) conn.tls.resume();
  }

  backendEnd(): void {
    if (this.phase === Phase.Tunnel) return this.relay!.backendEnd();
    if (this.phase === Phase.Refused && this.decoder === null) return this.finishRefused();
  }

  backendDrain(): void {
    if (this.phase === Phase.Tunnel) this.relay!.backendDrain();
  }

  backendClosed(err?: Error): void {
    if (this.phase === Phase.Tunnel) return this.relay!.backendClosed(err);
    if (this.phase === Phase.Refused && this.decoder === null) return this.finishRefused();
    if (this.phase === Phase.Dialing || this.phase === Phase.AwaitHead) this.backendFailed(err ? `${(err as { code?: string }).code ?? ""} ${err.message}`.trim() : "backend closed", this.phase === Phase.Dialing);
    else if (this.phase === Phase.Refused) this.conn.abort();
  }

  private backendFailed(reason: string, connect: boolean): void {
    if (this.phase === Phase.Done || this.phase === Phase.Tunnel) return;
    const ctx = this.conn.ctx;
    const rec = ctx.route().record;
    log.warn("l7.backend_error", { listener: ctx.listenerAddr, route: rec.hostname, backend: rec.backend, status: 502, reason });
    if (connect) metrics.listener(ctx.listenerAddr).backendConnectFailure("l7");
    this.back?.terminate();
    this.answer(502, connect ? BODY_502 : BODY_502_ERR);
  }

  /** A short text answer, then close (no tunnel). */
  private answer(status: number, text: string): void {
    this.phase = Phase.Done;
    this.status = status;
    this.dial?.destroy();
    const head = serializeResponseHead(status, reasonPhrase(status), [
      "content-type", "text/plain; charset=utf-8", "content-length", String(Buffer.byteLength(text)), "connection", "close",
    ]) as Uint8Array;
    this.toClient(concat(head, Buffer.from(text)));
    this.logDone();
    this.closeGently();
  }

  // ------------------------------------------------ client (the TLS socket)

  onData(chunk: Uint8Array): void {
    this.lastActivity = this.conn.ctx.now();
    if (this.phase === Phase.Tunnel) return this.relay!.fromClient(chunk);
    if (this.phase === Phase.Dialing || this.phase === Phase.AwaitHead) {
      this.early.push(chunk.slice());
      this.conn.tls.pause();
    }
  }

  onEnd(): void {
    if (this.phase === Phase.Tunnel) return this.relay!.clientEnd();
    this.clientEnded = true;
  }

  onDrain(): void {
    if (this.phase === Phase.Tunnel) return this.relay!.clientDrain();
    if (this.conn.flushQueued()) this.back?.resume();
  }

  onClose(): void {
    if (this.phase === Phase.Tunnel) return this.relay!.clientClosed();
    this.phase = Phase.Done;
    this.dial?.destroy();
    this.back?.terminate();
    this.logDone();
  }

  tick(now: number): void {
    const p = this.conn.ctx.proxy;
    if (this.phase === Phase.Dialing || this.phase === Phase.AwaitHead) {
      if (Date.now() >= this.deadline) {
        this.back?.terminate();
        this.back = null;
        this.answer(504, BODY_504);
      }
      return;
    }
    if (this.phase === Phase.Tunnel && now - this.lastActivity >= p.idleTimeoutMs) this.relay!.abort("idle_timeout");
  }

  /** A WebSocket runs until the shutdown deadline. */
  beginDrain(): void {}

  private logDone(): void {
    if (this.logged) return;
    this.logged = true;
    const ctx = this.conn.ctx;
    const rec = ctx.route().record;
    metrics.route(rec.hostname).request(this.status, (performance.now() - this.t0) / 1000);
    if (!logLevelEnabled("info")) return;
    const q = this.h.target.indexOf("?");
    log.info("l7.request", {
      listener: ctx.listenerAddr,
      route: rec.hostname,
      client: ctx.client.address,
      method: this.h.method,
      path: q < 0 ? this.h.target : this.h.target.slice(0, q),
      status: this.status,
      bytes_in: this.relay?.clientToBackend ?? 0,
      bytes_out: this.relay?.backendToClient ?? 0,
      duration_ms: Math.round(performance.now() - this.t0),
      backend: rec.backend,
      protocol: "websocket",
    });
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b.slice();
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

