//! Secret handling: a connection-string type that never prints its password (URL, libpq
//! key=value string, or a value that parses as neither), and scrubbing of free text.

mod dsn;
mod malformed;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
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

/// The secrets free text holds by its shape: every `password=` / `passwd=` value (as written
/// and as libpq reads it) and the password of every `scheme://user:pass@` word. For values
/// that are not connection strings (a password typed into `log.level`, say), so that a message
/// quoting only a piece of such a value is scrubbed of it too.
pub fn text_secrets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in dsn::text_values(text) {
        out.push(dsn::unescape(&text[r.clone()]));
        out.push(text[r].to_string());
    }
    for word in text.split(|c: char| c.is_whitespace() || c == ',') {
        if word.contains('@') && url::has_scheme(word) {
            out.extend(url::secrets(word));
        }
    }
    out.retain(|p| !p.is_empty() && p != MASK);
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
