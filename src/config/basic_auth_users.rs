//! The basic-auth users of the metrics endpoint (`[metrics] basic_auth_users` and
//! `basic_auth_users_file`, bcrypt hashes): parsed and checked, every problem naming the user
//! (and line), never the hash.

use super::metrics::MetricsConfig;
use super::problem::Problem;
use std::collections::HashMap;

/// Highest bcrypt cost accepted: each step doubles a verification's time, about a second of
/// one core at 14 (`htpasswd -B` uses 5 unless told otherwise).
const MAX_COST: u32 = 14;

/// The users allowed in, user name → bcrypt hash.
#[derive(Clone, Default)]
pub struct Users(HashMap<String, String>);

impl Users {
    /// Reads the inline table and the users file (without the exposure warning, which the
    /// config validation gives once per load).
    pub fn from_config(m: &MetricsConfig) -> Result<Users, Vec<Problem>> {
        let key = "metrics.basic_auth_users_file";
        let text = m
            .basic_auth_users_file
            .as_deref()
            .map(|path| super::secret_file::read_secret_quietly(key, path))
            .transpose()
            .map_err(|p| vec![p])?;
        Users::parse(m, text.as_deref())
    }

    /// Builds the users from the inline table and the text of the users file; every problem
    /// names the user (and line), never the hash.
    pub fn parse(m: &MetricsConfig, file: Option<&str>) -> Result<Users, Vec<Problem>> {
        let mut users = HashMap::new();
        let mut problems = Vec::new();
        for (user, hash) in m.basic_auth_users.iter().flatten() {
            let key = format!("metrics.basic_auth_users.{user}");
            match check_entry(user, hash.expose()) {
                Ok(()) => {
                    users.insert(user.clone(), hash.expose().to_string());
                }
                Err(reason) => problems.push(Problem::new(key, reason)),
            }
        }
        for (n, line) in file.unwrap_or_default().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = "metrics.basic_auth_users_file";
            let Some((user, hash)) = line.split_once(':') else {
                problems.push(Problem::new(
                    key,
                    format!(
                        "line {}: expected user:bcrypt-hash (as `htpasswd -nB user` prints)",
                        n + 1
                    ),
                ));
                continue;
            };
            if users.contains_key(user) {
                problems.push(Problem::new(
                    key,
                    format!("line {}: user {user:?} is defined twice (in the file or also in metrics.basic_auth_users); keep one", n + 1),
                ));
                continue;
            }
            match check_entry(user, hash) {
                Ok(()) => {
                    users.insert(user.to_string(), hash.to_string());
                }
                Err(reason) => {
                    problems.push(Problem::new(key, format!("line {}: {reason}", n + 1)))
                }
            }
        }
        if m.basic_auth_users_file.is_some() && users.is_empty() && problems.is_empty() {
            problems.push(Problem::new(
                "metrics.basic_auth_users_file",
                "names no user; add user:bcrypt-hash lines, or remove the key to turn basic auth off",
            ));
        }
        if problems.is_empty() {
            Ok(Users(users))
        } else {
            Err(problems)
        }
    }

    /// The bcrypt hash of `user`, if it is one of them.
    pub fn hash(&self, user: &str) -> Option<&str> {
        self.0.get(user).map(String::as_str)
    }

    /// Some user's hash, so that an unknown user still costs one verification.
    pub fn any_hash(&self) -> Option<&str> {
        self.0.values().next().map(String::as_str)
    }

    /// The user names, sorted (for logs; never the hashes).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.keys().cloned().collect();
        v.sort();
        v
    }
}

fn check_entry(user: &str, hash: &str) -> Result<(), String> {
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err(format!(
            "{user:?} cannot be a basic-auth user name (no colon, no control characters, not empty)"
        ));
    }
    let parts = hash.parse::<bcrypt::HashParts>().map_err(|_| {
        format!(
            "the hash of user {user:?} is not a bcrypt hash ($2y$/$2b$/$2a$, 60 characters); \
             generate one with `htpasswd -nbB {user} PASSWORD` or any bcrypt tool"
        )
    })?;
    let cost = parts.get_cost();
    if cost > MAX_COST {
        return Err(format!(
            "the hash of user {user:?} has bcrypt cost {cost}, too slow to verify (the limit is \
             {MAX_COST}; every wrong password would hold the verifier for minutes or more); \
             generate one with `htpasswd -nbB -C 10 {user} PASSWORD`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_are_parsed_and_problems_named() {
        let hash = bcrypt::hash("x", 4).unwrap();
        let m = MetricsConfig {
            basic_auth_users_file: Some("/x".into()),
            ..Default::default()
        };
        let ok = Users::parse(&m, Some(&format!("# comment\n\nalice:{hash}\n"))).unwrap();
        assert_eq!(ok.names(), vec!["alice"]);
        let p = Users::parse(
            &m,
            Some(&format!(
                "alice:{hash}\nbob:notahash\nnocolon\nalice:{hash}\n"
            )),
        )
        .err()
        .unwrap();
        let text: String = p.iter().map(|p| format!("{p}\n")).collect();
        assert!(
            text.contains("line 2") && text.contains("\"bob\""),
            "{text}"
        );
        assert!(text.contains("line 3") && text.contains("line 4"), "{text}");
        assert!(
            !text.contains("notahash") && !text.contains(&hash),
            "{text}"
        );
        assert!(Users::parse(&m, Some("# nobody\n")).is_err());
    }

    /// A hash whose cost makes one verification take minutes or hours would hold the only
    /// verification slot that long (any wrong password, even for an unknown user, runs one),
    /// and every scrape that is not remembered would get 503 meanwhile.
    #[test]
    fn a_hash_too_costly_to_verify_is_refused() {
        let cheap = bcrypt::hash("s3cret", 4).unwrap();
        let costly = cheap.replacen("$04$", "$31$", 1);
        let m = MetricsConfig::default();
        let Err(e) = Users::parse(&m, Some(&format!("prom:{costly}\n"))) else {
            panic!("a cost-31 hash was accepted");
        };
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].reason.contains("cost 31") && e[0].reason.contains("prom"),
            "{}",
            e[0].reason
        );
        assert!(!e[0].reason.contains(&costly[7..]), "the hash is not shown");
        let ok = cheap.replacen("$04$", &format!("${MAX_COST}$"), 1);
        assert!(Users::parse(&m, Some(&format!("prom:{ok}\n"))).is_ok());
    }
}
