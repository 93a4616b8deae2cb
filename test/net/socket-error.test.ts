/**
 * Socket `error` events (src/net/socket-error.ts): Bun hands an exception
 * thrown by one of our socket handlers to the socket's `error` handler and
 * leaves the socket open. Ours log it (server.handler_exception, with the
 * stack, rate-limited) and reset the socket; system errors (they carry a
 * `code`) pass through unchanged. Real sockets and real TLS on loopback.
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { resolve } from "node:path";
import type { Socket } from "bun";
import { startTls, type TlsPeer } from "../../src/l7/tls.ts";
import { isHandlerException } from "../../src/net/socket-error.ts";
import { cleanupCerts, makeSelfSigned } from "../fixtures/certs.ts";
import { captureLogs } from "../helpers/net.ts";

afterAll(cleanupCerts);

test("what Bun reports for real I/O failures carries a code; a thrown exception does not", async () => {
  // A peer that resets the connection, and a TLS peer that sends a corrupt record after the handshake.
  const self = makeSelfSigned(["b.test"]);
  const cert = readFileSync(self.fullchainPath);
  const key = readFileSync(self.keyPath);
  const resetter = net.createServer((c) => c.on("data", () => c.resetAndDestroy())).listen(0, "127.0.0.1");
  const corrupter = net
    .createServer((c) => {
      const t = new tls.TLSSocket(c, { isServer: true, cert, key });
      t.on("error", () => {});
      t.on("secure", () => setTimeout(() => c.write(Buffer.from("\x17\x03\x03\x00\x10garbagegarbage!!", "latin1")), 20));
    })
    .listen(0, "127.0.0.1");
  await Promise.all([resetter, corrupter].map((s) => new Promise((r) => s.once("listening", r))));
  const errors: Error[] = [];
  const collect = { data() {}, error: (_s: unknown, e: Error) => void errors.push(e), close: (_s: unknown, e?: Error) => void (e && errors.push(e)) };
  const a = await Bun.connect({ hostname: "127.0.0.1", port: (resetter.address() as net.AddressInfo).port, socket: collect });
  a.write("x");
  await Bun.connect({ hostname: "127.0.0.1", port: (corrupter.address() as net.AddressInfo).port, tls: { rejectUnauthorized: false, serverName: "b.test" }, socket: collect });
  const until = Date.now() + 3000;
  while (errors.length < 2 && Date.now() < until) await Bun.sleep(10);
  resetter.close();
  corrupter.close();
  expect(errors.map((e) => (e as { code?: string }).code).sort()).toEqual(["ECONNRESET", "EPROTO"]);
  for (const e of errors) expect(isHandlerException(e)).toBe(false);
  expect(isHandlerException(new TypeError("undefined is not an object"))).toBe(true);
  expect(isHandlerException("thrown string")).toBe(true);
});

test("an L7 client connection whose handler throws is logged with its stack and reset, not left open", async () => {
  const self = makeSelfSigned(["a.test"]);
  const ctx = tls.createSecureContext({ cert: readFileSync(self.fullchainPath), key: readFileSync(self.keyPath) });
  const closes: (Error | undefined)[] = [];
  const peer: TlsPeer = {
    onHandshake() {},
    onData() {
      throw new TypeError("bug in a data handler");
    },
    onEnd() {},
    onDrain() {},
    onClose: (err) => void closes.push(err),
  };
  const srv = Bun.listen<{ started: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { started: false };
      },
      data(s, chunk) {
        if (s.data.started) return;
        s.data.started = true;
        startTls(s as unknown as Socket<unknown>, chunk, ctx, peer);
      },
    },
  });
  const logs = captureLogs();
  try {
    const client = tls.connect({ host: "127.0.0.1", port: srv.port, servername: "a.test", rejectUnauthorized: false });
    client.on("error", () => {});
    await new Promise<void>((r) => client.once("secureConnect", () => r()));
    const closed = new Promise<number>((r) => client.once("close", () => r(Date.now())));
    const sentAt = Date.now();
    client.write("GET / HTTP/1.1\r\n\r\n");
    // Before: the TLS socket stayed open until the client gave up.
    const closedAt = await Promise.race([closed, Bun.sleep(3000).then(() => -1)]);
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt - sentAt).toBeLessThan(2000);
    expect(closes.length).toBeGreaterThanOrEqual(1);
    expect(closes[0]).toBeInstanceOf(TypeError);
    const line = logs.records.find((r) => r.event === "server.handler_exception");
    expect(line?.level).toBe("error");
    expect(line?.role).toBe("l7.client");
    expect(line?.error).toBe("TypeError: bug in a data handler");
    expect(String(line?.stack)).toContain("socket-error.test.ts");
  } finally {
    logs.stop();
    srv.stop(true);
  }
});

test("handler exceptions are logged at most HANDLER_EXCEPTION_LOG_BURST at once; the next line counts the rest", async () => {
  // A fresh process: the budget is per process.
  const mod = resolve(import.meta.dir, "../../src/net/socket-error.ts");
  const script = `
    import { reportHandlerException } from ${JSON.stringify(mod)};
    import { HANDLER_EXCEPTION_LOG_BURST } from ${JSON.stringify(resolve(import.meta.dir, "../../src/limits.ts"))};
    for (let i = 0; i < HANDLER_EXCEPTION_LOG_BURST + 5; i++) reportHandlerException("test", new Error("e" + i));
    const realNow = Date.now;
    Date.now = () => realNow() + 60_000; // a minute later the budget has refilled
    reportHandlerException("test", new Error("later"));
  `;
  const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  expect(await p.exited, err).toBe(0);
  const lines = (out + err).split("\n").filter((l) => l.includes("server.handler_exception")).map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(lines.length).toBe(11);
  expect(lines.slice(0, 10).map((l) => l.error)).toEqual(Array.from({ length: 10 }, (_, i) => `Error: e${i}`));
  expect(lines[10]?.error).toBe("Error: later");
  expect(lines[10]?.suppressed).toBe(5);
});
