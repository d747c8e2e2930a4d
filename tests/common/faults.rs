//! Shared helpers of the fault-injection suite (`tests/faults_*.rs`): the "nothing was lost"
//! check every scenario ends with, a big table to make dumps last, the backup job poll that
//! tells when bytes are flowing, and a small tmpfs that is always unmounted.

use super::*;
use sha2::{Digest, Sha256};
use steward::backup::api::{JobInfo, JobKind, StatusReply as BackupStatusReply, VerifyReply};
use steward::backup::catalog::{self, BackupMeta, BackupStatus};

/// Bound for one backup, verify or prune of the test databases.
pub const JOB: Duration = Duration::from_secs(60);

/// A JSON string is a valid TOML basic string.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// `[backup]` with `dir`, the schedules off, plus `extra` lines for `[backup]`.
pub fn backup_section(dir: &Path, extra: &str) -> String {
    format!(
        "[backup]\ndir = {}\n{extra}\n\n[backup.schedule]\ndaily = \"\"\nweekly = \"\"\n",
        toml_string(&dir.to_string_lossy())
    )
}

/// `backup list --json` through the client.
pub fn list(st: &Steward) -> Vec<BackupMeta> {
    st.ctl(&["backup", "list"]).data()
}

/// The backup jobs in progress (cheap: one raw request).
pub fn backup_jobs(st: &Steward) -> Vec<JobInfo> {
    st.request_data(r#"{"cmd":"backup_jobs"}"#)
}

/// Waits until a backup job has streamed its first bytes.
pub fn wait_backup_streaming(st: &Steward) {
    st.wait_until(JOB, "the backup to stream its first bytes", |st| {
        backup_jobs(st)
            .iter()
            .any(|j| j.kind == JobKind::Backup && j.bytes > 0)
    });
}

/// `backup create --wait` of the default database; asserts one good backup and returns it.
pub fn create_good(st: &Steward) -> BackupMeta {
    let out = st.ctl(&["backup", "create", "--wait"]);
    let metas: Vec<BackupMeta> = out.data();
    assert_eq!(metas.len(), 1, "one database, one backup: {metas:?}");
    let m = metas.into_iter().next().unwrap();
    assert!(m.is_good(), "backup is not good: {m:?}");
    m
}

/// The error message of a command that must fail: exit 1, an error reply with a message.
pub fn error_of(out: &CmdOutput) -> String {
    assert_eq!(out.code, 1, "expected the command to fail: {out:?}");
    let r = out.reply();
    assert!(!r.ok, "expected an error reply: {out:?}");
    let e = r.error.unwrap_or_default();
    assert!(
        !e.trim().is_empty(),
        "error reply without a message: {out:?}"
    );
    e
}

/// A table of `rows` rows of about 100 bytes of hex text each (compresses about 2:1), so
/// that dumping it takes a while (1,000,000 rows: about 100 MB of dump).
pub fn add_big_table(pg: &Postgres, rows: u64) {
    pg.psql(
        &format!(
            "CREATE TABLE big (id integer, a text);
             INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
             FROM generate_series(1, {rows}) g;"
        ),
        PG_USER,
        PG_DB,
    );
}

/// Names of the files directly in `dir`, sorted (empty when `dir` does not exist).
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(p: &Path) -> String {
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// The ID a catalog file name starts with, when it starts with one.
fn id_of(name: &str) -> Option<&str> {
    let id = name.get(..name.find('.')?)?;
    catalog::validate_id(id).is_ok().then_some(id)
}

/// The end of every fault scenario: nothing was lost and nothing half-done is left.
///
/// - the daemon answers `status`, and `backup status` reports no untrusted metadata;
/// - no temporary, running or deletion marker file is left under `root`;
/// - every good backup `backup list --json` lists has its file, with the listed size and
///   SHA-256, and passes `backup verify` (the client for a few, one raw connection for many);
/// - a failed entry has no data file; every data file under `root` belongs to a listed entry.
///
/// Returns the listed entries.
pub fn assert_nothing_lost(st: &Steward, root: &Path) -> Vec<BackupMeta> {
    st.status();
    let bs: BackupStatusReply = st.ctl(&["backup", "status"]).data();
    assert!(
        bs.problems.is_empty(),
        "untrusted metadata: {:?}",
        bs.problems
    );
    let all = list(st);
    let mut data_files = BTreeMap::new();
    for db in file_names(root) {
        for name in file_names(&root.join(&db)) {
            assert!(
                !name.ends_with(".tmp")
                    && !name.ends_with(".running.json")
                    && !name.ends_with(".deleting.json"),
                "left over in {db}: {name} (all: {:?})",
                file_names(&root.join(&db))
            );
            if let Some(id) = id_of(&name) {
                if name != format!("{id}.json") {
                    data_files.insert(name.clone(), (db.clone(), id.to_string()));
                }
            }
        }
    }
    for m in &all {
        match m.status {
            BackupStatus::Good => {
                let path = catalog::data_path(root, m)
                    .unwrap_or_else(|| panic!("good entry without a data file name: {m:?}"));
                let meta = fs::metadata(&path)
                    .unwrap_or_else(|e| panic!("listed backup {} has no file ({e}): {m:?}", m.id));
                assert_eq!(meta.len(), m.stored_bytes, "size of {}", path.display());
                assert_eq!(
                    Some(sha256_file(&path)),
                    m.sha256,
                    "sha256 of {}",
                    path.display()
                );
                data_files.remove(m.file.as_ref().unwrap());
                // Backups taken before steward stored globals have none.
                if let Some(g) = &m.globals {
                    let path = catalog::globals_path(root, m).unwrap_or_else(|| {
                        panic!("globals under a name steward does not give: {m:?}")
                    });
                    assert_eq!(sha256_file(&path), g.sha256, "sha256 of {}", path.display());
                    data_files.remove(&g.file);
                }
            }
            BackupStatus::Failed => {
                assert!(
                    m.file.is_none() && m.globals.is_none(),
                    "failed entry with a file: {m:?}"
                );
            }
            BackupStatus::Running => panic!("a listed entry is still running: {m:?}"),
            BackupStatus::Skipped => panic!("a skipped run was recorded: {m:?}"),
            BackupStatus::Damaged => {
                if let Some(f) = &m.file {
                    data_files.remove(f);
                }
                if let Some(g) = &m.globals {
                    data_files.remove(&g.file);
                }
            }
        }
    }
    assert!(
        data_files.is_empty(),
        "data files that no listed backup owns: {data_files:?}"
    );
    let good: Vec<&BackupMeta> = all.iter().filter(|m| m.is_good()).collect();
    if good.len() <= 10 {
        for m in &good {
            let v: VerifyReply = st.ctl(&["backup", "verify", &m.id]).data();
            assert!(v.ok, "listed backup {} does not verify: {v:?}", m.id);
        }
    } else {
        let mut conn = st.connect();
        for m in &good {
            let line = serde_json::json!({"cmd": "backup_verify", "id": m.id}).to_string();
            let r = conn.request(&line).unwrap();
            assert!(r.ok, "verify {}: {r:?}", m.id);
            let v: VerifyReply = serde_json::from_value(r.data).unwrap();
            assert!(v.ok, "listed backup {} does not verify: {v:?}", m.id);
        }
    }
    all
}

/// Pids of the live children of `parent` whose command name is `comm`.
pub fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if &stat[open + 1..close] == comm && ppid == Some(parent.to_string().as_str()) {
            out.push(pid);
        }
    }
    out
}

/// The entry of run `id`, which a stop of steward interrupted: recorded as failed, saying so.
pub fn assert_interrupted<'a>(all: &'a [BackupMeta], id: &str) -> &'a BackupMeta {
    let failed = all
        .iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("the interrupted run {id} is not recorded: {all:?}"));
    assert_eq!(failed.status, BackupStatus::Failed, "{failed:?}");
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or("")
            .contains("interrupted"),
        "the failure should say the run was interrupted: {failed:?}"
    );
    failed
}

/// Asserts that the good backups are exactly `ids`, in any order.
pub fn assert_good_are(all: &[BackupMeta], ids: &[&str]) {
    let mut good: Vec<&str> = all
        .iter()
        .filter(|m| m.is_good())
        .map(|m| m.id.as_str())
        .collect();
    let mut want = ids.to_vec();
    good.sort_unstable();
    want.sort_unstable();
    assert_eq!(good, want, "{all:?}");
}
