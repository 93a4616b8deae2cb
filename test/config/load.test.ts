import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, parseConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";
import { cleanupCerts, makeCA, makeLeaf, type CertFiles } from "../fixtures/certs.ts";

let dir: string;
let leaf: CertFiles;
let other: CertFiles;
let geoip: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "mc-proxy-config-"));
  const ca = makeCA("Config CA");
  leaf = makeLeaf(ca, ["a.test"]);
  other = makeLeaf(ca, ["b.test"]);
  geoip = join(dir, "geo.mmdb");
  writeFileSync(geoip, "not really a database; the loader only checks it is readable");
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  cleanupCerts();
});

const DB = `[database]\npath = "/tmp/x.db"\n`;
const L = `${DB}[[listeners]]\naddr = "127.0.0.1:8443"\n`;
const R = `${L}[[listeners.routes]]\nhostname = "a.test"\nbackend = "127.0.0.1:8080"\n`;

/** Parse `toml`; expect a ConfigError whose (first) key path is `path`; return its message. */
function rejects(toml: string, path: string, detail?: RegExp): string {
  try {
    parseConfig(toml, join(dir, "c.toml"));
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const ce = e as ConfigError;
    expect(ce.keyPath).toBe(path);
    expect(ce.message).toContain(path);
    if (detail) expect(ce.detail).toMatch(detail);
    return ce.message;
  }
  throw new Error(`expected a ConfigError at ${path}`);
}

function l7(extra = "", cert = leaf.fullchainPath, key = leaf.keyPath): string {
  return `${R}mode = "l7"\ntls_cert = "${cert}"\ntls_key = "${key}"\n${extra}`;
}

describe("config loading fills defaults", () => {
  test("a minimal config gets every default of SPEC §2", () => {
    const { config, warnings } = parseConfig(R, join(dir, "c.toml"));
    expect(warnings).toEqual([]);
    expect(config.file).toBe(join(dir, "c.toml"));
    expect(config.database.path).toBe("/tmp/x.db");
    expect(config.grpc).toBeNull();
    expect(config.metrics).toBeNull();
    expect(config.log.level).toBe("info");
    expect(config.proxy).toEqual({
      connectTimeoutMs: 5000, idleTimeoutMs: 300_000, shutdownTimeoutMs: 30_000, helloTimeoutMs: 10_000,
      helloMaxBytes: 65536, backendTimeoutMs: 60_000, l7MinTls: "1.3", workers: 0,
    });
    expect(config.firewall).toEqual({ geoipDb: "", blockedIps: [], blockedCidrs: [], blockedCountries: [], rateLimit: 0, rateWindowMs: 10_000 });
    const l = config.listeners[0];
    expect(l).toMatchObject({ addr: "127.0.0.1:8443", proxyProtocol: false, proxyProtocolTrusted: [], maxConnections: 0 });
    expect(l.routes[0]).toEqual({
      hostname: "a.test", backend: "127.0.0.1:8080", mode: "l4", tlsCert: "", tlsKey: "", backendTls: false,
      backendProtocol: "auto", backendTlsVerify: false, backendTlsCa: "", backendTlsServerName: "",
      sendProxyProtocol: false, l7Policies: [],
    });
  });

  test("durations, hostnames and countries are normalised", () => {
    const { config } = parseConfig(
      `${L}[[listeners.routes]]\nhostname = "A.Test."\nbackend = "[::1]:80"\n` +
        `[proxy]\nidle_timeout = "1h30m"\nconnect_timeout = "1.5s"\n[firewall]\ngeoip_db = "${geoip}"\nblocked_countries = ["kp", "Ru"]\nrate_window = "2m"\n`,
      join(dir, "c.toml"),
    );
    expect(config.listeners[0].routes[0].hostname).toBe("a.test");
    expect(config.proxy.idleTimeoutMs).toBe(5_400_000);
    expect(config.proxy.connectTimeoutMs).toBe(1500);
    expect(config.firewall.blockedCountries).toEqual(["KP", "RU"]);
    expect(config.firewall.rateWindowMs).toBe(120_000);
  });

  test("relative paths resolve against the config file's directory, not the working directory", () => {
    const sub = join(dir, "etc");
    mkdirSync(join(sub, "certs"), { recursive: true });
    writeFileSync(join(sub, "certs", "a.pem"), leaf.fullchainPem);
    writeFileSync(join(sub, "certs", "a.key"), leaf.keyPem);
    const file = join(sub, "mc.toml");
    writeFileSync(file, `[database]\npath = "data/mc.db"\n[[listeners]]\naddr = ":443"\n[[listeners.routes]]\nhostname = "a.test"\n` +
      `backend = "127.0.0.1:1"\nmode = "l7"\ntls_cert = "certs/a.pem"\ntls_key = "./certs/a.key"\n[grpc]\naddr = "run/mc.sock"\n`);
    const { config } = loadConfig(file);
    expect(config.database.path).toBe(join(sub, "data", "mc.db"));
    expect(config.listeners[0].routes[0].tlsCert).toBe(join(sub, "certs", "a.pem"));
    expect(config.listeners[0].routes[0].tlsKey).toBe(join(sub, "certs", "a.key"));
    expect(config.grpc?.addr).toBe(join(sub, "run", "mc.sock"));
  });

  test("an l7 route with policies keeps them in order", () => {
    const { config, warnings } = parseConfig(
      l7(`[[listeners.routes.l7_policies]]\ntype = "block_user_agent"\nvalue = "zgrab"\n[[listeners.routes.l7_policies]]\ntype = "require_header"\nvalue = "X-Token"\n`),
      join(dir, "c.toml"),
    );
    expect(warnings).toEqual([]);
    expect(config.listeners[0].routes[0].l7Policies).toEqual([{ type: "block_user_agent", value: "zgrab" }, { type: "require_header", value: "X-Token" }]);
  });

  test("a bare IP in proxy_protocol_trusted becomes a host CIDR", () => {
    const { config } = parseConfig(`${DB}[[listeners]]\naddr = ":443"\nproxy_protocol = true\nproxy_protocol_trusted = ["10.0.0.1", "::1", "10.1.0.0/16"]\n`, "");
    expect(config.listeners[0].proxyProtocolTrusted).toEqual(["10.0.0.1/32", "::1/128", "10.1.0.0/16"]);
  });
});

describe("the example config loads", () => {
  test("mc-proxy.toml.example (cert lines commented) is valid and documents every default", () => {
    const path = join(import.meta.dir, "..", "..", "mc-proxy.toml.example");
    const { config } = loadConfig(path);
    expect(config.listeners.length).toBe(1);
    expect(config.listeners[0].routes[0].mode).toBe("l4");
    expect(config.metrics?.addr).toBe("127.0.0.1:9091");
    // Every key the loader knows appears in the example, at least commented.
    const text = readFileSync(path, "utf8");
    for (const key of ["path", "addr", "proxy_protocol", "proxy_protocol_trusted", "max_connections", "hostname", "backend", "mode",
      "tls_cert", "tls_key", "backend_tls", "backend_protocol", "backend_tls_verify", "backend_tls_ca", "backend_tls_server_name",
      "send_proxy_protocol", "type", "value", "client_ca", "geoip_db", "blocked_ips", "blocked_cidrs", "blocked_countries",
      "rate_limit", "rate_window", "connect_timeout", "idle_timeout", "shutdown_timeout", "hello_timeout", "hello_max_bytes",
      "backend_timeout", "l7_min_tls", "level"]) {
      expect(text).toMatch(new RegExp(`^\\s*#?\\s*${key} +=`, "m"));
    }
  });
});

describe("config validation names the key path of each problem", () => {
  test("unknown key at top level", () => void rejects(`bogus = 1\n${R}`, "bogus", /unknown key/));
  test("unknown table at top level", () => void rejects(`${R}[frewall]\nrate_limit = 1\n`, "frewall", /unknown key/));
  test("unknown key in a route", () => void rejects(`${R}bakend = "x:1"\n`, "listeners[0].routes[0].bakend", /unknown key/));
  test("unknown key in a policy", () =>
    void rejects(`${R}[[listeners.routes.l7_policies]]\ntype = "require_header"\nvalue = "X"\nvalu = "y"\n`, "listeners[0].routes[0].l7_policies[0].valu"));
  test("unknown key in [firewall]", () => void rejects(`${R}[firewall]\nblocked_ip = ["1.2.3.4"]\n`, "firewall.blocked_ip"));
  test("wrong type", () => void rejects(`${L}max_connections = "10"\n`, "listeners[0].max_connections", /expected an integer/));
  test("missing database.path", () => void rejects(`[database]\n[[listeners]]\naddr = ":443"\n`, "database.path", /required/));
  test("missing [database]", () => void rejects(`[[listeners]]\naddr = ":443"\n`, "database"));
  test("listener addr with a bad port", () => void rejects(`${DB}[[listeners]]\naddr = ":70000"\n`, "listeners[0].addr", /out of range/));
  test("listener addr that is not host:port", () => void rejects(`${DB}[[listeners]]\naddr = "443"\n`, "listeners[0].addr"));
  test("duplicate listener addr", () =>
    void rejects(`${DB}[[listeners]]\naddr = ":443"\n[[listeners]]\naddr = ":8443"\n[[listeners]]\naddr = ":443"\n`, "listeners[2].addr", /duplicate/));
  test("invalid hostname", () => void rejects(`${L}[[listeners.routes]]\nhostname = "a.test:443"\nbackend = "127.0.0.1:1"\n`, "listeners[0].routes[0].hostname"));
  test("wildcard hostname", () => void rejects(`${L}[[listeners.routes]]\nhostname = "*.a.test"\nbackend = "127.0.0.1:1"\n`, "listeners[0].routes[0].hostname"));
  test("duplicate hostname on one listener (after normalisation)", () =>
    void rejects(`${R}[[listeners.routes]]\nhostname = "A.TEST."\nbackend = "127.0.0.1:2"\n`, "listeners[0].routes[1].hostname", /duplicate/));
  test("the same hostname on two listeners is fine", () => {
    expect(() => parseConfig(`${R}[[listeners]]\naddr = ":9443"\n[[listeners.routes]]\nhostname = "a.test"\nbackend = "127.0.0.1:2"\n`, "")).not.toThrow();
  });
  test("missing backend", () => void rejects(`${L}[[listeners.routes]]\nhostname = "a.test"\n`, "listeners[0].routes[0].backend", /required/));
  test("backend port out of range", () =>
    void rejects(`${L}[[listeners.routes]]\nhostname = "a.test"\nbackend = "127.0.0.1:0"\n`, "listeners[0].routes[0].backend", /out of range/));
  test("bad mode", () => void rejects(`${R}mode = "l3"\n`, "listeners[0].routes[0].mode"));
  test("l7 route with a missing certificate file", () =>
    void rejects(l7("", join(dir, "missing.pem")), "listeners[0].routes[0].tls_cert", /cannot read/));
  test("l7 route without tls_key", () => void rejects(`${R}mode = "l7"\ntls_cert = "${leaf.fullchainPath}"\n`, "listeners[0].routes[0].tls_key"));
  test("l7 route with a certificate and a key that do not match", () =>
    void rejects(l7("", leaf.fullchainPath, other.keyPath), "listeners[0].routes[0].tls_key", /does not match/));
  test("bad backend_protocol", () => void rejects(l7(`backend_protocol = "h3"\n`), "listeners[0].routes[0].backend_protocol"));
  test("backend_tls_verify without backend_tls", () =>
    void rejects(l7(`backend_tls_verify = true\n`), "listeners[0].routes[0].backend_tls_verify", /backend_tls = true/));
  test("unreadable backend_tls_ca", () =>
    void rejects(l7(`backend_tls = true\nbackend_tls_ca = "${join(dir, "nope-ca.pem")}"\n`), "listeners[0].routes[0].backend_tls_ca"));
  test("bad policy type", () =>
    void rejects(l7(`[[listeners.routes.l7_policies]]\ntype = "block_ip"\nvalue = "x"\n`), "listeners[0].routes[0].l7_policies[0].type"));
  test("empty policy value", () =>
    void rejects(l7(`[[listeners.routes.l7_policies]]\ntype = "block_user_agent"\nvalue = ""\n`), "listeners[0].routes[0].l7_policies[0].value"));
  test("policy value over L7_POLICY_VALUE_MAX_CHARS", () =>
    void rejects(l7(`[[listeners.routes.l7_policies]]\ntype = "block_user_agent"\nvalue = "${"x".repeat(1025)}"\n`), "listeners[0].routes[0].l7_policies[0].value", /1025 characters long, more than 1024/));
  test("policies on an l4 route are a warning, not an error", () => {
    const { warnings } = parseConfig(`${R}[[listeners.routes.l7_policies]]\ntype = "block_user_agent"\nvalue = "zgrab"\n`, "");
    expect(warnings).toEqual(["listeners[0].routes[0].l7_policies: has no effect on an l4 route"]);
  });
  test("a leaf-only l7 certificate loads with a warning", () => {
    const { warnings } = parseConfig(l7("", leaf.certPath, leaf.keyPath), "");
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toStartWith("listeners[0].routes[0].tls_cert: ");
    expect(warnings[0]).toContain("leaf-only");
  });
  test("negative max_connections", () => void rejects(`${L}max_connections = -1\n`, "listeners[0].max_connections", />= 0/));
  test("bad CIDR in proxy_protocol_trusted", () =>
    void rejects(`${L}proxy_protocol = true\nproxy_protocol_trusted = ["10.0.0.0/8", "10.0.0.0/40"]\n`, "listeners[0].proxy_protocol_trusted[1]"));
  test("bad IP in blocked_ips", () => void rejects(`${R}[firewall]\nblocked_ips = ["192.0.2.1", "192.0.2.300"]\n`, "firewall.blocked_ips[1]"));
  test("bad CIDR in blocked_cidrs", () => void rejects(`${R}[firewall]\nblocked_cidrs = ["2001:db8::/32", "198.51.100.0"]\n`, "firewall.blocked_cidrs[1]"));
  test("bad country", () => void rejects(`${R}[firewall]\ngeoip_db = "${geoip}"\nblocked_countries = ["KPX"]\n`, "firewall.blocked_countries[0]"));
  test("blocked_countries without geoip_db", () => void rejects(`${R}[firewall]\nblocked_countries = ["KP"]\n`, "firewall.blocked_countries", /geoip_db/));
  test("unreadable geoip_db", () => void rejects(`${R}[firewall]\ngeoip_db = "${join(dir, "none.mmdb")}"\n`, "firewall.geoip_db"));
  test("negative rate_limit", () => void rejects(`${R}[firewall]\nrate_limit = -5\n`, "firewall.rate_limit"));
  test("bad duration", () => void rejects(`${R}[proxy]\nidle_timeout = "5"\n`, "proxy.idle_timeout", /invalid duration/));
  for (const [table, key] of [
    ["proxy", "backend_timeout"], ["proxy", "connect_timeout"], ["proxy", "idle_timeout"], ["proxy", "shutdown_timeout"],
    ["proxy", "hello_timeout"], ["firewall", "rate_window"],
  ]) {
    test(`${table}.${key} = "720h" is refused (over 24 h: the timer would fire at once)`, () =>
      void rejects(`${R}[${table}]\n${key} = "720h"\n`, `${table}.${key}`, /longer than the maximum of 24h/));
  }
  test("24h is the longest duration accepted", () => {
    const { config } = parseConfig(`${R}[proxy]\nbackend_timeout = "24h"\n[firewall]\nrate_window = "1440m"\n`, join(dir, "c.toml"));
    expect(config.proxy.backendTimeoutMs).toBe(86_400_000);
    expect(config.firewall.rateWindowMs).toBe(86_400_000);
  });
  test("zero rate_window", () => void rejects(`${R}[firewall]\nrate_window = "0s"\n`, "firewall.rate_window", /greater than 0/));
  test("hello_max_bytes below 1 KiB", () => void rejects(`${R}[proxy]\nhello_max_bytes = 1023\n`, "proxy.hello_max_bytes", /out of range/));
  test("hello_max_bytes above 1 MiB", () => void rejects(`${R}[proxy]\nhello_max_bytes = 1048577\n`, "proxy.hello_max_bytes", /out of range/));
  test("workers below 0", () => void rejects(`${R}[proxy]\nworkers = -1\n`, "proxy.workers", /out of range 0-256/));
  test("workers above 256", () => void rejects(`${R}[proxy]\nworkers = 257\n`, "proxy.workers", /out of range 0-256/));
  test("workers not an integer", () => void rejects(`${R}[proxy]\nworkers = 1.5\n`, "proxy.workers", /integer/));
  test("workers 0 and 256 are accepted; 0 is the default", () => {
    expect(parseConfig(`${R}[proxy]\nworkers = 256\n`, "").config.proxy.workers).toBe(256);
    expect(parseConfig(`${R}[proxy]\nworkers = 0\n`, "").config.proxy.workers).toBe(0);
    expect(parseConfig(R, "").config.proxy.workers).toBe(0);
  });
  test("hello_max_bytes at the bounds is accepted", () => {
    expect(parseConfig(`${R}[proxy]\nhello_max_bytes = 1024\n`, "").config.proxy.helloMaxBytes).toBe(1024);
    expect(parseConfig(`${R}[proxy]\nhello_max_bytes = 1048576\n`, "").config.proxy.helloMaxBytes).toBe(1048576);
  });
  test("l7_min_tls other than 1.2/1.3", () => void rejects(`${R}[proxy]\nl7_min_tls = "1.1"\n`, "proxy.l7_min_tls"));
  test("bad log level", () => void rejects(`${R}[log]\nlevel = "verbose"\n`, "log.level"));
  test("gRPC on TCP without TLS is refused", () => void rejects(`${R}[grpc]\naddr = "127.0.0.1:9443"\n`, "grpc.tls_cert", /never plaintext/));
  test("gRPC on TCP with a matching cert/key and client CA is accepted", () => {
    const { config } = parseConfig(`${R}[grpc]\naddr = "127.0.0.1:9443"\ntls_cert = "${leaf.fullchainPath}"\ntls_key = "${leaf.keyPath}"\nclient_ca = "${leaf.caPath}"\n`, "");
    expect(config.grpc).toEqual({ addr: "127.0.0.1:9443", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, clientCa: leaf.caPath });
  });
  test("gRPC on TCP with TLS but without client_ca is refused (never anonymous, SPEC §7)", () =>
    void rejects(`${R}[grpc]\naddr = "127.0.0.1:9443"\ntls_cert = "${leaf.fullchainPath}"\ntls_key = "${leaf.keyPath}"\n`, "grpc.client_ca", /requires client_ca/));
  test("gRPC client_ca on a unix socket is refused (it would silently do nothing)", () =>
    void rejects(`${R}[grpc]\naddr = "/run/mc.sock"\nclient_ca = "${leaf.caPath}"\n`, "grpc.client_ca"));
  test("metrics addr must be host:port", () => void rejects(`${R}[metrics]\naddr = "9091"\n`, "metrics.addr"));
  test("TOML syntax errors name the line", () => {
    const msg = rejects(`${DB}[[listeners]\naddr = ":443"\n`, "");
    expect(msg).toMatch(/line 3/);
  });
  test("several problems are all named in one error", () => {
    const msg = rejects(`${R}bogus = 1\n[proxy]\nhello_max_bytes = 1\n`, "listeners[0].routes[0].bogus");
    expect(msg).toContain("proxy.hello_max_bytes");
  });
  test("several problems are also listed one by one (for `mc-proxy check`)", () => {
    try {
      parseConfig(`${R}bogus = 1\n[proxy]\nhello_max_bytes = 1\n`, join(dir, "c.toml"));
      throw new Error("expected a ConfigError");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const problems = (e as ConfigError).problems;
      expect(problems.map((p) => p.path)).toEqual(["listeners[0].routes[0].bogus", "proxy.hello_max_bytes"]);
      expect(problems[1]!.detail).toMatch(/out of range/);
      expect(problems[0]!.detail).not.toContain("more");
    }
  });
  test("a ConfigError made with one problem lists exactly that one", () => {
    expect(new ConfigError("f", "a.b", "bad").problems).toEqual([{ path: "a.b", detail: "bad" }]);
  });
  test("an unreadable config file is a ConfigError naming the file", () => {
    expect(() => loadConfig(join(dir, "nope.toml"))).toThrow(/nope\.toml: cannot read config file/);
    expect(() => loadConfig("")).toThrow(/no config file given \(-c\/--config needs a path\)/);
  });
});
