import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ROUTE_DEFAULTS } from "../../src/config/defaults.ts";
import {
  checkCidr, checkCountry, checkHostPort, checkHostname, checkIp, checkListenAddr, normalizeHostname, parseListenAddr,
  validateRoute, type RouteFields,
} from "../../src/config/validate.ts";
import { InvalidArgumentError } from "../../src/errors.ts";
import { cleanupCerts, makeCA, makeLeaf, type CertFiles } from "../fixtures/certs.ts";

let leaf: CertFiles;
let other: CertFiles;
beforeAll(() => {
  const ca = makeCA("Validate CA");
  leaf = makeLeaf(ca, ["a.test"]);
  other = makeLeaf(ca, ["b.test"]);
});
afterAll(cleanupCerts);

describe("hostnames", () => {
  for (const h of ["a.test", "Metacrypt.Example.NET", "example.com.", "localhost", "xn--bcher-kva.example", "a-b.c1.d"]) {
    test(`accepts ${h}`, () => expect(checkHostname(h)).toBeNull());
  }
  for (const h of ["", "a.test:443", "https://a.test", "*.a.test", "a..test", "-a.test", "a-.test", "a_b.test", "1.2.3.4", "::1",
    "a.test/x", "a.test..", "x".repeat(64) + ".test", ("a".repeat(60) + ".").repeat(5) + "test"]) {
    test(`rejects ${JSON.stringify(h.length > 40 ? h.slice(0, 40) + "…" : h)}`, () => expect(checkHostname(h)).not.toBeNull());
  }
  test("normalisation lower-cases and strips exactly one trailing dot", () => {
    expect(normalizeHostname("A.Test.")).toBe("a.test");
    expect(normalizeHostname("a.test")).toBe("a.test");
  });
});

describe("backend host:port", () => {
  for (const s of ["127.0.0.1:80", "[::1]:8443", "backend.internal:65535", "svc:1"]) {
    test(`accepts ${s}`, () => expect(checkHostPort(s)).toBeNull());
  }
  for (const s of ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":80", "::1:80", "[::1]80", "[1.2.3.4]:80", "a.test:http", "a b:80", ""]) {
    test(`rejects ${JSON.stringify(s)}`, () => expect(checkHostPort(s)).not.toBeNull());
  }
  test("a URL is refused as a URL, not as an IPv6 address without brackets", () => {
    expect(checkHostPort("http://x:443")).toBe(`"http://x:443" is a URL: give host:port without "http://"`);
    expect(checkHostPort("HTTPS://a.test")).toBe(`"HTTPS://a.test" is a URL: give host:port without "HTTPS://"`);
    expect(checkListenAddr("tcp://127.0.0.1:443")).toContain("is a URL");
    expect(checkHostPort("[::1]:443")).toBeNull();
  });
});

describe("listen addresses", () => {
  test("parses :port, IPv4 and bracketed IPv6", () => {
    expect(parseListenAddr(":443")).toEqual({ host: "", port: 443 });
    expect(parseListenAddr("127.0.0.1:8443")).toEqual({ host: "127.0.0.1", port: 8443 });
    expect(parseListenAddr("[::1]:443")).toEqual({ host: "::1", port: 443 });
  });
  test("refuses bad ones with InvalidArgumentError naming addr", () => {
    for (const s of ["443", ":99999", "::1:443", "example.com:443", "1.2.3.4:"]) {
      expect(checkListenAddr(s)).not.toBeNull();
      expect(() => parseListenAddr(s)).toThrow(InvalidArgumentError);
    }
  });
});

describe("firewall values", () => {
  test("countries are two letters", () => {
    expect(checkCountry("KP")).toBeNull();
    expect(checkCountry("kp")).toBeNull();
    for (const c of ["K", "KPX", "K1", ""]) expect(checkCountry(c)).not.toBeNull();
  });
  test("IPs are v4 or v6 literals", () => {
    for (const ip of ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"]) expect(checkIp(ip)).toBeNull();
    for (const ip of ["192.0.2.256", "192.0.2.0/24", "a.test", "", "fe80::1%eth0"]) expect(checkIp(ip)).not.toBeNull();
  });
  test("CIDRs have an address and an in-range prefix", () => {
    for (const c of ["198.51.100.0/24", "2001:db8::/32", "0.0.0.0/0", "::/0", "10.0.0.1/32", "::1/128"]) expect(checkCidr(c)).toBeNull();
    for (const c of ["198.51.100.0", "198.51.100.0/33", "2001:db8::/129", "1.2.3/8", "1.2.3.4/-1", "1.2.3.4/a", "/8"]) {
      expect(checkCidr(c)).not.toBeNull();
    }
  });
});

function route(over: Partial<RouteFields>): RouteFields {
  return { ...ROUTE_DEFAULTS, hostname: "a.test", backend: "127.0.0.1:8080", ...over };
}
const paths = (ps: { path: string }[]) => ps.map((p) => p.path);

describe("validateRoute (shared by config and admin API)", () => {
  test("a plain l4 route is valid", () => {
    const r = validateRoute(route({}), "route");
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([]);
  });

  test("paths use the caller's prefix: admin 'route', config 'listeners[0].routes[1]'", () => {
    expect(paths(validateRoute(route({ backend: "nope" }), "route").problems)).toEqual(["route.backend"]);
    expect(paths(validateRoute(route({ backend: "nope" }), "listeners[0].routes[1]").problems)).toEqual(["listeners[0].routes[1].backend"]);
  });

  test("mode and backend_protocol must be from their enums", () => {
    expect(paths(validateRoute(route({ mode: "l5", backendProtocol: "h3" }), "route").problems)).toEqual(["route.mode", "route.backend_protocol"]);
  });

  test("an l7 route loads and returns its certificate pair", () => {
    const r = validateRoute(route({ mode: "l7", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath }), "route");
    expect(r.problems).toEqual([]);
    expect(r.cert?.leaf.subjectAltName).toContain("a.test");
  });

  test("an l7 route without cert/key, or with a mismatched key, is refused", () => {
    expect(paths(validateRoute(route({ mode: "l7" }), "route").problems)).toEqual(["route.tls_cert", "route.tls_key"]);
    const mm = validateRoute(route({ mode: "l7", tlsCert: leaf.fullchainPath, tlsKey: other.keyPath }), "route");
    expect(paths(mm.problems)).toEqual(["route.tls_key"]);
    expect(mm.problems[0].detail).toContain("does not match");
    expect(mm.cert).toBeNull();
    const missing = validateRoute(route({ mode: "l7", tlsCert: "/nonexistent/c.pem", tlsKey: leaf.keyPath }), "route");
    expect(paths(missing.problems)).toEqual(["route.tls_cert"]);
  });

  test("a leaf-only l7 certificate is accepted with a warning", () => {
    const r = validateRoute(route({ mode: "l7", tlsCert: leaf.certPath, tlsKey: leaf.keyPath }), "route");
    expect(r.problems).toEqual([]);
    expect(paths(r.warnings)).toEqual(["route.tls_cert"]);
  });

  test("backend_tls_* settings are refused without backend_tls", () => {
    const r = validateRoute(route({ mode: "l7", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, backendTlsVerify: true, backendTlsCa: leaf.caPath, backendTlsServerName: "x.test" }), "route");
    expect(paths(r.problems)).toEqual(["route.backend_tls_verify", "route.backend_tls_ca", "route.backend_tls_server_name"]);
    const ok = validateRoute(route({ mode: "l7", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, backendTls: true, backendTlsVerify: true, backendTlsCa: leaf.caPath }), "route");
    expect(ok.problems).toEqual([]);
  });

  test("an unreadable backend_tls_ca is refused", () => {
    const r = validateRoute(route({ mode: "l7", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, backendTls: true, backendTlsCa: "/nonexistent/ca.pem" }), "route");
    expect(paths(r.problems)).toEqual(["route.backend_tls_ca"]);
  });

  test("policies need a known type and a non-empty value; duplicates are refused", () => {
    const base = { mode: "l7", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath };
    const r = validateRoute(route({ ...base, l7Policies: [
      { type: "block_user_agent", value: "zgrab" },
      { type: "block_ip", value: "x" },
      { type: "require_header", value: "" },
      { type: "require_header", value: "Bad Header" },
      { type: "block_user_agent", value: "zgrab" },
    ] }), "route");
    expect(paths(r.problems)).toEqual(["route.l7_policies[1].type", "route.l7_policies[2].value", "route.l7_policies[3].value", "route.l7_policies[4]"]);
  });

  test("policies on an l4 route are a warning, not an error", () => {
    const r = validateRoute(route({ l7Policies: [{ type: "block_user_agent", value: "zgrab" }] }), "route");
    expect(r.problems).toEqual([]);
    expect(paths(r.warnings)).toEqual(["route.l7_policies"]);
  });
});
