//! The backup pipeline: pg_dump's output streamed through compression (and age encryption)
//! into a temporary file, hashed and counted on the way, then made durable under its final name.
//!
//! Stages: pg_dump's stdout is read in 1 MiB chunks on the async runtime and handed over a
//! bounded channel to a thread of its own that compresses, encrypts, hashes and writes, so that
//! reading and compressing overlap and memory stays bounded whatever the database size.

use super::pgconn::PgTarget;
use super::pipeline_io::{self as io_util, Msg, CHUNK, DEPTH};
use super::pipeline_write::{write_stage, WriteFailure, Written};
use crate::config::{Compression, DumpFormat};
use crate::secret::Scrubber;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use super::dump_error::DumpError;
pub use super::pipeline_tools::{find_client_tool, pg_dump_version};
use super::row_count::RowCounter;

/// Everything one dump needs.
pub struct DumpJob {
    /// The pg_dump binary (or pg_dumpall, for the cluster's globals).
    pub pg_dump: PathBuf,
    /// Its arguments: [`pg_dump_args`] for a database.
    pub args: Vec<String>,
    /// Connection settings, database included (passed to pg_dump through its environment).
    pub target: PgTarget,
    pub compression: Compression,
    pub level: u32,
    /// age recipients; empty means no encryption.
    pub recipients: Vec<age::x25519::Recipient>,
    /// Where bytes are written while the dump runs (`<dir>/<db>/<file>.tmp`).
    pub tmp_path: PathBuf,
    /// Where the file ends up once complete and durable.
    pub final_path: PathBuf,
    /// Bytes read from pg_dump so far, for progress display.
    pub progress: Arc<AtomicU64>,
    /// Count each table's rows in the stream of this format (`None`: the globals, no rows).
    pub count_rows: Option<DumpFormat>,
}

/// What a successful dump produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOutput {
    /// Bytes pg_dump wrote (before compression).
    pub dump_bytes: u64,
    /// Bytes stored on disk.
    pub stored_bytes: u64,
    /// SHA-256 of the stored file, lowercase hex.
    pub sha256: String,
    /// Rows per table as they streamed past (`None` when not asked for, or the stream could
    /// not be followed).
    pub table_rows: Option<super::catalog::source::TableRows>,
}

/// Removes a path on drop unless disarmed: nothing half-written survives a failure, an early
/// return or the dump future being dropped.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// pg_dump's arguments (connection settings go through the environment): recorded in each
/// backup's metadata as they were given. `lock_wait` is `--lock-wait-timeout`: a table locked
/// by someone else fails the dump after this long (naming the table) instead of waiting
/// forever.
pub fn pg_dump_args(format: DumpFormat, lock_wait: std::time::Duration) -> Vec<String> {
    let mut args = vec![
        "--no-password".to_string(),
        format!("--lock-wait-timeout={}", lock_wait.as_millis().max(1)),
    ];
    match format {
        DumpFormat::Plain => args.push("-Fp".into()),
        DumpFormat::Custom => args.extend(["-Fc".into(), "-Z0".into()]),
    }
    args
}

/// Runs pg_dump and stores its output at `job.final_path` (see the module docs). On any error or
/// on cancellation pg_dump is killed, the temporary file removed, and nothing is left under the
/// final name.
pub async fn dump(job: DumpJob, cancel: CancellationToken) -> Result<DumpOutput, DumpError> {
    let scrub = Scrubber::new(job.target.secrets());
    let dir = job
        .tmp_path
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let file = open_tmp(&dir, &job.tmp_path)?;
    let mut tmp_guard = RemoveOnDrop(Some(job.tmp_path.clone()));

    let encryptor = if job.recipients.is_empty() {
        None
    } else {
        let recipients = job.recipients.iter().map(|r| r as &dyn age::Recipient);
        Some(
            age::Encryptor::with_recipients(recipients)
                .map_err(|e| DumpError::Encrypt(e.to_string()))?,
        )
    };

    let mut cmd = tokio::process::Command::new(&job.pg_dump);
    cmd.args(&job.args);
    job.target.apply(&mut cmd);
    io_util::english_messages(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| DumpError::Spawn {
        tool: job.pg_dump.display().to_string(),
        source,
    })?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    io_util::enlarge_pipe(stdout.as_raw_fd());
    let stderr = tokio::spawn(io_util::capture_stderr(
        child.stderr.take().expect("stderr is piped"),
    ));

    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(DEPTH);
    let (compression, level) = (job.compression, job.level);
    let writer =
        tokio::task::spawn_blocking(move || write_stage(file, rx, compression, level, encryptor));

    // Read pg_dump's output to its end, handing chunks to the writer.
    let mut dump_bytes = 0u64;
    let mut counter = job.count_rows.map(|f| match f {
        DumpFormat::Plain => RowCounter::plain(),
        DumpFormat::Custom => RowCounter::custom(),
    });
    let read: Result<(), Stop> = loop {
        let mut buf = Vec::with_capacity(CHUNK);
        let eof = tokio::select! {
            biased;
            _ = cancel.cancelled() => break Err(Stop::Cancelled),
            r = io_util::fill_chunk(&mut stdout, &mut buf) => match r {
                Ok(eof) => eof,
                Err(e) => break Err(Stop::Read(e)),
            },
        };
        if !buf.is_empty() {
            dump_bytes += buf.len() as u64;
            if let Some(c) = &mut counter {
                c.feed(&buf);
            }
            job.progress.fetch_add(buf.len() as u64, Ordering::Relaxed);
            let sent = tokio::select! {
                biased;
                _ = cancel.cancelled() => break Err(Stop::Cancelled),
                r = tx.send(Msg::Data(buf)) => r.is_ok(),
            };
            if !sent {
                break Err(Stop::Writer);
            }
        }
        if eof {
            break Ok(());
        }
    };
    drop(stdout);

    // pg_dump's verdict (it has closed its stdout, or we are stopping anyway).
    let status = match read {
        Ok(()) => tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Stop::Cancelled),
            s = child.wait() => s.map_err(Stop::Read),
        },
        Err(stop) => Err(stop),
    };
    let status = match status {
        Ok(s) => s,
        Err(stop) => {
            let _ = child.kill().await;
            drop(tx);
            let written = join_writer(writer, &job.tmp_path).await;
            stderr.abort();
            return Err(match stop {
                Stop::Cancelled => DumpError::Cancelled,
                Stop::Read(e) => DumpError::Io {
                    what: "cannot read the output of",
                    path: job.pg_dump.clone(),
                    source: e,
                },
                // The writer stopped first: its error is the one that matters.
                Stop::Writer => match written {
                    Err(e) => e,
                    Ok(_) => DumpError::Io {
                        what: "writing stopped unexpectedly for",
                        path: job.tmp_path.clone(),
                        source: std::io::Error::other("the writer ended early"),
                    },
                },
            });
        }
    };
    let stderr_text = stderr.await.unwrap_or_default();
    if let Err(e) = check_pg_dump(status, &stderr_text, &scrub) {
        drop(tx);
        let _ = join_writer(writer, &job.tmp_path).await;
        return Err(e);
    }
    let warnings = stderr_text.trim();
    if !warnings.is_empty() {
        tracing::warn!(database = %job.target.database, "pg_dump: {}", scrub.scrub(warnings));
    }

    // Complete: finish compression/encryption and fsync, then rename and fsync the directory.
    if tx.send(Msg::End).await.is_err() {
        // The writer already failed; its error follows.
    }
    drop(tx);
    let written = join_writer(writer, &job.tmp_path).await?;
    let final_path = job.final_path.clone();
    let tmp_path = job.tmp_path.clone();
    tokio::task::spawn_blocking(move || publish(&tmp_path, &final_path, &dir))
        .await
        .map_err(|e| DumpError::io("cannot rename", &job.tmp_path, std::io::Error::other(e)))??;
    tmp_guard.0 = None;
    let table_rows = counter.and_then(RowCounter::finish);
    if job.count_rows.is_some() && table_rows.is_none() {
        tracing::warn!(database = %job.target.database, "the dump could not be followed to count its rows per table; the backup is not affected");
    }
    Ok(DumpOutput {
        dump_bytes,
        stored_bytes: written.stored_bytes,
        sha256: written.sha256,
        table_rows,
    })
}

/// Why reading stopped before a complete, successful pg_dump.
enum Stop {
    Cancelled,
    Read(std::io::Error),
    Writer,
}

/// pg_dump succeeded when it exited 0 and reported no error on stderr.
fn check_pg_dump(status: ExitStatus, stderr: &str, scrub: &Scrubber) -> Result<(), DumpError> {
    if status.success() && !stderr.lines().any(io_util::is_error_line) {
        return Ok(());
    }
    let message = match io_util::first_error(stderr) {
        m if m.trim().is_empty() => "no error message".to_string(),
        m => m,
    };
    Err(DumpError::PgDump {
        status: status.to_string(),
        stderr: scrub.scrub(&message),
    })
}

async fn join_writer(
    writer: tokio::task::JoinHandle<Result<Written, WriteFailure>>,
    tmp: &Path,
) -> Result<Written, DumpError> {
    match writer.await {
        Ok(Ok(w)) => Ok(w),
        Ok(Err(WriteFailure::Io(e))) => Err(DumpError::io("cannot write", tmp, e)),
        Ok(Err(WriteFailure::Abandoned)) => Err(DumpError::Cancelled),
        Err(e) => Err(DumpError::io("cannot write", tmp, std::io::Error::other(e))),
    }
}

/// Creates the directory (0700) if needed and the temporary file (0600).
fn open_tmp(dir: &Path, tmp: &Path) -> Result<std::fs::File, DumpError> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DumpError::io("cannot create the backup directory", dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| DumpError::io("cannot create", tmp, e))?;
    // An existing file keeps its mode through open(); make sure it is private.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| DumpError::io("cannot set the mode of", tmp, e))?;
    Ok(file)
}

/// Renames the finished file into place and makes the rename durable; on failure nothing is
/// left under the final name.
fn publish(tmp: &Path, final_path: &Path, dir: &Path) -> Result<(), DumpError> {
    std::fs::rename(tmp, final_path).map_err(|e| DumpError::io("cannot rename", tmp, e))?;
    let synced = std::fs::File::open(dir).and_then(|d| d.sync_all());
    if let Err(e) = synced {
        let _ = std::fs::remove_file(final_path);
        return Err(DumpError::io("cannot sync the directory", dir, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_dump_errors_are_scrubbed() {
        use std::os::unix::process::ExitStatusExt;
        let scrub = Scrubber::new(vec!["hunter2".into()]);
        let err = check_pg_dump(
            ExitStatus::from_raw(1 << 8),
            "pg_dump: error: connection failed: password hunter2 rejected\n",
            &scrub,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("connection failed"), "{err}");
        // Exit 0 with an error on stderr is still a failure; a warning is not.
        assert!(check_pg_dump(ExitStatus::from_raw(0), "pg_dump: error: x\n", &scrub).is_err());
        assert!(check_pg_dump(ExitStatus::from_raw(0), "pg_dump: warning: x\n", &scrub).is_ok());
    }
}
