//! Human-readable output of backup replies.

use super::protocol::{Reply, Request};
use super::render_fmt::{ago, bytes, duration, table};
use crate::backup::api::{
    JobInfo, PruneReply, Pruned, RestoreReply, Started, StatusReply, VerifyReply,
};
use crate::backup::catalog::{BackupMeta, BackupStatus};
use chrono::Utc;
use serde::de::DeserializeOwned;

fn parse<T: DeserializeOwned>(reply: &Reply) -> Option<T> {
    serde_json::from_value(reply.data.clone()).ok()
}

/// Renders a backup reply, `None` when `req` is not a backup request or the shape is unexpected.
pub fn render(req: &Request, reply: &Reply) -> Option<String> {
    match req {
        Request::BackupCreate { wait: true, .. } => {
            parse::<Vec<BackupMeta>>(reply).map(|v| list(&v))
        }
        Request::BackupCreate { .. } => parse::<Vec<Started>>(reply).map(|v| started(&v)),
        Request::BackupList { .. } | Request::BackupFetch { .. } => {
            parse::<Vec<BackupMeta>>(reply).map(|v| list(&v))
        }
        Request::BackupStatus => parse::<StatusReply>(reply).map(|s| status(&s)),
        Request::BackupVerify { .. } => parse::<VerifyReply>(reply).map(|v| verify(&v)),
        Request::BackupRestore { .. } => parse::<RestoreReply>(reply).map(|r| restore(&r)),
        Request::BackupPrune { .. } => parse::<PruneReply>(reply).map(|p| prune(&p)),
        Request::BackupDelete { .. } => parse::<Pruned>(reply).map(|p| {
            format!(
                "deleted {} ({} {}, {})\n",
                p.id,
                p.database,
                p.kind,
                bytes(p.stored_bytes as f64)
            )
        }),
        Request::BackupJobs => parse::<Vec<JobInfo>>(reply).map(|j| jobs(&j)),
        _ => None,
    }
}

fn started(v: &[Started]) -> String {
    v.iter()
        .map(|s| {
            format!(
                "backup {} of {} started; follow it with `steward backup status`\n",
                s.id, s.database
            )
        })
        .collect()
}

fn list(v: &[BackupMeta]) -> String {
    if v.is_empty() {
        return "no backups yet; take one with `steward backup create`\n".into();
    }
    let now = Utc::now();
    // The WHERE column only with a bucket configured (then every entry has a location).
    let located = v.iter().any(|m| m.location.is_some());
    let mut rows = vec![[
        "ID",
        "DATABASE",
        "KIND",
        "STATUS",
        "AGE",
        "SIZE",
        "DURATION",
        "LABEL / ERROR",
    ]
    .map(String::from)
    .to_vec()];
    if located {
        rows[0].insert(4, "WHERE".into());
    }
    for m in v {
        let age = (now - m.started_at).num_seconds() as f64;
        let note = match m.status {
            BackupStatus::Good => m.label.clone().unwrap_or_default(),
            _ => m.error.clone().unwrap_or_default(),
        };
        rows.push(vec![
            m.id.clone(),
            m.database.clone(),
            m.kind.to_string(),
            format!("{:?}", m.status).to_lowercase(),
            ago(age),
            if m.status == BackupStatus::Good {
                bytes(m.stored_bytes as f64)
            } else {
                "-".into()
            },
            duration(m.duration_seconds),
            note,
        ]);
        if located {
            let at = m.location.map_or("local", |l| l.as_str());
            rows.last_mut().expect("pushed").insert(4, at.into());
        }
    }
    table(&rows)
}

/// Per database: what would be lost (the recovery point) and how long coming back took the
/// last time it was tried (the newest passing restore test), and the newest test's result.
fn recovery(s: &StatusReply) -> String {
    let mut out = String::new();
    for d in &s.databases {
        let Some(rpo) = d.recovery_point_age_seconds else {
            continue;
        };
        let rto = d.recovery_time_seconds.map_or_else(
            || "never measured (no passing restore test)".to_string(),
            |t| format!("{} to restore (measured)", duration(t)),
        );
        out += &format!(
            "{}: would lose at most {} of data; {}\n",
            d.database,
            duration(rpo),
            rto
        );
        if let Some(t) = &d.last_restore_test {
            out += &format!(
                "  last restore test {}: {}{}\n",
                t.at.format("%Y-%m-%d %H:%M:%SZ"),
                if t.ok { "passed" } else { "FAILED" },
                if t.ok {
                    String::new()
                } else {
                    format!(" — {}", t.detail)
                }
            );
        }
    }
    out
}

/// The off-site copies: where, how many, and the queue's trouble if any.
fn offsite(o: &crate::backup::remote::UploadStatus, s: &StatusReply) -> String {
    let copies: usize = s.databases.iter().map(|d| d.remote_backups).sum();
    let mut out = format!(
        "off-site {} at {}: {copies} good backups there, {} waiting for upload",
        o.url, o.endpoint, o.queued
    );
    if let Some(id) = &o.uploading {
        out += &format!(" (uploading {id})");
    }
    out += "\n";
    if let (Some(since), Some(e)) = (o.failing_since, &o.last_error) {
        let age = (Utc::now() - since).num_seconds() as f64;
        out += &format!(
            "UPLOADS FAILING for {} ({} attempts in a row): {e}\n",
            duration(age),
            o.consecutive_failures
        );
    }
    out + "\n"
}

fn status(s: &StatusReply) -> String {
    let mut out = format!(
        "backup dir {}: {} good backups, {} stored, {} free\n\n",
        s.dir,
        s.total_backups,
        bytes(s.total_bytes as f64),
        s.free_bytes.map_or("unknown".into(), |f| bytes(f as f64))
    );
    if let Some(p) = &s.dir_problem {
        out += &format!("BACKUPS CANNOT BE WRITTEN: {p}\n\n");
    }
    if let Some(o) = &s.offsite {
        out += &offsite(o, s);
    }
    let mut rows = vec![["DATABASE", "KIND", "LAST GOOD", "AGE", "SIZE"]
        .map(String::from)
        .to_vec()];
    for d in &s.databases {
        for g in &d.last_good {
            rows.push(vec![
                d.database.clone(),
                g.kind.to_string(),
                g.id.clone(),
                ago(g.age_seconds),
                bytes(g.stored_bytes as f64),
            ]);
        }
        if let Some(f) = &d.last_failure {
            rows.push(vec![
                d.database.clone(),
                f.kind.to_string(),
                format!("{} {}", f.id, format!("{:?}", f.status).to_uppercase()),
                "".into(),
                f.error.clone().unwrap_or_default(),
            ]);
        }
    }
    if rows.len() > 1 {
        out += &table(&rows);
        for d in s.databases.iter().filter(|d| d.damaged > 0) {
            out += &format!(
                "{}: {} damaged backup(s) — never used as good; `steward backup list` says why\n",
                d.database, d.damaged
            );
        }
        out += &recovery(s);
    } else {
        out += "no backups yet\n";
    }
    out += "\n";
    for n in &s.next_runs {
        out += &format!(
            "next {} backup: {} (in {})\n",
            n.kind,
            n.at.format("%Y-%m-%d %H:%M UTC"),
            duration((n.at - Utc::now()).num_seconds() as f64)
        );
    }
    if s.next_runs.is_empty() {
        out += "no scheduled backups\n";
    }
    for j in &s.running {
        out += &format!(
            "running: {} {} ({} so far)\n",
            j.job,
            j.backup_id.as_deref().unwrap_or(""),
            bytes(j.bytes as f64)
        );
    }
    for p in &s.problems {
        out += &format!("WARNING: {p}\n");
    }
    out
}

/// One line per check, under a verdict; a backup that passed without its content being read
/// (encrypted, no identity file) says so first, since "OK" alone would claim more than was
/// checked.
fn verify(v: &VerifyReply) -> String {
    let partial = v.ok && !v.fully_verified;
    let verdict = match (v.ok, partial) {
        (false, _) => "FAILED",
        (true, true) => "OK, BUT NOT FULLY VERIFIED",
        (true, false) => "OK",
    };
    let mut out = format!("backup {}: {verdict}\n", v.id);
    if partial {
        out += "  NOT FULLY VERIFIED: only the file's hash and size were checked; the dump inside was not read\n";
    }
    for c in &v.checks {
        // In a partial pass the decryption that made it partial was not attempted.
        let mark = match (c.ok, partial && c.name == "decryption") {
            (false, _) => "FAIL",
            (true, true) => "skip",
            (true, false) => "ok  ",
        };
        out += &format!("  {mark} {}: {}\n", c.name, c.detail);
    }
    if let Some(r) = &v.restore_test {
        out += &format!(
            "  restore test: {} tables, {} rows in {} (scratch database dropped)\n",
            r.tables,
            r.rows,
            duration(r.duration_seconds)
        );
        out += &warnings(&r.warnings);
    }
    out
}

fn warnings(w: &[String]) -> String {
    w.iter().map(|l| format!("  warning: {l}\n")).collect()
}

fn restore(r: &RestoreReply) -> String {
    let mut out = format!(
        "restored {} into {}{}: {} tables, {} rows, {} in {}\n",
        r.id,
        r.target,
        if r.replaced { " (replaced)" } else { "" },
        r.summary.tables,
        r.summary.rows,
        bytes(r.summary.bytes as f64),
        duration(r.summary.duration_seconds)
    );
    if r.replaced {
        out += &format!(
            "{} sessions on {} were ended before the swap\n",
            r.sessions_ended, r.target
        );
    }
    if let Some(p) = &r.pre_restore_backup {
        out += &format!(
            "the previous content of {} is in pre-restore backup {p}\n",
            r.target
        );
    }
    if !r.roles_created.is_empty() {
        out += &format!(
            "created roles this server lacked, from the backup's globals: {}\n",
            r.roles_created.join(", ")
        );
    }
    if !r.owners_kept {
        out += "every object is owned by steward's role (--no-owner), not by its owner in the backup\n";
    }
    if !r.analyzed {
        out +=
            "planner statistics were not gathered (--no-analyze): run ANALYZE before heavy use\n";
    }
    out += &warnings(&r.summary.warnings);
    out
}

fn prune(p: &PruneReply) -> String {
    let verb = if p.dry_run { "would delete" } else { "deleted" };
    let mut out = format!(
        "{verb} {} backups, keeping {} local ones\n",
        p.deleted.len(),
        p.kept
    );
    for d in &p.deleted {
        // Which copy went: the local one or the bucket's.
        let copy = d
            .location
            .map_or(String::new(), |l| format!("{} ", l.as_str()));
        out += &format!(
            "  {copy}{} {} {} ({}): {}\n",
            d.id,
            d.database,
            d.kind,
            bytes(d.stored_bytes as f64),
            d.reason
        );
    }
    out
}

fn jobs(j: &[JobInfo]) -> String {
    if j.is_empty() {
        return "no backup jobs running\n".into();
    }
    j.iter()
        .map(|j| {
            format!(
                "{} {} {} {}\n",
                j.job,
                j.database,
                j.backup_id.as_deref().unwrap_or(""),
                bytes(j.bytes as f64)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::api::Check;

    fn check(name: &str, ok: bool, detail: &str) -> Check {
        Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }

    fn reply(ok: bool, fully_verified: bool, checks: Vec<Check>) -> VerifyReply {
        VerifyReply {
            id: "20260101T000000Z-manual-0a1b".into(),
            ok,
            fully_verified,
            checks,
            restore_test: None,
        }
    }

    #[test]
    fn a_pass_without_the_content_read_says_so_first() {
        let out = verify(&reply(
            true,
            false,
            vec![
                check("sha256", true, "file hashes to ab"),
                check("decryption", true, "not attempted: no identity_file"),
            ],
        ));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "backup 20260101T000000Z-manual-0a1b: OK, BUT NOT FULLY VERIFIED"
        );
        assert!(lines[1].contains("NOT FULLY VERIFIED: only the file's hash and size"));
        assert!(out.contains("  skip decryption: not attempted"), "{out}");
        assert!(!out.contains("ok   decryption"), "{out}");
    }

    #[test]
    fn full_passes_and_failures_are_plain() {
        let out = verify(&reply(
            true,
            true,
            vec![
                check("decryption", true, "decrypted"),
                check("stream", true, "read to its end"),
            ],
        ));
        assert!(
            out.starts_with("backup 20260101T000000Z-manual-0a1b: OK\n"),
            "{out}"
        );
        assert!(!out.contains("NOT FULLY"), "{out}");
        assert!(out.contains("  ok   decryption: decrypted"), "{out}");
        let out = verify(&reply(
            false,
            false,
            vec![check(
                "decryption",
                false,
                "none of the configured identities",
            )],
        ));
        assert!(out.contains(": FAILED\n"), "{out}");
        assert!(!out.contains("NOT FULLY"), "{out}");
        assert!(out.contains("  FAIL decryption: none"), "{out}");
    }
}
