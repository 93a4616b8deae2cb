/**
 * The hello fixtures other suites rely on, checked against a real TLS server:
 * a re-framed hello and a genuinely big hello still complete a handshake,
 * and the parser reads what the real server negotiated.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { parseClientHello } from "../../src/wire/clienthello.ts";
import { makeSelfSignedCert, reframeHello } from "./hello-fixtures.ts";
import { bigHelloClient, opensslHandshake, startMangler } from "./raw-tls-client.ts";

let server: tls.Server;
let port = 0;
let certDir = "";
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  const c = makeSelfSignedCert(["a.test"]);
  certDir = c.dir;
  server = tls.createServer({ key: fs.readFileSync(c.key), cert: fs.readFileSync(c.cert), ALPNProtocols: ["h2", "http/1.1"] }, (s) => {
    s.on("error", () => {});
    s.end("hello-from-server\n");
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(() => {
  for (const c of cleanups) c();
  server?.close();
  if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
});

test("baseline: s_client completes a handshake with the test server", async () => {
  const r = await opensslHandshake({ port, sni: "a.test", args: ["-alpn", "h2,http/1.1"] });
  expect(r.ok).toBe(true);
  expect(r.alpn).toBe("h2");
});

test("a ClientHello re-framed into 3 TLS records still completes the handshake", async () => {
  const m = await startMangler(port, (hello) => reframeHello(hello, 3));
  cleanups.push(m.close);
  const r = await opensslHandshake({ port: m.port, sni: "a.test", args: ["-alpn", "h2,http/1.1"] });
  expect(r.ok).toBe(true);
  expect(r.alpn).toBe("h2");
  expect(m.seen.length).toBe(1);
  const parsed = parseClientHello(reframeHello(m.seen[0], 3), 64 * 1024);
  expect(parsed.status === "ok" && parsed.sni).toBe("a.test");
});

test("a ClientHello in one-byte-per-handshake-chunk records (hundreds of records) completes the handshake", async () => {
  const m = await startMangler(port, (hello) => reframeHello(hello, 200));
  cleanups.push(m.close);
  const r = await opensslHandshake({ port: m.port, sni: "a.test" });
  expect(r.ok).toBe(true);
});

test("a real 12 KB ClientHello (long ALPN list) completes the handshake and parses", async () => {
  const m = await startMangler(port, (hello) => hello);
  cleanups.push(m.close);
  const r = await bigHelloClient("127.0.0.1", m.port, "a.test", 12 * 1024);
  expect(r.ok).toBe(true);
  expect(r.alpn).toBe("http/1.1");
  const hello = m.seen[0];
  expect(hello.length).toBeGreaterThan(12 * 1024 - 512);
  const parsed = parseClientHello(hello, 64 * 1024);
  expect(parsed.status === "ok" && parsed.sni).toBe("a.test");
  expect(parsed.status === "ok" && parsed.alpn.at(-1)).toBe("http/1.1");
});

test("changing the hello's content (padHello) breaks the handshake: padded hellos are for routing-only tests", async () => {
  const { padHello } = await import("./hello-fixtures.ts");
  const m = await startMangler(port, (hello) => padHello(hello, 4096));
  cleanups.push(m.close);
  const r = await opensslHandshake({ port: m.port, sni: "a.test", timeoutMs: 8000 });
  expect(r.ok).toBe(false);
});
