//! libpq key=value connection strings: where each value starts and ends, read by the rules of
//! libpq's `conninfo_parse`, so that a password is masked exactly where libpq would read it.
//!
//! The rules: whitespace separates pairs and may stand around `=`; a value is either quoted
//! (`'…'`, ends at the first unescaped `'`) or unquoted (ends at the first unescaped
//! whitespace); in both, a backslash takes the next character literally.

use super::MASK;
use std::ops::Range;

/// One piece of a key=value string, as byte ranges into it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `key = value`; the value range includes its quotes.
    Pair {
        key: Range<usize>,
        value: Range<usize>,
    },
    /// A word with no `=` after it: libpq refuses the string, and the word is often the tail of
    /// a password written with an unquoted space.
    Bare(Range<usize>),
}

/// The whitespace of C's `isspace`, which libpq uses.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

/// Where a value starting at `i` ends: after its closing quote, or at unescaped whitespace.
/// An unterminated quoted value runs to the end.
pub(super) fn value_end(b: &[u8], i: usize) -> usize {
    let quoted = b.get(i) == Some(&b'\'');
    let mut j = if quoted { i + 1 } else { i };
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'\'' if quoted => return j + 1,
            c if !quoted && is_space(c) => return j,
            _ => j += 1,
        }
    }
    b.len()
}

/// Splits a key=value string the way libpq reads it, going on past what libpq refuses.
fn tokens(s: &str) -> Vec<Token> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = skip_space(b, 0);
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
            i += 1;
        }
        let key = start..i;
        i = skip_space(b, i);
        if b.get(i) != Some(&b'=') {
            out.push(Token::Bare(key));
            continue;
        }
        let from = skip_space(b, i + 1);
        i = value_end(b, from);
        out.push(Token::Pair {
            key,
            value: from..i,
        });
        i = skip_space(b, i);
    }
    out
}

/// A libpq keyword: letters, digits and `_`, not starting with a digit.
fn is_keyword(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True when the string starts as a key=value string does: a keyword, then `=`.
pub(super) fn looks_like(s: &str) -> bool {
    matches!(tokens(s).first(), Some(Token::Pair { key, .. }) if is_keyword(&s[key.clone()]))
}

/// The string with the value of every secret key masked, and every word libpq could not read
/// as a key (no `=` after it, or not a keyword) masked whole. The rest stays as written.
pub(super) fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for t in tokens(s) {
        let masked = match t {
            Token::Pair { key, value } if !is_keyword(&s[key.clone()]) => key.start..value.end,
            Token::Pair { key, value } if super::is_secret_key(&s[key.clone()]) => value,
            Token::Pair { .. } => continue,
            Token::Bare(r) => r,
        };
        out.push_str(&s[at..masked.start]);
        out.push_str(MASK);
        at = masked.end;
    }
    out.push_str(&s[at..]);
    out
}

/// What libpq would refuse in the shape of a key=value string, said without quoting any of
/// it (a driver's own message may quote a character of a password, or a mangled key).
pub(super) fn shape_problem(s: &str) -> Option<String> {
    let tokens = tokens(s);
    if tokens.iter().any(|t| matches!(t, Token::Bare(_))) {
        return Some(
            "a word in it has no `=` after it: a value with a space must be in single quotes \
             ('…') or have the space escaped with a backslash"
                .into(),
        );
    }
    let bad_key = |t: &Token| matches!(t, Token::Pair { key, .. } if !is_keyword(&s[key.clone()]));
    tokens
        .iter()
        .any(bad_key)
        .then(|| "a key in it is not a keyword (letters, digits and _, as in host=… user=…)".into())
}

/// The value of every secret key, as written (a driver may echo it) and as libpq reads it.
pub(super) fn secrets(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in tokens(s) {
        if let Token::Pair { key, value } = t {
            if super::is_secret_key(&s[key]) {
                out.push(unescape(&s[value.clone()]));
                out.push(s[value].to_string());
            }
        }
    }
    out
}

/// A value as libpq reads it: outer single quotes removed, `\x` read as `x`.
pub(super) fn unescape(v: &str) -> String {
    let inner = match v.strip_prefix('\'') {
        Some(rest) => rest.strip_suffix('\'').unwrap_or(rest),
        None => v,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// The keys whose values free text must not show (`sslpassword` contains `password`).
const TEXT_KEYS: &[&str] = &["password", "passwd"];

/// Masks the value after every `password=` / `passwd=` in free text (any case, whitespace
/// allowed around `=`), read by libpq's rules; see [`text_values`].
pub(super) fn scrub_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for r in text_values(text) {
        out.push_str(&text[copied..r.start]);
        out.push_str(MASK);
        copied = r.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Where the value after every `password=` / `passwd=` in free text lies, in order. A value
/// ends where libpq would end it; one in double quotes (not libpq's, but what a message may
/// show) runs to its closing quote or as far as libpq would read it, whichever is further.
pub(super) fn text_values(text: &str) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some((pos, len)) = next_key(&lower, i) {
        i = pos + len;
        let eq = skip_space(b, i);
        if b.get(eq) != Some(&b'=') {
            continue;
        }
        let from = skip_space(b, eq + 1);
        let mut to = value_end(b, from);
        if b.get(from) == Some(&b'"') {
            to = to.max(double_quoted_end(b, from));
        }
        out.push(from..to);
        i = i.max(to);
    }
    out
}

/// The first secret key at or after `from`: (position, length).
fn next_key(lower: &str, from: usize) -> Option<(usize, usize)> {
    TEXT_KEYS
        .iter()
        .filter_map(|k| lower[from..].find(k).map(|p| (from + p, k.len())))
        .min()
}

/// Where a value in double quotes starting at `i` ends (after the closing `"`, `\` escaping).
fn double_quoted_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input → redacted form, and the password that must not survive.
    const REDACT: &[(&str, &str, &str)] = &[
        ("host=db password=plain", "host=db password=***", "plain"),
        (
            r"host=db password=Sp3c\ TAIL dbname=x",
            "host=db password=*** dbname=x",
            "TAIL",
        ),
        (
            r"host=db password='a b\'c' dbname=x",
            "host=db password=*** dbname=x",
            "a b",
        ),
        (
            "host = db password = 'x y' user=u",
            "host = db password = *** user=u",
            "x y",
        ),
        (
            "password=\tSp3c\\\tT2 port=5",
            "password=\t*** port=5",
            "T2",
        ),
        (
            "host=db password=my secret word",
            "host=db password=*** *** ***",
            "secret",
        ),
        ("password='open ended", "password=***", "open"),
        ("host=db u:pw9@h=x user=app", "host=db *** user=app", "pw9"),
        ("sslpassword=k3y host=h", "sslpassword=*** host=h", "k3y"),
        ("PASSWORD=Up host=h", "PASSWORD=*** host=h", "Up"),
        ("password= host=h", "password= ***", "host=h"),
        (r"password=end\", "password=***", "end"),
    ];

    #[test]
    fn redaction_follows_libpq_quoting_and_escaping() {
        for (input, want, secret) in REDACT {
            let got = redact(input);
            assert_eq!(&got, want, "{input:?}");
            assert!(!got.contains(secret), "{input:?} → {got:?}");
        }
    }

    #[test]
    fn secrets_are_read_as_libpq_reads_them() {
        let cases: &[(&str, &[&str])] = &[
            (r"password=Sp3c\ TAIL", &["Sp3c TAIL", r"Sp3c\ TAIL"]),
            ("password = 'x y' host=h", &["x y", "'x y'"]),
            (r"password='a\\b\'c'", &[r"a\b'c", r"'a\\b\'c'"]),
            ("host=h", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(&secrets(input), want, "{input:?}");
        }
    }

    #[test]
    fn free_text_values_end_where_libpq_ends_them() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r"connect failed: password=Sp3c\ TAIL host=h",
                "connect failed: password=*** host=h",
                "TAIL",
            ),
            (
                "given password = 'x y' user=u",
                "given password = *** user=u",
                "x y",
            ),
            ("Password: none", "Password: none", "\u{0}"),
            ("a password=\"two words\" b", "a password=*** b", "words"),
            ("x password=\"ab\"cd e", "x password=*** e", "cd"),
            (
                "passwd=one and password=two",
                "passwd=*** and password=***",
                "two",
            ),
            ("url?password=q1&sslmode=x y", "url?password=*** y", "q1"),
        ];
        for (input, want, secret) in cases {
            let got = scrub_text(input);
            assert_eq!(&got, want, "{input:?}");
            assert!(!got.contains(secret), "{input:?} → {got:?}");
        }
    }

    #[test]
    fn shape_problems_quote_nothing() {
        let p = shape_problem("host=db password=my secret").unwrap();
        assert!(p.contains("single quotes") && !p.contains("secret"), "{p}");
        let p = shape_problem("host=db u:pw9@h=x").unwrap();
        assert!(p.contains("not a keyword") && !p.contains("pw9"), "{p}");
        assert_eq!(shape_problem(r"host=db password=Sp3c\ TAIL"), None);
        assert_eq!(shape_problem("host = db password = 'x y'"), None);
    }

    #[test]
    fn only_keyword_first_strings_look_like_dsns() {
        assert!(looks_like("host=db"));
        assert!(looks_like("  host = db"));
        assert!(!looks_like("u:pw@h/app?password=x"));
        assert!(!looks_like("postgres:/u:pw@h"));
        assert!(!looks_like(""));
    }
}
