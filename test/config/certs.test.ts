import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as net from "node:net";
import * as tls from "node:tls";
import { CertError, loadCertPair } from "../../src/tls/certs.ts";
import { certTempDir, cleanupCerts, makeCA, makeLeaf, makeSelfSigned, type CA, type CertFiles } from "../fixtures/certs.ts";

let ca: CA;
let ecLeaf: CertFiles;
let rsaLeaf: CertFiles;
let dir: string;

beforeAll(() => {
  ca = makeCA("Test Root");
  ecLeaf = makeLeaf(ca, ["a.test"]);
  rsaLeaf = makeLeaf(ca, ["r.test"], { keyType: "rsa" });
  dir = certTempDir();
});
afterAll(cleanupCerts);

function expectCertError(f: () => unknown, reason: string, which: "cert" | "key"): CertError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CertError);
    const ce = e as CertError;
    expect(ce.reason).toBe(reason as CertError["reason"]);
    expect(ce.which).toBe(which);
    return ce;
  }
  throw new Error("expected a CertError");
}

describe("loadCertPair", () => {
  test("a full-chain EC certificate with its key loads without warnings", () => {
    const p = loadCertPair(ecLeaf.fullchainPath, ecLeaf.keyPath);
    expect(p.chain.length).toBe(2);
    expect(p.leaf.subjectAltName).toContain("DNS:a.test");
    expect(p.warnings).toEqual([]);
    expect(p.certPem).toBe(ecLeaf.fullchainPem);
  });

  test("a full-chain RSA certificate with its key loads without warnings", () => {
    const p = loadCertPair(rsaLeaf.fullchainPath, rsaLeaf.keyPath);
    expect(p.leaf.subjectAltName).toContain("DNS:r.test");
    expect(p.warnings).toEqual([]);
  });

  test("a self-signed certificate loads without the leaf-only warning", () => {
    const s = makeSelfSigned(["s.test"]);
    expect(loadCertPair(s.certPath, s.keyPath).warnings).toEqual([]);
  });

  test("a leaf-only file (issuer missing) loads with a warning about intermediates", () => {
    const p = loadCertPair(ecLeaf.certPath, ecLeaf.keyPath);
    expect(p.chain.length).toBe(1);
    expect(p.warnings.length).toBe(1);
    expect(p.warnings[0]).toContain("leaf-only certificate file");
    expect(p.warnings[0]).toContain("intermediate");
  });

  test("a chain through an intermediate CA loads without warnings when the intermediate is in the file", () => {
    const inter = makeCA("Test Intermediate", { parent: ca });
    const leaf = makeLeaf(inter, ["i.test"]);
    expect(loadCertPair(leaf.fullchainPath, leaf.keyPath).warnings).toEqual([]);
    expect(loadCertPair(leaf.certPath, leaf.keyPath).warnings.length).toBe(1);
  });

  test("a key that belongs to another certificate is refused as key_mismatch (EC cert, RSA key and EC/EC)", () => {
    expectCertError(() => loadCertPair(ecLeaf.fullchainPath, rsaLeaf.keyPath), "key_mismatch", "key");
    const other = makeLeaf(ca, ["a.test"]);
    const e = expectCertError(() => loadCertPair(ecLeaf.fullchainPath, other.keyPath), "key_mismatch", "key");
    expect(e.message).toContain(other.keyPath);
  });

  test("garbage instead of a certificate or key is refused, and key text never appears in the message", () => {
    const junkCert = join(dir, "junk.pem");
    writeFileSync(junkCert, "-----BEGIN CERTIFICATE-----\nAAAAnotacert\n-----END CERTIFICATE-----\n");
    expectCertError(() => loadCertPair(junkCert, ecLeaf.keyPath), "parse", "cert");

    const noBlocks = join(dir, "noblocks.pem");
    writeFileSync(noBlocks, "hello\n");
    expectCertError(() => loadCertPair(noBlocks, ecLeaf.keyPath), "empty", "cert");

    const junkKey = join(dir, "junk.key");
    writeFileSync(junkKey, "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n");
    const e = expectCertError(() => loadCertPair(ecLeaf.fullchainPath, junkKey), "parse", "key");
    expect(e.message).not.toContain("SECRETSECRET");

    const emptyKey = join(dir, "empty.key");
    writeFileSync(emptyKey, "");
    expectCertError(() => loadCertPair(ecLeaf.fullchainPath, emptyKey), "empty", "key");
  });

  test("a certificate file given as the key is refused without leaking PEM text", () => {
    const e = expectCertError(() => loadCertPair(ecLeaf.fullchainPath, ecLeaf.certPath), "parse", "key");
    expect(e.message).not.toContain("BEGIN");
  });

  test("missing files are refused as unreadable, naming the file", () => {
    const e = expectCertError(() => loadCertPair(join(dir, "nope.pem"), ecLeaf.keyPath), "unreadable", "cert");
    expect(e.message).toContain("nope.pem");
    expectCertError(() => loadCertPair(ecLeaf.fullchainPath, join(dir, "nope.key")), "unreadable", "key");
    expectCertError(() => loadCertPair("", ecLeaf.keyPath), "unreadable", "cert");
  });

  // The L7 path: createSecureContext from the pair, then a server-side TLSSocket over the accepted socket.
  // (Bun trap: tls.createServer({ secureContext }) alone does NOT serve the certificate — alert internal_error.)
  test("the loaded pair serves a real TLS handshake that a client verifies against the CA (EC and RSA)", async () => {
    for (const [leaf, name] of [[ecLeaf, "a.test"], [rsaLeaf, "r.test"]] as const) {
      const p = loadCertPair(leaf.fullchainPath, leaf.keyPath);
      const secureContext = tls.createSecureContext({ cert: p.certPem, key: p.keyPem });
      const server = net.createServer((sock) => {
        const t = new tls.TLSSocket(sock, { isServer: true, secureContext });
        t.on("secure", () => t.end("hi"));
        t.on("error", () => sock.destroy());
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as { port: number }).port;
      try {
        const got = await new Promise<string>((resolve, reject) => {
          const c = tls.connect({ host: "127.0.0.1", port, servername: name, ca: ca.certPem }, () => {
            let buf = "";
            c.on("data", (d) => (buf += d));
            c.on("end", () => resolve(buf));
          });
          c.on("error", reject);
          setTimeout(() => reject(new Error("handshake timeout")), 15_000).unref();
        });
        expect(got).toBe("hi");
      } finally {
        server.close();
      }
    }
  });
});
