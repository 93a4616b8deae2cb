/**
 * Socket fuzzer for the compiled mc-proxy (bench/fuzz.sh wraps it).
 *
 *   bun bench/fuzz.ts [--inputs 1000000] [--concurrency 200] [--max-seconds 1800]
 *                     [--seed 1] [--bin dist/mc-proxy] [--json out.json]
 *   bun bench/fuzz.ts --in-process [--inputs 1000000]     (parsers only, no sockets)
 *
 * Starts the binary with two listeners on 127.0.0.1 (plain, and PROXY with
 * trusted 127.0.0.0/8), each with an L4 route `fuzz-l4.test` → a byte sink in
 * this process and an L7 route `fuzz-l7.test` → an HTTP backend in this
 * process; hello_timeout = 1s. Then drives mutated ClientHellos (and PROXY
 * headers + hellos on the PROXY listener) over real sockets, `concurrency` at
 * a time: each connection writes one input followed by a 16-byte nonce,
 * half-closes, and reads until the proxy closes.
 *
 * Oracle. For every input the driver computes the verdict with the project's
 * own pure parsers (src/wire: parseProxyHeader, parseClientHello, the route
 * key rule): "l4" (routable to the sink), "l7" or "drop". The sink identifies
 * each connection by the nonce at the end of what it received and checks:
 *   - forwarded_exact: verdict l4 and the sink saw exactly input[PROXY header
 *     length…] + nonce (a mutation that is still a valid hello for the L4 host
 *     is legitimately forwarded byte for byte);
 *   - forwarded_invalid: the sink saw an input whose verdict is not l4 (goal 0);
 *   - forwarded_not_sent: the bytes are not exactly what that client sent after
 *     its header, or carry no known nonce (goal 0);
 *   - l4_missed: verdict l4 but nothing reached the sink.
 * Client side: hang = no close within hello_timeout + 2 s (goal 0); bytes
 * written to a "drop" client (SPEC §4: nothing is written to a connection
 * rejected before routing; goal 0); the L7 backend must see no request from
 * fuzz inputs (none completes a handshake). After every batch of 10 000
 * inputs the process must be alive (kill -0); VmRSS and open descriptors are
 * sampled every second.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import tls from "node:tls";
import { parseClientHello, ClientHelloReader } from "../src/wire/clienthello.ts";
import { parseProxyHeader } from "../src/wire/proxyproto.ts";
import { makeSelfSignedCert } from "../test/wire/hello-fixtures.ts";
import { Rng, buildSeeds, junk, mutateHello, mutateProxy, proxyHeader, type Seed } from "./fuzz-corpus.ts";

const ROOT = resolve(import.meta.dir, "..");
const L4_HOST = "fuzz-l4.test";
const L7_HOST = "fuzz-l7.test";
const HELLO_MAX = 65536;
const HELLO_TIMEOUT_MS = 1000;
const HANG_MS = HELLO_TIMEOUT_MS + 2000;
const BATCH = 10_000;

// ------------------------------------------------------------------ args

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : def;
};
const INPUTS = Number(opt("inputs", "1000000"));
const CONC = Number(opt("concurrency", "200"));
const MAX_SECONDS = Number(opt("max-seconds", "1800"));
const SEED = Number(opt("seed", "1"));
const BIN = resolve(opt("bin", join(ROOT, "dist/mc-proxy")));
const JSON_OUT = opt("json", "");
const log = (s: string) => console.error(`[fuzz ${new Date().toISOString().slice(11, 19)}] ${s}`);

// ------------------------------------------------------------------ verdict (the oracle)

type Verdict = "l4" | "l7" | "drop";

function routeKey(sni: string): string {
  const s = sni.toLowerCase();
  return s.endsWith(".") ? s.slice(0, -1) : s;
}

/** What the proxy must do with `b` (the whole input incl. nonce) on a listener; `off` = PROXY header length. */
function verdict(b: Uint8Array, proxyListener: boolean): { v: Verdict; off: number } {
  let off = 0;
  if (proxyListener) {
    const r = parseProxyHeader(b);
    if (r.status !== "ok") return { v: "drop", off: 0 };
    off = r.length;
  }
  const h = parseClientHello(b.subarray(off), Math.max(1, HELLO_MAX - off));
  if (h.status !== "ok" || h.sni === null) return { v: "drop", off };
  const k = routeKey(h.sni);
  return { v: k === L4_HOST ? "l4" : k === L7_HOST ? "l7" : "drop", off };
}

// ------------------------------------------------------------------ input generation

interface Input {
  bytes: Uint8Array;
  proxy: boolean;
  kind: string;
}

function makeInput(rng: Rng, seeds: Seed[]): Input {
  const seed = rng.pick(seeds).bytes;
  const hello = (): [Uint8Array, string] => {
    const x = rng.u32() % 100;
    if (x < 4) return [seed, "seed"];
    if (x < 7) return [junk(rng), "junk"];
    return [mutateHello(rng, seed), "hello"];
  };
  if (rng.chance(0.65)) {
    const [b, k] = hello();
    return { bytes: b, proxy: false, kind: k };
  }
  const x = rng.u32() % 100;
  const hdr = proxyHeader(rng);
  if (x < 45) return { bytes: cat2(mutateProxy(rng, hdr), seed), proxy: true, kind: "proxy-mut" };
  if (x < 55) return { bytes: cat2(mutateProxy(rng, hdr), hello()[0]), proxy: true, kind: "proxy-mut+hello" };
  if (x < 90) {
    const [b, k] = hello();
    return { bytes: cat2(hdr, b), proxy: true, kind: `proxy+${k}` };
  }
  if (x < 95) return { bytes: cat2(hdr, seed), proxy: true, kind: "proxy+seed" };
  return { bytes: junk(rng), proxy: true, kind: "proxy-junk" };
}

function cat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// ------------------------------------------------------------------ in-process variant

function inProcess(): void {
  const rng = new Rng(SEED);
  const seedRng = new Rng(99);
  // Synthesized seeds only (no capture servers needed): fast and deterministic.
  const { chromeHello, firefoxHello } = require("./fuzz-corpus.ts") as typeof import("./fuzz-corpus.ts");
  const seeds: Seed[] = [
    { name: "chrome", bytes: chromeHello(seedRng, L4_HOST) },
    { name: "chrome-classic", bytes: chromeHello(seedRng, L4_HOST, false) },
    { name: "firefox", bytes: firefoxHello(seedRng, L7_HOST) },
  ];
  let throws = 0;
  let mismatches = 0;
  const verdicts: Record<string, number> = {};
  const t0 = performance.now();
  for (let i = 0; i < INPUTS; i++) {
    const inp = makeInput(rng, seeds);
    let whole: string;
    try {
      whole = verdict(inp.bytes, inp.proxy).v;
      verdicts[whole] = (verdicts[whole] ?? 0) + 1;
      // Chunked feed through ClientHelloReader must agree with the one-shot parse.
      const off = inp.proxy ? ((r) => (r.status === "ok" ? r.length : -1))(parseProxyHeader(inp.bytes)) : 0;
      if (off >= 0) {
        const rd = new ClientHelloReader(Math.max(1, HELLO_MAX - off));
        const rest = inp.bytes.subarray(off);
        let p = 0;
        let r = rd.result();
        while (p < rest.length) {
          const n = 1 + rng.int(64);
          r = rd.push(rest.subarray(p, p + n));
          p += n;
        }
        const one = parseClientHello(rest, Math.max(1, HELLO_MAX - off));
        const a = r.status === "ok" ? `ok:${r.sni}:${r.length}` : r.status === "error" ? `error:${r.reason}` : "need_more";
        const b = one.status === "ok" ? `ok:${one.sni}:${one.length}` : one.status === "error" ? `error:${one.reason}` : "need_more";
        if (a !== b && !(a.startsWith("error") && b.startsWith("error"))) {
          mismatches++;
          if (mismatches <= 5) log(`chunked ≠ whole: ${a} vs ${b} (${Buffer.from(inp.bytes).toString("hex").slice(0, 120)}…)`);
        }
      }
    } catch (e) {
      throws++;
      if (throws <= 5) log(`THROW ${(e as Error).stack}`);
    }
  }
  const s = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ mode: "in-process", inputs: INPUTS, seconds: +s.toFixed(1), rate: Math.round(INPUTS / s), throws, chunked_vs_whole_mismatches: mismatches, verdicts }, null, 1));
  process.exit(throws || mismatches ? 1 : 0);
}

// ------------------------------------------------------------------ helpers

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

function procStat(pid: number): { rss: number; fds: number } {
  try {
    const st = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+)/.exec(st);
    return { rss: m ? Number(m[1]) * 1024 : 0, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rss: 0, fds: 0 };
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const MiB = (n: number) => +(n / 1048576).toFixed(1);

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  if (flag("in-process")) return inProcess();
  const dir = mkdtempSync(join(tmpdir(), "mcp-fuzz-"));
  const cert = makeSelfSignedCert([L7_HOST], dir);

  // Counters.
  const c = {
    sent: 0,
    bytes_sent: 0,
    verdict_l4: 0,
    verdict_l7: 0,
    verdict_drop: 0,
    client_fin: 0,
    client_answered: 0,
    client_reset: 0,
    client_connect_error: 0,
    hangs: 0,
    drop_but_bytes_written: 0,
    forwarded_exact: 0,
    forwarded_invalid: 0,
    forwarded_not_sent: 0,
    l4_missed: 0,
    sink_conns: 0,
    sink_aborted: 0,
    l7_backend_requests: 0,
    alive_checks: 0,
    dead: 0,
  };
  const kinds: Record<string, number> = {};
  const resets: Record<string, number> = {}; // verdict:error:input size
  const bad: string[] = []; // first few bad inputs, hex

  // ---------------- sink (the L4 backend): identifies each connection by its nonce
  const TAG = new Uint8Array([0xf0, 0x0d, 0xfa, 0xce]);
  interface Pending {
    v: Verdict;
    hash: bigint;
    len: number;
    forwarded: boolean;
    doneAt: number;
    hex?: string;
  }
  const pending = new Map<number, Pending>();
  const recent: number[] = []; // ids whose client finished, in order; pruned after 15 s
  const noteBad = (what: string, hex: string) => {
    if (bad.length < 20) bad.push(`${what}: ${hex}`);
    appendFileSync(join(dir, "bad-inputs.txt"), `${what} ${hex}\n`);
  };
  const sinkCheck = (buf: Uint8Array, complete: boolean) => {
    c.sink_conns++;
    if (!complete) c.sink_aborted++;
    const n = buf.length;
    let id = -1;
    if (n >= 16 && buf[n - 16] === TAG[0] && buf[n - 15] === TAG[1] && buf[n - 14] === TAG[2] && buf[n - 13] === TAG[3]) {
      id = new DataView(buf.buffer, buf.byteOffset + n - 12, 4).getUint32(0);
    }
    const p = id >= 0 ? pending.get(id) : undefined;
    if (!p) {
      c.forwarded_not_sent++;
      noteBad("forwarded_not_sent(no nonce)", Buffer.from(buf.subarray(0, 4096)).toString("hex"));
      return;
    }
    p.forwarded = true;
    if (p.len !== n || p.hash !== BigInt(Bun.hash(buf))) {
      c.forwarded_not_sent++;
      noteBad(`forwarded_not_sent(id ${id})`, Buffer.from(buf.subarray(0, 4096)).toString("hex"));
    } else if (p.v !== "l4") {
      c.forwarded_invalid++;
      noteBad(`forwarded_invalid(id ${id}, verdict ${p.v})`, Buffer.from(buf).toString("hex"));
    } else c.forwarded_exact++;
  };
  type SinkData = { chunks: Uint8Array[]; n: number; done: boolean };
  const sink = Bun.listen<SinkData>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = { chunks: [], n: 0, done: false };
      },
      data(s, d) {
        if (s.data.n < 2 * HELLO_MAX) {
          s.data.chunks.push(new Uint8Array(d));
          s.data.n += d.length;
        }
      },
      end(s) {
        if (!s.data.done) {
          s.data.done = true;
          sinkCheck(Buffer.concat(s.data.chunks), true);
        }
        s.end();
      },
      close(s) {
        if (!s.data.done) {
          s.data.done = true;
          if (s.data.n > 0) sinkCheck(Buffer.concat(s.data.chunks), false);
          else c.sink_aborted++;
        }
      },
      error() {},
    },
  });

  // ---------------- L7 backend: any request is a finding (fuzz inputs never finish a handshake)
  let probeRequests = 0;
  const l7backend = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      if (req.headers.get("x-fuzz-probe") === "1") probeRequests++;
      else c.l7_backend_requests++;
      return new Response("ok");
    },
  });

  // ---------------- the binary
  const plainPort = await freePort();
  const proxyPort = await freePort();
  const cfg = join(dir, "mc-proxy.toml");
  const routes = `
  [[listeners.routes]]
  hostname = "${L4_HOST}"
  backend = "127.0.0.1:${sink.port}"
  [[listeners.routes]]
  hostname = "${L7_HOST}"
  backend = "127.0.0.1:${l7backend.port}"
  mode = "l7"
  backend_protocol = "http1"
  tls_cert = "${cert.cert}"
  tls_key = "${cert.key}"
`;
  writeFileSync(
    cfg,
    `[database]
path = "${join(dir, "mc-proxy.db")}"

[[listeners]]
addr = "127.0.0.1:${plainPort}"
${routes}
[[listeners]]
addr = "127.0.0.1:${proxyPort}"
proxy_protocol = true
proxy_protocol_trusted = ["127.0.0.0/8"]
${routes}
[proxy]
hello_timeout = "1s"
hello_max_bytes = ${HELLO_MAX}
connect_timeout = "2s"
idle_timeout = "10s"
shutdown_timeout = "3s"

[log]
level = "warn"
`,
  );
  const stderrPath = join(dir, "stderr.log");
  const proc = Bun.spawn([BIN, "server", "-c", cfg], { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: Bun.file(stderrPath) });
  const pid = proc.pid;
  let exitCode: number | null = null;
  proc.exited.then((code) => (exitCode = code));
  const killer = () => {
    if (exitCode === null) proc.kill("SIGKILL");
  };
  process.on("exit", killer);

  // Ready: both ports accept.
  const canConnect = (port: number) =>
    new Promise<boolean>((res) => {
      Bun.connect({ hostname: "127.0.0.1", port, socket: { open(s) { s.end(); res(true); }, data() {}, connectError() { res(false); }, error() {} } }).catch(() => res(false));
    });
  for (let t = Date.now(); ; ) {
    if ((await canConnect(plainPort)) && (await canConnect(proxyPort))) break;
    if (exitCode !== null || Date.now() - t > 30_000) throw new Error(`binary did not start (exit ${exitCode}): ${readFileSync(stderrPath, "utf8").slice(-2000)}`);
    await Bun.sleep(50);
  }
  log(`binary pid ${pid} on 127.0.0.1:${plainPort} (plain) and :${proxyPort} (PROXY); sink :${sink.port}; L7 backend :${l7backend.port}`);

  // ---------------- seeds
  const seeds = await buildSeeds(L4_HOST, L7_HOST, log);
  for (const s of seeds) {
    const v = verdict(s.bytes, false).v;
    log(`seed ${s.name.padEnd(22)} ${String(s.bytes.length).padStart(5)} B → ${v}`);
  }

  // ---------------- resource sampling
  const idle = procStat(pid);
  const samples: { t: number; rss: number; fds: number }[] = [];
  const t0 = Date.now();
  const sampler = setInterval(() => {
    const st = procStat(pid);
    if (st.rss) samples.push({ t: Date.now() - t0, ...st });
  }, 1000);

  // ---------------- driver
  const rng = new Rng(SEED);
  type Cli = { id: number; buf: Uint8Array; off: number; rx: number; v: Verdict; start: number; done: boolean; fin: boolean; err: string; sock?: { terminate(): void } };
  const active = new Set<Cli>();
  let nextId = 0;
  let launched = 0;
  let finished = 0;
  let stopLaunching = false;
  let resolveAll!: () => void;
  const allDone = new Promise<void>((r) => (resolveAll = r));

  const finish = (cl: Cli) => {
    if (cl.done) return;
    cl.done = true;
    active.delete(cl);
    finished++;
    if (cl.err === "hang") c.hangs++;
    else if (cl.err === "connect") c.client_connect_error++;
    else if (cl.err) {
      c.client_reset++;
      const k = `${cl.v}:${cl.err}:${cl.buf.length > 16384 ? ">16KiB" : "<=16KiB"}`;
      resets[k] = (resets[k] ?? 0) + 1;
    }
    else if (cl.rx > 0) c.client_answered++;
    else c.client_fin++;
    if (cl.v === "drop" && cl.rx > 0) {
      c.drop_but_bytes_written++;
      noteBad("drop_but_bytes_written", Buffer.from(cl.buf).toString("hex"));
    }
    const p = pending.get(cl.id);
    if (p) p.doneAt = Date.now();
    recent.push(cl.id);
    if (finished % BATCH === 0) batchCheck();
    launchMore();
    if (finished === launched && (stopLaunching || launched >= INPUTS)) resolveAll();
  };

  const writeSome = (s: { write(b: Uint8Array): number; shutdown(): void }, cl: Cli) => {
    while (cl.off < cl.buf.length) {
      const n = s.write(cl.buf.subarray(cl.off));
      if (n <= 0) return;
      cl.off += n;
    }
    s.shutdown();
  };

  const launch = () => {
    const inp = makeInput(rng, seeds);
    const id = nextId++ >>> 0;
    const buf = new Uint8Array(inp.bytes.length + 16);
    buf.set(inp.bytes);
    buf.set(TAG, inp.bytes.length);
    const dv = new DataView(buf.buffer, inp.bytes.length + 4, 12);
    dv.setUint32(0, id);
    dv.setUint32(4, rng.u32());
    dv.setUint32(8, rng.u32());
    const { v, off } = verdict(buf, inp.proxy);
    c[`verdict_${v}`]++;
    kinds[inp.kind] = (kinds[inp.kind] ?? 0) + 1;
    const fwd = buf.subarray(off);
    pending.set(id, { v, hash: BigInt(Bun.hash(fwd)), len: fwd.length, forwarded: false, doneAt: 0 });
    const cl: Cli = { id, buf, off: 0, rx: 0, v, start: Date.now(), done: false, fin: false, err: "" };
    active.add(cl);
    launched++;
    c.sent++;
    c.bytes_sent += buf.length;
    Bun.connect({
      hostname: "127.0.0.1",
      port: inp.proxy ? proxyPort : plainPort,
      allowHalfOpen: true,
      socket: {
        open(s) {
          cl.sock = s;
          if (cl.done) return s.terminate();
          writeSome(s, cl);
        },
        drain(s) {
          writeSome(s, cl);
        },
        data(_s, d) {
          cl.rx += d.length;
        },
        end(s) {
          cl.fin = true;
          s.end();
        },
        close(_s, err) {
          if (err && !cl.err) cl.err = (err as NodeJS.ErrnoException).code ?? "error";
          finish(cl);
        },
        error(_s, err) {
          if (!cl.err) cl.err = (err as NodeJS.ErrnoException).code ?? "error";
        },
        connectError(_s, _err) {
          cl.err = "connect";
          finish(cl);
        },
      },
    }).catch(() => {
      cl.err ||= "connect";
      finish(cl);
    });
  };

  const launchMore = () => {
    if (!stopLaunching && (Date.now() - t0) / 1000 > MAX_SECONDS) {
      stopLaunching = true;
      log(`time box of ${MAX_SECONDS} s reached: no more inputs`);
    }
    while (!stopLaunching && launched < INPUTS && active.size < CONC) launch();
  };

  // Hang sweeper + pruning of the nonce table.
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const cl of active) {
      if (now - cl.start > HANG_MS) {
        cl.err = "hang";
        noteBad(`hang(verdict ${cl.v})`, Buffer.from(cl.buf).toString("hex"));
        cl.sock?.terminate();
        finish(cl);
      }
    }
    while (recent.length) {
      const p = pending.get(recent[0]);
      if (p && now - p.doneAt < 15_000) break;
      if (p) {
        if (p.v === "l4" && !p.forwarded) c.l4_missed++;
        pending.delete(recent[0]);
      }
      recent.shift();
    }
  }, 250);

  let lastT = Date.now();
  let lastN = 0;
  const batchCheck = () => {
    c.alive_checks++;
    if (!alive(pid) || exitCode !== null) {
      c.dead++;
      stopLaunching = true;
      log(`BINARY NOT ALIVE (exit ${exitCode})`);
    }
    const now = Date.now();
    const rate = Math.round(((finished - lastN) * 1000) / Math.max(1, now - lastT));
    lastT = now;
    lastN = finished;
    const st = samples.at(-1);
    if (finished % (BATCH * 5) === 0)
      log(`${finished} done, ${rate}/s, RSS ${st ? MiB(st.rss) : "?"} MiB, fds ${st?.fds ?? "?"}, hangs ${c.hangs}, fwd exact ${c.forwarded_exact} invalid ${c.forwarded_invalid} not-sent ${c.forwarded_not_sent}, drop+bytes ${c.drop_but_bytes_written}`);
  };

  launchMore();
  await allDone;
  const fuzzSeconds = (Date.now() - t0) / 1000;
  clearInterval(sweeper);
  // Let the sink receive stragglers, then settle the nonce table.
  await Bun.sleep(2000);
  for (const [, p] of pending) if (p.v === "l4" && !p.forwarded) c.l4_missed++;
  pending.clear();
  const endStat = procStat(pid);
  clearInterval(sampler);

  // ---------------- after: the proxy still serves real clients on both routes
  const l7Probe = await new Promise<string>((res) => {
    const s = tls.connect({ host: "127.0.0.1", port: plainPort, servername: L7_HOST, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, () => {
      s.write(`GET /probe HTTP/1.1\r\nHost: ${L7_HOST}\r\nx-fuzz-probe: 1\r\nConnection: close\r\n\r\n`);
    });
    let text = "";
    s.on("data", (d) => (text += d.toString()));
    s.on("end", () => res(text.split("\r\n")[0] ?? ""));
    s.on("error", (e) => res(`error ${e.message}`));
    setTimeout(() => (s.destroy(), res("timeout")), 5000);
  });
  const l4Before = c.forwarded_exact;
  const l4Probe = await new Promise<string>((res) => {
    const seed = seeds.find((s) => verdict(s.bytes, false).v === "l4")!.bytes;
    const buf = cat2(seed, new Uint8Array(16));
    Bun.connect({ hostname: "127.0.0.1", port: plainPort, socket: { open(s) { s.write(buf); s.shutdown(); }, data() {}, close() { res("closed"); }, error() {}, connectError() { res("connect error"); } } });
    setTimeout(() => res("timeout"), 5000);
  });
  await Bun.sleep(300);
  const l4ProbeSeen = c.forwarded_not_sent > 0 || c.forwarded_exact > l4Before ? "reached sink" : `sink count ${c.sink_conns}`;
  // The probe has no registered nonce, so it lands in forwarded_not_sent: take it back out.
  if (c.forwarded_not_sent > 0 && bad.at(-1)?.startsWith("forwarded_not_sent(no nonce)")) {
    c.forwarded_not_sent--;
    bad.pop();
  }

  // ---------------- SIGTERM
  const aliveAtEnd = alive(pid) && exitCode === null;
  proc.kill("SIGTERM");
  const code = await Promise.race([proc.exited, Bun.sleep(15_000).then(() => null)]);
  if (code === null) proc.kill("SIGKILL");
  process.off("exit", killer);
  sink.stop(true);
  l7backend.stop(true);

  // stderr: anything not a JSON log line, and error-level lines, are findings.
  const errLines = readFileSync(stderrPath, "utf8").split("\n").filter(Boolean);
  const oddLines = errLines.filter((l) => {
    try {
      const o = JSON.parse(l);
      return o.level === "error";
    } catch {
      return true;
    }
  });
  const warnEvents: Record<string, number> = {};
  for (const l of errLines) {
    try {
      const o = JSON.parse(l);
      warnEvents[o.event] = (warnEvents[o.event] ?? 0) + 1;
    } catch {}
  }

  const rss = samples.map((s) => s.rss);
  const fds = samples.map((s) => s.fds);
  const half = samples.filter((s) => s.t >= (fuzzSeconds * 1000) / 2);
  const summary = {
    date: new Date().toISOString(),
    binary: BIN,
    seed: SEED,
    concurrency: CONC,
    inputs: c.sent,
    seconds: +fuzzSeconds.toFixed(1),
    rate_per_s: Math.round(c.sent / fuzzSeconds),
    seeds: seeds.map((s) => `${s.name} ${s.bytes.length}B`),
    kinds,
    ...c,
    client_reset_detail: resets,
    alive_at_end: aliveAtEnd,
    exit_code_on_sigterm: code,
    l7_probe_after: l7Probe,
    l4_probe_after: l4Probe + ", " + l4ProbeSeen,
    l7_probe_backend_requests: probeRequests,
    rss_mib: { idle: MiB(idle.rss), peak: MiB(Math.max(...rss)), end: MiB(endStat.rss), min: MiB(Math.min(...rss)), max_first_half: MiB(Math.max(...samples.filter((s) => s.t < (fuzzSeconds * 1000) / 2).map((s) => s.rss))), max_second_half: MiB(Math.max(...half.map((s) => s.rss))) },
    fds: { idle: idle.fds, peak: Math.max(...fds), end: endStat.fds },
    stderr_lines: errLines.length,
    stderr_events: warnEvents,
    stderr_error_or_non_json: oddLines.slice(0, 10),
    bad_examples: bad.slice(0, 5).map((b) => b.slice(0, 300)),
    work_dir: dir,
  };
  const text = JSON.stringify(summary, null, 1);
  console.log(text);
  if (JSON_OUT) writeFileSync(JSON_OUT, text);
  const ok = c.hangs === 0 && c.dead === 0 && c.forwarded_invalid === 0 && c.forwarded_not_sent === 0 && c.drop_but_bytes_written === 0 && c.l7_backend_requests === 0 && aliveAtEnd && code === 0;
  if (ok && !flag("keep")) rmSync(dir, { recursive: true, force: true });
  process.exit(ok ? 0 : 1);
}

await main();
