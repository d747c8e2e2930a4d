//! Where in the config file something is (line, column, dotted key) and how the line there may
//! be shown: a TOML syntax error names all of that and never shows a secret.

/// A 1-based line and column (in characters) of the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub line: usize,
    pub column: usize,
}

/// The position of byte `offset` in `text`.
pub(super) fn position(text: &str, offset: usize) -> Position {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[start..].chars().count() + 1,
    }
}

/// Parses `text` as TOML; a syntax error comes back as one line of text that says where
/// (line, column, key) and what, and shows the offending line only masked.
pub(super) fn check(text: &str) -> Result<(), String> {
    let err = match toml::de::DeTable::parse(text) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let at = position(text, err.span().map_or(text.len(), |s| s.start));
    let key = key_at_line(text, at.line);
    let what = crate::secret::scrub_urls(err.message().trim());
    let mut out = format!("line {}, column {}", at.line, at.column);
    if let Some(k) = &key {
        out += &format!(" (key `{k}`)");
    }
    out += &format!(": {what}");
    let line = text.lines().nth(at.line - 1).unwrap_or("");
    out += &format!(
        "; line {} reads: {}",
        at.line,
        shown_line(line, key.as_deref())
    );
    Err(out)
}

/// True for keys whose value is or may carry a credential: URLs (which may hold a password),
/// passwords, secrets, identities, tokens, basic-auth hashes, and age recipients (where a
/// secret key is sometimes pasted by mistake).
pub(super) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "url",
        "password",
        "secret",
        "identity",
        "token",
        "basic_auth",
        "recipients",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The line as it may be shown: a secret-bearing key's value, or any value the scrubbers
/// would touch (the syntax is broken, so they may not find all of it), is replaced whole.
fn shown_line(line: &str, key: Option<&str>) -> String {
    let line = line.trim();
    let scrubbed = crate::secret::mask_age_keys(&crate::secret::scrub_urls(line));
    let suspicious = scrubbed != line;
    let hidden = key.is_some_and(is_secret_key) || suspicious;
    if !hidden {
        return truncate(line);
    }
    match line.split_once('=') {
        Some((k, _)) if key.is_some() => format!(
            "{} = {} (the value is not shown: it may hold a secret)",
            k.trim(),
            crate::secret::MASK
        ),
        _ => "(not shown: it may hold a secret)".to_string(),
    }
}

fn truncate(line: &str) -> String {
    const MAX: usize = 120;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    }
}

/// The dotted key that line `line` (1-based) sets or opens, read from the line itself and the
/// nearest table header above it; `None` when the line is neither `key = …` nor a header.
pub(super) fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let this = lines.get(line.checked_sub(1)?)?;
    if let Some(h) = header(this) {
        return Some(h);
    }
    let (k, _) = this.split_once('=')?;
    let k = bare_key(k)?;
    let table = lines[..line - 1].iter().rev().find_map(|l| header(l));
    Some(match table {
        Some(t) => format!("{t}.{k}"),
        None => k,
    })
}

/// `[a.b]` or `[[a.b]]` → `a.b`.
fn header(line: &str) -> Option<String> {
    let l = line.trim();
    let inner = l.strip_prefix("[[").and_then(|r| r.split_once("]]"));
    let inner = inner.or_else(|| l.strip_prefix('[').and_then(|r| r.split_once(']')));
    let (inner, rest) = inner?;
    let rest = rest.trim();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    bare_key(inner)
}

/// A (possibly dotted, possibly quoted) key as `a.b`; `None` if it does not look like one.
fn bare_key(k: &str) -> Option<String> {
    let parts: Vec<String> = k
        .split('.')
        .map(|p| p.trim().trim_matches(['"', '\'']).to_string())
        .collect();
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    });
    ok.then(|| parts.join("."))
}
