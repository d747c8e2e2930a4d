//! Connection URLs that start with `scheme://`: the password and secret query parameters
//! masked, and read out for scrubbing, whether or not the URL parses.

use super::{is_secret_key, MASK};

/// True when the string starts with `scheme://` (a letter, then letters, digits, `+-.`).
pub(super) fn has_scheme(s: &str) -> bool {
    let t = s.trim_start();
    let Some(end) = t.find("://") else {
        return false;
    };
    let mut c = t[..end].chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic())
        && c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The URL with its password and secret query values masked; a URL that does not parse keeps
/// only its scheme.
pub(super) fn redact(s: &str) -> String {
    let Ok(mut u) = url::Url::parse(s) else {
        return match s.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://{MASK}"),
            None => MASK.to_string(),
        };
    };
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if is_secret_key(&k) {
                MASK.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let out = u.to_string().replace("%2A%2A%2A", MASK);
    // A raw password with a character URLs reserve (`#`, `/`, `?`) makes the parser see no
    // password at all; whatever sits between `user:` and the last `@` then must not show.
    match raw_userinfo_password(s) {
        Some(p) if u.password() != Some(p) && out.contains(p) => {
            format!("{}://{MASK}", u.scheme())
        }
        _ => out,
    }
}

/// The password and secret query values, as the URL parser reads them, and the raw text
/// between `user:` and the last `@` where the parser reads something else (or nothing).
pub(super) fn secrets(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parsed = url::Url::parse(s).ok();
    if let Some(u) = &parsed {
        out.extend(u.password().map(str::to_string));
        for (k, v) in u.query_pairs() {
            if is_secret_key(&k) {
                out.push(v.into_owned());
            }
        }
    }
    let parsed_pw = parsed.as_ref().and_then(|u| u.password());
    match raw_userinfo_password(s) {
        Some(p) if parsed_pw != Some(p) => out.push(p.to_string()),
        _ => {}
    }
    out
}

/// The text between the first `:` after `scheme://` and the last `@`, if any.
pub(super) fn raw_userinfo_password(s: &str) -> Option<&str> {
    let (_, rest) = s.split_once("://")?;
    let userinfo = &rest[..rest.rfind('@')?];
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_told_from_lookalikes() {
        assert!(has_scheme("postgres://h"));
        assert!(has_scheme(" redis+unix:///tmp/s"));
        assert!(!has_scheme("postgres:/u:pw@h"));
        assert!(!has_scheme("postgres//u:pw@h"));
        assert!(!has_scheme("//u:pw@h/app"));
        assert!(!has_scheme("host=db password=a://b@c"));
    }

    #[test]
    fn a_password_the_parser_misses_is_still_a_secret() {
        // `#` starts a fragment: the parser sees no password.
        let s = "postgres://u:pa#ss@h/db";
        assert!(
            secrets(s).contains(&"pa#ss".to_string()),
            "{:?}",
            secrets(s)
        );
        assert!(!redact(s).contains("pa#ss"), "{}", redact(s));
        // Unparseable: the raw password still counts.
        assert_eq!(secrets("postgres://u:pw9@[bad"), vec!["pw9".to_string()]);
    }
}
