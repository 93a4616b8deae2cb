import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { Firewall } from "../../src/firewall/firewall.ts";
import { GeoIpError } from "../../src/firewall/geoip.ts";
import { setLogSink } from "../../src/obs/log.ts";
import type { FirewallRuleRecord } from "../../src/records.ts";
import { writeCountryMmdb } from "../fixtures/mmdb.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mcproxy-fw-"));
const db = path.join(dir, "country.mmdb");
const lines: string[] = [];
let prevSink: ((line: string) => void) | undefined;
const walls: Firewall[] = [];

beforeAll(() => {
  prevSink = setLogSink((l) => lines.push(l));
  writeCountryMmdb(db, [
    { cidr: "127.0.0.2/32", country: "KP" },
    { cidr: "127.0.0.3/32", country: "DE" },
    { cidr: "2001:db8::/32", country: "KP" },
  ]);
});
afterEach(() => {
  for (const w of walls.splice(0)) w.close();
});
afterAll(() => {
  if (prevSink) setLogSink(prevSink);
  fs.rmSync(dir, { recursive: true, force: true });
});

let nextId = 1;
const rule = (type: FirewallRuleRecord["type"], value: string): FirewallRuleRecord => ({ id: nextId++, type, value });
const firewall = (opts: Partial<{ geoipPath: string; rateLimit: number; rateWindowMs: number }> = {}) => {
  const f = new Firewall({ geoipPath: db, rateLimit: 0, rateWindowMs: 10_000, ...opts });
  walls.push(f);
  return f;
};
const events = () => lines.map((l) => JSON.parse(l) as { event: string; [k: string]: unknown });

describe("Firewall.check", () => {
  test("blocked IP, then CIDR, then country, in that order", () => {
    const f = firewall();
    f.setRules([rule("country", "KP"), rule("cidr", "127.0.0.0/30"), rule("ip", "127.0.0.2")]);
    expect(f.check("127.0.0.2")).toBe("ip"); // also in the CIDR and in KP
    expect(f.check("127.0.0.1")).toBe("cidr");
    f.setRules([rule("country", "KP"), rule("cidr", "10.0.0.0/8")]);
    expect(f.check("127.0.0.2")).toBe("country");
    expect(f.check("2001:db8::5")).toBe("country");
    expect(f.check("127.0.0.3")).toBeNull(); // DE is not blocked
    expect(f.check("127.0.0.1")).toBeNull(); // unknown to GeoIP
  });

  test("IPv4-mapped IPv6 clients are treated as IPv4", () => {
    const f = firewall();
    f.setRules([rule("ip", "192.0.2.1"), rule("cidr", "198.51.100.0/24"), rule("country", "kp")]);
    expect(f.check("::ffff:192.0.2.1")).toBe("ip");
    expect(f.check("::ffff:198.51.100.7")).toBe("cidr");
    expect(f.check("::ffff:127.0.0.2")).toBe("country");
  });

  test("setRules replaces the whole rule set", () => {
    const f = firewall();
    f.setRules([rule("ip", "192.0.2.1")]);
    expect(f.check("192.0.2.1")).toBe("ip");
    f.setRules([]);
    expect(f.check("192.0.2.1")).toBeNull();
  });

  test("rate limit applies after the rules and counts only connections that passed them", () => {
    const f = firewall({ rateLimit: 2 });
    f.setRules([rule("ip", "192.0.2.1")]);
    for (let i = 0; i < 5; i++) expect(f.check("192.0.2.1")).toBe("ip");
    expect(f.trackedIps()).toBe(0); // blocked-by-rule connections are not tracked
    expect(f.check("192.0.2.9")).toBeNull();
    expect(f.check("192.0.2.9")).toBeNull();
    expect(f.check("192.0.2.9")).toBe("rate_limit");
    expect(f.check("192.0.2.10")).toBeNull(); // per IP
  });

  test("a mapped and a plain IPv4 address share one rate-limit bucket", () => {
    const f = firewall({ rateLimit: 2 });
    expect(f.check("203.0.113.4")).toBeNull();
    expect(f.check("::ffff:203.0.113.4")).toBeNull();
    expect(f.check("203.0.113.4")).toBe("rate_limit");
    expect(f.trackedIps()).toBe(1);
  });

  test("IPv6 clients are counted per /64: rotating addresses inside one prefix share its budget", () => {
    const f = firewall({ rateLimit: 2 });
    expect(f.check("2001:db8:1:2::1")).toBeNull();
    expect(f.check("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBeNull();
    expect(f.check("2001:db8:1:2:1234:5678:9abc:def0")).toBe("rate_limit");
    expect(f.check("[2001:DB8:1:2::99]")).toBe("rate_limit"); // any text form of the same /64
    expect(f.check("2001:db8:1:3::1")).toBeNull(); // the neighbouring /64 is another client
    expect(f.trackedIps()).toBe(2);
  });

  test("check logs nothing (the caller logs the rejection)", () => {
    const f = firewall({ rateLimit: 1 });
    f.setRules([rule("ip", "192.0.2.1"), rule("country", "KP")]);
    lines.length = 0;
    f.check("192.0.2.1");
    f.check("127.0.0.2");
    f.check("127.0.0.1");
    f.check("127.0.0.1");
    expect(lines).toEqual([]);
  });
});

describe("Firewall GeoIP", () => {
  test("without a GeoIP database, country rules match nothing and are warned about once", () => {
    lines.length = 0;
    const f = firewall({ geoipPath: "" });
    f.setRules([rule("country", "KP")]);
    f.setRules([rule("country", "KP")]);
    expect(f.check("127.0.0.2")).toBeNull();
    expect(events().filter((e) => e.event === "firewall.country_rules_without_geoip")).toHaveLength(1);
  });

  test("a GeoIP database that cannot be loaded refuses to start the firewall", () => {
    expect(() => firewall({ geoipPath: path.join(dir, "nope.mmdb") })).toThrow(GeoIpError);
  });

  test("reloadGeoip: failure keeps the old database and logs the path; success swaps it in", () => {
    const p = path.join(dir, "reload.mmdb");
    writeCountryMmdb(p, [{ cidr: "127.0.0.2/32", country: "KP" }]);
    const f = firewall({ geoipPath: p });
    f.setRules([rule("country", "KP")]);
    expect(f.check("127.0.0.2")).toBe("country");

    fs.writeFileSync(p, "garbage");
    lines.length = 0;
    const bad = f.reloadGeoip();
    expect(bad.ok).toBe(false);
    expect(bad.error).toBeTruthy();
    const failed = events().find((e) => e.event === "geoip.reload_failed");
    expect(failed?.path).toBe(p);
    expect(f.check("127.0.0.2")).toBe("country"); // old DB still answers

    writeCountryMmdb(p, [{ cidr: "127.0.0.4/32", country: "KP" }]);
    lines.length = 0;
    expect(f.reloadGeoip()).toEqual({ ok: true });
    expect(events().find((e) => e.event === "geoip.reloaded")?.path).toBe(p);
    expect(f.check("127.0.0.2")).toBeNull();
    expect(f.check("127.0.0.4")).toBe("country");
  });
});

describe("Firewall on real accepted sockets", () => {
  test("a client connecting from 127.0.0.2 to a dual-stack listener is blocked by country", async () => {
    const f = firewall();
    f.setRules([rule("country", "KP")]);
    const verdicts: { addr: string; verdict: string | null }[] = [];
    const server = net.createServer((sock) => {
      const addr = sock.remoteAddress ?? "";
      verdicts.push({ addr, verdict: f.check(addr) });
      sock.destroy();
    });
    // "::" is dual-stack where available: v4 clients then appear as ::ffff:a.b.c.d.
    const host = await new Promise<string>((resolve) => {
      server.once("error", () => server.listen(0, "127.0.0.1", () => resolve("127.0.0.1")));
      server.listen(0, "::", () => resolve("::"));
    });
    const port = (server.address() as net.AddressInfo).port;
    try {
      for (const local of ["127.0.0.2", "127.0.0.3"]) {
        await new Promise<void>((resolve) => {
          const c = net.connect({ host: "127.0.0.1", port, localAddress: local });
          const done = () => {
            c.destroy();
            resolve();
          };
          c.once("close", done);
          c.once("error", done);
          setTimeout(done, 5000);
        });
      }
      const deadline = Date.now() + 5000;
      while (verdicts.length < 2 && Date.now() < deadline) await Bun.sleep(10);
    } finally {
      server.close();
    }
    expect(verdicts.map((v) => v.verdict)).toEqual(["country", null]);
    if (host === "::") expect(verdicts[0].addr).toBe("::ffff:127.0.0.2");
  }, 20_000);
});
