/**
 * Helpers for the PROXY protocol end-to-end tests: a raw TCP backend that
 * records every byte of every connection, and a raw TCP client that reports
 * exactly what happened to it (bytes, reset, close, time).
 */
import net from "node:net";

export interface RawConn {
  /** Everything received so far on this backend connection. */
  bytes: Buffer;
  remoteAddress: string;
  remotePort: number;
}

export interface RawBackend {
  port: number;
  conns: RawConn[];
  /** Resolves with the n-th connection (0-based) once it holds at least `min` bytes. */
  waitBytes(index: number, min: number, ms?: number): Promise<RawConn>;
  stop(): void;
}

/** A raw TCP server on 127.0.0.1:0 that records bytes and never answers. */
export function rawBackend(): Promise<RawBackend> {
  const conns: RawConn[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    const c: RawConn = { bytes: Buffer.alloc(0), remoteAddress: s.remoteAddress ?? "", remotePort: s.remotePort ?? 0 };
    conns.push(c);
    s.on("data", (d: Buffer) => (c.bytes = Buffer.concat([c.bytes, d])));
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        conns,
        async waitBytes(index, min, ms = 10_000) {
          const end = Date.now() + ms;
          while (Date.now() < end) {
            const c = conns[index];
            if (c && c.bytes.length >= min) return c;
            await Bun.sleep(20);
          }
          throw new Error(`backend connection #${index} did not get ${min} bytes (have ${conns[index]?.bytes.length ?? "no connection"})`);
        },
        stop() {
          for (const s of sockets) s.destroy();
          server.close();
        },
      });
    });
  });
}

export interface Outcome {
  /** Bytes the client received before the connection ended. */
  received: number;
  /** The socket error code, e.g. "ECONNRESET"; undefined for a clean close. */
  error?: string;
  /** ms from connect to close. */
  elapsedMs: number;
  /** The client socket was still open when `holdMs` ran out (we closed it). */
  stillOpen: boolean;
}

/**
 * Connects to host (default 127.0.0.1):port (from `localAddress` if given), writes `chunks`
 * (each after `gapMs`), then waits up to `holdMs` for the server to close.
 * `close()` ends the wait early (the client destroys its socket).
 */
export function openClient(
  port: number,
  chunks: Uint8Array[],
  opts: { host?: string; localAddress?: string; gapMs?: number; holdMs?: number } = {},
): { done: Promise<Outcome>; close(): void; localPort(): number } {
  const holdMs = opts.holdMs ?? 5000;
  const started = Date.now();
  let received = 0;
  let error: string | undefined;
  let done = false;
  let resolveDone!: (o: Outcome) => void;
  const donePromise = new Promise<Outcome>((r) => (resolveDone = r));
  const s = net.connect({ port, host: opts.host ?? "127.0.0.1", localAddress: opts.localAddress });
  s.setNoDelay(true);
  const finish = (stillOpen: boolean) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    s.destroy();
    resolveDone({ received, error, elapsedMs: Date.now() - started, stillOpen });
  };
  const timer = setTimeout(() => finish(true), holdMs);
  s.on("connect", async () => {
    for (const c of chunks) {
      if (done || s.destroyed) return;
      s.write(c);
      if (opts.gapMs) await Bun.sleep(opts.gapMs);
    }
  });
  s.on("data", (d) => (received += d.length));
  s.on("error", (e: NodeJS.ErrnoException) => {
    error ??= e.code ?? e.message;
  });
  s.on("close", () => finish(false));
  return { done: donePromise, close: () => finish(true), localPort: () => s.localPort ?? 0 };
}

/** openClient, waiting for the server to close (or `holdMs`). */
export function rawClient(
  port: number,
  chunks: Uint8Array[],
  opts: { host?: string; localAddress?: string; gapMs?: number; holdMs?: number } = {},
): Promise<Outcome> {
  return openClient(port, chunks, opts).done;
}

/** Splits bytes into one-byte chunks. */
export function bytewise(b: Uint8Array): Uint8Array[] {
  return Array.from(b, (_, i) => b.subarray(i, i + 1));
}

export const ascii = (s: string) => new TextEncoder().encode(s);
export const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
