import { describe, expect, test } from "bun:test";
import { H1_DEFAULT_LIMITS, H1_MAX_EMPTY_LINES, NEED_MORE, parseRequestHead } from "../../../src/l7/h1/codec.ts";
import { bytes, expectError, okReq, req } from "./helpers.ts";

const GET = "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\n\r\n";

describe("request heads: happy paths", () => {
  test("a simple GET: method, target, version, lower-cased names, trimmed values, length", () => {
    const h = okReq("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Custom-Thing:   v a l  \r\nEmpty:\r\n\r\nBODY");
    expect(h.method).toBe("GET");
    expect(h.target).toBe("/a?b=c");
    expect(h.targetForm).toBe("origin");
    expect(h.version).toBe("1.1");
    expect(h.headers).toEqual(["host", "example.com", "x-custom-thing", "v a l", "empty", ""]);
    expect(h.length).toBe(bytes("GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-Custom-Thing:   v a l  \r\nEmpty:\r\n\r\n").length);
    expect(h.framing).toBe("none");
    expect(h.contentLength).toBe(-1);
    expect(h.host).toBe("example.com");
    expect(h.keepAlive).toBe(true);
  });

  test("obs-text (bytes ≥ 0x80) and HTAB are allowed in values", () => {
    expect(okReq("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\tau lait\r\n\r\n").headers[3]).toBe("caf\xe9\tau lait");
  });

  test("pipelined requests in one buffer parse one after another", () => {
    const b = bytes(GET + "POST /p HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc" + GET);
    const one = parseRequestHead(b, 0, b.length);
    if (one.kind !== "request") throw new Error("first");
    const two = parseRequestHead(b, one.length, b.length);
    if (two.kind !== "request") throw new Error("second");
    expect(two.method).toBe("POST");
    expect(two.framing).toBe("length");
    expect(two.contentLength).toBe(3);
    const three = parseRequestHead(b, one.length + two.length + 3, b.length);
    expect(three).toMatchObject({ kind: "request", method: "GET", length: one.length });
    expect(one.length + two.length + 3 + (three as { length: number }).length).toBe(b.length);
  });

  test("a request split at every byte offset: need-more before the end, the same head after", () => {
    const whole = okReq(GET);
    const b = bytes(GET);
    for (let k = 0; k < b.length; k++) expect(parseRequestHead(b, 0, k)).toBe(NEED_MORE);
    // the same bytes delivered into a larger buffer with garbage after `end`
    const big = Buffer.alloc(b.length + 10000, 0x41);
    b.copy(big);
    for (let k = 0; k < b.length; k++) expect(parseRequestHead(big, 0, k)).toBe(NEED_MORE);
    expect(parseRequestHead(big, 0, b.length)).toEqual(whole);
  });

  test("leading empty lines are skipped (bounded) and counted in length", () => {
    const h = okReq("\r\n\r\n" + GET);
    expect(h.length).toBe(GET.length + 4);
    okReq("\r\n".repeat(H1_MAX_EMPTY_LINES) + GET);
    expectError(req("\r\n".repeat(H1_MAX_EMPTY_LINES + 1) + GET), "too_many_empty_lines", 400);
    expect(req("\r\n\r")).toBe(NEED_MORE);
  });

  test("HTTP/1.0 defaults to close; Connection: keep-alive keeps it; Host optional", () => {
    expect(okReq("GET / HTTP/1.0\r\n\r\n")).toMatchObject({ version: "1.0", keepAlive: false, host: "" });
    expect(okReq("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive).toBe(true);
    expect(okReq("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keepAlive).toBe(false);
  });

  test("HTTP/1.1 defaults to keep-alive; Connection: close ends it; tokens are collected", () => {
    expect(okReq(GET).keepAlive).toBe(true);
    const h = okReq("GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n");
    expect(h.keepAlive).toBe(false);
    expect(okReq("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo , ,close\r\nConnection: keep-alive\r\n\r\n").connection).toEqual([
      "x-foo",
      "close",
      "keep-alive",
    ]);
    expect(okReq(GET).connection).toEqual([]);
  });

  test("Expect: 100-continue is detected on HTTP/1.1 only", () => {
    expect(okReq("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n").expectContinue).toBe(true);
    expect(okReq("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").expectContinue).toBe(false);
    expect(okReq("PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n").expectContinue).toBe(false);
  });

  test("Upgrade: websocket with Connection: Upgrade on a 1.1 GET is a WebSocket request", () => {
    const ws = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n";
    expect(okReq(ws)).toMatchObject({ websocket: true, upgrade: "WebSocket" });
    expect(okReq(ws.replace("Connection: keep-alive, Upgrade", "Connection: keep-alive")).websocket).toBe(false);
    expect(okReq(ws.replace("GET", "POST")).websocket).toBe(false);
    expect(okReq("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n")).toMatchObject({
      websocket: false,
      upgrade: "h2c",
    });
  });

  test("TE: trailers is reported (gRPC)", () => {
    expect(okReq("POST / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n").teTrailers).toBe(true);
    expect(okReq("POST / HTTP/1.1\r\nHost: a\r\nTE: gzip\r\n\r\n").teTrailers).toBe(false);
  });

  test("Content-Length and chunked framing", () => {
    expect(okReq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")).toMatchObject({ framing: "length", contentLength: 0 });
    expect(okReq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740991\r\n\r\n").contentLength).toBe(Number.MAX_SAFE_INTEGER);
    expect(okReq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").framing).toBe("chunked");
    expect(okReq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n").framing).toBe("chunked");
  });

  test("target forms: absolute-form sets host from the target, OPTIONS *", () => {
    const abs = okReq("GET http://Example.com:8080/x?y HTTP/1.1\r\nHost: other\r\n\r\n");
    expect(abs).toMatchObject({ targetForm: "absolute", host: "Example.com:8080", target: "http://Example.com:8080/x?y" });
    expect(okReq("GET https://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n").host).toBe("a.b");
    expect(okReq("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").targetForm).toBe("asterisk");
  });

  test("unknown methods are tokens and pass; names outside the interned set are lower-cased", () => {
    const h = okReq("PROPFIND / HTTP/1.1\r\nHost: a\r\nX-Weird_Name.1~: v\r\n\r\n");
    expect(h.method).toBe("PROPFIND");
    expect(h.headers[2]).toBe("x-weird_name.1~");
  });

  test("a field line may be split over many parses with no partial error", () => {
    expect(req("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r")).toBe(NEED_MORE);
    expect(req("GET / HTTP/1.1\r\nHost: a\r\n\r")).toBe(NEED_MORE);
  });
});

describe("request heads: rejected (request smuggling and RFC 9112 strictness)", () => {
  const H = "Host: a\r\n";
  const cases: [string, string, string, number][] = [
    ["bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", "bare_lf", 400],
    ["bare LF ending a field line", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", "bare_lf", 400],
    ["bare LF inside a value", "GET / HTTP/1.1\r\nHost: a\r\nX: y\nz\r\n\r\n", "bare_lf", 400],
    ["LF-only head (refused before any terminator)", "GET / HTTP/1.1\nHost: a\n\n", "bare_lf", 400],
    ["bare CR inside a value", "GET / HTTP/1.1\r\nHost: a\r\nX: y\rz\r\n\r\n", "bare_cr", 400],
    ["bare CR before the blank line", "GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n", "bare_cr", 400],
    ["bare CR ending the request line", "GET / HTTP/1.1\rX\r\nHost: a\r\n\r\n", "bare_cr", 400],
    ["bare CR among leading empty lines", "\rGET / HTTP/1.1\r\n\r\n", "bare_cr", 400],
    ["obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", "obs_fold", 400],
    ["obs-fold with HTAB", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tz\r\n\r\n", "obs_fold", 400],
    ["whitespace between name and colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", "space_before_colon", 400],
    ["HTAB between name and colon", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n", "space_before_colon", 400],
    ["empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", "invalid_header_name", 400],
    ["non-token char in name", "GET / HTTP/1.1\r\nHost: a\r\nX(y): v\r\n\r\n", "invalid_header_name", 400],
    ["no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", "invalid_header_name", 400],
    ["non-ASCII name", "GET / HTTP/1.1\r\nHost: a\r\nX\xe9: v\r\n\r\n", "invalid_header_name", 400],
    ["NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", "invalid_header_value", 400],
    ["control char in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", "invalid_header_value", 400],
    ["DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", "invalid_header_value", 400],
    ["CL and TE together", `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`, "cl_and_te", 400],
    ["TE and CL together", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n`, "cl_and_te", 400],
    ["two Content-Length fields, same value (strict)", `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\n`, "duplicate_cl", 400],
    ["two Content-Length fields, different values", `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`, "duplicate_cl", 400],
    ["Content-Length list of the same value (strict)", `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\n`, "duplicate_cl", 400],
    ["Content-Length list of different values", `POST / HTTP/1.1\r\n${H}Content-Length: 5,6\r\n\r\n`, "duplicate_cl", 400],
    ["Content-Length with a sign", `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`, "invalid_cl", 400],
    ["negative Content-Length", `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, "invalid_cl", 400],
    ["hex Content-Length", `POST / HTTP/1.1\r\n${H}Content-Length: 0x10\r\n\r\n`, "invalid_cl", 400],
    ["empty Content-Length", `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, "invalid_cl", 400],
    ["Content-Length with inner space", `POST / HTTP/1.1\r\n${H}Content-Length: 1 2\r\n\r\n`, "invalid_cl", 400],
    ["Content-Length above 2^53-1", `POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740992\r\n\r\n`, "invalid_cl", 400],
    ["Content-Length overflow", `POST / HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\n\r\n`, "invalid_cl", 400],
    ["TE with chunked not last", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, "invalid_te", 400],
    ["TE chunked twice", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n`, "invalid_te", 400],
    ["TE chunked twice over two fields", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`, "invalid_te", 400],
    ["TE chunked then another field", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n`, "invalid_te", 400],
    ["TE identity", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, "invalid_te", 400],
    ["TE empty", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: \r\n\r\n`, "invalid_te", 400],
    ["TE look-alike", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n`, "invalid_te", 400],
    ["TE gzip, chunked (unsupported coding)", `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`, "unsupported_te", 501],
    ["TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "te_in_http10", 400],
    ["missing Host on HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "missing_host", 400],
    ["empty Host (an https URI with an empty host is invalid, RFC 9110 §4.2.2)", "GET / HTTP/1.1\r\nHost: \r\n\r\n", "empty_host", 400],
    ["empty Host on HTTP/1.0", "GET / HTTP/1.0\r\nHost:\r\n\r\n", "empty_host", 400],
    ["two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "duplicate_host", 400],
    ["Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "invalid_host", 400],
    ["Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "invalid_host", 400],
    ["Host with inner space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid_host", 400],
    ["Host with a port that is not digits (RFC 3986 §3.2.3)", "GET / HTTP/1.1\r\nHost: a.test:abc\r\n\r\n", "invalid_host", 400],
    ["Host with a port above 65535", "GET / HTTP/1.1\r\nHost: a.test:99999\r\n\r\n", "invalid_host", 400],
    ["Host with a negative port", "GET / HTTP/1.1\r\nHost: a.test:-1\r\n\r\n", "invalid_host", 400],
    ["IPv6 Host with a bad port", "GET / HTTP/1.1\r\nHost: [::1]:x\r\n\r\n", "invalid_host", 400],
    ["a fragment in the target (RFC 9112 §3.2)", "GET /x#frag HTTP/1.1\r\nHost: a.test\r\n\r\n", "invalid_target", 400],
    ["absolute-form target with a bad port", "GET https://a.test:70000/ HTTP/1.1\r\nHost: a.test\r\n\r\n", "invalid_target", 400],
    ["empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_method", 400],
    ["non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_method", 400],
    ["two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "connect_unsupported", 501],
    ["authority-form without CONNECT", "GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["asterisk-form without OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["absolute-form with another scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["absolute-form with userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["absolute-form with empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["non-ASCII in target", "GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["control char in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["missing version", "GET /\r\nHost: a\r\n\r\n", "invalid_target", 400],
    ["lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", "invalid_version", 400],
    ["garbage version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", "invalid_version", 400],
    ["trailing space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", "invalid_version", 400],
    ["HTTP/2.0 (the h2 preface)", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "unsupported_version", 505],
    ["HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "unsupported_version", 505],
    ["HTTP/0.9 style", "GET / HTTP/0.9\r\n\r\n", "unsupported_version", 505],
  ];
  for (const [name, wire, reason, status] of cases) {
    test(`${name} → ${status} ${reason}`, () => expectError(req(wire), reason as never, status));
  }

  test("head larger than maxHeadBytes → 431 head_too_large, even before the terminator arrives", () => {
    const big = "GET / HTTP/1.1\r\nHost: a\r\n" + "X-Filler: " + "v".repeat(H1_DEFAULT_LIMITS.maxHeadBytes) + "\r\n\r\n";
    expectError(req(big), "head_too_large", 431);
    expectError(req(big.slice(0, H1_DEFAULT_LIMITS.maxHeadBytes + 10)), "head_too_large", 431);
    // exactly at the limit is fine
    const base = "GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n";
    const exact = base.replace("X: ", "X: " + "v".repeat(H1_DEFAULT_LIMITS.maxHeadBytes - base.length));
    expect(bytes(exact).length).toBe(H1_DEFAULT_LIMITS.maxHeadBytes);
    okReq(exact);
    expectError(req(exact.replace("X: ", "X: v")), "head_too_large", 431);
  });

  test("a request line longer than the head limit → 414 target_too_long", () => {
    expectError(req("GET /" + "a".repeat(H1_DEFAULT_LIMITS.maxHeadBytes)), "target_too_long", 414);
  });

  test("more than maxHeaders field lines → 431 too_many_headers", () => {
    const fields = (n: number) => "GET / HTTP/1.1\r\nHost: a\r\n" + "X: y\r\n".repeat(n - 1) + "\r\n";
    okReq(fields(H1_DEFAULT_LIMITS.maxHeaders));
    expectError(req(fields(H1_DEFAULT_LIMITS.maxHeaders + 1)), "too_many_headers", 431);
  });

  test("limits can be overridden per call", () => {
    const limits = { ...H1_DEFAULT_LIMITS, maxHeaders: 2, maxHeadBytes: 64 };
    const b = bytes("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n");
    expectError(parseRequestHead(b, 0, b.length, limits), "too_many_headers", 431);
    const c = bytes("GET / HTTP/1.1\r\nHost: a\r\nX: " + "v".repeat(60) + "\r\n\r\n");
    expectError(parseRequestHead(c, 0, c.length, limits), "head_too_large", 431);
  });
});
