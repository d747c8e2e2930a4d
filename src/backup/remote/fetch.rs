//! `backup fetch ID`: a backup the bucket holds brought into the local catalog, each file
//! streamed to a temporary name, checked against the bucket's metadata (size, SHA-256), then
//! renamed, and the metadata written last, so that a stop part-way leaves nothing that looks
//! like a backup (the start-up sweep removes the temporary files).

use super::error::RemoteError;
use super::fetch_error::FetchError;
use super::index::RemoteBackup;
use super::store::RemoteStore;
use crate::backup::catalog::{self, BackupMeta, OffsiteCopy};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Downloads backup `id` from `store` into `root`; returns its local metadata.
pub async fn fetch(
    store: &RemoteStore,
    root: &Path,
    remote: &[RemoteBackup],
    id: &str,
    progress: &std::sync::atomic::AtomicU64,
) -> Result<BackupMeta, FetchError> {
    catalog::validate_id(id)?;
    let b = remote
        .iter()
        .find(|b| b.meta.id == id && !b.deleting)
        .ok_or_else(|| FetchError::Unknown(id.into()))?;
    let meta = &b.meta;
    if !meta.is_good() {
        return Err(FetchError::NotGood {
            id: id.into(),
            status: format!("{:?}", meta.status).to_lowercase(),
            why: meta.error.clone().unwrap_or_default(),
        });
    }
    let r = root.to_path_buf();
    let i = id.to_string();
    if tokio::task::spawn_blocking(move || catalog::find(&r, &i).is_ok())
        .await
        .unwrap_or(false)
    {
        return Err(FetchError::AlreadyLocal(id.into()));
    }
    let dir = catalog::db_dir(root, &meta.database);
    catalog::ensure_dir(&dir)?;
    let file = meta.file.clone().ok_or_else(|| RemoteError::Other {
        what: format!("fetch of {id}"),
        detail: "its metadata names no data file".into(),
    })?;
    let expected =
        catalog::data_file_name(id, meta.format, meta.compression, meta.encryption.is_some());
    if file != expected {
        return Err(RemoteError::Other {
            what: format!("fetch of {id}"),
            detail: format!(
                "its data file is called {file:?}, not {expected:?} as steward names it"
            ),
        }
        .into());
    }
    let mut files = vec![(file, meta.stored_bytes, meta.sha256.clone())];
    if let Some(g) = &meta.globals {
        files.push((g.file.clone(), g.stored_bytes, Some(g.sha256.clone())));
    }
    let mut done: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (name, bytes, sha) in &files {
        let tmp = dir.join(format!("{name}.tmp"));
        let out = download(
            store,
            &meta.database,
            name,
            &tmp,
            *bytes,
            sha.as_deref(),
            progress,
        )
        .await;
        if let Err(e) = out {
            // `download` removed its own file (and left another fetch's alone).
            for (t, _) in &done {
                let _ = tokio::fs::remove_file(t).await;
            }
            return Err(e.into());
        }
        done.push((tmp, dir.join(name)));
    }
    let mut local = meta.clone();
    local.location = None;
    local.offsite = Some(OffsiteCopy {
        url: store.url.clone(),
        endpoint: store.endpoint.clone(),
        checked_at: chrono::Utc::now(),
    });
    let r = root.to_path_buf();
    let committed =
        tokio::task::spawn_blocking(move || -> Result<BackupMeta, catalog::CatalogError> {
            for (tmp, fin) in &done {
                std::fs::rename(tmp, fin).map_err(|source| catalog::CatalogError::Io {
                    what: "rename",
                    path: tmp.clone(),
                    source,
                })?;
            }
            catalog::sync_dir(&catalog::db_dir(&r, &local.database))?;
            catalog::commit(&r, &mut local)?;
            Ok(local)
        })
        .await
        .map_err(|e| RemoteError::Other {
            what: format!("fetch of {id}"),
            detail: e.to_string(),
        })??;
    Ok(committed)
}

/// Streams one object to `tmp` (fsynced), checking its size and SHA-256 on the way.
async fn download(
    store: &RemoteStore,
    database: &str,
    name: &str,
    tmp: &Path,
    bytes: u64,
    sha256: Option<&str>,
    progress: &std::sync::atomic::AtomicU64,
) -> Result<(), RemoteError> {
    let local = |source| RemoteError::Local {
        path: tmp.to_path_buf(),
        source,
    };
    let key = store.key(database, name)?;
    // Never another fetch's file: two fetches of one backup writing one temporary file could
    // commit one whose start the other had just truncated.
    let mut f = match tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .await
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RemoteError::Other {
                what: format!("download of {name}"),
                detail: "another fetch of this backup is in progress".into(),
            })
        }
        Err(e) => return Err(local(e)),
    };
    let out = write_checked(store, &key, name, &mut f, bytes, sha256, progress, tmp).await;
    if out.is_err() {
        drop(f);
        let _ = tokio::fs::remove_file(tmp).await;
    }
    out
}

/// The body of [`download`]: streams `key` into `f`, fsyncs, checks size and SHA-256.
#[allow(clippy::too_many_arguments)]
async fn write_checked(
    store: &RemoteStore,
    key: &object_store::path::Path,
    name: &str,
    f: &mut tokio::fs::File,
    bytes: u64,
    sha256: Option<&str>,
    progress: &std::sync::atomic::AtomicU64,
    tmp: &Path,
) -> Result<(), RemoteError> {
    let local = |source| RemoteError::Local {
        path: tmp.to_path_buf(),
        source,
    };
    let (_, mut stream) = store.get_stream(key).await?;
    let mut hash = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        hash.update(&chunk);
        n += chunk.len() as u64;
        progress.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        f.write_all(&chunk).await.map_err(local)?;
    }
    f.sync_all().await.map_err(local)?;
    let got = hex::encode(hash.finalize());
    if n != bytes || sha256 != Some(got.as_str()) {
        return Err(RemoteError::Mismatch {
            what: name.into(),
            detail: format!(
                "{n} bytes with SHA-256 {got} downloaded; its metadata says {bytes} bytes with SHA-256 {}",
                sha256.unwrap_or("(none)")
            ),
        });
    }
    Ok(())
}
