import { describe, expect, test } from "bun:test";
import { backendRequestHeaders, clientResponseHeaders, isWebSocketUpgrade, websocketRequestHead } from "../../src/l7/headers.ts";

describe("request headers towards the backend (SPEC §5)", () => {
  test("client-sent forwarding headers are replaced by the real client address", () => {
    const out = backendRequestHeaders(
      { "x-forwarded-for": "6.6.6.6, 7.7.7.7", "x-real-ip": "6.6.6.6", "x-forwarded-proto": "http", forwarded: "for=6.6.6.6", accept: "*/*" },
      "203.0.113.9",
    );
    expect(out).toEqual({ accept: "*/*", "x-forwarded-for": "203.0.113.9", "x-real-ip": "203.0.113.9", "x-forwarded-proto": "https" });
  });

  test("hop-by-hop headers and headers named in Connection are dropped; pseudo-headers and Host are left to the caller", () => {
    const out = backendRequestHeaders(
      {
        ":method": "GET", ":path": "/", ":authority": "a.test", host: "a.test",
        connection: "keep-alive, X-Secret", "x-secret": "1", "keep-alive": "timeout=5", "proxy-connection": "keep-alive",
        "transfer-encoding": "chunked", upgrade: "h2c", "http2-settings": "AAA", te: "gzip", "x-ok": "1",
      },
      "1.2.3.4",
    );
    for (const k of [":method", ":path", ":authority", "host", "connection", "x-secret", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings", "te"]) {
      expect(out[k]).toBeUndefined();
    }
    expect(out["x-ok"]).toBe("1");
  });

  test("TE: trailers is kept (gRPC needs it)", () => {
    expect(backendRequestHeaders({ te: "trailers" }, "1.2.3.4")["te"]).toBe("trailers");
  });

  test("response headers lose hop-by-hop headers and pseudo-headers, keep the rest (incl. set-cookie arrays)", () => {
    const out = clientResponseHeaders({ ":status": "200", connection: "close, x-hop", "x-hop": "1", "keep-alive": "x", "transfer-encoding": "chunked", "set-cookie": ["a=1", "b=2"], "content-type": "text/plain" });
    expect(out).toEqual({ "set-cookie": ["a=1", "b=2"], "content-type": "text/plain" });
  });

  test("WebSocket upgrade request head keeps Upgrade/Connection and sets forwarding headers", () => {
    const h = { host: "a.test", upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "k", "x-forwarded-for": "6.6.6.6" };
    expect(isWebSocketUpgrade(h)).toBe(true);
    expect(isWebSocketUpgrade({ upgrade: "h2c" })).toBe(false);
    const head = websocketRequestHead("GET", "/chat", "a.test", h, "1.2.3.4");
    expect(head.startsWith("GET /chat HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n")).toBe(true);
    expect(head).toContain("sec-websocket-key: k\r\n");
    expect(head).toContain("x-forwarded-for: 1.2.3.4\r\n");
    expect(head).not.toContain("6.6.6.6");
    expect(head.endsWith("\r\n\r\n")).toBe(true);
  });
});
