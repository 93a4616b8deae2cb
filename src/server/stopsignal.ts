/**
 * SIGINT/SIGTERM for `server`. Their default action terminates the process,
 * and until `runServer` routes them to the drain, a signal would do exactly
 * that — including one sent right after the `server.start` line was written
 * (a supervisor or a test that stops the server as soon as it reports
 * started), which then ended without draining, without `server.stopped` and
 * with status 143 instead of 0. So `runServer` holds both from its first line
 * on: a stop signal that arrives while the server is starting is remembered,
 * and the server drains as soon as it is up (exit status 0, as for any stop).
 * A second one while still starting means the operator insists: the process
 * exits at once with the signal's conventional status (130 / 143).
 *
 * A signal in the first milliseconds, before any JavaScript of the server
 * runs (runtime start, the re-execution of src/server/jsc.ts), still takes
 * the default action; nothing is being served then.
 */
import { log } from "../obs/log.ts";
import { holdSignals, takeSignals } from "./sighup.ts";

export type StopSignal = "SIGINT" | "SIGTERM";

/** What a stop signal does once the server runs: `held` = it arrived while starting. */
export type StopHandler = (signal: StopSignal, held: boolean) => void;

const EXIT_STATUS: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };
const STOP_SIGNALS: readonly StopSignal[] = ["SIGINT", "SIGTERM"];

/** From now on SIGINT/SIGTERM are held (until onStopSignal) instead of terminating the process. Idempotent. */
export function holdStopSignals(): void {
  holdSignals(STOP_SIGNALS, (signal) => {
    log.warn("server.signal", { signal, while_starting: true, action: "exit", detail: "a second stop signal while starting: exiting without draining" });
    process.exit(EXIT_STATUS[signal as StopSignal]);
  });
}

/**
 * Routes SIGINT/SIGTERM to `h` from now on; one that arrived while they were
 * held is passed to `h` at once (held = true). Returns it, or null.
 */
export function onStopSignal(h: StopHandler): StopSignal | null {
  holdStopSignals();
  let starting = true;
  const was = takeSignals(STOP_SIGNALS, (signal) => h(signal as StopSignal, starting));
  starting = false;
  return was as StopSignal | null;
}
