#!/usr/bin/env bash
# The whole test suite: `bash tests/run.sh` (also what CI runs, through .ci/run).
#
# 1. Installs what the tests need when it is missing (Debian/Ubuntu, as root or through sudo):
#    promtool and prometheus (package prometheus), prometheus-alertmanager and amtool
#    (package prometheus-alertmanager), PostgreSQL server binaries (postgresql), redis-server, age, zstd, gzip, systemd-analyze,
#    openssl, curl, setpriv and mount; and moto_server (PyPI's moto[server], the S3-compatible
#    store) into a Python virtual environment in ~/.cache/steward-tests/moto-venv (python3 and
#    python3-venv from Debian when missing), which is then put on PATH for the tests.
#    `apt-get update` runs once, and only when something has to be installed.
# 2. cargo fmt --check
# 3. cargo clippy --all-targets -- -D warnings
# 4. the tests: cargo nextest run --no-fail-fast (plus the doctests) when cargo-nextest is
#    installed, else cargo test --no-fail-fast.
# Every step runs even if an earlier one failed; the exit status is non-zero if any failed.
#
# Packages installed here do not get their services started (the tests start their own
# throwaway PostgreSQL and Redis servers on free ports).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

export DEBIAN_FRONTEND=noninteractive
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'tests/run.sh: %s\n' "$*" >&2; exit 1; }

# --- 1. system packages -------------------------------------------------------------------

have_pg_server() {
    local bindir
    bindir=$(pg_config --bindir 2>/dev/null) || bindir=""
    if [ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ]; then
        return 0
    fi
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Real peers of the Prometheus end-to-end test: prometheus (same package as promtool) scrapes
# steward and alerts to Alertmanager (prometheus-alertmanager, which also ships amtool).
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
have_pg_server || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Real peers of the backup tests: the age CLI decrypts steward's encrypted backups, the
# gzip/zstd CLIs decompress them.
command -v age >/dev/null 2>&1 || missing+=(age)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v gunzip >/dev/null 2>&1 || missing+=(gzip)
# The unit-file test runs systemd-analyze verify.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# The HTTP security tests make certificates with openssl and scrape over TLS with curl; the
# access tests run clients as another user with setpriv (util-linux) and the full-disk tests
# mount a tmpfs (mount).
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v mount >/dev/null 2>&1 || missing+=(mount)
# The off-site backup tests store to moto_server (PyPI's moto[server]), an S3-compatible server
# each test starts on a free port. Debian does not package it, and pip may not install into
# Debian's own Python (PEP 668), so it gets a virtual environment of its own, kept between runs;
# that needs python3 (and python3-venv, added below if `python3 -m venv` fails without it).
moto_venv="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/steward-tests/moto-venv"
if ! command -v moto_server >/dev/null 2>&1 && [ -x "$moto_venv/bin/moto_server" ]; then
    export PATH="$moto_venv/bin:$PATH"
fi
if ! command -v moto_server >/dev/null 2>&1; then
    command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing missing packages: ${missing[*]}"
    bash tests/apt-install.sh "${missing[@]}" || die "could not install ${missing[*]}"
    command -v promtool >/dev/null 2>&1 || die "promtool still missing after installing prometheus"
    command -v prometheus-alertmanager >/dev/null 2>&1 || die "prometheus-alertmanager still missing"
    have_pg_server || die "PostgreSQL server binaries (initdb, pg_ctl) still missing"
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing"
fi

if ! command -v moto_server >/dev/null 2>&1; then
    say "installing moto[server] into $moto_venv"
    # --clear: start over from what an interrupted install left.
    if ! python3 -m venv --clear "$moto_venv"; then
        # Debian's python3 makes environments with pip only with python3-venv installed.
        bash tests/apt-install.sh python3-venv || die "could not install python3-venv"
        python3 -m venv --clear "$moto_venv" || die "python3 -m venv $moto_venv failed"
    fi
    "$moto_venv/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]' ||
        die "pip install 'moto[server]' into $moto_venv failed"
    # The cargo steps below (and so the tests) find it on PATH.
    export PATH="$moto_venv/bin:$PATH"
    command -v moto_server >/dev/null 2>&1 || die "moto_server still missing after installing moto[server]"
fi

# --- 2-4. cargo -------------------------------------------------------------------------------

command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (https://rustup.rs)"
for component in rustfmt clippy; do
    sub=${component/rustfmt/fmt}
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 || die "cargo $sub missing and no rustup to add $component"
        say "adding rust component $component"
        rustup component add "$component" || die "rustup component add $component failed"
    fi
done

failed=()
step() {
    local name=$1
    shift
    say "$*"
    if "$@"; then
        return 0
    fi
    failed+=("$name")
}

step fmt cargo fmt --all --check
step clippy cargo clippy --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests; they go first so the runner's summary closes the output.
    step doctests cargo test --doc
    step tests cargo nextest run --no-fail-fast
else
    step tests cargo test --no-fail-fast
fi

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\ntests/run.sh: FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
printf '\ntests/run.sh: all passed\n' >&2
