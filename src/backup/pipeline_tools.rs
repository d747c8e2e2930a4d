//! Finding the PostgreSQL client tools (pg_dump, psql, pg_restore) and asking their version.

use super::dump_error::DumpError;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where Debian/Ubuntu install one directory per PostgreSQL major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// `pg_dump --version` → (major, version), e.g. `(15, "15.19")`.
pub async fn pg_dump_version(pg_dump: &Path) -> Result<(u32, String), DumpError> {
    let mut cmd = tokio::process::Command::new(pg_dump);
    super::pgconn::minimal_env(cmd.as_std_mut());
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    super::pipeline_io::english_messages(&mut cmd);
    let out = cmd.output().await.map_err(|source| DumpError::Spawn {
        tool: pg_dump.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(DumpError::Version {
            tool: pg_dump.display().to_string(),
            output: format!(
                "{} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ),
        });
    }
    parse_version(&text).ok_or_else(|| DumpError::Version {
        tool: pg_dump.display().to_string(),
        output: text.trim().to_string(),
    })
}

/// Reads "pg_dump (PostgreSQL) 15.19 (Debian 15.19-1.pgdg120+1)" and the like.
pub(super) fn parse_version(text: &str) -> Option<(u32, String)> {
    let line = text.lines().next()?;
    let word = match line.find("(PostgreSQL)") {
        Some(i) => line[i + "(PostgreSQL)".len()..].split_whitespace().next()?,
        None => line
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?,
    };
    let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().ok()?;
    Some((major, word.to_string()))
}

/// Locates a PostgreSQL client tool (`pg_dump`, `psql`, `pg_restore`):
/// 1. `configured` when given (a file is used as is; a directory is searched for `name`);
/// 2. the newest `/usr/lib/postgresql/<version>/bin/<name>` (at least `server_major` when given);
/// 3. `pg_config --bindir`;
/// 4. `PATH`;
/// 5. the newest `/usr/lib/postgresql/*/bin/<name>` even if older than the server (so that the
///    version check can name the problem instead of "not found").
pub fn find_client_tool(
    name: &str,
    configured: Option<&Path>,
    server_major: Option<u32>,
) -> Option<PathBuf> {
    find_in(
        name,
        configured,
        server_major,
        Path::new(DEBIAN_ROOT),
        pg_config_bindir,
        std::env::var_os("PATH"),
    )
}

fn find_in(
    name: &str,
    configured: Option<&Path>,
    server_major: Option<u32>,
    versions_root: &Path,
    pg_config: impl FnOnce() -> Option<PathBuf>,
    path_env: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(if p.is_dir() {
            p.join(name)
        } else {
            p.to_path_buf()
        });
    }
    let versioned = versioned_tools(versions_root, name);
    if let Some((_, p)) = versioned
        .iter()
        .rev()
        .find(|(v, _)| server_major.is_none_or(|m| v.0 >= m))
    {
        return Some(p.clone());
    }
    if let Some(p) = pg_config()
        .map(|d| d.join(name))
        .filter(|p| is_executable(p))
    {
        return Some(p);
    }
    if let Some(p) = path_env.and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }) {
        return Some(p);
    }
    versioned.last().map(|(_, p)| p.clone())
}

/// `(version, path)` of every `<root>/<version>/bin/<name>`, oldest first.
fn versioned_tools(root: &Path, name: &str) -> Vec<((u32, u32), PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().into_string().ok()?;
            let mut parts = v.split('.');
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
            let p = e.path().join("bin").join(name);
            is_executable(&p).then_some(((major, minor), p))
        })
        .collect();
    found.sort();
    found
}

fn pg_config_bindir() -> Option<PathBuf> {
    let mut cmd = std::process::Command::new("pg_config");
    super::pgconn::minimal_env(&mut cmd);
    let out = cmd
        .arg("--bindir")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_parsed() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.19 (Debian 15.19-1.pgdg120+1)\n"),
            Some((15, "15.19".to_string()))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 17beta2"),
            Some((17, "17beta2".to_string()))
        );
        assert_eq!(
            parse_version("psql 9.6.24"),
            Some((9, "9.6.24".to_string()))
        );
        assert_eq!(parse_version("nonsense"), None);
    }

    fn tool(root: &Path, version: &str, name: &str) -> PathBuf {
        let bin = root.join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let p = bin.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn newest_suitable_version_wins() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let v13 = tool(r, "13", "pg_dump");
        let v9 = tool(r, "9.6", "pg_dump");
        let v16 = tool(r, "16", "pg_dump");
        tool(r, "17", "psql"); // no pg_dump in 17
        let none = || None;
        assert_eq!(
            find_in("pg_dump", None, None, r, none, None),
            Some(v16.clone())
        );
        assert_eq!(
            find_in("pg_dump", None, Some(14), r, none, None),
            Some(v16.clone())
        );
        // Nothing new enough, nothing elsewhere: the newest one, for a clear version error.
        assert_eq!(
            find_in("pg_dump", None, Some(18), r, none, None),
            Some(v16.clone())
        );
        // Something new enough on pg_config's bindir is preferred to an older versioned one.
        let other = tempfile::tempdir().unwrap();
        let elsewhere = tool(other.path(), "x", "pg_dump");
        let bindir = elsewhere.parent().unwrap().to_path_buf();
        assert_eq!(
            find_in("pg_dump", None, Some(18), r, || Some(bindir.clone()), None),
            Some(elsewhere.clone())
        );
        // PATH is searched too.
        let path = std::env::join_paths([other.path().join("x").join("bin")]).unwrap();
        assert_eq!(
            find_in("pg_dump", None, Some(18), r, none, Some(path)),
            Some(elsewhere)
        );
        // A configured file is used as is; a configured directory is searched.
        let conf = Path::new("/opt/pg/bin/pg_dump");
        assert_eq!(
            find_in("pg_dump", Some(conf), None, r, none, None),
            Some(conf.to_path_buf())
        );
        assert_eq!(
            find_in(
                "pg_dump",
                Some(&r.join("13").join("bin")),
                None,
                r,
                none,
                None
            ),
            Some(v13)
        );
        let _ = v9;
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            find_in("pg_dump", None, None, empty.path(), none, None),
            None
        );
    }
}
