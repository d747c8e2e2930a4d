//! Who may hold an HTTP connection: a cap for all clients together and one per client address,
//! so that one address cannot take the slots other scrapers need.

use prometheus::IntGauge;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Why a connection was refused or closed; the label of
/// `steward_http_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The cap for all clients together was reached, and no address holds more than its
    /// fair share to make room.
    Limit,
    /// This client address already holds its share.
    PerAddress,
    /// An open connection of the address holding the most was closed to make room for an
    /// address holding fewer (many addresses together at the total cap).
    Evicted,
}

impl Refusal {
    /// Every label value, so that each series exists from the start.
    pub const ALL: [Refusal; 3] = [Refusal::Limit, Refusal::PerAddress, Refusal::Evicted];

    /// The bounded label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Limit => "limit",
            Refusal::PerAddress => "per_address",
            Refusal::Evicted => "evicted",
        }
    }
}

/// Who holds the endpoint's connections, in admission order per address.
#[derive(Default)]
struct Held {
    total: usize,
    next_id: u64,
    by_address: HashMap<IpAddr, Vec<(u64, CancellationToken)>>,
}

impl Held {
    /// The address holding the most connections, with how many.
    fn biggest(&self) -> Option<(IpAddr, usize)> {
        self.by_address
            .iter()
            .map(|(a, v)| (*a, v.len()))
            .max_by_key(|(_, n)| *n)
    }

    /// Closes the oldest connection of `address`; it no longer counts from now on.
    fn evict_oldest(&mut self, address: IpAddr) {
        let list = self.by_address.entry(address).or_default();
        if !list.is_empty() {
            let (_, token) = list.remove(0);
            token.cancel();
            self.total -= 1;
        }
        if list.is_empty() {
            self.by_address.remove(&address);
        }
    }
}

/// The endpoint's connection caps, owned by the accept loop.
pub struct ConnLimits {
    total: usize,
    held: Arc<Mutex<Held>>,
    open: IntGauge,
}

impl ConnLimits {
    /// Caps for `total` connections, counted in the `open` gauge.
    pub fn new(total: usize, open: IntGauge) -> Self {
        Self {
            total,
            held: Arc::default(),
            open,
        }
    }

    /// A place for a connection from `peer`, if it holds fewer than `per_address`. At the
    /// total cap, the oldest connection of the address holding the most is closed to make
    /// room, when that address holds more than this one would: a crowd of addresses can
    /// then never shut out one that holds few. The second value says whether one was.
    pub fn admit(&self, peer: IpAddr, per_address: usize) -> Result<(Slot, bool), Refusal> {
        let key = client_key(peer);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.by_address.get(&key).map_or(0, Vec::len);
        if mine >= per_address {
            return Err(Refusal::PerAddress);
        }
        let mut evicted = false;
        if held.total >= self.total {
            match held.biggest() {
                Some((address, n)) if n > mine + 1 => {
                    held.evict_oldest(address);
                    self.open.dec();
                    evicted = true;
                }
                _ => return Err(Refusal::Limit),
            }
        }
        let id = held.next_id;
        held.next_id += 1;
        let token = CancellationToken::new();
        held.by_address
            .entry(key)
            .or_default()
            .push((id, token.clone()));
        held.total += 1;
        self.open.inc();
        Ok((
            Slot {
                id,
                key,
                evicted: token,
                held: self.held.clone(),
                open: self.open.clone(),
            },
            evicted,
        ))
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
/// when the connection task ends, however it ends, or at once when it is evicted.
pub struct Slot {
    id: u64,
    key: IpAddr,
    evicted: CancellationToken,
    held: Arc<Mutex<Held>>,
    open: IntGauge,
}

impl Slot {
    /// Cancelled when this connection is closed to make room for another address.
    pub fn evicted(&self) -> CancellationToken {
        self.evicted.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = held.by_address.get_mut(&self.key) else {
            return;
        };
        // An evicted connection was taken off the books already.
        let Some(at) = list.iter().position(|(id, _)| *id == self.id) else {
            return;
        };
        list.remove(at);
        if list.is_empty() {
            held.by_address.remove(&self.key);
        }
        held.total -= 1;
        self.open.dec();
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
            .map(|_| limits.admit(ip("127.0.0.2"), 2).unwrap().0)
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
        let b = limits.admit(ip("127.0.0.1"), 2).unwrap().0;
        // One IPv6 /64 is one client.
        let c = limits.admit(ip("2001:db8::1"), 1).unwrap().0;
        assert_eq!(
            limits.admit(ip("2001:db8::2"), 1).err(),
            Some(Refusal::PerAddress)
        );
        // At the total cap a newcomer takes the oldest place of the biggest holder.
        let (d, evicted) = limits.admit(ip("127.0.0.3"), 2).unwrap();
        assert!(evicted && a[0].evicted().is_cancelled() && !a[1].evicted().is_cancelled());
        assert_eq!(open.get(), 4);
        // Now nobody holds more than one: no room is made for another.
        assert_eq!(limits.admit(ip("127.0.0.4"), 2).err(), Some(Refusal::Limit));
        drop(a);
        assert_eq!(open.get(), 3);
        let again = limits.admit(ip("127.0.0.2"), 2).unwrap().0;
        drop((again, b, c, d));
        assert_eq!(open.get(), 0);
        assert!(limits.held.lock().unwrap().by_address.is_empty());
    }

    #[test]
    fn a_crowd_of_addresses_at_the_total_cap_makes_room_for_one_more() {
        let open = IntGauge::new("open", "open").unwrap();
        let limits = ConnLimits::new(6, open.clone());
        // Three addresses take every place, two each.
        let crowd: Vec<Slot> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .flat_map(|a| {
                (0..2)
                    .map(|_| limits.admit(ip(a), 4).unwrap().0)
                    .collect::<Vec<_>>()
            })
            .collect();
        // A newcomer gets a place: the oldest connection of a biggest holder is closed.
        let (scraper, evicted) = limits.admit(ip("127.0.0.1"), 4).unwrap();
        assert!(evicted);
        assert_eq!(
            crowd.iter().filter(|s| s.evicted().is_cancelled()).count(),
            1
        );
        assert_eq!(open.get(), 6);
        // The crowd pushing on never closes the newcomer's one connection.
        let mut more = Vec::new();
        for a in ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .cycle()
            .take(12)
        {
            if let Ok((s, _)) = limits.admit(ip(a), 4) {
                more.push(s);
            }
            assert!(!scraper.evicted().is_cancelled());
        }
        assert_eq!(open.get(), 6);
        // Equal shares everywhere: nobody holds more than the newcomer would, so refused.
        let limits = ConnLimits::new(2, open.clone());
        let _one = limits.admit(ip("10.0.0.1"), 4).unwrap();
        let _two = limits.admit(ip("10.0.0.2"), 4).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.3"), 4).err(), Some(Refusal::Limit));
        drop((crowd, more, scraper));
    }
}
