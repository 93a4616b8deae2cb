import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { InvalidArgumentError } from "../../src/errors.ts";
import { setLogSink } from "../../src/obs/log.ts";
import { createMetrics } from "../../src/obs/metrics.ts";
import { type MetricsServer, parseMetricsAddr, startMetricsServer } from "../../src/obs/metrics-server.ts";
import { Registry } from "../../src/obs/prom.ts";
import { duplicateSeries, promtoolCheck } from "./promtool.ts";

const m = createMetrics(new Registry({ dropCounterName: "mcproxy_metric_series_dropped_total" }));
const opened: MetricsServer[] = [];
const logs: string[] = [];
let prevSink: (line: string) => void;

async function start(addr: string): Promise<MetricsServer> {
  const s = await startMetricsServer(addr, m.render);
  opened.push(s);
  return s;
}

async function curl(...args: string[]): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(["curl", "-sS", "--max-time", "10", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: out + err };
}

/** True if a TCP connect to host:port succeeds within 3 s. */
/** Local addresses of this process's listening TCP sockets on `port` (from `ss -ltnp`). */
function ownListeners(port: number): string[] {
  const r = Bun.spawnSync(["ss", "-Hltnp", `sport = :${port}`], { stdout: "pipe", stderr: "pipe" });
  return r.stdout
    .toString()
    .split("\n")
    .filter((l) => l.includes(`pid=${process.pid},`))
    .map((l) => l.trim().split(/\s+/)[3]!)
    .sort();
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => done(false), 3000);
    function done(ok: boolean) {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    }
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

const hasV6 = await new Promise<boolean>((resolve) => {
  const srv = net.createServer();
  srv.once("error", () => resolve(false));
  srv.listen(0, "::1", () => srv.close(() => resolve(true)));
});

beforeAll(() => {
  prevSink = setLogSink((line) => logs.push(line));
  m.listener("127.0.0.1:443").accepted();
  m.l7Request("a.example.com", 200, 0.03);
  m.setActiveSource(() => [{ listener: "127.0.0.1:443", active: 4 }]);
});
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => {});
  setLogSink(prevSink);
});

describe("metrics endpoint", () => {
  test("GET /metrics over fetch returns the exposition with the 0.0.4 content type", async () => {
    const s = await start("127.0.0.1:0");
    expect(s.port).toBeGreaterThan(0);
    const r = await fetch(`http://127.0.0.1:${s.port}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    const body = await r.text();
    expect(body).toContain('mcproxy_connections_accepted_total{listener="127.0.0.1:443"} 1\n');
    expect(body).toContain('mcproxy_active_connections{listener="127.0.0.1:443"} 4\n');
    expect(logs.some((l) => l.includes('"event":"metrics.listen"') && l.includes(`127.0.0.1:${s.port}`))).toBe(true);
  });

  test("a scrape with curl passes promtool check metrics", async () => {
    const s = await start("127.0.0.1:0");
    const r = await curl("-f", `http://127.0.0.1:${s.port}/metrics`);
    expect(r.code).toBe(0);
    expect(r.out).toContain("# TYPE mcproxy_l7_request_duration_seconds histogram\n");
    const check = await promtoolCheck(r.out);
    expect(check.output).toBe("");
    expect(check.code).toBe(0);
    expect(duplicateSeries(r.out)).toEqual([]);
  });

  test("scrapes see live values: a counter bumped between scrapes moves", async () => {
    const s = await start("127.0.0.1:0");
    const get = async () => (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
    const before = Number(/^mcproxy_reloads_total\{kind="geoip",result="ok"\} (\d+)$/m.exec(await get())?.[1] ?? 0);
    m.reload("geoip", true);
    const after = Number(/^mcproxy_reloads_total\{kind="geoip",result="ok"\} (\d+)$/m.exec(await get())?.[1]);
    expect(after).toBe(before + 1);
  });

  test("other paths are 404 and non-GET on /metrics is 405", async () => {
    const s = await start("127.0.0.1:0");
    expect((await fetch(`http://127.0.0.1:${s.port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${s.port}/metrics/x`)).status).toBe(404);
    expect((await curl("-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${s.port}/debug`)).out).toBe("404");
    expect((await fetch(`http://127.0.0.1:${s.port}/metrics`, { method: "POST", body: "x" })).status).toBe(405);
    expect((await fetch(`http://127.0.0.1:${s.port}/metrics?x=1`)).status).toBe(200);
  });

  test.skipIf(!hasV6)("IPv6 address in brackets binds ::1 only; curl scrapes it", async () => {
    const s = await start("[::1]:0");
    const r = await curl("-g", "-f", `http://[::1]:${s.port}/metrics`);
    expect(r.code).toBe(0);
    expect(r.out).toContain("mcproxy_build_info{");
    // Our own listening sockets on that port (ss, this pid): exactly ::1 — no wildcard, no IPv4.
    // (A connect to 127.0.0.1:port could reach another process that happens to hold that port.)
    expect(ownListeners(s.port)).toEqual([`[::1]:${s.port}`]);
  });

  test("binds exactly the configured IPv4 host, not a wildcard", async () => {
    const s = await start("127.0.0.1:0");
    expect(await canConnect("127.0.0.1", s.port)).toBe(true);
    expect(ownListeners(s.port)).toEqual([`127.0.0.1:${s.port}`]);
  });

  test("a port already in use is an error naming metrics.addr, not a shared socket", async () => {
    const s = await start("127.0.0.1:0");
    const e = await startMetricsServer(`127.0.0.1:${s.port}`, m.render).then(
      () => null,
      (err: Error & { code?: string }) => err,
    );
    expect(e?.message).toStartWith(`metrics.addr 127.0.0.1:${s.port}: cannot bind: `);
    expect(e?.code).toBe("EADDRINUSE");
  });

  test("close() stops serving", async () => {
    const s = await startMetricsServer("127.0.0.1:0", m.render);
    await s.close();
    expect(await canConnect("127.0.0.1", s.port)).toBe(false);
  });

  test("malformed addresses are refused with InvalidArgumentError", async () => {
    for (const bad of ["127.0.0.1", "::1:9091", "[::1]9091", "host:99999", ":9091", "a:b"]) {
      expect(parseMetricsAddr(bad)).toBeInstanceOf(InvalidArgumentError);
    }
    expect(parseMetricsAddr("[::1]:9091")).toEqual({ host: "::1", port: 9091 });
    expect(parseMetricsAddr("localhost:0")).toEqual({ host: "localhost", port: 0 });
    await expect(startMetricsServer("nonsense", m.render)).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
