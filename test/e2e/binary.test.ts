/**
 * The compiled `mc-proxy` binary on its own (SPEC §1, §9): copied into a temp
 * directory with no node_modules above it and run with a minimal environment,
 * as an operator would after `scp`, with a `mcproxyctl` symlink beside it as
 * install.sh makes. dist/ holds that one file; the admin client is the same
 * binary as `mc-proxy ctl` and through the link. version, --help everywhere,
 * one-line errors, and `snapshot` of a database a running server holds.
 */
import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { REPO, ensureBinaries } from "./build.ts";
import { MIN_ENV, freshDir, killAll, removeDir, runBin, startServerProc, type ServerProc } from "./harness.ts";

let root: string; // <tmp>/ : cfg, data/, bin/
let bin: string; // <tmp>/bin/mc-proxy
let ctl: string; // <tmp>/bin/mcproxyctl -> mc-proxy

beforeAll(() => {
  const b = ensureBinaries();
  root = freshDir("mcp-e2e-bin-");
  fs.mkdirSync(path.join(root, "bin"));
  fs.mkdirSync(path.join(root, "data"));
  bin = path.join(root, "bin/mc-proxy");
  ctl = path.join(root, "bin/mcproxyctl");
  fs.copyFileSync(b.mcProxy, bin);
  fs.chmodSync(bin, 0o755);
  fs.symlinkSync("mc-proxy", ctl); // relative, as install.sh makes it
}, 600_000);

afterAll(() => {
  killAll();
  removeDir(root);
});

/** Runs the copied mc-proxy with cwd = its temp dir and the minimal environment. */
const mcp = (args: string[]) => runBin(bin, args, { cwd: root, env: MIN_ENV });

/** Lines of text without the trailing newline. */
const lines = (s: string) => s.replace(/\n$/, "").split("\n");

test("dist/ holds one regular executable, mc-proxy (no second binary, no link)", () => {
  const dist = path.join(REPO, "dist");
  const entries = fs.readdirSync(dist).filter((n) => !n.startsWith(".")); // a build's temp file is dot-named
  expect(entries).toEqual(["mc-proxy"]);
  const st = fs.lstatSync(path.join(dist, "mc-proxy"));
  expect(st.isFile()).toBe(true);
  expect(st.mode & 0o111).toBe(0o111);
});

test("the temp directory has no node_modules anywhere above it (the binary must stand alone)", () => {
  for (let d = root; ; d = path.dirname(d)) {
    expect(fs.existsSync(path.join(d, "node_modules"))).toBe(false);
    if (d === path.dirname(d)) break;
  }
});

test("`mc-proxy version` prints the injected version and exits 0", async () => {
  const r = await mcp(["version"]);
  expect(r.code).toBe(0);
  expect(r.err).toBe("");
  expect(r.out).toMatch(new RegExp(`^mc-proxy ${pkg.version.replace(/\./g, "\\.")}(\\+\\S+)?\\n$`));
});

describe("--help", () => {
  for (const cmd of [[], ["server"], ["status"], ["snapshot"], ["version"]]) {
    test(`mc-proxy ${[...cmd, "--help"].join(" ")} prints usage and exits 0`, async () => {
      const r = await mcp([...cmd, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain("USAGE");
      expect(r.out).toContain(["mc-proxy", ...cmd].join(" "));
      expect(r.out).not.toMatch(/\x1b\[/); // no colour codes when stdout is not a terminal
    });
  }

  const ctlCommands = [
    [], ["routes"], ["routes", "list"], ["routes", "add"], ["routes", "remove"],
    ["firewall"], ["firewall", "list"], ["firewall", "add"], ["firewall", "remove"],
    ["policies"], ["policies", "list"], ["policies", "add"], ["policies", "remove"],
    ["listeners"], ["listeners", "set-max-connections"], ["status"],
  ];
  test("mcproxyctl <every command> --help (the link) and mc-proxy ctl <every command> --help print the same usage under their own name", async () => {
    for (const cmd of ctlCommands) {
      const viaLink = await runBin(ctl, [...cmd, "--help"], { cwd: root });
      expect({ cmd, code: viaLink.code }).toEqual({ cmd, code: 0 });
      expect(viaLink.out).toContain("USAGE");
      expect(viaLink.out).toContain(["mcproxyctl", ...cmd].join(" "));
      const viaSub = await mcp(["ctl", ...cmd, "--help"]);
      expect({ cmd, code: viaSub.code }).toEqual({ cmd, code: 0 });
      expect(viaSub.out).toContain(["mc-proxy ctl", ...cmd].join(" "));
      expect(viaSub.out.replaceAll("mc-proxy ctl", "mcproxyctl")).toBe(viaLink.out);
    }
  }, 120_000);

  test("mc-proxy --help lists ctl", async () => {
    const r = await mcp(["--help"]);
    expect(r.out).toMatch(/^\s+ctl\s+admin client/m);
  });
});

describe("errors are one line and a non-zero exit", () => {
  test("server without -c names the missing --config", async () => {
    const r = await mcp(["server"]);
    expect(r.code).not.toBe(0);
    expect(lines(r.err)).toHaveLength(1);
    expect(r.err).toContain("--config");
  });

  test("snapshot without -c names the missing --config", async () => {
    const r = await mcp(["snapshot"]);
    expect(r.code).not.toBe(0);
    expect(lines(r.err)).toHaveLength(1);
    expect(r.err).toContain("--config");
  });

  test("a bad backend in the config is refused with its key path, before anything is bound", async () => {
    const cfg = path.join(root, "bad.toml");
    fs.writeFileSync(cfg, `
[database]
path = "data/bad.db"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1"
`);
    const r = await mcp(["server", "-c", cfg]);
    expect(r.code).not.toBe(0);
    expect(lines(r.err)).toHaveLength(1);
    expect(r.err).toContain("listeners[0].routes[0].backend");
    expect(r.out).toBe("");
    expect(fs.existsSync(path.join(root, "data/bad.db"))).toBe(false); // failed before opening the store
  });

  test("an unknown key (a typo) is an error naming it", async () => {
    const cfg = path.join(root, "typo.toml");
    fs.writeFileSync(cfg, `[database]\npath = "data/typo.db"\n\n[firewall]\nblocked_ip = ["192.0.2.1"]\n`);
    const r = await mcp(["server", "-c", cfg]);
    expect(r.code).not.toBe(0);
    expect(lines(r.err)).toHaveLength(1);
    expect(r.err).toContain("firewall.blocked_ip");
  });

  test("a missing config file is one line naming the file", async () => {
    const r = await mcp(["status", "-c", "does-not-exist.toml"]);
    expect(r.code).not.toBe(0);
    expect(lines(r.err)).toHaveLength(1);
    expect(r.err).toContain("does-not-exist.toml");
  });
});

describe("snapshot of a database the running server holds", () => {
  let srv: ServerProc | undefined;
  const cfg = () => path.join(root, "mc-proxy.toml");
  const db = () => path.join(root, "data/mc-proxy.db");

  beforeAll(async () => {
    fs.writeFileSync(cfg(), `
[database]
path = "data/mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "seeded-a.test"
  backend = "127.0.0.1:10001"
  [[listeners.routes]]
  hostname = "seeded-b.test"
  backend = "127.0.0.1:10002"

[grpc]
addr = "admin.sock"
`);
    srv = await startServerProc(bin, cfg(), { cwd: root });
  }, 60_000);

  afterAll(async () => {
    await srv?.stop();
  });

  test("writes <db dir>/backups/mc-proxy-<UTC timestamp>.db that passes integrity_check and holds the routes", async () => {
    // A change made through the admin API while running must be in the copy too (the WAL is read).
    const add = await runBin(ctl, ["--socket", path.join(root, "admin.sock"), "routes", "add", "--listener", "127.0.0.1:0", "--hostname", "live.test", "--backend", "127.0.0.1:10003"], { cwd: root });
    expect(add.code).toBe(0);

    const before = Date.now();
    const r = await mcp(["snapshot", "-c", cfg()]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const out = r.out.trim();
    expect(path.dirname(out)).toBe(path.join(root, "data/backups"));
    const m = /^mc-proxy-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\.db$/.exec(path.basename(out));
    expect(m).not.toBeNull();
    // The name is UTC "now" (within the test's window, to the second).
    const stamp = Date.UTC(+m![1]!, +m![2]! - 1, +m![3]!, +m![4]!, +m![5]!, +m![6]!);
    expect(stamp).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
    expect(stamp).toBeLessThanOrEqual(Date.now() + 1000);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);

    const copy = new Database(out, { readonly: true });
    try {
      expect(copy.query("PRAGMA integrity_check").all()).toEqual([{ integrity_check: "ok" }]);
      const rows = copy.query("SELECT hostname, backend FROM routes ORDER BY hostname").all();
      expect(rows).toEqual([
        { hostname: "live.test", backend: "127.0.0.1:10003" },
        { hostname: "seeded-a.test", backend: "127.0.0.1:10001" },
        { hostname: "seeded-b.test", backend: "127.0.0.1:10002" },
      ]);
    } finally {
      copy.close();
    }

    // The server is unaffected: it still answers and still has its database.
    const st = await runBin(ctl, ["--socket", path.join(root, "admin.sock"), "--json", "status"], { cwd: root });
    expect(st.code).toBe(0);
    expect(JSON.parse(st.out).listeners[0].route_count).toBe(3);
    expect(fs.existsSync(db())).toBe(true);
  }, 60_000);

  test("`mcproxyctl …` through the link and `mc-proxy ctl …` give byte-identical output and exit codes", async () => {
    const sock = path.join(root, "admin.sock");
    const cases = [
      ["--socket", sock, "--json", "routes", "list", "--listener", "127.0.0.1:0"],
      ["routes", "list", "--listener", "127.0.0.1:0", "--socket", sock],
      ["--socket", sock, "listeners", "list"], // (not status: its uptime moves between two runs)
      ["--socket", sock, "routes", "remove", "--listener", "127.0.0.1:0", "--hostname", "absent.test"], // exit 1, NOT_FOUND
      ["--socket", path.join(root, "nobody.sock"), "status"], // exit 3, cannot connect
      ["--version"],
    ];
    for (const args of cases) {
      const viaLink = await runBin(ctl, args, { cwd: root });
      const viaSub = await mcp(["ctl", ...args]);
      expect({ args, ...viaSub }).toEqual({ args, ...viaLink });
    }
    const list = await runBin(ctl, cases[0]!, { cwd: root });
    expect(list.code).toBe(0);
    expect(JSON.parse(list.out).routes.map((r: { hostname: string }) => r.hostname)).toContain("seeded-a.test");
  }, 60_000);

  test("-o <existing file> refuses: non-zero exit, one line naming the file, file untouched", async () => {
    const target = path.join(root, "existing.db");
    fs.writeFileSync(target, "precious bytes\n");
    const r = await mcp(["snapshot", "-c", cfg(), "-o", target]);
    expect(r.code).not.toBe(0);
    expect(lines(r.err)).toHaveLength(1);
    expect(r.err).toContain(target);
    expect(r.out).toBe("");
    expect(fs.readFileSync(target, "utf8")).toBe("precious bytes\n");
  });

  test("-o <new file> writes exactly there", async () => {
    const target = path.join(root, "explicit.db");
    const r = await mcp(["snapshot", "-c", cfg(), "-o", target]);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(target);
    const copy = new Database(target, { readonly: true });
    try {
      expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      expect(copy.query("SELECT count(*) AS n FROM routes").get()).toEqual({ n: 3 });
    } finally {
      copy.close();
    }
  });
});
