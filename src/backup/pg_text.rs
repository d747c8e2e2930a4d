//! SQL text steward writes and reads: quoted identifiers and literals (and their inverse, as
//! pg_dump writes them), and a PostgreSQL error in the words shown to people. A leaf: it
//! imports nothing from the backup module.

/// A PostgreSQL error with the server's own message when there is one.
pub(super) use crate::monitor::postgres::describe as pg_error;

/// A quoted identifier.
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The inverse of [`ident`]: a double-quoted identifier at the start of `s` (`""` inside
/// standing for `"`), unquoted, and what follows its closing quote; `None` when `s` does not
/// start with one or it is not closed.
pub(super) fn unquote_ident(s: &str) -> Option<(String, &str)> {
    let q = s.strip_prefix('"')?;
    let mut name = String::new();
    let mut chars = q.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if chars.peek().map(|p| p.1) == Some('"') => {
                chars.next();
                name.push('"');
            }
            '"' => return Some((name, &q[i + 1..])),
            c => name.push(c),
        }
    }
    None
}

/// A quoted string literal (standard_conforming_strings is on since PostgreSQL 9.1).
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(
            unquote_ident("\"a\"\"b\".t"),
            Some(("a\"b".to_string(), ".t"))
        );
        assert_eq!(unquote_ident("\"open"), None);
        assert_eq!(unquote_ident("bare"), None);
    }
}
