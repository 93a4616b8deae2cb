/**
 * Shared helpers for the deploy tests: repository paths, a fresh
 * dist/mc-proxy, and bounded process runs.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export const REPO = path.resolve(import.meta.dir, "../..");
export const BINARY = path.join(REPO, "dist/mc-proxy");
export const CTL_BINARY = path.join(REPO, "dist/mcproxyctl");

/** Newest mtime (ms) of any file under `dir` (recursively), 0 if none. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const m = fs.statSync(path.join(entry.parentPath, entry.name)).mtimeMs;
    if (m > newest) newest = m;
  }
  return newest;
}

/**
 * Makes sure dist/mc-proxy and dist/mcproxyctl exist and are newer than src/,
 * package.json and the build script, running `bun scripts/build.ts` for the
 * stale ones. Returns the mc-proxy path; throws with the build output when a
 * build fails.
 */
export function ensureBinary(): string {
  const inputs = Math.max(
    newestMtime(path.join(REPO, "src")),
    fs.statSync(path.join(REPO, "package.json")).mtimeMs,
    fs.statSync(path.join(REPO, "scripts/build.ts")).mtimeMs,
  );
  const stale = [BINARY, CTL_BINARY]
    .filter((b) => !fs.existsSync(b) || fs.statSync(b).mtimeMs < inputs)
    .map((b) => path.basename(b));
  if (stale.length > 0) {
    const r = run([process.execPath, "scripts/build.ts", ...stale], { timeoutMs: 300_000 });
    if (r.exitCode !== 0) throw new Error(`build failed (exit ${r.exitCode}):\n${r.stdout}${r.stderr}`);
  }
  return BINARY;
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
