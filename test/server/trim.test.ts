/**
 * After start-up the server drops the clean read-only file pages it mapped
 * (src/server/trim.ts): which mappings qualify, and the real binary doing it
 * and serving afterwards.
 */
import { afterAll, afterEach, expect, test } from "bun:test";
import { trimCandidates } from "../../src/server/trim.ts";
import { ensureBinaries } from "../e2e/build.ts";
import { rawConnect, realHello, startSink, waitUntil, type TcpSink } from "../helpers/net.ts";
import { killAllServers, startProxyProc, type ServerProc } from "../helpers/subprocess.ts";

const procs: ServerProc[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.cleanup();
});
afterAll(() => killAllServers());

const vma = (range: string, perms: string, path: string, kb: { rss: number; anon?: number; swap?: number; dirty?: number }) =>
  [
    `${range} ${perms} 00000000 fe:00 123                            ${path}`,
    `Size:              10000 kB`,
    `Rss:               ${kb.rss} kB`,
    `Private_Clean:     ${kb.rss - (kb.dirty ?? 0)} kB`,
    `Private_Dirty:     ${kb.dirty ?? 0} kB`,
    `Anonymous:         ${kb.anon ?? 0} kB`,
    `Swap:              ${kb.swap ?? 0} kB`,
  ].join("\n");

test("only the executable's private read-only mappings whose every page is the file's are dropped", () => {
  const smaps = [
    vma("00200000-01a38000", "r--p", "/usr/bin/mc-proxy", { rss: 5792 }),
    // Page-cache pages not yet written back show as Private_Dirty: still the file's.
    vma("01a40000-06836000", "r-xp", "/usr/bin/mc-proxy", { rss: 25080, dirty: 25080 }),
    vma("06836000-0684a000", "rw-p", "/usr/bin/mc-proxy", { rss: 80 }), // writable
    vma("0684a000-06852000", "r--p", "/usr/bin/mc-proxy", { rss: 32, anon: 12 }), // RELRO: relocated copies
    vma("7f0000000000-7f0000100000", "r--p", "/usr/lib/x86_64-linux-gnu/libc.so.6", { rss: 160 }), // another file: could be unmapped meanwhile
    vma("7f0000200000-7f0000300000", "r--s", "/usr/bin/mc-proxy", { rss: 400 }), // shared
    vma("7f0000400000-7f0000500000", "r--p", "/usr/bin/mc-proxy", { rss: 8, swap: 4 }),
    vma("7f0000600000-7f0000700000", "r--p", "/dev/zero", { rss: 8 }),
    vma("7f0000800000-7f0000900000", "r-xp", "", { rss: 64 }), // anonymous
    vma("7f0000a00000-7f0000b00000", "r-xp", "/usr/bin/mc-proxy", { rss: 0 }), // nothing resident
    vma("7ffd00000000-7ffd00002000", "r-xp", "[vdso]", { rss: 8 }),
  ].join("\n");
  expect(trimCandidates(smaps, "/usr/bin/mc-proxy")).toEqual([
    { start: 0x200000, length: 0x1a38000 - 0x200000, rss: 5792 * 1024 },
    { start: 0x1a40000, length: 0x6836000 - 0x1a40000, rss: 25080 * 1024 },
  ]);
});

test("the compiled server drops its start-up pages (server.trim) and serves afterwards", async () => {
  const sink: TcpSink = await startSink((c) => {
    c.socket.write("pong");
    c.ended.then(() => c.socket.end());
  });
  try {
    const p = await startProxyProc(
      `[log]\nlevel = "debug"\n\n[[listeners]]\naddr = "127.0.0.1:0"\n  [[listeners.routes]]\n  hostname = "a.test"\n  backend = "127.0.0.1:${sink.port}"\n`,
      { bin: ensureBinaries().mcProxy },
    );
    procs.push(p);
    const t = await p.waitLog((l) => l.event === "server.trim", 5000, "server.trim");
    expect(t.mappings as number).toBeGreaterThanOrEqual(2);
    expect(t.bytes as number).toBeGreaterThan(8 * 1024 * 1024);
    expect(p.logs.findIndex((l) => l.event === "server.trim")).toBeGreaterThan(p.logs.findIndex((l) => l.event === "server.start"));
    // The dropped code faults back in from the page cache: a connection is routed and relayed.
    const c = rawConnect(p.port());
    c.socket.write(await realHello("a.test"));
    await waitUntil(() => c.received().toString() === "pong", 5000, "reply through the proxy");
    c.socket.end();
    expect(await p.stop()).toBe(0);
  } finally {
    sink.close();
  }
});
