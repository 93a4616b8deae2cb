/**
 * Test helper: the real clients the observability tests drive a proxy with —
 * curl for L7, `openssl s_client -tls1_2` for a refused handshake, a node:tls
 * client for an L4 passthrough echo, a plain-text client for `not_tls`.
 * Every call is bounded in time.
 */
import net from "node:net";
import tls from "node:tls";

export interface RunResult {
  code: number;
  out: string;
  err: string;
}

/** Runs a command to completion (SIGKILL after `timeoutMs`), stdin closed. */
export async function run(cmd: string[], timeoutMs = 20_000): Promise<RunResult> {
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const killer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  try {
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  } finally {
    clearTimeout(killer);
  }
}

/** `curl https://host:port/path` resolved to 127.0.0.1 and trusting `caPath`; `out` is the body. */
export function curlL7(port: number, host: string, caPath: string, path = "/", extra: string[] = []): Promise<RunResult> {
  return run(["curl", "-sS", "--max-time", "15", "--resolve", `${host}:${port}:127.0.0.1`, "--cacert", caPath, ...extra, `https://${host}:${port}${path}`]);
}

/** A TLS 1.2-only handshake attempt (refused by a proxy with l7_min_tls = "1.3"). */
export function opensslTls12(port: number, host: string): Promise<RunResult> {
  return run(["openssl", "s_client", "-tls1_2", "-connect", `127.0.0.1:${port}`, "-servername", host]);
}

/** Resolves when `s` has closed (errors are swallowed); rejects after `ms`. */
export function closed(s: net.Socket, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("socket not closed in time")), ms);
    s.on("error", () => {});
    s.once("close", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** Connects, sends an HTTP request instead of a ClientHello, waits for the proxy to close. */
export async function plainHttp(port: number): Promise<void> {
  const s = net.connect({ host: "127.0.0.1", port });
  const done = closed(s);
  s.once("connect", () => s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  await done;
}

/**
 * One TLS connection through an L4 (passthrough) route to an echo backend:
 * send `msg`, read it back, close. `socket` lets the caller supply the TCP
 * socket (to read its byte counters afterwards).
 */
export async function tlsEcho(port: number, host: string, caPem: string, msg: string, socket?: net.Socket): Promise<string> {
  const s = socket ? tls.connect({ socket, servername: host, ca: caPem }) : tls.connect({ host: "127.0.0.1", port, servername: host, ca: caPem });
  const done = closed(s);
  let got = "";
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no echo within 10 s (got ${JSON.stringify(got)})`)), 10_000);
    s.once("secureConnect", () => s.write(msg));
    s.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.length >= msg.length) {
        clearTimeout(t);
        resolve();
      }
    });
    s.once("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
  s.end();
  await done;
  return got;
}

/** A TLS echo server on 127.0.0.1:0 (the L4 backend). */
export async function startTlsEcho(certPem: string, keyPem: string): Promise<{ port: number; close(): void }> {
  const srv = tls.createServer({ cert: certPem, key: keyPem }, (s) => {
    s.on("data", (d: Buffer) => s.write(d));
    s.on("end", () => s.end());
    s.on("error", () => s.destroy());
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => srv.close() };
}
