//! A restored database gets the source's own properties back: created with its encoding and
//! locale (or refused, naming what this server lacks, unless the restore was told to take the
//! server's defaults), then given its owner, connection limit, ACL and per-database settings
//! once the data is in. What cannot be applied is said in the reply, never silently dropped.

use super::catalog::BackupMeta;
use super::ctx::Ctx;
use super::error::BackupError;
use super::scratch::{created_failed, pg_failed, Owned, Run};
use super::source_info::{apply_statements, create_options};
use tokio_postgres::error::SqlState;

/// Creates the run's scratch database with the encoding and locale the backup recorded.
/// Where this server cannot honour them, the restore is refused with what differs, or with
/// `any_locale` goes on with the server's defaults and returns what differs as a warning.
pub(super) async fn create_scratch(
    ctx: &Ctx,
    run: &Run,
    purpose: &str,
    meta: &BackupMeta,
    any_locale: bool,
) -> Result<(Owned, Vec<String>), BackupError> {
    let Some(props) = meta.source.as_ref().map(|s| &s.database) else {
        // A backup taken before steward recorded properties: the server's defaults.
        return Ok((run.create(ctx, purpose).await?, Vec::new()));
    };
    let major = server_major(ctx, run).await?;
    let wanted = format!(
        "encoding {}, LC_COLLATE {:?}, LC_CTYPE {:?}{}",
        props.encoding,
        props.collate,
        props.ctype,
        props
            .provider_locale
            .as_ref()
            .map(|l| format!(", {} locale {l:?}", props.locale_provider))
            .unwrap_or_default()
    );
    let refused = match create_options(props, major) {
        Ok(options) => match run.create_with(ctx, purpose, &options).await? {
            Ok(owned) => return Ok((owned, Vec::new())),
            Err(e) if is_locale_problem(&e) => ctx
                .scrubber
                .scrub(&super::pg_text::pg_error(&e).to_string()),
            Err(e) => return Err(created_failed(ctx, purpose, &e)),
        },
        Err(why) => why,
    };
    if !any_locale {
        return Err(BackupError::Refused(format!(
            "this server cannot create a database like the backup's ({wanted}): {refused}; nothing was restored — restore on a server that has that locale, or pass --any-locale to take this server's defaults"
        )));
    }
    let owned = run.create(ctx, purpose).await?;
    Ok((
        owned,
        vec![format!(
            "--any-locale: the backup's database had {wanted}, which this server cannot create ({refused}); restored with the server's default encoding and locale instead, so sort order and accepted characters may differ"
        )],
    ))
}

/// Errors of CREATE DATABASE that mean "not this encoding or locale here".
fn is_locale_problem(e: &tokio_postgres::Error) -> bool {
    const INVALID_LOCALE: SqlState = SqlState::WRONG_OBJECT_TYPE; // "invalid locale name"
    e.code().is_some_and(|c| {
        [
            INVALID_LOCALE,
            SqlState::INVALID_PARAMETER_VALUE,
            SqlState::FEATURE_NOT_SUPPORTED,
            SqlState::UNDEFINED_OBJECT,
        ]
        .contains(c)
    })
}

async fn server_major(ctx: &Ctx, run: &Run) -> Result<u32, BackupError> {
    let row = run
        .admin
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| pg_failed(ctx, "cannot ask the server's version", &e))?;
    Ok((row.get::<_, i32>(0) / 10000) as u32)
}

/// Gives the filled scratch database the backup's owner (unless `no_owner`), connection
/// limit, ACL and settings. Each statement stands alone: one that fails (a role this server
/// does not have) becomes a warning, and the rest still apply.
pub(super) async fn apply(
    ctx: &Ctx,
    run: &Run,
    scratch: &Owned,
    meta: &BackupMeta,
    no_owner: bool,
) -> Vec<String> {
    let Some(props) = meta.source.as_ref().map(|s| &s.database) else {
        return Vec::new();
    };
    let mut props = props.clone();
    let mut warnings = Vec::new();
    if no_owner {
        // The database stays steward's role's, as every object in it.
        match run.admin.query_one("SELECT current_user::text", &[]).await {
            Ok(row) => props.owner = row.get(0),
            Err(e) => warnings.push(ctx.scrubber.scrub(&format!(
                "database properties not applied: {}",
                super::pg_text::pg_error(&e)
            ))),
        }
        if !warnings.is_empty() {
            return warnings;
        }
    }
    for sql in apply_statements(&props, &scratch.name) {
        if let Err(e) = run.admin.batch_execute(&sql).await {
            let shown = sql.replace(&super::pg_text::ident(&scratch.name), "<target>");
            warnings.push(ctx.scrubber.scrub(&format!(
                "not applied: {shown} ({})",
                super::pg_text::pg_error(&e)
            )));
        }
    }
    warnings
}
