#!/usr/bin/env bash
# Paired runs: mc-proxy and HAProxy alternately, each a fresh process pinned
# to CPU1 (client on CPU0, the harness's nginx backends on CPU1), same load
# for each; prints CPU per request (user/sys/total, from /proc/PID/stat),
# req/s and peak RSS per run, then the medians and how many pairs mc-proxy
# used less CPU per request in. Fresh alternating pairs cancel much of this
# host's drift (the same binary varies by ±15 % between consecutive runs);
# the suite (bench/mc-proxy.sh) remains the reference.
#
#   bench/pairs.sh [W4|W4h1] [SECONDS] [PAIRS]     (default W4h1 5 8)
#
# Needs the harness's backends up (../shared/bench/backends.sh start) and
# h2load. Every run is bounded by h2load -D. MC_PROXY: binary (dist/mc-proxy).
set -uo pipefail
cd "$(dirname "$0")/.."
W="${1:-W4h1}"; SECS="${2:-5}"; PAIRS="${3:-8}"
case "$W" in W4) SNI=a.test ;; W4h1) SNI=b.test ;; *) echo "workload must be W4 or W4h1" >&2; exit 2 ;; esac
BIN="$(readlink -f "${MC_PROXY:-dist/mc-proxy}")"
[ -x "$BIN" ] || { echo "no binary $BIN (npm run build)" >&2; exit 2; }
HARNESS="$(cd ../shared/bench && pwd)"
. "$HARNESS/lib/common.sh"
. "$HARNESS/lib/proxies.sh"
. bench/config.sh
backends_up || die "backends are down: $HARNESS/backends.sh start"
STATE="${BENCH_STATE:-${TMPDIR:-/tmp}/mc-proxy-bench}"
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
write_config "$D/mc.toml" 7443 7444 "$STATE"

load() { taskset -c 0 h2load -t1 -c32 -m10 -D "$1" --connect-to="127.0.0.1:$2" "https://$SNI:$2/100b" 2>&1; }
one() {  # one mc-proxy|haproxy
  local pid port
  if [ "$1" = haproxy ]; then start_ref_proxy haproxy l7 127.0.0.1 8444 >/dev/null; pid=$STARTED_PROXY_PID; port=8444
  else (cd "$D" && rm -f mc-proxy.db* && exec taskset -c 1 "$BIN" server -c mc.toml 2>server.log) & pid=$!; port=7444
    wait_port 127.0.0.1 "$port" 10 || die "mc-proxy did not listen (see $D/server.log)"; fi
  load 2 "$port" >/dev/null   # warm-up
  local u0 s0 u1 s1 n
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  n=$(load "$SECS" "$port" | awk '/^requests:/{print $8}')
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  local hwm; hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
  if [ "$1" = haproxy ]; then stop_ref_proxy; else kill "$pid"; wait "$pid" 2>/dev/null; fi
  local hz; hz=$(getconf CLK_TCK)
  awk -v t="$1" -v u=$((u1-u0)) -v s=$((s1-s0)) -v n="${n:-0}" -v secs="$SECS" -v h="$hwm" -v hz="$hz" \
    'BEGIN{ if (n==0) { print t, "no requests"; exit } printf "%-9s usr %5.2f sys %5.2f tot %5.2f us/req  %6.0f req/s  peak %.1f MiB\n", t, u/hz*1e6/n, s/hz*1e6/n, (u+s)/hz*1e6/n, n/secs, h/1024 }'
}
log "$W: $PAIRS pairs of ${SECS}s, $BIN vs haproxy"
for _ in $(seq "$PAIRS"); do one mc-proxy; one haproxy; done | tee "$D/res"
awk '
  function med(s,  a,n,i,j,x){n=split(s,a," "); for(i=1;i<=n;i++)for(j=i+1;j<=n;j++)if(a[j]+0<a[i]+0){x=a[i];a[i]=a[j];a[j]=x}; return (n%2)?a[(n+1)/2]:(a[n/2]+a[n/2+1])/2}
  $2=="usr" { k=$1; t[k]=t[k]" "$7; q[k]=q[k]" "$9; if (k=="mc-proxy") last=$7; else { pairs++; if (last+0 < $7+0) less++ } }
  END { printf "medians: mc-proxy %.2f us/req %.0f req/s; haproxy %.2f us/req %.0f req/s; CPU ratio %.2fx, req/s ratio %.2fx; mc-proxy lower in %d of %d pairs\n",
          med(t["mc-proxy"]), med(q["mc-proxy"]), med(t["haproxy"]), med(q["haproxy"]), med(t["mc-proxy"])/med(t["haproxy"]), med(q["mc-proxy"])/med(q["haproxy"]), less, pairs }' "$D/res"
