//! The catalog: one checksummed JSON metadata file per backup, the commit marker that makes
//! a backup exist; IDs, file names, listing and the start-up sweep.
