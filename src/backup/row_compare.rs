//! A restore test's proof that the data came back: each table's rows in the restored copy
//! against the rows counted from the dump stream when the backup was taken.

use super::catalog::BackupMeta;
use super::ctx::Ctx;
use super::error::BackupError;
use super::pgconn::PgTarget;

/// Compares the restored database `db` with `meta.table_rows`; a backup without recorded
/// counts (older, or a stream that could not be followed) passes on the restore alone.
pub(super) async fn compare(
    ctx: &Ctx,
    meta: &BackupMeta,
    db: &str,
    url: &crate::secret::SecretUrl,
) -> Result<(), BackupError> {
    let Some(want) = &meta.table_rows else {
        return Ok(());
    };
    let target = PgTarget::new(url, Some(db)).map_err(|e| BackupError::Failed(e.to_string()))?;
    let c = target
        .connect()
        .await
        .map_err(|e| super::scratch::pg_failed(ctx, "cannot connect to the restored copy", &e))?;
    let mut differ = Vec::new();
    for (table, rows) in want {
        // Names come from metadata: only the form steward writes is ever put into SQL.
        if !super::row_count::is_qualified(table) {
            differ.push(format!("{table}: not a table name steward records"));
            continue;
        }
        let got = c
            .query_one(&format!("SELECT count(*) FROM ONLY {table}"), &[])
            .await
            .map(|r| r.get::<_, i64>(0));
        match got {
            Ok(n) if n as u64 == *rows => {}
            Ok(n) => differ.push(format!("{table}: {rows} rows at backup time, {n} restored")),
            Err(e) => differ.push(format!(
                "{table}: cannot be counted in the restored copy ({})",
                super::pg_text::pg_error(&e)
            )),
        }
    }
    if differ.is_empty() {
        return Ok(());
    }
    let shown = differ.len().min(10);
    Err(BackupError::Failed(ctx.scrubber.scrub(&format!(
        "the restored rows differ from those counted at backup time in {} table(s): {}{}",
        differ.len(),
        differ[..shown].join("; "),
        if differ.len() > shown { "; …" } else { "" }
    ))))
}
