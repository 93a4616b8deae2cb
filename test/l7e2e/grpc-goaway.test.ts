/**
 * A gRPC backend that ends its connections on a timer (grpc-js
 * `grpc.max_connection_age_ms`, as grpc-go's MaxConnectionAge: GOAWAY, then
 * streams that crossed it are refused) behind the compiled binary: unary
 * calls are POSTs with a body, so each refused one used to become a 502 and
 * the client an UNAVAILABLE (109 of 4000 calls at a 200 ms age, measured).
 * Now a refused request is sent again with its kept body
 * (BACKEND_H2_RETRY_BODY_BYTES) and every call succeeds.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { cleanupCerts, e2ePki, killAllServers, route, startProxy, type ServerProc } from "./e2e.ts";

type Msg = { text: string };
const ser = (v: Msg) => Buffer.from(JSON.stringify(v));
const des = (b: Buffer) => JSON.parse(b.toString()) as Msg;
const service = {
  unary: { path: "/mcproxy.test.Echo/Unary", requestStream: false, responseStream: false, requestSerialize: ser, requestDeserialize: des, responseSerialize: ser, responseDeserialize: des },
} satisfies grpc.ServiceDefinition;

let server: grpc.Server;
let p: ServerProc;
let client: grpc.Client & Record<string, Function>;
let served = 0;

beforeAll(async () => {
  server = new grpc.Server({ "grpc.max_connection_age_ms": 100, "grpc.max_connection_age_grace_ms": 5000 });
  server.addService(service, {
    unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      served++;
      cb(null, { text: `${call.request.text.length}` });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, n) => (e ? reject(e) : resolve(n))));
  p = await startProxy([route({ backend: `127.0.0.1:${port}`, backendProtocol: "h2" })], [], {});
  const Ctor = grpc.makeGenericClientConstructor(service, "Echo");
  client = new Ctor(`127.0.0.1:${p.port()}`, grpc.credentials.createSsl(Buffer.from(e2ePki().ca.certPem)), {
    "grpc.ssl_target_name_override": "a.test",
    "grpc.default_authority": "a.test",
  }) as unknown as grpc.Client & Record<string, Function>;
});

afterAll(async () => {
  client?.close();
  await p?.stop();
  server?.forceShutdown();
  killAllServers();
  cleanupCerts();
});

test("unary calls to a backend that rotates its connections every 100 ms all succeed (refused streams are sent again with their bodies)", async () => {
  const N = 2000;
  const CONCURRENCY = 20;
  const body = "x".repeat(500);
  let started = 0;
  let ok = 0;
  const errors: Record<string, number> = {};
  const t0 = Date.now();
  const worker = async () => {
    // Bounded: N calls in all, each with a 10 s deadline.
    while (started < N) {
      started++;
      await new Promise<void>((resolve) =>
        client.unary({ text: body }, { deadline: Date.now() + 10_000 }, (e: grpc.ServiceError | null, m?: Msg) => {
          if (e) errors[`${e.code} ${e.details}`] = (errors[`${e.code} ${e.details}`] ?? 0) + 1;
          else if (m?.text === "500") ok++;
          resolve();
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  expect(errors).toEqual({});
  expect(ok).toBe(N);
  // Each call answered once, over several connection lifetimes (the old code failed ~50 of these calls).
  expect(served).toBe(N);
  expect(Date.now() - t0).toBeGreaterThan(200);
}, 60_000);
