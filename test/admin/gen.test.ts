/**
 * The committed src/gen/ is exactly what `npm run proto` produces from proto/ with the pinned
 * buf and ts-proto: editing a .proto without regenerating (or hand-editing src/gen) fails here.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { generateProto, REPO_ROOT } from "../../scripts/gen-proto.ts";

const out = mkdtempSync(join(tmpdir(), "mc-proxy-gen-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function files(root: string): Map<string, string> {
  const m = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else m.set(relative(root, p), readFileSync(p, "utf8"));
    }
  };
  walk(root);
  return m;
}

test("src/gen matches a fresh generation from proto/", () => {
  generateProto(out);
  const fresh = files(join(out, "src/gen"));
  const committed = files(join(REPO_ROOT, "src/gen"));
  expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
  expect(fresh.size).toBeGreaterThanOrEqual(3);
  for (const [name, text] of fresh) expect({ name, text: committed.get(name) }).toEqual({ name, text });
}, 60_000);

test("generated code needs no .proto files at run time", () => {
  for (const [name, text] of files(join(REPO_ROOT, "src/gen"))) {
    expect({ name, loadsProto: /proto-loader|loadSync\(|readFileSync/.test(text) }).toEqual({ name, loadsProto: false });
  }
});
