/**
 * `npm run devserver`: mc-proxy from source on a local demo setup that answers.
 *
 * In one process: a demo HTTP backend (127.0.0.1:9080), a demo TLS backend
 * (127.0.0.1:9443) and mc-proxy, whose listener 127.0.0.1:8443 has
 *   - an L7 route `localhost` → the HTTP backend (TLS terminated with a
 *     self-signed certificate for localhost, l4.localhost, 127.0.0.1, ::1), and
 *   - an L4 route `l4.localhost` → the TLS backend (passed through untouched),
 * plus the admin socket and metrics on 127.0.0.1:9091. Once up it prints
 * what to try. SIGINT/SIGTERM drain mc-proxy, stop the backends, exit 0.
 *
 * Everything lives in one directory, `srv/` in the repository unless
 * MC_PROXY_DEV_DIR names another: mc-proxy.toml, the database, the socket,
 * localhost.pem/.key. The first run creates the TOML and the certificate
 * (again when missing or about to expire); later runs reuse them. The
 * database is seeded from the TOML on its first start only, so a directory
 * made by an older devserver keeps its routes: that is detected and the
 * printout says to remove the directory.
 *
 * Ports (when the TOML is created; afterwards the database has them):
 * MC_PROXY_DEV_PORT (8443), MC_PROXY_DEV_METRICS_PORT (9091); the demo
 * backends, read at every start: MC_PROXY_DEV_HTTP_PORT (9080),
 * MC_PROXY_DEV_TLS_PORT (9443).
 */
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { ConfigError } from "../src/errors.ts";
import { runServer, type RunningServer } from "../src/server/run.ts";
import { startHttpDemo, startTlsDemo, type DemoBackend } from "./dev/backends.ts";
import { makeSelfSigned } from "./dev/selfsigned.ts";

const CERT_NAMES = ["localhost", "l4.localhost", "127.0.0.1", "::1"];
const CERT_DAYS = 365;
/** A certificate closer than this to its end is replaced at start. */
const CERT_RENEW_MS = 7 * 86400_000;

function say(line: string): void {
  process.stdout.write(line + "\n");
}

function envPort(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    process.stderr.write(`devserver: ${name}=${v} is not a port (1-65535)\n`);
    process.exit(2);
  }
  return n;
}

/** `p` relative to the working directory when it lies below it, else absolute: what to paste in a shell here. */
function shown(p: string): string {
  const r = relative(process.cwd(), p);
  return r && !r.startsWith("..") && !isAbsolute(r) ? r : p;
}

/** Writes a fresh self-signed pair unless a readable one has more than CERT_RENEW_MS left. */
function ensureCertificate(certPath: string, keyPath: string): void {
  if (existsSync(certPath) && existsSync(keyPath)) {
    try {
      const notAfter = Date.parse(new X509Certificate(readFileSync(certPath)).validTo);
      if (notAfter - Date.now() > CERT_RENEW_MS) return;
    } catch {
      // unreadable or not a certificate: replace it
    }
  }
  const { certPem, keyPem } = makeSelfSigned(CERT_NAMES, CERT_DAYS);
  writeFileSync(keyPath, keyPem, { mode: 0o600 });
  writeFileSync(certPath, certPem, { mode: 0o644 });
  process.stderr.write(`devserver: wrote a self-signed certificate for ${CERT_NAMES.join(", ")} to ${shown(certPath)}\n`);
}

function defaultConfig(p: { proxy: number; metrics: number; http: number; tls: number }): string {
  return `# Local development config, created by \`npm run devserver\` (scripts/devserver.ts).
# The database (mc-proxy.db beside this file) is seeded from this file on its
# first start only; afterwards change routes with mcproxyctl over mc-proxy.sock
# (the devserver prints the command), or remove this directory to start over.
[database]
path = "mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:${p.proxy}"

  # L7: mc-proxy terminates TLS with the self-signed localhost.pem and forwards
  # HTTP to the devserver's demo HTTP backend.
  [[listeners.routes]]
  hostname = "localhost"
  backend = "127.0.0.1:${p.http}"
  mode = "l7"
  tls_cert = "localhost.pem"
  tls_key = "localhost.key"

  # L4: the TLS stream passes through untouched to the demo TLS backend.
  [[listeners.routes]]
  hostname = "l4.localhost"
  backend = "127.0.0.1:${p.tls}"

[grpc]
addr = "mc-proxy.sock"

[proxy]
shutdown_timeout = "5s"

[log]
level = "info"

[metrics]
addr = "127.0.0.1:${p.metrics}"
`;
}

/** Starts a demo backend; a port in use is a warning (its route then answers 502 or closes), not a failure. */
function startDemo(what: string, port: number, start: () => DemoBackend): DemoBackend | null {
  try {
    return start();
  } catch (e) {
    process.stderr.write(`devserver: cannot start the demo ${what} backend on 127.0.0.1:${port}: ${(e as Error).message}\n`);
    return null;
  }
}

interface Demo {
  hostname: string;
  mode: "l4" | "l7";
  backend: string;
  what: string;
}

/** What to try next, from the routes the database actually holds. */
function printNextSteps(srv: RunningServer, dir: string, demos: Demo[]): void {
  const listener = srv.state.listeners()[0];
  if (!listener) return;
  const port = srv.proxy.ports().get(listener.record.addr);
  const lines: string[] = [];
  let differs = false;
  for (const d of demos) {
    const r = listener.routes.get(d.hostname)?.record;
    if (!r || r.mode !== d.mode || r.backend !== d.backend) differs = true;
    if (!r) continue;
    const target = demos.find((x) => x.backend === r.backend)?.what ?? "not a demo backend";
    const resolveOpt = d.hostname === "localhost" ? "" : `--resolve ${d.hostname}:${port}:127.0.0.1 `;
    lines.push(`  curl -k ${resolveOpt}https://${d.hostname}:${port}/`);
    lines.push(`      ${r.mode.toUpperCase()} route → ${r.backend} (${target})`);
  }
  if (srv.config.grpc) {
    lines.push(`  node_modules/.bin/bun src/main.ts ctl routes list --listener ${listener.record.addr} --socket ${shown(srv.config.grpc.addr)}`);
    lines.push("      the routes, through the admin API (mcproxyctl)");
  }
  if (srv.config.metrics) {
    lines.push(`  curl http://${srv.config.metrics.addr}/metrics`);
    lines.push("      Prometheus metrics");
  }
  say("");
  say(`devserver: mc-proxy is up (files in ${shown(dir)}/). Try:`);
  for (const l of lines) say(l);
  if (differs) {
    say("");
    say(`devserver: note: the database in ${shown(dir)}/ holds other routes than the demo's`);
    say(`  (${demos.map((d) => `${d.hostname}: ${d.mode.toUpperCase()} → ${d.backend}`).join("; ")}).`);
    say("  An older devserver made it, or its routes were changed since: the database is seeded");
    say(`  from the TOML on its first start only. For the demo routes: Ctrl-C, rm -rf ${shown(dir)},`);
    say("  and start again.");
  }
  say("");
  say("Ctrl-C drains and stops.");
}

async function main(): Promise<number> {
  const dir = resolve(process.env.MC_PROXY_DEV_DIR || join(import.meta.dir, "..", "srv"));
  const ports = {
    proxy: envPort("MC_PROXY_DEV_PORT", 8443),
    metrics: envPort("MC_PROXY_DEV_METRICS_PORT", 9091),
    http: envPort("MC_PROXY_DEV_HTTP_PORT", 9080),
    tls: envPort("MC_PROXY_DEV_TLS_PORT", 9443),
  };
  const cfg = join(dir, "mc-proxy.toml");
  const certPath = join(dir, "localhost.pem");
  const keyPath = join(dir, "localhost.key");

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  ensureCertificate(certPath, keyPath);
  if (!existsSync(cfg)) {
    writeFileSync(cfg, defaultConfig(ports), { mode: 0o600 });
    process.stderr.write(`devserver: created ${shown(cfg)}\n`);
  }

  const cert = readFileSync(certPath, "utf8");
  const key = readFileSync(keyPath, "utf8");
  const backends = [
    startDemo("HTTP", ports.http, () => startHttpDemo(ports.http)),
    startDemo("TLS", ports.tls, () => startTlsDemo(ports.tls, cert, key)),
  ];
  const demos: Demo[] = [
    { hostname: "localhost", mode: "l7", backend: `127.0.0.1:${ports.http}`, what: "the demo HTTP backend" },
    { hostname: "l4.localhost", mode: "l4", backend: `127.0.0.1:${ports.tls}`, what: "the demo TLS backend" },
  ];
  const stopBackends = () => Promise.all(backends.map((b) => b?.stop()));

  try {
    return await runServer(cfg, (srv) => printNextSteps(srv, dir, demos));
  } catch (e) {
    process.stderr.write(`devserver: ${(e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ")}\n`);
    return e instanceof ConfigError ? 2 : 1;
  } finally {
    // After mc-proxy drained: in-flight requests still reached their backend.
    await stopBackends();
  }
}

process.exit(await main());
