//! The PostgreSQL side of a warm-up: the namespace's query streamed row by row (column 1: the
//! key suffix, column 2: the value, both as text), each row checked, its value encoded by the
//! codec and compression policy ([`super::codec`]), and the SETs gathered into pipelines for
//! [`super::warmup_write`].
//!
//! # Never a write
//! The query runs as one statement in a read-only transaction under `cache.warmup_timeout`,
//! inside the `WITH` query of [`super::warmup_sql`]; what PostgreSQL refuses becomes the
//! warm-up's error, scrubbed of secrets.
//!
//! # Bounded memory
//! Rows come through tokio-postgres' row stream. Its connection task hands rows over a channel
//! of one message batch and stops reading the socket while this reader is behind, so the
//! server is held back by TCP flow control and at most a socket buffer of rows is in memory —
//! never the whole result. A key or value over `cache.max_value_bytes` is measured by the
//! server and arrives as NULL plus its size, so no row larger than twice the limit is ever
//! received; a pipeline is sent once it holds `cache.pipeline_batch` SETs or
//! [`PIPELINE_BYTES`], whichever comes first.

use super::codec::{self, Compress};
use super::warmup_report::{RejectedRow, WarmupError, WarmupReport};
use super::warmup_sql::{self, Refusal};
use super::warmup_write::Batch;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::types::{ToSql, Type};

/// Rejected rows listed in a report (all are counted).
const MAX_REJECTED_SHOWN: usize = 10;

/// Bytes of keys and values after which a pipeline is sent even when it holds fewer than
/// `cache.pipeline_batch` SETs: with large values, a full batch would hold a lot of memory.
const PIPELINE_BYTES: usize = 4 * 1024 * 1024;

/// What the reader needs to turn rows into SET commands.
pub(super) struct Plan {
    pub(super) namespace: String,
    /// The config key of the query, `cache.namespace[i] (name).warmup.query`, for errors.
    pub(super) key: String,
    pub(super) prefix: String,
    pub(super) codec: crate::config::Codec,
    pub(super) compress: Compress,
    pub(super) ttl_ms: u64,
    pub(super) batch: usize,
    /// `cache.max_value_bytes`.
    pub(super) max_bytes: u64,
    /// `cache.warmup_timeout`.
    pub(super) timeout: Duration,
}

/// Streams the query's rows into pipelines for [`super::warmup_write::write`]; counts what it
/// reads. An error ends the channel with it; a closed channel (the writer failed) ends the
/// reading.
pub(super) async fn read(
    pg: tokio_postgres::Client,
    query: String,
    plan: Plan,
    tx: mpsc::Sender<Result<Batch, WarmupError>>,
    scrubber: crate::secret::Scrubber,
) -> WarmupReport {
    let mut report = WarmupReport {
        namespace: plan.namespace.clone(),
        ..WarmupReport::default()
    };
    if let Err(e) = rows(&pg, &query, &plan, &tx, &mut report).await {
        let _ = tx.send(Err(failure(e, &plan, &scrubber))).await;
    }
    report
}

/// Why [`rows`] stopped before the end of the result: PostgreSQL failed (it refused the query,
/// or the connection broke), or the query does not return two columns.
enum RowsError {
    Pg(tokio_postgres::Error),
    Columns(usize),
}

impl From<tokio_postgres::Error> for RowsError {
    fn from(e: tokio_postgres::Error) -> Self {
        RowsError::Pg(e)
    }
}

/// The warm-up error for `e`: PostgreSQL's own words, with what they mean for the query.
fn failure(e: RowsError, plan: &Plan, scrubber: &crate::secret::Scrubber) -> WarmupError {
    let e = match e {
        RowsError::Columns(0) => {
            return WarmupError::NotSelect {
                key: plan.key.clone(),
                message: "it returns no columns, so it was not run".into(),
            }
        }
        RowsError::Columns(got) => {
            return WarmupError::Columns {
                namespace: plan.namespace.clone(),
                got,
            }
        }
        RowsError::Pg(e) => e,
    };
    let message = scrubber.scrub(&crate::monitor::postgres::describe(&e));
    let Some(db) = e.as_db_error() else {
        return WarmupError::PgUnreachable(message);
    };
    match warmup_sql::refusal(db.code()) {
        Refusal::Writes => WarmupError::NotSelect {
            key: plan.key.clone(),
            message: format!(
                "it writes or locks, and the warm-up's read-only transaction refused it: {message}"
            ),
        },
        Refusal::NotOneQuery => WarmupError::NotSelect {
            key: plan.key.clone(),
            message: format!("PostgreSQL refused it: {message}"),
        },
        Refusal::Cancelled => WarmupError::Cancelled {
            namespace: plan.namespace.clone(),
            message,
            limit: humantime::format_duration(plan.timeout).to_string(),
        },
        Refusal::Failed => WarmupError::Query {
            namespace: plan.namespace.clone(),
            message,
        },
    }
}

async fn rows(
    pg: &tokio_postgres::Client,
    query: &str,
    plan: &Plan,
    tx: &mpsc::Sender<Result<Batch, WarmupError>>,
    report: &mut WarmupReport,
) -> Result<(), RowsError> {
    pg.batch_execute(&warmup_sql::begin(plan.timeout)).await?;
    // Prepared alone, not run: one statement only, and its columns.
    let got = pg.prepare(query).await?.columns().len();
    if got < 2 {
        return Err(RowsError::Columns(got));
    }
    let sql = warmup_sql::wrapped(query, plan.max_bytes);
    let no_params = std::iter::empty::<(&(dyn ToSql + Sync), Type)>();
    let stream = pg.query_typed_raw(&sql, no_params).await?;
    let mut stream = std::pin::pin!(stream);
    let mut batcher = Batcher::new(plan.batch);
    while let Some(row) = stream.next().await {
        let row = row?;
        report.rows_read += 1;
        let cells = Cells::of(&row)?;
        if let Err(reason) = admit(plan, &cells) {
            reject(report, cells.key, reason);
            continue;
        }
        let (Some(suffix), Some(value)) = (cells.key, cells.value) else {
            continue; // admitted rows have both
        };
        if let Some(batch) = batcher.push(plan, report, suffix, value) {
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
    }
    if let Some(batch) = batcher.finish() {
        if tx.send(Ok(batch)).await.is_err() {
            return Ok(());
        }
    }
    pg.batch_execute("COMMIT").await?;
    Ok(())
}

/// One row of the wrapped query: the key suffix and value (NULL when over the limit) and
/// their sizes in bytes as PostgreSQL measured them (NULL when the column is NULL).
struct Cells<'a> {
    key: Option<&'a str>,
    value: Option<&'a str>,
    key_bytes: Option<i32>,
    value_bytes: Option<i32>,
}

impl<'a> Cells<'a> {
    fn of(row: &'a tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Cells {
            key: row.try_get(0)?,
            value: row.try_get(1)?,
            key_bytes: row.try_get(2)?,
            value_bytes: row.try_get(3)?,
        })
    }
}

/// SETs gathered into pipelines of at most `batch` commands or about [`PIPELINE_BYTES`].
struct Batcher {
    pipe: redis::Pipeline,
    n: u64,
    bytes: usize,
    batch: usize,
}

impl Batcher {
    fn new(batch: usize) -> Self {
        Batcher {
            pipe: redis::pipe(),
            n: 0,
            bytes: 0,
            batch: batch.max(1),
        }
    }

    /// Adds `SET prefix+suffix value PX ttl` (the value encoded by the plan) and counts its
    /// bytes in the report; returns the pipeline when it is full.
    fn push(
        &mut self,
        plan: &Plan,
        report: &mut WarmupReport,
        suffix: &str,
        value: &str,
    ) -> Option<Batch> {
        let stored = codec::store(value.as_bytes(), plan.compress);
        report.bytes_before += value.len() as u64;
        report.bytes_after += stored.len() as u64;
        if matches!(stored, std::borrow::Cow::Owned(_)) {
            report.compressed += 1;
        }
        let mut key = String::with_capacity(plan.prefix.len() + suffix.len());
        key.push_str(&plan.prefix);
        key.push_str(suffix);
        self.bytes += key.len() + stored.len();
        self.pipe
            .cmd("SET")
            .arg(key)
            .arg(stored.as_ref())
            .arg("PX")
            .arg(plan.ttl_ms);
        self.n += 1;
        if self.n as usize >= self.batch || self.bytes >= PIPELINE_BYTES {
            return self.take();
        }
        None
    }

    /// The last, partly filled pipeline.
    fn finish(mut self) -> Option<Batch> {
        self.take()
    }

    fn take(&mut self) -> Option<Batch> {
        if self.n == 0 {
            return None;
        }
        let batch = (std::mem::take(&mut self.pipe), self.n);
        (self.n, self.bytes) = (0, 0);
        Some(batch)
    }
}

/// Why a row cannot become a key, if it cannot: sizes first (an oversized column was not
/// sent), then NULLs and emptiness, then the codec.
fn admit(plan: &Plan, c: &Cells<'_>) -> Result<(), String> {
    let max = plan.max_bytes;
    let over = |what: &str, n: i32| {
        format!("{what} is {n} bytes, more than cache.max_value_bytes ({max}); it was not read")
    };
    match (c.key_bytes, c.value_bytes) {
        (None, _) => Err("the key suffix (column 1) is NULL".into()),
        (Some(0), _) => Err("the key suffix (column 1) is empty".into()),
        (Some(n), _) if n as u64 > max => Err(over("the key suffix (column 1)", n)),
        (_, None) => Err("the value (column 2) is NULL".into()),
        (_, Some(n)) if n as u64 > max => Err(over("the value (column 2)", n)),
        _ => match c.value {
            Some(v) if c.key.is_some() => codec::check(plan.codec, v).map_err(|e| e.to_string()),
            _ => Err("PostgreSQL sent the row without its key suffix or value".into()),
        },
    }
}

fn reject(report: &mut WarmupReport, suffix: Option<&str>, reason: String) {
    report.rows_rejected += 1;
    if report.rejected.len() < MAX_REJECTED_SHOWN {
        report.rejected.push(RejectedRow {
            row: report.rows_read,
            suffix: suffix.map(str::to_string),
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::codec::Compress;
    use crate::config::Codec;

    fn plan(codec: Codec) -> Plan {
        Plan {
            namespace: "n".into(),
            key: "cache.namespace[0] (n).warmup.query".into(),
            prefix: "cache:n:".into(),
            codec,
            compress: Compress {
                enabled: false,
                threshold: 10,
            },
            ttl_ms: 1000,
            batch: 2,
            max_bytes: 8,
            timeout: Duration::from_secs(1),
        }
    }

    fn cells<'a>(key: Option<&'a str>, value: Option<&'a str>) -> Cells<'a> {
        Cells {
            key,
            value,
            key_bytes: key.map(|k| k.len() as i32),
            value_bytes: value.map(|v| v.len() as i32),
        }
    }

    #[test]
    fn rows_are_admitted_by_suffix_value_and_codec() {
        let json = plan(Codec::Json);
        assert!(admit(&json, &cells(Some("1"), Some("{\"a\":1}"))).is_ok());
        let no = |k, v| admit(&json, &cells(k, v)).unwrap_err();
        assert!(no(None, Some("{}")).contains("NULL"));
        assert!(no(Some(""), Some("{}")).contains("empty"));
        assert!(no(Some("1"), None).contains("value"));
        assert!(no(Some("1"), Some("nope")).contains("not JSON"));
        assert!(admit(&plan(Codec::Raw), &cells(Some("1"), Some("nope"))).is_ok());
    }

    #[test]
    fn oversized_columns_are_rejected_by_the_size_the_server_measured() {
        let raw = plan(Codec::Raw);
        let big_value = Cells {
            key: Some("k"),
            value: None,
            key_bytes: Some(1),
            value_bytes: Some(300_000_000),
        };
        let e = admit(&raw, &big_value).unwrap_err();
        assert!(
            e.contains("value (column 2) is 300000000 bytes, more than cache.max_value_bytes (8)"),
            "{e}"
        );
        let big_key = Cells {
            key: None,
            value: None,
            key_bytes: Some(9),
            value_bytes: Some(1),
        };
        let e = admit(&raw, &big_key).unwrap_err();
        assert!(e.contains("key suffix (column 1) is 9 bytes"), "{e}");
        assert!(admit(&raw, &cells(Some("12345678"), Some("12345678"))).is_ok());
    }

    #[test]
    fn pipelines_close_at_the_batch_size_or_the_byte_budget() {
        let p = plan(Codec::Raw);
        let mut r = WarmupReport::default();
        let mut b = Batcher::new(p.batch);
        assert!(b.push(&p, &mut r, "a", "1").is_none());
        let (_, n) = b
            .push(&p, &mut r, "b", "2")
            .expect("two SETs fill a batch of 2");
        assert_eq!(n, 2);
        let big = "x".repeat(PIPELINE_BYTES);
        let (_, n) = b
            .push(&p, &mut r, "c", &big)
            .expect("the byte budget is reached");
        assert_eq!(n, 1);
        assert!(b.finish().is_none(), "nothing left");
        assert_eq!(r.bytes_before, 2 + PIPELINE_BYTES as u64);
    }

    #[test]
    fn only_the_first_rejections_are_listed_but_all_are_counted() {
        let mut r = WarmupReport::default();
        for i in 0..25 {
            r.rows_read += 1;
            reject(&mut r, Some(&i.to_string()), "bad".into());
        }
        assert_eq!(r.rows_rejected, 25);
        assert_eq!(r.rejected.len(), MAX_REJECTED_SHOWN);
        assert_eq!(r.rejected[0].row, 1);
    }
}
