/**
 * h2spec, the HTTP/2 conformance suite: found on PATH or built offline by
 * ../shared/tools/h2spec/build.sh (beside the repository; Debian's Go). Null
 * when neither works — the callers skip with the reason printed.
 */
import { existsSync } from "node:fs";

const BUILD = new URL("../../../shared/tools/h2spec/build.sh", import.meta.url).pathname;

function findH2spec(): string | null {
  const have = Bun.which("h2spec");
  if (have) return have;
  if (!existsSync(BUILD)) return null;
  const r = Bun.spawnSync(["bash", BUILD], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) console.warn(`h2spec: build failed (${BUILD}): ${r.stderr.toString().slice(-400)}`);
  return Bun.which("h2spec");
}

export const h2spec: string | null = findH2spec();
if (!h2spec) console.warn("h2spec: SKIPPED — binary not found and could not be built (needs Debian golang-go; see ../shared/tools/h2spec/README.md)");

export interface H2specResult {
  total: number;
  passed: number;
  failed: number;
  output: string;
}

/** Runs h2spec with `args` (plus a 3 s per-case timeout) and reads its summary line. */
export async function runH2spec(args: string[]): Promise<H2specResult> {
  const p = Bun.spawn([h2spec!, ...args, "-o", "3"], { stdout: "pipe", stderr: "pipe" });
  const output = (await new Response(p.stdout).text()) + (await new Response(p.stderr).text());
  await p.exited;
  const m = /(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/.exec(output);
  if (!m) throw new Error(`h2spec output not understood:\n${output.slice(-2000)}`);
  return { total: Number(m[1]), passed: Number(m[2]), failed: Number(m[4]), output };
}

/** The failing cases with h2spec's Expected/Actual lines ("" when none). */
export function h2specFailures(r: H2specResult): string {
  return r.output
    .split("\n")
    .filter((l) => l.includes("×") || /Expected|Actual/.test(l))
    .join("\n");
}
