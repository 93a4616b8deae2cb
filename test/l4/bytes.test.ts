/**
 * Byte exactness of the L4 relay: 5 MB of random data each way, at the same
 * time, arrive unchanged (sha256 at both ends), and the connection's log line
 * reports listener, client, sni, route, mode, backend, bytes each way,
 * duration and outcome.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureLogs, rawConnect, realHello, sha256, startSink, waitUntil, type TcpSink } from "../helpers/net.ts";

const SIZE = 5 * 1024 * 1024;
let proxy: TestProxy;
let sink: TcpSink;
let logs: ReturnType<typeof captureLogs>;
function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 64 KiB per call.
  for (let p = 0; p < n; p += 65536) crypto.getRandomValues(out.subarray(p, Math.min(n, p + 65536)));
  return out;
}
const up = randomBytes(SIZE);
const downData = randomBytes(SIZE);

beforeAll(async () => {
  logs = captureLogs();
  // The backend starts streaming its 5 MB as soon as the relay connects, so
  // both directions are in flight together; it closes its side after the client's FIN.
  sink = await startSink((c) => {
    c.socket.write(downData);
    c.ended.then(() => c.socket.end());
  });
  proxy = await startTestProxy(`
[proxy]
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "bulk.test"
  backend = "127.0.0.1:${sink.port}"
`);
});
afterAll(async () => {
  sink?.close();
  await proxy?.stop();
  logs?.stop();
});

test("5 MB each way, concurrently, arrive byte-exact at both ends", async () => {
  const hello = await realHello("bulk.test");
  const c = rawConnect(proxy.port());
  await c.connected;
  c.socket.write(hello);
  c.socket.write(up);
  c.socket.end(); // FIN after the upload; the download keeps flowing
  const backend = await sink.conn(0);
  await Promise.race([backend.ended, Bun.sleep(30_000)]);
  const r = await c.outcome(30_000);
  expect(r.kind).toBe("fin");

  const got = backend.received();
  expect(got.length).toBe(hello.length + SIZE);
  expect(sha256(got)).toBe(sha256(Buffer.concat([hello, up])));
  expect(r.bytes.length).toBe(SIZE);
  expect(sha256(r.bytes)).toBe(sha256(downData));

  // The per-connection log line, written at close.
  const line = await waitUntil(() => logs.conns().find((l) => l.sni === "bulk.test"), 10_000, "conn log line");
  expect(line).toMatchObject({
    level: "info",
    listener: "127.0.0.1:0",
    sni: "bulk.test",
    route: "bulk.test",
    mode: "l4",
    backend: `127.0.0.1:${sink.port}`,
    bytes_in: hello.length + SIZE,
    bytes_out: SIZE,
    outcome: "ok",
  });
  expect(line.client).toBe(`127.0.0.1:${c.localPort()}`);
  expect(typeof line.duration_ms).toBe("number");
});

test("a client that stops reading for a while still gets every byte (backpressure, not loss)", async () => {
  const hello = await realHello("bulk.test");
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  c.socket.pause(); // read nothing while the backend pushes 5 MB
  c.socket.write(hello);
  const b = await sink.conn(before);
  await Bun.sleep(1000);
  c.socket.resume();
  c.socket.end();
  await Promise.race([b.ended, Bun.sleep(30_000)]);
  const r = await c.outcome(30_000);
  expect(r.kind).toBe("fin");
  expect(r.bytes.length).toBe(SIZE);
  expect(sha256(r.bytes)).toBe(sha256(downData));
});
