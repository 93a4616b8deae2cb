/**
 * `workers = 0` under a CPU quota (src/server/workers.ts cpuQuota,
 * resolveWorkers): the cgroup files as a container runtime, Kubernetes or
 * systemd's CPUQuota= write them, read through an injected reader.
 */
import { describe, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { cpuQuota, resolveWorkers } from "../../src/server/workers.ts";

function fs(files: Record<string, string>) {
  return (p: string): string => {
    const v = files[p];
    if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: "ENOENT" });
    return v;
  };
}

describe("cpuQuota", () => {
  test("cgroup v2 in a container (--cpus=2): 2", () => {
    expect(cpuQuota(fs({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "200000 100000\n" }))).toBe(2);
  });

  test("cgroup v2 under systemd (CPUQuota=150%) with no limit above: 1.5", () => {
    const read = fs({
      "/proc/self/cgroup": "0::/system.slice/mc-proxy.service\n",
      "/sys/fs/cgroup/system.slice/mc-proxy.service/cpu.max": "150000 100000\n",
      "/sys/fs/cgroup/system.slice/cpu.max": "max 100000\n",
    });
    expect(cpuQuota(read)).toBe(1.5);
  });

  test("the tightest limit on the way up wins (a slice limited to half a CPU)", () => {
    const read = fs({
      "/proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
      "/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "max 100000\n",
      "/sys/fs/cgroup/kubepods/pod1/cpu.max": "50000 100000\n",
      "/sys/fs/cgroup/kubepods/cpu.max": "800000 100000\n",
    });
    expect(cpuQuota(read)).toBe(0.5);
  });

  test("cgroup v1 (cpu,cpuacct controller): quota / period; -1 is none", () => {
    const v1 = (quota: string) =>
      fs({
        "/proc/self/cgroup": "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
        "/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us": `${quota}\n`,
        "/sys/fs/cgroup/cpu/docker/abc/cpu.cfs_period_us": "100000\n",
      });
    expect(cpuQuota(v1("300000"))).toBe(3);
    expect(cpuQuota(v1("-1"))).toBeNull();
  });

  test("no quota anywhere, or nothing readable: null", () => {
    expect(cpuQuota(fs({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n" }))).toBeNull();
    expect(cpuQuota(fs({}))).toBeNull();
  });
});

describe("resolveWorkers", () => {
  test("0 = the CPUs the process may use: affinity, capped by the quota rounded up; at least 1", () => {
    expect(resolveWorkers(0, 64, null)).toBe(64);
    expect(resolveWorkers(0, 64, 2)).toBe(2);
    expect(resolveWorkers(0, 64, 1.5)).toBe(2);
    expect(resolveWorkers(0, 64, 0.5)).toBe(1);
    expect(resolveWorkers(0, 4, 16)).toBe(4);
    expect(resolveWorkers(0, 0, null)).toBe(1);
  });

  test("an explicit number is used as is", () => {
    expect(resolveWorkers(3, 64, 1)).toBe(3);
  });

  test("on this machine: the CPUs it may run on, capped by its own quota if it has one", () => {
    const q = cpuQuota();
    expect(resolveWorkers(0)).toBe(Math.max(1, Math.min(availableParallelism(), q === null ? Infinity : Math.ceil(q))));
  });
});
