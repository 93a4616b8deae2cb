/**
 * SPEC §6 multi-hop, with two real mc-proxy processes:
 *
 *   curl (from 127.0.0.5) → edge (L4 route, send_proxy_protocol)
 *        → origin (proxy_protocol = true, trusted 127.0.0.1/32, L7 route)
 *        → h2c backend
 *
 * The backend sees the real client in X-Forwarded-For / X-Real-IP, and the
 * origin's firewall blocks by the real client, not by the edge's address.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { cleanupCerts, makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { startProxyProc, type ServerProc } from "../helpers/subprocess.ts";

interface Seen {
  xff: string | undefined;
  realIp: string | undefined;
  proto: string | undefined;
}

let ca: CA;
let leaf: CertFiles;
let backend: http2.Http2Server;
let backendPort = 0;
const seen: Seen[] = [];
const procs: ServerProc[] = [];

beforeAll(async () => {
  ca = makeCA("mc-proxy multihop CA");
  leaf = makeLeaf(ca, ["app.test"]);
  backend = http2.createServer((req, res) => {
    const h = (n: string) => req.headers[n] as string | undefined;
    seen.push({ xff: h("x-forwarded-for"), realIp: h("x-real-ip"), proto: h("x-forwarded-proto") });
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`hello ${h("x-forwarded-for")}\n`);
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  backendPort = (backend.address() as AddressInfo).port;
}, 60_000);

afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop();
});

afterAll(async () => {
  for (const p of procs.splice(0)) await p.stop();
  backend?.close();
  cleanupCerts();
});

/** Starts origin then edge; `blocked` goes into the origin's firewall (fresh DB each time). */
async function startChain(blocked: string[] = []): Promise<{ edge: ServerProc; origin: ServerProc }> {
  const origin = await startProxyProc(`
[firewall]
blocked_ips = ${JSON.stringify(blocked)}

[[listeners]]
addr = "127.0.0.1:0"
proxy_protocol = true
proxy_protocol_trusted = ["127.0.0.1/32"]
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${backendPort}"
  mode = "l7"
  tls_cert = "${leaf.fullchainPath}"
  tls_key = "${leaf.keyPath}"
  backend_protocol = "h2"
`);
  procs.push(origin);
  const edge = await startProxyProc(`
[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${origin.port()}"
  send_proxy_protocol = true
`);
  procs.push(edge);
  return { edge, origin };
}

/** curl over HTTP/2 from `from` to https://app.test:<edge port>/. */
async function curlVia(edgePort: number, from: string): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(
    [
      "curl", "-sS", "--http2", "--max-time", "15",
      "--interface", from,
      "--resolve", `app.test:${edgePort}:127.0.0.1`,
      "--cacert", ca.caPath,
      `https://app.test:${edgePort}/`,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** The origin's `conn` log lines whose client starts with `ip:`. */
const connLinesFor = (p: ServerProc, ip: string) =>
  p.logs.filter((l) => l.event === "conn" && typeof l.client === "string" && l.client.startsWith(`${ip}:`));

describe("edge → origin with PROXY v2", () => {
  test("the backend sees X-Forwarded-For = X-Real-IP = 127.0.0.5, the client behind the edge", async () => {
    const { edge, origin } = await startChain();
    const before = seen.length;
    const r = await curlVia(edge.port(), "127.0.0.5");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toBe("hello 127.0.0.5\n");
    expect(seen.length).toBe(before + 1);
    expect(seen[before]).toEqual({ xff: "127.0.0.5", realIp: "127.0.0.5", proto: "https" });
    // The origin's own log names the real client too (the edge is 127.0.0.1).
    await Bun.sleep(300);
    expect(connLinesFor(origin, "127.0.0.5").length).toBeGreaterThanOrEqual(1);
    expect(connLinesFor(origin, "127.0.0.1")).toHaveLength(0);
  }, 90_000);

  test("the origin's firewall blocks 127.0.0.5 by the PROXY source: reset, backend never reached; 127.0.0.6 via the same edge still works", async () => {
    const { edge, origin } = await startChain(["127.0.0.5"]);
    const before = seen.length;
    const blocked = await curlVia(edge.port(), "127.0.0.5");
    expect(blocked.code).not.toBe(0);
    expect(blocked.out).toBe("");
    expect(seen.length).toBe(before);
    await Bun.sleep(300);
    const lines = connLinesFor(origin, "127.0.0.5");
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.every((l) => l.outcome === "blocked" && l.reason === "ip")).toBe(true);

    // The edge's own address (127.0.0.1) is not what the origin filters on.
    const ok = await curlVia(edge.port(), "127.0.0.6");
    expect(ok.code).toBe(0);
    expect(ok.out).toBe("hello 127.0.0.6\n");
    expect(seen.length).toBe(before + 1);
    expect(seen[before]).toEqual({ xff: "127.0.0.6", realIp: "127.0.0.6", proto: "https" });
  }, 90_000);
});
