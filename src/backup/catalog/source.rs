//! What a backup's metadata records about its source, as plain data: the cluster, the
//! database's own properties (read at backup time by `source_info`, turned back into SQL at
//! restore time) and the rows of each table (counted by `row_count` as the dump streams past).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Rows per table, keyed `"schema"."table"` (both quoted as identifiers).
pub type TableRows = BTreeMap<String, u64>;

/// The source of a backup, as recorded in its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// `pg_control_system().system_identifier`: tells one cluster from another (absent when
    /// steward's role may not read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    /// The host (or socket directory) and port of `postgres.url`.
    pub host: String,
    /// Size of the database when the backup started.
    pub size_bytes: u64,
    /// pg_dump's arguments (connection settings are in its environment, never here).
    pub pg_dump_args: Vec<String>,
    pub database: DatabaseProps,
    /// The roles the dump refers to (owners, grantees, policy and setting roles, the
    /// database's owner): the ones a restore on another server must find or create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// A database's properties that a restore re-creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseProps {
    /// Server encoding, e.g. `UTF8`, `LATIN1`, `SQL_ASCII`.
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// `libc`, `icu` or `builtin`.
    pub locale_provider: String,
    /// The ICU (or builtin) locale, when the provider is not libc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_locale: Option<String>,
    pub owner: String,
    /// -1: no limit.
    pub connection_limit: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The database's ACL items (`grantee=privs/grantor`, empty grantee for PUBLIC); `None`
    /// when it has the default ACL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<String>>,
    /// `ALTER DATABASE … SET` (role `None`) and `ALTER ROLE … IN DATABASE … SET` settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<DbSetting>,
}

/// One per-database setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSetting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `name=value`, as `pg_db_role_setting` holds it.
    pub setting: String,
}
