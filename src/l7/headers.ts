/**
 * Header rules of the L7 proxy (SPEC §5), pure functions over plain header
 * objects (lower-case names, as node:http and node:http2 deliver them).
 * Forwarding headers are set from the real client address and never trusted
 * from the client; hop-by-hop headers never cross the proxy in either direction.
 */

export type HeaderValue = string | string[] | number | undefined;
export type HeaderMap = Record<string, HeaderValue>;

/** Connection-specific headers (RFC 9110 §7.6.1; forbidden in HTTP/2). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "upgrade",
  // Not hop-by-hop by RFC, but the front already handled "100-continue" with the client.
  "expect",
  // HTTP/2 carries the authority in :authority; we set Host/:authority explicitly.
  "host",
  "http2-settings",
]);

/** Client-sent forwarding headers: always removed, then set by us. */
const FORWARDING = new Set(["x-forwarded-for", "x-real-ip", "x-forwarded-proto", "forwarded"]);

/** Names listed in a Connection header value ("close, X-Foo" → ["close","x-foo"]). */
function connectionTokens(v: HeaderValue): string[] | null {
  if (v === undefined) return null;
  const s = Array.isArray(v) ? v.join(",") : String(v);
  if (s === "" || s === "close" || s === "keep-alive" || s === "Keep-Alive") return null;
  return s.split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== "");
}

function firstValue(v: HeaderValue): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(", ") : String(v);
}

/**
 * Copies the end-to-end request headers of `src` into a new object for the
 * backend: drops pseudo-headers, hop-by-hop headers (keeping `te: trailers`),
 * every header named in Connection and all client-sent forwarding headers,
 * then sets X-Forwarded-For and X-Real-IP to `clientIp` and
 * X-Forwarded-Proto to https. Host/:authority is the caller's job.
 */
export function backendRequestHeaders(src: HeaderMap, clientIp: string): HeaderMap {
  const out: HeaderMap = {};
  const named = connectionTokens(src["connection"]);
  for (const name in src) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name) || FORWARDING.has(name)) continue;
    if (named !== null && named.includes(name)) continue;
    out[name] = src[name];
  }
  const te = firstValue(src["te"]);
  if (te !== undefined && te.trim().toLowerCase() === "trailers") out["te"] = "trailers";
  out["x-forwarded-for"] = clientIp;
  out["x-real-ip"] = clientIp;
  out["x-forwarded-proto"] = "https";
  return out;
}

/**
 * Copies backend response headers (or trailers) for the client, dropping
 * pseudo-headers, hop-by-hop headers and every header named in Connection.
 * The result is valid for both an HTTP/1.1 and an HTTP/2 response.
 */
export function clientResponseHeaders(src: HeaderMap): HeaderMap {
  const out: HeaderMap = {};
  const named = connectionTokens(src["connection"]);
  for (const name in src) {
    if (name.charCodeAt(0) === 58) continue;
    if (HOP_BY_HOP.has(name) && name !== "host") continue;
    if (named !== null && named.includes(name)) continue;
    out[name] = src[name];
  }
  return out;
}

/**
 * The headers of a WebSocket upgrade request towards the backend: the usual
 * forwarding rules plus `Connection: Upgrade` / `Upgrade: websocket`. Returns
 * raw HTTP/1.1 header lines (name: value CRLF each), Host first.
 */
export function websocketRequestHead(
  method: string,
  url: string,
  host: string,
  src: HeaderMap,
  clientIp: string,
): string {
  const h = backendRequestHeaders(src, clientIp);
  let head = `${method} ${url} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n`;
  for (const name in h) {
    const v = h[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) head += `${name}: ${one}\r\n`;
    else head += `${name}: ${v}\r\n`;
  }
  return head + "\r\n";
}

/** True when a request's Upgrade header asks for WebSocket. */
export function isWebSocketUpgrade(src: HeaderMap): boolean {
  const u = firstValue(src["upgrade"]);
  return u !== undefined && u.toLowerCase() === "websocket";
}

/** Header value as one string (arrays joined with ", "), for policy checks. */
export function headerString(src: HeaderMap, lowerName: string): string | undefined {
  return firstValue(src[lowerName]);
}
