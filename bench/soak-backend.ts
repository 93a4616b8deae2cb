/**
 * A backend process for bench/soak.ts, killed and restarted by it.
 *
 *   bun bench/soak-backend.ts <port> http             cleartext HTTP/1.1 (L7 route backend)
 *   bun bench/soak-backend.ts <port> https cert key   HTTPS (the L4 route: the client's TLS ends here)
 *
 * Answers every request with 200 and a small body; `/slow` waits 200 ms;
 * `/big` sends 256 KiB. Prints "ready" on stdout once listening. Exits by
 * itself after 30 minutes at the latest (bounded even if the parent dies).
 */
const [portArg, mode, cert, key] = process.argv.slice(2);
const big = "x".repeat(256 * 1024);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(portArg),
  reusePort: false,
  tls: mode === "https" ? { cert: Bun.file(cert), key: Bun.file(key) } : undefined,
  async fetch(req) {
    const url = new URL(req.url);
    if (req.method === "POST") await req.arrayBuffer();
    if (url.pathname === "/slow") await Bun.sleep(200);
    if (url.pathname === "/big") return new Response(big);
    return new Response(`ok ${mode}\n`);
  },
});
console.log(`ready ${server.port}`);
setTimeout(() => process.exit(0), 30 * 60_000).unref();
// Leave when the parent goes away (stdin closes).
(async () => {
  for await (const _ of Bun.stdin.stream()) {
  }
  process.exit(0);
})();
