//! Fault injection, control socket: a thousand clients at once, request lines of 10 MB, and
//! clients that connect and go quiet (or stall half-way through a line). Every client gets an
//! answer or a clean refusal within a bound, the daemon keeps serving the others throughout,
//! and silent connections are closed at their deadline (`[control] first_request_timeout`,
//! 5 s by default).

mod common;

use common::faults::*;
use common::*;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// The longest a client may wait for its answer (or refusal).
const ANSWER: Duration = Duration::from_secs(30);
/// The daemon's deadline for a silent client (5 s), plus generous slack.
const IDLE_BOUND: Duration = Duration::from_secs(5 + 40);

/// Makes sure this process (and the daemon it starts) may open `n` files.
fn raise_fd_limit(n: u64) {
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    if r.rlim_cur < n {
        r.rlim_cur = n.min(r.rlim_max);
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
    }
}

/// How one client fared.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy, PartialOrd, Ord)]
enum Outcome {
    Answered,
    /// An error reply, or the connection refused or closed: a clean refusal.
    Refused,
    /// No answer within the bound.
    Hung,
}

fn one_status(path: &Path) -> Outcome {
    let Ok(s) = UnixStream::connect(path) else {
        return Outcome::Refused;
    };
    s.set_read_timeout(Some(ANSWER)).unwrap();
    s.set_write_timeout(Some(ANSWER)).unwrap();
    if (&s).write_all(b"{\"cmd\":\"status\"}\n").is_err() {
        return Outcome::Refused;
    }
    let mut line = String::new();
    match BufReader::new(&s).read_line(&mut line) {
        Ok(0) => Outcome::Refused,
        Ok(_) => match serde_json::from_str::<Reply>(line.trim()) {
            Ok(r) if r.ok => Outcome::Answered,
            Ok(_) => Outcome::Refused,
            Err(e) => panic!("a reply that is not JSON ({e}): {line:?}"),
        },
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Outcome::Hung,
        Err(_) => Outcome::Refused,
    }
}

/// Status, through the client, the way an operator would ask while the faults go on.
fn assert_serves_others(st: &Steward) {
    let out = st.ctl(&["status"]);
    // Answered; the services of these tests may be down, which makes `status` exit 1.
    assert!(out.reply().ok, "{out:?}");
    let _: StatusReply = serde_json::from_value(out.reply().data).unwrap();
}

#[test]
fn a_thousand_concurrent_clients() {
    const N: usize = 1000;
    raise_fd_limit(4 * N as u64);
    let st = Steward::builder_without_services().start();
    let path = st.socket().to_path_buf();
    let barrier = Arc::new(Barrier::new(N));
    let t = Instant::now();
    let clients: Vec<_> = (0..N)
        .map(|_| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                one_status(&path)
            })
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for c in clients {
        *counts.entry(c.join().unwrap()).or_insert(0) += 1;
    }
    eprintln!("{N} clients in {:?}: {counts:?}", t.elapsed());
    assert_eq!(
        counts.get(&Outcome::Hung),
        None,
        "clients left hanging: {counts:?}"
    );
    assert!(
        counts.get(&Outcome::Answered).copied().unwrap_or(0) > 0,
        "nobody was answered: {counts:?}"
    );
    assert_serves_others(&st);
    assert_nothing_lost(&st, &st.dir().join("backups"));
}

#[test]
fn oversized_request_lines() {
    // `big` takes its time over its first line: keep the first-request deadline out of the way.
    let st = Steward::builder_without_services()
        .with(|s| s.control_extra = "first_request_timeout = \"1h\"\n".into())
        .start();
    let ten_mb = vec![b'x'; 10 * 1024 * 1024];

    // A 10 MB line, then a good request on the same connection: an error, then the answer;
    // others are served while the big line streams in.
    let mut big = st.connect();
    let sender = {
        let mut w = UnixStream::connect(st.socket()).unwrap();
        w.set_write_timeout(Some(ANSWER)).unwrap();
        let data = ten_mb.clone();
        std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.write_all(b"\n{\"cmd\":\"status\"}\n").unwrap();
            let mut r = BufReader::new(w);
            let mut first = String::new();
            let mut second = String::new();
            r.read_line(&mut first).unwrap();
            r.read_line(&mut second).unwrap();
            (first, second)
        })
    };
    assert_serves_others(&st);
    let (first, second) = sender.join().unwrap();
    let first: Reply = serde_json::from_str(first.trim()).unwrap();
    assert!(!first.ok, "{first:?}");
    let e = first.error.unwrap_or_default();
    assert!(e.contains("request line longer than"), "{e}");
    let second: Reply = serde_json::from_str(second.trim()).unwrap();
    assert!(
        second.ok,
        "the connection carries on after the long line: {second:?}"
    );

    // A 10 MB line without a newline, then the end of input: an error reply, then the close.
    big.send_raw(&ten_mb).unwrap();
    let mut raw = UnixStream::connect(st.socket()).unwrap();
    raw.set_read_timeout(Some(ANSWER)).unwrap();
    raw.write_all(&ten_mb).unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    raw.read_to_string(&mut rest).unwrap();
    let r: Reply = serde_json::from_str(rest.lines().next().unwrap_or("")).unwrap();
    assert!(!r.ok && r.error.unwrap_or_default().contains("longer than"));
    assert_eq!(rest.lines().count(), 1, "{rest:?}");

    // The connection still in the middle of its 10 MB line does not hold anyone up.
    assert_serves_others(&st);
    big.send_raw(b"\n{\"cmd\":\"info\"}\n").unwrap();
    let r: Reply = serde_json::from_str(big.read_line().unwrap().trim()).unwrap();
    assert!(!r.ok, "{r:?}");
    let r: Reply = serde_json::from_str(big.read_line().unwrap().trim()).unwrap();
    assert!(r.ok, "{r:?}");
    assert_nothing_lost(&st, &st.dir().join("backups"));
}

/// Waits for the daemon to close `s` (EOF or reset) within the idle bound.
fn wait_closed(s: &mut UnixStream, started: Instant) {
    let left = IDLE_BOUND
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(10));
    s.set_read_timeout(Some(left)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "a silent client got {:?} instead of being closed",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!(
            "a silent client was not closed within {IDLE_BOUND:?} ({e}; {:?} since it connected)",
            started.elapsed()
        ),
    }
}

/// True while the daemon keeps `s` open (nothing to read, no EOF).
fn still_open(s: &UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!((&*s).read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

#[test]
fn half_open_connections() {
    const EACH: usize = 50;
    let st = Steward::builder_without_services().start();
    let started = Instant::now();
    let mut silent: Vec<UnixStream> = (0..EACH)
        .map(|_| UnixStream::connect(st.socket()).unwrap())
        .collect();
    let mut stalled: Vec<UnixStream> = (0..EACH)
        .map(|_| {
            let mut s = UnixStream::connect(st.socket()).unwrap();
            s.write_all(b"{\"cmd\":\"sta").unwrap();
            s
        })
        .collect();

    // Others are served while a hundred connections sit there.
    for _ in 0..5 {
        assert_serves_others(&st);
    }
    // Only checked well inside the 5 s deadline, so a slow machine cannot fail it.
    if started.elapsed() < Duration::from_secs(3) {
        assert!(
            silent.iter().chain(&stalled).all(still_open),
            "closed before the deadline"
        );
    }

    for s in silent.iter_mut().chain(stalled.iter_mut()) {
        wait_closed(s, started);
    }
    eprintln!(
        "{} silent connections closed after {:?}",
        2 * EACH,
        started.elapsed()
    );
    assert_serves_others(&st);
    assert_nothing_lost(&st, &st.dir().join("backups"));
}
