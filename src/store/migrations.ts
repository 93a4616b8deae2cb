/**
 * Numbered schema migrations. The schema is part of the operator interface
 * (people insert rows with `sqlite3`), so a shipped migration is never edited:
 * a change is always a new, higher-numbered entry appended to MIGRATIONS.
 */
import type { Database } from "bun:sqlite";
import { StoreError } from "../errors.ts";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

// Kept verbatim with SPEC §3 so that `PRAGMA table_info` and operator INSERTs match the contract.
const SCHEMA_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "initial schema (SPEC §3)",
    sql: `
CREATE TABLE listeners (
  id INTEGER PRIMARY KEY,
  addr TEXT NOT NULL UNIQUE,
  proxy_protocol INTEGER NOT NULL DEFAULT 0,
  max_connections INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE routes (
  id INTEGER PRIMARY KEY,
  listener_id INTEGER NOT NULL REFERENCES listeners(id) ON DELETE CASCADE,
  hostname TEXT NOT NULL,
  backend TEXT NOT NULL,
  mode TEXT NOT NULL DEFAULT 'l4' CHECK (mode IN ('l4','l7')),
  tls_cert TEXT NOT NULL DEFAULT '',
  tls_key TEXT NOT NULL DEFAULT '',
  backend_tls INTEGER NOT NULL DEFAULT 0,
  send_proxy_protocol INTEGER NOT NULL DEFAULT 0,
  UNIQUE(listener_id, hostname)
);
CREATE TABLE firewall_rules (
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL CHECK (type IN ('ip','cidr','country')),
  value TEXT NOT NULL,
  UNIQUE(type, value)
);
CREATE TABLE l7_policies (
  id INTEGER PRIMARY KEY,
  route_id INTEGER NOT NULL REFERENCES routes(id) ON DELETE CASCADE,
  type TEXT NOT NULL CHECK (type IN ('block_user_agent','require_header')),
  value TEXT NOT NULL,
  UNIQUE(route_id, type, value)
);
${SCHEMA_MIGRATIONS_TABLE};
`,
  },
  {
    version: 2,
    name: "routes: backend protocol and backend TLS verification",
    // Every new column has a default, so the operator INSERT of §3 keeps working.
    sql: `
ALTER TABLE routes ADD COLUMN backend_protocol TEXT NOT NULL DEFAULT 'auto' CHECK (backend_protocol IN ('auto','h2','http1'));
ALTER TABLE routes ADD COLUMN backend_tls_verify INTEGER NOT NULL DEFAULT 0;
ALTER TABLE routes ADD COLUMN backend_tls_ca TEXT NOT NULL DEFAULT '';
ALTER TABLE routes ADD COLUMN backend_tls_server_name TEXT NOT NULL DEFAULT '';
`,
  },
  {
    version: 3,
    name: "listeners: proxy_protocol_trusted CIDRs",
    sql: `
CREATE TABLE listener_proxy_trusted (
  id INTEGER PRIMARY KEY,
  listener_id INTEGER NOT NULL REFERENCES listeners(id) ON DELETE CASCADE,
  cidr TEXT NOT NULL,
  UNIQUE(listener_id, cidr)
);
`,
  },
];

/** The newest schema version this binary knows. */
export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Versions recorded in schema_migrations, ascending ([] for a database never migrated). */
export function appliedVersions(db: Database): number[] {
  const exists = db.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").get();
  if (!exists) return [];
  return db
    .query<{ version: number }, []>("SELECT version FROM schema_migrations ORDER BY version")
    .all()
    .map((r) => r.version);
}

/**
 * Applies every migration not yet recorded, in order, each in its own
 * IMMEDIATE transaction (so two processes starting at once cannot both apply
 * one). Returns the versions applied now ([] when up to date). Throws
 * StoreError when the database records a version newer than LATEST_VERSION:
 * an older binary must not run against a schema it does not understand.
 */
export function runMigrations(db: Database): number[] {
  const newest = Math.max(0, ...appliedVersions(db));
  if (newest > LATEST_VERSION) {
    throw new StoreError(
      `database schema version ${newest} is newer than this mc-proxy supports (${LATEST_VERSION}); ` +
        `refusing to start: run a newer mc-proxy or restore a backup made by this version`,
    );
  }
  const applied: number[] = [];
  for (const m of MIGRATIONS) {
    const step = db.transaction(() => {
      db.run(SCHEMA_MIGRATIONS_TABLE);
      // Re-check inside the write lock: another process may have applied it meanwhile.
      if (db.query("SELECT 1 FROM schema_migrations WHERE version = ?").get(m.version)) return false;
      db.run(m.sql);
      db.query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(m.version, new Date().toISOString());
      return true;
    });
    try {
      if (step.immediate()) applied.push(m.version);
    } catch (e) {
      throw new StoreError(`migration ${m.version} (${m.name}) failed: ${(e as Error).message}`, { cause: e });
    }
  }
  return applied;
}
