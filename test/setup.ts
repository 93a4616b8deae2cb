/**
 * Preloaded by `bun test` (bunfig.toml). Log lines of in-process servers are
 * dropped unless MCP_TEST_LOG=1, so test output stays readable; tests that
 * assert on logs install their own sink with setLogSink.
 */
import { setLogSink } from "../src/obs/log.ts";

if (process.env.MCP_TEST_LOG !== "1") setLogSink(() => {});

// bunfig's [test] timeout is ignored by Bun 1.4.4 (hooks and tests stay at
// 5 s); network tests on a loaded 2-core machine need more.
import { setDefaultTimeout } from "bun:test";
setDefaultTimeout(60_000);
