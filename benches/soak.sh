#!/usr/bin/env bash
# Soak (issue 6, "Soak"; not in CI): steward runs for SOAK_SECONDS at 1 s check intervals while
# its PostgreSQL and Redis are restarted every 30 s, and must neither grow nor leak nor crash.
#
#   bash benches/soak.sh                  # 10 minutes
#   SOAK_SECONDS=120 bash benches/soak.sh # a quick look
#
# - starts a throwaway PostgreSQL cluster of its own (initdb in a temp dir, as the `postgres`
#   user when run as root; a free port on 127.0.0.1, password auth over TCP for role `soak`,
#   which only steward uses) and a throwaway redis-server (free port, no persistence);
# - builds steward --release (or uses STEWARD_BIN) and runs it with postgres.interval and
#   redis.interval = 1s, timeouts 500ms, explicit pool maximums (SOAK_PG_POOL_MAX,
#   SOAK_REDIS_POOL_MAX), the write/read tests on, backup schedules off;
# - every SOAK_RESTART_EVERY seconds (default 30) restarts both servers: `pg_ctl restart -m fast`
#   and a SIGTERM + respawn of redis-server on the same port;
# - every 2 s samples steward's PostgreSQL connections (pg_stat_activity rows of role `soak`,
#   which only steward uses; application_name is "steward") and its Redis clients (CLIENT LIST
#   minus the redis-cli asking), keeping the maximum of each;
# - prints, right after start, after the first minute (the baseline) and at the end: steward's
#   RSS (VmRSS of /proc/PID/status, and its anonymous part RssAnon: heap, stacks, steward's own
#   pages), open fds (/proc/PID/fd), PostgreSQL connections, Redis
#   clients; then the pool maximums, the restarts done, whether the daemon is the same PID and
#   still answers `status`, its task restarts, and PASS/FAIL for:
#     anonymous RSS at the end within ±10 % of the 1-minute value (a leak grows this part; the
#       file-backed rest is program code read back from the executable as new paths run, the
#       restarts' error paths among them, bounded by the executable's size: steward hands its
#       start-up pages back, src/residency.rs),
#     open fds at the end <= the 1-minute value + SOAK_FD_SLACK (default 4),
#     PostgreSQL connections never above postgres.pool_max (max of all samples),
#     Redis clients never above redis.pool_max plus the cache tasks' own connections
#       (SOAK_REDIS_SLACK, default 4; printed, judged against the pool maximum + slack),
#     zero crashes (same PID, alive, answers `status`).
# Exits 0 when every check passes, 1 otherwise. Everything it starts is stopped and its temp dir
# removed on exit, also when interrupted.
#
# Environment (optional):
#   SOAK_SECONDS        total run time (default 600; at least 90, the baseline is taken at 60)
#   SOAK_RESTART_EVERY  seconds between server restarts (default 30)
#   SOAK_PG_POOL_MAX    postgres.pool_max (default 4)
#   SOAK_REDIS_POOL_MAX redis.pool_max (default 8)
#   SOAK_FD_SLACK       fds allowed above the 1-minute value (default 4)
#   SOAK_REDIS_SLACK    Redis clients allowed above redis.pool_max (default 4)
#   SOAK_TMPDIR         where the temp dir goes (default /tmp)
#   STEWARD_BIN         use this steward binary instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 077
BENCH_NAME=benches/soak.sh BENCH_DIE_CODE=2
# shellcheck source=benches/lib.sh
. benches/lib.sh

SOAK_SECONDS=${SOAK_SECONDS:-600}
RESTART_EVERY=${SOAK_RESTART_EVERY:-30}
PG_POOL_MAX=${SOAK_PG_POOL_MAX:-4}
REDIS_POOL_MAX=${SOAK_REDIS_POOL_MAX:-8}
FD_SLACK=${SOAK_FD_SLACK:-4}
REDIS_SLACK=${SOAK_REDIS_SLACK:-4}
BASELINE_AT=60

for v in SOAK_SECONDS RESTART_EVERY PG_POOL_MAX REDIS_POOL_MAX FD_SLACK REDIS_SLACK; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got ${!v:-empty})"
done
[ "$SOAK_SECONDS" -ge $((BASELINE_AT + 30)) ] || die "SOAK_SECONDS must be at least $((BASELINE_AT + 30)) (the baseline is taken after ${BASELINE_AT} s)"
[ "$RESTART_EVERY" -ge 5 ] || die "SOAK_RESTART_EVERY must be at least 5"
if [ "$PG_POOL_MAX" -lt 1 ] || [ "$REDIS_POOL_MAX" -lt 1 ]; then die "pool maximums must be at least 1"; fi

use_rustup_cargo
pg_tools
for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian packages redis-server, redis-tools)"
done
PSQL=$(pg_client psql) || die "psql not found"

bench_tmp steward-soak "${SOAK_TMPDIR:-/tmp}"
steward_binary

# --- throwaway PostgreSQL -------------------------------------------------------------------

pg_create --no-superuser-password <<EOF
max_connections = 40
fsync = off
full_page_writes = off
shared_buffers = 16MB
EOF
pg_start
# Superuser over the unix socket (trust): only for setup and for reading pg_stat_activity.
sql() { env -u PGPASSWORD -u PGSERVICE -u PGOPTIONS "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h "$pgdir" -p "$PG_PORT" -U postgres -d postgres "$@"; }
sql -c "CREATE ROLE soak LOGIN PASSWORD '$PG_PASSWORD'" -c "CREATE DATABASE soak OWNER soak"

# --- throwaway Redis ------------------------------------------------------------------------

start_redis "$tmp"

# --- steward --------------------------------------------------------------------------------

pick_port
METRICS_PORT=${ports[-1]}
mkdir -p "$tmp/steward"
cat >"$tmp/steward/steward.toml" <<EOF
[postgres]
url = "postgres://soak:$PG_PASSWORD@127.0.0.1:$PG_PORT/soak"
interval = "1s"
timeout = "500ms"
pool_max = $PG_POOL_MAX

[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
interval = "1s"
timeout = "500ms"
pool_max = $REDIS_POOL_MAX

$(steward_toml_local "$tmp/steward" "$METRICS_PORT" info)

$(steward_toml_no_schedules "$tmp/steward")
EOF
steward_env_init
stw() { steward_at "$tmp/steward/ctl.sock" "$@"; }
spawn_steward "$tmp/steward"
steward_pid=$SPAWNED_PID
t0=$SECONDS
wait_steward "$steward_pid" "$tmp/steward/ctl.sock" "$tmp/steward/steward.log" steward "exited at start"

# --- sampling -------------------------------------------------------------------------------

rss_kb() { status_kb "$steward_pid" VmRSS 2>/dev/null || echo 0; }
anon_kb() { status_kb "$steward_pid" RssAnon 2>/dev/null || echo 0; }
fds() { find "/proc/$steward_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# Connections of role soak (only steward uses it); empty while PostgreSQL restarts.
pg_conns() { sql -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'soak'" 2>/dev/null || true; }
pg_conns_app() { sql -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'steward'" 2>/dev/null || true; }
# Every client but the redis-cli asking (whose current command is CLIENT LIST).
redis_clients() {
    local list
    list=$(rcli client list 2>/dev/null) || return 0
    printf '%s\n' "$list" | grep -c '^id=' | awk -v self="$(printf '%s\n' "$list" | grep -cE 'cmd=client(\|list)?( |$)')" '{print $1 - self}'
}
snapshot() {
    printf '%-22s t=%4ds  RSS %6d kB (anonymous %6d kB)  fds %3d  pg connections %s (application_name=steward: %s)  redis clients %s\n' \
        "$1" "$((SECONDS - t0))" "$(rss_kb)" "$(anon_kb)" "$(fds)" "$(pg_conns || echo '?')" "$(pg_conns_app || echo '?')" "$(redis_clients || echo '?')"
}

say "soaking for ${SOAK_SECONDS} s: steward pid $steward_pid, restarts every ${RESTART_EVERY} s"
sleep 3
snapshot "start"
pg_max=0 redis_max=0 samples=0 pg_restarts=0 redis_restarts=0 restart_failures=0
next_restart=$((t0 + RESTART_EVERY))
base_rss='' base_anon='' base_fds=''
while [ $((SECONDS - t0)) -lt "$SOAK_SECONDS" ]; do
    kill -0 "$steward_pid" 2>/dev/null || break
    n=$(pg_conns)
    if [[ $n =~ ^[0-9]+$ ]]; then
        [ "$n" -gt "$pg_max" ] && pg_max=$n
        samples=$((samples + 1))
    fi
    n=$(redis_clients)
    if [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt "$redis_max" ]; then redis_max=$n; fi
    if [ -z "$base_rss" ] && [ $((SECONDS - t0)) -ge "$BASELINE_AT" ]; then
        base_rss=$(rss_kb) base_anon=$(anon_kb) base_fds=$(fds)
        snapshot "after 1 minute"
    fi
    if [ "$SECONDS" -ge "$next_restart" ]; then
        if pg_ctl -m fast restart; then pg_restarts=$((pg_restarts + 1)); else restart_failures=$((restart_failures + 1)); fi
        stop_redis
        start_redis "$tmp"
        redis_restarts=$((redis_restarts + 1))
        next_restart=$((next_restart + RESTART_EVERY))
    fi
    sleep 2
done

# --- the end --------------------------------------------------------------------------------

# Let a restart that just happened settle, so the end figures are of a steady state.
sleep 3
alive=no same_pid=no answers=no
if kill -0 "$steward_pid" 2>/dev/null; then
    alive=yes
    [ "$(awk '/^Pid:/ {print $2}' "/proc/$steward_pid/status")" = "$steward_pid" ] && same_pid=yes
    stw status >/dev/null 2>&1 && answers=yes
fi
snapshot "end"
end_rss=$(rss_kb) end_anon=$(anon_kb) end_fds=$(fds)
task_restarts=$(curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null |
    awk '/^steward_task_restarts_total/ {s += $NF} END {print s + 0}' || echo '?')

echo
echo "steward soak: ${SOAK_SECONDS} s, checks every 1 s, PostgreSQL and Redis restarted every ${RESTART_EVERY} s"
echo "  $("$STEWARD_BIN" --version 2>&1 | head -n 1); $("$PGBIN/postgres" --version); $(redis-server --version | awk '{print $1, $2, $3}')"
echo "  pool maximums:          postgres.pool_max = $PG_POOL_MAX, redis.pool_max = $REDIS_POOL_MAX"
echo "  restarts done:          PostgreSQL $pg_restarts (failed: $restart_failures), Redis $redis_restarts"
echo "  steward:                pid $steward_pid alive=$alive same-pid=$same_pid answers-status=$answers task-restarts=$task_restarts"
echo "  RSS:                    1 min ${base_rss:-?} kB, end $end_rss kB"
echo "  anonymous RSS:          1 min ${base_anon:-?} kB, end $end_anon kB"
echo "  open fds:               1 min ${base_fds:-?}, end $end_fds"
echo "  pg connections (max):   $pg_max over $samples samples"
echo "  redis clients (max):    $redis_max"

fail=0
verdict() { # NAME OK(0/1) DETAIL
    if [ "$2" -eq 1 ]; then echo "  PASS  $1 ($3)"; else echo "  FAIL  $1 ($3)"; fail=1; fi
}
ok=0
[ "$alive" = yes ] && [ "$same_pid" = yes ] && [ "$answers" = yes ] && ok=1
verdict "zero crashes" "$ok" "same pid, alive, answers status"
ok=0
if [ -n "$base_anon" ] && [ "$base_anon" -gt 0 ]; then
    lo=$((base_anon * 90 / 100)) hi=$((base_anon * 110 / 100))
    [ "$end_anon" -ge "$lo" ] && [ "$end_anon" -le "$hi" ] && ok=1
    pct=$(awk -v a="$end_anon" -v b="$base_anon" 'BEGIN {printf "%+.1f%%", (a - b) * 100 / b}')
    verdict "anonymous RSS within ±10% of the 1-minute value" "$ok" "$base_anon -> $end_anon kB, $pct; all RSS $base_rss -> $end_rss kB"
else
    verdict "anonymous RSS within ±10% of the 1-minute value" 0 "no 1-minute value"
fi
ok=0
[ -n "$base_fds" ] && [ "$end_fds" -le $((base_fds + FD_SLACK)) ] && ok=1
verdict "open fds flat" "$ok" "${base_fds:-?} -> $end_fds, slack $FD_SLACK"
ok=0
[ "$samples" -gt 0 ] && [ "$pg_max" -le "$PG_POOL_MAX" ] && ok=1
verdict "pg connections never above postgres.pool_max" "$ok" "max $pg_max <= $PG_POOL_MAX"
ok=0
[ "$redis_max" -le $((REDIS_POOL_MAX + REDIS_SLACK)) ] && ok=1
verdict "redis clients within redis.pool_max + $REDIS_SLACK" "$ok" "max $redis_max <= $((REDIS_POOL_MAX + REDIS_SLACK))"
if [ "$fail" -ne 0 ]; then
    echo "  steward log (last 20 lines):"
    tail -n 20 "$tmp/steward/steward.log" | sed 's/^/    /'
fi
exit "$fail"
