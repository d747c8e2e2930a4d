//! Secret handling: a URL type that never prints its password, and scrubbing of free text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What replaces a secret wherever one would have been shown.
pub const MASK: &str = "***";

/// A connection string (URL or key=value DSN) whose password must never be shown.
///
/// `Debug`, `Display` and `Serialize` all give the redacted form, so a config can be logged or
/// printed by `check-config` without any further care; only `expose()` hands out the real value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a connection string.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The real value, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_conninfo(&self.0)
    }

    /// The literal secret values inside (password, in raw and percent-decoded form).
    pub fn secrets(&self) -> Vec<String> {
        conninfo_secrets(&self.0)
    }

    /// True when no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretUrl)
    }
}

/// Redacts a URL (`scheme://user:pass@host/db?password=x`) or a key=value DSN (`password=x`).
pub fn redact_conninfo(s: &str) -> String {
    if s.contains("://") {
        redact_url(s)
    } else {
        redact_dsn(s)
    }
}

fn redact_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) => {
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
            // A raw password with a character URLs reserve (`#`, `/`, `?`) makes the parser
            // see no password at all; whatever sits between `user:` and the last `@` then
            // must not show.
            match raw_userinfo_password(s) {
                Some(p) if u.password() != Some(p) && out.contains(p) => {
                    format!("{}://{MASK}", u.scheme())
                }
                _ => out,
            }
        }
        // Unparseable: keep only the scheme so nothing inside can leak.
        Err(_) => match s.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://{MASK}"),
            None => MASK.to_string(),
        },
    }
}

/// The text between the first `:` after `scheme://` and the last `@`, if any.
fn raw_userinfo_password(s: &str) -> Option<&str> {
    let (_, rest) = s.split_once("://")?;
    let userinfo = &rest[..rest.rfind('@')?];
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k == "password" || k == "pass" || k == "passwd" || k == "sslpassword" || k == "auth"
}

/// Splits a libpq key=value DSN into (key, raw value including quotes) spans.
fn dsn_pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let (val, next) = if let Some(stripped) = after.strip_prefix('\'') {
            let mut end = stripped.len();
            let mut escaped = false;
            for (i, c) in stripped.char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '\'' {
                    end = i;
                    break;
                }
            }
            let close = (end + 1).min(stripped.len());
            (format!("'{}", &stripped[..close]), &stripped[close..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.push((key, val));
        rest = next.trim_start();
    }
    out
}

fn redact_dsn(s: &str) -> String {
    let pairs = dsn_pairs(s);
    if pairs.is_empty() {
        return s.to_string();
    }
    pairs
        .into_iter()
        .map(|(k, v)| {
            if is_secret_key(&k) {
                format!("{k}={MASK}")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn conninfo_secrets(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.contains("://") {
        if let Ok(u) = url::Url::parse(s) {
            if let Some(p) = u.password() {
                out.push(p.to_string());
            }
            for (k, v) in u.query_pairs() {
                if is_secret_key(&k) {
                    out.push(v.into_owned());
                }
            }
        }
    } else {
        for (k, v) in dsn_pairs(s) {
            if is_secret_key(&k) {
                // As written (a driver may echo the fragment) and as libpq reads it.
                out.push(dsn_unquote(&v));
                out.push(v);
            }
        }
    }
    let decoded: Vec<String> = out
        .iter()
        .flat_map(|p| {
            let pair = format!("x={p}");
            let form = url::form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(_, v)| v.into_owned());
            // `%XX` decoded, a `+` left a `+` (as in a URL's userinfo).
            let plain = percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned());
            [form, plain]
        })
        .flatten()
        .collect();
    out.extend(decoded);
    out.retain(|p| !p.is_empty() && p != MASK);
    out.sort();
    out.dedup();
    out
}

/// A DSN value as libpq reads it: outer single quotes removed, `\\x` read as `x`.
fn dsn_unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('\'') else {
        return v.to_string();
    };
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Replaces every known secret value in free text, and redacts any connection URL in it.
///
/// Errors from drivers and parsers may quote what they were given; every message a user can
/// see passes through here.
#[derive(Clone, Debug, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// A scrubber that knows these literal secret values.
    pub fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        // Longest first, so that a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// The text with every secret masked.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = scrub_urls(text);
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// Redacts the password of every `scheme://user:pass@` URL and every `password=` pair in
/// text, and every age secret key (`AGE-SECRET-KEY-1…`, in either case).
pub fn scrub_urls(text: &str) -> String {
    mask_age_keys(&scrub_url_words(text))
}

/// How an age secret key starts (bech32: the rest is letters and digits of one case).
const AGE_KEY_PREFIX: &str = "AGE-SECRET-KEY-";

/// Masks everything after [`AGE_KEY_PREFIX`] (matched in any case) up to the next character
/// that is not a letter or digit.
pub fn mask_age_keys(text: &str) -> String {
    let upper = text.to_ascii_uppercase();
    if !upper.contains(AGE_KEY_PREFIX) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = upper[rest..].find(AGE_KEY_PREFIX) {
        let start = rest + found + AGE_KEY_PREFIX.len();
        out.push_str(&text[rest..start]);
        let len = text[start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(text.len() - start);
        out.push_str(MASK);
        rest = start + len;
    }
    out.push_str(&text[rest..]);
    out
}

fn scrub_url_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let lower = word.to_ascii_lowercase();
        if word.contains("://") && word.contains('@') {
            let trimmed = word.trim_matches(|c| c == '"' || c == '`' || c == '\'' || c == ',');
            let start = word.find(trimmed).unwrap_or(0);
            out.push_str(&word[..start]);
            out.push_str(&redact_url(trimmed));
            out.push_str(&word[start + trimmed.len()..]);
        } else if let Some(pos) = ["password=", "passwd=", "sslpassword="]
            .iter()
            .find_map(|k| lower.find(k).map(|p| p + k.len()))
        {
            out.push_str(&word[..pos]);
            out.push_str(MASK);
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod age_key_tests {
    use super::*;

    #[test]
    fn age_secret_keys_are_masked_wherever_they_appear() {
        let key = "AGE-SECRET-KEY-1QQPQQQSQQQQZQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSQ2KJY6N";
        let text = format!(
            "recipients = [\"{key}\"] is not an age public key; {}",
            key.to_lowercase()
        );
        let out = scrub_urls(&text);
        assert!(
            !out.contains("QQPQ") && !out.to_lowercase().contains("qqpq"),
            "{out}"
        );
        assert_eq!(out.matches("AGE-SECRET-KEY-***").count(), 1, "{out}");
        assert_eq!(out.matches("age-secret-key-***").count(), 1, "{out}");
        assert_eq!(scrub_urls("no key here"), "no key here");
        assert_eq!(mask_age_keys("AGE-SECRET-KEY-"), "AGE-SECRET-KEY-***");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_masked() {
        let u = SecretUrl::new("postgres://app:s3cr%40t@db.example:5432/app?sslmode=require");
        let r = u.redacted();
        assert!(!r.contains("s3cr"), "{r}");
        assert!(r.contains("app:***@db.example"), "{r}");
        assert_eq!(format!("{u:?}"), format!("{r:?}"));
        assert!(u.secrets().contains(&"s3cr@t".to_string()));
    }

    #[test]
    fn query_password_is_masked() {
        let r = redact_conninfo("postgres://db/app?user=a&password=hunter2");
        assert!(!r.contains("hunter2"), "{r}");
    }

    #[test]
    fn dsn_password_is_masked_quoted_or_not() {
        let r = redact_conninfo("host=db user=app password='a b\\'c' dbname=x");
        assert!(!r.contains("a b"), "{r}");
        assert!(r.contains("dbname=x"), "{r}");
        let r = redact_conninfo("host=db password=plain");
        assert_eq!(r, "host=db password=***");
        // As libpq reads it, and as written (a driver may echo the fragment).
        assert_eq!(
            SecretUrl::new("host=db password='a b\\'c'").secrets(),
            vec!["'a b\\'c'".to_string(), "a b'c".to_string()]
        );
    }

    #[test]
    fn redis_url_without_user() {
        let u = SecretUrl::new("redis://:topsecret@127.0.0.1:6379/0");
        assert!(!u.redacted().contains("topsecret"));
        assert_eq!(u.secrets(), vec!["topsecret".to_string()]);
    }

    #[test]
    fn unparseable_url_hides_everything() {
        let r = redact_conninfo("postgres://user:pw@[bad");
        assert_eq!(r, "postgres://***");
    }

    #[test]
    fn scrubber_masks_literals_and_urls() {
        let s = Scrubber::new(vec!["pw123".into()]);
        let t = s.scrub("failed for postgres://u:other@h/db: auth pw123 password=zzz");
        assert!(
            !t.contains("pw123") && !t.contains("other") && !t.contains("zzz"),
            "{t}"
        );
    }
}
