/**
 * The ClientHello reader accumulates across TCP segments and TLS records:
 * a >6 KB hello sent one byte per write, and a hello split across 3 TLS
 * records, are routed and delivered byte-exact, and real handshakes complete
 * through the proxy in both shapes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import tls from "node:tls";
import { cleanupCerts, makeCA, makeLeaf } from "../fixtures/certs.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { bigHelloArgs, captureWithOpenssl, reframeHello } from "../wire/hello-fixtures.ts";
import { bigHelloClient, opensslHandshake, startMangler } from "../wire/raw-tls-client.ts";
import { rawConnect, realHello, startSink, waitUntil, type TcpSink } from "../helpers/net.ts";

const ca = makeCA("l4-hello-ca");
const leaf = makeLeaf(ca, ["tls.test"]);
let proxy: TestProxy;
let sink: TcpSink;
let tlsBackend: tls.Server;
const closers: (() => void)[] = [];

beforeAll(async () => {
  sink = await startSink();
  tlsBackend = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, ALPNProtocols: ["http/1.1"] }, (s) => {
    s.on("error", () => {});
    s.end("hi\n");
  });
  await new Promise<void>((r) => tlsBackend.listen(0, "127.0.0.1", r));
  const tport = (tlsBackend.address() as net.AddressInfo).port;
  proxy = await startTestProxy(`
[proxy]
hello_timeout = "30s"
shutdown_timeout = "2s"

[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "raw.test"
  backend = "127.0.0.1:${sink.port}"
  [[listeners.routes]]
  hostname = "tls.test"
  backend = "127.0.0.1:${tport}"
`);
});
afterAll(async () => {
  for (const c of closers) c();
  sink?.close(); // closes the relayed raw.test connections, so the drain below is immediate
  await proxy?.stop();
  tlsBackend?.close();
  cleanupCerts();
});

/** Writes `data` one byte per write, waiting for each write to flush; a short pause every 64 bytes keeps segments separate. */
async function dribble(s: net.Socket, data: Uint8Array): Promise<void> {
  for (let i = 0; i < data.length; i++) {
    await new Promise<void>((res, rej) => s.write(data.subarray(i, i + 1), (e) => (e ? rej(e) : res())));
    if (i % 64 === 63) await Bun.sleep(1);
  }
}

/**
 * A relay on 127.0.0.1:0 that forwards the first `n` client bytes to
 * `targetPort` one byte per write, then relays everything unchanged.
 */
async function startDribbler(targetPort: number, n: number): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect({ port: targetPort, host: "127.0.0.1" });
    up.setNoDelay(true);
    sockets.add(client).add(up);
    let sent = 0;
    let chain = Promise.resolve();
    client.on("data", (d: Buffer) => {
      chain = chain.then(async () => {
        const slow = d.subarray(0, Math.max(0, n - sent));
        sent += slow.length;
        await dribble(up, slow);
        if (slow.length < d.length) up.write(d.subarray(slow.length));
      }).catch(() => kill());
    });
    up.on("data", (d: Buffer) => client.write(d));
    const kill = () => {
      client.destroy();
      up.destroy();
    };
    for (const s of [client, up]) {
      s.on("error", kill);
      s.on("close", kill);
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test("a ClientHello over 6 KB sent in 1-byte writes is routed and delivered byte-exact", async () => {
  const hello = await captureWithOpenssl({ sni: "raw.test", args: bigHelloArgs(7000) });
  expect(hello.length).toBeGreaterThan(6 * 1024);
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  await dribble(c.socket, hello);
  const b = await sink.conn(before, 20_000);
  await waitUntil(() => b.received().length >= hello.length, 20_000, "the whole hello at the backend");
  await Bun.sleep(50);
  expect(b.received().equals(Buffer.from(hello))).toBe(true);
  c.socket.destroy();
});

test("a real >6 KB ClientHello dribbled one byte per write completes its handshake through the proxy", async () => {
  // The hello is ~7.2 KB: its first 6.5 KB go one byte per write, the rest (and later flights) as they come.
  const d = await startDribbler(proxy.port(), 6500);
  closers.push(d.close);
  const r = await bigHelloClient("127.0.0.1", d.port, "tls.test", 7000);
  expect(r.ok, r.output).toBe(true);
  expect(r.output).toMatch(/subject=CN ?= ?tls\.test/);
  expect(r.alpn).toBe("http/1.1");
});

test("a ClientHello fragmented across 3 TLS records is routed and delivered byte-exact", async () => {
  const hello3 = reframeHello(await realHello("raw.test"), 3);
  // Three records: count the record headers.
  let records = 0;
  for (let p = 0; p < hello3.length; p += 5 + ((hello3[p + 3]! << 8) | hello3[p + 4]!)) records++;
  expect(records).toBe(3);
  const before = sink.conns.length;
  const c = rawConnect(proxy.port());
  await c.connected;
  c.socket.write(hello3);
  const b = await sink.conn(before);
  await waitUntil(() => b.received().length >= hello3.length, 10_000, "the whole hello at the backend");
  await Bun.sleep(50);
  expect(b.received().equals(Buffer.from(hello3))).toBe(true);
  c.socket.destroy();
});

test("a real handshake whose ClientHello is split into 3 TLS records completes through the proxy", async () => {
  const m = await startMangler(proxy.port(), (h) => reframeHello(h, 3));
  closers.push(m.close);
  const r = await opensslHandshake({ port: m.port, sni: "tls.test", args: ["-CAfile", ca.certPath] });
  expect(m.seen.length).toBe(1);
  expect(r.ok, r.output).toBe(true);
  expect(r.output).toMatch(/subject=CN ?= ?tls\.test/);
  expect(r.output).toContain("Verify return code: 0 (ok)");
});
