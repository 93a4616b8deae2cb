/**
 * Host:port text, the one place it is split and joined. Validation of what a
 * host may be (an IP, a DNS name, "localhost") is the config's job
 * (`config/validate.ts`); this module only knows the syntax: `host:port`,
 * `[v6]:port` and `:port`.
 */

/** A TCP address: an IP literal (no brackets) or a name, and a port. */
export interface Endpoint {
  address: string;
  port: number;
}

/** The raw parts of `host:port` / `[v6]:port` / `:port`. */
export interface HostPortText {
  /** Without brackets; "" for `:port`. */
  host: string;
  /** The port text as written (not yet checked to be a number). */
  port: string;
  /** The host was written in brackets (an IPv6 literal). */
  bracketed: boolean;
}

/**
 * Splits `s` at its port separator; null when there is none (or a bracket is
 * not closed right before it). Does not check either part.
 */
export function splitHostPort(s: string): HostPortText | null {
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") return null;
    return { host: s.slice(1, end), port: s.slice(end + 2), bracketed: true };
  }
  const i = s.lastIndexOf(":");
  if (i < 0) return null;
  return { host: s.slice(0, i), port: s.slice(i + 1), bracketed: false };
}

/** A port written as 1–5 digits in `min`–65535, else null. */
export function parsePort(text: string, min = 0): number | null {
  if (text.length === 0 || text.length > 5) return null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return null;
  }
  const n = Number(text);
  return n >= min && n <= 65535 ? n : null;
}

/**
 * `host:port` with a numeric port in `minPort`–65535, for dialing or binding an
 * address that was validated when it was configured; null when it does not
 * parse. An unbracketed host containing ":" is refused (IPv6 needs brackets).
 */
export function parseHostPort(s: string, minPort = 0): { host: string; port: number } | null {
  const p = splitHostPort(s);
  if (!p || (!p.bracketed && p.host.includes(":"))) return null;
  const port = parsePort(p.port, minPort);
  return port === null ? null : { host: p.host, port };
}

/** `host:port`, with brackets around an IPv6 host: the one way we print addresses. */
export function formatHostPort(host: string, port: number | string): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `formatHostPort` of an Endpoint. */
export function formatEndpoint(e: Endpoint): string {
  return formatHostPort(e.address, e.port);
}
