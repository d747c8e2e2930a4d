//! Reading a stored backup as the dump it holds: file → age decryption (optional) → gzip or
//! zstd decompression; the checks of a verify; the decoding end of a restore. Blocking: used on
//! threads of their own.

use super::pipeline_io::{HashingReader, Msg, CHUNK};
use super::stored::{Decryption, StoredBackup, VerifyError, VerifyOutput};
use crate::config::Compression;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Why the stream inside a backup cannot be read.
#[derive(Debug)]
pub(super) enum StreamError {
    /// None of the identities can decrypt the file (or it is not an age file): a whole
    /// sentence, for display as it is.
    Decrypt(String),
    /// The data is corrupt or truncated.
    Corrupt(String),
    /// Reading the file itself failed.
    Io(io::Error),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Decrypt(m) => f.write_str(m),
            StreamError::Corrupt(m) => write!(f, "corrupt or truncated data: {m}"),
            StreamError::Io(e) => write!(f, "cannot read the file: {e}"),
        }
    }
}

/// Classifies an error met while reading decoded data.
pub(super) fn classify(e: io::Error, what: &str) -> StreamError {
    match e.kind() {
        io::ErrorKind::InvalidData
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::Other => StreamError::Corrupt(format!("{what}: {e}")),
        _ if e.raw_os_error().is_some() => StreamError::Io(e),
        _ => StreamError::Corrupt(format!("{what}: {e}")),
    }
}

/// Wraps `raw` (the stored bytes) into a reader of the dump: decrypts when `identities` is
/// `Some`, then decompresses. Header problems (not an age file, no matching key) are reported
/// here; corruption further on shows up as read errors of the returned reader.
pub(super) fn open<'a, R: Read + Send + 'a>(
    raw: R,
    compression: Compression,
    identities: Option<&[age::x25519::Identity]>,
) -> Result<Box<dyn Read + Send + 'a>, StreamError> {
    let buffered = BufReader::with_capacity(256 * 1024, raw);
    let plain: Box<dyn BufRead + Send + 'a> = match identities {
        None => Box::new(buffered),
        Some(ids) => {
            let dec = age::Decryptor::new_buffered(buffered).map_err(|e| match e {
                age::DecryptError::Io(e) => classify(e, "age header"),
                e => StreamError::Decrypt(format!("cannot decrypt: {e}")),
            })?;
            let reader = dec
                .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::NoMatchingKeys => StreamError::Decrypt(
                        "none of the configured identities can decrypt this backup: it was encrypted to other recipients (backup.encryption.identity_file holds none of their keys)"
                            .into(),
                    ),
                    age::DecryptError::Io(e) => classify(e, "age header"),
                    e => StreamError::Decrypt(format!("cannot decrypt: {e}")),
                })?;
            Box::new(BufReader::with_capacity(256 * 1024, reader))
        }
    };
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(plain)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(plain).map_err(|e| classify(e, "zstd"))?,
        ),
    })
}

/// The name of the layer whose data a read error most likely comes from, for messages.
pub(super) fn layer_name(compression: Compression, encrypted: bool) -> &'static str {
    match (compression, encrypted) {
        (Compression::Gzip, false) => "gzip",
        (Compression::Zstd, false) => "zstd",
        (Compression::Gzip, true) => "age/gzip",
        (Compression::Zstd, true) => "age/zstd",
    }
}

/// Checks a backup file: hash, size, and the stream inside (the blocking half of
/// `restore::verify`, on a thread of its own).
pub(super) fn verify_file(
    b: &StoredBackup,
    file: Box<dyn Read + Send>,
    ids: &[age::x25519::Identity],
    progress: Arc<AtomicU64>,
) -> Result<VerifyOutput, VerifyError> {
    let io_err = |source| VerifyError::Io {
        path: b.path.clone(),
        source,
    };
    let mut raw = HashingReader::new(file, progress);
    let mut decryption = match (b.encrypted, ids.is_empty()) {
        (false, _) => Decryption::NotEncrypted,
        (true, false) => Decryption::Decrypted,
        (true, true) => Decryption::Skipped,
    };
    let mut problems = Vec::new();
    let decoded: Option<Result<u64, StreamError>> =
        (decryption != Decryption::Skipped).then(|| {
            let layer = layer_name(b.compression, b.encrypted);
            let mut r = open(&mut raw, b.compression, b.encrypted.then_some(ids))?;
            std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| classify(e, layer))
        });
    // Decrypted only once an identity opened the file: a wrong one fails at the header.
    let mut decryption_error = None;
    if let Some(Err(StreamError::Decrypt(m))) = &decoded {
        decryption = Decryption::Failed;
        decryption_error = Some(m.clone());
    }
    // Whatever happened to the stream, hash the whole file.
    std::io::copy(&mut raw, &mut std::io::sink()).map_err(io_err)?;
    let (actual_stored_bytes, actual_sha256) = raw.finish();

    let hash_ok = actual_sha256.eq_ignore_ascii_case(&b.sha256);
    if !hash_ok {
        problems.push(format!(
            "SHA-256 mismatch: the catalog has {}, the file has {actual_sha256}",
            b.sha256
        ));
    }
    let size_ok = actual_stored_bytes == b.stored_bytes;
    if !size_ok {
        problems.push(format!(
            "size mismatch: the catalog has {} bytes, the file has {actual_stored_bytes}",
            b.stored_bytes
        ));
    }
    let (stream_ok, dump_bytes) = match decoded {
        None => {
            problems.push("encrypted and no age identity configured: decryption and the stream inside were not checked".into());
            (None, None)
        }
        Some(Ok(n)) => (Some(true), Some(n)),
        Some(Err(StreamError::Io(e))) => return Err(io_err(e)),
        Some(Err(e)) => {
            problems.push(e.to_string());
            (Some(false), None)
        }
    };
    let dump_bytes_ok = dump_bytes.map(|n| n == b.dump_bytes);
    if dump_bytes_ok == Some(false) {
        problems.push(format!(
            "dump size mismatch: the catalog has {} bytes, the stream holds {}",
            b.dump_bytes,
            dump_bytes.unwrap_or(0)
        ));
    }
    Ok(VerifyOutput {
        ok: hash_ok && size_ok && stream_ok != Some(false) && dump_bytes_ok != Some(false),
        hash_ok,
        actual_sha256,
        size_ok,
        actual_stored_bytes,
        stream_ok,
        decryption,
        decryption_error,
        dump_bytes,
        dump_bytes_ok,
        problems,
    })
}

/// Reads the decoded dump in chunks into `tx` until its end ([`Msg::End`]) or an error
/// ([`Msg::Failed`], after the data decoded before it); stops quietly when the receiver goes
/// away.
pub(super) fn pump(
    mut reader: Box<dyn Read + Send>,
    tx: &tokio::sync::mpsc::Sender<Msg>,
    layer: &str,
) {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut len = 0;
        let mut last = None;
        while len < CHUNK {
            match reader.read(&mut buf[len..]) {
                Ok(0) => {
                    last = Some(Msg::End);
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    last = Some(Msg::Failed(classify(e, layer).to_string()));
                    break;
                }
            }
        }
        if len > 0 {
            buf.truncate(len);
            if tx.blocking_send(Msg::Data(buf)).is_err() {
                return;
            }
        }
        if let Some(msg) = last {
            let _ = tx.blocking_send(msg);
            return;
        }
    }
}

/// Counts the raw bytes read, for the caller's progress and for the result.
pub(super) struct RawCounter<R> {
    inner: R,
    progress: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl<R> RawCounter<R> {
    pub(super) fn new(inner: R, progress: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            progress,
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The count of raw bytes read, shared.
    pub(super) fn counter(&self) -> Arc<AtomicU64> {
        self.bytes.clone()
    }
}

impl<R: Read> Read for RawCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Relaxed);
        self.progress.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

/// Checks the stored bytes as they stream past (a backup read from the bucket is read once,
/// not hashed first and read again): once its metadata's size has been read, the SHA-256 must
/// match, else the read that completed it fails; a stream that ends short or runs long fails
/// too. `verified` is set when the whole file checked out, and the restore holds back the
/// end of the tool's input until it is, so a damaged file never commits.
pub(super) struct VerifyingReader<R> {
    inner: R,
    hash: sha2::Sha256,
    read: u64,
    expected_bytes: u64,
    expected_sha256: String,
    verified: Arc<std::sync::atomic::AtomicBool>,
}

impl<R> VerifyingReader<R> {
    pub(super) fn new(inner: R, expected_bytes: u64, expected_sha256: &str) -> Self {
        Self {
            inner,
            hash: <sha2::Sha256 as sha2::Digest>::new(),
            read: 0,
            expected_bytes,
            expected_sha256: expected_sha256.to_ascii_lowercase(),
            verified: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Set once every byte was read and matched.
    pub(super) fn verified(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.verified.clone()
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        use std::io::{Error, ErrorKind};
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.hash.update(&buf[..n]);
        if n == 0 && self.read < self.expected_bytes {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "size mismatch: the stored file ended after {} bytes, its metadata says {}",
                    self.read, self.expected_bytes
                ),
            ));
        }
        if self.read > self.expected_bytes {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "size mismatch: the stored file is longer than the {} bytes its metadata says",
                    self.expected_bytes
                ),
            ));
        }
        let done = self.read == self.expected_bytes;
        if done && !self.verified.load(std::sync::atomic::Ordering::Relaxed) {
            let sha = hex::encode(self.hash.clone().finalize());
            if sha != self.expected_sha256 {
                return Err(Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "SHA-256 mismatch: the metadata has {}, the stored file has {sha}",
                        self.expected_sha256
                    ),
                ));
            }
            self.verified
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod verifying_tests {
    use super::*;
    use sha2::Digest;

    fn run(data: &[u8], expected: &[u8]) -> (std::io::Result<u64>, bool) {
        let sha = hex::encode(sha2::Sha256::digest(expected));
        let mut r = VerifyingReader::new(data, expected.len() as u64, &sha);
        let v = r.verified();
        let out = std::io::copy(&mut r, &mut std::io::sink());
        (out, v.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[test]
    fn only_the_exact_bytes_verify() {
        let good = b"the stored backup".repeat(1000);
        assert!(matches!(run(&good, &good), (Ok(_), true)));
        let mut altered = good.clone();
        altered[5] ^= 1;
        let (out, ok) = run(&altered, &good);
        assert!(!ok && out.unwrap_err().to_string().contains("SHA-256 mismatch"));
        let (out, ok) = run(&good[..100], &good);
        assert!(
            !ok && out
                .unwrap_err()
                .to_string()
                .contains("ended after 100 bytes")
        );
        let longer = [good.as_slice(), b"x"].concat();
        let (out, _) = run(&longer, &good);
        assert!(out.unwrap_err().to_string().contains("longer"));
    }
}
