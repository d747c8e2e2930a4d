//! The PostgreSQL side of a warm-up: the namespace's query streamed row by row (column 1: the
//! key suffix, column 2: the value, both as text), each row checked, its value encoded by the
//! codec and compression policy ([`super::codec`]), and the SETs gathered into pipelines of
//! `cache.pipeline_batch` for [`super::warmup_write`].
//!
//! # Bounded memory
//! The rows come through tokio-postgres' simple-query stream. Its connection task hands rows to
//! the stream over a channel of one message batch and stops reading the socket while this
//! reader is behind, so the server is held back by TCP flow control and at most a socket
//! buffer of rows is in memory — never the whole result. The text protocol also renders any
//! column type (`jsonb`, `int8`, …) as text.

use super::codec::{self, Compress};
use super::warmup::{RejectedRow, WarmupError, WarmupReport};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::SimpleQueryMessage;

/// Rejected rows listed in a report (all are counted).
const MAX_REJECTED_SHOWN: usize = 10;

/// What the reader needs to turn rows into SET commands.
pub(super) struct Plan {
    pub(super) namespace: String,
    pub(super) prefix: String,
    pub(super) codec: crate::config::Codec,
    pub(super) compress: Compress,
    pub(super) ttl_ms: u64,
    pub(super) batch: usize,
}

/// A pipeline of SETs and how many it holds.
pub(super) type Batch = (redis::Pipeline, u64);

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
        let e = match e {
            RowsError::Pg(e) if e.as_db_error().is_some() => WarmupError::Query {
                namespace: plan.namespace.clone(),
                message: scrubber.scrub(&crate::monitor::postgres::describe(&e)),
            },
            RowsError::Pg(e) => {
                WarmupError::PgUnreachable(scrubber.scrub(&crate::monitor::postgres::describe(&e)))
            }
            RowsError::Columns(got) => WarmupError::Columns {
                namespace: plan.namespace.clone(),
                got,
            },
        };
        let _ = tx.send(Err(e)).await;
    }
    report
}

/// Why [`rows`] stopped before the end of the result: PostgreSQL failed (an error in the query,
/// or the connection), or the query does not return two columns.
enum RowsError {
    Pg(tokio_postgres::Error),
    Columns(usize),
}

async fn rows(
    pg: &tokio_postgres::Client,
    query: &str,
    plan: &Plan,
    tx: &mpsc::Sender<Result<Batch, WarmupError>>,
    report: &mut WarmupReport,
) -> Result<(), RowsError> {
    let stream = pg.simple_query_raw(query).await.map_err(RowsError::Pg)?;
    let mut stream = std::pin::pin!(stream);
    let (mut pipe, mut n) = (redis::pipe(), 0u64);
    while let Some(msg) = stream.next().await {
        let row = match msg.map_err(RowsError::Pg)? {
            SimpleQueryMessage::Row(row) => row,
            SimpleQueryMessage::RowDescription(cols) if cols.len() < 2 => {
                return Err(RowsError::Columns(cols.len()))
            }
            _ => continue,
        };
        report.rows_read += 1;
        if row.len() < 2 {
            return Err(RowsError::Columns(row.len()));
        }
        let (suffix, value) = (row.get(0), row.get(1));
        if let Err(reason) = admit(plan, suffix, value) {
            reject(report, suffix, reason);
            continue;
        }
        let (suffix, value) = (suffix.unwrap_or_default(), value.unwrap_or_default());
        let stored = codec::store(value.as_bytes(), plan.compress);
        report.bytes_before += value.len() as u64;
        report.bytes_after += stored.len() as u64;
        if matches!(stored, std::borrow::Cow::Owned(_)) {
            report.compressed += 1;
        }
        let mut key = String::with_capacity(plan.prefix.len() + suffix.len());
        key.push_str(&plan.prefix);
        key.push_str(suffix);
        pipe.cmd("SET")
            .arg(key)
            .arg(stored.as_ref())
            .arg("PX")
            .arg(plan.ttl_ms)
            .ignore();
        n += 1;
        if n as usize >= plan.batch {
            if tx.send(Ok((std::mem::take(&mut pipe), n))).await.is_err() {
                return Ok(());
            }
            n = 0;
        }
    }
    if n > 0 {
        let _ = tx.send(Ok((pipe, n))).await;
    }
    Ok(())
}

/// Why a row cannot become a key, if it cannot.
fn admit(plan: &Plan, suffix: Option<&str>, value: Option<&str>) -> Result<(), String> {
    match (suffix, value) {
        (None, _) => Err("the key suffix (column 1) is NULL".into()),
        (Some(""), _) => Err("the key suffix (column 1) is empty".into()),
        (_, None) => Err("the value (column 2) is NULL".into()),
        (Some(_), Some(v)) => codec::check(plan.codec, v).map_err(|e| e.to_string()),
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
            prefix: "cache:n:".into(),
            codec,
            compress: Compress {
                enabled: false,
                threshold: 10,
            },
            ttl_ms: 1000,
            batch: 2,
        }
    }

    #[test]
    fn rows_are_admitted_by_suffix_value_and_codec() {
        let json = plan(Codec::Json);
        assert!(admit(&json, Some("1"), Some("{\"a\":1}")).is_ok());
        assert!(admit(&json, None, Some("{}")).unwrap_err().contains("NULL"));
        assert!(admit(&json, Some(""), Some("{}"))
            .unwrap_err()
            .contains("empty"));
        assert!(admit(&json, Some("1"), None).unwrap_err().contains("value"));
        assert!(admit(&json, Some("1"), Some("nope"))
            .unwrap_err()
            .contains("not JSON"));
        assert!(admit(&plan(Codec::Raw), Some("1"), Some("nope")).is_ok());
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
