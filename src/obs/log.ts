/**
 * The one log format of mc-proxy: JSON lines on stderr, one object per event,
 * `{"ts":"…","level":"info","event":"conn.close", …fields}`. Every module logs
 * through `log`; nothing else writes log text. Never pass keys, certificate
 * bodies or other secrets as fields.
 */
import type { LogLevel } from "../config/types.ts";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;
type Sink = (line: string) => void;

let threshold = ORDER.info;
/** Fields every line of this thread carries (`worker` when there are several data-path threads). */
let base: LogFields | null = null;
let sink: Sink = (line) => process.stderr.write(line);

export function setLogLevel(level: LogLevel): void {
  threshold = ORDER[level];
}

export function logLevelEnabled(level: LogLevel): boolean {
  return ORDER[level] >= threshold;
}

/** Sets fields added to every line this thread writes (null: none). */
export function setLogBase(fields: LogFields | null): void {
  base = fields;
}

/** Redirect log output (tests capture lines this way). Returns the previous sink. */
export function setLogSink(next: Sink): Sink {
  const prev = sink;
  sink = next;
  return prev;
}

function emit(level: LogLevel, event: string, fields?: LogFields): void {
  if (ORDER[level] < threshold) return;
  const rec: LogFields = { ts: new Date().toISOString(), level, event };
  if (base) Object.assign(rec, base);
  if (fields) {
    for (const k in fields) {
      const v = fields[k];
      if (v === undefined) continue;
      rec[k] = v instanceof Error ? v.message : typeof v === "bigint" ? v.toString() : v;
    }
  }
  sink(JSON.stringify(rec) + "\n");
}

export const log = {
  debug: (event: string, fields?: LogFields) => emit("debug", event, fields),
  info: (event: string, fields?: LogFields) => emit("info", event, fields),
  warn: (event: string, fields?: LogFields) => emit("warn", event, fields),
  error: (event: string, fields?: LogFields) => emit("error", event, fields),
};
