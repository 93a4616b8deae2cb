/**
 * Benchmark (not a test): the HTTP/1.1 backend client (H1Pool) against a
 * local backend that answers every request with a fixed 200 and a 100-byte
 * body. The backend runs in a child process, so the CPU figure is the
 * client's alone. Reports req/s and client CPU µs per request for sequential
 * keep-alive GETs (concurrency 1) and for concurrency 64, and the same for
 * node:http with a keep-alive Agent for reference.
 *
 *   bun bench/h1-client.ts            (DURATION_MS=3000 per run, ROUNDS=3)
 */
import http from "node:http";
import type { BackendTarget } from "../src/l7/backend/target.ts";
import { H1Pool, type ResponseSink } from "../src/l7/h1/client.ts";
import { serializeRequestHead } from "../src/l7/h1/codec.ts";

const DURATION_MS = Number(process.env.DURATION_MS ?? 3000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);

if (process.argv[2] === "backend") {
  const body = "x".repeat(100);
  const resp = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n${body}`, "latin1");
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, d) {
        // One response per request head (the bench never pipelines nor sends bodies).
        let n = 0;
        for (let i = d.indexOf("\r\n\r\n"); i >= 0; i = d.indexOf("\r\n\r\n", i + 4)) n++;
        for (let k = 0; k < n; k++) s.write(resp);
      },
    },
  });
  console.log(server.port);
  await new Promise(() => {});
}

const child = Bun.spawn([process.execPath, import.meta.path, "backend"], { stdout: "pipe", stderr: "inherit" });
const reader = child.stdout.getReader();
const port = Number(new TextDecoder().decode((await reader.read()).value).trim());
reader.releaseLock();

const target: BackendTarget = {
  key: `127.0.0.1|${port}|clear|http1|`,
  addrKey: `127.0.0.1|${port}|clear`,
  host: "127.0.0.1",
  port,
  tls: null,
  protocol: "http1",
  defaultAuthority: "bench.test",
  dial: { answered: false },
};
const serialized = serializeRequestHead("GET", "/bench", ["host", "bench.test", "user-agent", "bench", "accept", "*/*"]);
if (!(serialized instanceof Uint8Array)) throw new Error("head");
const head: Uint8Array = serialized;

interface Run {
  reqs: number;
  ms: number;
  cpuUs: number;
}

/** Runs `concurrency` request loops for DURATION_MS; `start(done)` issues one request and calls done(ok) when it ends. */
function drive(concurrency: number, start: (done: (ok: boolean) => void) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    let reqs = 0;
    let active = concurrency;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const until = t0 + DURATION_MS;
    const loop = (ok: boolean) => {
      if (!ok) return reject(new Error("request failed"));
      reqs++;
      if ((reqs & 255) !== 0 || performance.now() < until) start(loop);
      else if (--active === 0) {
        const ms = performance.now() - t0;
        const c = process.cpuUsage(cpu0);
        resolve({ reqs, ms, cpuUs: c.user + c.system });
      }
    };
    for (let i = 0; i < concurrency; i++) start(loop);
  });
}

function poolRun(pool: H1Pool, concurrency: number): Promise<Run> {
  return drive(concurrency, (done) => {
    let bytes = 0;
    const sink: ResponseSink = {
      onHead() {},
      onData(c) {
        bytes += c.length;
        return true;
      },
      onEnd() {
        done(bytes === 100);
      },
      onError() {
        done(false);
      },
    };
    pool.request(target, "GET", head, { kind: "none" }, sink, true);
  });
}

function nodeRun(agent: http.Agent, concurrency: number): Promise<Run> {
  return drive(concurrency, (done) => {
    const req = http.request({ host: "127.0.0.1", port, path: "/bench", agent, headers: { host: "bench.test", "user-agent": "bench", accept: "*/*" } }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => (bytes += c.length));
      res.on("end", () => done(bytes === 100));
    });
    req.on("error", () => done(false));
    req.end();
  });
}

function fmt(name: string, runs: Run[]): string {
  const best = runs.reduce((a, b) => (b.reqs / b.ms > a.reqs / a.ms ? b : a));
  const rps = (best.reqs / best.ms) * 1000;
  return `${name.padEnd(28)} ${Math.round(rps).toString().padStart(7)} req/s   ${(best.cpuUs / best.reqs).toFixed(1).padStart(6)} µs CPU/req (best of ${runs.length})`;
}

const pool = new H1Pool({ connectTimeoutMs: 2000, idleTimeoutMs: 60_000, proxyHeader: null });
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
for (const concurrency of [1, 64]) {
  const ours: Run[] = [];
  const node: Run[] = [];
  await poolRun(pool, concurrency); // warm-up: JIT and connections
  await nodeRun(agent, concurrency);
  for (let r = 0; r < ROUNDS; r++) {
    ours.push(await poolRun(pool, concurrency));
    node.push(await nodeRun(agent, concurrency));
  }
  console.log(fmt(`H1Pool, concurrency ${concurrency}`, ours));
  console.log(fmt(`node:http Agent, conc. ${concurrency}`, node));
}
console.log(`H1Pool connections: ${JSON.stringify(pool.stats())}`);
pool.close();
agent.destroy();
child.kill();
process.exit(0);
