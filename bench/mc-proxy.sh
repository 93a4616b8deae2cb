#!/usr/bin/env bash
# Benchmarks the compiled mc-proxy against HAProxy and nginx with the shared
# harness (../shared/bench, see its README). Loopback only; every run is
# bounded by the harness (wrk -d / h2load -D, wrapped in timeout).
#
#   bench/mc-proxy.sh [l4|l7|all]        (default all)
#
# Needs: apt-get install -y haproxy nginx libnginx-mod-stream nghttp2-client wrk openssl curl
# Env: DURATION, REPS/ROUNDS, BENCH_STATE … as in the harness; MC_PROXY (binary, default dist/mc-proxy).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS="$(cd ../shared/bench && pwd)"
# shellcheck source=bench/config.sh
. bench/config.sh
STATE="${BENCH_STATE:-${TMPDIR:-/tmp}/mc-proxy-bench}"
BIN="${MC_PROXY:-dist/mc-proxy}"
what="${1:-all}"
# The reference proxies use 8443/8444; ours listens beside them.
MCP_L4_PORT="${MCP_L4_PORT:-7443}"
MCP_L7_PORT="${MCP_L7_PORT:-7444}"

[ -x "$BIN" ] || node_modules/.bin/bun scripts/build.ts mc-proxy
"$HARNESS/setup.sh"

run_dir="$STATE/mc-proxy"
rm -rf "$run_dir"; mkdir -p "$run_dir"
write_config "$run_dir/mc-proxy.toml" "$MCP_L4_PORT" "$MCP_L7_PORT" "$STATE"

taskset -c 1 "$BIN" server -c "$run_dir/mc-proxy.toml" 2> "$run_dir/server.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/${MCP_L7_PORT}) 2>/dev/null && break; sleep 0.1; done

# LABEL would rename every target of a suite run, not just ours: leave it unset
# (our rows are named custom-127.0.0.1-PORT).
export PROXY_PID="$pid"
if [ "$what" = l4 ] || [ "$what" = all ]; then
  "$HARNESS/check.sh" l4 custom:127.0.0.1:${MCP_L4_PORT}
  WORKLOADS_RUN="${L4_WORKLOADS:-W1 W2 W3}" "$HARNESS/suite.sh" custom:127.0.0.1:${MCP_L4_PORT} haproxy nginx direct
fi
if [ "$what" = l7 ] || [ "$what" = all ]; then
  "$HARNESS/check.sh" l7 custom:127.0.0.1:${MCP_L7_PORT}
  WORKLOADS_RUN="${L7_WORKLOADS:-W4 W4h1 W5}" "$HARNESS/suite.sh" custom:127.0.0.1:${MCP_L7_PORT} haproxy nginx direct
fi
