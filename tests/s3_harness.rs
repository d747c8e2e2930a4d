//! The S3 test peer itself (tests/common/s3.rs, a real moto_server): what the backup tests
//! rely on it for must hold before they can mean anything.
//! - objects round-trip byte for byte under awkward keys, listings are complete across pages
//!   and carry the sizes, deletes delete, multipart uploads in progress are listed;
//! - `pause` makes a request time out (not be refused) and `resume` serves it with the state
//!   intact; `stop` refuses connections and `start_again` comes back on the same endpoint,
//!   empty.

mod common;

use common::s3::{unique_bucket, S3Server};
use std::time::{Duration, Instant};

/// Extracts `<UploadId>` from an InitiateMultipartUpload reply.
fn upload_id(reply: &[u8]) -> String {
    let xml = String::from_utf8_lossy(reply);
    let start = xml.find("<UploadId>").expect("UploadId in reply") + "<UploadId>".len();
    let len = xml[start..].find("</UploadId>").expect("</UploadId>");
    xml[start..start + len].to_string()
}

#[test]
fn objects_listings_deletes_and_multipart_uploads() {
    let a = unique_bucket();
    let b = unique_bucket();
    assert_ne!(a, b);
    for name in [&a, &b] {
        assert!((3..=63).contains(&name.len()), "{name}");
        assert!(
            name.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
            "{name}"
        );
    }

    let s3 = S3Server::start();
    assert_eq!(s3.endpoint(), format!("http://127.0.0.1:{}", s3.port()));
    s3.create_bucket(&a);
    s3.create_bucket(&b);

    // Every byte value; something over curl's 1 MB `Expect: 100-continue` threshold; nothing;
    // a body that looks like a form (moto would parse it as one without a content type).
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let objects: Vec<(&str, Vec<u8>)> = vec![
        ("backups/db1/all-bytes.bin", all_bytes),
        ("backups/db1/big.dump", big),
        ("backups/db1/empty", Vec::new()),
        ("backups/db2/a b+c&d<e>%.txt", b"a=b&c=d".to_vec()),
        ("other/x", b"x".to_vec()),
    ];
    for (key, data) in &objects {
        s3.put(&a, key, data);
    }
    s3.put(&b, "backups/db1/elsewhere", b"not in a");

    let mut expected: Vec<(String, u64)> = objects
        .iter()
        .filter(|(k, _)| k.starts_with("backups/"))
        .map(|(k, d)| (k.to_string(), d.len() as u64))
        .collect();
    expected.sort();
    assert_eq!(s3.keys(&a, "backups/"), expected);
    assert_eq!(
        s3.keys_in_pages(&a, "backups/", 1),
        expected,
        "one key per page"
    );
    assert_eq!(s3.keys(&a, "").len(), objects.len());
    assert_eq!(s3.keys(&a, "nothing/"), vec![]);
    assert_eq!(
        s3.keys(&b, ""),
        vec![("backups/db1/elsewhere".to_string(), 8)]
    );

    for (key, data) in &objects {
        assert!(s3.get(&a, key) == *data, "content of {key}");
    }
    // Overwriting replaces.
    s3.put(&a, "other/x", b"second");
    assert_eq!(s3.get(&a, "other/x"), b"second");

    s3.delete(&a, "backups/db2/a b+c&d<e>%.txt");
    s3.delete(&a, "backups/db2/a b+c&d<e>%.txt");
    assert_eq!(s3.try_get(&a, "backups/db2/a b+c&d<e>%.txt"), None);
    assert_eq!(s3.try_get(&a, "other/x").as_deref(), Some(&b"second"[..]));
    expected.retain(|(k, _)| !k.starts_with("backups/db2/"));
    assert_eq!(s3.keys(&a, "backups/"), expected);

    // Multipart uploads in progress: none, then the two started here, then the one not aborted.
    assert_eq!(s3.multipart_uploads(&a), vec![]);
    let timeout = Duration::from_secs(30);
    let mut started = Vec::new();
    for key in ["backups/db3/part&ial.dump", "backups/db1/big.dump"] {
        let (code, reply) = s3
            .request("POST", &format!("/{a}/{key}?uploads"), None, timeout)
            .unwrap();
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&reply));
        started.push((key.to_string(), upload_id(&reply)));
    }
    started.sort();
    assert_eq!(s3.multipart_uploads(&a), started);
    assert_eq!(s3.multipart_uploads(&b), vec![]);
    let (key, id) = &started[0];
    let (code, _) = s3
        .request(
            "DELETE",
            &format!("/{a}/{key}?uploadId={id}"),
            None,
            timeout,
        )
        .unwrap();
    assert_eq!(code, 204);
    assert_eq!(s3.multipart_uploads(&a), started[1..].to_vec());
    // An upload in progress is no object.
    assert_eq!(s3.keys(&a, "backups/db3/"), vec![]);
}

#[test]
fn pause_keeps_state_and_restart_loses_it() {
    let mut s3 = S3Server::start();
    let bucket = unique_bucket();
    s3.create_bucket(&bucket);
    s3.put(&bucket, "k", b"kept");
    let endpoint = s3.endpoint();

    // Paused: the connection is accepted, the request gets no answer, and times out.
    s3.pause();
    assert!(s3.is_paused());
    let t0 = Instant::now();
    let err = s3
        .request("GET", &format!("/{bucket}/k"), None, Duration::from_secs(1))
        .expect_err("a paused server answered");
    assert!(err.contains("timed out"), "not a timeout: {err}");
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "gave up early: {err}"
    );

    // Resumed: served, state intact.
    s3.resume();
    assert_eq!(s3.get(&bucket, "k"), b"kept");

    // Stopped: refused at once.
    s3.stop();
    let err = s3
        .request("GET", "/", None, Duration::from_secs(10))
        .expect_err("a stopped server answered");
    assert!(err.contains("connection refused"), "not refused: {err}");

    // Started again: same endpoint, nothing kept.
    s3.start_again();
    assert_eq!(s3.endpoint(), endpoint);
    let (code, body) = s3
        .request(
            "GET",
            &format!("/{bucket}/k"),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("NoSuchBucket"), "{body}");
    s3.create_bucket(&bucket);
    assert_eq!(s3.keys(&bucket, ""), vec![]);

    // Pausing works after a restart too (the new process is the one stopped).
    s3.pause();
    s3.resume();
    assert_eq!(s3.keys(&bucket, ""), vec![]);
}
