/**
 * deploy/: install.sh, backup.sh and the systemd units, exercised for real in
 * temp directories (DESTDIR installs, real snapshot files, systemd-analyze).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO, ensureBinary, have, run } from "./helpers.ts";

const tmpDirs: string[] = [];
function tempDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `mc-proxy-deploy-${tag}-`));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Every path under `root` with its type, permission bits and content hash. */
function treeListing(root: string): string[] {
  const out: string[] = [];
  for (const rel of fs.readdirSync(root, { recursive: true }) as string[]) {
    const p = path.join(root, rel);
    const st = fs.lstatSync(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.push(`${rel} link ${fs.readlinkSync(p)}`);
    else if (st.isDirectory()) out.push(`${rel} dir ${mode}`);
    else {
      const hash = crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
      out.push(`${rel} file ${mode} ${hash}`);
    }
  }
  return out.sort();
}

/** A small stand-in executable: install.sh only copies it. */
function fakeBinaries(): { bin: string } {
  const d = tempDir("bin");
  const bin = path.join(d, "mc-proxy");
  fs.writeFileSync(bin, "#!/bin/sh\necho mc-proxy stand-in\n", { mode: 0o755 });
  return { bin };
}

function install(destdir: string, bins: { bin: string }) {
  return run(["sh", "deploy/scripts/install.sh"], {
    env: { DESTDIR: destdir, BINARY: bins.bin },
  });
}

describe("install.sh", () => {
  test("installing twice into the same DESTDIR succeeds both times and leaves an identical tree", () => {
    const bins = fakeBinaries();
    const dest = tempDir("dest");
    const first = install(dest, bins);
    expect(first.stderr).toBe("");
    expect(first.exitCode).toBe(0);
    const after1 = treeListing(dest);
    const second = install(dest, bins);
    expect(second.exitCode).toBe(0);
    expect(treeListing(dest)).toEqual(after1);

    // What an operator relies on being there, with these modes.
    expect(after1).toContain(`usr/local/bin/mc-proxy file 755 ${sha256(bins.bin)}`);
    // One binary; the admin client is a relative link to it (the same file under another name).
    expect(after1).toContain("usr/local/bin/mcproxyctl link mc-proxy");
    expect(after1.filter((l) => l.startsWith("usr/local/bin/"))).toHaveLength(2);
    expect(after1).toContain(`usr/local/lib/mc-proxy/backup.sh file 755 ${sha256(path.join(REPO, "deploy/scripts/backup.sh"))}`);
    for (const unit of ["mc-proxy.service", "mc-proxy-backup.service", "mc-proxy-backup.timer"]) {
      expect(after1).toContain(`etc/systemd/system/${unit} file 644 ${sha256(path.join(REPO, "deploy/systemd", unit))}`);
    }
    expect(after1).toContain("srv/mc-proxy dir 700");
    expect(after1).toContain("srv/mc-proxy/backups dir 700");
    // No temp files left behind by the atomic copy.
    expect(after1.filter((l) => l.includes(".tmp."))).toEqual([]);
  });

  test("an existing config and database are never overwritten", () => {
    const bins = fakeBinaries();
    const dest = tempDir("dest");
    const data = path.join(dest, "srv/mc-proxy");
    fs.mkdirSync(data, { recursive: true });
    const config = path.join(data, "mc-proxy.toml");
    const db = path.join(data, "mc-proxy.db");
    fs.writeFileSync(config, "# operator's own config\n", { mode: 0o640 });
    fs.writeFileSync(db, "operator data", { mode: 0o600 });
    const r = install(dest, bins);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("kept existing /srv/mc-proxy/mc-proxy.toml");
    expect(fs.readFileSync(config, "utf8")).toBe("# operator's own config\n");
    expect(fs.statSync(config).mode & 0o777).toBe(0o640);
    expect(fs.readFileSync(db, "utf8")).toBe("operator data");
  });

  const example = path.join(REPO, "mc-proxy.toml.example");
  test.skipIf(!fs.existsSync(example))("a fresh install gets the example config, private (0600)", () => {
    const dest = tempDir("dest");
    expect(install(dest, fakeBinaries()).exitCode).toBe(0);
    const config = path.join(dest, "srv/mc-proxy/mc-proxy.toml");
    expect(fs.readFileSync(config, "utf8")).toBe(fs.readFileSync(example, "utf8"));
    expect(fs.statSync(config).mode & 0o777).toBe(0o600);
  });

  test("upgrading over an install with a separate mcproxyctl binary replaces it with the link", () => {
    const dest = tempDir("dest");
    const old = path.join(dest, "usr/local/bin/mcproxyctl");
    fs.mkdirSync(path.dirname(old), { recursive: true });
    fs.writeFileSync(old, "#!/bin/sh\necho old mcproxyctl\n", { mode: 0o755 });
    const r = install(dest, fakeBinaries());
    expect(r.exitCode).toBe(0);
    expect(fs.lstatSync(old).isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(old)).toBe("mc-proxy");
    expect(fs.readFileSync(old, "utf8")).toBe("#!/bin/sh\necho mc-proxy stand-in\n");
  });

  test("refuses to install a binary that does not exist", () => {
    const r = run(["sh", "deploy/scripts/install.sh"], {
      env: { DESTDIR: tempDir("dest"), BINARY: "/nonexistent/mc-proxy" },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("/nonexistent/mc-proxy not found");
  });
});

function sha256(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

describe("backup.sh", () => {
  /** N snapshot-named files, one day apart, oldest first. */
  function snapshotNames(n: number): string[] {
    return Array.from({ length: n }, (_, i) => `mc-proxy-202601${String(i + 1).padStart(2, "0")}T031500Z.db`);
  }

  test("--prune-only keeps exactly the newest N snapshots and never touches other files", () => {
    const dir = tempDir("backups");
    const keep = 4;
    const names = snapshotNames(keep + 3);
    // Create them out of order: pruning must go by name (UTC timestamp), not mtime.
    for (const n of [...names].reverse()) fs.writeFileSync(path.join(dir, n), n);
    const others = ["notes.txt", "mc-proxy.db", "mc-proxy-latest.db", "mc-proxy-20250101T000000Z.db.bak"];
    for (const o of others) fs.writeFileSync(path.join(dir, o), o);
    fs.mkdirSync(path.join(dir, "mc-proxy-20240101T000000Z.db")); // a directory with a snapshot name

    const r = run(["sh", "deploy/scripts/backup.sh", "--prune-only"], {
      env: { MC_PROXY_BACKUP_DIR: dir, MC_PROXY_BACKUP_KEEP: String(keep) },
    });
    expect(r.exitCode).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(
      [...names.slice(-keep), ...others, "mc-proxy-20240101T000000Z.db"].sort(),
    );
  });

  test("keeps everything when there are no more than N snapshots", () => {
    const dir = tempDir("backups");
    const names = snapshotNames(3);
    for (const n of names) fs.writeFileSync(path.join(dir, n), n);
    const r = run(["sh", "deploy/scripts/backup.sh", "--prune-only"], { env: { MC_PROXY_BACKUP_DIR: dir } });
    expect(r.exitCode).toBe(0);
    expect(fs.readdirSync(dir).sort()).toEqual(names);
  });

  test("refuses a keep count that is not a positive integer (0 would delete every backup)", () => {
    const dir = tempDir("backups");
    const names = snapshotNames(2);
    for (const n of names) fs.writeFileSync(path.join(dir, n), n);
    for (const bad of ["0", "-1", "seven", ""]) {
      const r = run(["sh", "deploy/scripts/backup.sh", "--prune-only"], {
        env: { MC_PROXY_BACKUP_DIR: dir, MC_PROXY_BACKUP_KEEP: bad === "" ? " " : bad },
      });
      expect(r.exitCode).not.toBe(0);
    }
    expect(fs.readdirSync(dir).sort()).toEqual(names);
  });

  test("a failed snapshot exits non-zero and prunes nothing", () => {
    const dir = tempDir("backups");
    const names = snapshotNames(5);
    for (const n of names) fs.writeFileSync(path.join(dir, n), n);
    const r = run(["sh", "deploy/scripts/backup.sh"], {
      env: { MC_PROXY_BACKUP_DIR: dir, MC_PROXY_BACKUP_KEEP: "1", MC_PROXY_BIN: "/bin/false" },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("snapshot failed; nothing pruned");
    expect(fs.readdirSync(dir).sort()).toEqual(names);
  });

  test("a real run snapshots the database with the real binary, then prunes to N", () => {
    const bin = ensureBinary();
    const srv = tempDir("srv");
    const dir = path.join(srv, "backups");
    fs.mkdirSync(dir);
    const dbPath = path.join(srv, "mc-proxy.db");
    new Database(dbPath, { create: true }).close();
    const configPath = path.join(srv, "mc-proxy.toml");
    fs.writeFileSync(configPath, `[database]\npath = ${JSON.stringify(dbPath)}\n`);
    const old = snapshotNames(3);
    for (const n of old) fs.writeFileSync(path.join(dir, n), n);

    const r = run(["sh", "deploy/scripts/backup.sh"], {
      env: { MC_PROXY_BACKUP_DIR: dir, MC_PROXY_BACKUP_KEEP: "2", MC_PROXY_BIN: bin, MC_PROXY_CONFIG: configPath },
      timeoutMs: 60_000,
    });
    if (r.exitCode !== 0) console.error(r.stdout + r.stderr);
    expect(r.exitCode).toBe(0);
    const left = fs.readdirSync(dir).sort();
    expect(left.length).toBe(2);
    expect(left[0]).toBe(old[2]); // newest old snapshot survives
    expect(left[1]).toMatch(/^mc-proxy-\d{8}T\d{6}Z\.db$/); // the new one (current year sorts after 2026-01)
    expect(fs.readFileSync(path.join(dir, left[1]!)).subarray(0, 15).toString()).toBe("SQLite format 3");
  }, 120_000);
});

describe("shell scripts", () => {
  test("shellcheck passes on every shell script in deploy/ and scripts/", () => {
    expect(have("shellcheck")).toBe(true); // apt-get install -y shellcheck
    const scripts: string[] = [];
    for (const top of ["deploy", "scripts"]) {
      for (const rel of fs.readdirSync(path.join(REPO, top), { recursive: true }) as string[]) {
        const p = path.join(top, rel);
        if (!fs.statSync(path.join(REPO, p)).isFile()) continue;
        const head = fs.readFileSync(path.join(REPO, p), "utf8").slice(0, 64);
        if (p.endsWith(".sh") || /^#!.*\b(ba|da)?sh\b/.test(head)) scripts.push(p);
      }
    }
    expect(scripts).toContain("deploy/scripts/install.sh");
    expect(scripts).toContain("deploy/scripts/backup.sh");
    expect(scripts).toContain("scripts/image.sh");
    const r = run(["shellcheck", "--severity=style", ...scripts]);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  });
});

describe.skipIf(!have("systemd-analyze"))("systemd units", () => {
  const units = ["mc-proxy.service", "mc-proxy-backup.service", "mc-proxy-backup.timer"];

  /**
   * Copies the units to a temp dir with ExecStart pointed at files that exist
   * here (systemd-analyze verify checks the command is executable; the real
   * paths only exist after install.sh on a target host).
   */
  function unitCopy(mutate: (name: string, text: string) => string = (_, t) => t): string[] {
    const dir = tempDir("units");
    const bins = fakeBinaries();
    return units.map((u) => {
      const text = fs
        .readFileSync(path.join(REPO, "deploy/systemd", u), "utf8")
        .replaceAll("/usr/local/bin/mc-proxy", bins.bin)
        .replaceAll("/usr/local/lib/mc-proxy/backup.sh", path.join(REPO, "deploy/scripts/backup.sh"));
      fs.writeFileSync(path.join(dir, u), mutate(u, text));
      return path.join(dir, u);
    });
  }

  test("systemd-analyze verify accepts the units without a single warning", () => {
    const r = run(["systemd-analyze", "verify", "--man=no", ...unitCopy()], { timeoutMs: 60_000 });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  });

  test("the verify check catches a mistyped directive (so the test above means something)", () => {
    const copies = unitCopy((u, t) => (u === "mc-proxy.service" ? t.replace("NoNewPrivileges=", "NoNewPrivilege=") : t));
    const r = run(["systemd-analyze", "verify", "--man=no", ...copies], { timeoutMs: 60_000 });
    expect(r.stderr).toContain("Unknown key 'NoNewPrivilege'");
  });

  test("the service is hardened as the spec requires and stops after shutdown_timeout, not before", () => {
    const svc = fs.readFileSync(path.join(REPO, "deploy/systemd/mc-proxy.service"), "utf8");
    const kv = new Map(
      svc.split("\n").filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    expect(kv.get("User")).toBe("mc-proxy");
    expect(kv.get("NoNewPrivileges")).toBe("yes");
    expect(kv.get("ProtectSystem")).toBe("strict");
    expect(kv.get("ReadWritePaths")).toBe("/srv/mc-proxy");
    expect(kv.get("AmbientCapabilities")).toBe("CAP_NET_BIND_SERVICE");
    expect(kv.get("CapabilityBoundingSet")).toBe("CAP_NET_BIND_SERVICE");
    expect(kv.get("RestrictAddressFamilies")).toBe("AF_UNIX AF_INET AF_INET6");
    expect(kv.get("SystemCallFilter")).toBe("@system-service");
    expect(kv.get("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(kv.get("ExecStart")).toBe("/usr/local/bin/mc-proxy server -c /srv/mc-proxy/mc-proxy.toml");
    // Default shutdown_timeout is 30s: systemd must not SIGKILL a drain in progress.
    expect(Number.parseInt(kv.get("TimeoutStopSec") ?? "0", 10)).toBeGreaterThan(30);
    const timer = fs.readFileSync(path.join(REPO, "deploy/systemd/mc-proxy-backup.timer"), "utf8");
    expect(timer).toContain("OnCalendar=daily");
    expect(timer).toContain("Persistent=true");
    expect(timer).toMatch(/^RandomizedDelaySec=/m);
  });
});
