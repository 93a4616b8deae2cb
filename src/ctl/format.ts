/**
 * Output for mcproxyctl: proto messages → plain JSON documents (keys and enum values as in the
 * TOML: `backend_protocol: "auto"`, `type: "block_user_agent"`) and aligned text tables.
 * Pure functions; nothing here writes to a stream.
 */
import { firewallTypeName, modeName, policyTypeName, protocolName } from "../admin/convert.ts";
import { RouteMode, type FirewallRule, type L7Policy, type Listener, type Route } from "../gen/mc_proxy/v1/admin.ts";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Columns padded to the widest cell; two spaces between columns; no trailing spaces. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function policyJson(p: L7Policy): Json {
  return { type: policyTypeName(p.type), value: p.value };
}

export function routeJson(r: Route): Json {
  return {
    hostname: r.hostname,
    backend: r.backend,
    mode: modeName(r.mode),
    tls_cert: r.tlsCert,
    tls_key: r.tlsKey,
    backend_tls: r.backendTls,
    backend_protocol: protocolName(r.backendProtocol),
    backend_tls_verify: r.backendTlsVerify,
    backend_tls_ca: r.backendTlsCa,
    backend_tls_server_name: r.backendTlsServerName,
    send_proxy_protocol: r.sendProxyProtocol,
    l7_policies: r.l7Policies.map(policyJson),
  };
}

export function firewallRuleJson(r: FirewallRule): Json {
  return { type: firewallTypeName(r.type), value: r.value };
}

export function listenerJson(l: Listener): Json {
  return {
    addr: l.addr,
    proxy_protocol: l.proxyProtocol,
    proxy_protocol_trusted: l.proxyProtocolTrusted,
    max_connections: l.maxConnections,
    route_count: l.routeCount,
  };
}

/** "off", "on", or "on (trusted: a, b)": how a listener takes PROXY headers. */
export function proxySetting(on: boolean, trusted: string[]): string {
  if (!on) return "off";
  return trusted.length ? `on (trusted: ${trusted.join(", ")})` : "on (any peer)";
}

/** 0 → "unlimited". */
export const maxText = (n: number): string => (n > 0 ? String(n) : "unlimited");

/** One line per route: the settings that matter when reading a table. */
export function routesTable(routes: Route[]): string {
  if (routes.length === 0) return "no routes\n";
  return table(
    ["HOSTNAME", "MODE", "BACKEND", "OPTIONS", "POLICIES"],
    routes.map((r) => {
      const opts: string[] = [];
      if (r.mode === RouteMode.ROUTE_MODE_L7) opts.push(`cert=${r.tlsCert}`);
      if (r.backendTls) opts.push(r.backendTlsVerify ? "backend-tls(verify)" : "backend-tls");
      if (r.mode === RouteMode.ROUTE_MODE_L7) opts.push(`protocol=${protocolName(r.backendProtocol)}`);
      if (r.sendProxyProtocol) opts.push("send-proxy");
      return [
        r.hostname,
        modeName(r.mode),
        r.backend,
        opts.join(" ") || "-",
        r.l7Policies.map((p) => `${policyTypeName(p.type)}=${p.value}`).join(", ") || "-",
      ];
    }),
  );
}

export function rulesTable(rules: FirewallRule[]): string {
  if (rules.length === 0) return "no firewall rules\n";
  return table(["TYPE", "VALUE"], rules.map((r) => [firewallTypeName(r.type), r.value]));
}

export function policiesTable(policies: L7Policy[]): string {
  if (policies.length === 0) return "no policies\n";
  return table(["#", "TYPE", "VALUE"], policies.map((p, i) => [String(i + 1), policyTypeName(p.type), p.value]));
}

export function listenersTable(ls: Listener[]): string {
  if (ls.length === 0) return "no listeners\n";
  return table(
    ["LISTENER", "ROUTES", "MAX CONNECTIONS", "PROXY PROTOCOL"],
    ls.map((l) => [l.addr, String(l.routeCount), maxText(l.maxConnections), proxySetting(l.proxyProtocol, l.proxyProtocolTrusted)]),
  );
}
