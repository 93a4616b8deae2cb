/**
 * L7 policies end to end (SPEC §5, §8, §9): a compiled `mc-proxy server`
 * terminating TLS for an L7 route, policies managed with the compiled
 * `mcproxyctl`, requests made with the real curl over HTTP/2 and HTTP/1.1 to
 * backends that record every request they see. A blocked request answers 403
 * and never reaches the backend.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { cleanupCerts, makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { startH1Backend, startH2cBackend, type Backend } from "../l7/backends.ts";
import { ensureBinaries } from "./build.ts";
import { freshDir, killAll, removeDir, runBin, startServerProc, type RunResult, type ServerProc } from "./harness.ts";
import { curlVia, type CurlResult } from "./net.ts";

const L = "127.0.0.1:0";
const H = "web.test"; // added at run time with mcproxyctl, h2c backend
const S = "seeded.test"; // seeded from the TOML with a policy, HTTP/1.1-only backend
let bins: { mcProxy: string; ctl: string };
let dir: string;
let sock: string;
let srv: ServerProc;
let ca: CA;
let leaf: CertFiles;
let h2c: Backend;
let h1: Backend;

function ctl(args: string[], json = false): Promise<RunResult> {
  return runBin(bins.ctl, ["--socket", sock, ...(json ? ["--json"] : []), ...args], { cwd: dir });
}

async function ctlOk(args: string[]): Promise<any> {
  const r = await ctl(args, true);
  if (r.code !== 0) throw new Error(`mcproxyctl ${args.join(" ")} exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out);
}

const req = (host: string, args: string[] = []): Promise<CurlResult> => curlVia(srv.port(0), host, ca.certPath, "/hello", args);

/** A request through the proxy and whether the backend saw it. */
async function through(b: Backend, host: string, args: string[]): Promise<{ status: number; httpVersion: string; reached: boolean; body: string }> {
  const before = b.seen.length;
  const r = await req(host, args);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return { status: r.status, httpVersion: r.httpVersion, reached: b.seen.length > before, body: r.body };
}

beforeAll(async () => {
  bins = ensureBinaries();
  ca = makeCA("e2e policies CA");
  leaf = makeLeaf(ca, [H, S]);
  [h2c, h1] = await Promise.all([startH2cBackend(), startH1Backend()]);
  dir = freshDir("mcp-e2e-policies-");
  sock = path.join(dir, "admin.sock");
  const cfg = path.join(dir, "mc-proxy.toml");
  fs.writeFileSync(cfg, `
[database]
path = "mc-proxy.db"

[[listeners]]
addr = "${L}"
  [[listeners.routes]]
  hostname = "${S}"
  backend = "${h1.addr}"
  mode = "l7"
  tls_cert = "${leaf.fullchainPath}"
  tls_key = "${leaf.keyPath}"
    [[listeners.routes.l7_policies]]
    type = "block_user_agent"
    value = "BadBot"

[grpc]
addr = "admin.sock"

[proxy]
shutdown_timeout = "3s"
`);
  srv = await startServerProc(bins.mcProxy, cfg, { cwd: dir });
  const add = await ctl(["routes", "add", "--listener", L, "--hostname", H, "--backend", h2c.addr, "--mode", "l7", "--tls-cert", leaf.fullchainPath, "--tls-key", leaf.keyPath]);
  if (add.code !== 0) throw new Error(`routes add failed: ${add.err}`);
}, 600_000);

afterAll(async () => {
  await srv?.stop();
  killAll();
  await Promise.all([h2c?.stop(), h1?.stop()]);
  removeDir(dir);
  cleanupCerts();
});

test("an L7 route added with mcproxyctl serves HTTP/2 and HTTP/1.1 clients with no policies", async () => {
  const a = await through(h2c, H, ["--http2", "-A", "zgrab/0.x"]);
  expect(a).toMatchObject({ status: 200, httpVersion: "2", reached: true, body: "hello from h2c\n" });
  const b = await through(h2c, H, ["--http1.1", "-A", "zgrab/0.x"]);
  expect(b).toMatchObject({ status: 200, httpVersion: "1.1", reached: true, body: "hello from h2c\n" });
}, 60_000);

describe("block_user_agent", () => {
  test("after `policies add --type block_user_agent --value zgrab`, zgrab gets 403 over h2 and HTTP/1.1 and the backend never sees it", async () => {
    const add = await ctl(["policies", "add", "--listener", L, "--hostname", H, "--type", "block_user_agent", "--value", "zgrab"]);
    expect(add).toEqual({ code: 0, out: `added policy block_user_agent zgrab to ${H} on ${L}\n`, err: "" });

    expect(await through(h2c, H, ["--http2", "-A", "zgrab/0.x"])).toMatchObject({ status: 403, httpVersion: "2", reached: false });
    expect(await through(h2c, H, ["--http1.1", "-A", "zgrab/0.x"])).toMatchObject({ status: 403, httpVersion: "1.1", reached: false });
    // Substring match is case-insensitive.
    expect(await through(h2c, H, ["--http2", "-A", "Mozilla/5.0 ZGrab scanner"])).toMatchObject({ status: 403, reached: false });
  }, 60_000);

  test("a normal User-Agent still gets 200 from the backend", async () => {
    expect(await through(h2c, H, ["--http2", "-A", "Mozilla/5.0"])).toMatchObject({ status: 200, reached: true, body: "hello from h2c\n" });
    expect(await through(h2c, H, ["--http1.1", "-A", "curl/7.88"])).toMatchObject({ status: 200, reached: true, body: "hello from h2c\n" });
  }, 60_000);
});

describe("require_header", () => {
  test("after `policies add --type require_header --value X-Internal`: missing → 403 (not forwarded), present → 200", async () => {
    const add = await ctl(["policies", "add", "--listener", L, "--hostname", H, "--type", "require_header", "--value", "X-Internal"]);
    expect(add.code).toBe(0);
    expect(await through(h2c, H, ["--http2"])).toMatchObject({ status: 403, reached: false });
    expect(await through(h2c, H, ["--http1.1"])).toMatchObject({ status: 403, reached: false });
    expect(await through(h2c, H, ["--http2", "-H", "X-Internal: 1"])).toMatchObject({ status: 200, reached: true });
    expect(await through(h2c, H, ["--http1.1", "-H", "x-internal: 1"])).toMatchObject({ status: 200, reached: true });
    // Both policies apply, in order: the header does not let zgrab through.
    expect(await through(h2c, H, ["--http2", "-A", "zgrab/0.x", "-H", "X-Internal: 1"])).toMatchObject({ status: 403, reached: false });
  }, 60_000);
});

describe("listing", () => {
  test("`policies list --json` shows the route's policies in order", async () => {
    const j = await ctlOk(["policies", "list", "--listener", L, "--hostname", H]);
    expect(j).toEqual({
      listener: L,
      hostname: H,
      policies: [
        { type: "block_user_agent", value: "zgrab" },
        { type: "require_header", value: "X-Internal" },
      ],
    });
    const table = await ctl(["policies", "list", "--listener", L, "--hostname", H]);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/block_user_agent\s+zgrab/);
    expect(table.out).toMatch(/require_header\s+X-Internal/);
  });

  test("`routes list` shows each route's policies (table and --json), seeded ones included", async () => {
    const j = await ctlOk(["routes", "list", "--listener", L]);
    const byHost = Object.fromEntries(j.routes.map((r: { hostname: string }) => [r.hostname, r]));
    expect(byHost[H]).toMatchObject({ mode: "l7", backend: h2c.addr, l7_policies: [{ type: "block_user_agent", value: "zgrab" }, { type: "require_header", value: "X-Internal" }] });
    expect(byHost[S]).toMatchObject({ mode: "l7", backend: h1.addr, l7_policies: [{ type: "block_user_agent", value: "BadBot" }] });
    const table = await ctl(["routes", "list", "--listener", L]);
    expect(table.code).toBe(0);
    const row = table.out.split("\n").find((l) => l.startsWith(H + " "));
    expect(row).toBeDefined();
    expect(row).toContain("zgrab");
    expect(row).toContain("X-Internal");
  });
});

describe("removal", () => {
  test("after `policies remove` the next request passes", async () => {
    const rm = await ctl(["policies", "remove", "--listener", L, "--hostname", H, "--type", "require_header", "--value", "X-Internal"]);
    expect(rm.code).toBe(0);
    expect(await through(h2c, H, ["--http2"])).toMatchObject({ status: 200, reached: true });
    expect(await through(h2c, H, ["--http2", "-A", "zgrab/0.x"])).toMatchObject({ status: 403, reached: false });

    expect((await ctl(["policies", "remove", "--listener", L, "--hostname", H, "--type", "block_user_agent", "--value", "zgrab"])).code).toBe(0);
    expect(await through(h2c, H, ["--http2", "-A", "zgrab/0.x"])).toMatchObject({ status: 200, reached: true });
    expect(await through(h2c, H, ["--http1.1", "-A", "zgrab/0.x"])).toMatchObject({ status: 200, reached: true });
    expect((await ctlOk(["policies", "list", "--listener", L, "--hostname", H])).policies).toEqual([]);
  }, 60_000);

  test("removing a policy that does not exist is NOT_FOUND (exit 1)", async () => {
    const r = await ctl(["policies", "remove", "--listener", L, "--hostname", H, "--type", "block_user_agent", "--value", "zgrab"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: NOT_FOUND: [^\n]+\n$/);
  });
});

test("a policy seeded from the TOML is enforced on an HTTP/1.1-only backend", async () => {
  expect(await through(h1, S, ["--http2", "-A", "badbot/1"])).toMatchObject({ status: 403, reached: false });
  expect(await through(h1, S, ["--http1.1", "-A", "x BADBOT y"])).toMatchObject({ status: 403, reached: false });
  expect(await through(h1, S, ["--http2", "-A", "Mozilla/5.0"])).toMatchObject({ status: 200, httpVersion: "2", reached: true, body: "hello from http1\n" });
}, 60_000);
