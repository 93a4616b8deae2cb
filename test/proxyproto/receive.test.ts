/**
 * SPEC §4 step 2 and §6 "Receive": a listener with `proxy_protocol = true`
 * reads a PROXY v1/v2 header before the ClientHello, never forwards it, and
 * uses its source as the client address for the firewall and the logs.
 * Also §6 "Send" for a header that was received (the source is passed on).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import { setLogSink } from "../../src/obs/log.ts";
import { metrics } from "../../src/obs/metrics.ts";
import { encodeProxyV1, encodeProxyV2, parseProxyHeader } from "../../src/wire/proxyproto.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureWithOpenssl } from "../wire/hello-fixtures.ts";
import { ascii, bytewise, concat, openClient, rawBackend, rawClient, type RawBackend } from "./helpers.ts";

const HELLO_TIMEOUT_MS = 2000;

let proxy: TestProxy;
let plain: RawBackend; // a.test: plain L4 route
let chained: RawBackend; // b.test: L4 route with send_proxy_protocol
let helloA: Uint8Array;
let helloB: Uint8Array;
const logLines: Record<string, unknown>[] = [];
let prevSink: ((line: string) => void) | undefined;

beforeAll(async () => {
  [helloA, helloB] = await Promise.all([captureWithOpenssl({ sni: "a.test" }), captureWithOpenssl({ sni: "b.test" })]);
  plain = await rawBackend();
  chained = await rawBackend();
  prevSink = setLogSink((line) => logLines.push(JSON.parse(line)));
  proxy = await startTestProxy(`
[proxy]
hello_timeout = "${HELLO_TIMEOUT_MS}ms"

[firewall]
blocked_ips = ["203.0.113.9"]

[[listeners]]
addr = "127.0.0.1:0"
proxy_protocol = true
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:${plain.port}"
  [[listeners.routes]]
  hostname = "b.test"
  backend = "127.0.0.1:${chained.port}"
  send_proxy_protocol = true
`);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  if (prevSink) setLogSink(prevSink);
  plain?.stop();
  chained?.stop();
});

const v4 = { source: { address: "198.51.100.7", port: 40001 }, destination: { address: "192.0.2.1", port: 443 } };
const v6 = { source: { address: "2001:db8::7", port: 40002 }, destination: { address: "2001:db8::1", port: 443 } };

/** Sends header + hello to the proxy, waits until backend `b` has the hello, returns what it received. */
async function routed(b: RawBackend, header: Uint8Array, hello: Uint8Array, gapMs = 0): Promise<Buffer> {
  const index = b.conns.length;
  const chunks = gapMs ? bytewise(concat(header, hello)) : [concat(header, hello)];
  const c = openClient(proxy.port(), chunks, { gapMs, holdMs: 15_000 });
  try {
    const expected = b === chained ? hello.length + 16 : hello.length;
    const conn = await b.waitBytes(index, expected, 12_000);
    await Bun.sleep(50); // anything extra would show up now
    return conn.bytes;
  } finally {
    c.close();
  }
}

/** The `conn` log line written when the connection from client `addr` closed. */
async function connLine(client: string): Promise<Record<string, unknown>> {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const l = logLines.find((l) => l.event === "conn" && l.client === client);
    if (l) return l;
    await Bun.sleep(20);
  }
  throw new Error(`no conn log line for ${client}; have ${JSON.stringify(logLines.filter((l) => l.event === "conn").map((l) => l.client))}`);
}

/** Asserts the connection was closed without a byte written and no backend connection made. */
async function refused(chunks: Uint8Array[], opts: { holdMs?: number } = {}) {
  const before = plain.conns.length;
  const o = await rawClient(proxy.port(), chunks, { holdMs: opts.holdMs ?? 8000 });
  await Bun.sleep(100);
  expect(o.stillOpen).toBe(false);
  expect(o.received).toBe(0);
  expect(plain.conns.length).toBe(before);
  return o;
}

describe("a PROXY header before the ClientHello is read and not forwarded", () => {
  const cases: Array<[string, () => Uint8Array]> = [
    ["v1 TCP4", () => encodeProxyV1(v4)],
    ["v1 TCP6", () => encodeProxyV1(v6)],
    ["v2 TCP4", () => encodeProxyV2({ ...v4, authority: "edge.example" })],
    ["v2 TCP6", () => encodeProxyV2(v6)],
    ["v2 LOCAL", () => encodeProxyV2({ ...v4, command: "local" })],
    ["v1 UNKNOWN", () => ascii("PROXY UNKNOWN\r\n")],
    ["v1 UNKNOWN with addresses", () => ascii("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")],
  ];
  for (const [name, header] of cases) {
    test(`${name} header, then a real ClientHello: routed by SNI, backend receives exactly the hello`, async () => {
      const got = await routed(plain, header(), helloA);
      expect(Buffer.compare(got, Buffer.from(helloA))).toBe(0);
    });
  }

  test("a v1 header and hello delivered one byte at a time are routed", async () => {
    const got = await routed(plain, encodeProxyV1(v4), helloA, 2);
    expect(Buffer.compare(got, Buffer.from(helloA))).toBe(0);
  }, 30_000);

  test("a v2 header delivered one byte at a time is routed", async () => {
    const got = await routed(plain, encodeProxyV2({ ...v6, authority: "x.test" }), helloA, 2);
    expect(Buffer.compare(got, Buffer.from(helloA))).toBe(0);
  }, 30_000);
});

describe("a connection without a usable PROXY header is closed and never reaches a backend", () => {
  test("missing header (the ClientHello straight away) → closed", async () => {
    await refused([helloA]);
  });

  test("malformed v1 header → closed", async () => {
    await refused([concat(ascii("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), helloA)]);
  });

  test("malformed v2 header (version 3) → closed", async () => {
    const bad = encodeProxyV2(v4);
    bad[12] = 0x31;
    await refused([concat(bad, helloA)]);
  });

  test("v1 line longer than 107 bytes → closed", async () => {
    await refused([ascii(`PROXY UNKNOWN ${"x".repeat(100)}\r\n`)]);
  });

  test("a header then silence → closed within hello_timeout", async () => {
    const o = await refused([encodeProxyV1(v4)], { holdMs: HELLO_TIMEOUT_MS + 6000 });
    expect(o.elapsedMs).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 300);
    expect(o.elapsedMs).toBeLessThan(HELLO_TIMEOUT_MS + 3000);
  }, 20_000);

  test("half a header then silence → closed within hello_timeout", async () => {
    const o = await refused([encodeProxyV2(v4).subarray(0, 20)], { holdMs: HELLO_TIMEOUT_MS + 6000 });
    expect(o.elapsedMs).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 300);
    expect(o.elapsedMs).toBeLessThan(HELLO_TIMEOUT_MS + 3000);
  }, 20_000);
});

/** The value of one sample line of the process-wide metrics ("name{labels}"), 0 when absent. */
function sample(prefix: string): number {
  const line = metrics.render().split("\n").find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

test("a client that hangs up in the middle of its PROXY header is a truncated hello, not a malformed header", async () => {
  const listener = proxy.srv.config.listeners[0]!.addr;
  const blocked = `mcproxy_connections_blocked_total{listener="${listener}",reason="proxy_header"}`;
  const truncated = `mcproxy_clienthello_failures_total{reason="truncated"}`;
  await Bun.sleep(500); // connections of earlier tests finish counting first
  const [b0, t0] = [sample(blocked), sample(truncated)];
  const s = net.connect(proxy.port(), "127.0.0.1");
  s.on("error", () => {});
  await new Promise<void>((r) => s.once("connect", () => r()));
  const client = `127.0.0.1:${s.localPort}`;
  s.end(ascii("PROXY TCP4 1.2")); // half a v1 header, then FIN
  const line = await connLine(client);
  expect(line).toMatchObject({ outcome: "hello_failed", reason: "proxy_header:truncated" });
  expect(sample(truncated)).toBe(t0 + 1);
  expect(sample(blocked)).toBe(b0);
  s.destroy();
  // A malformed header is still counted as one.
  await refused([concat(ascii("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), helloA)]);
  expect(sample(blocked)).toBe(b0 + 1);
});

describe("the PROXY source is the client", () => {
  test("firewall: a header claiming blocked 203.0.113.9 (sent from 127.0.0.1) is reset, zero bytes, backend never reached", async () => {
    const before = plain.conns.length;
    const header = encodeProxyV1({ source: { address: "203.0.113.9", port: 5555 }, destination: v4.destination });
    const o = await rawClient(proxy.port(), [concat(header, helloA)], { holdMs: 8000 });
    await Bun.sleep(100);
    expect(o.stillOpen).toBe(false);
    expect(o.error).toBe("ECONNRESET");
    expect(o.received).toBe(0);
    expect(plain.conns.length).toBe(before);
    const line = await connLine("203.0.113.9:5555");
    expect(line.outcome).toBe("blocked");
  });

  test("firewall: the same header as v2 TCP6 with an IPv4-mapped source is reset too", async () => {
    const before = plain.conns.length;
    const header = encodeProxyV2({ source: { address: "::ffff:203.0.113.9", port: 5556 }, destination: { address: "2001:db8::1", port: 443 } });
    expect(parseProxyHeader(header).status).toBe("ok");
    const o = await rawClient(proxy.port(), [concat(header, helloA)], { holdMs: 8000 });
    await Bun.sleep(100);
    expect(o.error).toBe("ECONNRESET");
    expect(o.received).toBe(0);
    expect(plain.conns.length).toBe(before);
  });

  test("logs: the conn line's client field is the PROXY source (v1 TCP4 and v2 TCP6)", async () => {
    await routed(plain, encodeProxyV1({ source: { address: "198.51.100.77", port: 4444 }, destination: v4.destination }), helloA);
    const l4 = await connLine("198.51.100.77:4444");
    expect(l4.sni).toBe("a.test");
    await routed(plain, encodeProxyV2({ source: { address: "2001:db8::77", port: 4445 }, destination: v6.destination }), helloA);
    const l6 = await connLine("[2001:db8::77]:4445");
    expect(l6.sni).toBe("a.test");
  });

  test("logs: after v2 LOCAL the client is the TCP peer", async () => {
    const c = openClient(proxy.port(), [concat(encodeProxyV2({ ...v4, command: "local" }), helloA)], { holdMs: 15_000 });
    const index = plain.conns.length;
    await plain.waitBytes(index, helloA.length);
    const port = c.localPort();
    c.close();
    const l = await connLine(`127.0.0.1:${port}`);
    expect(l.sni).toBe("a.test");
  });

  test("send_proxy_protocol after a received header: the backend's v2 header carries the received source and destination", async () => {
    const got = await routed(chained, encodeProxyV1(v6), helloB);
    const r = parseProxyHeader(got);
    if (r.status !== "ok") throw new Error(`backend got no valid header: ${JSON.stringify(r)}`);
    expect(r.header.version).toBe(2);
    expect(r.header.family).toBe("tcp6");
    expect(r.header.source).toEqual(v6.source);
    expect(r.header.destination).toEqual(v6.destination);
    expect(r.header.authority).toBe("b.test");
    expect(Buffer.compare(got.subarray(r.length), Buffer.from(helloB))).toBe(0);
  });

  test("send_proxy_protocol after v1 UNKNOWN: the backend's header carries the TCP peer and the listener address", async () => {
    const c = openClient(proxy.port(), [concat(ascii("PROXY UNKNOWN\r\n"), helloB)], { holdMs: 15_000 });
    const index = chained.conns.length;
    const conn = await chained.waitBytes(index, helloB.length + 16);
    await Bun.sleep(50);
    const port = c.localPort();
    c.close();
    const r = parseProxyHeader(conn.bytes);
    if (r.status !== "ok") throw new Error(`backend got no valid header: ${JSON.stringify(r)}`);
    expect(r.header.family).toBe("tcp4");
    expect(r.header.source).toEqual({ address: "127.0.0.1", port });
    expect(r.header.destination).toEqual({ address: "127.0.0.1", port: proxy.port() });
    expect(Buffer.compare(conn.bytes.subarray(r.length), Buffer.from(helloB))).toBe(0);
  });
});
