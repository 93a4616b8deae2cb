/**
 * Graceful shutdown of the real server process (SPEC §4, §10): on SIGTERM the
 * listening socket closes first (new connections are refused by the kernel),
 * in-flight connections keep flowing until they end — or are cut at
 * `shutdown_timeout` — and the process exits 0, logging how many were cut.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { rawConnect, realHello, startSink, waitUntil, writeAll, type TcpSink } from "../helpers/net.ts";
import { startProxyProc, type ServerProc } from "../helpers/subprocess.ts";

let sink: TcpSink;
let server: ServerProc | null = null;
const ADDR = "127.0.0.1:0";

beforeAll(async () => {
  sink = await startSink((c) => {
    c.socket.write("hello;");
    c.ended.then(() => c.socket.end());
  });
});
afterEach(() => {
  server?.cleanup();
  server = null;
});
afterAll(() => sink?.close());

function config(shutdownTimeout: string): string {
  return `
[proxy]
shutdown_timeout = "${shutdownTimeout}"

[[listeners]]
addr = "${ADDR}"
  [[listeners.routes]]
  hostname = "long.test"
  backend = "127.0.0.1:${sink.port}"
`;
}

/** Opens a relayed connection and waits for the backend's greeting. */
async function openLongLived(port: number) {
  const before = sink.conns.length;
  const c = rawConnect(port);
  await c.connected;
  await writeAll(c.socket, await realHello("long.test"));
  await waitUntil(() => c.received().length >= 6, 10_000, "backend greeting");
  const b = await sink.conn(before);
  return { c, b };
}

test("SIGTERM refuses new connections while an open one keeps flowing to its end, then exits 0", async () => {
  server = await startProxyProc(config("30s"));
  const port = server.port(ADDR);
  const { c, b } = await openLongLived(port);

  server.proc.kill("SIGTERM");
  await server.waitLog((r) => r.event === "server.draining", 10_000, "server.draining");
  // The listening socket is closed: the kernel refuses.
  const refused = rawConnect(port);
  expect((await refused.outcome(5000)).kind).toBe("refused");

  // The open connection still carries bytes both ways during the drain.
  await writeAll(c.socket, Buffer.from("during-drain"));
  await waitUntil(() => b.received().toString().endsWith("during-drain"), 5000, "client bytes at backend");
  await writeAll(b.socket, Buffer.from("reply"));
  await waitUntil(() => c.received().toString().endsWith("reply"), 5000, "backend bytes at client");
  expect(await server.exited(300)).toBeNull(); // still draining

  // It ends normally; then the process exits 0 with nothing cut.
  c.socket.end();
  expect((await c.outcome(5000)).kind).toBe("fin");
  expect(await server.exited(15_000)).toBe(0);
  const stopped = await server.waitLog((r) => r.event === "server.stopped", 2000, "server.stopped");
  expect(stopped).toMatchObject({ drained: 1, cut: 0 });
  expect(server.logs.find((r) => r.event === "conn")?.outcome).toBe("ok");
});

test("with shutdown_timeout = 1s a connection still open at the deadline is cut, exit code 0, the log says 1 cut", async () => {
  server = await startProxyProc(config("1s"));
  const port = server.port(ADDR);
  const { c } = await openLongLived(port);

  const t0 = Date.now();
  server.proc.kill("SIGTERM");
  const r = await c.outcome(10_000);
  const cutAfter = Date.now() - t0;
  expect(r.kind === "fin" || r.kind === "reset").toBe(true);
  expect(cutAfter).toBeGreaterThanOrEqual(800);
  expect(cutAfter).toBeLessThan(6000);
  expect(await server.exited(15_000)).toBe(0);
  const stopped = await server.waitLog((x) => x.event === "server.stopped", 2000, "server.stopped");
  expect(stopped).toMatchObject({ drained: 0, cut: 1 });
  expect(await server.waitLog((x) => x.event === "shutdown.cut", 2000, "shutdown.cut")).toMatchObject({ connections: 1 });
  expect(server.logs.find((x) => x.event === "conn")?.outcome).toBe("shutdown");
});
