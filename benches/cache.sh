#!/usr/bin/env bash
# Benchmark: `steward cache clear` against the redis-cli pipeline it replaces (issue 5, "Speed"),
# on this machine, in one run. Run through `bash benches/compare.sh` (after the /metrics part,
# before the backups) or alone:
#
#   bash benches/cache.sh
#
# - starts a throwaway redis-server of its own (free port on 127.0.0.1, no persistence) and a
#   steward daemon pointed at it, with the `analytics` namespace (`cache:analytics:`) and the
#   default pipeline_batch (100); the machine's own Redis is not touched;
# - in BENCH_CACHE_RUNS interleaved rounds (best kept), loads 1,000,000 keys
#   `cache:analytics:<n>` with 64-byte values (`redis-cli --pipe` of MSETs) plus 1,000 keys of
#   another namespace, and times
#     `redis-cli --scan --pattern 'cache:analytics:*' | xargs -n 1000 redis-cli unlink`, then,
#     after loading again, `steward cache clear --namespace analytics` (wall time of the client
#     command: everything a user waits for);
#   each must leave exactly the 1,000 other keys;
# - while each clear runs, `redis-cli --latency` samples Redis from another process (every
#   10 ms, from a second before the clear to up to a second after it); its max during
#   steward's clear is the "other client's" latency (whole milliseconds, as redis-cli reports);
# - prints the table, the ratio and the targets of issue 5 with PASS/MISS.
# Everything it starts is stopped and its temp dir removed on exit, also when interrupted.
# Takes about a minute on 2 cores once steward is built.
#
# Environment (optional):
#   BENCH_CACHE_RUNS  rounds, best kept (default 3)
#   BENCH_CACHE_KEYS  keys to clear (default 1000000)
#   STEWARD_BIN       use this steward binary instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 077
BENCH_NAME=benches/cache.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${BENCH_CACHE_RUNS:-3}
KEYS=${BENCH_CACHE_KEYS:-1000000}
OTHER=1000
need_positive BENCH_CACHE_RUNS "$RUNS"
need_positive BENCH_CACHE_KEYS "$KEYS"

use_rustup_cargo
for tool in redis-server redis-cli xargs awk; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian package redis-server, redis-tools)"
done

bench_tmp steward-bench-cache
steward_binary

# --- servers --------------------------------------------------------------------------------

pick_port
pick_port
pick_port
REDIS_PORT=${ports[0]} METRICS_PORT=${ports[1]} PG_PORT=${ports[2]} # nothing listens on PG_PORT
start_redis "$tmp"

# PostgreSQL is not part of this benchmark: its monitor points at a closed port, rarely.
cat >"$tmp/steward.toml" <<EOF
[postgres]
url = "postgres://bench@127.0.0.1:$PG_PORT/bench"
interval = "60s"

[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
interval = "60s"

$(steward_toml_local "$tmp" "$METRICS_PORT" warn)

$(steward_toml_no_schedules "$tmp")

[cache]
pipeline_batch = 100

[[cache.namespace]]
name = "analytics"
prefix = "cache:analytics:"
ttl = "30m"

[[cache.namespace]]
name = "sessions"
prefix = "cache:sessions:"
ttl = "1h"
EOF
steward_env_init
spawn_steward "$tmp"
STEWARD_PID=$SPAWNED_PID
stw() { steward_at "$tmp/ctl.sock" "$@"; }
wait_steward "$STEWARD_PID" "$tmp/ctl.sock" "$tmp/steward.log"

# --- data -----------------------------------------------------------------------------------

say "generating $KEYS keys cache:analytics:<n> (64-byte values) and $OTHER cache:sessions:<n>"
awk -v n="$KEYS" -v other="$OTHER" 'BEGIN {
    v = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    emit("cache:analytics:", n); emit("cache:sessions:", other)
}
function emit(prefix, count,   i, j, hi, args, k) {
    for (i = 0; i < count; i += 1000) {
        hi = (i + 1000 < count) ? i + 1000 : count
        printf "*%d\r\n$4\r\nMSET\r\n", 1 + 2 * (hi - i)
        for (j = i; j < hi; j++) {
            k = prefix j
            printf "$%d\r\n%s\r\n$64\r\n%s\r\n", length(k), k, v
        }
    }
}' >"$tmp/load.resp"

load() {
    rcli flushall >/dev/null
    rcli --pipe <"$tmp/load.resp" >"$tmp/pipe.log" 2>&1 || { cat "$tmp/pipe.log" >&2; die "loading failed"; }
    local n
    n=$(rcli dbsize)
    [ "$n" -eq $((KEYS + OTHER)) ] || die "loaded $n keys, expected $((KEYS + OTHER))"
}
check_left() {
    local n
    n=$(rcli dbsize)
    [ "$n" -eq "$OTHER" ] || die "$1 left $n keys, expected the $OTHER of the other namespace"
}

# measure NAME CMD…: runs CMD while `redis-cli --latency` samples Redis from another process;
# sets T (wall seconds) and LAT (max latency in ms that other client saw). Off a terminal,
# `redis-cli --latency` prints "min max avg samples" after about a second and exits, so it is
# run again and again until CMD is done, and the largest max is kept.
measure() {
    local name=$1 lat_pid t0 t1
    shift
    rm -f "$tmp/latency-stop"
    (while [ ! -e "$tmp/latency-stop" ]; do redis-cli -p "$REDIS_PORT" --latency; done) \
        >"$tmp/latency-$name" 2>&1 &
    lat_pid=$!
    pids+=("$lat_pid")
    until [ -s "$tmp/latency-$name" ]; do sleep 0.1; done # sampling for a second already
    t0=$(now)
    "$@"
    t1=$(now)
    touch "$tmp/latency-stop"
    wait "$lat_pid" || true
    T=$(elapsed "$t0" "$t1")
    LAT=$(awk 'NF >= 4 && $2 + 0 > m { m = $2 + 0 } NF >= 4 { seen = 1 } END { if (seen) print m + 0 }' \
        "$tmp/latency-$name")
    [ -n "$LAT" ] || { cat "$tmp/latency-$name" >&2; die "cannot read redis-cli --latency output"; }
}

cli_pipeline() {
    rcli --scan --pattern 'cache:analytics:*' | xargs -n 1000 redis-cli -p "$REDIS_PORT" unlink >/dev/null
}
steward_clear() {
    stw --json cache clear --namespace analytics >"$tmp/clear.json" ||
        { cat "$tmp/clear.json" >&2; die "steward cache clear failed"; }
    grep -q "\"deleted\":${KEYS}[,}]" "$tmp/clear.json" ||
        { cat "$tmp/clear.json" >&2; die "steward did not report $KEYS keys deleted"; }
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# The noise floor: the same sampler with nothing else asked of Redis (2 s).
load
measure idle sleep 2
lat_idle=$LAT
say "other client's max latency with Redis idle (1M keys loaded): ${LAT} ms"

best_cli='' best_stw='' lat_cli='' lat_stw='' rounds_cli='' rounds_stw=''
for round in $(seq 1 "$RUNS"); do
    say "round $round/$RUNS: redis-cli --scan | xargs -n 1000 redis-cli unlink"
    load
    measure cli cli_pipeline
    check_left "the redis-cli pipeline"
    say "    ${T}s, other client's max latency ${LAT} ms"
    best_cli=$(min "$best_cli" "$T")
    lat_cli=$(max "$lat_cli" "$LAT")
    rounds_cli+="${rounds_cli:+, }${T}s/${LAT}ms"
    say "round $round/$RUNS: steward cache clear --namespace analytics"
    load
    measure stw steward_clear
    check_left "steward cache clear"
    say "    ${T}s, other client's max latency ${LAT} ms"
    best_stw=$(min "$best_stw" "$T")
    lat_stw=$(max "$lat_stw" "$LAT")
    rounds_stw+="${rounds_stw:+, }${T}s/${LAT}ms"
done

echo
echo "steward cache clear vs redis-cli — $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  $("$STEWARD_BIN" --version 2>&1 | head -n 1); $(redis-server --version | awk '{print $1, $2, $3}')"
echo "  $KEYS keys cache:analytics:<n> (64-byte values) + $OTHER others; best of $RUNS rounds; latency: worst round"
echo
printf '%-46s %12s %22s\n' "" "wall (s)" "other client max (ms)"
printf '%-46s %12.3f %22s\n' "redis-cli --scan | xargs -n 1000 redis-cli unlink" "$best_cli" "$lat_cli"
printf '%-46s %12.3f %22s\n' "steward cache clear --namespace analytics" "$best_stw" "$lat_stw"
printf '%-46s %12s %22s\n' "(nothing: Redis idle, 2 s)" "-" "$lat_idle"
echo "  each round (wall / other client max): redis-cli $rounds_cli; steward $rounds_stw"
echo "  load average before the first round: $load_before"
echo
awk -v s="$best_stw" -v c="$best_cli" -v lat="$lat_stw" '
    function verdict(ok) { return ok ? "PASS" : "MISS" }
    BEGIN {
        r = (c > 0) ? s / c : 0
        printf "%-48s %10s   %-14s %s\n", "ratio", "value", "target", "result"
        printf "%-48s %9.2fx   %-14s %s\n", "steward clear / redis-cli pipeline (wall time)", r, "<= 0.35x", verdict(r <= 0.35)
        printf "%-48s %8dms   %-14s %s\n", "other client max latency during steward clear", lat, "< 5 ms", verdict(lat < 5)
    }'
