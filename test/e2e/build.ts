/**
 * The compiled binary under test: `ensureBinaries()` returns the path of
 * dist/mc-proxy, running `bun scripts/build.ts` first when it is missing or
 * older than any file in src/ (or package.json, the build script or its
 * bytecode-order profile), and of
 * a `mcproxyctl` symlink to it (.tmp/bin/mcproxyctl), the admin client's
 * installed name. Memoised per test process, so the e2e files share one build.
 */
import * as fs from "node:fs";
import * as path from "node:path";

export const REPO = path.resolve(import.meta.dir, "../..");
export const MC_PROXY = path.join(REPO, "dist/mc-proxy");
/** Outside dist/ (which holds exactly what ships); .tmp/ is git-ignored. */
export const MCPROXYCTL_LINK = path.join(REPO, ".tmp/bin/mcproxyctl");

/** Newest mtime (ms) of any file under `dir`, recursively; 0 if none. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const m = fs.statSync(path.join(e.parentPath, e.name)).mtimeMs;
    if (m > newest) newest = m;
  }
  return newest;
}

function mtime(p: string): number {
  return fs.existsSync(p) ? fs.statSync(p).mtimeMs : 0;
}

/**
 * Makes `link` a symlink to `target`, replacing whatever is there atomically
 * (a temp link renamed over it), so concurrent callers never see it missing.
 */
export function linkAs(target: string, link: string): string {
  fs.mkdirSync(path.dirname(link), { recursive: true });
  const tmp = `${link}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, link);
  return link;
}

let built: { mcProxy: string; ctl: string } | null = null;

/**
 * Paths of a fresh compiled binary and of its `mcproxyctl` link. Builds at
 * most once per process; throws with the build output when the build fails
 * (so a broken src/ shows up as a failing e2e test, not a stale binary passing).
 */
export function ensureBinaries(): { mcProxy: string; ctl: string } {
  if (built) return built;
  const inputs = Math.max(
    newestMtime(path.join(REPO, "src")),
    mtime(path.join(REPO, "package.json")),
    mtime(path.join(REPO, "scripts/build.ts")),
    mtime(path.join(REPO, "scripts/bytecode-order.txt")),
  );
  if (mtime(MC_PROXY) < inputs) {
    const r = Bun.spawnSync([process.execPath, "scripts/build.ts"], {
      cwd: REPO,
      stdout: "pipe",
      stderr: "pipe",
      timeout: 600_000,
      killSignal: "SIGKILL",
    });
    if (r.exitCode !== 0) {
      throw new Error(`bun scripts/build.ts failed (exit ${r.exitCode}):\n${r.stdout.toString()}${r.stderr.toString()}`);
    }
  }
  built = { mcProxy: MC_PROXY, ctl: linkAs(MC_PROXY, MCPROXYCTL_LINK) };
  return built;
}
