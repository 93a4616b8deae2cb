/**
 * The firewall runs before routing (SPEC §4 step 3): a blocked IP, CIDR (v4
 * and v6) or country gets a TCP RST and zero bytes — the client sees
 * ECONNRESET, never a clean FIN — while other clients pass. The per-IP rate
 * limit resets the (N+1)th connection in a window and lets the client back in
 * after the window. Client addresses vary through distinct loopback source
 * addresses (127.0.0.x) and ::1.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCountryMmdb } from "../fixtures/mmdb.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureLogs, rawConnect, realHello, startSink, waitUntil, writeAll, type TcpSink } from "../helpers/net.ts";

let sink: TcpSink;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  logs = captureLogs();
  sink = await startSink((c) => {
    c.socket.write("ok");
    c.ended.then(() => c.socket.end());
  });
});
afterAll(() => {
  sink?.close();
  logs?.stop();
});

/** Connects from `localAddress`, sends nothing, and reports how the proxy ended it. */
async function attempt(port: number, opts: { host?: string; localAddress?: string }) {
  // No `await c.connected`: the RST can beat Bun's 'connect' event (it then surfaces as a connect error).
  const c = rawConnect(port, opts);
  const r = await c.outcome(5000);
  c.socket.destroy();
  return r;
}

/** A client at `localAddress` is routed: it gets the backend's "ok" and a clean close. */
async function passes(port: number, opts: { host?: string; localAddress?: string }): Promise<void> {
  const c = rawConnect(port, opts);
  await c.connected;
  await writeAll(c.socket, await realHello("fw.test"));
  await waitUntil(() => c.received().length >= 2, 10_000, `reply for ${opts.localAddress ?? opts.host}`);
  expect(c.received().toString()).toBe("ok");
  c.socket.end();
  expect((await c.outcome()).kind).toBe("fin");
}

/** Asserts a reset with nothing written, and a log line with outcome blocked and this reason. */
async function expectReset(port: number, opts: { host?: string; localAddress?: string }, reason: string): Promise<void> {
  const r = await attempt(port, opts);
  expect(r.kind).toBe("reset");
  expect(r.bytes.length).toBe(0);
  const line = await waitUntil(() => logs.conns().findLast((l) => l.outcome === "blocked" && l.reason === reason), 5000, `blocked log (${reason})`);
  expect(line.reason).toBe(reason);
}

describe("rules", () => {
  let proxy: TestProxy;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "mcp-l4-fw-"));
    writeCountryMmdb(join(dir, "country.mmdb"), [
      { cidr: "127.0.0.2/32", country: "KP" },
      { cidr: "127.0.0.3/32", country: "DE" },
    ]);
    proxy = await startTestProxy(
      `
[firewall]
geoip_db = "${join(dir, "country.mmdb")}"
blocked_ips = ["127.0.0.4"]
blocked_cidrs = ["127.0.1.0/24", "::1/128"]
blocked_countries = ["KP"]

[proxy]
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "fw.test"
  backend = "127.0.0.1:${sink.port}"

[[listeners]]
addr = "[::1]:0"
  [[listeners.routes]]
  hostname = "fw.test"
  backend = "127.0.0.1:${sink.port}"
`,
      { dir },
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a blocked IP gets a RST and zero bytes", async () => {
    await expectReset(proxy.port("127.0.0.1:0"), { localAddress: "127.0.0.4" }, "ip");
  });
  test("a client inside a blocked IPv4 CIDR gets a RST and zero bytes", async () => {
    await expectReset(proxy.port("127.0.0.1:0"), { localAddress: "127.0.1.77" }, "cidr");
  });
  test("a client inside a blocked IPv6 CIDR (::1) gets a RST and zero bytes", async () => {
    await expectReset(proxy.port("[::1]:0"), { host: "::1" }, "cidr");
  });
  test("a client from a blocked country (GeoIP) gets a RST and zero bytes", async () => {
    await expectReset(proxy.port("127.0.0.1:0"), { localAddress: "127.0.0.2" }, "country");
  });
  test("clients matching no rule pass: another country, another IP, the CIDR's neighbour", async () => {
    await passes(proxy.port("127.0.0.1:0"), { localAddress: "127.0.0.3" }); // DE
    await passes(proxy.port("127.0.0.1:0"), { localAddress: "127.0.0.5" }); // not in the mmdb
    await passes(proxy.port("127.0.0.1:0"), { localAddress: "127.0.2.1" }); // next to 127.0.1.0/24
  });
});

describe("rate limit", () => {
  let proxy: TestProxy;

  beforeAll(async () => {
    proxy = await startTestProxy(`
[firewall]
rate_limit = 3
rate_window = "1s"
blocked_cidrs = ["::2/127"]

[proxy]
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "fw.test"
  backend = "127.0.0.1:${sink.port}"

[[listeners]]
addr = "[::1]:0"
  [[listeners.routes]]
  hostname = "fw.test"
  backend = "127.0.0.1:${sink.port}"
`);
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  test("an IPv6 client outside the blocked v6 CIDR passes", async () => {
    await passes(proxy.port("[::1]:0"), { host: "::1" });
  });

  test("the 4th connection within rate_window is reset, and the client passes again after the window", async () => {
    const port = proxy.port("127.0.0.1:0");
    const from = { localAddress: "127.0.0.9" };
    // Three connections held open at once: all admitted.
    const held = [rawConnect(port, from), rawConnect(port, from), rawConnect(port, from)];
    await Promise.all(held.map((c) => c.connected));
    const fourth = await attempt(port, from);
    expect(fourth.kind).toBe("reset");
    expect(fourth.bytes.length).toBe(0);
    // The three were not cut: they still reach the backend.
    for (const c of held) {
      await writeAll(c.socket, await realHello("fw.test"));
      await waitUntil(() => c.received().length >= 2, 10_000, "held connection reply");
      c.socket.destroy();
    }
    // Another client IP is not affected by 127.0.0.9's limit.
    await passes(port, { localAddress: "127.0.0.10" });
    // After one window (rejected attempts do not count), 127.0.0.9 is back.
    await Bun.sleep(1200);
    await passes(port, from);
  });
});
