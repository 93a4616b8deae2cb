import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import type { AddressInfo } from "node:net";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { classifyTlsError, type CloseOutcome, codeClass, createMetrics } from "../../src/obs/metrics.ts";
import { Registry } from "../../src/obs/prom.ts";
import { VERSION } from "../../src/version.ts";
import { duplicateSeries, promtoolCheck } from "./promtool.ts";

function fresh() {
  return createMetrics(new Registry({ dropCounterName: "mcproxy_metric_series_dropped_total" }));
}

describe("mc-proxy metric set", () => {
  test("per-listener connection counters carry listener and reason/outcome labels", () => {
    const m = fresh();
    const l = m.listener("0.0.0.0:443");
    expect(m.listener("0.0.0.0:443")).toBe(l); // resolved once, reused by every connection
    l.accepted();
    l.accepted();
    l.blocked("rate_limit");
    l.closed("ok");
    l.closed("idle_timeout");
    l.closed("something_new" as CloseOutcome); // unknown outcome cannot mint a new series
    l.bytes("l4", 100, 2000);
    l.bytes("l4", 1, 2);
    l.backendConnectFailure("l7");
    m.connBlocked("[::]:8443", "untrusted_proxy");
    const t = m.render();
    expect(t).toContain('mcproxy_connections_accepted_total{listener="0.0.0.0:443"} 2\n');
    expect(t).toContain('mcproxy_connections_blocked_total{listener="0.0.0.0:443",reason="rate_limit"} 1\n');
    expect(t).toContain('mcproxy_connections_blocked_total{listener="0.0.0.0:443",reason="cidr"} 0\n');
    expect(t).toContain('mcproxy_connections_blocked_total{listener="[::]:8443",reason="untrusted_proxy"} 1\n');
    expect(t).toContain('mcproxy_connections_closed_total{listener="0.0.0.0:443",outcome="ok"} 1\n');
    expect(t).toContain('mcproxy_connections_closed_total{listener="0.0.0.0:443",outcome="idle_timeout"} 1\n');
    expect(t).toContain('mcproxy_connections_closed_total{listener="0.0.0.0:443",outcome="other"} 1\n');
    expect(t).not.toContain("something_new");
    expect(t).toContain('mcproxy_bytes_total{listener="0.0.0.0:443",mode="l4",direction="client_to_backend"} 101\n');
    expect(t).toContain('mcproxy_bytes_total{listener="0.0.0.0:443",mode="l4",direction="backend_to_client"} 2002\n');
    expect(t).toContain('mcproxy_backend_connect_failures_total{listener="0.0.0.0:443",mode="l7"} 1\n');
  });

  test("active connections per listener are read from the state at scrape time", () => {
    const m = fresh();
    let active = 5;
    m.setActiveSource(() => [
      { listener: "0.0.0.0:443", active },
      { listener: "[::]:443", active: 0 },
    ]);
    expect(m.render()).toContain('mcproxy_active_connections{listener="0.0.0.0:443"} 5\n');
    active = 2;
    const t = m.render();
    expect(t).toContain('mcproxy_active_connections{listener="0.0.0.0:443"} 2\n');
    expect(t).toContain('mcproxy_active_connections{listener="[::]:443"} 0\n');
    expect(t).toContain("# TYPE mcproxy_active_connections gauge\n");
  });

  test("L7 requests count by route and status class, with a duration histogram per route", () => {
    const m = fresh();
    m.l7Request("a.example.com", 200, 0.02);
    m.l7Request("a.example.com", 204, 0.004);
    m.l7Request("a.example.com", 503, 61);
    m.route("b.example.com").request(0, 0.5); // no response at all
    const t = m.render();
    expect(t).toContain('mcproxy_l7_requests_total{route="a.example.com",code_class="2xx"} 2\n');
    expect(t).toContain('mcproxy_l7_requests_total{route="a.example.com",code_class="5xx"} 1\n');
    expect(t).toContain('mcproxy_l7_requests_total{route="b.example.com",code_class="other"} 1\n');
    expect(t).toContain('mcproxy_l7_request_duration_seconds_bucket{route="a.example.com",le="0.005"} 1\n');
    expect(t).toContain('mcproxy_l7_request_duration_seconds_bucket{route="a.example.com",le="60"} 2\n');
    expect(t).toContain('mcproxy_l7_request_duration_seconds_bucket{route="a.example.com",le="+Inf"} 3\n');
    expect(t).toContain('mcproxy_l7_request_duration_seconds_count{route="a.example.com"} 3\n');
    expect(t).toContain('mcproxy_l7_request_duration_seconds_sum{route="a.example.com"} 61.024\n');
    expect([100, 199, 200, 404, 599, 600, 0, -1].map(codeClass)).toEqual(["1xx", "1xx", "2xx", "4xx", "5xx", "other", "other", "other"]);
  });

  test("hello, TLS, admin and reload counters", () => {
    const m = fresh();
    m.helloFailure("no_sni");
    m.helloFailure("timeout");
    m.tlsFailure("version");
    m.tlsFailure(Object.assign(new Error("error:10000418:SSL routines:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA"), { code: "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA" }));
    m.adminRpc("/mcproxy.v1.Admin/AddRoute", 0);
    m.adminRpc("/mcproxy.v1.Admin/AddRoute", 3);
    m.adminRpc("/mcproxy.v1.Admin/RemoveRoute", "NOT_FOUND");
    m.reload("geoip", true);
    m.reload("certificates", false);
    const t = m.render();
    expect(t).toContain('mcproxy_clienthello_failures_total{reason="no_sni"} 1\n');
    expect(t).toContain('mcproxy_clienthello_failures_total{reason="timeout"} 1\n');
    expect(t).toContain('mcproxy_clienthello_failures_total{reason="not_tls"} 0\n'); // pre-seeded at zero
    expect(t).toContain('mcproxy_tls_handshake_failures_total{reason="version"} 1\n');
    expect(t).toContain('mcproxy_tls_handshake_failures_total{reason="certificate"} 1\n');
    expect(t).toContain('mcproxy_admin_rpcs_total{method="/mcproxy.v1.Admin/AddRoute",code="OK"} 1\n');
    expect(t).toContain('mcproxy_admin_rpcs_total{method="/mcproxy.v1.Admin/AddRoute",code="INVALID_ARGUMENT"} 1\n');
    expect(t).toContain('mcproxy_admin_rpcs_total{method="/mcproxy.v1.Admin/RemoveRoute",code="NOT_FOUND"} 1\n');
    expect(t).toContain('mcproxy_reloads_total{kind="geoip",result="ok"} 1\n');
    expect(t).toContain('mcproxy_reloads_total{kind="certificates",result="error"} 1\n');
  });

  test("build info and process metrics", () => {
    const t = fresh().render();
    expect(t).toContain(`mcproxy_build_info{version="${VERSION}"} 1\n`);
    const start = Number(/^process_start_time_seconds (\d+)$/m.exec(t)?.[1]);
    const now = Date.now() / 1000;
    expect(start).toBeGreaterThan(now - 24 * 3600);
    expect(start).toBeLessThanOrEqual(now);
    const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(t)?.[1]);
    expect(rss).toBeGreaterThan(1_000_000);
    const open = Number(/^process_open_fds (\d+)$/m.exec(t)?.[1]);
    const max = Number(/^process_max_fds (\d+)$/m.exec(t)?.[1]);
    expect(open).toBeGreaterThan(2);
    expect(max).toBeGreaterThan(open);
  });

  test("the full page passes promtool check metrics with no complaints and no duplicate series", async () => {
    const m = fresh();
    m.setActiveSource(() => [{ listener: "0.0.0.0:443", active: 1 }]);
    const l = m.listener("0.0.0.0:443");
    l.accepted();
    l.blocked("country");
    l.closed("ok");
    l.bytes("l7", 10, 20);
    m.l7Request('weird"host\\name\n', 200, 0.1); // escaping survives a real parser
    m.helloFailure("too_large");
    m.tlsFailure("alert");
    m.adminRpc("/x/Y", 16);
    m.reload("geoip", false);
    const text = m.render();
    const r = await promtoolCheck(text);
    expect(r.output).toBe("");
    expect(r.code).toBe(0);
    expect(duplicateSeries(text)).toEqual([]);
  });

  test("cardinality: a flood of route names is capped and the drops are counted", () => {
    const m = createMetrics(new Registry({ maxSeries: 50, dropCounterName: "mcproxy_metric_series_dropped_total" }));
    for (let i = 0; i < 200; i++) m.l7Request(`r${i}.example`, 200, 0.01);
    const t = m.render();
    expect(t.match(/^mcproxy_l7_request_duration_seconds_count\{/gm)?.length).toBe(50);
    expect(t).toContain('mcproxy_metric_series_dropped_total{metric="mcproxy_l7_request_duration_seconds"} 150\n');
  });
});

describe("classifyTlsError", () => {
  test("maps BoringSSL codes and messages to a bounded set of classes", () => {
    const e = (code: string, message = "") => Object.assign(new Error(message || `error:0:SSL routines:OPENSSL_internal:${code.replace("ERR_SSL_", "")}`), { code });
    expect(classifyTlsError(e("ERR_SSL_UNSUPPORTED_PROTOCOL"))).toBe("version");
    expect(classifyTlsError(e("ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION"))).toBe("version");
    expect(classifyTlsError(e("ERR_SSL_NO_SHARED_CIPHER"))).toBe("no_cipher");
    expect(classifyTlsError(e("ERR_SSL_NO_SHARED_GROUP"))).toBe("no_cipher");
    expect(classifyTlsError(e("ERR_SSL_WRONG_CURVE"))).toBe("no_cipher");
    expect(classifyTlsError(e("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"))).toBe("certificate");
    expect(classifyTlsError(e("ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE"))).toBe("certificate");
    expect(classifyTlsError(e("ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE"))).toBe("alert");
    expect(classifyTlsError(e("ERR_TLS_HANDSHAKE_TIMEOUT", "TLS handshake timeout"))).toBe("timeout");
    expect(classifyTlsError(e("ERR_SSL_HTTP_REQUEST"))).toBe("other");
    expect(classifyTlsError("a string")).toBe("other");
    expect(classifyTlsError(null)).toBe("other");
  });

  describe("on real handshake failures (Bun node:tls server, openssl clients)", () => {
    let dir = "";
    const servers: tls.Server[] = [];
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "mcproxy-obs-tls-"));
      const r = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-days", "2", "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test"], { stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    });
    afterAll(() => {
      for (const s of servers) s.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** Starts a TLS server, runs `provoke(port)`, returns the class of the first tlsClientError. */
    async function failureClass(opts: tls.TlsOptions, provoke: (port: number) => Promise<void>): Promise<string> {
      const srv = tls.createServer({ key: fs.readFileSync(`${dir}/key.pem`), cert: fs.readFileSync(`${dir}/cert.pem`), ...opts }, (s) => s.end("hi"));
      servers.push(srv);
      const err = new Promise<unknown>((resolve) => srv.once("tlsClientError", resolve));
      await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
      const port = (srv.address() as AddressInfo).port;
      const deadline = new Promise<string>((resolve) => setTimeout(() => resolve("no tlsClientError within 15s"), 15_000));
      const [, cls] = await Promise.all([provoke(port), Promise.race([err.then(classifyTlsError), deadline])]);
      srv.close();
      return cls;
    }

    async function sClient(port: number, ...args: string[]): Promise<void> {
      const p = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", "a.test", ...args], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      const t = setTimeout(() => p.kill(), 10_000);
      await p.exited;
      clearTimeout(t);
    }

    test("TLS 1.2 client against a TLS 1.3-only front → version", async () => {
      expect(await failureClass({ minVersion: "TLSv1.3" }, (port) => sClient(port, "-tls1_2"))).toBe("version");
    }, 30_000);

    test("client offering only a key-exchange group the server lacks → no_cipher", async () => {
      expect(await failureClass({ minVersion: "TLSv1.3" }, (port) => sClient(port, "-groups", "ffdhe2048"))).toBe("no_cipher");
    }, 30_000);

    test("client rejecting the server certificate → certificate", async () => {
      expect(await failureClass({ maxVersion: "TLSv1.2" }, (port) => sClient(port, "-tls1_2", "-verify_return_error"))).toBe("certificate");
    }, 30_000);

    test("client that never sends a ClientHello → timeout", async () => {
      const cls = await failureClass({ handshakeTimeout: 1000 }, async (port) => {
        const s = net.connect(port, "127.0.0.1");
        s.on("error", () => {});
        await Bun.sleep(2500);
        s.destroy();
      });
      expect(cls).toBe("timeout");
    }, 30_000);
  });
});
