#!/bin/sh
# Install mc-proxy on a systemd host (idempotent: run it again to upgrade).
#
# Usage: deploy/scripts/install.sh          (as root, from a checkout with dist/ built)
# Env:   BINARY=path      mc-proxy binary (default: dist/mc-proxy)
#        DESTDIR=dir      install under a scratch root (packaging, tests): no user
#                         is created, nothing is chowned, systemd is not touched
#
# Installs:
#   /usr/local/bin/mc-proxy                                      0755
#   /usr/local/bin/mcproxyctl -> mc-proxy                        symlink: the admin
#                         client is the same binary started under that name
#                         (also reachable as `mc-proxy ctl`); an old separate
#                         mcproxyctl binary is replaced by the link
#   /usr/local/lib/mc-proxy/backup.sh                            0755
#   /etc/systemd/system/mc-proxy.service, mc-proxy-backup.{service,timer}  0644
#   /usr/local/share/doc/mc-proxy/RUNBOOK.md                     0644
#   /srv/mc-proxy, /srv/mc-proxy/backups                         0700 mc-proxy:mc-proxy
#   /srv/mc-proxy/mc-proxy.toml  from mc-proxy.toml.example, ONLY if absent
# Never overwrites an existing config and never touches the database.
# Does not enable or start anything: it prints the commands for that.
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd)
DESTDIR=${DESTDIR:-}
BINARY=${BINARY:-$REPO/dist/mc-proxy}
USER_NAME=mc-proxy
DATA=/srv/mc-proxy

die() { echo "install.sh: $*" >&2; exit 1; }
note() { echo "install.sh: $*"; }

[ -x "$BINARY" ] || die "$BINARY not found: build it with 'npm run build' or pass BINARY=path"
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then die "run as root (or set DESTDIR)"; fi

# put SRC DEST MODE: copy to a temp file beside DEST, then rename, so a running
# binary is replaced atomically (never "text file busy", never half-written).
put() {
  mkdir -p "$(dirname "$2")"
  tmp="$2.tmp.$$"
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
}

# System user and group (real installs only: a DESTDIR is not the target's user database).
if [ -z "$DESTDIR" ]; then
  if ! getent group "$USER_NAME" >/dev/null; then
    groupadd --system "$USER_NAME"
    note "created group $USER_NAME"
  fi
  if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --system --gid "$USER_NAME" --home-dir "$DATA" --no-create-home \
      --shell /usr/sbin/nologin --comment "mc-proxy" "$USER_NAME"
    note "created user $USER_NAME"
  fi
else
  note "DESTDIR=$DESTDIR: not creating user $USER_NAME or changing ownership"
fi

# link NAME DEST: make DEST a symlink to NAME (relative, same directory), replacing
# whatever is there (an older separate binary included) in one rename.
link() {
  tmp="$2.tmp.$$"
  rm -f "$tmp"
  ln -s "$1" "$tmp"
  mv -fT "$tmp" "$2"
}

put "$BINARY" "$DESTDIR/usr/local/bin/mc-proxy" 0755
link mc-proxy "$DESTDIR/usr/local/bin/mcproxyctl"
put "$REPO/deploy/scripts/backup.sh" "$DESTDIR/usr/local/lib/mc-proxy/backup.sh" 0755
for unit in mc-proxy.service mc-proxy-backup.service mc-proxy-backup.timer; do
  put "$REPO/deploy/systemd/$unit" "$DESTDIR/etc/systemd/system/$unit" 0644
done
if [ -f "$REPO/RUNBOOK.md" ]; then
  put "$REPO/RUNBOOK.md" "$DESTDIR/usr/local/share/doc/mc-proxy/RUNBOOK.md" 0644
fi

# Data directory: private to the service user.
mkdir -p "$DESTDIR$DATA/backups"
chmod 0700 "$DESTDIR$DATA" "$DESTDIR$DATA/backups"
if [ -z "$DESTDIR" ]; then
  chown "$USER_NAME:$USER_NAME" "$DATA" "$DATA/backups"
fi

# Example config only when there is none: after first start the database is the
# source of truth, and an operator's config must never be replaced.
config="$DESTDIR$DATA/mc-proxy.toml"
if [ -e "$config" ]; then
  note "kept existing $DATA/mc-proxy.toml"
elif [ -f "$REPO/mc-proxy.toml.example" ]; then
  put "$REPO/mc-proxy.toml.example" "$config" 0600
  if [ -z "$DESTDIR" ]; then chown "$USER_NAME:$USER_NAME" "$config"; fi
  note "installed example config $DATA/mc-proxy.toml: edit it before the first start"
else
  note "no mc-proxy.toml.example in $REPO: write $DATA/mc-proxy.toml yourself"
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  note "next: systemctl enable --now mc-proxy.service mc-proxy-backup.timer"
  note "after an upgrade: systemctl restart mc-proxy.service"
fi
note "done"
