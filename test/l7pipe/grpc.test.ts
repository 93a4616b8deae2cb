/**
 * gRPC through the REAL pipeline: @grpc/grpc-js client (TLS, SNI a.test,
 * test CA) → mc-proxy (ClientHello → route lookup → L7) → @grpc/grpc-js
 * server on h2c. The test body is shared with test/l7/grpc.test.ts (the
 * in-process harness): test/helpers/grpc-suite.ts.
 */
import { setDefaultTimeout } from "bun:test";
import { defineGrpcSuite } from "../helpers/grpc-suite.ts";
import { routeToml, startL7Proxy } from "./pipe.ts";

// bunfig's [test] timeout is not honoured by Bun 1.4.4: set it here (covers hooks too).
setDefaultTimeout(60_000);

defineGrpcSuite("gRPC through the real mc-proxy (L7 route, h2c backend)", {
  async start(backend, backendProtocol) {
    const p = await startL7Proxy([routeToml(backend, { backendProtocol })]);
    return { port: p.port(), stop: () => p.stop() };
  },
});
