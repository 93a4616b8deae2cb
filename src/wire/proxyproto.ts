/**
 * PROXY protocol v1 (text) and v2 (binary) — parser and encoders, following
 * HAProxy's doc/proxy-protocol.txt (SPEC §6). Pure: no I/O, never throws on
 * input bytes.
 *
 * `parseProxyHeader` returns the header and how many bytes it occupies; the
 * caller drops exactly those bytes and treats the rest as the client stream.
 * It answers `need_more` while the bytes so far are a prefix of a valid
 * header, and `error` (with a short reason code) as soon as they cannot be.
 * A v2 header whose declared length has not fully arrived stays `need_more`:
 * it is the caller's `hello_timeout` deadline that turns it into a failure.
 *
 * Decisions where the spec leaves room:
 * - v1 IPv4: exactly four decimal numbers 0–255, no leading zeros ("01" is
 *   rejected: octal ambiguity, as the spec says). IPv6: whatever node:net's
 *   isIPv6 accepts (including the `::ffff:1.2.3.4` form), minus zone ids.
 * - v1 ports: 0–65535, decimal digits only, no leading zeros ("0" is fine).
 * - Any CR not followed by LF, or LF not preceded by CR, is an error — also
 *   inside the ignored tail of an UNKNOWN line.
 * - v2 LOCAL: any family is accepted and the whole protocol block (addresses
 *   and TLVs) is discarded, as the spec says (family "unknown", tlvs []). v2 PROXY: AF_UNSPEC is accepted as
 *   family "unknown" (the caller uses the real endpoints); UDP and AF_UNIX
 *   are rejected (`v2_unsupported_family`) — the spec lets a receiver reject
 *   an UNSPEC-fallback connection and a TCP proxy has no use for them.
 * - v2 TLVs are walked after the address block; one overrunning the header is
 *   an error. A PP2_TYPE_CRC32C TLV is verified (mismatch → error).
 */
import { isIPv6 } from "node:net";
import { InvalidArgumentError } from "../errors.ts";
import { formatIpv6Bytes, parseIpBytes } from "../net/ip.ts";

export interface ProxyAddress {
  address: string;
  port: number;
}

export interface ProxyTlv {
  type: number;
  value: Uint8Array;
}

/** A parsed PROXY header. `source`/`destination` are present only for PROXY tcp4/tcp6. */
export interface ProxyHeader {
  version: 1 | 2;
  command: "proxy" | "local";
  /** "unknown" = v1 UNKNOWN, v2 AF_UNSPEC, or any v2 LOCAL: use the real connection endpoints. */
  family: "tcp4" | "tcp6" | "unknown";
  source?: ProxyAddress;
  destination?: ProxyAddress;
  tlvs: ProxyTlv[];
  /** PP2_TYPE_AUTHORITY (0x02) decoded as UTF-8: the SNI the previous hop saw. */
  authority?: string;
}

export type ProxyResult =
  | { status: "ok"; header: ProxyHeader; length: number }
  | { status: "need_more" }
  | { status: "error"; reason: string };

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_NOOP = 0x04;

/** v1 line limit including CRLF (the spec's worst case, PROXY UNKNOWN with IPv6 addresses). */
export const V1_MAX_LENGTH = 107;
const V1_PREFIX = new TextEncoder().encode("PROXY ");
const V2_SIG = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_HEADER = 16;

const err = (reason: string): ProxyResult => ({ status: "error", reason });

/** True when buf[0..n) equals sig[0..n) for n = min(len). */
function prefixMatches(buf: Uint8Array, sig: Uint8Array): boolean {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false;
  return true;
}

/**
 * Parses a PROXY v1 or v2 header at the start of `buf`. `ok.length` is the
 * number of header bytes to drop. `need_more` while `buf` is a valid prefix;
 * `error` ("not_proxy" when the first bytes match neither signature) as soon
 * as it cannot become valid.
 */
export function parseProxyHeader(buf: Uint8Array): ProxyResult {
  if (buf.length === 0) return { status: "need_more" };
  const maybeV1 = prefixMatches(buf, V1_PREFIX);
  const maybeV2 = prefixMatches(buf, V2_SIG);
  if (!maybeV1 && !maybeV2) return err("not_proxy");
  if (maybeV1) return buf.length < V1_PREFIX.length ? { status: "need_more" } : parseV1(buf);
  return buf.length < V2_HEADER ? { status: "need_more" } : parseV2(buf);
}

// ---------------------------------------------------------------- v1

const V1_PROTOCOLS = ["TCP4 ", "TCP6 ", "UNKNOWN"];

function parseV1(buf: Uint8Array): ProxyResult {
  // Fail fast on an unknown protocol name (the spec asks to abort as soon as possible).
  const head = String.fromCharCode(...buf.subarray(V1_PREFIX.length, V1_PREFIX.length + 7));
  if (!V1_PROTOCOLS.some((t) => t.startsWith(head.slice(0, t.length)))) return err("v1_bad_protocol");
  // Find CRLF within the first 107 bytes; reject lone CR / lone LF on the way.
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  let eol = -1;
  for (let i = 0; i < limit; i++) {
    const ch = buf[i];
    if (ch === 0x0a) return err("v1_bad_crlf"); // LF not preceded by CR (a CR would have been handled below)
    if (ch === 0x0d) {
      if (i + 2 > V1_MAX_LENGTH) return err("v1_too_long"); // the LF would be byte 108
      if (i + 1 >= buf.length) return { status: "need_more" };
      if (buf[i + 1] !== 0x0a) return err("v1_bad_crlf");
      eol = i;
      break;
    }
  }
  if (eol < 0) return buf.length >= V1_MAX_LENGTH ? err("v1_too_long") : { status: "need_more" };
  const line = new TextDecoder("latin1").decode(buf.subarray(0, eol));
  const length = eol + 2;
  const parts = line.split(" ");
  const proto = parts[1];
  if (proto === "UNKNOWN") {
    // The receiver must ignore anything before the CRLF.
    return { status: "ok", length, header: { version: 1, command: "proxy", family: "unknown", tlvs: [] } };
  }
  if (proto !== "TCP4" && proto !== "TCP6") return err("v1_bad_protocol");
  if (parts.length !== 6) return err("v1_bad_format"); // exactly single spaces, exactly four fields
  const [, , src, dst, sport, dport] = parts;
  const valid = proto === "TCP4" ? isV1Ipv4 : isV1Ipv6;
  if (!valid(src) || !valid(dst)) return err("v1_bad_address");
  const sp = parseV1Port(sport);
  const dp = parseV1Port(dport);
  if (sp < 0 || dp < 0) return err("v1_bad_port");
  return {
    status: "ok",
    length,
    header: {
      version: 1,
      command: "proxy",
      family: proto === "TCP4" ? "tcp4" : "tcp6",
      source: { address: src, port: sp },
      destination: { address: dst, port: dp },
      tlvs: [],
    },
  };
}

/** Dotted quad, each part 0–255 in decimal without leading zeros. */
function isV1Ipv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isV1Ipv6(s: string): boolean {
  return !s.includes("%") && isIPv6(s);
}

/** Port 0–65535 without sign or leading zeros; -1 when invalid. */
function parseV1Port(s: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

// ---------------------------------------------------------------- v2

/** Address block sizes by family/transport byte (proxy-protocol.txt §2.2). */
const V2_ADDR_LEN: Record<number, number> = { 0x00: 0, 0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216 };

function parseV2(buf: Uint8Array): ProxyResult {
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return err("v2_bad_version");
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return err("v2_bad_command");
  const fam = buf[13];
  const len = (buf[14] << 8) | buf[15];
  const total = V2_HEADER + len;
  const addrLen = V2_ADDR_LEN[fam];
  if (cmd === 1) {
    // PROXY: reject what we cannot use before waiting for the rest.
    if (addrLen === undefined) return err("v2_bad_family");
    if (fam !== 0x00 && fam !== 0x11 && fam !== 0x21) return err("v2_unsupported_family");
    if (addrLen > len) return err("v2_short_address");
  }
  if (buf.length < total) return { status: "need_more" };
  const block = buf.subarray(V2_HEADER, total);

  let family: ProxyHeader["family"] = "unknown";
  let source: ProxyAddress | undefined;
  let destination: ProxyAddress | undefined;
  if (cmd === 0) {
    // LOCAL: "discard the protocol block including the family" — no addresses, no TLVs.
    return { status: "ok", length: total, header: { version: 2, command: "local", family, tlvs: [] } };
  }
  if (fam === 0x11) {
    family = "tcp4";
    source = { address: formatIpv4(block.subarray(0, 4)), port: (block[8] << 8) | block[9] };
    destination = { address: formatIpv4(block.subarray(4, 8)), port: (block[10] << 8) | block[11] };
  } else if (fam === 0x21) {
    family = "tcp6";
    source = { address: formatIpv6Bytes(block.subarray(0, 16)), port: (block[32] << 8) | block[33] };
    destination = { address: formatIpv6Bytes(block.subarray(16, 32)), port: (block[34] << 8) | block[35] };
  }

  const tlvs: ProxyTlv[] = [];
  let p = addrLen as number; // defined: PROXY with an unknown family was rejected above
  while (p < len) {
    if (p + 3 > len) return err("v2_tlv_overrun");
    const type = block[p];
    const vlen = (block[p + 1] << 8) | block[p + 2];
    if (p + 3 + vlen > len) return err("v2_tlv_overrun");
    // A real copy (new Uint8Array, not .slice: on a Node Buffer .slice is a view) — the caller may reuse its buffer.
    tlvs.push({ type, value: new Uint8Array(block.subarray(p + 3, p + 3 + vlen)) });
    if (type === PP2_TYPE_CRC32C) {
      if (vlen !== 4) return err("v2_bad_crc32c");
      const want = ((block[p + 3] << 24) | (block[p + 4] << 16) | (block[p + 5] << 8) | block[p + 6]) >>> 0;
      const copy = new Uint8Array(buf.subarray(0, total)); // never zero the caller's bytes
      copy.fill(0, V2_HEADER + p + 3, V2_HEADER + p + 7);
      if (crc32c(copy) !== want) return err("v2_bad_crc32c");
    }
    p += 3 + vlen;
  }

  const header: ProxyHeader = { version: 2, command: "proxy", family, tlvs };
  if (source) header.source = source;
  if (destination) header.destination = destination;
  const auth = tlvs.find((t) => t.type === PP2_TYPE_AUTHORITY);
  if (auth) header.authority = new TextDecoder("utf-8").decode(auth.value);
  return { status: "ok", header, length: total };
}

// ---------------------------------------------------------------- addresses

function formatIpv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function isMappedV4(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

type Family = { v4: Uint8Array } | { v6: Uint8Array };

/** Classifies an address for encoding; IPv4-mapped IPv6 counts as IPv4. */
function classify(field: string, address: string): Family {
  const b = parseIpBytes(address);
  if (!b) throw new InvalidArgumentError(field, `not an IP address: ${JSON.stringify(address)}`);
  return b.length === 4 ? { v4: b } : { v6: b };
}

function asV6(f: Family): Uint8Array {
  if ("v6" in f) return f.v6;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(f.v4, 12);
  return out;
}

function checkPort(field: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(field, `port out of range: ${port}`);
}

// ---------------------------------------------------------------- encoders

export interface ProxyEncodeOptions {
  source: ProxyAddress;
  destination: ProxyAddress;
  /** SNI hostname for a PP2_TYPE_AUTHORITY TLV (v2 only). */
  authority?: string;
  /** "local" emits LOCAL with AF_UNSPEC and no addresses (v2) or "PROXY UNKNOWN" (v1). */
  command?: "proxy" | "local";
}

/**
 * Encodes a PROXY v2 header: TCP4 when both addresses are IPv4 (or
 * IPv4-mapped IPv6), else TCP6 with any IPv4 side mapped to ::ffff:a.b.c.d;
 * adds an AUTHORITY TLV when `authority` is given. Throws
 * InvalidArgumentError on an address or port that is not valid.
 */
export function encodeProxyV2(opts: ProxyEncodeOptions): Uint8Array {
  const tlv = opts.authority !== undefined ? new TextEncoder().encode(opts.authority) : null;
  if (tlv && tlv.length > 0xffff - 3 - 36) throw new InvalidArgumentError("authority", "too long");
  let fam = 0x00;
  let addr = new Uint8Array(0);
  if (opts.command !== "local") {
    checkPort("source.port", opts.source.port);
    checkPort("destination.port", opts.destination.port);
    const s = classify("source.address", opts.source.address);
    const d = classify("destination.address", opts.destination.address);
    if ("v4" in s && "v4" in d) {
      fam = 0x11;
      addr = new Uint8Array(12);
      addr.set(s.v4, 0);
      addr.set(d.v4, 4);
    } else {
      fam = 0x21;
      addr = new Uint8Array(36);
      addr.set(asV6(s), 0);
      addr.set(asV6(d), 16);
    }
    const ports = addr.length - 4;
    addr[ports] = opts.source.port >> 8;
    addr[ports + 1] = opts.source.port & 0xff;
    addr[ports + 2] = opts.destination.port >> 8;
    addr[ports + 3] = opts.destination.port & 0xff;
  }
  const len = addr.length + (tlv ? 3 + tlv.length : 0);
  const out = new Uint8Array(V2_HEADER + len);
  out.set(V2_SIG, 0);
  out[12] = opts.command === "local" ? 0x20 : 0x21;
  out[13] = fam;
  out[14] = len >> 8;
  out[15] = len & 0xff;
  out.set(addr, V2_HEADER);
  if (tlv) {
    const p = V2_HEADER + addr.length;
    out[p] = PP2_TYPE_AUTHORITY;
    out[p + 1] = tlv.length >> 8;
    out[p + 2] = tlv.length & 0xff;
    out.set(tlv, p + 3);
  }
  return out;
}

/**
 * Encodes a PROXY v1 line ("PROXY TCP4 a b p q\r\n"); same family rules as
 * encodeProxyV2; command "local" gives "PROXY UNKNOWN\r\n". Throws
 * InvalidArgumentError on an invalid address or port.
 */
export function encodeProxyV1(opts: Omit<ProxyEncodeOptions, "authority">): Uint8Array {
  if (opts.command === "local") return new TextEncoder().encode("PROXY UNKNOWN\r\n");
  checkPort("source.port", opts.source.port);
  checkPort("destination.port", opts.destination.port);
  const s = classify("source.address", opts.source.address);
  const d = classify("destination.address", opts.destination.address);
  const both4 = "v4" in s && "v4" in d;
  const text = (f: Family) => (both4 && "v4" in f ? formatIpv4(f.v4) : formatV6Plain(asV6(f)));
  const line = `PROXY ${both4 ? "TCP4" : "TCP6"} ${text(s)} ${text(d)} ${opts.source.port} ${opts.destination.port}\r\n`;
  return new TextEncoder().encode(line);
}

/** IPv6 text using only hex groups (v1 wants "sets of 4 hexadecimal digits", so no dotted tail). */
function formatV6Plain(b: Uint8Array): string {
  if (!isMappedV4(b)) return formatIpv6Bytes(b);
  return `::ffff:${((b[12] << 8) | b[13]).toString(16)}:${((b[14] << 8) | b[15]).toString(16)}`;
}

// ---------------------------------------------------------------- CRC32C

let crcTable: Uint32Array | null = null;

/** CRC32c (Castagnoli, RFC 4960 App. B) of `data`. */
export function crc32c(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
