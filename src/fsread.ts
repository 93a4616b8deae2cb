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

/** The file's text (utf8); throws FileReadError. */
export function readSmallFile(path: string, maxBytes: number = PEM_FILE_MAX_BYTES): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw new FileReadError(code, code);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileReadError("ENOTREG", "not a regular file");
    if (st.size > maxBytes) throw new FileReadError("EFBIG", `larger than ${maxBytes} bytes`);
    return readFileSync(fd, "utf8");
  } catch (e) {
    if (e instanceof FileReadError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw new FileReadError(code, code);
  } finally {
    closeSync(fd);
  }
}
