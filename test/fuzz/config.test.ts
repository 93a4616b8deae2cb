/**
 * Property-based tests of config validation (src/config/load.ts,
 * validate.ts): any TOML document — random text, or tables shaped like
 * mc-proxy.toml with random keys, types and values — is either accepted or
 * refused with a ConfigError naming a key path; nothing else is ever thrown.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "smol-toml";
import { parseConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";

// Relative paths in generated configs resolve here (an empty dir): nothing real is read.
const dir = mkdtempSync(join(tmpdir(), "mcp-fuzz-config-"));
const file = join(dir, "mc-proxy.toml");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Calls parseConfig; true when accepted, false on a ConfigError; fails the property on anything else. */
function check(text: string): boolean {
  try {
    const { config, warnings } = parseConfig(text, file);
    expect(typeof config).toBe("object");
    expect(Array.isArray(warnings)).toBe(true);
    return true;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw new Error(`threw ${(e as Error)?.name}: ${(e as Error)?.message}\n--- config ---\n${text}`);
    expect(typeof e.keyPath).toBe("string");
    return false;
  }
}

// Values an operator (or a typo) might write, plus random ones of every TOML type.
const str = fc.oneof(
  fc.constantFrom(
    "", ":443", "127.0.0.1:0", "[::1]:0", "localhost:0", "[::1]", "::1:443", "a.test", "A.Test.", "*.test", "1.2.3.4", "10.0.0.0/8",
    "2001:db8::/32", "2001:db8::/129", "5s", "0s", "720h", "24h", "1h30m", "-1s", "l4", "l7", "auto", "h2", "http1", "1.2", "1.3",
    "info", "debug", "KP", "kp", "KPX", "block_user_agent", "require_header", "X-Token", "bad header", "mc.sock", "unix:///x.sock",
    "127.0.0.1:70000", "host:0", "1.2.3.4:8080", "::ffff:1.2.3.4", "010.0.0.1", "1.2.3.4%eth0",
  ),
  fc.string({ maxLength: 20 }),
);
// TOML dates have 4-digit years.
const date = fc.date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T00:00:00Z"), noInvalidDate: true });
const scalar = fc.oneof(str, fc.integer({ min: -5, max: 70_000 }), fc.constantFrom(0, -1, 2 ** 53, 1.5), fc.boolean(), date);
const value = fc.oneof({ depthSize: "small" }, scalar, fc.array(scalar, { maxLength: 4 }));

// Mostly plausible values per key, so generated documents get past the first problem and reach deep checks.
const good: Record<string, fc.Arbitrary<unknown>> = {
  path: fc.constantFrom("mc.db", "sub/mc.db"),
  addr: fc.constantFrom("127.0.0.1:0", "[::1]:0", ":0", "localhost:0", "mc.sock", "127.0.0.1:9443"),
  hostname: fc.oneof(fc.domain(), fc.constantFrom("a.test", "A.TEST.")),
  backend: fc.constantFrom("127.0.0.1:8080", "[::1]:443", "backend.test:80"),
  mode: fc.constantFrom("l4", "l7"),
  backend_protocol: fc.constantFrom("auto", "h2", "http1"),
  type: fc.constantFrom("block_user_agent", "require_header"),
  value: fc.constantFrom("zgrab", "X-Token"),
  proxy_protocol_trusted: fc.array(fc.constantFrom("10.0.0.0/8", "127.0.0.1", "::1", "2001:db8::/32"), { maxLength: 3 }),
  blocked_ips: fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 3 }),
  blocked_cidrs: fc.array(fc.constantFrom("10.0.0.0/8", "10.1.2.3/8", "2001:db8::/32", "::ffff:10.0.0.0/104"), { maxLength: 3 }),
  blocked_countries: fc.array(fc.constantFrom("KP", "ru"), { maxLength: 2 }),
  rate_limit: fc.integer({ min: 0, max: 100 }),
  max_connections: fc.integer({ min: 0, max: 100 }),
  hello_max_bytes: fc.integer({ min: 512, max: 2 * 1024 * 1024 }),
  l7_min_tls: fc.constantFrom("1.2", "1.3"),
  level: fc.constantFrom("debug", "info", "warn", "error"),
};
for (const k of ["connect_timeout", "idle_timeout", "shutdown_timeout", "hello_timeout", "backend_timeout", "rate_window"]) {
  good[k] = fc.constantFrom("5s", "300ms", "1h30m", "24h", "25h", "0s");
}
for (const k of ["proxy_protocol", "backend_tls", "backend_tls_verify", "send_proxy_protocol"]) good[k] = fc.boolean();

/**
 * A table with some of `keys`, and, when `wild`, sometimes a value of any type
 * and sometimes an unknown key; else only plausible values.
 */
function table(wild: boolean, keys: string[], sub: Record<string, fc.Arbitrary<unknown>> = {}): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const k of keys) {
    fields[k] = !good[k] ? value : wild ? fc.oneof({ arbitrary: good[k], weight: 4 }, { arbitrary: value, weight: 1 }) : good[k];
  }
  Object.assign(fields, sub);
  const t = fc.record(fields, { requiredKeys: [] });
  if (!wild) return t;
  return fc
    .tuple(t, fc.option(fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), value), { freq: 10 }))
    .map(([v, extra]) => (extra ? { ...v, [extra[0]]: extra[1] } : v));
}

/** Documents shaped like mc-proxy.toml; `wild` adds wrong types, unknown keys and whole sections of junk. */
function document(wild: boolean): fc.Arbitrary<Record<string, unknown>> {
  const or = <T,>(a: fc.Arbitrary<T>) => (wild ? fc.oneof({ arbitrary: a, weight: 4 }, { arbitrary: value, weight: 1 }) : a);
  const policy = table(wild, ["type", "value"]);
  const routeKeys = ["hostname", "backend", "mode", "tls_cert", "tls_key", "backend_tls", "backend_protocol", "backend_tls_verify", "backend_tls_ca", "backend_tls_server_name", "send_proxy_protocol"];
  // Without wild, L7-only settings are left out (an l7 route needs real certificate files, tested elsewhere).
  const route = wild
    ? table(true, routeKeys, { l7_policies: or(fc.array(policy, { maxLength: 3 })) })
    : table(false, ["hostname", "backend", "send_proxy_protocol"], { mode: fc.constant("l4"), l7_policies: fc.array(policy, { maxLength: 2 }) });
  const listener = table(wild, ["addr", "proxy_protocol", "proxy_protocol_trusted", "max_connections"], { routes: or(fc.array(route, { maxLength: 3 })) });
  return fc.record(
    {
      database: wild ? fc.oneof({ arbitrary: fc.constant({ path: "mc.db" }), weight: 6 }, { arbitrary: table(true, ["path"]), weight: 1 }, { arbitrary: value, weight: 1 }) : fc.constant({ path: "mc.db" }),
      listeners: or(fc.array(listener, { maxLength: 3 })),
      grpc: wild ? or(table(true, ["addr", "tls_cert", "tls_key", "client_ca"])) : fc.constant({ addr: "mc.sock" }),
      firewall: or(table(wild, ["blocked_ips", "blocked_cidrs", "rate_limit", "rate_window", ...(wild ? ["geoip_db", "blocked_countries"] : [])])),
      proxy: or(table(wild, ["connect_timeout", "idle_timeout", "shutdown_timeout", "hello_timeout", "hello_max_bytes", "backend_timeout", "l7_min_tls"])),
      log: or(table(wild, ["level"])),
      metrics: wild ? or(table(true, ["addr"])) : fc.constant({ addr: "127.0.0.1:0" }),
    },
    { requiredKeys: ["database"] },
  );
}

/** Checks every generated document that TOML can represent; returns how many parsed. */
function run(arb: fc.Arbitrary<Record<string, unknown>>, numRuns: number): number {
  let accepted = 0;
  fc.assert(
    fc.property(arb, (d) => {
      let text: string;
      try {
        text = stringify(d);
      } catch {
        return; // not representable in TOML: nothing to test
      }
      if (check(text)) accepted++;
    }),
    { numRuns },
  );
  return accepted;
}

describe("config validation properties", () => {
  test("random text: parsed or refused with a ConfigError, nothing else", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.array(fc.constantFrom("[database]\n", 'path = "x.db"\n', "[[listeners]]\n", 'addr = ":0"\n', "[proxy]\n", "= 1\n", "[[", '"', "\n", "a = [1, \"x\"]\n", "b = {c = 1}\n"), { maxLength: 12 }).map((a) => a.join("")),
    );
    fc.assert(
      fc.property(text, (t) => void check(t)),
      { numRuns: 2000 },
    );
  });

  test("documents shaped like mc-proxy.toml with random keys, types and values: parsed or refused with a ConfigError", () => {
    run(document(true), 2500);
  });

  test("documents of plausible values reach the deep checks: parsed or refused with a ConfigError, and many are accepted", () => {
    const accepted = run(document(false), 1500);
    expect(accepted).toBeGreaterThan(100); // the property is not vacuous: whole configs get through
  });
});
