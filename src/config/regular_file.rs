//! Reading a file that config names (the config itself, secrets, keys, certificates) so that
//! it cannot wedge or bloat steward: only a regular file, opened without blocking, read up to
//! a size cap.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most a secret or key file may hold; real ones are a few hundred bytes.
pub const SECRET_CAP: u64 = 64 * 1024;
/// The most the config file may hold.
pub const CONFIG_CAP: u64 = 1024 * 1024;

/// Why a file could not be read; the message says what the file is and what to do, never
/// what it holds.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}, not a regular file (point the setting at a regular file)")]
    NotRegular(&'static str),
    #[error("it is larger than {} KiB (the limit for this kind of file)", .0 / 1024)]
    TooLarge(u64),
    #[error("it is not valid UTF-8 text")]
    NotUtf8,
}

/// Reads `path` if it is a regular file of at most `cap` bytes. The open never blocks (a FIFO
/// with no writer is refused, not waited on) and at most `cap + 1` bytes are read.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(describe(&kind)));
    }
    read_capped(file, cap)
}

/// [`read_regular`] for text.
pub fn read_regular_string(path: &Path, cap: u64) -> Result<String, ReadError> {
    String::from_utf8(read_regular(path, cap)?).map_err(|_| ReadError::NotUtf8)
}

fn read_capped(file: File, cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    file.take(cap + 1).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(out)
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let dir = std::env::temp_dir().join(format!("steward-regular-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Returns at once: a FIFO without a writer is not waited on.
        let e = read_regular(&fifo, SECRET_CAP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a FIFO, not a regular file (point the setting at a regular file)"
        );
        let e = read_regular(Path::new("/dev/zero"), SECRET_CAP).unwrap_err();
        assert!(
            matches!(e, ReadError::NotRegular("a character device")),
            "{e}"
        );
        assert!(matches!(
            read_regular(&dir, 10),
            Err(ReadError::NotRegular("a directory"))
        ));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; 11]).unwrap();
        assert!(matches!(
            read_regular(&big, 10),
            Err(ReadError::TooLarge(10))
        ));
        assert_eq!(read_regular(&big, 11).unwrap().len(), 11);
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_regular_string(&big, 10),
            Err(ReadError::NotUtf8)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
