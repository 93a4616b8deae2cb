/**
 * The firewall stage of the pipeline (SPEC §4 step 3): for each accepted
 * connection's client address, blocked IP → blocked CIDR → blocked country
 * (GeoIP) → per-client rate limit (an IPv4 address or an IPv6 /64). Rules are
 * swapped whole by setRules() when the admin API changes them; the GeoIP
 * database is swapped by reloadGeoip() on SIGHUP. check() logs nothing: the
 * caller logs the rejection once.
 */
import type { FirewallRuleRecord } from "../records.ts";
import { log } from "../obs/log.ts";
import { formatIpWords, parseIpWords } from "../net/ip.ts";
import { GeoIp } from "./geoip.ts";
import { RateLimiter, rateLimitKey } from "./ratelimit.ts";
import { SharedRateLimiter, type SharedRateBuffers } from "./shared-ratelimit.ts";
import { type CompiledRules, NO_RULES, compileRules, matchAddress } from "./rules.ts";

export type BlockReason = "ip" | "cidr" | "country" | "rate_limit";

export interface FirewallOptions {
  /** MaxMind DB path; "" = no GeoIP (country rules then match nothing). */
  geoipPath: string;
  /** New connections per IP per window; 0 = off. */
  rateLimit: number;
  rateWindowMs: number;
  /**
   * Several data-path threads: the rate-limit table they all share (see
   * shared-ratelimit.ts) and this thread's lock id (index + 1). Absent: a
   * table of this thread's own.
   */
  sharedRate?: { buffers: SharedRateBuffers; owner: number };
}

const words = new Uint32Array(4);

export class Firewall {
  private rules: CompiledRules = NO_RULES;
  private readonly geoip: GeoIp | null;
  private readonly limiter: RateLimiter | null;
  private readonly shared: SharedRateLimiter | null;
  private warnedNoGeoip = false;
  private readonly rateLimit: number;

  /**
   * Opens the GeoIP database when `geoipPath` is set. Throws GeoIpError if it
   * cannot be loaded: a firewall must not start with its country rules blind.
   */
  constructor(opts: FirewallOptions) {
    this.geoip = opts.geoipPath ? GeoIp.open(opts.geoipPath) : null;
    if (this.geoip) log.info("geoip.loaded", { path: opts.geoipPath, type: this.geoip.databaseType });
    this.shared = opts.sharedRate ? new SharedRateLimiter(opts.sharedRate.buffers, opts.rateLimit, opts.rateWindowMs, opts.sharedRate.owner) : null;
    this.limiter = this.shared ? null : new RateLimiter(opts.rateLimit, opts.rateWindowMs);
    this.rateLimit = opts.rateLimit;
  }

  /**
   * Replaces the rule set atomically. Invalid rows are skipped with a warning
   * (they are validated before they reach the database). Country rules
   * without a GeoIP database are logged once: they cannot match.
   */
  setRules(rules: readonly FirewallRuleRecord[]): void {
    const compiled = compileRules(rules);
    for (const p of compiled.problems) {
      log.warn("firewall.rule_skipped", { id: rules[p.index]?.id, type: p.type, value: p.value, detail: p.detail });
    }
    if (compiled.countries.size > 0 && !this.geoip && !this.warnedNoGeoip) {
      this.warnedNoGeoip = true;
      log.warn("firewall.country_rules_without_geoip", { countries: [...compiled.countries] });
    }
    this.rules = compiled;
  }

  /**
   * Returns why the client at `ip` must be rejected, or null to admit it.
   * `ip` is the socket's remote address or the PROXY header's source (any
   * text form; IPv4-mapped IPv6 counts as IPv4). Only connections that pass
   * the rules count towards the rate limit. Text that is not an IP matches no
   * ip/cidr/country rule but is still rate limited under its raw text.
   */
  check(ip: string): BlockReason | null {
    const rules = this.rules;
    const fam = parseIpWords(ip, words);
    const hit = matchAddress(rules, fam, words);
    if (hit) return hit;
    const needCountry = rules.countries.size > 0 && this.geoip !== null && fam !== 0;
    if (!needCountry && this.rateLimit === 0) return null; // nothing else to do: skip the string work
    // One canonical text per client (`::ffff:1.2.3.4` and `1.2.3.4` are one), built only when needed.
    let text: string | null = null;
    if (needCountry) {
      text = formatIpWords(fam, words);
      const country = this.geoip!.country(text);
      if (country !== null && rules.countries.has(country)) return "country";
    }
    // IPv6 clients are counted per /64 (SPEC §4); IPv4 per address. The shared table keys on the words.
    if (this.shared) return this.shared.allowClient(fam, words, ip) ? null : "rate_limit";
    const key = fam === 6 ? rateLimitKey(6, words, ip) : (text ?? (fam === 0 ? ip : formatIpWords(fam, words)));
    return this.limiter!.allow(key) ? null : "rate_limit";
  }

  /**
   * Re-reads the GeoIP database (SIGHUP). A failure keeps the old database
   * and is returned and logged; without a configured database this is a no-op.
   */
  reloadGeoip(): { ok: boolean; error?: string } {
    if (!this.geoip) return { ok: true };
    const r = this.geoip.reload();
    if (r.ok) {
      log.info("geoip.reloaded", { path: this.geoip.path, type: this.geoip.databaseType });
      return { ok: true };
    }
    log.error("geoip.reload_failed", { path: this.geoip.path, error: r.error });
    return { ok: false, error: r.error };
  }

  /** Stops background work (the rate limiter's sweep timer). */
  close(): void {
    this.limiter?.close();
  }

  /** Number of clients (IPv4 addresses, IPv6 /64s) the rate limiter currently tracks (for metrics/tests). */
  trackedIps(): number {
    return this.limiter ? this.limiter.size() : this.shared!.size();
  }
}
