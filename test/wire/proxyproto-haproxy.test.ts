/**
 * PROXY protocol against a real peer: HAProxy (apt-get install -y haproxy).
 *
 * - HAProxy RECEIVES our encoder's headers (`bind … accept-proxy`) and, in
 *   http mode with `option forwardfor`, tells a Bun backend the source
 *   address it understood (X-Forwarded-For).
 * - HAProxy SENDS headers (`server … send-proxy-v2` / `send-proxy`, with
 *   `proxy-v2-options crc32c,unique-id`) to a raw socket that our parser reads.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { encodeProxyV1, encodeProxyV2, parseProxyHeader, PP2_TYPE_CRC32C, type ProxyHeader } from "../../src/wire/proxyproto.ts";

const haveHaproxy = Bun.spawnSync(["sh", "-c", "command -v haproxy"]).exitCode === 0;

let haproxy: ReturnType<typeof Bun.spawn> | undefined;
let tmp = "";
let backend: ReturnType<typeof Bun.serve> | undefined;
type Captured = { header?: ProxyHeader; rest: string; error?: string };
let capture: Bun.TCPSocketListener<{ buf: Buffer; done: boolean }> | undefined;
let httpPort = 0; // accept-proxy, http mode, forwardfor → backend
let v2Port = 0; // accept-proxy, tcp mode → capture with send-proxy-v2
let v1Port = 0; // accept-proxy, tcp mode → capture with send-proxy
let haproxyLog = "";

/** What the capture server saw on each connection, resolved once a header parsed (or failed). */
const captured: Array<(r: Captured) => void> = [];

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((res) => s.listen(0, "127.0.0.1", res));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

function config(): string {
  // noreuseport: otherwise HAProxy binds with SO_REUSEPORT and a concurrent
  // test run that picked the same port would silently share it.
  return `global
  maxconn 200
  noreuseport
defaults
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend fe_http
  mode http
  bind 127.0.0.1:${httpPort} accept-proxy
  option forwardfor
  default_backend be_http
backend be_http
  mode http
  server s1 127.0.0.1:${backend!.port}
frontend fe_v2
  mode tcp
  bind 127.0.0.1:${v2Port} accept-proxy
  unique-id-format mcproxy-%ci
  default_backend be_v2
backend be_v2
  mode tcp
  server s2 127.0.0.1:${capture!.port} send-proxy-v2 proxy-v2-options crc32c,unique-id
frontend fe_v1
  mode tcp
  bind 127.0.0.1:${v1Port} accept-proxy
  default_backend be_v1
backend be_v1
  mode tcp
  server s3 127.0.0.1:${capture!.port} send-proxy
`;
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      res(true);
    });
    s.once("error", () => res(false));
  });
}

async function startHaproxy(): Promise<void> {
  // Ports chosen by binding :0 and closing can be taken by a concurrent test: retry.
  for (let attempt = 0; attempt < 5; attempt++) {
    [httpPort, v2Port, v1Port] = [await freePort(), await freePort(), await freePort()];
    const cfg = path.join(tmp, "haproxy.cfg");
    fs.writeFileSync(cfg, config());
    haproxyLog = "";
    const p = Bun.spawn(["haproxy", "-db", "-f", cfg], { stdout: "pipe", stderr: "pipe" });
    haproxy = p;
    (async () => {
      for await (const c of p.stderr as ReadableStream<Uint8Array>) haproxyLog += new TextDecoder().decode(c);
    })();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && p.exitCode === null) {
      if ((await canConnect(httpPort)) && (await canConnect(v2Port)) && (await canConnect(v1Port))) {
        // Someone else's listener may have answered: HAProxy exits at once when a bind fails.
        await Bun.sleep(200);
        if (p.exitCode === null) return;
        break;
      }
      await Bun.sleep(50);
    }
    p.kill();
    await p.exited;
  }
  throw new Error(`haproxy did not start: ${haproxyLog}`);
}

beforeAll(async () => {
  if (!haveHaproxy) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mcp-haproxy-"));
  backend = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => new Response(req.headers.get("x-forwarded-for") ?? "none"),
  });
  capture = Bun.listen<{ buf: Buffer; done: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: Buffer.alloc(0), done: false };
      },
      data(s, d) {
        s.data.buf = Buffer.concat([s.data.buf, d]);
        const r = parseProxyHeader(s.data.buf);
        if (r.status === "need_more" || s.data.done) return;
        if (r.status === "ok" && s.data.buf.length === r.length) return; // wait for the payload too
        s.data.done = true;
        const deliver = captured.shift();
        if (r.status === "error") deliver?.({ rest: "", error: r.reason });
        else deliver?.({ header: r.header, rest: s.data.buf.subarray(r.length).toString("latin1") });
        s.end();
      },
      error() {},
    },
  });
  await startHaproxy();
}, 60_000);

afterAll(async () => {
  if (haproxy) {
    haproxy.kill();
    await Promise.race([haproxy.exited, Bun.sleep(3000)]);
  }
  backend?.stop(true);
  capture?.stop(true);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Sends `bytes` to 127.0.0.1:port and returns everything received until close (bounded by a timeout). */
function exchange(port: number, bytes: Uint8Array, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(bytes));
    let out = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(out)}; haproxy: ${haproxyLog}`));
    }, timeoutMs);
    s.on("data", (d) => (out += d.toString("latin1")));
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on("error", () => {});
  });
}

const request = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
const body = (resp: string) => resp.slice(resp.indexOf("\r\n\r\n") + 4);
const withRequest = (h: Uint8Array) => Buffer.concat([h, request]);

/** Sends header+payload through a tcp frontend and returns what the capture server parsed. */
async function throughHaproxy(port: number, header: Uint8Array, payload = "ping"): Promise<Captured> {
  const got = new Promise<Captured>((res) => captured.push(res));
  const conn = exchange(port, Buffer.concat([header, Buffer.from(payload)])).catch(() => "");
  const r = await Promise.race([got, Bun.sleep(10_000).then(() => ({ rest: "", error: "timeout" }))]);
  await conn;
  return r;
}

describe.skipIf(!haveHaproxy)("HAProxy reads our PROXY headers", () => {
  test("v2 TCP4 header: the backend sees X-Forwarded-For 203.0.113.7", async () => {
    const h = encodeProxyV2({ source: { address: "203.0.113.7", port: 5555 }, destination: { address: "192.0.2.1", port: 443 }, authority: "a.test" });
    const resp = await exchange(httpPort, withRequest(h));
    expect(resp).toStartWith("HTTP/1.1 200");
    expect(body(resp)).toBe("203.0.113.7");
  });

  test("v2 TCP6 header: the backend sees X-Forwarded-For 2001:db8::7", async () => {
    const h = encodeProxyV2({ source: { address: "2001:db8::7", port: 5555 }, destination: { address: "2001:db8::1", port: 443 } });
    expect(body(await exchange(httpPort, withRequest(h)))).toBe("2001:db8::7");
  });

  test("v2 header from an IPv4-mapped source is sent as TCP4", async () => {
    const h = encodeProxyV2({ source: { address: "::ffff:198.51.100.9", port: 1 }, destination: { address: "::ffff:192.0.2.1", port: 443 } });
    expect(body(await exchange(httpPort, withRequest(h)))).toBe("198.51.100.9");
  });

  test("v1 header: the backend sees the v1 source", async () => {
    const h = encodeProxyV1({ source: { address: "198.51.100.20", port: 40000 }, destination: { address: "192.0.2.1", port: 443 } });
    expect(body(await exchange(httpPort, withRequest(h)))).toBe("198.51.100.20");
  });

  test("v2 LOCAL: HAProxy uses the real peer, 127.0.0.1", async () => {
    const h = encodeProxyV2({ source: { address: "203.0.113.7", port: 1 }, destination: { address: "192.0.2.1", port: 2 }, command: "local" });
    expect(body(await exchange(httpPort, withRequest(h)))).toBe("127.0.0.1");
  });

  test("a header our parser rejects is rejected by HAProxy too (connection closed, nothing forwarded)", async () => {
    const bad = encodeProxyV2({ source: { address: "203.0.113.7", port: 1 }, destination: { address: "192.0.2.1", port: 2 } });
    bad[12] = 0x31; // version 3
    expect(parseProxyHeader(bad)).toEqual({ status: "error", reason: "v2_bad_version" });
    expect(await exchange(httpPort, withRequest(bad))).not.toContain("200");
  });
});

describe.skipIf(!haveHaproxy)("we read HAProxy's PROXY headers", () => {
  test("send-proxy-v2 with crc32c and unique-id TLVs: source/destination carried through, CRC verified", async () => {
    const h = encodeProxyV2({ source: { address: "198.51.100.5", port: 4321 }, destination: { address: "192.0.2.10", port: 8443 } });
    const r = await throughHaproxy(v2Port, h);
    expect(r.error).toBeUndefined();
    expect(r.header?.version).toBe(2);
    expect(r.header?.family).toBe("tcp4");
    expect(r.header?.source).toEqual({ address: "198.51.100.5", port: 4321 });
    expect(r.header?.destination).toEqual({ address: "192.0.2.10", port: 8443 });
    expect(r.header?.tlvs.some((t) => t.type === PP2_TYPE_CRC32C)).toBe(true);
    const uid = r.header?.tlvs.find((t) => t.type === 0x05);
    expect(uid && new TextDecoder().decode(uid.value)).toBe("mcproxy-198.51.100.5");
    expect(r.rest).toBe("ping");
  });

  test("send-proxy-v2 with an IPv6 client", async () => {
    const h = encodeProxyV2({ source: { address: "2001:db8::42", port: 1234 }, destination: { address: "2001:db8::1", port: 443 } });
    const r = await throughHaproxy(v2Port, h);
    expect(r.error).toBeUndefined();
    expect(r.header?.family).toBe("tcp6");
    expect(r.header?.source).toEqual({ address: "2001:db8::42", port: 1234 });
    expect(r.rest).toBe("ping");
  });

  test("send-proxy (v1) with IPv4 and IPv6 clients", async () => {
    const a = await throughHaproxy(v1Port, encodeProxyV1({ source: { address: "198.51.100.6", port: 999 }, destination: { address: "192.0.2.11", port: 443 } }));
    expect(a.error).toBeUndefined();
    expect([a.header?.version, a.header?.family, a.header?.source]).toEqual([1, "tcp4", { address: "198.51.100.6", port: 999 }]);
    expect(a.rest).toBe("ping");
    const b = await throughHaproxy(v1Port, encodeProxyV2({ source: { address: "2001:db8::43", port: 5 }, destination: { address: "2001:db8::1", port: 443 } }));
    expect([b.header?.version, b.header?.family, b.header?.source]).toEqual([1, "tcp6", { address: "2001:db8::43", port: 5 }]);
  });
});
