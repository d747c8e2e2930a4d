//! A real S3-compatible store as a test peer: `moto_server` from PyPI's `moto[server]` (installed
//! by `tests/run.sh` when missing), in its own temp dir on a free port, killed on drop.
//!
//! `S3Server::start()`, then [`S3Server::create_bucket`] with a [`unique_bucket`] name, and point
//! the code under test at [`S3Server::endpoint`] with region [`REGION`], path-style URLs
//! (`http://127.0.0.1:PORT/bucket/key`) and any credentials ([`ACCESS_KEY_ID`] and
//! [`SECRET_ACCESS_KEY`] are as good as any: moto does not check signatures). The test then
//! inspects the store with [`S3Server::keys`], [`S3Server::get`] and
//! [`S3Server::multipart_uploads`], or changes it behind steward's back with [`S3Server::put`]
//! and [`S3Server::delete`].
//!
//! Outages:
//! - [`S3Server::stop`] kills the server: connections are refused at once. moto keeps everything
//!   in memory, so [`S3Server::start_again`] (same port) comes back **empty**: no buckets, no
//!   objects, no multipart uploads.
//! - [`S3Server::pause`] stops the process with SIGSTOP and [`S3Server::resume`] continues it:
//!   the store is unreachable but keeps its state. While paused the kernel still accepts TCP
//!   connections on the port (the listen backlog), so clients are not refused: their requests go
//!   unanswered until they time out (or until the resume, when they are served).
//!
//! Things moto does differently from AWS (moto 5.2):
//! - It never verifies `x-amz-checksum-*` headers: a PutObject or UploadPart with a wrong
//!   `x-amz-checksum-sha256` succeeds. UploadPart does not echo the checksum, ListParts does not
//!   list it; CompleteMultipartUpload ignores the parts' `ChecksumSHA256` and computes the
//!   composite checksum itself from the parts' data (when the upload was created with
//!   `x-amz-checksum-algorithm`).
//! - ListMultipartUploads reports every upload as initiated at a fixed 2010 timestamp.
//! - Requests without an `Authorization` header are anonymous and are refused (403) on existing
//!   objects; this harness signs its requests (curl `--aws-sigv4`).
//! - Parts other than the last must be at least 5 MiB, as on AWS (checked at completion).

use super::{free_port, peers::url_encode, poll, random_hex, send_signal, short_tempdir, tail};
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Region to configure: moto's default.
pub const REGION: &str = "us-east-1";
/// Access key id the harness signs with (moto accepts any).
pub const ACCESS_KEY_ID: &str = "steward-test-key";
/// Secret access key the harness signs with (moto accepts any).
pub const SECRET_ACCESS_KEY: &str = "steward-test-secret";

/// How long moto_server may take to answer after spawning (it starts in under a second when
/// idle; two cores and tests in parallel make it slower).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one request of the harness's own.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits (bounded) until steward's upload queue is empty and its last upload succeeded. A
/// backup is listed `local+remote` as soon as its local record is written, a moment before the
/// upload actor takes it off the queue and counts it: a test asserting on the queue waits here.
pub fn wait_uploads_settled(st: &super::Steward, timeout: Duration) {
    st.wait_until(timeout, "the upload queue to empty", |st| {
        st.metric("steward_backup_upload_queue", &[]) == Some(0.0)
            && st.metric("steward_backup_upload_consecutive_failures", &[]) == Some(0.0)
    });
}

/// A fresh, valid bucket name (lowercase, 29 characters): `steward-test-<16 hex digits>`.
pub fn unique_bucket() -> String {
    format!("steward-test-{}", random_hex(8))
}

/// The `moto_server` to run: the one on PATH, else the one `tests/run.sh` installs into its
/// virtual environment (so that `cargo test` works after a first `tests/run.sh` without
/// changing PATH).
fn moto_server_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("moto_server"))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        return p;
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(p) = cache.map(|c| c.join("steward-tests/moto-venv/bin/moto_server")) {
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "moto_server not found on PATH nor in the virtual environment tests/run.sh makes; run \
         tests/run.sh, or `python3 -m pip install 'moto[server]'`"
    );
}

/// A throwaway moto S3 server on 127.0.0.1; killed on drop.
pub struct S3Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    paused: bool,
    /// Extra environment for moto_server (e.g. `INITIAL_NO_AUTH_ACTION_COUNT=0`, which makes
    /// it refuse every key it did not issue: InvalidAccessKeyId).
    env: Vec<(String, String)>,
}

impl S3Server {
    /// Starts moto_server on a free port and waits until it answers.
    pub fn start() -> S3Server {
        Self::start_with_env(&[])
    }

    /// [`S3Server::start`] with extra environment variables for moto_server.
    pub fn start_with_env(env: &[(&str, &str)]) -> S3Server {
        let mut s = S3Server {
            dir: short_tempdir("stw-s3-"),
            bin: moto_server_bin(),
            child: None,
            port: free_port(),
            paused: false,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        // Another test may take the picked port before moto binds it: pick another.
        for attempt in 1.. {
            match s.try_spawn() {
                Ok(()) => return s,
                Err(e) if attempt < 4 && e.contains("in use") => s.port = free_port(),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    /// `[backup]` in `dir` (schedules off) and `[backup.remote]` pointing at `bucket` on this
    /// server under the prefix `prod` (path style, retries after 1 s), plus `extra` remote keys.
    pub fn backup_config(&self, dir: &std::path::Path, bucket: &str, extra: &str) -> String {
        use super::faults::{backup_section, toml_string};
        format!(
            "{}\n[backup.remote]\nurl = {}\nendpoint = {}\nregion = {}\npath_style = true\nretry_interval = \"1s\"\n{extra}\n",
            backup_section(dir, ""),
            toml_string(&format!("s3://{bucket}/prod")),
            toml_string(&self.endpoint()),
            toml_string(REGION),
        )
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's pid (while running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("moto_server is running").id()
    }

    /// moto_server's output so far (one line per request), across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    /// Spawns moto_server on `self.port`; Ok once it answers, Err (with the log's tail) if it
    /// exits or does not answer in time. A failed server is killed and reaped.
    fn try_spawn(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            // Python buffers a redirected stdout: the log's tail would miss the last lines.
            .env("PYTHONUNBUFFERED", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.paused = false;
        let mut exited = None;
        let ready = poll(READY_TIMEOUT, || {
            exited = self.child.as_mut().unwrap().try_wait().unwrap();
            exited.is_some()
                // Any answer: with credentials enforced, moto refuses the harness's key.
                || self
                    .request("GET", "/", None, Duration::from_secs(2))
                    .is_ok()
        });
        if ready && exited.is_none() {
            return Ok(());
        }
        self.kill();
        let why = match exited {
            Some(st) => format!("exited ({st})"),
            None => format!("did not answer within {READY_TIMEOUT:?}"),
        };
        Err(format!(
            "moto_server on port {} {why}\n--- log\n{}",
            self.port,
            tail(&self.log(), 30)
        ))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGKILL ends a SIGSTOPped process too.
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    /// Kills the server (connections are refused from now on); the port is kept for
    /// [`S3Server::start_again`].
    pub fn stop(&mut self) {
        assert!(self.child.is_some(), "moto_server is not running");
        self.kill();
    }

    /// Starts the server again on the same port (after [`S3Server::stop`], or killing a running
    /// one first). moto keeps its state in memory only: the server comes back **empty**; use
    /// [`S3Server::pause`] for an outage that keeps buckets and objects.
    pub fn start_again(&mut self) {
        self.kill();
        if let Err(e) = self.try_spawn() {
            panic!("restart on the same port: {e}");
        }
    }

    /// Freezes the server (SIGSTOP) without losing its state. Connections are still accepted by
    /// the kernel, so clients time out instead of being refused.
    pub fn pause(&mut self) {
        assert!(!self.paused, "moto_server is already paused");
        send_signal(self.pid(), libc::SIGSTOP);
        self.paused = true;
    }

    /// Continues a paused server (SIGCONT); requests sent meanwhile are then served.
    pub fn resume(&mut self) {
        assert!(self.paused, "moto_server is not paused");
        send_signal(self.pid(), libc::SIGCONT);
        self.paused = false;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// One signed request with curl: `path_and_query` starts with `/` and is already
    /// percent-encoded; `body` goes as `application/octet-stream`. Returns the status and body,
    /// or Err when there is no HTTP answer within `timeout`: the message then says
    /// "connection refused" (stopped server) or "timed out" (paused server), with curl's own.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let url = format!("{}{path_and_query}", self.endpoint());
        let mut cmd = Command::new("curl");
        // -q first: no ~/.curlrc; --noproxy: no *_proxy variable may divert 127.0.0.1.
        cmd.args(["-q", "--silent", "--show-error", "--noproxy", "*"])
            .args(["--max-time", &format!("{:.3}", timeout.as_secs_f64())])
            .args(["--aws-sigv4", &format!("aws:amz:{REGION}:s3")])
            .args(["--user", &format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}")])
            .args(["-X", method, "--write-out", "%{http_code}", "--output", "-"]);
        if body.is_some() {
            // Without a content type curl says form-urlencoded, and moto (Flask) then parses
            // the body as a form and stores nothing. No `Expect: 100-continue` wait either.
            cmd.args([
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                "Expect:",
            ])
            .args(["--data-binary", "@-"]);
        }
        cmd.arg(&url)
            .stdin(if body.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn curl: {e}"))?;
        let writer = match (body, child.stdin.take()) {
            (Some(b), Some(mut stdin)) => {
                let b = b.to_vec();
                Some(std::thread::spawn(move || {
                    let _ = stdin.write_all(&b);
                }))
            }
            _ => None,
        };
        let out = child.wait_with_output().map_err(|e| format!("curl: {e}"))?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        if !out.status.success() {
            let what = match out.status.code() {
                Some(7) => "connection refused",
                Some(28) => "timed out",
                _ => "failed",
            };
            return Err(format!(
                "{method} {url}: {what} ({}: {})",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // The body, then the three digits of --write-out.
        let mut stdout = out.stdout;
        let split = stdout
            .len()
            .checked_sub(3)
            .ok_or("curl printed no status")?;
        let code = String::from_utf8_lossy(&stdout[split..]).into_owned();
        stdout.truncate(split);
        let code = code
            .parse()
            .map_err(|_| format!("{method} {url}: curl printed status {code:?}"))?;
        Ok((code, stdout))
    }

    /// [`S3Server::request`] bounded by the harness's timeout, panicking unless the status is
    /// one of `ok`.
    fn call(&self, method: &str, path_and_query: &str, body: Option<&[u8]>, ok: &[u16]) -> Vec<u8> {
        let (code, resp) = self
            .request(method, path_and_query, body, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n--- moto log\n{}", tail(&self.log(), 20)));
        if !ok.contains(&code) {
            panic!(
                "{method} {path_and_query} → {code}: {}",
                String::from_utf8_lossy(&resp)
            );
        }
        resp
    }

    /// Creates a bucket (in [`REGION`]).
    pub fn create_bucket(&self, name: &str) {
        self.call("PUT", &format!("/{}", url_encode(name)), None, &[200]);
    }

    /// Every object under `prefix` in `bucket`, as (key, size), in key order (ListObjectsV2,
    /// all pages).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        self.keys_in_pages(bucket, prefix, 1000)
    }

    /// [`S3Server::keys`] asking for at most `max_keys` per page (to exercise paging).
    pub fn keys_in_pages(&self, bucket: &str, prefix: &str, max_keys: u32) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = format!(
                "/{}?list-type=2&max-keys={max_keys}&prefix={}",
                url_encode(bucket),
                url_encode(prefix)
            );
            if let Some(t) = &token {
                q += &format!("&continuation-token={}", url_encode(t));
            }
            let xml = String::from_utf8_lossy(&self.call("GET", &q, None, &[200])).into_owned();
            for item in elements(&xml, "Contents") {
                let key = element(item, "Key").unwrap_or_else(|| panic!("no Key in {item}"));
                let size = element(item, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no Size in {item}"));
                out.push((xml_unescape(key), size));
            }
            if element(&xml, "IsTruncated") != Some("true") {
                return out;
            }
            let next = element(&xml, "NextContinuationToken")
                .map(xml_unescape)
                .unwrap_or_else(|| panic!("truncated listing without a token: {xml}"));
            assert!(
                token.as_ref() != Some(&next),
                "listing does not advance: {xml}"
            );
            token = Some(next);
        }
    }

    /// An object's content; panics if it does not exist.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.call("GET", &object_path(bucket, key), None, &[200])
    }

    /// An object's content, or None if there is no such object.
    pub fn try_get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let path = object_path(bucket, key);
        let (code, body) = self
            .request("GET", &path, None, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}"));
        match code {
            200 => Some(body),
            404 => None,
            _ => panic!("GET {path} → {code}: {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Writes an object (PutObject).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.call("PUT", &object_path(bucket, key), Some(bytes), &[200]);
    }

    /// Deletes an object (succeeds when there is none, as S3 does).
    pub fn delete(&self, bucket: &str, key: &str) {
        self.call("DELETE", &object_path(bucket, key), None, &[204, 200]);
    }

    /// The multipart uploads in progress in `bucket`, as (key, upload id), sorted
    /// (ListMultipartUploads, all pages; moto lists them in the order they were started, AWS by
    /// key).
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut q = format!("/{}?uploads", url_encode(bucket));
            if let Some((k, u)) = &markers {
                q += &format!(
                    "&key-marker={}&upload-id-marker={}",
                    url_encode(k),
                    url_encode(u)
                );
            }
            let xml = String::from_utf8_lossy(&self.call("GET", &q, None, &[200])).into_owned();
            for item in elements(&xml, "Upload") {
                let key = element(item, "Key").unwrap_or_else(|| panic!("no Key in {item}"));
                let id =
                    element(item, "UploadId").unwrap_or_else(|| panic!("no UploadId in {item}"));
                out.push((xml_unescape(key), xml_unescape(id)));
            }
            if element(&xml, "IsTruncated") != Some("true") {
                out.sort();
                return out;
            }
            let next = element(&xml, "NextKeyMarker")
                .zip(element(&xml, "NextUploadIdMarker"))
                .map(|(k, u)| (xml_unescape(k), xml_unescape(u)))
                .unwrap_or_else(|| panic!("truncated listing without markers: {xml}"));
            assert!(
                markers.as_ref() != Some(&next),
                "listing does not advance: {xml}"
            );
            markers = Some(next);
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- moto_server log\n{}", tail(&self.log(), 40));
        }
    }
}

/// `/bucket/key` with the key percent-encoded segment by segment (its slashes kept).
fn object_path(bucket: &str, key: &str) -> String {
    let key: Vec<String> = key.split('/').map(url_encode).collect();
    format!("/{}/{}", url_encode(bucket), key.join("/"))
}

/// The text inside the first `<name>…</name>` of `xml` (no attributes, no nesting of the same
/// name: enough for S3's listings).
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    elements(xml, name).next()
}

/// The text inside each `<name>…</name>` of `xml`, in order.
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let inner = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(inner)
    })
}

/// Replaces XML's five named entities and numeric character references.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(|d| d.parse()))
                .and_then(|n| n.ok())
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
