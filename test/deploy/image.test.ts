/**
 * The container image. `npm run image` (scripts/image.sh, run by CI after the
 * tests) builds it with buildah from the host's dist/ and runs it on a
 * read-only root as UID 65532: version, an L4 route via SNI, status,
 * mcproxyctl, SIGTERM exit 0, snapshot. Here: the Containerfile's structure,
 * the binary it ships, and that a library missing from the image fails that run.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { BINARY, REPO, ensureBinary, have, run } from "./helpers.ts";

const isRoot = process.getuid?.() === 0;
const canImage = isRoot && have("buildah") && have("openssl") && have("curl");

describe("compiled binary", () => {
  beforeAll(() => {
    ensureBinary();
  }, 300_000);

  test("prints the injected version and --help from any directory with an empty environment", () => {
    const v = run([BINARY, "version"], { cwd: "/", env: { PATH: undefined, HOME: undefined } });
    expect(v.exitCode).toBe(0);
    expect(v.stdout).toContain(pkg.version);
    const h = Bun.spawnSync([BINARY, "--help"], { cwd: "/", env: {}, stdout: "pipe", stderr: "pipe" });
    expect(h.exitCode).toBe(0);
    expect(h.stdout.toString() + h.stderr.toString()).toMatch(/server/);
  });
});

describe.skipIf(!canImage)("image run (needs root, buildah, openssl, curl)", () => {
  beforeAll(() => {
    ensureBinary();
  }, 300_000);

  test("a shared library missing from the image (ROOTFS_OMIT) makes scripts/image.sh FAIL at `version`, leaving nothing behind", () => {
    const temps = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith("mc-proxy-image."));
    const before = temps();
    const r = run(["bash", "scripts/image.sh"], { env: { ROOTFS_OMIT: "libc.so.6" }, timeoutMs: 300_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).not.toContain("image.sh: OK");
    expect(r.stderr).toContain("assemble.sh: omitting libc.so.6");
    expect(r.stderr).toMatch(/image\.sh: FAIL: '\/mc-proxy version' in the image exited \d+/);
    expect(r.stderr).toContain("libc.so.6: cannot open shared object file");
    // Cleanup: its temp dir (buildah store, volume) is gone.
    expect(temps()).toEqual(before);
  }, 320_000);
});

describe("Containerfile", () => {
  const text = fs.readFileSync(path.join(REPO, "Containerfile"), "utf8");
  // Instructions without comments and line continuations.
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const lastFrom = lines.map((l) => l.startsWith("FROM ")).lastIndexOf(true);
  const buildStage = lines.slice(0, lastFrom);
  const finalStage = lines.slice(lastFrom);
  const imageSh = fs.readFileSync(path.join(REPO, "scripts/image.sh"), "utf8");

  test("final stage is FROM scratch and copies only the /rootfs that assemble.sh builds", () => {
    expect(finalStage[0]).toBe("FROM scratch");
    expect(buildStage).toContain("RUN sh deploy/rootfs/assemble.sh /rootfs dist/mc-proxy");
    const copies = finalStage.filter((l) => l.startsWith("COPY ") || l.startsWith("ADD "));
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) expect(c).toMatch(/^COPY --from=build (--chown=\S+ )?\/rootfs\/\S* \S+$/);
    // Nothing else may add files to the final stage.
    expect(finalStage.filter((l) => l.startsWith("RUN "))).toEqual([]);
  });

  test("image.sh builds that same final stage from the host's assemble.sh output, standing in for the build stage", () => {
    expect(imageSh).toContain('sh "$REPO/deploy/rootfs/assemble.sh" "$work/context/rootfs" "$binary"');
    expect(imageSh).toContain('--build-context build="$work/context"');
    expect(imageSh).toContain('-f "$REPO/Containerfile" "$work/context"');
  });

  test("runs as the same numeric user that owns /srv/mc-proxy in the rootfs, with the spec's entrypoint", () => {
    const assemble = fs.readFileSync(path.join(REPO, "deploy/rootfs/assemble.sh"), "utf8");
    const uid = /^UID_GID=(\d+)$/m.exec(assemble)?.[1];
    expect(uid).toBe("65532");
    expect(/^UID_GID=(\d+)$/m.exec(imageSh)?.[1]).toBe(uid);
    expect(finalStage).toContain(`USER ${uid}:${uid}`);
    expect(finalStage).toContain(`COPY --from=build --chown=${uid}:${uid} /rootfs/srv/ /srv/`);
    expect(finalStage).toContain('VOLUME ["/srv/mc-proxy"]');
    // Bun uses only its bundled roots without this; the image ships /etc/ssl/certs for it.
    expect(finalStage).toContain("ENV NODE_USE_SYSTEM_CA=1");
    expect(finalStage).toContain('ENTRYPOINT ["/mc-proxy"]');
    expect(finalStage).toContain('CMD ["server", "-c", "/srv/mc-proxy/mc-proxy.toml"]');
    expect(buildStage.some((l) => l.startsWith("RUN npm ci"))).toBe(true);
    expect(buildStage).toContain("RUN npm run build");
  });
});
