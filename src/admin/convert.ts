/**
 * Pure conversions between the store's records (src/records.ts) and the generated proto
 * messages, shared by the admin server and the CLI. Enum decoding validates: an out-of-range
 * value throws InvalidArgumentError naming the field. UNSPECIFIED means the TOML default
 * (mode → "l4", backend_protocol → "auto"); for policy and firewall types it is an error.
 */
import type { BackendProtocol as BackendProtocolName, FirewallRuleType as FirewallTypeName, PolicyType, RouteMode as RouteModeName } from "../config/types.ts";
import { InvalidArgumentError } from "../errors.ts";
import {
  BackendProtocol,
  FirewallRuleType,
  L7PolicyType,
  RouteMode,
  type FirewallRule,
  type L7Policy,
  type Listener,
  type Route,
} from "../gen/mc_proxy/v1/admin.ts";
import type { FirewallRuleRecord, ListenerRecord, PolicyRecord, RouteInput, RouteRecord } from "../records.ts";

// One table per enum: proto value ↔ the name used in TOML, the database and the CLI.
const MODES: [RouteMode, RouteModeName][] = [
  [RouteMode.ROUTE_MODE_L4, "l4"],
  [RouteMode.ROUTE_MODE_L7, "l7"],
];
const PROTOCOLS: [BackendProtocol, BackendProtocolName][] = [
  [BackendProtocol.BACKEND_PROTOCOL_AUTO, "auto"],
  [BackendProtocol.BACKEND_PROTOCOL_H2, "h2"],
  [BackendProtocol.BACKEND_PROTOCOL_HTTP1, "http1"],
];
const POLICIES: [L7PolicyType, PolicyType][] = [
  [L7PolicyType.L7_POLICY_TYPE_BLOCK_USER_AGENT, "block_user_agent"],
  [L7PolicyType.L7_POLICY_TYPE_REQUIRE_HEADER, "require_header"],
];
const FIREWALL: [FirewallRuleType, FirewallTypeName][] = [
  [FirewallRuleType.FIREWALL_RULE_TYPE_IP, "ip"],
  [FirewallRuleType.FIREWALL_RULE_TYPE_CIDR, "cidr"],
  [FirewallRuleType.FIREWALL_RULE_TYPE_COUNTRY, "country"],
];

function fromProto<P, N extends string>(table: [P, N][], v: P, field: string, dflt?: N): N {
  if (v === 0 && dflt !== undefined) return dflt;
  const hit = table.find(([p]) => p === v);
  if (hit) return hit[1];
  const names = table.map(([, n]) => n).join(", ");
  throw new InvalidArgumentError(field, v === 0 ? `required (one of ${names})` : `unknown value ${String(v)} (one of ${names})`);
}

function toProto<P, N extends string>(table: [P, N][], name: N): P {
  const hit = table.find(([, n]) => n === name);
  if (!hit) throw new Error(`no proto value for ${name}`); // unreachable for typed callers
  return hit[0];
}

/** Names accepted on the command line, in table order. */
export const MODE_NAMES = MODES.map(([, n]) => n);
export const PROTOCOL_NAMES = PROTOCOLS.map(([, n]) => n);
export const POLICY_NAMES = POLICIES.map(([, n]) => n);
export const FIREWALL_NAMES = FIREWALL.map(([, n]) => n);

export const modeName = (v: RouteMode, field = "route.mode"): RouteModeName => fromProto(MODES, v, field, "l4");
export const protocolName = (v: BackendProtocol, field = "route.backend_protocol"): BackendProtocolName =>
  fromProto(PROTOCOLS, v, field, "auto");
export const policyTypeName = (v: L7PolicyType, field = "policy.type"): PolicyType => fromProto(POLICIES, v, field);
export const firewallTypeName = (v: FirewallRuleType, field = "rule.type"): FirewallTypeName => fromProto(FIREWALL, v, field);

export const modeProto = (n: RouteModeName): RouteMode => toProto(MODES, n);
export const protocolProto = (n: BackendProtocolName): BackendProtocol => toProto(PROTOCOLS, n);
export const policyTypeProto = (n: PolicyType): L7PolicyType => toProto(POLICIES, n);
export const firewallTypeProto = (n: FirewallTypeName): FirewallRuleType => toProto(FIREWALL, n);

/** A stored policy as a proto message. */
export function policyToProto(p: Pick<PolicyRecord, "type" | "value">): L7Policy {
  return { type: policyTypeProto(p.type), value: p.value };
}

/** A stored route as a proto message (policies in evaluation order). */
export function routeToProto(r: RouteRecord): Route {
  return {
    hostname: r.hostname,
    backend: r.backend,
    mode: modeProto(r.mode),
    tlsCert: r.tlsCert,
    tlsKey: r.tlsKey,
    backendTls: r.backendTls,
    backendProtocol: protocolProto(r.backendProtocol),
    backendTlsVerify: r.backendTlsVerify,
    backendTlsCa: r.backendTlsCa,
    backendTlsServerName: r.backendTlsServerName,
    sendProxyProtocol: r.sendProxyProtocol,
    l7Policies: r.l7Policies.map(policyToProto),
  };
}

/**
 * A requested route as the State's input. Checks only what the proto can get wrong (enum
 * ranges); hostname, backend, certificates and the rest are validated by the State.
 * An empty `l7_policies` keeps the route's existing policies (proto3 cannot tell "empty" from
 * "not given", and a redeploy must not silently drop policies); a non-empty list replaces them.
 */
export function routeFromProto(r: Route): RouteInput {
  return {
    hostname: r.hostname,
    backend: r.backend,
    mode: modeName(r.mode),
    tlsCert: r.tlsCert,
    tlsKey: r.tlsKey,
    backendTls: r.backendTls,
    backendProtocol: protocolName(r.backendProtocol),
    backendTlsVerify: r.backendTlsVerify,
    backendTlsCa: r.backendTlsCa,
    backendTlsServerName: r.backendTlsServerName,
    sendProxyProtocol: r.sendProxyProtocol,
    l7Policies:
      r.l7Policies.length === 0
        ? undefined
        : r.l7Policies.map((p, i) => ({ type: policyTypeName(p.type, `route.l7_policies[${i}].type`), value: p.value })),
  };
}

/** A stored firewall rule as a proto message. */
export function firewallRuleToProto(r: Pick<FirewallRuleRecord, "type" | "value">): FirewallRule {
  return { type: firewallTypeProto(r.type), value: r.value };
}

/** A listener record (plus its route count) as a proto message. */
export function listenerToProto(l: ListenerRecord, routeCount: number): Listener {
  return {
    addr: l.addr,
    proxyProtocol: l.proxyProtocol,
    proxyProtocolTrusted: [...l.proxyProtocolTrusted],
    maxConnections: l.maxConnections,
    routeCount,
  };
}
