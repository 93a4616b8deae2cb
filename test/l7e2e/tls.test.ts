/**
 * Native TLS termination (src/l7/tls.ts, Bun's undocumented server-side
 * `upgradeTLS`), one regression test per undocumented detail, against the
 * real server as a subprocess:
 * - the secure context is chosen per route from the peeked SNI (two routes,
 *   two certificates, one listener);
 * - ALPN goes in wire format: h2 and http/1.1 are both negotiated; a client
 *   offering only another protocol gets `no_application_protocol` (RFC 7301
 *   §3.2 — the server supports ALPN, so a non-overlapping offer is fatal),
 *   logged with that reason; no ALPN at all is HTTP/1.1 (SPEC §5);
 * - `minVersion` on the context is honoured (`l7_min_tls = "1.3"` refuses a
 *   TLS 1.2-only client, and the refusal is logged);
 * - the peeked ClientHello is replayed (`initialData`): handshakes complete
 *   with curl, openssl and node:tls, including a hello split over three TCP
 *   writes and a ~9 KiB hello spanning several records' worth of segments.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import { cleanupCerts, curl, e2ePki, killAllServers, route, sClient, startProxy, startRawBackend, tlsClient, type RawBackend, type ServerProc } from "./e2e.ts";

let be: RawBackend;
let p: ServerProc;
let port: number;

beforeAll(async () => {
  e2ePki();
  be = await startRawBackend();
  p = await startProxy([route({ backend: be.addr }), route({ hostname: "b.test", backend: be.addr })], ['l7_min_tls = "1.3"']);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
});

/** The peer leaf's subject CN and SAN as node:tls reports them, for `servername`. */
async function leafFor(servername: string): Promise<{ cn: string; san: string; alpn: string | false }> {
  const c = await tlsClient(port, { servername, alpn: ["h2", "http/1.1"] });
  const cert = c.sock.getPeerCertificate();
  const out = { cn: String(cert.subject?.CN ?? ""), san: String(cert.subjectaltname ?? ""), alpn: c.sock.alpnProtocol ?? false };
  c.sock.destroy();
  return out;
}

describe("certificate per SNI", () => {
  test("openssl s_client -servername a.test / b.test gets that route's certificate and never the other's", async () => {
    for (const [name, other] of [["a.test", "b.test"], ["b.test", "a.test"]] as const) {
      const r = await sClient(port, ["-servername", name, "-verify_hostname", name, "-showcerts"]);
      const leaf = r.out.split("-----BEGIN CERTIFICATE-----")[1] ?? "";
      expect(r.out).toContain("Verify return code: 0 (ok)");
      expect(r.out).toMatch(new RegExp(`subject=CN ?= ?${name.replace(".", "\\.")}`));
      expect(r.out).not.toMatch(new RegExp(`subject=CN ?= ?${other.replace(".", "\\.")}`));
      // The leaf's SAN, decoded by openssl itself.
      const x = Bun.spawnSync(["openssl", "x509", "-noout", "-ext", "subjectAltName"], { stdin: Buffer.from(`-----BEGIN CERTIFICATE-----${leaf.split("-----END CERTIFICATE-----")[0]}-----END CERTIFICATE-----\n`) });
      const san = x.stdout.toString();
      expect(san).toContain(`DNS:${name}`);
      expect(san).not.toContain(`DNS:${other}`);
    }
  });

  test("node:tls sees the SNI's leaf (CN and SAN) for each name, alternating on one listener", async () => {
    for (const name of ["a.test", "b.test", "a.test", "b.test"]) {
      const l = await leafFor(name);
      expect(l.cn).toBe(name);
      expect(l.san).toBe(`DNS:${name}`);
    }
  });
});

describe("ALPN (wire format)", () => {
  test("curl --http2 negotiates h2, curl --http1.1 negotiates http/1.1; both reach the backend", async () => {
    const h2 = await curl(port, "/alpn-h2", ["--http2"]);
    expect(h2.status).toBe(200);
    expect(h2.httpVersion).toBe("2");
    const h1 = await curl(port, "/alpn-h1", ["--http1.1"]);
    expect(h1.status).toBe(200);
    expect(h1.httpVersion).toBe("1.1");
    expect(be.seen.map((s) => s.path)).toEqual(expect.arrayContaining(["/alpn-h2", "/alpn-h1"]));
  });

  test("openssl -alpn h2 / http/1.1 reports the protocol the server selected", async () => {
    const a = await sClient(port, ["-servername", "a.test", "-alpn", "h2"]);
    expect(a.out).toContain("ALPN protocol: h2");
    const b = await sClient(port, ["-servername", "a.test", "-alpn", "http/1.1"]);
    expect(b.out).toContain("ALPN protocol: http/1.1");
    // Both offered, in the client's order of preference http/1.1 first: the server's preference (h2) wins.
    const c = await sClient(port, ["-servername", "a.test", "-alpn", "http/1.1,h2"]);
    expect(c.out).toContain("ALPN protocol: h2");
  });

  test("a client offering only another protocol (foo) is refused with no_application_protocol, and it is logged", async () => {
    const before = p.logs.filter((l) => l.event === "l7.tls_error").length;
    const r = await sClient(port, ["-servername", "a.test", "-alpn", "foo"], { input: "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n" });
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("no application protocol");
    expect(r.out).toContain("no peer certificate available");
    const l = await p.waitLog((x) => x.event === "l7.tls_error" && x.reason === "no shared ALPN protocol", 5000, "l7.tls_error for ALPN");
    expect(l.sni).toBe("a.test");
    expect(p.logs.filter((x) => x.event === "l7.tls_error").length).toBeGreaterThan(before);
  });

  test("a client without any ALPN extension is served over HTTP/1.1", async () => {
    const c = await tlsClient(port, { alpn: [] });
    expect(c.sock.alpnProtocol || false).toBe(false);
    c.sock.write("GET /no-alpn HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    expect(await c.until((t) => t.includes('"path":"/no-alpn"'), 5000)).toBe(true);
    expect(c.text()).toStartWith("HTTP/1.1 200");
    c.sock.destroy();
  });
});

describe("minimum TLS version (minVersion on the context)", () => {
  test('l7_min_tls = "1.3" refuses a TLS 1.2-only client, and the refusal is logged with its reason', async () => {
    const r = await sClient(port, ["-servername", "b.test", "-tls1_2"]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/protocol version|unsupported protocol|wrong version/i);
    const l = await p.waitLog((x) => x.event === "l7.tls_error" && x.sni === "b.test" && x.class === "version", 5000, "version refusal log");
    expect(String(l.reason)).toContain("no shared TLS version");
    expect(String(l.reason)).toContain("1.3");
    // The same client with TLS 1.3 is served.
    const ok = await sClient(port, ["-servername", "b.test", "-tls1_3"]);
    expect(ok.out).toContain("New, TLSv1.3");
  });

  test('l7_min_tls = "1.2" (a second server) serves the same TLS 1.2-only client: the refusal above is the setting, not a default', async () => {
    const p12 = await startProxy([route({ backend: be.addr })], ['l7_min_tls = "1.2"']);
    try {
      const r = await sClient(p12.port(), ["-servername", "a.test", "-tls1_2"]);
      expect(r.out).toContain("New, TLSv1.2");
      expect(r.out).toContain("Verify return code: 0 (ok)");
      const c = await curl(p12.port(), "/v12ok", ["--http1.1", "--tls-max", "1.2"]);
      expect(c.status).toBe(200);
    } finally {
      await p12.stop();
    }
  });

  test("curl --tls-max 1.2 fails; curl with TLS 1.3 works", async () => {
    const bad = await curl(port, "/v12", ["--http1.1", "--tls-max", "1.2"]);
    expect(bad.status).toBe(0);
    expect(bad.code).not.toBe(0);
    const good = await curl(port, "/v13", ["--http1.1", "--tlsv1.3"]);
    expect(good.status).toBe(200);
  });
});

describe("the peeked ClientHello is replayed", () => {
  test("handshakes complete with curl, openssl and node:tls", async () => {
    expect((await curl(port, "/c1", ["--http1.1"])).status).toBe(200);
    const o = await sClient(port, ["-servername", "a.test", "-ign_eof"], { input: "GET /o1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeoutMs: 10_000 });
    expect(o.out).toContain("HTTP/1.1 200");
    expect(o.out).toContain('"path":"/o1"');
    const n = await tlsClient(port);
    n.sock.write("GET /n1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    expect(await n.until((t) => t.includes('"path":"/n1"'), 5000)).toBe(true);
    n.sock.destroy();
  });

  test("a ClientHello split into three TCP writes (with pauses) still completes the handshake", async () => {
    // node:tls over our own Duplex: its first write (the ClientHello) goes out in three pieces.
    const raw = net.connect(port, "127.0.0.1");
    raw.setNoDelay(true);
    await new Promise((r) => raw.once("connect", r));
    let first = true;
    const pieces: number[] = [];
    const duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        if (!first) return raw.write(chunk, () => cb());
        first = false;
        const a = Math.floor(chunk.byteLength / 3);
        const parts = [chunk.subarray(0, 5), chunk.subarray(5, a), chunk.subarray(a)];
        (async () => {
          for (const part of parts) {
            pieces.push(part.byteLength);
            raw.write(part);
            await Bun.sleep(120);
          }
          cb();
        })();
      },
      final(cb) {
        raw.end();
        cb();
      },
    });
    raw.on("data", (d) => duplex.push(d));
    raw.on("end", () => duplex.push(null));
    raw.on("error", () => {});
    const s = tls.connect({ socket: duplex, servername: "b.test", ca: e2ePki().ca.certPem, ALPNProtocols: ["http/1.1"] } as tls.ConnectionOptions);
    s.on("error", () => {});
    let text = "";
    s.on("data", (d: Buffer) => (text += d.toString("latin1")));
    const ok = await Promise.race([new Promise<boolean>((r) => s.once("secureConnect", () => r(true))), Bun.sleep(8000).then(() => false)]);
    expect(ok).toBe(true);
    expect(pieces.length).toBe(3);
    expect(String(s.getPeerCertificate().subject?.CN)).toBe("b.test");
    s.write("GET /split HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n");
    const end = Date.now() + 5000;
    while (!text.includes('"path":"/split"') && Date.now() < end) await Bun.sleep(20);
    expect(text).toStartWith("HTTP/1.1 200");
    expect(text).toContain('"path":"/split"');
    s.destroy();
    raw.destroy();
  });

  test("a large (~9 KiB) ClientHello — long ALPN list — is replayed whole", async () => {
    const alpn = ["http/1.1", ...Array.from({ length: 40 }, (_, i) => `x-pad-${i}-${"p".repeat(200)}`)];
    const c = await tlsClient(port, { alpn });
    expect(c.sock.alpnProtocol).toBe("http/1.1");
    c.sock.write("GET /big-hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    expect(await c.until((t) => t.includes('"path":"/big-hello"'), 5000)).toBe(true);
    c.sock.destroy();
  });
});
