//! Test harness: throwaway PostgreSQL and Redis servers, and the `steward` binary run against
//! them with a temporary config. Nothing is mocked; every test owns its own ports and dirs, so
//! tests can run in parallel and may stop, kill or break their servers freely.
//!
//! Conditions are always awaited with a bounded poll ([`wait_until`]), never a bare sleep.

#![allow(dead_code)]

pub mod audit_check;
pub mod faults;
pub mod peers;
pub mod pg_standby;
pub mod prom_query;
pub mod redis_extra;
pub mod s3;
pub mod tls;
pub mod tmpfs;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use steward::control::protocol::{
    HealthReply, InfoReply, ReloadReply, Reply, Service, StatusReply, TaskInfo, TaskState,
};

/// The binary under test.
pub const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

/// Check interval the harness configures for both services.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Check timeout the harness configures for both services.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// Shutdown timeout the harness configures.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Scheduling slack on top of the promised bounds: tests run in parallel on two cores.
pub const SLACK: Duration = Duration::from_secs(3);

/// Environment variables that would change what the daemon or client reads; removed from every
/// child so that the tests are hermetic whatever the CI environment sets.
const SCRUBBED_ENV: &[&str] = &[
    "STEWARD_CONFIG",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "MONITORING_INTERVAL",
    "REDIS_MAX_CONNECTIONS",
    "REDIS_SOCKET_TIMEOUT",
    "RUST_LOG",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSERVICE",
    "PGPASSFILE",
    "PGOPTIONS",
];

// ---------------------------------------------------------------------------------------------
// Generic helpers
// ---------------------------------------------------------------------------------------------

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    if !poll(timeout, &mut cond) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn poll(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh, distinctive password: easy to grep for in anything steward prints.
pub fn random_password() -> String {
    format!("pw-{}", random_hex(12))
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when running as root.
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A short temp dir under /tmp (Unix socket paths must stay under ~100 bytes).
pub fn short_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temp dir in /tmp")
}

fn hermetic(cmd: &mut Command) -> &mut Command {
    for k in SCRUBBED_ENV {
        cmd.env_remove(k);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("STEWARD_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs a command to completion, panicking with its output if it fails.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `sig` to `pid`.
pub fn send_signal(pid: u32, sig: i32) {
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Output of a client command
// ---------------------------------------------------------------------------------------------

/// What a `steward` client invocation did.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// The stdout parsed as one reply line (`--json`).
    pub fn reply(&self) -> Reply {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not a JSON reply ({e}): {self:?}"))
    }

    /// The payload of a `--json` reply to `status` or `health`, which exit 1 (with an ok
    /// reply) when a service is down: for tests whose steward has no services.
    pub fn served<T: serde::de::DeserializeOwned>(&self) -> T {
        assert!(matches!(self.code, 0 | 1), "no answer: {self:?}");
        let r = self.reply();
        assert!(r.ok, "error reply: {self:?}");
        serde_json::from_value(r.data.clone())
            .unwrap_or_else(|e| panic!("unexpected reply shape ({e}): {}", self.stdout))
    }

    /// Whether a `status` or `health` got an answer (exit 0, or 1 with a service down).
    pub fn answered(&self) -> bool {
        matches!(self.code, 0 | 1) && self.reply().ok
    }

    /// The payload of a successful `--json` reply.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> T {
        assert_eq!(self.code, 0, "command failed: {self:?}");
        let r = self.reply();
        assert!(r.ok, "error reply: {self:?}");
        serde_json::from_value(r.data.clone())
            .unwrap_or_else(|e| panic!("unexpected reply shape ({e}): {}", self.stdout))
    }

    /// stdout and stderr together, for "appears nowhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Bound for one client command: generous, because a backup of the fault tests' 100 MB table
/// on a loaded 2-core CI machine took over a minute (a bound, not a speed assertion).
const CMD_BOUND: Duration = Duration::from_secs(240);

/// Runs the steward binary with `args` (cwd `cwd`, extra `env`), bounded by [`CMD_BOUND`].
pub fn steward_cmd(args: &[&str], cwd: &Path, env: &[(String, String)]) -> CmdOutput {
    let mut cmd = Command::new(STEWARD);
    hermetic(&mut cmd);
    cmd.args(args)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {STEWARD}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + CMD_BOUND;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`steward {}` did not finish within {CMD_BOUND:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    CmdOutput {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

fn pg_bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.join("initdb").exists() {
                return p;
            }
        }
    }
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().expect(
        "PostgreSQL server binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)",
    )
}

fn postgres_ids() -> (u32, u32) {
    let name = CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root but there is no `postgres` user to run the server as"
    );
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

/// Database the app role owns and steward monitors.
pub const PG_DB: &str = "steward";
/// Role steward connects as, over TCP with a password.
pub const PG_USER: &str = "steward_app";

/// A throwaway PostgreSQL cluster on a free port; stopped and removed on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    as_postgres_user: bool,
    pub port: u16,
    /// Password of [`PG_USER`].
    pub password: String,
}

impl Postgres {
    /// initdb + start + a `steward_app` role (password auth over TCP) owning database `steward`.
    pub fn start() -> Postgres {
        let dir = short_tempdir("stw-pg-");
        let as_postgres_user = is_root();
        if as_postgres_user {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown pg temp dir");
        }
        let mut pg = Postgres {
            dir,
            bindir: pg_bindir(),
            as_postgres_user,
            port: free_port(),
            password: random_password(),
        };
        run_ok(
            pg.cmd("initdb").args(["-D"]).arg(pg.data_dir()).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            "initdb",
        );
        let conf = format!(
            "\n# test harness\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nfull_page_writes = off\nmax_connections = 30\n\
             shared_buffers = 16MB\n",
            pg.port,
            pg.dir.path().display()
        );
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(pg.data_dir().join("postgresql.conf"))
            .unwrap();
        f.write_all(conf.as_bytes()).unwrap();
        drop(f);
        // Another test may take the picked port before the server binds it: pick another.
        for attempt in 1.. {
            match pg.start_server() {
                Ok(()) => break,
                Err(e) if attempt < 4 && e.contains("Address already in use") => {
                    pg.port = free_port();
                    let mut f = fs::OpenOptions::new()
                        .append(true)
                        .open(pg.data_dir().join("postgresql.conf"))
                        .unwrap();
                    writeln!(f, "port = {}", pg.port).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        pg.psql_as_postgres(&format!(
            "CREATE ROLE {PG_USER} LOGIN PASSWORD '{}'",
            pg.password
        ));
        pg.psql_as_postgres(&format!("CREATE DATABASE {PG_DB} OWNER {PG_USER}"));
        pg
    }

    /// The URL steward should use: TCP, password auth, database owned by the role.
    pub fn url(&self) -> String {
        self.url_with_password(&self.password)
    }

    /// Same URL with another password (to provoke authentication errors).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://{PG_USER}:{password}@127.0.0.1:{}/{PG_DB}",
            self.port
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's client programs (psql, createdb, pg_restore), for scripts run as a user
    /// would run them.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The server log (for failure messages).
    pub fn server_log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn cmd(&self, prog: &str) -> Command {
        let bin = self.bindir.join(prog);
        let mut c = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        hermetic(&mut c);
        c.current_dir(self.dir.path());
        c
    }

    /// Runs SQL as the superuser over the Unix socket; returns psql's unaligned output.
    pub fn psql_as_postgres(&self, sql: &str) -> String {
        self.psql(sql, "postgres", "postgres")
    }

    /// Runs SQL as `user` on `db` over the Unix socket (trust auth).
    pub fn psql(&self, sql: &str, user: &str, db: &str) -> String {
        run_ok(
            self.cmd("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.dir.path())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    user,
                    "-d",
                    db,
                    "-c",
                    sql,
                ]),
            &format!("psql {sql:?}"),
        )
    }

    /// `pg_dump --schema-only` of `db` as the superuser: the text two databases are compared by.
    pub fn schema_dump(&self, db: &str) -> String {
        run_ok(
            self.cmd("pg_dump")
                .args(["--schema-only", "-h"])
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db]),
            &format!("pg_dump --schema-only {db}"),
        )
    }

    /// psql on the server's socket as `user` on `db`, without a command yet: for sessions a
    /// test keeps open or commands allowed to fail.
    pub fn psql_cmd(&self, user: &str, db: &str) -> Command {
        let mut cmd = self.cmd("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", user, "-d", db]);
        cmd
    }

    /// A psql session kept open as `user` on `db` that has run `sql` (sent, not awaited):
    /// a lock holder, an idle pool connection. Kill it to end the session.
    pub fn session(&self, user: &str, db: &str, sql: &str) -> std::process::Child {
        let mut child = self
            .psql_cmd(user, db)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn psql");
        writeln!(child.stdin.as_mut().unwrap(), "{sql}").expect("write to psql");
        child
    }

    /// Like [`Postgres::psql`], but a failure is returned (stderr) instead of panicking.
    pub fn try_psql(&self, sql: &str, user: &str, db: &str) -> Result<String, String> {
        let out = self
            .psql_cmd(user, db)
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn start_server(&self) -> Result<(), String> {
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl start");
        if !out.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}{}\n--- server log\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&self.server_log(), 30)
            ));
        }
        Ok(())
    }

    /// Starts the (stopped or killed) server again on the same port; retries for a while after
    /// a kill -9, while the old backends are still going away.
    pub fn start_again(&self) {
        let mut last = String::new();
        let ok = poll(Duration::from_secs(30), || {
            let out = self
                .cmd("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_file())
                .args(["-w", "-t", "60", "start"])
                .stdin(Stdio::null())
                .output()
                .expect("run pg_ctl start");
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out.status.success()
        });
        assert!(
            ok,
            "pg_ctl start (again) failed: {last}\n--- server log\n{}",
            tail(&self.server_log(), 30)
        );
        wait_until(
            Duration::from_secs(30),
            "postgres accepting TCP connections",
            || port_open(self.port),
        );
    }

    /// `pg_ctl stop -m fast`: clean shutdown, clients disconnected.
    pub fn stop(&self) {
        run_ok(
            self.cmd("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "60", "stop"]),
            "pg_ctl stop",
        );
        wait_until(Duration::from_secs(10), "postgres port closed", || {
            !port_open(self.port)
        });
    }

    /// The postmaster's pid, from postmaster.pid.
    pub fn postmaster_pid(&self) -> Option<u32> {
        // postmaster.pid is readable by its owner only; as root we can read it anyway.
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// SIGKILL to the postmaster (a crash); waits until the port is closed.
    pub fn kill9(&self) {
        let pid = self.postmaster_pid().expect("postmaster.pid");
        send_signal(pid, libc::SIGKILL);
        wait_until(
            Duration::from_secs(10),
            "killed postgres to close its port",
            || !port_open(self.port),
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "20", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !stopped {
            if let Some(pid) = self.postmaster_pid() {
                if port_open(self.port) {
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// A throwaway `redis-server` (no persistence, password required) as a child process.
pub struct Redis {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    pub password: String,
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            dir: short_tempdir("stw-redis-"),
            child: None,
            port: free_port(),
            password: random_password(),
        };
        // Another test may take the picked port before the server binds it: pick another.
        for _ in 0..3 {
            if r.try_spawn() {
                return r;
            }
            if !r.log().contains("Address already in use") {
                break;
            }
            if let Some(mut c) = r.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            r.port = free_port();
        }
        r.spawn();
        r
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// `redis://:PASSWORD@127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        self.url_with_password(&self.password)
    }

    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/0", self.port)
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "redis-server did not answer PING\n--- log\n{}",
            self.log()
        );
    }

    /// Starts redis-server on `self.port`; true once it answers PING.
    fn try_spawn(&mut self) -> bool {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args([
                "--requirepass",
                &self.password,
                "--daemonize",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn redis-server (is it installed?)");
        self.child = Some(child);
        poll(Duration::from_secs(20), || {
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            exited || matches!(self.command(&["PING"]), Ok(r) if r == "+PONG")
        }) && matches!(self.command(&["PING"]), Ok(r) if r == "+PONG")
    }

    /// One command over a fresh connection (AUTH first); returns the raw reply (first line, or
    /// the bulk string's content).
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let enc = |args: &[&str]| {
            let mut b = format!("*{}\r\n", args.len());
            for a in args {
                b.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            b
        };
        s.write_all(enc(&["AUTH", &self.password]).as_bytes())?;
        s.write_all(enc(args).as_bytes())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        if line.trim_end() != "+OK" {
            return Err(std::io::Error::other(format!("AUTH: {}", line.trim_end())));
        }
        line.clear();
        r.read_line(&mut line)?;
        let line = line.trim_end().to_string();
        if let Some(n) = line.strip_prefix('$') {
            let n: i64 = n.parse().map_err(std::io::Error::other)?;
            if n < 0 {
                return Ok(String::new());
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(n as usize);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        Ok(line)
    }

    /// Writes `n` keys `<prefix><i>` (value `v<i>`) with MSETs of 1000 keys over one connection.
    pub fn fill(&self, prefix: &str, n: usize) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let enc = |args: &[String]| {
            let mut b = format!("*{}\r\n", args.len());
            for a in args {
                b.push_str(&format!("${}\r\n{a}\r\n", a.len()));
            }
            b
        };
        let mut out = enc(&["AUTH".into(), self.password.clone()]);
        let mut commands = 1;
        for start in (0..n).step_by(1000) {
            let mut args = vec!["MSET".to_string()];
            for i in start..(start + 1000).min(n) {
                args.push(format!("{prefix}{i}"));
                args.push(format!("v{i}"));
            }
            out += &enc(&args);
            commands += 1;
        }
        s.write_all(out.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        for _ in 0..commands {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, "+OK\r\n", "filling {prefix}");
        }
    }

    /// SIGKILL to the server; waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_until(
            Duration::from_secs(10),
            "killed redis to close its port",
            || !port_open(self.port),
        );
    }

    /// Starts it again on the same port (empty, same password).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is still running");
        self.spawn();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics text
// ---------------------------------------------------------------------------------------------

/// One sample line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses the sample lines (comments skipped). Panics on a line it cannot read.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let name = line[..name_end].to_string();
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if rest.starts_with('{') {
            let body = &rest[1..];
            let mut chars = body.char_indices().peekable();
            let mut key = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        let (_, q) = chars.next().expect("label value");
                        assert_eq!(q, '"', "bad label in {line:?}");
                        let mut val = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|x| x.1) {
                                    Some('n') => val.push('\n'),
                                    Some(o) => val.push(o),
                                    None => {}
                                },
                                '"' => break,
                                o => val.push(o),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), val);
                    }
                    o => key.push(o),
                }
            }
            let end = end.unwrap_or_else(|| panic!("unterminated labels in {line:?}"));
            rest = &body[end + 1..];
        }
        let v = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value = parse_value(v).unwrap_or_else(|| panic!("bad value in {line:?}"));
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the sample `name` whose labels include all of `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    parse_metrics(text)
        .into_iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// `promtool check metrics` on `body`: whether it exited 0, and what it printed (stdout then
/// stderr; empty when it has nothing to say).
pub fn promtool_check_metrics(body: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is required for this test but cannot be run ({e}); install the Debian \
                 package `prometheus` (tests/run.sh does)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A tiny HTTP/1.0 GET: (status, headers lowercased, body).
pub fn http_get_full(port: u16, path: &str) -> std::io::Result<(u16, String, String)> {
    http_full(port, "GET", path, None)
}

/// One HTTP/1.0 request to 127.0.0.1:`port`, with an optional JSON body: (status, headers
/// lowercased, body de-chunked).
pub fn http_full(
    port: u16,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
    http_with_headers(port, method, path, &[], json)
}

/// [`http_full`] with extra request headers (`Authorization`, say).
pub fn http_with_headers(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: Option<&str>,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.set_write_timeout(Some(Duration::from_secs(15)))?;
    let mut req =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req += &format!("{name}: {value}\r\n");
    }
    if let Some(body) = json {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    req += "\r\n";
    req += json.unwrap_or_default();
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let status: u16 = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, head, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Control socket, raw
// ---------------------------------------------------------------------------------------------

/// One connection to the control socket, for protocol-level tests.
pub struct ControlConn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl ControlConn {
    pub fn connect(path: &Path) -> std::io::Result<ControlConn> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.set_write_timeout(Some(Duration::from_secs(15)))?;
        Ok(ControlConn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    /// Writes raw bytes (the caller adds the newline).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Reads one reply line.
    pub fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "daemon closed the connection",
            ));
        }
        Ok(line)
    }

    /// Sends `line` + newline, reads and parses the reply.
    pub fn request(&mut self, line: &str) -> std::io::Result<Reply> {
        self.send_raw(format!("{line}\n").as_bytes())?;
        let reply = self.read_line()?;
        serde_json::from_str(reply.trim())
            .map_err(|e| std::io::Error::other(format!("reply is not JSON ({e}): {reply:?}")))
    }
}

// ---------------------------------------------------------------------------------------------
// steward
// ---------------------------------------------------------------------------------------------

/// What goes into the temp config file. Rendered to TOML by [`Settings::render`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` leaves `[postgres] url` out of the file (e.g. when DATABASE_URL provides it).
    pub pg_url: Option<String>,
    pub redis_url: Option<String>,
    pub pg_interval: String,
    pub pg_timeout: String,
    pub redis_interval: String,
    pub redis_timeout: String,
    /// Extra raw lines for the `[postgres]` / `[redis]` sections.
    pub pg_extra: String,
    pub redis_extra: String,
    pub metrics_listen: String,
    pub socket: PathBuf,
    pub control_mode: String,
    /// Extra raw lines for `[control]` (group, allow/admin lists).
    pub control_extra: String,
    /// `[audit] path`: inside the test's own dir.
    pub audit_path: PathBuf,
    pub state_dir: PathBuf,
    pub shutdown_timeout: String,
    pub log_level: String,
    pub log_format: String,
    /// Raw TOML for `[backup]` and its sub-tables; by default backups go to the test's dir
    /// and the schedules are off, so no catch-up backup runs behind a test's back.
    pub backup: String,
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap() // a JSON string is a valid TOML basic string
}

impl Settings {
    pub fn render(&self) -> String {
        let mut t = String::from("# written by the steward integration tests\n[postgres]\n");
        if let Some(u) = &self.pg_url {
            t += &format!("url = {}\n", toml_str(u));
        }
        t += &format!(
            "interval = {}\ntimeout = {}\n",
            toml_str(&self.pg_interval),
            toml_str(&self.pg_timeout)
        );
        t += &self.pg_extra;
        t += "\n[redis]\n";
        if let Some(u) = &self.redis_url {
            t += &format!("url = {}\n", toml_str(u));
        }
        t += &format!(
            "interval = {}\ntimeout = {}\n",
            toml_str(&self.redis_interval),
            toml_str(&self.redis_timeout)
        );
        t += &self.redis_extra;
        t += &format!(
            "\n[metrics]\nlisten = {}\n\n[control]\nsocket = {}\nmode = {}\n{}\n[audit]\npath = {}\n\n\
             [state]\ndir = {}\n\n[shutdown]\ntimeout = {}\n\n[log]\nformat = {}\nlevel = {}\n",
            toml_str(&self.metrics_listen),
            toml_str(&self.socket.to_string_lossy()),
            toml_str(&self.control_mode),
            self.control_extra,
            toml_str(&self.audit_path.to_string_lossy()),
            toml_str(&self.state_dir.to_string_lossy()),
            toml_str(&self.shutdown_timeout),
            toml_str(&self.log_format),
            toml_str(&self.log_level),
        );
        t += "\n";
        t += &self.backup;
        t
    }
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Configures a steward run before starting it.
pub struct StewardBuilder {
    dir: tempfile::TempDir,
    pub settings: Settings,
    env: Vec<(String, String)>,
}

impl StewardBuilder {
    /// Sets an environment variable for the daemon.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn log_level(mut self, level: &str) -> Self {
        self.settings.log_level = level.into();
        self
    }

    pub fn log_format(mut self, format: &str) -> Self {
        self.settings.log_format = format.into();
        self
    }

    /// Changes the settings before the file is written.
    pub fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(&mut self.settings);
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the config, spawns `steward run`, waits until the control socket answers.
    pub fn start(self) -> Steward {
        let config_path = self.dir.path().join("steward.toml");
        fs::write(&config_path, self.settings.render()).unwrap();
        let log_path = self.dir.path().join("steward.log");
        let mut st = Steward {
            dir: self.dir,
            settings: self.settings,
            config_path,
            log_path,
            env: self.env,
            child: None,
            spawned_at: Instant::now(),
        };
        st.spawn();
        st
    }
}

/// A running `steward run` with its temp config, socket and log; killed on drop.
pub struct Steward {
    dir: tempfile::TempDir,
    pub settings: Settings,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// When the daemon was spawned.
    pub spawned_at: Instant,
}

/// URL of a PostgreSQL that is not there (connection refused).
pub fn absent_pg_url() -> String {
    format!(
        "postgres://{PG_USER}:nothing@127.0.0.1:{}/{PG_DB}",
        free_port()
    )
}

/// URL of a Redis that is not there (connection refused).
pub fn absent_redis_url() -> String {
    format!("redis://127.0.0.1:{}/0", free_port())
}

impl Steward {
    /// A builder pointing at the given servers (URLs in the config file).
    pub fn builder(pg: &Postgres, redis: &Redis) -> StewardBuilder {
        Self::builder_urls(Some(pg.url()), Some(redis.url()))
    }

    /// A builder with explicit URLs (`None`: left out of the file).
    pub fn builder_urls(pg_url: Option<String>, redis_url: Option<String>) -> StewardBuilder {
        let dir = short_tempdir("stw-");
        let settings = Settings {
            pg_url,
            redis_url,
            pg_interval: secs(INTERVAL),
            pg_timeout: secs(TIMEOUT),
            redis_interval: secs(INTERVAL),
            redis_timeout: secs(TIMEOUT),
            pg_extra: String::new(),
            redis_extra: String::new(),
            metrics_listen: format!("127.0.0.1:{}", free_port()),
            socket: dir.path().join("ctl.sock"),
            control_mode: "0600".into(),
            control_extra: String::new(),
            audit_path: dir.path().join("audit.log"),
            state_dir: dir.path().join("state"),
            shutdown_timeout: secs(SHUTDOWN_TIMEOUT),
            log_level: "debug".into(),
            log_format: "pretty".into(),
            backup: format!(
                "[backup]\ndir = {}\n\n[backup.schedule]\ndaily = \"\"\nweekly = \"\"\n",
                toml_str(&dir.path().join("backups").to_string_lossy())
            ),
        };
        StewardBuilder {
            dir,
            settings,
            env: Vec::new(),
        }
    }

    /// A daemon whose PostgreSQL and Redis are absent (for tests of the daemon itself).
    pub fn builder_without_services() -> StewardBuilder {
        Self::builder_urls(Some(absent_pg_url()), Some(absent_redis_url()))
    }

    /// Starts a daemon against both servers with the default settings.
    pub fn start(pg: &Postgres, redis: &Redis) -> Steward {
        Self::builder(pg, redis).start()
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(STEWARD);
        hermetic(&mut cmd);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.spawned_at = Instant::now();
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("spawn {STEWARD}: {e}")),
        );
        self.wait_until(
            Duration::from_secs(30),
            "the control socket to answer `status`",
            |st| {
                st.raw_request(r#"{"cmd":"status"}"#)
                    .map(|r| r.ok)
                    .unwrap_or(false)
            },
        );
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> &Path {
        &self.settings.socket
    }

    pub fn metrics_port(&self) -> u16 {
        self.settings
            .metrics_listen
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon was waited for").id()
    }

    /// True while the daemon process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Like [`wait_until`], but the panic message carries the end of the daemon's log.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        if !poll(timeout, || cond(self)) {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n--- steward log (tail)\n{}",
                tail(&self.log(), 60)
            );
        }
    }

    /// Runs `steward --socket PATH --json ARGS…`.
    pub fn ctl(&self, args: &[&str]) -> CmdOutput {
        let sock = self.socket().to_string_lossy().into_owned();
        let mut full = vec!["--socket", sock.as_str(), "--json"];
        full.extend_from_slice(args);
        let admin = audit_check::admin_command_of_args(args);
        let before = admin.map(|c| audit_check::lines_for(&self.settings.audit_path, c));
        let out = steward_cmd(&full, self.dir.path(), &[]);
        if let (Some(c), Some(n)) = (admin, before) {
            let reply = serde_json::from_str::<Reply>(out.stdout.trim()).ok();
            audit_check::assert_audited(&self.settings.audit_path, c, n, reply.as_ref());
        }
        out
    }

    /// Runs `steward --socket PATH ARGS…` (human output).
    pub fn ctl_human(&self, args: &[&str]) -> CmdOutput {
        let sock = self.socket().to_string_lossy().into_owned();
        let mut full = vec!["--socket", sock.as_str()];
        full.extend_from_slice(args);
        let admin = audit_check::admin_command_of_args(args);
        let before = admin.map(|c| audit_check::lines_for(&self.settings.audit_path, c));
        let out = steward_cmd(&full, self.dir.path(), &[]);
        if let (Some(c), Some(n), 0) = (admin, before, out.code) {
            let answered = Reply::data(&());
            audit_check::assert_audited(&self.settings.audit_path, c, n, Some(&answered));
        }
        out
    }

    /// Runs the binary with `args` only (plus the daemon's environment), in the daemon's dir.
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        steward_cmd(args, self.dir.path(), &self.env)
    }

    /// Like [`Steward::cli`] with more environment variables.
    pub fn cli_with_env(&self, args: &[&str], extra: &[(&str, &str)]) -> CmdOutput {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        steward_cmd(args, self.dir.path(), &env)
    }

    /// One raw request line over a fresh connection.
    pub fn raw_request(&self, line: &str) -> std::io::Result<Reply> {
        let admin = audit_check::admin_command_of_line(line);
        let before = admin.map(|c| audit_check::lines_for(&self.settings.audit_path, c));
        let reply = ControlConn::connect(self.socket())?.request(line)?;
        if let (Some(c), Some(n)) = (admin, before) {
            audit_check::assert_audited(&self.settings.audit_path, c, n, Some(&reply));
        }
        Ok(reply)
    }

    pub fn connect(&self) -> ControlConn {
        ControlConn::connect(self.socket())
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket().display()))
    }

    /// A successful request's payload, typed.
    pub fn request_data<T: serde::de::DeserializeOwned>(&self, line: &str) -> T {
        let r = self
            .raw_request(line)
            .unwrap_or_else(|e| panic!("{line}: {e}\n--- log\n{}", tail(&self.log(), 40)));
        assert!(r.ok, "{line} → error reply {r:?}");
        serde_json::from_value(r.data.clone())
            .unwrap_or_else(|e| panic!("{line}: unexpected reply shape ({e}): {r:?}"))
    }

    pub fn status(&self) -> StatusReply {
        self.request_data(r#"{"cmd":"status"}"#)
    }

    pub fn info(&self) -> InfoReply {
        self.request_data(r#"{"cmd":"info"}"#)
    }

    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.request_data(r#"{"cmd":"tasks"}"#)
    }

    pub fn task(&self, name: &str) -> TaskInfo {
        self.tasks()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no task named {name}"))
    }

    /// GET on the metrics listener.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let (code, _, body) = http_get_full(self.metrics_port(), path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- log\n{}", tail(&self.log(), 40)));
        (code, body)
    }

    /// The /metrics body (asserting 200).
    pub fn metrics(&self) -> String {
        let (code, body) = self.http_get("/metrics");
        assert_eq!(code, 200, "/metrics: {body}");
        body
    }

    /// One sample from /metrics.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_value(&self.metrics(), name, labels)
    }

    /// steward_up{service} as a bool (None when absent).
    pub fn up(&self, service: &str) -> Option<bool> {
        self.metric("steward_up", &[("service", service)])
            .map(|v| v == 1.0)
    }

    /// Waits until steward_up{service} equals `up`.
    pub fn wait_up(&self, service: &str, up: bool, timeout: Duration) {
        self.wait_until(
            timeout,
            &format!("steward_up{{service=\"{service}\"}} == {}", up as u8),
            |st| st.up(service) == Some(up),
        );
    }

    /// Waits until `n` more checks of `service` have finished (steward_last_check_timestamp_seconds
    /// takes `n` new values).
    pub fn wait_checks(&self, service: &str, n: usize) {
        let name = "steward_last_check_timestamp_seconds";
        let mut last = self.metric(name, &[("service", service)]);
        let mut seen = 0;
        let timeout = INTERVAL * (n as u32 + 1) + TIMEOUT * n as u32 + SLACK;
        self.wait_until(timeout, &format!("{n} more checks of {service}"), |st| {
            let now = st.metric(name, &[("service", service)]);
            if now.is_some() && now != last {
                seen += 1;
                last = now;
            }
            seen >= n
        });
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        send_signal(self.pid(), sig);
    }

    /// Waits up to `timeout` for the daemon to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("daemon");
        let mut status = None;
        poll(timeout, || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        status
    }

    /// Drops an environment variable given with the builder's `env`, for the next start.
    pub fn remove_env(&mut self, k: &str) {
        self.env.retain(|(key, _)| key != k);
    }

    /// Replaces the config file (for reload tests).
    pub fn write_config(&self, text: &str) {
        // Write then rename, so a reload never sees half a file.
        let tmp = self.dir.path().join("steward.toml.new");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// Lines of the log containing `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Steward {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "--- steward log ({})\n{}",
                self.log_path.display(),
                tail(&self.log(), 80)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Restart (tests/backup.rs)
// ---------------------------------------------------------------------------------------------

impl Steward {
    /// Starts the daemon again on the same config, dir, socket and log, after it exited or was
    /// killed (e.g. SIGKILL in the middle of a backup); waits until the socket answers.
    pub fn start_again(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        self.spawn();
    }
}

// ---------------------------------------------------------------------------------------------
// Background sessions (tests/alerts.rs)
// ---------------------------------------------------------------------------------------------

impl Postgres {
    /// Starts a superuser psql session running `sql` in the background (over the Unix socket,
    /// so it may use the reserved slots); end it with SQL such as `pg_terminate_backend`.
    pub fn psql_background(&self, sql: &str) -> Child {
        self.cmd("psql")
            .args(["-X", "-q", "-h"])
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn psql")
    }
}

// ---------------------------------------------------------------------------------------------
// Table locks (tests/backup.rs, tests/maintenance.rs)
// ---------------------------------------------------------------------------------------------

/// Holds an ACCESS EXCLUSIVE lock on a table in an open transaction, so that pg_dump waits for
/// it: a backup that stays in progress, deterministically, until the lock is released.
pub struct TableLock {
    rt: Option<tokio::runtime::Runtime>,
    client: Option<tokio_postgres::Client>,
}

impl TableLock {
    pub fn hold(pg: &Postgres, table: &str) -> TableLock {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
                .await
                .expect("connect to hold a lock");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
                .batch_execute(&format!(
                    "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
                ))
                .await
                .expect("lock the table");
            client
        });
        TableLock {
            rt: Some(rt),
            client: Some(client),
        }
    }

    /// Ends the transaction (and the connection).
    pub fn release(&mut self) {
        if let (Some(rt), Some(client)) = (self.rt.as_ref(), self.client.take()) {
            let _ = rt.block_on(client.batch_execute("ROLLBACK"));
            drop(client);
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.release();
    }
}

impl Redis {
    /// The redis-server's pid, e.g. to SIGSTOP it: an outage that keeps the data (a restart
    /// comes back empty, there is no persistence).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }
}
