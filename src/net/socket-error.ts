/**
 * A socket's `error` event. Bun reports I/O failures through `close` (or
 * `handshake`) with a system error that carries a string `code`
 * (ECONNRESET, EPROTO, …), and it passes an exception thrown by one of our
 * handlers of that socket (data, end, drain, handshake) to the same socket's
 * `error` handler — and then leaves the socket open (measured on Bun 1.4.4).
 * Until now every `error` handler treated it like a close: the connection's
 * state was torn down, but nothing was logged and a client socket stayed
 * open, untracked, until the peer went away.
 *
 * Every `error` handler goes through `socketError`: an exception is logged at
 * error level with its stack (`server.handler_exception`, rate-limited), the
 * owner is told as before, and the socket is then reset. An error with a
 * `code` is passed on unchanged.
 */
import { RateBudget } from "../l7/h2/budget.ts";
import { HANDLER_EXCEPTION_LOG_BURST, HANDLER_EXCEPTION_LOG_PER_MINUTE } from "../limits.ts";
import { log } from "../obs/log.ts";

/** Whether an `error` event carries an exception thrown by our code rather than a system error. */
export function isHandlerException(err: unknown): boolean {
  return typeof (err as { code?: unknown } | null | undefined)?.code !== "string";
}

let budget: RateBudget | null = null;
let suppressed = 0;

/** Logs a handler's exception (rate-limited: HANDLER_EXCEPTION_LOG_*). */
export function reportHandlerException(role: string, err: unknown): void {
  const now = Date.now();
  budget ??= new RateBudget(HANDLER_EXCEPTION_LOG_BURST, HANDLER_EXCEPTION_LOG_PER_MINUTE / 60, now);
  if (!budget.take(now)) {
    suppressed++;
    return;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  log.error("server.handler_exception", {
    role,
    error: `${e.name}: ${e.message}`,
    stack: e.stack,
    ...(suppressed > 0 ? { suppressed } : {}),
    detail: "a socket event handler threw (a bug; please report it with this line): the connection was closed",
  });
  suppressed = 0;
}

/**
 * The body of every socket `error` handler: `notify` is the owner's close
 * path (called with `err` as before); after an exception the socket is then
 * reset (the owner's close path must ignore the `close` event that follows).
 */
export function socketError(role: string, s: { terminate(): void }, err: Error, notify: (err: Error) => void): void {
  const thrown = isHandlerException(err);
  if (thrown) reportHandlerException(role, err);
  try {
    notify(err);
  } finally {
    if (thrown) s.terminate();
  }
}
