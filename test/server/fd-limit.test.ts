/**
 * Running out of file descriptors (SPEC §4), on the real server process with
 * a low RLIMIT_NOFILE (prlimit, which execs the server in place): more
 * clients than descriptors allow are held on an L4 route whose backend keeps
 * every connection. The server must stay alive, not spin (Bun's native accept
 * loop retries EMFILE at 100 % CPU), warn at most about once a second, and
 * serve again once the held clients are gone. The start-up line states the
 * limit.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { rawConnect, realHello, startSink, type RawClient, type TcpSink } from "../helpers/net.ts";
import { ensureBinaries } from "../e2e/build.ts";
import { killAllServers, startProxyProc, type ServerProc } from "../helpers/subprocess.ts";

const LIMIT = 128;
/** More than LIMIT allows: each routed L4 connection costs the server two descriptors. */
const CLIENTS = 100;

let sink: TcpSink;
const procs: ServerProc[] = [];
beforeAll(async () => {
  // Holds every connection until the client's FIN; "ok" tells the client it was routed.
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

function config(): string {
  return `
[proxy]
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "fd.test"
  backend = "127.0.0.1:${sink.port}"
`;
}

/** utime + stime of a process in seconds (/proc/<pid>/stat fields 14 and 15). */
const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Connects and sends a hello; resolves "ok" once routed (the backend's "ok"), else how it ended. */
async function attempt(port: number, hello: Uint8Array, ms = 5000): Promise<{ c: RawClient; routed: boolean }> {
  const c = rawConnect(port);
  c.socket.on("error", () => {});
  c.socket.write(hello);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (c.received().toString() === "ok") return { c, routed: true };
    if (c.socket.destroyed || c.socket.readableEnded) return { c, routed: false };
    await Bun.sleep(10);
  }
  return { c, routed: false };
}

test(`out of descriptors (RLIMIT_NOFILE ${LIMIT}): the server refuses new clients without spinning, warns at most once a second, and serves again once descriptors are free`, async () => {
  const p = await startProxyProc(config(), { wrap: ["prlimit", `--nofile=${LIMIT}:${LIMIT}`, "--"], bin: ensureBinaries().mcProxy });
  procs.push(p);
  const port = p.port();
  const hello = await realHello("fd.test");

  // Saturate: CLIENTS connections in parallel, every one sends its hello and holds.
  const results = await Promise.all(Array.from({ length: CLIENTS }, () => attempt(port, hello)));
  const held = results.filter((r) => r.routed).map((r) => r.c);
  const refused = results.filter((r) => !r.routed);
  expect(held.length).toBeGreaterThan(10); // the budget is most of the limit…
  expect(held.length).toBeLessThan(LIMIT / 2); // …and two descriptors per routed connection
  expect(refused.length).toBeGreaterThan(0);
  for (const r of refused) expect(r.c.received().length).toBe(0); // closed without a byte
  await p.waitLog((l) => l.event === "server.fd_exhausted", 5000, "server.fd_exhausted");

  // While saturated, clients keep arriving (one every 20 ms); the server's CPU over 2 s stays low.
  const extra: RawClient[] = [];
  let stop = false;
  const trickle = (async () => {
    while (!stop) {
      const c = rawConnect(port);
      c.socket.on("error", () => {});
      c.socket.write(hello);
      extra.push(c);
      await Bun.sleep(20);
    }
  })();
  const warnT0 = Date.now();
  const warnsBefore = p.logs.filter((l) => l.event === "server.fd_exhausted").length;
  const cpu0 = cpuSeconds(p.pid);
  const t0 = performance.now();
  await Bun.sleep(2000);
  const cpu = (cpuSeconds(p.pid) - cpu0) / ((performance.now() - t0) / 1000);
  stop = true;
  await trickle;
  const elapsed = (Date.now() - warnT0) / 1000;
  const warns = p.logs.filter((l) => l.event === "server.fd_exhausted").length - warnsBefore;
  console.log(`fd-limit: ${held.length} held, ${refused.length} refused; server CPU while saturated ${(cpu * 100).toFixed(1)} %; ${warns} warnings in ${elapsed.toFixed(1)} s`);
  expect(p.done).toBe(false);
  expect(cpu).toBeLessThan(0.3);
  expect(warns).toBeGreaterThanOrEqual(1); // clients kept being refused, so it keeps being said…
  expect(warns).toBeLessThanOrEqual(Math.ceil(elapsed) + 1); // …about once a second
  const w = p.logs.find((l) => l.event === "server.fd_exhausted")!;
  expect(w).toMatchObject({ level: "warn", fd_limit: LIMIT });
  expect(w.refused as number).toBeGreaterThan(0);
  expect(w.fds_in_use as number).toBeLessThanOrEqual(LIMIT);
  // The trickled clients were refused (closed without a byte), not left hanging in the backlog.
  const outcomes = await Promise.all(extra.map((c) => c.outcome(5000)));
  for (const o of outcomes) {
    expect(o.kind === "fin" || o.kind === "reset").toBe(true);
    expect(o.bytes.length).toBe(0);
  }
  const blocked = p.logs.filter((l) => l.event === "conn" && l.reason === "fd_limit");
  expect(blocked.length).toBeGreaterThanOrEqual(refused.length);
  expect(blocked[0]).toMatchObject({ outcome: "blocked", reason: "fd_limit" });

  // The held clients leave; the server accepts and routes again by itself.
  for (const c of held) c.socket.destroy();
  const until = Date.now() + 10_000;
  let back = false;
  while (!back && Date.now() < until) {
    const r = await attempt(port, hello, 2000);
    r.c.socket.destroy();
    back = r.routed;
    if (!back) await Bun.sleep(50);
  }
  expect(back).toBe(true);
  expect(await p.stop()).toBe(0);
});

test("the start-up line states the descriptor limit, with the soft limit raised to the hard one", async () => {
  const p = await startProxyProc(config(), { wrap: ["prlimit", "--nofile=100:200", "--"], bin: ensureBinaries().mcProxy });
  procs.push(p);
  expect(p.start.fd_limit).toEqual({ soft: 200, hard: 200 });
  const limits = readFileSync(`/proc/${p.pid}/limits`, "utf8");
  expect(limits).toMatch(/Max open files\s+200\s+200\s/);
  expect(await p.stop()).toBe(0);
});
