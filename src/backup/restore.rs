//! Reading a stored backup back: verify (hash, stream integrity, decryption) and restore
//! (decrypt → decompress → psql or pg_restore, streamed).
//!
//! Both read the file on a thread of their own; restore hands the decoded dump in 1 MiB chunks
//! over a bounded channel to the task that feeds the child's stdin, so memory stays bounded.

use super::pgconn::PgTarget;
use super::pipeline_io::{self as io_util, Msg, DEPTH};
use super::restore_stream::{self as stream, StreamError};
pub use super::stored::{Decryption, StoredBackup, VerifyError, VerifyOutput};
use crate::config::DumpFormat;
use crate::secret::Scrubber;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Recomputes the file's hash and size and reads the stream inside to its end (decrypting when
/// it is encrypted and `identities` is not empty). `progress` counts file bytes read.
pub async fn verify(
    b: &StoredBackup,
    identities: &[age::x25519::Identity],
    progress: Arc<AtomicU64>,
) -> Result<VerifyOutput, VerifyError> {
    let file = b.open_raw().await.map_err(|source| VerifyError::Io {
        path: b.path.clone(),
        source,
    })?;
    let b = b.clone();
    let ids = identities.to_vec();
    tokio::task::spawn_blocking(move || stream::verify_file(&b, file, &ids, progress))
        .await
        .map_err(|e| VerifyError::Internal(e.to_string()))?
}

/// What a successful restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOutput {
    /// Decoded dump bytes fed to psql/pg_restore.
    pub bytes_fed: u64,
    /// Bytes of the backup file read.
    pub stored_bytes_read: u64,
    /// WARNING lines the tool printed (a warning does not fail a restore), at most
    /// [`MAX_WARNINGS`], scrubbed of secrets.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Most warning lines a restore reports.
pub const MAX_WARNINGS: usize = 20;

/// Why a restore failed. Messages are meant for users and never hold the password.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot read backup file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("backup {} is encrypted and no age identity is configured ([backup.encryption] identity_file)", path.display())]
    NoIdentity { path: PathBuf },
    #[error("backup {}: {message}", path.display())]
    Stream { path: PathBuf, message: String },
    #[error("cannot run {tool}: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed ({status}); nothing was committed: {error}")]
    Failed {
        tool: String,
        status: String,
        error: String,
    },
    #[error("the restore was cancelled; nothing was committed")]
    Cancelled,
}

/// Streams the backup into `target`'s database (which must exist): plain dumps through `psql`
/// in one transaction with `ON_ERROR_STOP`, custom archives through `pg_restore
/// --single-transaction --exit-on-error` (with `--no-owner` when `no_owner`: a plain dump's
/// owners are in its SQL and cannot be left out). `tool` is psql or pg_restore accordingly.
/// `progress` counts file bytes read. Success is the tool's exit status; its warnings are
/// returned. On a corrupt stream, an error or cancellation the child is
/// killed before its input ends, so its transaction never commits.
pub async fn restore(
    b: &StoredBackup,
    identities: &[age::x25519::Identity],
    tool: &Path,
    target: &PgTarget,
    no_owner: bool,
    progress: Arc<AtomicU64>,
    cancel: CancellationToken,
) -> Result<RestoreOutput, RestoreError> {
    if b.encrypted && identities.is_empty() {
        return Err(RestoreError::NoIdentity {
            path: b.path.clone(),
        });
    }
    let scrub = Scrubber::new(target.secrets());
    let (path, compression, encrypted) = (b.path.clone(), b.compression, b.encrypted);
    let ids = identities.to_vec();
    let stream_err = |e: StreamError| match e {
        StreamError::Io(source) => RestoreError::Io {
            path: b.path.clone(),
            source,
        },
        e => RestoreError::Stream {
            path: b.path.clone(),
            message: e.to_string(),
        },
    };

    // Open and check the headers before starting the child.
    let file = b.open_raw().await.map_err(|source| RestoreError::Io {
        path: path.clone(),
        source,
    })?;
    // A backup streamed from the bucket is checked as it is read (it was not hashed first):
    // the tool's input does not end until every byte matched.
    let verified = match &b.remote {
        Some(_) => {
            let v = stream::VerifyingReader::new(file, b.stored_bytes, &b.sha256);
            let flag = v.verified();
            (Box::new(v) as Box<dyn std::io::Read + Send>, Some(flag))
        }
        None => (file, None),
    };
    let (file, verified) = verified;
    let opened = tokio::task::spawn_blocking(move || {
        let counter = stream::RawCounter::new(file, progress);
        let bytes = counter.counter();
        let r = stream::open(counter, compression, encrypted.then_some(&ids[..]))?;
        Ok::<_, StreamError>((r, bytes))
    })
    .await
    .map_err(|e| RestoreError::Stream {
        path: b.path.clone(),
        message: e.to_string(),
    })?;
    let (reader, raw_bytes) = opened.map_err(stream_err)?;

    let tool_name = tool.file_name().map_or_else(
        || tool.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let mut cmd = tokio::process::Command::new(tool);
    cmd.arg("--no-password");
    match b.format {
        DumpFormat::Plain => cmd.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-f",
            "-",
        ]),
        DumpFormat::Custom => cmd
            .args(["--single-transaction", "--exit-on-error"])
            .args(no_owner.then_some("--no-owner"))
            .arg("-d")
            .arg(super::pgconn::conninfo_dbname(&target.database)),
    };
    target.apply(&mut cmd);
    io_util::english_messages(&mut cmd);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RestoreError::Spawn {
        tool: tool.display().to_string(),
        source,
    })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    io_util::enlarge_pipe(std::os::fd::AsRawFd::as_raw_fd(&stdin));
    let stderr = tokio::spawn(io_util::capture_stderr(
        child.stderr.take().expect("stderr is piped"),
    ));

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(DEPTH);
    let layer = stream::layer_name(b.compression, b.encrypted);
    let decoder = tokio::task::spawn_blocking(move || stream::pump(reader, &tx, layer));

    let mut bytes_fed = 0u64;
    // Outcome of feeding: Ok(true) complete, Ok(false) the child stopped reading.
    let fed: Result<bool, RestoreError> = loop {
        let msg = tokio::select! {
            biased;
            _ = cancel.cancelled() => break Err(RestoreError::Cancelled),
            m = rx.recv() => m,
        };
        match msg {
            Some(Msg::Data(chunk)) => {
                let written = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => break Err(RestoreError::Cancelled),
                    r = stdin.write_all(&chunk) => r,
                };
                if written.is_err() {
                    break Ok(false);
                }
                bytes_fed += chunk.len() as u64;
            }
            Some(Msg::End) => break Ok(true),
            Some(Msg::Failed(message)) => {
                break Err(RestoreError::Stream {
                    path: b.path.clone(),
                    message,
                })
            }
            None => {
                break Err(RestoreError::Stream {
                    path: b.path.clone(),
                    message: "decoding stopped unexpectedly".into(),
                })
            }
        }
    };
    drop(rx);
    let unverified = matches!(fed, Ok(true))
        && verified
            .as_ref()
            .is_some_and(|v| !v.load(std::sync::atomic::Ordering::Relaxed));
    let fed = if unverified {
        Err(RestoreError::Stream {
            path: b.path.clone(),
            message: "the dump ended before the stored file was read to its end, so its SHA-256 was not checked; nothing was committed".into(),
        })
    } else {
        fed
    };
    let complete = match fed {
        Ok(complete) => complete,
        Err(e) => {
            // Kill before the input ends: an EOF would let psql commit what it got.
            let _ = child.kill().await;
            drop(stdin);
            let _ = decoder.await;
            stderr.abort();
            return Err(e);
        }
    };
    drop(stdin);
    let status = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        s = child.wait() => Some(s),
    };
    let _ = decoder.await;
    let Some(status) = status else {
        let _ = child.kill().await;
        return Err(RestoreError::Cancelled);
    };
    let status = status.map_err(|source| RestoreError::Spawn {
        tool: tool.display().to_string(),
        source,
    })?;
    let stderr_text = stderr.await.unwrap_or_default();
    // The tool's exit status decides (psql runs with ON_ERROR_STOP, pg_restore with
    // --exit-on-error): a WARNING whose text says "error:" is not a failure.
    if !status.success() || !complete {
        let error = match io_util::first_error(&stderr_text) {
            m if !m.trim().is_empty() => m,
            _ if !complete => format!("{tool_name} stopped reading its input"),
            _ => "no error message".into(),
        };
        return Err(RestoreError::Failed {
            tool: tool_name,
            status: status.to_string(),
            error: scrub.scrub(&error),
        });
    }
    let warnings = stderr_text
        .lines()
        .filter(|l| io_util::severity(l) == Some("WARNING"))
        .take(MAX_WARNINGS)
        .map(|l| scrub.scrub(l.trim_end()))
        .collect();
    Ok(RestoreOutput {
        bytes_fed,
        stored_bytes_read: raw_bytes.load(std::sync::atomic::Ordering::Relaxed),
        warnings,
    })
}
