/**
 * Preloaded by `bun test` (bunfig.toml). Log lines of in-process servers are
 * dropped unless MCP_TEST_LOG=1, so test output stays readable; tests that
 * assert on logs install their own sink with setLogSink.
 */
import { setLogSink } from "../src/obs/log.ts";

if (process.env.MCP_TEST_LOG !== "1") setLogSink(() => {});
