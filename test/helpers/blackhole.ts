/**
 * A black-holed backend on loopback: a listening socket whose accept queue is
 * full, so Linux drops new SYNs and connect() hangs. Held by a tiny python3
 * process (backlog 0, never accepts; Bun's node:net ignores `backlog`), with
 * one filler connection taking the single queue slot.
 */
import net from "node:net";

export interface Blackhole {
  port: number;
  close(): void;
}

export async function startBlackhole(): Promise<Blackhole> {
  const p = Bun.spawn(
    ["python3", "-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)"],
    { stdout: "pipe", stderr: "inherit" },
  );
  const reader = p.stdout.getReader();
  const { value } = await Promise.race([reader.read(), Bun.sleep(10_000).then(() => ({ value: undefined }))]);
  reader.releaseLock();
  const port = Number(new TextDecoder().decode(value ?? new Uint8Array()).trim());
  if (!port) {
    p.kill();
    throw new Error("python3 blackhole did not start");
  }
  const filler = net.connect(port, "127.0.0.1");
  filler.on("error", () => {});
  await Promise.race([new Promise((r) => filler.once("connect", r)), Bun.sleep(5000)]);
  // Check: the next connect must hang.
  const probe = net.connect(port, "127.0.0.1");
  probe.on("error", () => {});
  const probed = await Promise.race([new Promise((r) => probe.once("connect", () => r("connected"))), Bun.sleep(500).then(() => "hang")]);
  probe.destroy(); // our own SYN_SENT socket must not count in the callers' checks
  if (probed !== "hang") throw new Error("blackhole accepted a connection: queue not full");
  return {
    port,
    close() {
      filler.destroy();
      p.kill();
    },
  };
}

/** This host's sockets in SYN_SENT towards 127.0.0.1:`port` (from `ss`), one line each. */
export function synSent(port: number): string[] {
  const r = Bun.spawnSync(["ss", "-Htn", "state", "syn-sent", "dst", `127.0.0.1:${port}`]);
  return r.stdout.toString().split("\n").filter((l) => l.trim() !== "");
}

export function synSentTo(port: number): number {
  return synSent(port).length;
}
