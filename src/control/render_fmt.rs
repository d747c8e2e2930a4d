//! The formatting primitives every human reply uses: aligned tables, durations, ages and
//! sizes (kept apart from the renderers, which all import them and none of each other).

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == r.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// How long ago, for ages: "just now" under a second (a fresh backup is not "0ms ago"),
/// else "1m 15s ago".
pub fn ago(secs: f64) -> String {
    if secs < 1.0 {
        return "just now".to_string();
    }
    format!("{} ago", duration(secs))
}

/// 0.0042 → "4ms", 75 → "1m 15s", 3700 → "1h 1m".
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 1.0 {
        return format!("{}ms", (s * 1000.0).round() as u64);
    }
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration(0.0042), "4ms");
        assert_eq!(ago(0.3), "just now");
        assert_eq!(ago(75.0), "1m 15s ago");
        assert_eq!(duration(75.0), "1m 15s");
        assert_eq!(duration(3700.0), "1h 1m");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(12.0), "12 B");
    }

    #[test]
    fn tables_align() {
        let t = table(&[
            vec!["A".into(), "BB".into()],
            vec!["CCC".into(), "D".into()],
        ]);
        assert_eq!(t, "A    BB\nCCC  D\n");
    }
}
