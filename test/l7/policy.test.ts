import { describe, expect, test } from "bun:test";
import { evaluatePolicies, type Policy } from "../../src/l7/policy.ts";

const headers = (h: Record<string, string>) => (n: string) => h[n];

describe("evaluatePolicies (SPEC §8)", () => {
  test("no policies → not blocked, without reading any header", () => {
    let reads = 0;
    expect(evaluatePolicies([], () => (reads++, undefined))).toEqual({ blocked: false });
    expect(reads).toBe(0);
  });

  test("block_user_agent matches a case-insensitive substring of User-Agent", () => {
    const p: Policy[] = [{ type: "block_user_agent", value: "ZGrab" }];
    expect(evaluatePolicies(p, headers({ "user-agent": "Mozilla/5.0 zgrab/0.x" }))).toEqual({ blocked: true, policy: p[0] });
    expect(evaluatePolicies(p, headers({ "user-agent": "curl/8" })).blocked).toBe(false);
  });

  test("block_user_agent does not match a request without User-Agent", () => {
    expect(evaluatePolicies([{ type: "block_user_agent", value: "x" }], headers({})).blocked).toBe(false);
  });

  test("require_header blocks when the named header is absent (name case-insensitive)", () => {
    const p: Policy[] = [{ type: "require_header", value: "X-Api-Key" }];
    expect(evaluatePolicies(p, headers({})).blocked).toBe(true);
    expect(evaluatePolicies(p, headers({ "x-api-key": "" })).blocked).toBe(false);
  });

  test("rules run in order and the first match wins", () => {
    const p: Policy[] = [
      { type: "require_header", value: "x-token" },
      { type: "block_user_agent", value: "bot" },
    ];
    const v = evaluatePolicies(p, headers({ "user-agent": "bot" }));
    expect(v).toEqual({ blocked: true, policy: p[0] });
    const w = evaluatePolicies(p, headers({ "user-agent": "bot", "x-token": "1" }));
    expect(w).toEqual({ blocked: true, policy: p[1] });
    expect(evaluatePolicies(p, headers({ "user-agent": "human", "x-token": "1" })).blocked).toBe(false);
  });
});
