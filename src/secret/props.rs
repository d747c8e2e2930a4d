//! Properties of the redaction over generated passwords: for key=value strings with escaped
//! or quoted passwords and for mistyped URLs, the redacted form does not depend on the
//! password, and free text around the value never shows it.

use super::{redact_conninfo, scrub_urls, Scrubber, SecretUrl, MASK};
use proptest::prelude::*;

/// Passwords with printable ASCII, tabs and some non-ASCII.
fn password() -> impl Strategy<Value = String> {
    "[ -~\t\u{e9}\u{4e2d}]{1,24}"
}

/// An unquoted libpq value: whitespace, quotes and backslashes escaped with a backslash.
fn escaped(pw: &str) -> String {
    pw.chars()
        .flat_map(|c| match c {
            ' ' | '\t' | '\\' | '\'' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

/// A quoted libpq value.
fn quoted(pw: &str) -> String {
    let inner: String = pw
        .chars()
        .flat_map(|c| match c {
            '\\' | '\'' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    format!("'{inner}'")
}

/// Neither the password nor any whitespace-separated piece of it (4 characters or more) that
/// `rest` does not hold anyway shows in `out`.
fn hides(pw: &str, rest: &str, out: &str) -> Result<(), TestCaseError> {
    let pieces = pw.split(char::is_whitespace).filter(|p| p.len() >= 4);
    for p in std::iter::once(pw).chain(pieces) {
        if p.len() >= 4 && !rest.contains(p) {
            prop_assert!(!out.contains(p), "{:?} shows in {:?}", p, out);
        }
    }
    Ok(())
}

fn mistyped_start() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["postgres:/", "postgres//", "//", "", "redis:/", "redis//"][..])
}

proptest! {
    // Failures found are kept as plain tests in secret.rs, not in a regressions file.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn dsn_passwords_are_masked_as_libpq_reads_them(pw in password(), quote in any::<bool>()) {
        let (v, spaced) = if quote {
            (quoted(&pw), " = ")
        } else {
            (escaped(&pw), "=")
        };
        let s = format!("host{spaced}h password{spaced}{v} dbname{spaced}x");
        let want = format!("host{spaced}h password{spaced}{MASK} dbname{spaced}x");
        prop_assert_eq!(redact_conninfo(&s), want.clone());
        let u = SecretUrl::new(s.clone());
        prop_assert!(u.secrets().contains(&pw), "{:?}: {:?}", s, u.secrets());
        let rest = format!("failed: {want} end");
        let text = format!("failed: {s} end");
        hides(&pw, &rest, &scrub_urls(&text))?;
        hides(&pw, &rest, &Scrubber::new(u.secrets()).scrub(&text))?;
    }

    #[test]
    fn mistyped_urls_never_show_the_password(
        start in mistyped_start(),
        user in "[a-z]{0,5}",
        pw in "[ -~]{1,20}",
        host in "[a-z0-9.]{1,10}",
        end in prop::sample::select(&["", "/app", ":6379/0", "/db?sslmode=prefer"][..]),
    ) {
        // `u://x@h` is a URL with the scheme `u`; `redis:/x:y@h` reads as the scheme `redis`.
        prop_assume!(!(start.is_empty() && pw.starts_with("//")));
        prop_assume!(!(start.is_empty() && pw.starts_with('/') && ["redis", "unix"].contains(&user.as_str())));
        let s = format!("{start}{user}:{pw}@{host}{end}");
        let want = format!("{start}{user}:{MASK}@{host}{end}");
        prop_assert_eq!(redact_conninfo(&s), want.clone(), "{:?}", s);
        let u = SecretUrl::new(s.clone());
        prop_assert!(u.secrets().contains(&pw), "{:?}: {:?}", s, u.secrets());
        let rest = format!("bad value {want} here");
        let text = format!("bad value {s} here");
        hides(&pw, &rest, &Scrubber::new(u.secrets()).scrub(&text))?;
        if !pw.contains(' ') {
            hides(&pw, &rest, &scrub_urls(&text))?;
        }
    }
}
