import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError, StoreError } from "../../src/errors.ts";
import { Store } from "../../src/store/store.ts";
import type { RouteInput } from "../../src/records.ts";
import { cleanupTempDirs, l4, tempDir } from "./helpers.ts";

afterAll(cleanupTempDirs);

let path: string;
let store: Store;
let lid: number;
beforeEach(() => {
  path = join(tempDir(), "store.db");
  store = Store.open(path);
  lid = store.insertListener({ addr: ":443", proxyProtocol: false, proxyProtocolTrusted: [], maxConnections: 0 }).id;
});
afterEach(() => store.close());

describe("listeners", () => {
  test("insert, list with trusted CIDRs, set max_connections", () => {
    const b = store.insertListener({ addr: "127.0.0.1:8443", proxyProtocol: true, proxyProtocolTrusted: ["10.0.0.0/8", "::1/128"], maxConnections: 5 });
    expect(store.listListeners().map((l) => l.addr)).toEqual([":443", "127.0.0.1:8443"]);
    expect(store.getListener("127.0.0.1:8443")).toEqual(b);
    expect(b).toMatchObject({ proxyProtocol: true, proxyProtocolTrusted: ["10.0.0.0/8", "::1/128"], maxConnections: 5 });
    expect(store.setMaxConnections(b.id, 9).maxConnections).toBe(9);
    expect(store.getListener("127.0.0.1:8443")!.maxConnections).toBe(9);
    expect(store.setProxyTrusted(b.id, ["192.0.2.0/24"]).proxyProtocolTrusted).toEqual(["192.0.2.0/24"]);
    expect(() => store.setMaxConnections(999, 1)).toThrow(NotFoundError);
  });

  test("a duplicate listener addr is a StoreError", () => {
    expect(() => store.insertListener({ addr: ":443", proxyProtocol: false, proxyProtocolTrusted: [], maxConnections: 0 })).toThrow(StoreError);
  });
});

describe("routes", () => {
  test("upsert on (listener, hostname) updates in place: same id, new backend", () => {
    const a = store.upsertRoute(lid, l4("A.Example.com", "127.0.0.1:1"));
    expect(a.hostname).toBe("a.example.com"); // stored lower-case
    const b = store.upsertRoute(lid, l4("a.example.com", "127.0.0.1:2"));
    expect(b.id).toBe(a.id);
    expect(b.backend).toBe("127.0.0.1:2");
    expect(store.listRoutes(lid)).toHaveLength(1);
    expect(store.getRoute(lid, "A.EXAMPLE.COM")!.backend).toBe("127.0.0.1:2");
  });

  test("upsert with policies replaces them atomically; without policies keeps them", () => {
    const r = store.upsertRoute(lid, l4("p.test", "127.0.0.1:1", { l7Policies: [{ type: "block_user_agent", value: "zgrab" }] }));
    expect(r.l7Policies.map((p) => p.value)).toEqual(["zgrab"]);
    const kept = store.upsertRoute(lid, l4("p.test", "127.0.0.1:2"));
    expect(kept.l7Policies.map((p) => p.value)).toEqual(["zgrab"]);
    const replaced = store.upsertRoute(lid, l4("p.test", "127.0.0.1:3", { l7Policies: [{ type: "require_header", value: "X-Auth" }] }));
    expect(replaced.l7Policies.map((p) => `${p.type}=${p.value}`)).toEqual(["require_header=X-Auth"]);
    // A failing policy insert (duplicate in the list) rolls back the route update too.
    const dup: RouteInput = l4("p.test", "127.0.0.1:4", {
      l7Policies: [
        { type: "block_user_agent", value: "x" },
        { type: "block_user_agent", value: "x" },
      ],
    });
    expect(() => store.upsertRoute(lid, dup)).toThrow(StoreError);
    const after = store.getRoute(lid, "p.test")!;
    expect(after.backend).toBe("127.0.0.1:3");
    expect(after.l7Policies.map((p) => p.value)).toEqual(["X-Auth"]);
  });

  test("a CHECK violation (mode 'l9') surfaces as StoreError and writes nothing", () => {
    const bad = l4("bad.test", "127.0.0.1:1", { mode: "l9" as unknown as RouteInput["mode"] }); // deliberately invalid
    expect(() => store.upsertRoute(lid, bad)).toThrow(StoreError);
    expect(() => store.upsertRoute(lid, bad)).toThrow(/CHECK constraint failed/);
    expect(store.getRoute(lid, "bad.test")).toBeNull();
  });

  test("remove reports whether a row was deleted", () => {
    store.upsertRoute(lid, l4("r.test", "127.0.0.1:1"));
    expect(store.removeRoute(lid, "R.test")).toBe(true);
    expect(store.removeRoute(lid, "r.test")).toBe(false);
  });

  test("deleting a listener cascades to its routes and their policies", () => {
    const r = store.upsertRoute(lid, l4("c.test", "127.0.0.1:1", { l7Policies: [{ type: "block_user_agent", value: "bot" }] }));
    store.setProxyTrusted(lid, ["10.0.0.0/8"]);
    store.db.run("DELETE FROM listeners WHERE id = ?", [lid]);
    const count = (t: string) => store.db.query<{ n: number }, []>(`SELECT count(*) AS n FROM ${t}`).get()!.n;
    expect(count("routes")).toBe(0);
    expect(count("l7_policies")).toBe(0);
    expect(count("listener_proxy_trusted")).toBe(0);
    expect(store.listPolicies(r.id)).toEqual([]);
  });
});

describe("firewall rules", () => {
  test("add is idempotent (returns the existing rule), remove reports presence", () => {
    const a = store.addFirewallRule("ip", "192.0.2.1");
    const again = store.addFirewallRule("ip", "192.0.2.1");
    expect(again).toEqual(a);
    store.addFirewallRule("country", "KP");
    expect(store.listFirewallRules()).toEqual([a, { id: expect.any(Number), type: "country", value: "KP" }]);
    expect(store.removeFirewallRule("ip", "192.0.2.1")).toBe(true);
    expect(store.removeFirewallRule("ip", "192.0.2.1")).toBe(false);
  });
});

describe("l7 policies", () => {
  test("policies list in insertion order; a duplicate is refused with a clear error", () => {
    const r = store.upsertRoute(lid, l4("pol.test", "127.0.0.1:1", { mode: "l7" }));
    store.addPolicy(r.id, "block_user_agent", "zgrab");
    store.addPolicy(r.id, "require_header", "X-Token");
    expect(store.listPolicies(r.id).map((p) => p.value)).toEqual(["zgrab", "X-Token"]);
    expect(() => store.addPolicy(r.id, "block_user_agent", "zgrab")).toThrow(InvalidArgumentError);
    expect(() => store.addPolicy(r.id, "block_user_agent", "zgrab")).toThrow(/already has a block_user_agent policy with value "zgrab"/);
    expect(store.removePolicy(r.id, "block_user_agent", "zgrab")).toBe(true);
    expect(store.removePolicy(r.id, "block_user_agent", "zgrab")).toBe(false);
    expect(store.getRoute(lid, "pol.test")!.l7Policies.map((p) => p.value)).toEqual(["X-Token"]);
  });

  test("a policy for a route id that does not exist is a StoreError (foreign key)", () => {
    expect(() => store.addPolicy(424242, "block_user_agent", "x")).toThrow(StoreError);
  });
});

describe("database failures become StoreError", () => {
  test("a read-only connection's write fails with StoreError", () => {
    const ro = new Store(new Database(path, { readonly: true }));
    try {
      expect(() => ro.addFirewallRule("ip", "192.0.2.9")).toThrow(StoreError);
      expect(() => ro.addFirewallRule("ip", "192.0.2.9")).toThrow(/readonly/);
    } finally {
      ro.close();
    }
    expect(store.listFirewallRules()).toEqual([]);
  });

  test("a trigger installed by another connection that aborts the write surfaces as StoreError", () => {
    const other = new Database(path);
    other.run("CREATE TRIGGER forced BEFORE INSERT ON routes BEGIN SELECT RAISE(ABORT, 'forced'); END");
    other.close();
    expect(() => store.upsertRoute(lid, l4("t.test", "127.0.0.1:1"))).toThrow(StoreError);
    expect(() => store.upsertRoute(lid, l4("t.test", "127.0.0.1:1"))).toThrow(/forced/);
    expect(store.listRoutes()).toEqual([]);
  });
});
