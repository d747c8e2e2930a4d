//! Unknown keys set aside, so that one pass reports every problem: the file's unknown keys
//! are blanked out (byte offsets, and so the lines and columns of other problems, stay as
//! they were) and the variables that set unknown keys are left out.

use std::collections::HashMap;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// `text` with the key and value of every dotted path in `unknown` replaced by spaces.
pub(super) fn blank_unknown(text: &str, unknown: &[String]) -> String {
    let Ok(doc) = DeTable::parse(text) else {
        return text.to_string();
    };
    let mut spans = Vec::new();
    for path in unknown {
        let parts: Vec<&str> = path.split('.').collect();
        find(doc.get_ref(), &parts, &mut spans);
    }
    let mut out = text.as_bytes().to_vec();
    for r in spans {
        for b in &mut out[r.start.min(text.len())..r.end.min(text.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    // Whole UTF-8 sequences inside a span became spaces, so the text stays valid.
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

fn find(table: &DeTable<'_>, parts: &[&str], spans: &mut Vec<Range<usize>>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    for (k, v) in table.iter() {
        if k.get_ref() != first {
            continue;
        }
        match (rest.is_empty(), v.get_ref()) {
            (true, _) => whole(k.span(), v, spans),
            (false, DeValue::Table(t)) => find(t, rest, spans),
            _ => {}
        }
    }
}

/// The key, the `=` and everything under its value (a table opened by a header spans the
/// header only, so its entries are added one by one).
fn whole(key: Range<usize>, v: &Spanned<DeValue<'_>>, spans: &mut Vec<Range<usize>>) {
    let value = v.span();
    spans.push(key.start.min(value.start)..key.end.max(value.end));
    if let DeValue::Table(t) = v.get_ref() {
        for (k, v) in t.iter() {
            whole(k.span(), v, spans);
        }
    }
}

/// `env` without the variables in `vars`.
pub(super) fn without(env: &HashMap<String, String>, vars: &[String]) -> HashMap<String, String> {
    env.iter()
        .filter(|(k, _)| !vars.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_sections_become_spaces_in_place() {
        let text = "[postgres]\npoolmax = 3\ninterval = \"0s\"\n[nosuch]\nx = \"ü\"\n[backup.schedule]\ndayly = \"\"\n";
        let out = blank_unknown(
            text,
            &[
                "postgres.poolmax".into(),
                "nosuch".into(),
                "backup.schedule.dayly".into(),
            ],
        );
        assert_eq!(out.len(), text.len());
        assert_eq!(out.lines().count(), text.lines().count());
        let parsed: toml::Table = toml::from_str(&out).unwrap();
        assert!(parsed["postgres"].get("poolmax").is_none());
        assert_eq!(parsed["postgres"]["interval"].as_str(), Some("0s"));
        assert!(parsed.get("nosuch").is_none());
        assert!(parsed["backup"]["schedule"].get("dayly").is_none());
        assert!(out.lines().nth(2).unwrap().starts_with("interval"));
    }
}
