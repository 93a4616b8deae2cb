/**
 * SIGINT/SIGTERM are held while `server` starts (src/server/stopsignal.ts):
 * one that arrives before the drain is wired is passed to it once the server
 * is up; a second one while starting exits at once with the signal's status.
 * Checked in a fresh Bun process that signals itself (the test runner's own
 * handlers stay out of it).
 */
import { expect, test } from "bun:test";
import { resolve } from "node:path";

const MODULE = resolve(import.meta.dir, "../../src/server/stopsignal.ts");

async function run(body: string): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  const script = `import { holdStopSignals, onStopSignal } from ${JSON.stringify(MODULE)};\n${body}`;
  const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  return { code: p.exitCode, signal: p.signalCode === null ? null : String(p.signalCode), out, err };
}

test("a stop signal that arrives while starting is held and handed to the drain once it is wired", async () => {
  const r = await run(`
    holdStopSignals();
    process.kill(process.pid, "SIGTERM");
    await Bun.sleep(150);
    console.log("ALIVE");
    const was = onStopSignal((sig, held) => console.log("HANDLED", sig, held));
    console.log("RETURNED", was);
    process.kill(process.pid, "SIGINT");
    await Bun.sleep(150);
    process.exit(0);
  `);
  expect(r.signal, r.err).toBeNull();
  expect(r.code, r.err).toBe(0);
  expect(r.out.trim().split("\n")).toEqual(["ALIVE", "HANDLED SIGTERM true", "RETURNED SIGTERM", "HANDLED SIGINT false"]);
});

test("without a held signal the handler is not called until one arrives", async () => {
  const r = await run(`
    holdStopSignals();
    const was = onStopSignal((sig, held) => console.log("HANDLED", sig, held));
    console.log("RETURNED", was);
    process.exit(0);
  `);
  expect(r.code, r.err).toBe(0);
  expect(r.out.trim().split("\n")).toEqual(["RETURNED null"]);
});

test("a second stop signal while starting exits at once with the signal's status", async () => {
  const r = await run(`
    holdStopSignals();
    process.kill(process.pid, "SIGTERM");
    await Bun.sleep(150);
    process.kill(process.pid, "SIGTERM");
    await Bun.sleep(1000);
    console.log("STILL HERE");
  `);
  expect(r.code).toBe(143);
  expect(r.out).not.toContain("STILL HERE");
  expect(r.err).toContain('"while_starting":true');
});

test("not held, SIGTERM takes the default action (what the hold prevents)", async () => {
  const r = await run(`
    process.kill(process.pid, "SIGTERM");
    await Bun.sleep(1000);
    console.log("STILL HERE");
  `);
  expect(r.signal).toBe("SIGTERM");
  expect(r.out).not.toContain("STILL HERE");
});
