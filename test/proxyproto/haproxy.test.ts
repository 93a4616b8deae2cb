/**
 * HAProxy as the receiving peer of an L4 route with `send_proxy_protocol`:
 *
 *   curl (from 127.0.0.5) → mc-proxy (L4, send_proxy_protocol)
 *        → HAProxy (`bind … ssl crt … accept-proxy`, mode http, forwardfor)
 *        → HTTP backend that echoes what HAProxy tells it
 *
 * HAProxy must understand our v2 header: the client 127.0.0.5 in
 * X-Forwarded-For, the destination (mc-proxy's listener) as `dst`, and the
 * AUTHORITY TLV as `fc_pp_authority`. Skipped when haproxy is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { cleanupCerts, makeCA, makeLeaf, type CA } from "../fixtures/certs.ts";
import { freePort, startTestProxy, type TestProxy } from "../helpers/proxy.ts";

const haveHaproxy = Bun.spawnSync(["sh", "-c", "command -v haproxy"]).exitCode === 0;

let ca: CA;
let tmp = "";
let haproxy: ReturnType<typeof Bun.spawn> | undefined;
let haproxyLog = "";
let haproxyPort = 0;
let backend: ReturnType<typeof Bun.serve> | undefined;
let proxy: TestProxy | undefined;

function haproxyConfig(pem: string): string {
  // noreuseport: otherwise a concurrent test that picked the same port would silently share it.
  return `global
  maxconn 100
  noreuseport
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend fe
  bind 127.0.0.1:${haproxyPort} ssl crt ${pem} accept-proxy
  option forwardfor
  http-request set-header X-PP-Authority %[fc_pp_authority]
  http-request set-header X-PP-Dst %[dst]:%[dst_port]
  default_backend be
backend be
  server s1 127.0.0.1:${backend!.port}
`;
}

const canConnect = (port: number) =>
  new Promise<boolean>((res) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      res(true);
    });
    s.once("error", () => res(false));
  });

/** Starts HAProxy on a fresh port; retries when a concurrent test took the port. */
async function startHaproxy(pem: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    haproxyPort = await freePort();
    const cfg = path.join(tmp, "haproxy.cfg");
    fs.writeFileSync(cfg, haproxyConfig(pem));
    haproxyLog = "";
    const p = Bun.spawn(["haproxy", "-db", "-f", cfg], { stdout: "pipe", stderr: "pipe" });
    haproxy = p;
    (async () => {
      for await (const c of p.stderr as ReadableStream<Uint8Array>) haproxyLog += new TextDecoder().decode(c);
    })();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && p.exitCode === null) {
      if (await canConnect(haproxyPort)) {
        await Bun.sleep(200); // HAProxy exits at once when its bind failed: make sure it is ours
        if (p.exitCode === null) return;
        break;
      }
      await Bun.sleep(50);
    }
    p.kill();
    await p.exited;
  }
  throw new Error(`haproxy did not start: ${haproxyLog}`);
}

beforeAll(async () => {
  if (!haveHaproxy) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mcp-pp-haproxy-"));
  ca = makeCA("mc-proxy haproxy CA");
  const leaf = makeLeaf(ca, ["app.test"]);
  const pem = path.join(tmp, "app.pem");
  fs.writeFileSync(pem, leaf.fullchainPem + "\n" + leaf.keyPem); // HAProxy wants cert + key in one file
  backend = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) =>
      Response.json({
        xff: req.headers.get("x-forwarded-for"),
        authority: req.headers.get("x-pp-authority"),
        dst: req.headers.get("x-pp-dst"),
      }),
  });
  await startHaproxy(pem);
  proxy = await startTestProxy(`
[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${haproxyPort}"
  send_proxy_protocol = true
`);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  if (haproxy) {
    haproxy.kill();
    await Promise.race([haproxy.exited, Bun.sleep(3000)]);
  }
  backend?.stop(true);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  cleanupCerts();
});

describe.skipIf(!haveHaproxy)("HAProxy behind an L4 route with send_proxy_protocol", () => {
  test("HAProxy sees client 127.0.0.5 (X-Forwarded-For), our listener as dst, and the SNI as the AUTHORITY TLV", async () => {
    const port = proxy!.port();
    const p = Bun.spawn(
      ["curl", "-sS", "--max-time", "15", "--interface", "127.0.0.5", "--resolve", `app.test:${port}:127.0.0.1`, "--cacert", ca.caPath, `https://app.test:${port}/`],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`curl failed (${code}): ${err}; haproxy: ${haproxyLog}`);
    expect(JSON.parse(out)).toEqual({ xff: "127.0.0.5", authority: "app.test", dst: `127.0.0.1:${port}` });
  }, 30_000);
});
