/**
 * Test helper: runs `bun src/main.ts server -c <cfg>` as a subprocess with
 * stderr captured line by line (the JSON log), so tests can look at exactly
 * what an operator would see, send signals, and wait for exit.
 *
 *   const p = spawnServer(cfgPath);
 *   await p.waitLog((l) => l.event === "server.start");
 *   p.proc.kill("SIGTERM"); await p.exited(10_000);
 *   afterAll(killAllServers);
 */
import type { Subprocess } from "bun";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const live = new Set<Subprocess>();

/** SIGKILLs every server this module started that is still running (call from afterAll). */
export function killAllServers(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

export type LogLine = Record<string, unknown>;

export interface ServerProc {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  /** Raw stderr lines so far (each should be one JSON object). */
  lines: string[];
  /** `lines` parsed; a line that is not JSON becomes `{ unparsed: line }`. */
  logs(): LogLine[];
  /** Resolves with the first log line matching `pred`; rejects after `ms` or when the process exits first. */
  waitLog(pred: (l: LogLine) => boolean, ms?: number, what?: string): Promise<LogLine>;
  /** Resolves with the exit code; SIGKILLs and rejects after `ms`. */
  exited(ms: number): Promise<number>;
  /** Whether the process has exited. */
  readonly done: boolean;
}

/** Starts the server from source; the caller waits for readiness its own way. */
export function spawnServer(cfgPath: string): ServerProc {
  const proc = Bun.spawn([process.execPath, join(ROOT, "src", "main.ts"), "server", "-c", cfgPath], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  live.add(proc);
  let done = false;
  proc.exited.then(() => {
    done = true;
    live.delete(proc);
  });
  const lines: string[] = [];
  // Drain stderr for the whole life of the process: a full pipe would block its logging.
  (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stderr) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) lines.push(buf);
  })().catch(() => {});

  const logs = (): LogLine[] =>
    lines.map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        return { unparsed: l };
      }
    });

  return {
    proc,
    lines,
    logs,
    get done() {
      return done;
    },
    async waitLog(pred, ms = 20_000, what = "log line") {
      const end = Date.now() + ms;
      for (;;) {
        const hit = logs().find(pred);
        if (hit) return hit;
        if (done) {
          await Bun.sleep(50); // let the reader take the last lines
          const late = logs().find(pred);
          if (late) return late;
          throw new Error(`server exited (${proc.exitCode}) before ${what}; stderr:\n${lines.join("\n")}`);
        }
        if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; stderr:\n${lines.join("\n")}`);
        await Bun.sleep(25);
      }
    },
    async exited(ms) {
      const timer = setTimeout(() => proc.kill("SIGKILL"), ms);
      try {
        const code = await proc.exited;
        if (proc.signalCode === "SIGKILL") throw new Error(`server did not exit within ${ms} ms; stderr:\n${lines.join("\n")}`);
        await Bun.sleep(50); // let the reader take the last lines
        return code;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
