/**
 * The port of a request's authority (Host, :authority, an absolute-form
 * target), checked where HTTP/1.1 and HTTP/2 requests are validated: RFC 3986
 * §3.2.3 `port = *DIGIT`, and a TCP port is at most 65535 (RFC 9110 §4.1).
 * An authority that names another port would otherwise reach the backend
 * verbatim ("a.test:abc"), where its meaning is anyone's guess.
 */

/** True when `authority` has no port, an empty one, or 0–65535 in at most 5 digits. */
export function authorityPortValid(authority: string): boolean {
  // "[v6]:port" or "host:port": the port follows the last ':' after any IPv6 literal.
  const close = authority.lastIndexOf("]");
  const colon = authority.indexOf(":", close + 1);
  if (colon < 0) return true;
  const n = authority.length - colon - 1;
  if (n > 5) return false;
  let v = 0;
  for (let i = colon + 1; i < authority.length; i++) {
    const c = authority.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return false;
    v = v * 10 + c;
  }
  return v <= 65535;
}
