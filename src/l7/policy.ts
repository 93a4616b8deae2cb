/**
 * L7 policies (SPEC §8), evaluated per request before anything is forwarded.
 * Pure: no I/O, no clock. Rules run in order; the first match answers 403.
 */
import type { PolicyType } from "../config/types.ts";

export interface Policy {
  type: PolicyType;
  value: string;
}

export type PolicyVerdict = { blocked: false } | { blocked: true; policy: Policy };

const PASS: PolicyVerdict = Object.freeze({ blocked: false });

// Policy values are lower-cased once per policy object, not once per request.
const lowered = new WeakMap<Policy, string>();
function lowerValue(p: Policy): string {
  let v = lowered.get(p);
  if (v === undefined) {
    v = p.value.toLowerCase();
    lowered.set(p, v);
  }
  return v;
}

/**
 * Evaluates `policies` in order against one request. `getHeader` receives a
 * lower-case header name and returns its value, or undefined when absent.
 * `block_user_agent` blocks when its value is a case-insensitive substring of
 * User-Agent (no User-Agent → no match); `require_header` blocks when the
 * named header is absent. Zero policies → `{ blocked: false }` at once.
 */
export function evaluatePolicies(
  policies: readonly Policy[],
  getHeader: (lowerName: string) => string | undefined,
): PolicyVerdict {
  if (policies.length === 0) return PASS;
  let ua: string | undefined | null = null; // null = not read yet
  for (const p of policies) {
    if (p.type === "block_user_agent") {
      if (ua === null) ua = getHeader("user-agent")?.toLowerCase();
      if (ua !== undefined && ua.includes(lowerValue(p))) return { blocked: true, policy: p };
    } else if (p.type === "require_header") {
      if (getHeader(lowerValue(p)) === undefined) return { blocked: true, policy: p };
    }
  }
  return PASS;
}
