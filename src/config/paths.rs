//! Where relative paths in the config point: at the config file's directory, so that the
//! daemon and the client agree on the socket, the state and the backups whatever directory
//! either is started from.

use super::model::Config;
use std::path::{Path, PathBuf};

/// The directory relative paths of `config_file` are taken from, as an absolute path.
pub fn base_dir(config_file: &Path) -> PathBuf {
    let dir = config_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `path` if it is absolute, else `path` under `base` (with `.` components dropped).
pub fn anchored(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() || path.as_os_str().is_empty() {
        return path.to_path_buf();
    }
    let joined = base.join(path);
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// Anchors every path of `cfg` (given in the file, by an environment variable or left at its
/// default) at `base`.
pub(super) fn anchor_all(cfg: &mut Config, base: &Path) {
    let fix = |p: &mut PathBuf| *p = anchored(base, p);
    fix(&mut cfg.control.socket);
    fix(&mut cfg.state.dir);
    fix(&mut cfg.audit.path);
    fix(&mut cfg.backup.dir);
    for p in [
        &mut cfg.postgres.url_file,
        &mut cfg.redis.password_file,
        &mut cfg.backup.encryption.identity_file,
        &mut cfg.backup.restore_test.url_file,
        &mut cfg.backup.remote.secret_access_key_file,
        &mut cfg.metrics.tls_cert,
        &mut cfg.metrics.tls_key,
        &mut cfg.metrics.basic_auth_users_file,
    ]
    .into_iter()
    .flatten()
    {
        fix(p);
    }
    // A bare program name (`pg_dump`) is looked up in PATH, as a shell would.
    if let Some(p) = cfg
        .backup
        .pg_dump_path
        .as_mut()
        .filter(|p| p.components().count() > 1)
    {
        fix(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_hang_off_the_config_files_directory() {
        let base = base_dir(Path::new("/srv/app/config/steward.toml"));
        assert_eq!(base, Path::new("/srv/app/config"));
        assert_eq!(
            anchored(&base, Path::new("../var/steward.sock")),
            Path::new("/srv/app/config/../var/steward.sock")
        );
        assert_eq!(
            anchored(&base, Path::new("./x")),
            Path::new("/srv/app/config/x")
        );
        assert_eq!(
            anchored(&base, Path::new("/run/s.sock")),
            Path::new("/run/s.sock")
        );
        let here = base_dir(Path::new("steward.toml"));
        assert!(here.is_absolute(), "{here:?}");
        let mut cfg = Config::default();
        anchor_all(&mut cfg, &base);
        assert_eq!(
            cfg.control.socket,
            Path::new("/srv/app/config/var/steward.sock")
        );
        assert!(cfg.backup.dir.starts_with("/srv/app/config"));
    }
}
