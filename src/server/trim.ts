/**
 * Gives back the pages of the executable that only start-up touched.
 *
 * The binary maps ~100 MiB of read-only code and data (Bun, JavaScriptCore,
 * BoringSSL, our bytecode). Starting the server touches ~35 MiB of it —
 * parsers, compilers, migrations, config loading — most of which the data
 * path never runs again, yet those pages stay in the process's RSS. Once the
 * server is up, madvise(MADV_DONTNEED) on every private mapping of the
 * executable that is read-only and holds no page of its own (smaps Anonymous and Swap 0:
 * every page is the file's) drops them from the page tables; the
 * page cache keeps them, so what runs again faults back in from memory
 * (minor faults), and only the working set counts against the process.
 * Lossless by construction: a mapping with any copied-on-write page (e.g.
 * RELRO after relocation) is left alone. Only the executable's own mappings,
 * which live as long as the process: another file's mapping could be
 * unmapped by another thread between reading smaps and the madvise, and its
 * addresses reused for memory in use (first version, all file mappings: one
 * CI run lost a server to what was most likely that).
 */
import { readFileSync, readlinkSync } from "node:fs";
import { libc } from "../net/libc.ts";

const MADV_DONTNEED = 4;

export interface TrimResult {
  /** Mappings advised. */
  mappings: number;
  /** Their resident bytes just before (smaps Rss). */
  bytes: number;
}

/** A mapping that may be dropped: the executable's, private, read-only, every page the file's. */
interface Candidate {
  start: number;
  length: number;
  rss: number;
}

/** Private read-only mappings of `exe` without pages of their own, from /proc/self/smaps text. */
export function trimCandidates(smaps: string, exe: string): Candidate[] {
  const out: Candidate[] = [];
  let cur: (Candidate & { ok: boolean }) | null = null;
  const flush = () => {
    if (cur?.ok && cur.rss > 0) out.push({ start: cur.start, length: cur.length, rss: cur.rss });
    cur = null;
  };
  for (const line of smaps.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      flush();
      const start = parseInt(head[1]!, 16);
      const end = parseInt(head[2]!, 16);
      const perms = head[3]!;
      cur = { start, length: end - start, rss: 0, ok: head[4] === exe && perms[1] === "-" && perms[3] === "p" };
      continue;
    }
    if (cur === null) continue;
    // Copied-on-write pages count as Anonymous (Private_Dirty also counts page-cache pages not yet written back).
    const m = /^(Rss|Anonymous|Swap):\s+(\d+) kB/.exec(line);
    if (!m) continue;
    const kb = Number(m[2]);
    if (m[1] === "Rss") cur.rss = kb * 1024;
    else if (kb !== 0) cur.ok = false;
  }
  flush();
  return out;
}

/** Drops the executable's clean read-only pages from this process (see above); null when not possible here. */
export function trimExecutablePages(): TrimResult | null {
  if (process.platform !== "linux") return null;
  let smaps: string;
  let exe: string;
  try {
    exe = readlinkSync("/proc/self/exe");
    smaps = readFileSync("/proc/self/smaps", "utf8");
  } catch {
    return null;
  }
  const c = libc();
  if (c === null) return null;
  const r: TrimResult = { mappings: 0, bytes: 0 };
  for (const m of trimCandidates(smaps, exe)) {
    if (c.madvise(m.start, m.length, MADV_DONTNEED) !== 0) continue;
    r.mappings++;
    r.bytes += m.rss;
  }
  return r;
}
