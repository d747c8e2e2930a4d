//! What steward keeps resident: once started, it hands the kernel back the pages of its program
//! and its libraries that only starting needed, so that its resident memory at idle is what
//! idling uses.
//!
//! Starting runs code that idling never runs again (command-line and config parsing, every
//! task's set-up, the dynamic loader's work). Those pages are clean copies of their files, yet
//! they stay mapped, and counted in steward's resident memory, for as long as it runs. So, for
//! each read-only segment of a loaded object (the executable and its libraries, as the dynamic
//! loader lists them) whose mappings hold no page of their own (no copy-on-write page in memory
//! or in swap, which a relocated or a debugger-patched page would be):
//! - `MADV_RANDOM`: a later fault reads less than a full read-ahead window (data only: the
//!   kernel reads ahead in code whatever the hint);
//! - `MADV_DONTNEED`: its pages leave steward's page tables, to be read back from the file at
//!   their next use, exactly as when the kernel reclaims them under memory pressure;
//! - `POSIX_FADV_DONTNEED` on the executable: the page cache drops its pages that no process
//!   maps any more, so that a later fault does not map their neighbours back (fault-around).
//!   The shared libraries' pages stay cached: other processes use them.
//!
//! It all happens inside `dl_iterate_phdr`, under the loader's lock, so that no library is
//! unloaded (and its addresses reused) between reading `/proc/self/smaps` and the hints. The
//! writable segments (relocated data, RELRO) are never touched, whatever smaps says of them.
//!
//! A page used again comes back at its next use, so idling converges to what it touches, at the
//! kernel's fault granularity (64 KiB, not 4 KiB). That is why a release build also places the
//! code idling runs side by side (src/link/build.rs). A hint the kernel refuses skips only that
//! mapping: correctness never depends on it.

use std::path::PathBuf;

/// How much was handed back, for one debug line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Mappings (of the executable and its libraries) the pages were dropped from.
    pub mappings: usize,
    /// Their resident size before, in bytes.
    pub bytes: u64,
    /// Mappings the kernel refused a hint for (kept resident).
    pub refused: usize,
}

/// Why nothing was handed back; never fatal (steward only stays larger).
#[derive(Debug, thiserror::Error)]
pub enum ResidencyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel refused a memory hint for {range} ({source})")]
    Advise {
        range: String,
        #[source]
        source: std::io::Error,
    },
}

/// A read-only mapping of a file, from `/proc/self/smaps`.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    path: PathBuf,
    /// Resident, in KiB.
    rss_kib: u64,
    /// Pages of its own (copy-on-write copies) in memory, in KiB: dropping those would lose
    /// them.
    anonymous_kib: u64,
    /// Pages of its own in swap, in KiB: `MADV_DONTNEED` would free those too.
    swap_kib: u64,
}

/// How long after "serving" starting is over: the first checks, collector rounds and backup
/// catalog reading have run by then.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// After `after`, hands back the program pages only starting (or a reload) needed, on a
/// blocking thread. A refusal only leaves steward larger, so it is logged at debug.
pub async fn hand_back(after: std::time::Duration) {
    tokio::time::sleep(after).await;
    match tokio::task::spawn_blocking(release_startup_pages).await {
        Ok(Ok(r)) => tracing::debug!(
            mappings = r.mappings,
            bytes = r.bytes,
            refused = r.refused,
            "handed the kernel back the program pages only starting needed"
        ),
        Ok(Err(e)) => tracing::debug!("program pages kept resident: {e}"),
        Err(e) => tracing::debug!("program pages kept resident: {e}"),
    }
}

/// Gives the kernel back the resident pages of the clean read-only segments of the executable
/// and its libraries, and glibc's free heap. Call it when starting (or a reload) is over;
/// calling it again is harmless.
pub fn release_startup_pages() -> Result<Released, ResidencyError> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|source| ResidencyError::Read {
        path: "/proc/self/exe",
        source,
    })?;
    let mut walk = Walk {
        exe,
        mappings: None,
        released: Released::default(),
        exe_released: false,
        error: None,
    };
    walk_loaded_objects(&mut walk);
    if walk.exe_released {
        uncache("/proc/self/exe");
    }
    trim_heap();
    match walk.error {
        Some(e) if walk.released.mappings == 0 => Err(e),
        _ => Ok(walk.released),
    }
}

/// What the walk over the loaded objects knows and has done.
struct Walk {
    exe: PathBuf,
    /// Read from `/proc/self/smaps` at the first object, under the loader's lock.
    mappings: Option<Vec<Mapping>>,
    released: Released,
    exe_released: bool,
    /// The first failure: smaps unreadable, or a hint refused.
    error: Option<ResidencyError>,
}

impl Walk {
    /// The private read-only file mappings, read from smaps at the first object (under the
    /// loader's lock); none, with the error kept, when smaps cannot be read.
    fn read_smaps(&mut self) -> Vec<Mapping> {
        match std::fs::read_to_string("/proc/self/smaps") {
            Ok(text) => read_only_mappings(&text),
            Err(source) => {
                self.error.get_or_insert(ResidencyError::Read {
                    path: "/proc/self/smaps",
                    source,
                });
                Vec::new()
            }
        }
    }

    /// Hands back the clean mappings inside one read-only segment `[start, end)`.
    fn release_segment(&mut self, start: usize, end: usize) {
        let mappings = match self.mappings.take() {
            Some(m) => m,
            None => self.read_smaps(),
        };
        for m in mappings.iter().filter(|m| releasable(m, start, end)) {
            match drop_pages(m) {
                Ok(()) => {
                    self.exe_released |= m.path == self.exe;
                    self.released.mappings += 1;
                    self.released.bytes += m.rss_kib * 1024;
                }
                Err(e) => {
                    self.released.refused += 1;
                    self.error.get_or_insert(e);
                }
            }
        }
        self.mappings = Some(mappings);
    }
}

/// Whether mapping `m` lies inside the read-only segment `[start, end)` and holds no page of its
/// own (in memory or in swap) and something to give back.
fn releasable(m: &Mapping, start: usize, end: usize) -> bool {
    m.start >= start && m.end <= end && m.anonymous_kib == 0 && m.swap_kib == 0 && m.rss_kib > 0
}

/// Calls `walk.release_segment` for each read-only loadable segment of each loaded object, all
/// under the dynamic loader's lock (glibc and musl hold it for the whole iteration).
#[cfg(target_os = "linux")]
fn walk_loaded_objects(walk: &mut Walk) {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `&mut Walk` given to dl_iterate_phdr below, alive for the
        // whole call and used by nothing else meanwhile; `info` and its program headers are
        // the loader's, valid during this callback.
        let (walk, info) = unsafe { (&mut *(data as *mut Walk), &*info) };
        let page = page_size();
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: the loader gives `dlpi_phnum` headers at `dlpi_phdr`.
            let ph = unsafe { &*info.dlpi_phdr.add(i) };
            if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_W != 0 {
                continue;
            }
            let from = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
            let to = from.wrapping_add(ph.p_memsz as usize);
            walk.release_segment(from / page * page, to.div_ceil(page) * page);
        }
        0
    }
    // SAFETY: the callback only reads what the loader hands it and writes to `walk`.
    unsafe {
        libc::dl_iterate_phdr(Some(each), walk as *mut Walk as *mut libc::c_void);
    }
}

#[cfg(not(target_os = "linux"))]
fn walk_loaded_objects(_: &mut Walk) {}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf only reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// The private read-only mappings of files in `smaps`, with their sizes.
fn read_only_mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in smaps.lines() {
        if let Some((m, perms)) = header(line) {
            out.extend(current.take());
            let private_read_only = perms.starts_with(b"r-") && perms.get(3) == Some(&b'p');
            current = (m.path.is_absolute() && private_read_only).then_some(m);
            continue;
        }
        let Some(m) = current.as_mut() else { continue };
        let mut f = line.split_whitespace();
        let (key, kib) = (f.next(), f.next().and_then(|v| v.parse::<u64>().ok()));
        match (key, kib) {
            (Some("Rss:"), Some(k)) => m.rss_kib = k,
            (Some("Anonymous:"), Some(k)) => m.anonymous_kib = k,
            (Some("Swap:"), Some(k)) => m.swap_kib = k,
            _ => {}
        }
    }
    out.extend(current);
    out
}

/// A mapping's header line (`start-end perms offset dev inode path`) and its permissions
/// (`r-xp`); `None` for the `Key: value` lines between headers.
fn header(line: &str) -> Option<(Mapping, &[u8])> {
    // Five fields, then the path, which may hold spaces (and ends in " (deleted)" for a replaced
    // file, as /proc/self/exe then does too).
    let mut f = line.splitn(6, ' ');
    let (range, perms) = (f.next()?, f.next()?);
    let (a, b) = range.split_once('-')?;
    let path = f.nth(3)?.trim_start();
    let m = Mapping {
        start: usize::from_str_radix(a, 16).ok()?,
        end: usize::from_str_radix(b, 16).ok()?,
        path: PathBuf::from(path),
        rss_kib: 0,
        anonymous_kib: 0,
        swap_kib: 0,
    };
    Some((m, perms.as_bytes()))
}

#[cfg(target_os = "linux")]
fn drop_pages(m: &Mapping) -> Result<(), ResidencyError> {
    for advice in [libc::MADV_RANDOM, libc::MADV_DONTNEED] {
        // SAFETY: the range is a whole private read-only mapping, inside a read-only segment
        // of an object the loader holds loaded, that holds no page of its own in memory or in
        // swap (checked by the caller, from smaps read under the loader's lock): every page
        // dropped is a clean copy of the file, read back unchanged at its next use, as after
        // the kernel reclaimed it.
        let rc = unsafe { libc::madvise(m.start as *mut libc::c_void, m.end - m.start, advice) };
        if rc != 0 {
            return Err(ResidencyError::Advise {
                range: format!("{:x}-{:x} of {}", m.start, m.end, m.path.display()),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn drop_pages(_: &Mapping) -> Result<(), ResidencyError> {
    Ok(())
}

/// Asks the page cache to drop the file's pages that no process maps (a hint: the pages another
/// process maps stay, and a failure only leaves them cached).
#[cfg(target_os = "linux")]
fn uncache(path: &str) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = std::fs::File::open(path) {
        // SAFETY: a hint on a descriptor we own, for the whole file.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn uncache(_: &str) {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SMAPS: &str = "\
5600000000-5600100000 r--p 00000000 fe:01 123                        /opt/steward
Rss:                 640 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
5600100000-5600f00000 r-xp 00100000 fe:01 123                        /opt/steward
Rss:                8000 kB
Anonymous:             0 kB
5600f00000-5601000000 r--p 00f00000 fe:01 123                        /opt/steward
Rss:                1400 kB
Anonymous:          1400 kB
5601000000-5601010000 rw-p 01000000 fe:01 123                        /opt/steward
Rss:                  64 kB
Anonymous:            64 kB
5601010000-5601020000 rw-p 00000000 00:00 0 \n\
Rss:                  64 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:01 9                      /usr/lib/libc.so.6
Rss:                1000 kB
7f0000100000-7f0000200000 ---p 00100000 fe:01 9                      /usr/lib/libc.so.6
Rss:                   0 kB
7f0000200000-7f0000300000 r-xp 00000000 fe:01 124                    /opt/my steward (deleted)
Rss:                  12 kB
7f0000300000-7f0000400000 r--s 00000000 00:01 77                     /dev/shm/shared
Rss:                  40 kB
7f0000400000-7f0000500000 r--p 00000000 fe:01 10                     /usr/lib/libswapped.so
Rss:                  20 kB
Anonymous:             0 kB
Swap:                  4 kB
7ffff0000000-7ffff0001000 r-xp 00000000 00:00 0                      [vdso]
Rss:                   4 kB
";

    #[test]
    fn private_read_only_file_mappings_are_read_with_their_sizes() {
        let got = read_only_mappings(SMAPS);
        let seen: Vec<_> = got
            .iter()
            .map(|m| (m.start, m.end, m.rss_kib, m.anonymous_kib, m.swap_kib))
            .collect();
        // Not the writable ones, the anonymous ones, the inaccessible gap, the shared mapping
        // or the vDSO.
        assert_eq!(
            seen,
            vec![
                (0x5600000000, 0x5600100000, 640, 0, 0),
                (0x5600100000, 0x5600f00000, 8000, 0, 0),
                (0x5600f00000, 0x5601000000, 1400, 1400, 0),
                (0x7f0000000000, 0x7f0000100000, 1000, 0, 0),
                (0x7f0000200000, 0x7f0000300000, 12, 0, 0),
                (0x7f0000400000, 0x7f0000500000, 20, 0, 4),
            ]
        );
        // A path with a space, and a replaced executable, as /proc/self/exe names them.
        assert_eq!(got[4].path, Path::new("/opt/my steward (deleted)"));
        assert_eq!(got[3].path, Path::new("/usr/lib/libc.so.6"));
    }

    #[test]
    fn only_clean_mappings_inside_a_read_only_segment_are_released() {
        let got = read_only_mappings(SMAPS);
        let chosen = |start, end| -> Vec<usize> {
            got.iter()
                .filter(|m| releasable(m, start, end))
                .map(|m| m.start)
                .collect()
        };
        // The executable's two read-only segments: both mappings, clean.
        assert_eq!(
            chosen(0x5600000000, 0x5600f00000),
            vec![0x5600000000, 0x5600100000]
        );
        // A segment around relocated data held in memory, or around a page in swap: nothing.
        assert!(chosen(0x5600f00000, 0x5601000000).is_empty());
        assert!(chosen(0x7f0000400000, 0x7f0000500000).is_empty());
        // A mapping that only partly overlaps the segment, or lies outside every segment (a
        // file mapped by other means): nothing.
        assert!(chosen(0x5600100000, 0x5600800000).is_empty());
        assert!(chosen(0x1000, 0x2000).is_empty());
    }

    #[test]
    fn releasing_in_this_process_keeps_it_running_and_its_relocations() {
        // A relocated table (the address of a function, written at start-up in a PIE) is in a
        // mapping with pages of its own; it must survive, and the code must still run.
        static TABLE: [fn(u64) -> u64; 2] = [u64::wrapping_add_one, u64::wrapping_double];
        let released = release_startup_pages().expect("hints accepted on this kernel");
        assert!(released.mappings >= 1, "{released:?}");
        assert_eq!(released.refused, 0, "{released:?}");
        assert_eq!(TABLE[0](41), 42);
        assert_eq!(TABLE[1](21), 42);
        let again = release_startup_pages().expect("a second release too");
        assert!(again.mappings >= 1, "{again:?}");
    }

    trait Ops {
        fn wrapping_add_one(self) -> Self;
        fn wrapping_double(self) -> Self;
    }
    impl Ops for u64 {
        fn wrapping_add_one(self) -> u64 {
            self.wrapping_add(1)
        }
        fn wrapping_double(self) -> u64 {
            self.wrapping_mul(2)
        }
    }
}
