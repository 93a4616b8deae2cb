/**
 * Relay timeouts (SPEC §10): `idle_timeout` closes a relayed connection on
 * which nothing moved in either direction (traffic keeps it alive), and
 * `connect_timeout` gives up on a backend that never answers the SYN. The
 * unreachable backend is on loopback: a listening socket with backlog 0 that
 * never accepts, whose queue we fill first, so Linux drops further SYNs and
 * connect() hangs. (Bun's node:net ignores `backlog` and accepts at once, so
 * the socket is held by a tiny python3 process.)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startBlackhole, synSentTo, type Blackhole } from "../helpers/blackhole.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureLogs, rawConnect, realHello, startSink, waitUntil, writeAll, type TcpSink } from "../helpers/net.ts";

let proxy: TestProxy;
let sink: TcpSink;
let logs: ReturnType<typeof captureLogs>;
let blackhole: Blackhole;

beforeAll(async () => {
  logs = captureLogs();
  blackhole = await startBlackhole();
  sink = await startSink((c) => c.ended.then(() => c.socket.end()));
  proxy = await startTestProxy(`
[proxy]
idle_timeout = "1s"
connect_timeout = "1s"
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "idle.test"
  backend = "127.0.0.1:${sink.port}"
  [[listeners.routes]]
  hostname = "unreachable.test"
  backend = "127.0.0.1:${blackhole.port}"
`);
});
afterAll(async () => {
  sink?.close();
  await proxy?.stop();
  blackhole?.close();
  logs?.stop();
});

test("idle_timeout closes a relayed connection on which nothing moves", async () => {
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, await realHello("idle.test"));
  const b = await sink.conn(before);
  const t0 = Date.now();
  const r = await c.outcome(10_000);
  const elapsed = Date.now() - t0;
  expect(r.kind === "fin" || r.kind === "reset").toBe(true);
  expect(elapsed).toBeGreaterThanOrEqual(700);
  expect(elapsed).toBeLessThan(4000);
  await Promise.race([b.closed, Bun.sleep(5000)]);
  expect(b.socket.destroyed).toBe(true); // the backend side was cut too
  const line = await waitUntil(() => logs.conns().find((l) => l.client === `127.0.0.1:${c.localPort()}`), 5000, "conn log");
  expect(line.outcome).toBe("idle_timeout");
});

test("traffic in either direction keeps a relayed connection past idle_timeout", async () => {
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, await realHello("idle.test"));
  const b = await sink.conn(before);
  // 2.4 s of traffic, a message every 300 ms, alternating directions.
  for (let i = 0; i < 8; i++) {
    await Bun.sleep(300);
    if (i % 2 === 0) await writeAll(c.socket, Buffer.from("."));
    else await writeAll(b.socket, Buffer.from("."));
  }
  await waitUntil(() => c.received().length >= 4, 5000, "backend bytes");
  expect(c.socket.destroyed).toBe(false);
  expect(c.received().toString()).toBe("....");
  expect(b.received().subarray(-4).toString()).toBe("....");
  c.socket.end();
  expect((await c.outcome()).kind).toBe("fin");
});

test("connect_timeout closes the client when the backend never answers, outcome backend_connect_failed", async () => {
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, await realHello("unreachable.test"));
  const t0 = Date.now();
  const r = await c.outcome(10_000);
  const elapsed = Date.now() - t0;
  expect(r.kind === "fin" || r.kind === "reset").toBe(true);
  expect(r.bytes.length).toBe(0);
  expect(elapsed).toBeGreaterThanOrEqual(700);
  expect(elapsed).toBeLessThan(4000);
  const line = await waitUntil(() => logs.conns().find((l) => l.client === `127.0.0.1:${c.localPort()}`), 5000, "conn log");
  expect(line).toMatchObject({ outcome: "backend_connect_failed", reason: "connect_timeout", route: "unreachable.test" });
});

test("timed-out connects to a black-holed backend keep no descriptor past connect_timeout + 1 s (SPEC §4 rev 3)", async () => {
  const baseline = synSentTo(blackhole.port); // the blackhole's own queue probes, if any
  const hello = await realHello("unreachable.test");
  const clients = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const c = rawConnect(proxy.port());
      await c.connected;
      await writeAll(c.socket, hello);
      return c;
    }),
  );
  // The dials are in flight now.
  await waitUntil(() => synSentTo(blackhole.port) >= baseline + 50, 5000, "50 connects in SYN_SENT");
  // connect_timeout is 1 s: within connect_timeout + 1 s every descriptor is gone
  // (the clients stay connected: it is the timeout that must free them).
  await Bun.sleep(2000);
  expect(synSentTo(blackhole.port)).toBe(baseline);
  for (const c of clients) c.socket.destroy();
});
