//! Who may hold an HTTP connection: a cap for all clients together and one per client address,
//! so that one address cannot take the slots other scrapers need.

use prometheus::IntGauge;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was refused; the label of `steward_http_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The cap for all clients together was reached.
    Limit,
    /// This client address already holds its share.
    PerAddress,
}

impl Refusal {
    /// Every label value, so that each series exists from the start.
    pub const ALL: [Refusal; 2] = [Refusal::Limit, Refusal::PerAddress];

    /// The bounded label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Limit => "limit",
            Refusal::PerAddress => "per_address",
        }
    }
}

/// The endpoint's connection caps, owned by the accept loop.
pub struct ConnLimits {
    global: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    open: IntGauge,
}

impl ConnLimits {
    /// Caps for `total` connections, counted in the `open` gauge.
    pub fn new(total: usize, open: IntGauge) -> Self {
        Self {
            global: Arc::new(Semaphore::new(total)),
            per_address: Arc::default(),
            open,
        }
    }

    /// A place for a connection from `peer`, if it holds fewer than `per_address` and the
    /// total cap has room. The address is checked first, so that one address at its cap
    /// never counts against the others.
    pub fn admit(&self, peer: IpAddr, per_address: usize) -> Result<Slot, Refusal> {
        let key = client_key(peer);
        let mut map = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let held = map.get(&key).copied().unwrap_or(0);
        if held >= per_address {
            return Err(Refusal::PerAddress);
        }
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Limit)?;
        map.insert(key, held + 1);
        self.open.inc();
        Ok(Slot {
            _permit: permit,
            key,
            per_address: self.per_address.clone(),
            open: self.open.clone(),
        })
    }
}

/// The address a connection is counted under: IPv4 (also when mapped into IPv6) as it is,
/// IPv6 by its /64, since one IPv6 client usually holds a whole /64.
pub(super) fn client_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// A connection's place under both caps, counted in `steward_http_connections`; given back
/// when the connection task ends, however it ends.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    key: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    open: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
        let mut map = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_at_its_cap_leaves_room_for_others() {
        let open = IntGauge::new("open", "open").unwrap();
        let limits = ConnLimits::new(4, open.clone());
        let a: Vec<Slot> = (0..2)
            .map(|_| limits.admit(ip("127.0.0.2"), 2).unwrap())
            .collect();
        assert_eq!(
            limits.admit(ip("127.0.0.2"), 2).err(),
            Some(Refusal::PerAddress)
        );
        // The same address mapped into IPv6 is the same client.
        assert_eq!(
            limits.admit(ip("::ffff:127.0.0.2"), 2).err(),
            Some(Refusal::PerAddress)
        );
        let b = limits.admit(ip("127.0.0.1"), 2).unwrap();
        // One IPv6 /64 is one client.
        let c = limits.admit(ip("2001:db8::1"), 1).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8::2"), 1).err(),
            Some(Refusal::PerAddress)
        );
        assert_eq!(limits.admit(ip("127.0.0.3"), 2).err(), Some(Refusal::Limit));
        assert_eq!(open.get(), 4);
        drop(a);
        assert_eq!(open.get(), 2);
        let again = limits.admit(ip("127.0.0.2"), 2).unwrap();
        drop((again, b, c));
        assert_eq!(open.get(), 0);
        assert!(limits.per_address.lock().unwrap().is_empty());
    }
}
