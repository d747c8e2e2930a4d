//! The command line: clap's definitions of every command and flag, and how a client command
//! becomes a control-protocol request.

use clap::{Arg, ArgAction, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use steward::control::protocol::{Request, Service, TaskAction};

/// Keeps the PostgreSQL and Redis behind a web application healthy: monitors both, exports
/// Prometheus metrics, and is steered through a Unix control socket and signals.
#[derive(Parser)]
#[command(
    name = "steward",
    version,
    propagate_version = true,
    mut_subcommand("run", |c| hide_socket(hide_json(c))),
    mut_subcommand("check-config", hide_socket)
)]
pub(crate) struct Cli {
    /// Config file [default: $STEWARD_CONFIG, else config/steward.toml, else /etc/steward/steward.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Control socket of the daemon [default: [control] socket of the config]
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Print the daemon's reply as JSON, for scripts
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The client options mean nothing to the daemon (`run`) or to `check-config` (no socket);
/// a hidden local twin keeps clap's global from showing in their `--help`, and
/// [`Cli::daemon_only_misuse`] refuses them when given.
fn hide_socket(c: clap::Command) -> clap::Command {
    c.arg(
        Arg::new("socket")
            .long("socket")
            .hide(true)
            .value_parser(clap::value_parser!(PathBuf)),
    )
}

fn hide_json(c: clap::Command) -> clap::Command {
    c.arg(
        Arg::new("json")
            .long("json")
            .hide(true)
            .action(ArgAction::SetTrue),
    )
}

impl Cli {
    /// A client option given to a command that has no use for it, named for a usage error:
    /// `run --socket x` would otherwise be silently ignored (the daemon listens where its config
    /// says).
    pub(crate) fn daemon_only_misuse(&self) -> Option<&'static str> {
        match self.command {
            Command::Run if self.socket.is_some() => Some(
                "`run` takes no --socket: the daemon listens on [control] socket of its config",
            ),
            Command::Run if self.json => {
                Some("`run` takes no --json: the daemon logs, it does not reply")
            }
            Command::CheckConfig if self.socket.is_some() => {
                Some("`check-config` takes no --socket: it reads the config file, not the daemon")
            }
            _ => None,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Show only the newest N checks (the summary still covers the whole range)
        #[arg(long, value_name = "N")]
        last: Option<usize>,
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
pub(crate) enum CacheCmd {
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
pub(crate) enum MaintenanceCmd {
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
pub(crate) enum BackupCmd {
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
        /// Replace an existing database: ends every session on it, refuses new connections
        /// until the swap, and takes a pre-restore backup of it first
        #[arg(long)]
        force: bool,
        /// Leave every restored object owned by steward's role instead of its owner in the
        /// backup (to restore under another role; custom-format backups only)
        #[arg(long)]
        no_owner: bool,
        /// Do not run ANALYZE on the restored database (queries plan without statistics
        /// until autovacuum gathers them)
        #[arg(long)]
        no_analyze: bool,
        /// Where this server cannot create the backup's encoding or locale, restore with its
        /// defaults instead of refusing (the reply says what differs)
        #[arg(long)]
        any_locale: bool,
        /// Do not create the roles the backup refers to that this server lacks (from the
        /// globals stored with the backup)
        #[arg(long)]
        skip_roles: bool,
    },
    /// Apply retention now
    Prune {
        /// Only show what would be deleted
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete one backup, or a failed or damaged entry (audited)
    Delete {
        /// A backup ID from `steward backup list`
        id: String,
        /// Also delete the newest intact backup of its database
        #[arg(long)]
        force: bool,
    },
    /// Download a backup from the bucket of [backup.remote] into the backup dir (checked)
    Fetch {
        /// A backup ID from `steward backup list` (WHERE remote)
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum TaskCmd {
    /// Stop the task and start it again
    Restart {
        /// monitor.postgres, monitor.redis, collector.postgres, backup.scheduler, cache.warmup, alertmanager,
        /// alerts, cache.stats, http or control
        name: String,
    },
    /// Stop the task until resumed (not `control`, which serves these commands)
    Pause {
        /// monitor.postgres, monitor.redis, collector.postgres, backup.scheduler, cache.warmup, alertmanager,
        /// alerts, cache.stats or http
        name: String,
    },
    /// Start a paused task again
    Resume {
        /// monitor.postgres, monitor.redis, collector.postgres, backup.scheduler, cache.warmup, alertmanager,
        /// alerts, cache.stats or http
        name: String,
    },
}

/// The control-protocol request a client command sends (`run` and `check-config` send none).
pub(crate) fn request(cmd: &Command) -> Request {
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
        Command::History {
            service,
            since,
            last,
        } => Request::History {
            last: *last,
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
            no_owner,
            no_analyze,
            any_locale,
            skip_roles,
        } => Request::BackupRestore {
            id: id.clone(),
            target_db: target_db.clone(),
            force: *force,
            no_owner: *no_owner,
            no_analyze: *no_analyze,
            any_locale: *any_locale,
            skip_roles: *skip_roles,
        },
        BackupCmd::Prune { dry_run } => Request::BackupPrune { dry_run: *dry_run },
        BackupCmd::Delete { id, force } => Request::BackupDelete {
            id: id.clone(),
            force: *force,
        },
        BackupCmd::Fetch { id } => Request::BackupFetch { id: id.clone() },
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
