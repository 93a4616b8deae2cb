/**
 * `mc-proxy snapshot`: a consistent copy of the live database with
 * `VACUUM INTO`, safe while the server holds the database (even mid-write:
 * VACUUM INTO reads one committed snapshot through WAL).
 */
import { closeSync, mkdirSync, openSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { StoreError } from "../errors.ts";
import { openDatabase } from "./db.ts";

/** `YYYYMMDDTHHMMSSZ` in UTC, the timestamp used in backup file names. */
export function snapshotTimestamp(d: Date = new Date()): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

/** The default target: `<db dir>/backups/mc-proxy-<UTC timestamp>.db`. */
export function defaultSnapshotPath(dbPath: string, d: Date = new Date()): string {
  return join(dirname(resolve(dbPath)), "backups", `mc-proxy-${snapshotTimestamp(d)}.db`);
}

/**
 * Writes a consistent copy of the database at `dbPath` to `outPath` (default
 * defaultSnapshotPath; its backups dir is created 0700) with mode 0600, and
 * returns the absolute path written. Throws StoreError when the database does
 * not exist, the target already exists (never overwritten), or SQLite fails;
 * on failure no partial target is left behind.
 */
export function snapshot(dbPath: string, outPath?: string): string {
  const target = resolve(outPath ?? defaultSnapshotPath(dbPath));
  if (outPath === undefined) {
    try {
      mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new StoreError(`cannot create backup directory ${dirname(target)}: ${(e as Error).message}`, { cause: e });
    }
  }
  // Migrations are not run: a backup must never change the source.
  const db = openDatabase(dbPath, { create: false, migrate: false });
  let created = false;
  try {
    // Create the empty target ourselves: O_EXCL refuses an existing file atomically,
    // and VACUUM INTO keeps this file's 0600 mode (it accepts an empty existing file).
    try {
      closeSync(openSync(target, "wx", 0o600));
      created = true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST") throw new StoreError(`snapshot target ${target} already exists; refusing to overwrite it`);
      throw new StoreError(`cannot create snapshot target ${target}: ${(e as Error).message}`, { cause: e });
    }
    try {
      db.run("VACUUM INTO ?", [target]);
    } catch (e) {
      throw new StoreError(`snapshot of ${resolve(dbPath)} to ${target} failed: ${(e as Error).message}`, { cause: e });
    }
    created = false; // success: keep it
    return target;
  } finally {
    db.close();
    if (created) rmSync(target, { force: true });
  }
}
