/**
 * The JavaScriptCore options `server` runs with (ARCHITECTURE.md, "Garbage
 * collector"). JSC reads its options once, from `BUN_JSC_*` environment
 * variables, before any JavaScript runs; nothing can change them later. So
 * `server` starts, and — unless the environment already names every one of
 * these options — replaces its own process image with the same program, the
 * same arguments and the same environment plus the options it does not name
 * (an operator's value for any of them wins) (execve(2) on /proc/self/exe:
 * same pid, same descriptors, no child process). Costs one more runtime
 * start-up (tens of milliseconds).
 *
 * Why these options: JSC's generational, concurrent collector promotes every
 * object alive at an eden collection. A proxy always has requests in flight,
 * so each eden collection promoted their objects, which died right after and
 * were left for full collections (20 full among 43 collections in 5 s of the
 * W4 benchmark). Measured on the compiled binary (W4, alternating runs):
 * CPU per request −15 % with generational off, −25 % with concurrent marking
 * off too; peak RSS under HTTP/2 load −12 to −20 MiB; longest pause 8.5 →
 * 13.7 ms (request latency p100 unchanged: 45 vs 37 ms).
 *
 * Why no FTL (JSC's fourth tier): what it compiled, and what compiling it
 * took, stayed resident — peak RSS under load −8 to −10 MiB without it (W5
 * 64–67 → 56–58, W4 73–75 → 63–66, W4h1 75–78 → 70–71), for a CPU cost per
 * request that alternating runs could not tell from noise (the proxy's
 * JavaScript is short functions over bytes; DFG code is as good for them).
 *
 * Why heapGrowthMaxIncrease 1.0 (JSC's default 2): a full collection lets
 * the heap grow to about (1 + this) × its size after it before the next.
 * At 1.5 (session 8) the peak under HTTP/2 load was 3–4 MiB lower than at 2
 * (W4 65–66 → 61–62 MiB, W4h1 67 → 63–64) for 1.3–1.4× the collections;
 * at 1.25 (session 9, once a W4h1 request allocated 1.7 KB instead of 2.8)
 * W4h1's peak is another 1–1.5 MiB lower for 30 → 35 collections in 5 s, GC
 * pauses per request 1.30–1.45 → 1.25–1.56 µs (BUN_JSC_logGC, alternating).
 * At 1.0 (session 11, once HTTP/2 backends' requests allocated a quarter
 * less): the heap's peak under W4h1 19.3 → 17.4 MB and RSS peak −2 MiB
 * (62.7–63.6 → 61.0–61.2 with a freshly copied binary, whose pages are all
 * in the page cache), for 44 → 60 collections in 6 s, GC pauses per
 * request 1.39 → 1.58 µs (W4h1), 1.62 → 1.96 µs (W4).
 */
import { ptr } from "bun:ffi";
import { readFileSync } from "node:fs";
import { libc } from "../net/libc.ts";

/** Added to the environment of a `server` process, each unless the environment names it already. */
export const SERVER_JSC_OPTIONS: Readonly<Record<string, string>> = {
  BUN_JSC_useGenerationalGC: "0",
  BUN_JSC_useConcurrentGC: "0",
  BUN_JSC_useFTLJIT: "0",
  BUN_JSC_heapGrowthMaxIncrease: "1.0",
};

/** For the server.start line: the options' values in this process ("default" when unset). */
export function jscOptionsInEffect(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(SERVER_JSC_OPTIONS)) out[k.slice("BUN_JSC_".length)] = env[k] ?? "default";
  return out;
}

/** NUL-separated /proc file → offsets of its items (each NUL-terminated in `buf`). */
function items(buf: Buffer): number[] {
  const at: number[] = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] !== 0) continue;
    at.push(start);
    start = i + 1;
  }
  return at;
}

/**
 * Re-executes this process with SERVER_JSC_OPTIONS in its environment.
 * Returns only when it does not: the reason (options already chosen, not
 * Linux, no /proc or libc, execve failed), for a debug log line.
 */
export function reexecWithJscOptions(): string {
  if (process.platform !== "linux") return "not Linux";
  let argv: Buffer;
  let environ: Buffer;
  try {
    // The bytes as the kernel has them: arguments and variables are passed on unchanged, whatever their encoding.
    argv = readFileSync("/proc/self/cmdline");
    environ = readFileSync("/proc/self/environ");
  } catch {
    return "no /proc";
  }
  // Decided on the kernel's environment, not process.env: whatever the runtime does with
  // BUN_JSC_* in process.env, a process started with all of them never re-executes (no loop).
  const names = new Set(environ.toString("latin1").split("\0").map((kv) => kv.slice(0, kv.indexOf("="))));
  const missing = Object.entries(SERVER_JSC_OPTIONS).filter(([k]) => !names.has(k));
  if (missing.length === 0) return "options already in the environment";
  const c = libc();
  if (c === null) return "no libc";
  const added = Buffer.from(missing.map(([k, v]) => `${k}=${v}\0`).join(""), "latin1");
  const pointers = (buf: Buffer, at: number[], extra: number): BigUint64Array => {
    const base = buf.length > 0 ? ptr(buf) : 0;
    const out = new BigUint64Array(at.length + extra + 1); // NULL-terminated
    at.forEach((off, i) => (out[i] = BigInt(base + off)));
    return out;
  };
  const argAt = items(argv);
  if (argAt.length === 0) return "empty /proc/self/cmdline";
  const envAt = items(environ);
  const addAt = items(added);
  const envp = pointers(environ, envAt, addAt.length);
  const addBase = ptr(added);
  addAt.forEach((off, i) => (envp[envAt.length + i] = BigInt(addBase + off)));
  const path = Buffer.from("/proc/self/exe\0", "latin1");
  c.execve(path, pointers(argv, argAt, 0), envp);
  // Still here: execve failed; the buffers above stayed alive until now.
  return "execve failed";
}
