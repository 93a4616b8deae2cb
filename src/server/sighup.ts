/**
 * SIGHUP's default action terminates the process, and `server` takes a while
 * to start (config, certificates, GeoIP, database, binds, admin API). The
 * entry point imports this module before anything else, so from the first
 * module evaluated on, a SIGHUP sent to a starting server (a reload hook, a
 * `systemctl reload` right after start) is held instead of fatal. runServer
 * takes it over with onSighup(), which runs one reload for any that arrived
 * while starting. No imports: it must evaluate first. (A signal in the few
 * milliseconds before the runtime evaluates any JavaScript is still fatal.)
 * The holding itself (holdSignals/takeSignals) also serves SIGINT/SIGTERM
 * (src/server/stopsignal.ts).
 */

/** Signals held together until their handler is known (holdSignals → takeSignals). */
interface Held {
  /** The one that arrived while held (null: none). */
  pending: NodeJS.Signals | null;
  handler: ((signal: NodeJS.Signals) => void) | null;
  /** What another one of the group does while one is pending (default: nothing more, they coalesce). */
  repeat: ((signal: NodeJS.Signals) => void) | null;
}
const groups = new Map<NodeJS.Signals, Held>();

/**
 * From now on `signals` are held as one group (until takeSignals) instead of
 * taking their default action; `repeat` runs for another one while one is
 * pending. Idempotent. Shared with SIGINT/SIGTERM (src/server/stopsignal.ts).
 */
export function holdSignals(signals: readonly NodeJS.Signals[], repeat: ((signal: NodeJS.Signals) => void) | null = null): void {
  if (groups.has(signals[0]!)) return;
  const h: Held = { pending: null, handler: null, repeat };
  for (const signal of signals) {
    groups.set(signal, h);
    process.on(signal, () => {
      if (h.handler) h.handler(signal);
      else if (h.pending !== null) h.repeat?.(signal);
      else h.pending = signal;
    });
  }
}

/**
 * Routes the group of `signals` to `handler` from now on; if one arrived
 * while they were held, `handler` runs once for it at once. Returns it, or null.
 */
export function takeSignals(signals: readonly NodeJS.Signals[], handler: (signal: NodeJS.Signals) => void): NodeJS.Signals | null {
  holdSignals(signals);
  const h = groups.get(signals[0]!)!;
  h.handler = handler;
  const was = h.pending;
  h.pending = null;
  if (was !== null) handler(was);
  return was;
}

/** From now on SIGHUP is held (until onSighup) instead of terminating the process. Idempotent. */
export function holdSighup(): void {
  holdSignals(["SIGHUP"]);
}

/**
 * Routes SIGHUP to `h` from now on; if one arrived while it was held, `h`
 * runs once at once. Returns whether one was pending.
 */
export function onSighup(h: () => void): boolean {
  return takeSignals(["SIGHUP"], h) !== null;
}

// Only the long-running `server` command holds the signal this early; the
// short CLI commands keep the default (a terminal hangup ends them).
if (process.argv.slice(2).find((a) => !a.startsWith("-")) === "server") holdSighup();
