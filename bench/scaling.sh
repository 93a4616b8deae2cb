#!/usr/bin/env bash
# Scaling run for `[proxy] workers`: the same L4 and L7 loads through the
# compiled mc-proxy with 1 worker and with 2, unpinned (both CPUs), with the
# shared harness's clients and backends. Prints req/s and proxy CPU per run,
# and how the proxy's CPU time split over its threads (from /proc/<pid>/task:
# the main thread is named after the binary, workers "Worker").
#
#   bench/scaling.sh            (WORKLOADS="W1 W5" DURATION=8 REPS=1 by default)
#
# On a 2-core machine the client (wrk/h2load) and the backend nginx share the
# two cores with the proxy: a second worker can only take CPU from them, so
# req/s rises only while the single proxy thread was the bottleneck. The
# per-thread split is the part that shows both cores in use.
# Needs what bench/mc-proxy.sh needs; every load run is bounded by the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS="$(cd ../shared/bench && pwd)"
# shellcheck source=bench/config.sh
. bench/config.sh
STATE="${BENCH_STATE:-${TMPDIR:-/tmp}/mc-proxy-bench}"
BIN="${MC_PROXY:-dist/mc-proxy}"
L4_PORT_MC="${MCP_L4_PORT:-7443}"
L7_PORT_MC="${MCP_L7_PORT:-7444}"
export DURATION="${DURATION:-8}" REPS="${REPS:-1}" WARMUP="${WARMUP:-2}" PIN_CUSTOM=0
WORKLOADS="${WORKLOADS:-W1 W5}"

[ -x "$BIN" ] || node_modules/.bin/bun scripts/build.ts
"$HARNESS/setup.sh" >/dev/null

thread_ticks() { # pid -> "main=<ticks> workers=<ticks>"
  local pid=$1 main=0 workers=0 t comm ticks
  for t in /proc/"$pid"/task/*; do
    comm=$(cat "$t/comm" 2>/dev/null) || continue
    ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null) || continue
    if [ "${t##*/}" = "$pid" ]; then main=$ticks; elif [ "$comm" = Worker ]; then workers=$((workers + ticks)); fi
  done
  echo "$main $workers"
}

for w in 1 2; do
  dir="$STATE/scaling-$w"
  rm -rf "$dir"; mkdir -p "$dir"
  write_config "$dir/mc-proxy.toml" "$L4_PORT_MC" "$L7_PORT_MC" "$STATE" "workers = $w"
  "$BIN" server -c "$dir/mc-proxy.toml" 2> "$dir/server.log" &
  pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/${L7_PORT_MC}") 2>/dev/null && break; sleep 0.1; done
  for W in $WORKLOADS; do
    case "$W" in W1|W2|W3) port=$L4_PORT_MC ;; *) port=$L7_PORT_MC ;; esac
    read -r m0 w0 < <(thread_ticks "$pid")
    line=$(PROXY_PID="$pid" LABEL="mc-proxy-workers-$w" "$HARNESS/run.sh" "$W" "custom:127.0.0.1:$port" 2>&1 | grep -E 'rps=' | tail -1 || true)
    read -r m1 w1 < <(thread_ticks "$pid")
    echo "workers=$w $W ${line#*rps=} | thread CPU ticks: main $((m1 - m0)), workers $((w1 - w0))" | sed 's/^\(workers=[0-9] W[0-9a-z]*\) /\1 rps=/'
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
