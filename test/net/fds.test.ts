/**
 * Descriptor limit and budget (src/net/fds.ts): getrlimit/setrlimit through
 * bun:ffi agree with /proc/self/limits; the count agrees with /proc/self/fd;
 * the budget refuses within its reserve of the limit, counts a burst between
 * two readings, frees itself at the next reading, and warns at most once a
 * second with what was refused since.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { FD_MEASURE_MS, FD_PER_CONNECTION, FD_RESERVE_MIN, FD_WARN_INTERVAL_MS } from "../../src/limits.ts";
import { countOpenFds, FdBudget, fdReserve, raiseFdLimit, readFdLimit, setFdSoftLimit, systemFdsFree } from "../../src/net/fds.ts";

function procLimits(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\d+)\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))!;
  return { soft: Number(m[1]), hard: Number(m[2]) };
}

test("readFdLimit (getrlimit via bun:ffi) agrees with /proc/self/limits", () => {
  expect(readFdLimit()).toEqual(procLimits());
});

test("raiseFdLimit puts a lowered soft limit back up to the hard limit", () => {
  const { soft, hard } = procLimits();
  try {
    expect(setFdSoftLimit(Math.min(soft, hard) - 10)).toBe(true);
    expect(procLimits().soft).toBe(Math.min(soft, hard) - 10);
    const r = raiseFdLimit();
    expect(r).toEqual({ limit: { soft: hard, hard }, raiseFailed: false });
    expect(procLimits()).toEqual({ soft: hard, hard });
  } finally {
    setFdSoftLimit(soft);
  }
});

test("countOpenFds agrees with a listing of /proc/self/fd", () => {
  const listed = readdirSync("/proc/self/fd").length - 1; // minus the directory's own descriptor
  expect(Math.abs(countOpenFds() - listed)).toBeLessThanOrEqual(2); // other threads may open one meanwhile
});

test("systemFdsFree is fs.file-max minus the descriptors allocated system-wide", () => {
  const [allocated, , max] = readFileSync("/proc/sys/fs/file-nr", "utf8").trim().split(/\s+/).map(Number);
  expect(Math.abs(systemFdsFree() - (max! - allocated!))).toBeLessThan(1000); // the system keeps opening and closing
});

test("the budget also refuses when the system-wide table (ENFILE) is within the reserve", () => {
  let free = 1000;
  const b = new FdBudget(() => 10, () => free);
  b.init(200); // reserve 64
  b.refresh(0);
  expect(b.full()).toBe(false);
  for (let i = 0; i < 500; i++) b.opened(); // 1000 system-wide descriptors' worth of accepts since the reading
  expect(b.full()).toBe(true);
  free = 50;
  b.refresh(FD_MEASURE_MS);
  expect(b.full()).toBe(true);
  b.noteRefused();
  expect(b.takeWarning(FD_MEASURE_MS)).toMatchObject({ system_fds_free: 50, refused: 1 });
  free = 5000;
  b.refresh(2 * FD_MEASURE_MS);
  expect(b.full()).toBe(false);
});

test("the reserve is a tenth of the limit, at least FD_RESERVE_MIN, at most half", () => {
  expect(fdReserve(65536)).toBe(6554);
  expect(fdReserve(1024)).toBe(103);
  expect(fdReserve(400)).toBe(FD_RESERVE_MIN);
  expect(fdReserve(100)).toBe(50);
});

test("the budget refuses within the reserve, counts accepts between readings, and recovers at the next reading", () => {
  let fds = 20;
  const b = new FdBudget(() => fds);
  b.init(200); // reserve 64: refuse from 136 in use
  let now = 1_000;
  b.refresh(now);
  expect(b.inUse()).toBe(20);
  expect(b.full()).toBe(false);
  // A burst before the next reading: each accepted connection counts FD_PER_CONNECTION.
  const burst = Math.ceil((136 - 20) / FD_PER_CONNECTION);
  for (let i = 0; i < burst - 1; i++) b.opened();
  expect(b.full()).toBe(false);
  b.opened();
  expect(b.full()).toBe(true);
  // Readings are spaced: a refresh inside FD_MEASURE_MS changes nothing.
  fds = 30;
  b.refresh(now + FD_MEASURE_MS - 1);
  expect(b.full()).toBe(true);
  // The next reading replaces the estimate with the real count.
  now += FD_MEASURE_MS;
  b.refresh(now);
  expect(b.inUse()).toBe(30);
  expect(b.full()).toBe(false);
  // Closing never lowers the estimate below the reading.
  for (let i = 0; i < burst; i++) b.closed();
  expect(b.inUse()).toBe(30);
  // Unknown limit: never refuses.
  const off = new FdBudget(() => 1_000_000);
  off.init(0);
  off.refresh(now);
  expect(off.full()).toBe(false);
});

test("warnings: none without refusals, then at most one per FD_WARN_INTERVAL_MS with the counts since the last", () => {
  const fds = 190;
  const b = new FdBudget(() => fds);
  b.init(200);
  b.refresh(0);
  expect(b.full()).toBe(true);
  expect(b.takeWarning(0)).toBeNull();
  b.noteRefused();
  b.noteRefused();
  expect(b.dialRefusedNearLimit()).toBe(true);
  expect(b.takeWarning(10)).toEqual({ fds_in_use: 190, fd_limit: 200, fd_reserve: 64, system_fds_free: null, refused: 2, dials_refused: 1 });
  b.noteRefused();
  expect(b.takeWarning(10 + FD_WARN_INTERVAL_MS - 1)).toBeNull();
  b.noteRefused();
  expect(b.takeWarning(10 + FD_WARN_INTERVAL_MS)).toMatchObject({ refused: 2, dials_refused: 0 });
  // A dial refused far from the limit is a plain ECONNREFUSED.
  const calm = new FdBudget(() => 10);
  calm.init(200);
  calm.refresh(0);
  expect(calm.dialRefusedNearLimit()).toBe(false);
});

test("a backend dial refused near the limit says possible descriptor exhaustion, and is counted for the warning", async () => {
  const { dialTcp } = await import("../../src/l7/h1/dial.ts");
  const { fdBudget } = await import("../../src/net/fds.ts");
  const { freePort } = await import("../helpers/proxy.ts");
  const port = await freePort(); // nothing listens: a real ECONNREFUSED
  const dial = () =>
    new Promise<string>((resolve) => {
      dialTcp("127.0.0.1", port, {} as never, { onTcpConnected: () => resolve("connected"), onTcpError: (code: string, message: string) => resolve(`${code}|${message}`) });
    });
  try {
    fdBudget.init(Math.max(2, countOpenFds())); // already over its reserve
    fdBudget.refresh(Date.now());
    expect(fdBudget.full()).toBe(true);
    fdBudget.takeWarning(0); // start from a clean slate
    const near = await dial();
    expect(near).toStartWith("ECONNREFUSED|");
    expect(near).toContain("possible descriptor exhaustion");
    expect(fdBudget.takeWarning(Date.now() + 10_000)).toMatchObject({ dials_refused: 1 });
  } finally {
    fdBudget.init(null); // the real limit again
  }
  fdBudget.refresh(Date.now() + 10_000);
  expect(fdBudget.full()).toBe(false);
  const far = await dial();
  expect(far).toStartWith("ECONNREFUSED|");
  expect(far).not.toContain("descriptor");
});
