/**
 * A route-level failure at request time (SPEC §5, §10): an L7 route with
 * backend_tls_verify whose backend_tls_ca file is deleted after the server
 * started (validation read it at start) answers 502 — over HTTP/1.1, HTTP/2
 * and for a WebSocket upgrade — and the server logs one JSON line per
 * failure (l7.route_error), writes no stack trace, stays up, and keeps
 * serving its other routes. A route whose CA was read before the deletion
 * keeps working (the target is derived once per route record).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { cleanupCerts, curl, e2ePki, killAllServers, route, startProxy, statuses, tlsClient, type ServerProc } from "./e2e.ts";

const dir = mkdtempSync(join(tmpdir(), "mcp-l7e2e-ca-"));
let tlsBackend: tls.Server;
let tlsPort: number;
let p: ServerProc;
let port: number;
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
  p = await startProxy(
    [
      route({ hostname: "a.test", backend: `127.0.0.1:${tlsPort}`, extra: verify(caA) }),
      route({ hostname: "b.test", backend: `127.0.0.1:${tlsPort}`, extra: verify(caB) }),
    ],
    [],
  );
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  tlsBackend?.close();
  killAllServers();
  cleanupCerts();
  rmSync(dir, { recursive: true, force: true });
});

describe("backend_tls_ca deleted after start", () => {
  test("b.test is used once (its CA read), then both CA files are deleted", async () => {
    const r = await curl(p.port(), "/warm", ["--http1.1"], { host: "b.test" });
    expect(r.status).toBe(200);
    expect(r.body).toBe("from tls be");
    unlinkSync(caA);
    unlinkSync(caB);
  });

  for (const proto of ["--http1.1", "--http2"]) {
    test(`${proto}: a.test (CA never read) answers 502 text/plain, repeatedly, and the process stays up`, async () => {
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

  test("b.test, whose CA was read before the deletion, keeps serving", async () => {
    const r = await curl(port, "/still", ["--http1.1"], { host: "b.test" });
    expect(r.status).toBe(200);
    expect(r.body).toBe("from tls be");
    expect(p.done).toBe(false);
  });
});
