/**
 * The one place that opens the SQLite database. Every connection gets the
 * same pragmas (foreign_keys is per connection and off by default in SQLite,
 * so forgetting it once would silently disable ON DELETE CASCADE).
 */
import { Database } from "bun:sqlite";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { StoreError } from "../errors.ts";
import { log } from "../obs/log.ts";
import { runMigrations } from "./migrations.ts";

export interface OpenOptions {
  /** Create the file (and its directory) when missing. Default true; snapshot passes false. */
  create?: boolean;
  /** Run pending migrations. Default true; snapshot passes false so a backup never changes the source. */
  migrate?: boolean;
}

/**
 * Opens (creating if needed) the database at `path`: parent directory 0700,
 * file 0600 created before SQLite touches it, WAL + foreign_keys +
 * busy_timeout=5000, then pending migrations. Throws StoreError on any
 * failure, including a schema newer than this binary.
 */
export function openDatabase(path: string, opts: OpenOptions = {}): Database {
  const create = opts.create ?? true;
  const file = resolve(path);
  try {
    if (create) {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      // Create the file ourselves so it never exists with umask permissions, even briefly.
      if (!existsSync(file)) {
        try {
          closeSync(openSync(file, "wx", 0o600));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e; // lost a race with another process: fine
        }
      }
    } else if (!existsSync(file)) {
      throw new StoreError(`database ${file} does not exist`);
    }
  } catch (e) {
    if (e instanceof StoreError) throw e;
    throw new StoreError(`cannot create database ${file}: ${(e as Error).message}`, { cause: e });
  }
  tightenMode(file);

  let db: Database;
  try {
    db = new Database(file, { create: false, readwrite: true, strict: true });
  } catch (e) {
    throw new StoreError(`cannot open database ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.run("PRAGMA busy_timeout=5000"); // first, so the WAL switch below waits for other processes too
    db.run("PRAGMA journal_mode=WAL");
    db.run("PRAGMA foreign_keys=ON");
    if (opts.migrate ?? true) runMigrations(db);
  } catch (e) {
    db.close();
    if (e instanceof StoreError) throw e;
    throw new StoreError(`cannot initialise database ${file}: ${(e as Error).message}`, { cause: e });
  }
  // SQLite gives -wal/-shm the main file's mode; make sure anyway (they hold row data too).
  for (const side of [file + "-wal", file + "-shm"]) if (existsSync(side)) tightenMode(side);
  return db;
}

/** chmod 0600 when group/other bits are set; a failure (file owned by someone else) is only logged. */
function tightenMode(file: string): void {
  try {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  } catch (e) {
    log.warn("store.chmod_failed", { file, error: (e as Error).message });
  }
}
