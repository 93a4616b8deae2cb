/**
 * `mc-proxy check -c <config>` run as an operator runs it before a restart:
 * a subprocess (`bun src/main.ts check`, and once the compiled binary) on
 * real config, certificate, GeoIP and SQLite files in a temp dir. It must
 * find what would stop the server from starting, warn where the database
 * and the config disagree, list what would be served, and never create or
 * change a file.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { Database } from "bun:sqlite";
import { LATEST_VERSION } from "../../src/store/migrations.ts";
import { seedIfEmpty } from "../../src/store/seed.ts";
import { Store } from "../../src/store/store.ts";
import { ensureBinaries, REPO } from "../e2e/build.ts";
import { MIN_ENV, freshDir, killAll, removeDir, runBin } from "../e2e/harness.ts";
import { startServerProc } from "../helpers/subprocess.ts";
import { cleanupCerts, makeCA, makeClientCert, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { writeCountryMmdb } from "../fixtures/mmdb.ts";

let dir: string;
let ca: CA;
let a: CertFiles; // a.test, full chain
let b: CertFiles; // b.test
let adminCert: CertFiles;
let geoip: string;

beforeAll(() => {
  dir = freshDir("mcp-check-");
  ca = makeCA("Check CA");
  a = makeLeaf(ca, ["a.test"]);
  b = makeLeaf(ca, ["b.test"]);
  adminCert = makeLeaf(ca, ["admin.test", "127.0.0.1"]);
  makeClientCert(ca, "ops");
  geoip = path.join(dir, "country.mmdb");
  writeCountryMmdb(geoip, [{ cidr: "127.0.0.2/32", country: "KP" }]);
});

afterAll(() => {
  killAll();
  removeDir(dir);
  cleanupCerts();
});

/** Writes `toml` to a new directory of its own; returns the config path (its database goes to <dir>/data/). */
function writeConfig(toml: string): string {
  const d = fs.mkdtempSync(path.join(dir, "cfg-"));
  const p = path.join(d, "mc-proxy.toml");
  fs.writeFileSync(p, toml);
  return p;
}

/** `bun src/main.ts check -c <cfg> [...extra]` with the repository as cwd. */
async function check(cfg: string, extra: string[] = []) {
  const proc = Bun.spawn([process.execPath, "src/main.ts", "check", "-c", cfg, ...extra], {
    cwd: REPO,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1" },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out, err, errLines: err.split("\n").filter(Boolean) };
}

/** Names, bytes and mtimes of every file under `d`: what "nothing changed on disk" is checked against. */
function disk(d: string): { name: string; bytes: string; mtime: number }[] {
  return fs
    .readdirSync(d, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .sort()
    .map((f) => ({ name: f, bytes: fs.readFileSync(f).toString("base64"), mtime: fs.statSync(f).mtimeMs }));
}

const DB = `[database]\npath = "data/mc-proxy.db"\n`;

/** A config using every kind of file check names: L7 certs, a backend CA, GeoIP, the admin API's mTLS files. */
function fullConfig(): string {
  return `${DB}
[[listeners]]
addr = "127.0.0.1:8443"

  [[listeners.routes]]
  hostname = "plain.test"
  backend = "127.0.0.1:18080"
  send_proxy_protocol = true

  [[listeners.routes]]
  hostname = "A.test"
  backend = "127.0.0.1:18443"
  mode = "l7"
  tls_cert = "${a.fullchainPath}"
  tls_key = "${a.keyPath}"
  backend_tls = true
  backend_protocol = "h2"
  backend_tls_verify = true
  backend_tls_ca = "${ca.certPath}"
  backend_tls_server_name = "internal.test"

    [[listeners.routes.l7_policies]]
    type = "block_user_agent"
    value = "zgrab"

[grpc]
addr = "127.0.0.1:9443"
tls_cert = "${adminCert.fullchainPath}"
tls_key = "${adminCert.keyPath}"
client_ca = "${ca.certPath}"

[firewall]
geoip_db = "${geoip}"
blocked_ips = ["192.0.2.1"]
blocked_countries = ["kp"]
rate_limit = 20
rate_window = "10s"

[metrics]
addr = "127.0.0.1:9091"
`;
}

describe("a valid config", () => {
  test("exits 0, lists every route with its mode and L7 details, the firewall, admin and metrics, and ends with 'configuration OK'", async () => {
    const cfg = writeConfig(fullConfig());
    const r = await check(cfg);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const out = r.out;
    expect(out).toContain(`config ${cfg}\n`);
    expect(out).toContain("does not exist; the server will create it and seed it from the config");
    expect(out).toContain("listeners (from the config):\n");
    expect(out).toContain("  127.0.0.1:8443  2 routes, proxy_protocol off, max_connections unlimited\n");
    expect(out).toContain("    plain.test -> 127.0.0.1:18080  l4  (PROXY v2 to the backend)\n");
    // Hostnames are shown as stored: lower-case.
    expect(out).toMatch(
      new RegExp(
        `    a\\.test -> 127\\.0\\.0\\.1:18443  l7  \\(backend h2 over TLS, verified against ${ca.certPath.replace(/[.]/g, "\\.")} as internal\\.test; ` +
          `cert ${a.fullchainPath.replace(/[.]/g, "\\.")} valid until \\d{4}-\\d\\d-\\d\\dT[^;]+; policies block_user_agent "zgrab"\\)\\n`,
      ),
    );
    expect(out).toContain(`firewall: blocked IPs 192.0.2.1; blocked countries KP; GeoIP ${geoip} (mc-proxy-Test-Country); rate limit 20 new connections per client per 10s\n`);
    expect(out).toContain(`admin API: 127.0.0.1:9443 (TLS 1.3, client certificates from ${ca.certPath})\n`);
    expect(out).toContain("metrics: http://127.0.0.1:9091/metrics\n");
    expect(out.endsWith("configuration OK\n")).toBe(true);
  });

  test("with no database file, nothing is created: not the file, not its directory, no -wal/-shm", async () => {
    const cfg = writeConfig(fullConfig());
    const before = fs.readdirSync(path.dirname(cfg));
    const r = await check(cfg);
    expect(r.code).toBe(0);
    expect(fs.readdirSync(path.dirname(cfg))).toEqual(before); // no data/ directory
    expect(fs.existsSync(path.join(path.dirname(cfg), "data"))).toBe(false);
  });

  test("warnings (an l4 route with l7-only settings) are printed on stderr, and the exit code stays 0", async () => {
    const cfg = writeConfig(`${DB}[[listeners]]\naddr = ":8443"\n[[listeners.routes]]\nhostname = "x.test"\nbackend = "127.0.0.1:1"\nbackend_protocol = "h2"\n`);
    const r = await check(cfg);
    expect(r.code).toBe(0);
    expect(r.errLines).toEqual(["warning: listeners[0].routes[0].backend_protocol: has no effect on an l4 route"]);
    expect(r.out.endsWith("configuration OK, 1 warning\n")).toBe(true);
  });

  test("--json prints one JSON object with the same findings (for scripts)", async () => {
    const cfg = writeConfig(fullConfig());
    const r = await check(cfg, ["--json"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    const j = JSON.parse(r.out);
    expect(j.ok).toBe(true);
    expect(j.errors).toEqual([]);
    expect(j.servedFrom).toBe("config");
    expect(j.database).toEqual({ path: path.join(path.dirname(cfg), "data/mc-proxy.db"), exists: false, migrations: [], seeds: true });
    expect(j.listeners[0].routes.map((x: { hostname: string; mode: string }) => [x.hostname, x.mode])).toEqual([["plain.test", "l4"], ["a.test", "l7"]]);
    expect(j.firewall.blockedCountries).toEqual(["KP"]);
    expect(j.admin.transport).toBe("mtls");
  });
});

describe("errors: exit 2, one line each on stderr naming the file and the key path", () => {
  test("an invalid hostname and a bad backend port are both reported, each on its own line", async () => {
    const cfg = writeConfig(
      `${DB}[[listeners]]\naddr = ":8443"\n[[listeners.routes]]\nhostname = "a.test:443"\nbackend = "127.0.0.1:70000"\n[proxy]\nhello_max_bytes = 1\n`,
    );
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.errLines).toEqual([
      `error: ${cfg}: listeners[0].routes[0].hostname: "a.test:443" has a port; give the bare hostname`,
      `error: ${cfg}: listeners[0].routes[0].backend: "127.0.0.1:70000": port 70000 out of range 1-65535`,
      `error: ${cfg}: proxy.hello_max_bytes: 1 out of range 1024-1048576 (1 KiB-1 MiB)`,
      "configuration invalid: 3 errors",
    ]);
  });

  test("an L7 route whose key does not match its certificate", async () => {
    const cfg = writeConfig(
      `${DB}[[listeners]]\naddr = ":8443"\n[[listeners.routes]]\nhostname = "a.test"\nbackend = "127.0.0.1:1"\nmode = "l7"\ntls_cert = "${a.fullchainPath}"\ntls_key = "${b.keyPath}"\n`,
    );
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.errLines[0]).toStartWith(`error: ${cfg}: listeners[0].routes[0].tls_key: key ${b.keyPath} does not match the certificate in ${a.fullchainPath}`);
    expect(r.errLines).toHaveLength(2);
  });

  test("an unreadable backend CA file and admin API client CA", async () => {
    const missing = path.join(dir, "no-such-ca.pem");
    const cfg = writeConfig(fullConfig().replaceAll(`"${ca.certPath}"`, `"${missing}"`));
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.errLines).toContain(`error: ${cfg}: listeners[0].routes[1].backend_tls_ca: ${missing}: cannot read (ENOENT)`);
    expect(r.errLines).toContain(`error: ${cfg}: grpc.client_ca: ${missing}: cannot read (ENOENT)`);
  });

  test("a GeoIP file that cannot be read", async () => {
    const missing = path.join(dir, "no-such.mmdb");
    const cfg = writeConfig(fullConfig().replace(`geoip_db = "${geoip}"`, `geoip_db = "${missing}"`));
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.errLines).toEqual([`error: ${cfg}: firewall.geoip_db: ${missing}: cannot read (ENOENT)`, "configuration invalid: 1 error"]);
  });

  test("a GeoIP file that is not a MaxMind database (the loader only sees a readable file; the server would refuse it)", async () => {
    const junk = path.join(dir, "junk.mmdb");
    fs.writeFileSync(junk, "not a MaxMind database at all");
    const cfg = writeConfig(fullConfig().replace(`geoip_db = "${geoip}"`, `geoip_db = "${junk}"`));
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.errLines[0]).toStartWith(`error: ${cfg}: firewall.geoip_db: geoip ${junk}: not a MaxMind DB`);
    // Everything else is still checked and listed.
    expect(r.out).toContain("a.test -> 127.0.0.1:18443  l7");
    expect(r.errLines.at(-1)).toBe("configuration invalid: 1 error");
  });

  test("a metrics address without a host (the loader accepts it; the metrics server refuses it at start)", async () => {
    const cfg = writeConfig(`${DB}[metrics]\naddr = ":9091"\n`);
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.errLines[0]).toStartWith(`error: ${cfg}: metrics.addr: expected host:port`);
  });

  test("an admin socket whose directory does not exist, and one whose path is a regular file", async () => {
    const cfg = writeConfig(`${DB}[grpc]\naddr = "/nonexistent-dir-for-check/mc.sock"\n`);
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.errLines[0]).toBe(`error: ${cfg}: grpc.addr: directory /nonexistent-dir-for-check of the admin socket does not exist`);
    const file = path.join(dir, "not-a-socket");
    fs.writeFileSync(file, "");
    const r2 = await check(writeConfig(`${DB}[grpc]\naddr = "${file}"\n`));
    expect(r2.code).toBe(2);
    expect(r2.err).toContain(`grpc.addr: ${file} exists and is not a socket`);
  });

  test("an unreadable config file and a TOML syntax error", async () => {
    const r = await check(path.join(dir, "nope.toml"));
    expect(r.code).toBe(2);
    expect(r.errLines[0]).toBe(`error: ${path.join(dir, "nope.toml")}: cannot read config file (ENOENT)`);
    const cfg = writeConfig(`${DB}[[listeners]\naddr = ":443"\n`);
    const r2 = await check(cfg);
    expect(r2.code).toBe(2);
    expect(r2.errLines[0]).toMatch(/TOML syntax error at line 3/);
  });
});

describe("an existing database: the server serves what it holds", () => {
  /** Seeds data/mc-proxy.db beside `cfg` from `seedToml` with the server's own code, then closes it. */
  function seedDatabase(cfg: string, seedToml: string): Store {
    const seedCfg = path.join(path.dirname(cfg), "seed.toml");
    fs.writeFileSync(seedCfg, seedToml);
    const { config } = loadConfig(seedCfg);
    fs.rmSync(seedCfg);
    const store = Store.open(config.database.path);
    expect(seedIfEmpty(store, config)).toBe(true);
    return store;
  }

  const L = `${DB}[[listeners]]\naddr = "127.0.0.1:8443"\n`;
  const route = (h: string, backend: string) => `[[listeners.routes]]\nhostname = "${h}"\nbackend = "${backend}"\n`;

  test("a config that diverges: one warning per difference, the database's routes listed, exit 0, the database untouched", async () => {
    const cfg = writeConfig(`${L}${route("a.test", "127.0.0.1:2000")}${route("new.test", "127.0.0.1:3000")}`);
    const store = seedDatabase(cfg, `${L}${route("a.test", "127.0.0.1:1000")}${route("old.test", "127.0.0.1:4000")}`);
    // Added at run time (as mcproxyctl would): an L7 route whose key is not its certificate's.
    store.upsertRoute(store.getListener("127.0.0.1:8443")!.id, {
      hostname: "broken.test", backend: "127.0.0.1:5000", mode: "l7", tlsCert: a.fullchainPath, tlsKey: b.keyPath,
      backendTls: false, backendProtocol: "auto", backendTlsVerify: false, backendTlsCa: "", backendTlsServerName: "", sendProxyProtocol: false,
    });
    store.close();
    const dataDir = path.join(path.dirname(cfg), "data");
    const before = disk(dataDir);
    expect(before.map((f) => path.basename(f.name))).toEqual(["mc-proxy.db"]);

    const r = await check(cfg);
    expect(r.code).toBe(0);
    const on = 'on listener "127.0.0.1:8443"';
    expect(r.errLines).toEqual([
      `warning: route "a.test" ${on}: TOML backend 127.0.0.1:2000 differs from database 127.0.0.1:1000 (the database wins after first start; change it with mcproxyctl)`,
      `warning: route "new.test" ${on} is in the TOML but not in the database: it is not served (the database wins after first start; change it with mcproxyctl)`,
      `warning: route "old.test" ${on} is in the database but not in the TOML: it is still served (the database wins after first start; change it with mcproxyctl)`,
      `warning: route "broken.test" ${on} is in the database but not in the TOML: it is still served (the database wins after first start; change it with mcproxyctl)`,
      expect.stringMatching(
        new RegExp(`^warning: route "broken\\.test" ${on} \\(in the database\\): tls_key: key .* does not match .*\\(the server starts, but refuses this route's TLS handshakes\\)$`),
      ),
    ]);
    expect(r.out).toContain("the server serves what it holds (the config only seeded it)");
    expect(r.out).toContain("listeners (from the database):\n  127.0.0.1:8443  3 routes");
    expect(r.out).toContain("    a.test -> 127.0.0.1:1000  l4\n");
    expect(r.out).toContain("    old.test -> 127.0.0.1:4000  l4\n");
    expect(r.out).toContain("broken.test -> 127.0.0.1:5000  l7  (backend auto in cleartext; cert");
    expect(r.out).toContain("DOES NOT LOAD");
    expect(r.out).not.toContain("new.test");
    expect(r.out.endsWith("configuration OK, 5 warnings\n")).toBe(true);
    expect(disk(dataDir)).toEqual(before);
  });

  test("firewall rules and listener settings that differ are warned about too", async () => {
    const cfg = writeConfig(`${L}max_connections = 10\n[firewall]\nblocked_ips = ["192.0.2.1"]\n`);
    seedDatabase(cfg, `${L}proxy_protocol = true\n[firewall]\nblocked_cidrs = ["198.51.100.0/24"]\n`).close();
    const r = await check(cfg);
    expect(r.code).toBe(0);
    expect(r.err).toContain('warning: listener "127.0.0.1:8443": TOML max_connections 10 differs from database 0');
    expect(r.err).toContain('warning: listener "127.0.0.1:8443": TOML proxy_protocol false differs from database true');
    expect(r.err).toContain("warning: firewall rule ip 192.0.2.1 is in the TOML but not in the database: it is not enforced");
    expect(r.err).toContain("warning: firewall rule cidr 198.51.100.0/24 is in the database but not in the TOML: it is still enforced");
    // The served listener takes PROXY headers from anyone: the server's start-up warning, now.
    expect(r.err).toContain('warning: listener "127.0.0.1:8443": proxy_protocol = true with an empty proxy_protocol_trusted');
    expect(r.out).toContain("firewall: blocked CIDRs 198.51.100.0/24;");
  });

  test("a config that matches the database: no warnings", async () => {
    const toml = `${L}${route("a.test", "127.0.0.1:1000")}`;
    const cfg = writeConfig(toml);
    seedDatabase(cfg, toml).close();
    const r = await check(cfg);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out.endsWith("configuration OK\n")).toBe(true);
  });

  test("a database from a newer mc-proxy is an error naming database.path, and is left as it was", async () => {
    const cfg = writeConfig(`${L}${route("a.test", "127.0.0.1:1000")}`);
    seedDatabase(cfg, `${L}${route("a.test", "127.0.0.1:1000")}`).close();
    const dbPath = path.join(path.dirname(cfg), "data/mc-proxy.db");
    const op = new Database(dbPath);
    op.run("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", [LATEST_VERSION + 1, new Date().toISOString()]);
    op.close();
    const before = disk(path.dirname(dbPath));
    const r = await check(cfg);
    expect(r.code).toBe(2);
    expect(r.errLines[0]).toBe(
      `error: ${cfg}: database.path: database schema version ${LATEST_VERSION + 1} is newer than this mc-proxy supports (${LATEST_VERSION}); ` +
        "refusing to start: run a newer mc-proxy or restore a backup made by this version",
    );
    expect(disk(path.dirname(dbPath))).toEqual(before);
  });
});

test("while the server runs: its rows (still only in its WAL) are what is listed, its live admin socket is fine, no file changes", async () => {
  const d = fs.mkdtempSync(path.join(dir, "live-"));
  const cfg = path.join(d, "mc-proxy.toml");
  const toml = (backend: string) =>
    `[database]\npath = "mc-proxy.db"\n[grpc]\naddr = "mc-proxy.sock"\n[[listeners]]\naddr = "127.0.0.1:0"\n` +
    `[[listeners.routes]]\nhostname = "live.test"\nbackend = "${backend}"\n`;
  fs.writeFileSync(cfg, toml("127.0.0.1:1000"));
  const srv = await startServerProc(cfg, { cwd: d });
  try {
    const db = path.join(d, "mc-proxy.db");
    expect(fs.existsSync(db + "-wal")).toBe(true);
    expect(fs.readFileSync(db).includes("live.test")).toBe(false); // seeded rows not checkpointed yet
    fs.writeFileSync(cfg, toml("127.0.0.1:2000")); // the operator edits the TOML of a running server
    const names = fs.readdirSync(d).sort();
    const main = { bytes: fs.readFileSync(db).toString("base64"), mtime: fs.statSync(db).mtimeMs };
    const r = await check(cfg);
    expect(r.code).toBe(0);
    expect(r.errLines).toEqual([
      'warning: route "live.test" on listener "127.0.0.1:0": TOML backend 127.0.0.1:2000 differs from database 127.0.0.1:1000 (the database wins after first start; change it with mcproxyctl)',
    ]);
    expect(r.out).toContain("listeners (from the database):\n  127.0.0.1:0  1 route");
    expect(r.out).toContain("    live.test -> 127.0.0.1:1000  l4\n");
    expect(r.out).toContain(`admin API: unix socket ${path.join(d, "mc-proxy.sock")}\n`);
    expect(fs.readdirSync(d).sort()).toEqual(names);
    expect({ bytes: fs.readFileSync(db).toString("base64"), mtime: fs.statSync(db).mtimeMs }).toEqual(main);
  } finally {
    expect(await srv.stop()).toBe(0);
  }
});

test("the compiled binary, copied alone into a temp dir, checks a config the same way", async () => {
  const built = ensureBinaries();
  const root = freshDir("mcp-check-bin-");
  try {
    const bin = path.join(root, "mc-proxy");
    fs.copyFileSync(built.mcProxy, bin);
    fs.chmodSync(bin, 0o755);
    const cfg = writeConfig(fullConfig());
    const ok = await runBin(bin, ["check", "-c", cfg], { cwd: root, env: MIN_ENV });
    expect(ok.err).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("a.test -> 127.0.0.1:18443  l7");
    expect(ok.out.endsWith("configuration OK\n")).toBe(true);
    const bad = await runBin(bin, ["check", "-c", writeConfig(`${DB}[[listeners]]\naddr = ":99999"\n`)], { cwd: root, env: MIN_ENV });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("listeners[0].addr:");
    expect(fs.readdirSync(root)).toEqual(["mc-proxy"]);
  } finally {
    removeDir(root);
  }
}, 600_000);
