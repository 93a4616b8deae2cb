/**
 * SNI routing in passthrough mode with real clients: curl (HTTP/2 and
 * HTTP/1.1) and openssl s_client reach the backend named by the SNI, and the
 * certificate they see is that backend's own (the proxy never terminates TLS).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { cleanupCerts, makeCA, makeLeaf } from "../fixtures/certs.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { opensslHandshake } from "../wire/raw-tls-client.ts";

const ca = makeCA("l4-routing-ca");
const leafA = makeLeaf(ca, ["a.test"]);
const leafB = makeLeaf(ca, ["b.test"]);
let proxy: TestProxy;
const backends: http2.Http2SecureServer[] = [];

/** An HTTPS backend (h2 + http/1.1) that answers "<name> <httpVersion>". */
async function tlsBackend(name: string, leaf: { certPem: string; keyPem: string }): Promise<number> {
  const srv = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
    res.end(`backend ${name} http/${req.httpVersion}\n`);
  });
  backends.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return (srv.address() as AddressInfo).port;
}

beforeAll(async () => {
  const pa = await tlsBackend("a", leafA);
  const pb = await tlsBackend("b", leafB);
  proxy = await startTestProxy(`
[proxy]
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:${pa}"
  [[listeners.routes]]
  hostname = "b.test"
  backend = "127.0.0.1:${pb}"
`);
});
afterAll(async () => {
  await proxy?.stop();
  for (const b of backends) b.close();
  cleanupCerts();
});

async function curl(host: string, ...flags: string[]): Promise<{ code: number; body: string; verbose: string }> {
  const port = proxy.port();
  const p = Bun.spawn(
    ["curl", "-sS", "-v", "--max-time", "20", ...flags, "--resolve", `${host}:${port}:127.0.0.1`, "--cacert", ca.certPath, `https://${host}:${port}/`],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [body, verbose, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, body, verbose };
}

for (const [host, other] of [["a.test", "b.test"], ["b.test", "a.test"]] as const) {
  const name = host[0];
  test(`curl --http2 to ${host} reaches backend ${name} and verifies ${host}'s own certificate`, async () => {
    const r = await curl(host, "--http2");
    expect(r.code, r.verbose).toBe(0);
    expect(r.body).toBe(`backend ${name} http/2.0\n`);
    expect(r.verbose).toContain(`subject: CN=${host}`);
    expect(r.verbose).not.toContain(`subject: CN=${other}`);
    expect(r.verbose).toMatch(/ALPN: server accepted h2|ALPN, server accepted to use h2/);
  });

  test(`curl --http1.1 to ${host} reaches backend ${name}`, async () => {
    const r = await curl(host, "--http1.1");
    expect(r.code, r.verbose).toBe(0);
    expect(r.body).toBe(`backend ${name} http/1.1\n`);
    expect(r.verbose).toContain(`subject: CN=${host}`);
  });

  test(`openssl s_client -servername ${host} completes a handshake with ${host}'s certificate`, async () => {
    const r = await opensslHandshake({ port: proxy.port(), sni: host, args: ["-CAfile", ca.certPath, "-verify_hostname", host] });
    expect(r.ok, r.output).toBe(true);
    expect(r.output).toMatch(new RegExp(`subject=CN ?= ?${host.replace(".", "\\.")}`));
    expect(r.output).toContain("Verify return code: 0 (ok)");
  });
}
