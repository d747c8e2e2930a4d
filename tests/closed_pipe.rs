//! A closed pipe is not a crash (issue 13, item 1): `steward backup list | head -1` and the
//! like end quietly instead of panicking with "failed printing to stdout".

mod common;

use common::*;
use std::process::{Command, Stdio};

/// Runs steward with `args` whose stdout is already closed at the reading end, so the
/// first write fails whatever the timing; returns (exit code, signal, stderr).
fn into_closed_pipe(args: &[&str], cwd: &std::path::Path) -> (Option<i32>, Option<i32>, String) {
    use std::os::unix::process::ExitStatusExt;
    // A socket whose peer is gone fails a write with EPIPE, as a pipe without reader does.
    let (reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(reader);
    let out = Command::new(STEWARD)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::os::fd::OwnedFd::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn commands_writing_into_a_closed_pipe_end_quietly() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let sock = st.socket().to_string_lossy().into_owned();
    for args in [
        vec!["--socket", &sock, "status"],
        vec!["--socket", &sock, "--json", "cache", "stats"],
        vec!["--socket", &sock, "backup", "list"],
        vec!["--socket", &sock, "tasks"],
        vec!["--help"],
    ] {
        let (code, signal, stderr) = into_closed_pipe(&args, st.dir());
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_ne!(code, Some(101), "{args:?}: {stderr}");
        assert!(
            code.is_some() || signal == Some(libc::SIGPIPE),
            "{args:?}: {code:?} {signal:?}"
        );
    }
    // The daemon itself still ignores SIGPIPE: it served all of the above and answers now.
    assert_eq!(st.ctl(&["status"]).code, 0);
}
