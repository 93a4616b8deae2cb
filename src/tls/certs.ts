/**
 * Loading an L7 route's certificate + key from disk, with the checks an
 * operator needs at config/admin time rather than at handshake time.
 * Used by config validation, the admin API (AddRoute) and SIGHUP reloads.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { FileReadError, readSmallFile } from "../fsread.ts";
import * as tls from "node:tls";

export interface CertPair {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  /** The first certificate of the cert file. */
  leaf: X509Certificate;
  /** Every certificate in the cert file, as given (leaf first). */
  chain: X509Certificate[];
  /** Non-fatal problems (leaf-only file, expired), one sentence each. */
  warnings: string[];
}

export type CertErrorReason = "unreadable" | "parse" | "key_mismatch" | "empty";

/** Why a cert/key pair was refused. The message names the file; it never contains key material. */
export class CertError extends Error {
  readonly code = "cert";
  constructor(
    readonly reason: CertErrorReason,
    /** Which file is at fault: the certificate file or the key file. */
    readonly which: "cert" | "key",
    message: string,
  ) {
    super(message);
    this.name = "CertError";
  }
}

/** One PEM CERTIFICATE block (global: use with `match`). */
export const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function readText(path: string, which: "cert" | "key"): string {
  const what = which === "cert" ? "certificate" : "key";
  if (!path) throw new CertError("unreadable", which, `${what} path is empty`);
  try {
    // Non-blocking, regular files only, bounded (a FIFO or /dev/zero would hold the thread).
    return readSmallFile(path);
  } catch (e) {
    // Only the short reason: the OS message is fine but keeps the text short.
    const reason = e instanceof FileReadError ? e.message : "error";
    throw new CertError("unreadable", which, `${what} ${path}: cannot read (${reason})`);
  }
}

/** Strip library error prefixes like "error:0900006e:PEM routines:OPENSSL_internal:" to the reason. */
function shortReason(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const parts = m.split(":");
  return (parts.length >= 5 ? parts.slice(4).join(":") : m).trim().slice(0, 120);
}

function isSelfSigned(c: X509Certificate): boolean {
  try {
    return c.checkIssued(c) && c.verify(c.publicKey);
  } catch {
    return false;
  }
}

/**
 * Read and check a PEM certificate chain (leaf first) and its private key.
 * Throws CertError: "unreadable" (a file cannot be read), "empty" (no
 * certificate block / empty key file), "parse" (a block or the key does not
 * parse, or the TLS stack refuses the pair), "key_mismatch" (key is not the
 * leaf's). A leaf whose issuer is missing from the file (and that is not
 * self-signed) is accepted with a warning, as is an expired leaf.
 */
export function loadCertPair(certPath: string, keyPath: string): CertPair {
  const certPem = readText(certPath, "cert");
  const keyPem = readText(keyPath, "key");

  const blocks = certPem.match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) throw new CertError("empty", "cert", `certificate ${certPath}: no PEM CERTIFICATE block`);
  const chain: X509Certificate[] = [];
  for (let i = 0; i < blocks.length; i++) {
    try {
      chain.push(new X509Certificate(blocks[i]));
    } catch (e) {
      throw new CertError("parse", "cert", `certificate ${certPath}: certificate #${i + 1} does not parse (${shortReason(e)})`);
    }
  }
  const leaf = chain[0];

  if (keyPem.trim() === "") throw new CertError("empty", "key", `key ${keyPath}: file is empty`);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    // Never echo the key text; the library reason is generic ("NO_START_LINE", "DECODE_ERROR").
    throw new CertError("parse", "key", `key ${keyPath}: not a readable unencrypted PEM private key (${shortReason(e)})`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new CertError("key_mismatch", "key", `key ${keyPath} does not match the certificate in ${certPath} (${leaf.subject.replace(/\n/g, ", ")})`);
  }
  // The TLS stack is the final judge (e.g. key types it does not support).
  try {
    tls.createSecureContext({ cert: certPem, key: keyPem });
  } catch (e) {
    throw new CertError("parse", "cert", `certificate ${certPath} / key ${keyPath}: refused by TLS (${shortReason(e)})`);
  }

  const warnings: string[] = [];
  if (!isSelfSigned(leaf) && !chain.slice(1).some((c) => leaf.checkIssued(c))) {
    warnings.push(
      `certificate ${certPath}: leaf-only certificate file (issuer "${leaf.issuer.replace(/\n/g, ", ")}" not in the file): ` +
        "clients that do not have the intermediate will fail; use the full chain (leaf first)",
    );
  }
  const notAfter = new Date(leaf.validTo);
  if (!Number.isNaN(notAfter.getTime()) && notAfter.getTime() < Date.now()) {
    warnings.push(`certificate ${certPath}: expired on ${notAfter.toISOString()}`);
  }
  return { certPath, keyPath, certPem, keyPem, leaf, chain, warnings };
}
