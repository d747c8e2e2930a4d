//! The PostgreSQL probe: round trip, connections, size, version, and a heartbeat write/read test.

use super::pool_error::{checkout, postgres_refused, LastError};
use super::{step, Deadline, Probe};
use crate::config::PostgresConfig;
use crate::metrics::Metrics;
use crate::model::check::{CheckResult, PgFigures, PoolState, Service, WriteRead};
use crate::secret::Scrubber;
use bb8::{Pool, PooledConnection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
type Manager = super::wake::PgManager;

/// Why the probe could not be built (the URL was validated, so only a driver surprise).
#[derive(Debug, thiserror::Error)]
pub enum PgProbeError {
    #[error("postgres.url is not usable: {0}")]
    Url(String),
}

/// Probes one database through steward's own small pool.
pub struct PgProbe {
    pool: Pool<Manager>,
    last_error: LastError<tokio_postgres::Error>,
    cfg: PostgresConfig,
    metrics: Arc<Metrics>,
    scrubber: Scrubber,
    instance: String,
    table_ready: bool,
}

impl PgProbe {
    /// Builds the pool without connecting, so a server that is down now does not stop the task.
    /// `instance` names this steward's heartbeat row; `wake` is raised when the server ends
    /// a pooled connection.
    pub fn new(
        cfg: &PostgresConfig,
        metrics: Arc<Metrics>,
        scrubber: Scrubber,
        instance: &str,
        wake: super::wake::Wake,
    ) -> Result<Self, PgProbeError> {
        let mut pg = tokio_postgres::Config::from_str(cfg.url.expose())
            .map_err(|e| PgProbeError::Url(scrubber.scrub(&e.to_string())))?;
        let ms = cfg.timeout.as_millis().max(1);
        pg.application_name("steward")
            .connect_timeout(cfg.timeout)
            .options(format!("-c statement_timeout={ms} -c lock_timeout={ms}"));
        let last_error = LastError::with_refusal(describe, postgres_refused);
        let pool = Pool::builder()
            .max_size(cfg.pool_max)
            // Inside the check's own timeout, so the pool's reason is what gets reported.
            .connection_timeout(super::pool_wait(cfg.timeout))
            .retry_connection(false)
            .test_on_check_out(false)
            .error_sink(Box::new(last_error.clone()))
            .build_unchecked(super::wake::PgManager::new(pg, wake));
        Ok(Self {
            pool,
            last_error,
            cfg: cfg.clone(),
            metrics,
            scrubber,
            instance: format!("steward@{instance}"),
            table_ready: false,
        })
    }

    fn pool_state(&self) -> PoolState {
        PoolState::of(&self.pool.state(), self.cfg.pool_max)
    }

    async fn connect_and_ping(&self) -> Result<PooledConnection<'static, Manager>, String> {
        let conn = checkout(&self.pool, &self.last_error, self.cfg.timeout).await?;
        conn.simple_query("SELECT 1")
            .await
            .map_err(|e| describe(&e))?;
        Ok(conn)
    }

    /// Without pg_monitor a role sees other roles' sessions with `backend_type` hidden (NULL);
    /// those with a database are client sessions too, so they are counted.
    async fn stats(
        &self,
        conn: &tokio_postgres::Client,
    ) -> Result<PgFigures, tokio_postgres::Error> {
        let row = conn
            .query_one(
                "SELECT (SELECT count(*) FROM pg_stat_activity
                         WHERE backend_type = 'client backend'
                            OR (backend_type IS NULL AND datid IS NOT NULL))::int8,
                        current_setting('max_connections')::int8,
                        current_setting('superuser_reserved_connections')::int8,
                        pg_database_size(current_database())::int8,
                        current_setting('server_version'),
                        current_setting('server_version_num')::int8,
                        pg_is_in_recovery(),
                        current_database()::text",
                &[],
            )
            .await?;
        let connections: i64 = row.get(0);
        let max: i64 = row.get(1);
        let reserved: i64 = row.get(2);
        let usable = (max - reserved).max(1);
        Ok(PgFigures {
            connections,
            max_connections: max,
            reserved_connections: reserved,
            connection_usage_ratio: connections as f64 / usable as f64,
            database_size_bytes: row.get(3),
            server_version: row.get(4),
            server_version_num: row.get(5),
            in_recovery: row.get(6),
            database: row.get(7),
        })
    }

    /// Checked first, so a role that may write the table but not create tables still passes.
    async fn table_exists(&mut self, conn: &tokio_postgres::Client) -> Result<bool, String> {
        let row = conn
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&self.cfg.heartbeat_table],
            )
            .await
            .map_err(|e| {
                format!(
                    "cannot look up {}: {}",
                    self.cfg.heartbeat_table,
                    describe(&e)
                )
            })?;
        self.table_ready = row.get(0);
        Ok(self.table_ready)
    }

    async fn write_read(
        &mut self,
        conn: &tokio_postgres::Client,
        in_recovery: bool,
    ) -> Result<(), String> {
        if in_recovery {
            return Err(
                "server is read-only (a standby in recovery); writes are impossible".into(),
            );
        }
        let table = quote_table(&self.cfg.heartbeat_table);
        if !self.table_ready && !self.table_exists(conn).await? {
            conn.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (instance text PRIMARY KEY, beat_at timestamptz NOT NULL, token text NOT NULL)"
            ))
            .await
            .map_err(|e| format!("cannot create {table}: {}", describe(&e)))?;
            self.table_ready = true;
        }
        let token = format!("{:x}", rand_token());
        conn.execute(
            &format!(
                "INSERT INTO {table} (instance, beat_at, token) VALUES ($1, now(), $2)
                 ON CONFLICT (instance) DO UPDATE SET beat_at = EXCLUDED.beat_at, token = EXCLUDED.token"
            ),
            &[&self.instance, &token],
        )
        .await
        .map_err(|e| format!("cannot write to {table}: {}", describe(&e)))?;
        let row = conn
            .query_one(
                &format!("SELECT token FROM {table} WHERE instance = $1"),
                &[&self.instance],
            )
            .await
            .map_err(|e| format!("cannot read back from {table}: {}", describe(&e)))?;
        let got: String = row.get(0);
        if got != token {
            return Err(format!("read back {got:?} from {table}, wrote {token:?}"));
        }
        Ok(())
    }
}

impl Probe for PgProbe {
    fn service(&self) -> Service {
        Service::Postgres
    }

    async fn health_check(&mut self) -> bool {
        // Checking a connection out and running SELECT 1 on it; a broken one is dropped and
        // replaced by the pool.
        let ok = tokio::time::timeout(self.cfg.timeout, self.connect_and_ping())
            .await
            .unwrap_or_else(|_| Err("no answer within postgres.timeout".into()));
        if let Err(e) = &ok {
            tracing::debug!(error = %self.scrubber.scrub(e), "postgres pool health check failed");
        }
        ok.is_ok()
    }

    async fn probe(&mut self) -> CheckResult {
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let deadline = Deadline::after(self.cfg.timeout);
        let mut result = CheckResult::unchecked(Service::Postgres);
        let (took, conn) = step(
            &metrics,
            Service::Postgres,
            "ping",
            deadline,
            self.connect_and_ping(),
        )
        .await;
        match conn {
            Err(e) => result.error = Some(self.scrubber.scrub(&e)),
            Ok(conn) => {
                result.up = true;
                result.latency_seconds = Some(took.as_secs_f64());
                let (_, stats) = step(
                    &metrics,
                    Service::Postgres,
                    "stats",
                    deadline,
                    self.stats(&conn),
                )
                .await;
                match stats {
                    Ok(f) => result.postgres = Some(f),
                    Err(e) => {
                        result.error = Some(
                            self.scrubber
                                .scrub(&format!("statistics query failed: {e}")),
                        )
                    }
                }
                if self.cfg.write_read_test {
                    let in_recovery = result.postgres.as_ref().is_some_and(|f| f.in_recovery);
                    let fut = self.write_read(&conn, in_recovery);
                    let (_, outcome) =
                        step(&metrics, Service::Postgres, "write_read", deadline, fut).await;
                    if outcome.is_err() {
                        // The table may have been dropped or restored away: look again next time.
                        self.table_ready = false;
                    }
                    result.write_read = Some(WriteRead {
                        ok: outcome.is_ok(),
                        error: outcome.err().map(|e| self.scrubber.scrub(&e)),
                    });
                }
                drop(conn);
            }
        }
        if let Some(f) = &result.postgres {
            record(&metrics, f);
        }
        result.pool = Some(self.pool_state());
        result.duration_seconds = started.elapsed().as_secs_f64();
        result.checked_at = crate::unix_now();
        result
    }
}

fn record(m: &Metrics, f: &PgFigures) {
    m.pg.connections.set(f.connections);
    m.pg.max_connections.set(f.max_connections);
    m.pg.reserved_connections.set(f.reserved_connections);
    m.pg.usage_ratio.set(f.connection_usage_ratio);
    // The size is in the check result (status); the metric is the database group's, per database.
    m.pg.version_num.set(f.server_version_num);
    m.pg.in_recovery.set(i64::from(f.in_recovery));
}

/// The driver's message plus the server's own (`permission denied for …`), which its
/// `Display` alone leaves out.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    }
}

/// `schema.table` → `"schema"."table"` (names were validated as identifiers).
fn quote_table(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

fn rand_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_table("steward_heartbeat"), "\"steward_heartbeat\"");
        assert_eq!(quote_table("ops.beat"), "\"ops\".\"beat\"");
    }

    #[tokio::test]
    async fn probe_builds_without_a_server() {
        let m = Arc::new(Metrics::new().unwrap());
        let cfg = PostgresConfig::default();
        assert!(PgProbe::new(&cfg, m, Scrubber::default(), "t", Default::default()).is_ok());
    }
}
