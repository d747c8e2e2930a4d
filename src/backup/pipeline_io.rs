//! Pieces shared by the dump and restore pipelines: hashing/counting adapters, bounded capture
//! of a child's stderr, error extraction and errno classification.

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Size of the chunks passed between pipeline stages.
pub(super) const CHUNK: usize = 1 << 20;
/// Chunks in flight between two stages; with [`CHUNK`] this bounds the memory of a channel.
pub(super) const DEPTH: usize = 4;
/// How much of a child's stderr is kept, at the start and at the end each.
const STDERR_KEEP: usize = 16 * 1024;

/// One message from a producing stage to a consuming one. A channel that closes without
/// [`Msg::End`] means the producer gave up: the consumer must not treat it as a complete stream.
pub(super) enum Msg {
    Data(Vec<u8>),
    End,
    Failed(String),
}

/// A writer that hashes (SHA-256) and counts every byte its inner writer accepted.
pub(super) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the byte count and the lowercase hex digest.
    pub(super) fn into_parts(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte read through it, and publishes the count.
pub(super) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    progress: Arc<AtomicU64>,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R, progress: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
            progress,
        }
    }

    /// Byte count and lowercase hex digest of everything read so far.
    pub(super) fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads until `buf` holds [`CHUNK`] bytes or the stream ends; returns true at end of stream.
pub(super) async fn fill_chunk<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    while buf.len() < CHUNK {
        if r.read_buf(buf).await? == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads a child's stderr to its end, keeping its first and last 16 KiB.
pub(super) async fn capture_stderr<R: AsyncRead + Unpin>(mut r: R) -> String {
    let mut head = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut skipped = false;
    let mut buf = [0u8; 8192];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        if head.len() < STDERR_KEEP {
            let take = data.len().min(STDERR_KEEP - head.len());
            head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        tail.extend_from_slice(data);
        if tail.len() > 2 * STDERR_KEEP {
            tail.drain(..tail.len() - STDERR_KEEP);
            skipped = true;
        }
    }
    if tail.len() > STDERR_KEEP {
        tail.drain(..tail.len() - STDERR_KEEP);
        skipped = true;
    }
    let mut out = String::from_utf8_lossy(&head).into_owned();
    if skipped {
        out.push_str("\n[…]\n");
    }
    out.push_str(&String::from_utf8_lossy(&tail));
    out
}

/// True for a line of libpq/psql/pg_dump output that reports an error (not a warning/notice).
pub(super) fn is_error_line(line: &str) -> bool {
    matches!(severity(line), Some("ERROR" | "FATAL" | "PANIC"))
}

/// The severity of a line of PostgreSQL's tools (`psql:<stdin>:5: WARNING:  …`, `pg_dump:
/// error: …`), upper-cased: the first severity tag on the line decides, so a warning whose text
/// says "error:" is a warning.
pub(super) fn severity(line: &str) -> Option<&'static str> {
    const TAGS: [&str; 9] = [
        "ERROR", "FATAL", "PANIC", "WARNING", "NOTICE", "INFO", "LOG", "DETAIL", "HINT",
    ];
    let mut best: Option<(usize, &'static str)> = None;
    for tag in TAGS {
        let lower = tag.to_ascii_lowercase();
        for needle in [format!("{tag}:"), format!("{lower}:")] {
            let found = line.match_indices(&needle).find(|(i, _)| {
                // A tag starts the line or follows a space or a colon ("psql:x:5: ERROR:").
                *i == 0 || matches!(line.as_bytes()[i - 1], b' ' | b':' | b'\t')
            });
            if let Some((i, _)) = found {
                if best.is_none_or(|(b, _)| i < b) {
                    best = Some((i, tag));
                }
            }
        }
    }
    best.map(|(_, tag)| tag)
}

/// The first error in a child's stderr with its DETAIL/HINT/LINE/CONTEXT lines, or, when no
/// line looks like an error, its last lines.
pub(super) fn first_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if let Some(i) = lines.iter().position(|l| is_error_line(l)) {
        let mut out = vec![lines[i].trim_end()];
        for l in lines[i + 1..].iter().take(6) {
            let t = l.trim_start();
            // Client tools (PostgreSQL 15+) print theirs as `pg_dump: detail: …`.
            let tool_detail = t
                .split_once(": ")
                .is_some_and(|(_, rest)| rest.starts_with("detail:") || rest.starts_with("hint:"));
            let continuation = l.starts_with(char::is_whitespace)
                || tool_detail
                || ["DETAIL:", "HINT:", "LINE ", "CONTEXT:", "QUERY:", "^"]
                    .iter()
                    .any(|k| t.starts_with(k));
            if !continuation {
                break;
            }
            out.push(l.trim_end());
        }
        return out.join("\n");
    }
    let start = lines.len().saturating_sub(10);
    lines[start..].join("\n")
}

/// True when an I/O error means the filesystem is full (or the quota exhausted).
pub(super) fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Makes the pipe behind `fd` larger, so that a fast writer blocks less often (best effort).
pub(super) fn enlarge_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a descriptor we own; failure is harmless and ignored.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, CHUNK as libc::c_int);
    }
}

/// Makes a child's messages English so that error detection does not depend on the locale.
pub(super) fn english_messages(cmd: &mut tokio::process::Command) {
    cmd.env_remove("LC_ALL")
        .env_remove("LANGUAGE")
        .env("LC_MESSAGES", "C");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_takes_the_error_and_its_detail() {
        let stderr = "NOTICE:  something\npsql:<stdin>:12: ERROR:  relation \"x\" does not exist\nLINE 1: SELECT * FROM x;\n                      ^\nsomething else\n";
        assert_eq!(
            first_error(stderr),
            "psql:<stdin>:12: ERROR:  relation \"x\" does not exist\nLINE 1: SELECT * FROM x;\n                      ^"
        );
        assert_eq!(first_error("a\nb\n"), "a\nb");
        // pg_dump 15+ (the server went away mid-dump): the detail says what happened.
        let cut = "pg_dump: error: Dumping the contents of table \"big\" failed: PQgetCopyData() failed.\n\
                   pg_dump: detail: Error message from server: server closed the connection unexpectedly\n\
                   \tThis probably means the server terminated abnormally\n\
                   pg_dump: detail: Command was: COPY public.big (id, a) TO stdout;\n\
                   pg_dump: something unrelated\n";
        let e = first_error(cut);
        assert!(
            e.contains("server closed the connection unexpectedly"),
            "{e}"
        );
        assert!(e.contains("Command was"), "{e}");
        assert!(!e.contains("unrelated"), "{e}");
        assert!(!is_error_line(
            "pg_dump: warning: errors ignored on table error_log"
        ));
        assert!(is_error_line("pg_dump: error: connection failed"));
        // A warning raised by a trigger whose text says "error:" is a warning.
        assert!(!is_error_line(
            "psql:<stdin>:88: WARNING:  sensor error: reading out of range"
        ));
        assert_eq!(
            severity("psql:<stdin>:88: WARNING:  sensor error: x"),
            Some("WARNING")
        );
        assert!(is_error_line(
            "psql:<stdin>:12: ERROR:  relation \"x\" does not exist"
        ));
        assert!(is_error_line("FATAL:  terminating connection"));
        assert_eq!(severity("nothing here"), None);
    }

    #[tokio::test]
    async fn stderr_capture_is_bounded() {
        let big = format!("first line\n{}\nlast line\n", "x".repeat(200_000));
        let kept = capture_stderr(big.as_bytes()).await;
        assert!(kept.len() < 3 * STDERR_KEEP);
        assert!(kept.starts_with("first line"));
        assert!(kept.ends_with("last line\n"));
        assert!(kept.contains('…'));
    }

    #[test]
    fn hashing_writer_counts_and_hashes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, n, sha) = w.into_parts();
        assert_eq!(inner, b"abc");
        assert_eq!(n, 3);
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
