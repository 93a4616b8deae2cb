/**
 * Preloaded by `bun test` (bunfig.toml). Log lines of in-process servers are
 * dropped unless MCP_TEST_LOG=1, so test output stays readable; tests that
 * assert on logs install their own sink with setLogSink.
 *
 * A `server.handler_exception` line from an in-process server (one of our
 * socket handlers threw: src/net/socket-error.ts) fails the test during which
 * it was logged, whatever that test checked. (Server subprocesses: see
 * test/helpers/subprocess.ts. Tests that install their own sink see their
 * lines themselves.)
 */
import { afterEach, setDefaultTimeout } from "bun:test";
import { setLogSink } from "../src/obs/log.ts";

let handlerExceptions: string[] = [];
const EVENT = '"event":"server.handler_exception"';
if (process.env.MCP_TEST_LOG !== "1") {
  setLogSink((line) => {
    if (line.includes(EVENT)) handlerExceptions.push(line);
  });
} else {
  setLogSink((line) => {
    if (line.includes(EVENT)) handlerExceptions.push(line);
    process.stderr.write(line);
  });
}

afterEach(() => {
  if (handlerExceptions.length === 0) return;
  const lines = handlerExceptions;
  handlerExceptions = [];
  throw new Error(`an in-process server logged ${lines.length} handler exception(s):\n${lines.join("")}`);
});

// bunfig's [test] timeout is ignored by Bun 1.4.4 (hooks and tests stay at
// 5 s); network tests on a loaded 2-core machine need more.
setDefaultTimeout(60_000);
