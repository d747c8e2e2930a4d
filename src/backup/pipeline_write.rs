//! The writing stage of a dump, on its own thread: chunks of pg_dump output → gzip or zstd →
//! age (optional) → the temporary file, hashed and counted on the way, then fsynced.

use super::pipeline_io::{HashingWriter, Msg};
use crate::config::Compression;
use std::fs::File;
use std::io::{self, BufWriter, Write};

type Sink = HashingWriter<BufWriter<File>>;

/// Encryption layer: nothing, or an age stream.
enum Encrypt {
    Plain(Sink),
    Age(age::stream::StreamWriter<Sink>),
}

impl Write for Encrypt {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encrypt::Plain(w) => w.write(buf),
            Encrypt::Age(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encrypt::Plain(w) => w.write_all(buf),
            Encrypt::Age(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encrypt::Plain(w) => w.flush(),
            Encrypt::Age(w) => w.flush(),
        }
    }
}

impl Encrypt {
    fn finish(self) -> io::Result<Sink> {
        match self {
            Encrypt::Plain(w) => Ok(w),
            Encrypt::Age(w) => w.finish(),
        }
    }
}

/// Compression layer.
enum Compress {
    Gzip(flate2::write::GzEncoder<Encrypt>),
    Zstd(zstd::stream::write::Encoder<'static, Encrypt>),
}

impl Compress {
    fn new(compression: Compression, level: u32, out: Encrypt) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => Compress::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level.clamp(1, 9)),
            )),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, level.clamp(1, 22) as i32)?;
                e.include_checksum(true)?;
                e.multithread(zstd_workers())?;
                Compress::Zstd(e)
            }
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compress::Gzip(w) => w.write_all(buf),
            Compress::Zstd(w) => w.write_all(buf),
        }
    }

    fn finish(self) -> io::Result<Encrypt> {
        match self {
            Compress::Gzip(w) => w.finish(),
            Compress::Zstd(w) => w.finish(),
        }
    }
}

/// zstd worker threads: two, or one on a single CPU (the reader and pg_dump need CPU too).
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2) as u32)
}

/// How the writing stage ended badly.
pub(super) enum WriteFailure {
    /// The producer went away without [`Msg::End`]: nothing to report, the caller knows why.
    Abandoned,
    /// Writing, compressing or syncing failed.
    Io(io::Error),
}

/// What the writing stage produced: stored bytes and their SHA-256.
pub(super) struct Written {
    pub stored_bytes: u64,
    pub sha256: String,
}

/// Runs the writing stage until [`Msg::End`] (finish, flush, fsync) or until the channel closes
/// (abandon). Blocking: run it on a thread of its own.
pub(super) fn write_stage(
    file: File,
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    compression: Compression,
    level: u32,
    encryptor: Option<age::Encryptor>,
) -> Result<Written, WriteFailure> {
    let sink = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let out = match encryptor {
        None => Encrypt::Plain(sink),
        Some(enc) => Encrypt::Age(enc.wrap_output(sink).map_err(WriteFailure::Io)?),
    };
    let mut comp = Compress::new(compression, level, out).map_err(WriteFailure::Io)?;
    loop {
        match rx.blocking_recv() {
            Some(Msg::Data(chunk)) => comp.write_all(&chunk).map_err(WriteFailure::Io)?,
            Some(Msg::End) => break,
            Some(Msg::Failed(_)) | None => return Err(WriteFailure::Abandoned),
        }
    }
    drop(rx);
    let finish = || -> io::Result<Written> {
        let sink = comp.finish()?.finish()?;
        let (buffered, stored_bytes, sha256) = sink.into_parts();
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Written {
            stored_bytes,
            sha256,
        })
    };
    finish().map_err(WriteFailure::Io)
}
