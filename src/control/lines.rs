//! Newline-delimited request reading with a length bound: an over-long line is discarded up
//! to its newline and reported, and the connection carries on with the next line.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// One read from the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline (a last line without one counts too).
    Text(String),
    /// A line longer than the bound; it has been skipped.
    TooLong,
    /// The client closed the connection.
    Eof,
}

/// Reads bounded lines from a stream.
pub struct BoundedLines<R> {
    reader: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    /// Lines longer than `max` bytes are reported as `TooLong`.
    pub fn new(read: R, max: usize) -> Self {
        Self {
            reader: BufReader::new(read),
            max,
        }
    }

    /// The next line; memory stays under `max` plus one buffer whatever the client sends.
    pub async fn next(&mut self) -> std::io::Result<Line> {
        let mut buf = Vec::new();
        let mut too_long = false;
        loop {
            let (used, done) = {
                let avail = self.reader.fill_buf().await?;
                if avail.is_empty() {
                    return Ok(match (too_long, buf.is_empty()) {
                        (true, _) => Line::TooLong,
                        (false, true) => Line::Eof,
                        (false, false) => Line::Text(String::from_utf8_lossy(&buf).into_owned()),
                    });
                }
                let (take, used, done) = match avail.iter().position(|b| *b == b'\n') {
                    Some(i) => (i, i + 1, true),
                    None => (avail.len(), avail.len(), false),
                };
                if !too_long {
                    buf.extend_from_slice(&avail[..take]);
                    if buf.len() > self.max {
                        too_long = true;
                        buf = Vec::new();
                    }
                }
                (used, done)
            };
            self.reader.consume(used);
            if done {
                return Ok(if too_long {
                    Line::TooLong
                } else {
                    Line::Text(String::from_utf8_lossy(&buf).into_owned())
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_skipped_and_reading_goes_on() {
        let mut data = b"short\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100));
        data.extend(b"\nafter\nlast");
        let mut lines = BoundedLines::new(&data[..], 10);
        assert_eq!(lines.next().await.unwrap(), Line::Text("short".into()));
        assert_eq!(lines.next().await.unwrap(), Line::TooLong);
        assert_eq!(lines.next().await.unwrap(), Line::Text("after".into()));
        assert_eq!(lines.next().await.unwrap(), Line::Text("last".into()));
        assert_eq!(lines.next().await.unwrap(), Line::Eof);
    }
}
