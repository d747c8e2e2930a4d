//! Retention: which backups to delete, as a pure function of the catalog, the policy and now.
