#!/usr/bin/env bash
# Benchmark: steward's PostgreSQL backups and restore against the shell pipelines they replace
# (issue 3, "Speed"), on this machine, in one run. Run through `bash benches/compare.sh` (after
# the /metrics part) or alone:
#
#   bash benches/backup.sh
#
# - starts a throwaway PostgreSQL cluster of its own (initdb in a temp dir, as the `postgres`
#   user when run as root; a free port on 127.0.0.1, its unix socket in the temp dir, fsync off,
#   password auth over TCP) and never touches the machine's own server;
# - builds database `bench` in it: `pgbench -i -s 20` plus `bench_events`, 1.5 million rows of
#   timestamptz, md5 text and jsonb (about 680 MB on disk; built in under half a minute here);
# - starts two steward daemons on it (compression gzip level 6, and zstd level 3; schedules off);
# - after one untimed warm-up dump, times in BENCH_BACKUP_RUNS interleaved rounds (best kept),
#   each step after a CHECKPOINT and a sync:
#   `pg_dump > /dev/null` (the floor), `pg_dump | gzip -6 > FILE`, `pg_dump | pigz -6 > FILE`,
#   `pg_dump | zstd -3 > FILE` (reference only), `steward backup create --wait` with gzip and
#   with zstd (wall time of the client command: everything a user waits for, fsyncs included);
# - then, in as many rounds, the restore of the gzip dumps: `createdb -T template0` + `gunzip -c
#   FILE | psql -X -q -v ON_ERROR_STOP=1 --single-transaction` against `steward backup restore ID
#   --target-db NAME` (which checks the backup's hash and metadata and streams it into psql the
#   same way; its wall time is everything a user waits for); each
#   restored database must hold the original's row counts, and is dropped;
# - reads steward's peak RSS during each backup and restore: VmHWM of the daemon, reset just
#   before through /proc/PID/clear_refs, and VmRSS sampled every 0.1 s (the larger counts);
#   pg_dump and psql are separate processes and are not counted;
# - prints the table, the ratios and the targets of issue 3 with PASS/MISS.
# Installs pigz, zstd, gzip and jq through tests/apt-install.sh when missing. Everything it starts
# (the cluster, the daemons) is stopped and its temp dir removed on exit, also when interrupted.
# Takes about 4 minutes on 2 cores once steward is built (1.5 with BENCH_BACKUP_RUNS=1).
#
# Environment (optional):
#   BENCH_BACKUP_RUNS  rounds of timed backups and restores, best kept (default 3)
#   BENCH_TMPDIR       where the temp dir goes (default /tmp; needs about 4 GB free)
#   STEWARD_BIN        use this steward binary instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 077
BENCH_NAME=benches/backup.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${BENCH_BACKUP_RUNS:-3}
need_positive BENCH_BACKUP_RUNS "$RUNS"
SCALE=20
EVENTS=1500000
DB=bench

export DEBIAN_FRONTEND=noninteractive
use_rustup_cargo

# --- tools ----------------------------------------------------------------------------------

pg_tools
ensure_tools pigz zstd gzip jq
for tool in initdb pg_ctl postgres pg_dump psql createdb pgbench; do
    [ -x "$PGBIN/$tool" ] || command -v "$tool" >/dev/null 2>&1 || die "$tool not found (PostgreSQL server and client packages)"
done
PG_DUMP=$(pg_client pg_dump) PSQL=$(pg_client psql) CREATEDB=$(pg_client createdb) PGBENCH=$(pg_client pgbench)

bench_tmp steward-bench-backup "${BENCH_TMPDIR:-/tmp}"
steward_binary

# --- throwaway cluster ----------------------------------------------------------------------

bench_backup_database

# --- steward daemons ------------------------------------------------------------------------

steward_env_init
steward_env+=("${pg_scrub[@]}")

# Redis is not part of this benchmark: steward points at a closed port and reports it down.
pick_port
REDIS_PORT=${ports[-1]}

# start_steward NAME COMPRESSION LEVEL: a daemon with its own dir, socket and backup dir;
# records its pid in steward_pid[NAME].
declare -A steward_pid=()
start_steward() {
    local name=$1 compression=$2 level=$3 dir=$tmp/steward-$1
    mkdir -p "$dir"
    pick_port
    bench_steward_toml "$dir" "${ports[-1]}" "$compression" "$level" >"$dir/steward.toml"
    spawn_steward "$dir"
    steward_pid[$name]=$SPAWNED_PID
    wait_steward "$SPAWNED_PID" "$dir/ctl.sock" "$dir/steward.log" "steward ($name)"
}
# stw NAME ARGS…: the steward client against daemon NAME.
stw() {
    local name=$1
    shift
    steward_at "$tmp/steward-$name/ctl.sock" "$@"
}

say "starting two steward daemons on the cluster: gzip -6 and zstd -3"
start_steward gzip gzip 6
start_steward zstd zstd 3

# --- measuring ------------------------------------------------------------------------------

# timed CMD…: runs CMD, sets T to its wall time in seconds.
T=0
timed() {
    local t0 t1
    t0=$(now)
    "$@"
    t1=$(now)
    T=$(elapsed "$t0" "$t1")
}
size_of() { stat -c %s "$1"; }
# Before each timed step: nothing left to flush from the one before (the pipelines do not fsync
# their files, steward does; a restore leaves a lot of dirty pages and WAL behind).
settle() {
    sql -d postgres -c CHECKPOINT
    sync
}

# Peak RSS of a steward daemon over one operation: reset VmHWM, sample VmRSS meanwhile.
rss_pid=0 rss_sampler=0
rss_begin() {
    rss_pid=$1
    reset_hwm "$rss_pid" || say "warning: cannot reset VmHWM of $rss_pid; its peak since start is reported"
    rm -f "$tmp/rss.stop"
    (
        peak=0
        while [ ! -e "$tmp/rss.stop" ] && [ -r "/proc/$rss_pid/status" ]; do
            while read -r key kb _; do
                if [ "$key" = VmRSS: ] && [ "$kb" -gt "$peak" ]; then peak=$kb; fi
            done <"/proc/$rss_pid/status"
            printf '%s\n' "$peak" >"$tmp/rss.sampled"
            sleep 0.1
        done
    ) &
    rss_sampler=$!
    pids+=("$rss_sampler")
}
# Sets RSS_HWM and RSS_SAMPLED (kB).
RSS_HWM=0 RSS_SAMPLED=0
rss_end() {
    touch "$tmp/rss.stop"
    wait "$rss_sampler" || true
    RSS_HWM=$(status_kb "$rss_pid" VmHWM)
    RSS_SAMPLED=$(cat "$tmp/rss.sampled" 2>/dev/null || echo 0)
}

dumps=$tmp/dumps
mkdir -p "$dumps"
dump_floor() { "${pg[@]}" "$PG_DUMP" -Fp "$DB" >/dev/null; }
dump_gzip() { "${pg[@]}" "$PG_DUMP" -Fp "$DB" | gzip -6 >"$dumps/gzip.sql.gz"; }
dump_pigz() { "${pg[@]}" "$PG_DUMP" -Fp "$DB" | pigz -6 >"$dumps/pigz.sql.gz"; }
dump_zstd() { "${pg[@]}" "$PG_DUMP" -Fp "$DB" | zstd -3 -q -c >"$dumps/zstd.sql.zst"; }
# steward_backup NAME: one `backup create --wait --json`; sets T, and META to the backup's JSON.
META=
steward_backup() {
    local name=$1 out
    out=$tmp/create-$name.json
    timed stw "$name" --json backup create --database "$DB" --wait >"$out" ||
        { cat "$out" >&2; tail -n 20 "$tmp/steward-$name/steward.log" >&2; die "steward backup ($name) failed"; }
    META=$(jq -ce '.data | if type == "array" then .[0] else . end' "$out") ||
        { cat "$out" >&2; die "unexpected reply to backup create ($name)"; }
    [ "$(jq -r '.status' <<<"$META")" = good ] || { printf '%s\n' "$META" >&2; die "steward backup ($name) is not good"; }
}

say "warm-up dump (untimed)"
dump_floor

t_floor='' t_gzip='' t_pigz='' t_zstd='' t_sgz='' t_szst=''
hwm_sgz='' smp_sgz='' hwm_szst='' smp_szst='' d_sgz='' d_szst=''
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq 1 "$RUNS"); do
    say "run $run/$RUNS: pg_dump > /dev/null"
    settle
    timed dump_floor
    t_floor=$(min "$t_floor" "$T")
    say "run $run/$RUNS: pg_dump | gzip -6"
    settle
    timed dump_gzip
    t_gzip=$(min "$t_gzip" "$T")
    say "run $run/$RUNS: pg_dump | pigz -6"
    settle
    timed dump_pigz
    t_pigz=$(min "$t_pigz" "$T")
    say "run $run/$RUNS: pg_dump | zstd -3"
    settle
    timed dump_zstd
    t_zstd=$(min "$t_zstd" "$T")
    say "run $run/$RUNS: steward backup create (gzip 6)"
    settle
    rss_begin "${steward_pid[gzip]}"
    steward_backup gzip
    rss_end
    hwm_sgz=$(max "$hwm_sgz" "$RSS_HWM")
    smp_sgz=$(max "$smp_sgz" "$RSS_SAMPLED")
    t_sgz=$(min "$t_sgz" "$T")
    meta_sgz=$META
    d_sgz=$(min "$d_sgz" "$(jq -r '.duration_seconds' <<<"$META")")
    say "run $run/$RUNS: steward backup create (zstd 3)"
    settle
    rss_begin "${steward_pid[zstd]}"
    steward_backup zstd
    rss_end
    hwm_szst=$(max "$hwm_szst" "$RSS_HWM")
    smp_szst=$(max "$smp_szst" "$RSS_SAMPLED")
    t_szst=$(min "$t_szst" "$T")
    meta_szst=$META
    d_szst=$(min "$d_szst" "$(jq -r '.duration_seconds' <<<"$META")")
done
s_gzip=$(size_of "$dumps/gzip.sql.gz")
s_pigz=$(size_of "$dumps/pigz.sql.gz")
s_zstd=$(size_of "$dumps/zstd.sql.zst")
s_sgz=$(jq -r '.stored_bytes' <<<"$meta_sgz")
s_szst=$(jq -r '.stored_bytes' <<<"$meta_szst")
dump_bytes=$(jq -r '.dump_bytes' <<<"$meta_sgz")
id_sgz=$(jq -r '.id' <<<"$meta_sgz")
[[ $s_sgz =~ ^[0-9]+$ && $s_szst =~ ^[0-9]+$ && -n $id_sgz && $id_sgz != null ]] ||
    die "backup metadata without stored_bytes or id: $meta_sgz / $meta_szst"

# restore_baseline DB: what a user does without steward.
restore_baseline() {
    "${pg[@]}" "$CREATEDB" -T template0 "$1"
    gunzip -c "$dumps/gzip.sql.gz" |
        "${pg[@]}" "$PSQL" -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$1" -f - >/dev/null
}
# check_and_drop DB: the restored database holds the original's row counts; then it goes.
check_and_drop() {
    local got
    got=$(row_counts "$1")
    [ "$got" = "$counts_src" ] || die "$1 holds other row counts than $DB: $got, expected $counts_src"
    sql -d postgres -c "DROP DATABASE $1"
}
t_rbase='' t_rstw='' hwm_rst='' smp_rst='' d_rst=''
for run in $(seq 1 "$RUNS"); do
    say "run $run/$RUNS: restore with createdb + gunzip -c | psql (into base_$run)"
    settle
    timed restore_baseline "base_$run"
    t_rbase=$(min "$t_rbase" "$T")
    check_and_drop "base_$run"
    say "run $run/$RUNS: steward backup restore $id_sgz --target-db steward_$run"
    settle
    rss_begin "${steward_pid[gzip]}"
    timed stw gzip --json backup restore "$id_sgz" --target-db "steward_$run" >"$tmp/restore.json" ||
        { cat "$tmp/restore.json" >&2; tail -n 20 "$tmp/steward-gzip/steward.log" >&2; die "steward backup restore failed"; }
    rss_end
    hwm_rst=$(max "$hwm_rst" "$RSS_HWM")
    smp_rst=$(max "$smp_rst" "$RSS_SAMPLED")
    t_rstw=$(min "$t_rstw" "$T")
    d_rst=$(min "$d_rst" "$(jq -r '(.data | if type == "array" then .[0] else . end).summary.duration_seconds // 0' "$tmp/restore.json")")
    check_and_drop "steward_$run"
done

# --- report ---------------------------------------------------------------------------------

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
# rss_cell HWM SAMPLED (kB): "peak (VmHWM x, sampled y)" in MB.
rss_cell() { awk -v h="$1" -v s="$2" 'BEGIN { printf "%6.1f   (VmHWM %.1f, VmRSS sampled %.1f)", ((h > s) ? h : s) / 1024, h / 1024, s / 1024 }'; }
rss_sgz=$(max "$hwm_sgz" "$smp_sgz")
rss_szst=$(max "$hwm_szst" "$smp_szst")
steward_version=$("$STEWARD_BIN" --version 2>&1 | head -n 1 || true)
pg_dump_version=$("$PG_DUMP" --version | head -n 1)
server_version=$(sql -d "$DB" -c 'SHOW server_version')
zstd_version=$(zstd --version | grep -o 'v[0-9][0-9.]*' | head -n 1)

echo
echo "steward backups vs pg_dump pipelines — $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  $steward_version; $pg_dump_version; server $server_version (throwaway cluster, fsync off)"
echo "  $(gzip --version | head -n 1); pigz $(pigz --version 2>&1 | awk '{ print $2 }'); zstd $zstd_version"
echo "  database $DB: $(mb "$db_bytes") MB on disk (pgbench -s $SCALE + $EVENTS rows of bench_events);" \
    "plain dump $(mb "$dump_bytes") MB"
echo "  best of $RUNS interleaved run(s), each after CHECKPOINT + sync; the pipelines write their file"
echo "  without fsync, steward fsyncs; every restored database's row counts checked against $DB"
echo "  load average when the timings began: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-42s %9s %10s %9s\n' "" "wall (s)" "size (MB)" "x floor"
row() { printf '%-42s %9.2f %10s %8.2fx\n' "$1" "$2" "$3" "$(ratio "$2" "$t_floor")"; }
row "pg_dump > /dev/null (the floor)" "$t_floor" "-"
row "pg_dump | gzip -6" "$t_gzip" "$(mb "$s_gzip")"
row "pg_dump | pigz -6" "$t_pigz" "$(mb "$s_pigz")"
row "pg_dump | zstd -3 (reference)" "$t_zstd" "$(mb "$s_zstd")"
row "steward backup create (gzip 6)" "$t_sgz" "$(mb "$s_sgz")"
row "steward backup create (zstd 3)" "$t_szst" "$(mb "$s_szst")"
printf '%-42s %9.2f\n' "createdb + gunzip -c | psql -1" "$t_rbase"
printf '%-42s %9.2f\n' "steward backup restore --target-db" "$t_rstw"
echo
printf '%-42s %9.2f  (gzip)  %.2f  (zstd)\n' "steward's own duration_seconds, best" "$d_sgz" "$d_szst"
printf '%-42s %9.2f  (restore: summary.duration_seconds of its reply)\n' "" "$d_rst"
printf '%-42s %s\n' "steward peak RSS (MB), gzip backup" "$(rss_cell "$hwm_sgz" "$smp_sgz")"
printf '%-42s %s\n' "                       zstd backup" "$(rss_cell "$hwm_szst" "$smp_szst")"
printf '%-42s %s\n' "                       restore" "$(rss_cell "$hwm_rst" "$smp_rst")"
echo

awk -v tsg="$t_sgz" -v tg="$t_gzip" -v ssg="$s_sgz" -v sg="$s_gzip" -v tsz="$t_szst" \
    -v tf="$t_floor" -v trs="$t_rstw" -v trb="$t_rbase" -v r1="$rss_sgz" -v r2="$rss_szst" '
    function verdict(ok) { return ok ? "PASS" : "MISS" }
    BEGIN {
        a = (tg > 0) ? tsg / tg : 0
        b = (sg > 0) ? ssg / sg : 0
        c = (tf > 0) ? tsz / tf : 0
        d = (trb > 0) ? trs / trb : 0
        r = ((r1 > r2) ? r1 : r2) / 1024
        printf "%-48s %10s   %-10s %s\n", "ratio", "value", "target", "result"
        printf "%-48s %9.2fx   %-10s %s\n", "steward gzip time / pg_dump | gzip -6 time", a, "<= 0.60x", verdict(a <= 0.6)
        printf "%-48s %9.3fx   %-10s %s\n", "steward gzip size / pg_dump | gzip -6 size", b, "<= 1.03x", verdict(b <= 1.03)
        printf "%-48s %9.2fx   %-10s %s\n", "steward zstd time / floor", c, "<= 1.15x", verdict(c <= 1.15)
        printf "%-48s %9.2fx   %-10s %s\n", "steward restore / (createdb + gunzip -c | psql)", d, "<= 1.10x", verdict(d <= 1.1)
        printf "%-48s %8.1fMB   %-10s %s\n", "steward peak RSS during a backup (gzip, zstd)", r, "< 64 MB", verdict(r < 64)
    }'
