/**
 * Runs the real server as a subprocess (`bun src/main.ts server -c cfg`) for
 * tests of signals and exit codes: it writes the config into a temp dir,
 * collects the JSON log lines from stderr, and reads each listener's bound
 * port from the `server.start` line (so configs can use port 0).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");

export interface ServerProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  dir: string;
  logs: Record<string, unknown>[];
  /** Bound port of the listener configured with `addr`. */
  port(addr: string): number;
  /** Resolves with the first log record for which `pred` holds (bounded). */
  waitLog(pred: (r: Record<string, unknown>) => boolean, ms?: number, what?: string): Promise<Record<string, unknown>>;
  /** Resolves with the exit code, or null if still running after `ms`. */
  exited(ms: number): Promise<number | null>;
  /** Kills the process if still running and removes the temp dir. */
  cleanup(): void;
}

/** Starts `mc-proxy server` with `toml` (a `[database]` section is added); resolves once it logged server.start. */
export async function startServerProcess(toml: string, dir = mkdtempSync(join(tmpdir(), "mcp-sub-"))): Promise<ServerProcess> {
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(cfg, `[database]\npath = "${join(dir, "mc-proxy.db")}"\n\n${toml}`);
  const proc = Bun.spawn([process.execPath, MAIN, "server", "-c", cfg], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const logs: Record<string, unknown>[] = [];
  let raw = "";
  (async () => {
    const dec = new TextDecoder();
    let pending = "";
    for await (const chunk of proc.stderr) {
      const text = dec.decode(chunk, { stream: true });
      raw += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          logs.push(JSON.parse(line));
        } catch {
          // not a log line (e.g. a crash trace): kept in `raw` for messages
        }
      }
    }
  })();
  const waitLog: ServerProcess["waitLog"] = async (pred, ms = 10_000, what = "log line") => {
    const end = Date.now() + ms;
    for (;;) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (Date.now() > end || proc.exitCode !== null) {
        await Bun.sleep(50);
        const late = logs.find(pred);
        if (late) return late;
        throw new Error(`no ${what} from the server (exit ${proc.exitCode}); stderr:\n${raw.slice(-3000)}`);
      }
      await Bun.sleep(10);
    }
  };
  const start = await waitLog((r) => r.event === "server.start", 20_000, "server.start");
  const ports = new Map((start.listeners as { addr: string; port: number }[]).map((l) => [l.addr, l.port]));
  return {
    proc,
    dir,
    logs,
    waitLog,
    port(addr) {
      const p = ports.get(addr);
      if (!p) throw new Error(`no listener ${addr}`);
      return p;
    },
    async exited(ms) {
      return await Promise.race([proc.exited, Bun.sleep(ms).then(() => null)]);
    },
    cleanup() {
      if (proc.exitCode === null) proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
