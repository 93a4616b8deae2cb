import { describe, expect, test } from "bun:test";
import { compileRules, matchAddress, type CompiledRules } from "../../src/firewall/rules.ts";
import { parseIpWords } from "../../src/net/ip.ts";

/** The firewall's order (Firewall.check): ip → cidr → country. */
function matchRules(c: CompiledRules, ip: string, country: string | null): string | null {
  const w = new Uint32Array(4);
  const hit = matchAddress(c, parseIpWords(ip, w), w);
  if (hit) return hit;
  return country !== null && c.countries.has(country.toUpperCase()) ? "country" : null;
}

describe("compileRules / matchRules", () => {
  const rules = compileRules([
    { type: "ip", value: "192.0.2.1" },
    { type: "ip", value: "2001:db8::dead" },
    { type: "cidr", value: "192.0.2.0/24" },
    { type: "cidr", value: "2001:db8::/32" },
    { type: "country", value: "kp" },
  ]);

  test("exact IP is reported before the CIDR that also covers it", () => {
    expect(matchRules(rules, "192.0.2.1", "KP")).toBe("ip");
    expect(matchRules(rules, "2001:db8::dead", null)).toBe("ip");
  });

  test("CIDR is reported before country", () => {
    expect(matchRules(rules, "192.0.2.2", "KP")).toBe("cidr");
    expect(matchRules(rules, "2001:db8::1", null)).toBe("cidr");
  });

  test("country matches case-insensitively; unknown country matches nothing", () => {
    expect(matchRules(rules, "203.0.113.5", "KP")).toBe("country");
    expect(matchRules(rules, "203.0.113.5", "kp")).toBe("country");
    expect(matchRules(rules, "203.0.113.5", "DE")).toBeNull();
    expect(matchRules(rules, "203.0.113.5", null)).toBeNull();
  });

  test("IPv4-mapped IPv6 clients hit IPv4 ip and cidr rules", () => {
    expect(matchRules(rules, "::ffff:192.0.2.1", null)).toBe("ip");
    expect(matchRules(rules, "::ffff:192.0.2.77", null)).toBe("cidr");
  });

  test("exact IPv6 rule matches any spelling of the address", () => {
    expect(matchRules(rules, "2001:0db8:0:0:0:0:0:DEAD", null)).toBe("ip");
    const only = compileRules([{ type: "ip", value: "2001:db9::1" }]);
    expect(matchRules(only, "[2001:db9:0::1]", null)).toBe("ip");
    expect(matchRules(only, "2001:db9::2", null)).toBeNull();
  });

  test("invalid rule values are skipped and reported, valid ones still apply", () => {
    const c = compileRules([
      { type: "ip", value: "300.1.1.1" },
      { type: "cidr", value: "10.0.0.0/33" },
      { type: "country", value: "KPX" },
      { type: "cidr", value: "10.0.0.0/8" },
    ]);
    expect(c.problems.map((p) => p.index)).toEqual([0, 1, 2]);
    expect(matchRules(c, "10.9.9.9", null)).toBe("cidr");
    expect(matchRules(c, "300.1.1.1", null)).toBeNull();
  });

  test("an empty rule set matches nothing", () => {
    expect(matchRules(compileRules([]), "192.0.2.1", "KP")).toBeNull();
  });
});
