#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for metafs: system packages, a venv in
# .venv, and the package with its test and demo extras (the test extra brings
# the checkers of the dev extra: ruff, mypy and stubs).  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# ceph radosgw ceph-common: the Ceph RGW of the tests that need a server enforcing what moto
# does not (SSE-C); metafs/devrgw.py starts it.  rsync: the copy-out tests (rsync -aX).
# systemd: tests/test_install.py runs its fstab generator (present on any Debian machine, not in
# every container image); man-db: `man metafs` after scripts/install.sh.
PKGS="fuse3 libfuse3-dev attr pkg-config gcc python3-dev python3-venv ceph radosgw ceph-common systemd man-db rsync"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
# An editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set no run caches
# what it compiles: every start would compile metafs again (~60 ms of a mount's start-up).
# scripts/install.sh needs no such step: pip compiles what it installs.
.venv/bin/python -m compileall -q metafs >/dev/null
echo "setup: ready (.venv)" >&2
