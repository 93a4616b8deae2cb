/**
 * Start-up refusals of the compiled binary (SPEC §2 duration bounds, §7 admin
 * on TCP only with mutual TLS): the process exits non-zero before binding
 * anything and the error names the key.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanupCerts, makeCA, makeLeaf } from "../fixtures/certs.ts";
import { ensureBinaries } from "./build.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  cleanupCerts();
});

function runServer(toml: string): { code: number; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "mcp-refuse-"));
  dirs.push(dir);
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(cfg, `[database]\npath = "mc-proxy.db"\n\n${toml}`);
  const r = Bun.spawnSync([ensureBinaries().mcProxy, "server", "-c", cfg], { cwd: dir, stdout: "pipe", stderr: "pipe", timeout: 20_000, env: { PATH: process.env.PATH ?? "" } });
  return { code: r.exitCode ?? -1, stderr: r.stderr.toString() };
}

const LISTENER = `[[listeners]]\naddr = "127.0.0.1:0"\n  [[listeners.routes]]\n  hostname = "a.test"\n  backend = "127.0.0.1:9"\n`;

test('backend_timeout = "720h" is refused at start, naming the key (a timer above 2^31-1 ms would fire at once)', () => {
  const r = runServer(`[proxy]\nbackend_timeout = "720h"\n\n${LISTENER}`);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("proxy.backend_timeout");
  expect(r.stderr).toContain("24h");
});

test("a TCP admin address without client_ca is refused at start, naming grpc.client_ca (no anonymous admin)", () => {
  const ca = makeCA("refusal test CA");
  const leaf = makeLeaf(ca, ["localhost", "127.0.0.1"]);
  const r = runServer(`[grpc]\naddr = "127.0.0.1:0"\ntls_cert = "${leaf.fullchainPath}"\ntls_key = "${leaf.keyPath}"\n\n${LISTENER}`);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("grpc.client_ca");
});
