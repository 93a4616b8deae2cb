/**
 * HTTP/1.1 → HTTP/1.1 heads passed through as bytes (RequestHead /
 * ResponseHead `forwardable`): what the backend and the client receive,
 * byte for byte, through the real L7 runtime with a scripted raw backend —
 * and that anything the proxy must rewrite still takes the rebuilt path.
 */
import type { Socket } from "bun";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import tls from "node:tls";
import { HOST, routeRecord, startHarness, testPki, type L7Harness } from "./harness.ts";

/** A backend that records every byte it receives and answers each request head with the next scripted reply (a list of writes). */
interface Scripted {
  port: number;
  /** Bytes received, per connection, as latin1. */
  received: string[];
  /** Replies, one per request head, each a list of writes (sent 20 ms apart). */
  replies: string[][];
  stop(): void;
}

function startScripted(): Scripted {
  const received: string[] = [];
  const replies: string[][] = [];
  const server = Bun.listen<{ i: number; buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { i: received.length, buf: "" };
        received.push("");
      },
      async data(s: Socket<{ i: number; buf: string }>, chunk) {
        const text = Buffer.from(chunk).toString("latin1");
        received[s.data.i] += text;
        log += text;
        s.data.buf += text;
        while (s.data.buf.includes("\r\n\r\n")) {
          s.data.buf = s.data.buf.slice(s.data.buf.indexOf("\r\n\r\n") + 4);
          const reply = replies.shift() ?? ["HTTP/1.1 500 No Script\r\nContent-Length: 0\r\n\r\n"];
          for (let k = 0; k < reply.length; k++) {
            if (k > 0) await Bun.sleep(20);
            s.write(reply[k]!);
          }
        }
      },
    },
  });
  return { port: server.port, received, replies, stop: () => server.stop(true) };
}

/** Sends `request` over TLS (ALPN http/1.1) and collects the answer bytes for `waitMs` or until close. */
function exchange(port: number, request: string, waitMs = 600): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    const s = tls.connect({ host: "127.0.0.1", port, servername: HOST, ca: testPki().ca.certPem, ALPNProtocols: ["http/1.1"] }, () => s.write(request));
    s.on("data", (d: Buffer) => (text += d.toString("latin1")));
    s.on("error", () => {});
    const timer = setTimeout(() => s.destroy(), waitMs);
    s.on("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

let be: Scripted;
let h: L7Harness;

beforeAll(() => {
  be = startScripted();
  h = startHarness(routeRecord(`127.0.0.1:${be.port}`, { backendProtocol: "http1" }), { clientAddress: "192.0.2.7" });
});
afterAll(() => {
  h.stop();
  be.stop();
});

/** Everything the backend received, over all connections, in arrival order. */
let log = "";

/** Runs one exchange; returns the client's bytes and what the backend received meanwhile. */
async function run(request: string, waitMs?: number): Promise<{ res: string; got: string }> {
  const at = log.length;
  const res = await exchange(h.port, request, waitMs);
  return { res, got: log.slice(at) };
}

const OK = ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"];
const FWD = "x-forwarded-for: 192.0.2.7\r\nx-real-ip: 192.0.2.7\r\nx-forwarded-proto: https\r\n\r\n";

describe("request heads", () => {
  test("a clean HTTP/1.1 head reaches the backend byte for byte (case and order kept), plus our forwarding fields", async () => {
    be.replies.push(OK);
    const req = `GET /a?b=1 HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: Test/1\r\nX-Mixed-Case: Value  With  Spaces\r\nAccept: */*\r\n\r\n`;
    const { res, got } = await run(req);
    expect(res).toStartWith("HTTP/1.1 200 OK\r\n");
    expect(got).toBe(req.slice(0, -2) + FWD);
  });

  test("hop-by-hop lines and client forwarding claims are cut out of the copy; the rest stays byte for byte", async () => {
    be.replies.push(OK);
    const req =
      `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: keep-alive\r\nX-Forwarded-For: 6.6.6.6\r\nKeep-Alive: timeout=5\r\n` +
      `X-Keep: 1\r\nTrue-Client-IP: 6.6.6.6\r\nX-Forwarded-Host: evil.test\r\nProxy-Connection: keep-alive\r\nX-Last: 2\r\n\r\n`;
    const { got } = await run(req);
    expect(got).toBe(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Keep: 1\r\nX-Last: 2\r\n${FWD}`);
  });

  test("forwarding claims spelled with \"_\" (X_Forwarded_For, True_Client_IP) are cut out of the copy too; other \"_\" names stay", async () => {
    be.replies.push(OK);
    const req = `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX_Forwarded_For: 6.6.6.6\r\nMy_Header: 1\r\nTRUE_CLIENT_IP: 6.6.6.6\r\nx-real_ip: 6.6.6.6\r\nX_Last: 2\r\n\r\n`;
    const { got } = await run(req);
    expect(got).toBe(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nMy_Header: 1\r\nX_Last: 2\r\n${FWD}`);
  });

  test("a Content-Length body follows the copied head", async () => {
    be.replies.push(OK);
    const req = `POST /up HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nhello`;
    const { got } = await run(req);
    expect(got).toBe(`POST /up HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n${FWD}hello`);
  });

  test("Connection naming another field, TE, chunked, HTTP/1.0 and absolute-form are rebuilt (the named field is removed)", async () => {
    be.replies.push(OK);
    let head = (await run(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Ok: 1\r\n\r\n`)).got;
    expect(head).toStartWith(`GET / HTTP/1.1\r\nhost: ${HOST}\r\n`);
    expect(head.toLowerCase()).not.toContain("x-secret");
    expect(head).toContain("x-ok: 1\r\n");

    be.replies.push(OK);
    expect((await run(`GET / HTTP/1.1\r\nHost: ${HOST}\r\nTE: trailers\r\n\r\n`)).got).toContain("te: trailers\r\n");

    be.replies.push(OK);
    head = (await run(`GET / HTTP/1.0\r\nHost: ${HOST}\r\nX-Old: 1\r\n\r\n`)).got;
    expect(head).toStartWith("GET / HTTP/1.1\r\nhost: ");
    expect(head).toContain("x-old: 1\r\n");

    be.replies.push(OK);
    expect((await run(`GET https://${HOST}/abs HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`)).got).toStartWith("GET /abs HTTP/1.1\r\n");
  });
});

/** The response the client gets when the backend answers `reply` (one write) to `request` (default GET /). */
function answeredWith(reply: string, request = `GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`): Promise<string> {
  be.replies.push([reply]);
  return exchange(h.port, request);
}

describe("response heads", () => {
  test("a backend repeating its head: each rebuilt response gets its own framing fields (the client field list is shared, never extended)", async () => {
    // HTTP/1.0 keep-alive takes the rebuilt path; the same backend head twice is one ResponseHead
    // object (the pool's head memo) and one client field list (H1Side's memo).
    be.replies.push(OK, OK, OK);
    const one = `GET /r HTTP/1.0\r\nHost: ${HOST}\r\nConnection: keep-alive\r\n\r\n`;
    const { res } = await run(one + one + one);
    const heads = res.split("ok").filter((x) => x.length > 0);
    expect(heads).toHaveLength(3);
    for (const head of heads) expect(head).toBe("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n");
  });

  test("a clean response passes byte for byte (reason phrase and case kept); hop-by-hop lines are cut", async () => {
    const res = await answeredWith("HTTP/1.1 200 Fine Thanks\r\nServer: Scripted\r\nConnection: keep-alive\r\nX-Mixed: A b\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\nhello");
    expect(res).toBe("HTTP/1.1 200 Fine Thanks\r\nServer: Scripted\r\nX-Mixed: A b\r\nContent-Length: 5\r\n\r\nhello");
  });

  test("the same when the body comes in later reads, and the connection is reused for the next request", async () => {
    be.replies.push(["HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n", "01234", "56789"]);
    be.replies.push(["HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"]);
    const req = `GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
    const res = await exchange(h.port, req + req, 900);
    expect(res).toBe("HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n0123456789HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  });

  test("whitespace before a colon, Connection naming a field, chunked bodies and HTTP/1.0 backends are rebuilt", async () => {
    let res = await answeredWith("HTTP/1.1 200 OK\r\nX-Space : v\r\nContent-Length: 1\r\n\r\na");
    expect(res).toContain("\r\nx-space: v\r\n");

    res = await answeredWith("HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\nContent-Length: 1\r\n\r\na");
    expect(res.toLowerCase()).not.toContain("x-hop");
    expect(res).toContain("x-keep: 2\r\n");

    res = await answeredWith("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    expect(res).toContain("transfer-encoding: chunked\r\n");
    expect(res).toEndWith("3\r\nabc\r\n0\r\n\r\n");

    res = await answeredWith("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na");
    expect(res).toStartWith("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n");
  });

  test("a client asking to close gets a rebuilt head with Connection: close", async () => {
    const res = await answeredWith("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", `GET / HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    expect(res).toBe("HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\na");
  });

  test("HEAD and 304 keep the backend's Content-Length and send no body", async () => {
    let res = await answeredWith("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", `HEAD / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    expect(res).toBe("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
    res = await answeredWith("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
    expect(res).toBe("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
  });
});
