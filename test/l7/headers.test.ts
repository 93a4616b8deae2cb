import { describe, expect, test } from "bun:test";
import { authorityHost, backendRequestFields, ClientFieldsMemo, clientResponseFields, fieldJoined, joinCookies, requestTrailerFields } from "../../src/l7/headers.ts";

describe("request headers towards the backend (SPEC §5)", () => {
  test("client-sent forwarding headers are replaced by the real client address", () => {
    const out = backendRequestFields(
      ["x-forwarded-for", "6.6.6.6, 7.7.7.7", "x-real-ip", "6.6.6.6", "x-forwarded-proto", "http", "forwarded", "for=6.6.6.6", "accept", "*/*"],
      "203.0.113.9",
    );
    expect(out).toEqual(["accept", "*/*", "x-forwarded-for", "203.0.113.9", "x-real-ip", "203.0.113.9", "x-forwarded-proto", "https"]);
  });

  test("X-Forwarded-Host/-Port/-Prefix, X-Client-IP and True-Client-IP are never forwarded (SPEC §5 rev 3)", () => {
    const out = backendRequestFields(
      ["x-forwarded-host", "evil.test", "x-forwarded-port", "1", "x-forwarded-prefix", "/admin", "x-client-ip", "6.6.6.6", "true-client-ip", "6.6.6.6", "x-ok", "1"],
      "1.2.3.4",
    );
    expect(out.filter((_, i) => i % 2 === 0)).toEqual(["x-ok", "x-forwarded-for", "x-real-ip", "x-forwarded-proto"]);
  });

  test("forwarding headers spelled with \"_\" for \"-\" are dropped too (CGI maps both to HTTP_X_FORWARDED_FOR); other \"_\" names pass", () => {
    const out = backendRequestFields(
      ["x_forwarded_for", "6.6.6.6", "x_real_ip", "6.6.6.6", "true_client_ip", "6.6.6.6", "x-forwarded_host", "evil.test", "x_ok", "1", "x_forwarded", "2"],
      "1.2.3.4",
    );
    expect(out).toEqual(["x_ok", "1", "x_forwarded", "2", "x-forwarded-for", "1.2.3.4", "x-real-ip", "1.2.3.4", "x-forwarded-proto", "https"]);
    expect(requestTrailerFields(["x_forwarded_for", "6.6.6.6", "x_checksum", "1"])).toEqual(["x_checksum", "1"]);
  });

  test("hop-by-hop headers and headers named in Connection are dropped; pseudo-headers, Host and framing are left to the caller", () => {
    const out = backendRequestFields(
      [
        ":method", "GET", ":path", "/", ":authority", "a.test", "host", "a.test",
        "connection", "keep-alive, X-Secret", "x-secret", "1", "keep-alive", "timeout=5", "proxy-connection", "keep-alive",
        "transfer-encoding", "chunked", "content-length", "5", "upgrade", "h2c", "http2-settings", "AAA", "te", "gzip", "x-ok", "1",
      ],
      "1.2.3.4",
    );
    const names = out.filter((_, i) => i % 2 === 0);
    for (const k of [":method", ":path", ":authority", "host", "connection", "x-secret", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "upgrade", "http2-settings", "te"]) {
      expect(names).not.toContain(k);
    }
    expect(names).toContain("x-ok");
  });

  test("cookie fields (HTTP/2 sends one per cookie) become one, joined with \"; \", at the first one's place (RFC 9113 §8.2.3)", () => {
    const f = ["cookie", "a=1", "accept", "cookie", "cookie", "b=2", "x", "y", "cookie", "c=3"];
    expect(joinCookies(f)).toEqual(["cookie", "a=1; b=2; c=3", "accept", "cookie", "x", "y"]);
    expect(joinCookies(["accept", "cookie", "cookie", "a=1; b=2"])).toEqual(["accept", "cookie", "cookie", "a=1; b=2"]);
    const one = ["cookie", "a=1"];
    expect(joinCookies(one)).toBe(one);
  });

  test("client trailers lose forwarding claims, framing, routing and authentication (SPEC §5, RFC 9110 §6.5.1); the rest pass", () => {
    const t = [
      "x-forwarded-for", "6.6.6.6", "x-real-ip", "6.6.6.6", "forwarded", "for=6.6.6.6", "host", "evil.test", "content-length", "0",
      "transfer-encoding", "chunked", "authorization", "Basic x", "cookie", "a=1", ":path", "/x", "x-checksum", "abc", "grpc-foo", "1",
    ];
    expect(requestTrailerFields(t)).toEqual(["x-checksum", "abc", "grpc-foo", "1"]);
    const clean = ["x-checksum", "abc"];
    expect(requestTrailerFields(clean)).toBe(clean);
  });

  test("TE: trailers is kept (gRPC needs it)", () => {
    expect(fieldJoined(backendRequestFields(["te", "trailers"], "1.2.3.4"), "te")).toBe("trailers");
  });

  test("response headers lose hop-by-hop headers and pseudo-headers, keep the rest (repeated set-cookie too)", () => {
    const out = clientResponseFields(
      [":status", "200", "connection", "close, x-hop", "x-hop", "1", "keep-alive", "x", "transfer-encoding", "chunked", "set-cookie", "a=1", "set-cookie", "b=2", "content-type", "text/plain"],
      false,
    );
    expect(out).toEqual(["set-cookie", "a=1", "set-cookie", "b=2", "content-type", "text/plain"]);
  });

  test("Content-Length is kept only when the body passes through unchanged", () => {
    expect(clientResponseFields(["content-length", "5"], true)).toEqual(["content-length", "5"]);
    expect(clientResponseFields(["content-length", "5"], false)).toEqual([]);
  });

  test("the request's host for the 421 check: port and one trailing dot dropped, lower-cased", () => {
    expect(authorityHost("A.Test:8443")).toBe("a.test");
    expect(authorityHost("a.test.")).toBe("a.test");
    expect(authorityHost("[::1]:443")).toBe("[::1]");
  });
});

describe("ClientFieldsMemo", () => {
  test("gives what clientResponseFields gives; the same list object again (and the same flag) costs no new list; entries are replaced in turn", () => {
    const memo = new ClientFieldsMemo(4);
    const lists = [0, 1, 2, 3, 4].map((i) => [":status", "200", "connection", "close", "content-length", String(i), "x-i", String(i)]);
    const first = lists.map((l) => memo.of(l, true));
    lists.forEach((l, i) => expect(first[i]).toEqual(clientResponseFields(l, true)));
    // Lists 1–4 are remembered (0 was replaced by 4): the same arrays come back.
    for (let i = 1; i < 5; i++) expect(memo.of(lists[i]!, true)).toBe(first[i]!);
    // List 0 again: computed anew (and equal); the other flag is its own entry.
    const again = memo.of(lists[0]!, true);
    expect(again).not.toBe(first[0]!);
    expect(again).toEqual(first[0]!);
    const noLength = memo.of(lists[0]!, false);
    expect(noLength).toEqual(clientResponseFields(lists[0]!, false));
    expect(noLength).not.toContain("content-length");
    // Equal content in another array is another list: never mistaken for a remembered one by value.
    const copy = [...lists[4]!];
    copy[7] = "changed";
    expect(memo.of(copy, true)).toEqual(clientResponseFields(copy, true));
  });
});
