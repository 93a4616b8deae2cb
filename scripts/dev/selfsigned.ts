/**
 * A self-signed ECDSA P-256 server certificate made with node:crypto alone
 * (no openssl CLI): the devserver's L7 route needs one on first run, on any
 * machine that has Bun. Only what TLS clients check is encoded: X.509 v3,
 * CN, validity, subjectAltName (DNS names and IP addresses), basicConstraints
 * CA:FALSE and extendedKeyUsage serverAuth. No keyUsage: one without
 * keyCertSign makes OpenSSL's "issued by itself" check fail, and
 * src/tls/certs.ts would then warn about a missing issuer.
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";

export interface SelfSigned {
  /** The certificate, PEM. */
  certPem: string;
  /** Its private key, PKCS#8 PEM. */
  keyPem: string;
}

// DER, the subset X.509 needs: definite lengths, universal and context tags.
function der(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : null;
  if (!len) throw new Error("DER value too long");
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}
const seq = (...items: Uint8Array[]) => der(0x30, Buffer.concat(items));
const set = (...items: Uint8Array[]) => der(0x31, Buffer.concat(items));
const octets = (b: Uint8Array) => der(0x04, b);
const bits = (b: Uint8Array) => der(0x03, Buffer.concat([Buffer.from([0]), b]));
const utf8 = (s: string) => der(0x0c, Buffer.from(s, "utf8"));
const TRUE = Buffer.from([0x01, 0x01, 0xff]);

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [a! * 40 + b!];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) groups.unshift((v & 0x7f) | 0x80);
    out.push(...groups);
  }
  return der(0x06, Buffer.from(out));
}

/** A non-negative DER INTEGER from big-endian bytes: minimal (no leading zero octet unless the next has its high bit set), as BoringSSL requires. */
export function positiveInteger(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const m = b.subarray(i);
  return der(0x02, m[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
}

/** UTCTime (YYMMDDHHMMSSZ) until 2049, GeneralizedTime after, as RFC 5280 §4.1.2.5 asks. */
function time(d: Date): Uint8Array {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z"; // YYYYMMDDHHMMSSZ
  return d.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(iso.slice(2))) : der(0x18, Buffer.from(iso));
}

function ipBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Buffer.from(ip.split(".").map(Number));
  // Expand "::" and write eight 16-bit groups.
  const [head, tail = ""] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = ip.includes("::") && tail ? tail.split(":") : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oid(id), TRUE, octets(value)) : seq(oid(id), octets(value));
}

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

/**
 * A new key and a certificate for `names` (DNS names and IP addresses; the
 * first is also the CN), valid from one hour ago for `days` days.
 */
export function makeSelfSigned(names: string[], days: number, commonName = names[0] ?? "localhost"): SelfSigned {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const subject = seq(set(seq(oid("2.5.4.3"), utf8(commonName))));
  const now = Date.now();
  const san = seq(
    ...names.map((n) =>
      isIPv4(n) || isIPv6(n) ? der(0x87, ipBytes(n)) : der(0x82, Buffer.from(n, "ascii")),
    ),
  );
  const tbs = seq(
    der(0xa0, der(0x02, Buffer.from([2]))), // version v3
    positiveInteger(randomBytes(16)),
    ECDSA_SHA256,
    subject, // issuer: itself
    seq(time(new Date(now - 3600_000)), time(new Date(now + days * 86400_000))),
    subject,
    publicKey.export({ type: "spki", format: "der" }),
    der(0xa3, seq(
      extension("2.5.29.17", false, san),
      extension("2.5.29.19", true, seq()), // basicConstraints: CA false
      extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))), // extKeyUsage: serverAuth
    )),
  );
  const signature = sign("sha256", tbs, privateKey); // ECDSA: DER (r, s), as X.509 wants
  const cert = seq(tbs, ECDSA_SHA256, bits(signature));
  const b64 = Buffer.from(cert).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n");
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
