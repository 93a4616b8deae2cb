/**
 * The devserver's two demo backends, so a first `curl` through mc-proxy gets
 * an answer that shows what each route mode did:
 *   - an HTTP backend (plain HTTP/1.1) behind the L7 route: its page shows the
 *     forwarding headers mc-proxy set (X-Forwarded-For, X-Real-IP,
 *     X-Forwarded-Proto), Host, and the peer address it saw;
 *   - a TLS backend behind the L4 route: it terminates TLS itself, and its
 *     page shows that no forwarding headers arrived.
 * Both bind 127.0.0.1 only.
 */
import type { Server as BunServer } from "bun";

type Server = BunServer<undefined>;

export interface DemoBackend {
  server: Server;
  /** `127.0.0.1:<port>` */
  addr: string;
  stop(): Promise<void>;
}

const SHOWN = ["Host", "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto", "Forwarded", "User-Agent"];

function received(req: Request, server: Server): string {
  const url = new URL(req.url);
  const peer = server.requestIP(req);
  const rows: [string, string][] = [
    ["request", `${req.method} ${url.pathname}${url.search}`],
    ["peer", peer ? `${peer.address}:${peer.port} (the connection from mc-proxy)` : "(unknown)"],
    ...SHOWN.map((h): [string, string] => [h, req.headers.get(h) ?? "(none)"]),
  ];
  return rows.map(([k, v]) => `  ${(k + ":").padEnd(19)} ${v}\n`).join("");
}

function page(title: string, explain: string, req: Request, server: Server): Response {
  const body = `${title}\n\n${explain}\n\nWhat this backend received:\n${received(req, server)}`;
  return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
}

function wrap(server: Server): DemoBackend {
  return { server, addr: `127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

/** Plain-HTTP backend for the L7 route. */
export function startHttpDemo(port: number): DemoBackend {
  return wrap(
    Bun.serve({
      hostname: "127.0.0.1",
      port,
      fetch(req, server) {
        return page(
          `mc-proxy devserver: demo HTTP backend on 127.0.0.1:${server.port}`,
          "You came through an L7 route: mc-proxy terminated TLS, dropped any forwarding\n" +
            "headers the client sent, set its own from the real client address, and\n" +
            "forwarded the request here over plain HTTP.",
          req,
          server,
        );
      },
    }),
  );
}

/** TLS backend for the L4 route; `cert`/`key` are PEM. */
export function startTlsDemo(port: number, cert: string, key: string): DemoBackend {
  return wrap(
    Bun.serve({
      hostname: "127.0.0.1",
      port,
      tls: { cert, key },
      fetch(req, server) {
        return page(
          `mc-proxy devserver: demo TLS backend on 127.0.0.1:${server.port}`,
          "You came through an L4 route: mc-proxy read the SNI from the ClientHello and\n" +
            "relayed the TCP stream untouched; this backend terminated TLS itself. mc-proxy\n" +
            "never saw HTTP, so no forwarding headers were added (a route with\n" +
            "send_proxy_protocol = true gives such a backend the client address).",
          req,
          server,
        );
      },
    }),
  );
}
