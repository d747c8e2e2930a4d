//! One backup's trip to the bucket: the data file, then the globals, then the metadata (the
//! commit marker there as here), each checked against the metadata (size and SHA-256 of what
//! was sent, size of what the service holds) before the backup counts as off-site.

use super::error::RemoteError;
use super::offsite_copy::counts;
use super::queue::{self, Entry};
use super::store::{PendingUpload, RemoteStore, Sent};
use crate::backup::catalog::{self, BackupMeta, CatalogError, OffsiteCopy};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// The most a metadata object may weigh, as the bucket's catalog reads it.
const META_CAP: u64 = 16 * 1024 * 1024;

/// What became of a queued backup.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Every file is in the bucket and checked; the local metadata records it.
    Uploaded(Box<BackupMeta>),
    /// The backup is no longer in the local catalog (or is no longer good): nothing to send.
    Gone(String),
}

/// Uploads backup `entry.id` from `root`. A multipart upload left by an earlier attempt is
/// aborted first; one begun here is recorded in the entry before its first part.
pub(super) async fn upload(
    store: &RemoteStore,
    root: &Path,
    state_dir: &Path,
    entry: &mut Entry,
    progress: &AtomicU64,
) -> Result<Outcome, RemoteError> {
    if let Some(p) = entry.pending.clone() {
        store.abort(&p).await?;
        entry.pending = None;
        save(state_dir, entry)?;
    }
    let meta = match find(root, &entry.id).await? {
        Ok(m) => m,
        Err(why) => return Ok(Outcome::Gone(why)),
    };
    if meta.offsite.as_ref().is_some_and(|o| counts(o, store)) {
        return Ok(Outcome::Uploaded(Box::new(meta)));
    }
    if already_there(store, root, &meta).await? {
        return record(store, root, &meta).await;
    }
    let data = catalog::data_path(root, &meta).ok_or_else(|| RemoteError::Other {
        what: format!("upload of {}", meta.id),
        detail: "its metadata names no data file of the name steward gives it".into(),
    })?;
    let name = file_name(&data);
    let sent = send(
        store,
        entry,
        state_dir,
        &data,
        &meta.database,
        &name,
        progress,
    )
    .await?;
    check(
        store,
        &meta.database,
        &name,
        &sent,
        meta.stored_bytes,
        meta.sha256.as_deref(),
    )
    .await?;
    if let (Some(g), Some(path)) = (&meta.globals, catalog::globals_path(root, &meta)) {
        let sent = send(
            store,
            entry,
            state_dir,
            &path,
            &meta.database,
            &g.file,
            progress,
        )
        .await?;
        check(
            store,
            &meta.database,
            &g.file,
            &sent,
            g.stored_bytes,
            Some(&g.sha256),
        )
        .await?;
    }
    crate::backup::pause::pause_point("upload-files-sent").await;
    let json_path = catalog::meta_path(root, &meta);
    let json = tokio::fs::read(&json_path)
        .await
        .map_err(|source| RemoteError::Local {
            path: json_path.clone(),
            source,
        })?;
    let json_name = format!("{}.json", meta.id);
    let key = store.key(&meta.database, &json_name)?;
    let len = json.len() as u64;
    store.put_small(&key, json.into()).await?;
    if store.size(&key).await? != Some(len) {
        return Err(RemoteError::Mismatch {
            what: json_name,
            detail: "the bucket does not hold the metadata just stored".into(),
        });
    }
    crate::backup::pause::pause_point("upload-meta-sent").await;
    record(store, root, &meta).await
}

/// A stop between the metadata's upload and its record here leaves a complete copy in the
/// bucket: it is recorded, never sent again (a local file damaged since must not replace it).
/// Metadata under this backup's key that steward did not write for this very backup (another
/// host's, a user's object, damaged) is never taken for its copy nor overwritten: the upload
/// fails, naming the key, and the backup stays queued (and local).
async fn already_there(
    store: &RemoteStore,
    root: &Path,
    meta: &BackupMeta,
) -> Result<bool, RemoteError> {
    let key = store.key(&meta.database, &format!("{}.json", meta.id))?;
    if store.size(&key).await?.is_none() {
        return Ok(false);
    }
    let bytes = match store.get_small(&key, META_CAP).await {
        Ok(b) => Some(b),
        Err(RemoteError::NotFound { .. }) => return Ok(false),
        Err(RemoteError::Mismatch { .. }) => None,
        Err(e) => return Err(e),
    };
    let theirs = bytes.and_then(|b| serde_json::from_slice::<BackupMeta>(&b).ok());
    let ours = theirs.is_some_and(|t| {
        t.checksum_ok()
            && t.id == meta.id
            && t.database == meta.database
            && t.file == meta.file
            && t.sha256.is_some()
            && t.sha256 == meta.sha256
            && t.stored_bytes == meta.stored_bytes
            && t.globals
                .as_ref()
                .map(|g| (&g.file, &g.sha256, g.stored_bytes))
                == meta
                    .globals
                    .as_ref()
                    .map(|g| (&g.file, &g.sha256, g.stored_bytes))
    });
    if !ours {
        return Err(RemoteError::Mismatch {
            what: key.to_string(),
            detail: format!(
                "an object steward did not write for backup {} is under its metadata's key; it is left alone and the backup stays local until it is moved away",
                meta.id
            ),
        });
    }
    let Some(data) = catalog::data_path(root, meta) else {
        return Ok(false);
    };
    let data_key = store.key(&meta.database, &file_name(&data))?;
    if store.size(&data_key).await? != Some(meta.stored_bytes) {
        return Ok(false);
    }
    match (&meta.globals, catalog::globals_path(root, meta)) {
        (Some(g), Some(_)) => {
            let gkey = store.key(&meta.database, &g.file)?;
            Ok(store.size(&gkey).await? == Some(g.stored_bytes))
        }
        _ => Ok(true),
    }
}

/// Writes the off-site record into the local metadata.
async fn record(
    store: &RemoteStore,
    root: &Path,
    meta: &BackupMeta,
) -> Result<Outcome, RemoteError> {
    let copy = OffsiteCopy {
        url: store.url.clone(),
        endpoint: store.endpoint.clone(),
        checked_at: chrono::Utc::now(),
    };
    let (root, id) = (root.to_path_buf(), meta.id.clone());
    let recorded = tokio::task::spawn_blocking(move || catalog::record_offsite(&root, &id, copy))
        .await
        .map_err(|e| RemoteError::Other {
            what: "recording the off-site copy".into(),
            detail: e.to_string(),
        })?;
    match recorded {
        Ok(m) => Ok(Outcome::Uploaded(Box::new(m))),
        // Deleted locally while it was uploading: the bucket's copy stands on its own.
        Err(CatalogError::Unknown(_)) => Ok(Outcome::Gone(
            "deleted locally during its upload; the bucket's copy is complete".into(),
        )),
        Err(e) => Err(RemoteError::Other {
            what: "recording the off-site copy".into(),
            detail: e.to_string(),
        }),
    }
}

/// The local metadata, or why there is nothing to upload.
async fn find(root: &Path, id: &str) -> Result<Result<BackupMeta, String>, RemoteError> {
    let (root, id) = (root.to_path_buf(), id.to_string());
    let found = tokio::task::spawn_blocking(move || catalog::find(&root, &id))
        .await
        .map_err(|e| RemoteError::Other {
            what: "reading the catalog".into(),
            detail: e.to_string(),
        })?;
    match found {
        Ok(m) if m.is_good() => Ok(Ok(m)),
        Ok(m) => Ok(Err(format!("it is {:?} now, not good", m.status))),
        Err(CatalogError::Unknown(_)) => Ok(Err("it is no longer in the local catalog".into())),
        Err(e) => Err(RemoteError::Other {
            what: "reading the catalog".into(),
            detail: e.to_string(),
        }),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn save(state_dir: &Path, e: &Entry) -> Result<(), RemoteError> {
    queue::save(state_dir, e).map_err(|source| RemoteError::Local {
        path: queue::dir(state_dir),
        source,
    })
}

/// Sends one file; a multipart upload that fails is aborted at once, or left in the entry for
/// the next attempt to abort.
async fn send(
    store: &RemoteStore,
    entry: &mut Entry,
    state_dir: &Path,
    path: &Path,
    database: &str,
    name: &str,
    progress: &AtomicU64,
) -> Result<Sent, RemoteError> {
    let key = store.key(database, name)?;
    let begun: Mutex<Option<PendingUpload>> = Mutex::new(None);
    let journal = entry.clone();
    let out = store
        .upload_file(path, &key, progress, |p| {
            if let Ok(mut b) = begun.lock() {
                *b = Some(p.clone());
            }
            let mut e = journal;
            e.pending = Some(p);
            async move { save(state_dir, &e) }
        })
        .await;
    let begun = begun.lock().ok().and_then(|mut b| b.take());
    match (&out, begun) {
        (Ok(_), Some(_)) => {
            entry.pending = None;
            save(state_dir, entry)?;
        }
        (Err(_), Some(p)) => {
            entry.pending = match store.abort(&p).await {
                Ok(()) => None,
                Err(_) => Some(p),
            };
            save(state_dir, entry)?;
        }
        _ => {}
    }
    out
}

/// What was sent must be what the metadata describes, and what the bucket holds must be that
/// size; a copy that fails is deleted again (it has no metadata there, so it was never a
/// backup in the bucket).
async fn check(
    store: &RemoteStore,
    database: &str,
    name: &str,
    sent: &Sent,
    bytes: u64,
    sha256: Option<&str>,
) -> Result<(), RemoteError> {
    let key = store.key(database, name)?;
    let problem = if sent.bytes != bytes || sha256 != Some(sent.sha256.as_str()) {
        Some(format!(
            "the local file read {} bytes with SHA-256 {}, but its metadata says {bytes} bytes with SHA-256 {}; it changed or is damaged (run `steward backup verify`)",
            sent.bytes,
            sent.sha256,
            sha256.unwrap_or("(none)")
        ))
    } else {
        match store.size(&key).await? {
            Some(n) if n == bytes => None,
            Some(n) => Some(format!("the bucket holds {n} bytes, {bytes} were sent")),
            None => Some("the bucket does not hold it after its upload completed".into()),
        }
    };
    match problem {
        None => Ok(()),
        Some(detail) => {
            let _ = store.delete(&key).await;
            Err(RemoteError::Mismatch {
                what: name.into(),
                detail,
            })
        }
    }
}
