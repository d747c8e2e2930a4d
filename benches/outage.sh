#!/usr/bin/env bash
# Outage detection (issue 16): how long after a server dies steward's /metrics says so, with the
# shipped check settings (interval 30s, timeout 5s), and how long `steward check` takes against
# a stopped server.
#
#   bash benches/outage.sh                        # 3 rounds
#   ROUNDS=1 STEWARD_BIN=target/debug/steward bash benches/outage.sh
#
# Each round, for Redis and then for PostgreSQL: waits for `steward_up{service}` 1, then for a
# scheduled check to finish (steward_last_check_timestamp_seconds moves), and at that moment,
# the worst for detection by schedule alone, kills the server (`kill -9` of redis-server,
# `pg_ctl stop -m immediate`); polls /metrics every 50 ms until `steward_up{service}` is 0 and
# prints the seconds that took; then times `steward check SERVICE` against the stopped server;
# then starts the server again and waits for `steward_up` 1. Prints one line per measurement
# and the maximum of each at the end.
#
# Environment (optional): ROUNDS (default 3), INTERVAL (default 30s), TIMEOUT (default 5s),
# STEWARD_BIN (use this binary instead of a release build), OUTAGE_TMPDIR (default /tmp).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 077
BENCH_NAME=benches/outage.sh BENCH_DIE_CODE=2
# shellcheck source=benches/lib.sh
. benches/lib.sh

ROUNDS=${ROUNDS:-3}
INTERVAL=${INTERVAL:-30s}
TIMEOUT=${TIMEOUT:-5s}
need_positive ROUNDS "$ROUNDS"

use_rustup_cargo
pg_tools
command -v redis-server >/dev/null 2>&1 || die "redis-server not found (Debian package redis-server)"
bench_tmp steward-outage "${OUTAGE_TMPDIR:-/tmp}"
steward_binary
steward_env_init

pg_create --superuser-password </dev/null
pg_start
mkdir -p "$tmp/redis"
start_redis "$tmp/redis"

pick_port
METRICS_PORT=${ports[-1]}
dir=$tmp/steward
mkdir -p "$dir"
cat >"$dir/steward.toml" <<EOF
[postgres]
url = "postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
interval = "$INTERVAL"
timeout = "$TIMEOUT"

[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
interval = "$INTERVAL"
timeout = "$TIMEOUT"

$(steward_toml_local "$dir" "$METRICS_PORT" info)

$(steward_toml_no_schedules "$dir")
EOF
spawn_steward "$dir"
wait_steward "$SPAWNED_PID" "$dir/ctl.sock" "$dir/steward.log"

# metric NAME SERVICE: the sample's value, empty when absent or /metrics does not answer.
metric() {
    curl -s --max-time 2 "http://127.0.0.1:$METRICS_PORT/metrics" |
        awk -v n="$1{service=\"$2\"}" '$1 == n { print $2 }'
}
# wait_metric NAME SERVICE VALUE SECONDS: polls every 50 ms; dies when it is not reached in time.
wait_metric() {
    local deadline=$((SECONDS + $4))
    until [ "$(metric "$1" "$2")" = "$3" ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "$1{service=\"$2\"} did not become $3 within $4 s"
        sleep 0.05
    done
}
# after_a_check SERVICE: returns right after a scheduled check of SERVICE has finished.
after_a_check() {
    local before
    before=$(metric steward_last_check_timestamp_seconds "$1")
    wait_metric steward_up "$1" 1 120
    until [ "$(metric steward_last_check_timestamp_seconds "$1")" != "$before" ]; do sleep 0.05; done
}

kill_redis() { kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; }
revive_redis() { start_redis "$tmp/redis"; }
kill_postgres() { pg_ctl stop -m immediate; }
revive_postgres() { pg_ctl start || die "pg_ctl start failed"; }

max_detect=
max_check=
for round in $(seq 1 "$ROUNDS"); do
    for svc in redis postgres; do
        after_a_check "$svc"
        t0=$(now)
        "kill_$svc"
        wait_metric steward_up "$svc" 0 $((2 * ${INTERVAL%s} + 30))
        detect=$(elapsed "$t0" "$(now)")
        c0=$(now)
        steward_at "$dir/ctl.sock" check "$svc" >/dev/null 2>&1 || true
        check=$(elapsed "$c0" "$(now)")
        printf 'round %s %-8s steward_up 0 after %6.3f s   steward check %s took %6.3f s\n' \
            "$round" "$svc" "$detect" "$svc" "$check"
        max_detect=$(max "$max_detect" "$detect")
        max_check=$(max "$max_check" "$check")
        "revive_$svc"
        wait_metric steward_up "$svc" 1 $((2 * ${INTERVAL%s} + 30))
    done
done
printf 'interval %s timeout %s: detection max %s s, steward check max %s s\n' \
    "$INTERVAL" "$TIMEOUT" "$max_detect" "$max_check"
