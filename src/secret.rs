//! Secret handling: a connection-string type that never prints its password (URL, libpq
//! key=value string, or a value that parses as neither), and scrubbing of free text.

mod dsn;
mod malformed;
#[cfg(test)]
mod props;
mod url;

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

    /// What is wrong with the shape of a value that is not a `scheme://` URL and that libpq
    /// would not read as a key=value string, said without quoting it; `None` when the shape
    /// is fine (a URL's parser then has its say). For the error that refuses the value, in
    /// place of a driver's message that may quote part of it.
    pub fn shape_problem(&self) -> Option<String> {
        match Shape::of(&self.0) {
            Shape::Url => None,
            Shape::Dsn => dsn::shape_problem(&self.0),
            Shape::Malformed => Some(malformed::shape_problem(&self.0)),
        }
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

/// Redacts any connection string: a `scheme://` URL, a libpq key=value string, or anything
/// else (a mistyped scheme, none at all), whose password is then found by its shape. Safe for
/// any input: what cannot be read is masked rather than shown.
pub fn redact_conninfo(s: &str) -> String {
    match Shape::of(s) {
        Shape::Url => url::redact(s),
        Shape::Dsn => dsn::redact(s),
        Shape::Malformed => malformed::redact(s),
    }
}

/// How a connection string is read.
enum Shape {
    Url,
    Dsn,
    Malformed,
}

impl Shape {
    fn of(s: &str) -> Self {
        if url::has_scheme(s) {
            Shape::Url
        } else if dsn::looks_like(s) {
            Shape::Dsn
        } else {
            Shape::Malformed
        }
    }
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k == "password" || k == "pass" || k == "passwd" || k == "sslpassword" || k == "auth"
}

fn conninfo_secrets(s: &str) -> Vec<String> {
    let mut out = match Shape::of(s) {
        Shape::Url => url::secrets(s),
        Shape::Dsn => dsn::secrets(s),
        Shape::Malformed => malformed::secrets(s),
    };
    let decoded: Vec<String> = out
        .iter()
        .flat_map(|p| {
            let pair = format!("x={p}");
            let form = ::url::form_urlencoded::parse(pair.as_bytes())
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

    /// The text with every secret masked. The known secrets and the `password=` values are
    /// found in the text as given, so that masking one cannot hide another (a URL-shaped piece
    /// of a password with a space, a secret that cuts into `password`); then URLs are
    /// redacted, and the known secrets masked again in what their normalising shows.
    pub fn scrub(&self, text: &str) -> String {
        let mut ranges = dsn::text_values(text);
        for s in &self.secrets {
            ranges.extend(text.match_indices(s.as_str()).map(|(i, m)| i..i + m.len()));
        }
        let mut out = scrub_urls(&mask_ranges(text, ranges));
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// The text with each of the byte ranges (overlapping ones merged) replaced by [`MASK`].
fn mask_ranges(text: &str, mut ranges: Vec<std::ops::Range<usize>>) -> String {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut iter = ranges.into_iter().peekable();
    while let Some(mut r) = iter.next() {
        while let Some(next) = iter.next_if(|n| n.start <= r.end) {
            r.end = r.end.max(next.end);
        }
        out.push_str(&text[at..r.start]);
        out.push_str(MASK);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Redacts the password of every `scheme://user:pass@` URL (or `user:pass@host` with a
/// mistyped scheme) and every `password=` value (read by libpq's rules) in text, and every age
/// secret key (`AGE-SECRET-KEY-1…`, in either case).
pub fn scrub_urls(text: &str) -> String {
    mask_age_keys(&scrub_url_words(&dsn::scrub_text(text)))
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

/// Redacts every space-separated word that holds a URL's userinfo: one starting with
/// `scheme://` read as a URL, any other `…:…@…` by its shape.
fn scrub_url_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if !word.contains('@') {
            out.push_str(word);
            continue;
        }
        let trimmed = word.trim_matches(|c| c == '"' || c == '`' || c == '\'' || c == ',');
        let start = word.find(trimmed).unwrap_or(0);
        out.push_str(&word[..start]);
        if url::has_scheme(trimmed) {
            out.push_str(&url::redact(trimmed));
        } else {
            out.push_str(&malformed::redact(trimmed));
        }
        out.push_str(&word[start + trimmed.len()..]);
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

    /// The mistyped URLs of issue 12 (item 1): redacted form, and the password to hide.
    const MISTYPED: &[(&str, &str, &str)] = &[
        (
            "postgres:/u:Sp3cPW@127.0.0.1/app",
            "postgres:/u:***@127.0.0.1/app",
            "Sp3cPW",
        ),
        ("postgres//u:pw@h", "postgres//u:***@h", "pw"),
        ("//u:pw@h/app", "//u:***@h/app", "pw"),
        ("u:pw@h/app", "u:***@h/app", "pw"),
        ("redis:/:pw@h", "redis:/:***@h", "pw"),
        ("redis//:pw@h", "redis//:***@h", "pw"),
        (":pw@h:6379/0", ":***@h:6379/0", "pw"),
    ];

    #[test]
    fn mistyped_urls_are_masked_and_their_password_scrubbed() {
        for (input, want, pw) in MISTYPED {
            let u = SecretUrl::new(*input);
            assert_eq!(&u.redacted(), want, "{input:?}");
            assert_eq!(&format!("{u}"), want);
            assert!(u.secrets().contains(&pw.to_string()), "{input:?}");
            // A driver error quoting the value, scrubbed with what the value yields.
            let said = format!("invalid connection string \"{input}\": no scheme");
            let out = Scrubber::new(u.secrets()).scrub(&said);
            assert!(out.contains(want), "{out}");
            // Free text alone (no known secrets) masks it by shape too.
            assert!(scrub_urls(&said).contains(want), "{}", scrub_urls(&said));
        }
        let u = SecretUrl::new("postgres:/u:Sp3cPW@127.0.0.1/app");
        let out = Scrubber::new(u.secrets()).scrub("auth failed with Sp3cPW");
        assert_eq!(out, "auth failed with ***");
    }

    #[test]
    fn redaction_is_safe_for_any_input() {
        let cases = [
            ("host=db password=a://b@c", "a://b"),
            ("foo password=x9@h", "x9"),
            ("postgres:u:pw10@h", "pw10"),
            ("postgres:/u:pw11", "pw11"),
            ("postgres://u:pw12@[bad", "pw12"),
        ];
        for (input, pw) in cases {
            let r = redact_conninfo(input);
            assert!(!r.contains(pw), "{input:?} → {r:?}");
            assert!(
                SecretUrl::new(input)
                    .secrets()
                    .iter()
                    .any(|s| s.contains(pw)),
                "{input:?}: {:?}",
                SecretUrl::new(input).secrets()
            );
        }
        assert_eq!(redact_conninfo(""), "");
        assert_eq!(redact_conninfo("localhost"), "localhost");
    }

    #[test]
    fn dsn_escapes_are_read_as_libpq_reads_them() {
        let u = SecretUrl::new(r"host=db password=Sp3c\ TAIL dbname=x");
        assert_eq!(u.redacted(), "host=db password=*** dbname=x");
        assert!(u.secrets().contains(&"Sp3c TAIL".to_string()));
        assert!(u.secrets().contains(&r"Sp3c\ TAIL".to_string()));
        let u = SecretUrl::new("host = db password = 'x y' dbname = x");
        assert_eq!(u.redacted(), "host = db password = *** dbname = x");
        for text in [
            r"connection to host=db password=Sp3c\ TAIL failed",
            "connection to host=db password = 'x y' failed",
            "connection to host=db PASSWORD=\"x y\" failed",
        ] {
            let out = scrub_urls(text);
            assert!(
                !out.contains("TAIL") && !out.contains("x y") && !out.contains(" y"),
                "{text:?} → {out:?}"
            );
            assert!(out.ends_with("*** failed"), "{out}");
        }
    }

    /// Cases the properties in `props` found: masking by shape must not hide a known secret
    /// from the literal masking, nor a literal the shape.
    #[test]
    fn one_masking_does_not_hide_what_another_finds() {
        let out = scrub_urls("bad value postgres:/://A0b@a here");
        assert!(!out.contains("A0b"), "{out}");
        let s = Scrubber::new(vec!["0!AA :A".into()]);
        let out = s.scrub("bad value postgres:/:0!AA :A@. here");
        assert!(!out.contains("0!AA"), "{out}");
        let s = Scrubber::new(vec!["ss".into()]);
        let out = s.scrub("auth with password=zz9 failed");
        assert_eq!(out, "auth with pa***word=*** failed");
    }
}
