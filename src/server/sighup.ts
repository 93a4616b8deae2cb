/**
 * SIGHUP's default action terminates the process, and `server` takes a while
 * to start (config, certificates, GeoIP, database, binds, admin API). The
 * entry point imports this module before anything else, so from the first
 * module evaluated on, a SIGHUP sent to a starting server (a reload hook, a
 * `systemctl reload` right after start) is held instead of fatal. runServer
 * takes it over with onSighup(), which runs one reload for any that arrived
 * while starting. No imports: it must evaluate first. (A signal in the few
 * milliseconds before the runtime evaluates any JavaScript is still fatal.)
 */

let installed = false;
let pending = false;
let handler: (() => void) | null = null;

/** From now on SIGHUP is held (until onSighup) instead of terminating the process. Idempotent. */
export function holdSighup(): void {
  if (installed) return;
  installed = true;
  process.on("SIGHUP", () => {
    if (handler) handler();
    else pending = true;
  });
}

/**
 * Routes SIGHUP to `h` from now on; if one arrived while it was held, `h`
 * runs once at once. Returns whether one was pending.
 */
export function onSighup(h: () => void): boolean {
  holdSighup();
  handler = h;
  const was = pending;
  pending = false;
  if (was) h();
  return was;
}

// Only the long-running `server` command holds the signal this early; the
// short CLI commands keep the default (a terminal hangup ends them).
if (process.argv.slice(2).find((a) => !a.startsWith("-")) === "server") holdSighup();
