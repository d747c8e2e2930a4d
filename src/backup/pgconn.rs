//! How child processes (pg_dump, psql, pg_restore) reach PostgreSQL: every connection
//! parameter, the password included, goes through the environment, never argv.

use crate::secret::SecretUrl;
use std::str::FromStr;
use tokio_postgres::config::{Host, SslMode};

/// Why `postgres.url` cannot be turned into child-process settings.
#[derive(Debug, thiserror::Error)]
pub enum PgConnError {
    #[error("postgres.url cannot be used for pg_dump/psql: {0}")]
    Url(String),
}

/// Connection settings for one database, as libpq environment variables.
#[derive(Clone)]
pub struct PgTarget {
    /// The database these settings connect to.
    pub database: String,
    vars: Vec<(&'static str, String)>,
    password: Option<String>,
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("database", &self.database)
            .field("vars", &self.vars)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// Settings for `database` on the server of `url` (the URL's own database when `None`).
    pub fn new(url: &SecretUrl, database: Option<&str>) -> Result<Self, PgConnError> {
        let mut config = tokio_postgres::Config::from_str(url.expose())
            .map_err(|e| PgConnError::Url(crate::secret::scrub_urls(&e.to_string())))?;
        let database = database
            .map(str::to_string)
            .or_else(|| config.get_dbname().map(str::to_string))
            .or_else(|| config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".into());
        config.dbname(&database);
        let mut vars = vec![
            ("PGDATABASE", database.clone()),
            ("PGAPPNAME", "steward".to_string()),
        ];
        if let Some(h) = config.get_hosts().first() {
            vars.push((
                "PGHOST",
                match h {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                },
            ));
        }
        if let Some(p) = config.get_ports().first() {
            vars.push(("PGPORT", p.to_string()));
        }
        if let Some(u) = config.get_user() {
            vars.push(("PGUSER", u.to_string()));
        }
        vars.push((
            "PGSSLMODE",
            match config.get_ssl_mode() {
                SslMode::Disable => "disable".into(),
                SslMode::Require => "require".into(),
                _ => "prefer".into(),
            },
        ));
        if let Some(t) = config.get_connect_timeout() {
            vars.push(("PGCONNECT_TIMEOUT", t.as_secs().max(1).to_string()));
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(Self {
            database,
            vars,
            password,
            config,
        })
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Self {
        let mut t = self.clone();
        t.database = database.to_string();
        t.config.dbname(database);
        for (k, v) in &mut t.vars {
            if *k == "PGDATABASE" {
                *v = database.to_string();
            }
        }
        t
    }

    /// Gives a child [`minimal_env`] plus the connection variables (the password as
    /// `PGPASSWORD`; without one, a `PGPASSFILE` steward itself was given).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        minimal_env(cmd.as_std_mut());
        if self.password.is_none() {
            if let Some(f) = std::env::var_os("PGPASSFILE") {
                cmd.env("PGPASSFILE", f);
            }
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
    }

    /// `host:port` (or the socket directory) as PGHOST and PGPORT say, for metadata: it names
    /// the server and holds no secret.
    pub fn endpoint(&self) -> String {
        let var = |name: &str| {
            self.vars
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        format!(
            "{}:{}",
            var("PGHOST").unwrap_or("localhost"),
            var("PGPORT").unwrap_or("5432")
        )
    }

    /// A direct connection (not pooled) for the manager's own queries on this database.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = self.config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// The literal password, so error text can be scrubbed of it.
    pub fn secrets(&self) -> Vec<String> {
        self.password.iter().cloned().collect()
    }
}

/// A libpq connection string naming only the database, so that any name (even one with `=`
/// or spaces, which libpq would otherwise read as settings) is taken literally and everything
/// else comes from the environment.
pub fn conninfo_dbname(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Variables a child keeps from steward's environment: where programs are, the locale and
/// the time zone. Everything else — `DATABASE_URL`, `REDIS_URL`, any other secret steward
/// was started with — never reaches a child (`/proc/<pid>/environ` is readable by its user).
const KEPT: [&str; 4] = ["PATH", "TZ", "LANG", "LANGUAGE"];

/// Starts a child from an empty environment plus [`KEPT`] and the `LC_*` variables.
pub fn minimal_env(cmd: &mut std::process::Command) {
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let keep = k
            .to_str()
            .is_some_and(|k| KEPT.contains(&k) || k.starts_with("LC_"));
        if keep {
            cmd.env(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbname_is_quoted_for_conninfo() {
        assert_eq!(conninfo_dbname("app"), "dbname='app'");
        assert_eq!(conninfo_dbname("a b='c'\\"), "dbname='a b=\\'c\\'\\\\'");
    }

    #[test]
    fn url_becomes_environment_without_argv() {
        let t = PgTarget::new(
            &SecretUrl::new("postgres://app:p%40ss@db.example:6543/shop?sslmode=disable"),
            None,
        )
        .unwrap();
        assert_eq!(t.database, "shop");
        let vars: std::collections::HashMap<_, _> = t.vars.iter().cloned().collect();
        assert_eq!(vars["PGHOST"], "db.example");
        assert_eq!(vars["PGPORT"], "6543");
        assert_eq!(vars["PGUSER"], "app");
        assert_eq!(vars["PGSSLMODE"], "disable");
        assert_eq!(t.endpoint(), "db.example:6543");
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert!(!format!("{t:?}").contains("p@ss"));
        let other = t.with_database("shop_restored");
        assert_eq!(other.database, "shop_restored");
        assert!(other
            .vars
            .iter()
            .any(|(k, v)| *k == "PGDATABASE" && v == "shop_restored"));
    }
}
