import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { Store } from "../../src/store/store.ts";
import { diffConfig, seedIfEmpty } from "../../src/store/seed.ts";
import { cleanupTempDirs, config, listener, route, tempDir } from "./helpers.ts";

afterAll(cleanupTempDirs);

function tomlV1(path: string) {
  return config(
    path,
    [
      listener(":443", [
        route("a.example.com", "127.0.0.1:1", { l7Policies: [{ type: "block_user_agent", value: "zgrab" }] }),
        route("b.example.com", "127.0.0.1:3"),
      ]),
      listener("127.0.0.1:8443", [], { proxyProtocol: true, proxyProtocolTrusted: ["10.0.0.0/8"], maxConnections: 10 }),
    ],
    { blockedIps: ["192.0.2.1"], blockedCidrs: ["198.51.100.0/24"], blockedCountries: ["KP"] },
  );
}

describe("seeding", () => {
  test("firewall values are seeded in the form the admin API stores and removes (IPv4-mapped → IPv4, CIDR to its network), duplicates once", () => {
    const path = join(tempDir(), "seed-canon.db");
    const store = Store.open(path);
    try {
      const cfg = tomlV1(path);
      cfg.firewall = { ...cfg.firewall, blockedIps: ["::ffff:127.0.0.66", "127.0.0.66", "2001:DB8::1"], blockedCidrs: ["127.0.9.9/24"], blockedCountries: ["kp"] };
      expect(seedIfEmpty(store, cfg)).toBe(true);
      expect(store.listFirewallRules().map((r) => `${r.type}:${r.value}`)).toEqual(["ip:127.0.0.66", "ip:2001:db8::1", "cidr:127.0.9.0/24", "country:KP"]);
    } finally {
      store.close();
    }
  });

  test("first start on an empty database writes listeners, routes, policies and firewall rules", () => {
    const path = join(tempDir(), "seed.db");
    const store = Store.open(path);
    try {
      expect(seedIfEmpty(store, tomlV1(path))).toBe(true);
      expect(store.listListeners()).toMatchObject([
        { addr: ":443", proxyProtocol: false, maxConnections: 0, proxyProtocolTrusted: [] },
        { addr: "127.0.0.1:8443", proxyProtocol: true, maxConnections: 10, proxyProtocolTrusted: ["10.0.0.0/8"] },
      ]);
      const routes = store.listRoutes();
      expect(routes.map((r) => [r.hostname, r.backend])).toEqual([
        ["a.example.com", "127.0.0.1:1"],
        ["b.example.com", "127.0.0.1:3"],
      ]);
      expect(routes[0]!.l7Policies).toMatchObject([{ type: "block_user_agent", value: "zgrab" }]);
      expect(store.listFirewallRules().map((r) => `${r.type}:${r.value}`)).toEqual(["ip:192.0.2.1", "cidr:198.51.100.0/24", "country:KP"]);
      expect(diffConfig(store, tomlV1(path))).toEqual([]);
    } finally {
      store.close();
    }
  });

  test("second start with a changed TOML does not re-apply it, and warns per difference naming listener and hostname", () => {
    const path = join(tempDir(), "seed2.db");
    let store = Store.open(path);
    seedIfEmpty(store, tomlV1(path));
    store.close();

    // The operator edits only the TOML.
    const v2 = config(
      path,
      [
        listener(":443", [route("a.example.com", "127.0.0.1:2"), route("c.example.com", "127.0.0.1:4")], { maxConnections: 50 }),
        listener("[::1]:9443", []),
      ],
      { blockedIps: ["192.0.2.1", "192.0.2.2"], blockedCountries: ["KP"] },
    );
    store = Store.open(path);
    try {
      expect(seedIfEmpty(store, v2)).toBe(false);
      expect(store.getRoute(store.getListener(":443")!.id, "a.example.com")!.backend).toBe("127.0.0.1:1");
      expect(store.getListener("[::1]:9443")).toBeNull();

      const w = diffConfig(store, v2);
      const why = "(the database wins after first start; change it with mcproxyctl)";
      expect(w).toContain(`route "a.example.com" on listener ":443": TOML backend 127.0.0.1:2 differs from database 127.0.0.1:1 ${why}`);
      expect(w).toContain(`route "a.example.com" on listener ":443": TOML l7_policies [] differ from database [block_user_agent=zgrab] ${why}`);
      expect(w).toContain(`route "c.example.com" on listener ":443" is in the TOML but not in the database: it is not served ${why}`);
      expect(w).toContain(`route "b.example.com" on listener ":443" is in the database but not in the TOML: it is still served ${why}`);
      expect(w).toContain(`listener ":443": TOML max_connections 50 differs from database 0 ${why}`);
      expect(w.some((s) => s.startsWith(`listener "[::1]:9443" is in the TOML but not in the database`))).toBe(true);
      expect(w.some((s) => s.startsWith(`listener "127.0.0.1:8443" is in the database but not in the TOML`))).toBe(true);
      expect(w).toContain(`firewall rule ip 192.0.2.2 is in the TOML but not in the database: it is not enforced ${why}`);
      expect(w).toContain(`firewall rule cidr 198.51.100.0/24 is in the database but not in the TOML: it is still enforced ${why}`);
      expect(w).toHaveLength(9);
    } finally {
      store.close();
    }
  });

  test("a database with only hand-inserted rows counts as not empty (no seeding over operator data)", () => {
    const path = join(tempDir(), "seed3.db");
    Store.open(path).close();
    const op = new Database(path);
    op.run("INSERT INTO firewall_rules (type, value) VALUES ('ip', '203.0.113.7')");
    op.close();
    const store = Store.open(path);
    try {
      expect(seedIfEmpty(store, tomlV1(path))).toBe(false);
      expect(store.listListeners()).toEqual([]);
    } finally {
      store.close();
    }
  });

  test("a seed that the database refuses writes nothing at all", () => {
    const path = join(tempDir(), "seed4.db");
    Store.open(path).close();
    const op = new Database(path);
    op.run("CREATE TRIGGER forced BEFORE INSERT ON firewall_rules BEGIN SELECT RAISE(ABORT, 'forced'); END");
    op.close();
    const store = Store.open(path);
    try {
      expect(() => seedIfEmpty(store, tomlV1(path))).toThrow(/forced/);
      expect(store.listListeners()).toEqual([]);
      expect(store.listRoutes()).toEqual([]);
    } finally {
      store.close();
    }
  });
});
