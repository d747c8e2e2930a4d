//! `[backup]`, `[backup.schedule]` and `[backup.encryption]`: where, how and when PostgreSQL
//! is backed up, and how long backups are kept.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// pg_dump's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DumpFormat {
    /// Plain SQL: restores with psql, readable with zcat.
    #[default]
    Plain,
    /// pg_dump's custom archive: restores with pg_restore.
    Custom,
}

/// How the dump is compressed on its way to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    /// File name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }
}

/// Highest `backup.pre_restore_keep`: more than that many full copies of a database kept
/// for undoing restores is a typo, not a policy.
pub const PRE_RESTORE_KEEP_MAX: u32 = 1000;

/// `[backup]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Root of the backup tree: `<dir>/<database>/<id>.<ext>` plus `<id>.json`.
    pub dir: PathBuf,
    /// Databases to back up; empty means the database of `postgres.url`, and
    /// [`ALL_DATABASES`] alone every database the server lets connections into.
    pub databases: Vec<String>,
    pub format: DumpFormat,
    pub compression: Compression,
    /// Compression level: gzip 1–9 (default 6), zstd 1–19 (default 3).
    pub level: Option<u32>,
    /// pg_dump to use; empty means the newest installed one.
    pub pg_dump_path: Option<PathBuf>,
    /// Days a daily backup is kept.
    pub retention_days: u32,
    /// Weeks a weekly backup is kept.
    pub weekly_retention_weeks: u32,
    /// Good daily, weekly and manual backups of each kind kept whatever their age.
    pub min_keep: u32,
    /// How long manual backups are kept; unset keeps them until deleted by hand.
    #[serde(with = "humantime_serde")]
    pub manual_retention: Option<Duration>,
    /// Good pre-restore backups (one per `restore --force`) kept per database, the newest
    /// ones; older ones are pruned whatever their age, so repeated restores do not pile up
    /// full copies of a database. At most [`PRE_RESTORE_KEEP_MAX`].
    pub pre_restore_keep: u32,
    /// Longest wait for a lock: pg_dump's `--lock-wait-timeout`, the `lock_timeout` of
    /// restores and of the swap of `restore --force`, and the wait for a replaced database's
    /// sessions to end. On timeout the work stops and the database is left as it was.
    #[serde(with = "humantime_serde")]
    pub lock_timeout: Duration,
    pub schedule: ScheduleConfig,
    pub encryption: EncryptionConfig,
    pub restore_test: RestoreTestConfig,
    /// `[backup.remote]`: the off-site copy of every backup.
    pub remote: super::backup_remote::RemoteConfig,
}

/// `[backup.restore_test]`: restore drills. At each scheduled time the newest good backup of
/// each database is restored into a marked scratch database, its rows compared with those
/// counted at backup time, and the scratch database dropped; the result goes to the catalog,
/// the metrics and the alerts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreTestConfig {
    /// Cron expression (5 fields) in `backup.schedule.timezone`; "" (the default) turns
    /// drills off.
    pub schedule: String,
    /// The PostgreSQL server restore tests run on, when not the one of `postgres.url` (a
    /// server kept for drills, so production carries none of their load).
    pub url: Option<crate::secret::SecretUrl>,
    /// A file holding that URL, so the secret need not sit in the config file.
    pub url_file: Option<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("var/backups"),
            databases: Vec::new(),
            format: DumpFormat::Plain,
            compression: Compression::Gzip,
            level: None,
            pg_dump_path: None,
            retention_days: 7,
            weekly_retention_weeks: 4,
            min_keep: 1,
            manual_retention: None,
            pre_restore_keep: 3,
            lock_timeout: Duration::from_secs(60),
            schedule: ScheduleConfig::default(),
            encryption: EncryptionConfig::default(),
            restore_test: RestoreTestConfig::default(),
            remote: super::backup_remote::RemoteConfig::default(),
        }
    }
}

impl BackupConfig {
    /// The effective compression level.
    pub fn level(&self) -> u32 {
        self.level.unwrap_or(match self.compression {
            Compression::Gzip => 6,
            Compression::Zstd => 3,
        })
    }
}

/// `[backup.schedule]`: cron expressions (5 fields: minute hour day month weekday); an
/// empty string turns that schedule off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub daily: String,
    pub weekly: String,
    /// IANA time zone the expressions are read in, e.g. "Europe/Berlin".
    pub timezone: String,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            daily: "0 2 * * *".into(),
            weekly: "0 3 * * 1".into(),
            timezone: "UTC".into(),
        }
    }
}

/// `[backup.encryption]`: age recipients to encrypt to, and the identity to decrypt with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// age public keys (`age1…`); empty means backups are not encrypted.
    pub recipients: Vec<String>,
    /// File with an age identity (`AGE-SECRET-KEY-1…`), for verify and restore.
    pub identity_file: Option<PathBuf>,
}

/// Checks the backup section: names, levels, periods, schedules, keys.
pub(super) fn validate(b: &BackupConfig, out: &mut Vec<super::problem::Problem>) {
    use super::problem::Problem;
    validate_databases(&b.databases, out);
    let (lo, hi) = match b.compression {
        Compression::Gzip => (1, 9),
        Compression::Zstd => (1, 19),
    };
    if let Some(l) = b.level.filter(|l| !(lo..=hi).contains(l)) {
        out.push(Problem::new(
            "backup.level",
            format!("{l} is outside {lo}–{hi} for {:?}", b.compression),
        ));
    }
    if b.retention_days == 0 {
        out.push(Problem::new(
            "backup.retention_days",
            "must be at least 1 (BACKUP_RETENTION_DAYS)",
        ));
    }
    if b.weekly_retention_weeks == 0 {
        out.push(Problem::new(
            "backup.weekly_retention_weeks",
            "must be at least 1",
        ));
    }
    if b.manual_retention.is_some_and(|d| d.is_zero()) {
        out.push(Problem::new(
            "backup.manual_retention",
            "must be greater than zero, or left out to keep manual backups",
        ));
    }
    if b.pre_restore_keep > PRE_RESTORE_KEEP_MAX {
        out.push(Problem::new(
            "backup.pre_restore_keep",
            format!(
                "is {}; it can be at most {PRE_RESTORE_KEEP_MAX} (0 keeps only what the newest-backup rule keeps)",
                b.pre_restore_keep
            ),
        ));
    }
    if b.lock_timeout < Duration::from_millis(1) {
        out.push(Problem::new(
            "backup.lock_timeout",
            "must be at least 1ms (a zero would wait for locks forever)",
        ));
    }
    if let Some(p) = &b.pg_dump_path {
        if let Err(reason) = super::pg_tool::check("pg_dump", p) {
            out.push(Problem::new("backup.pg_dump_path", reason));
        }
    }
    if b.dir.as_os_str().is_empty() {
        out.push(Problem::new(
            "backup.dir",
            "is empty; give a directory such as \"var/backups\"",
        ));
    } else if let Err(reason) = check_dir(&b.dir) {
        out.push(Problem::new("backup.dir", reason));
    }
    validate_schedule(&b.schedule, &b.restore_test, out);
    validate_encryption(&b.encryption, out);
    super::backup_remote::validate(&b.remote, out);
}

/// `backup.dir` must be a directory (or not exist yet, it is then created) on a real file
/// system: not a file, and not under /proc, /sys or /dev, where nothing written stays.
fn check_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    if let Some(tree) = kernel_tree(dir) {
        return Err(format!(
            "{shown} is under {tree}, a kernel file system that cannot keep backups; give a directory on disk such as \"/var/backups/steward\""
        ));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "{shown} exists and is not a directory; give a directory (it is created if missing)"
        ));
    }
    Ok(())
}

/// The kernel tree (`/proc`, `/sys`, `/dev`) `dir` lies in once made absolute and its
/// existing part resolved (so a symlink into /proc counts).
fn kernel_tree(dir: &Path) -> Option<&'static str> {
    use std::path::Component;
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(dir)
    };
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?);
        existing = existing.parent()?;
    }
    let mut real = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    real.extend(rest.iter().rev());
    ["/proc", "/sys", "/dev"]
        .into_iter()
        .find(|t| real.starts_with(t))
}

fn validate_schedule(
    s: &ScheduleConfig,
    drill: &RestoreTestConfig,
    out: &mut Vec<super::problem::Problem>,
) {
    use super::problem::Problem;
    use std::str::FromStr;
    for (key, expr) in [
        ("backup.schedule.daily", &s.daily),
        ("backup.schedule.weekly", &s.weekly),
        ("backup.restore_test.schedule", &drill.schedule),
    ] {
        if expr.trim().is_empty() {
            continue;
        }
        if expr.split_whitespace().count() != 5 {
            out.push(Problem::new(key, format!("{expr:?} must have 5 fields: minute hour day-of-month month day-of-week (\"\" turns it off)")));
        } else if let Err(e) = croner::Cron::from_str(expr) {
            out.push(Problem::new(
                key,
                format!("{expr:?} is not a cron expression: {e}"),
            ));
        }
    }
    if chrono_tz::Tz::from_str(&s.timezone).is_err() {
        out.push(Problem::new(
            "backup.schedule.timezone",
            format!(
                "{:?} is not an IANA time zone such as \"UTC\" or \"Europe/Berlin\"",
                s.timezone
            ),
        ));
    }
}

fn validate_encryption(e: &EncryptionConfig, out: &mut Vec<super::problem::Problem>) {
    use super::problem::Problem;
    use std::str::FromStr;
    for (i, r) in e.recipients.iter().enumerate() {
        if age::x25519::Recipient::from_str(r).is_err() {
            out.push(Problem::new(
                "backup.encryption.recipients",
                if r.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                    "holds an age secret key (AGE-SECRET-KEY-1…, not shown): recipients take public keys (age1…); the secret key belongs in backup.encryption.identity_file — and since it was written into the config, consider it exposed and make a new one".to_string()
                } else if r.starts_with("age1") {
                    format!(
                        "{:?} is not an age public key (age1…); create one with `age-keygen`",
                        crate::secret::mask_age_keys(r)
                    )
                } else {
                    // Not even shaped like a public key: perhaps a mangled secret key.
                    format!(
                        "recipient {} is not an age public key (age1…; not shown, in case it is a secret key); create one with `age-keygen`",
                        i + 1
                    )
                },
            ));
        }
    }
    if let Some(path) = &e.identity_file {
        // Read through the loader's secret-file reader: a group- or world-readable identity
        // gets the same warning as any other secret file.
        match super::secret_file::read_secret_file("backup.encryption.identity_file", path) {
            Err(problem) => out.push(problem),
            Ok(text) => {
                if parse_identities(&text).is_empty() {
                    out.push(Problem::new(
                        "backup.encryption.identity_file",
                        format!(
                            "{} holds no age identity (AGE-SECRET-KEY-1…)",
                            path.display()
                        ),
                    ));
                }
            }
        }
    }
}

/// The age identities in an identity file's text (`age-keygen` output: comments and blank
/// lines around `AGE-SECRET-KEY-1…` lines).
pub fn parse_identities(text: &str) -> Vec<age::x25519::Identity> {
    use std::str::FromStr;
    text.lines()
        .filter_map(|l| age::x25519::Identity::from_str(l.trim()).ok())
        .collect()
}

/// `backup.databases = ["*"]`: every database the server lets connections into (templates
/// and steward's own scratch databases aside), asked afresh at each run.
pub const ALL_DATABASES: &str = "*";

/// `"*"` stands alone (a list that names databases besides "every database" says two things);
/// every other entry must be a name PostgreSQL can give a database.
fn validate_databases(dbs: &[String], out: &mut Vec<super::problem::Problem>) {
    use super::problem::Problem;
    if dbs.len() > 1 && dbs.iter().any(|d| d == ALL_DATABASES) {
        out.push(Problem::new(
            "backup.databases",
            "\"*\" (every database) stands alone: write databases = [\"*\"], or list names without it",
        ));
    }
    for db in dbs.iter().filter(|d| *d != ALL_DATABASES) {
        if !is_backup_database_name(db) {
            out.push(Problem::new(
                "backup.databases",
                format!(
                    "{:?} cannot be a database name: PostgreSQL's names are 1 to 63 bytes, without NUL",
                    db.chars().take(80).collect::<String>()
                ),
            ));
        }
    }
}

/// Names PostgreSQL can give a database (1 to 63 bytes, no NUL): any of them can be backed
/// up, since the backup directory's name is derived from it by a reversible escaping
/// (`backup::catalog::dir_name`) rather than used as it is.
pub fn is_backup_database_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && !s.contains('\0')
}

/// Names usable as a directory under `backup.dir` without any escaping (restore targets are
/// kept to these).
pub fn is_database_dir_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problem;

    fn problems(b: &BackupConfig) -> Vec<Problem> {
        let mut out = Vec::new();
        validate(b, &mut out);
        out
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(problems(&BackupConfig::default()), vec![]);
    }

    #[test]
    fn each_problem_names_its_key() {
        let mut b = BackupConfig {
            databases: vec!["*".into(), "app".into()],
            level: Some(12),
            ..Default::default()
        };
        b.schedule.daily = "0 25 * * *".into();
        b.schedule.weekly = "every monday".into();
        b.schedule.timezone = "Mars/Olympus".into();
        b.encryption.recipients = vec!["age1nope".into()];
        let keys: Vec<String> = problems(&b).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            vec![
                "backup.databases",
                "backup.level",
                "backup.schedule.daily",
                "backup.schedule.weekly",
                "backup.schedule.timezone",
                "backup.encryption.recipients"
            ]
        );
    }

    #[test]
    fn a_recipient_that_is_no_public_key_is_not_quoted_unless_it_looks_like_one() {
        for pasted in [
            "GE-SECRET-KEY-1QQSP3CPW9X",
            "AGE-SECRET-KEY1QQSP3CPW9X",
            "AGE_SECRET_KEY_1QQSP3CPW9X",
            "QQSP3CPW9X",
        ] {
            let b = BackupConfig {
                encryption: EncryptionConfig {
                    recipients: vec!["age1nope".into(), pasted.into()],
                    ..Default::default()
                },
                ..Default::default()
            };
            let text: String = problems(&b).iter().map(|p| p.to_string()).collect();
            assert!(!text.contains("SP3CPW9X"), "{text}");
            assert!(text.contains("\"age1nope\""), "{text}");
            assert!(text.contains("recipient 2"), "{text}");
        }
    }

    #[test]
    fn pre_restore_keep_has_an_upper_bound() {
        for (n, ok) in [
            (0, true),
            (3, true),
            (1000, true),
            (1001, false),
            (u32::MAX, false),
        ] {
            let b = BackupConfig {
                pre_restore_keep: n,
                ..Default::default()
            };
            let p = problems(&b);
            assert_eq!(p.is_empty(), ok, "{n}: {p:?}");
            if !ok {
                assert_eq!(p[0].key, "backup.pre_restore_keep");
                assert!(p[0].reason.contains("at most 1000"), "{p:?}");
            }
        }
        assert_eq!(BackupConfig::default().pre_restore_keep, 3);
    }

    #[test]
    fn any_postgres_name_can_be_listed_and_star_stands_alone() {
        let ok = |dbs: &[&str]| {
            problems(&BackupConfig {
                databases: dbs.iter().map(|d| d.to_string()).collect(),
                ..Default::default()
            })
        };
        assert_eq!(
            ok(&["Sales DB", "übung", "it's \"q\"", "../x", ".hidden"]),
            vec![]
        );
        assert_eq!(ok(&["*"]), vec![]);
        assert_eq!(ok(&[&"x".repeat(63)]), vec![]);
        for bad in [
            &["*", "app"][..],
            &["app", "*"],
            &[""],
            &["a\0b"],
            &[&"ü".repeat(32)],
        ] {
            let p = ok(bad);
            assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
            assert_eq!(p[0].key, "backup.databases");
        }
    }

    #[test]
    fn database_dir_names() {
        assert!(is_database_dir_name("app_prod-2.x"));
        assert!(!is_database_dir_name(".."));
        assert!(!is_database_dir_name("a/b"));
        assert!(!is_database_dir_name("-x"));
    }
}
