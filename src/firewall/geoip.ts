/**
 * GeoIP country lookup over a MaxMind DB file (GeoLite2/GeoIP2 Country or
 * City, DB-IP lite, …) via the `maxmind` package. The whole file is read into
 * memory; a reload swaps readers atomically and a failed reload keeps the old
 * one (SPEC §4: SIGHUP).
 */
import * as fs from "node:fs";
import { type CountryResponse, Reader } from "maxmind";

/** The record fields we read. `country` is a string in ipinfo-style databases. */
interface CountryRecord {
  country?: { iso_code?: unknown } | string;
  registered_country?: { iso_code?: unknown };
}

/** Why a database could not be (re)loaded. */
export class GeoIpError extends Error {
  readonly code = "geoip";
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`geoip ${path}: ${detail}`);
    this.name = "GeoIpError";
  }
}

// Country data is present in Country, City and Enterprise editions (MaxMind,
// DB-IP, ipinfo). ASN / ISP / Anonymous-IP databases have none: refuse them
// rather than silently answering "unknown" for every client.
const COUNTRY_DB = /country|city|enterprise/i;

function isoCode(v: unknown): string | null {
  return typeof v === "string" && /^[A-Za-z]{2}$/.test(v) ? v.toUpperCase() : null;
}

/** Reads and validates the file; throws GeoIpError with a one-line reason. */
function load(path: string): Reader<CountryResponse> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path);
  } catch (err) {
    throw new GeoIpError(path, (err as NodeJS.ErrnoException).code ?? String(err));
  }
  let reader: Reader<CountryResponse>;
  try {
    reader = new Reader<CountryResponse>(buf);
  } catch (err) {
    throw new GeoIpError(path, `not a MaxMind DB: ${(err as Error).message}`);
  }
  const type = String(reader.metadata.databaseType ?? "");
  if (!COUNTRY_DB.test(type)) {
    throw new GeoIpError(path, `database type "${type}" has no country data (want a Country or City database)`);
  }
  return reader;
}

export class GeoIp {
  private constructor(
    readonly path: string,
    private reader: Reader<CountryResponse>,
  ) {}

  /** Opens `path` synchronously. Throws GeoIpError if missing, corrupt or not a country/city DB. */
  static open(path: string): GeoIp {
    return new GeoIp(path, load(path));
  }

  /** metadata `database_type` of the loaded file (for logs). */
  get databaseType(): string {
    return String(this.reader.metadata.databaseType);
  }

  /**
   * Returns the upper-case ISO 3166-1 alpha-2 country of `ip`, or null when
   * the address is unknown to the database or not an IP. Uses `country` (where
   * the address is located) and falls back to `registered_country` (where its
   * network is registered) only when the record has no located country — the
   * case for some anycast, satellite and newly allocated ranges. Pass a
   * normalized address (IPv4-mapped IPv6 already folded to IPv4).
   */
  country(ip: string): string | null {
    let rec: CountryRecord | null;
    try {
      // Cast: the file's real shape may differ from MaxMind's (ipinfo uses a string).
      rec = this.reader.get(ip) as unknown as CountryRecord | null;
    } catch {
      return null; // the reader throws on text that is not an IP
    }
    if (!rec) return null;
    const c = rec.country;
    const located = typeof c === "string" ? isoCode(c) : isoCode(c?.iso_code);
    return located ?? isoCode(rec.registered_country?.iso_code);
  }

  /**
   * Re-reads the file at `path`. On success the new data answers every later
   * lookup; on failure (missing, corrupt, wrong database type) the old data
   * stays in use and the reason is returned.
   */
  reload(): { ok: true } | { ok: false; error: string } {
    try {
      this.reader = load(this.path);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: err instanceof GeoIpError ? err.detail : String(err) };
    }
  }
}
