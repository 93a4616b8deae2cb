/**
 * `[proxy] workers = 2` through the compiled binary (SPEC §2, §10): two
 * data-path threads accept on the same port (SO_REUSEPORT) and the process
 * behaves exactly as one: the connection cap and the rate limit are global,
 * an admin change is served by every thread when the RPC returns, GetStatus
 * and /metrics add up both threads, SIGTERM drains both, and both do work.
 * Which thread served a connection is read from its log line (`worker`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import crypto from "node:crypto";
import { copyFileSync, readdirSync, readFileSync } from "node:fs";
import tls from "node:tls";
import { AdminClient } from "../../src/admin/client.ts";
import { BackendProtocol, RouteMode } from "../../src/gen/mc_proxy/v1/admin.ts";
import { ensureBinaries } from "../e2e/build.ts";
import { echoVia, rawAttempt, startTlsEcho, tlsSession, type EchoBackend, type TlsSession } from "../e2e/net.ts";
import { cleanupCerts, makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { realHello, waitUntil } from "../helpers/net.ts";
import { killAllServers, spawnServer, startProxyProc, type LogLine, type ServerProc } from "../helpers/subprocess.ts";
import { freePort } from "../helpers/proxy.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { resolveWorkers } from "../../src/server/workers.ts";
import { join } from "node:path";

let bin: string;
let ca: CA;
let leafA: CertFiles;
let leafB: CertFiles;
let backendA: EchoBackend;
let backendB: EchoBackend;

beforeAll(async () => {
  bin = ensureBinaries().mcProxy;
  ca = makeCA("workers-test");
  leafA = makeLeaf(ca, ["a.test"]);
  leafB = makeLeaf(ca, ["b.test"]);
  backendA = await startTlsEcho("A", leafA);
  backendB = await startTlsEcho("B", leafB);
});

afterAll(async () => {
  killAllServers();
  await backendA?.stop();
  await backendB?.stop();
  cleanupCerts();
});

function config(extra: { listener?: string; firewall?: string; proxy?: string } = {}): string {
  return `
[[listeners]]
addr = "127.0.0.1:0"
${extra.listener ?? ""}
  [[listeners.routes]]
  hostname = "a.test"
  backend = "${backendA.addr}"

[grpc]
addr = "admin.sock"

[metrics]
addr = "127.0.0.1:0"

[firewall]
${extra.firewall ?? ""}

[proxy]
workers = 2
shutdown_timeout = "10s"
${extra.proxy ?? ""}
`;
}

/** The worker index on each `conn` log line so far. */
function connWorkers(p: ServerProc): number[] {
  return p.logs.filter((l: LogLine) => l.event === "conn").map((l) => Number(l.worker));
}

async function scrape(p: ServerProc): Promise<string> {
  const addr = String(p.logs.find((l) => l.event === "metrics.listen")?.addr);
  return await (await fetch(`http://${addr}/metrics`)).text();
}

function sample(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(" ").pop()) : NaN;
}

describe("[proxy] workers = 2 (compiled binary)", () => {
  test("starts two data-path threads on one port and spreads connections over both; /metrics and GetStatus add them up", async () => {
    const p = await startProxyProc(config(), { bin });
    try {
      expect(p.start.workers).toBe(2);
      const port = p.port();
      const n = 400; // enough CPU on each thread to show in /proc tick accounting (10 ms ticks)
      const before = dataThreadTicks(p.pid);
      for (let i = 0; i < n; i += 10) {
        const replies = await Promise.all(Array.from({ length: 10 }, () => echoVia(port, "a.test", ca.certPem)));
        expect(replies.every((r) => r === "A:ping")).toBe(true);
      }
      // Work is spread: both data-path threads (Bun names them "mc-proxy" and "Worker") burnt CPU on it.
      const after = dataThreadTicks(p.pid);
      expect(after.main - before.main).toBeGreaterThan(0);
      expect(after.worker - before.worker).toBeGreaterThan(0);
      await waitUntil(() => connWorkers(p).length >= n, 10_000, "a conn line per connection");
      const by = connWorkers(p);
      expect(by.filter((w) => w === 0).length).toBeGreaterThan(0);
      expect(by.filter((w) => w === 1).length).toBeGreaterThan(0);
      const text = await scrape(p);
      expect(sample(text, "mcproxy_connections_accepted_total", `listener="127.0.0.1:0"`)).toBe(n);
      const closed = text.split("\n").filter((l) => l.startsWith(`mcproxy_connections_closed_total{listener="127.0.0.1:0"`)).reduce((a, l) => a + Number(l.split(" ").pop()), 0);
      expect(closed).toBe(n);
      expect(text).toContain("\nmcproxy_workers 2\n");
      expect(text).toContain("\nmcproxy_worker_deaths_total 0\n");
      // A second scrape does not count the worker's share twice.
      expect(sample(await scrape(p), "mcproxy_connections_accepted_total", `listener="127.0.0.1:0"`)).toBe(n);

      // GetStatus: open sessions on both threads are counted.
      const admin = new AdminClient({ addr: `${p.dir}/admin.sock` });
      const open: TlsSession[] = [];
      try {
        for (let i = 0; i < 10; i++) open.push(await tlsSession(port, "a.test", ca.certPem));
        for (const s of open) expect(await s.exchange("hold")).toBe("A:hold");
        const st = await admin.getStatus();
        expect(st.workers).toBe(2);
        expect(st.listeners[0]!.activeConnections).toBe(10);
        expect(st.totalConnections).toBe(n + 10);
        expect(sample(await scrape(p), "mcproxy_active_connections", `listener="127.0.0.1:0"`)).toBe(10);
      } finally {
        for (const s of open) s.close();
        admin.close();
      }
      await waitUntil(async () => sample(await scrape(p), "mcproxy_active_connections", `listener="127.0.0.1:0"`) === 0, 10_000, "all closed");
      expect(await p.stop()).toBe(0);
    } finally {
      p.cleanup();
    }
  });

  test("max_connections = 3 holds across both threads", async () => {
    const p = await startProxyProc(config({ listener: "max_connections = 3" }), { bin });
    try {
      const port = p.port();
      const held: TlsSession[] = [];
      const refused: string[] = [];
      // Twenty attempts while earlier ones stay open: exactly three get through, wherever they land.
      for (let i = 0; i < 20; i++) {
        try {
          const s = await tlsSession(port, "a.test", ca.certPem, { ms: 5000 });
          expect(await s.exchange("x")).toBe("A:x");
          held.push(s);
        } catch (e) {
          refused.push((e as Error).message);
        }
      }
      expect(held.length).toBe(3);
      expect(refused.length).toBe(17);
      // The client may see the close before the server's log line arrives.
      const blocked = await waitUntil(() => {
        const b = p.logs.filter((l) => l.event === "conn" && l.reason === "max_connections").map((l) => Number(l.worker));
        return b.length >= 17 && b;
      }, 10_000, "17 max_connections lines");
      expect(blocked.length).toBe(17);
      // The refusals came from both threads: each one saw the other's connections (all 17 on one: p = 2^-16).
      expect(new Set(blocked).size).toBe(2);
      for (const s of held) s.close();
      await waitUntil(() => p.logs.filter((l) => l.event === "conn" && l.reason !== "max_connections").length === 3, 10_000, "held ones closed");
      // The slots are free again.
      expect(await echoVia(port, "a.test", ca.certPem)).toBe("A:ping");
      expect(await p.stop()).toBe(0);
    } finally {
      p.cleanup();
    }
  });

  test("rate_limit = 5 lets exactly 5 of 12 connections from one IP through", async () => {
    const p = await startProxyProc(config({ firewall: `rate_limit = 5\nrate_window = "60s"` }), { bin });
    try {
      const port = p.port();
      const hello = await realHello("a.test");
      const kinds: string[] = [];
      for (let i = 0; i < 12; i++) kinds.push((await rawAttempt(port, hello, { ms: 700 })).kind);
      const resets = kinds.filter((k) => k === "reset").length;
      expect(12 - resets).toBe(5);
      const limited = () => p.logs.filter((l) => l.event === "conn" && l.reason === "rate_limit").length;
      await waitUntil(() => limited() >= 7, 10_000, "7 rate_limit lines");
      expect(limited()).toBe(7);
      expect(await p.stop()).toBe(0);
    } finally {
      p.cleanup();
    }
  });

  test("a route added through the admin API is served by every thread when the RPC returns", async () => {
    const p = await startProxyProc(config(), { bin });
    const admin = new AdminClient({ addr: `${p.dir}/admin.sock` });
    try {
      const port = p.port();
      await admin.addRoute("127.0.0.1:0", {
        hostname: "b.test", backend: backendB.addr, mode: RouteMode.ROUTE_MODE_L4, tlsCert: "", tlsKey: "",
        backendTls: false, backendProtocol: BackendProtocol.BACKEND_PROTOCOL_UNSPECIFIED, backendTlsVerify: false,
        backendTlsCa: "", backendTlsServerName: "", sendProxyProtocol: false, l7Policies: [],
      });
      // At once, on many connections (the kernel spreads them over both threads): none misses the route.
      const before = connWorkers(p).length;
      const replies = await Promise.all(Array.from({ length: 24 }, () => echoVia(port, "b.test", ca.certPem)));
      expect(replies.every((r) => r === "B:ping")).toBe(true);
      await waitUntil(() => connWorkers(p).length >= before + 24, 10_000, "conn lines");
      expect(new Set(connWorkers(p).slice(before)).size).toBe(2);
      expect(await p.stop()).toBe(0);
    } finally {
      admin.close();
      p.cleanup();
    }
  });

  test("SIGHUP: a certificate replaced on disk is served by every thread once server.reload is logged", async () => {
    const first = makeLeaf(ca, ["c.test"]);
    const second = makeLeaf(ca, ["c.test"]);
    const route = `
  [[listeners.routes]]
  hostname = "c.test"
  backend = "127.0.0.1:9"
  mode = "l7"
  tls_cert = "${first.fullchainPath}"
  tls_key = "${first.keyPath}"`;
    const p = await startProxyProc(config().replace(`backend = "${backendA.addr}"`, `backend = "${backendA.addr}"
${route}`), { bin });
    try {
      const port = p.port();
      const fingerprints = () => Promise.all(Array.from({ length: 24 }, () => servedCert(port, "c.test", ca.certPem)));
      const fp1 = new Set(await fingerprints());
      expect(fp1.size).toBe(1);
      copyFileSync(second.fullchainPath, first.fullchainPath);
      copyFileSync(second.keyPath, first.keyPath);
      const before = connWorkers(p).length;
      p.proc.kill("SIGHUP");
      const reload = await p.waitLog((l) => l.event === "server.reload", 10_000);
      expect(reload.certificates_reloaded).toBe(1);
      expect(reload.workers).toBe(2);
      const fp2 = new Set(await fingerprints());
      expect(fp2.size).toBe(1);
      expect([...fp2][0]).not.toBe([...fp1][0]);
      expect([...fp2][0]).toBe(new crypto.X509Certificate(second.certPem).fingerprint256);
      await waitUntil(() => connWorkers(p).length >= before + 24, 10_000, "conn lines");
      expect(new Set(connWorkers(p).slice(before)).size).toBe(2);
      expect(await p.stop()).toBe(0);
    } finally {
      p.cleanup();
    }
  });

  test("SIGTERM drains connections on both threads, then exits 0", async () => {
    const p = await startProxyProc(config(), { bin });
    try {
      const port = p.port();
      const open: TlsSession[] = [];
      for (let i = 0; i < 16; i++) open.push(await tlsSession(port, "a.test", ca.certPem));
      for (const s of open) expect(await s.exchange("before")).toBe("A:before");
      p.proc.kill("SIGTERM");
      await p.waitLog((l) => l.event === "server.draining", 10_000);
      // Still served while draining, on every thread; then the client closes and the server exits.
      for (const s of open) expect(await s.exchange("during")).toBe("A:during");
      for (const s of open) s.close();
      expect(await p.exited(15_000)).toBe(0);
      const stopped = p.logs.find((l) => l.event === "server.stopped")!;
      expect(stopped.cut).toBe(0);
      expect(stopped.drained).toBe(16);
      expect(new Set(connWorkers(p)).size).toBe(2);
    } finally {
      p.cleanup();
    }
  });
});

describe("[proxy] workers: how many, and the port", () => {
  test("workers = 0 is one thread per CPU the process may run on: taskset -c 0 gives 1, the whole machine gives every CPU", async () => {
    const toml = config().replace("workers = 2", "workers = 0");
    const pinned = await startProxyProc(toml, { bin, wrap: ["taskset", "-c", "0"] });
    try {
      expect(pinned.start.workers).toBe(1);
      expect(await echoVia(pinned.port(), "a.test", ca.certPem)).toBe("A:ping");
      expect(await pinned.stop()).toBe(0);
    } finally {
      pinned.cleanup();
    }
    const all = await startProxyProc(toml, { bin });
    try {
      expect(all.start.workers).toBe(resolveWorkers(0)); // availableParallelism(), capped by a CPU quota if any (quota.test.ts)
      expect(await all.stop()).toBe(0);
    } finally {
      all.cleanup();
    }
  });

  test("a port another instance holds is refused at start, not silently shared through SO_REUSEPORT", async () => {
    const port = await freePort();
    const toml = config().replace('addr = "127.0.0.1:0"', `addr = "127.0.0.1:${port}"`);
    const first = await startProxyProc(toml, { bin });
    const dir = mkdtempSync(join(tmpdir(), "mcp-workers-"));
    try {
      writeFileSync(join(dir, "mc-proxy.toml"), `[database]\npath = "mc-proxy.db"\n\n${toml.replace('addr = "admin.sock"', 'addr = "admin2.sock"')}`);
      const second = spawnServer(join(dir, "mc-proxy.toml"), { bin, cwd: dir });
      const code = await second.exited(20_000);
      expect(code).not.toBe(0);
      expect(second.stderrText()).toContain(`listener 127.0.0.1:${port}: cannot bind`);
      // The first one still has the port to itself.
      for (let i = 0; i < 10; i++) expect(await echoVia(port, "a.test", ca.certPem)).toBe("A:ping");
      await waitUntil(() => first.logs.filter((l) => l.event === "conn").length >= 10, 10_000, "the first instance served all 10");
      expect(await first.stop()).toBe(0);
    } finally {
      first.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The SHA-256 fingerprint of the certificate the proxy presents for `sni` (L7 termination). */
function servedCert(port: number, sni: string, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: sni, ca: caPem, ALPNProtocols: ["http/1.1"] }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? "";
      s.destroy();
      resolve(fp);
    });
    s.on("error", reject);
    s.setTimeout(10_000, () => {
      s.destroy();
      reject(new Error("handshake timed out"));
    });
  });
}

/**
 * CPU time (utime + stime, clock ticks) of the two data-path threads, from
 * /proc/<pid>/task: the main thread (named after the binary) and the one Bun
 * names "Worker".
 */
function dataThreadTicks(pid: number): { main: number; worker: number } {
  const out = { main: 0, worker: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const ticks = Number(f[11]) + Number(f[12]);
      if (Number(tid) === pid) out.main = ticks;
      else if (comm === "Worker") out.worker += ticks;
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}
