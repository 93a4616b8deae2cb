/**
 * Interop with real peers, each case a bug a black-box sweep found (curl,
 * nghttp, Go, HAProxy, Node 20 as client or backend), through the compiled
 * binary:
 * - a Node 20 node:http2 backend that ends a content-length body with
 *   RST_STREAM(NO_ERROR) instead of END_STREAM (it does, depending on the
 *   window updates it gets): the client gets the response ended, not reset;
 *   a reset before the whole body still fails the client's response;
 * - HTTP/2 cookie fields reach an HTTP/1.1 backend as one `cookie` line
 *   joined with "; " (RFC 9113 §8.2.3);
 * - an SNI with its trailing dot (`a.test.`) routes and serves, no 421;
 * - an HTTP/1.1 backend's 204 with Content-Length reaches an HTTP/2 client
 *   without it (RFC 9110 §8.6; curl rejects the stream otherwise);
 * - `Expect: 100-continue` over HTTP/2 gets its 100 at once;
 * - 1xx heads from the backend (103 Early Hints) reach the client on both
 *   fronts, from HTTP/1.1 and h2c backends (RFC 9110 §15.2).
 * The real Node is the backend where Node's behaviour is the point (Bun's
 * node:http2 is another implementation).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import { L7_MAX_INFORMATIONAL_HEADS } from "../../src/limits.ts";
import { cleanupCerts, curl, e2ePki, killAllServers, route, startProxy, startRawBackend, tlsClient, type RawBackend, type ServerProc } from "./e2e.ts";

/** A Node 20 h2c backend: GET /drain?n=N answers N bytes, ending only after 'drain'; /cut?n=N resets with NO_ERROR after N/2; /hints sends 103 then 200. */
const NODE_BACKEND = `
const http2 = require("node:http2");
const server = http2.createServer();
server.on("stream", (s, h) => {
  s.on("error", () => {});
  const u = new URL(h[":path"], "http://x");
  const n = Number(u.searchParams.get("n") || 65536);
  if (u.pathname === "/drain") {
    s.respond({ ":status": 200, "content-length": String(n) });
    if (s.write(Buffer.alloc(n, 97))) s.end(); else s.once("drain", () => s.end());
  } else if (u.pathname === "/cut") {
    s.respond({ ":status": 200, "content-length": String(n) });
    s.write(Buffer.alloc(n / 2, 98), () => s.close(http2.constants.NGHTTP2_NO_ERROR));
  } else if (u.pathname === "/hints") {
    s.additionalHeaders({ ":status": 103, link: "</style.css>; rel=preload" });
    s.respond({ ":status": 200, "content-type": "text/plain" });
    s.end("after hints");
  } else { s.respond({ ":status": 404 }); s.end(); }
});
server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\\n"));
`;

let node: ReturnType<typeof Bun.spawn>;
let nodePort = 0;
let be: RawBackend;
let p: ServerProc;
let port: number;

async function startNodeBackend(): Promise<void> {
  node = Bun.spawn(["node", "-e", NODE_BACKEND], { stdout: "pipe", stderr: "ignore" });
  const reader = (node.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const end = Date.now() + 10_000;
  while (!text.includes("\n") && Date.now() < end) {
    const r = await reader.read();
    if (r.done) break;
    text += new TextDecoder().decode(r.value);
  }
  reader.releaseLock();
  nodePort = Number(text.trim());
  if (!(nodePort > 0)) throw new Error(`node backend did not start: ${text}`);
}

beforeAll(async () => {
  e2ePki();
  await startNodeBackend();
  be = await startRawBackend((r) => {
    const path = r.req.path;
    if (path === "/204") {
      r.sock.write("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\nx-a: 1\r\n\r\n");
    } else if (path === "/hints") {
      r.sock.write("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n");
      setTimeout(() => r.send(200, "after hints", { "content-type": "text/plain" }), 50);
    } else if (path === "/hints40") {
      r.sock.write("HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n".repeat(40));
      r.send(200, "after 40 hints", { "content-type": "text/plain" });
    } else if (path === "/101") {
      r.sock.write("HTTP/1.1 101 Switching Protocols\r\n\r\nhello raw bytes");
    } else if (path === "/continue") {
      r.sock.write("HTTP/1.1 100 Continue\r\n\r\n");
      r.send(200, `got ${r.req.body.byteLength}`);
    } else {
      r.send(200, JSON.stringify({ cookie: r.req.headers.get("cookie") ?? [], bytes: r.req.body.byteLength }), { "content-type": "application/json" });
    }
  });
  p = await startProxy([route({ backend: `127.0.0.1:${nodePort}`, backendProtocol: "h2" }), route({ hostname: "b.test", backend: be.addr })]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  node?.kill();
  await be?.stop();
  killAllServers();
  cleanupCerts();
});

describe("Node 20 h2c backend", () => {
  for (const n of [65536, 1024 * 1024]) {
    test(`${n} bytes ended by RST_STREAM(NO_ERROR) after the whole content-length: curl --http2 gets all of it, exit 0 (5 times)`, async () => {
      for (let i = 0; i < 5; i++) {
        const r = await curl(port, `/drain?n=${n}&i=${i}`, ["--http2"]);
        expect({ code: r.code, stderr: r.stderr, status: r.status, bytes: r.body.length }).toEqual({ code: 0, stderr: "", status: 200, bytes: n });
      }
    });
  }

  test("RST_STREAM(NO_ERROR) before the whole content-length: the client's response fails (never a short success)", async () => {
    const r = await curl(port, "/cut?n=100000", ["--http2", "-o", "/dev/null"]);
    expect(r.code).not.toBe(0);
  });

  test("103 Early Hints from an h2c backend reach an HTTP/2 client before the 200", async () => {
    const r = await curl(port, "/hints", ["--http2"]);
    expect(r.code).toBe(0);
    expect(r.blocks.map((b) => b.status)).toEqual([103, 200]);
    expect(r.blocks[0]!.headers.link).toBe("</style.css>; rel=preload");
    expect(r.body).toBe("after hints");
  });
});

describe("HTTP/1.1 backend", () => {
  test("HTTP/2 cookie fields reach an HTTP/1.1 backend as one line joined with \"; \" (RFC 9113 §8.2.3)", async () => {
    const ca = e2ePki().ca.certPem;
    const session = http2.connect(`https://b.test:${port}`, { ca, servername: "b.test", host: "127.0.0.1", port } as unknown as http2.SecureClientSessionOptions);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        // Node sends each element of a cookie array as its own field.
        const req = session.request({ ":path": "/cookies", cookie: ["a=1", "b=2", "c=3"] });
        let text = "";
        req.setEncoding("utf8");
        req.on("data", (d: string) => (text += d));
        req.on("end", () => resolve(text));
        req.on("error", reject);
        req.end();
      });
      expect(JSON.parse(body).cookie).toEqual(["a=1; b=2; c=3"]);
    } finally {
      session.close();
    }
  });

  test("an SNI with its trailing dot (b.test.) is served, not answered 421, whether Host has the dot or not", async () => {
    // curl drops the dot from its SNI; node:tls sends the name as given (as gnutls-cli and openssl do).
    for (const host of ["b.test", "b.test."]) {
      const c = await tlsClient(port, { servername: "b.test.", alpn: ["http/1.1"] });
      c.sock.write(`GET /dot HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(await c.closed(5000)).toBe(true);
      expect(c.text().split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
    }
    expect(p.logs.filter((l) => l.event === "l7.misdirected")).toEqual([]);
  });

  test("a 204 with Content-Length reaches an HTTP/2 client without it (RFC 9110 §8.6), and an HTTP/1.1 client", async () => {
    for (const proto of ["--http2", "--http1.1"]) {
      const r = await curl(port, "/204", [proto], { host: "b.test" });
      expect({ proto, code: r.code, status: r.status, stderr: r.stderr }).toEqual({ proto, code: 0, status: 204, stderr: "" });
      expect(r.headers["content-length"]).toBeUndefined();
      expect(r.headers["x-a"]).toBe("1");
    }
  });

  test("Expect: 100-continue over HTTP/2 gets its 100 at once (the body is not held for curl's 10 s timeout); the backend's own 100 is not repeated", async () => {
    const body = new Uint8Array(2 * 1024 * 1024);
    for (const proto of ["--http2", "--http1.1"]) {
      const r = await curl(port, "/continue", [proto, "--expect100-timeout", "10", "-H", "Expect: 100-continue", "--data-binary", "@-"], { host: "b.test", stdin: body });
      expect({ proto, code: r.code, status: r.status, body: r.body }).toEqual({ proto, code: 0, status: 200, body: `got ${body.byteLength}` });
      expect(r.blocks.map((b) => b.status)).toEqual([100, 200]);
      expect(r.ms).toBeLessThan(5000);
    }
  });

  test("103 Early Hints from an HTTP/1.1 backend reach the client before the 200, over HTTP/2 and HTTP/1.1", async () => {
    for (const proto of ["--http2", "--http1.1"]) {
      const r = await curl(port, "/hints", [proto], { host: "b.test" });
      expect({ proto, code: r.code, statuses: r.blocks.map((b) => b.status) }).toEqual({ proto, code: 0, statuses: [103, 200] });
      expect(r.blocks[0]!.headers.link).toBe("</style.css>; rel=preload");
      expect(r.body).toBe("after hints");
    }
  });

  test(`a backend's 1xx heads past L7_MAX_INFORMATIONAL_HEADS (${L7_MAX_INFORMATIONAL_HEADS}) are dropped; the final response follows`, async () => {
    for (const proto of ["--http2", "--http1.1"]) {
      const r = await curl(port, "/hints40", [proto], { host: "b.test" });
      expect({ proto, code: r.code, statuses: r.blocks.map((b) => b.status) }).toEqual({ proto, code: 0, statuses: [...Array<number>(L7_MAX_INFORMATIONAL_HEADS).fill(103), 200] });
      expect(r.body).toBe("after 40 hints");
    }
  });

  test("a 101 to a request that asked for no upgrade is the backend's error: 502 on both fronts, no tunnel, no handler exception", async () => {
    for (const proto of ["--http2", "--http1.1"]) {
      const r = await curl(port, "/101", [proto], { host: "b.test" });
      expect({ proto, code: r.code, status: r.status }).toEqual({ proto, code: 0, status: 502 });
      expect(r.body).not.toContain("hello raw bytes");
    }
  });

  test("an HTTP/1.0 client gets no 1xx (RFC 9110 §15.2), only the final response", async () => {
    const r = await curl(port, "/hints", ["--http1.0"], { host: "b.test" });
    expect({ code: r.code, statuses: r.blocks.map((b) => b.status) }).toEqual({ code: 0, statuses: [200] });
  });
});
