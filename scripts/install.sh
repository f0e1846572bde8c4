#!/usr/bin/env bash
# Install metafs for system use on Debian 12 (as root), or remove it.
#
#   scripts/install.sh               install (or upgrade) from this source tree
#   scripts/install.sh --uninstall   remove what install put in place
#   scripts/install.sh --root DIR    the same under DIR instead of / (a test prefix)
#   scripts/install.sh --no-apt      do not install missing Debian packages
#
# The venv is built on Debian's own /usr/bin/python3 ($PYTHON to choose another):
# not on whatever python3 comes first in root's PATH (a pyenv under /root would
# leave the venv unusable by other users, e.g. for non-root mounts).
#
# What goes where (DIR is empty for a system install):
#   DIR/opt/metafs/                       its own venv: metafs and its runtime
#                                         dependencies only (pip refuses Debian's
#                                         system Python: externally-managed-environment)
#   DIR/usr/local/bin/metafs              -> DIR/opt/metafs/bin/metafs
#   DIR/sbin/mount.fuse.metafs            -> DIR/opt/metafs/bin/mount.fuse.metafs
#                                         mount(8) runs /sbin/mount.<type> whatever its
#                                         PATH, so `mount -t fuse.metafs` and fstab lines
#                                         work from a minimal environment (metafs.mount_helper)
#   DIR/etc/systemd/system/metafs@.service  the template unit (README "Running as a service")
#   DIR/usr/local/share/man/man8/metafs.8 `man metafs` (and `man mount.fuse.metafs`)
#   DIR/etc/metafs/                       0700, for env and credentials files; created,
#                                         never removed (it holds your configuration)
#
# Debian packages needed: fuse3 at run time; python3-venv, gcc, pkg-config,
# libfuse3-dev and python3-dev to build pyfuse3 into the venv.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"

ROOT=""
UNINSTALL=0
APT=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --no-apt) APT=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
fi

VENV="$ROOT/opt/metafs"
BIN="$ROOT/usr/local/bin/metafs"
HELPER="$ROOT/sbin/mount.fuse.metafs"
UNIT="$ROOT/etc/systemd/system/metafs@.service"
MAN="$ROOT/usr/local/share/man/man8"
CONF="$ROOT/etc/metafs"

say() { echo "install.sh: $*" >&2; }

systemd_reload() {
  if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
}

if [ "$UNINSTALL" = 1 ]; then
  rm -f "$BIN" "$HELPER" "$UNIT" "$MAN/metafs.8" "$MAN/mount.fuse.metafs.8"
  rm -rf "$VENV"
  systemd_reload
  if [ -z "$ROOT" ] && command -v mandb >/dev/null; then mandb -q 2>/dev/null || true; fi
  say "removed metafs ($VENV, $BIN, $HELPER, $UNIT, the man pages); kept $CONF"
  exit 0
fi

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  say "run as root (or with --root DIR for a private prefix)"; exit 1
fi

if [ "$APT" = 1 ]; then
  missing=""
  for p in fuse3 python3-venv gcc pkg-config libfuse3-dev python3-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    say "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi

PYTHON="${PYTHON:-/usr/bin/python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$SRC"

mkdir -p "$(dirname "$BIN")" "$(dirname "$HELPER")" "$(dirname "$UNIT")" "$MAN"
ln -sfn "$VENV/bin/metafs" "$BIN"
ln -sfn "$VENV/bin/mount.fuse.metafs" "$HELPER"
sed "s|/usr/local/bin/metafs|$BIN|" "$SRC/systemd/metafs@.service" > "$UNIT.tmp"
chmod 644 "$UNIT.tmp"
mv "$UNIT.tmp" "$UNIT"
install -m 644 "$SRC/docs/metafs.8" "$MAN/metafs.8"
echo ".so man8/metafs.8" > "$MAN/mount.fuse.metafs.8"
install -d -m 700 "$CONF"
if [ -d /usr/share/doc ] && [ -z "$ROOT" ]; then
  install -d /usr/share/doc/metafs
  install -m 644 "$SRC/README.md" "$SRC/SEMANTICS.md" /usr/share/doc/metafs/
fi
systemd_reload
if [ -z "$ROOT" ] && command -v mandb >/dev/null; then mandb -q 2>/dev/null || true; fi
say "installed $("$BIN" --version) in $VENV: $BIN, $HELPER, $UNIT, $MAN/metafs.8"
