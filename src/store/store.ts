/**
 * The repository over bun:sqlite: the only code (besides migrations and
 * snapshot) that writes SQL. Small and synchronous. Every database failure
 * surfaces as StoreError; multi-statement writes run in one transaction, so a
 * failure leaves the database as it was. Hostnames are stored lower-case.
 */
import type { Database } from "bun:sqlite";
import type { FirewallRuleType, PolicyType } from "../config/types.ts";
import { InvalidArgumentError, NotFoundError, StoreError } from "../errors.ts";
import type { FirewallRuleRecord, ListenerRecord, PolicyRecord, RouteInput, RouteRecord } from "../records.ts";
import { openDatabase } from "./db.ts";

interface ListenerRow {
  id: number;
  addr: string;
  proxy_protocol: number;
  max_connections: number;
}
interface RouteRow {
  id: number;
  listener_id: number;
  hostname: string;
  backend: string;
  mode: string;
  tls_cert: string;
  tls_key: string;
  backend_tls: number;
  backend_protocol: string;
  backend_tls_verify: number;
  backend_tls_ca: string;
  backend_tls_server_name: string;
  send_proxy_protocol: number;
}
interface PolicyRow {
  id: number;
  route_id: number;
  type: string;
  value: string;
}

export type ListenerInput = Omit<ListenerRecord, "id">;

export class Store {
  constructor(readonly db: Database) {}

  /** Opens the database at `path` (see openDatabase) and wraps it. */
  static open(path: string): Store {
    return new Store(openDatabase(path));
  }

  close(): void {
    this.db.close();
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction (nested calls become savepoints).
   * Any error rolls everything back; SQLite errors become StoreError.
   */
  transaction<T>(fn: () => T): T {
    return this.guard("transaction", () => this.db.transaction(fn).immediate());
  }

  /** True when there are no listeners, routes or firewall rules (seeding condition). */
  isEmpty(): boolean {
    return this.guard("check empty", () => {
      const q = (t: string) => this.db.query(`SELECT 1 FROM ${t} LIMIT 1`).get() !== null;
      return !q("listeners") && !q("routes") && !q("firewall_rules");
    });
  }

  // ---- listeners ----

  /** All listeners in id order, each with its trusted PROXY CIDRs. */
  listListeners(): ListenerRecord[] {
    return this.guard("list listeners", () =>
      this.db
        .query<ListenerRow, []>("SELECT id, addr, proxy_protocol, max_connections FROM listeners ORDER BY id")
        .all()
        .map((r) => this.toListener(r)),
    );
  }

  /** The listener with exactly this addr, or null. */
  getListener(addr: string): ListenerRecord | null {
    return this.guard(`get listener ${addr}`, () => {
      const r = this.db
        .query<ListenerRow, [string]>("SELECT id, addr, proxy_protocol, max_connections FROM listeners WHERE addr = ?")
        .get(addr);
      return r ? this.toListener(r) : null;
    });
  }

  /** Inserts a listener with its trusted CIDRs; a duplicate addr is a StoreError. */
  insertListener(input: ListenerInput): ListenerRecord {
    return this.transaction(() => {
      const r = this.db
        .query<{ id: number }, [string, number, number]>(
          "INSERT INTO listeners (addr, proxy_protocol, max_connections) VALUES (?, ?, ?) RETURNING id",
        )
        .get(input.addr, input.proxyProtocol ? 1 : 0, input.maxConnections)!;
      this.replaceTrusted(r.id, input.proxyProtocolTrusted);
      return this.mustListener(r.id);
    });
  }

  /** Sets max_connections; NotFoundError when no listener has this id. */
  setMaxConnections(listenerId: number, n: number): ListenerRecord {
    return this.transaction(() => {
      const res = this.db.query("UPDATE listeners SET max_connections = ? WHERE id = ?").run(n, listenerId);
      if (res.changes === 0) throw new NotFoundError(`listener id ${listenerId} not found`);
      return this.mustListener(listenerId);
    });
  }

  /** Replaces the listener's trusted PROXY-header CIDRs with `cidrs` (duplicates collapse). */
  setProxyTrusted(listenerId: number, cidrs: readonly string[]): ListenerRecord {
    return this.transaction(() => {
      this.replaceTrusted(listenerId, cidrs);
      return this.mustListener(listenerId);
    });
  }

  // ---- routes ----

  /** Routes (with policies in id order), all or one listener's, ordered by id. */
  listRoutes(listenerId?: number): RouteRecord[] {
    return this.guard("list routes", () => {
      const rows =
        listenerId === undefined
          ? this.db.query<RouteRow, []>("SELECT * FROM routes ORDER BY id").all()
          : this.db.query<RouteRow, [number]>("SELECT * FROM routes WHERE listener_id = ? ORDER BY id").all(listenerId);
      const policies = this.policiesByRoute();
      return rows.map((r) => toRoute(r, policies.get(r.id) ?? []));
    });
  }

  /** The route for (listener, hostname), hostname compared lower-case; null when absent. */
  getRoute(listenerId: number, hostname: string): RouteRecord | null {
    return this.guard(`get route ${hostname}`, () => {
      const r = this.db
        .query<RouteRow, [number, string]>("SELECT * FROM routes WHERE listener_id = ? AND lower(hostname) = ?")
        .get(listenerId, hostname.toLowerCase());
      return r ? toRoute(r, this.listPolicies(r.id)) : null;
    });
  }

  /**
   * Inserts or updates the route for (listener, hostname) — an existing row
   * keeps its id. When `input.l7Policies` is given the route's policies are
   * replaced by it in the same transaction; when undefined they are kept.
   */
  upsertRoute(listenerId: number, input: RouteInput): RouteRecord {
    return this.transaction(() => {
      const r = this.db
        .query<{ id: number }, (string | number)[]>(
          `INSERT INTO routes (listener_id, hostname, backend, mode, tls_cert, tls_key, backend_tls,
             backend_protocol, backend_tls_verify, backend_tls_ca, backend_tls_server_name, send_proxy_protocol)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(listener_id, hostname) DO UPDATE SET
             backend = excluded.backend, mode = excluded.mode, tls_cert = excluded.tls_cert,
             tls_key = excluded.tls_key, backend_tls = excluded.backend_tls,
             backend_protocol = excluded.backend_protocol, backend_tls_verify = excluded.backend_tls_verify,
             backend_tls_ca = excluded.backend_tls_ca, backend_tls_server_name = excluded.backend_tls_server_name,
             send_proxy_protocol = excluded.send_proxy_protocol
           RETURNING id`,
        )
        .get(
          listenerId,
          input.hostname.toLowerCase(),
          input.backend,
          input.mode,
          input.tlsCert,
          input.tlsKey,
          input.backendTls ? 1 : 0,
          input.backendProtocol,
          input.backendTlsVerify ? 1 : 0,
          input.backendTlsCa,
          input.backendTlsServerName,
          input.sendProxyProtocol ? 1 : 0,
        )!;
      if (input.l7Policies) {
        this.db.query("DELETE FROM l7_policies WHERE route_id = ?").run(r.id);
        const ins = this.db.query("INSERT INTO l7_policies (route_id, type, value) VALUES (?, ?, ?)");
        for (const p of input.l7Policies) ins.run(r.id, p.type, p.value);
      }
      const row = this.db.query<RouteRow, [number]>("SELECT * FROM routes WHERE id = ?").get(r.id)!;
      return toRoute(row, this.listPolicies(r.id));
    });
  }

  /** Deletes the route (its policies cascade). Returns false when there was none. */
  removeRoute(listenerId: number, hostname: string): boolean {
    return this.guard(`remove route ${hostname}`, () => {
      const res = this.db
        .query("DELETE FROM routes WHERE listener_id = ? AND lower(hostname) = ?")
        .run(listenerId, hostname.toLowerCase());
      return res.changes > 0;
    });
  }

  // ---- firewall rules ----

  /** All firewall rules in id order. */
  listFirewallRules(): FirewallRuleRecord[] {
    return this.guard("list firewall rules", () =>
      this.db
        .query<{ id: number; type: FirewallRuleType; value: string }, []>(
          "SELECT id, type, value FROM firewall_rules ORDER BY id",
        )
        .all(),
    );
  }

  /**
   * Adds a rule. Idempotent: adding a rule that already exists returns the
   * existing record (repeated deploys / scripts must not fail on it).
   */
  addFirewallRule(type: FirewallRuleType, value: string): FirewallRuleRecord {
    return this.transaction(() => {
      this.db.query("INSERT INTO firewall_rules (type, value) VALUES (?, ?) ON CONFLICT(type, value) DO NOTHING").run(type, value);
      return this.db
        .query<FirewallRuleRecord, [string, string]>("SELECT id, type, value FROM firewall_rules WHERE type = ? AND value = ?")
        .get(type, value)!;
    });
  }

  /** Deletes a rule; false when there was none. */
  removeFirewallRule(type: FirewallRuleType, value: string): boolean {
    return this.guard(`remove firewall rule ${type} ${value}`, () => {
      return this.db.query("DELETE FROM firewall_rules WHERE type = ? AND value = ?").run(type, value).changes > 0;
    });
  }

  // ---- L7 policies ----

  /** The route's policies in id (= evaluation) order. */
  listPolicies(routeId: number): PolicyRecord[] {
    return this.guard("list policies", () =>
      this.db
        .query<PolicyRow, [number]>("SELECT id, route_id, type, value FROM l7_policies WHERE route_id = ? ORDER BY id")
        .all(routeId)
        .map(toPolicy),
    );
  }

  /**
   * Appends a policy to the route. A duplicate (same type and value) is
   * refused with InvalidArgumentError("policy", …): unlike firewall rules, a
   * policy list is ordered and a silent no-op would hide a mistake.
   */
  addPolicy(routeId: number, type: PolicyType, value: string): PolicyRecord {
    return this.transaction(() => {
      const dup = this.db.query("SELECT 1 FROM l7_policies WHERE route_id = ? AND type = ? AND value = ?").get(routeId, type, value);
      if (dup) throw new InvalidArgumentError("policy", `the route already has a ${type} policy with value ${JSON.stringify(value)}`);
      const r = this.db
        .query<PolicyRow, [number, string, string]>(
          "INSERT INTO l7_policies (route_id, type, value) VALUES (?, ?, ?) RETURNING id, route_id, type, value",
        )
        .get(routeId, type, value)!;
      return toPolicy(r);
    });
  }

  /** Deletes a policy; false when there was none. */
  removePolicy(routeId: number, type: PolicyType, value: string): boolean {
    return this.guard("remove policy", () => {
      return this.db.query("DELETE FROM l7_policies WHERE route_id = ? AND type = ? AND value = ?").run(routeId, type, value).changes > 0;
    });
  }

  // ---- internals ----

  /** Runs `fn`, turning any error that is not already one of ours into StoreError. */
  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof StoreError || e instanceof NotFoundError || e instanceof InvalidArgumentError) throw e;
      throw new StoreError(`database: ${what} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  private replaceTrusted(listenerId: number, cidrs: readonly string[]): void {
    this.db.query("DELETE FROM listener_proxy_trusted WHERE listener_id = ?").run(listenerId);
    const ins = this.db.query("INSERT INTO listener_proxy_trusted (listener_id, cidr) VALUES (?, ?) ON CONFLICT DO NOTHING");
    for (const c of cidrs) ins.run(listenerId, c);
  }

  private mustListener(id: number): ListenerRecord {
    const r = this.db.query<ListenerRow, [number]>("SELECT id, addr, proxy_protocol, max_connections FROM listeners WHERE id = ?").get(id);
    if (!r) throw new NotFoundError(`listener id ${id} not found`);
    return this.toListener(r);
  }

  private toListener(r: ListenerRow): ListenerRecord {
    const trusted = this.db
      .query<{ cidr: string }, [number]>("SELECT cidr FROM listener_proxy_trusted WHERE listener_id = ? ORDER BY id")
      .all(r.id)
      .map((t) => t.cidr);
    return {
      id: r.id,
      addr: r.addr,
      proxyProtocol: r.proxy_protocol !== 0,
      proxyProtocolTrusted: trusted,
      maxConnections: r.max_connections,
    };
  }

  private policiesByRoute(): Map<number, PolicyRecord[]> {
    const m = new Map<number, PolicyRecord[]>();
    for (const r of this.db.query<PolicyRow, []>("SELECT id, route_id, type, value FROM l7_policies ORDER BY id").all()) {
      const list = m.get(r.route_id) ?? [];
      list.push(toPolicy(r));
      m.set(r.route_id, list);
    }
    return m;
  }
}

function toPolicy(r: PolicyRow): PolicyRecord {
  return { id: r.id, routeId: r.route_id, type: r.type as PolicyType, value: r.value };
}

// Rows may come from operator INSERTs: the CHECK constraints guarantee mode/protocol values.
function toRoute(r: RouteRow, policies: PolicyRecord[]): RouteRecord {
  return {
    id: r.id,
    listenerId: r.listener_id,
    hostname: r.hostname,
    backend: r.backend,
    mode: r.mode as RouteRecord["mode"],
    tlsCert: r.tls_cert,
    tlsKey: r.tls_key,
    backendTls: r.backend_tls !== 0,
    backendProtocol: r.backend_protocol as RouteRecord["backendProtocol"],
    backendTlsVerify: r.backend_tls_verify !== 0,
    backendTlsCa: r.backend_tls_ca,
    backendTlsServerName: r.backend_tls_server_name,
    sendProxyProtocol: r.send_proxy_protocol !== 0,
    l7Policies: policies,
  };
}
