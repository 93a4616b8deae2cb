/**
 * Firewall rule evaluation (pure). Rules are compiled once when they change
 * and matched on every accepted connection, in the SPEC §4 order: exact IP,
 * then CIDR, then country.
 */
import type { FirewallRuleType } from "../config/types.ts";
import { type Cidr, type Family, cidrContainsWords, formatIpWords, parseCidr, parseIpWords } from "../net/ip.ts";

export interface RuleInput {
  type: FirewallRuleType;
  value: string;
}

/** A rule that could not be compiled; it is skipped, never half-applied. */
export interface RuleProblem {
  index: number;
  type: string;
  value: string;
  detail: string;
}

export interface CompiledRules {
  /** Exact IPv4 addresses as uint32 (no string work on the hot path). */
  readonly ipV4: ReadonlySet<number>;
  /** Exact IPv6 addresses as canonical text. */
  readonly ipV6: ReadonlySet<string>;
  readonly cidrs: readonly Cidr[];
  /** Upper-case ISO 3166-1 alpha-2 codes. */
  readonly countries: ReadonlySet<string>;
  /** Rules that were skipped, with why. */
  readonly problems: readonly RuleProblem[];
}

export type RuleMatch = "ip" | "cidr" | "country";

/**
 * Compiles rule rows into lookup structures. Invalid values (not an IP, bad
 * CIDR, country not two letters, unknown type) are skipped and reported in
 * `problems`; duplicates collapse. Countries are compared upper-case.
 */
export function compileRules(rules: readonly RuleInput[]): CompiledRules {
  const ipV4 = new Set<number>();
  const ipV6 = new Set<string>();
  const cidrs: Cidr[] = [];
  const cidrSeen = new Set<string>();
  const countries = new Set<string>();
  const problems: RuleProblem[] = [];
  const w = new Uint32Array(4);
  rules.forEach((r, index) => {
    const problem = (detail: string) => problems.push({ index, type: r.type, value: r.value, detail });
    const value = r.value.trim();
    switch (r.type) {
      case "ip": {
        const fam = parseIpWords(value, w);
        if (fam === 0) return problem("not an IP address");
        if (fam === 4) ipV4.add(w[0]);
        else ipV6.add(formatIpWords(fam, w));
        return;
      }
      case "cidr": {
        const c = parseCidr(value);
        if (!c) return problem("not a CIDR (addr/len)");
        if (!cidrSeen.has(c.text)) {
          cidrSeen.add(c.text);
          cidrs.push(c);
        }
        return;
      }
      case "country": {
        if (!/^[A-Za-z]{2}$/.test(value)) return problem("country must be two letters (ISO 3166-1 alpha-2)");
        countries.add(value.toUpperCase());
        return;
      }
      default:
        return problem("unknown rule type");
    }
  });
  // Shorter prefixes first: the broad blocks cover most attack traffic.
  cidrs.sort((a, b) => a.bits - b.bits);
  return { ipV4, ipV6, cidrs, countries, problems };
}

/** An empty rule set (matches nothing). */
export const NO_RULES: CompiledRules = compileRules([]);


/**
 * Which ip/cidr rule blocks an address already parsed by parseIpWords (the
 * caller parses once per connection; country rules are checked by the caller).
 */
export function matchAddress(c: CompiledRules, fam: Family, w: Uint32Array): "ip" | "cidr" | null {
  if (fam === 0) return null;
  if (fam === 4 ? c.ipV4.has(w[0]) : c.ipV6.size > 0 && c.ipV6.has(formatIpWords(fam, w))) return "ip";
  const list = c.cidrs;
  for (let i = 0; i < list.length; i++) if (cidrContainsWords(list[i], fam, w)) return "cidr";
  return null;
}
