import { describe, expect, test } from "bun:test";
import { H2_ERROR, H2Error } from "../../../src/l7/h2/errors.ts";
import {
  isValidFieldName,
  isValidFieldValue,
  parseContentLength,
  validateRequestHeaders,
  validateResponseHeaders,
  validateTrailers,
} from "../../../src/l7/h2/headers.ts";

const GET = [":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/"];

function malformed(r: unknown, reason?: string): void {
  expect(r).toBeInstanceOf(H2Error);
  const e = r as H2Error;
  expect([e.scope, e.code]).toEqual(["stream", H2_ERROR.PROTOCOL_ERROR]);
  if (reason) expect(e.reason).toBe(reason);
}

describe("requests (RFC 9113 §8.3.1)", () => {
  test("a browser-like GET gives its pseudo-headers and where regular fields start", () => {
    const r = validateRequestHeaders([...GET, "user-agent", "x", "cookie", "a=1", "cookie", "b=2"]);
    expect(r).toEqual({ method: "GET", scheme: "https", authority: "a.test", path: "/", protocol: null, contentLength: -1, regularStart: 8 });
  });

  test("content-length is parsed; repeated equal values are fine, different ones are not", () => {
    expect(validateRequestHeaders([...GET, "content-length", "42", "content-length", "42"])).toMatchObject({ contentLength: 42 });
    malformed(validateRequestHeaders([...GET, "content-length", "42", "content-length", "43"]), "conflicting_content_length");
    for (const bad of ["", "-1", "+1", " 1", "1,1", "0x10", "1234567890123456"]) {
      malformed(validateRequestHeaders([...GET, "content-length", bad]));
    }
  });

  const cases: Array<[string, string[], string]> = [
    ["upper-case field name", [...GET, "User-Agent", "x"], "uppercase_field_name"],
    ["field name with a space", [...GET, "user agent", "x"], "bad_field_name"],
    ["field name with a colon inside", [...GET, "x:y", "x"], "bad_field_name"],
    ["empty field name", [...GET, "", "x"], "bad_field_name"],
    ["field value with CR LF", [...GET, "x-a", "a\r\nb: c"], "bad_field_value"],
    ["field value with NUL", [...GET, "x-a", "a\0"], "bad_field_value"],
    ["field value with leading space", [...GET, "x-a", " a"], "bad_field_value"],
    ["field value with trailing tab", [...GET, "x-a", "a\t"], "bad_field_value"],
    ["pseudo-header after a regular field", [":method", "GET", ":scheme", "https", "x-a", "1", ":path", "/"], "pseudo_header_after_regular"],
    ["duplicate :path", [...GET, ":path", "/x"], "duplicate_pseudo_header"],
    ["duplicate :method", [":method", "GET", ...GET], "duplicate_pseudo_header"],
    ["unknown pseudo-header", [":foo", "bar", ...GET], "unknown_pseudo_header"],
    [":status in a request", [":status", "200", ...GET], "response_pseudo_header_in_request"],
    [":protocol without extended CONNECT", [...GET.slice(0, 2), ":protocol", "websocket", ...GET.slice(2)], "unknown_pseudo_header"],
    ["missing :method", GET.slice(2), "missing_method"],
    ["missing :scheme", [":method", "GET", ":path", "/"], "missing_scheme"],
    ["missing :path", [":method", "GET", ":scheme", "https"], "missing_path"],
    ["empty :path", [":method", "GET", ":scheme", "https", ":path", ""], "empty_path"],
    ["relative :path", [":method", "GET", ":scheme", "https", ":path", "index.html"], "bad_path"],
    ["* :path on GET", [":method", "GET", ":scheme", "https", ":path", "*"], "bad_path"],
    ["userinfo in :authority", [":method", "GET", ":scheme", "https", ":authority", "u:p@a.test", ":path", "/"], "authority_with_userinfo"],
    ["a fragment in :path", [":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", "/x#frag"], "fragment_in_path"],
    ["a port that is not digits in :authority", [":method", "GET", ":scheme", "https", ":authority", "a.test:abc", ":path", "/"], "authority_bad_port"],
    ["a port above 65535 in :authority", [":method", "GET", ":scheme", "https", ":authority", "[::1]:65536", ":path", "/"], "authority_bad_port"],
    ["host differing from :authority", [...GET, "host", "b.test"], "host_authority_mismatch"],
    ["connection", [...GET, "connection", "keep-alive"], "connection_specific_field"],
    ["keep-alive", [...GET, "keep-alive", "5"], "connection_specific_field"],
    ["proxy-connection", [...GET, "proxy-connection", "close"], "connection_specific_field"],
    ["transfer-encoding", [...GET, "transfer-encoding", "chunked"], "connection_specific_field"],
    ["upgrade", [...GET, "upgrade", "websocket"], "connection_specific_field"],
    ["te other than trailers", [...GET, "te", "trailers, deflate"], "te_not_trailers"],
    ["method that is not a token", [":method", "G T", ":scheme", "https", ":path", "/"], "bad_method"],
    ["CONNECT with :path", [":method", "CONNECT", ":authority", "a.test:443", ":path", "/"], "connect_with_scheme_or_path"],
    ["CONNECT without :authority", [":method", "CONNECT"], "connect_without_authority"],
  ];
  for (const [what, fields, reason] of cases) {
    test(`malformed: ${what}`, () => malformed(validateRequestHeaders(fields), reason));
  }

  test("te: trailers, OPTIONS *, host equal to :authority (any case) are accepted", () => {
    expect(validateRequestHeaders([...GET, "te", "trailers"])).not.toBeInstanceOf(H2Error);
    expect(validateRequestHeaders([":method", "OPTIONS", ":scheme", "https", ":path", "*"])).not.toBeInstanceOf(H2Error);
    expect(validateRequestHeaders([...GET, "host", "A.Test"])).not.toBeInstanceOf(H2Error);
  });

  test("CONNECT needs only :method and :authority", () => {
    expect(validateRequestHeaders([":method", "CONNECT", ":authority", "a.test:443"])).toMatchObject({ method: "CONNECT", scheme: null, path: null });
  });

  test("extended CONNECT (RFC 8441) with :protocol needs all four pseudo-headers", () => {
    const ws = [":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/chat", ":authority", "a.test"];
    expect(validateRequestHeaders(ws, { extendedConnect: true })).toMatchObject({ protocol: "websocket", path: "/chat" });
    malformed(validateRequestHeaders(ws.slice(0, 8), { extendedConnect: true }), "connect_without_authority");
    malformed(validateRequestHeaders([":method", "GET", ":protocol", "websocket", ":scheme", "https", ":path", "/"], { extendedConnect: true }), "protocol_without_connect");
  });
});

describe("responses (§8.3.2) and trailers (§8.1)", () => {
  test("status and content-length", () => {
    expect(validateResponseHeaders([":status", "200", "content-length", "0", "content-type", "text/plain"])).toEqual({ status: 200, contentLength: 0, regularStart: 2 });
    expect(validateResponseHeaders([":status", "103", "link", "</a.css>"])).toMatchObject({ status: 103 });
  });
  const cases: Array<[string, string[], string]> = [
    ["missing :status", ["content-type", "x"], "missing_status"],
    ["two :status", [":status", "200", ":status", "204"], "duplicate_pseudo_header"],
    ["status 101", [":status", "101"], "bad_status"],
    ["status of two digits", [":status", "99"], "bad_status"],
    ["status 600", [":status", "600"], "bad_status"],
    ["status with a sign", [":status", "+20"], "bad_status"],
    [":path in a response", [":status", "200", ":path", "/"], "request_pseudo_header_in_response"],
    ["transfer-encoding in a response", [":status", "200", "transfer-encoding", "chunked"], "connection_specific_field"],
    ["upper-case name", [":status", "200", "Content-Type", "x"], "uppercase_field_name"],
  ];
  for (const [what, fields, reason] of cases) {
    test(`malformed: ${what}`, () => malformed(validateResponseHeaders(fields), reason));
  }

  test("trailers: regular fields only", () => {
    expect(validateTrailers(["grpc-status", "0", "grpc-message", ""])).toBeNull();
    malformed(validateTrailers([":status", "200"]), "pseudo_header_in_trailers");
    malformed(validateTrailers(["connection", "close"]), "connection_specific_field");
  });
});

describe("field primitives", () => {
  test("names: lower-case tokens only", () => {
    expect(isValidFieldName("x-forwarded-for")).toBe(true);
    expect(isValidFieldName("a!#$%&'*+-.^_`|~9")).toBe(true);
    for (const bad of ["", "A", "a b", "a:b", "a\x7f", "é", "a(b)", "a\"b"]) expect(isValidFieldName(bad)).toBe(false);
  });
  test("values: obs-text allowed, NUL/CR/LF and edge whitespace refused", () => {
    expect(isValidFieldValue("")).toBe(true);
    expect(isValidFieldValue("a \t b\xff")).toBe(true);
    for (const bad of ["\0", "a\rb", "a\nb", " a", "a ", "\ta", "a\u0100"]) expect(isValidFieldValue(bad)).toBe(false);
  });
  test("content-length", () => {
    expect(parseContentLength("0")).toBe(0);
    expect(parseContentLength("999999999999999")).toBe(999999999999999);
    expect(parseContentLength("1e3")).toBe(-1);
  });
});
