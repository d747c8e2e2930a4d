#!/usr/bin/env bash
# Benchmarks steward against the tools it replaces, on this machine, in one run, in five parts:
#
#   bash benches/compare.sh
#
# 1. /metrics (issues 2 and 16): steward against postgres_exporter and redis_exporter, all
#    pointed at the same local PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379); described
#    below. Only this part: `BENCH_ONLY=metrics bash benches/compare.sh`.
# 2. Backups (issue 3): benches/backup.sh, run after part 1 with the same steward binary: on a
#    throwaway PostgreSQL cluster of its own, steward's gzip and zstd backups and its restore
#    against `pg_dump | gzip -6`, `pg_dump | pigz -6`, the `pg_dump > /dev/null` floor and
#    `gunzip -c | psql`, plus steward's peak RSS during a backup (see that script's header).
#    About 5 minutes.
# 3. Cache clear (issue 5): benches/cache.sh, run between parts 1 and 2 with the same steward
#    binary: on a throwaway redis-server of its own, `steward cache clear` of 1,000,000 keys
#    against `redis-cli --scan | xargs -n 1000 redis-cli unlink`, and the max latency another
#    client (`redis-cli --latency`) sees meanwhile (see that script's header). About a minute.
# 4. Cache warm-up (issue 5): benches/warmup.sh, run after part 3 with the same steward binary:
#    on a throwaway PostgreSQL and redis-server of its own, `steward cache warm-up` of a
#    1,000,000-row table, in keys/s against the target of 100,000 keys/s, with steward's peak
#    RSS meanwhile (see that script's header). About a minute.
# 5. Off-site backups (issue 15): benches/offsite.sh, run after part 4 (before part 2) with the
#    same steward binary: on a throwaway PostgreSQL cluster (the database of part 2) and a moto S3
#    server of its own, steward's backup to the bucket (`backup create --wait` + the checked
#    upload) against `pg_dump | gzip -6 | aws s3 cp -`, its restore of a remote-only backup
#    against `aws s3 cp - | gunzip | psql`, and its peak RSS meanwhile (see that script's header).
#    About 8 minutes.
#
# Part 1:
# - installs the peers when missing (Debian packages prometheus-postgres-exporter,
#   prometheus-redis-exporter, wrk, and curl), as root or through sudo, without leaving their
#   packaged services running;
# - builds steward in release mode and starts it with a temporary config (both services checked
#   every 1 s); starts both exporters itself, on free ports of 127.0.0.1;
# - reads each one's resident memory (VmRSS) at idle, after ~60 s of running without load
#   (steward checking both services every second meanwhile);
# - then for each of the three: `wrk -t1 -c4 -d5s --latency` on /metrics three times, the median
#   of each figure kept (requests/s, p50 and p99 latency), each run's p99, slowest reply and the
#   CPU time the hypervisor took from the machine meanwhile (`steal` in /proc/stat) printed;
#   samples in one scrape (non-comment lines), and VmRSS again after the load;
# - prints the table, and the targets of issue 16 with PASS/MISS: requests/s at least 100x
#   postgres_exporter's and 20x redis_exporter's, p99 under 1 ms, steward's idle RSS at most
#   12 MB (and, as before, at most half the exporters' together).
# Every process it starts is stopped on exit. Takes about two minutes once steward is
# built.
#
# Environment (optional):
#   BENCH_ONLY=NAME  run only one part: metrics, backup, cache, warmup or offsite
#   BENCH_METRICS=0  skip part 1 (then no local PostgreSQL or Redis is needed)
#   BENCH_BACKUP=0   skip part 2
#   BENCH_CACHE=0    skip part 3
#   BENCH_WARMUP=0   skip part 4
#   BENCH_OFFSITE=0  skip part 5
#   BENCH_OFFSITE_RUNS: see benches/offsite.sh
#   BENCH_WARMUP_ROWS: see benches/warmup.sh
#   BENCH_CACHE_RUNS, BENCH_CACHE_KEYS: see benches/cache.sh
#   BENCH_BACKUP_RUNS, BENCH_TMPDIR: see benches/backup.sh
#   BENCH_PG_URL     PostgreSQL for all three  (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_REDIS_URL  Redis for all three       (default redis://127.0.0.1:6379)
#   BENCH_RSS_AFTER  seconds of running before RSS is read (default 60)
#   BENCH_WRK_RUNS   wrk runs per server, the median kept (default 3)
#   STEWARD_BIN      use this steward binary instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCH_NAME=benches/compare.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS_URL_=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
RSS_AFTER=${BENCH_RSS_AFTER:-60}
RUN_METRICS=${BENCH_METRICS:-1}
RUN_BACKUP=${BENCH_BACKUP:-1}
RUN_CACHE=${BENCH_CACHE:-1}
RUN_WARMUP=${BENCH_WARMUP:-1}
RUN_OFFSITE=${BENCH_OFFSITE:-1}
if [ -n "${BENCH_ONLY:-}" ]; then
    case $BENCH_ONLY in
        metrics | backup | cache | warmup | offsite) ;;
        *) die "BENCH_ONLY must be metrics, backup, cache, warmup or offsite (not $BENCH_ONLY)" ;;
    esac
    RUN_METRICS=0 RUN_BACKUP=0 RUN_CACHE=0 RUN_WARMUP=0 RUN_OFFSITE=0
    case $BENCH_ONLY in
        metrics) RUN_METRICS=1 ;;
        backup) RUN_BACKUP=1 ;;
        cache) RUN_CACHE=1 ;;
        warmup) RUN_WARMUP=1 ;;
        offsite) RUN_OFFSITE=1 ;;
    esac
fi
WRK_ARGS=(-t1 -c4 -d5s --latency)
# Each figure is the median of this many wrk runs: on a 2-CPU virtual machine about one run in
# four holds a stall of about 100 ms for any server (docs/metrics.md), which moves that run's p99
# to tens of milliseconds.
WRK_ROUNDS=${BENCH_WRK_RUNS:-3}
need_positive BENCH_WRK_RUNS "$WRK_ROUNDS"

export DEBIAN_FRONTEND=noninteractive
use_rustup_cargo

bench_tmp steward-bench
steward_binary

# Part 3 (cache clear) runs once part 1's processes are stopped, before part 2.
run_cache_part() {
    if [ "$RUN_CACHE" = 0 ]; then
        say "skipping the cache clear benchmark (BENCH_CACHE=0)"
        return 0
    fi
    [ "$RUN_METRICS" = 0 ] || echo
    env STEWARD_BIN="$STEWARD_BIN" bash "$ROOT/benches/cache.sh" || die "the cache clear benchmark failed"
}

# Part 4 (cache warm-up) runs after part 3, before part 2.
run_warmup_part() {
    if [ "$RUN_WARMUP" = 0 ]; then
        say "skipping the cache warm-up benchmark (BENCH_WARMUP=0)"
        return 0
    fi
    echo
    env STEWARD_BIN="$STEWARD_BIN" bash "$ROOT/benches/warmup.sh" || die "the cache warm-up benchmark failed"
}

# Part 5 (off-site backups) runs after part 4, before part 2.
run_offsite_part() {
    if [ "$RUN_OFFSITE" = 0 ]; then
        say "skipping the off-site backup benchmark (BENCH_OFFSITE=0)"
        return 0
    fi
    echo
    env STEWARD_BIN="$STEWARD_BIN" bash "$ROOT/benches/offsite.sh" || die "the off-site backup benchmark failed"
}

# Part 2 replaces this process (so that signals reach it directly) once parts 1, 3, 4 and 5 are
# done.
run_backup_part() {
    cleanup
    pids=()
    run_cache_part
    run_warmup_part
    run_offsite_part
    if [ "$RUN_BACKUP" = 0 ]; then
        say "skipping the backup benchmark (BENCH_BACKUP=0)"
        exit 0
    fi
    trap - EXIT INT TERM
    [ "$RUN_METRICS" = 0 ] && [ "$RUN_CACHE" = 0 ] || echo
    exec env STEWARD_BIN="$STEWARD_BIN" bash "$ROOT/benches/backup.sh"
}
if [ "$RUN_METRICS" = 0 ]; then
    say "skipping the /metrics benchmark (BENCH_METRICS=0)"
    run_backup_part
fi

# --- peers ----------------------------------------------------------------------------------

PG_EXPORTER=prometheus-postgres-exporter
REDIS_EXPORTER=prometheus-redis-exporter

ensure_tools "$PG_EXPORTER" "$REDIS_EXPORTER" wrk curl
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then as_root=(env); else as_root=(sudo -n env); fi
    # If a packaged service got started anyway (an existing policy allowed it), stop it:
    # this script runs its own exporters.
    for svc in "${missing[@]}"; do
        case $svc in "$PG_EXPORTER" | "$REDIS_EXPORTER") ;; *) continue ;; esac
        if [ -d /run/systemd/system ]; then
            if systemctl is-active --quiet "$svc" 2>/dev/null; then
                say "stopping the packaged $svc service"
                "${as_root[@]}" systemctl stop "$svc" || true
            fi
        elif [ -x "/etc/init.d/$svc" ] && "${as_root[@]}" "/etc/init.d/$svc" status >/dev/null 2>&1; then
            say "stopping the packaged $svc service"
            "${as_root[@]}" "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi

# --- servers --------------------------------------------------------------------------------

port_open 5432 || die "no PostgreSQL listening on 127.0.0.1:5432"
port_open 6379 || die "no Redis listening on 127.0.0.1:6379"

# lib/pq (postgres_exporter) defaults to sslmode=require; a local server usually has no TLS.
case $PG_URL in
    *sslmode=*) PG_DSN=$PG_URL ;;
    *\?*) PG_DSN="$PG_URL&sslmode=disable" ;;
    *) PG_DSN="$PG_URL?sslmode=disable" ;;
esac

pick_port
pick_port
pick_port
STEWARD_PORT=${ports[0]} PG_EXP_PORT=${ports[1]} REDIS_EXP_PORT=${ports[2]}

cat >"$tmp/steward.toml" <<EOF
$(steward_toml_checked_every_second "$PG_DSN" "$REDIS_URL_")

$(steward_toml_local "$tmp" "$STEWARD_PORT" warn)
EOF

say "starting steward on 127.0.0.1:$STEWARD_PORT, postgres_exporter on :$PG_EXP_PORT, redis_exporter on :$REDIS_EXP_PORT"
steward_env_init
spawn_steward "$tmp"
STEWARD_PID=$SPAWNED_PID
env DATA_SOURCE_NAME="$PG_DSN" "$(command -v "$PG_EXPORTER")" \
    --web.listen-address="127.0.0.1:$PG_EXP_PORT" >"$tmp/postgres_exporter.log" 2>&1 &
PG_EXP_PID=$!
pids+=("$PG_EXP_PID")
env "$(command -v "$REDIS_EXPORTER")" --redis.addr="$REDIS_URL_" \
    --web.listen-address="127.0.0.1:$REDIS_EXP_PORT" >"$tmp/redis_exporter.log" 2>&1 &
REDIS_EXP_PID=$!
pids+=("$REDIS_EXP_PID")
START=$SECONDS

names=(steward postgres_exporter redis_exporter)
urls=("http://127.0.0.1:$STEWARD_PORT/metrics" "http://127.0.0.1:$PG_EXP_PORT/metrics"
    "http://127.0.0.1:$REDIS_EXP_PORT/metrics")
procs=("$STEWARD_PID" "$PG_EXP_PID" "$REDIS_EXP_PID")
logs=("$tmp/steward.log" "$tmp/postgres_exporter.log" "$tmp/redis_exporter.log")

# Waits (bounded) until /metrics answers and shows the service(s) up.
wait_up() {
    local i=$1 pattern deadline=$((SECONDS + 30)) body
    shift
    while :; do
        kill -0 "${procs[$i]}" 2>/dev/null || {
            tail -n 20 "${logs[$i]}" >&2
            die "${names[$i]} exited"
        }
        if body=$(curl -fsS --max-time 2 "${urls[$i]}" 2>/dev/null); then
            local ok=1
            for pattern in "$@"; do
                grep -Eq "$pattern" <<<"$body" || ok=0
            done
            [ "$ok" -eq 1 ] && return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "${logs[$i]}" >&2
            die "${names[$i]} did not report its service(s) up within 30 s (${urls[$i]})"
        fi
        sleep 0.2
    done
}
wait_up 0 '^steward_up\{service="postgres"\} 1$' '^steward_up\{service="redis"\} 1$'
wait_up 1 '^pg_up 1$'
wait_up 2 '^redis_up 1$'
say "all three are up"

# Idle RSS first: each process has run RSS_AFTER seconds, scraped only by wait_up.
wait_for=$((START + RSS_AFTER - SECONDS))
if [ "$wait_for" -gt 0 ]; then
    say "waiting ${wait_for}s so that each process has run ${RSS_AFTER}s (idle) before reading its RSS"
    pause "$wait_for"
fi
rss=()
for i in 0 1 2; do
    kill -0 "${procs[$i]}" 2>/dev/null || die "${names[$i]} exited while idle"
    rss[i]=$(status_kb "${procs[$i]}" VmRSS)
done

# field NAME LINE: the value of NAME=value in wrk_report's LINE.
field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
# median A B C…: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# steal_ms: CPU time the hypervisor has taken from this machine since boot, in ms (0 when the
# kernel does not say).
steal_ms() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { print int(($9 + 0) * 1000 / hz); exit }' /proc/stat; }
us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }

# Each server gets WRK_ROUNDS wrk runs; each figure is their median, and every run's p99, its
# slowest reply and the CPU time the hypervisor took meanwhile are printed.
rps=() p50=() p99=() samples=() rss_load=() runs=()
for i in 0 1 2; do
    samples[i]=$(curl -fsS --max-time 5 "${urls[$i]}" | grep -cv -e '^#' -e '^[[:space:]]*$' || true)
    r_rps=() r_p50=() r_p99=() runs[i]=""
    for ((round = 1; round <= WRK_ROUNDS; round++)); do
        say "wrk ${WRK_ARGS[*]} ${urls[$i]} (run $round of $WRK_ROUNDS)"
        stolen=$(steal_ms)
        out=$(wrk "${WRK_ARGS[@]}" -s benches/wrk_report.lua "${urls[$i]}")
        stolen=$(($(steal_ms) - stolen))
        if grep -Eq 'Non-2xx|Socket errors' <<<"$out"; then
            printf '    warning (%s): %s\n' "${names[$i]}" "$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ')" >&2
        fi
        line=$(grep '^wrk_report ' <<<"$out" || true)
        if [ -z "$line" ]; then
            printf '%s\n' "$out" >&2
            die "cannot read wrk's output"
        fi
        r_rps+=("$(field rps "$line")")
        r_p50+=("$(us_to_ms "$(field p50_us "$line")")")
        r_p99+=("$(us_to_ms "$(field p99_us "$line")")")
        runs[i]+="${runs[i]:+; }p99 ${r_p99[-1]}, max $(us_to_ms "$(field max_us "$line")"), stolen ${stolen} ms"
    done
    rps[i]=$(median "${r_rps[@]}")
    p50[i]=$(median "${r_p50[@]}")
    p99[i]=$(median "${r_p99[@]}")
done

for i in 0 1 2; do
    kill -0 "${procs[$i]}" 2>/dev/null || die "${names[$i]} exited during the run"
    rss_load[i]=$(status_kb "${procs[$i]}" VmRSS)
done

pg_exp_version=$("$PG_EXPORTER" --version 2>&1 | head -n 1 || true)
redis_exp_version=$("$REDIS_EXPORTER" --version 2>&1 | head -n 1 | sed 's/.*msg="\([^"]*\)".*/\1/' || true)
steward_version=$("$STEWARD_BIN" --version 2>&1 | head -n 1 || true)
# How current the release build's idle-code list is (src/link/build.rs): a stale list shows as
# a larger idle RSS, so say how much of it the measured binary still has.
link_order="no symbol table in the binary (stripped?)"
command -v nm >/dev/null 2>&1 || link_order="not known (nm, from binutils, is not installed)"
if command -v nm >/dev/null 2>&1 && [ -n "$(nm --defined-only "$STEWARD_BIN" 2>/dev/null | head -n 1)" ]; then
    link_order=$(awk 'NR == FNR { if ($0 !~ /^#/ && NF) listed[$1] = 1; next }
        ($NF in listed) { found[$NF] = 1 }
        END { n = 0; for (k in listed) n++; f = 0; for (k in found) f++
              printf "%d of the %d names in src/link/idle-symbols.txt are in this binary", f, n }' \
        src/link/idle-symbols.txt <(nm --defined-only "$STEWARD_BIN"))
fi

echo
echo "steward vs exporters — $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  $steward_version"
echo "  $pg_exp_version"
echo "  $redis_exp_version"
echo "  /metrics load: wrk ${WRK_ARGS[*]}, median of $WRK_ROUNDS runs; services checked every 1 s; idle RSS read after ${RSS_AFTER} s"
for i in 0 1 2; do echo "  ${names[$i]} runs (ms): ${runs[$i]}"; done
echo "  link order: $link_order (regenerate with benches/idle-symbols.sh when few are)"
echo
printf '%-22s %14s %20s %17s\n' "" steward postgres_exporter redis_exporter
printf '%-22s %14.0f %20.0f %17.0f\n' "requests/s" "${rps[0]}" "${rps[1]}" "${rps[2]}"
printf '%-22s %14.3f %20.3f %17.3f\n' "p50 latency (ms)" "${p50[0]}" "${p50[1]}" "${p50[2]}"
printf '%-22s %14.3f %20.3f %17.3f\n' "p99 latency (ms)" "${p99[0]}" "${p99[1]}" "${p99[2]}"
printf '%-22s %14d %20d %17d\n' "samples per scrape" "${samples[0]}" "${samples[1]}" "${samples[2]}"
mb() { awk -v k="$1" 'BEGIN{print k/1024}'; }
printf '%-22s %14.1f %20.1f %17.1f\n' "RSS idle (MB)" "$(mb "${rss[0]}")" "$(mb "${rss[1]}")" "$(mb "${rss[2]}")"
printf '%-22s %14.1f %20.1f %17.1f\n' "RSS after load (MB)" \
    "$(mb "${rss_load[0]}")" "$(mb "${rss_load[1]}")" "$(mb "${rss_load[2]}")"
echo

awk -v s="${rps[0]}" -v pg="${rps[1]}" -v rd="${rps[2]}" -v p99="${p99[0]}" \
    -v rs="${rss[0]}" -v rpg="${rss[1]}" -v rrd="${rss[2]}" '
    function verdict(ok) { return ok ? "PASS" : "MISS" }
    BEGIN {
        a = (pg > 0) ? s / pg : 0
        b = (rd > 0) ? s / rd : 0
        c = (rpg + rrd > 0) ? rs / (rpg + rrd) : 0
        printf "%-56s %10s   %-14s %s\n", "target (issue 16)", "value", "target", "result"
        printf "%-56s %9.1fx   %-14s %s\n", "steward req/s / postgres_exporter req/s", a, ">= 100x", verdict(a >= 100)
        printf "%-56s %9.1fx   %-14s %s\n", "steward req/s / redis_exporter req/s", b, ">= 20x", verdict(b >= 20)
        printf "%-56s %8.3fms   %-14s %s\n", "steward p99 latency", p99, "< 1 ms", verdict(p99 < 1)
        printf "%-56s %8.1fMB   %-14s %s\n", "steward RSS at idle", rs / 1024, "<= 12 MB", verdict(rs <= 12 * 1024)
        printf "%-56s %10.2f   %-14s %s\n", "steward idle RSS / (postgres_exporter + redis_exporter)", c, "<= 0.50", verdict(c <= 0.5)
    }'

run_backup_part
