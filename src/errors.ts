/**
 * Errors are values with a code. The admin API maps them to gRPC status codes
 * (InvalidArgument → INVALID_ARGUMENT, NotFound → NOT_FOUND, Store → INTERNAL);
 * the CLI prints `message` as one line and exits non-zero.
 */

/**
 * A configuration problem: names the file and the key path (`listeners[1].routes[0].backend`).
 * The message is one line; when the loader found several problems, `problems`
 * lists each one separately (the first is keyPath/detail without the "and N more").
 */
export class ConfigError extends Error {
  readonly code = "config";
  readonly problems: readonly { path: string; detail: string }[];
  constructor(
    readonly file: string,
    readonly keyPath: string,
    readonly detail: string,
    problems?: readonly { path: string; detail: string }[],
  ) {
    super(`${file ? file + ": " : ""}${keyPath ? keyPath + ": " : ""}${detail}`);
    this.name = "ConfigError";
    this.problems = problems ?? [{ path: keyPath, detail }];
  }
}

/** Bad input to a mutation; `field` names the offending field (`route.backend`). */
export class InvalidArgumentError extends Error {
  readonly code = "invalid_argument";
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = "InvalidArgumentError";
  }
}

/** The listener, route, rule or policy named does not exist. */
export class NotFoundError extends Error {
  readonly code = "not_found";
  constructor(message: string) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** The request is valid but the server's configuration cannot honour it (gRPC FAILED_PRECONDITION). */
export class FailedPreconditionError extends Error {
  readonly code = "failed_precondition";
  constructor(
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = "FailedPreconditionError";
  }
}

/** The database refused or failed a write/read; memory was left unchanged. */
export class StoreError extends Error {
  readonly code = "store";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreError";
  }
}
