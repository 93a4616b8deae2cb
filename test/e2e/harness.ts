/**
 * Drives the compiled binary as subprocesses for the e2e tests (bins = ensureBinaries()):
 *   const srv = await startServerProc(bins.mcProxy, cfgPath);  // waits for the server.start log line
 *   srv.port(0)                                                 // bound port of listeners[0]
 *   const r = await runBin(bins.ctl, ["--socket", sock, "status"]);  // mcproxyctl link; { code, out, err }
 *   await srv.stop();                                        // SIGTERM, wait for exit (SIGKILL after 20 s)
 * (the server process itself is test/helpers/subprocess.ts, started from the binary)
 * Every process started here is tracked; `killAll()` (call it in afterAll) kills
 * whatever is still running.
 */
import type { Subprocess } from "bun";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killAllServers, startServerProc as startServer, type ServerProc } from "../helpers/subprocess.ts";

export type { LogLine, ServerProc } from "../helpers/subprocess.ts";

/** The environment the binaries get: nothing from the test runner (no NODE_*, no BUN_*). */
export const MIN_ENV = { PATH: "/usr/bin:/bin" };

const live = new Set<Subprocess>();

/** Kills every process started by this module that has not exited yet. */
export function killAll(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
  killAllServers();
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

/**
 * Starts `bin server -c cfgPath` with the minimal environment and resolves once
 * it logged `server.start`; rejects with its stderr when it exits first or `ms` passes.
 */
export function startServerProc(
  bin: string,
  cfgPath: string,
  opts: { cwd?: string; env?: Record<string, string>; ms?: number } = {},
): Promise<ServerProc> {
  return startServer(cfgPath, { bin, cwd: opts.cwd, env: opts.env ?? MIN_ENV, ms: opts.ms });
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
