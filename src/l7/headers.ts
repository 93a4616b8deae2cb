/**
 * Header rules of the L7 proxy (SPEC §5), pure functions over flat header
 * lists — `[name, value, name, value, …]`, names lower-case — the form both
 * our HTTP/1.1 codec and HPACK produce. Forwarding headers are set from the
 * real client address and never trusted from the client; hop-by-hop headers
 * never cross the proxy in either direction.
 */

/** A header list: [name, value, …], names lower-case. */
export type Fields = string[];

/**
 * Connection-specific fields (RFC 9110 §7.6.1; forbidden in HTTP/2): never
 * forwarded in either direction. Also the list the HTTP/1.1 codec marks for a
 * pass-through copy to cut out (src/l7/h1/bytes.ts): one list for both paths.
 */
export const CONNECTION_SPECIFIC_FIELDS: readonly string[] = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "upgrade",
  // Not hop-by-hop by RFC, but the front already handled "100-continue" with the client.
  "expect",
  "http2-settings",
];

/** The connection-specific fields plus the ones we set ourselves. */
const HOP_BY_HOP = new Set([
  ...CONNECTION_SPECIFIC_FIELDS,
  // We set Host / :authority explicitly; Content-Length is re-derived from the body framing.
  "host",
  "content-length",
]);

/**
 * Client-sent fields that claim something about the client or the original
 * URL: always removed (SPEC §5 rev 3); the first three are then set by us.
 * Also cut out of pass-through request heads (src/l7/h1/bytes.ts).
 */
export const FORWARDING_FIELDS: readonly string[] = [
  "x-forwarded-for",
  "x-real-ip",
  "x-forwarded-proto",
  "forwarded",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "x-client-ip",
  "true-client-ip",
];
const FORWARDING = new Set(FORWARDING_FIELDS);

/**
 * A forwarding field, or one spelled with "_" for "-" (`X_Forwarded_For`):
 * CGI-style backends (PHP, WSGI and CGI gateways, and anything that reads
 * HTTP_X_FORWARDED_FOR) map both spellings to the same variable, so a client
 * could otherwise claim the address we set through the spelling we did not
 * remove. Other names with "_" pass (some applications use them).
 */
export function isForwardingField(name: string): boolean {
  return FORWARDING.has(name) || (name.includes("_") && FORWARDING.has(name.replaceAll("_", "-")));
}

/** Names listed in Connection values ("close, X-Foo" → ["x-foo"]); null when none matter. */
function connectionTokens(src: readonly string[]): string[] | null {
  let out: string[] | null = null;
  for (let i = 0; i < src.length; i += 2) {
    if (src[i] !== "connection") continue;
    const v = src[i + 1]!;
    // What nearly every HTTP/1.1 backend sends names nothing: no split, no allocation.
    if (v === "keep-alive" || v === "close" || v === "Keep-Alive" || v === "Close") continue;
    for (const t of v.split(",")) {
      const n = t.trim().toLowerCase();
      if (n === "" || n === "close" || n === "keep-alive") continue;
      (out ??= []).push(n);
    }
  }
  return out;
}

/**
 * The end-to-end request headers of `src` for the backend: drops
 * pseudo-headers, hop-by-hop headers (keeping `te: trailers`), every header
 * named in Connection and all client-sent forwarding headers, then appends
 * X-Forwarded-For and X-Real-IP = `clientIp` and X-Forwarded-Proto = https.
 * Host/:authority and body framing are the caller's. Appends to `out` (the
 * caller's leading fields, e.g. pseudo-headers) and returns it.
 */
export function backendRequestFields(src: readonly string[], clientIp: string, out: Fields = []): Fields {
  const named = connectionTokens(src);
  let trailers = false;
  for (let i = 0; i < src.length; i += 2) {
    const name = src[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name)) {
      if (name === "te" && src[i + 1]!.trim().toLowerCase() === "trailers") trailers = true;
      continue;
    }
    if (isForwardingField(name)) continue;
    if (named !== null && named.includes(name)) continue;
    out.push(name, src[i + 1]!);
  }
  if (trailers) out.push("te", "trailers");
  out.push("x-forwarded-for", clientIp, "x-real-ip", clientIp, "x-forwarded-proto", "https");
  return out;
}

/**
 * Fields a client may not send as trailers, on top of the connection-specific
 * ones and the forwarding claims: framing, routing, authentication, and the
 * request modifiers a recipient acts on before the content (RFC 9110 §6.5.1).
 */
const TRAILER_PROHIBITED = new Set([
  "host",
  "content-length",
  "trailer",
  "authorization",
  "proxy-authorization",
  "cookie",
  "content-encoding",
  "content-type",
  "content-range",
  "range",
  "max-forwards",
  "cache-control",
]);

/**
 * A client's trailers as they may reach a backend: pseudo-headers,
 * connection-specific fields, the forwarding claims of SPEC §5 and the fields RFC 9110 §6.5.1 keeps out of
 * trailers are dropped (a client must not claim X-Forwarded-For or Host in
 * its trailer section any more than in its head). Returns `src` itself when
 * nothing is dropped.
 */
export function requestTrailerFields(src: readonly string[]): readonly string[] {
  let out: Fields | null = null;
  for (let i = 0; i < src.length; i += 2) {
    const name = src[i]!;
    const drop = name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name) || isForwardingField(name) || TRAILER_PROHIBITED.has(name);
    if (drop) out ??= src.slice(0, i);
    else if (out !== null) out.push(name, src[i + 1]!);
  }
  return out ?? src;
}

/**
 * Joins the `cookie` fields of `fields` into one, values separated by "; "
 * (RFC 9113 §8.2.3: HTTP/2 clients send each cookie as its own field, and
 * they must be one line before they reach HTTP/1.1), at the first one's place.
 * Returns `fields` itself (untouched) when it has fewer than two.
 */
export function joinCookies(fields: Fields): Fields {
  let first = -1;
  let more = false;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] !== "cookie") continue;
    if (first < 0) first = i;
    else more = true;
  }
  if (!more) return fields;
  const out: Fields = [];
  const parts: string[] = [];
  let at = 0;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i] === "cookie") {
      parts.push(fields[i + 1]!);
      if (i === first) at = out.push("cookie", "") - 1;
    } else out.push(fields[i]!, fields[i + 1]!);
  }
  out[at] = parts.join("; ");
  return out;
}

/**
 * Backend response headers (or trailers) for the client: drops pseudo-headers,
 * hop-by-hop headers and every header named in Connection; keeps
 * Content-Length only when `keepLength` (the body passes through unchanged).
 * Valid for an HTTP/1.1 and an HTTP/2 response.
 */
export function clientResponseFields(src: readonly string[], keepLength: boolean): Fields {
  const out: Fields = [];
  const named = connectionTokens(src);
  for (let i = 0; i < src.length; i += 2) {
    const name = src[i]!;
    if (name.charCodeAt(0) === 58) continue;
    if (HOP_BY_HOP.has(name) && !(keepLength && name === "content-length") && name !== "host") continue;
    if (named !== null && named.includes(name)) continue;
    out.push(name, src[i + 1]!);
  }
  return out;
}

/**
 * clientResponseFields over shared lists, remembered by the list's identity:
 * an HTTP/2 session's decoder hands out the same list object for a repeated
 * header block (HpackDecoder's memo), and an HTTP/1.1 pool route the same
 * ResponseHead for a repeated head (HeadMemo); such lists are never
 * modified, so a backend repeating its response head costs a few identity
 * compares instead of a new list per response. `size` entries, replaced in
 * turn (e.g. one per backend connection that answers at the same time). The
 * lists returned are shared: never modified.
 */
export class ClientFieldsMemo {
  private readonly src: (readonly string[] | null)[];
  private readonly keep: boolean[];
  private readonly out: (readonly string[])[];
  private next = 0;

  constructor(size: number) {
    this.src = new Array<readonly string[] | null>(size).fill(null);
    this.keep = new Array<boolean>(size).fill(false);
    this.out = new Array<readonly string[]>(size).fill(EMPTY_LIST);
  }

  of(src: readonly string[], keepLength: boolean): readonly string[] {
    const srcs = this.src;
    for (let i = 0; i < srcs.length; i++) if (srcs[i] === src && this.keep[i] === keepLength) return this.out[i]!;
    const out = clientResponseFields(src, keepLength);
    const at = this.next;
    this.next = at + 1 === srcs.length ? 0 : at + 1;
    srcs[at] = src;
    this.keep[at] = keepLength;
    this.out[at] = out;
    return out;
  }
}
const EMPTY_LIST: readonly string[] = [];

/** The first value of `name`, or undefined. */
export function field(src: readonly string[], name: string): string | undefined {
  for (let i = 0; i < src.length; i += 2) if (src[i] === name) return src[i + 1];
  return undefined;
}

/** Every value of `name` joined with ", " (RFC 9110 §5.3), or undefined; for policy checks. */
export function fieldJoined(src: readonly string[], name: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < src.length; i += 2) if (src[i] === name) v = v === undefined ? src[i + 1] : `${v}, ${src[i + 1]}`;
  return v;
}

/**
 * The host part of a request's authority as routes name it: port and one
 * trailing dot dropped, lower-cased, IPv6 brackets kept. "" when absent.
 */
export function authorityHost(authority: string): string {
  let h = authority;
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end < 0 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.lastIndexOf(":");
    if (colon >= 0) h = h.slice(0, colon);
  }
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h.toLowerCase();
}
