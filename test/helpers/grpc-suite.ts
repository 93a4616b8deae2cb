/**
 * The gRPC test body shared by the in-process L7 harness (test/l7) and the
 * real server pipeline (test/l7pipe): @grpc/grpc-js client (TLS, test CA) →
 * front end → @grpc/grpc-js server (h2c). Both run the same assertions.
 * Service defined without .proto (JSON messages).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { cleanupCerts } from "../fixtures/certs.ts";
import { testPki, waitFor, HOST } from "../l7/harness.ts";

/** A running front end: the TLS port the client dials, and how to stop it. */
export interface GrpcFront {
  port: number;
  stop(): void | Promise<void>;
}

/** How a test file puts a front end (SNI ${HOST}, test certificate) before a gRPC backend. */
export interface GrpcFrontFactory {
  start(backend: string, backendProtocol: "h2" | "auto"): Promise<GrpcFront>;
  /** Runs in afterAll after every front end stopped. */
  teardown?(): void | Promise<void>;
}

type Msg = { text: string; n?: number };
const ser = (v: Msg) => Buffer.from(JSON.stringify(v));
const des = (b: Buffer) => JSON.parse(b.toString()) as Msg;
const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/mcproxy.test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: ser,
  requestDeserialize: des,
  responseSerialize: ser,
  responseDeserialize: des,
});
const service = {
  unary: method("Unary", false, false),
  serverStream: method("ServerStream", false, true),
  clientStream: method("ClientStream", true, false),
  bidi: method("Bidi", true, true),
  fail: method("Fail", false, false),
  slow: method("Slow", false, true),
  deadline: method("Deadline", false, false),
} satisfies grpc.ServiceDefinition;

type EchoClient = grpc.Client & Record<string, Function>;

/** An Echo client over TLS to 127.0.0.1:`port`, verifying ${HOST} against the test CA. */
function dial(port: number): EchoClient {
  const Ctor = grpc.makeGenericClientConstructor(service, "Echo");
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(testPki().ca.certPem)), {
    "grpc.ssl_target_name_override": HOST,
    "grpc.default_authority": HOST,
  }) as unknown as EchoClient;
}

/** Defines the gRPC describe block `title` against front ends made by `front`. */
export function defineGrpcSuite(title: string, front: GrpcFrontFactory): void {
  let server: grpc.Server;
  let proxy: GrpcFront;
  let grpcPort = 0;
  let client: EchoClient;
  let cancelledSeen = false;
  let lastMetadata: grpc.Metadata | null = null;
  const NON_ASCII = "échec: ça n'a pas marché ✗ 失败";

  beforeAll(async () => {
    server = new grpc.Server();
    server.addService(service, {
      unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
        lastMetadata = call.metadata;
        cb(null, { text: `echo:${call.request.text}`, n: call.request.text.length });
      },
      serverStream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
        for (let i = 0; i < (call.request.n ?? 3); i++) call.write({ text: `part ${i}` });
        call.end();
      },
      clientStream: (call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
        const parts: string[] = [];
        call.on("data", (m: Msg) => parts.push(m.text));
        call.on("end", () => cb(null, { text: parts.join(","), n: parts.length }));
      },
      bidi: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
        call.on("data", (m: Msg) => call.write({ text: `bidi:${m.text}` }));
        call.on("end", () => call.end());
      },
      fail: (_call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
        const md = new grpc.Metadata();
        md.set("x-reason", "quota");
        md.set("x-detail-bin", Buffer.from([0, 1, 2, 250, 255]));
        cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: NON_ASCII, metadata: md });
      },
      slow: (call: grpc.ServerWritableStream<Msg, Msg>) => {
        call.on("cancelled", () => {
          cancelledSeen = true;
        });
        call.write({ text: "first" });
        // then nothing: the client cancels
      },
      deadline: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
        const d = call.getDeadline();
        const ms = d instanceof Date ? d.getTime() - Date.now() : Number(d) - Date.now();
        cb(null, { text: Number.isFinite(ms) ? "has-deadline" : "no-deadline", n: Math.round(ms) });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    grpcPort = port;
    proxy = await front.start(`127.0.0.1:${port}`, "h2");
    client = dial(proxy.port);
  });

  afterAll(async () => {
    client?.close();
    await proxy?.stop();
    await front.teardown?.();
    server?.forceShutdown();
    cleanupCerts();
  });

  function unary(name: string, req: Msg, opts: grpc.CallOptions = {}, md = new grpc.Metadata()): Promise<{ err: grpc.ServiceError | null; res?: Msg }> {
    return new Promise((resolve) => client[name](req, md, opts, (err: grpc.ServiceError | null, res?: Msg) => resolve({ err, res })));
  }

  describe(title, () => {
    test("unary call returns the backend's answer and the backend sees X-Forwarded-For", async () => {
      const md = new grpc.Metadata();
      md.set("x-forwarded-for", "6.6.6.6");
      const r = await unary("unary", { text: "hi" }, {}, md);
      expect(r.err).toBeNull();
      expect(r.res).toEqual({ text: "echo:hi", n: 2 });
      expect(lastMetadata?.get("x-forwarded-for")).toEqual(["127.0.0.1"]);
    });

    test("large unary message (1 MB) arrives intact", async () => {
      const big = "x".repeat(1024 * 1024);
      const r = await unary("unary", { text: big });
      expect(r.err).toBeNull();
      expect(r.res?.n).toBe(big.length);
    });

    test("server streaming delivers every message then OK", async () => {
      const got: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.serverStream({ text: "", n: 5 });
        call.on("data", (m: Msg) => got.push(m.text));
        call.on("error", reject);
        call.on("end", () => resolve());
      });
      expect(got).toEqual(["part 0", "part 1", "part 2", "part 3", "part 4"]);
    });

    test("client streaming: every client message reaches the backend", async () => {
      const r = await new Promise<Msg>((resolve, reject) => {
        const call = client.clientStream((err: grpc.ServiceError | null, res: Msg) => (err ? reject(err) : resolve(res)));
        for (const t of ["a", "b", "c"]) call.write({ text: t });
        call.end();
      });
      expect(r).toEqual({ text: "a,b,c", n: 3 });
    });

    test("bidi streaming echoes in order and completes", async () => {
      const got: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.bidi();
        call.on("data", (m: Msg) => {
          got.push(m.text);
          if (got.length === 3) call.end();
        });
        call.on("error", reject);
        call.on("end", () => resolve());
        for (const t of ["1", "2", "3"]) call.write({ text: t });
      });
      expect(got).toEqual(["bidi:1", "bidi:2", "bidi:3"]);
    });

    test("error status with a non-ASCII grpc-message and trailer metadata (incl. -bin) reaches the client", async () => {
      const r = await unary("fail", { text: "x" });
      expect(r.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(r.err?.details).toBe(NON_ASCII);
      expect(r.err?.metadata.get("x-reason")).toEqual(["quota"]);
      expect(r.err?.metadata.get("x-detail-bin")).toEqual([Buffer.from([0, 1, 2, 250, 255])]);
    });

    test("a cancelled call is seen cancelled by the backend", async () => {
      cancelledSeen = false;
      await new Promise<void>((resolve) => {
        const call = client.slow({ text: "" });
        call.on("data", () => call.cancel());
        call.on("error", () => resolve());
      });
      expect(await waitFor(() => cancelledSeen, 10000)).toBe(true);
    });

    test("deadline passes through (grpc-timeout forwarded)", async () => {
      const r = await unary("deadline", { text: "" }, { deadline: Date.now() + 20000 });
      expect(r.err).toBeNull();
      expect(r.res?.text).toBe("has-deadline");
      expect(r.res!.n!).toBeGreaterThan(5000);
      expect(r.res!.n!).toBeLessThanOrEqual(20000);
    });

    test("backend_protocol auto finds the gRPC server's h2c by probing", async () => {
      const p = await front.start(`127.0.0.1:${grpcPort}`, "auto");
      const c = dial(p.port);
      try {
        const r = await new Promise<{ err: grpc.ServiceError | null; res?: Msg }>((resolve) =>
          c.unary({ text: "auto" }, (err: grpc.ServiceError | null, res?: Msg) => resolve({ err, res })),
        );
        expect(r.err).toBeNull();
        expect(r.res?.text).toBe("echo:auto");
      } finally {
        c.close();
        await p.stop();
      }
    });
  });
}
