/**
 * End to end: a real mc-proxy (in this process) with `[metrics]` and `[grpc]`,
 * driven with real clients (tls, curl, openssl s_client, a raw socket bound to
 * a blocked source address, the grpc-js admin client). `/metrics` is scraped
 * over HTTP before and after, and every counter must move by exactly what the
 * traffic explains — plus the page must pass `promtool check metrics`.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import tls from "node:tls";
import { join } from "node:path";
import { AdminClient } from "../../src/admin/client.ts";
import { BackendProtocol, RouteMode } from "../../src/gen/mc_proxy/v1/admin.ts";
import { setLogSink } from "../../src/obs/log.ts";
import { cleanupCerts, makeCA, makeLeaf, type CA, type CertFiles } from "../fixtures/certs.ts";
import { freePort, startTestProxy, waitFor, type TestProxy } from "../helpers/proxy.ts";
import { duplicateSeries, promtoolCheck } from "./promtool.ts";
import { delta, scrape, value, type Scrape } from "./scrape.ts";
import { closed, curlL7, opensslTls12, plainHttp, tlsEcho } from "./traffic.ts";

const LISTENER = "127.0.0.1:0"; // the configured addr is the metric label
const L4_HOST = "l4.obs.test";
const L7_HOST = "l7.obs.test";
const BLOCKED_SRC = "127.0.0.8";

let ca: CA;
let leaf: CertFiles;
let proxy: TestProxy;
let metricsPort: number;
let tlsBackend: net.Server;
/** Raw TCP bytes the L4 backend received, per closed connection (below its TLS layer). */
const l4Raw: number[] = [];
let httpBackend: ReturnType<typeof Bun.serve>;
const logs: Record<string, unknown>[] = [];
let restoreSink: ((line: string) => void) | null = null;

beforeAll(async () => {
  ca = makeCA("obs e2e CA");
  leaf = makeLeaf(ca, [L4_HOST, L7_HOST, "dead.obs.test"]);

  // L4 backend: TLS terminated on a plain net socket so the raw byte counts are ours to read.
  tlsBackend = net.createServer((raw) => {
    const t = new tls.TLSSocket(raw, { isServer: true, cert: leaf.fullchainPem, key: leaf.keyPem });
    t.on("data", (d: Buffer) => t.write(d)); // echo
    t.on("end", () => t.end());
    t.on("error", () => t.destroy());
    raw.on("close", () => l4Raw.push(raw.bytesRead));
  });
  await new Promise<void>((r) => tlsBackend.listen(0, "127.0.0.1", r));
  const l4Port = (tlsBackend.address() as net.AddressInfo).port;

  httpBackend = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hello from the L7 backend\n") });

  metricsPort = await freePort();
  restoreSink = setLogSink((line) => logs.push(JSON.parse(line)));
  const dir = mkdtempSync(join(tmpdir(), "mcp-obs-e2e-"));
  proxy = await startTestProxy(
    `
[[listeners]]
addr = "${LISTENER}"

  [[listeners.routes]]
  hostname = "${L4_HOST}"
  backend = "127.0.0.1:${l4Port}"

  [[listeners.routes]]
  hostname = "${L7_HOST}"
  backend = "127.0.0.1:${httpBackend.port}"
  mode = "l7"
  backend_protocol = "http1"
  tls_cert = "${leaf.fullchainPath}"
  tls_key = "${leaf.keyPath}"

[grpc]
addr = "${join(dir, "admin.sock")}"

[firewall]
blocked_ips = ["${BLOCKED_SRC}"]

[proxy]
l7_min_tls = "1.3"

[metrics]
addr = "127.0.0.1:${metricsPort}"
`,
    { dir },
  );
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  if (proxy) rmSync(proxy.dir, { recursive: true, force: true }); // we passed our own dir, so stop() keeps it
  if (restoreSink) setLogSink(restoreSink);
  tlsBackend?.close();
  httpBackend?.stop(true);
  cleanupCerts();
});

/** One TLS passthrough echo through the L4 route over our own TCP socket, whose bytesRead is what the proxy relayed to us. */
async function l4Exchange(port: number, payload: string): Promise<{ echo: string; rawRead: number }> {
  const raw = net.connect({ host: "127.0.0.1", port });
  const echo = await tlsEcho(port, L4_HOST, ca.certPem, payload, raw);
  // (the wrapped raw socket's own 'close' does not fire under Bun; its counters are final here)
  return { echo, rawRead: raw.bytesRead };
}

const closedTotal = (s: Scrape) =>
  ["ok", "blocked", "hello_failed", "tls_failed", "no_route", "backend_connect_failed", "idle_timeout", "error", "shutdown", "other"].reduce(
    (n, outcome) => n + value(s, "mcproxy_connections_closed_total", { listener: LISTENER, outcome }),
    0,
  );

test("each kind of traffic moves its counters by exactly the expected amount, and /metrics stays valid exposition", async () => {
  const port = proxy.port();
  const before = await scrape(metricsPort);
  const sock = join(proxy.dir, "admin.sock");

  // 1. L4: TLS passthrough to a TLS backend.
  const l4 = await l4Exchange(port, "ping through L4\n");
  expect(l4.echo).toBe("ping through L4\n");

  // 2. L7: one HTTPS request (curl, TLS 1.3) answered 200 by an HTTP/1.1 backend.
  const c = await curlL7(port, L7_HOST, ca.certPath, "/hello");
  expect(c.err).toBe("");
  expect(c.out).toBe("hello from the L7 backend\n");

  // 3. A client from a blocked IP: accepted, then reset before anything is read.
  const blocked = net.connect({ host: "127.0.0.1", port, localAddress: BLOCKED_SRC });
  await closed(blocked);

  // 4. Plain HTTP instead of a ClientHello.
  await plainHttp(port);

  // 5. A TLS 1.2-only client against l7_min_tls = "1.3".
  const o = await opensslTls12(port, L7_HOST);
  expect(o.code).not.toBe(0);

  // 6. One admin call over the unix socket.
  const admin = new AdminClient({ addr: `unix:${sock}` });
  try {
    const st = await admin.getStatus();
    expect(st.version).not.toBe("");
  } finally {
    admin.close();
  }

  // Connections are counted at close, which may trail the client's view by a moment.
  let after = await scrape(metricsPort);
  await waitFor(async () => {
    after = await scrape(metricsPort);
    return closedTotal(after) - closedTotal(before) >= 5;
  }, 10_000, "five closed connections");

  const d = (name: string, labels: Record<string, string> = {}) => delta(before, after, name, labels);
  const L = { listener: LISTENER };
  expect(d("mcproxy_connections_accepted_total", L)).toBe(5);
  expect(d("mcproxy_connections_blocked_total", { ...L, reason: "ip" })).toBe(1);
  expect(d("mcproxy_connections_closed_total", { ...L, outcome: "ok" })).toBe(2);
  expect(d("mcproxy_connections_closed_total", { ...L, outcome: "blocked" })).toBe(1);
  expect(d("mcproxy_connections_closed_total", { ...L, outcome: "hello_failed" })).toBe(1);
  expect(d("mcproxy_connections_closed_total", { ...L, outcome: "tls_failed" })).toBe(1);
  expect(closedTotal(after) - closedTotal(before)).toBe(5);
  expect(d("mcproxy_clienthello_failures_total", { reason: "not_tls" })).toBe(1);
  expect(d("mcproxy_tls_handshake_failures_total", { reason: "version" })).toBe(1);
  expect(d("mcproxy_l7_requests_total", { route: L7_HOST, code_class: "2xx" })).toBe(1);
  expect(d("mcproxy_l7_request_duration_seconds_count", { route: L7_HOST })).toBe(1);
  expect(d("mcproxy_l7_request_duration_seconds_bucket", { route: L7_HOST, le: "+Inf" })).toBe(1);
  expect(d("mcproxy_l7_request_duration_seconds_sum", { route: L7_HOST })).toBeGreaterThan(0);
  expect(d("mcproxy_admin_rpcs_total", { method: "GetStatus", code: "OK" })).toBe(1);
  expect(d("mcproxy_backend_connect_failures_total", { ...L, mode: "l4" })).toBe(0);
  expect(d("mcproxy_backend_connect_failures_total", { ...L, mode: "l7" })).toBe(0);

  // L4 bytes: exactly what arrived on the wire (below TLS) at the backend and at the client.
  // (Bun's net.Socket.bytesWritten stays 0 under a TLSSocket, so each side's bytesRead is used.)
  expect(l4Raw.length).toBe(1);
  expect(d("mcproxy_bytes_total", { ...L, mode: "l4", direction: "client_to_backend" })).toBe(l4Raw[0]);
  expect(d("mcproxy_bytes_total", { ...L, mode: "l4", direction: "backend_to_client" })).toBe(l4.rawRead);
  expect(l4.rawRead).toBeGreaterThan(0);
  // L7 bytes: the client-side TLS bytes of the served and the refused connection, as logged per connection.
  const l7Conns = logs.filter((l) => l.event === "conn" && l.listener === LISTENER && l.mode === "l7");
  expect(l7Conns.length).toBe(2);
  const sum = (k: string) => l7Conns.reduce((n, l) => n + Number(l[k]), 0);
  expect(d("mcproxy_bytes_total", { ...L, mode: "l7", direction: "client_to_backend" })).toBe(sum("bytes_in"));
  expect(d("mcproxy_bytes_total", { ...L, mode: "l7", direction: "backend_to_client" })).toBe(sum("bytes_out"));
  expect(sum("bytes_out")).toBeGreaterThan("hello from the L7 backend\n".length);

  // Nothing open any more, and the page is valid exposition.
  expect(value(after, "mcproxy_active_connections", L)).toBe(0);
  expect(duplicateSeries(after.text)).toEqual([]);
  const check = await promtoolCheck(after.text);
  expect(check.output).toBe("");
  expect(check.code).toBe(0);
}, 90_000);

test("an unreachable L7 backend answers 502 and counts one l7 backend connect failure", async () => {
  // A route added over the admin API pointing at a port nobody listens on.
  const dead = await freePort();
  const admin = new AdminClient({ addr: `unix:${join(proxy.dir, "admin.sock")}` });
  try {
    await admin.addRoute(LISTENER, {
      hostname: "dead.obs.test",
      backend: `127.0.0.1:${dead}`,
      mode: RouteMode.ROUTE_MODE_L7,
      tlsCert: leaf.fullchainPath,
      tlsKey: leaf.keyPath,
      backendTls: false,
      backendProtocol: BackendProtocol.BACKEND_PROTOCOL_HTTP1,
      backendTlsVerify: false,
      backendTlsCa: "",
      backendTlsServerName: "",
      sendProxyProtocol: false,
      l7Policies: [],
    });
  } finally {
    admin.close();
  }
  const before = await scrape(metricsPort);
  const port = proxy.port();
  const c = await curlL7(port, "dead.obs.test", ca.certPath, "/", ["-o", "/dev/null", "-w", "%{http_code}"]);
  expect({ code: c.out, err: c.err }).toEqual({ code: "502", err: "" });
  let after = before;
  await waitFor(async () => {
    after = await scrape(metricsPort);
    return delta(before, after, "mcproxy_l7_requests_total", { route: "dead.obs.test", code_class: "5xx" }) >= 1;
  }, 10_000, "the 5xx request counted");
  expect(delta(before, after, "mcproxy_backend_connect_failures_total", { listener: LISTENER, mode: "l7" })).toBe(1);
  expect(delta(before, after, "mcproxy_l7_requests_total", { route: "dead.obs.test", code_class: "5xx" })).toBe(1);
}, 60_000);
