/**
 * Pure IP address and CIDR helpers for the firewall hot path.
 *
 * Representation: an address is parsed into up to four uint32 words (IPv4 uses
 * word 0 only). Parsing is a hand-written char-code scan that writes into a
 * caller-supplied Uint32Array, so a match costs no allocation. IPv4-mapped
 * IPv6 addresses (`::ffff:a.b.c.d`) are always folded to IPv4, so a v4 CIDR
 * matches a mapped client (SPEC §4) and exact-IP keys agree across families.
 *
 * Strictness: IPv4 octets are decimal 0–255 without leading zeros (`010.0.0.1`
 * is ambiguous octal and rejected, as Go does); IPv6 may be bracketed and may
 * carry a `%zone`, both of which are ignored.
 */

/** A parsed CIDR. `family` 4 uses a0/m0 only. Host bits are already masked off. */
export interface Cidr {
  readonly family: 4 | 6;
  /** Prefix length: 0–32 (v4) or 0–128 (v6). */
  readonly bits: number;
  readonly a0: number;
  readonly a1: number;
  readonly a2: number;
  readonly a3: number;
  readonly m0: number;
  readonly m1: number;
  readonly m2: number;
  readonly m3: number;
  /** Canonical text, e.g. `10.0.0.0/8`, `2001:db8::/32`. */
  readonly text: string;
}

/** Address family parsed by parseIpWords: 0 = not an IP. */
export type Family = 0 | 4 | 6;

// Scratch buffer for the convenience wrappers; JS is single-threaded and no
// wrapper re-enters another while it holds it.
const scratch = new Uint32Array(4);

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Parses dotted-quad IPv4 in s[start,end) to a uint32, or -1. */
function parseV4(s: string, start: number, end: number): number {
  let acc = 0;
  let octets = 0;
  let i = start;
  while (octets < 4) {
    if (i >= end) return -1;
    let v = 0;
    let digits = 0;
    const first = i;
    for (; i < end; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      if (++digits > 3) return -1;
    }
    if (digits === 0 || v > 255) return -1;
    if (digits > 1 && s.charCodeAt(first) === 48) return -1; // leading zero
    acc = acc * 256 + v;
    octets++;
    if (octets < 4) {
      if (i >= end || s.charCodeAt(i) !== 46) return -1; // '.'
      i++;
    }
  }
  return i === end ? acc >>> 0 : -1;
}

/**
 * Parses an IPv6 address in s[start,end) into 8 16-bit groups in `g`.
 * Returns false when malformed. Accepts `::` once and a trailing dotted IPv4.
 */
function parseV6(s: string, start: number, end: number, g: Uint16Array): boolean {
  let n = 0; // groups written
  let gap = -1; // group index where `::` sits
  let i = start;
  if (end - start < 2) return false;
  if (s.charCodeAt(i) === 58) {
    // leading ':' must be '::'
    if (s.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
    if (i === end) {
      g.fill(0);
      return true;
    }
  }
  while (i < end) {
    if (n >= 8) return false;
    // Look ahead: does this group contain a '.' (embedded IPv4)?
    let j = i;
    let v = 0;
    let digits = 0;
    for (; j < end; j++) {
      const h = hexVal(s.charCodeAt(j));
      if (h < 0) break;
      v = v * 16 + h;
      if (++digits > 4) break;
    }
    if (j < end && s.charCodeAt(j) === 46) {
      // trailing IPv4 occupies two groups and must end the string
      if (n > 6) return false;
      const v4 = parseV4(s, i, end);
      if (v4 < 0) return false;
      g[n++] = v4 >>> 16;
      g[n++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4) return false;
    g[n++] = v;
    i = j;
    if (i === end) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false; // second '::'
      gap = n;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // trailing single ':'
    }
  }
  if (gap < 0) return n === 8;
  if (n >= 8) return false; // '::' must stand for at least one group
  // Shift the groups after the gap to the end, zero-fill the middle.
  const tail = n - gap;
  for (let k = 0; k < tail; k++) g[7 - k] = g[n - 1 - k];
  for (let k = gap; k < 8 - tail; k++) g[k] = 0;
  return true;
}

const groups = new Uint16Array(8);

/**
 * Parses `s` into `out` (4 uint32 words, IPv4 in word 0) and returns the
 * family, or 0 if `s` is not an IP. Strips `[...]` and a `%zone`; folds
 * IPv4-mapped IPv6 to family 4. Allocation-free.
 */
export function parseIpWords(s: string, out: Uint32Array): Family {
  let start = 0;
  let end = s.length;
  if (end === 0 || end > 100) return 0;
  if (s.charCodeAt(0) === 91) {
    // [v6]
    if (s.charCodeAt(end - 1) !== 93) return 0;
    start = 1;
    end--;
  }
  let colon = false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) colon = true;
    else if (c === 37) {
      // '%zone' only on v6 and must be non-empty
      if (!colon || i === end - 1) return 0;
      end = i;
      break;
    }
  }
  if (!colon) {
    if (start !== 0) return 0; // brackets around v4
    const v = parseV4(s, start, end);
    if (v < 0) return 0;
    out[0] = v;
    out[1] = out[2] = out[3] = 0;
    return 4;
  }
  if (!parseV6(s, start, end, groups)) return 0;
  const g = groups;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    out[0] = ((g[6] << 16) | g[7]) >>> 0;
    out[1] = out[2] = out[3] = 0;
    return 4;
  }
  out[0] = ((g[0] << 16) | g[1]) >>> 0;
  out[1] = ((g[2] << 16) | g[3]) >>> 0;
  out[2] = ((g[4] << 16) | g[5]) >>> 0;
  out[3] = ((g[6] << 16) | g[7]) >>> 0;
  return 6;
}

/** Formats words produced by parseIpWords as canonical text (RFC 5952 for v6). */
export function formatIpWords(family: 4 | 6, w: ArrayLike<number>): string {
  if (family === 4) {
    const v = w[0];
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const g: number[] = [];
  for (let k = 0; k < 4; k++) g.push(w[k] >>> 16, w[k] & 0xffff);
  // Longest run of >= 2 zero groups (first wins on ties) becomes '::'.
  let bestStart = -1;
  let bestLen = 1;
  for (let k = 0; k < 8; ) {
    if (g[k] !== 0) {
      k++;
      continue;
    }
    let e = k;
    while (e < 8 && g[e] === 0) e++;
    if (e - k > bestLen) {
      bestStart = k;
      bestLen = e - k;
    }
    k = e;
  }
  const hex = (a: number, b: number) => g.slice(a, b).map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/**
 * Returns the canonical text of an IP address, or null if `s` is not one.
 * IPv4-mapped IPv6 becomes dotted IPv4 (`::ffff:1.2.3.4` → `1.2.3.4`);
 * brackets and `%zone` are stripped; IPv6 is RFC 5952 (lower-case, `::`).
 */
export function normalizeIp(s: string): string | null {
  const fam = parseIpWords(s, scratch);
  return fam === 0 ? null : formatIpWords(fam, scratch);
}

/** Returns the 32-bit mask for the `bits` high bits of word `k` of a prefix. */
function wordMask(bits: number, k: number): number {
  const b = bits - 32 * k;
  if (b <= 0) return 0;
  if (b >= 32) return 0xffffffff;
  return (0xffffffff << (32 - b)) >>> 0;
}

/**
 * Parses `addr/len` (IPv4 or IPv6) or returns null. The prefix length must be
 * plain decimal within 0–32 / 0–128. Host bits set (`10.1.2.3/8`) are accepted
 * and masked off, as Go's net.ParseCIDR does; `text` shows the masked form.
 * An IPv4-mapped IPv6 prefix of /96 or longer (`::ffff:10.0.0.0/104`) becomes
 * the equivalent IPv4 CIDR, since mapped clients are compared as IPv4.
 * Families never cross: `::/0` matches every IPv6 client and no IPv4 one.
 */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf("/");
  if (slash <= 0 || slash === s.length - 1 || s.length - slash > 4) return null;
  let bits = 0;
  for (let i = slash + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return null;
    bits = bits * 10 + (c - 48);
  }
  if (s.length - slash > 2 && s.charCodeAt(slash + 1) === 48) return null; // "/08"
  const addrText = s.slice(0, slash);
  if (addrText.includes("%") || addrText.startsWith("[")) return null;
  const w = new Uint32Array(4);
  let fam = parseIpWords(addrText, w);
  if (fam === 0) return null;
  // parseIpWords folds mapped addresses to v4; recover the prefix semantics.
  const textIsV6 = addrText.includes(":");
  if (fam === 4 && textIsV6) {
    if (bits > 128) return null;
    if (bits >= 96) bits -= 96;
    else {
      // A short prefix over ::ffff:0:0 spans beyond the mapped range: keep v6.
      w[1] = 0;
      w[2] = 0xffff;
      w[3] = w[0];
      w[0] = 0;
      fam = 6;
    }
  }
  const max = fam === 4 ? 32 : 128;
  if (bits > max) return null;
  const m = [0, 1, 2, 3].map((k) => (fam === 4 ? (k === 0 ? wordMask(bits, 0) : 0) : wordMask(bits, k)));
  const a = [0, 1, 2, 3].map((k) => (w[k] & m[k]) >>> 0);
  return {
    family: fam,
    bits,
    a0: a[0],
    a1: a[1],
    a2: a[2],
    a3: a[3],
    m0: m[0],
    m1: m[1],
    m2: m[2],
    m3: m[3],
    text: `${formatIpWords(fam, a)}/${bits}`,
  };
}

/** True when the parsed address (family + words from parseIpWords) lies in `c`. Allocation-free. */
export function cidrContainsWords(c: Cidr, family: Family, w: Uint32Array): boolean {
  if (family !== c.family) return false;
  if (((w[0] & c.m0) >>> 0) !== c.a0) return false;
  if (family === 4) return true;
  return ((w[1] & c.m1) >>> 0) === c.a1 && ((w[2] & c.m2) >>> 0) === c.a2 && ((w[3] & c.m3) >>> 0) === c.a3;
}

/**
 * True when `ip` (any accepted text form) lies in `c`. An IPv4-mapped IPv6
 * client matches an IPv4 CIDR. Returns false for text that is not an IP.
 */
export function cidrContains(c: Cidr, ip: string): boolean {
  const fam = parseIpWords(ip, scratch);
  return fam !== 0 && cidrContainsWords(c, fam, scratch);
}

// ---------------------------------------------------------------- 16-byte form (PROXY v2)

const byteWords = new Uint32Array(4);

/** IPv6 text of 16 network-order bytes: RFC 5952, IPv4-mapped written `::ffff:a.b.c.d`. */
export function formatIpv6Bytes(b: Uint8Array): string {
  for (let k = 0; k < 4; k++) byteWords[k] = ((b[4 * k] << 24) | (b[4 * k + 1] << 16) | (b[4 * k + 2] << 8) | b[4 * k + 3]) >>> 0;
  if (byteWords[0] === 0 && byteWords[1] === 0 && byteWords[2] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  return formatIpWords(6, byteWords);
}

/**
 * An address literal (no brackets, no zone) as bytes: 4 for IPv4 and
 * IPv4-mapped IPv6, 16 for other IPv6; null when `s` is not one.
 */
export function parseIpBytes(s: string): Uint8Array | null {
  if (s.includes("[") || s.includes("%")) return null;
  const fam = parseIpWords(s, byteWords);
  if (fam === 0) return null;
  const out = new Uint8Array(fam === 4 ? 4 : 16);
  for (let k = 0; k < out.length / 4; k++) {
    const w = byteWords[k];
    out[4 * k] = w >>> 24;
    out[4 * k + 1] = (w >>> 16) & 255;
    out[4 * k + 2] = (w >>> 8) & 255;
    out[4 * k + 3] = w & 255;
  }
  return out;
}
