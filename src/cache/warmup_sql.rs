//! The SQL around a warm-up query, so that a warm-up never writes to PostgreSQL and never
//! receives a row too large for it. PostgreSQL decides, steward does not parse SQL:
//!
//! - the query runs in a `READ ONLY` transaction under `statement_timeout` =
//!   `cache.warmup_timeout`, so whatever it calls, nothing is written and it cannot run for ever;
//! - it is first prepared alone (extended protocol): PostgreSQL refuses several statements in
//!   one, and says how many columns it returns, without running it;
//! - it then runs inside [`wrapped`], a `WITH` query that renders both columns as text and has
//!   the server measure them: a key or value over `cache.max_value_bytes` arrives as NULL plus
//!   its size, never as its bytes. Only what may stand in a `WITH` list runs at all (no DDL, no
//!   `COPY`, no `CALL`); a data-modifying statement there is refused by the read-only
//!   transaction.

use std::time::Duration;
use tokio_postgres::error::SqlState;

/// Opens the warm-up's transaction: read-only, with the statement timeout in milliseconds
/// (at least 1: 0 would turn the timeout off).
pub(super) fn begin(timeout: Duration) -> String {
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    format!("BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = {ms}")
}

/// The query as it runs: its first two columns as text (any type renders, as in psql), each
/// row's key and value sizes in bytes, and the key and value themselves only when they fit
/// in `max` bytes. `OFFSET 0` keeps each step a separate subquery, so each cast and
/// measurement is computed once per row; the rows still stream (nothing is materialized).
pub(super) fn wrapped(query: &str, max: u64) -> String {
    // A trailing `;` is part of one statement when prepared alone, but not inside `( )`; the
    // line break ends a trailing `--` comment.
    let body = query.trim_end_matches(|c: char| c.is_whitespace() || c == ';');
    format!(
        "WITH steward_q(steward_key, steward_value) AS (\n{body}\n)\n\
         SELECT CASE WHEN steward_kb <= {max} THEN steward_k END,\n\
         \x20      CASE WHEN steward_kb <= {max} AND steward_vb <= {max} THEN steward_v END,\n\
         \x20      steward_kb, steward_vb\n\
         FROM (SELECT steward_k, steward_v,\n\
         \x20            octet_length(steward_k) AS steward_kb, octet_length(steward_v) AS steward_vb\n\
         \x20     FROM (SELECT steward_key::text AS steward_k, steward_value::text AS steward_v\n\
         \x20           FROM steward_q OFFSET 0) AS steward_t\n\
         \x20     OFFSET 0) AS steward_s"
    )
}

/// What a PostgreSQL error says about the warm-up query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// It writes (or locks rows, or changes the transaction): the read-only transaction
    /// refused it.
    Writes,
    /// It is not one query: several statements, or something PostgreSQL refuses where a
    /// query must stand (a syntax error, a data-modifying `WITH` inside it).
    NotOneQuery,
    /// It was cancelled: by `statement_timeout` (`cache.warmup_timeout`), unless an
    /// administrator cancelled it.
    Cancelled,
    /// Anything else (a missing table, a permission, a division by zero…).
    Failed,
}

/// Sorts a PostgreSQL error code into a [`Refusal`].
pub(super) fn refusal(code: &SqlState) -> Refusal {
    if *code == SqlState::QUERY_CANCELED {
        Refusal::Cancelled
    } else if [
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::ACTIVE_SQL_TRANSACTION,
    ]
    .contains(code)
    {
        Refusal::Writes
    } else if [SqlState::SYNTAX_ERROR, SqlState::FEATURE_NOT_SUPPORTED].contains(code) {
        Refusal::NotOneQuery
    } else {
        Refusal::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_is_read_only_with_a_timeout_of_at_least_a_millisecond() {
        assert_eq!(
            begin(Duration::from_secs(300)),
            "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = 300000"
        );
        assert!(begin(Duration::from_micros(10)).ends_with("= 1"));
        assert!(begin(Duration::from_secs(u64::MAX / 2)).ends_with(&format!("= {}", i32::MAX)));
    }

    #[test]
    fn the_query_is_wrapped_whole_without_its_trailing_semicolons() {
        let w = wrapped("SELECT id, doc FROM items -- all of them\n ; \n", 1024);
        assert!(
            w.starts_with("WITH steward_q(steward_key, steward_value) AS (\nSELECT id, doc FROM items -- all of them\n)\n"),
            "{w}"
        );
        assert!(w.contains("steward_kb <= 1024 THEN steward_k END"), "{w}");
        assert!(w.contains("steward_vb <= 1024 THEN steward_v END"), "{w}");
        assert_eq!(w.matches("OFFSET 0").count(), 2, "{w}");
    }

    #[test]
    fn errors_are_sorted_by_code() {
        use Refusal::*;
        assert_eq!(refusal(&SqlState::READ_ONLY_SQL_TRANSACTION), Writes);
        assert_eq!(refusal(&SqlState::SYNTAX_ERROR), NotOneQuery);
        assert_eq!(refusal(&SqlState::FEATURE_NOT_SUPPORTED), NotOneQuery);
        assert_eq!(refusal(&SqlState::QUERY_CANCELED), Cancelled);
        assert_eq!(refusal(&SqlState::UNDEFINED_TABLE), Failed);
    }
}
