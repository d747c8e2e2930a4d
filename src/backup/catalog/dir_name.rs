//! How a database's name becomes the name of its backup directory, and back. PostgreSQL lets
//! a database be called almost anything (`Sales DB`, `übung`, `../x`), so the name is escaped
//! rather than used as it is: every byte outside `[A-Za-z0-9_.-]` becomes `%XX` (upper-case
//! hex), and so does a leading `.` or `-`. The result never holds `/`, NUL, a control
//! character or a space, never starts with `.` (so never `.` or `..`) or `-`, and is at most
//! 3 × 63 = 189 bytes; names already plain map to themselves, so directories written before
//! the escaping existed are still found. Only the escaping of a name decodes: each directory
//! name stands for at most one database.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The bytes escaped anywhere: all but ASCII letters, digits, `_`, `.` and `-`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-');

/// The directory name of `database`'s backups (see the module doc).
pub fn encode(database: &str) -> String {
    let mut out = String::with_capacity(database.len());
    let rest = match database.as_bytes().first() {
        Some(b'.') => {
            out.push_str("%2E");
            &database[1..]
        }
        Some(b'-') => {
            out.push_str("%2D");
            &database[1..]
        }
        _ => database,
    };
    out.extend(utf8_percent_encode(rest, ESCAPED));
    out
}

/// The database whose backups a directory called `dir` holds: `None` unless `dir` is exactly
/// what [`encode`] makes of a PostgreSQL database name (`%41` for `A`, lower-case hex, a bare
/// `%` or a stray byte are all refused).
pub fn decode(dir: &str) -> Option<String> {
    let name = percent_decode_str(dir).decode_utf8().ok()?.into_owned();
    (crate::config::is_backup_database_name(&name) && encode(&name) == dir).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_map_to_themselves() {
        for name in ["app", "steward", "app_prod-2.x", "A.b-c_9", "x.", "a..b"] {
            assert_eq!(encode(name), name);
            assert_eq!(decode(name).as_deref(), Some(name));
        }
    }

    #[test]
    fn names_with_spaces_quotes_and_letters_are_escaped() {
        assert_eq!(encode("Sales DB"), "Sales%20DB");
        assert_eq!(encode("übung"), "%C3%BCbung");
        assert_eq!(encode("it's \"q\""), "it%27s%20%22q%22");
        assert_eq!(encode("100%"), "100%25");
    }

    #[test]
    fn hostile_names_make_safe_directory_names() {
        let mut long = String::new();
        for c in "ß/.\"'\n\t ".chars().cycle() {
            if long.len() + c.len_utf8() > 63 {
                break;
            }
            long.push(c);
        }
        let long = long.as_str();
        for name in [
            "../x",
            "..",
            ".",
            ".hidden",
            "-rf",
            "a/b",
            "/etc",
            "a\\b",
            "tab\there",
            "new\nline",
            "\u{7f}del",
            "\u{1b}[31mred",
            "'; DROP DATABASE x; --",
            "%2E",
            "*",
            "~",
            long,
        ] {
            let dir = encode(name);
            assert!(!dir.is_empty() && dir.len() <= 189, "{name:?} -> {dir:?}");
            assert!(
                dir.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-%".contains(&b)),
                "{name:?} -> {dir:?}"
            );
            assert!(!dir.starts_with(['.', '-']), "{name:?} -> {dir:?}");
            assert_eq!(decode(&dir).as_deref(), Some(name), "{dir:?}");
        }
    }

    #[test]
    fn only_the_escaping_of_a_name_decodes() {
        for dir in [
            "",
            "%41pp",
            "%c3%bcbung",
            "100%",
            "%zz",
            "%FF",
            "%00",
            ".hidden",
            "..",
            "-x",
            "a b",
            "a/b",
            &"x".repeat(64),
        ] {
            assert_eq!(decode(dir), None, "{dir:?}");
        }
    }

    #[test]
    fn round_trip_over_every_single_character_name() {
        for c in (1..=0x2FFu32).filter_map(char::from_u32) {
            let name = c.to_string();
            assert_eq!(decode(&encode(&name)), Some(name));
        }
    }
}
