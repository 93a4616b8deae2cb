/**
 * Shared raw-socket tools (L4 data path, drain, e2e): a plain TCP backend that records
 * what it receives, a raw client that reports HOW a connection ended (clean
 * FIN, RST, refused, or still open), a captured real ClientHello, and a log
 * capture for the per-connection log line. Everything is on loopback with
 * ephemeral ports and bounded in time.
 */
import net from "node:net";
import { setLogSink } from "../../src/obs/log.ts";
import { captureWithOpenssl } from "../wire/hello-fixtures.ts";

/** A real ClientHello (openssl s_client) for `sni`, captured once per name. */
const hellos = new Map<string, Promise<Uint8Array>>();
export function realHello(sni: string): Promise<Uint8Array> {
  let h = hellos.get(sni);
  if (!h) {
    h = captureWithOpenssl({ sni });
    hellos.set(sni, h);
  }
  return h;
}

/** One connection accepted by a `TcpSink`. */
export interface SinkConn {
  socket: net.Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves when the client's FIN arrived ('end'). */
  ended: Promise<void>;
  /** Resolves when the socket is fully closed. */
  closed: Promise<void>;
}

export interface TcpSink {
  port: number;
  conns: SinkConn[];
  /** Resolves with the n-th (0-based) accepted connection. */
  conn(n: number, ms?: number): Promise<SinkConn>;
  close(): void;
}

/**
 * A plain TCP backend on 127.0.0.1:0 with allowHalfOpen: it records every
 * byte and never writes unless `onConn` does.
 */
export async function startSink(onConn?: (c: SinkConn) => void, host = "127.0.0.1"): Promise<TcpSink> {
  const conns: SinkConn[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    let endRes!: () => void;
    let closeRes!: () => void;
    const c: SinkConn = {
      socket,
      received: () => Buffer.concat(chunks),
      ended: new Promise<void>((r) => (endRes = r)),
      closed: new Promise<void>((r) => (closeRes = r)),
    };
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("end", () => endRes());
    socket.on("close", () => closeRes());
    socket.on("error", () => {});
    conns.push(c);
    onConn?.(c);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    conns,
    conn: (n, ms = 10_000) => waitUntil(() => conns[n], ms, `backend connection #${n}`),
    close() {
      for (const c of conns) c.socket.destroy();
      server.close();
    },
  };
}

/** How a client connection ended, from the client's side. */
export type EndKind = "fin" | "reset" | "refused" | "timeout" | `error:${string}`;

export interface RawClient {
  socket: net.Socket;
  received(): Buffer;
  /** Resolves once the connection ended (or `timeoutMs` after `watch` began, as "timeout"). */
  outcome(timeoutMs?: number): Promise<{ kind: EndKind; bytes: Buffer; ms: number }>;
  /** Resolves when the TCP connection is established (rejects on refusal). */
  connected: Promise<void>;
  /** The client's local port, once connected (kept after close). */
  localPort(): number;
}

/**
 * Connects with node:net (allowHalfOpen) and tracks the end: "fin" (a clean
 * 'end' from the peer), "reset" (ECONNRESET), "refused" (ECONNREFUSED).
 */
export function rawConnect(port: number, opts: { host?: string; localAddress?: string } = {}): RawClient {
  const started = Date.now();
  const socket = net.connect({ port, host: opts.host ?? "127.0.0.1", localAddress: opts.localAddress, allowHalfOpen: true });
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  let kind: EndKind | null = null;
  let doneRes!: () => void;
  const done = new Promise<void>((r) => (doneRes = r));
  const settle = (k: EndKind) => {
    if (kind === null) kind = k;
    doneRes();
  };
  socket.on("data", (d: Buffer) => chunks.push(d));
  socket.on("end", () => settle("fin"));
  socket.on("error", (e: NodeJS.ErrnoException) => {
    settle(e.code === "ECONNRESET" ? "reset" : e.code === "ECONNREFUSED" ? "refused" : `error:${e.code ?? e.message}`);
  });
  socket.on("close", () => settle(kind ?? "fin"));
  let localPort = 0;
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("connect", () => {
      localPort = socket.localPort ?? 0;
      resolve();
    });
    socket.once("error", reject);
  });
  connected.catch(() => {});
  return {
    socket,
    connected,
    localPort: () => localPort,
    received: () => Buffer.concat(chunks),
    async outcome(timeoutMs = 10_000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
      return { kind: kind ?? "timeout", bytes: Buffer.concat(chunks), ms: Date.now() - started };
    },
  };
}

/** Polls `fn` every 10 ms until it returns a value; throws after `ms`. */
export async function waitUntil<T>(fn: () => T | undefined | null | false, ms = 10_000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** Captures log records (parsed JSON) until `stop()`, which restores the previous sink. */
export function captureLogs(): { records: Record<string, unknown>[]; stop: () => void; conns: () => Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const prev = setLogSink((line) => {
    try {
      records.push(JSON.parse(line));
    } catch {
      // not JSON: ignore (the logger only writes JSON)
    }
  });
  return { records, stop: () => void setLogSink(prev), conns: () => records.filter((r) => r.event === "conn") };
}

/** Resolves after the socket has written everything queued so far. */
export function writeAll(s: net.Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => s.write(data, (e) => (e ? reject(e) : resolve())));
}

/** sha256 hex of a buffer. */
export function sha256(b: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(b).digest("hex");
}
