//! The `steward` binary: command-line parsing, then the daemon or a control-socket client.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use steward::control::protocol::{Reply, Request, Service, TaskAction};
use steward::control::{client, render};

/// Keeps the PostgreSQL and Redis behind a web application healthy: monitors both, exports
/// Prometheus metrics, and is steered through a Unix control socket and signals.
#[derive(Parser)]
#[command(name = "steward", version, propagate_version = true)]
struct Cli {
    /// Config file [default: $STEWARD_CONFIG, else config/steward.toml, else /etc/steward/steward.toml]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control socket of the daemon [default: [control] socket of the config]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the daemon's reply as JSON, for scripts
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (SIGHUP reloads, SIGTERM/SIGINT stop)
    Run,
    /// Validate the config and print it with secrets redacted; exit 1 if invalid
    CheckConfig,
    /// Overview: services, tasks, uptime
    Status,
    /// Last check result of both services or one; exit 1 when unhealthy
    Health {
        /// postgres or redis
        service: Option<Service>,
    },
    /// Probe now and print the result; exit 1 when unhealthy
    Check {
        /// postgres or redis
        service: Option<Service>,
    },
    /// List supervised tasks with state, age and restart count
    Tasks,
    /// Restart, pause or resume one task
    Task {
        #[command(subcommand)]
        action: TaskCmd,
    },
    /// Reload the config file (same as SIGHUP)
    Reload,
    /// Version, uptime, config file, intervals, task summary
    Info,
    /// Alert rules: state (inactive, pending, firing, resolved), since, value, threshold
    Alerts,
    /// Recent checks of a service with a summary (availability, latency, incidents)
    History {
        /// postgres or redis
        service: Service,
        /// How far back, e.g. 1h or 30m [default: everything kept]
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<Duration>,
    },
    /// PostgreSQL backups: create, list, status, verify, restore, prune
    Backup {
        #[command(subcommand)]
        action: BackupCmd,
    },
    /// Maintenance mode: alerts suppressed, scheduled backups skipped, flag published in Redis
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceCmd,
    },
    /// The application's Redis cache, by namespace
    Cache {
        #[command(subcommand)]
        action: CacheCmd,
    },
}

#[derive(Subcommand)]
enum CacheCmd {
    /// Hit ratio, memory, evictions/s, eviction policy; per namespace keys, keys without TTL,
    /// TTL spread and estimated memory from the last complete scan
    Stats,
    /// Delete the keys matching a glob or a namespace (SCAN + UNLINK, never blocking Redis)
    #[command(group(clap::ArgGroup::new("what").required(true).args(["pattern", "namespace"])))]
    Clear {
        /// Redis glob, e.g. 'cache:sessions:user:42:*'
        #[arg(long, value_name = "GLOB")]
        pattern: Option<String>,
        /// Every key of this [[cache.namespace]] (its prefix)
        #[arg(long, value_name = "NAME")]
        namespace: Option<String>,
        /// Only count the keys that would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Allow '*', an empty pattern, or a pattern outside every namespace
        #[arg(long)]
        force: bool,
    },
    /// Fill a namespace from its [cache.namespace.warmup] query on PostgreSQL (default: every
    /// namespace that has one); prints rows, keys, rejected rows, bytes and time
    WarmUp {
        /// A [[cache.namespace]] name
        namespace: Option<String>,
    },
}

#[derive(Subcommand)]
enum MaintenanceCmd {
    /// Turn maintenance mode on (again: change its reason and end)
    On {
        /// Why, shown by `status` and published in Redis for the application
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// End by itself after this long, e.g. 30m or 2h [default: until `maintenance off`]
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Turn maintenance mode off
    Off,
    /// Whether it is on, since when, until when, why; the Redis key; recent periods
    Status,
}

#[derive(Subcommand)]
enum BackupCmd {
    /// Back up one database (default: each configured one) now
    Create {
        /// Database to back up
        #[arg(long)]
        database: Option<String>,
        /// Free text stored with the backup
        #[arg(long)]
        label: Option<String>,
        /// Wait until the backup is done (progress on a terminal); exit 1 if it failed
        #[arg(long)]
        wait: bool,
    },
    /// Backups in the catalog, newest first
    List {
        /// Only this database's backups
        #[arg(long)]
        database: Option<String>,
    },
    /// Last good backup per database and kind, next runs, running jobs, totals, free space
    Status,
    /// Recompute the hash, read the stream to its end, check the metadata
    Verify {
        /// A backup ID from `steward backup list`
        id: String,
        /// Also restore into a scratch database, count tables and rows, drop it
        #[arg(long)]
        restore_test: bool,
    },
    /// Verify, then restore into a new database (or replace one with --force)
    Restore {
        /// A backup ID from `steward backup list`
        id: String,
        /// Database to restore into [default: <db>_restored_<timestamp>]
        #[arg(long, value_name = "NAME")]
        target_db: Option<String>,
        /// Replace an existing non-empty database (a pre-restore backup of it is taken first)
        #[arg(long)]
        force: bool,
    },
    /// Apply retention now
    Prune {
        /// Only show what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum TaskCmd {
    /// Stop the task and start it again
    Restart { name: String },
    /// Stop the task until resumed
    Pause { name: String },
    /// Start a paused task again
    Resume { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let result = match &cli.command {
        Command::Run => run_daemon(&cli, env),
        Command::CheckConfig => check_config(&cli, &env),
        _ => run_client(&cli, &env),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("steward: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_daemon(cli: &Cli, env: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let config_file = steward::config::resolve_path(cli.config.as_deref(), &env);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("steward")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(steward::daemon::run(steward::daemon::RunOptions {
        config_file,
        env,
    }))?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

fn check_config(cli: &Cli, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let path = steward::config::resolve_path(cli.config.as_deref(), env);
    let cfg = steward::config::load(&path, env)?;
    println!(
        "# {} is valid; effective config (secrets shown as ***):\n",
        path.display()
    );
    print!("{}", cfg.to_redacted_toml());
    Ok(ExitCode::SUCCESS)
}

fn run_client(cli: &Cli, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let req = request(&cli.command);
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| socket_from_config(cli.config.as_deref(), env));
    let interactive = !cli.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let sent = match (is_long(&req), interactive) {
        (true, true) => client::request_with_progress(&socket, &req),
        (true, false) => client::request(&socket, &req, None),
        (false, _) => client::request(&socket, &req, Some(Duration::from_secs(60))),
    };
    let reply = match sent {
        Ok(r) => r,
        Err(e @ client::ClientError::NoDaemon { .. }) => {
            eprintln!("steward: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };
    if cli.json {
        println!("{}", serde_json::to_string(&reply)?);
    } else if reply.ok {
        print!("{}", render::render(&req, &reply));
        print_sparkline(&req, &reply);
    } else {
        eprintln!(
            "steward: {}",
            reply.error.as_deref().unwrap_or("request failed")
        );
    }
    Ok(exit_code(&req, &reply))
}

/// On a terminal, `history` ends with the latency sparkline, outages marked.
fn print_sparkline(req: &Request, reply: &Reply) {
    if !matches!(req, Request::History { .. })
        || !std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        return;
    }
    if let Ok(h) =
        serde_json::from_value::<steward::control::protocol::HistoryReply>(reply.data.clone())
    {
        if !h.entries.is_empty() {
            let line = steward::monitor::history::sparkline(&h.entries, 60);
            println!("latency  {line}  (\u{2717} = down)");
        }
    }
}

fn exit_code(req: &Request, reply: &Reply) -> ExitCode {
    let unhealthy = matches!(req, Request::Health { .. } | Request::Check { .. })
        && reply.data.get("healthy").and_then(|h| h.as_bool()) == Some(false);
    let failed_verify = matches!(req, Request::BackupVerify { .. })
        && reply.data.get("ok").and_then(|o| o.as_bool()) == Some(false);
    let unhealthy = unhealthy || failed_verify;
    if reply.ok && !unhealthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn request(cmd: &Command) -> Request {
    match cmd {
        Command::Status => Request::Status,
        Command::Health { service } => Request::Health { service: *service },
        Command::Check { service } => Request::Check { service: *service },
        Command::Tasks => Request::Tasks,
        Command::Task { action } => {
            let (action, name) = match action {
                TaskCmd::Restart { name } => (TaskAction::Restart, name),
                TaskCmd::Pause { name } => (TaskAction::Pause, name),
                TaskCmd::Resume { name } => (TaskAction::Resume, name),
            };
            Request::Task {
                action,
                name: name.clone(),
            }
        }
        Command::Reload => Request::Reload,
        Command::Info => Request::Info,
        Command::Alerts => Request::Alerts,
        Command::History { service, since } => Request::History {
            service: *service,
            since_seconds: since.map(|d| d.as_secs_f64()),
        },
        Command::Backup { action } => backup_request(action),
        Command::Maintenance { action } => match action {
            MaintenanceCmd::On { reason, duration } => Request::MaintenanceOn {
                reason: reason.clone(),
                for_seconds: duration.map(|d| d.as_secs_f64()),
            },
            MaintenanceCmd::Off => Request::MaintenanceOff,
            MaintenanceCmd::Status => Request::MaintenanceStatus,
        },
        Command::Cache { action } => cache_request(action),
        Command::Run | Command::CheckConfig => Request::Status,
    }
}

fn backup_request(cmd: &BackupCmd) -> Request {
    match cmd {
        BackupCmd::Create {
            database,
            label,
            wait,
        } => Request::BackupCreate {
            database: database.clone(),
            label: label.clone(),
            wait: *wait,
        },
        BackupCmd::List { database } => Request::BackupList {
            database: database.clone(),
        },
        BackupCmd::Status => Request::BackupStatus,
        BackupCmd::Verify { id, restore_test } => Request::BackupVerify {
            id: id.clone(),
            restore_test: *restore_test,
        },
        BackupCmd::Restore {
            id,
            target_db,
            force,
        } => Request::BackupRestore {
            id: id.clone(),
            target_db: target_db.clone(),
            force: *force,
        },
        BackupCmd::Prune { dry_run } => Request::BackupPrune { dry_run: *dry_run },
    }
}

fn cache_request(cmd: &CacheCmd) -> Request {
    match cmd {
        CacheCmd::Stats => Request::CacheStats,
        CacheCmd::Clear {
            pattern,
            namespace,
            dry_run,
            force,
        } => Request::CacheClear {
            pattern: pattern.clone(),
            namespace: namespace.clone(),
            dry_run: *dry_run,
            force: *force,
        },
        CacheCmd::WarmUp { namespace } => Request::CacheWarmUp {
            namespace: namespace.clone(),
        },
    }
}

/// Requests that may run for minutes: no reply timeout, progress on a terminal.
fn is_long(req: &Request) -> bool {
    matches!(
        req,
        Request::BackupCreate { wait: true, .. }
            | Request::BackupVerify { .. }
            | Request::BackupRestore { .. }
            | Request::CacheClear { .. }
            | Request::CacheWarmUp { .. }
    )
}

/// The socket path from the config, read leniently so a config the daemon would reject
/// (the reason one wants to talk to it) still yields the path.
fn socket_from_config(explicit: Option<&Path>, env: &HashMap<String, String>) -> PathBuf {
    if let Some(s) = env.get("STEWARD_CONTROL__SOCKET").filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    let path = steward::config::resolve_path(explicit, env);
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("control")?.get("socket")?.as_str().map(PathBuf::from))
        .unwrap_or_else(|| steward::config::ControlConfig::default().socket)
}
