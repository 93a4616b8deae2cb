/**
 * `bun scripts/bytecode-order.ts`: records which functions a running server
 * uses, in the order it first uses them, into scripts/bytecode-order.txt —
 * the profile `scripts/build.ts` passes to `bun build --bytecode-order`, so
 * the bytecode the server runs lies together in the executable (fewer pages
 * touched: ~2–3 MiB less RSS idle and under load, ARCHITECTURE.md "Start-up
 * pages").
 *
 * It builds dist/mc-proxy, starts it with BUN_BYTECODE_ORDER_OUT on a temp
 * config (an L7 route to a local HTTP/1.1 backend with a self-signed
 * certificate, one to a local h2c backend, an L4 route to a local TLS
 * backend), sends HTTP/1.1 and HTTP/2 requests through the first L7 route,
 * HTTP/2 requests through the h2c one and a TLS session through the L4 one, stops
 * it with SIGTERM and keeps the file Bun wrote at exit. Rerun it after large
 * changes to the data path; a profile from an older build still applies
 * (functions it does not name are laid out after the ones it does).
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import { startHttpDemo, startTlsDemo } from "./dev/backends.ts";
import { makeSelfSigned } from "./dev/selfsigned.ts";

const ROOT = path.resolve(import.meta.dir, "..");
const OUT = path.join(ROOT, "scripts/bytecode-order.txt");
const ROUNDS = 200;

function must(ok: boolean, what: string): void {
  if (!ok) throw new Error(`bytecode-order: ${what}`);
}

const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
must(build.exitCode === 0, "build failed");

const dir = mkdtempSync(path.join(tmpdir(), "mcp-order-"));
const { certPem, keyPem } = makeSelfSigned(["localhost", "l4.localhost", "h2.localhost"], 2);
writeFileSync(path.join(dir, "cert.pem"), certPem);
writeFileSync(path.join(dir, "key.pem"), keyPem);
const http = startHttpDemo(0);
const tlsBackend = startTlsDemo(0, certPem, keyPem);
// An h2c backend (prior knowledge): the HTTP/2 backend path's functions are in the profile too.
const h2c = http2.createServer((_req, res) => {
  res.setHeader("content-type", "text/plain");
  res.end("hello from h2c\n");
});
await new Promise<void>((resolve) => h2c.listen(0, "127.0.0.1", resolve));
const h2cAddr = `127.0.0.1:${(h2c.address() as AddressInfo).port}`;
writeFileSync(
  path.join(dir, "mc-proxy.toml"),
  `[database]
path = "mc-proxy.db"

[log]
level = "warn"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "localhost"
  backend = "${http.addr}"
  mode = "l7"
  backend_protocol = "http1"
  tls_cert = "cert.pem"
  tls_key = "key.pem"
  [[listeners.routes]]
  hostname = "h2.localhost"
  backend = "${h2cAddr}"
  mode = "l7"
  backend_protocol = "h2"
  tls_cert = "cert.pem"
  tls_key = "key.pem"
  [[listeners.routes]]
  hostname = "l4.localhost"
  backend = "${tlsBackend.addr}"
`,
);
/** ROUNDS GET requests on one HTTP/2 session, each answered 200; then the session is closed. */
async function h2Rounds(session: http2.ClientHttp2Session, what: string): Promise<void> {
  for (let i = 0; i < ROUNDS; i++) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ":path": "/" });
      let st = 0;
      req.on("response", (h) => (st = Number(h[":status"])));
      req.on("data", () => {});
      req.on("end", () => resolve(st));
      req.on("error", reject);
      req.end();
    });
    must(status === 200, `HTTP/2 through ${what}: ${status}`);
  }
  session.close();
}

const order = path.join(dir, "order.txt");
const proc = Bun.spawn([path.join(ROOT, "dist/mc-proxy"), "server", "-c", "mc-proxy.toml"], {
  cwd: dir,
  env: { ...process.env, BUN_BYTECODE_ORDER_OUT: order },
  stdout: "ignore",
  stderr: "pipe",
});

try {
  // The listener's port: the first port the process listens on (ss), since the log level is warn.
  let port = 0;
  for (let i = 0; i < 100 && port === 0; i++) {
    await Bun.sleep(100);
    const ss = Bun.spawnSync(["ss", "-Hltnp"], { stdout: "pipe" }).stdout.toString();
    const line = ss.split("\n").find((l) => l.includes(`pid=${proc.pid},`));
    port = line ? Number(/127\.0\.0\.1:(\d+)/.exec(line)?.[1] ?? 0) : 0;
  }
  must(port > 0, "the server did not start listening");

  const url = `https://localhost:${port}/`;
  for (let i = 0; i < ROUNDS; i++) {
    const r = await fetch(url, { tls: { rejectUnauthorized: false } });
    must(r.status === 200, `HTTP/1.1 through the L7 route: ${r.status}`);
    await r.arrayBuffer();
  }
  await h2Rounds(http2.connect(url, { rejectUnauthorized: false }), "the L7 route");
  await h2Rounds(
    http2.connect(`https://h2.localhost:${port}`, {
      createConnection: () => tls.connect({ host: "127.0.0.1", port, servername: "h2.localhost", ALPNProtocols: ["h2"], rejectUnauthorized: false }),
    }),
    "the h2c route",
  );
  for (let i = 0; i < 20; i++) {
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, servername: "l4.localhost", rejectUnauthorized: false }, () => {
        s.end();
        resolve();
      });
      s.on("error", reject);
    });
  }
} finally {
  proc.kill("SIGTERM");
  await proc.exited;
  await http.stop();
  await tlsBackend.stop();
  h2c.close();
}
must(proc.exitCode === 0, `server exit ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
must(existsSync(order), "Bun wrote no order file");
copyFileSync(order, OUT);
rmSync(dir, { recursive: true, force: true });
process.stdout.write(`wrote ${path.relative(ROOT, OUT)}\n`);
