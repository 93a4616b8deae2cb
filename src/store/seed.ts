/**
 * First-start seeding from the TOML and, on later starts, the report of where
 * the TOML and the database disagree (SPEC §3: the database is the source of
 * truth at run time; the TOML is only the seed).
 */
import type { Config, FirewallRuleType, ListenerConfig, RouteConfig } from "../config/types.ts";
import { normalizeHostname } from "../config/validate.ts";
import type { ListenerRecord, RouteInput, RouteRecord } from "../records.ts";
import { canonicalRuleValue } from "../state/state.ts";
import type { Store } from "./store.ts";

/**
 * The firewall lists of the TOML as (type, value) rules, in TOML order, each
 * value in the canonical form the admin API stores ("::ffff:1.2.3.4" →
 * "1.2.3.4", "10.0.9.9/24" → "10.0.9.0/24"), duplicates after that dropped:
 * so a seeded rule is the one `firewall remove` names.
 */
export function firewallRulesOf(config: Config): { type: FirewallRuleType; value: string }[] {
  const f = config.firewall;
  const all = [
    ...f.blockedIps.map((value) => ({ type: "ip" as const, value })),
    ...f.blockedCidrs.map((value) => ({ type: "cidr" as const, value })),
    ...f.blockedCountries.map((value) => ({ type: "country" as const, value })),
  ];
  const seen = new Set<string>();
  const out: { type: FirewallRuleType; value: string }[] = [];
  for (const r of all) {
    const c = canonicalRuleValue(r.type, r.value);
    const value = "value" in c ? c.value : r.value; // the config loader refused invalid ones already
    if (seen.has(`${r.type}\0${value}`)) continue;
    seen.add(`${r.type}\0${value}`);
    out.push({ type: r.type, value });
  }
  return out;
}

/** A route as the store takes it, from its TOML form. */
export function routeInputOf(r: RouteConfig): RouteInput {
  return {
    hostname: r.hostname,
    backend: r.backend,
    mode: r.mode,
    tlsCert: r.tlsCert,
    tlsKey: r.tlsKey,
    backendTls: r.backendTls,
    backendProtocol: r.backendProtocol,
    backendTlsVerify: r.backendTlsVerify,
    backendTlsCa: r.backendTlsCa,
    backendTlsServerName: r.backendTlsServerName,
    sendProxyProtocol: r.sendProxyProtocol,
    l7Policies: r.l7Policies.map((p) => ({ type: p.type, value: p.value })),
  };
}

/**
 * On an empty database (no listeners, routes or firewall rules) writes the
 * TOML's listeners, routes, policies and firewall rules in one transaction
 * and returns true; otherwise writes nothing and returns false. Throws
 * StoreError (nothing written) when the database refuses.
 */
export function seedIfEmpty(store: Store, config: Config): boolean {
  return store.transaction(() => {
    if (!store.isEmpty()) return false;
    for (const l of config.listeners) {
      const rec = store.insertListener({
        addr: l.addr,
        proxyProtocol: l.proxyProtocol,
        proxyProtocolTrusted: l.proxyProtocolTrusted,
        maxConnections: l.maxConnections,
      });
      for (const r of l.routes) store.upsertRoute(rec.id, routeInputOf(r));
    }
    for (const rule of firewallRulesOf(config)) store.addFirewallRule(rule.type, rule.value);
    return true;
  });
}

const VIA_CTL = "(the database wins after first start; change it with mcproxyctl)";
const VIA_SQL = "(the database wins after first start; listeners are changed in the database, e.g. with sqlite3)";

/**
 * One human-readable warning per difference between the TOML and the
 * database, naming the listener addr and hostname and saying why the TOML
 * change had no effect. Empty when they agree. Reads only.
 */
export function diffConfig(store: Store, config: Config): string[] {
  const out: string[] = [];
  const dbListeners = new Map(store.listListeners().map((l) => [l.addr, l]));
  const tomlAddrs = new Set(config.listeners.map((l) => l.addr));

  for (const tl of config.listeners) {
    const dl = dbListeners.get(tl.addr);
    if (!dl) {
      out.push(`listener "${tl.addr}" is in the TOML but not in the database: it is not opened ${VIA_SQL}`);
      continue;
    }
    out.push(...diffListener(tl, dl));
    out.push(...diffRoutes(tl, store.listRoutes(dl.id)));
  }
  for (const dl of dbListeners.values()) {
    if (!tomlAddrs.has(dl.addr)) {
      out.push(`listener "${dl.addr}" is in the database but not in the TOML: it is still opened ${VIA_SQL}`);
    }
  }

  const key = (r: { type: string; value: string }) => `${r.type} ${r.value}`;
  const dbRules = new Set(store.listFirewallRules().map(key));
  const tomlRules = new Set(firewallRulesOf(config).map(key));
  for (const k of tomlRules) {
    if (!dbRules.has(k)) out.push(`firewall rule ${k} is in the TOML but not in the database: it is not enforced ${VIA_CTL}`);
  }
  for (const k of dbRules) {
    if (!tomlRules.has(k)) out.push(`firewall rule ${k} is in the database but not in the TOML: it is still enforced ${VIA_CTL}`);
  }
  return out;
}

function diffListener(t: ListenerConfig, d: ListenerRecord): string[] {
  const out: string[] = [];
  const at = `listener "${t.addr}"`;
  if (t.maxConnections !== d.maxConnections) {
    out.push(`${at}: TOML max_connections ${t.maxConnections} differs from database ${d.maxConnections} ${VIA_CTL}`);
  }
  if (t.proxyProtocol !== d.proxyProtocol) {
    out.push(`${at}: TOML proxy_protocol ${t.proxyProtocol} differs from database ${d.proxyProtocol} ${VIA_SQL}`);
  }
  const ts = [...t.proxyProtocolTrusted].sort().join(",");
  const ds = [...d.proxyProtocolTrusted].sort().join(",");
  if (ts !== ds) {
    out.push(`${at}: TOML proxy_protocol_trusted [${ts}] differs from database [${ds}] ${VIA_SQL}`);
  }
  return out;
}

// TOML key → RouteRecord field, compared one by one so each warning names the key.
const ROUTE_FIELDS: [string, keyof RouteInput & keyof RouteRecord][] = [
  ["backend", "backend"],
  ["mode", "mode"],
  ["tls_cert", "tlsCert"],
  ["tls_key", "tlsKey"],
  ["backend_tls", "backendTls"],
  ["backend_protocol", "backendProtocol"],
  ["backend_tls_verify", "backendTlsVerify"],
  ["backend_tls_ca", "backendTlsCa"],
  ["backend_tls_server_name", "backendTlsServerName"],
  ["send_proxy_protocol", "sendProxyProtocol"],
];

/** True when the database route `d` has exactly the settings and policies (in order) of TOML route `t`. */
export function sameRoute(t: RouteConfig, d: RouteRecord): boolean {
  const input = routeInputOf(t);
  return (
    normalizeHostname(t.hostname) === normalizeHostname(d.hostname) &&
    ROUTE_FIELDS.every(([, f]) => input[f] === d[f]) &&
    policyList(t.l7Policies) === policyList(d.l7Policies)
  );
}

function policyList(ps: readonly { type: string; value: string }[]): string {
  return ps.map((p) => `${p.type}=${p.value}`).join(", ");
}

function diffRoutes(tl: ListenerConfig, dbRoutes: RouteRecord[]): string[] {
  const out: string[] = [];
  const on = `on listener "${tl.addr}"`;
  const db = new Map(dbRoutes.map((r) => [r.hostname.toLowerCase(), r]));
  const toml = new Set(tl.routes.map((r) => r.hostname.toLowerCase()));
  for (const tr of tl.routes) {
    const dr = db.get(tr.hostname.toLowerCase());
    const at = `route "${tr.hostname}" ${on}`;
    if (!dr) {
      out.push(`${at} is in the TOML but not in the database: it is not served ${VIA_CTL}`);
      continue;
    }
    const input = routeInputOf(tr);
    for (const [tomlKey, f] of ROUTE_FIELDS) {
      if (input[f] !== dr[f]) {
        out.push(`${at}: TOML ${tomlKey} ${show(input[f])} differs from database ${show(dr[f])} ${VIA_CTL}`);
      }
    }
    const tp = policyList(tr.l7Policies);
    const dp = policyList(dr.l7Policies);
    if (tp !== dp) out.push(`${at}: TOML l7_policies [${tp}] differ from database [${dp}] ${VIA_CTL}`);
  }
  for (const dr of dbRoutes) {
    if (!toml.has(dr.hostname.toLowerCase())) {
      out.push(`route "${dr.hostname}" ${on} is in the database but not in the TOML: it is still served ${VIA_CTL}`);
    }
  }
  return out;
}

function show(v: unknown): string {
  return v === "" ? '""' : String(v);
}
