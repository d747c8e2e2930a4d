//! The docs stay honest (issue 13): every `steward …` command line in the README and in docs/
//! parses with the current command line (checked with `--help`, which clap only prints once
//! everything before it parsed), and every config key the docs name exists in the shipped
//! `config/steward.toml`, which lists every key.

mod common;

use common::STEWARD;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page under docs/, with their text.
fn pages() -> Vec<(PathBuf, String)> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

/// Splits a shell line into words (single and double quotes; a `#` outside quotes ends it).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '#') if cur.is_empty() && !any => break,
            // A control operator (`cmd &`, `cmd && next`, `cmd | next`) ends the command.
            (None, '&' | '|' | ';') if cur.is_empty() && !any => break,
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        words.push(cur);
    }
    words
}

/// A usage form from the command table (`backup create [--database DB] [--wait]`,
/// `cache clear (--pattern GLOB\|--namespace NAME)`) as one concrete line: brackets dropped,
/// the first of each set of alternatives taken.
fn concrete(usage: &str) -> String {
    let usage = usage.replace("\\|", "|");
    let mut out = String::new();
    let mut rest = usage.as_str();
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find(')').map_or(rest.len(), |c| open + c);
        out.push_str(rest[open + 1..close].split('|').next().unwrap_or(""));
        rest = &rest[(close + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out.replace(['[', ']'], "")
        .split_whitespace()
        .map(|w| w.split('|').next().unwrap_or(w))
        .map(|w| sample(w).unwrap_or(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value for a placeholder whose type the command line checks.
fn sample(placeholder: &str) -> Option<&'static str> {
    Some(match placeholder {
        "DURATION" => "1h",
        "SERVICE" => "postgres",
        "N" => "3",
        _ => return None,
    })
}

/// Every command line the docs show: lines of code blocks that start with `steward` (or
/// `$ steward`), inline `steward …` spans, and the first column of command tables.
fn command_lines() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (file, text) in pages() {
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        let mut fence = false;
        for (i, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", i + 1);
            if line.starts_with("```") {
                fence = !fence;
                continue;
            }
            if fence {
                let l = line.trim_start().trim_start_matches("$ ");
                if let Some(args) = l.strip_prefix("steward ").filter(|a| !a.contains('<')) {
                    out.push((at, shell_words(&concrete(args))));
                }
                continue;
            }
            for (n, span) in line.split('`').enumerate() {
                if n % 2 == 0 {
                    continue;
                }
                if let Some(args) = span.strip_prefix("steward ") {
                    if !args.contains('<') && !args.contains("...") && !args.contains('…') {
                        out.push((at.clone(), shell_words(&concrete(args))));
                    }
                } else if n == 1
                    && line.starts_with("| `")
                    && name.ends_with("commands.md")
                    && span.starts_with(|c: char| c.is_ascii_lowercase())
                {
                    let c = concrete(span);
                    if !c.contains('<') && !c.starts_with("--") {
                        out.push((at.clone(), shell_words(&c)));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_documented_command_line_parses() {
    let lines = command_lines();
    assert!(
        lines.len() > 40,
        "found only {} command lines: {lines:?}",
        lines.len()
    );
    let mut bad = Vec::new();
    for (at, args) in &lines {
        // The example output line `steward 0.1.0, up 4s, healthy` is not a command.
        if args
            .first()
            .is_some_and(|a| a.starts_with(|c: char| c.is_ascii_digit()))
        {
            continue;
        }
        let out = Command::new(STEWARD)
            .args(args)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            bad.push(format!(
                "{at}: steward {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "documented commands that do not parse:\n{}",
        bad.join("\n")
    );
}

/// `section.key` names from `config/steward.toml`: its `[section]` headers (commented or not)
/// and every `key =` or `# key =` line under them.
fn shipped_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("config/steward.toml")).unwrap();
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim().trim_start_matches('#').trim();
        if let Some(h) = l.strip_prefix('[') {
            let h = h.trim_start_matches('[').split(']').next().unwrap_or("");
            if !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            {
                section = h.to_string();
                keys.insert(section.clone());
            }
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            let k = k.trim();
            if !section.is_empty()
                && !k.is_empty()
                && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                keys.insert(format!("{section}.{k}"));
            }
        }
    }
    keys
}

/// Dotted names in the docs that are not config keys: task names and audited actions.
const NOT_KEYS: &[&str] = &[
    "backup.scheduler",
    "backup.retention",
    "cache.stats",
    "cache.warmup",
];

#[test]
fn every_documented_config_key_exists() {
    let keys = shipped_keys();
    assert!(keys.contains("postgres.url") && keys.contains("backup.lock_timeout"));
    let sections = [
        "postgres.",
        "redis.",
        "metrics.",
        "control.",
        "backup.",
        "cache.",
        "alerts.",
        "audit.",
        "log.",
        "state.",
        "shutdown.",
        "maintenance.",
        "instance.",
    ];
    let mut bad = BTreeSet::new();
    for (file, text) in pages() {
        for (n, span) in text.split('`').enumerate() {
            let name = span.split('=').next().unwrap_or("").trim();
            let dotted = name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
            if n % 2 == 1
                && dotted
                && sections.iter().any(|s| name.starts_with(s))
                && !keys.contains(name)
                && !NOT_KEYS.contains(&name)
            {
                bad.insert(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "config keys named in the docs but absent from config/steward.toml:\n{}",
        bad.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn usage_forms_become_concrete_lines() {
    assert_eq!(
        concrete("cache clear (--pattern GLOB\\|--namespace NAME) [--dry-run] [--force]"),
        "cache clear --pattern GLOB --dry-run --force"
    );
    assert_eq!(concrete("health [postgres\\|redis]"), "health postgres");
    assert_eq!(
        shell_words("maintenance on --reason \"pg 16 upgrade\" --for 2h   # a comment"),
        [
            "maintenance",
            "on",
            "--reason",
            "pg 16 upgrade",
            "--for",
            "2h"
        ]
    );
}
