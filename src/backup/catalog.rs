//! The catalog: one checksummed JSON metadata file per backup, the commit marker that makes
//! a backup exist. Each part has a file of its own: the record (`meta`, `source`), its error
//! (`error`), IDs and file names (`names`), the files on disk (`files`), `backup list` and
//! recorded results (`listing`), the start-up sweep (`sweep`), the escaping of database names
//! into directory names (`dir_name`) and the catalog's lock (`lock`). This file only declares
//! and re-exports them.

pub mod dir_name;
pub mod error;
mod files;
mod listing;
pub mod lock;
pub mod meta;
mod names;
pub mod source;
mod sweep;
pub use error::CatalogError;
pub use files::{
    commit, delete, ensure_dir, find, load_all, mark_running, sync_dir, unmark_running,
};
pub use listing::{
    delete_untrusted, listing, listing_with_problems, parse_id, record_offsite,
    record_restore_test, record_verify,
};
pub use meta::{
    BackupMeta, BackupStatus, Encryption, GlobalsFile, Location, OffsiteCopy, RestoreTestRecord,
};
pub use names::{
    data_file_name, data_path, db_dir, globals_file_name, globals_path, meta_path, new_id,
    validate_id,
};
pub use source::{DatabaseProps, DbSetting, SourceInfo, TableRows};
pub use sweep::sweep;

#[cfg(test)]
mod tests;
