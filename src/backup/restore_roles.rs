//! Roles travel with the backup: before a restore, the roles its dump refers to that this
//! server lacks are created from the globals stored beside it (attributes, settings, comment,
//! memberships with them), never altering a role that exists. When steward's role is not a
//! superuser it is made a member of the roles it created for the length of the restore (so
//! that it may give them their objects), and that membership is taken back afterwards.

use super::catalog::BackupMeta;
use super::ctx::Ctx;
use super::error::BackupError;
use super::globals_script::{without_superuser_attributes, RoleScript};
use super::pg_text::ident;
use super::scratch::{pg_failed, Run};
use std::collections::BTreeSet;
use std::io::Read;

/// Most bytes of a globals script steward reads back (a cluster's roles are far smaller).
const MAX_SCRIPT: u64 = 64 << 20;

/// What the role step did, for the reply and for [`Created::release`].
#[derive(Debug, Default)]
pub(super) struct Created {
    pub roles: Vec<String>,
    pub warnings: Vec<String>,
    /// Roles steward's own role was made a member of for this restore.
    borrowed: Vec<String>,
}

impl Created {
    /// The roles steward's role was made a member of for this restore (for the journal).
    pub fn borrowed(&self) -> &[String] {
        &self.borrowed
    }

    /// Takes back the memberships steward's role borrowed; a failure is logged (the role
    /// stays a member, which gives it no more than it could give itself).
    pub async fn release(&self, ctx: &Ctx, run: &Run) {
        for r in &self.borrowed {
            let sql = format!("REVOKE {} FROM CURRENT_USER", ident(r));
            if let Err(e) = run.admin.batch_execute(&sql).await {
                tracing::warn!(role = %r, error = %ctx.scrubber.scrub(&super::pg_text::pg_error(&e).to_string()), "cannot take back steward's membership of a role it created for a restore");
            }
        }
    }
}

/// Creates the roles the backup refers to that this server lacks (unless `skip`). Refused,
/// with what to do, when roles are missing and cannot be created.
pub(super) async fn create_missing(
    ctx: &Ctx,
    run: &Run,
    meta: &BackupMeta,
    skip: bool,
    no_owner: bool,
) -> Result<Created, BackupError> {
    let needed = meta
        .source
        .as_ref()
        .map(|s| s.roles.clone())
        .unwrap_or_default();
    let missing = missing_roles(ctx, run, &needed).await?;
    let mut out = Created::default();
    if missing.is_empty() {
        return Ok(out);
    }
    let list = missing.iter().cloned().collect::<Vec<_>>().join(", ");
    if skip {
        out.warnings.push(format!(
            "--skip-roles: this server lacks roles the backup refers to ({list}); they were not created"
        ));
        return Ok(out);
    }
    let Some(script) = read_script(ctx, meta).await? else {
        let hint = if no_owner {
            ""
        } else {
            ", or restore with --no-owner"
        };
        return Err(BackupError::Refused(format!(
            "this server lacks roles the backup refers to ({list}) and the backup holds none to create them from (it was taken before steward stored them): create them first{hint}; nothing was restored"
        )));
    };
    let script = RoleScript::parse(&script);
    for role in &missing {
        let Some(statements) = script.roles.get(role) else {
            out.warnings.push(format!(
                "role {role:?} is referred to but not in the backup's globals; it was not created"
            ));
            continue;
        };
        create_one(ctx, run, role, statements, &mut out).await?;
    }
    grant_memberships(ctx, run, &script, &mut out).await;
    if out.roles.is_empty() {
        return Ok(out);
    }
    if meta.globals.as_ref().is_some_and(|g| g.without_passwords) {
        out.warnings.push(format!(
            "roles {} were created without passwords (the backup could not read password hashes): set them with ALTER ROLE … PASSWORD",
            out.roles.join(", ")
        ));
    }
    if let Err(e) = borrow(ctx, run, &mut out).await {
        out.release(ctx, run).await;
        return Err(e);
    }
    Ok(out)
}

/// The roles of `needed` that do not exist here.
async fn missing_roles(
    ctx: &Ctx,
    run: &Run,
    needed: &[String],
) -> Result<BTreeSet<String>, BackupError> {
    if needed.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows = run
        .admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
            &[&needed],
        )
        .await
        .map_err(|e| pg_failed(ctx, "cannot look up roles", &e))?;
    let have: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(needed
        .iter()
        .filter(|r| !have.contains(*r))
        .cloned()
        .collect())
}

/// Runs a role's own statements: CREATE must succeed; an attribute this role may not give
/// (SUPERUSER, say) is a warning.
async fn create_one(
    ctx: &Ctx,
    run: &Run,
    role: &str,
    statements: &[String],
    out: &mut Created,
) -> Result<(), BackupError> {
    for (i, sql) in statements.iter().enumerate() {
        match run.admin.batch_execute(sql).await {
            Ok(()) => {}
            Err(e) if i == 0 => {
                return Err(BackupError::Refused(ctx.scrubber.scrub(&format!(
                    "cannot create role {role:?}, which the backup refers to ({}); steward's role needs CREATEROLE, or create it first, or restore with --skip-roles --no-owner; nothing was restored",
                    super::pg_text::pg_error(&e)
                ))))
            }
            Err(e) => {
                // A CREATEROLE role may not even say NOSUPERUSER: try without what only a
                // superuser may set, so that LOGIN, limits and the password still apply.
                if let Some((lesser, dropped)) = without_superuser_attributes(sql) {
                    if run.admin.batch_execute(&lesser).await.is_ok() {
                        if !dropped.is_empty() {
                            out.warnings.push(format!(
                                "role {role:?} was created without {} (only a superuser may give it)",
                                dropped.join(", ")
                            ));
                        }
                        continue;
                    }
                }
                out.warnings.push(ctx.scrubber.scrub(&format!(
                    "role {role:?}: not applied: {} ({})",
                    shown(sql),
                    super::pg_text::pg_error(&e)
                )))
            }
        }
    }
    out.roles.push(role.to_string());
    Ok(())
}

/// Memberships of a role created now, in roles that exist. Another role that existed before
/// is never made a member of anything (that would give it the new role's privileges): the
/// reply says which membership was left out. steward's own role keeps a membership the
/// backup's server gave it (it is how it dumped and restores those objects).
async fn grant_memberships(ctx: &Ctx, run: &Run, script: &RoleScript, out: &mut Created) {
    let me: Option<String> = run
        .admin
        .query_one("SELECT current_user::text", &[])
        .await
        .ok()
        .map(|r| r.get(0));
    for (granted, member, sql) in &script.grants {
        if !out.roles.contains(granted) && !out.roles.contains(member) {
            continue;
        }
        if !out.roles.contains(member) && me.as_ref() != Some(member) {
            out.warnings.push(format!(
                "role {member:?} existed before the restore and was not made a member of {granted:?}, as it was on the backup's server (a role that exists is never altered): {sql} if it should"
            ));
            continue;
        }
        if let Err(e) = run.admin.batch_execute(sql).await {
            out.warnings.push(ctx.scrubber.scrub(&format!(
                "membership of {member:?} in {granted:?} not restored ({})",
                super::pg_text::pg_error(&e)
            )));
        }
    }
}

/// A statement as a warning may show it: a password literal is cut off.
fn shown(sql: &str) -> String {
    match sql.to_ascii_uppercase().find(" PASSWORD ") {
        Some(i) => format!("{} PASSWORD …", &sql[..i]),
        None => sql.to_string(),
    }
}

/// Makes steward's role (when it is no superuser) a member of each role it created, so that
/// psql or pg_restore may give objects to them.
async fn borrow(ctx: &Ctx, run: &Run, out: &mut Created) -> Result<(), BackupError> {
    let superuser: bool = run
        .admin
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| pg_failed(ctx, "cannot look up steward's role", &e))?
        .get(0);
    if superuser {
        return Ok(());
    }
    for r in out.roles.clone() {
        // A membership the globals gave it is its own, not borrowed: it stays.
        let member: bool = run
            .admin
            .query_one(
                "SELECT pg_has_role(current_user, $1::text, 'MEMBER')",
                &[&r],
            )
            .await
            .map_err(|e| pg_failed(ctx, "cannot look up steward's memberships", &e))?
            .get(0);
        if member {
            continue;
        }
        let sql = format!("GRANT {} TO CURRENT_USER", ident(&r));
        match run.admin.batch_execute(&sql).await {
            Ok(()) => out.borrowed.push(r),
            Err(e) => out.warnings.push(ctx.scrubber.scrub(&format!(
                "steward's role could not become a member of {r:?} ({}): objects owned by it may fail to restore",
                super::pg_text::pg_error(&e)
            ))),
        }
    }
    Ok(())
}

/// The backup's globals script, checked against its recorded SHA-256 and decoded; `None`
/// when the backup has none.
async fn read_script(ctx: &Ctx, meta: &BackupMeta) -> Result<Option<String>, BackupError> {
    let refused = |e: String| {
        BackupError::Refused(format!(
            "the backup's roles cannot be read ({e}); restore with --skip-roles to go on without them; nothing was restored"
        ))
    };
    let Some((bytes, shown)) = super::restore_checks::globals_bytes(ctx, meta)
        .await
        .map_err(refused)?
    else {
        return Ok(None);
    };
    let expected = meta.globals.as_ref().map(|g| g.sha256.clone());
    let ids = super::restore_checks::identities(ctx)?;
    let compression = meta.compression;
    let encrypted = meta.encryption.is_some();
    let read = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if Some(sha) != expected {
            return Err(format!(
                "{shown} does not match the SHA-256 its metadata recorded"
            ));
        }
        if encrypted && ids.is_empty() {
            return Err(format!(
                "{shown} is encrypted and no age identity is configured ([backup.encryption] identity_file)"
            ));
        }
        let reader = super::restore_stream::open(
            std::io::Cursor::new(bytes),
            compression,
            encrypted.then_some(&ids[..]),
        )
        .map_err(|e| format!("{shown}: {e}"))?;
        let mut text = String::new();
        reader
            .take(MAX_SCRIPT)
            .read_to_string(&mut text)
            .map_err(|e| format!("{shown}: {e}"))?;
        Ok(text)
    })
    .await
    .map_err(|e| BackupError::Failed(format!("reading the globals stopped: {e}")))?;
    read.map(Some).map_err(|e| {
        BackupError::Refused(format!(
            "the backup's roles cannot be read ({e}); restore with --skip-roles to go on without them; nothing was restored"
        ))
    })
}
