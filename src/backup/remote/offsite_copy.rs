//! Whether a backup's record of an off-site copy names the bucket in use: a copy checked in
//! another bucket (another URL or service) does not count.

use super::store::{identity, RemoteStore};
use crate::backup::catalog::OffsiteCopy;
use crate::config::RemoteConfig;

/// True when `o` is a copy in the bucket `store` is for.
pub fn counts(o: &OffsiteCopy, store: &RemoteStore) -> bool {
    o.url == store.url && o.endpoint == store.endpoint
}

/// True when `o` is a copy in the bucket `r` configures.
pub fn counts_for(o: &OffsiteCopy, r: &RemoteConfig) -> bool {
    let (url, endpoint) = identity(r);
    r.enabled() && o.url == url && o.endpoint == endpoint
}
