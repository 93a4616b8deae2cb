/**
 * RFC 9113 / RFC 7541 conformance of the server session, judged by h2spec
 * (SPEC §5: no failures), over TLS with ALPN h2 and over h2c. h2spec is
 * built offline by ../shared/tools/h2spec/build.sh (beside the repository); without it (no Go
 * toolchain) the test is skipped with the reason printed.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { cleanupCerts, makeSelfSigned } from "../../fixtures/certs.ts";
import { startEchoServer, type EchoServer } from "./echo-server.ts";

const BUILD = new URL("../../../../shared/tools/h2spec/build.sh", import.meta.url).pathname;

function findH2spec(): string | null {
  const have = Bun.which("h2spec");
  if (have) return have;
  if (!existsSync(BUILD)) return null;
  const r = Bun.spawnSync(["bash", BUILD], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) console.warn(`h2spec: build failed (${BUILD}): ${r.stderr.toString().slice(-400)}`);
  return Bun.which("h2spec");
}

const h2spec = findH2spec();
if (!h2spec) console.warn("h2spec: SKIPPED — binary not found and could not be built (needs Debian golang-go; see /work/shared/tools/h2spec/README.md)");

interface Result {
  total: number;
  passed: number;
  failed: number;
  output: string;
}

async function run(args: string[]): Promise<Result> {
  const p = Bun.spawn([h2spec!, ...args, "-o", "3"], { stdout: "pipe", stderr: "pipe" });
  const output = (await new Response(p.stdout).text()) + (await new Response(p.stderr).text());
  await p.exited;
  const m = /(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/.exec(output);
  if (!m) throw new Error(`h2spec output not understood:\n${output.slice(-2000)}`);
  return { total: Number(m[1]), passed: Number(m[2]), failed: Number(m[4]), output };
}

function failures(r: Result): string {
  return r.output
    .split("\n")
    .filter((l) => l.includes("×") || /Expected|Actual/.test(l))
    .join("\n");
}

describe.skipIf(!h2spec)("h2spec conformance (server role)", () => {
  let tlsServer: EchoServer;
  let h2cServer: EchoServer;

  beforeAll(() => {
    const cert = makeSelfSigned(["localhost"]);
    tlsServer = startEchoServer({ tls: { cert: cert.certPem, key: cert.keyPem } });
    h2cServer = startEchoServer();
  });
  afterAll(() => {
    tlsServer?.stop();
    h2cServer?.stop();
    cleanupCerts();
  });

  test("TLS (ALPN h2): every case passes", async () => {
    const r = await run(["-h", "localhost", "-p", String(tlsServer.port), "-t", "-k"]);
    console.log(`h2spec TLS: ${r.passed}/${r.total} passed`);
    expect(failures(r)).toBe("");
    expect(r.passed).toBe(146);
  }, 60_000);

  test("TLS strict mode (-S): every case passes", async () => {
    const r = await run(["-h", "localhost", "-p", String(tlsServer.port), "-t", "-k", "-S"]);
    console.log(`h2spec TLS strict: ${r.passed}/${r.total} passed`);
    expect(failures(r)).toBe("");
    expect(r.failed).toBe(0);
  }, 60_000);

  test("h2c with prior knowledge: every case passes", async () => {
    const r = await run(["-h", "127.0.0.1", "-p", String(h2cServer.port)]);
    console.log(`h2spec h2c: ${r.passed}/${r.total} passed`);
    expect(failures(r)).toBe("");
    expect(r.passed).toBe(146);
  }, 60_000);
});
