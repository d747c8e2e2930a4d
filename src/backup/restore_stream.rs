//! Reading a stored backup as the dump it holds: file → age decryption (optional) → gzip or
//! zstd decompression. Blocking; used on threads of their own by verify and restore.

use crate::config::Compression;
use std::io::{self, BufRead, BufReader, Read};

/// Why the stream inside a backup cannot be read.
#[derive(Debug)]
pub(super) enum StreamError {
    /// None of the identities can decrypt the file (or it is not an age file).
    Decrypt(String),
    /// The data is corrupt or truncated.
    Corrupt(String),
    /// Reading the file itself failed.
    Io(io::Error),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Decrypt(m) => write!(f, "cannot decrypt: {m}"),
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
                e => StreamError::Decrypt(e.to_string()),
            })?;
            let reader = dec
                .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
                .map_err(|e| match e {
                    age::DecryptError::NoMatchingKeys => StreamError::Decrypt(
                        "none of the configured age identities matches this backup's recipients"
                            .into(),
                    ),
                    age::DecryptError::Io(e) => classify(e, "age header"),
                    e => StreamError::Decrypt(e.to_string()),
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
