/**
 * Host ≠ SNI → 421 Misdirected Request, nothing forwarded (SPEC §5): a.test
 * and b.test are two routes on one listener with their own backends, so a
 * request for b.test on a connection routed by a.test (HTTP/2 coalescing,
 * or a hostile client) must reach neither. The same name with a port, a
 * trailing dot or other letter case is served.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanupCerts, curl, e2ePki, killAllServers, route, startProxy, startRawBackend, statuses, tlsClient, type RawBackend, type ServerProc } from "./e2e.ts";

let beA: RawBackend, beB: RawBackend;
let p: ServerProc;
let port: number;

beforeAll(async () => {
  e2ePki();
  [beA, beB] = await Promise.all([startRawBackend(), startRawBackend()]);
  p = await startProxy([route({ backend: beA.addr }), route({ hostname: "b.test", backend: beB.addr })]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  await Promise.all([beA?.stop(), beB?.stop()]);
  killAllServers();
  cleanupCerts();
});

const reached = (path: string) => [...beA.seen, ...beB.seen].some((s) => s.path === path);

describe("Host / :authority other than the SNI → 421", () => {
  for (const proto of ["--http1.1", "--http2"]) {
    for (const host of ["b.test", "evil.test", "b.test:443", "127.0.0.1"]) {
      test(`${proto}: SNI a.test, host ${host} → 421, no backend sees it`, async () => {
        const path = `/mis-${proto.slice(2)}-${host.replace(/[:.]/g, "_")}`;
        const r = await curl(port, path, [proto, "-H", `Host: ${host}`]);
        expect(r.status).toBe(421);
        expect(r.httpVersion).toBe(proto === "--http2" ? "2" : "1.1");
        expect(r.headers["content-type"]).toStartWith("text/plain");
        await Bun.sleep(100);
        expect(reached(path)).toBe(false);
      });
    }
  }

  test("HTTP/1.1 absolute-form target naming another host (Host: a.test) → 421: the target's authority wins (RFC 9112 §3.2.2)", async () => {
    const c = await tlsClient(port);
    c.sock.write("GET https://b.test/abs-other HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([421]);
    expect(reached("/abs-other")).toBe(false);
  });

  test("a 421 on HTTP/1.1 does not poison the connection: the next request with the right host is served", async () => {
    const c = await tlsClient(port);
    c.sock.write("GET /ka-bad HTTP/1.1\r\nHost: b.test\r\n\r\nGET /ka-good HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([421, 200]);
    expect(reached("/ka-bad")).toBe(false);
    expect(beA.seen.some((s) => s.path === "/ka-good")).toBe(true);
  });

  test("the misdirected request is logged (l7.misdirected, with SNI and host)", async () => {
    await curl(port, "/mis-log", ["--http1.1", "-H", "Host: b.test"]);
    const l = await p.waitLog((x) => x.event === "l7.misdirected" && x.host === "b.test", 5000, "l7.misdirected");
    expect(l.sni).toBe("a.test");
  });
});

describe("the same name in another spelling is served", () => {
  for (const proto of ["--http1.1", "--http2"]) {
    for (const host of ["a.test:8443", "a.test.", "a.test.:443", "A.TEST"]) {
      test(`${proto}: SNI a.test, host ${host} → 200 from a.test's backend, Host kept`, async () => {
        const path = `/ok-${proto.slice(2)}-${host.replace(/[:.]/g, "_")}`;
        const r = await curl(port, path, [proto, "-H", `Host: ${host}`]);
        expect(r.status).toBe(200);
        const seen = beA.seen.find((s) => s.path === path);
        expect(seen).toBeDefined();
        expect(seen!.headers.get("host")).toEqual([host]);
        expect(beB.seen.some((s) => s.path === path)).toBe(false);
      });
    }
  }
});
