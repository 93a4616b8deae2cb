/**
 * A tiny HTTP/2 server on Bun native sockets driven by H2Session: answers
 * every request, once its body is in, with "hello world" plus an echo of the
 * body. For conformance runs (h2spec) and manual checks:
 *
 *   bun test/l7/h2/echo-server.ts [port] [--tls]
 */

import type { Socket } from "bun";
import { H2Session } from "../../../src/l7/h2/session.ts";

export interface EchoServer {
  port: number;
  stop(): void;
}

export interface EchoServerOptions {
  port?: number;
  /** PEM cert and key: serve h2 over TLS with ALPN "h2"; absent: h2c with prior knowledge. */
  tls?: { cert: string; key: string };
}

interface ConnData {
  session: H2Session | null;
}

const HELLO = new TextEncoder().encode("hello world\n");

export function startEchoServer(opts: EchoServerOptions = {}): EchoServer {
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of sessions) s.tick(now);
  }, 1000);
  const sessions = new Set<H2Session>();
  const listener = Bun.listen<ConnData>({
    hostname: "127.0.0.1",
    port: opts.port ?? 0,
    ...(opts.tls ? { tls: { cert: opts.tls.cert, key: opts.tls.key, ALPNProtocols: Buffer.from("\x02h2", "latin1") } } : {}),
    socket: {
      open(socket: Socket<ConnData>) {
        const session = new H2Session(
          {
            writeRange: (d, o, n) => socket.write(d, o, n),
            shutdown: () => socket.shutdown(),
            terminate: () => socket.terminate(),
          },
          {
            role: "server",
            idleTimeoutMs: 30_000,
            onStream(stream) {
              const body: Uint8Array[] = [];
              stream.onData = (c) => {
                body.push(c.slice());
                stream.consumed(c.length);
              };
              stream.onEnd = () => {
                const echo = Buffer.concat(body);
                stream.respond(200, ["content-type", "text/plain", "content-length", String(HELLO.length + echo.length)]);
                if (stream.head?.method !== "HEAD") {
                  stream.write(HELLO);
                  if (echo.length > 0) stream.write(echo);
                }
                stream.end();
              };
            },
            onClose: () => sessions.delete(session),
          },
        );
        sessions.add(session);
        socket.data = { session };
      },
      data(socket, chunk) {
        socket.data.session?.receive(chunk);
      },
      drain(socket) {
        socket.data.session?.drained();
      },
      close(socket, err) {
        socket.data.session?.transportClosed(err ?? undefined);
      },
      error(socket, err) {
        socket.data.session?.transportClosed(err);
      },
    },
  });
  return {
    port: listener.port,
    stop() {
      clearInterval(sweep);
      listener.stop(true);
    },
  };
}

if (import.meta.main) {
  const port = Number(process.argv[2] ?? 8443);
  const useTls = process.argv.includes("--tls");
  let tls: EchoServerOptions["tls"];
  if (useTls) {
    const { makeSelfSigned } = await import("../../fixtures/certs.ts");
    const c = makeSelfSigned(["localhost"]);
    tls = { cert: c.certPem, key: c.keyPem };
  }
  const s = startEchoServer({ port, tls });
  console.log(`h2 echo server on 127.0.0.1:${s.port}${useTls ? " (TLS)" : " (h2c)"}`);
}
