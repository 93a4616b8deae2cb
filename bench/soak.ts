/**
 * Soak under faults for the compiled mc-proxy (bench/soak.sh wraps it).
 *
 *   bun bench/soak.ts [--duration 180] [--bin dist/mc-proxy] [--json out.json]
 *                     [--flood 16] [--steady 4]
 *
 * Loopback only, bounded: every loop stops at the end of --duration, every
 * request has a 15 s deadline, every process this script starts is stopped
 * by its PID (backends also exit when this script's stdin pipe closes).
 *
 * Setup: one listener on 127.0.0.1 with an L4 route (soak-l4.test → an HTTPS
 * backend process: the client's TLS ends there) and an L7 route
 * (soak-l7.test → a cleartext HTTP backend process, backend_protocol auto),
 * admin API on a unix socket, a GeoIP database, hello_timeout 10 s.
 *
 * While it runs:
 *   - steady clients (L4 and L7, new TLS connection per request: GET /,
 *     /slow, /big 256 KiB, POST 64 KiB) and one flooding client group
 *     (--flood loops with no pause) and one trickling client (request head
 *     one byte per 20 ms, L4 and L7 in turn);
 *   - a backend is SIGKILLed every 8–15 s, kept down 2–5 s, restarted on
 *     the same port; a request counts as "backend up" only when its backend
 *     was up from the request's start to its end (no kill in between);
 *   - the admin loop adds/upserts/removes routes (L4 and L7) and firewall
 *     rules (ip, cidr, country — never matching 127/8) one at a time and
 *     records every acknowledged write in a model;
 *   - SIGHUP every 3 s;
 *   - VmRSS and open descriptors sampled every second.
 * Then SIGTERM (exit code recorded), a restart on the same database, and the
 * model checked against ListRoutes/GetFirewallRules: every acknowledged
 * write must be there.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import tls from "node:tls";
import type { Subprocess } from "bun";
import { AdminClient, isServiceError } from "../src/admin/client.ts";
import { FirewallRuleType, RouteMode, BackendProtocol, type Route } from "../src/gen/mc_proxy/v1/admin.ts";
import { writeCountryMmdb } from "../test/fixtures/mmdb.ts";
import { makeSelfSignedCert } from "../test/wire/hello-fixtures.ts";

const ROOT = resolve(import.meta.dir, "..");
const argv = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : def;
};
const DURATION_S = Number(opt("duration", "180"));
const BIN = resolve(opt("bin", join(ROOT, "dist/mc-proxy")));
const JSON_OUT = opt("json", "");
const FLOOD = Number(opt("flood", "16"));
const STEADY = Number(opt("steady", "4"));
const REQ_TIMEOUT_MS = 15_000;
const log = (s: string) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${s}`);
const MiB = (n: number) => +(n / 1048576).toFixed(1);

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

function procStat(pid: number): { rss: number; fds: number } {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return { rss: m ? Number(m[1]) * 1024 : 0, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rss: 0, fds: 0 };
  }
}

// ------------------------------------------------------------------ backends

class Backend {
  up = false;
  epoch = 0;
  kills = 0;
  private proc?: Subprocess<"pipe", "pipe", "inherit">;
  constructor(
    readonly name: string,
    readonly port: number,
    private readonly args: string[],
  ) {}

  async start(): Promise<void> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const p = Bun.spawn([process.execPath, join(import.meta.dir, "soak-backend.ts"), String(this.port), ...this.args], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
      const reader = p.stdout.getReader();
      const ready = await Promise.race([
        (async () => {
          let text = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return false;
            text += new TextDecoder().decode(value);
            if (text.includes("ready")) return true;
          }
        })(),
        Bun.sleep(10_000).then(() => false),
      ]);
      reader.releaseLock();
      if (ready) {
        this.proc = p;
        this.up = true;
        return;
      }
      p.kill("SIGKILL"); // port still held by the old socket's TIME_WAIT? try again shortly
      await p.exited;
      await Bun.sleep(100);
    }
    throw new Error(`backend ${this.name} did not start on ${this.port}`);
  }

  async kill(): Promise<void> {
    this.up = false;
    this.epoch++;
    this.kills++;
    this.proc?.kill("SIGKILL");
    await this.proc?.exited;
    this.proc = undefined;
  }
}

// ------------------------------------------------------------------ HTTPS client

interface Res {
  ok: boolean;
  status: number;
  err: string;
}

/** One request on a fresh TLS connection through the proxy; `trickle` sends the head one byte per 20 ms. */
function request(port: number, sni: string, method: string, path: string, body: Uint8Array | null, trickle: boolean): Promise<Res> {
  return new Promise((res) => {
    let settled = false;
    const chunks: Buffer[] = [];
    let got = 0;
    const done = (r: Res) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      res(r);
    };
    const timer = setTimeout(() => done({ ok: false, status: 0, err: "timeout" }), REQ_TIMEOUT_MS);
    const head = `${method} ${path} HTTP/1.1\r\nHost: ${sni}\r\nUser-Agent: soak\r\n${body ? `Content-Length: ${body.length}\r\n` : ""}Connection: close\r\n\r\n`;
    const s = tls.connect({ host: "127.0.0.1", port, servername: sni, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, async () => {
      if (trickle) {
        for (const ch of head) {
          if (settled) return;
          s.write(ch);
          await Bun.sleep(20);
        }
      } else s.write(head);
      if (body) s.write(body);
    });
    const check = (final: boolean) => {
      const all = Buffer.concat(chunks);
      const he = all.indexOf("\r\n\r\n");
      if (he < 0) return final ? done({ ok: false, status: 0, err: got ? "short_head" : "closed_no_response" }) : undefined;
      const headText = all.subarray(0, he).toString("latin1");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0);
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
      const bodyLen = all.length - he - 4;
      const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(headText);
      const complete = cl ? bodyLen >= Number(cl[1]) : chunked ? all.subarray(all.length - 5).toString() === "0\r\n\r\n" : final;
      if (complete) return done({ ok: status === 200, status, err: status === 200 ? "" : `status_${status}` });
      if (final) done({ ok: false, status, err: "short_body" });
    };
    s.on("data", (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      check(false);
    });
    s.on("end", () => check(true));
    s.on("close", () => check(true));
    s.on("error", (e: NodeJS.ErrnoException) => done({ ok: false, status: 0, err: e.code ?? e.message }));
  });
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mcp-soak-"));
  const cert = makeSelfSignedCert(["soak-l7.test", "soak-l4.test"], dir);
  const mmdb = join(dir, "country.mmdb");
  writeCountryMmdb(mmdb, [{ cidr: "127.0.0.0/8", country: "ZZ" }, { cidr: "198.18.0.0/15", country: "KP" }]);
  const sock = join(dir, "admin.sock");
  const port = await freePort();
  const listenerAddr = `127.0.0.1:${port}`;
  const b4 = new Backend("l4-https", await freePort(), ["https", cert.cert, cert.key]);
  const b7 = new Backend("l7-http", await freePort(), ["http"]);
  await Promise.all([b4.start(), b7.start()]);
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(
    cfg,
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[grpc]
addr = "${sock}"

[firewall]
geoip_db = "${mmdb}"
blocked_ips = ["192.0.2.1"]

[[listeners]]
addr = "${listenerAddr}"
  [[listeners.routes]]
  hostname = "soak-l4.test"
  backend = "127.0.0.1:${b4.port}"
  [[listeners.routes]]
  hostname = "soak-l7.test"
  backend = "127.0.0.1:${b7.port}"
  mode = "l7"
  tls_cert = "${cert.cert}"
  tls_key = "${cert.key}"

[proxy]
hello_timeout = "10s"
connect_timeout = "2s"
idle_timeout = "30s"
backend_timeout = "10s"
shutdown_timeout = "5s"

[log]
level = "warn"
`,
  );

  let proc!: Subprocess<"ignore", "ignore", "pipe">;
  const stderrLines: string[] = [];
  const startBinary = async (tag: string) => {
    proc = Bun.spawn([BIN, "server", "-c", cfg], { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    (async () => {
      let buf = "";
      for await (const ch of proc.stderr) {
        buf += new TextDecoder().decode(ch);
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          stderrLines.push(`${tag} ${buf.slice(0, nl)}`);
          buf = buf.slice(nl + 1);
        }
      }
    })().catch(() => {});
    const admin = new AdminClient({ addr: sock }, 2000);
    const t = Date.now();
    for (;;) {
      try {
        if ((await admin.checkHealth()) === 1) break;
      } catch {}
      if (proc.exitCode !== null || Date.now() - t > 30_000) throw new Error(`binary did not become healthy: ${stderrLines.slice(-20).join("\n")}`);
      await Bun.sleep(100);
    }
    admin.close();
    return new AdminClient({ addr: sock }, 5000);
  };
  const killAll = () => {
    proc?.kill("SIGKILL");
  };
  process.on("exit", killAll);

  const admin = await startBinary("run1");
  const pid = proc.pid;
  log(`binary pid ${pid} on ${listenerAddr}; backends ${b4.name}:${b4.port} ${b7.name}:${b7.port}; admin ${sock}`);

  // ---------------- sampling
  const samples: { t: number; rss: number; fds: number }[] = [];
  const t0 = Date.now();
  const startStat = procStat(pid);
  const sampler = setInterval(() => {
    const st = procStat(pid);
    if (st.rss) samples.push({ t: Date.now() - t0, ...st });
  }, 1000);
  const endAt = t0 + DURATION_S * 1000;
  const running = () => Date.now() < endAt;

  // ---------------- clients
  type Stat = { up_ok: number; up_err: number; down_ok: number; down_err: number };
  const stats: Record<string, Stat> = {};
  const upErrors: string[] = [];
  const upErrorReasons: Record<string, number> = {};
  const downErrorReasons: Record<string, number> = {};
  const run = async (client: string, mode: "l4" | "l7", method: string, path: string, body: Uint8Array | null, trickle = false) => {
    const b = mode === "l4" ? b4 : b7;
    const e0 = b.epoch;
    const up0 = b.up;
    const t = Date.now();
    const r = await request(port, mode === "l4" ? "soak-l4.test" : "soak-l7.test", method, path, body, trickle);
    const up = up0 && b.up && b.epoch === e0;
    const key = `${client}/${mode}`;
    const st = (stats[key] ??= { up_ok: 0, up_err: 0, down_ok: 0, down_err: 0 });
    if (up) r.ok ? st.up_ok++ : st.up_err++;
    else r.ok ? st.down_ok++ : st.down_err++;
    if (!r.ok) {
      const reasons = up ? upErrorReasons : downErrorReasons;
      reasons[`${mode}:${r.err}`] = (reasons[`${mode}:${r.err}`] ?? 0) + 1;
      if (up && upErrors.length < 30) upErrors.push(`t=${((t - t0) / 1000).toFixed(1)}s ${key} ${method} ${path} → ${r.err} after ${Date.now() - t} ms`);
    }
  };
  const post = new Uint8Array(64 * 1024).fill(0x61);
  const paths: [string, string, Uint8Array | null][] = [
    ["GET", "/", null],
    ["GET", "/", null],
    ["GET", "/slow", null],
    ["GET", "/big", null],
    ["POST", "/upload", post],
  ];
  const loops: Promise<void>[] = [];
  for (let i = 0; i < STEADY; i++)
    loops.push(
      (async () => {
        for (let n = 0; running(); n++) {
          const [m, p, b] = paths[n % paths.length];
          await run("steady", i % 2 ? "l7" : "l4", m, p, b);
          await Bun.sleep(20);
        }
      })(),
    );
  for (let i = 0; i < FLOOD; i++)
    loops.push(
      (async () => {
        for (let n = 0; running(); n++) await run("flood", (i + n) % 2 ? "l7" : "l4", "GET", "/", null);
      })(),
    );
  loops.push(
    (async () => {
      for (let n = 0; running(); n++) await run("trickle", n % 2 ? "l7" : "l4", "GET", "/trickle", null, true);
    })(),
  );

  // ---------------- backend chaos
  const chaos = (async () => {
    await Bun.sleep(5000);
    while (running()) {
      const b = Math.random() < 0.5 ? b4 : b7;
      await b.kill();
      await Bun.sleep(2000 + Math.random() * 3000);
      await b.start();
      await Bun.sleep(8000 + Math.random() * 7000);
    }
  })();

  // ---------------- SIGHUP every 3 s
  let hups = 0;
  const hupTimer = setInterval(() => {
    if (running() && proc.exitCode === null) {
      proc.kill("SIGHUP");
      hups++;
    }
  }, 3000);

  // ---------------- admin loop with the model of acknowledged writes
  const hosts = Array.from({ length: 30 }, (_, i) => `dyn-${i}.test`);
  const fwValues: { type: FirewallRuleType; value: string }[] = [
    ...Array.from({ length: 10 }, (_, i) => ({ type: FirewallRuleType.FIREWALL_RULE_TYPE_IP, value: `203.0.113.${i + 10}` })),
    ...Array.from({ length: 10 }, (_, i) => ({ type: FirewallRuleType.FIREWALL_RULE_TYPE_CIDR, value: `198.51.${100 + i}.0/24` })),
    ...["KP", "RU", "CN", "IR", "SY", "CU"].map((v) => ({ type: FirewallRuleType.FIREWALL_RULE_TYPE_COUNTRY, value: v })),
  ];
  type RouteModel = { backend: string; mode: RouteMode } | null;
  const routeModel = new Map<string, RouteModel | "uncertain">();
  const fwModel = new Map<string, boolean | "uncertain">();
  const adminStats = { acked: 0, route_add: 0, route_remove: 0, fw_add: 0, fw_remove: 0, refused: 0, uncertain: 0, errors: {} as Record<string, number> };
  const adminLoop = (async () => {
    while (running()) {
      const x = Math.random();
      try {
        if (x < 0.4) {
          const h = hosts[Math.floor(Math.random() * hosts.length)];
          const l7 = Math.random() < 0.5;
          const backend = `127.0.0.1:${20000 + Math.floor(Math.random() * 50)}`;
          const route: Route = {
            hostname: h,
            backend,
            mode: l7 ? RouteMode.ROUTE_MODE_L7 : RouteMode.ROUTE_MODE_L4,
            tlsCert: l7 ? cert.cert : "",
            tlsKey: l7 ? cert.key : "",
            backendTls: false,
            backendProtocol: l7 ? BackendProtocol.BACKEND_PROTOCOL_AUTO : BackendProtocol.BACKEND_PROTOCOL_UNSPECIFIED,
            backendTlsVerify: false,
            backendTlsCa: "",
            backendTlsServerName: "",
            sendProxyProtocol: false,
            l7Policies: [],
          };
          routeModel.set(h, "uncertain");
          await admin.addRoute(listenerAddr, route);
          routeModel.set(h, { backend, mode: route.mode });
          adminStats.route_add++;
        } else if (x < 0.65) {
          const h = hosts[Math.floor(Math.random() * hosts.length)];
          const before = routeModel.get(h);
          routeModel.set(h, "uncertain");
          try {
            await admin.removeRoute(listenerAddr, h);
          } catch (e) {
            if (isServiceError(e) && e.code === 5 && (before === null || before === undefined)) {
              routeModel.set(h, null); // NOT_FOUND for a route the model says is absent: consistent
              adminStats.refused++;
              continue;
            }
            throw e;
          }
          routeModel.set(h, null);
          adminStats.route_remove++;
        } else {
          const r = fwValues[Math.floor(Math.random() * fwValues.length)];
          const k = `${r.type}:${r.value}`;
          const add = x < 0.85;
          const before = fwModel.get(k);
          fwModel.set(k, "uncertain");
          try {
            if (add) await admin.addFirewallRule(r);
            else await admin.removeFirewallRule(r);
          } catch (e) {
            if (!add && isServiceError(e) && e.code === 5 && (before === false || before === undefined)) {
              fwModel.set(k, false);
              adminStats.refused++;
              continue;
            }
            throw e;
          }
          fwModel.set(k, add);
          add ? adminStats.fw_add++ : adminStats.fw_remove++;
        }
        adminStats.acked++;
      } catch (e) {
        // Outcome unknown (or refused unexpectedly): the key stays "uncertain" and is not verified.
        adminStats.uncertain++;
        const code = isServiceError(e) ? `grpc_${e.code}: ${e.details}` : (e as Error).message;
        adminStats.errors[code] = (adminStats.errors[code] ?? 0) + 1;
      }
      await Bun.sleep(50 + Math.random() * 200);
    }
  })();

  // ---------------- progress
  const progress = setInterval(() => {
    const s = samples.at(-1);
    const tot = Object.values(stats).reduce((a, x) => ({ ok: a.ok + x.up_ok + x.down_ok, upErr: a.upErr + x.up_err }), { ok: 0, upErr: 0 });
    log(`t=${Math.round((Date.now() - t0) / 1000)}s ok ${tot.ok} up-errors ${tot.upErr} admin acked ${adminStats.acked} hups ${hups} kills ${b4.kills + b7.kills} RSS ${s ? MiB(s.rss) : "?"} MiB fds ${s?.fds}`);
  }, 15_000);

  await Promise.race([Promise.all([...loops, chaos, adminLoop]), Bun.sleep(DURATION_S * 1000 + 60_000)]);
  clearInterval(hupTimer);
  clearInterval(progress);
  const loadEnd = procStat(pid);
  await Bun.sleep(3000);
  const settled = procStat(pid);
  clearInterval(sampler);

  // ---------------- SIGTERM, restart, verify
  const aliveBeforeTerm = proc.exitCode === null;
  proc.kill("SIGTERM");
  const code1 = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => null)]);
  if (code1 === null) proc.kill("SIGKILL");
  admin.close();
  log(`SIGTERM → exit ${code1}; restarting on the same database`);
  const admin2 = await startBinary("run2");
  const routes = await admin2.listRoutes(listenerAddr);
  const rules = await admin2.getFirewallRules();
  const have = new Map(routes.map((r) => [r.hostname, r]));
  const haveRules = new Set(rules.map((r) => `${r.type}:${r.value}`));
  const verify = { routes_checked: 0, routes_ok: 0, rules_checked: 0, rules_ok: 0, uncertain_skipped: 0, mismatches: [] as string[] };
  for (const [h, m] of routeModel) {
    if (m === "uncertain") {
      verify.uncertain_skipped++;
      continue;
    }
    verify.routes_checked++;
    const r = have.get(h);
    const ok = m === null ? !r : !!r && r.backend === m.backend && r.mode === m.mode;
    if (ok) verify.routes_ok++;
    else verify.mismatches.push(`route ${h}: expected ${JSON.stringify(m)}, have ${r ? `${r.backend} mode ${r.mode}` : "none"}`);
  }
  for (const [k, m] of fwModel) {
    if (m === "uncertain") {
      verify.uncertain_skipped++;
      continue;
    }
    verify.rules_checked++;
    if (haveRules.has(k) === m) verify.rules_ok++;
    else verify.mismatches.push(`rule ${k}: expected ${m ? "present" : "absent"}`);
  }
  // The static routes must be back too.
  const staticOk = have.has("soak-l4.test") && have.has("soak-l7.test");
  const r2 = await request(port, "soak-l7.test", "GET", "/", null, false);
  admin2.close();
  proc.kill("SIGTERM");
  const code2 = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => null)]);
  if (code2 === null) proc.kill("SIGKILL");
  process.off("exit", killAll);
  await b4.kill();
  await b7.kill();

  const events: Record<string, number> = {};
  const odd: string[] = [];
  for (const l of stderrLines) {
    const raw = l.slice(5);
    try {
      const o = JSON.parse(raw);
      events[o.event] = (events[o.event] ?? 0) + 1;
      if (o.level === "error") odd.push(l);
    } catch {
      odd.push(l);
    }
  }
  const peak = samples.reduce((a, s) => ({ rss: Math.max(a.rss, s.rss), fds: Math.max(a.fds, s.fds) }), { rss: 0, fds: 0 });
  const early = samples.find((s) => s.t >= 10_000) ?? samples[0];
  const totals = Object.values(stats).reduce((a, x) => ({ up_ok: a.up_ok + x.up_ok, up_err: a.up_err + x.up_err, down_ok: a.down_ok + x.down_ok, down_err: a.down_err + x.down_err }), { up_ok: 0, up_err: 0, down_ok: 0, down_err: 0 });
  const summary = {
    date: new Date().toISOString(),
    binary: BIN,
    duration_s: DURATION_S,
    flood_loops: FLOOD,
    steady_loops: STEADY,
    requests: totals,
    per_client: stats,
    client_errors_while_backend_up: totals.up_err,
    up_error_reasons: upErrorReasons,
    up_error_examples: upErrors,
    down_error_reasons: downErrorReasons,
    backend_kills: { [b4.name]: b4.kills - 1, [b7.name]: b7.kills - 1 },
    sighups: hups,
    admin: adminStats,
    verify_after_restart: { ...verify, static_routes_present: staticOk, l7_request_after_restart: r2.ok ? "200" : r2.err },
    exit_code_sigterm: code1,
    exit_code_sigterm_after_restart: code2,
    alive_until_sigterm: aliveBeforeTerm,
    rss_mib: { start_idle: MiB(startStat.rss), at_10s: MiB(early?.rss ?? 0), peak: MiB(peak.rss), end_of_load: MiB(loadEnd.rss), settled_3s: MiB(settled.rss) },
    fds: { start_idle: startStat.fds, at_10s: early?.fds, peak: peak.fds, end_of_load: loadEnd.fds, settled_3s: settled.fds },
    rss_mib_per_30s: samples.filter((_, i) => i % 30 === 0).map((s) => MiB(s.rss)),
    fds_per_30s: samples.filter((_, i) => i % 30 === 0).map((s) => s.fds),
    log_events: events,
    log_error_or_non_json: odd.slice(0, 10),
    work_dir: dir,
  };
  const text = JSON.stringify(summary, null, 1);
  console.log(text);
  if (JSON_OUT) writeFileSync(JSON_OUT, text);
  const ok = totals.up_err === 0 && verify.mismatches.length === 0 && code1 === 0 && code2 === 0 && aliveBeforeTerm;
  if (ok && !argv.includes("--keep")) rmSync(dir, { recursive: true, force: true });
  process.exit(ok ? 0 : 1);
}

await main();
