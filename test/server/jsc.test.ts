/**
 * `server` runs with its own JavaScriptCore options (src/server/jsc.ts): the
 * process re-executes itself once with them in its environment — same pid,
 * same arguments, the rest of the environment unchanged — adding each option
 * the operator's environment does not already name.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinaries } from "../e2e/build.ts";
import { killAllServers, startServerProc, type ServerProc } from "../helpers/subprocess.ts";

const procs: ServerProc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.cleanup();
});
afterAll(() => killAllServers());

/** The environment the kernel holds for `pid` (what execve gave it). */
function environOf(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const i = kv.indexOf("=");
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

function argvOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, -1);
}

/** A config in a directory whose name needs exact bytes (a space, non-ASCII): the re-executed process must find it. */
function configDir(): { dir: string; cfg: string } {
  const dir = join(mkdtempSync(join(tmpdir(), "mcp-jsc-")), "conf dir é");
  mkdirSync(dir);
  const cfg = join(dir, "mc-proxy.toml");
  writeFileSync(cfg, `[database]\npath = "mc-proxy.db"\n\n[[listeners]]\naddr = "127.0.0.1:0"\n`);
  return { dir, cfg };
}

const baseEnv = (): Record<string, string> => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("BUN_JSC_")) env[k] = v;
  return env;
};

for (const kind of ["binary", "source"] as const) {
  test(`server (${kind}) re-executes itself with the collector options: same pid and arguments, environment kept`, async () => {
    const { dir, cfg } = configDir();
    const env = { ...baseEnv(), MCP_JSC_TEST_MARK: "kept value = é" };
    const p = await startServerProc(cfg, { cwd: dir, dir, env, ...(kind === "binary" ? { bin: ensureBinaries().mcProxy } : {}) });
    procs.push(p);
    // Bun.spawn's pid is the server: execve replaced the image, no child was started.
    const e = environOf(p.proc.pid);
    expect(e.get("BUN_JSC_useGenerationalGC")).toBe("0");
    expect(e.get("BUN_JSC_useConcurrentGC")).toBe("0");
    expect(e.get("BUN_JSC_useFTLJIT")).toBe("0");
    expect(e.get("BUN_JSC_heapGrowthMaxIncrease")).toBe("1.0");
    expect(e.get("MCP_JSC_TEST_MARK")).toBe("kept value = é");
    expect(argvOf(p.proc.pid).slice(-3)).toEqual(["server", "-c", cfg]);
    expect(p.start.jsc).toEqual({ useGenerationalGC: "0", useConcurrentGC: "0", useFTLJIT: "0", heapGrowthMaxIncrease: "1.0" });
    expect(p.logs.filter((l) => l.event === "server.start").length).toBe(1);
    expect(await p.stop()).toBe(0);
  });
}

test("an option the operator set is left alone; the ones not set are added", async () => {
  const { dir, cfg } = configDir();
  const env = { ...baseEnv(), BUN_JSC_useConcurrentGC: "1" };
  const p = await startServerProc(cfg, { cwd: dir, dir, env, bin: ensureBinaries().mcProxy });
  procs.push(p);
  const e = environOf(p.proc.pid);
  expect(e.get("BUN_JSC_useConcurrentGC")).toBe("1");
  expect(e.get("BUN_JSC_useGenerationalGC")).toBe("0");
  expect(e.get("BUN_JSC_useFTLJIT")).toBe("0");
  expect(p.start.jsc).toEqual({ useGenerationalGC: "0", useConcurrentGC: "1", useFTLJIT: "0", heapGrowthMaxIncrease: "1.0" });
  expect(await p.stop()).toBe(0);
});

test("with every option set by the operator nothing is added (and nothing loops)", async () => {
  const { dir, cfg } = configDir();
  const env = { ...baseEnv(), BUN_JSC_useGenerationalGC: "1", BUN_JSC_useConcurrentGC: "1", BUN_JSC_useFTLJIT: "1", BUN_JSC_heapGrowthMaxIncrease: "2" };
  const p = await startServerProc(cfg, { cwd: dir, dir, env, bin: ensureBinaries().mcProxy });
  procs.push(p);
  const e = environOf(p.proc.pid);
  expect([e.get("BUN_JSC_useGenerationalGC"), e.get("BUN_JSC_useConcurrentGC"), e.get("BUN_JSC_useFTLJIT"), e.get("BUN_JSC_heapGrowthMaxIncrease")]).toEqual(["1", "1", "1", "2"]);
  expect(p.start.jsc).toEqual({ useGenerationalGC: "1", useConcurrentGC: "1", useFTLJIT: "1", heapGrowthMaxIncrease: "2" });
  expect(p.logs.filter((l) => l.event === "server.start").length).toBe(1);
  expect(await p.stop()).toBe(0);
});

test("a .env or bunfig.toml in the working directory is not loaded by the binary (its environment is the kernel's)", async () => {
  const { dir, cfg } = configDir();
  writeFileSync(join(dir, ".env"), "BUN_JSC_useGenerationalGC=1\nMCP_DOTENV_PROBE=loaded\n");
  writeFileSync(join(dir, "bunfig.toml"), `preload = ["./preload.ts"]\n`);
  writeFileSync(join(dir, "preload.ts"), `process.stderr.write("PRELOADED\\n");\n`);
  const p = await startServerProc(cfg, { cwd: dir, dir, env: baseEnv(), bin: ensureBinaries().mcProxy });
  procs.push(p);
  // Not in process.env either: the start line reports the options the re-execution set.
  expect(p.start.jsc).toEqual({ useGenerationalGC: "0", useConcurrentGC: "0", useFTLJIT: "0", heapGrowthMaxIncrease: "1.0" });
  expect(environOf(p.proc.pid).get("BUN_JSC_useGenerationalGC")).toBe("0");
  expect(p.stderrText()).not.toContain("PRELOADED");
  expect(await p.stop()).toBe(0);
});
