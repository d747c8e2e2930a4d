//! How steward stores a value in a cache namespace: checked by the namespace's codec, then
//! gzip-compressed when the namespace has `compress = true` and the value is longer than
//! `cache.compression_threshold`.
//!
//! # The compression marker
//! A compressed value is a complete gzip stream (RFC 1952), so it starts with gzip's own magic
//! bytes `1f 8b`. That is the marker: an application reading a namespace with `compress = true`
//! checks the first two bytes and gunzips when they are `1f 8b`; anything else is the value as
//! it was. The marker cannot be mistaken for a plain value: warm-up values come from PostgreSQL
//! as text (UTF-8), and UTF-8 text never starts with `1f 8b` (`8b` is a continuation byte); for
//! any other input, [`store`] compresses a value that starts with the marker whatever its size,
//! so a reader still gets it back exactly. The stream has no file name and a zero mtime, so
//! `gunzip` decompresses it too.

use crate::config::Codec;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::borrow::Cow;
use std::io::Write;

/// The first two bytes of every compressed value (gzip's magic number).
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Compression level: 6, zlib's default; cache values are small, so the cost per value is a
/// few microseconds and the ratio is what a reader's memory and bandwidth gain.
const LEVEL: u32 = 6;

/// Why a value cannot be stored under its namespace's codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error(
        "not JSON ({0}); the namespace has codec = \"json\": fix the row or use codec = \"raw\""
    )]
    NotJson(String),
}

/// Checks `value` against the codec; the value is stored exactly as given (JSON is not
/// reformatted, so the application reads back the text PostgreSQL produced).
pub fn check(codec: Codec, value: &str) -> Result<(), CodecError> {
    match codec {
        Codec::Raw => Ok(()),
        Codec::Json => serde_json::from_str::<serde::de::IgnoredAny>(value)
            .map(|_| ())
            .map_err(|e| CodecError::NotJson(e.to_string())),
    }
}

/// The policy half of a namespace that decides compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compress {
    /// The namespace's `compress`.
    pub enabled: bool,
    /// `cache.compression_threshold`: values longer than this many bytes are compressed.
    pub threshold: usize,
}

impl Compress {
    /// Whether `value` is stored compressed.
    pub fn applies(&self, value: &[u8]) -> bool {
        self.enabled && (value.len() > self.threshold || value.starts_with(&GZIP_MAGIC))
    }
}

/// The bytes to store for `value`: gzip-compressed when [`Compress::applies`], else as is.
pub fn store<'a>(value: &'a [u8], policy: Compress) -> Cow<'a, [u8]> {
    if !policy.applies(value) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(gzip(value))
}

/// `value` as one gzip stream (no file name, zero mtime).
pub fn gzip(value: &[u8]) -> Vec<u8> {
    // Text compresses to well under half; start there to avoid most reallocations.
    let mut enc = GzEncoder::new(
        Vec::with_capacity(value.len() / 2 + 32),
        Compression::new(LEVEL),
    );
    // Writing into a Vec cannot fail.
    enc.write_all(value).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// What an application does on read: gunzip a value that starts with [`GZIP_MAGIC`], return
/// anything else as it is. Used by the tests; documents the reader's side in code.
pub fn load(stored: &[u8]) -> std::io::Result<Cow<'_, [u8]>> {
    if !stored.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(stored));
    }
    let mut out = Vec::with_capacity(stored.len() * 3);
    std::io::copy(&mut flate2::read::GzDecoder::new(stored), &mut out)?;
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Compress = Compress {
        enabled: true,
        threshold: 16,
    };

    #[test]
    fn json_codec_accepts_documents_and_names_the_fault() {
        assert!(check(Codec::Json, r#"{"a":[1,2,{"b":null}]}"#).is_ok());
        assert!(check(Codec::Json, " \"just a string\" ").is_ok());
        let e = check(Codec::Json, "{not json").unwrap_err().to_string();
        assert!(
            e.starts_with("not JSON (") && e.contains("codec = \"raw\""),
            "{e}"
        );
        assert!(check(Codec::Json, "").is_err());
        assert!(check(Codec::Json, "{} trailing").is_err());
        assert!(check(Codec::Raw, "{not json").is_ok());
    }

    #[test]
    fn only_values_above_the_threshold_are_compressed() {
        let small = b"0123456789abcdef"; // exactly the threshold: stays plain
        assert!(matches!(store(small, ON), Cow::Borrowed(v) if v == small));
        let big = br#"{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        let stored = store(big, ON);
        assert!(stored.starts_with(&GZIP_MAGIC));
        assert!(stored.len() < big.len());
        assert_eq!(load(&stored).unwrap().as_ref(), big.as_slice());
        let off = Compress {
            enabled: false,
            ..ON
        };
        assert!(matches!(store(big, off), Cow::Borrowed(_)));
    }

    #[test]
    fn a_plain_value_is_never_mistaken_for_a_compressed_one() {
        // A short value that happens to start with the marker is compressed anyway, so the
        // reader's "1f 8b means gzip" rule still gives it back.
        let tricky: Vec<u8> = GZIP_MAGIC.into_iter().chain([b'x']).collect();
        let stored = store(&tricky, ON);
        assert!(stored.len() > tricky.len());
        assert_eq!(load(&stored).unwrap().as_ref(), &tricky[..]);
        assert_eq!(load(b"plain").unwrap().as_ref(), b"plain");
        // Text never starts with the marker: 0x8b is not a valid second byte of UTF-8 text.
        assert!(std::str::from_utf8(&tricky).is_err());
    }

    #[test]
    fn the_stream_is_plain_gzip() {
        let stored = gzip(b"hello");
        // ID1 ID2, CM = 8 (deflate), FLG = 0 (no name, no comment), MTIME = 0.
        assert_eq!(&stored[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        assert_eq!(load(&stored).unwrap().as_ref(), b"hello");
    }
}
