//! Secrets that complete the service URLs: `postgres.url_file`, `backup.restore_test.url_file`
//! and `redis.password_file`, read into the config at start and on each reload.

use super::model::Config;
use super::problem::Problem;
use super::secret_file::read_secret_file;
use crate::secret::SecretUrl;

/// Reads `postgres.url_file` and `redis.password_file` into the config.
pub(super) fn read_secret_files(cfg: &mut Config, problems: &mut Vec<Problem>) {
    if let Some(path) = cfg.postgres.url_file.clone() {
        match read_secret_file("postgres.url_file", &path) {
            Ok(s) => cfg.postgres.url = SecretUrl::new(s.trim()),
            Err(p) => problems.push(p),
        }
    }
    if let Some(path) = cfg.backup.restore_test.url_file.clone() {
        match read_secret_file("backup.restore_test.url_file", &path) {
            Ok(s) => cfg.backup.restore_test.url = Some(SecretUrl::new(s.trim())),
            Err(p) => problems.push(p),
        }
    }
    if let Some(path) = cfg.redis.password_file.clone() {
        match read_secret_file("redis.password_file", &path) {
            Ok(s) => {
                match with_password(cfg.redis.url.expose(), s.trim_end_matches(['\r', '\n'])) {
                    Some(u) => cfg.redis.url = SecretUrl::new(u),
                    None => problems.push(Problem::new(
                        "redis.password_file",
                        "redis.url must be a redis:// or rediss:// URL to take a password",
                    )),
                }
            }
            Err(p) => problems.push(p),
        }
    }
}

fn with_password(url: &str, password: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    if u.password().is_some() {
        return Some(url.to_string());
    }
    u.set_password(Some(password)).ok()?;
    Some(u.to_string())
}
