/**
 * Listener limit (SPEC §4 step 1): with max_connections = 2, two held
 * connections pass, the third is closed at once without a byte, and once one
 * of the two has closed a new connection passes again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureLogs, rawConnect, realHello, startSink, waitUntil, writeAll, type RawClient, type TcpSink } from "../helpers/net.ts";

let proxy: TestProxy;
let sink: TcpSink;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  logs = captureLogs();
  sink = await startSink((c) => {
    c.socket.write("ok");
    c.ended.then(() => c.socket.end());
  });
  proxy = await startTestProxy(`
[proxy]
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
max_connections = 2
  [[listeners.routes]]
  hostname = "lim.test"
  backend = "127.0.0.1:${sink.port}"
`);
});
afterAll(async () => {
  sink?.close();
  await proxy?.stop();
  logs?.stop();
});

/** Opens a connection, sends the hello, and waits for the backend's "ok". */
async function held(): Promise<RawClient> {
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, await realHello("lim.test"));
  await waitUntil(() => c.received().length >= 2, 10_000, "backend reply");
  expect(c.received().toString()).toBe("ok");
  return c;
}

test("max_connections = 2: two held connections pass, the third is closed, and after one closes a new one passes", async () => {
  const a = await held();
  const b = await held();

  const third = rawConnect(proxy.port()); // not awaiting 'connect': the close may beat it
  third.socket.write(await realHello("lim.test"));
  const r = await third.outcome(5000);
  expect(r.kind === "fin" || r.kind === "reset").toBe(true);
  expect(r.bytes.length).toBe(0);
  expect(sink.conns.length).toBe(2); // never routed
  const line = await waitUntil(() => logs.conns().find((l) => l.outcome === "blocked"), 5000, "blocked log");
  expect(line).toMatchObject({ outcome: "blocked", reason: "max_connections" });

  // The two held connections were not disturbed.
  expect(a.socket.destroyed || b.socket.destroyed).toBe(false);

  // Close one; once the proxy has released its slot, a new connection passes.
  a.socket.end();
  expect((await a.outcome()).kind).toBe("fin");
  await waitUntil(() => logs.conns().find((l) => l.client === `127.0.0.1:${a.localPort()}`), 5000, "close log of the first");
  const d = await held();
  d.socket.end();
  b.socket.end();
  expect((await d.outcome()).kind).toBe("fin");
  expect((await b.outcome()).kind).toBe("fin");
});
