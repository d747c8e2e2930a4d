//! The bucket as steward uses it: a client built from `[backup.remote]`, the keys backups are
//! stored under (`<prefix>/<database dir>/<file>`, the local layout), and the few operations
//! the off-site copy needs, each bounded and its failure named by [`super::error`].

use super::error::{classify, RemoteError, Site};
use crate::config::RemoteConfig;
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The smallest part of a multipart upload S3 takes (but for the last), and so the memory an
/// upload holds per part in flight for files up to [`MAX_PARTS`] × this size.
pub const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts of one upload at most: S3 allows 10,000; the rest is margin for a file that grows
/// while it is read (it then fails its hash check anyway).
const MAX_PARTS: u64 = 9_000;

/// The part size for a file of `len` bytes: [`PART_BYTES`], or larger (whole MiB) when the
/// file would need more than [`MAX_PARTS`] parts.
pub fn part_size(len: u64) -> usize {
    const MIB: u64 = 1024 * 1024;
    let needed = len.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(PART_BYTES as u64) as usize
}
/// Parts sent at once: two keep the link busy while the next part is read and hashed.
const PARTS_IN_FLIGHT: usize = 2;

/// A configured bucket.
#[derive(Clone)]
pub struct RemoteStore {
    s3: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    /// `s3://bucket/prefix` as configured: what a copy's record names.
    pub url: String,
    /// The service's address as shown in messages (never with credentials).
    pub endpoint: String,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteStore({} at {})", self.url, self.endpoint)
    }
}

/// A multipart upload begun: what must be aborted if it is never completed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
}

/// What an upload sent: its size and the SHA-256 of the bytes as they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub bytes: u64,
    pub sha256: String,
}

/// The bucket a configuration points at, as a copy's record names it: `s3://bucket/prefix`
/// and the service's address (`AWS S3 (<region>)` for AWS itself).
pub fn identity(r: &RemoteConfig) -> (String, String) {
    let url = r.url.trim().trim_end_matches('/').to_string();
    let endpoint = r.endpoint.trim();
    let shown = if endpoint.is_empty() {
        let region = r.region.trim();
        format!(
            "AWS S3 ({})",
            if region.is_empty() {
                "us-east-1"
            } else {
                region
            }
        )
    } else {
        endpoint.to_string()
    };
    (url, shown)
}

impl RemoteStore {
    /// A client for `[backup.remote]`; `None` when no bucket is configured.
    pub fn from_config(r: &RemoteConfig) -> Result<Option<Self>, RemoteError> {
        if !r.enabled() {
            return Ok(None);
        }
        // reqwest is built without a TLS provider of its own: rustls uses the process's
        // default, ring, as the metrics endpoint does. A second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let b = r.bucket_url().map_err(RemoteError::Config)?;
        let region = if r.region.trim().is_empty() {
            "us-east-1"
        } else {
            r.region.trim()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&b.bucket)
            .with_region(region)
            .with_virtual_hosted_style_request(!r.path_style)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..Default::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            );
        let endpoint = r.endpoint.trim();
        if !endpoint.is_empty() {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let (url, shown) = identity(r);
        if !r.access_key_id.trim().is_empty() {
            builder = builder.with_access_key_id(r.access_key_id.trim());
        }
        if let Some(s) = &r.secret_access_key {
            builder = builder.with_secret_access_key(s.expose());
        }
        if let Some(t) = &r.session_token {
            builder = builder.with_token(t.expose());
        }
        let s3 = builder.build().map_err(|e| {
            RemoteError::Config(crate::secret::Scrubber::new(r.secrets()).scrub(&e.to_string()))
        })?;
        Ok(Some(Self {
            s3: Arc::new(s3),
            bucket: b.bucket,
            prefix: b.prefix,
            url,
            endpoint: shown,
        }))
    }

    fn site<'a>(&'a self, what: &'a str) -> Site<'a> {
        Site {
            bucket: &self.bucket,
            endpoint: &self.endpoint,
            what,
        }
    }

    /// The key of `file` in the directory of `database`'s backups.
    pub fn key(&self, database: &str, file: &str) -> Result<Key, RemoteError> {
        let dir = crate::backup::catalog::dir_name::encode(database);
        let raw = if self.prefix.is_empty() {
            format!("{dir}/{file}")
        } else {
            format!("{}/{dir}/{file}", self.prefix)
        };
        Key::parse(&raw)
            .map_err(|e| RemoteError::Config(format!("cannot form a key for {file}: {e}")))
    }

    /// The prefix every backup's key starts with (the bucket's root when empty).
    pub fn root(&self) -> Option<Key> {
        (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()))
    }

    /// Every object under the prefix: key and size.
    pub async fn list(&self) -> Result<Vec<(Key, u64)>, RemoteError> {
        let root = self.root();
        let mut stream = self.s3.list(root.as_ref());
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let m = item.map_err(|e| classify(e, &self.site("listing")))?;
            out.push((m.location, m.size));
        }
        Ok(out)
    }

    /// The size of an object, `None` when there is none under `key`.
    pub async fn size(&self, key: &Key) -> Result<Option<u64>, RemoteError> {
        match self.s3.head(key).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(classify(e, &self.site(&format!("looking up {key}")))),
        }
    }

    /// A small object whole (metadata).
    pub async fn get_small(&self, key: &Key, cap: u64) -> Result<Bytes, RemoteError> {
        let what = format!("download of {key}");
        let r = self
            .s3
            .get(key)
            .await
            .map_err(|e| classify(e, &self.site(&what)))?;
        if r.meta.size > cap {
            return Err(RemoteError::Mismatch {
                what: key.to_string(),
                detail: format!(
                    "it is {} bytes, more than the {cap} a metadata file may be",
                    r.meta.size
                ),
            });
        }
        r.bytes().await.map_err(|e| classify(e, &self.site(&what)))
    }

    /// An object as a stream of chunks, for restoring without a local copy.
    pub async fn get_stream(
        &self,
        key: &Key,
    ) -> Result<
        (
            u64,
            futures_util::stream::BoxStream<'static, Result<Bytes, RemoteError>>,
        ),
        RemoteError,
    > {
        let what = format!("download of {key}");
        let r = self
            .s3
            .get(key)
            .await
            .map_err(|e| classify(e, &self.site(&what)))?;
        let size = r.meta.size;
        let (bucket, endpoint) = (self.bucket.clone(), self.endpoint.clone());
        let stream = r.into_stream().map(move |c| {
            c.map_err(|e| {
                classify(
                    e,
                    &Site {
                        bucket: &bucket,
                        endpoint: &endpoint,
                        what: &what,
                    },
                )
            })
        });
        Ok((size, stream.boxed()))
    }

    /// Stores a small object in one request (atomic: it appears whole or not at all).
    pub async fn put_small(&self, key: &Key, bytes: Bytes) -> Result<(), RemoteError> {
        self.s3
            .put(key, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| classify(e, &self.site(&format!("upload of {key}"))))
    }

    /// Deletes an object; one that is already gone is not an error.
    pub async fn delete(&self, key: &Key) -> Result<(), RemoteError> {
        match self.s3.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify(e, &self.site(&format!("deletion of {key}")))),
        }
    }

    /// Abandons a multipart upload a stop cut short, so that its parts stop costing storage.
    pub async fn abort(&self, p: &PendingUpload) -> Result<(), RemoteError> {
        let key = Key::parse(&p.key).map_err(|e| RemoteError::Config(e.to_string()))?;
        match self.s3.abort_multipart(&key, &p.upload_id.clone()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                let err = classify(e, &self.site("abort of an unfinished upload"));
                // The service forgot it already (moto answers NoSuchUpload as a 404 body).
                match &err {
                    RemoteError::Other { detail, .. } if detail.contains("NoSuchUpload") => Ok(()),
                    _ => Err(err),
                }
            }
        }
    }

    /// Uploads the file at `path` under `key` in parts of [`part_size`] (one request when it
    /// is smaller), hashing it as it is read. `begun` is called with the multipart upload's ID
    /// before any part is sent, so that a stop mid-upload can be cleaned up after: the object
    /// appears under `key` only when the last request completes. The service checks each
    /// part's SHA-256 as it arrives.
    pub async fn upload_file<F, Fut>(
        &self,
        path: &Path,
        key: &Key,
        progress: &std::sync::atomic::AtomicU64,
        begun: F,
    ) -> Result<Sent, RemoteError>
    where
        F: FnOnce(PendingUpload) -> Fut,
        Fut: std::future::Future<Output = Result<(), RemoteError>>,
    {
        let local = |source| RemoteError::Local {
            path: path.to_path_buf(),
            source,
        };
        let what = format!("upload of {key}");
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let len = file.metadata().await.map_err(local)?.len();
        let part = part_size(len);
        let mut hash = Sha256::new();
        let mut total = 0u64;
        let first = read_part(&mut file, part).await.map_err(local)?;
        hash.update(&first);
        total += first.len() as u64;
        if first.len() < part {
            self.put_small(key, Bytes::from(first)).await?;
            progress.fetch_add(total, std::sync::atomic::Ordering::Relaxed);
            return Ok(Sent {
                bytes: total,
                sha256: hex::encode(hash.finalize()),
            });
        }
        let id = self
            .s3
            .create_multipart(key)
            .await
            .map_err(|e| classify(e, &self.site(&what)))?;
        begun(PendingUpload {
            key: key.to_string(),
            upload_id: id.clone(),
        })
        .await?;
        let mut parts: Vec<PartId> = Vec::new();
        let mut in_flight = futures_util::stream::FuturesOrdered::new();
        let mut next = Some(first);
        let mut idx = 0usize;
        loop {
            while in_flight.len() < PARTS_IN_FLIGHT {
                let Some(chunk) = next.take() else { break };
                let (s3, key, id, i) = (self.s3.clone(), key.clone(), id.clone(), idx);
                let len = chunk.len() as u64;
                in_flight.push_back(async move {
                    s3.put_part(&key, &id, i, PutPayload::from(chunk))
                        .await
                        .map(|p| (p, len))
                });
                idx += 1;
                let chunk = read_part(&mut file, part).await.map_err(local)?;
                if !chunk.is_empty() {
                    hash.update(&chunk);
                    total += chunk.len() as u64;
                    next = Some(chunk);
                }
            }
            match in_flight.next().await {
                Some(Ok((p, len))) => {
                    parts.push(p);
                    progress.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                    if parts.len() == 1 {
                        crate::backup::pause::pause_point("upload-part").await;
                    }
                }
                Some(Err(e)) => return Err(classify(e, &self.site(&what))),
                None => break,
            }
        }
        self.s3
            .complete_multipart(key, &id, parts)
            .await
            .map_err(|e| classify(e, &self.site(&what)))?;
        Ok(Sent {
            bytes: total,
            sha256: hex::encode(hash.finalize()),
        })
    }
}

/// An object to read from a blocking context (the restore and verify pipelines read with
/// `std::io::Read` on a blocking thread): the bucket streams it, nothing is stored locally.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub store: RemoteStore,
    pub key: Key,
}

impl RemoteObject {
    /// Starts the download; the returned reader blocks on the runtime for each chunk, so it
    /// must be read on a blocking thread (`spawn_blocking`), never on the runtime itself.
    pub async fn open(&self) -> std::io::Result<Box<dyn std::io::Read + Send>> {
        let (_, stream) = self
            .store
            .get_stream(&self.key)
            .await
            .map_err(std::io::Error::other)?;
        let reader =
            tokio_util::io::StreamReader::new(stream.map(|c| c.map_err(std::io::Error::other)));
        Ok(Box::new(tokio_util::io::SyncIoBridge::new(reader)))
    }

    /// `s3://bucket/key`, for messages.
    pub fn shown(&self) -> String {
        format!("s3://{}/{}", self.store.bucket, self.key)
    }
}

/// Reads up to one part of `part` bytes; shorter only at the end of the file.
async fn read_part(file: &mut tokio::fs::File, part: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; part];
    let mut filled = 0;
    while filled < part {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_what_s3_allows() {
        assert_eq!(part_size(0), PART_BYTES);
        assert_eq!(part_size(40 * 1024 * 1024 * 1024), PART_BYTES);
        for len in [50u64 << 30, 100 << 30, 4 << 40] {
            let p = part_size(len) as u64;
            assert!(len.div_ceil(p) <= MAX_PARTS, "{len}: {p}");
            assert_eq!(p % (1024 * 1024), 0);
        }
    }
}
