/**
 * HAProxy 2.6 as an HTTP/2 peer on both sides of an L7 route, through the
 * compiled binary:
 *
 *   curl → HAProxy (mode http, `server … ssl alpn h2`) → mc-proxy (b.test)
 *        → HTTP/1.1 backend: a 10 MiB download
 *   curl → mc-proxy (a.test, backend_protocol h2) → HAProxy (`bind … proto h2`)
 *        → HTTP/1.1 backend: a 10 MiB upload
 *
 * HAProxy credits each DATA frame back as it reads it, so small frames come
 * back as small WINDOW_UPDATEs: these once counted as a flood, and mc-proxy
 * closed HAProxy's connection (GOAWAY ENHANCE_YOUR_CALM) after ~4 MB.
 * Skipped when haproxy is not installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "../helpers/proxy.ts";
import { cleanupCerts, curl, e2ePki, killAllServers, route, startProxy, startRawBackend, type RawBackend, type ServerProc } from "./e2e.ts";

const haveHaproxy = Bun.spawnSync(["sh", "-c", "command -v haproxy"]).exitCode === 0;
const BIG = 10 * 1024 * 1024;

let be: RawBackend;
let p: ServerProc;
let haproxy: ReturnType<typeof Bun.spawn> | undefined;
let haproxyLog = "";
let h2cPort = 0;
let frontPort = 0;
let tmp = "";

async function listening(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  if (!haveHaproxy) return;
  e2ePki();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mcp-haproxy-peer-"));
  const body = Buffer.alloc(BIG, 0x61);
  be = await startRawBackend((r) => {
    if (r.req.path === "/big") r.send(200, body, { "content-type": "application/octet-stream" });
    else r.send(200, `got ${r.req.body.byteLength}`);
  });
  h2cPort = await freePort();
  frontPort = await freePort();
  p = await startProxy([route({ backend: `127.0.0.1:${h2cPort}`, backendProtocol: "h2" }), route({ hostname: "b.test", backend: be.addr })]);
  const cfg = path.join(tmp, "haproxy.cfg");
  fs.writeFileSync(
    cfg,
    `defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend h2c
  bind 127.0.0.1:${h2cPort} proto h2
  default_backend be
backend be
  server s1 ${be.addr}
frontend front
  bind 127.0.0.1:${frontPort}
  default_backend mc
backend mc
  http-request set-header Host b.test
  server mc 127.0.0.1:${p.port()} ssl verify none sni str(b.test) alpn h2
`,
  );
  const h = Bun.spawn(["haproxy", "-db", "-f", cfg], { stdout: "pipe", stderr: "pipe" });
  haproxy = h;
  (async () => {
    for await (const c of h.stderr as ReadableStream<Uint8Array>) haproxyLog += new TextDecoder().decode(c);
  })();
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && h.exitCode === null && !((await listening(h2cPort)) && (await listening(frontPort)))) await Bun.sleep(50);
  if (h.exitCode !== null || !(await listening(frontPort))) throw new Error(`haproxy did not start: ${haproxyLog}`);
});

afterAll(async () => {
  haproxy?.kill();
  await haproxy?.exited;
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!haveHaproxy)("HAProxy as an HTTP/2 peer", () => {
  test("HAProxy as the h2 client in front: a 10 MiB download arrives whole, 3 times; no h2_abuse", async () => {
    for (let i = 0; i < 3; i++) {
      // Not spawnSync: the backend lives in this process and must keep answering.
      const c = Bun.spawn(["curl", "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", `http://127.0.0.1:${frontPort}/big`], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([new Response(c.stdout).text(), new Response(c.stderr).text(), c.exited]);
      expect({ code, out, err }).toEqual({ code: 0, out: `200 ${BIG}`, err: "" });
    }
    expect(p.logs.filter((l) => l.reason === "h2_abuse" || String(l.reason ?? "").includes("flood"))).toEqual([]);
  });

  test("HAProxy as the h2c backend: a 10 MiB upload from an HTTP/2 and an HTTP/1.1 client is answered 200 with every byte", async () => {
    for (const proto of ["--http2", "--http1.1"]) {
      const r = await curl(p.port(), "/upload", [proto, "--data-binary", "@-"], { stdin: new Uint8Array(BIG), timeoutS: 30 });
      expect({ proto, code: r.code, status: r.status, body: r.body }).toEqual({ proto, code: 0, status: 200, body: `got ${BIG}` });
    }
    expect(p.logs.filter((l) => l.event === "l7.backend_error")).toEqual([]);
  });
});
