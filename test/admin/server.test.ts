/**
 * The admin API over a real State, a real SQLite file and a real grpc-js client on a unix
 * socket (SPEC §7): every RPC's success path, INVALID_ARGUMENT naming the field, NOT_FOUND,
 * INTERNAL on a database failure with memory unchanged, and health.
 */
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from "../../src/gen/grpc/health/v1/health.ts";
import {
  BackendProtocol,
  FirewallRuleType,
  L7PolicyType,
  Route,
  RouteMode,
} from "../../src/gen/mc_proxy/v1/admin.ts";
import { ChannelCredentials } from "@grpc/grpc-js";
import { cleanupCerts, makeCA, makeLeaf } from "../fixtures/certs.ts";
import { expectGrpcError, STARTED_AT, startHarness, type Harness } from "./harness.ts";

const route = (p: Partial<Route>): Route => Route.fromPartial(p);
const BUA = L7PolicyType.L7_POLICY_TYPE_BLOCK_USER_AGENT;
const REQ = L7PolicyType.L7_POLICY_TYPE_REQUIRE_HEADER;

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});
afterAll(cleanupCerts);

describe("listeners and status", () => {
  test("ListListeners returns every listener with its settings and route count", async () => {
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:1000" }));
    const ls = await h.client.listListeners();
    expect(ls).toEqual([
      { addr: ":443", proxyProtocol: false, proxyProtocolTrusted: [], maxConnections: 0, routeCount: 1 },
      { addr: "127.0.0.1:8443", proxyProtocol: true, proxyProtocolTrusted: ["10.0.0.0/8"], maxConnections: 100, routeCount: 0 },
    ]);
  });

  test("GetStatus reports version, start time, totals and per-listener counters", async () => {
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:1000" }));
    const st = await h.client.getStatus();
    expect(st.version).toBe("9.9.9-test");
    expect(st.startedAt).toEqual({ seconds: Math.floor(STARTED_AT.getTime() / 1000), nanos: 678_000_000 });
    expect(st.totalConnections).toBe(42);
    expect(st.listeners).toEqual([
      { addr: ":443", routeCount: 1, activeConnections: 3, maxConnections: 0, proxyProtocol: false, proxyProtocolTrusted: [] },
      { addr: "127.0.0.1:8443", routeCount: 0, activeConnections: 0, maxConnections: 100, proxyProtocol: true, proxyProtocolTrusted: ["10.0.0.0/8"] },
    ]);
  });

  test("SetListenerMaxConnections writes through and shows in status", async () => {
    const l = await h.client.setListenerMaxConnections(":443", 7);
    expect(l.maxConnections).toBe(7);
    expect((await h.client.getStatus()).listeners[0]!.maxConnections).toBe(7);
    const row = h.store.db.query("SELECT max_connections FROM listeners WHERE addr = ':443'").get() as { max_connections: number };
    expect(row.max_connections).toBe(7);
  });

  test("SetListenerMaxConnections refuses bad input and unknown listeners", async () => {
    await expectGrpcError(h.client.setListenerMaxConnections(":443", -1), status.INVALID_ARGUMENT, "max_connections");
    await expectGrpcError(h.client.setListenerMaxConnections("", 5), status.INVALID_ARGUMENT, "listener_addr");
    await expectGrpcError(h.client.setListenerMaxConnections(":9999", 5), status.NOT_FOUND, ":9999");
  });
});

describe("routes", () => {
  test("AddRoute stores an L4 route with defaults and ListRoutes returns it", async () => {
    const got = await h.client.addRoute(":443", route({ hostname: "A.Example.COM", backend: "127.0.0.1:1000" }));
    expect(got.hostname).toBe("a.example.com");
    expect(got.mode).toBe(RouteMode.ROUTE_MODE_L4);
    expect(got.backendProtocol).toBe(BackendProtocol.BACKEND_PROTOCOL_AUTO);
    expect(await h.client.listRoutes(":443")).toEqual([got]);
    const row = h.store.db.query("SELECT backend, mode FROM routes WHERE hostname = 'a.example.com'").get();
    expect(row).toEqual({ backend: "127.0.0.1:1000", mode: "l4" });
  });

  test("AddRoute twice for one hostname keeps one route with the second backend", async () => {
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:1000" }));
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:2000", sendProxyProtocol: true }));
    const routes = await h.client.listRoutes(":443");
    expect(routes.length).toBe(1);
    expect(routes[0]!.backend).toBe("127.0.0.1:2000");
    expect(routes[0]!.sendProxyProtocol).toBe(true);
  });

  test("AddRoute stores an L7 route with its certificate and policies", async () => {
    const ca = makeCA("Admin Test CA");
    const leaf = makeLeaf(ca, ["app.example.com"]);
    const got = await h.client.addRoute(
      ":443",
      route({
        hostname: "app.example.com",
        backend: "127.0.0.1:18080",
        mode: RouteMode.ROUTE_MODE_L7,
        tlsCert: leaf.fullchainPath,
        tlsKey: leaf.keyPath,
        backendProtocol: BackendProtocol.BACKEND_PROTOCOL_H2,
        l7Policies: [
          { type: BUA, value: "zgrab" },
          { type: REQ, value: "x-token" },
        ],
      }),
    );
    expect(got.mode).toBe(RouteMode.ROUTE_MODE_L7);
    expect(got.backendProtocol).toBe(BackendProtocol.BACKEND_PROTOCOL_H2);
    expect(got.l7Policies).toEqual([
      { type: BUA, value: "zgrab" },
      { type: REQ, value: "x-token" },
    ]);
    expect(h.state.listener(":443")!.routes.get("app.example.com")!.cert).not.toBeNull();
    // A redeploy without policies keeps them (empty repeated field = "not given").
    await h.client.addRoute(":443", route({ ...got, backend: "127.0.0.1:18081", l7Policies: [] }));
    expect(await h.client.listL7Policies(":443", "app.example.com")).toEqual(got.l7Policies);
  });

  test("AddRoute refuses an L7 route whose certificate is unreadable or does not match its key", async () => {
    const ca = makeCA("Admin Test CA");
    const a = makeLeaf(ca, ["a.example.com"]);
    const b = makeLeaf(ca, ["b.example.com"]);
    const l7 = { hostname: "a.example.com", backend: "127.0.0.1:1", mode: RouteMode.ROUTE_MODE_L7 };
    await expectGrpcError(
      h.client.addRoute(":443", route({ ...l7, tlsCert: join(h.dir, "missing.pem"), tlsKey: a.keyPath })),
      status.INVALID_ARGUMENT,
      "route.tls_cert",
    );
    await expectGrpcError(h.client.addRoute(":443", route({ ...l7, tlsCert: a.fullchainPath, tlsKey: b.keyPath })), status.INVALID_ARGUMENT, "route.tls");
    const garbage = join(h.dir, "garbage.pem");
    writeFileSync(garbage, "not a certificate\n");
    await expectGrpcError(h.client.addRoute(":443", route({ ...l7, tlsCert: garbage, tlsKey: a.keyPath })), status.INVALID_ARGUMENT, "route.tls_cert");
    // Relative paths would resolve against the server's working directory now, another after a restart.
    await expectGrpcError(h.client.addRoute(":443", route({ ...l7, tlsCert: "certs/a.pem", tlsKey: a.keyPath })), status.INVALID_ARGUMENT, "route.tls_cert", "absolute");
    await expectGrpcError(h.client.addRoute(":443", route({ ...l7, tlsCert: a.fullchainPath, tlsKey: "./a.key" })), status.INVALID_ARGUMENT, "route.tls_key", "absolute");
    expect(await h.client.listRoutes(":443")).toEqual([]);
  });

  test("AddRoute names the offending field for invalid input", async () => {
    const ok = { hostname: "a.example.com", backend: "127.0.0.1:1000" };
    await expectGrpcError(h.client.addRoute("", route(ok)), status.INVALID_ARGUMENT, "listener_addr");
    await expectGrpcError(h.client.addRoute(":443", route({ ...ok, backend: "nope" })), status.INVALID_ARGUMENT, "route.backend");
    await expectGrpcError(h.client.addRoute(":443", route({ ...ok, hostname: "bad host!" })), status.INVALID_ARGUMENT, "route.hostname");
    await expectGrpcError(h.client.addRoute(":443", route({ ...ok, mode: 9 as RouteMode })), status.INVALID_ARGUMENT, "route.mode");
    await expectGrpcError(
      h.client.addRoute(":443", route({ ...ok, backendProtocol: 7 as BackendProtocol })),
      status.INVALID_ARGUMENT,
      "route.backend_protocol",
    );
    await expectGrpcError(
      h.client.addRoute(":443", route({ ...ok, l7Policies: [{ type: L7PolicyType.L7_POLICY_TYPE_UNSPECIFIED, value: "x" }] })),
      status.INVALID_ARGUMENT,
      "route.l7_policies[0].type",
    );
    await expectGrpcError(
      h.client.addRoute(":443", route({ ...ok, mode: RouteMode.ROUTE_MODE_L7 })),
      status.INVALID_ARGUMENT,
      "route.tls_cert",
    );
    // The raw client can omit the route message entirely.
    await expectGrpcError(
      new Promise((res, rej) => h.client.raw.addRoute({ listenerAddr: ":443", route: undefined }, (e, r) => (e ? rej(e) : res(r)))),
      status.INVALID_ARGUMENT,
      "route: required",
    );
    expect(await h.client.listRoutes(":443")).toEqual([]);
  });

  test("routes on an unknown listener are NOT_FOUND", async () => {
    await expectGrpcError(h.client.listRoutes(":9999"), status.NOT_FOUND, ":9999");
    await expectGrpcError(h.client.addRoute(":9999", route({ hostname: "a.example.com", backend: "127.0.0.1:1" })), status.NOT_FOUND);
    await expectGrpcError(h.client.listRoutes(""), status.INVALID_ARGUMENT, "listener_addr");
  });

  test("RemoveRoute deletes the route; a missing one is NOT_FOUND", async () => {
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:1000" }));
    await h.client.removeRoute(":443", "a.example.com");
    expect(await h.client.listRoutes(":443")).toEqual([]);
    expect(h.store.db.query("SELECT count(*) AS n FROM routes").get()).toEqual({ n: 0 });
    await expectGrpcError(h.client.removeRoute(":443", "a.example.com"), status.NOT_FOUND, "a.example.com");
    await expectGrpcError(h.client.removeRoute(":9999", "a.example.com"), status.NOT_FOUND);
    await expectGrpcError(h.client.removeRoute(":443", ""), status.INVALID_ARGUMENT, "hostname");
  });

  test("a database failure is INTERNAL and leaves memory unchanged", async () => {
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:1000" }));
    // A second connection to the same file installs triggers that make every write fail.
    const other = new Database(h.dbPath);
    other.run("CREATE TRIGGER fail_ins BEFORE INSERT ON routes BEGIN SELECT RAISE(ABORT, 'forced'); END;");
    other.run("CREATE TRIGGER fail_upd BEFORE UPDATE ON routes BEGIN SELECT RAISE(ABORT, 'forced'); END;");
    other.run("CREATE TRIGGER fail_fw BEFORE INSERT ON firewall_rules BEGIN SELECT RAISE(ABORT, 'forced'); END;");
    other.close();
    const msg = await expectGrpcError(h.client.addRoute(":443", route({ hostname: "b.example.com", backend: "127.0.0.1:2000" })), status.INTERNAL);
    expect(msg).toContain("database:");
    expect(msg).not.toContain("database: database:");
    await expectGrpcError(h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:3000" })), status.INTERNAL);
    const routes = await h.client.listRoutes(":443");
    expect(routes.map((r) => [r.hostname, r.backend])).toEqual([["a.example.com", "127.0.0.1:1000"]]);
    await expectGrpcError(
      h.client.addFirewallRule({ type: FirewallRuleType.FIREWALL_RULE_TYPE_IP, value: "192.0.2.1" }),
      status.INTERNAL,
    );
    expect(await h.client.getFirewallRules()).toEqual([]);
    expect(h.rpcs).toContainEqual(["AddRoute", "INTERNAL"]);
    expect(h.logs.some((l) => l.includes('"event":"admin.rpc"') && l.includes('"code":"INTERNAL"'))).toBe(true);
  });

  test("each RPC is logged once and reported to the onRpc hook", async () => {
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:1000" }));
    await expectGrpcError(h.client.removeRoute(":443", "zzz.example.com"), status.NOT_FOUND);
    expect(h.rpcs).toEqual([
      ["AddRoute", "OK"],
      ["RemoveRoute", "NOT_FOUND"],
    ]);
    const lines = h.logs.filter((l) => l.includes('"event":"admin.rpc"')).map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.method, l.code])).toEqual([
      ["AddRoute", "OK"],
      ["RemoveRoute", "NOT_FOUND"],
    ]);
  });
});

describe("firewall rules", () => {
  const IP = FirewallRuleType.FIREWALL_RULE_TYPE_IP;
  const CIDR = FirewallRuleType.FIREWALL_RULE_TYPE_CIDR;
  const COUNTRY = FirewallRuleType.FIREWALL_RULE_TYPE_COUNTRY;

  test("AddFirewallRule, GetFirewallRules and RemoveFirewallRule write through", async () => {
    await h.client.addFirewallRule({ type: IP, value: "192.0.2.1" });
    await h.client.addFirewallRule({ type: CIDR, value: "198.51.100.0/24" });
    expect(await h.client.addFirewallRule({ type: COUNTRY, value: "kp" })).toEqual({ type: COUNTRY, value: "KP" });
    expect(await h.client.getFirewallRules()).toEqual([
      { type: IP, value: "192.0.2.1" },
      { type: CIDR, value: "198.51.100.0/24" },
      { type: COUNTRY, value: "KP" },
    ]);
    await h.client.removeFirewallRule({ type: IP, value: "192.0.2.1" });
    expect((await h.client.getFirewallRules()).length).toBe(2);
    expect(h.store.db.query("SELECT count(*) AS n FROM firewall_rules").get()).toEqual({ n: 2 });
  });

  test("firewall RPCs name the bad field; removing a missing rule is NOT_FOUND", async () => {
    await expectGrpcError(h.client.addFirewallRule({ type: FirewallRuleType.FIREWALL_RULE_TYPE_UNSPECIFIED, value: "1.2.3.4" }), status.INVALID_ARGUMENT, "rule.type");
    await expectGrpcError(h.client.addFirewallRule({ type: 42 as FirewallRuleType, value: "1.2.3.4" }), status.INVALID_ARGUMENT, "rule.type");
    await expectGrpcError(h.client.addFirewallRule({ type: IP, value: "300.1.1.1" }), status.INVALID_ARGUMENT, "rule.value");
    await expectGrpcError(h.client.addFirewallRule({ type: IP, value: "" }), status.INVALID_ARGUMENT, "rule.value");
    await expectGrpcError(h.client.addFirewallRule({ type: COUNTRY, value: "KPX" }), status.INVALID_ARGUMENT, "rule.value");
    await expectGrpcError(h.client.removeFirewallRule({ type: IP, value: "192.0.2.99" }), status.NOT_FOUND, "192.0.2.99");
    await expectGrpcError(
      new Promise((res, rej) => h.client.raw.addFirewallRule({ rule: undefined }, (e, r) => (e ? rej(e) : res(r)))),
      status.INVALID_ARGUMENT,
      "rule: required",
    );
    expect(await h.client.getFirewallRules()).toEqual([]);
  });

  test("without [firewall] geoip_db a country rule is FAILED_PRECONDITION naming the cause (it could never match), and nothing is stored", async () => {
    const h2 = await startHarness(undefined, { geoipConfigured: false });
    try {
      await expectGrpcError(h2.client.addFirewallRule({ type: COUNTRY, value: "KP" }), status.FAILED_PRECONDITION, "rule.type", "geoip_db");
      expect(await h2.client.getFirewallRules()).toEqual([]);
      expect(h2.store.db.query("SELECT count(*) AS n FROM firewall_rules").get()).toEqual({ n: 0 });
      // Other rule types are unaffected.
      await h2.client.addFirewallRule({ type: IP, value: "192.0.2.7" });
      expect((await h2.client.getFirewallRules()).length).toBe(1);
    } finally {
      await h2.close();
    }
  });
});

describe("L7 policies", () => {
  beforeEach(async () => {
    await h.client.addRoute(":443", route({ hostname: "a.example.com", backend: "127.0.0.1:1000" }));
  });

  test("AddL7Policy, ListL7Policies and RemoveL7Policy keep evaluation order", async () => {
    expect(await h.client.addL7Policy(":443", "a.example.com", { type: BUA, value: "zgrab" })).toEqual({ type: BUA, value: "zgrab" });
    await h.client.addL7Policy(":443", "a.example.com", { type: REQ, value: "x-token" });
    expect(await h.client.listL7Policies(":443", "a.example.com")).toEqual([
      { type: BUA, value: "zgrab" },
      { type: REQ, value: "x-token" },
    ]);
    expect((await h.client.listRoutes(":443"))[0]!.l7Policies.length).toBe(2);
    await h.client.removeL7Policy(":443", "a.example.com", { type: BUA, value: "zgrab" });
    expect(await h.client.listL7Policies(":443", "a.example.com")).toEqual([{ type: REQ, value: "x-token" }]);
    expect(h.store.db.query("SELECT count(*) AS n FROM l7_policies").get()).toEqual({ n: 1 });
  });

  test("policy RPCs name the bad field and report missing things as NOT_FOUND", async () => {
    await expectGrpcError(h.client.addL7Policy(":443", "a.example.com", { type: 0 as L7PolicyType, value: "x" }), status.INVALID_ARGUMENT, "policy.type");
    await expectGrpcError(h.client.addL7Policy(":443", "a.example.com", { type: BUA, value: "" }), status.INVALID_ARGUMENT, "policy.value");
    // L7_POLICY_VALUE_MAX_CHARS: 1024 characters pass, 100 000 do not (nothing is stored).
    await expectGrpcError(h.client.addL7Policy(":443", "a.example.com", { type: BUA, value: "x".repeat(100_000) }), status.INVALID_ARGUMENT, "policy.value");
    await h.client.addL7Policy(":443", "a.example.com", { type: BUA, value: "y".repeat(1024) });
    await h.client.removeL7Policy(":443", "a.example.com", { type: BUA, value: "y".repeat(1024) });
    await expectGrpcError(h.client.addL7Policy(":443", "", { type: BUA, value: "x" }), status.INVALID_ARGUMENT, "hostname");
    await expectGrpcError(h.client.addL7Policy("", "a.example.com", { type: BUA, value: "x" }), status.INVALID_ARGUMENT, "listener_addr");
    await expectGrpcError(h.client.addL7Policy(":443", "nope.example.com", { type: BUA, value: "x" }), status.NOT_FOUND, "nope.example.com");
    await expectGrpcError(h.client.listL7Policies(":9999", "a.example.com"), status.NOT_FOUND);
    await expectGrpcError(h.client.removeL7Policy(":443", "a.example.com", { type: BUA, value: "absent" }), status.NOT_FOUND, "absent");
  });
});

describe("health", () => {
  test("Check reports SERVING, then NOT_SERVING after setServing(false); unknown services are NOT_FOUND", async () => {
    expect(await h.client.checkHealth("")).toBe(Serving.SERVING);
    expect(await h.client.checkHealth("mc_proxy.v1.ProxyAdminService")).toBe(Serving.SERVING);
    h.server.setServing(false);
    expect(await h.client.checkHealth("")).toBe(Serving.NOT_SERVING);
    expect(await h.client.checkHealth("mc_proxy.v1.ProxyAdminService")).toBe(Serving.NOT_SERVING);
    await expectGrpcError(h.client.checkHealth("other.Service"), status.NOT_FOUND);
  });

  test("Watch streams the current status and every change", async () => {
    const hc = new HealthClient(`unix://${h.sock}`, ChannelCredentials.createInsecure());
    const seen: Serving[] = [];
    const stream = hc.watch({ service: "" });
    const got = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`saw only ${seen.join(",")}`)), 10_000);
        const check = () => {
          if (seen.length >= n) {
            clearTimeout(t);
            resolve();
          }
        };
        stream.on("data", (m: { status: Serving }) => {
          seen.push(m.status);
          check();
        });
        check();
      });
    stream.on("error", () => {}); // cancelled at the end
    await got(1);
    h.server.setServing(false);
    await got(2);
    expect(seen.slice(0, 2)).toEqual([Serving.SERVING, Serving.NOT_SERVING]);
    stream.cancel();
    hc.close();
  });
});
