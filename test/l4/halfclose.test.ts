/**
 * Half-close through the L4 relay (SPEC §10): a FIN from one side reaches the
 * other as a FIN while the opposite direction keeps flowing, and the
 * connection closes when both are done. Both ends are node:net with
 * allowHalfOpen.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureLogs, rawConnect, realHello, startSink, waitUntil, writeAll, type SinkConn, type TcpSink } from "../helpers/net.ts";

let proxy: TestProxy;
let sink: TcpSink;
let logs: ReturnType<typeof captureLogs>;
/** What the backend does with each connection; set per test. */
let behaviour: (c: SinkConn) => void = () => {};

beforeAll(async () => {
  logs = captureLogs();
  sink = await startSink((c) => behaviour(c));
  proxy = await startTestProxy(`
[proxy]
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "half.test"
  backend = "127.0.0.1:${sink.port}"
`);
});
afterAll(async () => {
  sink?.close();
  await proxy?.stop();
  logs?.stop();
});

test("client FIN reaches backend while backend keeps sending", async () => {
  const hello = await realHello("half.test");
  behaviour = (b) => {
    // After the client's FIN: keep talking, in two pieces, then finish.
    b.ended.then(async () => {
      await writeAll(b.socket, Buffer.from("after-fin-1;"));
      await Bun.sleep(100);
      await writeAll(b.socket, Buffer.from("after-fin-2"));
      b.socket.end();
    });
  };
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, hello);
  await writeAll(c.socket, Buffer.from("request"));
  c.socket.end(); // FIN, but keep reading
  const b = await sink.conn(before);
  await Promise.race([b.ended, Bun.sleep(10_000)]);
  expect(b.received().equals(Buffer.concat([hello, Buffer.from("request")]))).toBe(true);

  const r = await c.outcome(10_000);
  expect(r.kind).toBe("fin");
  expect(r.bytes.toString()).toBe("after-fin-1;after-fin-2");
  const line = await waitUntil(() => logs.conns().find((l) => l.client === `127.0.0.1:${c.localPort()}`), 5000, "conn log");
  expect(line.outcome).toBe("ok");
  expect(line.bytes_out).toBe("after-fin-1;after-fin-2".length);
});

test("backend FIN reaches client while client keeps sending", async () => {
  const hello = await realHello("half.test");
  behaviour = (b) => {
    b.socket.write("bye");
    b.socket.end(); // FIN at once; keep reading what the client still sends
    b.ended.then(() => b.socket.destroy());
  };
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, hello);
  const clientGotFin = new Promise<void>((r) => c.socket.once("end", () => r()));
  await Promise.race([clientGotFin, Bun.sleep(10_000)]);
  expect(c.received().toString()).toBe("bye");
  expect(c.socket.writable).toBe(true);

  // The client keeps sending after the backend's FIN.
  await writeAll(c.socket, Buffer.from("late-1;"));
  await Bun.sleep(100);
  await writeAll(c.socket, Buffer.from("late-2"));
  c.socket.end();
  const b = await sink.conn(before);
  await Promise.race([b.ended, Bun.sleep(10_000)]);
  expect(b.received().equals(Buffer.concat([hello, Buffer.from("late-1;late-2")]))).toBe(true);
  const r = await c.outcome(10_000);
  expect(r.kind).toBe("fin");
});

test("a client FIN sent together with its ClientHello (before the backend is connected) still reaches the backend", async () => {
  const hello = await realHello("half.test");
  behaviour = (b) => {
    b.ended.then(async () => {
      await writeAll(b.socket, Buffer.from("answer"));
      b.socket.end();
    });
  };
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  c.socket.end(Buffer.concat([hello, Buffer.from("one-shot")])); // data + FIN in one go
  const b = await sink.conn(before);
  await Promise.race([b.ended, Bun.sleep(10_000)]);
  expect(b.received().equals(Buffer.concat([hello, Buffer.from("one-shot")]))).toBe(true);
  const r = await c.outcome(10_000);
  expect(r.kind).toBe("fin");
  expect(r.bytes.toString()).toBe("answer");
});

test("a client reset cuts the backend connection", async () => {
  const hello = await realHello("half.test");
  behaviour = () => {};
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, hello);
  const b = await sink.conn(before);
  await waitUntil(() => b.received().length >= hello.length, 5000, "hello at backend");
  c.socket.resetAndDestroy();
  await Promise.race([b.closed, Bun.sleep(10_000)]);
  expect(b.socket.destroyed).toBe(true);
  const line = await waitUntil(() => logs.conns().find((l) => l.client === `127.0.0.1:${c.localPort()}`), 5000, "conn log");
  expect(line.outcome).toBe("error");
  expect(line.reason).toBe("client ECONNRESET");
});

test("a backend reset cuts the client connection", async () => {
  const hello = await realHello("half.test");
  behaviour = (b) => {
    b.socket.once("data", () => setTimeout(() => b.socket.resetAndDestroy(), 50));
  };
  const c = rawConnect(proxy.port());
  await c.connected;
  await writeAll(c.socket, hello);
  const r = await c.outcome(10_000);
  expect(r.kind === "reset" || r.kind === "fin").toBe(true);
  expect(r.bytes.length).toBe(0);
});
