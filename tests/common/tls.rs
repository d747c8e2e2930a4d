//! TLS helpers for the tests: self-signed certificates made with the `openssl` CLI, the
//! fingerprint a server presents, and HTTPS requests through `curl --cacert`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Writes a fresh self-signed P-256 certificate for 127.0.0.1/localhost and its key (mode
/// 0600). Both are written under temporary names and renamed into place, as a certificate
/// renewal would do.
pub fn make_cert(cert: &Path, key: &Path) {
    let tmp_cert = cert.with_extension("new");
    let tmp_key = key.with_extension("new");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&tmp_key)
        .arg("-out")
        .arg(&tmp_cert)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl req");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp_key, key).unwrap();
    std::fs::rename(&tmp_cert, cert).unwrap();
}

/// The SHA-256 fingerprint of a PEM certificate file.
pub fn file_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl x509");
    assert!(out.status.success(), "openssl x509 -in {cert:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The SHA-256 fingerprint of the certificate served on 127.0.0.1:`port`, if a handshake
/// succeeds.
pub fn served_fingerprint(port: u16) -> Option<String> {
    let hello = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    use std::io::Write;
    x509.stdin.take()?.write_all(&hello.stdout).ok()?;
    let out = x509.wait_with_output().ok()?;
    let fp = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !fp.is_empty()).then_some(fp)
}

/// `curl --cacert CERT https://127.0.0.1:PORT/PATH` with optional basic-auth credentials:
/// (status, body), or curl's error text.
pub fn curl_https(
    port: u16,
    path: &str,
    cacert: &Path,
    auth: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time"])
        .arg(Duration::from_secs(10).as_secs().to_string())
        .arg("--cacert")
        .arg(cacert)
        .args(["-w", "\n%{http_code}"]);
    if let Some((u, p)) = auth {
        cmd.arg("-u").arg(format!("{u}:{p}"));
    }
    cmd.arg(format!("https://127.0.0.1:{port}{path}"));
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').ok_or("no status from curl")?;
    Ok((
        code.trim().parse().map_err(|_| "bad status")?,
        body.to_string(),
    ))
}
