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
    // A line inside a multi-line string or array belongs to the key that opened it.
    let opened = opening_line(text, at.line);
    let key = key_at_line(text, opened);
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
        shown_line(line, key.as_deref(), opened != at.line)
    );
    Err(out)
}

/// True for keys whose value is or may carry a credential: URLs (which may hold a password),
/// passwords, secrets, keys, identities, tokens, basic-auth hashes, and age recipients (where a
/// secret key is sometimes pasted by mistake); also the names an environment file uses for
/// them (`DB_PASS`, `MYSQL_PWD`, `API_KEY`), should one be given as the config.
pub(super) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "url",
        "pass",
        "pwd",
        "secret",
        "key",
        "identity",
        "token",
        "auth",
        "recipients",
        "credential",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// True when the last part of `key` names one of steward's keys (in any section): the value
/// of a key steward does not know (`pw = …`) may be anything, a secret too.
fn is_known_key(key: &str) -> bool {
    fn collect(v: &serde_json::Value, out: &mut std::collections::HashSet<String>) {
        match v {
            serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
                out.insert(k.clone());
                collect(v, out);
            }),
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut known = std::collections::HashSet::new();
    collect(
        &serde_json::to_value(crate::config::model::Config::default()).unwrap_or_default(),
        &mut known,
    );
    known.contains(key.rsplit('.').next().unwrap_or(key))
}

/// The line as it may be shown: a secret-bearing key's value, or any value the scrubbers
/// would touch (the syntax is broken, so they may not find all of it), is replaced whole.
fn shown_line(line: &str, key: Option<&str>, continued: bool) -> String {
    let line = line.trim();
    let scrubbed = crate::secret::mask_age_keys(&crate::secret::scrub_urls(line));
    let suspicious = scrubbed != line;
    // A line with no key to read (a lone word, `export X=…`) may be a secret file given as
    // the config; only a table header is shown then.
    let unplaced = key.is_none() && !line.starts_with('[');
    let hidden =
        key.is_some_and(|k| is_secret_key(k) || !is_known_key(k)) || suspicious || unplaced;
    if !hidden {
        return truncate(line);
    }
    match line.split_once('=') {
        Some((k, _)) if key.is_some() && !continued => format!(
            "{} = {} (the value is not shown: it may hold a secret)",
            k.trim(),
            crate::secret::MASK
        ),
        _ => "(not shown: it may hold a secret)".to_string(),
    }
}

/// The line (1-based) where the value that line `line` continues was opened: a multi-line
/// string (`"""`, `'''`) or an array or inline table spanning lines; `line` itself when it
/// starts outside any value. Reads the text before `line`, which parsed up to the error.
pub(super) fn opening_line(text: &str, line: usize) -> usize {
    let mut lex = Lexer::default();
    let mut opened = 1;
    for (i, l) in text.lines().take(line.saturating_sub(1)).enumerate() {
        if lex.is_outside() {
            opened = i + 1;
        }
        lex.line(l);
    }
    if lex.is_outside() {
        line
    } else {
        opened
    }
}

/// Where a TOML lexer is at the end of a line: inside a multi-line string, and how deep in
/// brackets and braces of a value.
#[derive(Default)]
struct Lexer {
    /// The closing quotes of the multi-line string the line ended in.
    string: Option<&'static str>,
    depth: usize,
}

impl Lexer {
    fn is_outside(&self) -> bool {
        self.string.is_none() && self.depth == 0
    }

    fn line(&mut self, l: &str) {
        let mut rest = Some(l);
        while let Some(r) = rest.filter(|r| !r.is_empty()) {
            rest = self.step(r);
        }
    }

    /// Reads one token at the start of `rest`; what is left of the line, `None` at its end.
    fn step<'a>(&mut self, rest: &'a str) -> Option<&'a str> {
        if let Some(close) = self.string {
            let end = find_close(rest, close)?;
            self.string = None;
            return Some(&rest[end..]);
        }
        if let Some(q) = ["\"\"\"", "'''"].into_iter().find(|q| rest.starts_with(q)) {
            self.string = Some(q);
            return Some(&rest[3..]);
        }
        let c = rest.chars().next()?;
        match c {
            '"' => return find_close(&rest[1..], "\"").map(|end| &rest[1 + end..]),
            '\'' => return find_close(&rest[1..], "'").map(|end| &rest[1 + end..]),
            '#' => return None,
            '[' | '{' => self.depth += 1,
            ']' | '}' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        Some(&rest[c.len_utf8()..])
    }
}

/// The byte offset just after the first `close` in `s` not escaped by a backslash (a literal
/// string, closed by `'`, has no escapes).
fn find_close(s: &str, close: &str) -> Option<usize> {
    let escapes = close.starts_with('"');
    let mut i = 0;
    while i < s.len() {
        if escapes && s[i..].starts_with('\\') {
            i += 1 + s[i + 1..].chars().next().map_or(0, char::len_utf8);
        } else if s[i..].starts_with(close) {
            return Some(i + close.len());
        } else {
            i += s[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    None
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
