/**
 * File descriptors: the process's limit (RLIMIT_NOFILE), how many are open,
 * and the budget that keeps the accept loop from ever meeting EMFILE.
 *
 * Why a budget: when accept() fails with EMFILE (or ENFILE), Bun.listen's native accept
 * loop retries at 100 % CPU and reports nothing (measured on 1.4.4: no error
 * handler, no log) until a descriptor is free; and a dial under EMFILE fails
 * as ECONNREFUSED. So we never let the process get there: near the limit,
 * admission accepts a new connection and closes it at once (`fd_limit`),
 * which frees its descriptor in the same turn. Accepting resumes by itself
 * once the count falls.
 *
 * The count is `/proc/self/fd` read at most every `FD_MEASURE_MS` (from the
 * server's sweeper; a stat() on Linux ≥ 6.2, a directory read before), plus
 * `FD_PER_CONNECTION` for every client connection accepted since: a burst
 * between two reads is counted before it lands. The system-wide table
 * (/proc/sys/fs/file-nr, for ENFILE) is read with it. The limit is read through
 * getrlimit(2) (bun:ffi), or /proc/self/limits when FFI is unavailable.
 *
 * Process-wide on purpose: the limit and the descriptor table are per
 * process, whatever number of servers run in it (tests run several).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { libc } from "./libc.ts";
import { FD_MEASURE_MAX_CPU_SHARE, FD_MEASURE_MS, FD_PER_CONNECTION, FD_RESERVE_FRACTION, FD_RESERVE_MIN, FD_WARN_INTERVAL_MS } from "../limits.ts";

export interface FdLimit {
  soft: number;
  hard: number;
}

/** RLIMIT_NOFILE on Linux (x86-64, arm64 and every generic-ABI architecture). */
const RLIMIT_NOFILE = 7;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

const rlimNumber = (v: bigint): number => (v === RLIM_INFINITY ? Infinity : Number(v));

/** The process's descriptor limit, or null if it cannot be read. */
export function readFdLimit(): FdLimit | null {
  const c = libc();
  if (c) {
    const buf = new BigUint64Array(2);
    if (c.getrlimit(RLIMIT_NOFILE, buf) === 0) return { soft: rlimNumber(buf[0]!), hard: rlimNumber(buf[1]!) };
  }
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const m = line?.match(/^Max open files\s+(\S+)\s+(\S+)/);
    if (!m) return null;
    const n = (s: string) => (s === "unlimited" ? Infinity : Number(s));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return null;
  }
}

/** Sets the soft descriptor limit (the hard one unchanged); true on success. */
export function setFdSoftLimit(soft: number): boolean {
  const c = libc();
  const cur = readFdLimit();
  if (!c || !cur) return false;
  const big = (v: number) => (v === Infinity ? RLIM_INFINITY : BigInt(v));
  return c.setrlimit(RLIMIT_NOFILE, new BigUint64Array([big(soft), big(cur.hard)])) === 0;
}

/**
 * Raises the soft limit to the hard one if it is lower (Bun usually did so at
 * start-up already) and returns the limit now in force, plus whether a raise
 * was needed and failed.
 */
export function raiseFdLimit(): { limit: FdLimit | null; raiseFailed: boolean } {
  const cur = readFdLimit();
  if (!cur || cur.soft >= cur.hard) return { limit: cur, raiseFailed: false };
  const ok = setFdSoftLimit(cur.hard);
  return { limit: readFdLimit(), raiseFailed: !ok };
}

/**
 * Descriptors open in this process, or -1 without /proc. Linux ≥ 6.2 reports
 * the count as the size of /proc/self/fd (one stat); older kernels report 0,
 * and the directory is read (its own descriptor is not counted).
 */
export function countOpenFds(): number {
  try {
    const size = statSync("/proc/self/fd").size;
    if (size > 0) return size;
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return -1;
  }
}

/**
 * Descriptors the whole system can still open (ENFILE comes before EMFILE
 * when the system table is full): fs.file-max minus those allocated, from
 * /proc/sys/fs/file-nr; Infinity when unknown.
 */
export function systemFdsFree(): number {
  try {
    const [allocated, , max] = readFileSync("/proc/sys/fs/file-nr", "utf8").trim().split(/\s+/).map(Number);
    return Number.isFinite(allocated) && Number.isFinite(max) ? max! - allocated! : Infinity;
  } catch {
    return Infinity;
  }
}

/** Descriptors kept free for accept() and the dials of admitted connections. */
export function fdReserve(limit: number): number {
  return Math.min(Math.floor(limit / 2), Math.max(FD_RESERVE_MIN, Math.ceil(limit * FD_RESERVE_FRACTION)));
}

/** What `server.fd_exhausted` reports (see `FdBudget.takeWarning`). */
export interface FdWarning {
  /** The last reading of /proc/self/fd (at most FD_MEASURE_MS old). */
  fds_in_use: number;
  fd_limit: number;
  fd_reserve: number;
  /** What the whole system can still open (fs.file-max − allocated), when it is short: null while it has plenty. */
  system_fds_free: number | null;
  /** Connections closed at accept (`fd_limit`) since the last warning. */
  refused: number;
  /** Dials that failed with ECONNREFUSED near the limit since the last warning. */
  dials_refused: number;
}

export class FdBudget {
  /** The soft limit in force (0 = unknown: the budget never refuses). */
  private limit = 0;
  private reserve = 0;
  private measured = 0;
  private systemFree = Infinity;
  private measuredAt = -Infinity;
  private interval = FD_MEASURE_MS;
  /** Client connections live now (this thread's, or every thread's when shared), and when last measured. */
  private conns = 0;
  private connsAtMeasure = 0;
  /** Several data-path threads: [live connections, refused, dials refused] shared by all (see share()). */
  private sharedConns: Int32Array | null = null;
  /** …and when any of them last warned (ms since the epoch): one warning a second for the process. */
  private sharedWarnAt: BigInt64Array | null = null;
  private refused = 0;
  private dialsRefused = 0;
  private lastWarnAt = -Infinity;
  private initialised = false;

  /** `count` and `systemFree`: how descriptors are counted (tests pass their own). */
  constructor(
    private readonly count: () => number = countOpenFds,
    private readonly system: () => number = systemFdsFree,
  ) {}

  /** Uses this limit (the one start-up established), or reads it when null. */
  init(limit: number | null = null): void {
    this.initialised = true;
    const l = limit ?? readFdLimit()?.soft ?? 0;
    this.limit = Number.isFinite(l) && l > 0 ? l : 0;
    this.reserve = this.limit > 0 ? fdReserve(this.limit) : 0;
    this.measuredAt = -Infinity;
  }

  /**
   * Several data-path threads: count live connections in `counter`, shared
   * by all. The descriptor table is the process's, so a thread must see the
   * connections every thread accepted since the last reading, or the threads
   * together overrun the limit (and Bun's accept loop spins on EMFILE).
   */
  share(counters: Int32Array, lastWarnAt: BigInt64Array): void {
    this.sharedConns = counters;
    this.sharedWarnAt = lastWarnAt;
  }

  private live(): number {
    return this.sharedConns ? Atomics.load(this.sharedConns, 0) : this.conns;
  }

  /** From the sweeper: re-reads the count when FD_MEASURE_MS (or more, if reading is slow) has passed. */
  refresh(now: number): void {
    if (!this.initialised) this.init();
    if (this.limit === 0 || now - this.measuredAt < this.interval) return;
    const t0 = performance.now();
    const n = this.count();
    // A directory read of tens of thousands of entries (kernels before 6.2) must not become the load.
    this.interval = Math.max(FD_MEASURE_MS, (performance.now() - t0) / FD_MEASURE_MAX_CPU_SHARE);
    if (n < 0) {
      this.limit = 0; // no /proc: no budget
      return;
    }
    this.measured = n;
    this.systemFree = this.system();
    this.measuredAt = now;
    this.connsAtMeasure = this.live();
  }

  /** A client connection was accepted (call before `full()`), or has ended. */
  opened(): void {
    if (this.sharedConns) Atomics.add(this.sharedConns, 0, 1);
    else this.conns++;
  }
  closed(): void {
    if (this.sharedConns) Atomics.sub(this.sharedConns, 0, 1);
    else this.conns--;
  }

  /** What connections accepted since the last reading can cost. */
  private sinceReading(): number {
    return FD_PER_CONNECTION * Math.max(0, this.live() - this.connsAtMeasure);
  }

  /** Descriptors in use: the last reading plus what connections accepted since can cost. */
  inUse(): number {
    return this.measured + this.sinceReading();
  }

  /** Within the reserve of the process limit (EMFILE) or of the system's (ENFILE): new connections are refused. */
  full(): boolean {
    if (this.limit === 0) return false;
    const since = this.sinceReading();
    return this.measured + since >= this.limit - this.reserve || this.systemFree - since < this.reserve;
  }

  /** A connection was closed at accept because the budget is full. */
  noteRefused(): void {
    if (this.sharedConns) Atomics.add(this.sharedConns, 1, 1);
    else this.refused++;
  }

  /** A dial failed with ECONNREFUSED: true (and counted) if that is likely EMFILE, because the process is near its limit. */
  dialRefusedNearLimit(): boolean {
    if (!this.full()) return false;
    if (this.sharedConns) Atomics.add(this.sharedConns, 2, 1);
    else this.dialsRefused++;
    return true;
  }

  /** What to warn about, at most once per FD_WARN_INTERVAL_MS and only if something was refused since. */
  takeWarning(now: number): FdWarning | null {
    const shared = this.sharedConns;
    const warnAt = this.sharedWarnAt;
    if (shared && warnAt) {
      // Several threads: whoever claims the slot first warns, with the whole process's counts.
      if (Atomics.load(shared, 1) === 0 && Atomics.load(shared, 2) === 0) return null;
      const last = Atomics.load(warnAt, 0);
      if (now - Number(last) < FD_WARN_INTERVAL_MS) return null;
      if (Atomics.compareExchange(warnAt, 0, last, BigInt(Math.floor(now))) !== last) return null;
      return this.warning(Atomics.exchange(shared, 1, 0), Atomics.exchange(shared, 2, 0));
    }
    if (this.refused === 0 && this.dialsRefused === 0) return null;
    if (now - this.lastWarnAt < FD_WARN_INTERVAL_MS) return null;
    this.lastWarnAt = now;
    const w = this.warning(this.refused, this.dialsRefused);
    this.refused = 0;
    this.dialsRefused = 0;
    return w;
  }

  private warning(refused: number, dialsRefused: number): FdWarning {
    return { fds_in_use: this.measured, fd_limit: this.limit, fd_reserve: this.reserve, system_fds_free: this.systemFree < 2 * this.reserve ? this.systemFree : null, refused, dials_refused: dialsRefused };
  }
}

/** The process's budget: the server's admission and sweeper, and every backend dial, share it. */
export const fdBudget = new FdBudget();
