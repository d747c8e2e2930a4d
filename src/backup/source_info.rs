//! Where a backup came from, read and given back, so that a restore gives the database back
//! as it was: the cluster (system identifier, host), and the database's own properties that
//! pg_dump leaves out of a dump without `--create` (encoding, locale, owner, connection limit,
//! comment, ACL, `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET`). Read with one
//! query at backup time; turned back into SQL at restore time. The record itself is
//! `catalog::source`.

use super::catalog::source::{DatabaseProps, DbSetting};
use super::pg_text::{ident, literal};
use tokio_postgres::Client;

/// The row of `pg_database` as JSON, so that columns renamed between major versions
/// (`daticulocale` in 15 and 16, `datlocale` from 17) are read by name.
const PROPS_SQL: &str = "
SELECT to_jsonb(d)::text,
       pg_encoding_to_char(d.encoding),
       pg_get_userbyid(d.datdba),
       shobj_description(d.oid, 'pg_database'),
       d.datacl::text[],
       pg_database_size(d.oid),
       ARRAY(SELECT coalesce(pg_get_userbyid(NULLIF(s.setrole, 0)), '') || E'\\x01' || c
             FROM pg_db_role_setting s, unnest(s.setconfig) c
             WHERE s.setdatabase = d.oid ORDER BY s.setrole, c)
FROM pg_database d WHERE d.datname = current_database()";

/// Reads the properties of the database `c` is connected to.
pub async fn read_props(c: &Client) -> Result<(DatabaseProps, u64), tokio_postgres::Error> {
    let row = c.query_one(PROPS_SQL, &[]).await?;
    let json: serde_json::Value = serde_json::from_str(row.get::<_, &str>(0)).unwrap_or_default();
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let locale_provider = match text("datlocprovider").as_deref() {
        Some("i") => "icu",
        Some("b") => "builtin",
        _ => "libc",
    }
    .to_string();
    let provider_locale = text("datlocale").or_else(|| text("daticulocale"));
    let settings = row
        .get::<_, Vec<String>>(6)
        .into_iter()
        .filter_map(|s| {
            let (role, setting) = s.split_once('\u{1}')?;
            Some(DbSetting {
                role: (!role.is_empty()).then(|| role.to_string()),
                setting: setting.to_string(),
            })
        })
        .collect();
    let props = DatabaseProps {
        encoding: row.get(1),
        collate: text("datcollate").unwrap_or_default(),
        ctype: text("datctype").unwrap_or_default(),
        provider_locale: provider_locale.filter(|_| locale_provider != "libc"),
        locale_provider,
        owner: row.get(2),
        connection_limit: json
            .get("datconnlimit")
            .and_then(|v| v.as_i64())
            .unwrap_or(-1) as i32,
        comment: row.get(3),
        acl: row.get(4),
        settings,
    };
    let size: i64 = row.get(5);
    Ok((props, size.max(0) as u64))
}

/// Every role that objects of the current database depend on (`pg_shdepend`: owners, ACLs,
/// policies, default privileges), the database's owner and grantees and the roles of its
/// settings, and the bootstrap superuser when it owns user objects (it has no `pg_shdepend`
/// rows); predefined `pg_*` roles exist everywhere and are left out.
const ROLES_SQL: &str = "
WITH db AS (SELECT oid, datdba, datacl FROM pg_database WHERE datname = current_database()),
ids AS (
  SELECT refobjid AS id FROM pg_shdepend, db
   WHERE refclassid = 'pg_authid'::regclass AND dbid = db.oid
  UNION SELECT datdba FROM db
  UNION SELECT (aclexplode(datacl)).grantee FROM db
  UNION SELECT setrole FROM pg_db_role_setting, db WHERE setdatabase = db.oid
  UNION SELECT 10 WHERE EXISTS (SELECT 1 FROM pg_class WHERE relowner = 10 AND oid >= 16384)
     OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = 10 AND oid >= 16384)
     OR EXISTS (SELECT 1 FROM pg_proc WHERE proowner = 10 AND oid >= 16384)
     OR EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE lomowner = 10)
)
SELECT rolname::text FROM pg_roles JOIN ids ON pg_roles.oid = ids.id
 WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1";

/// The roles the current database refers to (see [`ROLES_SQL`]).
pub async fn referenced_roles(c: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = c.query(ROLES_SQL, &[]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The cluster's system identifier, when steward's role may read it.
pub async fn system_identifier(c: &Client) -> Option<String> {
    c.query_one(
        "SELECT system_identifier::text FROM pg_control_system()",
        &[],
    )
    .await
    .ok()
    .map(|r| r.get(0))
}

/// What follows `CREATE DATABASE name` so that the new database has the source's encoding and
/// locale (`server_major` is the target's: locale providers exist from PostgreSQL 15).
pub fn create_options(p: &DatabaseProps, server_major: u32) -> Result<String, String> {
    let mut out = format!(
        "TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        literal(&p.encoding),
        literal(&p.collate),
        literal(&p.ctype)
    );
    match (p.locale_provider.as_str(), &p.provider_locale) {
        ("libc", _) => {
            if server_major >= 15 {
                out += " LOCALE_PROVIDER libc";
            }
        }
        ("icu", Some(l)) if server_major >= 15 => {
            out += &format!(" LOCALE_PROVIDER icu ICU_LOCALE {}", literal(l));
        }
        ("builtin", Some(l)) if server_major >= 17 => {
            out += &format!(" LOCALE_PROVIDER builtin BUILTIN_LOCALE {}", literal(l));
        }
        (provider, l) => {
            return Err(format!(
                "the backup's database uses the {provider} locale provider ({}), which this PostgreSQL {server_major} server does not have",
                l.as_deref().unwrap_or("no locale recorded")
            ))
        }
    }
    Ok(out)
}

/// The statements that give `db` (already filled) the source's owner, connection limit, ACL
/// and settings. The comment is set when the database gets its name (see `swap`).
pub fn apply_statements(p: &DatabaseProps, db: &str) -> Vec<String> {
    let d = ident(db);
    let mut out = vec![
        format!("ALTER DATABASE {d} OWNER TO {}", ident(&p.owner)),
        format!("ALTER DATABASE {d} CONNECTION LIMIT {}", p.connection_limit),
    ];
    if let Some(acl) = &p.acl {
        // From nothing, as the source had it: the default ACL (PUBLIC may connect and create
        // temporary tables, the owner everything) is replaced by the recorded items.
        out.push(format!("REVOKE ALL ON DATABASE {d} FROM PUBLIC"));
        out.push(format!(
            "REVOKE ALL ON DATABASE {d} FROM {}",
            ident(&p.owner)
        ));
        for item in acl {
            if let Some(grant) = grant_for(item, &d) {
                out.push(grant);
            }
        }
    }
    for s in &p.settings {
        let Some((name, value)) = s.setting.split_once('=') else {
            continue;
        };
        let set = format!("SET {} = {}", ident(name), setting_value(name, value));
        out.push(match &s.role {
            None => format!("ALTER DATABASE {d} {set}"),
            Some(r) => format!("ALTER ROLE {} IN DATABASE {d} {set}", ident(r)),
        });
    }
    out
}

/// Settings whose value is a list (PostgreSQL's GUC_LIST_QUOTE): each element is its own
/// literal, or `search_path = 'app, public'` would name one schema called "app, public".
const LIST_SETTINGS: [&str; 6] = [
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// A setting's value as SQL, as pg_dump writes it.
fn setting_value(name: &str, value: &str) -> String {
    if !LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        return literal(value);
    }
    let mut items = Vec::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        let (item, after) = match rest.strip_prefix('"') {
            Some(q) => match split_acl_name(rest, ',') {
                Some((name, after)) => (name, after),
                None => (q.trim_end_matches('"').replace("\"\"", "\""), ""),
            },
            None => match rest.split_once(',') {
                Some((a, b)) => (a.trim_end().to_string(), b),
                None => (rest.trim_end().to_string(), ""),
            },
        };
        items.push(literal(&item));
        rest = after.trim_start();
    }
    if items.is_empty() {
        return literal("");
    }
    items.join(", ")
}

/// `GRANT …` for one ACL item (`grantee=CTc*/grantor`); privileges with `*` are grantable.
fn grant_for(item: &str, d: &str) -> Option<String> {
    let (grantee, rest) = split_acl_name(item, '=')?;
    let (privs, _grantor) = rest.split_once('/')?;
    let to = if grantee.is_empty() {
        "PUBLIC".to_string()
    } else {
        ident(&grantee)
    };
    let mut plain = Vec::new();
    let mut grantable = Vec::new();
    let mut chars = privs.chars().peekable();
    while let Some(c) = chars.next() {
        let name = match c {
            'C' => "CREATE",
            'T' => "TEMPORARY",
            'c' => "CONNECT",
            _ => continue,
        };
        if chars.peek() == Some(&'*') {
            chars.next();
            grantable.push(name);
        } else {
            plain.push(name);
        }
    }
    let mut sql = Vec::new();
    if !plain.is_empty() {
        sql.push(format!(
            "GRANT {} ON DATABASE {d} TO {to}",
            plain.join(", ")
        ));
    }
    if !grantable.is_empty() {
        sql.push(format!(
            "GRANT {} ON DATABASE {d} TO {to} WITH GRANT OPTION",
            grantable.join(", ")
        ));
    }
    (!sql.is_empty()).then(|| sql.join("; "))
}

/// Splits an aclitem at the first `sep` outside a double-quoted role name, unquoting it.
fn split_acl_name(item: &str, sep: char) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut quoted = false;
    let mut chars = item.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if quoted && chars.peek().map(|p| p.1) == Some('"') => {
                chars.next();
                name.push('"');
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => return Some((name, &item[i + 1..])),
            c => name.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> DatabaseProps {
        DatabaseProps {
            encoding: "LATIN1".into(),
            collate: "C".into(),
            ctype: "C".into(),
            locale_provider: "libc".into(),
            provider_locale: None,
            owner: "app owner".into(),
            connection_limit: 7,
            comment: Some("it's ours".into()),
            acl: Some(vec![
                "=T/\"app owner\"".into(),
                "\"app owner\"=CTc/\"app owner\"".into(),
                "reader=c*/\"app owner\"".into(),
            ]),
            settings: vec![
                DbSetting {
                    role: None,
                    setting: "work_mem=8MB".into(),
                },
                DbSetting {
                    role: Some("reader".into()),
                    setting: "search_path=app, public".into(),
                },
            ],
        }
    }

    #[test]
    fn create_options_carry_encoding_and_locale() {
        let p = props();
        assert_eq!(
            create_options(&p, 15).unwrap(),
            "TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' LOCALE_PROVIDER libc"
        );
        assert!(!create_options(&p, 14).unwrap().contains("PROVIDER"));
        let icu = DatabaseProps {
            locale_provider: "icu".into(),
            provider_locale: Some("de-DE".into()),
            ..p
        };
        assert!(create_options(&icu, 15)
            .unwrap()
            .ends_with("LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'"));
        let e = create_options(&icu, 14).unwrap_err();
        assert!(e.contains("icu") && e.contains("de-DE"), "{e}");
    }

    #[test]
    fn statements_restore_owner_limit_acl_and_settings() {
        let s = apply_statements(&props(), "new db");
        assert_eq!(
            s,
            [
                "ALTER DATABASE \"new db\" OWNER TO \"app owner\"",
                "ALTER DATABASE \"new db\" CONNECTION LIMIT 7",
                "REVOKE ALL ON DATABASE \"new db\" FROM PUBLIC",
                "REVOKE ALL ON DATABASE \"new db\" FROM \"app owner\"",
                "GRANT TEMPORARY ON DATABASE \"new db\" TO PUBLIC",
                "GRANT CREATE, TEMPORARY, CONNECT ON DATABASE \"new db\" TO \"app owner\"",
                "GRANT CONNECT ON DATABASE \"new db\" TO \"reader\" WITH GRANT OPTION",
                "ALTER DATABASE \"new db\" SET \"work_mem\" = '8MB'",
                "ALTER ROLE \"reader\" IN DATABASE \"new db\" SET \"search_path\" = 'app', 'public'",
            ]
        );
        let default_acl = DatabaseProps {
            acl: None,
            settings: vec![],
            ..props()
        };
        assert_eq!(apply_statements(&default_acl, "d").len(), 2);
    }

    #[test]
    fn list_settings_quote_each_element() {
        assert_eq!(
            setting_value("search_path", "\"$user\", public, \"My Schema\""),
            "'$user', 'public', 'My Schema'"
        );
        assert_eq!(setting_value("search_path", "\"\""), "''");
        assert_eq!(setting_value("work_mem", "8MB, x"), "'8MB, x'");
    }

    #[test]
    fn acl_names_are_unquoted() {
        assert_eq!(
            split_acl_name("\"a\"\"b=c\"=c/x", '='),
            Some(("a\"b=c".to_string(), "c/x"))
        );
        assert_eq!(split_acl_name("=T/x", '='), Some((String::new(), "T/x")));
        assert_eq!(split_acl_name("nothing", '='), None);
    }
}
