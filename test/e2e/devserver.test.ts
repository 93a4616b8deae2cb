/**
 * `npm run devserver`, as a newcomer meets it (README "The two commands"):
 * the first run creates its directory (here a temp dir, MC_PROXY_DEV_DIR; ports
 * from the MC_PROXY_DEV_* variables), prints what to try, and every printed
 * command works: curl through the L7 route shows the forwarding headers that
 * mc-proxy set, curl through the L4 route reaches the TLS demo backend, the ctl
 * command lists both routes, /metrics answers. Ctrl-C (SIGINT to the process
 * group, as a terminal sends it) drains and exits 0. A directory made by the
 * older devserver still answers, with a note saying how to get the demo.
 */
import type { Subprocess } from "bun";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../helpers/proxy.ts";
import { REPO } from "./build.ts";
import { freshDir, poll, removeDir } from "./harness.ts";

interface Ports {
  proxy: number;
  metrics: number;
  http: number;
  tls: number;
}

interface Dev {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  out: () => string;
  err: () => string;
}

const running = new Set<Subprocess>();

async function distinctPorts(): Promise<Ports> {
  const seen = new Set<number>();
  while (seen.size < 4) seen.add(await freePort());
  const [proxy, metrics, http, tls] = [...seen] as [number, number, number, number];
  return { proxy, metrics, http, tls };
}

function collect(stream: ReadableStream<Uint8Array>): () => string {
  let text = "";
  (async () => {
    const dec = new TextDecoder();
    for await (const chunk of stream) text += dec.decode(chunk, { stream: true });
  })();
  return () => text;
}

/** `npm run devserver` in its own process group, up once it printed what to try. */
async function startDevserver(dir: string, p: Ports): Promise<Dev> {
  const proc = Bun.spawn(["npm", "run", "--silent", "devserver"], {
    cwd: REPO,
    env: {
      ...process.env,
      MC_PROXY_DEV_DIR: dir,
      MC_PROXY_DEV_PORT: String(p.proxy),
      MC_PROXY_DEV_METRICS_PORT: String(p.metrics),
      MC_PROXY_DEV_HTTP_PORT: String(p.http),
      MC_PROXY_DEV_TLS_PORT: String(p.tls),
    },
    detached: true,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  const dev = { proc, out: collect(proc.stdout), err: collect(proc.stderr) };
  await poll(() => {
    if (proc.exitCode !== null) throw new Error(`devserver exited ${proc.exitCode}:\n${dev.out()}\n${dev.err()}`);
    return dev.out().includes("Ctrl-C drains and stops.");
  }, 30_000, "the devserver's 'Try:' lines");
  return dev;
}

/** What a terminal's Ctrl-C does: SIGINT to the whole foreground process group. */
async function ctrlC(dev: Dev): Promise<number> {
  process.kill(-dev.proc.pid, "SIGINT");
  const code = await dev.proc.exited;
  running.delete(dev.proc);
  return code;
}

async function run(cmd: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(cmd, { cwd: REPO, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** The printed line that starts with `prefix` (trimmed), split into arguments. */
function printed(dev: Dev, prefix: string): string[] {
  const line = dev.out().split("\n").map((l) => l.trim()).find((l) => l.startsWith(prefix));
  if (!line) throw new Error(`no printed line starting with ${JSON.stringify(prefix)} in:\n${dev.out()}`);
  return line.split(/\s+/);
}

afterAll(() => {
  for (const p of running) {
    try {
      process.kill(-p.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

describe("npm run devserver, first run", () => {
  let dir: string;
  let ports: Ports;
  let dev: Dev;

  beforeAll(async () => {
    dir = join(freshDir("mc-proxy-devserver-"), "srv");
    ports = await distinctPorts();
    dev = await startDevserver(dir, ports);
  });
  afterAll(() => removeDir(join(dir, "..")));

  test("prints the curl commands for both routes, the ctl command and the metrics URL", () => {
    const out = dev.out();
    expect(out).toContain(`curl -k https://localhost:${ports.proxy}/`);
    expect(out).toContain(`curl -k --resolve l4.localhost:${ports.proxy}:127.0.0.1 https://l4.localhost:${ports.proxy}/`);
    expect(out).toContain(`src/main.ts ctl routes list --listener 127.0.0.1:${ports.proxy} --socket ${join(dir, "mc-proxy.sock")}`);
    expect(out).toContain(`curl http://127.0.0.1:${ports.metrics}/metrics`);
    expect(out).not.toContain("note:");
  });

  test("L7 route: the demo page shows X-Forwarded-For 127.0.0.1 set by mc-proxy (the client's own dropped), Host and https", async () => {
    const r = await run(["curl", "-sS", "-k", "--resolve", `localhost:${ports.proxy}:127.0.0.1`,
      "-H", "X-Forwarded-For: 203.0.113.9", `https://localhost:${ports.proxy}/`]);
    expect(r.err).toBe("");
    expect(r.out).toContain("demo HTTP backend");
    expect(r.out).toMatch(/\n {2}X-Forwarded-For: +127\.0\.0\.1\n/);
    expect(r.out).toMatch(/\n {2}X-Real-IP: +127\.0\.0\.1\n/);
    expect(r.out).toMatch(/\n {2}X-Forwarded-Proto: +https\n/);
    expect(r.out).toMatch(new RegExp(`\\n {2}Host: +localhost:${ports.proxy}\\n`));
    expect(r.out).not.toContain("203.0.113.9");
  });

  test("the generated certificate verifies for localhost (curl --cacert, no -k)", async () => {
    const r = await run(["curl", "-sS", "--cacert", join(dir, "localhost.pem"), "--resolve", `localhost:${ports.proxy}:127.0.0.1`,
      `https://localhost:${ports.proxy}/`]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });

  test("L4 route: the printed curl reaches the TLS demo backend, with no forwarding headers", async () => {
    const r = await run(printed(dev, "curl -k --resolve l4.localhost").map((a) => (a === "-k" ? "-sSk" : a)));
    expect(r.err).toBe("");
    expect(r.out).toContain("demo TLS backend");
    expect(r.out).toMatch(/\n {2}X-Forwarded-For: +\(none\)\n/);
    expect(r.out).toMatch(new RegExp(`\\n {2}Host: +l4\\.localhost:${ports.proxy}\\n`));
  });

  test("the printed ctl command lists both routes", async () => {
    const r = await run(printed(dev, "node_modules/.bin/bun src/main.ts ctl"));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`localhost +l7 +127\\.0\\.0\\.1:${ports.http}`));
    expect(r.out).toMatch(new RegExp(`l4\\.localhost +l4 +127\\.0\\.0\\.1:${ports.tls}`));
  });

  test("the printed metrics URL answers with mc-proxy's metrics", async () => {
    const res = await fetch(`http://127.0.0.1:${ports.metrics}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("mcproxy_active_connections");
  });

  test("Ctrl-C drains, stops the demo backends and exits 0", async () => {
    expect(await ctrlC(dev)).toBe(0);
    expect(dev.err()).toContain('"event":"server.stopped"');
    const r = await run(["curl", "-sS", "-o", "/dev/null", `http://127.0.0.1:${ports.http}/`]);
    expect(r.code).toBe(7); // couldn't connect: the HTTP demo backend is gone
  });
});

describe("npm run devserver on a directory made by the older devserver", () => {
  let dir: string;

  afterAll(() => removeDir(join(dir, "..")));

  test("localhost still answers (its L4 route reaches the TLS demo backend) and a note says to remove the directory", async () => {
    dir = join(freshDir("mc-proxy-devserver-old-"), "srv");
    const ports = await distinctPorts();
    mkdirSync(dir, { mode: 0o700 });
    // The config the older devserver wrote (its database is seeded from it on the first start).
    writeFileSync(join(dir, "mc-proxy.toml"), `[database]
path = "mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:${ports.proxy}"

  [[listeners.routes]]
  hostname = "localhost"
  backend = "127.0.0.1:${ports.tls}"

[grpc]
addr = "mc-proxy.sock"

[proxy]
shutdown_timeout = "5s"

[log]
level = "info"

[metrics]
addr = "127.0.0.1:${ports.metrics}"
`);
    const dev = await startDevserver(dir, ports);
    expect(dev.out()).toContain("note: the database");
    expect(dev.out()).toContain(`rm -rf ${dir}`);
    expect(dev.out()).not.toContain("--resolve l4.localhost"); // no such route there: no curl line for it
    const r = await run(["curl", "-sSk", "--resolve", `localhost:${ports.proxy}:127.0.0.1`, `https://localhost:${ports.proxy}/`]);
    expect(r.err).toBe("");
    expect(r.out).toContain("demo TLS backend");
    expect(readFileSync(join(dir, "mc-proxy.toml"), "utf8")).not.toContain("l4.localhost"); // left as it was
    expect(await ctrlC(dev)).toBe(0);
  });
});
