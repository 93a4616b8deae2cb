import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openDatabase, openDatabaseCopy } from "../../src/store/db.ts";
import { LATEST_VERSION, MIGRATIONS } from "../../src/store/migrations.ts";
import { StoreError } from "../../src/errors.ts";
import { cleanupTempDirs, tempDir } from "./helpers.ts";

afterAll(cleanupTempDirs);

type Col = { name: string; type: string; notnull: number; dflt_value: string | null; pk: number };
const cols = (db: Database, table: string) =>
  db.query<Col, []>(`PRAGMA table_info(${table})`).all().map((c) => [c.name, c.type, c.notnull, c.dflt_value, c.pk]);

describe("openDatabase", () => {
  test("creates the parent directory 0700 and the database file 0600 (also -wal/-shm)", () => {
    const base = tempDir();
    const path = join(base, "nested", "dir", "mc-proxy.db");
    const db = openDatabase(path);
    try {
      expect(statSync(join(base, "nested", "dir")).mode & 0o777).toBe(0o700);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      for (const side of ["-wal", "-shm"]) {
        expect(existsSync(path + side)).toBe(true); // WAL is live while the connection is open
        expect(statSync(path + side).mode & 0o777).toBe(0o600);
      }
    } finally {
      db.close();
    }
  });

  test("sets WAL, foreign_keys and busy_timeout on the connection", () => {
    const db = openDatabase(join(tempDir(), "p.db"));
    try {
      expect(db.query<{ journal_mode: string }, []>("PRAGMA journal_mode").get()!.journal_mode).toBe("wal");
      expect(db.query<{ foreign_keys: number }, []>("PRAGMA foreign_keys").get()!.foreign_keys).toBe(1);
      expect(db.query<{ timeout: number }, []>("PRAGMA busy_timeout").get()!.timeout).toBe(5000);
    } finally {
      db.close();
    }
  });

  test("schema equals SPEC §3 plus migrations 2 and 3", () => {
    const db = openDatabase(join(tempDir(), "s.db"));
    try {
      expect(cols(db, "listeners")).toEqual([
        ["id", "INTEGER", 0, null, 1],
        ["addr", "TEXT", 1, null, 0],
        ["proxy_protocol", "INTEGER", 1, "0", 0],
        ["max_connections", "INTEGER", 1, "0", 0],
      ]);
      expect(cols(db, "routes")).toEqual([
        ["id", "INTEGER", 0, null, 1],
        ["listener_id", "INTEGER", 1, null, 0],
        ["hostname", "TEXT", 1, null, 0],
        ["backend", "TEXT", 1, null, 0],
        ["mode", "TEXT", 1, "'l4'", 0],
        ["tls_cert", "TEXT", 1, "''", 0],
        ["tls_key", "TEXT", 1, "''", 0],
        ["backend_tls", "INTEGER", 1, "0", 0],
        ["send_proxy_protocol", "INTEGER", 1, "0", 0],
        ["backend_protocol", "TEXT", 1, "'auto'", 0],
        ["backend_tls_verify", "INTEGER", 1, "0", 0],
        ["backend_tls_ca", "TEXT", 1, "''", 0],
        ["backend_tls_server_name", "TEXT", 1, "''", 0],
      ]);
      expect(cols(db, "firewall_rules")).toEqual([
        ["id", "INTEGER", 0, null, 1],
        ["type", "TEXT", 1, null, 0],
        ["value", "TEXT", 1, null, 0],
      ]);
      expect(cols(db, "l7_policies")).toEqual([
        ["id", "INTEGER", 0, null, 1],
        ["route_id", "INTEGER", 1, null, 0],
        ["type", "TEXT", 1, null, 0],
        ["value", "TEXT", 1, null, 0],
      ]);
      expect(cols(db, "schema_migrations")).toEqual([
        ["version", "INTEGER", 0, null, 1],
        ["applied_at", "TEXT", 1, null, 0],
      ]);
      expect(cols(db, "listener_proxy_trusted")).toEqual([
        ["id", "INTEGER", 0, null, 1],
        ["listener_id", "INTEGER", 1, null, 0],
        ["cidr", "TEXT", 1, null, 0],
      ]);
      // Foreign keys cascade as §3 says.
      const fk = (t: string) => db.query<{ table: string; on_delete: string }, []>(`PRAGMA foreign_key_list(${t})`).all();
      expect(fk("routes")).toMatchObject([{ table: "listeners", on_delete: "CASCADE" }]);
      expect(fk("l7_policies")).toMatchObject([{ table: "routes", on_delete: "CASCADE" }]);
      expect(fk("listener_proxy_trusted")).toMatchObject([{ table: "listeners", on_delete: "CASCADE" }]);
      // CHECK constraints hold.
      db.run("INSERT INTO listeners (addr) VALUES (':443')");
      expect(() => db.run("INSERT INTO routes (listener_id, hostname, backend, mode) VALUES (1, 'x.test', '127.0.0.1:1', 'l9')")).toThrow(/CHECK/);
      expect(() => db.run("INSERT INTO firewall_rules (type, value) VALUES ('asn', '1')")).toThrow(/CHECK/);
      expect(() => db.run("INSERT INTO routes (listener_id, hostname, backend, backend_protocol) VALUES (1, 'x.test', 'b:1', 'h3')")).toThrow(/CHECK/);
    } finally {
      db.close();
    }
  });

  test("migrations are recorded once and reopening applies nothing again", () => {
    const path = join(tempDir(), "m.db");
    openDatabase(path).close();
    const db = openDatabase(path);
    try {
      const rows = db.query<{ version: number; applied_at: string }, []>("SELECT * FROM schema_migrations ORDER BY version").all();
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      expect(rows.map((r) => r.version)).toEqual([1, 2, 3]);
      for (const r of rows) expect(Number.isNaN(Date.parse(r.applied_at))).toBe(false);
    } finally {
      db.close();
    }
  });

  test("the operator's INSERT INTO routes from SPEC §3 works and gets the later columns' defaults", () => {
    const path = join(tempDir(), "op.db");
    openDatabase(path).close();
    // A plain connection, as the sqlite3 CLI would have.
    const op = new Database(path);
    op.run("INSERT INTO listeners (addr) VALUES (':443')");
    op.run(
      "INSERT INTO routes (listener_id, hostname, backend, mode, tls_cert, tls_key, backend_tls) VALUES (1, 'op.example.com', '127.0.0.1:8080', 'l4', '', '', 0)",
    );
    op.close();
    const db = openDatabase(path);
    try {
      const r = db.query("SELECT backend_protocol, backend_tls_verify, backend_tls_ca, backend_tls_server_name, send_proxy_protocol FROM routes").get();
      expect(r).toEqual({ backend_protocol: "auto", backend_tls_verify: 0, backend_tls_ca: "", backend_tls_server_name: "", send_proxy_protocol: 0 });
    } finally {
      db.close();
    }
  });

  test("a database from a newer mc-proxy (unknown schema version) is refused with a clear error", () => {
    const path = join(tempDir(), "new.db");
    openDatabase(path).close();
    const op = new Database(path);
    op.run("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", [LATEST_VERSION + 1, new Date().toISOString()]);
    op.close();
    expect(() => openDatabase(path)).toThrow(StoreError);
    expect(() => openDatabase(path)).toThrow(/schema version 4 is newer than this mc-proxy supports \(3\)/);
  });

  test("an existing world-readable database file is tightened to 0600", () => {
    const path = join(tempDir(), "loose.db");
    new Database(path, { create: true }).close();
    chmodSync(path, 0o644);
    openDatabase(path).close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe("openDatabaseCopy (mc-proxy check): reads the database, never changes anything on disk", () => {
  /** Everything on disk that a change could show in: names, bytes and mtimes of the dir's files. */
  const disk = (dir: string) =>
    readdirSync(dir)
      .sort()
      .map((n) => ({ n, bytes: readFileSync(join(dir, n)).toString("base64"), mtime: statSync(join(dir, n)).mtimeMs }));

  test("no file: an empty migrated in-memory database, and no file or directory is created", () => {
    const dir = tempDir();
    const copy = openDatabaseCopy(join(dir, "sub", "none.db"));
    try {
      expect(copy.exists).toBe(false);
      expect(copy.migrated).toEqual([1, 2, 3]);
      expect(copy.db.query("SELECT count(*) AS n FROM routes").get()).toEqual({ n: 0 });
    } finally {
      copy.db.close();
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a closed database: its rows, nothing migrated, and the directory byte-for-byte unchanged (no -wal/-shm)", () => {
    const dir = tempDir();
    const path = join(dir, "c.db");
    const w = openDatabase(path);
    w.run("INSERT INTO listeners (addr) VALUES (':443')");
    w.close();
    const before = disk(dir);
    expect(before.map((f) => f.n)).toEqual(["c.db"]);
    const copy = openDatabaseCopy(path);
    try {
      expect(copy.exists).toBe(true);
      expect(copy.migrated).toEqual([]);
      expect(copy.db.query("SELECT addr FROM listeners").all()).toEqual([{ addr: ":443" }]);
      expect(copy.db.query<{ foreign_keys: number }, []>("PRAGMA foreign_keys").get()!.foreign_keys).toBe(1);
      copy.db.run("INSERT INTO listeners (addr) VALUES (':8443')"); // the copy is writable, the file is not touched
    } finally {
      copy.db.close();
    }
    expect(disk(dir)).toEqual(before);
  });

  test("a database a server holds open: rows still only in its WAL are seen, and no file is added", () => {
    const dir = tempDir();
    const path = join(dir, "live.db");
    const server = openDatabase(path);
    try {
      server.run("INSERT INTO listeners (addr) VALUES (':443')");
      server.run("INSERT INTO routes (listener_id, hostname, backend) VALUES (1, 'only-in-wal.example.com', '127.0.0.1:1')");
      expect(readFileSync(path).includes("only-in-wal.example.com")).toBe(false); // not checkpointed yet
      const names = readdirSync(dir).sort();
      const copy = openDatabaseCopy(path);
      try {
        expect(copy.db.query("SELECT hostname FROM routes").all()).toEqual([{ hostname: "only-in-wal.example.com" }]);
      } finally {
        copy.db.close();
      }
      expect(readdirSync(dir).sort()).toEqual(names);
      server.run("INSERT INTO listeners (addr) VALUES (':8443')"); // the server's connection still works
    } finally {
      server.close();
    }
  });

  test("an older schema is migrated in the copy only (the file keeps its version)", () => {
    const dir = tempDir();
    const path = join(dir, "old.db");
    const op = new Database(path);
    op.run(MIGRATIONS[0]!.sql);
    op.run("INSERT INTO schema_migrations (version, applied_at) VALUES (1, '2024-01-01T00:00:00Z')");
    op.run("INSERT INTO listeners (addr) VALUES (':443')");
    op.run("INSERT INTO routes (listener_id, hostname, backend) VALUES (1, 'old.example.com', '127.0.0.1:1')");
    op.close();
    const before = disk(dir);
    const copy = openDatabaseCopy(path);
    try {
      expect(copy.migrated).toEqual([2, 3]);
      expect(copy.db.query("SELECT hostname, backend_protocol FROM routes").all()).toEqual([{ hostname: "old.example.com", backend_protocol: "auto" }]);
    } finally {
      copy.db.close();
    }
    expect(disk(dir)).toEqual(before);
  });

  test("an empty file (what the server creates first) reads as an empty database", () => {
    const dir = tempDir();
    const path = join(dir, "empty.db");
    writeFileSync(path, "");
    const copy = openDatabaseCopy(path);
    try {
      expect(copy.exists).toBe(true);
      expect(copy.migrated).toEqual([1, 2, 3]);
    } finally {
      copy.db.close();
    }
  });

  test("a newer schema, a file that is not SQLite, or a directory is a StoreError", () => {
    const dir = tempDir();
    const newer = join(dir, "newer.db");
    openDatabase(newer).close();
    const op = new Database(newer);
    op.run("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", [LATEST_VERSION + 1, new Date().toISOString()]);
    op.close();
    expect(() => openDatabaseCopy(newer)).toThrow(/schema version 4 is newer than this mc-proxy supports/);
    const junk = join(dir, "junk.db");
    writeFileSync(junk, "this is not a database, just some text that is long enough to look like a header".repeat(3));
    expect(() => openDatabaseCopy(junk)).toThrow(StoreError);
    expect(() => openDatabaseCopy(junk)).toThrow(/cannot read database .*junk\.db/);
    expect(() => openDatabaseCopy(dir)).toThrow(/not a regular file/);
  });
});
