/**
 * The log an operator sees, from a real server process (`bun src/main.ts
 * server`): every event class is one JSON object per line with ts/level/event;
 * `[log] level = "warn"` silences the per-connection info lines but keeps the
 * warnings; and no line ever carries private key material, even when a
 * certificate reload fails on a bad key.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AdminClient } from "../../src/admin/client.ts";
import { FirewallRuleType } from "../../src/gen/mc_proxy/v1/admin.ts";
import { HealthCheckResponse_ServingStatus as Serving } from "../../src/gen/grpc/health/v1/health.ts";
import { cleanupCerts, makeCA, makeLeaf, makeSelfSigned, type CA, type CertFiles } from "../fixtures/certs.ts";
import { freePort, waitFor } from "../helpers/proxy.ts";
import { killAllServers, startServerProc, type LogLine, type ServerProc } from "../helpers/subprocess.ts";
import { curlL7, opensslTls12, startTlsEcho, tlsEcho } from "./traffic.ts";

const L4_HOST = "l4.logs.test";
const L7_HOST = "l7.logs.test";
const LEVELS = ["debug", "info", "warn", "error"];

let ca: CA;
let leaf: CertFiles;
/** A different, valid key: a reload with it must fail (key does not match the certificate). */
let otherKey: CertFiles;
let l4Backend: { port: number; close(): void };
let l7Backend: ReturnType<typeof Bun.serve>;
const dirs: string[] = [];

beforeAll(async () => {
  ca = makeCA("obs logs CA");
  leaf = makeLeaf(ca, [L4_HOST, L7_HOST]);
  otherKey = makeSelfSigned(["other.logs.test"]);
  l4Backend = await startTlsEcho(leaf.fullchainPem, leaf.keyPem);
  l7Backend = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("ok\n") });
}, 30_000);

afterAll(() => {
  killAllServers();
  l4Backend?.close();
  l7Backend?.stop(true);
  cleanupCerts();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A config in a fresh dir with its own copy of the L7 certificate/key (so the
 * test can break the key before a SIGHUP) and an l7_policies entry on the L4
 * route, which is a config warning.
 */
function writeConfig(level: string, listenerPort: number): { dir: string; cfg: string; sock: string; keyPath: string } {
  const dir = mkdtempSync(join(tmpdir(), `mcp-obs-logs-${level}-`));
  dirs.push(dir);
  const certPath = join(dir, "l7.pem");
  const keyPath = join(dir, "l7.key");
  copyFileSync(leaf.fullchainPath, certPath);
  copyFileSync(leaf.keyPath, keyPath);
  const sock = join(dir, "admin.sock");
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(
    cfg,
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "127.0.0.1:${listenerPort}"

  [[listeners.routes]]
  hostname = "${L4_HOST}"
  backend = "127.0.0.1:${l4Backend.port}"

    [[listeners.routes.l7_policies]]
    type = "block_user_agent"
    value = "zgrab"

  [[listeners.routes]]
  hostname = "${L7_HOST}"
  backend = "127.0.0.1:${l7Backend.port}"
  mode = "l7"
  backend_protocol = "http1"
  tls_cert = "${certPath}"
  tls_key = "${keyPath}"

[grpc]
addr = "${sock}"

[proxy]
l7_min_tls = "1.3"
shutdown_timeout = "2s"

[log]
level = "${level}"
`,
  );
  return { dir, cfg, sock, keyPath };
}

/** L4 echo, one L7 request, one refused TLS 1.2 handshake, one admin mutation. */
async function driveTraffic(port: number, sock: string): Promise<void> {
  expect(await tlsEcho(port, L4_HOST, ca.certPem, "hello l4\n")).toBe("hello l4\n");
  const c = await curlL7(port, L7_HOST, ca.certPath);
  expect(c.err).toBe("");
  expect(c.out).toBe("ok\n");
  expect((await opensslTls12(port, L7_HOST)).code).not.toBe(0);
  const admin = new AdminClient({ addr: `unix:${sock}` }, 5000);
  try {
    await admin.addFirewallRule({ type: FirewallRuleType.FIREWALL_RULE_TYPE_IP, value: "192.0.2.7" });
  } finally {
    admin.close();
  }
}

/**
 * Breaks the key file (`pem`), SIGHUPs, and waits for the n-th (1-based)
 * `server.reload` line: the reload of that key must fail.
 */
async function failedCertReload(p: ServerProc, keyPath: string, pem: string, n = 1): Promise<void> {
  writeFileSync(keyPath, pem);
  p.proc.kill("SIGHUP");
  await waitFor(() => p.logs.filter((l) => l.event === "server.reload").length >= n, 15_000, `server.reload #${n}`);
}

/** The real key cut in half: still PEM-armoured, no longer parseable. */
function truncatedKey(): string {
  const lines = leaf.keyPem.trim().split("\n");
  return [...lines.slice(0, Math.ceil(lines.length / 2)), lines[lines.length - 1]].join("\n") + "\n";
}

/** The key material that must never appear in a log: PEM armour and every base64 body line of both keys. */
function assertNoSecrets(lines: string[]): void {
  const bodies = [leaf.keyPem, otherKey.keyPem].flatMap((pem) => pem.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----")));
  expect(bodies.length).toBeGreaterThan(0);
  for (const line of lines) {
    expect(line).not.toContain("PRIVATE KEY");
    expect(line).not.toContain("BEGIN CERTIFICATE");
    for (const b of bodies) expect(line).not.toContain(b);
  }
}

/** Every line is one JSON object with an ISO timestamp, a known level and an event name. */
function assertWellFormed(lines: string[]): LogLine[] {
  return lines.map((line) => {
    const rec = JSON.parse(line) as LogLine;
    expect(typeof rec.ts).toBe("string");
    expect(new Date(rec.ts as string).toISOString()).toBe(rec.ts as string);
    expect(LEVELS).toContain(rec.level as string);
    expect(typeof rec.event).toBe("string");
    return rec;
  });
}

test("every event class is a JSON line with ts, level and event, and no line carries key material", async () => {
  const { cfg, sock, keyPath } = writeConfig("info", 0);
  const p = await startServerProc(cfg);
  const port = p.port();
  expect(p.start.log_level).toBe("info");

  await driveTraffic(port, sock);
  await p.waitLog((l) => l.event === "l7.request", 10_000, "l7.request");
  await p.waitLog((l) => l.event === "l7.tls_error", 10_000, "l7.tls_error");
  await failedCertReload(p, keyPath, otherKey.keyPem, 1); // valid key, wrong certificate
  await failedCertReload(p, keyPath, truncatedKey(), 2); // unparseable key
  p.proc.kill("SIGTERM");
  expect(await p.exited(20_000)).toBe(0);

  const recs = assertWellFormed(p.lines);
  const byEvent = (e: string) => recs.filter((r) => r.event === e);
  for (const e of ["config.warning", "server.start", "conn", "l7.request", "l7.tls_error", "admin.rpc", "cert.reload_failed", "server.reload", "server.signal", "server.draining", "server.stopped"]) {
    expect({ event: e, lines: byEvent(e).length > 0 }).toEqual({ event: e, lines: true });
  }
  // The fields an operator filters on.
  const warning = byEvent("config.warning")[0];
  expect(warning.level).toBe("warn");
  expect(String(warning.detail)).toContain("l7_policies");
  const conns = byEvent("conn");
  expect(conns.map((c) => c.mode).sort()).toEqual(["l4", "l7", "l7"]); // echo, curl, refused handshake
  for (const c of conns) for (const k of ["listener", "client", "sni", "route", "backend", "bytes_in", "bytes_out", "duration_ms", "outcome"]) expect(c).toHaveProperty(k);
  expect(byEvent("l7.request")[0]).toMatchObject({ route: L7_HOST, status: 200, method: "GET", path: "/" });
  expect(byEvent("l7.tls_error")[0]).toMatchObject({ sni: L7_HOST, class: "version" });
  expect(byEvent("admin.rpc")[0]).toMatchObject({ method: "AddFirewallRule", code: "OK" });
  expect(byEvent("cert.reload_failed").length).toBe(2);
  for (const r of byEvent("cert.reload_failed")) expect(r).toMatchObject({ level: "warn", hostname: L7_HOST });
  for (const r of byEvent("server.reload")) expect(r).toMatchObject({ level: "warn", certificates_failed: 1 });
  expect(byEvent("server.stopped")[0]).toMatchObject({ cut: 0 });
  assertNoSecrets(p.lines);
}, 90_000);

test('[log] level = "warn" drops per-connection info lines and keeps the warnings', async () => {
  const port = await freePort();
  const { cfg, sock, keyPath } = writeConfig("warn", port);
  // No server.start line at this level: ready when the admin API reports SERVING.
  const admin = new AdminClient({ addr: `unix:${sock}` }, 2000);
  let status = null as Serving | null; // set by the probe (a closure, so no narrowing)
  let p: ServerProc;
  try {
    p = await startServerProc(cfg, { ready: async () => (status = await admin.checkHealth().catch(() => null)) === Serving.SERVING });
    expect(status).toBe(Serving.SERVING);
  } finally {
    admin.close();
  }

  await driveTraffic(port, sock);
  await failedCertReload(p, keyPath, truncatedKey());
  p.proc.kill("SIGTERM");
  expect(await p.exited(20_000)).toBe(0);

  const recs = assertWellFormed(p.lines);
  const events = recs.map((r) => r.event);
  expect(events).toContain("config.warning");
  expect(events).toContain("cert.reload_failed");
  expect(events).toContain("server.reload");
  for (const quiet of ["conn", "l7.request", "l7.tls_error", "admin.rpc", "server.start", "server.stopped"]) expect(events).not.toContain(quiet);
  for (const r of recs) expect(["warn", "error"]).toContain(r.level as string);
  assertNoSecrets(p.lines);
}, 90_000);
