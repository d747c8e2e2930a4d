//! The cluster's globals stored with each backup: `pg_dumpall --globals-only` (roles with
//! their attributes, memberships, settings and password hashes; tablespaces) through the same
//! compression and encryption as the data, into `<id>.globals.sql.<ext>[.age]` beside it. A
//! role that may not read password hashes gets the roles without them, and the metadata says so.

use super::catalog::{self, GlobalsFile};
use super::ctx::Ctx;
use super::pgconn::PgTarget;
use super::pipeline::{self, DumpJob};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What the globals dump needs from the run that takes it.
pub(super) struct GlobalsJob<'a> {
    pub id: &'a str,
    /// The database the backup is catalogued under (its directory).
    pub database: &'a str,
    /// The database pg_dumpall connects to.
    pub source: &'a str,
    pub target: &'a PgTarget,
    /// The pg_dump the data was dumped with: pg_dumpall is taken from beside it.
    pub pg_dump: &'a Path,
    pub server_major: u32,
    pub recipients: &'a [age::x25519::Recipient],
}

/// Dumps the globals beside the backup's data file. Only a file complete under its final name
/// is left behind; on error nothing is.
pub(super) async fn dump(ctx: &Ctx, job: GlobalsJob<'_>) -> Result<GlobalsFile, String> {
    let b = &ctx.config.backup;
    let beside = job.pg_dump.parent().map(|d| d.join("pg_dumpall"));
    let tool = pipeline::find_client_tool(
        "pg_dumpall",
        beside.as_deref().filter(|p| p.is_file()),
        Some(job.server_major),
    )
    .ok_or_else(|| {
        format!(
            "pg_dumpall not found beside {} (it stores the roles a restore on a new server needs); install the PostgreSQL {} client",
            job.pg_dump.display(),
            job.server_major
        )
    })?;
    let dir = catalog::db_dir(&b.dir, job.database);
    let name = catalog::globals_file_name(job.id, b.compression, !job.recipients.is_empty());
    let mut first_error = None;
    for without_passwords in [false, true] {
        // -l takes a connection string: a name such as `x=1 dbname=postgres` is quoted.
        let mut args: Vec<String> = vec![
            "--no-password".into(),
            "--globals-only".into(),
            "-l".into(),
            super::pgconn::conninfo_dbname(job.source),
        ];
        if without_passwords {
            args.push("--no-role-passwords".into());
        }
        let dump = DumpJob {
            pg_dump: tool.clone(),
            args,
            target: job.target.clone(),
            compression: b.compression,
            level: b.level(),
            recipients: job.recipients.to_vec(),
            tmp_path: dir.join(format!("{name}.tmp")),
            final_path: dir.join(&name),
            progress: Arc::new(AtomicU64::new(0)),
            count_rows: None,
        };
        match pipeline::dump(dump, ctx.cancel.clone()).await {
            Ok(out) => {
                return Ok(GlobalsFile {
                    file: name,
                    sha256: out.sha256,
                    stored_bytes: out.stored_bytes,
                    dump_bytes: out.dump_bytes,
                    without_passwords,
                })
            }
            // Password hashes are in pg_authid, which only superusers read.
            Err(e) if !without_passwords && e.to_string().contains("pg_authid") => {
                first_error = Some(e.to_string());
            }
            Err(e) => {
                let e = e.to_string();
                return Err(format!(
                    "cannot store the cluster's roles and tablespaces (pg_dumpall): {}",
                    first_error.map_or(e.clone(), |f| format!("{f}; then without passwords: {e}"))
                ));
            }
        }
    }
    unreachable!("the second attempt returns")
}
