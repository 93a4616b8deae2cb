/**
 * The devserver's self-signed certificates (scripts/dev/selfsigned.ts):
 * INTEGERs are minimal DER. A random serial starting with a zero octet was
 * encoded with it, which BoringSSL refuses (INVALID_INTEGER): about one start
 * in 512 of `npm run devserver` (and scripts/bytecode-order.ts) failed.
 */
import { expect, test } from "bun:test";
import { createSecureContext } from "node:tls";
import { makeSelfSigned, positiveInteger } from "../../scripts/dev/selfsigned.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("positive INTEGERs are minimal: leading zero octets dropped, one added before a high bit", () => {
  expect(hex(positiveInteger(Buffer.from([0x00, 0x05, 0xff])))).toBe("020205ff");
  expect(hex(positiveInteger(Buffer.from([0x00, 0x00, 0x80])))).toBe("02020080");
  expect(hex(positiveInteger(Buffer.from([0x80, 0x01])))).toBe("0203008001");
  expect(hex(positiveInteger(Buffer.from([0x7f])))).toBe("02017f");
  expect(hex(positiveInteger(Buffer.from([0x00, 0x00])))).toBe("020100");
});

test("a generated certificate loads into a TLS context", () => {
  const { certPem, keyPem } = makeSelfSigned(["localhost", "127.0.0.1"], 1);
  expect(() => createSecureContext({ cert: certPem, key: keyPem })).not.toThrow();
});
