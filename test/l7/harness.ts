/**
 * A tiny stand-in for the real pipeline: Bun.listen on 127.0.0.1:0, and for
 * every connection the L7 runtime with a fixed (but replaceable) RouteEntry. Plus helpers shared by the L7 tests: route records,
 * certificates, curl.
 */
import type { Socket } from "bun";
import fs from "node:fs";
import type { ProxyConfig } from "../../src/config/types.ts";
import { loadCertPair, type CertPair } from "../../src/tls/certs.ts";
import type { ConnSummary, L7Conn, RouteEntry } from "../../src/l7/conn.ts";
import { loadBackendCa } from "../../src/state/state.ts";
import { L7Runtime } from "../../src/l7/runtime.ts";
import type { RouteRecord } from "../../src/records.ts";
import { makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";

export const HOST = "a.test";

export const PROXY_DEFAULTS: ProxyConfig = {
  connectTimeoutMs: 3000,
  idleTimeoutMs: 30000,
  shutdownTimeoutMs: 5000,
  helloTimeoutMs: 5000,
  helloMaxBytes: 65536,
  backendTimeoutMs: 10000,
  l7MinTls: "1.2",
  workers: 1,
};

export function routeRecord(backend: string, over: Partial<RouteRecord> = {}): RouteRecord {
  return {
    id: 1,
    listenerId: 1,
    hostname: HOST,
    backend,
    mode: "l7",
    tlsCert: "",
    tlsKey: "",
    backendTls: false,
    backendProtocol: "auto",
    backendTlsVerify: false,
    backendTlsCa: "",
    backendTlsServerName: "",
    sendProxyProtocol: false,
    l7Policies: [],
    ...over,
  };
}

let pki: { ca: CA; leaf: CertFiles; pair: CertPair } | null = null;
/**
 * One test CA and a leaf for a.test (+ backend.test, localhost, 127.0.0.1).
 * bun test runs all files in one process and each file's afterAll removes the
 * cert dirs (cleanupCerts), so re-make them when they are gone.
 */
export function testPki(): { ca: CA; leaf: CertFiles; pair: CertPair } {
  if (!pki || !fs.existsSync(pki.ca.certPath) || !fs.existsSync(pki.leaf.keyPath)) {
    const ca = makeCA("mc-proxy L7 test CA");
    const leaf = makeLeaf(ca, [HOST, "backend.test", "localhost", "127.0.0.1"]);
    pki = { ca, leaf, pair: loadCertPair(leaf.fullchainPath, leaf.keyPath) };
  }
  return pki;
}

export interface L7Harness {
  port: number;
  /** Replace the route the next request sees (like an admin change). */
  setRoute(record: RouteRecord, cert?: CertPair | null): void;
  /** Summaries passed to ctx.onClose, in order. */
  closes: ConnSummary[];
  /** The runtime (its backend pools are closed by stop()). */
  runtime: L7Runtime;
  stop(): void;
}

type Data = { conn: L7Conn | null; started: boolean };

/**
 * Starts the harness listener with `record` as the route for every
 * connection: the first chunk a client sends (its ClientHello) is handed to
 * the L7 runtime as the peeked bytes, as the real pipeline does.
 */
export function startHarness(record: RouteRecord, opts: { cert?: CertPair | null; proxy?: Partial<ProxyConfig>; clientAddress?: string } = {}): L7Harness {
  let entry: RouteEntry = { record, cert: opts.cert === undefined ? testPki().pair : opts.cert, backendCa: loadBackendCa(record, "harness") };
  const proxy = { ...PROXY_DEFAULTS, ...opts.proxy };
  const runtime = new L7Runtime(proxy);
  const closes: ConnSummary[] = [];
  // The real server's sweeper calls L7Conn.tick; so does the harness.
  const live = new Set<L7Conn>();
  let clock = Date.now();
  const sweeper = setInterval(() => {
    clock = Date.now();
    for (const c of live) c.tick(clock);
  }, 50);
  const server = Bun.listen<Data>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s: Socket<Data>) {
        s.data = { conn: null, started: false };
      },
      end(s) {
        s.data.conn?.rawEnd();
      },
      data(s, chunk) {
        if (s.data.started) return; // ciphertext after the upgrade: the TLS layer reads it
        s.data.started = true;
        let closed = false;
        const conn = runtime.serve(
          s as unknown as Socket<unknown>,
          chunk.slice(),
          {
            route: () => entry,
            sni: HOST,
            client: { address: opts.clientAddress ?? s.remoteAddress, port: 40000 },
            local: { address: "127.0.0.1", port: server.port },
            listenerAddr: "127.0.0.1:0",
            proxy,
            firstByteAt: Date.now(),
            now: () => clock,
            onClose: (sum) => {
              closes.push(sum);
              closed = true;
              if (s.data.conn) live.delete(s.data.conn);
            },
          },
          entry,
        );
        s.data.conn = conn;
        if (conn && !closed) live.add(conn);
      },
    },
  });
  return {
    port: server.port,
    setRoute(r, cert) {
      entry = { record: r, cert: cert === undefined ? entry.cert : cert, backendCa: loadBackendCa(r, "harness") };
    },
    closes,
    runtime,
    stop: () => {
      clearInterval(sweeper);
      server.stop(true);
      runtime.close();
    },
  };
}

export interface CurlResult {
  code: number;
  status: number;
  httpVersion: string;
  headers: Record<string, string>;
  body: string;
  stderr: string;
}

/**
 * Runs curl against https://a.test:PORT/path (resolved to 127.0.0.1, trusting
 * the test CA). `args` are extra curl flags (--http2, -H …).
 */
export async function curl(port: number, path: string, args: string[] = [], timeoutS = 20): Promise<CurlResult> {
  const { ca } = testPki();
  const marker = "\n@@MC@@";
  const p = Bun.spawn(
    [
      "curl", "-sS", "-D", "-", "--max-time", String(timeoutS),
      "--resolve", `${HOST}:${port}:127.0.0.1`, "--cacert", ca.certPath,
      "-w", `${marker}%{http_code} %{http_version}`,
      ...args, `https://${HOST}:${port}${path}`,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const m = out.lastIndexOf(marker);
  const tail = m >= 0 ? out.slice(m + marker.length).split(" ") : ["0", ""];
  const all = m >= 0 ? out.slice(0, m) : out;
  // -D - prints every header block (1xx included) before the body.
  const headers: Record<string, string> = {};
  let rest = all;
  for (let i = 0; i < 5; i++) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0 || !/^HTTP\//.test(rest)) break;
    const block = rest.slice(0, end);
    rest = rest.slice(end + 4);
    for (const line of block.split("\r\n").slice(1)) {
      const c = line.indexOf(":");
      if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
    }
  }
  return { code, status: Number(tail[0]), httpVersion: tail[1] ?? "", headers, body: rest, stderr: err };
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 25 ms until true or `ms` elapse; returns the last value. */
export async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (cond()) return true;
    await sleep(25);
  }
  return cond();
}
