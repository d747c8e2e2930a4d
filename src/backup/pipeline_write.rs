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
    /// One gzip stream, compressed on the writing thread (single CPU).
    Gzip(flate2::write::GzEncoder<Encrypt>),
    /// One gzip member per chunk, compressed by a pool of threads (pigz-style).
    GzipParallel(ParallelGzip),
    /// zstd with its own worker threads.
    Zstd(zstd::stream::write::Encoder<'static, Encrypt>),
}

impl Compress {
    fn new(compression: Compression, level: u32, out: Encrypt) -> io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(match compression {
            Compression::Gzip if threads > 1 => {
                Compress::GzipParallel(ParallelGzip::new(out, level, threads.min(GZIP_THREADS))?)
            }
            Compression::Gzip => Compress::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level.clamp(1, 9)),
            )),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, level.clamp(1, 22) as i32)?;
                e.include_checksum(true)?;
                e.multithread(threads.min(ZSTD_THREADS) as u32)?;
                // Jobs smaller than zstd's default (4 windows, 8 MiB at level 3) keep memory low
                // at no cost in size.
                e.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB))?;
                Compress::Zstd(e)
            }
        })
    }

    fn write_chunk(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        match self {
            Compress::Gzip(w) => w.write_all(&chunk),
            Compress::GzipParallel(w) => w.write_chunk(chunk),
            Compress::Zstd(w) => w.write_all(&chunk),
        }
    }

    fn finish(self) -> io::Result<Encrypt> {
        match self {
            Compress::Gzip(w) => w.finish(),
            Compress::GzipParallel(w) => w.finish(),
            Compress::Zstd(w) => w.finish(),
        }
    }
}

/// Most gzip compression threads: pg_dump and the server need CPU too.
const GZIP_THREADS: usize = 4;
/// Most zstd worker threads.
const ZSTD_THREADS: usize = 2;
/// zstd job size.
const ZSTD_JOB: u32 = 2 << 20;

type MemberReply = std::sync::mpsc::Receiver<io::Result<Vec<u8>>>;
type MemberJob = (Vec<u8>, std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>);

/// Compresses each chunk into a gzip member of its own on a pool of threads and writes the
/// members in order: a standard multi-member gzip file (`gunzip` reads it as one stream).
/// Memory is bounded by the number of chunks in flight (two per thread).
struct ParallelGzip {
    out: Option<Encrypt>,
    members: u64,
    jobs: Option<std::sync::mpsc::SyncSender<MemberJob>>,
    pending: std::collections::VecDeque<MemberReply>,
    max_pending: usize,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl ParallelGzip {
    fn new(out: Encrypt, level: u32, threads: usize) -> io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<MemberJob>(threads);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let level = flate2::Compression::new(level.clamp(1, 9));
        let workers = (0..threads)
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("steward-gzip-{i}"))
                    .spawn(move || loop {
                        let job = rx.lock().map(|r| r.recv());
                        let Ok(Ok((data, reply))) = job else { return };
                        let mut enc = flate2::write::GzEncoder::new(
                            Vec::with_capacity(data.len() / 2 + 1024),
                            level,
                        );
                        let member = enc.write_all(&data).and_then(|()| enc.finish());
                        let _ = reply.send(member);
                    })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            out: Some(out),
            members: 0,
            jobs: Some(jobs),
            pending: Default::default(),
            max_pending: 2 * threads,
            workers,
        })
    }

    fn write_chunk(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        while self.pending.len() >= self.max_pending {
            self.write_next()?;
        }
        let (reply, rx) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .expect("jobs open until finish")
            .send((chunk, reply))
            .map_err(|_| io::Error::other("the gzip compression threads stopped"))?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Writes the oldest member once it is compressed.
    fn write_next(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let member = rx
            .recv()
            .map_err(|_| io::Error::other("a gzip compression thread stopped"))??;
        self.members += 1;
        self.out
            .as_mut()
            .expect("output open until finish")
            .write_all(&member)
    }

    fn finish(mut self) -> io::Result<Encrypt> {
        while !self.pending.is_empty() {
            self.write_next()?;
        }
        self.jobs = None;
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
        let mut out = self.out.take().expect("output open until finish");
        if self.members == 0 {
            // An empty input still makes a valid gzip file.
            let empty = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            out.write_all(&empty.finish()?)?;
        }
        Ok(out)
    }
}

impl Drop for ParallelGzip {
    fn drop(&mut self) {
        // Abandoned: close the queue so that the threads end; they finish their current chunk.
        self.jobs = None;
        self.pending.clear();
    }
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
            Some(Msg::Data(chunk)) => comp.write_chunk(chunk).map_err(WriteFailure::Io)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Runs the writing stage over `chunks`, returns the file's bytes.
    fn write(compression: Compression, chunks: Vec<Vec<u8>>) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = File::create(&path).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let feeder = std::thread::spawn(move || {
            for c in chunks {
                tx.blocking_send(Msg::Data(c)).ok().unwrap();
            }
            tx.blocking_send(Msg::End).ok().unwrap();
        });
        let w = write_stage(file, rx, compression, 6, None).ok().unwrap();
        feeder.join().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(w.stored_bytes, bytes.len() as u64);
        bytes
    }

    fn sample(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                (0..300_000u32)
                    .map(|j| format!("{i}:{}\t", j.wrapping_mul(2654435761) % 1000))
                    .collect::<String>()
                    .into_bytes()
            })
            .collect()
    }

    #[test]
    fn gzip_members_decode_in_order() {
        let chunks = sample(7);
        let expected: Vec<u8> = chunks.concat();
        let file = write(Compression::Gzip, chunks);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&file[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == expected, "decoded data differs");
        // Empty input: still a valid gzip file.
        let file = write(Compression::Gzip, vec![]);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&file[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn zstd_decodes() {
        let chunks = sample(5);
        let expected: Vec<u8> = chunks.concat();
        let file = write(Compression::Zstd, chunks);
        assert!(zstd::decode_all(&file[..]).unwrap() == expected);
    }

    #[test]
    fn abandoned_stage_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("out")).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.try_send(Msg::Data(vec![1; 1000])).ok().unwrap();
        drop(tx);
        assert!(matches!(
            write_stage(file, rx, Compression::Gzip, 6, None),
            Err(WriteFailure::Abandoned)
        ));
    }
}
