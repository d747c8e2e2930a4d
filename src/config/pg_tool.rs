//! Whether a configured PostgreSQL client tool is that tool: it is run with `--version`
//! (bounded in time, empty environment, output capped) and must answer as PostgreSQL's does.
//! A file name alone would pass `/tmp/pg_dump` holding anything, and a wrapper such as
//! Debian's `pg_wrapper` under another name would fail; the answer is what backups rely on.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the tool may take to print its version.
const WAIT: Duration = Duration::from_secs(5);
/// The most of its answer that is read.
const MAX_ANSWER: u64 = 4096;

/// Checks that `path` is PostgreSQL's `tool` (`pg_dump`): it answers `--version` with
/// "`pg_dump (PostgreSQL) …`". The error says what is wrong and what to point the key at.
pub(super) fn check(tool: &str, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let fix = format!("point it at PostgreSQL's {tool}, e.g. /usr/lib/postgresql/16/bin/{tool}");
    if !path.is_file() {
        return Err(format!(
            "{shown} is not a file; install the PostgreSQL client or {fix}"
        ));
    }
    let answer = version_answer(path).map_err(|e| format!("{shown} {e}; {fix}"))?;
    let first = answer.lines().next().unwrap_or("").trim();
    if first.starts_with(&format!("{tool} (PostgreSQL) ")) {
        return Ok(());
    }
    let answered = if first.is_empty() {
        "printed nothing".to_string()
    } else {
        let first: String = crate::secret::scrub_urls(first).chars().take(80).collect();
        format!("answered {first:?}")
    };
    Err(format!(
        "{shown} is not PostgreSQL's {tool}: asked for its version it {answered}; {fix}"
    ))
}

/// Runs `path --version` and returns what it printed; the child is killed after [`WAIT`].
fn version_answer(path: &Path) -> Result<String, String> {
    let mut child = Command::new(path)
        .arg("--version")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot be run ({e})"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() < WAIT => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    if status.is_none() {
        return Err(format!(
            "did not answer --version within {} s",
            WAIT.as_secs()
        ));
    }
    let Some(out) = child.stdout.take() else {
        return Ok(String::new());
    };
    // Whatever it left running may hold the pipe open: read what is there, never wait.
    // SAFETY: fcntl on a descriptor this function owns; only the status flags change.
    unsafe {
        let fd = out.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut buf = Vec::new();
    let _ = out.take(MAX_ANSWER).read_to_end(&mut buf);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn only_the_postgresql_tool_passes() {
        let dir = tempfile::tempdir().unwrap();
        let real = script(dir.path(), "a", "echo 'pg_dump (PostgreSQL) 16.4'");
        assert_eq!(check("pg_dump", &real), Ok(()));
        let e = check("pg_dump", Path::new("/bin/sh")).unwrap_err();
        assert!(e.contains("is not PostgreSQL's pg_dump"), "{e}");
        let psql = script(dir.path(), "pg_dump", "echo 'psql (PostgreSQL) 16.4'");
        assert!(check("pg_dump", &psql).is_err());
        let e = check("pg_dump", dir.path()).unwrap_err();
        assert!(e.contains("is not a file"), "{e}");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "not a program").unwrap();
        let e = check("pg_dump", &plain).unwrap_err();
        assert!(e.contains("cannot be run"), "{e}");
    }

    #[test]
    fn a_tool_that_hangs_is_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let slow = script(dir.path(), "slow", "exec sleep 60");
        let e = check("pg_dump", &slow).unwrap_err();
        assert!(e.contains("did not answer --version"), "{e}");
        // One that answers but leaves a child holding its output open is not waited on.
        let pid_file = dir.path().join("pid");
        let lingering = script(
            dir.path(),
            "lingering",
            &format!(
                "echo 'pg_dump (PostgreSQL) 16.4'; sleep 60 & echo $! > {}",
                pid_file.display()
            ),
        );
        let answered = check("pg_dump", &lingering);
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: signals the sleep this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(answered, Ok(()));
    }
}
