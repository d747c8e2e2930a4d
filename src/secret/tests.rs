//! Unit tests of the redaction and scrubbing in `secret`: tables of inputs and what must show.

use super::*;

#[test]
fn age_secret_keys_are_masked_wherever_they_appear() {
    let key = "AGE-SECRET-KEY-1QQPQQQSQQQQZQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSQ2KJY6N";
    let text = format!(
        "recipients = [\"{key}\"] is not an age public key; {}",
        key.to_lowercase()
    );
    let out = scrub_urls(&text);
    assert!(
        !out.contains("QQPQ") && !out.to_lowercase().contains("qqpq"),
        "{out}"
    );
    assert_eq!(out.matches("AGE-SECRET-KEY-***").count(), 1, "{out}");
    assert_eq!(out.matches("age-secret-key-***").count(), 1, "{out}");
    assert_eq!(scrub_urls("no key here"), "no key here");
    assert_eq!(mask_age_keys("AGE-SECRET-KEY-"), "AGE-SECRET-KEY-***");
}

#[test]
fn url_password_is_masked() {
    let u = SecretUrl::new("postgres://app:s3cr%40t@db.example:5432/app?sslmode=require");
    let r = u.redacted();
    assert!(!r.contains("s3cr"), "{r}");
    assert!(r.contains("app:***@db.example"), "{r}");
    assert_eq!(format!("{u:?}"), format!("{r:?}"));
    assert!(u.secrets().contains(&"s3cr@t".to_string()));
}

#[test]
fn query_password_is_masked() {
    let r = redact_conninfo("postgres://db/app?user=a&password=hunter2");
    assert!(!r.contains("hunter2"), "{r}");
}

#[test]
fn dsn_password_is_masked_quoted_or_not() {
    let r = redact_conninfo("host=db user=app password='a b\\'c' dbname=x");
    assert!(!r.contains("a b"), "{r}");
    assert!(r.contains("dbname=x"), "{r}");
    let r = redact_conninfo("host=db password=plain");
    assert_eq!(r, "host=db password=***");
    // As libpq reads it, and as written (a driver may echo the fragment).
    assert_eq!(
        SecretUrl::new("host=db password='a b\\'c'").secrets(),
        vec!["'a b\\'c'".to_string(), "a b'c".to_string()]
    );
}

#[test]
fn redis_url_without_user() {
    let u = SecretUrl::new("redis://:topsecret@127.0.0.1:6379/0");
    assert!(!u.redacted().contains("topsecret"));
    assert_eq!(u.secrets(), vec!["topsecret".to_string()]);
}

#[test]
fn unparseable_url_hides_everything() {
    let r = redact_conninfo("postgres://user:pw@[bad");
    assert_eq!(r, "postgres://***");
}

#[test]
fn scrubber_masks_literals_and_urls() {
    let s = Scrubber::new(vec!["pw123".into()]);
    let t = s.scrub("failed for postgres://u:other@h/db: auth pw123 password=zzz");
    assert!(
        !t.contains("pw123") && !t.contains("other") && !t.contains("zzz"),
        "{t}"
    );
}

/// The mistyped URLs of issue 12 (item 1): redacted form, and the password to hide.
const MISTYPED: &[(&str, &str, &str)] = &[
    (
        "postgres:/u:Sp3cPW@127.0.0.1/app",
        "postgres:/u:***@127.0.0.1/app",
        "Sp3cPW",
    ),
    ("postgres//u:pw@h", "postgres//u:***@h", "pw"),
    ("//u:pw@h/app", "//u:***@h/app", "pw"),
    ("u:pw@h/app", "u:***@h/app", "pw"),
    ("redis:/:pw@h", "redis:/:***@h", "pw"),
    ("redis//:pw@h", "redis//:***@h", "pw"),
    (":pw@h:6379/0", ":***@h:6379/0", "pw"),
];

#[test]
fn mistyped_urls_are_masked_and_their_password_scrubbed() {
    for (input, want, pw) in MISTYPED {
        let u = SecretUrl::new(*input);
        assert_eq!(&u.redacted(), want, "{input:?}");
        assert_eq!(&format!("{u}"), want);
        assert!(u.secrets().contains(&pw.to_string()), "{input:?}");
        // A driver error quoting the value, scrubbed with what the value yields.
        let said = format!("invalid connection string \"{input}\": no scheme");
        let out = Scrubber::new(u.secrets()).scrub(&said);
        assert!(out.contains(want), "{out}");
        // Free text alone (no known secrets) masks it by shape too.
        assert!(scrub_urls(&said).contains(want), "{}", scrub_urls(&said));
    }
    let u = SecretUrl::new("postgres:/u:Sp3cPW@127.0.0.1/app");
    let out = Scrubber::new(u.secrets()).scrub("auth failed with Sp3cPW");
    assert_eq!(out, "auth failed with ***");
}

#[test]
fn redaction_is_safe_for_any_input() {
    let cases = [
        ("host=db password=a://b@c", "a://b"),
        ("foo password=x9@h", "x9"),
        ("postgres:u:pw10@h", "pw10"),
        ("postgres:/u:pw11", "pw11"),
        ("postgres://u:pw12@[bad", "pw12"),
    ];
    for (input, pw) in cases {
        let r = redact_conninfo(input);
        assert!(!r.contains(pw), "{input:?} → {r:?}");
        assert!(
            SecretUrl::new(input)
                .secrets()
                .iter()
                .any(|s| s.contains(pw)),
            "{input:?}: {:?}",
            SecretUrl::new(input).secrets()
        );
    }
    assert_eq!(redact_conninfo(""), "");
    assert_eq!(redact_conninfo("localhost"), "localhost");
}

#[test]
fn dsn_escapes_are_read_as_libpq_reads_them() {
    let u = SecretUrl::new(r"host=db password=Sp3c\ TAIL dbname=x");
    assert_eq!(u.redacted(), "host=db password=*** dbname=x");
    assert!(u.secrets().contains(&"Sp3c TAIL".to_string()));
    assert!(u.secrets().contains(&r"Sp3c\ TAIL".to_string()));
    let u = SecretUrl::new("host = db password = 'x y' dbname = x");
    assert_eq!(u.redacted(), "host = db password = *** dbname = x");
    for text in [
        r"connection to host=db password=Sp3c\ TAIL failed",
        "connection to host=db password = 'x y' failed",
        "connection to host=db PASSWORD=\"x y\" failed",
    ] {
        let out = scrub_urls(text);
        assert!(
            !out.contains("TAIL") && !out.contains("x y") && !out.contains(" y"),
            "{text:?} → {out:?}"
        );
        assert!(out.ends_with("*** failed"), "{out}");
    }
}

/// Cases the properties in `props` found: masking by shape must not hide a known secret
/// from the literal masking, nor a literal the shape.
#[test]
fn one_masking_does_not_hide_what_another_finds() {
    let out = scrub_urls("bad value postgres:/://A0b@a here");
    assert!(!out.contains("A0b"), "{out}");
    let s = Scrubber::new(vec!["0!AA :A".into()]);
    let out = s.scrub("bad value postgres:/:0!AA :A@. here");
    assert!(!out.contains("0!AA"), "{out}");
    let s = Scrubber::new(vec!["ss".into()]);
    let out = s.scrub("auth with password=zz9 failed");
    assert_eq!(out, "auth with pa***word=*** failed");
}
