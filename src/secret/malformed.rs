//! Connection strings that are neither a `scheme://` URL nor a key=value string — a mistyped
//! scheme (`postgres:/u:pw@h`, `redis//:pw@h`) or none (`u:pw@h/app`, `:pw@h:6379/0`): they
//! cannot be parsed, so the password is found by shape, as an operator would write it.
//!
//! Everything between the first `:` after the user part and the last `@` is the password; with
//! no `@`, everything after that `:`. Secret query values after the host are masked too.

use super::{dsn, MASK};
use std::ops::Range;

/// Where the user part starts: after a scheme-like start (`scheme:/` of a scheme steward
/// reads, `anything//`) and any slashes. `u:pw@h` and `u:/pw@h` have no such start: `u` is
/// the user.
fn user_start(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first().is_some_and(u8::is_ascii_alphabetic) {
        i = 1;
        while b
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            i += 1;
        }
        let known = SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(&s[..i]));
        if known && b.get(i) == Some(&b':') && b.get(i + 1) == Some(&b'/') {
            i += 1;
        } else if b.get(i) != Some(&b'/') {
            i = 0;
        }
    }
    while b.get(i) == Some(&b'/') {
        i += 1;
    }
    i
}

/// The byte range of the password, if the string holds one by its shape. Where the user part
/// has no `:`, the scheme-like start may have been a user with a password starting with `/`
/// (`u:/pw@h`): the first `:` of all then starts the password.
fn password_range(s: &str) -> Option<Range<usize>> {
    let end = s.rfind('@').unwrap_or(s.len());
    let start = user_start(s).min(end);
    let colon = s[start..end]
        .find(':')
        .map(|c| start + c)
        .or_else(|| s[..end].find(':'))?;
    (colon + 1 < end).then_some(colon + 1..end)
}

/// The string with its password, and every `password=` value in it, masked.
pub(super) fn redact(s: &str) -> String {
    let masked = match password_range(s) {
        Some(r) => format!("{}{MASK}{}", &s[..r.start], &s[r.end..]),
        None => s.to_string(),
    };
    dsn::scrub_text(&masked)
}

/// The password and every `password=` value, raw and unescaped.
pub(super) fn secrets(s: &str) -> Vec<String> {
    let mut out: Vec<String> = password_range(s)
        .map(|r| s[r].to_string())
        .into_iter()
        .collect();
    for r in dsn::text_values(s) {
        out.push(dsn::unescape(&s[r.clone()]));
        out.push(s[r].to_string());
    }
    out
}

/// The schemes steward reads, for telling `postgres:u@h` (a lost `//`) from `u:pw@h`.
const SCHEMES: &[&str] = &[
    "postgres",
    "postgresql",
    "redis",
    "rediss",
    "unix",
    "redis+unix",
];

/// What is wrong with the shape, said so that the operator can fix it. Quotes nothing but a
/// scheme-like start (letters, digits, `+-.`), which holds no secret.
pub(super) fn shape_problem(s: &str) -> String {
    let t = s.trim_start();
    let len = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .unwrap_or(t.len());
    let (scheme, rest) = t.split_at(len);
    let lettered = t.starts_with(|c: char| c.is_ascii_alphabetic());
    if lettered && rest.starts_with(":/") {
        format!("`{scheme}:/` has one slash where a URL has two: start it with {scheme}://")
    } else if lettered && rest.starts_with("//") {
        format!("`{scheme}//` lacks the colon after the scheme: start it with {scheme}://")
    } else if rest.starts_with(':') && SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(scheme)) {
        format!("`{scheme}:` is not followed by `//`: start it with {scheme}://")
    } else if t.starts_with("//") {
        "it starts with `//` but has no scheme before it: write postgres://… or redis://…".into()
    } else if t.contains('@') {
        "it has no scheme: a URL starts with postgres:// or redis://, a key=value string with \
         key=value (host=… user=…)"
            .into()
    } else {
        "it is neither a URL (postgres://… or redis://…) nor a key=value string (host=… user=…)"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mistyped URLs of issue 12 and kin: input → redacted form, password.
    const CASES: &[(&str, &str, &str)] = &[
        (
            "postgres:/u:Sp3cPW@127.0.0.1/app",
            "postgres:/u:***@127.0.0.1/app",
            "Sp3cPW",
        ),
        ("postgres//u:pw1@h", "postgres//u:***@h", "pw1"),
        ("//u:pw2@h/app", "//u:***@h/app", "pw2"),
        ("u:pw3@h/app", "u:***@h/app", "pw3"),
        ("redis:/:pw4@h", "redis:/:***@h", "pw4"),
        ("redis//:pw5@h", "redis//:***@h", "pw5"),
        (":pw6@h:6379/0", ":***@h:6379/0", "pw6"),
        ("postgres:/u:a@b:c@h/db", "postgres:/u:***@h/db", "a@b:c"),
        ("postgres:/u:has space@h", "postgres:/u:***@h", "has space"),
        ("postgres:/u:pw7", "postgres:/u:***", "pw7"),
        (
            "u:pw8@h/app?sslmode=x&password=q9",
            "u:***@h/app?sslmode=x&password=***",
            "q9",
        ),
        ("postgres:u:pw10@h", "postgres:***@h", "pw10"),
        ("u:/pw11@h/app", "u:***@h/app", "/pw11"),
        ("postgres:/pw12@h", "postgres:***@h", "pw12"),
        ("localhost", "localhost", "\u{0}"),
        ("user@host/db", "user@host/db", "\u{0}"),
    ];

    #[test]
    fn the_password_is_masked_by_shape() {
        for (input, want, secret) in CASES {
            let got = redact(input);
            assert_eq!(&got, want, "{input:?}");
            assert!(!got.contains(secret), "{input:?} → {got:?}");
        }
    }

    #[test]
    fn the_password_is_a_secret_to_scrub() {
        for (input, _, secret) in CASES.iter().filter(|c| c.2 != "\u{0}") {
            assert!(
                secrets(input).iter().any(|s| s.contains(secret)),
                "{input:?}: {:?}",
                secrets(input)
            );
        }
        assert!(secrets("user@host/db").is_empty());
    }

    #[test]
    fn the_shape_problem_says_what_to_write() {
        let cases = [
            (
                "postgres:/u:Sp3cPW@127.0.0.1/app",
                "`postgres:/` has one slash",
            ),
            ("postgres//u:pw@h", "`postgres//` lacks the colon"),
            ("redis//:pw@h", "start it with redis://"),
            ("postgres:u:pw@h", "`postgres:` is not followed by `//`"),
            ("//u:pw@h/app", "no scheme before it"),
            ("u:pw@h/app", "it has no scheme"),
            (":pw@h:6379/0", "it has no scheme"),
            ("localhost", "neither a URL"),
        ];
        for (input, want) in cases {
            let got = shape_problem(input);
            assert!(got.contains(want), "{input:?}: {got}");
            assert!(!got.contains("pw@") && !got.contains("Sp3c"), "{got}");
        }
    }
}
