//! `[backup.remote]`: the S3-compatible bucket every backup is also copied to, its credentials
//! (from a file or the standard `AWS_*` variables, never from the config file itself) and how
//! many copies stay on the local disk.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// A secret value with no structure (an access key's secret half, a session token): shown
/// nowhere; `Debug` prints a mask, and the config's serialization leaves it out.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretValue(String);

impl SecretValue {
    /// The real value, for the one place that signs requests with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::secret::MASK)
    }
}

/// `[backup.remote]`. An empty `url` (the default) keeps backups on the local disk only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// The service's address; empty for AWS itself (else `AWS_ENDPOINT_URL`). Any
    /// S3-compatible service: R2, B2, MinIO, Wasabi, Ceph.
    pub endpoint: String,
    /// Empty means `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// Address the bucket in the path (`https://host/bucket/key`), as MinIO and Ceph want,
    /// instead of in the host name.
    pub path_style: bool,
    /// Empty means `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// A file holding the secret access key; unset means `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key_file: Option<PathBuf>,
    /// How many of each database's newest backups stay in `backup.dir` too once their
    /// off-site copy is checked; `0` keeps none (hosts without a persistent disk). Unset
    /// leaves the local copies to the local retention.
    pub local_keep: Option<u32>,
    /// Days a daily backup is kept in the bucket; unset means `backup.retention_days`.
    pub retention_days: Option<u32>,
    /// Weeks a weekly backup is kept in the bucket; unset means
    /// `backup.weekly_retention_weeks`.
    pub weekly_retention_weeks: Option<u32>,
    /// The wait before retrying a failed upload, doubled at each failure up to an hour.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    /// The secret access key, read from `secret_access_key_file` or `AWS_SECRET_ACCESS_KEY`.
    #[serde(skip)]
    pub secret_access_key: Option<SecretValue>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    #[serde(skip)]
    pub session_token: Option<SecretValue>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            endpoint: String::new(),
            region: String::new(),
            path_style: false,
            access_key_id: String::new(),
            secret_access_key_file: None,
            local_keep: None,
            retention_days: None,
            weekly_retention_weeks: None,
            retry_interval: Duration::from_secs(30),
            secret_access_key: None,
            session_token: None,
        }
    }
}

/// Where in the bucket: `s3://bucket/prefix` taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketUrl {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl RemoteConfig {
    /// True when a bucket is configured.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// The bucket and prefix of `url`, or why it is not one.
    pub fn bucket_url(&self) -> Result<BucketUrl, String> {
        parse_bucket_url(self.url.trim())
    }

    /// The literal secrets, for the scrubber.
    pub fn secrets(&self) -> Vec<String> {
        [&self.secret_access_key, &self.session_token]
            .into_iter()
            .flatten()
            .map(|s| s.0.clone())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// `s3://bucket[/prefix]`: a bucket name S3 accepts (3–63 of `a-z0-9.-`, starting and ending
/// with a letter or digit) and a prefix without empty, `.` or `..` segments.
pub fn parse_bucket_url(url: &str) -> Result<BucketUrl, String> {
    // A value that is not of the expected shape is never quoted back: it may be a secret
    // pasted into the wrong key.
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| "is not an s3:// URL; write it as \"s3://bucket/prefix\"".to_string())?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !bucket.chars().all(ok_char)
        || !edge_ok(bucket.chars().next())
        || !edge_ok(bucket.chars().last())
    {
        return Err(
            "does not name a bucket: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, after s3://"
                .into(),
        );
    }
    let prefix = prefix.trim_matches('/');
    if prefix
        .split('/')
        .any(|s| (s.is_empty() && !prefix.is_empty()) || s == "." || s == "..")
    {
        return Err("its prefix (after the bucket) has an empty, \".\" or \"..\" part".into());
    }
    Ok(BucketUrl {
        bucket: bucket.into(),
        prefix: prefix.into(),
    })
}

/// Fills what the file left empty from the standard `AWS_*` variables, and reads the secret
/// key from its file. The file wins over a variable: a region or endpoint set for other tools
/// does not redirect steward's backups.
pub(super) fn read_credentials(
    r: &mut RemoteConfig,
    env: &HashMap<String, String>,
    problems: &mut Vec<super::problem::Problem>,
) {
    let var = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    for (field, name) in [
        (&mut r.access_key_id, "AWS_ACCESS_KEY_ID"),
        (&mut r.region, "AWS_REGION"),
        (&mut r.endpoint, "AWS_ENDPOINT_URL"),
    ] {
        if field.trim().is_empty() {
            if let Some(v) = var(name) {
                *field = v.to_string();
            }
        }
    }
    r.secret_access_key = match &r.secret_access_key_file {
        Some(path) => {
            match super::secret_file::read_secret_file("backup.remote.secret_access_key_file", path)
            {
                Ok(s) => Some(SecretValue(s.trim().to_string())),
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        }
        None => var("AWS_SECRET_ACCESS_KEY").map(|v| SecretValue(v.into())),
    };
    r.session_token = var("AWS_SESSION_TOKEN").map(|v| SecretValue(v.into()));
}

/// Checks `[backup.remote]` when a bucket is configured.
pub(super) fn validate(r: &RemoteConfig, out: &mut Vec<super::problem::Problem>) {
    use super::problem::Problem;
    if !r.enabled() {
        return;
    }
    if let Err(e) = r.bucket_url() {
        out.push(Problem::new("backup.remote.url", e));
    }
    let endpoint = r.endpoint.trim();
    if !endpoint.is_empty() {
        match url::Url::parse(endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if !u.username().is_empty() || u.password().is_some() {
                    out.push(Problem::new(
                        "backup.remote.endpoint",
                        "must not carry credentials; give access_key_id and secret_access_key_file (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                    ));
                }
            }
            // Not quoted back: it may be a secret pasted into the wrong key.
            _ => out.push(Problem::new(
                "backup.remote.endpoint",
                "is not an http:// or https:// address such as \"https://s3.eu-central-003.backblazeb2.com\"",
            )),
        }
    }
    let has_id = !r.access_key_id.trim().is_empty();
    let has_secret = r
        .secret_access_key
        .as_ref()
        .is_some_and(|s| !s.0.is_empty());
    if has_id && !has_secret && r.secret_access_key_file.is_none() {
        out.push(Problem::new(
            "backup.remote.secret_access_key_file",
            "is unset and AWS_SECRET_ACCESS_KEY is empty, but an access key ID is given; give the file holding the secret access key",
        ));
    }
    if has_secret && !has_id {
        out.push(Problem::new(
            "backup.remote.access_key_id",
            "is empty (and so is AWS_ACCESS_KEY_ID), but a secret access key is given; give the key's ID",
        ));
    }
    if r.access_key_id.len() > 256 || r.access_key_id.chars().any(|c| c.is_whitespace()) {
        out.push(Problem::new(
            "backup.remote.access_key_id",
            "is not an access key ID (no spaces, at most 256 characters)",
        ));
    } else if r.access_key_id.contains(['/', '+', '=']) {
        // The shape of a secret access key (base64), never of a key ID: the two swapped.
        out.push(Problem::new(
            "backup.remote.access_key_id",
            "looks like a secret access key (key IDs have no '/', '+' or '='); give the key's ID here and the secret in backup.remote.secret_access_key_file",
        ));
    }
    // A secret also given in a key that is shown (status, metadata, check-config) is refused,
    // never quoted.
    for (key, value) in [
        ("backup.remote.url", &r.url),
        ("backup.remote.endpoint", &r.endpoint),
        ("backup.remote.region", &r.region),
        ("backup.remote.access_key_id", &r.access_key_id),
    ] {
        if r.secrets().iter().any(|s| value.contains(s.as_str())) {
            out.push(Problem::new(
                key,
                "holds the secret access key or session token; they belong only in backup.remote.secret_access_key_file or AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN",
            ));
        }
    }
    for (key, v) in [
        ("backup.remote.retention_days", r.retention_days),
        (
            "backup.remote.weekly_retention_weeks",
            r.weekly_retention_weeks,
        ),
    ] {
        if v == Some(0) {
            out.push(Problem::new(
                key,
                "must be at least 1, or unset to follow the local setting",
            ));
        }
    }
    if r.retry_interval < Duration::from_millis(100) || r.retry_interval > Duration::from_secs(3600)
    {
        out.push(Problem::new(
            "backup.remote.retry_interval",
            "must be between 100ms and 1h",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls_are_taken_apart_and_bad_ones_refused() {
        let u = parse_bucket_url("s3://my-backups/prod/app/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("my-backups", "prod/app")
        );
        assert_eq!(parse_bucket_url("s3://abc").unwrap().prefix, "");
        for bad in [
            "https://abc",
            "s3://ab",
            "s3://Upper",
            "s3://-abc",
            "s3://abc/../x",
            "s3://abc/a//b",
            "s3://abc_d",
        ] {
            assert!(parse_bucket_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_file_wins_over_aws_variables_and_secrets_come_from_the_environment() {
        let env: HashMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t/Key+"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut r = RemoteConfig {
            url: "s3://abc".into(),
            region: "auto".into(),
            ..Default::default()
        };
        let mut problems = Vec::new();
        read_credentials(&mut r, &env, &mut problems);
        assert!(problems.is_empty());
        assert_eq!(r.region, "auto");
        assert_eq!(r.access_key_id, "AKIAENV");
        assert_eq!(r.secrets(), vec!["s3cr3t/Key+", "tok"]);
        let shown = format!("{r:?}{}", toml::to_string(&r).unwrap());
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok\""),
            "{shown}"
        );
        let mut out = Vec::new();
        validate(&r, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_secret_in_the_wrong_key_is_refused_and_never_quoted() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let env: HashMap<String, String> = [("AWS_SECRET_ACCESS_KEY", secret)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cases = [
            ("url", format!("s3://{secret}")),
            ("url", format!("s3://bucket/{secret}")),
            ("url", secret.to_string()),
            ("endpoint", secret.to_string()),
            ("endpoint", format!("https://s3.example.com/{secret}")),
            ("access_key_id", secret.to_string()),
            ("region", secret.to_string()),
        ];
        for (key, value) in cases {
            let mut r = RemoteConfig {
                url: "s3://abc".into(),
                access_key_id: "AKIAEXAMPLE".into(),
                ..Default::default()
            };
            match key {
                "url" => r.url = value.clone(),
                "endpoint" => r.endpoint = value.clone(),
                "access_key_id" => r.access_key_id = value.clone(),
                _ => r.region = value.clone(),
            }
            let mut problems = Vec::new();
            read_credentials(&mut r, &env, &mut problems);
            validate(&r, &mut problems);
            assert!(
                problems
                    .iter()
                    .any(|p| p.key == format!("backup.remote.{key}")),
                "{key} = {value}: {problems:?}"
            );
            let shown = format!("{problems:?}");
            assert!(!shown.contains("wJalr"), "{key} = {value}: {shown}");
        }
        // Swapped: the secret as the ID, even when the environment does not give it.
        let mut r = RemoteConfig {
            url: "s3://abc".into(),
            access_key_id: secret.into(),
            secret_access_key: Some(SecretValue("AKIAEXAMPLE".into())),
            ..Default::default()
        };
        r.secret_access_key_file = Some("/x".into());
        let mut problems = Vec::new();
        validate(&r, &mut problems);
        assert!(
            problems
                .iter()
                .any(|p| p.key == "backup.remote.access_key_id" && p.reason.contains("looks like")),
            "{problems:?}"
        );
    }

    #[test]
    fn half_given_credentials_are_named() {
        let r = RemoteConfig {
            url: "s3://abc".into(),
            access_key_id: "AKIA".into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        validate(&r, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, "backup.remote.secret_access_key_file");
    }
}
