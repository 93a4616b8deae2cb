/**
 * grpc.health.v1 over the admin unix socket, against a real server process:
 * SERVING once the listeners are bound, NOT_SERVING as soon as a graceful
 * shutdown starts draining (while relayed connections are still open and
 * still flowing), then a clean exit 0 after shutdown_timeout.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { AdminClient } from "../../src/admin/client.ts";
import { HealthCheckResponse_ServingStatus as Serving } from "../../src/gen/grpc/health/v1/health.ts";
import { cleanupCerts, makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { killAllServers, startServerProc } from "../helpers/subprocess.ts";

const HOST = "drain.obs.test";
let dir: string;
let ca: CA;
let leaf: CertFiles;
let backend: tls.Server;
let backendPort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mcp-obs-health-"));
  ca = makeCA("obs health CA");
  leaf = makeLeaf(ca, [HOST]);
  // An echo backend that never closes on its own: the relayed connection stays open until cut.
  backend = tls.createServer({ cert: leaf.fullchainPem, key: leaf.keyPem }, (s) => {
    s.on("data", (d: Buffer) => s.write(d));
    s.on("error", () => s.destroy());
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  backendPort = (backend.address() as net.AddressInfo).port;
}, 30_000);

afterAll(() => {
  killAllServers();
  backend?.close();
  cleanupCerts();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends `msg` and resolves with the echo (bounded by `ms`). */
function echo(s: tls.TLSSocket, msg: string, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const t = setTimeout(() => reject(new Error(`no echo of ${JSON.stringify(msg)} within ${ms} ms (got ${JSON.stringify(got)})`)), ms);
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= msg.length) {
        clearTimeout(t);
        s.off("data", onData);
        resolve(got);
      }
    };
    s.on("data", onData);
    s.write(msg);
  });
}

test("health is SERVING once listeners are bound and NOT_SERVING while a graceful shutdown drains", async () => {
  const sock = join(dir, "admin.sock");
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(
    cfg,
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "127.0.0.1:0"

  [[listeners.routes]]
  hostname = "${HOST}"
  backend = "127.0.0.1:${backendPort}"

[grpc]
addr = "${sock}"

[proxy]
shutdown_timeout = "3s"
`,
  );
  const p = await startServerProc(cfg);
  const port = p.port();
  const admin = new AdminClient({ addr: `unix:${sock}` }, 3000);
  try {
    expect(await admin.checkHealth()).toBe(Serving.SERVING);
    expect(await admin.checkHealth("mc_proxy.v1.ProxyAdminService")).toBe(Serving.SERVING);

    // A long-lived relayed connection (TLS passthrough) that is open when the signal arrives.
    const client = tls.connect({ host: "127.0.0.1", port, servername: HOST, ca: ca.certPem });
    client.on("error", () => {});
    let clientClosed = false;
    client.on("close", () => (clientClosed = true));
    await new Promise<void>((resolve, reject) => {
      client.once("secureConnect", () => resolve());
      client.once("error", reject);
    });
    expect(await echo(client, "before\n")).toBe("before\n");

    const signalledAt = Date.now();
    p.proc.kill("SIGTERM");
    let status: Serving | "unavailable" = Serving.SERVING;
    for (let i = 0; i < 100 && Date.now() - signalledAt < 2500; i++) {
      try {
        status = await admin.checkHealth();
      } catch {
        status = "unavailable";
      }
      if (status !== Serving.SERVING) break;
      await Bun.sleep(20);
    }
    // Seen while draining: the process is up, the admin socket answers, the old connection still flows.
    expect(status).toBe(Serving.NOT_SERVING);
    expect(p.done).toBe(false);
    expect(clientClosed).toBe(false);
    expect(await echo(client, "during drain\n")).toBe("during drain\n");
    await p.waitLog((l) => l.event === "server.draining", 5000, "server.draining");

    // shutdown_timeout cuts the connection that is still open, then the process exits 0.
    expect(await p.exited(20_000)).toBe(0);
    const elapsed = Date.now() - signalledAt;
    expect(elapsed).toBeGreaterThanOrEqual(2900);
    const draining = p.logs.find((l) => l.event === "server.draining")!;
    const stopped = p.logs.find((l) => l.event === "server.stopped")!;
    expect(draining.connections).toBe(1);
    expect(stopped.cut).toBe(1);
    for (let i = 0; i < 100 && !clientClosed; i++) await Bun.sleep(20);
    expect(clientClosed).toBe(true);
  } finally {
    admin.close();
  }
}, 60_000);
