#!/usr/bin/env bash
# Benchmark: steward's off-site backups and restores (`[backup.remote]`, an S3-compatible bucket)
# against the shell pipelines they replace (issue 15, "Speed"), on this machine, in one run. Run
# through `bash benches/compare.sh` (part 5) or alone:
#
#   bash benches/offsite.sh
#
# - the same throwaway PostgreSQL cluster and database as benches/backup.sh (its own initdb in a
#   temp dir, as the `postgres` user when run as root, a free port of 127.0.0.1, fsync off,
#   password auth over TCP; database `bench`: `pgbench -i -s 20` plus `bench_events`, 1.5 million
#   rows, about 680 MB on disk);
# - a moto S3 server (`moto_server` from PyPI's `moto[server]`, in memory) on a free port of
#   127.0.0.1 with one bucket, created with a signed request (`curl --aws-sigv4`); moto_server is
#   taken from PATH, else from the virtual environment tests/run.sh installs it into
#   (${XDG_CACHE_HOME:-~/.cache}/steward-tests/moto-venv), else installed there the same way;
# - the AWS CLI (`aws`, PyPI's `awscli`) from PATH, else from a virtual environment of its own,
#   ${XDG_CACHE_HOME:-~/.cache}/steward-bench/awscli-venv (installed there when missing);
# - three steward daemons on the cluster, all with `[backup.remote]` on that bucket
#   (path_style, region us-east-1, credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY;
#   schedules off): `gzip` (gzip level 6, prefix bench), `zstd` (zstd level 3, prefix
#   bench-zstd) and `restore` (gzip level 6, prefix bench-restore, `local_keep = 0`: once its one
#   backup, taken untimed at the start, is uploaded and checked, only the bucket holds it);
# - after one untimed warm-up dump, times in BENCH_OFFSITE_RUNS interleaved rounds (best kept),
#   each step after a CHECKPOINT and a sync:
#   (a) `pg_dump | gzip -6 | aws s3 cp - s3://BUCKET/cli/x.sql.gz` against steward's
#       `backup create --wait` plus the wait until the upload is checked (the daemon's
#       steward_backup_uploads_total{result="success"} goes up, polled every 0.05 s on /metrics;
#       then `backup list` must show the backup in both places), with gzip and with zstd;
#   (b) `createdb -T template0` + `aws s3 cp s3://BUCKET/cli/x.sql.gz - | gunzip | psql -X -q -v
#       ON_ERROR_STOP=1 --single-transaction` against steward restoring the `restore` daemon's
#       remote-only backup: `backup restore ID --target-db NAME` straight from the bucket if this
#       build can (tried once, untimed, before the rounds), else `backup fetch ID` + `backup
#       restore ID --target-db NAME` (the report says which); between rounds the fetched local
#       copy is deleted again (`backup delete ID --force`, untimed) so that each round starts
#       from the bucket alone. Each restored database must hold the original's row counts, and
#       is dropped;
#   (c) steward's peak RSS during each (a) and (b) step, as benches/backup.sh reads it: VmHWM of
#       the daemon, reset just before through /proc/PID/clear_refs, and VmRSS sampled every
#       0.1 s (the larger counts); pg_dump, psql and moto are separate processes, not counted;
# - prints the table, the ratios and the targets of issue 15 with PASS/MISS: steward's gzip
#   backup to the bucket ≤ 0.6× the CLI pipeline's time, its restore from the bucket ≤ 1.0×,
#   its peak RSS < 96 MB.
# Installs gzip, jq and curl through tests/apt-install.sh when missing (python3-venv too when a
# virtual environment has to be made). Everything it starts (the cluster, moto_server, the
# daemons) is stopped and its temp dir removed on exit, also when interrupted. Takes about 8
# minutes on 2 cores once steward is built (3 with BENCH_OFFSITE_RUNS=1).
#
# Environment (optional):
#   BENCH_OFFSITE_RUNS  rounds of timed backups and restores, best kept (default 3)
#   BENCH_TMPDIR        where the temp dir goes (default /tmp; needs about 3 GB free; moto keeps
#                       the bucket in memory, about 1.5 GB with 3 rounds)
#   STEWARD_BIN         use this steward binary instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 077
BENCH_NAME=benches/offsite.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

RUNS=${BENCH_OFFSITE_RUNS:-3}
need_positive BENCH_OFFSITE_RUNS "$RUNS"
SCALE=20
EVENTS=1500000
DB=bench
REGION=us-east-1
# moto accepts any credentials; these only have to be the same on both sides.
S3_KEY_ID=steward-bench-key
S3_SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
BUCKET=steward-bench-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')

export DEBIAN_FRONTEND=noninteractive
use_rustup_cargo

# --- tools ----------------------------------------------------------------------------------

pg_tools
ensure_tools gzip jq curl
for tool in initdb pg_ctl postgres pg_dump psql createdb pgbench; do
    [ -x "$PGBIN/$tool" ] || command -v "$tool" >/dev/null 2>&1 || die "$tool not found (PostgreSQL server and client packages)"
done
PG_DUMP=$(pg_client pg_dump) PSQL=$(pg_client psql) CREATEDB=$(pg_client createdb) PGBENCH=$(pg_client pgbench)
curl --help all 2>/dev/null | grep -q -- --aws-sigv4 || die "this curl has no --aws-sigv4 (curl 7.75 or later is needed)"

cache_dir=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}
# py_venv DIR PACKAGE: a virtual environment in DIR with PACKAGE installed from PyPI (pip may not
# install into Debian's own Python, PEP 668); python3 and python3-venv from Debian when missing.
py_venv() {
    local dir=$1 package=$2
    command -v python3 >/dev/null 2>&1 || { bash tests/apt-install.sh python3 python3-venv || die "could not install python3"; }
    say "installing $package into $dir"
    mkdir -p "$(dirname "$dir")"
    # --clear: start over from what an interrupted install left.
    if ! python3 -m venv --clear "$dir" >/dev/null 2>&1; then
        # Debian's python3 makes environments with pip only with python3-venv installed.
        bash tests/apt-install.sh python3-venv || die "could not install python3-venv"
        python3 -m venv --clear "$dir" || die "python3 -m venv $dir failed"
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$package" ||
        die "pip install '$package' into $dir failed"
}
# moto_server: on PATH (and runnable: a pyenv shim may not be), else tests/run.sh's venv.
moto_venv=$cache_dir/steward-tests/moto-venv
if command -v moto_server >/dev/null 2>&1 && moto_server --help >/dev/null 2>&1; then
    MOTO=$(command -v moto_server)
else
    [ -x "$moto_venv/bin/moto_server" ] || py_venv "$moto_venv" 'moto[server]'
    MOTO=$moto_venv/bin/moto_server
    [ -x "$MOTO" ] || die "moto_server still missing after installing moto[server]"
fi
# aws: on PATH, else a venv of the benchmarks' own.
aws_venv=$cache_dir/steward-bench/awscli-venv
if command -v aws >/dev/null 2>&1 && aws --version >/dev/null 2>&1; then
    AWS=$(command -v aws)
else
    [ -x "$aws_venv/bin/aws" ] || py_venv "$aws_venv" awscli
    AWS=$aws_venv/bin/aws
    "$AWS" --version >/dev/null 2>&1 || die "aws still not runnable after installing awscli"
fi

bench_tmp steward-bench-offsite "${BENCH_TMPDIR:-/tmp}"
steward_binary

# --- throwaway cluster and database (the same as benches/backup.sh's) -----------------------

bench_backup_database

# --- moto S3 server and bucket --------------------------------------------------------------

pick_port
S3_PORT=${ports[-1]}
S3_ENDPOINT=http://127.0.0.1:$S3_PORT
mkdir -p "$tmp/moto"
say "starting moto_server on $S3_ENDPOINT"
# Its spooled object files go to its own temp dir (TMPDIR), removed with ours.
(cd "$tmp/moto" && PYTHONUNBUFFERED=1 TMPDIR=$tmp/moto exec "$MOTO" -H 127.0.0.1 -p "$S3_PORT") \
    >"$tmp/moto.log" 2>&1 &
MOTO_PID=$!
pids+=("$MOTO_PID")
# s3req METHOD PATH: one signed request (curl --aws-sigv4, as tests/common/s3.rs does); prints
# the HTTP status (000 when there was no answer).
s3req() {
    curl -q --silent --noproxy '*' --max-time 30 --aws-sigv4 "aws:amz:$REGION:s3" \
        --user "$S3_KEY_ID:$S3_SECRET" -X "$1" --output /dev/null --write-out '%{http_code}' \
        "$S3_ENDPOINT$2" || true
}
deadline=$((SECONDS + 60))
until [ "$(s3req GET /)" != 000 ]; do
    kill -0 "$MOTO_PID" 2>/dev/null || { tail -n 20 "$tmp/moto.log" >&2; die "moto_server exited"; }
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$tmp/moto.log" >&2; die "moto_server did not answer within 60 s"; }
    sleep 0.2
done
code=$(s3req PUT "/$BUCKET")
[ "$code" = 200 ] || { tail -n 20 "$tmp/moto.log" >&2; die "creating bucket $BUCKET answered $code"; }

# The AWS CLI: these credentials and region only, no config or credentials file of the caller's,
# no proxy for 127.0.0.1.
mkdir -p "$tmp/aws"
aws_cli=(env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN -u AWS_SECURITY_TOKEN
    -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_REGION -u AWS_CA_BUNDLE
    "AWS_ACCESS_KEY_ID=$S3_KEY_ID" "AWS_SECRET_ACCESS_KEY=$S3_SECRET" "AWS_DEFAULT_REGION=$REGION"
    "AWS_CONFIG_FILE=$tmp/aws/config" "AWS_SHARED_CREDENTIALS_FILE=$tmp/aws/credentials"
    AWS_EC2_METADATA_DISABLED=true NO_PROXY=127.0.0.1 no_proxy=127.0.0.1 "$AWS")
CLI_OBJECT=s3://$BUCKET/cli/x.sql.gz

# --- steward daemons ------------------------------------------------------------------------

steward_env_init
steward_env+=("${pg_scrub[@]}" -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL -u AWS_REGION
    "AWS_ACCESS_KEY_ID=$S3_KEY_ID" "AWS_SECRET_ACCESS_KEY=$S3_SECRET" NO_PROXY=127.0.0.1 no_proxy=127.0.0.1)

# Redis is not part of this benchmark: steward points at a closed port and reports it down.
pick_port
REDIS_PORT=${ports[-1]}

# start_steward NAME COMPRESSION LEVEL PREFIX [EXTRA_REMOTE_LINE]: a daemon with its own dir,
# socket and backup dir, copying its backups to s3://BUCKET/PREFIX; records its pid in
# steward_pid[NAME] and its /metrics port in metrics_port[NAME].
declare -A steward_pid=() metrics_port=()
start_steward() {
    local name=$1 compression=$2 level=$3 prefix=$4 extra=${5:-} dir=$tmp/steward-$1
    mkdir -p "$dir"
    pick_port
    metrics_port[$name]=${ports[-1]}
    {
        bench_steward_toml "$dir" "${ports[-1]}" "$compression" "$level"
        cat <<EOF

[backup.remote]
url = "s3://$BUCKET/$prefix"
endpoint = "$S3_ENDPOINT"
region = "$REGION"
path_style = true
$extra
EOF
    } >"$dir/steward.toml"
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
# uploads NAME RESULT: the daemon's steward_backup_uploads_total{result="RESULT"}.
uploads() {
    curl -q -fsS --noproxy '*' --max-time 5 "http://127.0.0.1:${metrics_port[$1]}/metrics" |
        awk -v k="steward_backup_uploads_total{result=\"$2\"}" '$1 == k { print $2; found = 1 } END { if (!found) print -1 }'
}
# location NAME ID: where `backup list` says backup ID is (local, remote, both; "" if unlisted).
location() {
    stw "$1" --json backup list --database "$DB" |
        jq -r --arg id "$2" '[.data[]? | select(.id == $id) | .location // ""][0] // ""'
}
# wait_location NAME ID WHERE: waits up to 120 s until `backup list` shows ID at WHERE.
wait_location() {
    local deadline=$((SECONDS + 120)) at
    while :; do
        at=$(location "$1" "$2")
        [ "$at" = "$3" ] && return 0
        [ "$SECONDS" -lt "$deadline" ] || { stw "$1" backup status >&2 || true; tail -n 20 "$tmp/steward-$1/steward.log" >&2; die "backup $2 of steward ($1) is at '$at', not '$3', after 120 s"; }
        sleep 0.2
    done
}

say "starting three steward daemons with [backup.remote]: gzip -6, zstd -3, and gzip -6 with local_keep = 0"
start_steward gzip gzip 6 bench
start_steward zstd zstd 3 bench-zstd
start_steward restore gzip 6 bench-restore "local_keep = 0"

# --- measuring ------------------------------------------------------------------------------

T=0
timed() {
    local t0 t1
    t0=$(now)
    "$@"
    t1=$(now)
    T=$(elapsed "$t0" "$t1")
}
# Before each timed step: nothing left to flush from the one before.
settle() {
    sql -d postgres -c CHECKPOINT
    sync
}

# Peak RSS of a steward daemon over one operation: reset VmHWM, sample VmRSS meanwhile (as in
# benches/backup.sh).
rss_pid=0 rss_sampler=0
rss_begin() {
    rss_pid=$1
    reset_hwm "$rss_pid" || say "warning: cannot reset VmHWM of $rss_pid; its peak since start is reported"
    rm -f "$tmp/rss.stop" "$tmp/rss.sampled"
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
# better BEST T: T beats the best so far (BEST empty: the first round).
better() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a == "" || b + 0 < a + 0) }'; }
RSS_HWM=0 RSS_SAMPLED=0
rss_end() {
    touch "$tmp/rss.stop"
    wait "$rss_sampler" || true
    RSS_HWM=$(status_kb "$rss_pid" VmHWM)
    RSS_SAMPLED=$(cat "$tmp/rss.sampled" 2>/dev/null || echo 0)
}

# (a) without steward: dump, compress, stream to the bucket (multipart, from stdin).
backup_cli() {
    "${pg[@]}" "$PG_DUMP" -Fp "$DB" | gzip -6 |
        "${aws_cli[@]}" s3 cp - "$CLI_OBJECT" --endpoint-url "$S3_ENDPOINT" --no-progress --only-show-errors
}
# (a) with steward: `backup create --wait`, then the wait until the daemon counts the upload
# as checked. Sets T (the whole), T_CREATE (create --wait alone), T_UPLOAD (the rest) and META
# (the backup's JSON).
META='' T_CREATE=0 T_UPLOAD=0
backup_steward() {
    local name=$1 out=$tmp/create-$1.json before failed_before t0 t1 t2 n f deadline
    before=$(uploads "$name" success)
    failed_before=$(uploads "$name" failure)
    [ "$before" -ge 0 ] || die "steward ($name) has no steward_backup_uploads_total on /metrics"
    t0=$(now)
    stw "$name" --json backup create --database "$DB" --wait >"$out" ||
        { cat "$out" >&2; tail -n 20 "$tmp/steward-$name/steward.log" >&2; die "steward backup ($name) failed"; }
    t1=$(now)
    deadline=$((SECONDS + 600))
    while :; do
        n=$(uploads "$name" success)
        [ "$n" -gt "$before" ] && break
        f=$(uploads "$name" failure)
        if [ "$f" -gt "$failed_before" ] || [ "$SECONDS" -ge "$deadline" ]; then
            stw "$name" backup status >&2 || true
            tail -n 20 "$tmp/steward-$name/steward.log" >&2
            die "the upload of steward ($name)'s backup failed or did not end within 600 s"
        fi
        sleep 0.05
    done
    t2=$(now)
    T=$(elapsed "$t0" "$t2") T_CREATE=$(elapsed "$t0" "$t1") T_UPLOAD=$(elapsed "$t1" "$t2")
    META=$(jq -ce '.data | if type == "array" then .[0] else . end' "$out") ||
        { cat "$out" >&2; die "unexpected reply to backup create ($name)"; }
    [ "$(jq -r '.status' <<<"$META")" = good ] || { printf '%s\n' "$META" >&2; die "steward backup ($name) is not good"; }
}

say "warm-up dump (untimed)"
"${pg[@]}" "$PG_DUMP" -Fp "$DB" >/dev/null

# The restore daemon's one backup, untimed: local_keep = 0 leaves it in the bucket alone.
say "the backup the restores start from: steward (restore) backup create, upload, local_keep = 0"
backup_steward restore
id_rst=$(jq -r '.id' <<<"$META")
rst_stored=$(jq -r '.stored_bytes' <<<"$META")
wait_location restore "$id_rst" remote

t_cli='' t_sgz='' t_szst='' hwm_sgz='' smp_sgz='' hwm_szst='' smp_szst=''
split_sgz='' split_szst='' meta_sgz='' meta_szst=''
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq 1 "$RUNS"); do
    say "run $run/$RUNS: pg_dump | gzip -6 | aws s3 cp -"
    settle
    timed backup_cli
    t_cli=$(min "$t_cli" "$T")
    for name in gzip zstd; do
        say "run $run/$RUNS: steward ($name) backup create --wait + upload"
        settle
        rss_begin "${steward_pid[$name]}"
        backup_steward "$name"
        rss_end
        id=$(jq -r '.id' <<<"$META")
        wait_location "$name" "$id" both
        if [ "$name" = gzip ]; then
            hwm_sgz=$(max "$hwm_sgz" "$RSS_HWM") smp_sgz=$(max "$smp_sgz" "$RSS_SAMPLED")
            if better "$t_sgz" "$T"; then split_sgz="$T_CREATE $T_UPLOAD"; fi
            t_sgz=$(min "$t_sgz" "$T") meta_sgz=$META
        else
            hwm_szst=$(max "$hwm_szst" "$RSS_HWM") smp_szst=$(max "$smp_szst" "$RSS_SAMPLED")
            if better "$t_szst" "$T"; then split_szst="$T_CREATE $T_UPLOAD"; fi
            t_szst=$(min "$t_szst" "$T") meta_szst=$META
        fi
    done
done
s_cli=$("${aws_cli[@]}" s3api head-object --bucket "$BUCKET" --key cli/x.sql.gz \
    --endpoint-url "$S3_ENDPOINT" --query ContentLength --output text)
s_sgz=$(jq -r '.stored_bytes' <<<"$meta_sgz")
s_szst=$(jq -r '.stored_bytes' <<<"$meta_szst")
dump_bytes=$(jq -r '.dump_bytes' <<<"$meta_sgz")
[[ $s_cli =~ ^[0-9]+$ && $s_sgz =~ ^[0-9]+$ && $s_szst =~ ^[0-9]+$ && $rst_stored =~ ^[0-9]+$ ]] ||
    die "sizes not found: CLI object $s_cli, steward $s_sgz / $s_szst / $rst_stored"

# (b) without steward: a new database, the object streamed from the bucket into psql.
restore_cli() {
    "${pg[@]}" "$CREATEDB" -T template0 "$1"
    "${aws_cli[@]}" s3 cp "$CLI_OBJECT" - --endpoint-url "$S3_ENDPOINT" --no-progress --only-show-errors |
        gunzip | "${pg[@]}" "$PSQL" -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$1" -f - >/dev/null
}
check_and_drop() {
    local got
    got=$(row_counts "$1")
    [ "$got" = "$counts_src" ] || die "$1 holds other row counts than $DB: $got, expected $counts_src"
    sql -d postgres -c "DROP DATABASE $1"
}
# stw_or_die NAME OUT ARGS…: a steward client command with --json, its reply in OUT.
stw_or_die() {
    local name=$1 out=$2
    shift 2
    stw "$name" --json "$@" >"$out" ||
        { cat "$out" >&2; tail -n 20 "$tmp/steward-$name/steward.log" >&2; die "steward ($name) $* failed"; }
}

# Can this build restore a backup the bucket alone holds? Tried once, untimed.
say "can steward restore a remote-only backup directly? (untimed try)"
if stw restore --json backup restore "$id_rst" --target-db steward_probe >"$tmp/probe.json" 2>&1; then
    restore_mode=direct
    check_and_drop steward_probe
    wait_location restore "$id_rst" remote
else
    restore_mode=fetch
    probe_error=$(jq -r '.error // .message // empty' "$tmp/probe.json" 2>/dev/null || true)
    [ -n "$probe_error" ] || probe_error=$(head -c 300 "$tmp/probe.json")
    say "no ($probe_error): timing backup fetch + backup restore"
    [ "$(location restore "$id_rst")" = remote ] || die "backup $id_rst is no longer remote-only after the failed try"
fi
# restore_steward DB: from the bucket alone into a new database; sets T, T_FETCH, T_RESTORE.
T_FETCH=0 T_RESTORE=0
restore_steward() {
    local t0 t1 t2
    t0=$(now)
    if [ "$restore_mode" = fetch ]; then
        stw_or_die restore "$tmp/fetch.json" backup fetch "$id_rst"
    fi
    t1=$(now)
    stw_or_die restore "$tmp/restore.json" backup restore "$id_rst" --target-db "$1"
    t2=$(now)
    T=$(elapsed "$t0" "$t2") T_FETCH=$(elapsed "$t0" "$t1") T_RESTORE=$(elapsed "$t1" "$t2")
}

t_rcli='' t_rstw='' hwm_rst='' smp_rst='' split_rst=''
for run in $(seq 1 "$RUNS"); do
    say "run $run/$RUNS: createdb + aws s3 cp - | gunzip | psql -1 (into cli_$run)"
    settle
    timed restore_cli "cli_$run"
    t_rcli=$(min "$t_rcli" "$T")
    check_and_drop "cli_$run"
    if [ "$restore_mode" = fetch ]; then
        say "run $run/$RUNS: steward backup fetch $id_rst + backup restore --target-db steward_$run"
    else
        say "run $run/$RUNS: steward backup restore $id_rst --target-db steward_$run (from the bucket)"
    fi
    settle
    rss_begin "${steward_pid[restore]}"
    restore_steward "steward_$run"
    rss_end
    hwm_rst=$(max "$hwm_rst" "$RSS_HWM") smp_rst=$(max "$smp_rst" "$RSS_SAMPLED")
    if better "$t_rstw" "$T"; then split_rst="$T_FETCH $T_RESTORE"; fi
    t_rstw=$(min "$t_rstw" "$T")
    check_and_drop "steward_$run"
    # Back to the bucket alone for the next round (untimed): the fetched copy goes.
    if [ "$restore_mode" = fetch ] && [ "$run" -lt "$RUNS" ]; then
        stw_or_die restore "$tmp/delete.json" backup delete "$id_rst" --force
        wait_location restore "$id_rst" remote
    fi
done

# --- report ---------------------------------------------------------------------------------

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
rss_cell() { awk -v h="$1" -v s="$2" 'BEGIN { printf "%6.1f   (VmHWM %.1f, VmRSS sampled %.1f)", ((h > s) ? h : s) / 1024, h / 1024, s / 1024 }'; }
rss_sgz=$(max "$hwm_sgz" "$smp_sgz")
rss_szst=$(max "$hwm_szst" "$smp_szst")
rss_rst=$(max "$hwm_rst" "$smp_rst")
read -r c_sgz u_sgz <<<"$split_sgz"
read -r c_szst u_szst <<<"$split_szst"
read -r f_rst r_rst <<<"$split_rst"
steward_version=$("$STEWARD_BIN" --version 2>&1 | head -n 1 || true)
pg_dump_version=$("$PG_DUMP" --version | head -n 1)
server_version=$(sql -d "$DB" -c 'SHOW server_version')
aws_version=$("${aws_cli[@]}" --version 2>&1 | head -n 1 | awk '{ print $1, $2 }')
moto_version=$("$(dirname "$MOTO")/python" -c 'import moto; print(moto.__version__)' 2>/dev/null ||
    python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')
if [ "$restore_mode" = fetch ]; then
    rst_label="steward backup fetch + backup restore"
    rst_note="restoring a remote-only backup directly is refused by this build ($probe_error)"
else
    rst_label="steward backup restore (from the bucket)"
    rst_note="this build restores a remote-only backup straight from the bucket"
fi

echo
echo "steward off-site backups vs pg_dump | gzip | aws s3 cp — $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "  $steward_version; $pg_dump_version; server $server_version (throwaway cluster, fsync off)"
echo "  $(gzip --version | head -n 1); $aws_version; moto_server $moto_version on 127.0.0.1 (in memory)"
echo "  database $DB: $(mb "$db_bytes") MB on disk (pgbench -s $SCALE + $EVENTS rows of bench_events);" \
    "plain dump $(mb "$dump_bytes") MB"
echo "  best of $RUNS interleaved run(s), each after CHECKPOINT + sync; steward's backup time ends when"
echo "  its upload is checked (uploads_total{result=\"success\"}); every restored database's row counts"
echo "  checked against $DB; restore: $rst_note"
echo "  load average when the timings began: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-50s %9s %10s\n' "" "wall (s)" "size (MB)"
printf '%-50s %9.2f %10s\n' "pg_dump | gzip -6 | aws s3 cp -" "$t_cli" "$(mb "$s_cli")"
printf '%-50s %9.2f %10s\n' "steward gzip 6: backup create --wait + upload" "$t_sgz" "$(mb "$s_sgz")"
printf '%-50s %9.2f\n' "  of which backup create --wait" "$c_sgz"
printf '%-50s %9.2f\n' "  of which the upload, until checked" "$u_sgz"
printf '%-50s %9.2f %10s\n' "steward zstd 3: backup create --wait + upload" "$t_szst" "$(mb "$s_szst")"
printf '%-50s %9.2f\n' "  of which backup create --wait" "$c_szst"
printf '%-50s %9.2f\n' "  of which the upload, until checked" "$u_szst"
printf '%-50s %9.2f %10s\n' "createdb + aws s3 cp - | gunzip | psql -1" "$t_rcli" "$(mb "$s_cli")"
printf '%-50s %9.2f %10s\n' "$rst_label" "$t_rstw" "$(mb "$rst_stored")"
if [ "$restore_mode" = fetch ]; then
    printf '%-50s %9.2f\n' "  of which backup fetch" "$f_rst"
    printf '%-50s %9.2f\n' "  of which backup restore" "$r_rst"
fi
echo
printf '%-50s %s\n' "steward peak RSS (MB), gzip backup + upload" "$(rss_cell "$hwm_sgz" "$smp_sgz")"
printf '%-50s %s\n' "                       zstd backup + upload" "$(rss_cell "$hwm_szst" "$smp_szst")"
printf '%-50s %s\n' "                       restore from the bucket" "$(rss_cell "$hwm_rst" "$smp_rst")"
echo

awk -v tsg="$t_sgz" -v tc="$t_cli" -v tsz="$t_szst" -v trs="$t_rstw" -v trc="$t_rcli" \
    -v r1="$rss_sgz" -v r2="$rss_szst" -v r3="$rss_rst" '
    function verdict(ok) { return ok ? "PASS" : "MISS" }
    BEGIN {
        a = (tc > 0) ? tsg / tc : 0
        z = (tc > 0) ? tsz / tc : 0
        b = (trc > 0) ? trs / trc : 0
        r = r1; if (r2 > r) r = r2; if (r3 > r) r = r3
        r /= 1024
        printf "%-52s %10s   %-10s %s\n", "ratio", "value", "target", "result"
        printf "%-52s %9.3fx   %-10s %s\n", "steward gzip backup + upload / CLI pipeline", a, "<= 0.60x", verdict(a <= 0.6)
        printf "%-52s %9.3fx   %-10s %s\n", "steward zstd backup + upload / CLI pipeline", z, "-", "(reference)"
        printf "%-52s %9.3fx   %-10s %s\n", "steward restore from the bucket / CLI restore", b, "<= 1.00x", verdict(b <= 1.0)
        printf "%-52s %8.1fMB   %-10s %s\n", "steward peak RSS (backups + upload, restore)", r, "< 96 MB", verdict(r < 96)
    }'
