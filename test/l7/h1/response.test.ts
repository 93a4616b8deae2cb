import { describe, expect, test } from "bun:test";
import { NEED_MORE, parseResponseHead } from "../../../src/l7/h1/codec.ts";
import { bytes, expectError, okRes, res } from "./helpers.ts";

describe("response heads: framing (RFC 9112 §6.3)", () => {
  test("Content-Length body, status, reason, keep-alive on 1.1", () => {
    const h = okRes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello");
    expect(h).toMatchObject({ status: 200, reason: "OK", version: "1.1", framing: "length", contentLength: 5, keepAlive: true });
    expect(h.length).toBe(bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n").length);
  });

  test("chunked", () => {
    expect(okRes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").framing).toBe("chunked");
  });

  test("no CL and no TE: body until close, connection not reusable", () => {
    expect(okRes("HTTP/1.1 200 OK\r\n\r\n")).toMatchObject({ framing: "close", keepAlive: false });
  });

  test("HEAD responses have no body, but keep their Content-Length", () => {
    expect(okRes("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD")).toMatchObject({ framing: "none", contentLength: 1234 });
    expect(okRes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD")).toMatchObject({ framing: "none", keepAlive: true });
  });

  test("204, 304 and 1xx have no body", () => {
    expect(okRes("HTTP/1.1 204 No Content\r\n\r\n")).toMatchObject({ framing: "none", keepAlive: true });
    expect(okRes("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")).toMatchObject({ framing: "none", contentLength: 10 });
    expect(okRes("HTTP/1.1 100 Continue\r\n\r\n")).toMatchObject({ status: 100, framing: "none" });
    expect(okRes("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n").framing).toBe("none");
  });

  test("a 100 Continue followed by the final response in one buffer", () => {
    const b = bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    const first = parseResponseHead(b, 0, b.length, "PUT");
    if (first.kind !== "response") throw new Error("first");
    expect(parseResponseHead(b, first.length, b.length, "PUT")).toMatchObject({ status: 201, framing: "length", contentLength: 0 });
  });

  test("101 Switching Protocols carries the Upgrade value", () => {
    const h = okRes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n");
    expect(h).toMatchObject({ status: 101, framing: "none", upgrade: "websocket", connection: ["upgrade"] });
  });

  test("HTTP/1.0 response: close by default, keep-alive when asked", () => {
    expect(okRes("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").keepAlive).toBe(false);
    expect(okRes("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n").keepAlive).toBe(true);
    expect(okRes("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n").keepAlive).toBe(false);
  });

  test("CL and TE: chunked wins, Content-Length dropped, connection not reused", () => {
    expect(okRes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")).toMatchObject({
      framing: "chunked",
      contentLength: -1,
      keepAlive: false,
    });
  });

  test("lenient where a recipient MAY be: identical CL values, missing reason, space before colon", () => {
    expect(okRes("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n").contentLength).toBe(5);
    expect(okRes("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")).toMatchObject({ status: 200, reason: "" });
    expect(okRes("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n").reason).toBe("");
    expect(okRes("HTTP/1.1 404 Not  Found\xe9\r\n\r\n").reason).toBe("Not  Found\xe9");
    expect(okRes("HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n")).toMatchObject({ headers: ["content-length", "3"], contentLength: 3 });
  });

  test("split at every offset: need-more, then the same head", () => {
    const wire = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
    const b = bytes(wire);
    const whole = okRes(wire);
    for (let k = 0; k < whole.length; k++) expect(parseResponseHead(b, 0, k, "GET")).toBe(NEED_MORE);
    expect(parseResponseHead(b, 0, whole.length, "GET")).toEqual(whole);
  });
});

describe("response heads: rejected with 502", () => {
  const cases: [string, string, string][] = [
    ["differing Content-Length values", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "duplicate_cl"],
    ["differing Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "duplicate_cl"],
    ["invalid Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\n", "invalid_cl"],
    ["Content-Length list with an empty element", "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", "invalid_cl"],
    ["TE not ending in chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported_te"],
    ["TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported_te"],
    ["TE chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "unsupported_te"],
    ["bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare_lf"],
    ["obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obs_fold"],
    ["NUL in a value", "HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n", "invalid_header_value"],
    ["bad version", "HTTP/2.0 200 OK\r\n\r\n", "invalid_version"],
    ["not HTTP", "ICY 200 OK\r\n\r\n", "invalid_version"],
    ["two-digit status", "HTTP/1.1 20 OK\r\n\r\n", "invalid_status"],
    ["status 099", "HTTP/1.1 099 X\r\n\r\n", "invalid_status"],
    ["control char in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", "invalid_status"],
    ["four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", "invalid_status"],
  ];
  for (const [name, wire, reason] of cases) {
    test(`${name} → ${reason}`, () => expectError(res(wire), reason as never, 502));
  }
  test("a framing-only parse refuses exactly the same heads", () => {
    for (const [, wire, reason] of cases) {
      const b = bytes(wire);
      expectError(parseResponseHead(b, 0, b.length, "GET", undefined, true), reason as never, 502);
    }
  });
  test("head too large → 502 head_too_large", () => {
    expectError(res("HTTP/1.1 200 OK\r\nX: " + "v".repeat(20000)), "head_too_large", 502);
  });
});

describe("response heads: framing-only parse (for pass-through)", () => {
  const heads = [
    "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\nETag: \"x\"\r\n\r\n",
    "HTTP/1.1 204 No Content\r\nX-Custom: A\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
    "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 1\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX-Space : v\r\nContent-Length: 1\r\n\r\n",
    "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\nUnknown-Name: \xe9\r\n\r\n",
  ];
  test("the same framing, connection and pass-through facts; only the framing fields kept", () => {
    for (const wire of heads) {
      const b = bytes(wire);
      const full = parseResponseHead(b, 0, b.length, "GET");
      const lazy = parseResponseHead(b, 0, b.length, "GET", undefined, true);
      if (full.kind !== "response" || lazy.kind !== "response") throw new Error(wire);
      const { headers, reason, complete, ...facts } = full;
      const { headers: lh, reason: lr, complete: lc, ...lazyFacts } = lazy;
      expect(lazyFacts).toEqual(facts);
      expect(complete).toBe(true);
      expect(lc).toBe(false);
      expect(lr).toBe("");
      const framing = ["content-length", "transfer-encoding", "connection", "upgrade"];
      expect(lh).toEqual(headers.filter((_, i) => i % 2 === 1 ? framing.includes(headers[i - 1]!) : framing.includes(headers[i]!)));
      expect(reason.length).toBeGreaterThan(0);
    }
  });
});
