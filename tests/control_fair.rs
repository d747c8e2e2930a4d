//! The control socket is fair (issue 12 item 7): a user who is not an admin holds at most
//! `[control] max_connections_per_uid` connections, the rest refused with a one-line reason,
//! so that a reader's flood of idle connections leaves root able to steer steward; and a
//! connection that sends no request (empty lines do not count) is closed at its deadline.
//! The flooding user's connections come from a thread that drops to `nobody`: the kernel
//! records the connecting thread's credentials, and raw `setres[ug]id` change only that
//! thread's (the tests run as root, like CI).

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;
/// Connections the reader opens.
const FLOOD: usize = 1100;
/// The default cap for a uid that is not an admin.
const CAP: usize = 32;
/// Generous bounds for things that take a moment on a loaded machine.
const BOUND: Duration = Duration::from_secs(60);

/// Makes sure this process may open `n` files.
fn raise_fd_limit(n: u64) {
    // SAFETY: `r` is valid for reading and writing; the calls have no other preconditions.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    if r.rlim_cur < n {
        r.rlim_cur = n.min(r.rlim_max);
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
    }
}

/// A daemon whose socket (mode 0660, group nogroup) `nobody` can open, readers `nobody`.
fn start(extra: &str) -> Steward {
    if !is_root() {
        panic!("these tests connect as another user and need root (CI runs as root)");
    }
    let b = Steward::builder_without_services().with(|s| {
        s.control_mode = "0660".into();
        s.control_extra =
            format!("group = \"nogroup\"\nallow_uids = [0, {NOBODY}]\nadmin_uids = [0]\n{extra}");
    });
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
    b.start()
}

/// Opens `n` connections to `path` as `uid:gid` without supplementary groups, from a thread
/// that changes its own credentials only (raw syscalls, not the libc wrappers that change
/// every thread's).
fn connect_as(path: &Path, uid: u32, gid: u32, n: usize) -> Vec<UnixStream> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: plain syscalls on this thread's credentials; the null list has length 0.
        unsafe {
            let none: *const libc::gid_t = std::ptr::null();
            assert_eq!(libc::syscall(libc::SYS_setgroups, 0, none), 0);
            assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        (0..n)
            .map(|i| UnixStream::connect(&path).unwrap_or_else(|e| panic!("connection {i}: {e}")))
            .collect()
    })
    .join()
    .unwrap()
}

/// Sends an empty line on every connection every 200 ms until dropped (as an idle client
/// keeping its connections "alive" would).
struct KeepAlive {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeepAlive {
    fn start(conns: Vec<UnixStream>) -> KeepAlive {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for mut c in &conns {
                    let _ = c.write(b"\n");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        KeepAlive {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a connection has received so far: its bytes, and whether it was closed.
#[derive(Default, Clone)]
struct Seen {
    bytes: Vec<u8>,
    closed: bool,
}

/// Reads whatever each connection has without waiting.
fn drain(conns: &[UnixStream], seen: &mut [Seen]) {
    let mut buf = [0u8; 4096];
    for (c, s) in conns.iter().zip(seen.iter_mut()) {
        while !s.closed {
            match (&*c).read(&mut buf) {
                Ok(0) => s.closed = true,
                Ok(n) => s.bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => s.closed = true,
            }
        }
    }
}

/// Runs `steward ARGS` as root in a thread; its output, or `None` if it took longer than
/// `BOUND` (the daemon did not answer).
fn ctl_within(st: &Steward, args: &[&str]) -> Option<CmdOutput> {
    let sock = st.socket().to_string_lossy().into_owned();
    let dir = st.dir().to_path_buf();
    let mut full: Vec<String> = vec!["--socket".into(), sock, "--json".into()];
    full.extend(args.iter().map(|a| a.to_string()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        let _ = tx.send(steward_cmd(&args, &dir, &[]));
    });
    rx.recv_timeout(BOUND).ok()
}

#[test]
fn a_reader_flood_is_capped_and_root_is_still_answered() {
    raise_fd_limit(4 * FLOOD as u64);
    // Deadlines far away: here only the cap may close or refuse anything.
    let st = start("first_request_timeout = \"30m\"\nidle_timeout = \"30m\"\n");
    let conns = connect_as(st.socket(), NOBODY, NOBODY, FLOOD);
    for c in &conns {
        c.set_nonblocking(true).unwrap();
    }
    let readers: Vec<UnixStream> = conns.iter().map(|c| c.try_clone().unwrap()).collect();
    let _alive = KeepAlive::start(conns);

    // Every connection past the cap gets its one-line reason and is closed.
    let mut seen = vec![Seen::default(); FLOOD];
    let refused = |seen: &[Seen]| {
        seen.iter()
            .filter(|s| s.closed && !s.bytes.is_empty())
            .count()
    };
    let ok = poll(BOUND, || {
        drain(&readers, &mut seen);
        refused(&seen) >= FLOOD - CAP
    });
    assert!(
        ok,
        "{} of {FLOOD} connections refused within {BOUND:?}; expected {}\n--- log\n{}",
        refused(&seen),
        FLOOD - CAP,
        tail(&st.log(), 30)
    );
    for s in seen.iter().filter(|s| !s.bytes.is_empty()) {
        let text = String::from_utf8_lossy(&s.bytes);
        assert_eq!(text.lines().count(), 1, "one line: {text:?}");
        let r: Reply = serde_json::from_str(text.trim()).unwrap();
        let e = r.error.unwrap_or_default();
        assert!(!r.ok, "{text}");
        assert!(
            e.contains("too many connections from uid 65534")
                && e.contains("max_connections_per_uid = 32"),
            "{e}"
        );
    }

    // While the flood holds its connections, root's admin command is answered.
    let out = ctl_within(&st, &["maintenance", "on", "--reason", "flood"]).unwrap_or_else(|| {
        panic!(
            "root got no answer within {BOUND:?} while a reader flooded the socket\n--- log\n{}",
            tail(&st.log(), 30)
        )
    });
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(ctl_within(&st, &["maintenance", "off"]).unwrap().code, 0);

    // The reader keeps exactly its cap, all still open and unanswered.
    drain(&readers, &mut seen);
    let held = seen.iter().filter(|s| !s.closed).count();
    assert_eq!(held, CAP, "connections held by the reader");
    assert!(seen
        .iter()
        .filter(|s| !s.closed)
        .all(|s| s.bytes.is_empty()));

    // A thousand refusals leave a few lines in the audit log and the daemon log, not one each.
    let denied = audit_check::lines(&st.settings.audit_path)
        .into_iter()
        .filter(|l| l["outcome"] == "denied" && l["peer"]["uid"] == NOBODY)
        .count();
    assert!((1..=40).contains(&denied), "{denied} audit lines");
    let logged = st.log().matches("control connections refused").count();
    assert!(
        (1..FLOOD / 10).contains(&logged),
        "{logged} log lines for {} refusals",
        FLOOD - CAP
    );
}

#[test]
fn a_reader_gets_its_slots_back_when_its_connections_end() {
    let st = start("max_connections_per_uid = 2\n");
    let first = connect_as(st.socket(), NOBODY, NOBODY, 3);
    let mut third = String::new();
    (&first[2]).read_to_string(&mut third).unwrap();
    assert!(third.contains("max_connections_per_uid = 2"), "{third}");
    drop(first);
    // The two held slots come free once the daemon sees them closed.
    st.wait_until(BOUND, "the reader's slots to come free", |st| {
        let c = connect_as(st.socket(), NOBODY, NOBODY, 2);
        c.iter().all(|mut c| {
            c.write_all(b"{\"cmd\":\"status\"}\n").is_ok() && {
                let mut line = String::new();
                let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(c), &mut line);
                serde_json::from_str::<Reply>(line.trim()).is_ok_and(|r| r.ok)
            }
        })
    });
}

/// Waits (bounded) for the daemon to close `s`; fails if it answers instead.
fn closed_within(mut s: &UnixStream, what: &str) {
    s.set_read_timeout(Some(BOUND)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!(
            "{what}: got {:?} instead of being closed",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => panic!("{what}: not closed within {BOUND:?} ({e})"),
    }
}

/// Reads one line, byte by byte (nothing past it is consumed).
fn read_reply(mut s: &UnixStream) -> String {
    s.set_read_timeout(Some(BOUND)).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn connections_without_a_request_are_closed_at_their_deadline() {
    let st = Steward::builder_without_services()
        .with(|s| {
            s.control_extra = "first_request_timeout = \"1s\"\nidle_timeout = \"2s\"\n".into()
        })
        .start();
    let silent = UnixStream::connect(st.socket()).unwrap();
    // Empty lines are not requests: they do not keep a connection open.
    let blank = UnixStream::connect(st.socket()).unwrap();
    let blank_alive = KeepAlive::start(vec![blank.try_clone().unwrap()]);
    // After a request, the idle deadline holds the same way.
    let mut used = UnixStream::connect(st.socket()).unwrap();
    used.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let reply = read_reply(&used);
    assert!(serde_json::from_str::<Reply>(&reply).unwrap().ok, "{reply}");
    let used_alive = KeepAlive::start(vec![used.try_clone().unwrap()]);

    let started = Instant::now();
    closed_within(&silent, "a silent connection");
    closed_within(&blank, "a connection sending only empty lines");
    closed_within(
        &used,
        "a connection idle after its request, sending empty lines",
    );
    eprintln!("closed after {:?}", started.elapsed());
    drop((blank_alive, used_alive));

    // A client that sends its request straight away, as `steward` does, is served.
    assert!(st.ctl(&["status"]).reply().ok, "the daemon still answers");
}
