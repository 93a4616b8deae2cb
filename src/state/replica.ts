/**
 * A worker thread's copy of the routing state (`[proxy] workers` > 1). The
 * main thread owns the State and the database; after every committed change
 * it sends each worker a whole snapshot (listeners, routes, firewall rules and
 * the certificates they use) and waits for every worker to apply it before
 * the admin RPC returns (src/server/workers.ts). Snapshots are small (a route
 * is a few hundred bytes; certificates are sent as PEM) and changes are rare,
 * so whole snapshots beat diffs on simplicity at no measurable cost.
 *
 * Certificates travel with an id: a worker keeps the CertPair object of an id
 * it already has, so the TLS context cache (keyed by CertPair) stays warm
 * across unrelated changes, and a SIGHUP that reloads a certificate gives it a
 * new id, hence a new context.
 */
import { X509Certificate } from "node:crypto";
import type { FirewallRuleRecord, ListenerRecord, RouteRecord } from "../records.ts";
import { CERT_BLOCK, type CertPair } from "../tls/certs.ts";
import { normalizeHostname } from "../config/validate.ts";
import type { ChangeKind, ListenerState, RouteEntry, RouteTable, State } from "./state.ts";

export interface WireCert {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  warnings: string[];
}

export interface Snapshot {
  listeners: { record: ListenerRecord; routes: { record: RouteRecord; cert: number; backendCa: string | null }[] }[];
  rules: FirewallRuleRecord[];
  /** Certificate id → PEMs; id 0 = no certificate. */
  certs: [number, WireCert][];
}

/** Numbers CertPair objects for snapshots (main thread). */
export class CertIds {
  private readonly ids = new WeakMap<CertPair, number>();
  private next = 1;

  idOf(c: CertPair): number {
    let id = this.ids.get(c);
    if (id === undefined) this.ids.set(c, (id = this.next++));
    return id;
  }
}

/** The snapshot of `state` a worker needs to serve exactly what the main thread serves. */
export function takeSnapshot(state: State, ids: CertIds): Snapshot {
  const certs = new Map<number, WireCert>();
  const listeners = state.listeners().map((l) => ({
    record: l.record,
    routes: [...l.routes.values()].map((e) => {
      if (!e.cert) return { record: e.record, cert: 0, backendCa: e.backendCa };
      const id = ids.idOf(e.cert);
      const { certPath, keyPath, certPem, keyPem, warnings } = e.cert;
      certs.set(id, { certPath, keyPath, certPem, keyPem, warnings });
      return { record: e.record, cert: id, backendCa: e.backendCa };
    }),
  }));
  return { listeners, rules: state.firewallRules(), certs: [...certs] };
}

export class Replica implements RouteTable {
  private readonly byAddr = new Map<string, ListenerState>();
  private rules: FirewallRuleRecord[] = [];
  private certs = new Map<number, CertPair>();
  private readonly subscribers: ((what: ChangeKind) => void)[] = [];

  constructor(first: Snapshot) {
    first.listeners.forEach((l, slot) => this.byAddr.set(l.record.addr, { record: l.record, routes: new Map(), slot }));
    this.apply(first);
  }

  listeners(): ListenerState[] {
    return [...this.byAddr.values()];
  }

  listener(addr: string): ListenerState | undefined {
    return this.byAddr.get(addr);
  }

  lookupRoute(l: ListenerState, sni: string): RouteEntry | undefined {
    return l.routes.get(normalizeHostname(sni));
  }

  lookupRouteKey(l: ListenerState, key: string): RouteEntry | undefined {
    return l.routes.get(key);
  }

  firewallRules(): FirewallRuleRecord[] {
    return this.rules;
  }

  onChange(cb: (what: ChangeKind) => void): void {
    this.subscribers.push(cb);
  }

  /** Installs a snapshot: the listener objects (and their counter slots) stay, routes and rules are replaced. */
  apply(s: Snapshot): void {
    const certs = new Map<number, CertPair>();
    for (const [id, w] of s.certs) certs.set(id, this.certs.get(id) ?? certPairFromWire(w));
    this.certs = certs;
    for (const l of s.listeners) {
      const ls = this.byAddr.get(l.record.addr);
      if (!ls) continue; // the listener set is fixed at start
      ls.record = l.record;
      const routes = new Map<string, RouteEntry>();
      for (const r of l.routes) {
        // Unchanged routes keep their entry object: the backend targets derived from it stay cached.
        const old = ls.routes.get(normalizeHostname(r.record.hostname));
        const cert = r.cert ? (certs.get(r.cert) ?? null) : null;
        const same = old && sameRecord(old.record, r.record) && old.cert === cert && old.backendCa === r.backendCa;
        routes.set(normalizeHostname(r.record.hostname), same ? old : { record: r.record, cert, backendCa: r.backendCa });
      }
      ls.routes = routes;
    }
    this.rules = s.rules;
    for (const cb of this.subscribers) {
      cb("listeners");
      cb("routes");
      cb("firewall");
    }
  }
}

/** Same route settings (records arrive as fresh copies in every snapshot). */
function sameRecord(a: RouteRecord, b: RouteRecord): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A CertPair from PEMs the main thread already checked (no file access, no key checks again). */
function certPairFromWire(w: WireCert): CertPair {
  const chain = (w.certPem.match(CERT_BLOCK) ?? []).map((b) => new X509Certificate(b));
  return { ...w, leaf: chain[0]!, chain };
}
