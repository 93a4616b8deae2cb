/**
 * Shared by the test/l7h2 files: the REAL server as a subprocess — the
 * compiled binary `dist/mc-proxy` when it exists and is fresher than src/
 * (MCP_L7H2_SOURCE=1 forces `bun src/main.ts`) — with one L7 route towards an
 * h2c backend, and the process's memory from /proc.
 */
import fs from "node:fs";
import path from "node:path";
import { startProxyProc, type ServerProc } from "../helpers/subprocess.ts";
import { testPki } from "../l7/harness.ts";

const REPO = path.resolve(import.meta.dir, "../..");
const BIN = path.join(REPO, "dist/mc-proxy");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, fs.statSync(path.join(e.parentPath, e.name)).mtimeMs);
  }
  return newest;
}

/**
 * The compiled binary when present and up to date with src/ (build it with
 * `bun scripts/build.ts mc-proxy`), else undefined: the subprocess runs the
 * source. Which one ran is printed by each test file.
 */
export function proxyBinary(): string | undefined {
  if (process.env.MCP_L7H2_SOURCE === "1") return undefined;
  if (!fs.existsSync(BIN)) return undefined;
  if (fs.statSync(BIN).mtimeMs < newestMtime(path.join(REPO, "src"))) {
    console.warn(`l7h2: ${BIN} is older than src/ — running the source instead (rebuild: bun scripts/build.ts mc-proxy)`);
    return undefined;
  }
  return BIN;
}

export interface RouteProcOptions {
  hostname: string;
  backend: string;
  backendProtocol?: "h2" | "auto" | "http1";
  /** `[proxy]` lines, e.g. `idle_timeout = "2s"`. */
  proxy?: string[];
  /** Listener addr (default 127.0.0.1:0). */
  addr?: string;
}

/** The server (binary or source) with one L7 route, certificate from the L7 test PKI (a.test, localhost, 127.0.0.1). */
export async function startRouteProc(o: RouteProcOptions): Promise<ServerProc> {
  const { leaf } = testPki();
  return await startProxyProc(
    `[[listeners]]
addr = "${o.addr ?? "127.0.0.1:0"}"
  [[listeners.routes]]
  hostname = "${o.hostname}"
  backend = "${o.backend}"
  mode = "l7"
  tls_cert = "${leaf.fullchainPath}"
  tls_key = "${leaf.keyPath}"
  backend_protocol = "${o.backendProtocol ?? "h2"}"

[proxy]
${(o.proxy ?? []).join("\n")}
`,
    { bin: proxyBinary() },
  );
}

/** VmRSS and VmHWM (peak) of `pid`, in KiB. */
export function memKiB(pid: number): { rss: number; hwm: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = /VmRSS:\s+(\d+) kB/.exec(s);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(s);
  return { rss: rss ? Number(rss[1]) : NaN, hwm: hwm ? Number(hwm[1]) : NaN };
}
