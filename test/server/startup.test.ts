/**
 * `mc-proxy server` start-up, as an operator sees it (the real server process):
 * a PROXY listener that trusts every peer starts with a warning naming it
 * (SPEC §2), and a SIGHUP that arrives while the server is still starting is
 * held and applied once it is up, instead of killing the process (SPEC §4).
 */
import { Database } from "bun:sqlite";
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rawConnect, realHello, startSink, waitUntil, type TcpSink } from "../helpers/net.ts";
import { ensureBinaries } from "../e2e/build.ts";
import { killAllServers, spawnServer, startProxyProc, type ServerProc } from "../helpers/subprocess.ts";

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
