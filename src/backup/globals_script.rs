//! Reading a stored `pg_dumpall --globals-only` script back: split into statements (quotes,
//! quoted identifiers and comments respected) and sorted by role, so that a restore can run
//! exactly the statements that define the roles a server lacks, and nothing else.

use std::collections::BTreeMap;

/// The statements of a globals script that concern roles.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoleScript {
    /// Per role, in script order: `CREATE ROLE`, `ALTER ROLE … WITH …`, `ALTER ROLE … SET`,
    /// `COMMENT ON ROLE`.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Memberships: (role granted, member, `GRANT …` without its `GRANTED BY`).
    pub grants: Vec<(String, String, String)>,
}

impl RoleScript {
    /// Sorts the statements of `script`; everything that is not about roles (settings,
    /// tablespaces, `ALTER ROLE … IN DATABASE`) is left out.
    pub fn parse(script: &str) -> RoleScript {
        let mut out = RoleScript::default();
        for stmt in split_statements(script) {
            let upper = stmt.to_ascii_uppercase();
            if let Some(rest) = strip_words(&stmt, &upper, &["CREATE", "ROLE"]) {
                if let Some((role, _)) = identifier(rest) {
                    out.roles.entry(role).or_default().push(stmt.clone());
                }
            } else if let Some(rest) = strip_words(&stmt, &upper, &["ALTER", "ROLE"]) {
                if let Some((role, after)) = identifier(rest) {
                    if !after
                        .trim_start()
                        .to_ascii_uppercase()
                        .starts_with("IN DATABASE")
                    {
                        out.roles.entry(role).or_default().push(stmt.clone());
                    }
                }
            } else if let Some(rest) = strip_words(&stmt, &upper, &["COMMENT", "ON", "ROLE"]) {
                if let Some((role, _)) = identifier(rest) {
                    out.roles.entry(role).or_default().push(stmt.clone());
                }
            } else if let Some(rest) = strip_words(&stmt, &upper, &["GRANT"]) {
                if let Some(g) = membership(&stmt, rest) {
                    out.grants.push(g);
                }
            }
        }
        out
    }
}

/// Attributes only a superuser may give or take (even as `NO…`, PostgreSQL 15 refuses them to
/// a CREATEROLE role).
const SUPERUSER_ATTRIBUTES: [&str; 3] = ["SUPERUSER", "REPLICATION", "BYPASSRLS"];

/// `ALTER ROLE … WITH …` without the attributes only a superuser may set, and those of them it
/// grants (not their `NO…` forms, which are the defaults) for a warning; `None` when it has
/// none to leave out.
pub fn without_superuser_attributes(stmt: &str) -> Option<(String, Vec<String>)> {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut removed_any = false;
    for word in words_outside_quotes(stmt) {
        let upper = word.to_ascii_uppercase();
        let bare = upper.strip_prefix("NO").unwrap_or(&upper);
        if SUPERUSER_ATTRIBUTES.contains(&bare) {
            removed_any = true;
            if !upper.starts_with("NO") {
                dropped.push(upper.clone());
            }
            continue;
        }
        kept.push(word);
    }
    removed_any.then(|| (kept.join(" "), dropped))
}

/// The words of a statement, a quoted string or identifier (with its spaces) kept whole.
fn words_outside_quotes(stmt: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in stmt.chars() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `GRANT a TO b [WITH …] [GRANTED BY c]` → (a, b, the statement without `GRANTED BY`).
fn membership(stmt: &str, rest: &str) -> Option<(String, String, String)> {
    let (granted, after) = identifier(rest)?;
    let after = after.trim_start();
    let to = after.get(..3).filter(|w| w.eq_ignore_ascii_case("TO "))?;
    let (member, tail) = identifier(&after[to.len()..])?;
    let cut = tail.to_ascii_uppercase().find(" GRANTED BY ");
    let kept = match cut {
        Some(i) => {
            let drop_from = stmt.len() - tail.len() + i;
            stmt[..drop_from].to_string()
        }
        None => stmt.to_string(),
    };
    Some((granted, member, kept))
}

/// After the keywords `words` (case-insensitive, separated by whitespace), the rest.
fn strip_words<'a>(stmt: &'a str, upper: &str, words: &[&str]) -> Option<&'a str> {
    let mut at = 0;
    for w in words {
        let rest = &upper[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if !trimmed.starts_with(w) {
            return None;
        }
        at += w.len();
        if !upper[at..].starts_with(char::is_whitespace) {
            return None;
        }
    }
    Some(&stmt[at..])
}

/// The identifier at the start of `s` (after whitespace), unquoted, and what follows it.
fn identifier(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    if s.starts_with('"') {
        return super::pg_text::unquote_ident(s);
    }
    let end = s
        .find(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .unwrap_or(s.len());
    // An unquoted identifier is folded to lower case, as PostgreSQL does.
    (end > 0).then(|| (s[..end].to_lowercase(), &s[end..]))
}

/// Splits SQL into statements (each without its `;`), skipping `--` comments and respecting
/// '…' strings ('' inside), E'…' strings (backslash escapes) and "…" identifiers.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                cur.push('\n');
            }
            '\'' | '"' => {
                let escapes = c == '\'' && cur.ends_with(['E', 'e']);
                cur.push(c);
                while let Some(d) = chars.next() {
                    cur.push(d);
                    if escapes && d == '\\' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                    } else if d == c {
                        if chars.peek() == Some(&c) {
                            cur.push(chars.next().unwrap_or(c));
                        } else {
                            break;
                        }
                    }
                }
            }
            ';' => {
                let s = cur.trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    let s = cur.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &str = r#"--
-- PostgreSQL database cluster dump
--

SET default_transaction_read_only = off;
SET client_encoding = 'UTF8';

--
-- Roles
--

CREATE ROLE app_owner;
ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "Odd; ""Name""";
ALTER ROLE "Odd; ""Name""" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:x;y--z';
ALTER ROLE app_owner SET search_path TO 'app', 'public';
ALTER ROLE app_owner IN DATABASE shop SET work_mem TO '8MB';
COMMENT ON ROLE app_owner IS 'owns the app; -- really';
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;

--
-- Role memberships
--

GRANT app_owner TO "Odd; ""Name""" GRANTED BY postgres;
GRANT pg_read_all_data TO app_owner WITH INHERIT TRUE GRANTED BY postgres;

CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
"#;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        let s = split_statements("a 'x;y' \"q;\"\"\" -- c;\nb; c E'\\';'; ");
        assert_eq!(s, ["a 'x;y' \"q;\"\"\" \nb", "c E'\\';'"]);
    }

    #[test]
    fn roles_and_memberships_are_sorted_out() {
        let r = RoleScript::parse(SCRIPT);
        let names: Vec<&str> = r.roles.keys().map(String::as_str).collect();
        assert_eq!(names, ["Odd; \"Name\"", "app_owner", "postgres"]);
        assert_eq!(
            r.roles["app_owner"],
            [
                "CREATE ROLE app_owner",
                "ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS",
                "ALTER ROLE app_owner SET search_path TO 'app', 'public'",
                "COMMENT ON ROLE app_owner IS 'owns the app; -- really'",
            ]
        );
        assert_eq!(
            r.roles["Odd; \"Name\""][1],
            "ALTER ROLE \"Odd; \"\"Name\"\"\" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:x;y--z'"
        );
        assert_eq!(
            r.grants,
            [
                (
                    "app_owner".to_string(),
                    "Odd; \"Name\"".to_string(),
                    "GRANT app_owner TO \"Odd; \"\"Name\"\"\"".to_string()
                ),
                (
                    "pg_read_all_data".to_string(),
                    "app_owner".to_string(),
                    "GRANT pg_read_all_data TO app_owner WITH INHERIT TRUE".to_string()
                ),
            ]
        );
    }

    #[test]
    fn superuser_attributes_can_be_left_out() {
        let (s, dropped) = without_superuser_attributes(
            "ALTER ROLE \"a b\" WITH NOSUPERUSER INHERIT LOGIN REPLICATION NOBYPASSRLS CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00' PASSWORD 'x SUPERUSER y'",
        )
        .unwrap();
        assert_eq!(
            s,
            "ALTER ROLE \"a b\" WITH INHERIT LOGIN CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00' PASSWORD 'x SUPERUSER y'"
        );
        assert_eq!(dropped, ["REPLICATION"]);
        assert_eq!(
            without_superuser_attributes("ALTER ROLE a WITH LOGIN"),
            None
        );
    }

    #[test]
    fn nothing_else_is_taken() {
        let r = RoleScript::parse("CREATE TABLESPACE x LOCATION '/x'; DROP ROLE app; GRANT SELECT ON t TO app; CREATE ROLEX y;");
        assert!(r.roles.is_empty(), "{r:?}");
        // "GRANT SELECT ON t TO app" names no role granted (SELECT is not followed by TO).
        assert!(r.grants.is_empty(), "{r:?}");
    }
}
