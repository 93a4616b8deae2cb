/**
 * SPEC §6: with `proxy_protocol_trusted` non-empty, a TCP peer outside the
 * list is reset before anything is read — even when it sends a valid header —
 * and a peer inside it is served.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { encodeProxyV2 } from "../../src/wire/proxyproto.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureWithOpenssl } from "../wire/hello-fixtures.ts";
import { concat, openClient, rawBackend, rawClient, type RawBackend } from "./helpers.ts";

let proxy: TestProxy;
let backend: RawBackend;
let hello: Uint8Array;
const header = encodeProxyV2({ source: { address: "198.51.100.30", port: 1234 }, destination: { address: "192.0.2.1", port: 443 } });

beforeAll(async () => {
  hello = await captureWithOpenssl({ sni: "a.test" });
  backend = await rawBackend();
  proxy = await startTestProxy(`
[[listeners]]
addr = "127.0.0.1:0"
proxy_protocol = true
proxy_protocol_trusted = ["127.0.0.9/32"]
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:${backend.port}"
`);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  backend?.stop();
});

test("a peer from 127.0.0.1 (not trusted) is reset with zero bytes, even with a valid header; backend never reached", async () => {
  const o = await rawClient(proxy.port(), [concat(header, hello)], { localAddress: "127.0.0.1", holdMs: 8000 });
  await Bun.sleep(100);
  expect(o.stillOpen).toBe(false);
  expect(o.error).toBe("ECONNRESET");
  expect(o.received).toBe(0);
  expect(backend.conns.length).toBe(0);
});

test("an untrusted peer that sends nothing is reset too (the check happens at accept, before any read)", async () => {
  const o = await rawClient(proxy.port(), [], { localAddress: "127.0.0.1", holdMs: 8000 });
  expect(o.stillOpen).toBe(false);
  expect(o.error).toBe("ECONNRESET");
  expect(o.received).toBe(0);
  // The RST arrives right after the handshake: well before any hello_timeout.
  expect(o.elapsedMs).toBeLessThan(3000);
  expect(backend.conns.length).toBe(0);
});

test("a peer from 127.0.0.9 (trusted) with a valid header is routed; the backend gets exactly the hello", async () => {
  const c = openClient(proxy.port(), [concat(header, hello)], { localAddress: "127.0.0.9", holdMs: 15_000 });
  try {
    const conn = await backend.waitBytes(0, hello.length);
    await Bun.sleep(50);
    expect(Buffer.compare(conn.bytes, Buffer.from(hello))).toBe(0);
  } finally {
    c.close();
  }
});
