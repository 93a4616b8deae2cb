import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError, StoreError } from "../../src/errors.ts";
import { setLogSink } from "../../src/obs/log.ts";
import { type ChangeKind, State } from "../../src/state/state.ts";
import { Store } from "../../src/store/store.ts";
import { cleanupCerts, makeSelfSigned, type CertFiles } from "../fixtures/certs.ts";
import { cleanupTempDirs, l4, tempDir } from "../store/helpers.ts";

let certA: CertFiles;
let certB: CertFiles;
beforeAll(() => {
  certA = makeSelfSigned(["a.test"]);
  certB = makeSelfSigned(["b.test"]);
});
afterAll(() => {
  cleanupTempDirs();
  cleanupCerts();
});

let logs: Record<string, unknown>[] = [];
let prevSink: ((l: string) => void) | undefined;
let path: string;
let store: Store;
let state: State;

beforeEach(() => {
  logs = [];
  prevSink = setLogSink((line) => logs.push(JSON.parse(line)));
  path = join(tempDir("mcp-state-"), "state.db");
  store = Store.open(path);
  store.insertListener({ addr: ":443", proxyProtocol: false, proxyProtocolTrusted: [], maxConnections: 0 });
  state = State.load(store);
});
afterEach(() => {
  store.close();
  if (prevSink) setLogSink(prevSink);
});

const l7 = (hostname: string, cert: CertFiles) => l4(hostname, "127.0.0.1:9000", { mode: "l7", tlsCert: cert.certPath, tlsKey: cert.keyPath });

describe("lookupRoute", () => {
  test("matches case-insensitively and ignores exactly one trailing dot", () => {
    state.addRoute(":443", l4("Mixed.Example.com", "127.0.0.1:1"));
    const l = state.listener(":443")!;
    expect(state.lookupRoute(l, "mixed.example.com")?.record.backend).toBe("127.0.0.1:1");
    expect(state.lookupRoute(l, "MIXED.EXAMPLE.COM")?.record.backend).toBe("127.0.0.1:1");
    expect(state.lookupRoute(l, "mixed.example.com.")?.record.backend).toBe("127.0.0.1:1");
    expect(state.lookupRoute(l, "mixed.example.com..")).toBeUndefined();
    expect(state.lookupRoute(l, "other.example.com")).toBeUndefined();
    expect(state.lookupRoute(l, "example.com")).toBeUndefined();
  });
});

describe("State.load", () => {
  test("builds memory from the database; an L7 route with an unloadable cert is kept with cert=null and a warning naming the host", () => {
    const lid = store.getListener(":443")!.id;
    store.upsertRoute(lid, l4("l4.test", "127.0.0.1:1"));
    store.upsertRoute(lid, l7("a.test", certA));
    store.upsertRoute(lid, l4("broken.test", "127.0.0.1:2", { mode: "l7", tlsCert: "/nonexistent/c.pem", tlsKey: "/nonexistent/k.pem" }));
    store.addFirewallRule("country", "KP");
    const s = State.load(store);
    const l = s.listener(":443")!;
    expect([...l.routes.keys()].sort()).toEqual(["a.test", "broken.test", "l4.test"]);
    expect(s.lookupRoute(l, "a.test")!.cert).not.toBeNull();
    expect(s.lookupRoute(l, "l4.test")!.cert).toBeNull();
    expect(s.lookupRoute(l, "broken.test")!.cert).toBeNull();
    const warn = logs.find((e) => e.event === "route.cert_load_failed");
    expect(warn).toMatchObject({ level: "warn", hostname: "broken.test", listener: ":443" });
    expect(String(warn!.reason)).toContain("/nonexistent/c.pem");
    expect(s.firewallRules().map((r) => r.value)).toEqual(["KP"]);
  });
});

describe("addRoute", () => {
  test("upserts write-through: database and memory agree, entry object is replaced, onChange fires after memory", () => {
    const seen: [ChangeKind, string | undefined][] = [];
    state.onChange((what) => seen.push([what, state.lookupRoute(state.listener(":443")!, "u.test")?.record.backend]));
    const first = state.addRoute(":443", l4("u.test", "127.0.0.1:1"));
    const l = state.listener(":443")!;
    const oldEntry = state.lookupRoute(l, "u.test")!;
    const second = state.addRoute(":443", l4("U.TEST.", "127.0.0.1:2"));
    expect(second.id).toBe(first.id);
    expect(second.hostname).toBe("u.test");
    expect(store.getRoute(l.record.id, "u.test")!.backend).toBe("127.0.0.1:2");
    const newEntry = state.lookupRoute(l, "u.test")!;
    expect(newEntry).not.toBe(oldEntry);
    expect(oldEntry.record.backend).toBe("127.0.0.1:1"); // a connection holding it is unaffected
    expect(newEntry.record.backend).toBe("127.0.0.1:2");
    expect(seen).toEqual([
      ["routes", "127.0.0.1:1"],
      ["routes", "127.0.0.1:2"],
    ]);
  });

  test("invalid input is InvalidArgumentError naming the field; nothing is written", () => {
    const bad = (over: Parameters<typeof l4>[2], field: string) => {
      let err: unknown;
      try {
        state.addRoute(":443", l4("v.test", "127.0.0.1:1", over));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field).toBe(field);
      expect((err as Error).message.startsWith(`${field}: `)).toBe(true);
      expect((err as Error).message.slice(field.length + 2).startsWith(field)).toBe(false); // field not repeated
    };
    bad({ backend: "no-port" }, "route.backend");
    bad({ hostname: "https://v.test" }, "route.hostname");
    bad({ mode: "l9" as "l4" }, "route.mode");
    bad({ backendProtocol: "h3" as "h2" }, "route.backend_protocol");
    bad({ l7Policies: [{ type: "block_user_agent", value: "" }] }, "route.l7_policies[0].value");
    expect(store.listRoutes()).toEqual([]);
    expect(state.listener(":443")!.routes.size).toBe(0);
  });

  test("a certificate path naming a FIFO or a device is refused at once, never read (it would hold the thread)", () => {
    const dir = mkdtempSync(join(tmpdir(), "mcp-fifo-"));
    try {
      const fifo = join(dir, "cert.pem");
      expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
      for (const [path, reason] of [[fifo, "not a regular file"], ["/dev/zero", "not a regular file"]] as const) {
        const t0 = Date.now();
        let err: unknown = null;
        try {
          state.addRoute(":443", l4("f.test", "127.0.0.1:1", { mode: "l7", tlsCert: path, tlsKey: certA.keyPath }));
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).field).toBe("route.tls_cert");
        expect((err as Error).message).toContain(reason);
        expect(Date.now() - t0).toBeLessThan(1000);
      }
      expect(store.listRoutes()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an unknown listener is NotFoundError", () => {
    expect(() => state.addRoute(":8443", l4("n.test", "127.0.0.1:1"))).toThrow(NotFoundError);
  });

  test("an L7 route is refused when its cert is unreadable or the key does not match, and accepted with a loaded cert otherwise", () => {
    const missing = l4("a.test", "127.0.0.1:1", { mode: "l7", tlsCert: "/nonexistent.pem", tlsKey: certA.keyPath });
    expect(() => state.addRoute(":443", missing)).toThrow(InvalidArgumentError);
    try {
      state.addRoute(":443", missing);
    } catch (e) {
      expect((e as InvalidArgumentError).field).toBe("route.tls_cert");
    }
    const mismatch = l4("a.test", "127.0.0.1:1", { mode: "l7", tlsCert: certA.certPath, tlsKey: certB.keyPath });
    expect(() => state.addRoute(":443", mismatch)).toThrow(/does not match/);
    expect(store.listRoutes()).toEqual([]);

    state.addRoute(":443", l7("a.test", certA));
    const e = state.lookupRoute(state.listener(":443")!, "a.test")!;
    expect(e.cert?.leaf.subject).toContain("a.test");
  });
});

describe("failed database writes leave memory unchanged and surface StoreError", () => {
  test("a trigger RAISE(ABORT) installed from a second connection", () => {
    state.addRoute(":443", l4("t.test", "127.0.0.1:1"));
    state.addFirewallRule("ip", "192.0.2.1");
    const other = new Database(path);
    other.run("CREATE TRIGGER r BEFORE UPDATE ON routes BEGIN SELECT RAISE(ABORT, 'forced'); END");
    other.run("CREATE TRIGGER f BEFORE INSERT ON firewall_rules BEGIN SELECT RAISE(ABORT, 'forced'); END");
    other.close();
    let changes = 0;
    state.onChange(() => changes++);
    const l = state.listener(":443")!;
    const before = state.lookupRoute(l, "t.test");
    expect(() => state.addRoute(":443", l4("t.test", "127.0.0.1:2"))).toThrow(StoreError);
    expect(state.lookupRoute(l, "t.test")).toBe(before);
    expect(state.lookupRoute(l, "t.test")!.record.backend).toBe("127.0.0.1:1");
    const rules = state.firewallRules();
    expect(() => state.addFirewallRule("ip", "192.0.2.2")).toThrow(/forced/);
    expect(state.firewallRules()).toBe(rules);
    expect(changes).toBe(0);
  });

  test("removeFirewallRule is one transaction: a delete failing part-way leaves database and memory unchanged", () => {
    // Two stored forms of one rule (a hand-inserted raw one beside the canonical one): both are deleted together.
    state.addFirewallRule("ip", "192.0.2.7");
    const other = new Database(path);
    other.run("INSERT INTO firewall_rules (type, value) VALUES ('ip', '::ffff:192.0.2.7')");
    other.run("CREATE TRIGGER d BEFORE DELETE ON firewall_rules WHEN old.value = '::ffff:192.0.2.7' BEGIN SELECT RAISE(ABORT, 'forced'); END");
    other.close();
    const s = State.load(store);
    let changes = 0;
    s.onChange(() => changes++);
    const rows = () => store.listFirewallRules().map((r) => r.value);
    expect(rows()).toEqual(["192.0.2.7", "::ffff:192.0.2.7"]);
    const rules = s.firewallRules();
    // The canonical row is deleted first, then the raw one fails: everything rolls back.
    expect(() => s.removeFirewallRule("ip", "::ffff:192.0.2.7")).toThrow(StoreError);
    expect(rows()).toEqual(["192.0.2.7", "::ffff:192.0.2.7"]);
    expect(s.firewallRules()).toBe(rules);
    expect(changes).toBe(0);
  });

  test("a read-only database connection", () => {
    state.addRoute(":443", l4("ro.test", "127.0.0.1:1"));
    const ro = new Store(new Database(path, { readonly: true }));
    try {
      const s = State.load(ro);
      const l = s.listener(":443")!;
      expect(() => s.addRoute(":443", l4("new.test", "127.0.0.1:1"))).toThrow(StoreError);
      expect(() => s.removeRoute(":443", "ro.test")).toThrow(StoreError);
      expect(() => s.setMaxConnections(":443", 7)).toThrow(StoreError);
      expect(() => s.addPolicy(":443", "ro.test", "block_user_agent", "x")).toThrow(StoreError);
      expect(l.routes.has("new.test")).toBe(false);
      expect(l.routes.has("ro.test")).toBe(true);
      expect(l.record.maxConnections).toBe(0);
      expect(s.listPolicies(":443", "ro.test")).toEqual([]);
    } finally {
      ro.close();
    }
  });

  test("a constraint violation: the listener row was deleted by hand while running (foreign key)", () => {
    const other = new Database(path);
    other.run("PRAGMA foreign_keys=ON");
    other.run("DELETE FROM listeners WHERE addr = ':443'");
    other.close();
    expect(() => state.addRoute(":443", l4("fk.test", "127.0.0.1:1"))).toThrow(StoreError);
    expect(() => state.addRoute(":443", l4("fk.test", "127.0.0.1:1"))).toThrow(/FOREIGN KEY/);
    expect(state.listener(":443")!.routes.size).toBe(0);
  });
});

describe("removeRoute", () => {
  test("removes from database and memory; absent route or listener is NotFoundError", () => {
    state.addRoute(":443", l4("gone.test", "127.0.0.1:1"));
    state.removeRoute(":443", "GONE.test.");
    expect(state.lookupRoute(state.listener(":443")!, "gone.test")).toBeUndefined();
    expect(store.listRoutes()).toEqual([]);
    expect(() => state.removeRoute(":443", "gone.test")).toThrow(NotFoundError);
    expect(() => state.removeRoute(":1", "gone.test")).toThrow(NotFoundError);
  });
});

describe("firewall rules", () => {
  test("validated per type, canonicalised, idempotent; remove of an absent rule is NotFoundError", () => {
    const kinds: ChangeKind[] = [];
    state.onChange((k) => kinds.push(k));
    expect(state.addFirewallRule("ip", "::FFFF:192.0.2.1").value).toBe("192.0.2.1");
    expect(state.addFirewallRule("ip", "192.0.2.1").value).toBe("192.0.2.1"); // same rule
    expect(state.addFirewallRule("cidr", "10.1.2.3/8").value).toBe("10.0.0.0/8");
    expect(state.addFirewallRule("country", "kp").value).toBe("KP");
    expect(state.firewallRules().map((r) => `${r.type}:${r.value}`)).toEqual(["ip:192.0.2.1", "cidr:10.0.0.0/8", "country:KP"]);
    expect(store.listFirewallRules()).toEqual(state.firewallRules());
    expect(kinds).toEqual(["firewall", "firewall", "firewall"]);

    expect(() => state.addFirewallRule("ip", "300.1.1.1")).toThrow(InvalidArgumentError);
    expect(() => state.addFirewallRule("cidr", "10.0.0.0/33")).toThrow(InvalidArgumentError);
    expect(() => state.addFirewallRule("country", "KPX")).toThrow(InvalidArgumentError);
    expect(() => state.addFirewallRule("asn" as "ip", "1")).toThrow(InvalidArgumentError);

    state.removeFirewallRule("country", "kp");
    expect(state.firewallRules().map((r) => r.value)).toEqual(["192.0.2.1", "10.0.0.0/8"]);
    expect(() => state.removeFirewallRule("country", "KP")).toThrow(NotFoundError);
  });
});

describe("setMaxConnections", () => {
  test("replaces the record but keeps the ListenerState (and its counter slot)", () => {
    const l = state.listener(":443")!;
    const slot = l.slot;
    const rec = state.setMaxConnections(":443", 10);
    expect(rec.maxConnections).toBe(10);
    expect(state.listener(":443")).toBe(l);
    expect(l.slot).toBe(slot);
    expect(l.record.maxConnections).toBe(10);
    expect(store.getListener(":443")!.maxConnections).toBe(10);
    expect(() => state.setMaxConnections(":443", -1)).toThrow(InvalidArgumentError);
    expect(() => state.setMaxConnections(":443", 1.5)).toThrow(InvalidArgumentError);
    expect(() => state.setMaxConnections(":9", 1)).toThrow(NotFoundError);
  });
});

describe("policies", () => {
  test("add/list/remove in order; duplicate refused; entry replaced, not mutated", () => {
    state.addRoute(":443", l7("a.test", certA));
    const l = state.listener(":443")!;
    const e0 = state.lookupRoute(l, "a.test")!;
    state.addPolicy(":443", "A.test", "block_user_agent", "zgrab");
    state.addPolicy(":443", "a.test", "require_header", "X-Token");
    expect(state.listPolicies(":443", "a.test").map((p) => p.value)).toEqual(["zgrab", "X-Token"]);
    expect(e0.record.l7Policies).toEqual([]);
    expect(state.lookupRoute(l, "a.test")!.cert).toBe(e0.cert);
    expect(() => state.addPolicy(":443", "a.test", "block_user_agent", "zgrab")).toThrow(InvalidArgumentError);
    expect(() => state.addPolicy(":443", "a.test", "require_header", "bad header")).toThrow(InvalidArgumentError);
    expect(() => state.addPolicy(":443", "a.test", "block_user_agent", " ")).toThrow(InvalidArgumentError);
    expect(() => state.addPolicy(":443", "none.test", "block_user_agent", "x")).toThrow(NotFoundError);
    state.removePolicy(":443", "a.test", "block_user_agent", "zgrab");
    expect(state.listPolicies(":443", "a.test").map((p) => p.value)).toEqual(["X-Token"]);
    expect(store.getRoute(l.record.id, "a.test")!.l7Policies.map((p) => p.value)).toEqual(["X-Token"]);
    expect(() => state.removePolicy(":443", "a.test", "block_user_agent", "zgrab")).toThrow(NotFoundError);
  });
});

describe("reloadCertificates", () => {
  test("picks up a new cert from disk; a bad file keeps the old CertPair and logs why", () => {
    const dir = tempDir("mcp-reload-");
    const cert = join(dir, "r.pem");
    const key = join(dir, "r.key");
    copyFileSync(certA.certPath, cert);
    copyFileSync(certA.keyPath, key);
    state.addRoute(":443", l4("a.test", "127.0.0.1:1", { mode: "l7", tlsCert: cert, tlsKey: key }));
    state.addRoute(":443", l4("plain.test", "127.0.0.1:1"));
    const l = state.listener(":443")!;
    const first = state.lookupRoute(l, "a.test")!.cert!;

    copyFileSync(certB.certPath, cert);
    copyFileSync(certB.keyPath, key);
    expect(state.reloadCertificates()).toEqual({ reloaded: 1, failed: 0 });
    const second = state.lookupRoute(l, "a.test")!.cert!;
    expect(second).not.toBe(first);
    expect(second.leaf.subject).toContain("b.test");

    writeFileSync(cert, "not a certificate");
    expect(state.reloadCertificates()).toEqual({ reloaded: 0, failed: 1 });
    expect(state.lookupRoute(l, "a.test")!.cert).toBe(second);
    const warn = logs.find((e) => e.event === "cert.reload_failed");
    expect(warn).toMatchObject({ level: "warn", hostname: "a.test", listener: ":443" });
  });
});
