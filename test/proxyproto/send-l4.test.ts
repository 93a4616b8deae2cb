/**
 * SPEC §6 "Send" on an L4 route: `send_proxy_protocol = true` writes one v2
 * header before any other byte — source = the real client, destination = the
 * address the client connected to, AUTHORITY TLV = the SNI — followed by the
 * client's bytes exactly as sent.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { parseProxyHeader, PP2_TYPE_AUTHORITY } from "../../src/wire/proxyproto.ts";
import { startTestProxy, type TestProxy } from "../helpers/proxy.ts";
import { captureWithOpenssl } from "../wire/hello-fixtures.ts";
import { openClient, rawBackend, type RawBackend } from "./helpers.ts";

let proxy: TestProxy;
let backend: RawBackend;
let hello: Uint8Array;

beforeAll(async () => {
  hello = await captureWithOpenssl({ sni: "App.Test" }); // mixed case: the TLV carries the routed (lower-case) name
  backend = await rawBackend();
  proxy = await startTestProxy(`
[[listeners]]
addr = "127.0.0.1:0"
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${backend.port}"
  send_proxy_protocol = true

[[listeners]]
addr = "[::1]:0"
  [[listeners.routes]]
  hostname = "app.test"
  backend = "127.0.0.1:${backend.port}"
  send_proxy_protocol = true
`);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  backend?.stop();
});

/** Connects, sends the hello, returns the backend's bytes and the client's local port. */
async function through(listenerAddr: string, host: string, localAddress: string, extra = new Uint8Array(0)) {
  const index = backend.conns.length;
  const sent = Buffer.concat([hello, extra]);
  const c = openClient(proxy.port(listenerAddr), [sent], { host, localAddress, holdMs: 15_000 });
  try {
    const conn = await backend.waitBytes(index, sent.length + 16);
    await Bun.sleep(50);
    return { bytes: conn.bytes, clientPort: c.localPort(), sent };
  } finally {
    c.close();
  }
}

test("the backend receives a v2 header (client 127.0.0.5 and its port, listener address, AUTHORITY = SNI), then the exact ClientHello", async () => {
  const { bytes, clientPort, sent } = await through("127.0.0.1:0", "127.0.0.1", "127.0.0.5");
  const r = parseProxyHeader(bytes);
  if (r.status !== "ok") throw new Error(`no valid PROXY header: ${JSON.stringify(r)}`);
  expect(r.header.version).toBe(2);
  expect(r.header.command).toBe("proxy");
  expect(r.header.family).toBe("tcp4");
  expect(r.header.source).toEqual({ address: "127.0.0.5", port: clientPort });
  expect(r.header.destination).toEqual({ address: "127.0.0.1", port: proxy.port("127.0.0.1:0") });
  expect(r.header.authority).toBe("app.test");
  expect(r.header.tlvs.filter((t) => t.type === PP2_TYPE_AUTHORITY)).toHaveLength(1);
  expect(Buffer.compare(bytes.subarray(r.length), sent)).toBe(0);
});

test("bytes the client sends after the hello follow it unchanged, and the header is sent once", async () => {
  const extra = new TextEncoder().encode("after-the-hello");
  const { bytes, sent } = await through("127.0.0.1:0", "127.0.0.1", "127.0.0.5", extra);
  const r = parseProxyHeader(bytes);
  if (r.status !== "ok") throw new Error("no header");
  expect(Buffer.compare(bytes.subarray(r.length), sent)).toBe(0);
});

test("an IPv6 client on an IPv6 listener is sent as TCP6 (source ::1, destination the [::1] listener)", async () => {
  const { bytes, clientPort, sent } = await through("[::1]:0", "::1", "::1");
  const r = parseProxyHeader(bytes);
  if (r.status !== "ok") throw new Error(`no valid PROXY header: ${JSON.stringify(r)}`);
  expect(r.header.family).toBe("tcp6");
  expect(r.header.source).toEqual({ address: "::1", port: clientPort });
  expect(r.header.destination).toEqual({ address: "::1", port: proxy.port("[::1]:0") });
  expect(r.header.authority).toBe("app.test");
  expect(Buffer.compare(bytes.subarray(r.length), sent)).toBe(0);
});
