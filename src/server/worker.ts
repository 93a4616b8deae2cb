/**
 * Entry point of a data-path worker thread (`[proxy] workers` > 1; see
 * workers.ts for the main thread's side and the message protocol). A worker
 * runs its own ProxyServer — listeners bound with SO_REUSEPORT on the ports
 * the main thread bound, its own L7 runtime and backend pools — over a
 * Replica of the main thread's state, with the connection counters and the
 * rate-limit table in shared memory. It owns no database, no admin API and no
 * signals: the main thread sends it snapshots, reloads, scrapes and the drain.
 */
import { Firewall } from "../firewall/firewall.ts";
import { setLogBase, setLogLevel, log } from "../obs/log.ts";
import { metrics } from "../obs/metrics.ts";
import { fdBudget } from "../net/fds.ts";
import { Replica } from "../state/replica.ts";
import { ConnCounters } from "./counters.ts";
import { ProxyServer } from "./proxy.ts";
import type { ToMain, ToWorker, WorkerInit } from "./workers.ts";

// Bun's worker global: postMessage/onmessage on globalThis (DOM worker typings are not in our lib).
const port = globalThis as unknown as { postMessage(m: ToMain): void; onmessage: ((e: MessageEvent<ToWorker>) => void) | null };

let proxy: ProxyServer | null = null;
let firewall: Firewall | null = null;
let replica: Replica | null = null;

function start(init: WorkerInit): void {
  setLogLevel(init.logLevel);
  setLogBase({ worker: init.thread });
  fdBudget.init(init.fdSoft);
  fdBudget.share(new Int32Array(init.counters.fds), new BigInt64Array(init.counters.fdWarnAt));
  replica = new Replica(init.snapshot);
  const fw = new Firewall({ ...init.firewall, sharedRate: init.rate ? { buffers: init.rate, owner: init.thread + 1 } : undefined });
  firewall = fw;
  const table = replica;
  fw.setRules(table.firewallRules());
  table.onChange((what) => {
    if (what === "firewall") fw.setRules(table.firewallRules());
  });
  proxy = ProxyServer.start({
    state: table,
    firewall: fw,
    proxy: init.proxy,
    counters: new ConnCounters(init.counters, init.thread),
    shared: { ports: new Map(init.ports) },
  });
}

port.onmessage = (e) => {
  const m = e.data;
  switch (m.t) {
    case "init":
      try {
        start(m);
        port.postMessage({ t: "ready", seq: m.seq });
      } catch (err) {
        port.postMessage({ t: "failed", seq: m.seq, error: (err as Error).message });
      }
      return;
    case "sync":
      replica?.apply(m.snapshot);
      port.postMessage({ t: "done", seq: m.seq });
      return;
    case "geoip": {
      const r = firewall?.reloadGeoip() ?? { ok: true };
      port.postMessage({ t: "geoip", seq: m.seq, ok: r.ok, error: r.error });
      return;
    }
    case "metrics":
      port.postMessage({ t: "metrics", seq: m.seq, delta: metrics.registry.takeDelta() });
      return;
    case "drain": {
      const p = proxy;
      if (!p) {
        port.postMessage({ t: "drained", seq: m.seq, cut: 0, delta: metrics.registry.takeDelta() });
        return;
      }
      p.stopAccepting();
      void p.drain(m.timeoutMs).then((cut) => {
        firewall?.close();
        // The last counts (connections closed while draining) travel with the answer.
        port.postMessage({ t: "drained", seq: m.seq, cut, delta: metrics.registry.takeDelta() });
      });
      return;
    }
    default:
      log.error("worker.unknown_message", { message: JSON.stringify(m).slice(0, 200) });
  }
};
