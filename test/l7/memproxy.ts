/**
 * Subprocess for the memory test: runs the L7 harness towards the backend
 * given as argv[2] with backend_protocol argv[3], prints {"port":N} on stdout,
 * and runs until killed.
 */
import type { BackendProtocol } from "../../src/config/types.ts";
import { loadCertPair } from "../../src/l7/certs.ts";
import { setLogLevel } from "../../src/obs/log.ts";
import { routeRecord, startHarness } from "./harness.ts";

setLogLevel("warn");
const [backend, protocol] = process.argv.slice(2);
// The parent's certificate (the parent trusts its own test CA).
const cert = loadCertPair(process.env.MC_TEST_CERT!, process.env.MC_TEST_KEY!);
const h = startHarness(routeRecord(backend!, { backendProtocol: protocol as BackendProtocol }), { cert });
process.stdout.write(JSON.stringify({ port: h.port }) + "\n");
setInterval(() => {}, 1 << 30);
