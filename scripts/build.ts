/**
 * Builds the single-file executables with `bun build --compile`:
 *   dist/mc-proxy    from src/main.ts
 *   dist/mcproxyctl  from src/ctl/main.ts
 *
 * Usage: bun scripts/build.ts [target...]   (no target = all targets)
 *   Environment: MC_PROXY_VERSION overrides the injected version string;
 *   MC_PROXY_BUILD_ENTRY_<TARGET> (e.g. MC_PROXY_BUILD_ENTRY_MC_PROXY) overrides
 *   a target's entry file (used while developing the deploy tooling).
 *
 * Each binary is written to a temp file in dist/, smoke-tested (`--help`), and
 * only then renamed over the old one, so dist/ never holds a half-written or
 * broken binary. `--minify --bytecode` are on: checked to keep grpc-js,
 * maxmind and bun:sqlite working in the binary (see test/deploy/).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import pkg from "../package.json" with { type: "json" };

const ROOT = path.resolve(import.meta.dir, "..");
const DIST = path.join(ROOT, "dist");

/** Target name → entry file, relative to the repository root. */
export const TARGETS: Record<string, string> = {
  "mc-proxy": "src/main.ts",
  mcproxyctl: "src/ctl/main.ts",
};

/** Extra entry points compiled into a target: the data-path worker thread's code. */
const WORKER_ENTRIES: Record<string, string[]> = {
  "mc-proxy": ["src/server/worker.ts"],
};

/**
 * The version string injected into the binaries: env MC_PROXY_VERSION if set,
 * else package.json's version plus `+<git describe --always --dirty>` when git
 * can describe the work tree, else the bare package version.
 */
export function buildVersion(): string {
  const fromEnv = process.env.MC_PROXY_VERSION;
  if (fromEnv) return fromEnv;
  const git = Bun.spawnSync(["git", "describe", "--always", "--dirty"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "ignore",
  });
  const described = git.exitCode === 0 ? git.stdout.toString().trim() : "";
  return described ? `${pkg.version}+${described}` : pkg.version;
}

/** Environment-variable name that overrides a target's entry file. */
function entryOverrideVar(target: string): string {
  return `MC_PROXY_BUILD_ENTRY_${target.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/**
 * Compiles one target into dist/<target>. Returns the output path and its size;
 * throws with the compiler's output if the build or the `--help` check fails.
 */
export function buildTarget(target: string, version: string): { out: string; bytes: number } {
  const entry = process.env[entryOverrideVar(target)] ?? path.join(ROOT, TARGETS[target]!);
  if (!fs.existsSync(entry)) throw new Error(`${target}: entry ${entry} does not exist`);
  fs.mkdirSync(DIST, { recursive: true });
  const out = path.join(DIST, target);
  // Temp file in the same directory: rename(2) is atomic only within one filesystem.
  const tmp = path.join(DIST, `.${target}.tmp-${process.pid}`);
  try {
    const args = [
      // --bytecode alone implies CommonJS, which rejects top-level await: keep ESM.
      process.execPath, "build", "--compile", "--minify", "--bytecode", "--format=esm",
      "--define", `MC_PROXY_VERSION=${JSON.stringify(version)}`,
      "--outfile", tmp, entry,
      // Worker threads' entry ([proxy] workers): embedded beside main.ts under the bundle root (src/server/workers.ts workerUrl).
      ...(WORKER_ENTRIES[target] ?? []).map((e) => path.join(ROOT, e)),
    ];
    const r = Bun.spawnSync(args, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) {
      throw new Error(`${target}: bun build failed:\n${r.stdout.toString()}${r.stderr.toString()}`);
    }
    // A binary that cannot even print its help must never replace a working one.
    const check = Bun.spawnSync([tmp, "--help"], { stdout: "pipe", stderr: "pipe", env: {} });
    if (check.exitCode !== 0) {
      throw new Error(`${target}: built binary fails '--help' (exit ${check.exitCode}):\n${check.stderr.toString()}`);
    }
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, out);
    return { out, bytes: fs.statSync(out).size };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function main(argv: string[]): number {
  const wanted = argv.length > 0 ? argv : Object.keys(TARGETS);
  const unknown = wanted.filter((t) => !(t in TARGETS));
  if (unknown.length > 0) {
    console.error(`unknown target(s): ${unknown.join(", ")}; known: ${Object.keys(TARGETS).join(", ")}`);
    return 2;
  }
  const version = buildVersion();
  console.log(`building ${wanted.join(", ")} version ${version}`);
  for (const t of wanted) {
    try {
      const { out, bytes } = buildTarget(t, version);
      console.log(`${path.relative(ROOT, out)}  ${(bytes / 1024 / 1024).toFixed(1)} MiB`);
    } catch (err) {
      console.error(err instanceof Error ? err.message : String(err));
      return 1;
    }
  }
  return 0;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
