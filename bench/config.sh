# shellcheck shell=bash
# Sourced by bench/mc-proxy.sh and bench/scaling.sh: the one mc-proxy config
# the benchmarks use, with the harness's routes (its certificates under $STATE).
#
#   write_config FILE L4_PORT L7_PORT STATE [EXTRA_PROXY_LINE...]
write_config() {
  local file=$1 l4=$2 l7=$3 state=$4
  shift 4
  {
    cat <<TOML
[database]
path = "mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:${l4}"
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:9443"
  [[listeners.routes]]
  hostname = "b.test"
  backend = "127.0.0.1:9444"

[[listeners]]
addr = "127.0.0.1:${l7}"
  [[listeners.routes]]
  hostname = "a.test"
  backend = "127.0.0.1:9080"
  mode = "l7"
  backend_protocol = "h2"
  tls_cert = "$state/certs/a.test.fullchain.crt"
  tls_key = "$state/certs/a.test.key"
  [[listeners.routes]]
  hostname = "b.test"
  backend = "127.0.0.1:9081"
  mode = "l7"
  backend_protocol = "http1"
  tls_cert = "$state/certs/b.test.fullchain.crt"
  tls_key = "$state/certs/b.test.key"

[log]
level = "warn"

[proxy]
l7_min_tls = "1.2"
shutdown_timeout = "2s"
TOML
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
  } > "$file"
}
