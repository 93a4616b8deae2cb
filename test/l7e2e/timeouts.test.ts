/**
 * Backend-side deadlines through the real server (subprocess):
 * - `backend_timeout` counts from the END of the request body (SPEC §5): a
 *   4 s upload with backend_timeout = 2 s gets the backend's 200; a backend
 *   that never answers gets 504 about 2 s after the body ended;
 * - `connect_timeout` on the pooled HTTP/1.1 dial to a black-holed backend:
 *   502 within ~1–2 s, and no descriptor left in SYN_SENT towards it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBlackhole, synSent } from "../helpers/blackhole.ts";
import { cleanupCerts, curl, defaultReply, e2ePki, killAllServers, route, startProxy, startRawBackend, type RawBackend, type ServerProc } from "./e2e.ts";

const dir = mkdtempSync(join(tmpdir(), "mcp-l7e2e-"));
const UPLOAD = 4 * 1024 * 1024;
const uploadPath = join(dir, "upload.bin");
const smallPath = join(dir, "small.bin"); // 1 MB: about 2 s at 512 KB/s
let be: RawBackend;
let p: ServerProc;
let port: number;

beforeAll(async () => {
  e2ePki();
  writeFileSync(uploadPath, randomBytes(UPLOAD));
  writeFileSync(smallPath, randomBytes(1024 * 1024));
  be = await startRawBackend((r) => {
    if (r.req.path.startsWith("/never")) return; // read the whole body, never answer
    defaultReply(r);
  });
  p = await startProxy([route({ backend: be.addr, backendProtocol: "http1" })], ['backend_timeout = "2s"', 'idle_timeout = "30s"']);
  port = p.port();
});

afterAll(async () => {
  await p?.stop();
  await be?.stop();
  killAllServers();
  cleanupCerts();
  rmSync(dir, { recursive: true, force: true });
});

describe("backend_timeout counts from the end of the body", () => {
  for (const proto of ["--http1.1", "--http2"]) {
    test(`a 4 MB upload streamed at 1 MB/s (4 s > backend_timeout 2 s) gets the backend's 200, not 504 (${proto})`, async () => {
      const r = await curl(port, `/upload${proto}`, [proto, "--limit-rate", "1M", "--data-binary", `@${uploadPath}`, "-H", "content-type: application/octet-stream"], { timeoutS: 30 });
      expect(r.status).toBe(200);
      expect(r.ms).toBeGreaterThan(3000); // it really streamed for longer than backend_timeout
      const body = JSON.parse(r.body) as { bodyBytes: number };
      expect(body.bodyBytes).toBe(UPLOAD);
      const seen = be.seen.find((s) => s.path === `/upload${proto}`)!;
      expect(seen.endedAt - seen.startedAt).toBeGreaterThan(2000);
    });
  }

  for (const proto of ["--http1.1", "--http2"]) {
    test(`a backend that never answers after a 2 s upload: 504 about backend_timeout after the body ended (${proto})`, async () => {
      const t0 = Date.now();
      const r = await curl(port, `/never${proto}`, [proto, "--limit-rate", "512K", "--data-binary", `@${smallPath}`], { timeoutS: 30 });
      const doneAt = t0 + r.ms;
      expect(r.status).toBe(504);
      expect(r.headers["content-type"]).toStartWith("text/plain");
      const seen = be.seen.find((s) => s.path === `/never${proto}`);
      expect(seen).toBeDefined();
      expect(seen!.body.byteLength).toBe(1024 * 1024);
      expect(seen!.endedAt - seen!.startedAt).toBeGreaterThan(1000); // the upload itself outlasted half the timeout
      const after = doneAt - seen!.endedAt;
      expect(after).toBeGreaterThanOrEqual(1800);
      expect(after).toBeLessThan(3500);
    });
  }
});

describe("connect_timeout towards a black-holed backend", () => {
  for (const proto of ["http1", "auto"] as const) {
    test(`backend_protocol = "${proto}": 502 within ~1–2 s, and no SYN_SENT descriptor left after connect_timeout + 1 s`, async () => {
      const bh = await startBlackhole();
      const px = await startProxy([route({ backend: `127.0.0.1:${bh.port}`, backendProtocol: proto })], ['connect_timeout = "1s"', 'backend_timeout = "10s"']);
      try {
        const end = Date.now() + 3000;
        while (synSent(bh.port).length > 0 && Date.now() < end) await Bun.sleep(50); // our probe's SYN is gone
        expect(synSent(bh.port)).toEqual([]);
        const results = await Promise.all([1, 2, 3].map((i) => curl(px.port(), `/bh${i}`, ["--http1.1"], { timeoutS: 10 })));
        for (const r of results) {
          expect(r.status).toBe(502);
          expect(r.ms).toBeGreaterThanOrEqual(900);
          expect(r.ms).toBeLessThan(2500);
        }
        await Bun.sleep(200);
        expect(synSent(bh.port)).toEqual([]); // abandoned at the timeout, not left to the kernel (~2 min)
        await Bun.sleep(1000);
        expect(synSent(bh.port)).toEqual([]);
        const logs = px.logs.filter((l) => l.event === "l7.request" && String(l.path).startsWith("/bh"));
        expect(logs.length).toBe(3);
        expect(px.done).toBe(false);
      } finally {
        await px.stop();
        bh.close();
      }
    });
  }
});
