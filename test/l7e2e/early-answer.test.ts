/**
 * A backend that answers before the request body is in (an early 413, as
 * nginx does past client_max_body_size) through the compiled binary, with
 * curl as the client: the client gets that answer, over HTTP/1.1 and over
 * HTTP/2. Over HTTP/2 the session reads and drops the rest of the body after
 * the response instead of resetting the stream at once: curl 7.88 discards a
 * response followed by RST_STREAM(NO_ERROR) (RFC 9113 §8.1 forbids that, but
 * it is Debian 12's curl) and reported `000`, exit 92.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { cleanupCerts, curl, e2ePki, killAllServers, route, startProxy, type ServerProc } from "./e2e.ts";

let be: TCPSocketListener<{ answered: boolean }>;
let p: ServerProc;
let port: number;
const UPLOAD = new Uint8Array(20 * 1024 * 1024);

beforeAll(async () => {
  e2ePki();
  // Answers 413 as soon as a request head is in, then closes: the body is never read.
  be = Bun.listen<{ answered: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { answered: false };
      },
      data(s, d) {
        if (s.data.answered || !Buffer.from(d).includes("\r\n\r\n")) return;
        s.data.answered = true;
        s.end("HTTP/1.1 413 Payload Too Large\r\ncontent-type: text/plain\r\ncontent-length: 9\r\nconnection: close\r\n\r\ntoo large");
      },
    },
  });
  p = await startProxy([route({ backend: `127.0.0.1:${be.port}` })]);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  be?.stop(true);
  killAllServers();
  cleanupCerts();
});

describe("a backend that answers before the request body is in", () => {
  for (const proto of ["--http1.1", "--http2"]) {
    test(`curl ${proto} uploading 20 MB gets the backend's 413 and its body, exit 0`, async () => {
      const r = await curl(port, "/upload", [proto, "--data-binary", "@-", "-H", "content-type: application/octet-stream"], { stdin: UPLOAD });
      expect({ code: r.code, status: r.status, stderr: r.stderr }).toEqual({ code: 0, status: 413, stderr: "" });
      expect(r.body).toBe("too large");
      expect(r.httpVersion).toBe(proto === "--http2" ? "2" : "1.1");
    });
  }
});
