/**
 * Records as stored in SQLite and held in memory. These are the shapes the
 * store returns, the state layer keeps and the admin API converts to proto.
 */
import type { FirewallRuleType, PolicyType, RouteSettings } from "./config/types.ts";

export interface ListenerRecord {
  id: number;
  addr: string;
  proxyProtocol: boolean;
  proxyProtocolTrusted: string[];
  maxConnections: number;
}

export interface PolicyRecord {
  id: number;
  routeId: number;
  type: PolicyType;
  value: string;
}

export interface RouteRecord extends RouteSettings {
  id: number;
  listenerId: number;
  /** In insertion (id) order: the order policies are evaluated. */
  l7Policies: PolicyRecord[];
}

/** A route as written by a caller: no ids; policies optional. */
export type RouteInput = Omit<RouteRecord, "id" | "listenerId" | "l7Policies"> & {
  l7Policies?: { type: PolicyType; value: string }[];
};

export interface FirewallRuleRecord {
  id: number;
  type: FirewallRuleType;
  value: string;
}
