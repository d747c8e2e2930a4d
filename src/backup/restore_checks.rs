//! What must hold before a backup is trusted: it is in the catalog, its file is where the
//! metadata says, its checksum, size and SHA-256 match, and (for verify) the whole stream
//! reads and decrypts to its end. An encrypted backup verified without an identity passes on
//! its hash and size alone and is reported as not fully verified; an identity that does not
//! open it is a failed decryption check (never an "ok" one followed by a failed stream).

use super::api::Check;
use super::catalog::{self, BackupMeta};
use super::ctx::Ctx;
use super::error::BackupError;
use super::restore::{self, StoredBackup};

/// The backup `id` from the local catalog or, when it is only in the bucket, from the
/// bucket's catalog (then marked [`catalog::Location::Remote`]: its files are streamed from
/// there, and a verify's result is not recorded locally).
pub(super) async fn lookup(
    ctx: &Ctx,
    id: &str,
    action: &'static str,
) -> Result<BackupMeta, BackupError> {
    let root = ctx.config.backup.dir.clone();
    let i = id.to_string();
    let found = tokio::task::spawn_blocking(move || catalog::find(&root, &i))
        .await
        .map_err(|e| BackupError::Failed(format!("reading the catalog stopped: {e}")))?;
    let meta = match found {
        Err(catalog::CatalogError::Unknown(_)) if ctx.config.backup.remote.enabled() => {
            remote_meta(ctx, id).await?
        }
        other => other?,
    };
    checked_status(meta, id, action)
}

/// A backup only the bucket holds, as its catalog there says.
async fn remote_meta(ctx: &Ctx, id: &str) -> Result<BackupMeta, BackupError> {
    let all = ctx
        .uploads
        .index(std::time::Duration::from_secs(30))
        .await
        .map_err(|e| {
            BackupError::Failed(format!(
                "{id} is not in the local backup dir, and the bucket's catalog cannot be read: {e}"
            ))
        })?;
    let b = all
        .into_iter()
        .find(|b| b.meta.id == id && !b.deleting)
        .ok_or_else(|| catalog::CatalogError::Unknown(id.into()))?;
    let mut meta = b.meta;
    meta.location = Some(catalog::Location::Remote);
    Ok(meta)
}

/// True when the backup is read from the bucket.
pub(super) fn is_remote(meta: &BackupMeta) -> bool {
    meta.location == Some(catalog::Location::Remote)
}

/// Where `file` of a bucket-only backup is.
fn remote_object(
    ctx: &Ctx,
    meta: &BackupMeta,
    file: &str,
) -> Result<crate::backup::remote::store::RemoteObject, BackupError> {
    let store = crate::backup::remote::RemoteStore::from_config(&ctx.config.backup.remote)
        .map_err(|e| BackupError::Failed(ctx.scrubber.scrub(&e.to_string())))?
        .ok_or_else(|| {
            BackupError::Failed("no bucket is configured ([backup.remote] url)".into())
        })?;
    let key = store
        .key(&meta.database, file)
        .map_err(|e| BackupError::Failed(e.to_string()))?;
    Ok(crate::backup::remote::store::RemoteObject { store, key })
}

fn checked_status(
    meta: BackupMeta,
    id: &str,
    action: &'static str,
) -> Result<BackupMeta, BackupError> {
    // A damaged backup may be verified again (say, once its identity file is back).
    let verifiable = action == "verified" && meta.status == catalog::BackupStatus::Damaged;
    if meta.status == catalog::BackupStatus::Damaged && !verifiable {
        return Err(BackupError::VerifyFailed {
            id: id.into(),
            detail: meta.error.unwrap_or_else(|| "it is damaged".into()),
        });
    }
    if !meta.is_good() && !verifiable {
        return Err(BackupError::NotGood {
            id: id.into(),
            status: format!("{:?}", meta.status).to_lowercase(),
            action,
        });
    }
    Ok(meta)
}

/// The checks whose failure proves the stored bytes are not the ones written: the file's
/// SHA-256 and size against the metadata, and the metadata's own checksum. Anything else a
/// verify can trip on (a read error, a wrong identity file, a restore test cut short or
/// refused by the server) says nothing certain about the backup and never marks it damaged —
/// a damaged backup is one retention may delete.
const DAMAGE_CHECKS: [&str; 3] = ["metadata checksum", "sha256", "size"];

/// Records a verify's outcome in the catalog: a failed [`DAMAGE_CHECKS`] check makes the
/// backup `damaged`; all checks passing records when it was verified.
pub(super) fn record(ctx: &Ctx, meta: &BackupMeta, checks: &[Check]) {
    let id = meta.id.as_str();
    if is_remote(meta) {
        // The local catalog has no entry to record it in; the reply says what was found.
        tracing::info!(
            id,
            "verify of a backup only the bucket holds: its result is not recorded"
        );
        return;
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok && DAMAGE_CHECKS.contains(&c.name.as_str()))
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if failed.is_empty() && checks.iter().any(|c| !c.ok) {
        // Inconclusive: reported in the reply, nothing recorded.
        return;
    }
    let problems = (!failed.is_empty()).then(|| format!("verify failed: {}", failed.join("; ")));
    match catalog::record_verify(&ctx.config.backup.dir, id, problems) {
        Ok(m) if m.status == catalog::BackupStatus::Damaged => {
            tracing::error!(id = %id, database = %m.database, problem = m.error.as_deref().unwrap_or(""), "backup is damaged")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(id = %id, error = %e, "cannot record the verify result in the catalog")
        }
    }
}

pub(super) fn stored(ctx: &Ctx, meta: &BackupMeta) -> Result<StoredBackup, BackupError> {
    let path = catalog::data_path(&ctx.config.backup.dir, meta).ok_or_else(|| {
        BackupError::Failed(format!(
            "backup {} names no data file steward would have written",
            meta.id
        ))
    })?;
    let (path, remote) = if is_remote(meta) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let o = remote_object(ctx, meta, &name)?;
        (std::path::PathBuf::from(o.shown()), Some(o))
    } else {
        (path, None)
    };
    Ok(StoredBackup {
        remote,
        path,
        format: meta.format,
        compression: meta.compression,
        encrypted: meta.encryption.is_some(),
        sha256: meta.sha256.clone().unwrap_or_default(),
        stored_bytes: meta.stored_bytes,
        dump_bytes: meta.dump_bytes,
    })
}

/// The age identities of `backup.encryption.identity_file`, if one is set.
pub(super) fn identities(ctx: &Ctx) -> Result<Vec<age::x25519::Identity>, BackupError> {
    let Some(path) = &ctx.config.backup.encryption.identity_file else {
        return Ok(Vec::new());
    };
    // A regular file of at most 64 KiB only: a FIFO or a device is refused, not waited on.
    let text = crate::config::read_secret_quietly("backup.encryption.identity_file", path)
        .map_err(|p| BackupError::Failed(p.to_string()))?;
    Ok(crate::config::parse_identities(&text))
}

/// The metadata's own checksum.
pub(super) fn metadata_check(meta: &BackupMeta) -> Check {
    Check {
        name: "metadata checksum".into(),
        ok: meta.checksum_ok(),
        detail: "matches".into(),
    }
}

/// Metadata checksum, file size and SHA-256: what must hold before any database is touched.
pub(super) async fn quick_check(
    ctx: &Ctx,
    meta: &BackupMeta,
) -> Result<(bool, Vec<Check>), BackupError> {
    let b = stored(ctx, meta)?;
    let progress = ctx.progress.clone();
    let unreadable =
        |e: std::io::Error| BackupError::Failed(format!("cannot read {}: {e}", b.path.display()));
    let file = b.open_raw().await.map_err(unreadable)?;
    let hashed = tokio::task::spawn_blocking(move || hash_reader(file, progress))
        .await
        .map_err(|e| BackupError::Failed(format!("hashing stopped: {e}")))?;
    let (sha, size) = hashed.map_err(unreadable)?;
    let checks = vec![
        Check {
            name: "metadata checksum".into(),
            ok: meta.checksum_ok(),
            detail: "matches".into(),
        },
        Check {
            name: "size".into(),
            ok: size == b.stored_bytes,
            detail: format!("{size} bytes stored, {} expected", b.stored_bytes),
        },
        Check {
            name: "sha256".into(),
            ok: sha == b.sha256,
            detail: format!("file hashes to {sha}"),
        },
    ];
    Ok((checks.iter().all(|c| c.ok), checks))
}

pub(super) fn hash_reader(
    file: Box<dyn std::io::Read + Send>,
    progress: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<(String, u64)> {
    let mut reader = super::pipeline_io::HashingReader::new(
        std::io::BufReader::with_capacity(1 << 20, file),
        progress,
    );
    std::io::copy(&mut reader, &mut std::io::sink())?;
    let (size, sha) = reader.finish();
    Ok((sha, size))
}

pub(super) async fn check(ctx: &Ctx, meta: &BackupMeta) -> Result<(bool, Vec<Check>), BackupError> {
    let b = stored(ctx, meta)?;
    let ids = identities(ctx)?;
    let mut checks = vec![Check {
        name: "metadata checksum".into(),
        ok: meta.checksum_ok(),
        detail: "matches".into(),
    }];
    match restore::verify(&b, &ids, ctx.progress.clone()).await {
        Ok(out) => checks.extend(checks_of(&out)),
        Err(e) => checks.push(Check {
            name: "read".into(),
            ok: false,
            detail: ctx.scrubber.scrub(&e.to_string()),
        }),
    }
    checks.extend(globals_check(ctx, meta).await);
    Ok((checks.iter().all(|c| c.ok), checks))
}

/// The stored globals (roles) against their recorded SHA-256. A mismatch fails the verify
/// but does not make the backup damaged: its data still restores (`--skip-roles`).
async fn globals_check(ctx: &Ctx, meta: &BackupMeta) -> Option<Check> {
    let g = meta.globals.as_ref()?;
    let (ok, detail) = match globals_bytes(ctx, meta).await {
        Ok(None) => (
            false,
            format!("the metadata names {:?}, not a file steward writes", g.file),
        ),
        Ok(Some((bytes, shown))) => {
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            if sha == g.sha256 && bytes.len() as u64 == g.stored_bytes {
                (true, "roles and tablespaces file matches".to_string())
            } else {
                (false, format!("{shown} hashes to {sha}, not {}", g.sha256))
            }
        }
        Err(e) => (false, e),
    };
    Some(Check {
        name: "globals".into(),
        ok,
        detail,
    })
}

/// The name of the check that passes only when the dump inside was read to its end.
const STREAM: &str = "stream";

/// Whether `checks` cover the content and not only the file: the stream inside was
/// decrypted (when encrypted), decompressed and read to its end. False for an encrypted
/// backup verified without `backup.encryption.identity_file` (only its hash and size were
/// checked) and when the stream could not be read; `backup verify` says so.
pub(super) fn fully_verified(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.name == STREAM && c.ok)
}

/// The decryption check of an encrypted backup verified without an identity.
const NOT_ATTEMPTED: &str =
    "not attempted: no backup.encryption.identity_file is configured; set it to verify the dump inside";

/// The decryption check's detail when the reader gave no reason.
const NO_IDENTITY_DECRYPTS: &str = "none of the configured identities can decrypt this backup";

/// The verify outcome as one line per check.
fn checks_of(out: &restore::VerifyOutput) -> Vec<Check> {
    let mut v = vec![
        Check {
            name: "sha256".into(),
            ok: out.hash_ok,
            detail: format!("file hashes to {}", out.actual_sha256),
        },
        Check {
            name: "size".into(),
            ok: out.size_ok,
            detail: format!("{} bytes stored", out.actual_stored_bytes),
        },
    ];
    match out.decryption {
        restore::Decryption::NotEncrypted => {}
        restore::Decryption::Decrypted => v.push(Check {
            name: "decryption".into(),
            ok: true,
            detail: "decrypted with the configured identity".into(),
        }),
        // Not a failure (the file is the one written), but not a pass either: the reply's
        // `fully_verified` is false and says what was not checked.
        restore::Decryption::Skipped => v.push(Check {
            name: "decryption".into(),
            ok: true,
            detail: NOT_ATTEMPTED.into(),
        }),
        // The stream was not read: one failed check says why, none claims the stream.
        restore::Decryption::Failed => {
            v.push(Check {
                name: "decryption".into(),
                ok: false,
                detail: out
                    .decryption_error
                    .clone()
                    .unwrap_or_else(|| NO_IDENTITY_DECRYPTS.into()),
            });
            return v;
        }
    }
    if let Some(ok) = out.stream_ok {
        let detail = if ok {
            "read to its end".to_string()
        } else {
            out.problems.join("; ")
        };
        v.push(Check {
            name: STREAM.into(),
            ok,
            detail,
        });
    }
    if let (Some(ok), Some(n)) = (out.dump_bytes_ok, out.dump_bytes) {
        v.push(Check {
            name: "dump size".into(),
            ok,
            detail: format!("{n} bytes of dump inside"),
        });
    }
    v
}

/// The most a globals file may weigh when read whole.
const GLOBALS_CAP: u64 = 64 * 1024 * 1024;

/// The stored globals file of a backup, whole, with its name for messages: from the local
/// dir, or from the bucket for a backup only there; `None` when the metadata names no file
/// steward writes.
pub(super) async fn globals_bytes(
    ctx: &Ctx,
    meta: &BackupMeta,
) -> Result<Option<(Vec<u8>, String)>, String> {
    let Some(path) = catalog::globals_path(&ctx.config.backup.dir, meta) else {
        return Ok(None);
    };
    if is_remote(meta) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let o = remote_object(ctx, meta, &name).map_err(|e| e.to_string())?;
        let bytes = o.store.get_small(&o.key, GLOBALS_CAP).await.map_err(|e| {
            format!(
                "cannot read {}: {}",
                o.shown(),
                ctx.scrubber.scrub(&e.to_string())
            )
        })?;
        return Ok(Some((bytes.to_vec(), o.shown())));
    }
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || std::fs::read(&path)).await;
    match read {
        Ok(Ok(bytes)) => Ok(Some((bytes, shown))),
        Ok(Err(e)) => Err(format!("cannot read {shown}: {e}")),
        Err(e) => Err(format!("reading stopped: {e}")),
    }
}
