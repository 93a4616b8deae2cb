/**
 * Connections that cannot be routed (SPEC §4 step 4): unknown SNI, no SNI,
 * plain HTTP, random garbage, a truncated ClientHello followed by silence,
 * and silence alone are closed within `hello_timeout`, nothing is written to
 * the client, and the proxy keeps serving good connections afterwards.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureWithOpenssl } from "../wire/hello-fixtures.ts";
import { captureLogs, rawConnect, realHello, startSink, waitUntil, writeAll, type TcpSink } from "../helpers/net.ts";

const HELLO_TIMEOUT_MS = 500;
let proxy: TestProxy;
let sink: TcpSink;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  logs = captureLogs();
  // The backend answers "ok" to anything, so a good connection is visible end to end.
  sink = await startSink((c) => {
    c.socket.write("ok");
    c.ended.then(() => c.socket.end());
  });
  proxy = await startTestProxy(`
[proxy]
hello_timeout = "${HELLO_TIMEOUT_MS}ms"
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "good.test"
  backend = "127.0.0.1:${sink.port}"
`);
});
afterAll(async () => {
  sink?.close();
  await proxy?.stop();
  logs?.stop();
});

/** A good connection still works: the backend's "ok" comes back through the relay. */
async function goodConnectionWorks(): Promise<void> {
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, await realHello("good.test"));
  await waitUntil(() => c.received().length >= 2, 10_000, "backend reply");
  expect(c.received().toString()).toBe("ok");
  c.socket.end();
  expect((await c.outcome()).kind).toBe("fin");
}

/** Sends `first`, then stays silent; returns how the proxy ended the connection. */
async function sendAndWatch(first: Uint8Array | null) {
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  if (first) await writeAll(c.socket, first);
  const r = await c.outcome(10_000);
  c.socket.destroy();
  // Never routed anywhere.
  expect(sink.conns.length).toBe(before);
  const line = await waitUntil(() => logs.conns().find((l) => l.client === `127.0.0.1:${c.localPort()}`), 5000, "conn log");
  return { ...r, line };
}

function randomGarbage(n: number): Uint8Array {
  const b = crypto.getRandomValues(new Uint8Array(n));
  b[0] = 0xff; // not a TLS handshake record, whatever the rest is
  return b;
}

const cases: [string, () => Promise<Uint8Array | null>, string, boolean][] = [
  ["unknown SNI", () => realHello("unknown.test"), "no_route", false],
  ["no SNI", () => captureWithOpenssl({}), "hello_failed", false],
  ["plain HTTP", async () => new TextEncoder().encode("GET / HTTP/1.1\r\nHost: good.test\r\n\r\n"), "hello_failed", false],
  ["random garbage", async () => randomGarbage(512), "hello_failed", false],
  ["a truncated ClientHello followed by silence", async () => (await realHello("good.test")).subarray(0, 100), "hello_failed", true],
  ["silence (no bytes at all)", async () => null, "hello_failed", true],
];

for (const [what, make, outcome, waitsForDeadline] of cases) {
  test(`${what} is closed within hello_timeout with nothing written, and good connections still pass`, async () => {
    const r = await sendAndWatch(await make());
    expect(r.kind === "fin" || r.kind === "reset").toBe(true);
    expect(r.bytes.length).toBe(0);
    // Generous upper bound for a loaded machine. The deadline cases must not
    // close early: the deadline runs from accept, which is after our clock started.
    expect(r.ms).toBeLessThan(HELLO_TIMEOUT_MS + 2500);
    if (waitsForDeadline) expect(r.ms).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 5);
    expect(r.line.outcome).toBe(outcome);
    if (waitsForDeadline) expect(r.line.reason).toBe("timeout");
    await goodConnectionWorks();
  });
}
