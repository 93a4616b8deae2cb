/**
 * A route-level failure at request time (SPEC §5, §10), and the backend CA
 * read with the route. An L7 route with backend_tls_verify reads its
 * backend_tls_ca when the route is loaded (start, AddRoute, SIGHUP), like its
 * certificate: deleting the file later changes nothing, on any data-path
 * thread (the server runs with its default workers here), and a SIGHUP that
 * cannot read it keeps the bundle read before. A route whose CA cannot be
 * read when it is loaded — one added through the admin API whose file is gone
 * at the next start — answers 502 over HTTP/1.1, HTTP/2 and for a WebSocket
 * upgrade, with one JSON line per failure (l7.route_error), no stack trace,
 * and the server keeps serving its other routes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { AdminClient } from "../../src/admin/client.ts";
import { BackendProtocol, RouteMode } from "../../src/gen/mc_proxy/v1/admin.ts";
import { startServerProc } from "../helpers/subprocess.ts";
import { cleanupCerts, curl, e2ePki, killAllServers, route, serverBin, statuses, tlsClient, type ServerProc } from "./e2e.ts";

const dir = mkdtempSync(join(tmpdir(), "mcp-l7e2e-ca-"));
let tlsBackend: tls.Server;
let tlsPort: number;
let p: ServerProc;
let port: number;
let cfg: string;
const caA = join(dir, "ca-a.pem");
const caB = join(dir, "ca-b.pem");

beforeAll(async () => {
  const pki = e2ePki();
  copyFileSync(pki.ca.certPath, caA);
  copyFileSync(pki.ca.certPath, caB);
  // A TLS HTTP/1.1 backend with a certificate for a.test and b.test's names (same CA).
  tlsBackend = tls.createServer({ cert: pki.a.fullchainPem, key: pki.a.keyPem, ALPNProtocols: ["http/1.1"] }, (s) => {
    s.on("error", () => {});
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString("latin1");
      while (buf.includes("\r\n\r\n")) {
        buf = buf.slice(buf.indexOf("\r\n\r\n") + 4);
        s.write("HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nfrom tls be");
      }
    });
  });
  await new Promise<void>((r) => tlsBackend.listen(0, "127.0.0.1", () => r()));
  tlsPort = (tlsBackend.address() as { port: number }).port;
  const verify = (ca: string) => ["backend_tls = true", "backend_tls_verify = true", `backend_tls_ca = "${ca}"`, 'backend_tls_server_name = "a.test"'];
  cfg = join(dir, "mc-proxy.toml");
  writeFileSync(
    cfg,
    `[database]\npath = "mc-proxy.db"\n\n[grpc]\naddr = "admin.sock"\n\n[log]\nlevel = "info"\n\n[[listeners]]\naddr = "127.0.0.1:0"\n` +
      route({ hostname: "b.test", backend: `127.0.0.1:${tlsPort}`, extra: verify(caB) }),
  );
  p = await startServerProc(cfg, { bin: serverBin(), cwd: dir });
  port = p.port();
});

afterAll(async () => {
  if (p && !p.done) await p.stop();
  tlsBackend?.close();
  killAllServers();
  cleanupCerts();
  rmSync(dir, { recursive: true, force: true });
});

async function addA(): Promise<void> {
  const admin = new AdminClient({ addr: join(dir, "admin.sock") });
  try {
    await admin.addRoute("127.0.0.1:0", {
      hostname: "a.test", backend: `127.0.0.1:${tlsPort}`, mode: RouteMode.ROUTE_MODE_L7,
      tlsCert: e2ePki().a.fullchainPath, tlsKey: e2ePki().a.keyPath, backendTls: true,
      backendProtocol: BackendProtocol.BACKEND_PROTOCOL_HTTP1, backendTlsVerify: true, backendTlsCa: caA,
      backendTlsServerName: "a.test", sendProxyProtocol: false, l7Policies: [],
    });
  } finally {
    admin.close();
  }
}

describe("the backend CA is read with the route", () => {
  test("a route added through the admin API, then both CA files deleted: both routes keep serving, over HTTP/1.1 and HTTP/2, many times (every thread)", async () => {
    await addA();
    unlinkSync(caA);
    unlinkSync(caB);
    for (const host of ["a.test", "b.test"]) {
      for (const proto of ["--http1.1", "--http2"]) {
        for (let i = 0; i < 6; i++) {
          const r = await curl(port, `/after-delete-${i}`, [proto], { host });
          expect(r.status).toBe(200);
          expect(r.body).toBe("from tls be");
        }
      }
    }
  });

  test("SIGHUP while the CA files are gone: a warning per route, the bundles read before are kept", async () => {
    p.proc.kill("SIGHUP");
    await p.waitLog((l) => l.event === "server.reload", 10_000);
    const warned = p.logs.filter((l) => l.event === "route.backend_ca_unreadable").map((l) => l.hostname);
    expect(warned).toContain("a.test");
    expect(warned).toContain("b.test");
    for (const host of ["a.test", "b.test"]) expect((await curl(port, "/after-hup", ["--http1.1"], { host })).status).toBe(200);
  });
});

describe("a route whose backend_tls_ca cannot be read when it is loaded", () => {
  test("restart with ca-a.pem still gone (a.test lives only in the database): the server starts and warns naming the route and the file", async () => {
    copyFileSync(e2ePki().ca.certPath, caB); // b.test's CA is back; a.test's is not
    expect(await p.stop()).toBe(0);
    p = await startServerProc(cfg, { bin: serverBin(), cwd: dir });
    port = p.port();
    const w = await p.waitLog((l) => l.event === "route.backend_ca_unreadable", 5000);
    expect(w.hostname).toBe("a.test");
    expect(String(w.file)).toContain("ca-a.pem");
  });

  for (const proto of ["--http1.1", "--http2"]) {
    test(`${proto}: a.test answers 502 text/plain, repeatedly, and the process stays up`, async () => {
      for (let i = 0; i < 3; i++) {
        const r = await curl(port, `/gone-${i}`, [proto]);
        expect(r.status).toBe(502);
        expect(r.headers["content-type"]).toStartWith("text/plain");
      }
      expect(p.done).toBe(false);
    });
  }

  test("a WebSocket upgrade on that route is answered 502 too, and the connection closes", async () => {
    const c = await tlsClient(port);
    c.sock.write("GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([502]);
  });

  test("the failure is logged as JSON (l7.route_error naming the route and the file), with no stack trace on stderr", async () => {
    const l = await p.waitLog((x) => x.event === "l7.route_error", 5000, "l7.route_error");
    expect(l.route).toBe("a.test");
    expect(l.level).toBe("error");
    expect(String(l.reason)).toContain("ca-a.pem");
    const notJson = p.logs.filter((x) => "raw" in x);
    expect(notJson).toEqual([]);
    expect(p.stderrText()).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
    expect(p.stderrText()).not.toContain("    at ");
    expect(p.logs.filter((x) => x.event === "l7.route_error").length).toBeGreaterThanOrEqual(7);
  });

  test("b.test keeps serving", async () => {
    const r = await curl(port, "/still", ["--http1.1"], { host: "b.test" });
    expect(r.status).toBe(200);
    expect(r.body).toBe("from tls be");
    expect(p.done).toBe(false);
  });
});
