import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "../../src/errors.ts";
import { snapshot, snapshotTimestamp } from "../../src/store/snapshot.ts";
import { Store } from "../../src/store/store.ts";
import { cleanupTempDirs, l4, tempDir } from "./helpers.ts";

afterAll(cleanupTempDirs);

function seeded(): { dir: string; path: string; store: Store } {
  const dir = tempDir();
  const path = join(dir, "mc-proxy.db");
  const store = Store.open(path);
  const lid = store.insertListener({ addr: ":443", proxyProtocol: false, proxyProtocolTrusted: [], maxConnections: 0 }).id;
  for (let i = 0; i < 50; i++) store.upsertRoute(lid, l4(`h${i}.example.com`, `127.0.0.1:${1000 + i}`));
  return { dir, path, store };
}

describe("snapshot", () => {
  test("UTC timestamp format is YYYYMMDDTHHMMSSZ", () => {
    expect(snapshotTimestamp(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)))).toBe("20240102T030405Z");
  });

  test("default target is <db dir>/backups/mc-proxy-<ts>.db, dir 0700, file 0600, integrity ok", () => {
    const { dir, path, store } = seeded();
    try {
      const out = snapshot(path);
      expect(out).toMatch(new RegExp(`^${dir}/backups/mc-proxy-\\d{8}T\\d{6}Z\\.db$`));
      expect(statSync(join(dir, "backups")).mode & 0o777).toBe(0o700);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      const copy = new Database(out, { readonly: true });
      expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      expect(copy.query<{ n: number }, []>("SELECT count(*) AS n FROM routes").get()!.n).toBe(50);
      copy.close();
    } finally {
      store.close();
    }
  });

  test("is consistent while another connection holds an open write transaction", () => {
    const { dir, path, store } = seeded();
    const writer = new Database(path);
    try {
      writer.run("BEGIN IMMEDIATE");
      writer.run("DELETE FROM routes"); // uncommitted: must not appear in the copy
      writer.run("INSERT INTO firewall_rules (type, value) VALUES ('ip', '192.0.2.77')");
      const out = snapshot(path, join(dir, "during-write.db"));
      const copy = new Database(out, { readonly: true });
      expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      expect(copy.query<{ n: number }, []>("SELECT count(*) AS n FROM routes").get()!.n).toBe(50);
      expect(copy.query<{ n: number }, []>("SELECT count(*) AS n FROM firewall_rules").get()!.n).toBe(0);
      expect(copy.query<{ n: number }, []>("SELECT max(version) AS n FROM schema_migrations").get()!.n).toBe(3);
      copy.close();
    } finally {
      writer.run("ROLLBACK");
      writer.close();
      store.close();
    }
  });

  test("works while another process holds the database in an open write transaction", async () => {
    const { dir, path, store } = seeded();
    store.close();
    // A second process: opens, begins a write, deletes everything, and waits without committing.
    const holder = Bun.spawn(
      [
        process.execPath,
        "-e",
        `const { Database } = require("bun:sqlite");
         const db = new Database(${JSON.stringify(path)});
         db.run("PRAGMA busy_timeout=5000"); db.run("BEGIN IMMEDIATE"); db.run("DELETE FROM routes");
         console.log("ready"); setTimeout(() => {}, 60000);`,
      ],
      { stdout: "pipe", stderr: "inherit" },
    );
    try {
      const reader = holder.stdout.getReader();
      const deadline = Date.now() + 20_000;
      let out = "";
      while (!out.includes("ready") && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
      expect(out).toContain("ready");
      const copyPath = snapshot(path, join(dir, "cross-process.db"));
      const copy = new Database(copyPath, { readonly: true });
      expect(copy.query("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
      expect(copy.query<{ n: number }, []>("SELECT count(*) AS n FROM routes").get()!.n).toBe(50);
      copy.close();
    } finally {
      holder.kill();
      await holder.exited;
    }
  });

  test("refuses to overwrite an existing target and leaves it untouched", () => {
    const { dir, path, store } = seeded();
    try {
      const target = join(dir, "exists.db");
      writeFileSync(target, "precious");
      expect(() => snapshot(path, target)).toThrow(StoreError);
      expect(() => snapshot(path, target)).toThrow(/already exists; refusing to overwrite/);
      expect(readFileSync(target, "utf8")).toBe("precious");
    } finally {
      store.close();
    }
  });

  test("a missing database is an error, not an empty backup", () => {
    const dir = tempDir();
    expect(() => snapshot(join(dir, "nope.db"), join(dir, "out.db"))).toThrow(/does not exist/);
    expect(existsSync(join(dir, "nope.db"))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
