//! Human-readable output of the `cache` commands.

use super::protocol::Reply;
use super::render_fmt::duration as long_duration;
use super::render_fmt::{bytes, table};
use crate::cache::clear::ClearReport;
use crate::cache::warmup::WarmupReply;

/// `cache clear`: what was walked and the final count; `None` when the shape is unexpected.
pub fn clear(reply: &Reply) -> Option<String> {
    let r: ClearReport = serde_json::from_value(reply.data.clone()).ok()?;
    let what = match &r.namespace {
        Some(ns) => format!("{} (namespace {ns})", r.pattern),
        None => r.pattern.clone(),
    };
    Some(if r.dry_run {
        format!(
            "dry run: {} keys match {what}; nothing deleted ({})\n",
            r.scanned,
            duration(r.seconds)
        )
    } else {
        format!(
            "cleared {what}: {} keys deleted, {} found, in {}\n",
            r.deleted,
            r.scanned,
            duration(r.seconds)
        )
    })
}

/// One line of progress for the running clears (`cache_clear_jobs`), e.g. on stderr while
/// `cache clear` waits.
pub fn clear_progress(jobs: &[ClearReport]) -> Option<String> {
    let r = jobs.first()?;
    Some(if r.dry_run {
        format!("{} keys found, {} elapsed", r.scanned, duration(r.seconds))
    } else {
        format!(
            "{} keys deleted, {} found, {} elapsed",
            r.deleted,
            r.scanned,
            duration(r.seconds)
        )
    })
}

/// Seconds with two decimals under a minute (clears are often that short), else as elsewhere.
fn duration(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        long_duration(secs)
    }
}

/// `cache warm-up`: one row per namespace (rows, keys, rejected, compression, time, rate),
/// then the rejected rows it lists; `None` when the shape is unexpected.
pub fn warm_up(reply: &Reply) -> Option<String> {
    let r: WarmupReply = serde_json::from_value(reply.data.clone()).ok()?;
    let mut rows = vec![[
        "NAMESPACE",
        "ROWS",
        "KEYS",
        "REJECTED",
        "COMPRESSED",
        "BYTES",
        "STORED",
        "TTL",
        "TIME",
        "KEYS/S",
    ]
    .map(String::from)
    .to_vec()];
    for n in &r.namespaces {
        rows.push(vec![
            n.namespace.clone(),
            n.rows_read.to_string(),
            n.keys_written.to_string(),
            n.rows_rejected.to_string(),
            n.compressed.to_string(),
            bytes(n.bytes_before as f64),
            bytes(n.bytes_after as f64),
            long_duration(n.ttl_seconds),
            duration(n.duration_seconds),
            format!(
                "{:.0}",
                n.keys_written as f64 / n.duration_seconds.max(1e-6)
            ),
        ]);
    }
    let mut out = table(&rows);
    for n in r.namespaces.iter().filter(|n| n.rows_rejected > 0) {
        out += &format!(
            "\n{} row(s) of {} rejected{}:\n",
            n.rows_rejected,
            n.namespace,
            if (n.rejected.len() as u64) < n.rows_rejected {
                format!(", the first {}", n.rejected.len())
            } else {
                String::new()
            }
        );
        for x in &n.rejected {
            let suffix = x
                .suffix
                .as_deref()
                .map_or("NULL".into(), |s| format!("{s:?}"));
            out += &format!("  row {} (key suffix {suffix}): {}\n", x.row, x.reason);
        }
    }
    Some(out)
}

#[cfg(test)]
mod warm_up_tests {
    use super::*;
    use crate::cache::warmup::{RejectedRow, WarmupReport};

    #[test]
    fn warm_up_reports_a_row_per_namespace_and_the_rejected_rows() {
        let r = WarmupReply {
            namespaces: vec![WarmupReport {
                namespace: "analytics".into(),
                rows_read: 3,
                keys_written: 2,
                rows_rejected: 1,
                rejected: vec![RejectedRow {
                    row: 3,
                    suffix: Some("x".into()),
                    reason: "not JSON".into(),
                }],
                compressed: 1,
                bytes_before: 4096,
                bytes_after: 1024,
                ttl_seconds: 1800.0,
                duration_seconds: 0.5,
            }],
        };
        let out = warm_up(&Reply::data(&r)).unwrap();
        assert!(out.starts_with("NAMESPACE"), "{out}");
        assert!(out.contains("analytics"), "{out}");
        assert!(out.contains("1 row(s) of analytics rejected:"), "{out}");
        assert!(out.contains("row 3 (key suffix \"x\"): not JSON"), "{out}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_reports_read_as_sentences() {
        let r = ClearReport {
            pattern: "cache:a:*".into(),
            namespace: Some("a".into()),
            scanned: 12,
            deleted: 12,
            seconds: 0.5,
            done: true,
            ..ClearReport::default()
        };
        let out = clear(&Reply::data(&r)).unwrap();
        assert!(
            out.starts_with("cleared cache:a:* (namespace a): 12 keys deleted, 12 found"),
            "{out}"
        );
        let dry = ClearReport {
            dry_run: true,
            deleted: 0,
            ..r
        };
        let out = clear(&Reply::data(&dry)).unwrap();
        assert!(out.starts_with("dry run: 12 keys match cache:a:*"), "{out}");
        assert!(clear_progress(&[]).is_none());
    }
}
