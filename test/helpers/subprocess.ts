/**
 * The real server as a subprocess — `bun src/main.ts server -c cfg`, or a
 * compiled binary — for tests that need its own process: signals, exit codes,
 * peak RSS, the JSON log exactly as an operator sees it on stderr.
 *
 *   const p = await startProxyProc(toml);            // temp dir + [database], waits for server.start
 *   p.port("127.0.0.1:0"); p.port(1); p.port();      // bound port by addr, by index, or the first
 *   p.proc.kill("SIGHUP"); await p.waitLog((l) => l.event === "server.reload");
 *   expect(await p.stop()).toBe(0);                   // SIGTERM → exit code, temp dir removed
 *   afterAll(killAllServers);
 *
 * Readiness is the `server.start` log line (its `listeners` give the bound
 * ports, so configs can listen on port 0). When `[log] level = "warn"`
 * suppresses that line, pass `ready` (e.g. a health probe) instead.
 */
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const MAIN = join(ROOT, "src", "main.ts");
const live = new Set<Subprocess>();

/** SIGKILLs every server this module started that is still running (call from afterAll). */
export function killAllServers(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

/** One JSON log line from stderr; a line that is not JSON is kept as `{ raw: line }`. */
export type LogLine = Record<string, unknown> & { event?: string };

export interface SpawnOptions {
  /** A compiled mc-proxy binary; default: `bun src/main.ts` from this checkout. */
  bin?: string;
  /** Working directory; default: the repository root. */
  cwd?: string;
  /** Environment; default: inherited. */
  env?: Record<string, string>;
  /** A command that execs the server in place (same pid), e.g. `["prlimit", "--nofile=128:128", "--"]`. */
  wrap?: string[];
}

export interface StartOptions extends SpawnOptions {
  /** How long to wait for readiness (default 30 s); the process is killed on failure. */
  ms?: number;
  /** Readiness probe polled every 50 ms instead of waiting for server.start (whose line the log level may suppress). */
  ready?: () => Promise<boolean> | boolean;
}

export interface ServerProc {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  pid: number;
  /** A dir that stop/cleanup remove (startProxyProc's config + database dir). */
  dir: string | undefined;
  /** Raw stderr lines so far. */
  lines: string[];
  /** `lines` parsed, appended as they arrive. */
  logs: LogLine[];
  /** The server.start line (an empty object when readiness came from `ready`). */
  start: LogLine;
  /** Bound port per configured listener addr, from server.start. */
  ports: Map<string, number>;
  /** Bound port of the listener with this addr, or at this index, or the first; throws if unknown. */
  port(which?: string | number): number;
  /** Resolves with the first log line (from the beginning) matching `pred`; rejects after `ms` or when the process exits first. */
  waitLog(pred: (l: LogLine) => boolean, ms?: number, what?: string): Promise<LogLine>;
  /** Resolves with the exit code once stderr is drained, or null if still running after `ms` (the process is left alone). */
  exited(ms: number): Promise<number | null>;
  /** SIGTERM, wait for exit (SIGKILL after `ms`, default 20 s), remove the temp dir; returns the exit code (-1 if killed by a signal). */
  stop(ms?: number): Promise<number>;
  /** SIGKILL if still running and remove the temp dir (synchronous, for afterEach). */
  cleanup(): void;
  /** Whether the process has exited. */
  readonly done: boolean;
  stderrText(): string;
}

/** Starts `server -c cfgPath` with stderr captured; does not wait for readiness (see startServerProc). */
export function spawnServer(cfgPath: string, opts: SpawnOptions & { dir?: string } = {}): ServerProc {
  // opts.dir: a dir this process owns — stop() and cleanup() remove it.
  const argv = [...(opts.wrap ?? []), ...(opts.bin ? [opts.bin] : [process.execPath, MAIN])];
  const proc = Bun.spawn([...argv, "server", "-c", cfgPath], {
    cwd: opts.cwd ?? ROOT,
    env: opts.env,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  live.add(proc);
  let done = false;
  proc.exited.then(() => {
    done = true;
    live.delete(proc);
  });
  const lines: string[] = [];
  const logs: LogLine[] = [];
  const push = (line: string) => {
    lines.push(line);
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      logs.push({ raw: line }); // e.g. a crash trace: still shown in error messages
    }
  };
  // Drain stderr for the whole life of the process: a full pipe would block its logging.
  const drained = (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stderr) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) push(buf);
  })().catch(() => {});
  const stderrText = () => lines.join("\n");
  // After exit, give the reader a bounded moment to take the last lines.
  const settle = () => Promise.race([drained, Bun.sleep(2000)]);

  const self: ServerProc = {
    proc,
    pid: proc.pid,
    dir: opts.dir,
    lines,
    logs,
    start: {},
    ports: new Map(),
    port(which) {
      const p = typeof which === "number" ? [...self.ports.values()][which] : which === undefined ? self.ports.values().next().value : self.ports.get(which);
      if (typeof p !== "number") throw new Error(`no bound port for listener ${which ?? 0} in ${JSON.stringify(self.start)}`);
      return p;
    },
    async waitLog(pred, ms = 20_000, what = "log line") {
      const end = Date.now() + ms;
      for (;;) {
        const hit = logs.find(pred);
        if (hit) return hit;
        if (done) {
          await settle();
          const late = logs.find(pred);
          if (late) return late;
          throw new Error(`server exited (code ${proc.exitCode}) before ${what}; stderr:\n${stderrText().slice(-3000)}`);
        }
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; stderr:\n${stderrText().slice(-3000)}`);
        await Bun.sleep(25);
      }
    },
    async exited(ms) {
      const code = await Promise.race([proc.exited, Bun.sleep(ms).then(() => null)]);
      if (code !== null) await settle();
      return code;
    },
    async stop(ms = 20_000) {
      if (!done) {
        proc.kill("SIGTERM");
        const killer = setTimeout(() => proc.kill("SIGKILL"), ms);
        await proc.exited;
        clearTimeout(killer);
      }
      if (opts.dir) rmSync(opts.dir, { recursive: true, force: true });
      noHandlerExceptions(logs);
      return proc.exitCode ?? -1;
    },
    cleanup() {
      if (!done) proc.kill("SIGKILL");
      if (opts.dir) rmSync(opts.dir, { recursive: true, force: true });
      noHandlerExceptions(logs);
    },
    get done() {
      return done;
    },
    stderrText,
  };
  return self;
}

/**
 * A `server.handler_exception` line is a bug in a socket handler (src/net/socket-error.ts):
 * whatever a test checks, a server that logged one fails it. Checked once per process.
 */
const exceptionsChecked = new WeakSet<LogLine[]>();
function noHandlerExceptions(logs: LogLine[]): void {
  if (exceptionsChecked.has(logs)) return;
  exceptionsChecked.add(logs);
  const hit = logs.filter((l) => l.event === "server.handler_exception");
  if (hit.length > 0) throw new Error(`the server logged ${hit.length} handler exception(s):\n${hit.map((l) => JSON.stringify(l)).join("\n")}`);
}

/**
 * Starts `server -c cfgPath` and resolves once it is ready: the server.start
 * line was logged (ports filled in), or `opts.ready` returned true. Rejects
 * with its stderr when it exits first or `opts.ms` passes, after killing it.
 */
export async function startServerProc(cfgPath: string, opts: StartOptions & { dir?: string } = {}): Promise<ServerProc> {
  const p = spawnServer(cfgPath, opts);
  const ms = opts.ms ?? 30_000;
  try {
    if (opts.ready) {
      const end = Date.now() + ms;
      while (!(await opts.ready())) {
        if (p.done) throw new Error(`server exited (code ${p.proc.exitCode}) before it was ready; stderr:\n${p.stderrText()}`);
        if (Date.now() > end) throw new Error(`server not ready after ${ms} ms; stderr:\n${p.stderrText()}`);
        await Bun.sleep(50);
      }
    } else {
      p.start = await p.waitLog((l) => l.event === "server.start", ms, "server.start");
      for (const l of (p.start.listeners as { addr: string; port: number }[] | undefined) ?? []) p.ports.set(l.addr, l.port);
    }
  } catch (e) {
    p.cleanup();
    throw e;
  }
  return p;
}

/**
 * Writes `[database]` (mc-proxy.db beside the config) + `toml` into a fresh
 * temp dir (or `opts.dir`, e.g. one already holding fixtures) and starts the
 * server there; `stop`/`cleanup` remove that dir.
 */
export async function startProxyProc(toml: string, opts: StartOptions & { dir?: string } = {}): Promise<ServerProc> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "mcp-proc-"));
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(cfg, `[database]\npath = "mc-proxy.db"\n\n${toml}`);
  return await startServerProc(cfg, { cwd: dir, ...opts, dir });
}
