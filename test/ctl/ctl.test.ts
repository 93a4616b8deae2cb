/**
 * mcproxyctl as a subprocess (`bun src/main.ts ctl …`, the subcommand the compiled binary also
 * answers to as `mcproxyctl`) against a live admin server with a real
 * State: table and --json output, and exit codes 0 ok / 1 server error / 2 usage / 3 cannot
 * connect (SPEC §9). Also `runStatus`, the body of `mc-proxy status -c <config>`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startAdminServer } from "../../src/admin/server.ts";
import { parseConfig } from "../../src/config/load.ts";
import { runStatus } from "../../src/ctl/status.ts";
import { cleanupCerts, makeCA, makeClientCert, makeLeaf } from "../fixtures/certs.ts";
import { startHarness, type Harness } from "../admin/harness.ts";

const REPO = resolve(import.meta.dir, "../..");
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
  cleanupCerts();
});

/** Runs mcproxyctl with `--socket <harness socket>` prepended unless `raw`; bounded to 30 s. */
async function ctl(args: string[], raw = false): Promise<{ code: number; out: string; err: string }> {
  const argv = raw ? args : ["--socket", h.sock, ...args];
  const p = Bun.spawn([process.execPath, join(REPO, "src/main.ts"), "ctl", ...argv], {
    cwd: REPO,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const killer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(killer);
  return { code, out, err };
}

describe("routes", () => {
  test("routes add prints what was stored; routes list shows a table and --json a document", async () => {
    const add = await ctl(["routes", "add", "--listener", ":443", "--hostname", "Web.Example.com", "--backend", "127.0.0.1:8080", "--send-proxy-protocol"]);
    expect(add).toEqual({ code: 0, out: "route web.example.com on :443 -> 127.0.0.1:8080 (l4)\n", err: "" });

    const list = await ctl(["routes", "list", "--listener", ":443"]);
    expect(list.code).toBe(0);
    const lines = list.out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^HOSTNAME\s+MODE\s+BACKEND\s+OPTIONS\s+POLICIES$/);
    expect(lines[1]).toMatch(/^web\.example\.com\s+l4\s+127\.0\.0\.1:8080\s+send-proxy\s+-$/);

    const json = await ctl(["--json", "routes", "list", "--listener", ":443"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual({
      listener: ":443",
      routes: [
        {
          hostname: "web.example.com",
          backend: "127.0.0.1:8080",
          mode: "l4",
          tls_cert: "",
          tls_key: "",
          backend_tls: false,
          backend_protocol: "auto",
          backend_tls_verify: false,
          backend_tls_ca: "",
          backend_tls_server_name: "",
          send_proxy_protocol: true,
          l7_policies: [],
        },
      ],
    });
  }, 60_000);

  test("an L7 route with all its flags round-trips through --json", async () => {
    const ca = makeCA("Ctl CA");
    const leaf = makeLeaf(ca, ["app.example.com"]);
    const r = await ctl([
      "routes", "add", "--json", "--listener", ":443", "--hostname", "app.example.com", "--backend", "127.0.0.1:9000",
      "--mode", "l7", "--tls-cert", leaf.fullchainPath, "--tls-key", leaf.keyPath, "--backend-tls", "--backend-protocol", "h2",
      "--backend-tls-verify", "--backend-tls-ca", ca.caPath, "--backend-tls-server-name", "internal.example.com",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).route).toMatchObject({
      hostname: "app.example.com",
      mode: "l7",
      tls_cert: leaf.fullchainPath,
      backend_tls: true,
      backend_protocol: "h2",
      backend_tls_verify: true,
      backend_tls_ca: ca.caPath,
      backend_tls_server_name: "internal.example.com",
    });
    await ctl(["routes", "remove", "--listener", ":443", "--hostname", "app.example.com"]);
  }, 60_000);

  test("server errors exit 1 with one 'error: CODE: …' line", async () => {
    const bad = await ctl(["routes", "add", "--listener", ":443", "--hostname", "x.example.com", "--backend", "nope"]);
    expect(bad.code).toBe(1);
    expect(bad.out).toBe("");
    expect(bad.err).toMatch(/^error: INVALID_ARGUMENT: route\.backend: .+\n$/);

    const missing = await ctl(["routes", "remove", "--listener", ":443", "--hostname", "absent.example.com"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^error: NOT_FOUND: .*absent\.example\.com.*\n$/);

    const noListener = await ctl(["routes", "list", "--listener", ":1"]);
    expect(noListener.code).toBe(1);
    expect(noListener.err).toStartWith("error: NOT_FOUND: ");
  }, 60_000);

  test("routes remove deletes the route", async () => {
    await ctl(["routes", "add", "--listener", "127.0.0.1:8443", "--hostname", "gone.example.com", "--backend", "127.0.0.1:1"]);
    const rm = await ctl(["--json", "routes", "remove", "--listener", "127.0.0.1:8443", "--hostname", "gone.example.com"]);
    expect(rm.code).toBe(0);
    expect(JSON.parse(rm.out)).toEqual({ removed: { listener: "127.0.0.1:8443", hostname: "gone.example.com" } });
    expect(h.state.listener("127.0.0.1:8443")!.routes.size).toBe(0);
  }, 60_000);
});

describe("firewall, policies, listeners, status", () => {
  test("firewall add, list and remove", async () => {
    expect((await ctl(["firewall", "add", "--type", "cidr", "--value", "198.51.100.0/24"])).out).toBe("added firewall rule cidr 198.51.100.0/24\n");
    expect((await ctl(["firewall", "add", "--type", "country", "--value", "kp", "--json"])).out).toBe('{"rule":{"type":"country","value":"KP"}}\n');
    const list = await ctl(["firewall", "list"]);
    expect(list.out).toMatch(/^TYPE\s+VALUE\ncidr\s+198\.51\.100\.0\/24\ncountry\s+KP\n$/);
    expect((await ctl(["firewall", "remove", "--type", "country", "--value", "KP"])).code).toBe(0);
    expect(JSON.parse((await ctl(["firewall", "list", "--json"])).out)).toEqual({ rules: [{ type: "cidr", value: "198.51.100.0/24" }] });
    const bad = await ctl(["firewall", "add", "--type", "ip", "--value", "999.1.1.1"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toStartWith("error: INVALID_ARGUMENT: rule.value");
  }, 60_000);

  test("policies add, list and remove", async () => {
    await ctl(["routes", "add", "--listener", ":443", "--hostname", "pol.example.com", "--backend", "127.0.0.1:1"]);
    const base = ["--listener", ":443", "--hostname", "pol.example.com"];
    expect((await ctl(["policies", "add", ...base, "--type", "block_user_agent", "--value", "zgrab"])).code).toBe(0);
    expect((await ctl(["policies", "add", ...base, "--type", "require_header", "--value", "X-Token"])).code).toBe(0);
    const list = await ctl(["policies", "list", ...base]);
    expect(list.out).toMatch(/^#\s+TYPE\s+VALUE\n1\s+block_user_agent\s+zgrab\n2\s+require_header\s+X-Token\n$/);
    expect((await ctl(["policies", "remove", ...base, "--type", "block_user_agent", "--value", "zgrab"])).code).toBe(0);
    expect(JSON.parse((await ctl(["policies", "list", ...base, "--json"])).out)).toEqual({
      listener: ":443",
      hostname: "pol.example.com",
      policies: [{ type: "require_header", value: "X-Token" }],
    });
    const gone = await ctl(["policies", "remove", ...base, "--type", "block_user_agent", "--value", "zgrab"]);
    expect(gone.code).toBe(1);
    expect(gone.err).toStartWith("error: NOT_FOUND: ");
  }, 60_000);

  test("listeners list and set-max-connections", async () => {
    const set = await ctl(["listeners", "set-max-connections", "--listener", "127.0.0.1:8443", "--max", "250"]);
    expect(set).toEqual({ code: 0, out: "listener 127.0.0.1:8443 max connections 250\n", err: "" });
    const list = await ctl(["listeners", "list"]);
    expect(list.out).toMatch(/\n127\.0\.0\.1:8443\s+0\s+250\s+on \(trusted: 10\.0\.0\.0\/8\)\n/);
    const js = JSON.parse((await ctl(["listeners", "list", "--json"])).out);
    expect(js.listeners[1]).toEqual({ addr: "127.0.0.1:8443", proxy_protocol: true, proxy_protocol_trusted: ["10.0.0.0/8"], max_connections: 250, route_count: 0 });
    const bad = await ctl(["listeners", "set-max-connections", "--listener", ":443", "--max", "lots"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--max");
    // Past the API's int32: a usage error naming the limit, not the server's serialization failure.
    const big = await ctl(["listeners", "set-max-connections", "--listener", ":443", "--max", "2147483648"]);
    expect(big.code).toBe(2);
    expect(big.err).toContain("at most 2147483647");
  }, 60_000);

  test("status prints version, uptime and listeners; --json is one document", async () => {
    const st = await ctl(["status"]);
    expect(st.code).toBe(0);
    expect(st.out).toContain("mc-proxy 9.9.9-test\n");
    expect(st.out).toContain("started  2025-01-02T03:04:05.678Z (up ");
    expect(st.out).toContain("connections total 42\n");
    expect(st.out).toMatch(/LISTENER\s+ROUTES\s+ACTIVE\s+MAX\s+PROXY PROTOCOL\n:443\s+\d+\s+3\s+unlimited\s+off\n/);
    const js = JSON.parse((await ctl(["status", "--json"])).out);
    expect(js).toMatchObject({ version: "9.9.9-test", started_at: "2025-01-02T03:04:05.678Z", total_connections: 42 });
    expect(js.uptime_seconds).toBeGreaterThan(0);
    expect(js.listeners[0]).toMatchObject({ addr: ":443", active_connections: 3, max_connections: 0, proxy_protocol: false });
  }, 60_000);
});

describe("usage and connection errors", () => {
  test("--help works on every command and exits 0", async () => {
    for (const args of [["--help"], ["routes", "--help"], ["routes", "add", "--help"], ["firewall", "remove", "-h"], ["listeners", "set-max-connections", "--help"], ["status", "--help"]]) {
      const r = await ctl(args, true);
      expect({ args, code: r.code }).toEqual({ args, code: 0 });
      expect(r.out).toContain("USAGE");
    }
    expect((await ctl(["routes", "add", "--help"], true)).out).toContain("mc-proxy ctl routes add");
  }, 60_000);

  test("usage errors exit 2 with one error line", async () => {
    for (const args of [
      ["routes", "list"], // missing --listener
      ["routes", "list", "--listener", ":443", "--bogus", "1"],
      ["routes", "add", "--listener", ":443", "--hostname", "a.example.com", "--backend", "127.0.0.1:1", "--mode", "l9"],
      ["frobnicate"],
      ["routes"],
      ["--socket", "/x.sock", "--addr", "127.0.0.1:1", "status"],
    ]) {
      const r = await ctl(args);
      expect({ args, code: r.code, out: r.out }).toEqual({ args, code: 2, out: "" });
      expect(r.err).toMatch(/^error: .+\n$/);
    }
  }, 60_000);

  test("an unreachable server exits 3", async () => {
    const r = await ctl(["--socket", join(h.dir, "nobody.sock"), "status"], true);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^error: cannot connect to .*nobody\.sock: .*ENOENT.*\n$/);
  }, 60_000);

  test("mTLS over TCP with --addr --cacert --cert --key", async () => {
    const ca = makeCA("Ctl Server CA");
    const leaf = makeLeaf(ca, ["admin.test", "127.0.0.1"]);
    const clientCa = makeCA("Ctl Client CA");
    const ops = makeClientCert(clientCa, "ops");
    const srv = await startAdminServer(
      { addr: "127.0.0.1:0", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, clientCa: clientCa.caPath },
      { state: h.state, status: () => ({ version: "tcp", startedAt: new Date(), totalConnections: 0, active: () => 0 }) },
    );
    try {
      const addr = `127.0.0.1:${srv.port}`;
      const ok = await ctl(["--addr", addr, "--cacert", ca.caPath, "--cert", ops.certPath, "--key", ops.keyPath, "status", "--json"], true);
      expect(ok.err).toBe("");
      expect(JSON.parse(ok.out).version).toBe("tcp");
      const named = await ctl(["--addr", addr, "--server-name", "admin.test", "--cacert", ca.caPath, "--cert", ops.certPath, "--key", ops.keyPath, "status"], true);
      expect(named.code).toBe(0);
      const anon = await ctl(["--addr", addr, "--cacert", ca.caPath, "status"], true);
      expect(anon.code).toBe(3);
      const half = await ctl(["--addr", addr, "--cert", ops.certPath, "status"], true);
      expect(half.code).toBe(2);
    } finally {
      await srv.close();
    }
  }, 60_000);
});

describe("mc-proxy status (runStatus)", () => {
  function capture() {
    const io = { outText: "", errText: "", out: (t: string) => void (io.outText += t), err: (t: string) => void (io.errText += t) };
    return io;
  }
  const toml = (grpc: string) => `[database]\npath = "${join(h.dir, "mc-proxy.db")}"\n${grpc}\n[[listeners]]\naddr = ":443"\n`;

  test("reads [grpc] from the config and prints the status", async () => {
    const { config } = parseConfig(toml(`[grpc]\naddr = "${h.sock}"\n`), "");
    const io = capture();
    expect(await runStatus(config, {}, io)).toBe(0);
    expect(io.outText).toContain("mc-proxy 9.9.9-test");
    expect(io.outText).toContain(":443");
    const js = capture();
    expect(await runStatus(config, { json: true }, js)).toBe(0);
    expect(JSON.parse(js.outText).total_connections).toBe(42);
  });

  test("no [grpc] section is exit 2; a dead socket is exit 3", async () => {
    const none = capture();
    expect(await runStatus(parseConfig(toml(""), "").config, {}, none)).toBe(2);
    expect(none.errText).toContain("[grpc]");
    const dead = capture();
    expect(await runStatus(parseConfig(toml(`[grpc]\naddr = "${join(h.dir, "dead.sock")}"\n`), "").config, {}, dead)).toBe(3);
    expect(dead.errText).toStartWith("error: cannot connect");
  });

  test("TCP: trusts the chain in the server's own tls_cert file by default; client_ca needs --cert/--key", async () => {
    const ca = makeCA("Status Self CA");
    const leaf = makeLeaf(ca, ["127.0.0.1"]);
    const clientCa = makeCA("Status Client CA");
    const ops = makeClientCert(clientCa, "ops");
    const srv = await startAdminServer(
      { addr: "127.0.0.1:0", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, clientCa: clientCa.caPath },
      { state: h.state, status: () => ({ version: "tcp", startedAt: new Date(), totalConnections: 0, active: () => 0 }) },
    );
    try {
      // fullchain = leaf + root: the root in the server's own file makes it a usable CA bundle.
      const grpc = `[grpc]\naddr = "127.0.0.1:${srv.port}"\ntls_cert = "${leaf.fullchainPath}"\ntls_key = "${leaf.keyPath}"\nclient_ca = "${clientCa.caPath}"\n`;
      const { config } = parseConfig(toml(grpc), "");
      const noId = capture();
      expect(await runStatus(config, {}, noId)).toBe(2);
      expect(noId.errText).toContain("--cert");
      const io = capture();
      expect(await runStatus(config, { cert: ops.certPath, key: ops.keyPath, json: true }, io)).toBe(0);
      expect(JSON.parse(io.outText).version).toBe("tcp");
    } finally {
      await srv.close();
    }
  });
});
