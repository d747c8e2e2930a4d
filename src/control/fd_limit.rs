//! The process' open-file limit (`RLIMIT_NOFILE`): raised to its hard limit when the socket is
//! bound, so that the connection caps, not running out of files, decide who is refused.

/// The soft limit now, if it can be read.
pub fn current() -> Option<libc::rlim_t> {
    read().map(|r| r.rlim_cur)
}

/// Raises the soft limit to the hard limit, if it is lower; says how it went in the log.
pub fn raise() {
    let Some(mut r) = read() else { return };
    if r.rlim_cur >= r.rlim_max {
        return;
    }
    let before = r.rlim_cur;
    r.rlim_cur = r.rlim_max;
    // SAFETY: `r` is a valid rlimit; setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
        tracing::debug!(from = before, to = r.rlim_max, "raised the open-file limit");
    } else {
        let e = std::io::Error::last_os_error();
        tracing::warn!(error = %e, limit = before, "cannot raise the open-file limit");
    }
}

fn read() -> Option<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is valid for writing; getrlimit only writes it.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        raise();
        let r = read().unwrap();
        assert_eq!(r.rlim_cur, r.rlim_max);
        assert_eq!(current(), Some(r.rlim_cur));
    }
}
