/**
 * The few glibc calls Bun has no API for, through bun:ffi: getrlimit and
 * setrlimit (src/net/fds.ts), madvise (src/server/trim.ts), execve
 * (src/server/jsc.ts). Opened once, lazily (dlopen compiles the trampolines);
 * null when unavailable — not Linux, no glibc — and every caller then goes on
 * without it.
 */
import { dlopen, FFIType } from "bun:ffi";

export interface Libc {
  getrlimit(resource: number, buf: BigUint64Array): number;
  setrlimit(resource: number, buf: BigUint64Array): number;
  madvise(addr: number, length: number, advice: number): number;
  execve(path: Uint8Array, argv: BigUint64Array, envp: BigUint64Array): number;
}

let lib: Libc | null | undefined;

export function libc(): Libc | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (process.platform !== "linux") return lib;
  try {
    lib = dlopen("libc.so.6", {
      getrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      setrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
      execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    }).symbols as unknown as Libc;
  } catch {
    lib = null;
  }
  return lib;
}
