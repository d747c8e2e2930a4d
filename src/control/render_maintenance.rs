//! Human-readable output of `maintenance on|off|status`.

use super::protocol::Reply;
use super::render_fmt::{ago, duration, table};
use crate::maintenance::{EndedBy, MaintenanceStatus, Origin};

/// Renders a maintenance reply; `None` when the shape is unexpected.
pub fn render(reply: &Reply, now: f64) -> Option<String> {
    let s: MaintenanceStatus = serde_json::from_value(reply.data.clone()).ok()?;
    Some(status(&s, now))
}

fn by(o: Origin) -> &'static str {
    match o {
        Origin::Operator => "operator",
        Origin::Restore => "restore",
    }
}

fn status(s: &MaintenanceStatus, now: f64) -> String {
    let mut out = match &s.current {
        None => "maintenance mode is off\n".to_string(),
        Some(m) => {
            let mut head = format!(
                "maintenance mode is ON, for {} (turned on by {})",
                duration(now - m.since),
                by(m.by)
            );
            match m.until {
                Some(u) => head += &format!(", ends by itself in {}\n", duration(u - now)),
                None => head += ", until `steward maintenance off`\n",
            }
            if let Some(r) = &m.reason {
                head += &format!("reason: {r}\n");
            }
            head += if s.run_backups {
                "scheduled backups: run ([maintenance] run_backups = true)\n"
            } else {
                "scheduled backups: skipped ([maintenance] run_backups = true would run them)\n"
            };
            head
        }
    };
    out += &match (&s.redis.error, s.redis.published) {
        (Some(e), _) => format!(
            "redis key {}: not published ({e}); retried when Redis is back\n",
            s.redis.key
        ),
        (None, true) => format!(
            "redis key {}: {}\n",
            s.redis.key,
            if s.on { "set" } else { "absent" }
        ),
        (None, false) => format!("redis key {}: being published\n", s.redis.key),
    };
    if !s.history.is_empty() {
        let mut rows = vec![vec![
            "STARTED".into(),
            "LASTED".into(),
            "BY".into(),
            "ENDED BY".into(),
            "REASON".into(),
        ]];
        for e in s.history.iter().take(10) {
            rows.push(vec![
                ago(now - e.period.since),
                duration(e.ended_at - e.period.since),
                by(e.period.by).into(),
                match e.ended_by {
                    EndedBy::Operator => "off",
                    EndedBy::Expired => "--for elapsed",
                    EndedBy::RestoreFinished => "restore finished",
                }
                .into(),
                e.period.reason.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out += "\n";
        out += &table(&rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{Ended, Maintenance, Publication};

    #[test]
    fn on_with_end_reason_and_history() {
        let m = Maintenance {
            reason: Some("pg upgrade".into()),
            since: 1000.0,
            until: Some(1900.0),
            by: Origin::Operator,
        };
        let s = MaintenanceStatus {
            on: true,
            current: Some(m.clone()),
            run_backups: false,
            redis: Publication {
                key: "steward:maintenance".into(),
                published: true,
                published_at: Some(1001.0),
                error: None,
            },
            history: vec![Ended {
                period: Maintenance {
                    by: Origin::Restore,
                    ..m
                },
                ended_at: 1060.0,
                ended_by: EndedBy::RestoreFinished,
            }],
            file: "var/state/maintenance.json".into(),
        };
        let text = status(&s, 1300.0);
        assert!(text.contains("is ON, for 5m 0s"), "{text}");
        assert!(text.contains("ends by itself in 10m 0s"), "{text}");
        assert!(text.contains("reason: pg upgrade"), "{text}");
        assert!(text.contains("scheduled backups: skipped"), "{text}");
        assert!(text.contains("steward:maintenance: set"), "{text}");
        assert!(text.contains("restore finished"), "{text}");
    }
}
