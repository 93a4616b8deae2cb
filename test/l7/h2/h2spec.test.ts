/**
 * RFC 9113 / RFC 7541 conformance of the server session, judged by h2spec
 * (SPEC §5: no failures), over TLS with ALPN h2 and over h2c. h2spec is
 * built offline by ../shared/tools/h2spec/build.sh (beside the repository); without it (no Go
 * toolchain) the test is skipped with the reason printed.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanupCerts, makeSelfSigned } from "../../fixtures/certs.ts";
import { startEchoServer, type EchoServer } from "./echo-server.ts";
import { h2spec, h2specFailures, runH2spec } from "../../helpers/h2spec.ts";


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
    const r = await runH2spec(["-h", "localhost", "-p", String(tlsServer.port), "-t", "-k"]);
    console.log(`h2spec TLS: ${r.passed}/${r.total} passed`);
    expect(h2specFailures(r)).toBe("");
    expect(r.passed).toBe(146);
  }, 60_000);

  test("TLS strict mode (-S): every case passes", async () => {
    const r = await runH2spec(["-h", "localhost", "-p", String(tlsServer.port), "-t", "-k", "-S"]);
    console.log(`h2spec TLS strict: ${r.passed}/${r.total} passed`);
    expect(h2specFailures(r)).toBe("");
    expect(r.failed).toBe(0);
  }, 60_000);

  test("h2c with prior knowledge: every case passes", async () => {
    const r = await runH2spec(["-h", "127.0.0.1", "-p", String(h2cServer.port)]);
    console.log(`h2spec h2c: ${r.passed}/${r.total} passed`);
    expect(h2specFailures(r)).toBe("");
    expect(r.passed).toBe(146);
  }, 60_000);
});
