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
fn main() -> ExitCode {
    // A client writing into a closed pipe (`steward backup list | head -1`) ends quietly, as
    // `cat` would, instead of panicking; the daemon keeps ignoring SIGPIPE (its sockets report
    // a gone peer as an error).
    set_sigpipe(libc::SIG_DFL);
    let cli = Cli::parse();
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
/// (the reason one wants to talk to it) still yields the path. Only a regular file of at
/// most 1 MiB is read, as the daemon does: a FIFO is not waited on, a device not read whole.
fn socket_from_config(explicit: Option<&Path>, env: &HashMap<String, String>) -> PathBuf {
    if let Some(s) = env.get("STEWARD_CONTROL__SOCKET").filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    let path = steward::config::resolve_path(explicit, env);
    steward::config::regular_file::read_regular_string(
        &path,
        steward::config::regular_file::CONFIG_CAP,
    )
    .ok()
    .and_then(|t| t.parse::<toml::Table>().ok())
    .and_then(|t| t.get("control")?.get("socket")?.as_str().map(PathBuf::from))
    .unwrap_or_else(|| steward::config::ControlConfig::default().socket)
}
