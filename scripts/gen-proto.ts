/**
 * Regenerates src/gen/ from proto/ with the pinned buf and ts-proto (devDependencies; no system
 * protoc). Usage: `npm run proto` (or `bun scripts/gen-proto.ts [outBase]`, which writes
 * `<outBase>/src/gen/` instead — the drift test uses that). Output is deterministic for pinned tools.
 */
import path from "node:path";

export const REPO_ROOT = path.resolve(import.meta.dir, "..");

/** Runs `buf generate` into `<outBase>/src/gen` (default: the repo itself); throws with buf's stderr on failure. */
export function generateProto(outBase: string = REPO_ROOT): void {
  // The platform package of buf directly: the npm registry here lacks buf's other platform
  // packages, which would leave package-lock.json out of sync for `npm ci`.
  const buf = path.join(REPO_ROOT, "node_modules/@bufbuild/buf-linux-x64/bin/buf");
  // cwd = repo root: buf.gen.yaml names the plugin by a path relative to it.
  const res = Bun.spawnSync([buf, "generate", "--template", "buf.gen.yaml", "-o", outBase], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (res.exitCode !== 0) {
    throw new Error(`buf generate failed (exit ${res.exitCode}): ${res.stderr.toString().trim()}`);
  }
}

if (import.meta.main) {
  const out = process.argv[2] ? path.resolve(process.argv[2]) : REPO_ROOT;
  try {
    generateProto(out);
    console.log(`generated ${path.join(out, "src/gen")}`);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exit(1);
  }
}
