//! The file's values must have the type their key expects (`pool_max = 4.5`, `pool_max = "4"`
//! and `mode = 660` are refused), checked by deserializing the file alone with `toml`, which
//! converts nothing, before the `config` crate (which coerces) lays the environment over it.

use super::syntax::{is_secret_key, key_at_line, position};
use crate::config::model::Config;
use crate::config::problem::Problem;
use toml::de::{DeTable, DeValue};

/// The first value in `text` whose type does not fit its key, as a problem naming the key,
/// line and column and saying what to write instead.
pub(super) fn check(text: &str) -> Result<(), Problem> {
    let err = match toml::from_str::<Config>(text) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let msg = err.message().trim().to_string();
    let at = err.span().map(|s| position(text, s.start));
    let key = leading_key(&msg)
        .or_else(|| err.span().and_then(|s| key_at(text, s.start)))
        .or_else(|| at.and_then(|p| key_at_line(text, p.line)))
        .unwrap_or_else(|| "config".to_string());
    // A missing field is reported at its table: name the field itself.
    let key = match (missing_field(&msg), key.as_str()) {
        (Some(f), "config") => f.to_string(),
        (Some(f), k) => format!("{k}.{f}"),
        (None, _) => key,
    };
    let mut reason = match at {
        Some(p) => format!("line {}, column {}: ", p.line, p.column),
        None => String::new(),
    };
    reason += &shown_message(&msg, &key);
    if let Some(h) = hint(&msg, &key) {
        reason += "; ";
        reason += &h;
    }
    Err(Problem::new(key, reason))
}

/// serde's message, with a quoted string value left out where the key may hold a secret.
fn shown_message(msg: &str, key: &str) -> String {
    let msg = match leading_key(msg) {
        Some(k) => msg[k.len() + 1..].trim_start().to_string(),
        None => msg.to_string(),
    };
    if is_secret_key(key) {
        if let Some(rest) = msg.strip_prefix("invalid type: ") {
            // serde quotes the value after its kind: `integer \`42\``, `string "…"`.
            let after = rest.rfind(", expected").map_or("", |i| &rest[i..]);
            let kind = rest.split(['`', '"', ',']).next().unwrap_or("").trim();
            let kind = if kind == "string" { "a string" } else { kind };
            return format!("invalid type: {kind}{after}");
        }
    }
    crate::secret::mask_age_keys(&crate::secret::scrub_urls(&msg))
}

/// What to write instead, from the type serde expected.
fn hint(msg: &str, key: &str) -> Option<String> {
    let expected = msg.rsplit_once("expected ")?.1;
    let name = key.rsplit('.').next().unwrap_or(key);
    let has = |words: &[&str]| words.iter().any(|w| expected.contains(w));
    let h = if has(&["u8", "u16", "u32", "u64", "usize", "i32", "i64", "integer"]) {
        format!("write a whole number without quotes or decimals, e.g. {name} = 4")
    } else if has(&["f32", "f64", "float"]) {
        format!("write a number without quotes, e.g. {name} = 0.5")
    } else if has(&["bool"]) {
        format!("write true or false without quotes, e.g. {name} = true")
    } else if has(&["sequence", "array"]) {
        format!("write an array, e.g. {name} = [\"…\"]")
    } else if has(&["string", "duration", "path", "address", "variant"]) {
        let example = match name {
            "mode" => "\"0660\"",
            n if ["interval", "timeout", "ttl", "retention", "for", "window"]
                .iter()
                .any(|d| n.contains(d)) =>
            {
                "\"30s\""
            }
            _ => "\"…\"",
        };
        format!("write it as a quoted string, e.g. {name} = {example}")
    } else {
        return None;
    };
    Some(h)
}

/// The field serde's "missing field `name`" names.
fn missing_field(msg: &str) -> Option<&str> {
    let rest = &msg[msg.find("missing field `")? + "missing field `".len()..];
    rest.split('`').next().filter(|f| !f.is_empty())
}

/// Messages of nested sections start with the full dotted key (`alerts.x.window: …`).
fn leading_key(msg: &str) -> Option<String> {
    let (k, _) = msg.split_once(": ")?;
    let ok = k.contains('.')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'));
    ok.then(|| k.to_string())
}

/// The dotted key (`cache.namespace[0].ttl`) of the innermost value at byte `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    let mut path = String::new();
    in_table(doc.get_ref(), offset, &mut path);
    (!path.is_empty()).then_some(path)
}

// A table opened by a header has the header's span only, so a value holds the offset when
// its own span or any of its children's does.
fn holds(v: &toml::Spanned<DeValue<'_>>, offset: usize) -> bool {
    v.span().contains(&offset)
        || match v.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .any(|(k, v)| k.span().contains(&offset) || holds(v, offset)),
            DeValue::Array(a) => a.iter().any(|e| holds(e, offset)),
            _ => false,
        }
}

fn in_table(t: &DeTable<'_>, offset: usize, path: &mut String) {
    for (k, v) in t.iter() {
        if k.span().contains(&offset) || holds(v, offset) {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k.get_ref());
            in_value(v.get_ref(), offset, path);
            return;
        }
    }
}

fn in_value(v: &DeValue<'_>, offset: usize, path: &mut String) {
    match v {
        DeValue::Table(t) => in_table(t, offset, path),
        DeValue::Array(a) => {
            if let Some((i, e)) = a.iter().enumerate().find(|(_, e)| holds(e, offset)) {
                path.push_str(&format!("[{i}]"));
                in_value(e.get_ref(), offset, path);
            }
        }
        _ => {}
    }
}
