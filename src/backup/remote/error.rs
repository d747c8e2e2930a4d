//! Why the bucket refused or could not be reached, in words that say what to fix: the S3
//! error codes that mean a setting is wrong are told apart from a passing outage.

use std::path::PathBuf;

/// An off-site operation's failure. Every message is scrubbed of the configured secrets before
/// it is stored or shown.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("backup.remote: {0}")]
    Config(String),
    #[error("the bucket {bucket:?} does not exist at {endpoint}; create it, or correct backup.remote.url or backup.remote.endpoint")]
    NoBucket { bucket: String, endpoint: String },
    #[error("the bucket at {endpoint} refused the credentials ({code}); check backup.remote.access_key_id and the secret access key (backup.remote.secret_access_key_file or AWS_SECRET_ACCESS_KEY)")]
    Credentials { endpoint: String, code: String },
    #[error("the bucket {bucket:?} denied {what} ({code}); the key needs s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject and s3:AbortMultipartUpload on it")]
    Denied {
        bucket: String,
        what: String,
        code: String,
    },
    #[error(
        "the bucket {bucket:?} is full or over its quota ({code}); free space or raise the quota"
    )]
    Quota { bucket: String, code: String },
    #[error("cannot reach the bucket at {endpoint} ({what}): {detail}")]
    Unreachable {
        endpoint: String,
        what: String,
        detail: String,
    },
    #[error("{what} is not in the bucket")]
    NotFound { what: String },
    #[error("the bucket's copy of {what} does not match: {detail}")]
    Mismatch { what: String, detail: String },
    #[error("cannot read {path}: {source}")]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} failed: {detail}")]
    Other { what: String, detail: String },
}

impl RemoteError {
    /// True when retrying later may succeed without anyone changing a setting.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteError::Unreachable { .. } | RemoteError::Other { .. } | RemoteError::Quota { .. }
        )
    }
}

/// Where the error happened, for [`classify`].
pub(super) struct Site<'a> {
    pub bucket: &'a str,
    pub endpoint: &'a str,
    /// What was being done: "upload of x", "listing".
    pub what: &'a str,
}

/// Turns an `object_store` error into one that names its cause: the S3 error code in the
/// service's reply when there is one, else the transport failure.
pub(super) fn classify(e: object_store::Error, site: &Site<'_>) -> RemoteError {
    let text = e.to_string();
    let code = s3_code(&text);
    let (bucket, endpoint) = (site.bucket.to_string(), site.endpoint.to_string());
    match code.as_deref() {
        Some("NoSuchBucket") => return RemoteError::NoBucket { bucket, endpoint },
        Some(
            c @ ("InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "InvalidSecurity"
            | "TokenRefreshRequired"),
        ) => {
            return RemoteError::Credentials {
                endpoint,
                code: c.into(),
            }
        }
        Some(c @ ("AccessDenied" | "AllAccessDisabled" | "AccountProblem")) => {
            return RemoteError::Denied {
                bucket,
                what: site.what.into(),
                code: c.into(),
            }
        }
        Some(
            c @ ("QuotaExceeded"
            | "StorageQuotaExceeded"
            | "EntityTooLarge"
            | "XMinioStorageFull"
            | "InsufficientStorage"
            | "ServiceQuotaExceeded"),
        ) => {
            return RemoteError::Quota {
                bucket,
                code: c.into(),
            }
        }
        _ => {}
    }
    match e {
        object_store::Error::NotFound { .. } => {
            return RemoteError::NotFound {
                what: site.what.into(),
            }
        }
        // A HEAD's refusal has no body to name its reason.
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => return RemoteError::Credentials {
            endpoint,
            code:
                "HTTP 401/403 with no reason given; the key may also lack permissions on the bucket"
                    .into(),
        },
        _ => {}
    }
    if code.is_none() && looks_like_transport(&text) {
        return RemoteError::Unreachable {
            endpoint,
            what: site.what.into(),
            detail: transport_detail(&text),
        };
    }
    RemoteError::Other {
        what: site.what.into(),
        detail: shorten(&text),
    }
}

/// The `<Code>…</Code>` of an S3 error reply quoted in an error's text.
fn s3_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric())).then(|| code.into())
}

fn looks_like_transport(text: &str) -> bool {
    [
        "error sending request",
        "connect",
        "timed out",
        "Timeout",
        "dns error",
        "Connection refused",
        "connection closed",
        "broken pipe",
        "reset by peer",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// The innermost words of a transport error ("Connection refused", "operation timed out").
fn transport_detail(text: &str) -> String {
    for w in [
        "Connection refused",
        "timed out",
        "dns error",
        "connection closed before message completed",
        "Connection reset by peer",
        "Broken pipe",
    ] {
        if text.contains(w) {
            return w.to_string();
        }
    }
    shorten(text)
}

/// At most one line of 300 characters: a service's reply can be a whole HTML page.
fn shorten(text: &str) -> String {
    let line: String = text
        .split('\n')
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_codes_are_read_from_a_reply() {
        let t = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>x</Message></Error>";
        assert_eq!(s3_code(t).as_deref(), Some("InvalidAccessKeyId"));
        assert_eq!(s3_code("<Code>bad code</Code>"), None);
        assert_eq!(s3_code("nothing"), None);
    }

    #[test]
    fn each_cause_gets_its_own_words() {
        let site = Site {
            bucket: "b",
            endpoint: "http://h",
            what: "upload",
        };
        let generic = |t: &str| object_store::Error::Generic {
            store: "S3",
            source: t.to_string().into(),
        };
        assert!(matches!(
            classify(generic("403: <Code>SignatureDoesNotMatch</Code>"), &site),
            RemoteError::Credentials { .. }
        ));
        assert!(matches!(
            classify(generic("error sending request: Connection refused"), &site),
            RemoteError::Unreachable { .. }
        ));
        assert!(matches!(
            classify(generic("<Code>NoSuchBucket</Code>"), &site),
            RemoteError::NoBucket { .. }
        ));
        assert!(matches!(
            classify(generic("<Code>QuotaExceeded</Code>"), &site),
            RemoteError::Quota { .. }
        ));
        assert!(!RemoteError::NoBucket {
            bucket: "b".into(),
            endpoint: "e".into()
        }
        .is_transient());
    }
}
