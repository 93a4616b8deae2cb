/**
 * Admin transport (SPEC §7): the unix socket is created 0600, a stale socket file is replaced,
 * anything else at the path is refused; TCP is TLS 1.3 only and needs client_ca: only
 * clients holding a certificate from that CA get in.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { AdminClient } from "../../src/admin/client.ts";
import { startAdminServer, type AdminDeps } from "../../src/admin/server.ts";
import { ConfigError } from "../../src/errors.ts";
import { cleanupCerts, makeCA, makeClientCert, makeLeaf } from "../fixtures/certs.ts";
import { captureLogs, expectGrpcError, seedStore } from "./harness.ts";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "mc-proxy-admint-"));
  dirs.push(d);
  return d;
};
const cap = captureLogs();
afterAll(() => {
  cap.restore();
  cleanupCerts();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function deps(dir: string): AdminDeps {
  const { state } = seedStore(dir);
  return { state, status: () => ({ version: "t", startedAt: new Date(), totalConnections: 0, active: () => 0 }) };
}
const unixCfg = (addr: string) => ({ addr, tlsCert: "", tlsKey: "", clientCa: "" });

/** Leaves a socket file with nobody listening: a process bound it and was SIGKILLed. */
async function makeStaleSocket(p: string): Promise<void> {
  const child = Bun.spawn([process.execPath, "-e", `require("node:net").createServer().listen(${JSON.stringify(p)}, () => console.log("up"))`], {
    stdout: "pipe",
    stderr: "ignore",
  });
  try {
    const reader = child.stdout.getReader();
    const deadline = Date.now() + 15_000;
    while (!existsSync(p) && Date.now() < deadline) {
      await Promise.race([reader.read(), Bun.sleep(100)]);
    }
  } finally {
    child.kill("SIGKILL");
    await child.exited;
  }
  expect(statSync(p).isSocket()).toBe(true);
}

describe("unix socket", () => {
  test("the socket is created with mode 0600 and removed on close", async () => {
    const dir = tmp();
    const sock = join(dir, "admin.sock");
    const srv = await startAdminServer(unixCfg(sock), deps(dir));
    try {
      expect(statSync(sock).mode & 0o777).toBe(0o600);
      const c = new AdminClient({ addr: sock });
      expect((await c.getStatus()).version).toBe("t");
      c.close();
    } finally {
      await srv.close();
    }
    expect(existsSync(sock)).toBe(false);
  });

  test("a stale socket file is replaced at start", async () => {
    const dir = tmp();
    const sock = join(dir, "admin.sock");
    await makeStaleSocket(sock);
    cap.logs.length = 0;
    const srv = await startAdminServer(unixCfg(`unix://${sock}`), deps(dir));
    try {
      const c = new AdminClient({ addr: `unix:${sock}` });
      expect((await c.listListeners()).length).toBe(2);
      c.close();
      expect(cap.logs.some((l) => l.includes("admin.stale_socket_removed"))).toBe(true);
    } finally {
      await srv.close();
    }
  });

  test("a regular file at the socket path is refused and left alone", async () => {
    const dir = tmp();
    const p = join(dir, "admin.sock");
    writeFileSync(p, "precious");
    await expect(startAdminServer(unixCfg(p), deps(dir))).rejects.toThrow(/grpc\.addr: .*not a socket/);
    expect(readFileSync(p, "utf8")).toBe("precious");
  });

  test("a socket another server still answers on is refused", async () => {
    const dir = tmp();
    const p = join(dir, "admin.sock");
    const other = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => other.listen(p, r));
    try {
      await expect(startAdminServer(unixCfg(p), deps(dir))).rejects.toThrow(/in use/);
    } finally {
      other.close();
    }
  });

  test("a missing socket makes the client fail with UNAVAILABLE", async () => {
    const c = new AdminClient({ addr: join(tmp(), "nobody.sock") }, 5000);
    await expectGrpcError(c.getStatus(), status.UNAVAILABLE);
    c.close();
  });
});

describe("TCP", () => {
  const ca = makeCA("Admin Server CA");
  const leaf = makeLeaf(ca, ["admin.test", "127.0.0.1"]);
  const clientCa = makeCA("Admin Client CA");
  const good = makeClientCert(clientCa, "ops");
  const rogueCa = makeCA("Rogue CA");
  const rogue = makeClientCert(rogueCa, "mallory");

  test("a TCP address without tls_cert/tls_key is refused (never plaintext)", async () => {
    const dir = tmp();
    await expect(startAdminServer({ addr: "127.0.0.1:0", tlsCert: "", tlsKey: "", clientCa: "" }, deps(dir))).rejects.toThrow(/grpc\.tls_cert/);
  });

  test("TLS without client_ca is refused at start (SPEC §7: never anonymous on a network)", async () => {
    const dir = tmp();
    const err = await startAdminServer({ addr: "127.0.0.1:0", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, clientCa: "" }, deps(dir)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).keyPath).toBe("grpc.client_ca");
    expect((err as Error).message).toMatch(/requires client_ca/);
  });

  test("mTLS: a client with a cert from client_ca gets in by IP and by name; a server CA it does not trust fails", async () => {
    const dir = tmp();
    const srv = await startAdminServer({ addr: "127.0.0.1:0", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, clientCa: clientCa.caPath }, deps(dir));
    try {
      expect(srv.port).toBeGreaterThan(0);
      const me = { tlsCert: good.certPath, tlsKey: good.keyPath };
      const c = new AdminClient({ addr: `127.0.0.1:${srv.port}`, caCert: ca.caPath, ...me });
      expect((await c.getStatus()).version).toBe("t");
      c.close();
      const byName = new AdminClient({ addr: `127.0.0.1:${srv.port}`, caCert: ca.caPath, serverName: "admin.test", ...me });
      expect((await byName.listListeners()).length).toBe(2);
      byName.close();
      // Without the CA (system roots) the server is not trusted.
      const untrusting = new AdminClient({ addr: `127.0.0.1:${srv.port}`, ...me }, 5000);
      await expectGrpcError(untrusting.getStatus(), status.UNAVAILABLE);
      untrusting.close();
    } finally {
      await srv.close();
    }
  });

  test("mTLS: no client cert and a cert from another CA are rejected; the right cert is accepted", async () => {
    const dir = tmp();
    const srv = await startAdminServer(
      { addr: "127.0.0.1:0", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, clientCa: clientCa.caPath },
      deps(dir),
    );
    const addr = `127.0.0.1:${srv.port}`;
    try {
      const anon = new AdminClient({ addr, caCert: ca.caPath }, 5000);
      await expectGrpcError(anon.getStatus(), status.UNAVAILABLE);
      anon.close();
      const bad = new AdminClient({ addr, caCert: ca.caPath, tlsCert: rogue.certPath, tlsKey: rogue.keyPath }, 5000);
      await expectGrpcError(bad.getStatus(), status.UNAVAILABLE);
      bad.close();
      const ok = new AdminClient({ addr, caCert: ca.caPath, tlsCert: good.certPath, tlsKey: good.keyPath });
      expect((await ok.getStatus()).version).toBe("t");
      ok.close();
    } finally {
      await srv.close();
    }
  });

  test("TLS 1.2 is refused; TLS 1.3 is accepted (openssl s_client)", async () => {
    const dir = tmp();
    const srv = await startAdminServer({ addr: "127.0.0.1:0", tlsCert: leaf.fullchainPath, tlsKey: leaf.keyPath, clientCa: clientCa.caPath }, deps(dir));
    try {
      const handshake = async (version: string) => {
        const p = Bun.spawn(
          ["openssl", "s_client", "-connect", `127.0.0.1:${srv.port}`, version, "-CAfile", ca.caPath, "-servername", "admin.test", "-alpn", "h2", "-cert", good.certPath, "-key", good.keyPath],
          { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
        );
        p.stdin.end();
        const killer = setTimeout(() => p.kill(), 15_000);
        const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
        clearTimeout(killer);
        return { out, code };
      };
      const v13 = await handshake("-tls1_3");
      expect(v13.out).toContain("New, TLSv1.3");
      expect(v13.out).toContain("ALPN protocol: h2");
      const v12 = await handshake("-tls1_2");
      expect(v12.code).not.toBe(0);
      expect(v12.out).toContain("Cipher is (NONE)");
    } finally {
      await srv.close();
    }
  });
});
