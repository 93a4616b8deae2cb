/**
 * Backpressure at the hand-off into the relay: the bytes peeked before the
 * backend was connected are its first write, and when that write is only
 * partly accepted the client must stay paused until the backend drains.
 * (Round 1 resumed the client unconditionally after the first write; the
 * relay then queued everything the client sent — 62 MiB in a probe.)
 *
 * On loopback the kernel takes a first write of a few hundred KiB whole, so
 * the test runs itself again inside a network namespace of its own
 * (`unshare -n`) whose TCP send buffers are 4 KiB (`net.ipv4.tcp_wmem`):
 * there the first write is partial (measured: 80 KiB written, 76 KiB queued;
 * with the round-1 hand-off 4.3 MiB queued).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { L4Stage } from "../../src/server/l4.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawConnect, realHello, waitUntil } from "../helpers/net.ts";

/** What the relay may hold client→backend: the peeked bytes (hello + at most a read or two while dialing). */
const QUEUE_BOUND = 256 * 1024;

// A backend whose receive buffer is tiny (SO_RCVBUF 4 KiB, set before listen so
// accepted sockets inherit it) and that accepts but never reads.
const BACKEND = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
held = []
s.settimeout(30)
try:
    while True:
        c, _ = s.accept(); held.append(c)
except Exception:
    pass
`;

const INNER = process.env.MCP_BACKPRESSURE_NETNS === "1";

test("the hand-off test runs in its own network namespace with 4 KiB send buffers", async () => {
  if (INNER) return;
  const script = 'ip link set lo up && sysctl -qw net.ipv4.tcp_wmem="4096 4096 4096" && exec "$0" test --timeout 60000 "$1"';
  const p = Bun.spawn(["unshare", "-n", "sh", "-c", script, process.execPath, import.meta.path], {
    env: { ...process.env, MCP_BACKPRESSURE_NETNS: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  if (code !== 0) console.error(out + err);
  expect(code).toBe(0);
  expect(err + out).toMatch(/\b2 pass\b/);
});

describe.if(INNER)("inside the namespace", () => {
  let proxy: TestProxy;
  let backend: ReturnType<typeof Bun.spawn>;

  beforeAll(async () => {
    backend = Bun.spawn(["python3", "-c", BACKEND], { stdout: "pipe", stderr: "inherit" });
    const reader = (backend.stdout as ReadableStream<Uint8Array>).getReader();
    const { value } = await reader.read();
    const port = Number(new TextDecoder().decode(value).trim());
    proxy = await startTestProxy(`
  [proxy]
  shutdown_timeout = "1s"
  idle_timeout = "30s"

  [[listeners]]
  addr = "127.0.0.1:0"
    [[listeners.routes]]
    hostname = "slow.test"
    backend = "127.0.0.1:${port}"
  `);
  });
  afterAll(async () => {
    await proxy?.stop();
    backend?.kill();
  });

  test("a partial first write to the backend keeps the client paused: the relay holds a bounded amount", async () => {
    const hello = await realHello("slow.test");
    const c = rawConnect(proxy.port());
    await c.connected;
    // hello + 8 MiB in one go: most of it arrives while the backend is dialed
    // or right after, so the first backend write is far larger than the
    // backend's window.
    c.socket.write(Buffer.concat([hello, Buffer.alloc(8 << 20, 0x61)]));

    const stage = await waitUntil(() => {
      for (const conn of proxy.srv.proxy.conns) if (conn.stage instanceof L4Stage) return conn.stage;
      return undefined;
    }, 10_000, "the relay stage");
    // Give an unpaused client every chance to push its megabyte into the relay.
    let peak = 0;
    for (let i = 0; i < 20; i++) {
      await Bun.sleep(100);
      peak = Math.max(peak, stage.queuedUp);
    }
    expect(peak).toBeGreaterThan(0); // the first write really was partial
    expect(peak).toBeLessThan(QUEUE_BOUND);
    c.socket.destroy();
  });
});
