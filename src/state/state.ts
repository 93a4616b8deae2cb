/**
 * The in-memory state the connection pipeline reads and the admin API
 * mutates. Every mutation is write-through: validate, write the database,
 * then update memory, then notify subscribers. When the database write throws,
 * memory is untouched and the error propagates.
 *
 * Copy-on-write for routes: a change replaces the RouteEntry object, so a
 * connection that already holds an entry keeps a consistent view. Listener
 * changes replace `ListenerState.record` but keep the ListenerState object
 * (and its counter slot).
 */
import type { FirewallRuleType, PolicyType } from "../config/types.ts";
import { POLICY_TYPES, checkCidr, checkCountry, checkIp, checkPolicyValue, formatProblem, normalizeHostname, validateRoute } from "../config/validate.ts";
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import { normalizeIp, parseCidr } from "../net/ip.ts";
import { type CertPair, loadCertPair } from "../tls/certs.ts";
import { log } from "../obs/log.ts";
import { type FileReadError, readSmallFile } from "../fsread.ts";
import type { Store } from "../store/store.ts";
import type { FirewallRuleRecord, ListenerRecord, PolicyRecord, RouteInput, RouteRecord } from "../records.ts";

export interface RouteEntry {
  readonly record: RouteRecord;
  /** L7: loaded, checked cert; null for L4 or when loading failed at start */
  cert: CertPair | null;
  /**
   * L7 with backend_tls_verify and backend_tls_ca: the CA bundle's PEM, read
   * with the route (start, AddRoute, SIGHUP) like its certificate, so every
   * data-path thread verifies with the same bytes whatever happens to the
   * file later. null when unused, or unreadable when the route was loaded
   * (its requests then answer 502, logged: see src/l7/backend/target.ts).
   */
  backendCa: string | null;
}

/** The backend CA PEM a route verifies with (see RouteEntry.backendCa); logs and returns null when unreadable. */
export function loadBackendCa(record: RouteRecord, listenerAddr: string): string | null {
  if (record.mode !== "l7" || !record.backendTls || !record.backendTlsVerify || !record.backendTlsCa) return null;
  try {
    return readSmallFile(record.backendTlsCa);
  } catch (e) {
    log.warn("route.backend_ca_unreadable", { listener: listenerAddr, hostname: record.hostname, file: record.backendTlsCa, reason: (e as FileReadError).message ?? String(e) });
    return null;
  }
}

export interface ListenerState {
  record: ListenerRecord;
  /** normalized hostname → entry */
  routes: Map<string, RouteEntry>;
  /** Index of this listener in database order: its slot in the shared connection counters (src/server/counters.ts). */
  slot: number;
}

/**
 * What the data path reads: the listeners, their routes and the firewall
 * rules, and a change feed. The State (main thread, write-through to the
 * database) and a worker's Replica (src/state/replica.ts) both provide it.
 */
export interface RouteTable {
  listeners(): ListenerState[];
  listener(addr: string): ListenerState | undefined;
  lookupRoute(l: ListenerState, sni: string): RouteEntry | undefined;
  /** lookupRoute with the SNI already normalized (normalizeHostname): once per L7 request. */
  lookupRouteKey(l: ListenerState, key: string): RouteEntry | undefined;
  firewallRules(): FirewallRuleRecord[];
  onChange(cb: (what: ChangeKind) => void): void;
}

export type ChangeKind = "firewall" | "routes" | "listeners";

const RULE_TYPES: readonly FirewallRuleType[] = ["ip", "cidr", "country"];

// Route-table key: lower-cased, exactly one trailing dot removed ("a.example.com.." matches nothing).
const routeKey = normalizeHostname;

/**
 * Canonical form of a firewall rule value, or an error detail. IPs and CIDRs
 * are canonicalised (so "::ffff:1.2.3.4" and "1.2.3.4" are one rule),
 * countries upper-cased.
 */
export function canonicalRuleValue(type: FirewallRuleType, value: string): { value: string } | { error: string } {
  const v = value.trim();
  switch (type) {
    case "ip": {
      const err = checkIp(v);
      return err ? { error: err } : { value: normalizeIp(v) ?? v };
    }
    case "cidr": {
      const err = checkCidr(v);
      return err ? { error: err } : { value: parseCidr(v)?.text ?? v };
    }
    case "country": {
      const err = checkCountry(v);
      return err ? { error: err } : { value: v.toUpperCase() };
    }
  }
}

export class State implements RouteTable {
  private readonly byAddr = new Map<string, ListenerState>();
  private rules: FirewallRuleRecord[];
  private readonly subscribers: ((what: ChangeKind) => void)[] = [];

  private constructor(
    readonly store: Store,
    listeners: ListenerState[],
    rules: FirewallRuleRecord[],
  ) {
    for (const l of listeners) this.byAddr.set(l.record.addr, l);
    this.rules = rules;
  }

  /**
   * Builds memory from the database. An L7 route whose certificate fails to
   * load is kept with cert=null (the pipeline refuses its handshakes) and a
   * warning naming the host and reason; start-up does not fail for it.
   */
  static load(store: Store): State {
    const listeners: ListenerState[] = store.listListeners().map((record, slot) => ({ record, routes: new Map(), slot }));
    const byId = new Map(listeners.map((l) => [l.record.id, l]));
    for (const record of store.listRoutes()) {
      const l = byId.get(record.listenerId);
      if (!l) continue; // impossible with foreign keys on; keep going rather than crash
      let cert: CertPair | null = null;
      if (record.mode === "l7") {
        try {
          cert = loadCertPair(record.tlsCert, record.tlsKey);
          for (const w of cert.warnings) log.warn("route.cert_warning", { listener: l.record.addr, hostname: record.hostname, detail: w });
        } catch (e) {
          log.warn("route.cert_load_failed", { listener: l.record.addr, hostname: record.hostname, reason: (e as Error).message });
        }
      }
      l.routes.set(routeKey(record.hostname), { record, cert, backendCa: loadBackendCa(record, l.record.addr) });
    }
    return new State(store, listeners, store.listFirewallRules());
  }

  /** Listeners in database (id) order. */
  listeners(): ListenerState[] {
    return [...this.byAddr.values()];
  }

  /** The listener named by its addr exactly as configured (":443"). */
  listener(addr: string): ListenerState | undefined {
    return this.byAddr.get(addr);
  }

  /** The route for an SNI on this listener: lower-cased, ONE trailing dot ignored, then exact match. */
  lookupRoute(l: ListenerState, sni: string): RouteEntry | undefined {
    return l.routes.get(routeKey(sni));
  }

  lookupRouteKey(l: ListenerState, key: string): RouteEntry | undefined {
    return l.routes.get(key);
  }

  /** The current firewall rules (a fresh array is installed on every change; do not mutate). */
  firewallRules(): FirewallRuleRecord[] {
    return this.rules;
  }

  /** Calls `cb` after each committed change, once memory reflects it. */
  onChange(cb: (what: ChangeKind) => void): void {
    this.subscribers.push(cb);
  }

  /**
   * Adds or updates (upsert) the route for (listener, hostname). Throws
   * NotFoundError for an unknown listener, InvalidArgumentError for invalid
   * input or an unusable L7 certificate, StoreError when the database fails.
   * `input.l7Policies` replaces the route's policies when given, else keeps them.
   */
  addRoute(listenerAddr: string, input: RouteInput): RouteRecord {
    const l = this.mustListener(listenerAddr);
    const hostname = normalizeHostname(input.hostname.trim());
    const candidate: RouteInput = { ...input, hostname };
    // Loads and checks the L7 cert/key too (refused here, never at handshake time).
    const check = validateRoute(candidate, "route");
    if (check.problems.length > 0) {
      const [first, ...rest] = check.problems;
      throw new InvalidArgumentError(first!.path, [first!.detail, ...rest.map(formatProblem)].join("; "));
    }
    for (const w of check.warnings) log.warn("route.warning", { listener: l.record.addr, hostname, detail: formatProblem(w) });
    const cert = candidate.mode === "l7" ? check.cert : null;

    const record = this.store.upsertRoute(l.record.id, candidate); // throws → memory untouched
    l.routes.set(routeKey(record.hostname), { record, cert, backendCa: loadBackendCa(record, l.record.addr) });
    log.info("state.route_upserted", { listener: l.record.addr, hostname: record.hostname, backend: record.backend, mode: record.mode });
    this.emit("routes");
    return record;
  }

  /** Removes the route; NotFoundError when the listener or route does not exist. */
  removeRoute(listenerAddr: string, hostname: string): void {
    const l = this.mustListener(listenerAddr);
    const key = routeKey(hostname);
    const entry = this.mustRoute(l, hostname);
    // false = the row was already gone (deleted by hand): memory follows the database either way.
    this.store.removeRoute(l.record.id, entry.record.hostname);
    l.routes.delete(key);
    log.info("state.route_removed", { listener: l.record.addr, hostname: entry.record.hostname });
    this.emit("routes");
  }

  /**
   * Adds a firewall rule (value canonicalised; see canonicalRuleValue).
   * Idempotent: an existing rule is returned unchanged.
   */
  addFirewallRule(type: FirewallRuleType, value: string): FirewallRuleRecord {
    if (!RULE_TYPES.includes(type)) throw new InvalidArgumentError("rule.type", `must be one of ${RULE_TYPES.join(", ")}`);
    const c = canonicalRuleValue(type, value);
    if ("error" in c) throw new InvalidArgumentError("rule.value", c.error);
    const rec = this.store.addFirewallRule(type, c.value);
    if (!this.rules.some((r) => r.id === rec.id)) {
      this.rules = [...this.rules, rec];
      log.info("state.firewall_rule_added", { type, value: rec.value });
      this.emit("firewall");
    }
    return rec;
  }

  /** Removes a firewall rule (matched as given or canonicalised); NotFoundError when absent. */
  removeFirewallRule(type: FirewallRuleType, value: string): void {
    if (!RULE_TYPES.includes(type)) throw new InvalidArgumentError("rule.type", `must be one of ${RULE_TYPES.join(", ")}`);
    const c = canonicalRuleValue(type, value);
    const candidates = [...new Set(["value" in c ? c.value : value.trim(), value])];
    const victim = this.rules.find((r) => r.type === type && candidates.includes(r.value));
    // One transaction: a failure on the second form must not leave the first deleted (memory would then lie).
    const removed = this.store.transaction(() => {
      let any = false;
      for (const v of candidates) any = this.store.removeFirewallRule(type, v) || any;
      return any;
    });
    if (!removed && !victim) throw new NotFoundError(`firewall rule ${type} ${value} not found`);
    this.rules = this.rules.filter((r) => !(r.type === type && candidates.includes(r.value)));
    log.info("state.firewall_rule_removed", { type, value });
    this.emit("firewall");
  }

  /** Sets the listener's connection cap (integer >= 0; 0 = unlimited). */
  setMaxConnections(listenerAddr: string, n: number): ListenerRecord {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) {
      throw new InvalidArgumentError("max_connections", `must be an integer between 0 and ${0x7fffffff}, got ${n}`);
    }
    const l = this.mustListener(listenerAddr);
    l.record = this.store.setMaxConnections(l.record.id, n);
    log.info("state.max_connections_set", { listener: l.record.addr, max_connections: n });
    this.emit("listeners");
    return l.record;
  }

  /** The route's policies in evaluation order; NotFoundError for an unknown listener/route. */
  listPolicies(listenerAddr: string, hostname: string): PolicyRecord[] {
    return this.mustRoute(this.mustListener(listenerAddr), hostname).record.l7Policies;
  }

  /**
   * Appends a policy to the route. InvalidArgumentError for a bad type, an
   * empty or over-long value (L7_POLICY_VALUE_MAX_CHARS) or a duplicate; a policy on an L4 route is accepted with a
   * warning (it has no effect there, as in the TOML).
   */
  addPolicy(listenerAddr: string, hostname: string, type: PolicyType, value: string): PolicyRecord {
    if (!(POLICY_TYPES as readonly string[]).includes(type)) {
      throw new InvalidArgumentError("policy.type", `${JSON.stringify(type)} is not one of ${POLICY_TYPES.join(", ")}`);
    }
    const valueErr = checkPolicyValue(type, value);
    if (valueErr) throw new InvalidArgumentError("policy.value", valueErr);
    const l = this.mustListener(listenerAddr);
    const entry = this.mustRoute(l, hostname);
    if (entry.record.mode !== "l7") {
      log.warn("state.policy_on_l4_route", { listener: l.record.addr, hostname: entry.record.hostname, type });
    }
    const p = this.store.addPolicy(entry.record.id, type, value);
    this.replaceEntry(l, entry, { ...entry.record, l7Policies: [...entry.record.l7Policies, p] });
    log.info("state.policy_added", { listener: l.record.addr, hostname: entry.record.hostname, type, value });
    this.emit("routes");
    return p;
  }

  /** Removes a policy; NotFoundError when the listener, route or policy does not exist. */
  removePolicy(listenerAddr: string, hostname: string, type: PolicyType, value: string): void {
    const l = this.mustListener(listenerAddr);
    const entry = this.mustRoute(l, hostname);
    if (!this.store.removePolicy(entry.record.id, type, value)) {
      throw new NotFoundError(`route "${entry.record.hostname}" on listener "${l.record.addr}" has no ${type} policy ${JSON.stringify(value)}`);
    }
    const l7Policies = entry.record.l7Policies.filter((p) => !(p.type === type && p.value === value));
    this.replaceEntry(l, entry, { ...entry.record, l7Policies });
    log.info("state.policy_removed", { listener: l.record.addr, hostname: entry.record.hostname, type, value });
    this.emit("routes");
  }

  /**
   * SIGHUP: reloads every L7 route's certificate from disk. A route whose
   * files fail keeps its previous CertPair (possibly null) and is logged.
   */
  reloadCertificates(): { reloaded: number; failed: number } {
    let reloaded = 0;
    let failed = 0;
    for (const l of this.byAddr.values()) {
      for (const [key, entry] of l.routes) {
        if (entry.record.mode !== "l7") continue;
        // The backend CA too; unreadable now: keep the bundle read before (as for certificates).
        const backendCa = loadBackendCa(entry.record, l.record.addr) ?? entry.backendCa;
        try {
          const cert = loadCertPair(entry.record.tlsCert, entry.record.tlsKey);
          for (const w of cert.warnings) log.warn("route.cert_warning", { listener: l.record.addr, hostname: entry.record.hostname, detail: w });
          l.routes.set(key, { record: entry.record, cert, backendCa });
          reloaded++;
        } catch (e) {
          failed++;
          if (backendCa !== entry.backendCa) l.routes.set(key, { ...entry, backendCa });
          log.warn("cert.reload_failed", {
            listener: l.record.addr,
            hostname: entry.record.hostname,
            reason: (e as Error).message,
            kept: entry.cert ? "previous certificate" : "none (route refuses handshakes)",
          });
        }
      }
    }
    log.info("cert.reload", { reloaded, failed });
    if (reloaded > 0) this.emit("routes");
    return { reloaded, failed };
  }

  // ---- internals ----

  private mustListener(addr: string): ListenerState {
    const l = this.byAddr.get(addr);
    if (!l) throw new NotFoundError(`listener "${addr}" not found`);
    return l;
  }

  private mustRoute(l: ListenerState, hostname: string): RouteEntry {
    const e = l.routes.get(routeKey(hostname.trim()));
    if (!e) throw new NotFoundError(`route "${hostname}" on listener "${l.record.addr}" not found`);
    return e;
  }

  /** Installs a new entry object (same cert) so holders of the old one are unaffected. */
  private replaceEntry(l: ListenerState, old: RouteEntry, record: RouteRecord): void {
    l.routes.set(routeKey(old.record.hostname), { record, cert: old.cert, backendCa: old.backendCa });
  }

  private emit(what: ChangeKind): void {
    for (const cb of this.subscribers) {
      try {
        cb(what);
      } catch (e) {
        // A subscriber bug must not make a committed change look failed.
        log.error("state.subscriber_failed", { what, error: (e as Error).message });
      }
    }
  }
}
