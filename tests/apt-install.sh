#!/usr/bin/env bash
# Installs Debian packages without starting their services: `bash tests/apt-install.sh PKG…`.
# Used by tests/run.sh and benches/compare.sh. As root, or through sudo (no password prompt
# without a terminal, so CI fails instead of hanging). Exits non-zero naming what failed.
set -uo pipefail
[ "$#" -gt 0 ] || exit 0
die() { printf 'apt-install: %s\n' "$*" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get here; install them by hand (Debian package names)"
if [ "$(id -u)" -eq 0 ]; then
    as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
    if [ -t 0 ]; then as_root=(sudo env); else as_root=(sudo -n env); fi
else
    die "missing $*; run as root or install sudo"
fi
# Keep package scripts from starting services: a temporary policy-rc.d, unless one exists.
policy=/usr/sbin/policy-rc.d
own_policy=0
if ! "${as_root[@]}" test -e "$policy"; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null &&
        "${as_root[@]}" chmod 0755 "$policy" && own_policy=1
fi
apt_rc=0
"${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get -q update || apt_rc=$?
if [ "$apt_rc" -eq 0 ]; then
    "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 install "$@" || apt_rc=$?
fi
if [ "$own_policy" -eq 1 ]; then "${as_root[@]}" rm -f "$policy"; fi
[ "$apt_rc" -eq 0 ] || die "apt-get failed (exit $apt_rc) installing $*"
