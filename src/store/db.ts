/**
 * The one place that opens the SQLite database. Every connection gets the
 * same pragmas (foreign_keys is per connection and off by default in SQLite,
 * so forgetting it once would silently disable ON DELETE CASCADE).
 * `openDatabaseCopy` is the read-only way in, for `mc-proxy check`.
 */
import { Database } from "bun:sqlite";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
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

export interface DatabaseCopy {
  /** An in-memory database: writes to it never reach the file. */
  db: Database;
  /** False when there was no file: `db` is then a new, empty, migrated database. */
  exists: boolean;
  /** Migrations the file lacks, applied to the copy only (the server applies them at start). */
  migrated: number[];
}

/**
 * An in-memory copy of the database at `path`, as the server would see it
 * after opening it: foreign_keys on and pending migrations applied to the
 * copy. The file, its directory and its -wal/-shm are never created or
 * written, so a check can run as any user while the server runs or not.
 * Throws StoreError when the file cannot be read, is not a SQLite database,
 * or has a schema newer than this binary.
 */
export function openDatabaseCopy(path: string): DatabaseCopy {
  const file = resolve(path);
  let image: Uint8Array | null = null;
  try {
    if (existsSync(file + "-wal")) {
      // A server holds it (or one stopped uncleanly): committed rows may be only in the WAL.
      // A read-only connection reads through it; the -wal/-shm it needs already exist.
      const ro = new Database(file, { readonly: true, strict: true });
      try {
        ro.run("PRAGMA busy_timeout=5000");
        image = ro.serialize();
      } finally {
        ro.close();
      }
    } else if (existsSync(file)) {
      // No WAL: the file is the whole database. Read its bytes rather than open it: even a
      // read-only connection creates -wal/-shm beside a WAL-mode file (measured, Bun 1.4.4),
      // owned by whoever ran the check, which can lock the server's user out of them.
      if (!statSync(file).isFile()) throw new Error("not a regular file");
      image = readFileSync(file);
    }
  } catch (e) {
    throw new StoreError(`cannot read database ${file}: ${(e as Error).message}`, { cause: e });
  }
  let db: Database;
  try {
    if (image && image.length > 0) {
      // Header bytes 18/19 = 2 mark WAL mode, which an in-memory database cannot use: say "rollback journal".
      const copy = Buffer.from(image);
      if (copy.length >= 20 && copy[18] === 2 && copy[19] === 2) copy[18] = copy[19] = 1;
      db = Database.deserialize(copy, { strict: true });
    } else {
      db = new Database(":memory:", { strict: true }); // no file, or the empty file the server creates first
    }
  } catch (e) {
    throw new StoreError(`cannot read database ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.run("PRAGMA foreign_keys=ON");
    const migrated = runMigrations(db);
    return { db, exists: image !== null, migrated };
  } catch (e) {
    db.close();
    if (e instanceof StoreError) throw e;
    throw new StoreError(`cannot read database ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** chmod 0600 when group/other bits are set; a failure (file owned by someone else) is only logged. */
function tightenMode(file: string): void {
  try {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  } catch (e) {
    log.warn("store.chmod_failed", { file, error: (e as Error).message });
  }
}
