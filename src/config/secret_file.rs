//! Secret files (`postgres.url_file`, `redis.password_file`, the age identity, basic-auth
//! hashes, the TLS key): read at start and on each reload, only when they are regular files of at
//! most 64 KiB, with a warning when group or others can read them.

use super::log_config::{LogConfig, LogFormat};
use super::problem::Problem;
use super::regular_file::{read_regular_string, ReadError, SECRET_CAP};
use std::path::Path;

/// Reads the secret file that config key `key` names, warning (never showing the content)
/// when its mode lets group or others read it; every `*_file` secret goes through here, at
/// start and on each reload, so an exposed file is reported every time it is read.
pub(crate) fn read_secret_file(key: &str, path: &Path) -> Result<String, Problem> {
    let text = read_secret_quietly(key, path)?;
    if let Some(warning) = exposure_warning(key, path) {
        tracing::warn!(key, file = %path.display(), "{warning}");
    }
    Ok(text)
}

/// [`read_secret_file`] without the exposure warning, for a second read of a file that
/// validation has just read (and warned about), such as building the HTTP guards. A FIFO, a
/// device or a file over 64 KiB is refused at once (never waited on or read whole), so that a
/// wrong path cannot hang or bloat a start or a reload.
pub(crate) fn read_secret_quietly(key: &str, path: &Path) -> Result<String, Problem> {
    read_regular_string(path, SECRET_CAP).map_err(|e| {
        if std::fs::symlink_metadata(path).is_err() {
            return Problem::new(key, absent(key));
        }
        let hint = match e {
            ReadError::Io(_) => " (the file must exist and be readable by steward's user)",
            _ => "",
        };
        Problem::new(key, format!("cannot read {}: {e}{hint}", path.display()))
    })
}

/// The problem of a secret file path where nothing is. The path is not shown: it may be the
/// secret itself, written where its file's path belongs.
fn absent(key: &str) -> String {
    format!(
        "the file it names does not exist (No such file or directory; the value is not shown, \
         in case it is the secret itself rather than a path); set {key} to the path of a file \
         readable by steward's user"
    )
}

/// The warning for a secret file that group or others can read, naming the file, its mode
/// and the fix; `None` when only the owner can read it (or its mode cannot be read).
pub(crate) fn exposure_warning(key: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        (false, true) => "others",
        (false, false) => return None,
    };
    Some(format!(
        "secret file {} ({key}) has mode {mode:04o}, so {who} can read it; run `chmod 600 {}`",
        path.display(),
        path.display()
    ))
}

/// Runs `f` (the part of loading that reads secret files) so that its warnings are seen: through
/// the daemon's logging once that is set up (reloads), else straight to stderr in the configured
/// log format (at start, before logging exists, and in `check-config`).
pub(super) fn with_warnings_shown<T>(log: &LogConfig, f: impl FnOnce() -> T) -> T {
    if tracing::dispatcher::has_been_set() {
        return f();
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN);
    let dispatch = match log.format {
        LogFormat::Json => tracing::Dispatch::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
        LogFormat::Pretty => tracing::Dispatch::new(
            builder
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .finish(),
        ),
    };
    tracing::dispatcher::with_default(&dispatch, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_or_huge_file_is_refused_naming_key_and_file() {
        let p = read_secret_quietly("redis.password_file", Path::new("/dev/zero")).unwrap_err();
        assert_eq!(p.key, "redis.password_file");
        assert!(
            p.reason.contains("/dev/zero") && p.reason.contains("a character device"),
            "{p}"
        );
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), vec![b'x'; SECRET_CAP as usize + 1]).unwrap();
        let p = read_secret_quietly("postgres.url_file", f.path()).unwrap_err();
        assert!(p.reason.contains("larger than 64 KiB"), "{p}");
        std::fs::write(f.path(), "postgres://u@h/db\n").unwrap();
        assert_eq!(
            read_secret_quietly("postgres.url_file", f.path()).unwrap(),
            "postgres://u@h/db\n"
        );
    }
}
