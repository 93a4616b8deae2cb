/**
 * `mc-proxy server` loads the admin API's gRPC stack only when [grpc] is
 * configured: @grpc/grpc-js costs +4–5 MiB of idle RSS and ~15k live JS
 * cells, which also raise how far the JS heap grows under load
 * (ARCHITECTURE.md, Known limitations). The admin client and its CLI come in
 * only for `ctl` and `status`. Checked on the module registry of a fresh Bun.
 */
import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");

/** Module ids in require.cache after importing `spec` in a fresh process. */
async function loadedAfter(spec: string): Promise<string[]> {
  const script = `await import(${JSON.stringify(resolve(ROOT, spec))}); await Bun.write(Bun.stdout, JSON.stringify(Object.keys(require.cache))); process.exit(0);`;
  const p = Bun.spawn([process.execPath, "-e", script], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(code, err).toBe(0);
  return JSON.parse(out) as string[];
}

const grpc = (ids: string[]) => ids.filter((id) => id.includes("@grpc/grpc-js"));

describe("module loading", () => {
  test("the command line and the server's start-up do not load grpc-js or the admin client", async () => {
    for (const spec of ["src/main.ts", "src/server/run.ts", "src/server/worker.ts"]) {
      const ids = await loadedAfter(spec);
      expect(ids.length).toBeGreaterThan(20); // the registry was read (a wrong probe would pass empty)
      expect(grpc(ids), spec).toEqual([]);
      expect(ids.filter((id) => /src\/(ctl\/commands|ctl\/status|admin\/(client|server))\.ts$/.test(id)), spec).toEqual([]);
    }
  });

  test("the admin server and the admin client do load it (the probe sees it)", async () => {
    expect(grpc(await loadedAfter("src/admin/server.ts")).length).toBeGreaterThan(0);
    expect(grpc(await loadedAfter("src/ctl/commands.ts")).length).toBeGreaterThan(0);
  });
});
