/**
 * Test harness: a real State over a temp SQLite database with two listeners, and a live admin
 * server on a unix socket in the same temp dir. Log lines are captured, not printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { expect } from "bun:test";
import { AdminClient, isServiceError } from "../../src/admin/client.ts";
import { startAdminServer, type AdminServer } from "../../src/admin/server.ts";
import type { GrpcConfig } from "../../src/config/types.ts";
import { setLogSink } from "../../src/obs/log.ts";
import { State } from "../../src/state/state.ts";
import { Store } from "../../src/store/store.ts";

export const STARTED_AT = new Date("2025-01-02T03:04:05.678Z");

export interface Harness {
  dir: string;
  dbPath: string;
  sock: string;
  store: Store;
  state: State;
  server: AdminServer;
  client: AdminClient;
  rpcs: [string, string][];
  logs: string[];
  close(): Promise<void>;
}

/** Seeds ":443" (plain) and "127.0.0.1:8443" (PROXY from 10.0.0.0/8, max 100). */
export function seedStore(dir: string): { dbPath: string; store: Store; state: State } {
  const dbPath = join(dir, "mc-proxy.db");
  const store = Store.open(dbPath);
  store.insertListener({ addr: ":443", proxyProtocol: false, proxyProtocolTrusted: [], maxConnections: 0 });
  store.insertListener({ addr: "127.0.0.1:8443", proxyProtocol: true, proxyProtocolTrusted: ["10.0.0.0/8"], maxConnections: 100 });
  return { dbPath, store, state: State.load(store) };
}

export function captureLogs(): { logs: string[]; restore(): void } {
  const logs: string[] = [];
  const prev = setLogSink((l) => logs.push(l));
  return { logs, restore: () => setLogSink(prev) };
}

/** Starts everything; `grpc` overrides the admin config (default: unix socket in the temp dir). */
export async function startHarness(grpc?: (dir: string) => GrpcConfig, opts: { geoipConfigured?: boolean } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), "mc-proxy-admin-"));
  const cap = captureLogs();
  const { dbPath, store, state } = seedStore(dir);
  const sock = join(dir, "admin.sock");
  const cfg = grpc ? grpc(dir) : { addr: sock, tlsCert: "", tlsKey: "", clientCa: "" };
  const rpcs: [string, string][] = [];
  const server = await startAdminServer(cfg, {
    state,
    status: () => ({ version: "9.9.9-test", startedAt: STARTED_AT, totalConnections: 42, active: (a) => (a === ":443" ? 3 : 0) }),
    onRpc: (m, c) => rpcs.push([m, c]),
    ...(opts.geoipConfigured !== undefined ? { geoipConfigured: opts.geoipConfigured } : {}),
  });
  const client = new AdminClient({ addr: sock });
  return {
    dir,
    dbPath,
    sock,
    store,
    state,
    server,
    client,
    rpcs,
    logs: cap.logs,
    async close() {
      client.close();
      await server.close();
      store.close();
      cap.restore();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Asserts the promise rejects with gRPC `code` and a message containing each of `parts`. */
export async function expectGrpcError(p: Promise<unknown>, code: grpcStatus, ...parts: string[]): Promise<string> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(isServiceError(err)).toBe(true);
  if (!isServiceError(err)) throw new Error("unreachable");
  expect(grpcStatus[err.code]).toBe(grpcStatus[code]);
  for (const part of parts) expect(err.details).toContain(part);
  return err.details;
}
