/**
 * Helpers for the L7 end-to-end tests: the REAL server as a subprocess (the
 * compiled dist/mc-proxy when it exists and is newer than src/, else
 * `bun src/main.ts`), a raw HTTP/1.1 backend that records every request it
 * receives (head, body, trailers — byte-level, nothing normalised), a PKI
 * with two names on different certificates, and real clients (curl,
 * openssl s_client, node:tls raw sockets). Loopback only; every wait bounded.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { join, resolve } from "node:path";
import tls from "node:tls";
import { cleanupCerts, makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { killAllServers, startProxyProc, type LogLine, type ServerProc } from "../helpers/subprocess.ts";

export type { LogLine, ServerProc };
export { cleanupCerts, killAllServers };

const ROOT = resolve(import.meta.dir, "../..");
const BIN = join(ROOT, "dist", "mc-proxy");

function newest(dir: string): number {
  let m = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) m = Math.max(m, statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return m;
}

/** dist/mc-proxy when it exists and is at least as new as every file in src/ (a stale binary would test old code), else undefined (source). */
export function serverBin(): string | undefined {
  if (process.env.MCP_E2E_SOURCE === "1" || !existsSync(BIN)) return undefined;
  return statSync(BIN).mtimeMs >= newest(join(ROOT, "src")) ? BIN : undefined;
}

// ---------------------------------------------------------------- PKI

export interface Pki {
  ca: CA;
  a: CertFiles;
  b: CertFiles;
}
let pki: Pki | null = null;
/**
 * One CA; a.test and b.test each on their OWN certificate (CN = name, one SAN).
 * Made again when a previous test file's cleanupCerts() removed the files
 * (test files share this module in one `bun test` process).
 */
export function e2ePki(): Pki {
  if (!pki || !existsSync(pki.ca.certPath) || !existsSync(pki.a.keyPath) || !existsSync(pki.b.keyPath)) {
    const ca = makeCA("mc-proxy l7e2e CA");
    pki = { ca, a: makeLeaf(ca, ["a.test"]), b: makeLeaf(ca, ["b.test"]) };
  }
  return pki;
}

// ---------------------------------------------------------------- the server

export interface RouteOpts {
  hostname?: string;
  backend: string;
  cert?: CertFiles;
  backendProtocol?: "auto" | "h2" | "http1";
  /** Extra raw TOML lines for the route (backend_tls = true, …). */
  extra?: string[];
  /** [[listeners.routes.l7_policies]] (type, value). */
  policies?: [string, string][];
}

export function route(o: RouteOpts): string {
  const host = o.hostname ?? "a.test";
  const cert = o.cert ?? (host === "b.test" ? e2ePki().b : e2ePki().a);
  const lines = [
    "  [[listeners.routes]]",
    `  hostname = "${host}"`,
    `  backend = "${o.backend}"`,
    `  mode = "l7"`,
    `  tls_cert = "${cert.fullchainPath}"`,
    `  tls_key = "${cert.keyPath}"`,
    `  backend_protocol = "${o.backendProtocol ?? "http1"}"`,
    ...(o.extra ?? []).map((l) => `  ${l}`),
  ];
  for (const [type, value] of o.policies ?? []) {
    lines.push("    [[listeners.routes.l7_policies]]", `    type = "${type}"`, `    value = "${value}"`);
  }
  return lines.join("\n") + "\n";
}

/** Starts the real server (subprocess) with one listener on 127.0.0.1:0 holding `routes` and `[proxy]` lines. */
export async function startProxy(routes: string[], proxy: string[] = [], opts: { dir?: string } = {}): Promise<ServerProc> {
  const toml = `[log]\nlevel = "info"\n\n[proxy]\n${proxy.join("\n")}\n\n[[listeners]]\naddr = "127.0.0.1:0"\n${routes.join("")}`;
  return await startProxyProc(toml, { bin: serverBin(), dir: opts.dir });
}

// ---------------------------------------------------------------- a recording HTTP/1.1 backend

export interface SeenRequest {
  method: string;
  path: string;
  /** Raw head text as received (request line + fields, without the blank line). */
  rawHead: string;
  /** Lower-case name → values, in order. */
  headers: Map<string, string[]>;
  body: Buffer;
  /** For a chunked body: the raw trailer section text ("" when none). */
  trailers: string;
  /** The whole chunked body as received (size lines, extensions, trailers), for byte-level checks. */
  rawBody: Buffer;
  /** When the last byte of the request arrived (Date.now()). */
  endedAt: number;
  /** When the first byte of the request head arrived. */
  startedAt: number;
}

export interface Reply {
  req: SeenRequest;
  sock: net.Socket;
  /** Writes a complete response (content-length framed). */
  send(status: number, body?: string | Buffer, headers?: Record<string, string>): void;
}

/** What the backend does with a complete request; return without replying to leave it hanging. */
export type Handler = (r: Reply) => void;

export interface RawBackend {
  port: number;
  addr: string;
  seen: SeenRequest[];
  /** Connections accepted so far. */
  accepted: number;
  stop(): Promise<void>;
}

const REASONS: Record<number, string> = { 101: "Switching Protocols", 200: "OK", 403: "Forbidden", 404: "Not Found" };

export function defaultReply(r: Reply): void {
  const h: Record<string, string[]> = {};
  for (const [k, v] of r.req.headers) h[k] = v;
  r.send(200, JSON.stringify({ method: r.req.method, path: r.req.path, headers: h, bodyBytes: r.req.body.byteLength }), { "content-type": "application/json" });
}

/**
 * A backend that parses HTTP/1.1 itself (Content-Length and chunked bodies,
 * trailers kept raw) and records each request before calling `handler`.
 * A request with `Upgrade: websocket` that the handler answers 101 turns
 * the connection into an echo tunnel ("echo:" + bytes).
 */
export async function startRawBackend(handler: Handler = defaultReply): Promise<RawBackend> {
  const seen: SeenRequest[] = [];
  const socks = new Set<net.Socket>();
  const be: RawBackend = { port: 0, addr: "", seen, accepted: 0, stop: async () => {} };
  const server = net.createServer((sock) => {
    be.accepted++;
    socks.add(sock);
    sock.on("close", () => socks.delete(sock));
    sock.on("error", () => {});
    let buf = Buffer.alloc(0);
    let cur: SeenRequest | null = null;
    let need = 0; // Content-Length bytes still to read
    let chunked = false;
    let tunnel = false;
    let startedAt = 0;
    const chunks: Buffer[] = [];
    const rawChunks: Buffer[] = [];
    const done = (r: SeenRequest) => {
      r.body = Buffer.concat(chunks.splice(0));
      r.rawBody = Buffer.concat(rawChunks.splice(0));
      r.endedAt = Date.now();
      seen.push(r);
      cur = null;
      const reply: Reply = {
        req: r,
        sock,
        send(status, body = "", headers = {}) {
          const b = typeof body === "string" ? Buffer.from(body) : body;
          let head = `HTTP/1.1 ${status} ${REASONS[status] ?? "X"}\r\ncontent-length: ${b.byteLength}\r\n`;
          for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
          sock.write(Buffer.concat([Buffer.from(head + "\r\n", "latin1"), b]));
        },
      };
      const isWs = (r.headers.get("upgrade")?.[0] ?? "").toLowerCase() === "websocket";
      if (isWs) {
        const origWrite = sock.write.bind(sock);
        // Detect a 101 answer: from then on, echo.
        sock.write = ((data: string | Uint8Array, ...rest: unknown[]) => {
          if (!tunnel && Buffer.from(data as Uint8Array).toString("latin1").startsWith("HTTP/1.1 101")) tunnel = true;
          return (origWrite as (...a: unknown[]) => boolean)(data, ...rest);
        }) as typeof sock.write;
      }
      handler(reply);
    };
    sock.on("data", (d: Buffer) => {
      if (startedAt === 0) startedAt = Date.now();
      if (tunnel) {
        sock.write(Buffer.concat([Buffer.from("echo:"), d]));
        return;
      }
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (tunnel) {
          if (buf.byteLength) sock.write(Buffer.concat([Buffer.from("echo:"), buf]));
          buf = Buffer.alloc(0);
          return;
        }
        if (cur === null) {
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const rawHead = buf.subarray(0, end).toString("latin1");
          buf = buf.subarray(end + 4);
          const lines = rawHead.split("\r\n");
          const [method = "", path = ""] = lines[0]!.split(" ");
          const headers = new Map<string, string[]>();
          for (const l of lines.slice(1)) {
            const c = l.indexOf(":");
            const k = l.slice(0, c).trim().toLowerCase();
            headers.set(k, [...(headers.get(k) ?? []), l.slice(c + 1).trim()]);
          }
          cur = { method, path, rawHead, headers, body: Buffer.alloc(0), trailers: "", rawBody: Buffer.alloc(0), endedAt: 0, startedAt };
          startedAt = buf.byteLength ? Date.now() : 0;
          chunked = (headers.get("transfer-encoding")?.[0] ?? "").toLowerCase().includes("chunked");
          need = chunked ? 0 : Number(headers.get("content-length")?.[0] ?? 0);
          if (!chunked && need === 0) {
            done(cur);
            continue;
          }
        }
        if (!chunked) {
          const take = Math.min(need, buf.byteLength);
          chunks.push(buf.subarray(0, take));
          buf = buf.subarray(take);
          need -= take;
          if (need > 0) return;
          done(cur!);
          continue;
        }
        // chunked: size line, data, CRLF … 0, trailers, CRLF
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const size = parseInt(buf.subarray(0, nl).toString("latin1").split(";")[0]!, 16);
        if (size === 0) {
          const after = nl + 2;
          if (buf.byteLength < after + 2) return;
          let stop: number;
          if (buf[after] === 13 && buf[after + 1] === 10) {
            cur!.trailers = "";
            stop = after + 2;
          } else {
            const idx = buf.indexOf("\r\n\r\n", after);
            if (idx < 0) return;
            cur!.trailers = buf.subarray(after, idx).toString("latin1");
            stop = idx + 4;
          }
          rawChunks.push(buf.subarray(0, stop));
          buf = buf.subarray(stop);
          done(cur!);
          continue;
        }
        if (buf.byteLength < nl + 2 + size + 2) return;
        chunks.push(buf.subarray(nl + 2, nl + 2 + size));
        rawChunks.push(buf.subarray(0, nl + 2 + size + 2));
        buf = buf.subarray(nl + 2 + size + 2);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  be.port = (server.address() as net.AddressInfo).port;
  be.addr = `127.0.0.1:${be.port}`;
  be.stop = async () => {
    for (const s of socks) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return be;
}

// ---------------------------------------------------------------- clients

export interface CurlOut {
  code: number;
  status: number;
  httpVersion: string;
  /** Header blocks in order (1xx included), each as lower-case name → value. */
  blocks: { status: number; headers: Record<string, string> }[];
  headers: Record<string, string>;
  body: string;
  stderr: string;
  ms: number;
}

/** curl against `https://<host>:<port><path>` (host resolved to 127.0.0.1, the e2e CA trusted). */
export async function curl(port: number, path: string, args: string[] = [], o: { host?: string; timeoutS?: number; stdin?: Blob | Uint8Array } = {}): Promise<CurlOut> {
  const host = o.host ?? "a.test";
  const marker = "\n@@MC@@";
  const t0 = Date.now();
  const p = Bun.spawn(
    [
      "curl", "-sS", "-D", "-", "--max-time", String(o.timeoutS ?? 20),
      "--resolve", `${host}:${port}:127.0.0.1`, "--cacert", e2ePki().ca.certPath,
      "-w", `${marker}%{http_code} %{http_version}`,
      ...args, `https://${host}:${port}${path}`,
    ],
    { stdout: "pipe", stderr: "pipe", stdin: o.stdin ?? "ignore" },
  );
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const ms = Date.now() - t0;
  const m = out.lastIndexOf(marker);
  const tail = m >= 0 ? out.slice(m + marker.length).split(" ") : ["0", ""];
  let rest = m >= 0 ? out.slice(0, m) : out;
  const blocks: CurlOut["blocks"] = [];
  for (let i = 0; i < 64; i++) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0 || !/^HTTP\//.test(rest)) break;
    const lines = rest.slice(0, end).split("\r\n");
    rest = rest.slice(end + 4);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(":");
      if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim();
    }
    blocks.push({ status: Number(lines[0]!.split(" ")[1]), headers });
  }
  return { code, status: Number(tail[0]), httpVersion: tail[1] ?? "", blocks, headers: blocks.at(-1)?.headers ?? {}, body: rest, stderr: err, ms };
}

export interface RunOut {
  code: number | null;
  out: string;
  err: string;
}

/** Runs a command with `input` on stdin (then EOF unless `holdStdinMs`), killed after `timeoutMs`. */
export async function run(argv: string[], o: { input?: string; timeoutMs?: number; holdStdinMs?: number } = {}): Promise<RunOut> {
  const p = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  if (o.input) p.stdin.write(o.input);
  await p.stdin.flush();
  if (o.holdStdinMs) await Bun.sleep(o.holdStdinMs);
  p.stdin.end();
  const killer = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs ?? 15_000);
  try {
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  } finally {
    clearTimeout(killer);
  }
}

/** `openssl s_client` to the proxy with `args` (e.g. -servername, -alpn, -tls1_2); stdin gets `input`. */
export async function sClient(port: number, args: string[], o: { input?: string; timeoutMs?: number; holdStdinMs?: number } = {}): Promise<RunOut> {
  return await run(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-CAfile", e2ePki().ca.certPath, ...args], { holdStdinMs: 600, ...o });
}

/** A node:http2 client session to the proxy on 127.0.0.1:`port` (SNI and :authority `servername`, our test CA, ALPN h2). */
export function h2Session(port: number, servername = "a.test"): http2.ClientHttp2Session {
  return http2.connect(`https://${servername}:${port}`, {
    createConnection: () => tls.connect({ host: "127.0.0.1", port, servername, ca: e2ePki().ca.certPem, ALPNProtocols: ["h2"] }),
  });
}

/** A node:tls client whose received bytes and end/close are recorded. */
export interface TlsClient {
  sock: tls.TLSSocket;
  /** Everything received so far, latin1. */
  text(): string;
  /** Resolves when the socket closed (or after `ms`, with false). */
  closed(ms: number): Promise<boolean>;
  /** Resolves once `text()` satisfies `pred` (or after `ms`, with false). */
  until(pred: (t: string) => boolean, ms: number): Promise<boolean>;
  readonly isClosed: boolean;
  readonly closedAt: number;
}

export async function tlsClient(port: number, o: { servername?: string; alpn?: string[]; allowHalfOpen?: boolean } = {}): Promise<TlsClient> {
  const sock = tls.connect({
    host: "127.0.0.1",
    port,
    servername: o.servername ?? "a.test",
    ca: e2ePki().ca.certPem,
    ALPNProtocols: o.alpn ?? ["http/1.1"],
    allowHalfOpen: o.allowHalfOpen ?? false,
  } as tls.ConnectionOptions);
  let data = "";
  let isClosed = false;
  let closedAt = 0;
  let onClose: (() => void)[] = [];
  sock.on("data", (d: Buffer) => (data += d.toString("latin1")));
  sock.on("error", () => {});
  sock.on("close", () => {
    isClosed = true;
    closedAt = Date.now();
    for (const f of onClose) f();
    onClose = [];
  });
  const ok = await Promise.race([
    new Promise<boolean>((r) => sock.once("secureConnect", () => r(true))),
    new Promise<boolean>((r) => sock.once("close", () => r(false))),
    Bun.sleep(10_000).then(() => false),
  ]);
  if (!ok) {
    sock.destroy();
    throw new Error("TLS handshake with the proxy failed");
  }
  return {
    sock,
    text: () => data,
    closed: (ms) => (isClosed ? Promise.resolve(true) : Promise.race([new Promise<boolean>((r) => onClose.push(() => r(true))), Bun.sleep(ms).then(() => isClosed)])),
    async until(pred, ms) {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (pred(data)) return true;
        if (isClosed) return pred(data);
        await Bun.sleep(10);
      }
      return pred(data);
    },
    get isClosed() {
      return isClosed;
    },
    get closedAt() {
      return closedAt;
    },
  };
}

/** A plain TCP connection with its received bytes recorded. */
export async function tcpClient(port: number): Promise<{ sock: net.Socket; text(): string; closed(ms: number): Promise<boolean>; readonly closedAt: number }> {
  const sock = net.connect(port, "127.0.0.1");
  let data = "";
  let closedAt = 0;
  sock.on("data", (d: Buffer) => (data += d.toString("latin1")));
  sock.on("error", () => {});
  const closedP = new Promise<boolean>((r) => sock.once("close", () => ((closedAt = Date.now()), r(true))));
  await Promise.race([new Promise((r) => sock.once("connect", r)), Bun.sleep(5000)]);
  return {
    sock,
    text: () => data,
    closed: (ms) => Promise.race([closedP, Bun.sleep(ms).then(() => false)]),
    get closedAt() {
      return closedAt;
    },
  };
}

/** Status codes of every HTTP/1.1 response head in `text`, in order. */
export function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
}

export async function waitUntil(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await Bun.sleep(20);
  }
  return cond();
}
