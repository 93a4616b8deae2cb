/**
 * The admin surface end to end (SPEC §7, §9): a compiled `mc-proxy server`
 * subprocess with its gRPC API on a unix socket, driven by the compiled
 * `mcproxyctl`, with real TLS clients going through the L4 listener to real
 * TLS backends. Changes must take effect at once, survive a restart, and
 * never cut established connections.
 *
 * The tests share one server and run in file order (routes added by one are
 * used by the next), like an operator's session; run the whole file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { cleanupCerts, makeCA, makeClientCert, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { freePort } from "../helpers/proxy.ts";
import { captureWithOpenssl } from "../wire/hello-fixtures.ts";
import { ensureBinaries } from "./build.ts";
import { freshDir, killAll, poll, removeDir, runBin, startServerProc, type RunResult, type ServerProc } from "./harness.ts";
import { echoVia, rawAttempt, startTlsEcho, tlsSession, type EchoBackend } from "./net.ts";

const L = "127.0.0.1:0"; // the listener, named exactly as configured
let bins: { mcProxy: string; ctl: string };
let dir: string;
let cfg: string;
let sock: string;
let srv: ServerProc;
let ca: CA;
let leaf: CertFiles;
let A: EchoBackend;
let B: EchoBackend;
let hello: Uint8Array; // a real ClientHello with SNI gone.test, for "closed, no bytes" checks

/** mcproxyctl against the server's socket; `--json` added when `json`. */
function ctl(args: string[], json = false): Promise<RunResult> {
  return runBin(bins.ctl, ["--socket", sock, ...(json ? ["--json"] : []), ...args], { cwd: dir });
}

async function ctlJson(args: string[]): Promise<any> {
  const r = await ctl(args, true);
  if (r.code !== 0) throw new Error(`mcproxyctl ${args.join(" ")} exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out);
}

const port = () => srv.port(0);

beforeAll(async () => {
  bins = ensureBinaries();
  ca = makeCA("e2e admin CA");
  leaf = makeLeaf(ca, ["app.test", "gone.test", "fw.test", "max.test"]);
  [A, B] = await Promise.all([startTlsEcho("A", leaf), startTlsEcho("B", leaf)]);
  hello = await captureWithOpenssl({ sni: "gone.test" });
  dir = freshDir("mcp-e2e-admin-");
  cfg = path.join(dir, "mc-proxy.toml");
  sock = path.join(dir, "admin.sock");
  fs.writeFileSync(cfg, `
[database]
path = "mc-proxy.db"

[[listeners]]
addr = "${L}"
  [[listeners.routes]]
  hostname = "fw.test"
  backend = "${A.addr}"

[grpc]
addr = "admin.sock"

[proxy]
shutdown_timeout = "3s"
`);
  srv = await startServerProc(bins.mcProxy, cfg, { cwd: dir });
}, 600_000);

afterAll(async () => {
  await srv?.stop();
  killAll();
  await Promise.all([A?.stop(), B?.stop()]);
  removeDir(dir);
  cleanupCerts();
});

test("the admin unix socket is created with mode 0600", () => {
  const st = fs.lstatSync(sock);
  expect(st.isSocket()).toBe(true);
  expect(st.mode & 0o777).toBe(0o600);
  const l = srv.logs.find((x) => x.event === "admin.listening");
  expect(l).toMatchObject({ addr: sock, transport: "unix" });
  expect(l!.port).toBeUndefined(); // a unix socket has no port
});

describe("routes", () => {
  test("a route added with `mcproxyctl routes add` serves TLS traffic through the listener at once", async () => {
    // Before: no route for app.test, so the proxy closes the connection.
    await expect(echoVia(port(), "app.test", ca.certPem)).rejects.toThrow();
    const add = await ctl(["routes", "add", "--listener", L, "--hostname", "app.test", "--backend", A.addr]);
    expect(add).toEqual({ code: 0, out: `route app.test on ${L} -> ${A.addr} (l4)\n`, err: "" });
    expect(await echoVia(port(), "app.test", ca.certPem)).toBe("A:ping");
  });

  test("adding the same hostname again leaves one route, with the second backend, serving at once", async () => {
    const add = await ctl(["routes", "add", "--listener", L, "--hostname", "APP.test", "--backend", B.addr]);
    expect(add.code).toBe(0);
    const list = await ctlJson(["routes", "list", "--listener", L]);
    const app = list.routes.filter((r: { hostname: string }) => r.hostname === "app.test");
    expect(app).toHaveLength(1);
    expect(app[0].backend).toBe(B.addr);
    expect(await echoVia(port(), "app.test", ca.certPem)).toBe("B:ping");
  });

  test("after a restart (SIGTERM, start again on the same database) the route is still there and serving", async () => {
    expect(await srv.stop()).toBe(0);
    expect(srv.logs.some((l) => l.event === "server.stopped")).toBe(true);
    srv = await startServerProc(bins.mcProxy, cfg, { cwd: dir });
    expect(srv.start.seeded).toBe(false);
    const list = await ctlJson(["routes", "list", "--listener", L]);
    expect(list.routes.map((r: { hostname: string; backend: string }) => [r.hostname, r.backend])).toEqual(
      expect.arrayContaining([["app.test", B.addr], ["fw.test", A.addr]]),
    );
    expect(await echoVia(port(), "app.test", ca.certPem)).toBe("B:ping");
  }, 60_000);

  test("a removed route refuses new connections (closed, no bytes) while an established one keeps flowing", async () => {
    expect((await ctl(["routes", "add", "--listener", L, "--hostname", "gone.test", "--backend", A.addr])).code).toBe(0);
    const held = await tlsSession(port(), "gone.test", ca.certPem);
    try {
      expect(await held.exchange("before")).toBe("A:before");
      const rm = await ctl(["routes", "remove", "--listener", L, "--hostname", "gone.test"]);
      expect(rm).toEqual({ code: 0, out: `removed route gone.test from ${L}\n`, err: "" });

      const fresh = await rawAttempt(port(), hello);
      expect(fresh.kind).not.toBe("timeout");
      expect(fresh.bytes.length).toBe(0);

      // The established connection was not cut: data still flows both ways.
      expect(await held.exchange("after")).toBe("A:after");
      expect(await held.exchange("again")).toBe("A:again");
    } finally {
      held.close();
    }
    const list = await ctlJson(["routes", "list", "--listener", L]);
    expect(list.routes.some((r: { hostname: string }) => r.hostname === "gone.test")).toBe(false);
  });
});

describe("status", () => {
  test("`mc-proxy status -c` and `mcproxyctl status` show version, uptime and per-listener address/routes/active/max/PROXY", async () => {
    const version = (await runBin(bins.mcProxy, ["version"], { cwd: dir })).out.trim().replace(/^mc-proxy /, "");
    const routes = (await ctlJson(["routes", "list", "--listener", L])).routes.length;
    const held = await tlsSession(port(), "app.test", ca.certPem);
    try {
      expect(await held.exchange("x")).toBe("B:x");
      // The held connection is counted as active (poll: accounting happens on the server's loop).
      const j = await poll(async () => {
        const r = await runBin(bins.mcProxy, ["status", "-c", cfg, "--json"], { cwd: dir });
        expect(r.code).toBe(0);
        const doc = JSON.parse(r.out);
        return doc.listeners[0].active_connections === 1 ? doc : null;
      }, 15_000, "active_connections = 1");
      expect(j.version).toBe(version);
      expect(typeof j.uptime_seconds).toBe("number");
      expect(new Date(j.started_at).getTime()).toBeLessThanOrEqual(Date.now());
      expect(j.total_connections).toBeGreaterThanOrEqual(1);
      expect(j.listeners).toEqual([
        { addr: L, route_count: routes, active_connections: 1, max_connections: 0, proxy_protocol: false, proxy_protocol_trusted: [] },
      ]);

      const ctlJ = await ctlJson(["status"]);
      expect(ctlJ.version).toBe(version);
      expect(ctlJ.listeners[0]).toMatchObject({ addr: L, route_count: routes, active_connections: 1, max_connections: 0, proxy_protocol: false });

      for (const r of [await runBin(bins.mcProxy, ["status", "-c", cfg], { cwd: dir }), await ctl(["status"])]) {
        expect(r.code).toBe(0);
        const out = r.out.split("\n");
        expect(out[0]).toBe(`mc-proxy ${version}`);
        expect(out[1]).toMatch(/^started\s+\d{4}-\d\d-\d\dT\S+Z \(up (\d+[dhm])*\d+s\)$/);
        expect(r.out).toMatch(/LISTENER\s+ROUTES\s+ACTIVE\s+MAX\s+PROXY PROTOCOL/);
        expect(r.out).toMatch(new RegExp(`\\n127\\.0\\.0\\.1:0\\s+${routes}\\s+1\\s+unlimited\\s+off\\n`));
      }
    } finally {
      held.close();
    }
  }, 60_000);
});

describe("listeners set-max-connections", () => {
  test("a limit of 1 closes a second concurrent connection at once; 0 lifts it", async () => {
    const set = await ctlJson(["listeners", "set-max-connections", "--listener", L, "--max", "1"]);
    expect(set.listener).toMatchObject({ addr: L, max_connections: 1 });
    await poll(async () => (await ctlJson(["status"])).listeners[0].active_connections === 0, 15_000, "no active connections");
    const held = await tlsSession(port(), "app.test", ca.certPem);
    try {
      expect(await held.exchange("one")).toBe("B:one");
      const second = await rawAttempt(port(), hello);
      expect(second.kind).not.toBe("timeout");
      expect(second.bytes.length).toBe(0);
      expect(B.accepted).toBeGreaterThan(0);
      const st = await ctlJson(["status"]);
      expect(st.listeners[0].max_connections).toBe(1);
      expect(await held.exchange("still")).toBe("B:still");
    } finally {
      held.close();
    }
    expect((await ctl(["listeners", "set-max-connections", "--listener", L, "--max", "0"])).code).toBe(0);
    // Two at once work again.
    const [x, y] = await Promise.all([tlsSession(port(), "app.test", ca.certPem), tlsSession(port(), "app.test", ca.certPem)]);
    try {
      expect(await x.exchange("x")).toBe("B:x");
      expect(await y.exchange("y")).toBe("B:y");
    } finally {
      x.close();
      y.close();
    }
  }, 60_000);

  test("a negative or non-numeric limit is a usage error (exit 2)", async () => {
    const r = await ctl(["listeners", "set-max-connections", "--listener", L, "--max", "-1"]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });
});

describe("firewall", () => {
  test("`firewall add --type ip` resets a client from that IP through the listener; others pass; remove lifts it", async () => {
    // Sanity: 127.0.0.7 reaches the route before the rule.
    expect(await echoVia(port(), "fw.test", ca.certPem, { localAddress: "127.0.0.7" })).toBe("A:ping");

    const add = await ctl(["firewall", "add", "--type", "ip", "--value", "127.0.0.7"]);
    expect(add).toEqual({ code: 0, out: "added firewall rule ip 127.0.0.7\n", err: "" });
    const list = await ctlJson(["firewall", "list"]);
    expect(list.rules).toContainEqual({ type: "ip", value: "127.0.0.7" });
    const table = await ctl(["firewall", "list"]);
    expect(table.out).toMatch(/\bip\s+127\.0\.0\.7\b/);

    const blocked = await rawAttempt(port(), hello, { localAddress: "127.0.0.7" });
    expect(blocked.kind).toBe("reset");
    expect(blocked.bytes.length).toBe(0);
    expect(await echoVia(port(), "fw.test", ca.certPem, { localAddress: "127.0.0.8" })).toBe("A:ping");

    const rm = await ctl(["firewall", "remove", "--type", "ip", "--value", "127.0.0.7"]);
    expect(rm.code).toBe(0);
    expect((await ctlJson(["firewall", "list"])).rules).not.toContainEqual({ type: "ip", value: "127.0.0.7" });
    expect(await echoVia(port(), "fw.test", ca.certPem, { localAddress: "127.0.0.7" })).toBe("A:ping");
  }, 60_000);
});

describe("exit codes", () => {
  test("NOT_FOUND from the server → exit 1 with one `error: NOT_FOUND: …` line", async () => {
    const r = await ctl(["routes", "remove", "--listener", L, "--hostname", "nope.test"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^error: NOT_FOUND: [^\n]*nope\.test[^\n]*\n$/);
  });

  test("INVALID_ARGUMENT (bad backend) → exit 1 naming the field", async () => {
    const r = await ctl(["routes", "add", "--listener", L, "--hostname", "bad.test", "--backend", "no-port"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: INVALID_ARGUMENT: [^\n]*backend[^\n]*\n$/);
  });

  test("usage errors → exit 2 with one line (missing flag, unknown option, unknown value)", async () => {
    for (const args of [
      ["routes", "add", "--listener", L, "--hostname", "x.test"],
      ["routes", "list", "--listener", L, "--bogus", "1"],
      ["firewall", "add", "--type", "planet", "--value", "mars"],
    ]) {
      const r = await ctl(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    }
  });

  test("a socket nobody listens on → exit 3 with one `cannot connect` line", async () => {
    const r = await runBin(bins.ctl, ["--socket", path.join(dir, "nobody.sock"), "status"], { cwd: dir });
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^error: cannot connect to [^\n]*nobody\.sock[^\n]*\n$/);
    const s = await runBin(bins.mcProxy, ["status", "-c", path.join(dir, "nobody.toml")], { cwd: dir });
    expect(s.code).not.toBe(0); // missing config: one line, non-zero
    expect(s.err.trimEnd().split("\n")).toHaveLength(1);
  });
});

describe("admin API over TCP with mTLS (compiled binaries)", () => {
  let mdir: string;
  let mcfg: string;
  let msrv: ServerProc | undefined;
  let addr: string;
  let serverCA: CA;
  let clientCA: CA;
  let client: CertFiles;
  let stranger: CertFiles;

  beforeAll(async () => {
    serverCA = makeCA("e2e admin server CA");
    clientCA = makeCA("e2e admin client CA");
    const otherCA = makeCA("e2e some other CA");
    const serverLeaf = makeLeaf(serverCA, ["127.0.0.1"]);
    client = makeClientCert(clientCA, "ops");
    stranger = makeClientCert(otherCA, "ops");
    mdir = freshDir("mcp-e2e-mtls-");
    mcfg = path.join(mdir, "mc-proxy.toml");
    // A free port can be taken between probe and bind by a concurrent test: retry a few times.
    for (let attempt = 0; ; attempt++) {
      addr = `127.0.0.1:${await freePort()}`;
      fs.writeFileSync(mcfg, `
[database]
path = "mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:0"

[grpc]
addr = "${addr}"
tls_cert = "${serverLeaf.fullchainPath}"
tls_key = "${serverLeaf.keyPath}"
client_ca = "${clientCA.certPath}"
`);
      try {
        msrv = await startServerProc(bins.mcProxy, mcfg, { cwd: mdir });
        break;
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
  }, 120_000);

  afterAll(async () => {
    await msrv?.stop();
    removeDir(mdir);
  });

  const tcpCtl = (extra: string[]) =>
    runBin(bins.ctl, ["--addr", addr, "--cacert", serverCA.certPath, ...extra, "--json", "status"], { cwd: mdir });

  test("mcproxyctl with a client certificate from client_ca gets the status", async () => {
    const r = await tcpCtl(["--cert", client.certPath, "--key", client.keyPath]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).listeners).toEqual([expect.objectContaining({ addr: "127.0.0.1:0" })]);
    expect(msrv!.logs.find((x) => x.event === "admin.listening")).toMatchObject({ addr, transport: "mtls", port: Number(addr.split(":")[1]) });
  });

  test("mc-proxy status -c with --cert/--key reaches the TCP admin API too", async () => {
    const r = await runBin(bins.mcProxy, ["status", "-c", mcfg, "--cert", client.certPath, "--key", client.keyPath], { cwd: mdir });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^mc-proxy \S+\n/);
  });

  test("without a client certificate the call is refused: exit 3 or 1 with one error line", async () => {
    const r = await tcpCtl([]);
    expect([1, 3]).toContain(r.code);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^error: [^\n]*CERTIFICATE_REQUIRED[^\n]*\n$/);
  });

  test("a client certificate from another CA is refused", async () => {
    const r = await tcpCtl(["--cert", stranger.certPath, "--key", stranger.keyPath]);
    expect([1, 3]).toContain(r.code);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^error: [^\n]+\n$/);
  });

  test("a client that does not trust the server's CA is refused", async () => {
    const r = await runBin(bins.ctl, ["--addr", addr, "--cacert", clientCA.certPath, "--cert", client.certPath, "--key", client.keyPath, "status"], { cwd: mdir });
    expect([1, 3]).toContain(r.code);
    expect(r.err).toMatch(/^error: [^\n]+\n$/);
  });
});

test("after the server stops, its admin socket refuses with exit 3", async () => {
  expect(await srv.stop()).toBe(0);
  const r = await ctl(["status"]);
  expect(r.code).toBe(3);
  expect(r.err).toMatch(/^error: cannot connect to [^\n]+\n$/);
});
