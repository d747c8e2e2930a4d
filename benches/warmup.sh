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
umask 077
BENCH_NAME=benches/warmup.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

ROWS=${BENCH_WARMUP_ROWS:-1000000}
need_positive BENCH_WARMUP_ROWS "$ROWS"
TARGET=100000

use_rustup_cargo
pg_tools
ensure_tools jq
command -v redis-server >/dev/null 2>&1 || die "redis-server not found; install redis-server"
PSQL=$(pg_client psql) || die "psql not found"

bench_tmp steward-bench-warmup "${BENCH_TMPDIR:-/tmp}"
steward_binary

# --- throwaway PostgreSQL and Redis ---------------------------------------------------------

pg_create --superuser-password <<EOF
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
autovacuum = off
EOF
pg_start
pg_client_env
sql() { "${pg[@]}" PGDATABASE=postgres "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

REDIS_PASSWORD=$(random_password)
mkdir -p "$tmp/redis"
start_redis "$tmp/redis"

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

$(steward_toml_local "$dir" "${ports[-1]}" warn)

$(steward_toml_no_schedules "$dir")

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
steward_env_init
spawn_steward "$dir"
steward_pid=$SPAWNED_PID
ctl() { steward_at "$dir/ctl.sock" "$@"; }
wait_steward "$steward_pid" "$dir/ctl.sock" "$dir/steward.log"

# --- the warm-up ----------------------------------------------------------------------------

reset_hwm "$steward_pid" || say "warning: cannot reset VmHWM; the peak since start is reported"
rss_before=$(status_kb "$steward_pid" VmRSS)
# CPU seconds (user + system) of a process, from /proc/PID/stat (fields 14 and 15, in ticks).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
cpu_steward=$(cpu_of "$steward_pid") cpu_redis=$(cpu_of "$redis_pid")
say "steward cache warm-up bench ($ROWS rows)"
start_ns=$(date +%s%N)
reply=$(ctl --json cache warm-up bench) || { printf '%s\n' "$reply" >&2; die "warm-up failed"; }
wall=$(awk -v s="$start_ns" -v e="$(date +%s%N)" 'BEGIN { printf "%.2f", (e - s) / 1e9 }')
hwm=$(status_kb "$steward_pid" VmHWM)
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
