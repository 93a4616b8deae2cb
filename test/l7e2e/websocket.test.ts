/**
 * WebSocket through the real server (subprocess), SPEC §5: only a `101`
 * turns the connection into a tunnel. A backend that refuses the upgrade
 * (403, or a plain 200) has its answer relayed, then the connection closes;
 * a second request written right behind the upgrade request — with a forged
 * X-Forwarded-For, a User-Agent the route's policy blocks, and without the
 * header the route requires — never reaches the backend (which records
 * every request it receives). A real 101 still tunnels both ways.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { cleanupCerts, e2ePki, killAllServers, route, startProxy, startRawBackend, statuses, tlsClient, type RawBackend, type ServerProc } from "./e2e.ts";

let be: RawBackend;
let p: ServerProc;
let port: number;

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT = createHash("sha1").update(KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");

beforeAll(async () => {
  e2ePki();
  be = await startRawBackend((r) => {
    const path = r.req.path;
    if (path.startsWith("/ws-403")) return r.send(403, "upgrade refused by the app\n", { "content-type": "text/plain" });
    if (path.startsWith("/ws-200")) return r.send(200, "no websocket here\n", { "content-type": "text/plain" });
    if (path.startsWith("/ws")) {
      const key = r.req.headers.get("sec-websocket-key")?.[0] ?? "";
      const acc = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
      r.sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acc}\r\n\r\n`);
      return;
    }
    r.send(200, `plain ${path}\n`);
  });
  p = await startProxy([
    route({
      backend: be.addr,
      policies: [
        ["block_user_agent", "zgrab"],
        ["require_header", "X-Required"],
      ],
    }),
  ]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
});

const upgrade = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: a.test\r\nUser-Agent: test-client\r\nX-Required: 1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n\r\n`;
/** Blocked UA, no X-Required, forged XFF: every policy would refuse it, and it must never be tunnelled. */
const SECOND = "GET /second-after-upgrade HTTP/1.1\r\nHost: a.test\r\nUser-Agent: zgrab/0.x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";

describe("a refused upgrade never becomes a tunnel", () => {
  for (const [path, status] of [["/ws-403", 403], ["/ws-200", 200]] as const) {
    test(`backend answers ${status}: the client gets it, the connection closes, the request behind it never reaches the backend`, async () => {
      const c = await tlsClient(port);
      c.sock.write(upgrade(path) + SECOND);
      expect(await c.closed(5000)).toBe(true);
      expect(statuses(c.text())).toEqual([status]);
      expect(c.text()).toContain(status === 403 ? "upgrade refused by the app" : "no websocket here");
      expect(c.text().toLowerCase()).toContain("connection: close");
      await Bun.sleep(200);
      expect(be.seen.filter((s) => s.path === path).length).toBe(1);
      expect(be.seen.some((s) => s.path === "/second-after-upgrade")).toBe(false);
      for (const s of be.seen) expect(s.rawHead).not.toContain("6.6.6.6");
    });

    test(`backend answers ${status}; the second request written after the answer arrived is not relayed either`, async () => {
      const c = await tlsClient(port);
      c.sock.write(upgrade(`${path}-late`));
      await c.until((t) => t.includes("\r\n\r\n"), 5000);
      c.sock.write(SECOND.replace("/second-after-upgrade", "/second-late"));
      expect(await c.closed(5000)).toBe(true);
      expect(statuses(c.text())).toEqual([status]);
      await Bun.sleep(200);
      expect(be.seen.some((s) => s.path === "/second-late")).toBe(false);
    });
  }

  test("an upgrade request the policies refuse (blocked UA) is answered 403 by the proxy; the backend never sees it", async () => {
    const c = await tlsClient(port);
    c.sock.write(upgrade("/ws-blocked").replace("User-Agent: test-client", "User-Agent: ZGrab") + SECOND);
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([403]);
    await Bun.sleep(200);
    expect(be.seen.some((s) => s.path === "/ws-blocked" || s.path === "/second-after-upgrade")).toBe(false);
  });

  test("the same second request on its own connection is refused by the policies (the control)", async () => {
    const c = await tlsClient(port);
    c.sock.write(SECOND.replace("/second-after-upgrade", "/second-alone"));
    expect(await c.until((t) => t.includes("\r\n\r\n"), 5000)).toBe(true);
    expect(statuses(c.text())).toEqual([403]);
    expect(be.seen.some((s) => s.path === "/second-alone")).toBe(false);
    c.sock.destroy();
  });
});

describe("a real upgrade (101) tunnels both ways", () => {
  test("101 is relayed with the backend's Sec-WebSocket-Accept; bytes flow both ways; forwarding headers were set", async () => {
    const c = await tlsClient(port);
    c.sock.write(upgrade("/ws"));
    expect(await c.until((t) => t.includes("\r\n\r\n"), 5000)).toBe(true);
    expect(statuses(c.text())).toEqual([101]);
    expect(c.text()).toMatch(new RegExp(`sec-websocket-accept: ${ACCEPT.replace(/[+/=]/g, "\\$&")}\r\n`, "i"));
    const mark = c.text().length;
    c.sock.write("ping-1");
    expect(await c.until((t) => t.slice(mark).includes("echo:ping-1"), 5000)).toBe(true);
    c.sock.write("ping-2");
    expect(await c.until((t) => t.slice(mark).includes("echo:ping-2"), 5000)).toBe(true);
    const seen = be.seen.find((s) => s.path === "/ws")!;
    expect(seen.headers.get("upgrade")?.[0]?.toLowerCase()).toBe("websocket");
    expect(seen.headers.get("x-forwarded-for")).toEqual(["127.0.0.1"]);
    c.sock.destroy();
  });

  test("a masked WebSocket frame crosses the tunnel byte-exact (frames are opaque to it; the backend echoes raw bytes)", async () => {
    const c = await tlsClient(port);
    c.sock.write(upgrade("/ws-frames"));
    expect(await c.until((t) => t.startsWith("HTTP/1.1 101"), 5000)).toBe(true);
    const frame = Buffer.from([0x81, 0x85, 1, 2, 3, 4, ..."hello".split("").map((ch, i) => ch.charCodeAt(0) ^ [1, 2, 3, 4][i % 4]!)]);
    const mark = c.text().length;
    c.sock.write(frame);
    expect(await c.until((t) => t.length >= mark + 5 + frame.byteLength, 5000)).toBe(true);
    expect(Buffer.from(c.text().slice(mark + 5), "latin1").equals(frame)).toBe(true);
    c.sock.destroy();
  });
});
