/**
 * Backends that misbehave, or behave in ways a proxy must absorb, through the
 * compiled binary (findings of a black-box hostile-input sweep):
 * - an h2c backend that sends content on a 204 or a HEAD response: the bytes
 *   never reach an HTTP/1.1 client (it would read them as the next
 *   response), and the client's next pipelined request is answered properly;
 * - an h2c backend that sends GOAWAY with a last-stream-id below a request
 *   it was sent (what nginx does at keepalive_requests): a bodyless request
 *   is sent again on a new connection (RFC 9113 §8.7, never processed), and
 *   so is one with a body up to BACKEND_H2_RETRY_BODY_BYTES (kept until the
 *   response head); a longer one gets 502, never a hang.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanupCerts, curl, e2ePki, killAllServers, route, startProxy, tlsClient, waitUntil, type ServerProc } from "./e2e.ts";
import { startRawH2Backend, type RawH2Backend, type RawH2Conn } from "./rawh2backend.ts";
import { BACKEND_H2_MAX_CONNECTIONS, BACKEND_H2_REFUSED_RETRIES, BACKEND_H2_RETRY_BODY_BYTES } from "../../src/limits.ts";
import { H2_SETTING } from "../../src/l7/h2/frame.ts";

let be: RawH2Backend;
/** Streams the backend saw with this path, on every connection. */
const seen = (path: string) => be.conns.reduce((n, c) => n + c.requests.filter((q) => q.path === path).length, 0);
/** The first stream of each /refuse-once path (the refused one). */
const firstOf = new Map<string, unknown>();
let p: ServerProc;
let port: number;

beforeAll(async () => {
  e2ePki();
  be = startRawH2Backend((c, r) => {
    const id = r.streamId;
    if (r.path === "/204") {
      // A 204 without END_STREAM, then "content" shaped like a second response.
      c.headers(id, 204, [], false).data(id, "HTTP/1.1 200 OK\r\ncontent-length: 9\r\nset-cookie: session=attacker\r\n\r\nINJECTED\n", true);
    } else if (r.path === "/head-data") {
      c.headers(id, 200, ["content-length", "8"], false).data(id, "INJECTED", true);
    } else if (r.path === "/refuse-all-big") {
      // Refused at its end (onEnd below): the whole body has gone past what is kept by then.
    } else if (r.path.startsWith("/refuse-all")) {
      // Every connection refuses it: a GOAWAY whose last stream id is below it.
      c.goaway(Math.max(0, id - 2));
    } else if (r.path.startsWith("/continue-then-refuse")) {
      // A 100 Continue (the backend took the request), then a GOAWAY below the stream.
      c.headers(id, 100, [], false).goaway(Math.max(0, id - 2));
    } else if (r.path.startsWith("/refuse-once")) {
      // Refused the first time (a GOAWAY below it), answered at its end with its body the next time.
      if (!firstOf.has(r.path)) {
        firstOf.set(r.path, r);
        c.goaway(Math.max(0, id - 2));
      }
    } else if (r.path.startsWith("/goaway")) {
      // The first request on a connection is answered; the second is refused by a GOAWAY naming the first.
      if (c.requests.length === 1) c.headers(id, 200, ["content-length", "5"], false).data(id, `conn${be.conns.indexOf(c)}`, true);
      else c.goaway(c.requests[0]!.streamId);
    } else {
      c.headers(id, 200, ["content-length", "2"], false).data(id, "ok", true);
    }
  }, (c, r) => {
    if (r.path === "/refuse-all-big") c.goaway(Math.max(0, r.streamId - 2));
    if (r.path.startsWith("/refuse-once") && firstOf.get(r.path) !== r) c.headers(r.streamId, 200, [], false).data(r.streamId, `${r.body.length}:${r.body.slice(0, 16)}`, true);
  });
  p = await startProxy([route({ backend: `127.0.0.1:${be.port}`, backendProtocol: "h2" })]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  be?.stop();
  killAllServers();
  cleanupCerts();
});

describe("content where a response can have none", () => {
  test("DATA on an h2c backend's 204 never reaches an HTTP/1.1 client; its next pipelined request is answered", async () => {
    const c = await tlsClient(port);
    c.sock.write("GET /204 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /second HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    expect(await c.closed(5000)).toBe(true);
    const text = c.text();
    expect(text).not.toContain("attacker");
    expect(text).not.toContain("INJECTED");
    expect(text.startsWith("HTTP/1.1 204 No Content\r\n")).toBe(true);
    expect(text).toContain("\r\n\r\nok");
  });

  test("DATA on a HEAD response never reaches the client (HTTP/1.1 and HTTP/2)", async () => {
    const c = await tlsClient(port);
    c.sock.write("HEAD /head-data HTTP/1.1\r\nHost: a.test\r\n\r\nGET /second HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    expect(await c.closed(5000)).toBe(true);
    expect(c.text()).not.toContain("INJECTED");
    expect(c.text()).toContain("\r\n\r\nok");
    const r = await curl(port, "/head-data", ["--http2", "-I"]);
    expect({ code: r.code, status: r.status }).toEqual({ code: 0, status: 200 });
    expect(r.body).not.toContain("INJECTED");
  });
});

describe("GOAWAY from an h2c backend", () => {
  test("a bodyless request refused by the backend's GOAWAY is sent again on a new connection: 200, not 502", async () => {
    // Two requests over one backend connection (the proxy's pool): the backend answers the first and refuses the second.
    const first = await curl(port, "/goaway-1", ["--http2"]);
    expect({ code: first.code, status: first.status }).toEqual({ code: 0, status: 200 });
    const before = be.conns.length;
    const r = await curl(port, "/goaway-2", ["--http2"]);
    expect({ code: r.code, status: r.status }).toEqual({ code: 0, status: 200 });
    // Answered by a connection opened for the retry.
    expect(r.body).toBe(`conn${before}`);
    expect(be.conns.length).toBe(before + 1);
    expect(p.logs.filter((l) => l.event === "l7.backend_error")).toEqual([]);
  });

  for (const proto of ["--http2", "--http1.1"]) {
    test(`${proto}: a request with a body refused the same way is sent again with its body (up to BACKEND_H2_RETRY_BODY_BYTES): 200`, async () => {
      const path = `/refuse-once-${proto.slice(2)}`;
      const body = "hello ".repeat(2000); // 12,000 bytes: several DATA frames
      const r = await curl(port, path, [proto, "--data-binary", body], { timeoutS: 10 });
      expect({ code: r.code, status: r.status }).toEqual({ code: 0, status: 200 });
      // Refused once, then the whole body again.
      expect(r.body).toBe(`${body.length}:${body.slice(0, 16)}`);
      expect(seen(path)).toBe(2);
      expect(p.logs.filter((l) => l.event === "l7.backend_error")).toEqual([]);
    });
  }

  test("a body still coming when the refusal arrives: what came is sent again, the rest follows on the new stream", async () => {
    const c = await tlsClient(port);
    c.sock.write("POST /refuse-once-slow HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello");
    // The backend refuses the stream as soon as its HEADERS arrive; the proxy sends it again with "hello".
    for (let i = 0; i < 100 && seen("/refuse-once-slow") < 2; i++) await Bun.sleep(20);
    expect(seen("/refuse-once-slow")).toBe(2);
    await Bun.sleep(50);
    c.sock.write("world");
    expect(await c.closed(5000)).toBe(true);
    expect(c.text()).toStartWith("HTTP/1.1 200");
    expect(c.text()).toContain("\r\n10:helloworld\r\n"); // one chunk
  });

  test(`a body up to BACKEND_H2_RETRY_BODY_BYTES refused every time is sent again BACKEND_H2_REFUSED_RETRIES (${BACKEND_H2_REFUSED_RETRIES}) times, then 502`, async () => {
    const r = await curl(port, "/refuse-all-small", ["--http2", "--data-binary", "x".repeat(BACKEND_H2_RETRY_BODY_BYTES)], { timeoutS: 10 });
    expect({ code: r.code, status: r.status }).toEqual({ code: 0, status: 502 });
    expect(seen("/refuse-all-small")).toBe(1 + BACKEND_H2_REFUSED_RETRIES);
  });

  test("a refusal after a 1xx head (the backend took the request) is not sent again, with or without a body: 502, seen once", async () => {
    for (const [path, args] of [["/continue-then-refuse-body", ["--data-binary", "hello"]], ["/continue-then-refuse-get", []]] as const) {
      const r = await curl(port, path, ["--http2", ...args], { timeoutS: 10 });
      expect({ path, code: r.code, status: r.status }).toEqual({ path, code: 0, status: 502 });
      expect(seen(path)).toBe(1);
    }
  });

  test(`a body longer than BACKEND_H2_RETRY_BODY_BYTES (${BACKEND_H2_RETRY_BODY_BYTES}) is not kept: refused, it is 502 at once (sent once), never a hang`, async () => {
    const r = await curl(port, "/refuse-all-big", ["--http2", "--data-binary", "x".repeat(BACKEND_H2_RETRY_BODY_BYTES + 1)], { timeoutS: 10 });
    expect({ code: r.code, status: r.status }).toEqual({ code: 0, status: 502 });
    expect(seen("/refuse-all-big")).toBe(1);
  });
});

describe("requests waiting for a backend stream", () => {
  test(`every backend stream busy (${BACKEND_H2_MAX_CONNECTIONS} connections × MAX_CONCURRENT_STREAMS 1): a waiting request gets the first stream that frees; one whose client left is never sent`, async () => {
    const held: { c: RawH2Conn; id: number }[] = [];
    const busy = startRawH2Backend(
      (c, r) => {
        if (r.path.startsWith("/hold")) held.push({ c, id: r.streamId });
        else c.headers(r.streamId, 200, ["content-length", "2"], false).data(r.streamId, "ok", true);
      },
      undefined,
      [H2_SETTING.MAX_CONCURRENT_STREAMS, 1],
    );
    // One worker: the backend connections are per worker thread.
    const p2 = await startProxy([route({ hostname: "b.test", backend: `127.0.0.1:${busy.port}`, backendProtocol: "h2" })], ["workers = 1"]);
    const seenBusy = (path: string) => busy.conns.reduce((n, c) => n + c.requests.filter((q) => q.path === path).length, 0);
    try {
      // Fill every stream the proxy may open towards this backend: one at a time, so that each
      // connection has the backend's SETTINGS (a limit of 1) before the next request comes.
      const holds = [];
      for (let i = 0; i < BACKEND_H2_MAX_CONNECTIONS; i++) {
        holds.push(curl(p2.port(), `/hold-${i}`, ["--http2"], { host: "b.test", timeoutS: 20 }));
        expect(await waitUntil(() => held.length === i + 1, 5000)).toBe(true);
      }
      // This one waits for a stream; its client gives up after 1 s.
      const late = await curl(p2.port(), "/late", ["--http2"], { host: "b.test", timeoutS: 1 });
      expect({ code: late.code, status: late.status, body: late.body, held: held.length, conns: busy.conns.length }).toEqual({ code: 28, status: 0, body: "", held: BACKEND_H2_MAX_CONNECTIONS, conns: BACKEND_H2_MAX_CONNECTIONS });
      // This one waits too, and its client stays.
      const waiter = curl(p2.port(), "/waiter", ["--http2"], { host: "b.test", timeoutS: 10 });
      await Bun.sleep(300);
      expect(seenBusy("/waiter")).toBe(0);
      // A stream frees: the waiting request of the client that stayed gets it, at once; the one whose client left never goes out.
      const a = held.shift()!;
      const freedAt = Date.now();
      a.c.headers(a.id, 200, ["content-length", "2"], false).data(a.id, "ok", true);
      const w = await waiter;
      expect({ status: w.status, body: w.body }).toEqual({ status: 200, body: "ok" });
      expect(Date.now() - freedAt).toBeLessThan(1000);
      const b = held.shift()!;
      b.c.headers(b.id, 200, ["content-length", "2"], false).data(b.id, "ok", true);
      await Bun.sleep(300);
      expect(seenBusy("/late")).toBe(0);
      // The backend still serves: a new request gets a freed stream.
      const next = await curl(p2.port(), "/next", ["--http2"], { host: "b.test", timeoutS: 10 });
      expect(next.status).toBe(200);
      for (const h of held.splice(0)) h.c.headers(h.id, 200, ["content-length", "2"], false).data(h.id, "ok", true);
      for (const r of await Promise.all(holds)) expect(r.status).toBe(200);
    } finally {
      await p2.stop();
      busy.stop();
    }
  }, 30_000);
});
