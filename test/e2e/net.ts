/**
 * Real network peers for the e2e tests: a TLS echo backend that tags its
 * replies with its name (so a test can tell which backend a route reached), a
 * TLS client session through the proxy, and a raw TCP client that records how
 * the connection ended (FIN, RST) and every byte it got.
 */
import net from "node:net";
import tls from "node:tls";
import type { CertFiles } from "../fixtures/certs.ts";
import { rawConnect } from "../helpers/net.ts";

export interface EchoBackend {
  name: string;
  port: number;
  addr: string;
  /** TLS connections accepted so far. */
  accepted: number;
  stop(): Promise<void>;
}

/** A TLS server that answers every chunk `x` with `<name>:x`. */
export async function startTlsEcho(name: string, cert: CertFiles): Promise<EchoBackend> {
  const socks = new Set<tls.TLSSocket>();
  const b: EchoBackend = { name, port: 0, addr: "", accepted: 0, stop: async () => {} };
  const server = tls.createServer({ cert: cert.fullchainPem, key: cert.keyPem }, (s) => {
    b.accepted++;
    socks.add(s);
    s.on("data", (d) => s.write(`${name}:${d}`));
    s.on("error", () => {});
    s.on("close", () => socks.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  b.port = (server.address() as net.AddressInfo).port;
  b.addr = `127.0.0.1:${b.port}`;
  b.stop = () =>
    new Promise<void>((r) => {
      for (const s of socks) s.destroy();
      server.close(() => r());
    });
  return b;
}

export interface TlsSession {
  socket: tls.TLSSocket;
  /** Sends `msg` and resolves with everything received up to a newline (rejects after `ms`). */
  exchange(msg: string, ms?: number): Promise<string>;
  close(): void;
}

/** A TLS connection to 127.0.0.1:`port` with SNI `sni`, verified against `caPem`. Resolves after the handshake. */
export function tlsSession(port: number, sni: string, caPem: string, opts: { localAddress?: string; ms?: number } = {}): Promise<TlsSession> {
  return new Promise((resolve, reject) => {
    // localAddress is passed through to the TCP connect (node's typings omit it for tls.connect).
    const connectOpts: tls.ConnectionOptions & { localAddress?: string } = { host: "127.0.0.1", port, servername: sni, ca: caPem, localAddress: opts.localAddress };
    const socket = tls.connect(connectOpts);
    let buf = "";
    let waiter: (() => void) | null = null;
    let ended: Error | null = null;
    socket.on("data", (d) => {
      buf += d.toString();
      waiter?.();
    });
    const fail = (e: Error) => {
      ended = e;
      waiter?.();
    };
    socket.on("error", (e) => fail(e));
    socket.on("close", () => fail(new Error("connection closed")));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TLS handshake with ${sni} via :${port} timed out`));
    }, opts.ms ?? 15_000);
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve({
        socket,
        close: () => socket.destroy(),
        exchange(msg, ms = 15_000) {
          buf = "";
          socket.write(msg + "\n");
          return new Promise<string>((res, rej) => {
            const t = setTimeout(() => done(new Error(`no reply to ${JSON.stringify(msg)} within ${ms} ms (got ${JSON.stringify(buf)})`)), ms);
            const done = (e?: Error) => {
              clearTimeout(t);
              waiter = null;
              if (e) rej(e);
              else res(buf.slice(0, buf.indexOf("\n")));
            };
            waiter = () => {
              if (buf.includes("\n")) done();
              else if (ended) done(new Error(`${ended.message} before a reply to ${JSON.stringify(msg)} (got ${JSON.stringify(buf)})`));
            };
            waiter();
          });
        },
      });
    });
  });
}

/** One TLS round trip through the proxy: the reply to "ping" (e.g. "A:ping"). */
export async function echoVia(port: number, sni: string, caPem: string, opts: { localAddress?: string } = {}): Promise<string> {
  const s = await tlsSession(port, sni, caPem, opts);
  try {
    return await s.exchange("ping");
  } finally {
    s.close();
  }
}

export type EndKind = "fin" | "reset" | "timeout" | `error:${string}`;

/**
 * Opens a plain TCP connection, writes `send` (e.g. a captured ClientHello)
 * once connected, and resolves with how it ended and the bytes received
 * (EPIPE counts as a reset here: the proxy may cut us while we write).
 */
export async function rawAttempt(
  port: number,
  send: Uint8Array | null,
  opts: { localAddress?: string; ms?: number } = {},
): Promise<{ kind: EndKind; bytes: Buffer }> {
  const c = rawConnect(port, { localAddress: opts.localAddress });
  if (send) c.connected.then(() => c.socket.write(send), () => {});
  const { kind } = await c.outcome(opts.ms ?? 15_000);
  c.socket.destroy();
  await Bun.sleep(10); // give 'data' that raced the end a moment
  const k: EndKind = kind === "refused" ? "error:ECONNREFUSED" : kind === "error:EPIPE" ? "reset" : kind;
  return { kind: k, bytes: c.received() };
}

export interface CurlResult {
  /** curl's exit code (0 = transfer ok, whatever the HTTP status). */
  code: number;
  status: number;
  /** "2" or "1.1". */
  httpVersion: string;
  body: string;
  stderr: string;
}

/**
 * Runs the real curl against https://<host>:<port><path>, resolved to
 * 127.0.0.1 and verified against `caPath`; `args` are extra flags (--http2, -A, -H).
 */
export async function curlVia(port: number, host: string, caPath: string, urlPath: string, args: string[] = []): Promise<CurlResult> {
  const marker = "\n@@E2E@@";
  const p = Bun.spawn(
    ["curl", "-sS", "--max-time", "30", "--resolve", `${host}:${port}:127.0.0.1`, "--cacert", caPath,
      "-w", `${marker}%{http_code} %{http_version}`, ...args, `https://${host}:${port}${urlPath}`],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const m = out.lastIndexOf(marker);
  const [status, version] = m >= 0 ? out.slice(m + marker.length).split(" ") : ["0", ""];
  return { code, status: Number(status), httpVersion: version ?? "", body: m >= 0 ? out.slice(0, m) : out, stderr: err };
}
