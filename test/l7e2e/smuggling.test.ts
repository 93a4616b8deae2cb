/**
 * Request-smuggling shapes on the HTTP/1.1 front (RFC 9112 §6, SPEC §5): each
 * is answered with its error status and the connection closes; nothing of it
 * — nor the second request hidden behind it in the same write — reaches the
 * backend. Header COUNT (101 fields → 431) and head SIZE (> 16 KiB → 431)
 * are bounded too, with the limits themselves still served.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanupCerts, e2ePki, killAllServers, route, startProxy, startRawBackend, statuses, tlsClient, type RawBackend, type ServerProc } from "./e2e.ts";

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

/** A request hidden after the malformed one: must never be answered nor forwarded. */
const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";

/** Sends `raw` (+ SMUGGLED) on a fresh connection; expects exactly one `status` answer, a close, and no backend request. */
async function refused(raw: string, status: number): Promise<string> {
  const before = be.seen.length;
  const c = await tlsClient(port);
  c.sock.write(raw + SMUGGLED);
  expect(await c.closed(5000)).toBe(true);
  expect(statuses(c.text())).toEqual([status]);
  expect(c.text()).toContain("connection: close");
  await Bun.sleep(100);
  expect(be.seen.length).toBe(before);
  expect(be.seen.some((s) => s.path === "/smuggled")).toBe(false);
  return c.text();
}

const H = "Host: a.test\r\n";

describe("smuggling shapes → error and close, nothing forwarded", () => {
  const cases: [string, string, number][] = [
    ["CL + TE", `POST /x HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    ["TE + CL (other order)", `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n`, 400],
    ["duplicate Content-Length (two fields, same value)", `POST /x HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, 400],
    ["duplicate Content-Length (two fields, different values)", `POST /x HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello`, 400],
    ["Content-Length list '5, 5'", `POST /x HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, 400],
    ["invalid Content-Length '+5'", `POST /x HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, 400],
    ["invalid Content-Length '5a'", `POST /x HTTP/1.1\r\n${H}Content-Length: 5a\r\n\r\nhello`, 400],
    ["invalid Content-Length '-1'", `POST /x HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 400],
    ["obs-fold", `GET /x HTTP/1.1\r\n${H}X-A: a\r\n  folded\r\n\r\n`, 400],
    ["obs-fold with a tab", `GET /x HTTP/1.1\r\n${H}X-A: a\r\n\tfolded\r\n\r\n`, 400],
    ["bare LF line ends", `GET /x HTTP/1.1\nHost: a.test\n\n`, 400],
    ["one bare LF inside the head", `GET /x HTTP/1.1\r\n${H}X-A: a\nX-B: b\r\n\r\n`, 400],
    ["invalid header name (space inside)", `GET /x HTTP/1.1\r\n${H}X A: b\r\n\r\n`, 400],
    ["invalid header name (quote)", `GET /x HTTP/1.1\r\n${H}X"A: b\r\n\r\n`, 400],
    ["whitespace before the colon", `GET /x HTTP/1.1\r\n${H}Content-Length : 0\r\n\r\n`, 400],
    ["TE chunked not final (chunked, gzip)", `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, 400],
    ["TE chunked twice", `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    ["TE not chunked (gzip, chunked) → 501", `POST /x HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 501],
    ["duplicate Host", `GET /x HTTP/1.1\r\n${H}${H}\r\n`, 400],
    ["no Host on HTTP/1.1", `GET /x HTTP/1.1\r\nX-A: b\r\n\r\n`, 400],
  ];
  for (const [name, raw, status] of cases) {
    test(`${name} → ${status}`, async () => {
      await refused(raw, status);
    });
  }

  test("TE: gzip alone (chunked not final) → 400, never 200 or 501 with the body forwarded", async () => {
    await refused(`POST /x HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\nhello`, 400);
  });

  // A bad BODY is found after the head was forwarded (bodies stream): the request must never complete at
  // the backend, the client gets 400 and the connection closes at once (it used to stay open until idle_timeout).
  for (const [name, body] of [
    ["bad chunk size", "zz\r\nhello\r\n0\r\n\r\n"],
    ["chunk data without its CRLF", "5\r\nhelloXX0\r\n\r\n"],
    ["chunk size with a bare LF", "5\nhello\r\n0\r\n\r\n"],
  ] as const) {
    test(`chunked body: ${name} → 400 and close within 2 s; no complete request at the backend`, async () => {
      const c = await tlsClient(port);
      const t0 = Date.now();
      c.sock.write(`POST /bad-body HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}${SMUGGLED}`);
      expect(await c.closed(5000)).toBe(true);
      expect(c.closedAt - t0).toBeLessThan(2000);
      expect(statuses(c.text())).toEqual([400]);
      await Bun.sleep(100);
      expect(be.seen.some((s) => s.path === "/bad-body" || s.path === "/smuggled")).toBe(false);
    });
  }

  test("the refusal is logged (l7.bad_request with status and reason)", async () => {
    await refused(`POST /x HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx`, 400);
    const l = await p.waitLog((x) => x.event === "l7.bad_request" && x.status === 400, 5000, "l7.bad_request");
    expect(String(l.reason)).not.toBe("");
  });
});

describe("header count and head size limits", () => {
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join("");

  test("100 header fields (Host + 99) are served", async () => {
    const c = await tlsClient(port);
    c.sock.write(`GET /count-100 HTTP/1.1\r\n${H}${fields(98)}Connection: close\r\n\r\n`);
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200]);
    expect(be.seen.some((s) => s.path === "/count-100")).toBe(true);
  });

  test("101 header fields → 431 and close, nothing forwarded", async () => {
    await refused(`GET /count-101 HTTP/1.1\r\n${H}${fields(100)}\r\n`, 431);
    expect(be.seen.some((s) => s.path === "/count-101")).toBe(false);
  });

  test("a head just under 16 KiB is served; one over 16 KiB → 431 and close, nothing forwarded", async () => {
    const under = `GET /size-ok HTTP/1.1\r\n${H}Connection: close\r\nX-Big: `;
    const pad = 16 * 1024 - under.length - 4 - 16;
    const c = await tlsClient(port);
    c.sock.write(`${under}${"a".repeat(pad)}\r\n\r\n`);
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([200]);
    await refused(`GET /size-big HTTP/1.1\r\n${H}X-Big: ${"a".repeat(16 * 1024)}\r\n\r\n`, 431);
    expect(be.seen.some((s) => s.path === "/size-big")).toBe(false);
  });

  test("an over-long head sent in pieces (never reaching CRLF CRLF) is refused once it passes 16 KiB, not at its deadline", async () => {
    const c = await tlsClient(port);
    const t0 = Date.now();
    c.sock.write(`GET /size-stream HTTP/1.1\r\n${H}X-Big: `);
    for (let i = 0; i < 20 && !c.isClosed; i++) {
      c.sock.write("b".repeat(1024));
      await Bun.sleep(10);
    }
    expect(await c.closed(5000)).toBe(true);
    expect(statuses(c.text())).toEqual([431]);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
