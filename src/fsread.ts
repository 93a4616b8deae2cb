/**
 * Reading the small files an operator names (certificates, keys, CA
 * bundles) without trusting what the path is: opened non-blocking (a FIFO
 * would block the thread until a writer came), then only a regular file of
 * at most `maxBytes` is read (a device such as /dev/zero would be read
 * forever). Errors carry a short reason for the caller's message.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { PEM_FILE_MAX_BYTES } from "./limits.ts";

export class FileReadError extends Error {
  constructor(
    /** errno code, or "ENOTREG" / "EFBIG". */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "FileReadError";
  }
}

function failed(e: unknown): FileReadError {
  if (e instanceof FileReadError) return e;
  const code = (e as NodeJS.ErrnoException).code ?? "error";
  return new FileReadError(code, code);
}

/**
 * An open descriptor of the regular file at `path` and its size (the caller
 * closes it); throws FileReadError ("ENOTREG" for anything else). Opened
 * non-blocking: a FIFO would block until a writer came.
 */
export function openRegularFile(path: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw failed(e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileReadError("ENOTREG", "not a regular file");
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    throw failed(e);
  }
}

/** The file's text (utf8); throws FileReadError. */
export function readSmallFile(path: string, maxBytes: number = PEM_FILE_MAX_BYTES): string {
  const { fd, size } = openRegularFile(path);
  try {
    if (size > maxBytes) throw new FileReadError("EFBIG", `larger than ${maxBytes} bytes`);
    return readFileSync(fd, "utf8");
  } catch (e) {
    throw failed(e);
  } finally {
    closeSync(fd);
  }
}
