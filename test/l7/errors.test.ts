/**
 * Error answers, policies, handshake-failure logs and idle timeout of the L7 handler.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import tls from "node:tls";
import { setLogSink } from "../../src/obs/log.ts";
import { cleanupCerts } from "../fixtures/certs.ts";
import { startH1Backend, startH2cBackend, type Backend } from "./backends.ts";
import { curl, routeRecord, startHarness, testPki, waitFor, type L7Harness } from "./harness.ts";

let h2c: Backend, h1: Backend;
const proxies: L7Harness[] = [];
const logs: string[] = [];
let prevSink: ((l: string) => void) | null = null;

function harness(...args: Parameters<typeof startHarness>): L7Harness {
  const p = startHarness(...args);
  proxies.push(p);
  return p;
}

function logged(event: string): Record<string, unknown>[] {
  return logs.map((l) => JSON.parse(l)).filter((o) => o.event === event);
}

/** A port nobody listens on: bind, read it, close. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  testPki();
  prevSink = setLogSink((l) => logs.push(l));
  [h2c, h1] = await Promise.all([startH2cBackend(), startH1Backend()]);
});

afterAll(async () => {
  if (prevSink) setLogSink(prevSink);
  for (const p of proxies) p.stop();
  await Promise.all([h2c?.stop(), h1?.stop()]);
  cleanupCerts();
});

describe("backend errors", () => {
  for (const proto of ["h2", "http1", "auto"] as const) {
    for (const front of ["--http2", "--http1.1"]) {
      test(`backend down (${proto}) → 502 with a short text/plain body (${front.slice(2)} client)`, async () => {
        const p = harness(routeRecord(`127.0.0.1:${await deadPort()}`, { backendProtocol: proto }));
        const r = await curl(p.port, "/hello", [front]);
        expect(r.status).toBe(502);
        expect(r.headers["content-type"]).toStartWith("text/plain");
        expect(r.body).toBe("502 Bad Gateway: backend unreachable\n");
      });
    }
  }

  for (const [name, b, proto] of [["h2c", () => h2c, "h2"], ["http1", () => h1, "http1"]] as const) {
    for (const front of ["--http2", "--http1.1"]) {
      test(`${name} backend that accepts but never answers → 504 within backend_timeout (${front.slice(2)} client)`, async () => {
        const p = harness(routeRecord(b().addr, { backendProtocol: proto }), { proxy: { backendTimeoutMs: 800 } });
        const t0 = Date.now();
        const r = await curl(p.port, "/hang", [front]);
        const took = Date.now() - t0;
        expect(r.status).toBe(504);
        expect(r.body).toBe("504 Gateway Timeout: backend did not answer in time\n");
        expect(took).toBeGreaterThanOrEqual(700);
        expect(took).toBeLessThan(5000);
      });
    }
  }

  test("an HTTP/1.1 backend whose chunked body breaks after the head: the HTTP/1.1 client gets the head and a cut, and the request is logged", async () => {
    const broken = net.createServer((s) => {
      s.once("data", () => s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Broken: 1\r\n\r\nZZZ\r\n"));
      s.on("error", () => {});
    });
    await new Promise<void>((r) => broken.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (broken.address() as net.AddressInfo).port;
      const p = harness(routeRecord(`127.0.0.1:${port}`, { backendProtocol: "http1" }));
      const got = await new Promise<string>((resolve) => {
        let text = "";
        const c = tls.connect({ host: "127.0.0.1", port: p.port, servername: "a.test", ca: testPki().ca.certPem, ALPNProtocols: ["http/1.1"] }, () =>
          c.write("GET /broken-chunk HTTP/1.1\r\nHost: a.test\r\n\r\n"),
        );
        c.on("data", (d: Buffer) => (text += d.toString("latin1")));
        c.on("error", () => {});
        c.on("close", () => resolve(text));
        setTimeout(() => c.destroy(), 5000);
      });
      expect(got).toStartWith("HTTP/1.1 200 OK\r\n");
      expect(got.toLowerCase()).toContain("x-broken: 1");
      expect(await waitFor(() => logged("l7.request").some((o) => o.path === "/broken-chunk"))).toBe(true);
    } finally {
      broken.close();
    }
  });

  test("a TCP backend that accepts and stays silent → 504 (auto mode probes, then times out)", async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const p = harness(routeRecord(`127.0.0.1:${port}`, { backendProtocol: "http1" }), { proxy: { backendTimeoutMs: 800 } });
      const r = await curl(p.port, "/", ["--http2"]);
      expect(r.status).toBe(504);
    } finally {
      silent.close();
    }
  });
});

describe("L7 policies", () => {
  for (const front of ["--http2", "--http1.1"]) {
    test(`block_user_agent answers 403 and the backend never sees the request (${front.slice(2)})`, async () => {
      const p = harness(routeRecord(h2c.addr, { backendProtocol: "h2", l7Policies: [{ id: 1, routeId: 1, type: "block_user_agent", value: "ZGrab" }] }));
      const before = h2c.seen.length;
      const r = await curl(p.port, "/hello?blocked", [front, "-A", "Mozilla/5.0 zgrab/0.x"]);
      expect(r.status).toBe(403);
      expect(r.headers["content-type"]).toStartWith("text/plain");
      expect(h2c.seen.length).toBe(before);
      const ok = await curl(p.port, "/hello", [front, "-A", "curl/8"]);
      expect(ok.status).toBe(200);
    });

    test(`require_header answers 403 when the header is missing, forwards when present (${front.slice(2)})`, async () => {
      const p = harness(routeRecord(h1.addr, { backendProtocol: "http1", l7Policies: [{ id: 1, routeId: 1, type: "require_header", value: "X-Api-Key" }] }));
      const before = h1.seen.length;
      const r = await curl(p.port, "/hello", [front]);
      expect(r.status).toBe(403);
      expect(h1.seen.length).toBe(before);
      const ok = await curl(p.port, "/hello", [front, "-H", "x-api-key: 1"]);
      expect(ok.status).toBe(200);
      expect(h1.seen.length).toBe(before + 1);
    });
  }

  test("a policy added to the route applies to the next request", async () => {
    const rec = routeRecord(h2c.addr, { backendProtocol: "h2" });
    const p = harness(rec);
    expect((await curl(p.port, "/hello", ["--http2", "-A", "badbot"])).status).toBe(200);
    p.setRoute({ ...rec, l7Policies: [{ id: 2, routeId: 1, type: "block_user_agent", value: "badbot" }] });
    expect((await curl(p.port, "/hello", ["--http2", "-A", "badbot"])).status).toBe(403);
  });
});

describe("TLS front", () => {
  test("a client offering only TLS 1.2 against minimum 1.3 is refused and the reason is logged", async () => {
    const p = harness(routeRecord(h2c.addr, { backendProtocol: "h2" }), { proxy: { l7MinTls: "1.3" } });
    const r = await curl(p.port, "/hello", ["--tls-max", "1.2"]);
    expect(r.code).not.toBe(0);
    expect(await waitFor(() => logged("l7.tls_error").some((o) => String(o.reason).includes("no shared TLS version")))).toBe(true);
    const line = logged("l7.tls_error").find((o) => String(o.reason).includes("no shared TLS version"))!;
    expect(line.reason).toContain("1.3");
    expect(line.sni).toBe("a.test");
    expect(line.client).toBe("127.0.0.1");
    expect(await waitFor(() => p.closes.length === 1)).toBe(true);
    expect(p.closes[0].outcome).toBe("tls_error");
  });

  test("TLS 1.3 client with minimum 1.3 is served; HTTP/1.1-only client gets HTTP/1.1", async () => {
    const p = harness(routeRecord(h2c.addr, { backendProtocol: "h2" }), { proxy: { l7MinTls: "1.3" } });
    const r = await curl(p.port, "/hello", ["--http1.1", "--tlsv1.3"]);
    expect(r.status).toBe(200);
    expect(r.httpVersion).toBe("1.1");
  });

  test("a route whose certificate is not loaded (cert = null) logs why and closes", async () => {
    const p = harness(routeRecord(h2c.addr), { cert: null });
    const r = await curl(p.port, "/hello", [], 10);
    expect(r.code).not.toBe(0);
    expect(await waitFor(() => logged("l7.no_cert").length > 0)).toBe(true);
    expect(String(logged("l7.no_cert")[0].reason)).toContain("certificate");
    expect(await waitFor(() => p.closes.length === 1)).toBe(true);
    expect(p.closes[0].outcome).toBe("no_cert");
  });

  test("an idle client connection is closed after idle_timeout and onClose reports it once", async () => {
    const p = harness(routeRecord(h2c.addr, { backendProtocol: "h2" }), { proxy: { idleTimeoutMs: 600 } });
    const s = tls.connect({ host: "127.0.0.1", port: p.port, servername: "a.test", ca: testPki().ca.certPem, ALPNProtocols: ["http/1.1"] });
    await new Promise<void>((r, j) => {
      s.once("secureConnect", () => r());
      s.once("error", j);
    });
    const t0 = Date.now();
    await new Promise<void>((r) => s.once("close", () => r()));
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(500);
    expect(took).toBeLessThan(4000);
    expect(await waitFor(() => p.closes.length === 1)).toBe(true);
    expect(p.closes[0].outcome).toBe("idle_timeout");
    expect(p.closes[0].bytesIn).toBeGreaterThan(0);
  });

  test("onClose reports requests and bytes of a served connection", async () => {
    const p = harness(routeRecord(h2c.addr, { backendProtocol: "h2" }));
    const r = await curl(p.port, "/hello", ["--http2"]);
    expect(r.status).toBe(200);
    expect(await waitFor(() => p.closes.length === 1)).toBe(true);
    expect(p.closes[0]).toMatchObject({ outcome: "ok", requests: 1 });
    expect(p.closes[0].bytesOut).toBeGreaterThan(100);
  });

  test("every request is logged as l7.request with route, status, protocol", async () => {
    const p = harness(routeRecord(h1.addr, { backendProtocol: "http1" }));
    await curl(p.port, "/status/418", ["--http2"]);
    expect(await waitFor(() => logged("l7.request").some((o) => o.path === "/status/418"))).toBe(true);
    const line = logged("l7.request").find((o) => o.path === "/status/418")!;
    expect(line).toMatchObject({ route: "a.test", status: 418, method: "GET", protocol: "h2->http1", backend: h1.addr, client: "127.0.0.1" });
  });
});
