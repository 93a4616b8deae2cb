/** Shared helpers for the HTTP/1.1 codec tests. */
import { expect } from "bun:test";
import {
  type H1Error,
  type H1ErrorReason,
  type NeedMore,
  type RequestHead,
  type ResponseHead,
  parseRequestHead,
  parseResponseHead,
} from "../../../src/l7/h1/codec.ts";

export const bytes = (s: string): Buffer => Buffer.from(s, "latin1");

export function req(s: string): RequestHead | NeedMore | H1Error {
  const b = bytes(s);
  return parseRequestHead(b, 0, b.length);
}

export function okReq(s: string): RequestHead {
  const r = req(s);
  if (r.kind !== "request") throw new Error(`expected a request, got ${JSON.stringify(r)}`);
  return r;
}

export function res(s: string, method = "GET"): ResponseHead | NeedMore | H1Error {
  const b = bytes(s);
  return parseResponseHead(b, 0, b.length, method);
}

export function okRes(s: string, method = "GET"): ResponseHead {
  const r = res(s, method);
  if (r.kind !== "response") throw new Error(`expected a response, got ${JSON.stringify(r)}`);
  return r;
}

export function expectError(r: { kind: string }, reason: H1ErrorReason, status?: number): void {
  expect(r).toMatchObject(status === undefined ? { kind: "error", reason } : { kind: "error", reason, status });
}

/** mulberry32: a tiny seeded PRNG so failures reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
