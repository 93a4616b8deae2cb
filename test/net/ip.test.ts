import { describe, expect, test } from "bun:test";
import { cidrContains, normalizeIp, parseCidr } from "../../src/net/ip.ts";

describe("normalizeIp", () => {
  test("IPv4 stays dotted-quad", () => {
    expect(normalizeIp("192.0.2.1")).toBe("192.0.2.1");
    expect(normalizeIp("0.0.0.0")).toBe("0.0.0.0");
    expect(normalizeIp("255.255.255.255")).toBe("255.255.255.255");
  });

  test("IPv4-mapped IPv6 becomes IPv4 (dotted and hex forms)", () => {
    expect(normalizeIp("::ffff:1.2.3.4")).toBe("1.2.3.4");
    expect(normalizeIp("::FFFF:7f00:1")).toBe("127.0.0.1");
    expect(normalizeIp("0:0:0:0:0:ffff:c000:0201")).toBe("192.0.2.1");
    expect(normalizeIp("[::ffff:10.0.0.1]")).toBe("10.0.0.1");
  });

  test("IPv6 is canonical RFC 5952 text; brackets and zone are stripped", () => {
    expect(normalizeIp("2001:0DB8:0000:0000:0001:0000:0000:0001")).toBe("2001:db8::1:0:0:1");
    expect(normalizeIp("[::1]")).toBe("::1");
    expect(normalizeIp("fe80::1%eth0")).toBe("fe80::1");
    expect(normalizeIp("::")).toBe("::");
    expect(normalizeIp("1:2:3:4:5:6:7::")).toBe("1:2:3:4:5:6:7:0"); // '::' never for one group
    expect(normalizeIp("::1.2.3.4")).toBe("::102:304"); // IPv4-compatible is not mapped
  });

  test("non-addresses are null", () => {
    for (const s of ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "010.1.1.1", "1.2.3.4%eth0", "[1.2.3.4]", "12345::", "1::2::3", "::1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "example.com", "1.2.3.4 ", ":1::"]) {
      expect(normalizeIp(s)).toBeNull();
    }
  });
});

describe("parseCidr", () => {
  test("parses v4 and v6 prefixes including /0, /32, /128", () => {
    expect(parseCidr("10.0.0.0/8")?.text).toBe("10.0.0.0/8");
    expect(parseCidr("0.0.0.0/0")?.text).toBe("0.0.0.0/0");
    expect(parseCidr("192.0.2.7/32")?.text).toBe("192.0.2.7/32");
    expect(parseCidr("2001:db8::/32")?.text).toBe("2001:db8::/32");
    expect(parseCidr("::/0")?.text).toBe("::/0");
    expect(parseCidr("2001:db8::1/128")?.text).toBe("2001:db8::1/128");
  });

  test("host bits are accepted and masked off", () => {
    expect(parseCidr("10.1.2.3/8")?.text).toBe("10.0.0.0/8");
    expect(parseCidr("2001:db8:ffff::1/32")?.text).toBe("2001:db8::/32");
  });

  test("a mapped IPv6 prefix becomes the IPv4 CIDR it covers", () => {
    expect(parseCidr("::ffff:10.0.0.0/104")?.text).toBe("10.0.0.0/8");
    expect(parseCidr("::ffff:0:0/96")?.text).toBe("0.0.0.0/0");
  });

  test("out-of-range or malformed prefixes are rejected", () => {
    for (const s of ["1.2.3.4/33", "::1/129", "10.0.0.0", "10.0.0.0/", "/8", "10.0.0.0/+8", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0/8", "10.0.0.0/8/8", "fe80::%eth0/64", "[::1]/128"]) {
      expect(parseCidr(s)).toBeNull();
    }
  });
});

describe("cidrContains", () => {
  test("IPv4 CIDR matches members and IPv4-mapped v6 clients, not neighbours", () => {
    const c = parseCidr("198.51.100.0/24")!;
    expect(cidrContains(c, "198.51.100.0")).toBe(true);
    expect(cidrContains(c, "198.51.100.255")).toBe(true);
    expect(cidrContains(c, "::ffff:198.51.100.9")).toBe(true);
    expect(cidrContains(c, "198.51.101.0")).toBe(false);
    expect(cidrContains(c, "198.51.99.255")).toBe(false);
  });

  test("/0 matches every address of its family only; /32 and /128 match exactly one", () => {
    expect(cidrContains(parseCidr("0.0.0.0/0")!, "255.255.255.255")).toBe(true);
    expect(cidrContains(parseCidr("0.0.0.0/0")!, "::1")).toBe(false);
    expect(cidrContains(parseCidr("::/0")!, "2001:db8::1")).toBe(true);
    expect(cidrContains(parseCidr("1.2.3.4/32")!, "1.2.3.4")).toBe(true);
    expect(cidrContains(parseCidr("1.2.3.4/32")!, "1.2.3.5")).toBe(false);
    expect(cidrContains(parseCidr("2001:db8::1/128")!, "2001:DB8:0::1")).toBe(true);
    expect(cidrContains(parseCidr("2001:db8::1/128")!, "2001:db8::2")).toBe(false);
  });

  test("IPv6 prefixes that end inside a 32-bit word", () => {
    const c = parseCidr("2001:db8:8000::/33")!;
    expect(cidrContains(c, "2001:db8:8000::1")).toBe(true);
    expect(cidrContains(c, "2001:db8:ffff:ffff::")).toBe(true);
    expect(cidrContains(c, "2001:db8:7fff::1")).toBe(false);
    const d = parseCidr("2001:db8::/127")!;
    expect(cidrContains(d, "2001:db8::1")).toBe(true);
    expect(cidrContains(d, "2001:db8::2")).toBe(false);
  });

  test("text that is not an IP is never contained", () => {
    expect(cidrContains(parseCidr("0.0.0.0/0")!, "not-an-ip")).toBe(false);
  });
});
