//! The bucket's catalog: every `<prefix>/<database dir>/<id>.json` read back as metadata and
//! checked like a local one (its own checksum, its database and ID matching its key), so a
//! host with an empty backup dir can list, verify and restore what the bucket holds. Metadata
//! already read is kept by key and size, so a listing costs one LIST request plus one GET per
//! new backup.

use super::error::RemoteError;
use super::offsite_copy::counts_for;
use super::store::RemoteStore;
use crate::backup::catalog::{self, BackupMeta, BackupStatus};
use std::collections::HashMap;

/// The most a metadata object may weigh (row counts of many tables make it large).
pub(super) const META_CAP: u64 = 16 * 1024 * 1024;

/// A backup as the bucket holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteBackup {
    /// Its metadata as stored there; `Damaged` (with the reason in `error`) when it fails its
    /// checks.
    pub meta: BackupMeta,
    /// Every object of this backup (data, globals, metadata), with its size.
    pub objects: Vec<(String, u64)>,
    /// Deletion was begun (a `<id>.deleting.json` marker is there): no longer a backup.
    pub deleting: bool,
}

/// Metadata read before, by key and size.
#[derive(Default)]
pub struct Index {
    cache: HashMap<(String, u64), BackupMeta>,
}

impl Index {
    /// Lists the bucket and reads the metadata not read before.
    pub async fn refresh(&mut self, store: &RemoteStore) -> Result<Vec<RemoteBackup>, RemoteError> {
        let objects = store.list().await?;
        let mut by_id: HashMap<String, RemoteBackup> = HashMap::new();
        let mut seen = HashMap::new();
        for (key, size) in &objects {
            let Some((database, id, role)) = parse_key(store, key.as_ref()) else {
                continue;
            };
            let entry = by_id.entry(id.clone()).or_insert_with(|| RemoteBackup {
                meta: placeholder(&id, &database),
                objects: Vec::new(),
                deleting: false,
            });
            entry.objects.push((key.to_string(), *size));
            match role {
                Role::Meta => {
                    let cache_key = (key.to_string(), *size);
                    let meta = match self.cache.get(&cache_key) {
                        Some(m) => m.clone(),
                        None => {
                            let m = read_meta(store, key, &database, &id).await?;
                            self.cache.insert(cache_key.clone(), m.clone());
                            m
                        }
                    };
                    seen.insert(cache_key, ());
                    entry.meta = meta;
                }
                Role::Deleting => entry.deleting = true,
                Role::File => {}
            }
        }
        self.cache.retain(|k, _| seen.contains_key(k));
        for b in by_id.values_mut() {
            if let Some(why) = missing_file(b) {
                b.meta = damaged_from(b.meta.clone(), &why);
            }
        }
        let mut all: Vec<RemoteBackup> = by_id
            .into_values()
            .filter(|b| b.deleting || b.meta.status != BackupStatus::Running)
            .collect();
        all.sort_by(|a, b| {
            b.meta
                .started_at
                .cmp(&a.meta.started_at)
                .then(b.meta.id.cmp(&a.meta.id))
        });
        Ok(all)
    }
}

/// What an object is to a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Meta,
    Deleting,
    File,
}

/// `<prefix>/<database dir>/<id><rest>` → database, ID and role; `None` for anything steward
/// does not name that way (never read, never touched).
pub(super) fn parse_key(store: &RemoteStore, key: &str) -> Option<(String, String, Role)> {
    let rest = match store.root() {
        Some(root) => key.strip_prefix(root.as_ref())?.strip_prefix('/')?,
        None => key,
    };
    let (dir, file) = rest.split_once('/')?;
    if file.contains('/') {
        return None;
    }
    let database = catalog::dir_name::decode(dir)?;
    let id = file.get(..file.find('.')?)?;
    catalog::validate_id(id).ok()?;
    let tail = &file[id.len()..];
    let role = match tail {
        ".json" => Role::Meta,
        ".deleting.json" => Role::Deleting,
        t if is_file_suffix(t) => Role::File,
        _ => return None,
    };
    Some((database, id.to_string(), role))
}

/// The suffixes of the data and globals files steward writes.
fn is_file_suffix(t: &str) -> bool {
    let t = t.strip_suffix(".age").unwrap_or(t);
    let t = t.strip_suffix(".gz").or_else(|| t.strip_suffix(".zst"));
    matches!(t, Some(".sql" | ".dump" | ".globals.sql"))
}

/// A record for a backup whose files are there without metadata: an upload cut short.
fn placeholder(id: &str, database: &str) -> BackupMeta {
    let mut m = BackupMeta::placeholder(
        id,
        database,
        crate::backup::kind::BackupKind::Manual,
        BackupStatus::Running,
        chrono::Utc::now(),
    );
    m.error = Some("files without metadata: an upload that did not complete".into());
    m
}

/// Reads and checks one metadata object; one that fails its checks is a damaged entry.
async fn read_meta(
    store: &RemoteStore,
    key: &object_store::path::Path,
    database: &str,
    id: &str,
) -> Result<BackupMeta, RemoteError> {
    let bytes = match store.get_small(key, META_CAP).await {
        Ok(b) => b,
        Err(RemoteError::NotFound { .. }) => {
            return Ok(damaged(
                id,
                database,
                "it vanished while it was read".into(),
            ))
        }
        Err(RemoteError::Mismatch { detail, .. }) => return Ok(damaged(id, database, detail)),
        Err(e) => return Err(e),
    };
    let parsed: Result<BackupMeta, String> =
        serde_json::from_slice(&bytes).map_err(|e| format!("it is not metadata: {e}"));
    Ok(match parsed {
        Ok(m) if m.id != id || m.database != database => damaged(
            id,
            database,
            "it names another backup than its key does".into(),
        ),
        Ok(m) if !m.checksum_ok() => damaged_from(m, "its checksum does not match its content"),
        Ok(mut m) => {
            // The local record of an off-site copy means nothing in the bucket itself.
            m.offsite = None;
            m
        }
        Err(e) => damaged(id, database, e),
    })
}

/// Why good metadata in the bucket is no backup there: a file it names is missing there or
/// of another size (deleted, or replaced, behind steward's back).
fn missing_file(b: &RemoteBackup) -> Option<String> {
    let m = &b.meta;
    if !m.is_good() || b.deleting {
        return None;
    }
    let mut files: Vec<(&str, u64)> = m
        .file
        .as_deref()
        .map(|f| (f, m.stored_bytes))
        .into_iter()
        .collect();
    if let Some(g) = &m.globals {
        files.push((g.file.as_str(), g.stored_bytes));
    }
    if files.is_empty() {
        return Some("it names no data file".into());
    }
    files.into_iter().find_map(|(file, bytes)| {
        let found = b
            .objects
            .iter()
            .find(|(k, _)| k.rsplit('/').next() == Some(file));
        match found {
            None => Some(format!("its file {file} is not in the bucket")),
            Some((_, n)) if *n != bytes => Some(format!(
                "its file {file} is {n} bytes in the bucket, its metadata says {bytes}"
            )),
            Some(_) => None,
        }
    })
}

/// A damaged entry named by its key alone: dated and kinded by its ID, so that it is listed
/// (and aged by retention) where it belongs.
fn damaged(id: &str, database: &str, reason: String) -> BackupMeta {
    let mut m = placeholder(id, database);
    if let Some((started_at, kind)) = catalog::parse_id(id) {
        (m.started_at, m.kind) = (started_at, kind);
    }
    m.status = BackupStatus::Damaged;
    m.error = Some(format!(
        "its metadata in the bucket cannot be trusted: {reason}"
    ));
    m
}

/// A damaged entry from metadata that names the backup its key does but fails its checksum.
fn damaged_from(mut m: BackupMeta, reason: &str) -> BackupMeta {
    m.status = BackupStatus::Damaged;
    m.error = Some(format!(
        "its metadata in the bucket cannot be trusted: {reason}"
    ));
    m.file = None;
    m
}

/// True when `b`, a backup in the bucket, is `m` whole: good metadata naming the same files,
/// sizes and hashes, and an object of the recorded size for each file.
pub fn holds(b: &RemoteBackup, m: &BackupMeta) -> bool {
    let r = &b.meta;
    let has = |file: &str, bytes: u64| {
        b.objects
            .iter()
            .any(|(k, n)| *n == bytes && k.rsplit('/').next() == Some(file))
    };
    let globals_ok = match (&m.globals, &r.globals) {
        (None, None) => true,
        (Some(g), Some(h)) => {
            g.file == h.file
                && g.sha256 == h.sha256
                && g.stored_bytes == h.stored_bytes
                && has(&g.file, g.stored_bytes)
        }
        _ => false,
    };
    !b.deleting
        && r.is_good()
        && r.id == m.id
        && r.database == m.database
        && r.sha256.is_some()
        && r.sha256 == m.sha256
        && r.stored_bytes == m.stored_bytes
        && r.file.is_some()
        && r.file == m.file
        && m.file.as_deref().is_some_and(|f| has(f, m.stored_bytes))
        && globals_ok
}

/// `backup list` with a bucket configured: every local backup marked local or both, and the
/// bucket's backups that are not here marked remote. When the bucket could not be read
/// (`remote` is `Err`), a local backup counts as both when its record of a checked copy names
/// the configured bucket.
pub fn merged_listing(
    mut local: Vec<BackupMeta>,
    remote: Result<Vec<RemoteBackup>, String>,
    config: &crate::config::RemoteConfig,
) -> Vec<BackupMeta> {
    use crate::backup::catalog::Location;
    match remote {
        Ok(remote) => {
            let there: HashMap<&str, &RemoteBackup> = remote
                .iter()
                .filter(|b| !b.deleting)
                .map(|b| (b.meta.id.as_str(), b))
                .collect();
            for m in &mut local {
                // Both only when the bucket holds this very backup whole: metadata of the same
                // name that is damaged, another's, or without its data object is no copy.
                let held = there.get(m.id.as_str()).is_some_and(|b| holds(b, m));
                m.location = Some(if held {
                    Location::Both
                } else {
                    Location::Local
                });
            }
            let here: std::collections::HashSet<String> =
                local.iter().map(|m| m.id.clone()).collect();
            for b in remote
                .iter()
                .filter(|b| !b.deleting && !here.contains(&b.meta.id))
            {
                let mut m = b.meta.clone();
                m.location = Some(Location::Remote);
                local.push(m);
            }
        }
        Err(_) => {
            for m in &mut local {
                let checked = m.offsite.as_ref().is_some_and(|o| counts_for(o, config));
                m.location = Some(if checked {
                    Location::Both
                } else {
                    Location::Local
                });
            }
        }
    }
    local.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_steward_gives_are_read() {
        assert!(is_file_suffix(".sql.gz"));
        assert!(is_file_suffix(".dump.zst.age"));
        assert!(is_file_suffix(".globals.sql.gz"));
        assert!(!is_file_suffix(".txt"));
        assert!(!is_file_suffix(".sql"));
        assert!(!is_file_suffix(".sql.gz.tmp"));
    }

    #[test]
    fn good_metadata_without_its_files_in_the_bucket_is_no_backup_there() {
        use crate::backup::catalog::Location;
        let id = "20260101T000000Z-manual-0001";
        let mut m = BackupMeta::sample(
            id,
            "app",
            crate::backup::kind::BackupKind::Manual,
            BackupStatus::Good,
        );
        m.file = Some(format!("{id}.sql.gz"));
        m.stored_bytes = 10;
        m.sha256 = Some("a".repeat(64));
        let whole = RemoteBackup {
            meta: m.clone(),
            objects: vec![
                (format!("p/app/{id}.sql.gz"), 10),
                (format!("p/app/{id}.json"), 500),
            ],
            deleting: false,
        };
        assert_eq!(missing_file(&whole), None);
        let mut gone = whole.clone();
        gone.objects.remove(0);
        assert!(missing_file(&gone).unwrap().contains("not in the bucket"));
        let mut short = whole.clone();
        short.objects[0].1 = 9;
        assert!(missing_file(&short).is_some());

        let config = crate::config::RemoteConfig {
            url: "s3://abc/p".into(),
            ..Default::default()
        };
        let listed = |remote: Vec<RemoteBackup>| {
            merged_listing(vec![m.clone()], Ok(remote), &config)[0].location
        };
        assert_eq!(listed(vec![whole.clone()]), Some(Location::Both));
        // Metadata of the same name that is another backup's, or damaged: local only.
        let mut other = whole.clone();
        other.meta.sha256 = Some("b".repeat(64));
        assert_eq!(listed(vec![other]), Some(Location::Local));
        let mut damaged = whole.clone();
        damaged.meta = damaged_from(damaged.meta, "x");
        assert_eq!(listed(vec![damaged]), Some(Location::Local));
    }
}
