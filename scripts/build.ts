/**
 * Builds the single-file executable dist/mc-proxy from src/main.ts (plus the
 * worker thread's entry, src/server/worker.ts) with `bun build --compile`. It
 * is the only file in dist/: the admin client is the same binary (`mc-proxy
 * ctl …`, or started through a link named `mcproxyctl`, see src/main.ts), so a
 * stale dist/mcproxyctl from older builds is removed.
 * Links are made where the binary is installed (deploy/scripts/install.sh,
 * deploy/rootfs/assemble.sh), not here, so `dist/` is exactly what ships.
 *
 * Usage: bun scripts/build.ts
 *   Environment: MC_PROXY_VERSION overrides the injected version string;
 *   MC_PROXY_BUILD_ENTRY overrides the entry file (used while developing the
 *   deploy tooling).
 *
 * The binary is written to a temp file in dist/, smoke-tested (`--help`,
 * `ctl --help`), and only then renamed over the old one, so dist/ never holds
 * a half-written or broken binary. `--minify --bytecode` are on: checked to
 * keep grpc-js, maxmind and bun:sqlite working in the binary (see test/deploy/).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import pkg from "../package.json" with { type: "json" };

const ROOT = path.resolve(import.meta.dir, "..");
const DIST = path.join(ROOT, "dist");
const ENTRY = "src/main.ts";
/** What older builds wrote beside mc-proxy (a second 100 MB binary). */
const STALE = ["mcproxyctl"];

/** Extra entry points compiled into the binary: the data-path worker thread's code. */
const WORKER_ENTRIES = ["src/server/worker.ts"];
/** `bun build --bytecode-order` profile, written by scripts/bytecode-order.ts (optional: a build without it works). */
const BYTECODE_ORDER = path.join(ROOT, "scripts/bytecode-order.txt");

/**
 * The version string injected into the binary: env MC_PROXY_VERSION if set,
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

/**
 * Compiles dist/mc-proxy. Returns the output path and its size; throws with
 * the compiler's output if the build or a smoke check fails.
 */
export function buildBinary(version: string): { out: string; bytes: number } {
  const entry = process.env.MC_PROXY_BUILD_ENTRY ?? path.join(ROOT, ENTRY);
  if (!fs.existsSync(entry)) throw new Error(`entry ${entry} does not exist`);
  fs.mkdirSync(DIST, { recursive: true });
  const out = path.join(DIST, "mc-proxy");
  // Temp file in the same directory: rename(2) is atomic only within one filesystem.
  const tmp = path.join(DIST, `.mc-proxy.tmp-${process.pid}`);
  try {
    const args = [
      // --bytecode alone implies CommonJS, which rejects top-level await: keep ESM.
      process.execPath, "build", "--compile", "--minify", "--bytecode", "--format=esm",
      // A server reads its config, not whatever .env or bunfig.toml sits in its working directory
      // (Bun's executables load both by default: a bunfig.toml can preload code).
      "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
      // The bytecode the server runs, laid out together (scripts/bytecode-order.ts made the profile).
      ...(fs.existsSync(BYTECODE_ORDER) ? ["--bytecode-order", BYTECODE_ORDER] : []),
      "--define", `MC_PROXY_VERSION=${JSON.stringify(version)}`,
      "--outfile", tmp, entry,
      // Worker threads' entry ([proxy] workers): embedded beside main.ts under the bundle root (src/server/workers.ts workerUrl).
      ...WORKER_ENTRIES.map((e) => path.join(ROOT, e)),
    ];
    const r = Bun.spawnSync(args, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) {
      throw new Error(`bun build failed:\n${r.stdout.toString()}${r.stderr.toString()}`);
    }
    // A binary that cannot even print its help must never replace a working one.
    for (const check of [["--help"], ["ctl", "--help"]]) {
      const c = Bun.spawnSync([tmp, ...check], { stdout: "pipe", stderr: "pipe", env: {} });
      if (c.exitCode !== 0) {
        throw new Error(`built binary fails '${check.join(" ")}' (exit ${c.exitCode}):\n${c.stderr.toString()}`);
      }
    }
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, out);
    for (const name of STALE) fs.rmSync(path.join(DIST, name), { force: true });
    return { out, bytes: fs.statSync(out).size };
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function main(argv: string[]): number {
  if (argv.length > 0) {
    console.error(`usage: bun scripts/build.ts (no arguments; builds dist/mc-proxy), got: ${argv.join(" ")}`);
    return 2;
  }
  const version = buildVersion();
  console.log(`building mc-proxy version ${version}`);
  try {
    const { out, bytes } = buildBinary(version);
    console.log(`${path.relative(ROOT, out)}  ${(bytes / 1024 / 1024).toFixed(1)} MiB`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 1;
  }
  return 0;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
