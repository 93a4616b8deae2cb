/**
 * Pure validators shared by the config loader and the admin API. Each
 * `check*` returns a problem text or null; nothing here knows about TOML.
 * Paths in problems use the TOML / proto field names (snake_case) under a
 * caller-given prefix: `listeners[0].routes[1]` (config) or `route` (admin).
 */
import { X509Certificate } from "node:crypto";
import { closeSync } from "node:fs";
import { FileReadError, openRegularFile, readSmallFile } from "../fsread.ts";
import { isIP } from "node:net";
import { CertError, loadCertPair, type CertPair } from "../tls/certs.ts";
import { InvalidArgumentError } from "../errors.ts";
import { splitHostPort } from "../net/addr.ts";
import { L7_POLICY_VALUE_MAX_CHARS } from "../limits.ts";

/** One validation finding: where (`listeners[0].routes[1].backend`) and what. */
export interface Problem {
  path: string;
  detail: string;
}

export const ROUTE_MODES = ["l4", "l7"] as const;
export const BACKEND_PROTOCOLS = ["auto", "h2", "http1"] as const;
export const POLICY_TYPES = ["block_user_agent", "require_header"] as const;

/** Render problems as `path: detail` lines (warnings are reported this way). */
export function formatProblem(p: Problem): string {
  return p.path ? `${p.path}: ${p.detail}` : p.detail;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Lower-case a hostname and strip ONE trailing dot (the form routes are stored and matched in). */
export function normalizeHostname(s: string): string {
  const lower = s.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/**
 * A route hostname must be an exact DNS name as sent in SNI: letters, digits,
 * hyphens, dot-separated labels of 1–63 chars, ≤253 chars; case-insensitive;
 * one trailing dot allowed. No port, scheme, path, wildcard or IP literal
 * (SNI never carries an IP address).
 */
export function checkHostname(s: string): string | null {
  if (s === "") return "hostname is empty";
  if (s.includes("://")) return `"${s}" has a scheme; give the bare hostname`;
  if (s.includes("*")) return `"${s}": wildcards are not supported; routes match the exact name`;
  if (isIP(s) || isIP(s.replace(/^\[|\]$/g, ""))) return `"${s}" is an IP address; routes match SNI hostnames, which are never IPs`;
  if (s.includes(":")) return `"${s}" has a port; give the bare hostname`;
  if (s.includes("/")) return `"${s}" has a path; give the bare hostname`;
  const h = normalizeHostname(s);
  if (h.length > 253) return `hostname is ${h.length} characters; at most 253`;
  for (const label of h.split(".")) {
    if (label.length === 0) return `"${s}" has an empty label`;
    if (label.length > 63) return `"${s}" has a label longer than 63 characters`;
    if (!LABEL.test(label)) return `"${s}" is not a valid DNS name (letters, digits, hyphens; labels must not start or end with "-")`;
  }
  return null;
}

function checkPort(p: string, min: number): string | null {
  if (!/^\d{1,5}$/.test(p)) return `port "${p}" is not a number`;
  const n = Number(p);
  if (n < min || n > 65535) return `port ${n} out of range ${min}-65535`;
  return null;
}

/** Common host:port syntax; `allowEmptyHost` for listen addresses. */
function checkAddr(s: string, allowEmptyHost: boolean, minPort: number): string | null {
  if (s === "") return "address is empty";
  // "http://host:80", "https://…": a URL, not an address (else it reads as an IPv6 address without brackets).
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s);
  if (scheme) return `"${s}" is a URL: give host:port without "${scheme[0]}"`;
  const parts = splitHostPort(s);
  if (!parts) return `"${s}" is not host:port`;
  const { host, port, bracketed } = parts;
  if (bracketed) {
    if (isIP(host) !== 6) return `"${s}": "[${host}]" is not an IPv6 address`;
  } else if (host.includes(":")) {
    return `"${s}": an IPv6 address needs brackets, e.g. "[::1]:443"`;
  } else if (host === "") {
    if (!allowEmptyHost) return `"${s}" has no host`;
  } else if (!isIP(host) && checkHostname(host) !== null) {
    return `"${s}": "${host}" is not an IP address or DNS name`;
  }
  const pe = checkPort(port, minPort);
  return pe ? `"${s}": ${pe}` : null;
}

/** A backend address: "host:port" with an IPv4, bracketed IPv6 or DNS host and port 1–65535. */
export function checkHostPort(s: string): string | null {
  return checkAddr(s, false, 1);
}

/**
 * A listen address: ":443" (all IPv4 and IPv6 addresses), "127.0.0.1:8443",
 * "[::1]:443", or "localhost:443"; port 0–65535 (0 = the kernel picks; tests).
 */
export function checkListenAddr(s: string): string | null {
  const e = checkAddr(s, true, 0);
  if (e) return e;
  const { host } = splitHostPort(s)!;
  if (host !== "" && !isIP(host) && host.toLowerCase() !== "localhost") {
    return `"${s}": listen on an IP address (or "localhost"), not a DNS name`;
  }
  return null;
}

export interface ListenAddr {
  /** IP literal without brackets, "localhost", or "" = all IPv4 and IPv6 addresses. */
  host: string;
  port: number;
}

/** Parse a listen address (see checkListenAddr); throws InvalidArgumentError("addr", …) if invalid. */
export function parseListenAddr(s: string): ListenAddr {
  const e = checkListenAddr(s);
  if (e) throw new InvalidArgumentError("addr", e);
  const { host, port } = splitHostPort(s)!;
  return { host, port: Number(port) };
}

/**
 * How [grpc] addr is read: a string that parses as a listen address
 * (":9443", "127.0.0.1:9443", "[::1]:9443") is TCP; anything else is a
 * unix socket path ("/srv/mc-proxy/mc-proxy.sock", "run/mc.sock").
 */
export function isUnixSocketAddr(addr: string): boolean {
  return checkListenAddr(addr) !== null;
}

/**
 * SPEC §2: a listener with proxy_protocol = true and no proxy_protocol_trusted
 * starts, with this warning (null when it does not apply): any peer can then
 * choose the client address the firewall, the rate limit and X-Forwarded-For see.
 */
export function proxyUntrustedWarning(l: { proxyProtocol: boolean; proxyProtocolTrusted: readonly string[] }): string | null {
  if (!l.proxyProtocol || l.proxyProtocolTrusted.length > 0) return null;
  return "proxy_protocol = true with an empty proxy_protocol_trusted: any peer can choose the client address that the firewall, the rate limit and X-Forwarded-For see; list the sending proxies' addresses";
}

/** An ISO 3166-1 alpha-2 country code, either case (stored upper-case). */
export function checkCountry(s: string): string | null {
  return /^[A-Za-z]{2}$/.test(s) ? null : `"${s}" is not a two-letter country code`;
}

/** An IPv4 or IPv6 address literal (no brackets, no prefix, no zone). */
export function checkIp(s: string): string | null {
  if (s.includes("%")) return `"${s}": zone identifiers are not allowed`;
  return isIP(s) ? null : `"${s}" is not an IP address`;
}

/** A CIDR "addr/prefix": IPv4 prefix 0–32, IPv6 0–128. Host bits may be set (they are ignored by matching). */
export function checkCidr(s: string): string | null {
  const slash = s.indexOf("/");
  if (slash < 0) return `"${s}" is not a CIDR (missing /prefix)`;
  const addr = s.slice(0, slash);
  const prefix = s.slice(slash + 1);
  const fam = addr.includes("%") ? 0 : isIP(addr);
  if (!fam) return `"${s}": "${addr}" is not an IP address`;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (fam === 4 ? 32 : 128)) {
    return `"${s}": prefix "/${prefix}" out of range 0-${fam === 4 ? 32 : 128}`;
  }
  return null;
}

/**
 * An L7 policy's value: not empty, at most L7_POLICY_VALUE_MAX_CHARS
 * characters, and for require_header a valid header name. Null when fine.
 */
export function checkPolicyValue(type: string, value: string): string | null {
  if (value.trim() === "") return "must not be empty";
  if (value.length > L7_POLICY_VALUE_MAX_CHARS) return `is ${value.length} characters long, more than ${L7_POLICY_VALUE_MAX_CHARS}`;
  return type === "require_header" ? checkHeaderName(value) : null;
}

/** An HTTP header field name (RFC 9110 token), as `require_header` names. */
export function checkHeaderName(s: string): string | null {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s) ? null : `"${s}" is not a valid header name`;
}

/** A readable PEM file with at least one certificate that parses (CA bundles). */
export function checkCaFile(path: string): string | null {
  let text: string;
  try {
    text = readSmallFile(path);
  } catch (e) {
    return `${path}: cannot read (${e instanceof FileReadError ? e.message : "error"})`;
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return `${path}: no PEM CERTIFICATE block`;
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch {
      return `${path}: a certificate does not parse`;
    }
  }
  return null;
}

/** A readable regular file (GeoIP database and similar): opened, not read (GeoIP databases are megabytes). */
export function checkReadableFile(path: string): string | null {
  try {
    closeSync(openRegularFile(path).fd);
    return null;
  } catch (e) {
    if (e instanceof FileReadError && e.code === "ENOTREG") return `${path}: not a regular file`;
    return `${path}: cannot read (${e instanceof FileReadError ? e.code : "error"})`;
  }
}

/** The fields validateRoute looks at: satisfied by RouteConfig and by the admin API's RouteInput. */
export interface RouteFields {
  hostname: string;
  backend: string;
  mode: string;
  tlsCert: string;
  tlsKey: string;
  backendTls: boolean;
  backendProtocol: string;
  backendTlsVerify: boolean;
  backendTlsCa: string;
  backendTlsServerName: string;
  sendProxyProtocol: boolean;
  l7Policies?: readonly { type: string; value: string }[];
}

export interface RouteCheck {
  /** Errors: the route must be refused if non-empty. */
  problems: Problem[];
  /** Accepted but probably not what the operator meant (policies on l4, leaf-only cert, …). */
  warnings: Problem[];
  /** The loaded certificate pair of a valid l7 route (so callers need not read it twice), else null. */
  cert: CertPair | null;
}

export interface RouteCheckOpts {
  /** Load and check tls_cert/tls_key and backend_tls_ca from disk (default true). */
  checkFiles?: boolean;
}

/**
 * Validate one route. Paths are `${prefix}.<snake_case field>`. File paths
 * are used as given (the config loader has already made them absolute).
 * Rules (SPEC §2): hostname valid; backend host:port; mode l4|l7; l7 needs
 * readable, parsing, matching tls_cert/tls_key; backend_protocol
 * auto|h2|http1; backend_tls_verify/_ca/_server_name only with backend_tls;
 * readable CA; policy type enum, non-empty value, no duplicates. Settings that
 * only matter for l7 (policies, backend TLS, backend_protocol, certs) on an l4
 * route are warnings, not errors.
 */
export function validateRoute(route: RouteFields, prefix: string, opts: RouteCheckOpts = {}): RouteCheck {
  const checkFiles = opts.checkFiles ?? true;
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const at = (field: string) => (prefix ? `${prefix}.${field}` : field);
  const bad = (field: string, detail: string | null) => {
    if (detail) problems.push({ path: at(field), detail });
  };
  let cert: CertPair | null = null;

  bad("hostname", checkHostname(route.hostname));
  bad("backend", checkHostPort(route.backend));

  const modeOk = (ROUTE_MODES as readonly string[]).includes(route.mode);
  if (!modeOk) bad("mode", `"${route.mode}" is not one of ${ROUTE_MODES.join(", ")}`);
  if (!(BACKEND_PROTOCOLS as readonly string[]).includes(route.backendProtocol)) {
    bad("backend_protocol", `"${route.backendProtocol}" is not one of ${BACKEND_PROTOCOLS.join(", ")}`);
  }

  // backend_tls_* refine backend_tls; setting them without it is a misunderstanding.
  if (!route.backendTls) {
    if (route.backendTlsVerify) bad("backend_tls_verify", "only allowed with backend_tls = true");
    if (route.backendTlsCa) bad("backend_tls_ca", "only allowed with backend_tls = true");
    if (route.backendTlsServerName) bad("backend_tls_server_name", "only allowed with backend_tls = true");
  }
  if (route.backendTlsCa && checkFiles) bad("backend_tls_ca", checkCaFile(route.backendTlsCa));
  if (route.backendTlsServerName && !isIP(route.backendTlsServerName)) {
    bad("backend_tls_server_name", checkHostname(route.backendTlsServerName));
  }

  const policies = route.l7Policies ?? [];
  const seen = new Set<string>();
  policies.forEach((p, i) => {
    const pp = `l7_policies[${i}]`;
    if (!(POLICY_TYPES as readonly string[]).includes(p.type)) {
      bad(`${pp}.type`, `"${p.type}" is not one of ${POLICY_TYPES.join(", ")}`);
    }
    bad(`${pp}.value`, checkPolicyValue(p.type, p.value));
    const key = `${p.type}\u0000${p.value}`;
    if (seen.has(key)) bad(pp, `duplicate policy ${p.type} "${p.value}"`);
    seen.add(key);
  });

  if (route.mode === "l7") {
    if (!route.tlsCert) bad("tls_cert", "required for an l7 route");
    if (!route.tlsKey) bad("tls_key", "required for an l7 route");
    if (route.tlsCert && route.tlsKey && checkFiles) {
      try {
        cert = loadCertPair(route.tlsCert, route.tlsKey);
        for (const w of cert.warnings) warnings.push({ path: at("tls_cert"), detail: w });
      } catch (e) {
        if (!(e instanceof CertError)) throw e;
        bad(e.which === "cert" ? "tls_cert" : "tls_key", e.message);
      }
    }
  } else if (modeOk) {
    const ignored = (field: string) => warnings.push({ path: at(field), detail: "has no effect on an l4 route" });
    if (policies.length) ignored("l7_policies");
    if (route.backendTls) ignored("backend_tls");
    if (route.backendProtocol !== "auto") ignored("backend_protocol");
    if (route.tlsCert) ignored("tls_cert");
    if (route.tlsKey) ignored("tls_key");
  }
  return { problems, warnings, cert: problems.length ? null : cert };
}
