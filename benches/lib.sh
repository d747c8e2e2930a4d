# shellcheck shell=bash
# What the benchmark scripts share, sourced by soak.sh, backup.sh, cache.sh, compare.sh,
# idle-symbols.sh and warmup.sh right after they `cd` to the repository root: messages, the temp
# dir and the cleanup trap that stops everything started, the steward binary and its clean
# environment, a throwaway PostgreSQL cluster, a throwaway redis-server, and small measuring
# helpers. Sourcing it only defines functions and sets the empty state (ports, pids, redis_pid,
# pg_started).
#
# Variables a script sets before using these:
#   BENCH_NAME      the script's name for messages, e.g. benches/soak.sh (required)
#   BENCH_DIE_CODE  exit status of `die` (default 1)
# Variables these set for the script: tmp, pids, PGBIN, as_pg, pgdir, PG_PORT, PG_PASSWORD,
# pg_scrub, pg, REDIS_PORT, redis_pid, STEWARD_BIN, steward_env, SPAWNED_PID, missing.

# shellcheck source=benches/ports.sh
. benches/ports.sh

# Progress for the reader, on stderr so that stdout keeps only the results.
say() { printf '==> %s\n' "$*" >&2; }
# A fatal error, named after the script; the EXIT trap cleans up.
die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit "${BENCH_DIE_CODE:-1}"; }

# cargo from rustup's default place when it is not on PATH (a root shell without ~/.cargo/env).
use_rustup_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
        export PATH="${HOME:-/root}/.cargo/bin:$PATH"
    fi
}

# ensure_tools TOOL…: installs the missing ones through tests/apt-install.sh (Debian package
# names equal to the commands); leaves what was missing in the array `missing`.
ensure_tools() {
    local tool
    missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    say "installing: ${missing[*]}"
    bash tests/apt-install.sh "${missing[@]}" || die "could not install ${missing[*]}"
    for tool in "${missing[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool still missing after apt-get install"
    done
}

# --- temp dir, cleanup ----------------------------------------------------------------------

# bench_tmp NAME [BASE]: makes the temp dir `tmp` (BASE/NAME.XXXXXX, BASE default /tmp) and
# installs the cleanup traps; call it once, before starting anything.
pids=()
redis_pid=
pg_started=0
bench_tmp() {
    tmp=$(mktemp -d "${2:-/tmp}/$1.XXXXXX")
    pgdir=$tmp/pg
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stops every process in `pids` and the current redis-server (TERM, up to 10 s, then KILL), the
# throwaway cluster if one was started (immediate stop, else KILL of its postmaster), and removes
# the temp dir. Runs on exit, also after Ctrl-C, TERM or a failure.
cleanup() {
    local pid alive
    for pid in "$redis_pid" "${pids[@]}"; do
        [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 100); do
        alive=0
        for pid in "$redis_pid" "${pids[@]}"; do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "$redis_pid" "${pids[@]}"; do
        [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$pg_started" -eq 1 ]; then
        if ! "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate -w -t 30 stop >/dev/null 2>&1; then
            pid=$(head -n 1 "$pgdir/data/postmaster.pid" 2>/dev/null || true)
            if [[ $pid =~ ^[0-9]+$ ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
        fi
    fi
    [ -z "${tmp:-}" ] || rm -rf "$tmp"
}

# pause SECONDS: a wait that Ctrl-C interrupts at once, unlike a foreground sleep.
pause() {
    sleep "$1" &
    local s=$!
    pids+=("$s")
    wait "$s"
}

# --- steward --------------------------------------------------------------------------------

# Sets STEWARD_BIN to an absolute path: the given STEWARD_BIN, else a fresh release build.
steward_binary() {
    if [ -n "${STEWARD_BIN:-}" ]; then
        [ -x "$STEWARD_BIN" ] || die "STEWARD_BIN=$STEWARD_BIN is not an executable"
        STEWARD_BIN=$(cd "$(dirname "$STEWARD_BIN")" && pwd)/$(basename "$STEWARD_BIN")
        say "using $STEWARD_BIN (not building)"
    else
        say "building steward (release)"
        cargo build --release --quiet --bin steward
        STEWARD_BIN="$PWD/${CARGO_TARGET_DIR:-target}/release/steward"
        [ -x "$STEWARD_BIN" ] || STEWARD_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/steward"
        [ -x "$STEWARD_BIN" ] || die "built steward not found under ${CARGO_TARGET_DIR:-target}/release"
    fi
}

# steward_env_init: `steward_env`, an `env` command line without the variables that would
# override a temporary config (the legacy names, every STEWARD_*, systemd's); a script may
# append more `-u VAR` to it.
steward_env_init() {
    local var
    steward_env=(env -u DATABASE_URL -u REDIS_URL -u MONITORING_INTERVAL -u REDIS_MAX_CONNECTIONS
        -u REDIS_SOCKET_TIMEOUT -u STEWARD_CONFIG -u BACKUP_RETENTION_DAYS -u BACKUP_SCHEDULE_DAILY_HOUR
        -u BACKUP_SCHEDULE_WEEKLY_DAY -u CACHE_COMPRESSION_THRESHOLD -u ALERT_THRESHOLD_RESPONSE_TIME
        -u RUST_LOG -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID -u LISTEN_FDS -u LISTEN_PID)
    while read -r var; do
        if [[ $var == STEWARD_* ]]; then steward_env+=(-u "$var"); fi
    done < <(compgen -e)
}

# steward_toml_local DIR PORT LEVEL: the part of a temporary steward.toml that is the same in
# every benchmark, for a daemon whose files are in DIR: /metrics on 127.0.0.1:PORT, control
# socket DIR/ctl.sock, state in DIR/state, log level LEVEL. Meant for $(...) inside a heredoc.
steward_toml_local() {
    cat <<EOF
[metrics]
listen = "127.0.0.1:$2"

[control]
socket = "$1/ctl.sock"

[state]
dir = "$1/state"

[log]
level = "$3"
EOF
}

# steward_toml_checked_every_second PG_URL REDIS_URL: the [postgres] and [redis] sections of a
# daemon that checks both every second (timeouts 800 ms), as benches/compare.sh measures it and
# benches/idle-symbols.sh profiles it. Meant for $(...) inside a heredoc.
steward_toml_checked_every_second() {
    cat <<EOF
[postgres]
url = "$1"
interval = "1s"
timeout = "800ms"

[redis]
url = "$2"
interval = "1s"
timeout = "800ms"
EOF
}

# steward_toml_no_schedules DIR: the [backup] section of a daemon that takes no scheduled
# backups, its backup dir DIR/backups. Meant for $(...) inside a heredoc.
steward_toml_no_schedules() {
    cat <<EOF
[backup]
dir = "$1/backups"

[backup.schedule]
daily = ""
weekly = ""
EOF
}

# steward_at SOCKET ARGS…: the steward client against the daemon on SOCKET.
steward_at() {
    local socket=$1
    shift
    "${steward_env[@]}" "$STEWARD_BIN" --socket "$socket" "$@"
}

# spawn_steward DIR: `steward run` with DIR/steward.toml, in DIR, logging to DIR/steward.log;
# its pid goes to `pids` and SPAWNED_PID. Call it in the current shell, not inside $(...).
spawn_steward() {
    (cd "$1" && exec "${steward_env[@]}" "$STEWARD_BIN" run --config "$1/steward.toml") \
        >"$1/steward.log" 2>&1 &
    SPAWNED_PID=$!
    pids+=("$SPAWNED_PID")
}

# wait_steward PID SOCKET LOG [LABEL] [VERB]: waits up to 30 s for the daemon to answer
# `status` on SOCKET (exit 0, or 1 when a service it checks is down, as Redis is in the backup
# benchmarks); dies with the end of LOG when it exits or does not answer. LABEL names it in
# messages (default steward), VERB says how it exited (default "exited").
wait_steward() {
    local pid=$1 socket=$2 log=$3 label=${4:-steward} deadline=$((SECONDS + 30)) rc
    while true; do
        rc=0
        steward_at "$socket" status >/dev/null 2>&1 || rc=$?
        [ "$rc" -le 1 ] && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "$label ${5:-exited}"; }
        [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$log" >&2; die "$label did not answer on its control socket within 30 s"; }
        sleep 0.1
    done
}

# --- throwaway PostgreSQL -------------------------------------------------------------------

# Sets PGBIN to the PostgreSQL server binaries (pg_config --bindir, else the newest
# /usr/lib/postgresql/*/bin), and `as_pg` to what runs a command as the postgres user when
# root (the server refuses to run as root), empty otherwise.
pg_tools() {
    local d
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
        d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
        if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
            die "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin); install postgresql"
        fi
    fi
    PGBIN=$d
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run the server as"
        as_pg=(runuser -u postgres --)
    else
        as_pg=()
    fi
}

# pg_client TOOL: the path of a client tool, the server's own else the one on PATH.
pg_client() { if [ -x "$PGBIN/$1" ]; then printf '%s\n' "$PGBIN/$1"; else command -v "$1"; fi; }

# A fresh 32-hex-digit password.
random_password() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# pg_create --superuser-password|--no-superuser-password < EXTRA_CONF: initdb of a cluster in
# $tmp/pg on a free port of 127.0.0.1 (PG_PORT), its unix socket in $tmp/pg, scram-sha-256 over
# TCP, trust on the socket; EXTRA_CONF (stdin) is appended to postgresql.conf. Sets
# PG_PASSWORD, the `postgres` superuser's with --superuser-password. Does not start it.
pg_create() {
    local pwfile=()
    pick_port
    PG_PORT=${ports[-1]}
    PG_PASSWORD=$(random_password)
    mkdir -m 0700 "$pgdir"
    if [ "$1" = --superuser-password ]; then
        printf '%s\n' "$PG_PASSWORD" >"$pgdir/pwfile"
        pwfile=(--pwfile="$pgdir/pwfile")
    fi
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres: "$pgdir"
        chmod 0711 "$tmp" # the postgres user has to reach $pgdir
    fi
    say "initdb of a throwaway cluster in $pgdir (port $PG_PORT)"
    "${as_pg[@]}" "$PGBIN/initdb" -D "$pgdir/data" -U postgres -A trust --auth-host=scram-sha-256 \
        "${pwfile[@]}" -E UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1 ||
        { cat "$tmp/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pgdir/pwfile"
    {
        printf '\n# %s: a throwaway cluster\n' "$BENCH_NAME"
        printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n" "$PG_PORT" "$pgdir"
        cat
    } | "${as_pg[@]}" tee -a "$pgdir/data/postgresql.conf" >/dev/null
}

# pg_ctl ARGS…: pg_ctl on the throwaway cluster, waiting up to 60 s.
pg_ctl() { "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 "$@" >/dev/null; }

# Starts the throwaway cluster; from now on cleanup stops it.
pg_start() {
    pg_started=1
    pg_ctl start || { tail -n 30 "$pgdir/postgres.log" >&2; die "pg_ctl start failed"; }
}

# Sets `pg_scrub` (env -u of every PG* variable a caller may have set) and `pg`, an env command
# line for the client tools: TCP to the cluster as postgres with its password, the way
# steward's own pg_dump and psql connect.
pg_client_env() {
    pg_scrub=(-u PGHOST -u PGHOSTADDR -u PGPORT -u PGUSER -u PGPASSWORD -u PGDATABASE -u PGSERVICE
        -u PGSERVICEFILE -u PGPASSFILE -u PGOPTIONS -u PGSSLMODE -u PGCONNECT_TIMEOUT -u PGAPPNAME)
    # shellcheck disable=SC2034 # used by the scripts
    pg=(env "${pg_scrub[@]}" PGHOST=127.0.0.1 "PGPORT=$PG_PORT" PGUSER=postgres "PGPASSWORD=$PG_PASSWORD")
}

# --- throwaway Redis ------------------------------------------------------------------------

# rcli ARGS…: redis-cli against the throwaway redis-server (with REDIS_PASSWORD when set,
# through the environment so that it is not in ps output).
rcli() {
    if [ -n "${REDIS_PASSWORD:-}" ]; then
        REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$REDIS_PORT" "$@"
    else
        redis-cli -p "$REDIS_PORT" "$@"
    fi
}

# start_redis DIR [ARGS…]: a redis-server on 127.0.0.1:REDIS_PORT (picked on the first call),
# without persistence, its files in DIR, its log appended to $tmp/redis.log, REDIS_PASSWORD (when
# set) as its password from a 0600 config file, extra ARGS passed on; waits up to 20 s for PONG. Sets redis_pid (which cleanup stops).
start_redis() {
    local dir=$1 deadline
    shift
    if [ -z "${REDIS_PORT:-}" ]; then
        pick_port
        REDIS_PORT=${ports[-1]}
    fi
    # The password goes in a 0600 config file, never on the command line (ps shows that).
    (umask 077 && printf 'requirepass "%s"\n' "${REDIS_PASSWORD:-}" >"$dir/redis.conf")
    [ -n "${REDIS_PASSWORD:-}" ] || : >"$dir/redis.conf"
    redis-server "$dir/redis.conf" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
        --appendonly no --daemonize no --dir "$dir" "$@" >>"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    deadline=$((SECONDS + 20))
    until [ "$(rcli ping 2>/dev/null)" = PONG ]; do
        kill -0 "$redis_pid" 2>/dev/null || { tail -n 20 "$tmp/redis.log" >&2; die "redis-server exited"; }
        [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$tmp/redis.log" >&2; die "redis-server did not answer"; }
        sleep 0.1
    done
}

# Stops the redis-server start_redis started, and waits for it.
stop_redis() {
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
}

# --- measuring ------------------------------------------------------------------------------

# status_kb PID FIELD: a kB figure of /proc/PID/status (VmRSS, VmHWM).
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# reset_hwm PID: resets the process's VmHWM to its current RSS (fails when not allowed).
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null; }
# Wall clock in seconds, with nanoseconds.
now() { date +%s.%N; }
# elapsed T0 T1: T1 - T0 in seconds, 3 decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# need_positive NAME VALUE: exits 2 naming the variable NAME unless VALUE is a positive integer.
need_positive() {
    [[ $2 =~ ^[1-9][0-9]*$ ]] || { printf '%s: %s must be a positive integer\n' "$BENCH_NAME" "$1" >&2; exit 2; }
}
# min A B / max A B: the smaller / larger number; A may be empty (the first round).
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }'; }

# The database of the backup benchmarks (backup.sh, offsite.sh), so that their figures compare:
# a throwaway cluster tuned for bulk loading (fsync off), database $DB from `pgbench -i -s
# $SCALE` plus $EVENTS rows of bench_events (timestamptz, md5 text, jsonb). Defines sql (psql
# on $DB's cluster as the client side of every baseline) and row_counts DB, and sets
# counts_src. Needs PSQL, CREATEDB, PGBENCH, DB, SCALE and EVENTS set, and pg_tools run.
bench_backup_database() {
    pg_create --superuser-password <<EOF
    max_connections = 20
    fsync = off
    synchronous_commit = off
    full_page_writes = off
    shared_buffers = 256MB
    maintenance_work_mem = 256MB
    max_wal_size = 4GB
    checkpoint_timeout = 30min
    autovacuum = off
EOF
    pg_start

    # The client side of every baseline command (pg): TCP to 127.0.0.1 with the password, exactly
    # the way steward's own pg_dump and psql connect; nothing from the caller's PG* environment.
    pg_client_env
    sql() { "${pg[@]}" "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

    say "building database $DB: pgbench -i -s $SCALE, then $EVENTS rows of bench_events"
    build_start=$SECONDS
    "${pg[@]}" "$CREATEDB" "$DB"
    "${pg[@]}" "$PGBENCH" -i -s "$SCALE" -q "$DB" >"$tmp/pgbench.log" 2>&1 ||
        { tail -n 20 "$tmp/pgbench.log" >&2; die "pgbench -i failed"; }
    sql -d "$DB" <<EOF
    CREATE TABLE bench_events (
        id         bigint PRIMARY KEY,
        created_at timestamptz NOT NULL,
        name       text NOT NULL,
        payload    jsonb NOT NULL
    );
    SELECT setseed(0.42);
    INSERT INTO bench_events
    SELECT g,
           timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds',
           md5(g::text),
           jsonb_build_object(
               'user_id', g % 5000,
               'session', md5((g * 31)::text),
               'score', round((random() * 1000)::numeric, 2),
               'active', g % 3 = 0,
               'tags', jsonb_build_array('t' || (g % 7), 't' || (g % 11), 't' || (g % 13)))
    FROM generate_series(1, $EVENTS) AS g;
    VACUUM ANALYZE;
    CHECKPOINT;
EOF
    db_bytes=$(sql -d "$DB" -c "SELECT pg_database_size('$DB')")
    say "database $DB: $((db_bytes / 1048576)) MB, built in $((SECONDS - build_start)) s"
    [ "$db_bytes" -ge $((500 * 1048576)) ] || die "database $DB is only $((db_bytes / 1048576)) MB; the benchmark wants at least 500 MB"
    row_counts() { sql -d "$1" -c "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM bench_events) || ' ' || (SELECT count(*) FROM pgbench_branches) || ' ' || (SELECT count(*) FROM pgbench_tellers)"; }
    counts_src=$(row_counts "$DB")
}

# The config of a backup benchmark's steward (backup.sh, offsite.sh), on stdout: the throwaway
# cluster's postgres database, Redis at REDIS_PORT (closed: not benchmarked), control and
# metrics under DIR (metrics on PORT), database $DB backed up with COMPRESSION at LEVEL, no
# schedules. Needs PG_PASSWORD, PG_PORT, REDIS_PORT and DB.
bench_steward_toml() {
    local dir=$1 port=$2 compression=$3 level=$4
    cat <<EOF
[postgres]
url = "postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
interval = "10s"
timeout = "5s"
write_read_test = false

[redis]
url = "redis://127.0.0.1:$REDIS_PORT/0"
interval = "10s"
timeout = "5s"
write_read_test = false

$(steward_toml_local "$dir" "$port" warn)

[backup]
dir = "$dir/backups"
databases = ["$DB"]
compression = "$compression"
level = $level

[backup.schedule]
daily = ""
weekly = ""
EOF
}
