/**
 * Forwarding headers are set, never trusted from the client (SPEC §5):
 * X-Forwarded-Host/-Port/-Prefix, X-Client-IP, True-Client-IP and the older
 * X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, Forwarded never reach the
 * backend with the client's values, in any letter case, repeated, or over
 * HTTP/2; X-Forwarded-For and X-Real-IP are the real client, and
 * X-Forwarded-Proto is https. Hop-by-hop and Connection-named headers are
 * dropped too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanupCerts, h2Session, curl, e2ePki, killAllServers, route, startProxy, startRawBackend, tlsClient, type RawBackend, type SeenRequest, type ServerProc } from "./e2e.ts";

let be: RawBackend;
let p: ServerProc;
let port: number;

beforeAll(async () => {
  e2ePki();
  be = await startRawBackend();
  p = await startProxy([route({ backend: be.addr })]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
});

const FORGED: [string, string][] = [
  ["X-Forwarded-Host", "evil.example"],
  ["X-Forwarded-Port", "8443"],
  ["X-Forwarded-Prefix", "/evil"],
  ["X-Client-IP", "203.0.113.7"],
  ["True-Client-IP", "203.0.113.8"],
  ["X-Forwarded-For", "203.0.113.9"],
  ["X-Real-IP", "203.0.113.10"],
  ["X-Forwarded-Proto", "http"],
  ["Forwarded", "for=203.0.113.11;proto=http;host=evil.example"],
];
const STRIPPED = ["x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix", "x-client-ip", "true-client-ip", "forwarded"];

function checkClean(seen: SeenRequest): void {
  for (const name of STRIPPED) expect(seen.headers.get(name)).toBeUndefined();
  expect(seen.headers.get("x-forwarded-for")).toEqual(["127.0.0.1"]);
  expect(seen.headers.get("x-real-ip")).toEqual(["127.0.0.1"]);
  expect(seen.headers.get("x-forwarded-proto")).toEqual(["https"]);
  // No forged value anywhere in the head, whatever header carries it.
  for (const [, v] of FORGED) if (v !== "http" && v !== "8443") expect(seen.rawHead).not.toContain(v);
  expect(seen.headers.get("x-kept")).toEqual(["yes"]); // ordinary headers do pass
}

describe("client forwarding headers never reach the backend", () => {
  for (const proto of ["--http1.1", "--http2"]) {
    test(`${proto}: every forged forwarding header is removed; XFF / X-Real-IP are the real client, proto https`, async () => {
      const path = `/fwd-${proto.slice(2)}`;
      const args = [proto, "-H", "X-Kept: yes"];
      for (const [k, v] of FORGED) args.push("-H", `${k}: ${v}`);
      const r = await curl(port, path, args);
      expect(r.status).toBe(200);
      checkClean(be.seen.find((s) => s.path === path)!);
    });
  }

  for (const proto of ["--http1.1", "--http2"]) {
    test(`${proto}: "_" spellings of forwarding headers are removed (CGI backends read them as the same variable); other "_" names pass`, async () => {
      const path = `/fwd-underscore-${proto.slice(2)}`;
      const r = await curl(port, path, [
        proto,
        "-H", "X_Forwarded_For: 203.0.113.20",
        "-H", "x_real_ip: 203.0.113.21",
        "-H", "True_Client_IP: 203.0.113.22",
        "-H", "X-Forwarded_Host: evil2.example",
        "-H", "x_forwarded_proto: http",
        "-H", "My_Header: kept",
      ]);
      expect(r.status).toBe(200);
      const seen = be.seen.find((s) => s.path === path)!;
      for (const v of ["203.0.113.2", "evil2.example"]) expect(seen.rawHead).not.toContain(v);
      expect(seen.headers.get("x-forwarded-for")).toEqual(["127.0.0.1"]);
      expect(seen.headers.get("x-forwarded-proto")).toEqual(["https"]);
      expect(seen.rawHead.toLowerCase()).not.toContain("x_forwarded_proto");
      expect(seen.headers.get("my_header")).toEqual(["kept"]);
    });
  }

  test("HTTP/1.1 raw: repeated, odd-case and Connection-named variants are all removed", async () => {
    const c = await tlsClient(port);
    const lines = [
      "GET /fwd-raw HTTP/1.1",
      "Host: a.test",
      "x-forwarded-host: evil.example",
      "X-FORWARDED-HOST: evil.example",
      "x-Forwarded-Port: 8443",
      "X-Forwarded-Prefix: /evil",
      "x-client-ip: 203.0.113.7",
      "TRUE-CLIENT-IP: 203.0.113.8",
      "X-Forwarded-For: 203.0.113.9",
      "X-Forwarded-For: 203.0.113.12, 203.0.113.13",
      "x-real-ip: 203.0.113.10",
      "X-Forwarded-Proto: http",
      "forwarded: for=203.0.113.11",
      "X-Kept: yes",
      "X-Secret: hop",
      "Keep-Alive: timeout=5",
      "Proxy-Connection: keep-alive",
      "Connection: close, X-Secret",
      "",
      "",
    ];
    c.sock.write(lines.join("\r\n"));
    expect(await c.closed(5000)).toBe(true);
    expect(c.text()).toStartWith("HTTP/1.1 200");
    const seen = be.seen.find((s) => s.path === "/fwd-raw")!;
    checkClean(seen);
    for (const h of ["x-secret", "keep-alive", "proxy-connection"]) expect(seen.headers.get(h)).toBeUndefined();
    expect(seen.rawHead).not.toContain("203.0.113.12");
  });
});

test("the l7.request log line carries the path without its query string (tokens live there); the backend gets the query", async () => {
  const r = await curl(port, "/logged?token=s3cr3t&x=1");
  expect(r.status).toBe(200);
  expect(be.seen.some((s) => s.path === "/logged?token=s3cr3t&x=1")).toBe(true);
  const line = await p.waitLog((x) => x.event === "l7.request" && String(x.path).startsWith("/logged"), 5000, "l7.request line");
  expect(line.path).toBe("/logged");
  expect(JSON.stringify(p.logs)).not.toContain("s3cr3t");
});

describe("a request head reused on one HTTP/2 connection (forward.ts lastH1Head)", () => {
  test("repeated requests give identical heads; a changed value, path or method gives its own", async () => {
    const s = h2Session(port);
    const one = (method: string, path: string, v: string, body?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = s.request({ ":method": method, ":path": path, "x-v": v, ...(body !== undefined ? { "content-length": String(body.length) } : {}) });
        let status = 0;
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", () => {});
        req.on("end", () => resolve(status));
        req.on("error", reject);
        req.end(body);
      });
    try {
      const statuses = [];
      statuses.push(await one("GET", "/memo-a", "1"));
      statuses.push(await one("GET", "/memo-a", "1"));
      statuses.push(await one("GET", "/memo-a", "2"));
      statuses.push(await one("GET", "/memo-b", "2"));
      statuses.push(await one("POST", "/memo-b", "2", "hello"));
      statuses.push(await one("GET", "/memo-b", "2"));
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    } finally {
      s.close();
    }
    const seen = be.seen.filter((r) => r.path.startsWith("/memo-"));
    expect(seen.map((r) => `${r.method} ${r.path} ${r.headers.get("x-v")}`)).toEqual([
      "GET /memo-a 1",
      "GET /memo-a 1",
      "GET /memo-a 2",
      "GET /memo-b 2",
      "POST /memo-b 2",
      "GET /memo-b 2",
    ]);
    expect(seen[1]!.rawHead).toBe(seen[0]!.rawHead);
    expect(seen[2]!.rawHead).not.toBe(seen[1]!.rawHead);
    expect(seen[4]!.headers.get("content-length")).toEqual(["5"]);
    expect(seen[4]!.body.toString()).toBe("hello");
    expect(seen[5]!.headers.get("content-length")).toBeUndefined();
    for (const r of seen) checkForwarding(r);
  });
});

function checkForwarding(seen: SeenRequest): void {
  expect(seen.headers.get("x-forwarded-for")).toEqual(["127.0.0.1"]);
  expect(seen.headers.get("host")).toEqual([`a.test:${port}`]);
}

describe("a request head repeated on one HTTP/1.1 connection (the front's parse memo)", () => {
  test("repeated heads, pipelined and one by one, and heads that differ in one byte each reach the backend as their own, forged fields removed every time", async () => {
    const head = (method: string, path: string, v: string, extra = "") => `${method} ${path} HTTP/1.1\r\nHost: a.test\r\nX-V: ${v}\r\nX-Forwarded-For: 203.0.113.99\r\n${extra}\r\n`;
    const c = await tlsClient(port);
    // Three identical heads in one write, then more that differ by a value, a method, a body, a path.
    c.sock.write(head("GET", "/pm-a", "1").repeat(3));
    await Bun.sleep(100);
    c.sock.write(head("GET", "/pm-a", "2"));
    c.sock.write(head("POST", "/pm-a", "2", "Content-Length: 5\r\n") + "hello");
    c.sock.write(head("POST", "/pm-a", "2", "Content-Length: 5\r\n") + "world");
    c.sock.write(head("GET", "/pm-b", "2"));
    c.sock.write(head("GET", "/pm-b", "2", "Connection: close\r\n"));
    expect(await c.closed(5000)).toBe(true);
    expect(c.text().match(/HTTP\/1\.1 200 /g)?.length).toBe(8);
    const seen = be.seen.filter((r) => r.path.startsWith("/pm-"));
    expect(seen.map((r) => `${r.method} ${r.path} ${r.headers.get("x-v")} ${r.body.toString()}`.trim())).toEqual([
      "GET /pm-a 1",
      "GET /pm-a 1",
      "GET /pm-a 1",
      "GET /pm-a 2",
      "POST /pm-a 2 hello",
      "POST /pm-a 2 world",
      "GET /pm-b 2",
      "GET /pm-b 2",
    ]);
    for (const r of seen) {
      expect(r.headers.get("x-forwarded-for")).toEqual(["127.0.0.1"]);
      expect(r.rawHead).not.toContain("203.0.113.99");
    }
    expect(seen[1]!.rawHead).toBe(seen[0]!.rawHead);
  });
});
