//! The backup actor's requests that take the bucket: `backup list` merged with the bucket's
//! catalog, `backup fetch ID`, and a restore test recorded in the bucket's own metadata of a
//! backup only the bucket holds.

use super::error::RemoteError;
use super::fetch;
use super::fetch_error::FetchError;
use super::index;
use super::store::RemoteStore;
use super::uploader::UploadHandle;
use crate::backup::catalog::{self, BackupMeta};
use crate::config::Config;

/// `backup list`: the local catalog and, with a bucket configured, the bucket's (read again
/// when the last reading is over 30 s old, waiting at most 4 s for it, so the alert engine's
/// reads are never held up by an unreachable bucket).
pub async fn listing(cfg: &Config, uploads: &UploadHandle) -> Vec<BackupMeta> {
    let root = cfg.backup.dir.clone();
    let local = tokio::task::spawn_blocking(move || catalog::listing(&root))
        .await
        .unwrap_or_default();
    if !cfg.backup.remote.enabled() {
        return local;
    }
    let remote = match tokio::time::timeout(
        std::time::Duration::from_secs(4),
        uploads.index(std::time::Duration::from_secs(30)),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err("the bucket did not answer within 4 s".into()),
    };
    if let Err(e) = &remote {
        tracing::warn!(error = %e, "the bucket's catalog could not be read; listing local backups only");
    }
    index::merged_listing(local, remote, &cfg.backup.remote)
}

/// `backup fetch ID` with the configured bucket.
pub async fn fetch_by_id(
    cfg: &Config,
    uploads: &UploadHandle,
    id: &str,
    progress: &std::sync::atomic::AtomicU64,
) -> Result<BackupMeta, FetchError> {
    let store = RemoteStore::from_config(&cfg.backup.remote)?.ok_or(FetchError::NoBucket)?;
    let remote = uploads
        .index(std::time::Duration::ZERO)
        .await
        .map_err(|detail| RemoteError::Other {
            what: "reading the bucket's catalog".into(),
            detail,
        })?;
    let out = fetch::fetch(&store, &cfg.backup.dir, &remote, id, progress).await;
    match &out {
        Ok(m) => {
            tracing::info!(id = %m.id, database = %m.database, bytes = m.stored_bytes, "backup fetched from the bucket and checked")
        }
        Err(e) => {
            tracing::warn!(id, error = %cfg.scrubber().scrub(&e.to_string()), "backup fetch failed")
        }
    }
    out
}

/// Records a restore test of a backup only the bucket holds in its metadata there (read
/// again, checked, sealed and stored whole: a single PUT replaces it atomically).
pub async fn record_restore_test(
    cfg: &Config,
    uploads: &UploadHandle,
    meta: &BackupMeta,
    record: catalog::RestoreTestRecord,
) -> Result<(), String> {
    let scrub = |e: RemoteError| cfg.scrubber().scrub(&e.to_string());
    let store = RemoteStore::from_config(&cfg.backup.remote)
        .map_err(scrub)?
        .ok_or("no bucket is configured")?;
    let key = store
        .key(&meta.database, &format!("{}.json", meta.id))
        .map_err(scrub)?;
    let bytes = store
        .get_small(&key, 16 * 1024 * 1024)
        .await
        .map_err(scrub)?;
    let mut stored: BackupMeta =
        serde_json::from_slice(&bytes).map_err(|e| format!("its metadata in the bucket: {e}"))?;
    if !stored.checksum_ok() || stored.id != meta.id || stored.database != meta.database {
        return Err("its metadata in the bucket cannot be trusted; left as it is".into());
    }
    stored.restore_test = Some(record);
    stored.location = None;
    stored.seal();
    let mut json = serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?;
    json.push(b'\n');
    store.put_small(&key, json.into()).await.map_err(scrub)?;
    // The next listing reads the bucket again.
    let _ = uploads.index(std::time::Duration::ZERO).await;
    Ok(())
}
