//! Who may use the control socket: the peer's kernel-reported credentials (`SO_PEERCRED` and
//! its supplementary groups, `SO_PEERGROUPS`) against `[control]` allow and admin lists.

use super::protocol::Access;
use crate::audit::PeerId;
use crate::config::ControlConfig;
use std::os::fd::AsRawFd;
use tokio::net::UnixStream;

/// The connecting process, with every group it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// Supplementary groups, as the kernel recorded them when the client connected.
    pub groups: Vec<u32>,
}

impl Peer {
    /// Reads the credentials the kernel recorded for the other end of `stream`.
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let groups = peer_groups(stream.as_raw_fd())
            .or_else(|_| proc_groups(cred.pid()))
            .unwrap_or_default();
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid(),
            groups,
        })
    }

    /// The identity written to the audit log.
    pub fn id(&self) -> PeerId {
        PeerId {
            uid: self.uid,
            gid: self.gid,
            pid: self.pid,
        }
    }

    fn in_any(&self, gids: &[u32]) -> bool {
        gids.contains(&self.gid) || self.groups.iter().any(|g| gids.contains(g))
    }
}

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Nothing,
    Read,
    Admin,
}

impl Level {
    /// Whether this level covers a request needing `need`.
    pub fn allows(self, need: Access) -> bool {
        match need {
            Access::Read => self >= Level::Read,
            Access::Admin => self == Level::Admin,
        }
    }
}

/// The effective allow lists: unset uid lists mean root and steward's own user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    allow_uids: Vec<u32>,
    allow_gids: Vec<u32>,
    admin_uids: Vec<u32>,
    admin_gids: Vec<u32>,
}

impl Policy {
    /// The lists of `cfg`, with the defaults filled in for a daemon running as `own_uid`.
    pub fn new(cfg: &ControlConfig, own_uid: u32) -> Policy {
        let default = || {
            let mut v = vec![0, own_uid];
            v.dedup();
            v
        };
        Policy {
            allow_uids: cfg.allow_uids.clone().unwrap_or_else(default),
            allow_gids: cfg.allow_gids.clone(),
            admin_uids: cfg.admin_uids.clone().unwrap_or_else(default),
            admin_gids: cfg.admin_gids.clone(),
        }
    }

    /// The policy of `cfg` for this process.
    pub fn current(cfg: &ControlConfig) -> Policy {
        // SAFETY: geteuid has no preconditions and cannot fail.
        Policy::new(cfg, unsafe { libc::geteuid() })
    }

    /// What `peer` may do; admins may also read.
    pub fn level(&self, peer: &Peer) -> Level {
        if self.admin_uids.contains(&peer.uid) || peer.in_any(&self.admin_gids) {
            Level::Admin
        } else if self.allow_uids.contains(&peer.uid) || peer.in_any(&self.allow_gids) {
            Level::Read
        } else {
            Level::Nothing
        }
    }
}

/// The reply to a peer allowed nothing.
pub fn refused_message(peer: &Peer) -> String {
    format!(
        "access denied: uid {} (gid {}) may not use this steward's control socket; to allow it, \
         add the uid to [control] allow_uids (read-only commands) or admin_uids (every \
         command), or one of its groups to allow_gids or admin_gids, then reload",
        peer.uid, peer.gid
    )
}

/// The reply to a reader sending an admin command.
pub fn not_admin_message(peer: &Peer, command: &str) -> String {
    format!(
        "access denied: {command:?} changes state and needs admin rights, which uid {} (gid {}) \
         does not have; add the uid to [control] admin_uids or one of its groups to admin_gids \
         (control.admin_uids / control.admin_gids), then reload",
        peer.uid, peer.gid
    )
}

/// `SO_PEERGROUPS` (Linux 4.13+): the peer's supplementary groups at connect time.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "x86"))]
fn peer_groups(fd: std::os::fd::RawFd) -> std::io::Result<Vec<u32>> {
    const SO_PEERGROUPS: libc::c_int = 59;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is valid for `len` bytes; the kernel writes at most `len` bytes and
        // sets `len` to what it wrote (or, with ERANGE, to what it needs).
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() && n <= 65536 {
            groups.resize(n, 0);
            continue;
        }
        return Err(err);
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "x86")))]
fn peer_groups(_fd: std::os::fd::RawFd) -> std::io::Result<Vec<u32>> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Fallback for kernels without `SO_PEERGROUPS`: the `Groups:` line of `/proc/PID/status`.
fn proc_groups(pid: Option<i32>) -> std::io::Result<Vec<u32>> {
    let pid = pid.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            pid: None,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn defaults_let_in_root_and_the_daemon_user_only() {
        let p = Policy::new(&ControlConfig::default(), 1000);
        assert_eq!(p.level(&peer(0, 0, &[])), Level::Admin);
        assert_eq!(p.level(&peer(1000, 1000, &[])), Level::Admin);
        assert_eq!(p.level(&peer(1001, 1000, &[0])), Level::Nothing);
    }

    #[test]
    fn readers_and_admins_by_uid_or_any_group() {
        let cfg = ControlConfig {
            allow_uids: Some(vec![2000]),
            allow_gids: vec![3000],
            admin_uids: Some(vec![0]),
            admin_gids: vec![4000],
            ..ControlConfig::default()
        };
        let p = Policy::new(&cfg, 1000);
        assert_eq!(
            p.level(&peer(1000, 1000, &[])),
            Level::Nothing,
            "lists replace defaults"
        );
        assert_eq!(p.level(&peer(2000, 2000, &[])), Level::Read);
        assert_eq!(p.level(&peer(5000, 3000, &[])), Level::Read);
        assert_eq!(p.level(&peer(5000, 5000, &[7, 3000])), Level::Read);
        assert_eq!(p.level(&peer(2000, 5000, &[4000])), Level::Admin);
        assert!(Level::Admin.allows(Access::Read));
        assert!(!Level::Read.allows(Access::Admin));
        assert!(!Level::Nothing.allows(Access::Read));
    }

    #[tokio::test]
    async fn credentials_of_a_real_connection() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = Peer::of(&a).unwrap();
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!((p.uid, p.gid), (uid, gid));
        assert_eq!(p.pid, Some(std::process::id() as i32));
        let mine = proc_groups(p.pid).unwrap();
        let mut got = p.groups.clone();
        got.sort();
        let mut want = mine;
        want.sort();
        assert_eq!(got, want, "SO_PEERGROUPS agrees with /proc");
    }
}
