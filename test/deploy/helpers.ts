/**
 * Shared helpers for the deploy tests: repository paths, a fresh
 * dist/mc-proxy, and bounded process runs.
 */
import * as path from "node:path";
import { ensureBinaries } from "../e2e/build.ts";

export const REPO = path.resolve(import.meta.dir, "../..");
export const BINARY = path.join(REPO, "dist/mc-proxy");

/**
 * Makes sure dist/mc-proxy exists and is newer than src/, package.json and
 * the build script (test/e2e/build.ts builds it otherwise). Returns its path;
 * throws with the build output when the build fails.
 */
export function ensureBinary(): string {
  return ensureBinaries().mcProxy;
}

export interface RunResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion in the repository (killed after `timeoutMs`). */
export function run(
  cmd: string[],
  opts: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {},
): RunResult {
  const r = Bun.spawnSync(cmd, {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
    timeout: opts.timeoutMs ?? 60_000,
    killSignal: "SIGKILL",
  });
  return { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** True when a command is on PATH. */
export function have(cmd: string): boolean {
  return Bun.which(cmd) !== null;
}
