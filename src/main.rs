//! The `steward` binary: command-line parsing, then the daemon or a control-socket client.

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::{request, Cli, Command};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use steward::control::protocol::{Reply, Request};
use steward::control::{client, render};
/// Exit codes of client commands, one meaning each: 0 ok, 1 the daemon refused or failed the
/// request or found a service down, 2 a usage error (clap's), 3 no daemon listening.
const NO_DAEMON: u8 = 3;

fn main() -> ExitCode {
    // A client writing into a closed pipe (`steward backup list | head -1`) ends quietly, as
    // `cat` would, instead of panicking; the daemon keeps ignoring SIGPIPE (its sockets report
    // a gone peer as an error).
    set_sigpipe(libc::SIG_DFL);
    let cli = Cli::parse();
    if let Some(misuse) = cli.daemon_only_misuse() {
        use clap::CommandFactory;
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, misuse)
            .exit();
    }
    if matches!(cli.command, Command::Run) {
        set_sigpipe(libc::SIG_IGN);
    }
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

fn set_sigpipe(action: libc::sighandler_t) {
    // SAFETY: changes one signal's disposition before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, action);
    }
}

fn run_daemon(cli: &Cli, env: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let config_file = steward::config::resolve_path(cli.config.as_deref(), &env);
    one_malloc_arena();
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

/// glibc gives each thread that allocates its own arena (up to 8 per CPU), each holding on to
/// freed memory; steward allocates little, so one arena is enough. Measured with
/// benches/compare.sh's config: 0.2 to 0.9 MB less resident memory, idle and after wrk, with
/// the same requests/s. Must run before the runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

fn check_config(cli: &Cli, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let path = steward::config::resolve_path(cli.config.as_deref(), env);
    if cli.json {
        return check_config_json(&path, env);
    }
    let cfg = steward::config::load(&path, env)?;
    println!(
        "# {} is valid; effective config (secrets shown as ***):\n",
        path.display()
    );
    print!("{}", cfg.to_redacted_toml());
    Ok(ExitCode::SUCCESS)
}

/// `check-config --json`: one JSON object, `{"ok":true,"file":…,"config":{…}}` with secrets
/// masked, or `{"ok":false,"file":…,"problems":[{"key":…,"reason":…}]}` and exit 1.
fn check_config_json(path: &Path, env: &HashMap<String, String>) -> anyhow::Result<ExitCode> {
    use steward::config::LoadError;
    let file = path.display().to_string();
    let (out, code) = match steward::config::load(path, env) {
        Ok(cfg) => {
            let config: serde_json::Value = toml::from_str(&cfg.to_redacted_toml())?;
            let out = serde_json::json!({"ok": true, "file": file, "config": config});
            (out, ExitCode::SUCCESS)
        }
        Err(e) => {
            let problems: Vec<serde_json::Value> = match &e {
                LoadError::Invalid { problems, .. } => problems
                    .iter()
                    .map(|p| serde_json::json!({"key": p.key, "reason": p.reason}))
                    .collect(),
                other => vec![serde_json::json!({"key": null, "reason": other.to_string()})],
            };
            let out = serde_json::json!({"ok": false, "file": file, "problems": problems});
            (out, ExitCode::from(1))
        }
    };
    println!("{out}");
    Ok(code)
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
            return Ok(ExitCode::from(NO_DAEMON));
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
            let line = steward::model::history::sparkline(&h.entries, 60);
            println!("latency  {line}  (\u{2717} = down)");
        }
    }
}

fn exit_code(req: &Request, reply: &Reply) -> ExitCode {
    let unhealthy = matches!(req, Request::Health { .. } | Request::Check { .. })
        && reply.data.get("healthy").and_then(|h| h.as_bool()) == Some(false);
    let unhealthy = unhealthy || (matches!(req, Request::Status) && a_service_is_down(reply));
    let failed_verify = matches!(req, Request::BackupVerify { .. })
        && reply.data.get("ok").and_then(|o| o.as_bool()) == Some(false);
    let unhealthy = unhealthy || failed_verify;
    if reply.ok && !unhealthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Whether `status` saw a service whose last check failed (one not checked yet since the
/// start is not down).
fn a_service_is_down(reply: &Reply) -> bool {
    reply.data["services"].as_array().is_some_and(|services| {
        services
            .iter()
            .any(|s| s["last"]["up"].as_bool() == Some(false))
    })
}

/// Requests that may run for minutes: no reply timeout, progress on a terminal.
fn is_long(req: &Request) -> bool {
    matches!(
        req,
        Request::BackupCreate { wait: true, .. }
            | Request::BackupVerify { .. }
            | Request::BackupRestore { .. }
            | Request::BackupFetch { .. }
            | Request::CacheClear { .. }
            | Request::CacheWarmUp { .. }
    )
}

/// The socket path from the config, read leniently so a config the daemon would reject
/// (the reason one wants to talk to it) still yields the path; a relative one hangs off the
/// config file's directory, as the daemon reads it. Only a regular file of at most 1 MiB is
/// read, as the daemon does: a FIFO is not waited on, a device not read whole.
fn socket_from_config(explicit: Option<&Path>, env: &HashMap<String, String>) -> PathBuf {
    let path = steward::config::resolve_path(explicit, env);
    let socket = env
        .get("STEWARD_CONTROL__SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            steward::config::regular_file::read_regular_string(
                &path,
                steward::config::regular_file::CONFIG_CAP,
            )
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("control")?.get("socket")?.as_str().map(PathBuf::from))
        })
        .unwrap_or_else(|| steward::config::ControlConfig::default().socket);
    // Without a config file there is nothing to be relative to but the working directory.
    let base = match path.exists() {
        true => steward::config::base_dir(&path),
        false => steward::config::base_dir(Path::new("steward.toml")),
    };
    steward::config::anchored(&base, &socket)
}
