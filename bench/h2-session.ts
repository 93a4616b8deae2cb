/**
 * HTTP/2 session micro-benchmark: a client and a server H2Session wired
 * together in memory (no sockets, no TLS), small GET requests with a
 * browser-like head answered with a 5-field head and a 100-byte body.
 * Reports requests/s and µs per request (both sessions' work: encode,
 * frame, parse, decode, validate, flow control) at several concurrencies.
 *
 *   node_modules/.bin/bun bench/h2-session.ts
 *
 * Bytes cross over in microtasks, one write per flush, as a socket would
 * deliver them. Best of 5 rounds after warm-up; one process.
 */
import { H2Session, type H2Transport } from "../src/l7/h2/session.ts";

const REQUEST = [
  ":method", "GET",
  ":scheme", "https",
  ":authority", "www.example.com",
  ":path", "/assets/app.3f9c2b.js?v=12",
  "user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "accept", "*/*",
  "accept-encoding", "gzip, deflate, br, zstd",
  "accept-language", "en-US,en;q=0.9",
  "cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark",
];
const RESPONSE = ["content-type", "text/plain", "content-length", "100", "cache-control", "no-store", "server", "mc-proxy"];
const BODY = new Uint8Array(100).fill(0x61);

class Wire implements H2Transport {
  to: H2Session | null = null;
  writeRange(data: Uint8Array, offset: number, length: number): number {
    const copy = data.slice(offset, offset + length);
    const to = this.to!;
    queueMicrotask(() => to.receive(copy));
    return length;
  }
  shutdown(): void {}
  terminate(): void {}
}

function connect(): { client: H2Session; server: H2Session } {
  const up = new Wire();
  const down = new Wire();
  const server = new H2Session(down, {
    role: "server",
    onStream(s) {
      s.onEnd = () => {
        s.respond(200, RESPONSE);
        s.write(BODY);
        s.end();
      };
    },
  });
  const client = new H2Session(up, { role: "client" });
  up.to = server;
  down.to = client;
  return { client, server };
}

/** Runs `total` requests keeping `concurrency` in flight; resolves with elapsed ns. */
function run(client: H2Session, total: number, concurrency: number): Promise<number> {
  return new Promise((resolve) => {
    let started = 0;
    let done = 0;
    const t0 = Bun.nanoseconds();
    const start = () => {
      started++;
      const s = client.request(REQUEST, true)!;
      s.onData = (c) => s.consumed(c.length);
      s.onEnd = () => {
        done++;
        if (done === total) resolve(Bun.nanoseconds() - t0);
        else if (started < total) start();
      };
    };
    for (let i = 0; i < concurrency && started < total; i++) start();
  });
}

const TOTAL = 50_000;
console.log(`h2 session, in memory, ${TOTAL} GET requests per round (best of 5)`);
for (const concurrency of [1, 10, 100]) {
  const { client } = connect();
  await run(client, 5_000, concurrency); // warm-up
  let best = Infinity;
  for (let r = 0; r < 5; r++) best = Math.min(best, await run(client, TOTAL, concurrency));
  const us = best / 1000 / TOTAL;
  console.log(`  concurrency ${String(concurrency).padStart(3)}: ${Math.round(TOTAL / (best / 1e9)).toLocaleString("en-US").padStart(8)} req/s, ${us.toFixed(2)} µs/request (client + server)`);
}
