/**
 * `mc-proxy server` start-up, as an operator sees it (the real server process):
 * a PROXY listener that trusts every peer starts with a warning naming it
 * (SPEC §2), and a SIGHUP that arrives while the server is still starting is
 * held and applied once it is up, instead of killing the process (SPEC §4).
 */
import { Database } from "bun:sqlite";
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rawConnect, realHello, startSink, waitUntil, type TcpSink } from "../helpers/net.ts";
import { ensureBinaries } from "../e2e/build.ts";
import { killAllServers, spawnServer, startProxyProc, startServerProc, type ServerProc } from "../helpers/subprocess.ts";

let sink: TcpSink;
const procs: ServerProc[] = [];
beforeAll(async () => {
  sink = await startSink((c) => {
    c.socket.write("ok");
    c.ended.then(() => c.socket.end());
  });
});
afterEach(() => {
  for (const p of procs.splice(0)) p.cleanup();
});
afterAll(() => {
  killAllServers();
  sink?.close();
});

test("a listener with proxy_protocol = true and an empty proxy_protocol_trusted starts with a warning naming it", async () => {
  const p = await startProxyProc(`
[[listeners]]
addr = "127.0.0.1:0"
proxy_protocol = true
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:${sink.port}"

[[listeners]]
addr = "127.0.0.2:0"
proxy_protocol = true
proxy_protocol_trusted = ["127.0.0.1"]
`, { bin: ensureBinaries().mcProxy });
  procs.push(p);
  const warnings = p.logs.filter((l) => l.event === "listener.proxy_untrusted");
  expect(warnings.length).toBe(1);
  expect(warnings[0]).toMatchObject({ level: "warn", listener: "127.0.0.1:0" });
  expect(String(warnings[0].detail)).toContain("proxy_protocol_trusted");
  // Logged before the server reports it is up, i.e. at start-up.
  expect(p.logs.indexOf(warnings[0])).toBeLessThan(p.logs.findIndex((l) => l.event === "server.start"));
});

test("a SIGHUP while the server is still starting is held, not fatal: the server comes up, reloads and serves", async () => {
  // A real slow start: another process holds the database's write lock, so the
  // server waits in its migrations (busy_timeout) after logging its config warnings.
  const dir = mkdtempSync(join(tmpdir(), "mcp-hup-start-"));
  const dbPath = join(dir, "mc-proxy.db");
  const blocker = new Database(dbPath, { create: true });
  blocker.exec("PRAGMA journal_mode = WAL");
  blocker.exec("BEGIN IMMEDIATE");
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(
    cfg,
    `[database]
path = "mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:0"
proxy_protocol_trusted = ["127.0.0.1"]   # a config warning: our signal that start-up has begun
  [[listeners.routes]]
  hostname = "hup.test"
  backend = "127.0.0.1:${sink.port}"

[proxy]
shutdown_timeout = "2s"
`,
  );
  const p = spawnServer(cfg, { cwd: dir, dir, bin: ensureBinaries().mcProxy });
  procs.push(p);
  try {
    await p.waitLog((l) => l.event === "config.warning", 20_000, "config.warning");
    // Now blocked on the database lock: hang up twice.
    p.proc.kill("SIGHUP");
    await Bun.sleep(100);
    p.proc.kill("SIGHUP");
    await Bun.sleep(300);
    expect(p.done).toBe(false);
  } finally {
    blocker.exec("ROLLBACK");
    blocker.close();
  }
  const start = await p.waitLog((l) => l.event === "server.start", 20_000, "server.start");
  expect(p.done).toBe(false);
  // The held signals are applied once the server is up (Bun may deliver both; each is a harmless reload).
  await p.waitLog((l) => l.event === "server.reload", 5000, "server.reload");
  const reloads = () => p.logs.filter((l) => l.event === "server.reload").length;
  await Bun.sleep(200);
  const before = reloads();
  expect(before).toBeGreaterThanOrEqual(1);

  const port = (start.listeners as { port: number }[])[0].port;
  const c = rawConnect(port);
  c.socket.write(await realHello("hup.test"));
  await waitUntil(() => c.received().toString() === "ok", 5000, "reply through the proxy");
  c.socket.end();

  // After start-up SIGHUP is the ordinary reload.
  p.proc.kill("SIGHUP");
  await waitUntil(() => reloads() === before + 1, 5000, "one more reload");
  expect(await p.stop()).toBe(0);
}, 60_000);

test("a first start that fails (its port is taken) leaves no database: the next start, with the port fixed in the TOML, seeds from it", async () => {
  const held = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const dir = mkdtempSync(join(tmpdir(), "mcp-fresh-"));
  try {
    const toml = (port: number) => `[database]\npath = "mc-proxy.db"\n\n[[listeners]]\naddr = "127.0.0.1:${port}"\n  [[listeners.routes]]\n  hostname = "a.test"\n  backend = "127.0.0.1:${sink.port}"\n`;
    const cfg = join(dir, "mc-proxy.toml");
    writeFileSync(cfg, toml(held.port));
    const failed = spawnServer(cfg, { cwd: dir, dir, bin: ensureBinaries().mcProxy });
    expect(await failed.exited(20_000)).not.toBe(0);
    expect(failed.stderrText()).toContain("cannot bind");
    expect(existsSync(join(dir, "mc-proxy.db"))).toBe(false);
    // The operator fixes the port: the TOML is what the server now starts from.
    writeFileSync(cfg, toml(0));
    const p = await startServerProc(cfg, { cwd: dir, dir, bin: ensureBinaries().mcProxy });
    procs.push(p);
    expect(p.start.seeded).toBe(true);
    expect(await p.stop()).toBe(0);
  } finally {
    held.stop(true);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an admin socket in a directory that does not exist is a config error naming grpc.addr, before any database is made", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mcp-sockdir-"));
  try {
    const cfg = join(dir, "mc-proxy.toml");
    writeFileSync(cfg, `[database]\npath = "mc-proxy.db"\n\n[grpc]\naddr = "${join(dir, "nowhere", "admin.sock")}"\n\n[[listeners]]\naddr = "127.0.0.1:0"\n  [[listeners.routes]]\n  hostname = "a.test"\n  backend = "127.0.0.1:${sink.port}"\n`);
    const failed = spawnServer(cfg, { cwd: dir, dir, bin: ensureBinaries().mcProxy });
    expect(await failed.exited(20_000)).toBe(2);
    expect(failed.stderrText()).toContain("grpc.addr");
    expect(failed.stderrText()).toContain("does not exist");
    expect(existsSync(join(dir, "mc-proxy.db"))).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
