/**
 * Drives the compiled binaries as subprocesses for the e2e tests:
 *   const srv = await startServerProc(MC_PROXY, cfgPath);   // waits for the server.start log line
 *   srv.port(0)                                              // bound port of listeners[0]
 *   const r = await runBin(MCPROXYCTL, ["--socket", sock, "status"]);  // { code, out, err }
 *   await srv.stop();                                        // SIGTERM, wait for exit (SIGKILL after 20 s)
 * Every process started here is tracked; `killAll()` (call it in afterAll) kills
 * whatever is still running.
 */
import type { Subprocess } from "bun";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The environment the binaries get: nothing from the test runner (no NODE_*, no BUN_*). */
export const MIN_ENV = { PATH: "/usr/bin:/bin" };

const live = new Set<Subprocess>();

/** Kills every process started by this module that has not exited yet. */
export function killAll(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

export interface RunResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `bin args` to completion (SIGKILL after `timeoutMs`) and returns exit code, stdout, stderr. */
export async function runBin(
  bin: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const p = Bun.spawn([bin, ...args], { cwd: opts.cwd, env: opts.env ?? MIN_ENV, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  live.add(p);
  const killer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  try {
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  } finally {
    clearTimeout(killer);
    live.delete(p);
  }
}

/** One parsed JSON log line from the server's stderr. */
export type LogLine = Record<string, unknown> & { event?: string };

export interface ServerProc {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  /** Every stderr line parsed as JSON (non-JSON lines are kept as `{ raw }`). */
  logs: LogLine[];
  /** Bound ports of the listeners, in the order of the server.start line. */
  ports: number[];
  /** The server.start line itself. */
  start: LogLine;
  port(i?: number): number;
  /** Resolves with the first log line (from the beginning) matching `pred`; rejects after `ms`. */
  waitLog(pred: (l: LogLine) => boolean, ms?: number, what?: string): Promise<LogLine>;
  /** SIGTERM and wait for exit (SIGKILL after `ms`); returns the exit code. */
  stop(ms?: number): Promise<number>;
  stderrText(): string;
}

/**
 * Starts `bin server -c cfgPath` and resolves once it logged `server.start`;
 * rejects with its stderr when it exits first or `ms` passes.
 */
export async function startServerProc(
  bin: string,
  cfgPath: string,
  opts: { cwd?: string; env?: Record<string, string>; ms?: number } = {},
): Promise<ServerProc> {
  const proc = Bun.spawn([bin, "server", "-c", cfgPath], {
    cwd: opts.cwd,
    env: opts.env ?? MIN_ENV,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  live.add(proc);
  const logs: LogLine[] = [];
  let text = "";
  // Keep reading stderr for the whole life of the process: a full pipe would block its logging.
  (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stderr) {
      const s = dec.decode(chunk, { stream: true });
      text += s;
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          logs.push(JSON.parse(line) as LogLine);
        } catch {
          logs.push({ raw: line });
        }
      }
    }
  })().catch(() => {});

  let exited = false;
  proc.exited.then(() => {
    exited = true;
    live.delete(proc);
  });

  const waitLog = async (pred: (l: LogLine) => boolean, ms = 20_000, what = "log line"): Promise<LogLine> => {
    const end = Date.now() + ms;
    for (;;) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (exited) {
        await Bun.sleep(50); // let the reader drain the last lines
        const late = logs.find(pred);
        if (late) return late;
        throw new Error(`server exited (code ${proc.exitCode}) before ${what}; stderr:\n${text}`);
      }
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; stderr:\n${text}`);
      await Bun.sleep(25);
    }
  };

  let start: LogLine;
  try {
    start = await waitLog((l) => l.event === "server.start", opts.ms ?? 30_000, "server.start");
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  }
  const ports = ((start.listeners as { port: number }[] | undefined) ?? []).map((l) => l.port);
  return {
    proc,
    logs,
    ports,
    start,
    port: (i = 0) => {
      const p = ports[i];
      if (typeof p !== "number") throw new Error(`no bound port for listener ${i} in ${JSON.stringify(start)}`);
      return p;
    },
    waitLog,
    async stop(ms = 20_000) {
      if (!exited) {
        proc.kill("SIGTERM");
        const killer = setTimeout(() => proc.kill("SIGKILL"), ms);
        await proc.exited;
        clearTimeout(killer);
      }
      return proc.exitCode ?? -1;
    },
    stderrText: () => text,
  };
}

/**
 * A fresh temp dir (realpath'd, so paths in logs compare equal) that has no
 * node_modules above it: the compiled binary must not find one by accident.
 */
export function freshDir(prefix: string): string {
  return realpathSync(mkdtempSync(join(tmpdir(), prefix)));
}

export function removeDir(d: string | undefined): void {
  if (d) rmSync(d, { recursive: true, force: true });
}

/** Polls `fn` every 50 ms until it returns truthy; throws after `ms`. */
export async function poll<T>(fn: () => T | Promise<T>, ms = 15_000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}
