#!/usr/bin/env bash
# Benchmark: `steward cache warm-up` of a 1,000,000-row table (issue 5, "Speed": at least
# 100,000 keys/s), on this machine. Run through `bash benches/compare.sh` (last part) or alone:
#
#   bash benches/warmup.sh
#
# - starts a throwaway PostgreSQL cluster (initdb in a temp dir, as the `postgres` user when run
#   as root, a free port on 127.0.0.1, fsync off) and a throwaway redis-server (free port,
#   password, no persistence); never touches the machine's own servers;
# - fills table `warm` with BENCH_WARMUP_ROWS rows (default 1,000,000) of (bigint id, text JSON):
#   nine in ten about 90 bytes, one in ten about 1.4 kB (above the 1024-byte threshold, so
#   gzip-compressed), as an application's cache rows might be;
# - starts steward with one namespace (`bench`, codec json, compress, ttl 30m, pipeline_batch
#   100) whose warm-up query is `SELECT id, doc FROM warm`;
# - runs `steward --json cache warm-up bench` once and reads the daemon's own figures (rows,
#   keys, compressed, bytes, duration); checks Redis holds every key;
# - reads steward's peak RSS during the warm-up (VmHWM, reset before through clear_refs), which
#   shows the rows are streamed, not loaded at once;
# - prints keys/s against the target of 100,000 keys/s with PASS/MISS.
# Installs jq through tests/apt-install.sh when missing. Everything it starts is stopped and its
# temp dir removed on exit, also when interrupted. About a minute on 2 cores once built.
#
# Environment (optional):
#   BENCH_WARMUP_ROWS  rows in the table (default 1000000)
#   BENCH_TMPDIR       where the temp dir goes (default /tmp; needs about 1 GB free)
#   STEWARD_BIN        use this steward binary instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
umask 077

ROWS=${BENCH_WARMUP_ROWS:-1000000}
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || { echo "benches/warmup.sh: BENCH_WARMUP_ROWS must be a positive integer" >&2; exit 2; }
TARGET=100000

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'benches/warmup.sh: %s\n' "$*" >&2; exit 1; }

pg_bindir() {
    local d
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then printf '%s\n' "$d"; return; fi
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/initdb" ] && { printf '%s\n' "$d"; return; }
    die "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin); install postgresql"
}
PGBIN=$(pg_bindir)
command -v jq >/dev/null 2>&1 || bash tests/apt-install.sh jq || die "could not install jq"
command -v redis-server >/dev/null 2>&1 || die "redis-server not found; install redis-server"
PSQL=$PGBIN/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "psql not found"

if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run the server as"
    as_pg=(runuser -u postgres --)
else
    as_pg=()
fi

# shellcheck source=benches/ports.sh
. benches/ports.sh

tmp=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/steward-bench-warmup.XXXXXX")
pgdir=$tmp/pg
pids=()
pg_started=0
cleanup() {
    local pid alive
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [ "$pg_started" -eq 1 ]; then
        "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${STEWARD_BIN:-}" ]; then
    [ -x "$STEWARD_BIN" ] || die "STEWARD_BIN=$STEWARD_BIN is not an executable"
else
    say "building steward (release)"
    cargo build --release --quiet --bin steward
    STEWARD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/steward"
    [ -x "$STEWARD_BIN" ] || die "built steward not found under ${CARGO_TARGET_DIR:-target}/release"
fi

# --- throwaway PostgreSQL and Redis ---------------------------------------------------------

pick_port
PG_PORT=${ports[-1]}
PG_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
mkdir -m 0700 "$pgdir"
printf '%s\n' "$PG_PASSWORD" >"$pgdir/pwfile"
if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres: "$pgdir"
    chmod 0711 "$tmp"
fi
say "initdb of a throwaway cluster (port $PG_PORT)"
"${as_pg[@]}" "$PGBIN/initdb" -D "$pgdir/data" -U postgres -A trust --auth-host=scram-sha-256 \
    --pwfile="$pgdir/pwfile" -E UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 ||
    { cat "$tmp/initdb.log" >&2; die "initdb failed"; }
rm -f "$pgdir/pwfile"
"${as_pg[@]}" tee -a "$pgdir/data/postgresql.conf" >/dev/null <<EOF

# benches/warmup.sh: a throwaway cluster
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pgdir'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
autovacuum = off
EOF
pg_started=1
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 start >/dev/null ||
    { tail -n 30 "$pgdir/postgres.log" >&2; die "pg_ctl start failed"; }
sql() {
    env -u PGSERVICE -u PGPASSFILE -u PGOPTIONS PGHOST=127.0.0.1 "PGPORT=$PG_PORT" PGUSER=postgres \
        "PGPASSWORD=$PG_PASSWORD" PGDATABASE=postgres "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

pick_port
REDIS_PORT=${ports[-1]}
REDIS_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
mkdir -p "$tmp/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --requirepass "$REDIS_PASSWORD" --dir "$tmp/redis" >"$tmp/redis.log" 2>&1 &
pids+=($!)
rcli() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$REDIS_PORT" "$@"; }
for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
rcli ping >/dev/null 2>&1 || { cat "$tmp/redis.log" >&2; die "redis-server did not start"; }

say "filling table warm with $ROWS rows"
sql <<EOF
CREATE TABLE warm (id bigint PRIMARY KEY, doc text NOT NULL);
INSERT INTO warm
SELECT g, json_build_object(
           'user_id', g % 5000,
           'session', md5(g::text),
           'active', g % 3 = 0,
           'history', CASE WHEN g % 10 = 0
                           THEN (SELECT json_agg(md5((g * 100 + k)::text)) FROM generate_series(1, 38) k)
                      END)::text
FROM generate_series(1, $ROWS) AS g;
VACUUM ANALYZE warm;
EOF
read -r avg big < <(sql -F ' ' -c "SELECT round(avg(length(doc))), count(*) FILTER (WHERE length(doc) > 1024) FROM warm")
say "table warm: average value $avg bytes, $big values above 1024 bytes"

# --- steward --------------------------------------------------------------------------------

dir=$tmp/steward
mkdir -p "$dir"
pick_port
cat >"$dir/steward.toml" <<EOF
[postgres]
url = "postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
interval = "10s"
write_read_test = false

[redis]
url = "redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"
interval = "10s"
write_read_test = false

[metrics]
listen = "127.0.0.1:${ports[-1]}"

[control]
socket = "$dir/ctl.sock"

[state]
dir = "$dir/state"

[log]
level = "warn"

[backup]
dir = "$dir/backups"

[backup.schedule]
daily = ""
weekly = ""

[cache]
compression_threshold = 1024
pipeline_batch = 100

[[cache.namespace]]
name = "bench"
prefix = "cache:bench:"
ttl = "30m"
codec = "json"
compress = true

[cache.namespace.warmup]
query = "SELECT id, doc FROM warm"
EOF
steward_env=(env -u DATABASE_URL -u REDIS_URL -u REDIS_MAX_CONNECTIONS -u REDIS_SOCKET_TIMEOUT
    -u STEWARD_CONFIG -u CACHE_COMPRESSION_THRESHOLD -u RUST_LOG -u NOTIFY_SOCKET -u WATCHDOG_USEC)
while read -r var; do
    [[ $var == STEWARD_* ]] && steward_env+=(-u "$var")
done < <(compgen -e)
(cd "$dir" && exec "${steward_env[@]}" "$STEWARD_BIN" run --config "$dir/steward.toml") \
    >"$dir/steward.log" 2>&1 &
steward_pid=$!
pids+=("$steward_pid")
ctl() { "${steward_env[@]}" "$STEWARD_BIN" --socket "$dir/ctl.sock" "$@"; }
for _ in $(seq 1 300); do ctl --json status >/dev/null 2>&1 && break; sleep 0.1; done
ctl --json status >/dev/null 2>&1 || { tail -n 20 "$dir/steward.log" >&2; die "steward did not answer on its control socket"; }

# --- the warm-up ----------------------------------------------------------------------------

echo 5 >"/proc/$steward_pid/clear_refs" 2>/dev/null || say "warning: cannot reset VmHWM; the peak since start is reported"
rss_before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$steward_pid/status")
# CPU seconds (user + system) of a process, from /proc/PID/stat (fields 14 and 15, in ticks).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
redis_pid=${pids[0]}
cpu_steward=$(cpu_of "$steward_pid") cpu_redis=$(cpu_of "$redis_pid")
say "steward cache warm-up bench ($ROWS rows)"
start_ns=$(date +%s%N)
reply=$(ctl --json cache warm-up bench) || { printf '%s\n' "$reply" >&2; die "warm-up failed"; }
wall=$(awk -v s="$start_ns" -v e="$(date +%s%N)" 'BEGIN { printf "%.2f", (e - s) / 1e9 }')
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$steward_pid/status")
cpu_steward=$(awk -v a="$cpu_steward" -v b="$(cpu_of "$steward_pid")" 'BEGIN { printf "%.2f", b - a }')
cpu_redis=$(awk -v a="$cpu_redis" -v b="$(cpu_of "$redis_pid")" 'BEGIN { printf "%.2f", b - a }')
r=$(jq -c '.data.namespaces[0]' <<<"$reply")
keys=$(jq -r .keys_written <<<"$r")
secs=$(jq -r .duration_seconds <<<"$r")
dbsize=$(rcli dbsize)
[ "$keys" -eq "$ROWS" ] || die "wrote $keys keys of $ROWS rows: $r"
[ "$dbsize" -ge "$ROWS" ] || die "Redis holds $dbsize keys, expected $ROWS"

rate=$(awk -v k="$keys" -v s="$secs" 'BEGIN { printf "%.0f", k / s }')
verdict=$(awk -v r="$rate" -v t="$TARGET" 'BEGIN { print (r >= t) ? "PASS" : "MISS" }')
echo
echo "cache warm-up of $ROWS rows (avg $avg bytes, $big above the 1024-byte threshold, gzip-compressed)"
printf '  %-28s %s\n' "rows / keys / compressed" "$(jq -r '"\(.rows_read) / \(.keys_written) / \(.compressed)"' <<<"$r")"
printf '  %-28s %s\n' "bytes before / after" "$(jq -r '"\(.bytes_before) / \(.bytes_after)"' <<<"$r")"
printf '  %-28s %.2f s (client wall time %s s)\n' "duration (daemon)" "$secs" "$wall"
printf '  %-28s %s kB (RSS before: %s kB)\n' "steward peak RSS (VmHWM)" "$hwm" "$rss_before"
printf '  %-28s steward %s s, redis-server %s s (2 cores shared with PostgreSQL)\n' "CPU time" "$cpu_steward" "$cpu_redis"
printf '  %-28s %s keys/s   target >= %s keys/s   %s\n' "speed" "$rate" "$TARGET" "$verdict"
