//! Human-readable `steward alerts`: one row per alert instance, firing ones first, with the
//! notes that explain a rule that cannot fire.

use super::render_fmt::{ago, duration, table};
use crate::alerts::observation::Unit;
use crate::alerts::{AlertState, AlertStatus, AlertsReply};

/// The table, then the notes.
pub(super) fn alerts(a: &AlertsReply, now: f64) -> String {
    let mut list: Vec<&AlertStatus> = a.alerts.iter().collect();
    list.sort_by_key(|s| {
        (
            match s.state {
                AlertState::Firing => 0,
                AlertState::Pending => 1,
                AlertState::Resolved => 2,
                AlertState::Inactive => 3,
            },
            s.alert.clone(),
            s.service.clone(),
        )
    });
    let mut out = String::new();
    if a.maintenance {
        out +=
            "maintenance mode is on: firing alerts are suppressed (not sent to Alertmanager)\n\n";
    }
    let mut rows = vec![[
        "ALERT",
        "SERVICE",
        "SEVERITY",
        "STATE",
        "SINCE",
        "VALUE",
        "THRESHOLD",
        "FOR",
    ]
    .map(String::from)
    .to_vec()];
    for s in &list {
        let state = if s.suppressed {
            format!("{} (suppressed)", s.state)
        } else {
            s.state.to_string()
        };
        rows.push(vec![
            s.alert.clone(),
            s.service.clone(),
            s.severity.as_str().into(),
            state,
            ago((now - s.since).max(0.0)),
            figure(s.value, s.unit),
            figure(s.threshold, s.unit),
            if s.for_seconds > 0.0 {
                duration(s.for_seconds)
            } else {
                "0s".into()
            },
        ]);
    }
    out += &table(&rows);
    let details: Vec<String> = list
        .iter()
        .filter(|s| matches!(s.state, AlertState::Firing | AlertState::Pending))
        .map(|s| format!("  {} ({}): {}", s.alert, s.service, s.description))
        .collect();
    if !details.is_empty() {
        out += &format!("\n{}\n", details.join("\n"));
    }
    let notes: Vec<String> = list
        .iter()
        .filter_map(|s| {
            Some(format!(
                "  {} ({}): {}",
                s.alert,
                s.service,
                s.note.as_ref()?
            ))
        })
        .collect();
    if !notes.is_empty() {
        out += &format!("\nnotes:\n{}\n", notes.join("\n"));
    }
    match &a.alertmanager {
        Some(url) => out += &format!("\nfiring alerts are sent to Alertmanager at {url}\n"),
        None => out += "\nno [alertmanager] url: alerts are only exported as metrics\n",
    }
    out
}

/// A value in its own terms: a duration, a percentage, a size, or a plain number.
fn figure(v: Option<f64>, unit: Unit) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "-".into();
    };
    match unit {
        Unit::Seconds => duration(v),
        Unit::Ratio => format!("{:.1}%", v * 100.0),
        Unit::Bytes => super::render_fmt::bytes(v),
        Unit::Count => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;

    #[test]
    fn firing_first_with_notes_and_suppression() {
        let row = |alert: &str, state, note: Option<&str>| AlertStatus {
            alert: alert.into(),
            service: "redis".into(),
            severity: Severity::Warning,
            state,
            since: 90.0,
            fired_at: None,
            value: Some(0.5),
            threshold: Some(0.9),
            unit: Unit::Ratio,
            for_seconds: 300.0,
            summary: String::new(),
            description: "half full".into(),
            note: note.map(String::from),
            suppressed: state == AlertState::Firing,
        };
        let a = AlertsReply {
            maintenance: true,
            alertmanager: None,
            alerts: vec![
                row(
                    "RedisMemoryHigh",
                    AlertState::Inactive,
                    Some("maxmemory is 0"),
                ),
                row("CacheHitRatioLow", AlertState::Firing, None),
            ],
        };
        let text = alerts(&a, 100.0);
        let hit = text.find("CacheHitRatioLow").unwrap();
        assert!(hit < text.find("RedisMemoryHigh").unwrap(), "{text}");
        assert!(text.contains("firing (suppressed)"), "{text}");
        assert!(text.contains("maintenance mode is on"), "{text}");
        assert!(
            text.contains("RedisMemoryHigh (redis): maxmemory is 0"),
            "{text}"
        );
        assert!(text.contains("10s ago"), "{text}");
        assert!(text.contains("50.0%") && text.contains("90.0%"), "{text}");
    }
}
