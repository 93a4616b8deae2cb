/**
 * The session on real Bun sockets against an independent HTTP/2
 * implementation (node:http2 as Bun ships it): our client → node server
 * (h2c), node client → our server (h2c and TLS), our client → our server
 * over TLS (Bun.connect with ALPN h2).
 */

import { afterAll, describe, expect, test } from "bun:test";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Socket } from "bun";
import { H2Session } from "../../../src/l7/h2/session.ts";
import type { H2Stream } from "../../../src/l7/h2/stream.ts";
import { cleanupCerts, makeSelfSigned } from "../../fixtures/certs.ts";
import { startEchoServer } from "./echo-server.ts";

afterAll(cleanupCerts);

interface Conn {
  session: H2Session | null;
}

/** Our client session over a Bun socket. */
async function connectClient(port: number, tls: boolean): Promise<H2Session> {
  let session: H2Session | null = null;
  await new Promise<void>((resolve, reject) => {
    Bun.connect<Conn>({
      hostname: "127.0.0.1",
      port,
      ...(tls ? { tls: { rejectUnauthorized: false, serverName: "localhost", ALPNProtocols: Buffer.from("\x02h2", "latin1") } } : {}),
      socket: {
        open(socket: Socket<Conn>) {
          session = new H2Session(
            { writeRange: (d, o, n) => socket.write(d, o, n), shutdown: () => socket.shutdown(), terminate: () => socket.terminate() },
            { role: "client" },
          );
          socket.data = { session };
          if (!tls) resolve();
        },
        handshake(_socket, success, err) {
          if (success) resolve();
          else reject(err);
        },
        data: (socket, chunk) => socket.data.session?.receive(chunk),
        drain: (socket) => socket.data.session?.drained(),
        close: (socket) => socket.data.session?.transportClosed(),
        error: (_s, err) => reject(err),
        connectError: (_s, err) => reject(err),
      },
    }).catch(reject);
  });
  return session!;
}

function fetchOn(session: H2Session, fields: string[], body?: Uint8Array): Promise<{ status: number; fields: readonly string[]; body: string; trailers: readonly string[] | null }> {
  return new Promise((resolve, reject) => {
    const s: H2Stream | null = session.request(fields, body === undefined);
    if (!s) return reject(new Error("no stream"));
    const chunks: Uint8Array[] = [];
    let status = 0;
    let head: readonly string[] = [];
    s.onResponse = (st, f) => {
      status = st;
      head = f;
    };
    s.onData = (c) => {
      chunks.push(c.slice());
      s.consumed(c.length);
    };
    s.onEnd = (trailers) => resolve({ status, fields: head, body: Buffer.concat(chunks).toString(), trailers });
    s.onReset = (code, reason) => reject(new Error(`reset ${code} ${reason}`));
    if (body !== undefined) {
      s.write(body);
      s.end();
    }
  });
}

describe("interop with node:http2", () => {
  test("our client → node:http2 server (h2c): GET, POST with body, trailers", async () => {
    const server = http2.createServer();
    server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      const parts: Buffer[] = [];
      stream.on("data", (c: Buffer) => parts.push(c));
      stream.on("end", () => {
        stream.respond({ ":status": 200, "x-method": String(headers[":method"]) }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(`got ${Buffer.concat(parts).length} bytes`);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      const session = await connectClient(port, false);
      const get = await fetchOn(session, [":method", "GET", ":scheme", "http", ":authority", "localhost", ":path", "/"]);
      expect(get.status).toBe(200);
      expect(get.body).toBe("got 0 bytes");
      expect(get.trailers).toEqual(["grpc-status", "0"]);
      const big = new Uint8Array(300_000).fill(7);
      const post = await fetchOn(session, [":method", "POST", ":scheme", "http", ":authority", "localhost", ":path", "/u"], big);
      expect(post.body).toBe("got 300000 bytes");
      expect(post.fields).toContain("x-method");
      session.goaway();
    } finally {
      server.close();
    }
  });

  test("node:http2 client → our server (h2c and TLS): responses and echoed bodies arrive", async () => {
    const cert = makeSelfSigned(["localhost"]);
    for (const tls of [false, true]) {
      const srv = startEchoServer(tls ? { tls: { cert: cert.certPem, key: cert.keyPem } } : {});
      try {
        const client = tls
          ? http2.connect(`https://localhost:${srv.port}`, { rejectUnauthorized: false })
          : http2.connect(`http://127.0.0.1:${srv.port}`);
        const ask = (method: string, body?: string) =>
          new Promise<string>((resolve, reject) => {
            const req = client.request({ ":method": method, ":path": "/x" });
            let text = "";
            req.setEncoding("utf8");
            req.on("data", (c: string) => (text += c));
            req.on("end", () => resolve(text));
            req.on("error", reject);
            req.end(body);
          });
        const answers = await Promise.all([ask("GET"), ask("POST", "abc"), ask("POST", "x".repeat(200_000))]);
        expect(answers[0]).toBe("hello world\n");
        expect(answers[1]).toBe("hello world\nabc");
        expect(answers[2].length).toBe(12 + 200_000);
        client.close();
      } finally {
        srv.stop();
      }
    }
  });

  test("our client → our server over TLS (ALPN h2), 2 × 100 concurrent requests on one connection", async () => {
    const cert = makeSelfSigned(["localhost"]);
    const srv = startEchoServer({ tls: { cert: cert.certPem, key: cert.keyPem } });
    try {
      const session = await connectClient(srv.port, true);
      const post = (i: number) =>
        fetchOn(session, [":method", "POST", ":scheme", "https", ":authority", "localhost", ":path", "/"], new TextEncoder().encode(`#${i}`));
      for (let batch = 0; batch < 2; batch++) {
        const pending = Array.from({ length: 100 }, (_, i) => post(batch * 100 + i));
        // The server's MAX_CONCURRENT_STREAMS is 100 (or, before its SETTINGS, our assumption of 100).
        expect(session.request([":method", "GET", ":scheme", "https", ":authority", "localhost", ":path", "/"], true)).toBeNull();
        const all = await Promise.all(pending);
        all.forEach((r, i) => expect(r.body).toBe(`hello world\n#${batch * 100 + i}`));
      }
      expect(session.openStreams).toBe(0);
    } finally {
      srv.stop();
    }
  });
});
