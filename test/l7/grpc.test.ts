/**
 * gRPC through the L7 proxy: @grpc/grpc-js client (TLS, test CA) → proxy
 * (in-process harness) → @grpc/grpc-js server (h2c). The test body is shared
 * with test/l7pipe/grpc.test.ts (the real server): test/helpers/grpc-suite.ts.
 */
import { defineGrpcSuite } from "../helpers/grpc-suite.ts";
import { routeRecord, startHarness } from "./harness.ts";

defineGrpcSuite("gRPC through the L7 proxy", {
  start: async (backend, backendProtocol) => startHarness(routeRecord(backend, { backendProtocol })),
  teardown: () => {},
});
