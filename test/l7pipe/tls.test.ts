/**
 * The L7 TLS front through the REAL pipeline: minimum TLS version, handshake
 * failures and unusable certificates are logged with their reason (never
 * silent), and SIGHUP (srv.reload) re-reads certificates from disk — a bad
 * file keeps the previous certificate.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { startTestProxy, waitFor, type TestProxy } from "../helpers/proxy.ts";
import { cleanupCerts, makeLeaf } from "../fixtures/certs.ts";
import { startH2cBackend, type Backend } from "../l7/backends.ts";
import { curl, testPki } from "../l7/harness.ts";
import { startProxyProc } from "../helpers/subprocess.ts";
import { opensslHandshake } from "../wire/raw-tls-client.ts";
import { captureLogs, copyTestCert, HOST, listenerToml, routeToml, startL7Proxy } from "./pipe.ts";

// bunfig's [test] timeout is not honoured by Bun 1.4.4: set it here (covers hooks too).
setDefaultTimeout(60_000);

let h2c: Backend;
const proxies: TestProxy[] = [];
const dirs: string[] = [];
let logs: ReturnType<typeof captureLogs>;

function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "mc-l7pipe-tls-"));
  dirs.push(d);
  return d;
}

async function proxy(routes: string[], proxyLines: string[] = []): Promise<TestProxy> {
  const p = await startL7Proxy(routes, proxyLines);
  proxies.push(p);
  return p;
}

/** The certificate the proxy presents for `sni` (trusting nothing: we only look at it). */
function servedCert(port: number, sni = HOST): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: sni, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
    s.setTimeout(15000, () => s.destroy(new Error("handshake timed out")));
    s.once("secureConnect", () => {
      const raw = s.getPeerCertificate().raw;
      // Let the Finished go out before closing (see the "ClientHello then FIN" test).
      setTimeout(() => s.end(), 10);
      resolve(new X509Certificate(raw));
    });
    s.once("error", reject);
  });
}

/** The raw bytes of a real ClientHello for `sni`, captured from node:tls. */
async function captureClientHello(sni: string): Promise<Uint8Array> {
  let got: Uint8Array | null = null;
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, d) {
        got ??= new Uint8Array(d);
        s.terminate();
      },
    },
  });
  const c = tls.connect({ host: "127.0.0.1", port: l.port, servername: sni, rejectUnauthorized: false });
  c.on("error", () => {});
  try {
    await waitFor(() => got !== null, 10000, "ClientHello");
  } finally {
    c.destroy();
    l.stop(true);
  }
  return got!;
}

beforeAll(async () => {
  testPki();
  logs = captureLogs();
  h2c = await startH2cBackend();
});

afterAll(async () => {
  logs?.restore();
  for (const p of proxies) await p.stop();
  await h2c?.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  cleanupCerts();
});

describe("minimum TLS version", () => {
  test('a TLS 1.2-only client against l7_min_tls = "1.3" is refused and the reason is logged', async () => {
    const p = await proxy([routeToml(h2c.addr, { backendProtocol: "h2" })], ['l7_min_tls = "1.3"']);
    const r = await opensslHandshake({ port: p.port(), sni: HOST, args: ["-tls1_2"] });
    expect(r.ok).toBe(false);
    const line = (await waitFor(() => logs.of("l7.tls_error").find((o) => String(o.reason).includes("no shared TLS version")), 10000, "tls_error log"))!;
    expect(String(line.reason)).toContain("1.3");
    expect(line.sni).toBe(HOST);
    expect(line.client).toBe("127.0.0.1");
    // And the connection's close line says why.
    const conn = (await waitFor(() => logs.of("conn").find((o) => o.listener === p.srv.config.listeners[0].addr && o.outcome === "tls_failed"), 10000, "conn log"))!;
    expect(conn.sni).toBe(HOST);
    await waitFor(() => p.srv.proxy.conns.size === 0, 10000, "connection released");
  });

  test('with l7_min_tls = "1.2" a TLS 1.2 client is served', async () => {
    const p = await proxy([routeToml(h2c.addr, { backendProtocol: "h2" })], ['l7_min_tls = "1.2"']);
    const r = await opensslHandshake({ port: p.port(), sni: HOST, args: ["-tls1_2", "-CAfile", testPki().ca.certPath] });
    expect(r.ok).toBe(true);
    expect(r.output).toContain("TLSv1.2");
    const c = await curl(p.port(), "/hello", ["--http2", "--tlsv1.2", "--tls-max", "1.2"]);
    expect(c.status).toBe(200);
    expect(c.body).toBe("hello from h2c\n");
  });
});

describe("handshake failures release the connection", () => {
  test("a client that sends its ClientHello then FIN is released at once (not held until idle_timeout) and logged", async () => {
    const p = await proxy([routeToml(h2c.addr, { backendProtocol: "h2" })], ['idle_timeout = "60s"']);
    const hello = await captureClientHello(HOST);
    const before = logs.of("l7.tls_error").length;
    const s = net.connect(p.port(), "127.0.0.1");
    s.on("error", () => {});
    await new Promise<void>((r) => s.once("connect", () => r()));
    s.end(hello); // ClientHello, then FIN: the handshake can never finish
    try {
      await waitFor(() => p.srv.proxy.conns.size === 0 && logs.of("l7.tls_error").length > before, 5000, "connection released");
    } finally {
      s.destroy();
    }
    expect(String(logs.of("l7.tls_error").at(-1)!.reason)).toBe("client closed the connection during the handshake");
  });

  test("a client that sends its ClientHello then stalls is cut after hello_timeout, not idle_timeout, and logged", async () => {
    const p = await proxy([routeToml(h2c.addr, { backendProtocol: "h2" })], ['hello_timeout = "1s"', 'idle_timeout = "60s"']);
    const hello = await captureClientHello(HOST);
    const before = logs.of("l7.tls_error").length;
    const s = net.connect(p.port(), "127.0.0.1");
    s.on("error", () => {});
    s.resume(); // consume the ServerHello: a paused socket never sees the proxy's FIN
    const closed = new Promise<void>((r) => s.once("close", () => r()));
    await new Promise<void>((r) => s.once("connect", () => r()));
    const t0 = Date.now();
    s.write(hello); // and then nothing, without FIN
    try {
      await Promise.race([closed, Bun.sleep(15000)]);
    } finally {
      s.destroy();
    }
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(8000);
    const line = (await waitFor(() => logs.of("l7.tls_error").slice(before).find((o) => o.sni === HOST), 5000, "tls_error log"))!;
    expect(line.reason).toBe("handshake not completed within hello_timeout");
    await waitFor(() => p.srv.proxy.conns.size === 0, 5000, "connection released");
  });
});

describe("unusable certificates", () => {
  test("a route row inserted by hand with a missing cert file: start-up logs why, handshakes are refused and logged", async () => {
    const dir = tempDir();
    // First start seeds the database; then an operator inserts a row by hand.
    const first = await startTestProxy(listenerToml([routeToml(h2c.addr, { backendProtocol: "h2" })]), { dir });
    await first.stop();
    const db = new Database(path.join(dir, "mc-proxy.db"));
    const missing = path.join(dir, "missing.pem");
    db.run(
      "INSERT INTO routes (listener_id, hostname, backend, mode, tls_cert, tls_key, backend_tls) VALUES ((SELECT id FROM listeners LIMIT 1), ?, ?, 'l7', ?, ?, 0)",
      ["localhost", h2c.addr, missing, path.join(dir, "missing.key")],
    );
    db.close();
    const p = await startTestProxy(listenerToml([routeToml(h2c.addr, { backendProtocol: "h2" })]), { dir });
    proxies.push(p);
    const loadFail = logs.of("route.cert_load_failed").find((o) => o.hostname === "localhost");
    expect(loadFail).toBeDefined();
    expect(String(loadFail!.reason)).toContain(missing);
    expect(String(loadFail!.reason)).toContain("ENOENT");
    // The route is kept (cert = null): its handshakes are refused with a log line.
    const r = await opensslHandshake({ port: p.port(), sni: "localhost" });
    expect(r.ok).toBe(false);
    const line = (await waitFor(() => logs.of("l7.no_cert").find((o) => o.sni === "localhost"), 10000, "no_cert log"))!;
    expect(String(line.reason)).toContain("certificate");
    // The other route on the listener still works.
    expect((await curl(p.port(), "/hello", ["--http2"])).status).toBe(200);
    // Once the files exist, SIGHUP makes the route serve.
    const { cert, key } = copyTestCert(dir);
    fs.renameSync(cert, missing);
    fs.renameSync(key, path.join(dir, "missing.key"));
    p.srv.reload();
    const served = await servedCert(p.port(), "localhost");
    expect(served.fingerprint256).toBe(new X509Certificate(testPki().leaf.certPem).fingerprint256);
  });
});

describe("SIGHUP reloads certificates from disk", () => {
  let p: TestProxy;
  let files: { cert: string; key: string };

  beforeAll(async () => {
    files = copyTestCert(tempDir());
    p = await proxy([routeToml(h2c.addr, { backendProtocol: "h2", cert: files.cert, key: files.key })]);
  });

  test("a new leaf on disk is served to new connections after reload; a garbage file keeps the previous one and logs why", async () => {
    const old = await servedCert(p.port());
    expect(old.serialNumber).toBe(new X509Certificate(testPki().leaf.certPem).serialNumber);

    // Replace both files with a new leaf (different serial) and reload.
    const next = makeLeaf(testPki().ca, [HOST]);
    fs.writeFileSync(files.cert, next.fullchainPem);
    fs.writeFileSync(files.key, next.keyPem);
    p.srv.reload();
    const after = await servedCert(p.port());
    expect(after.serialNumber).toBe(new X509Certificate(next.certPem).serialNumber);
    expect(after.serialNumber).not.toBe(old.serialNumber);
    const ok = await curl(p.port(), "/hello", ["--http2"]);
    expect(ok.status).toBe(200);

    // Garbage in the cert file: reload fails for that route, the previous (new) leaf stays.
    fs.writeFileSync(files.cert, "this is not a certificate\n");
    const before = logs.of("cert.reload_failed").length;
    p.srv.reload();
    const fail = logs.of("cert.reload_failed").slice(before);
    expect(fail.length).toBe(1);
    expect(fail[0].hostname).toBe(HOST);
    expect(String(fail[0].reason)).toContain(files.cert);
    expect(String(fail[0].reason)).toContain("no PEM CERTIFICATE block");
    expect(fail[0].kept).toBe("previous certificate");
    expect(JSON.stringify(fail[0])).not.toContain("PRIVATE KEY");
    const kept = await servedCert(p.port());
    expect(kept.serialNumber).toBe(after.serialNumber);
    expect((await curl(p.port(), "/hello", ["--http1.1"])).status).toBe(200);
  });

  test("a real SIGHUP to the mc-proxy process reloads certificates (new serial served)", async () => {
    const f = copyTestCert(tempDir());
    const proc = await startProxyProc(listenerToml([routeToml(h2c.addr, { backendProtocol: "h2", cert: f.cert, key: f.key })]));
    try {
      const old = await servedCert(proc.port());
      const next = makeLeaf(testPki().ca, [HOST]);
      fs.writeFileSync(f.cert, next.fullchainPem);
      fs.writeFileSync(f.key, next.keyPem);
      process.kill(proc.pid, "SIGHUP");
      await waitFor(() => proc.lines.some((l) => l.includes('"event":"server.reload"')), 10000, "server.reload log");
      const after = await servedCert(proc.port());
      expect(after.serialNumber).toBe(new X509Certificate(next.certPem).serialNumber);
      expect(after.serialNumber).not.toBe(old.serialNumber);
    } finally {
      await proc.stop();
    }
  });
});
