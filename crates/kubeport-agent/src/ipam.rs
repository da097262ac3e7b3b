//! Pod IP address management for one node's pod CIDR, persisted in the state directory so an
//! agent restart never hands out an address a live pod still holds.
//!
//! Addresses are handed out round-robin after the last one given (as the CNI host-local
//! plugin does), so a freed address is not reused at once. The network address, the gateway
//! (the CIDR's first host address, on the node's bridge) and the broadcast address are never
//! given to a pod.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Allocation state of one pod CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamState {
    #[serde(with = "cidr_text")]
    pub cidr: ipnet::Ipv4Net,
    /// Address → pod UID.
    pub allocations: BTreeMap<Ipv4Addr, String>,
    /// The last address handed out (the next search starts after it).
    pub last: Option<Ipv4Addr>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("pod CIDR {0} is not supported: only IPv4 pod CIDRs are")]
    NotIpv4(ipnet::IpNet),
    #[error("pod CIDR {0} is too small: it needs room for a gateway and at least one pod")]
    TooSmall(ipnet::IpNet),
    #[error("no free IP address left in pod CIDR {0}")]
    Exhausted(ipnet::Ipv4Net),
}

impl IpamState {
    pub fn new(cidr: ipnet::IpNet) -> Result<Self, IpamError> {
        let ipnet::IpNet::V4(v4) = cidr else {
            return Err(IpamError::NotIpv4(cidr));
        };
        let v4 = v4.trunc();
        if v4.prefix_len() > 29 {
            return Err(IpamError::TooSmall(cidr));
        }
        Ok(IpamState {
            cidr: v4,
            allocations: BTreeMap::new(),
            last: None,
        })
    }

    /// The gateway address (first host address), assigned to the node's bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        gateway_of(self.cidr)
    }

    /// The address of `uid`, allocating one if it has none.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.address_of(uid) {
            return Ok(ip);
        }
        let first = u32::from(self.gateway()) + 1;
        let last = u32::from(self.cidr.broadcast()) - 1;
        let start = match self.last.map(u32::from) {
            Some(l) if l >= first && l < last => l + 1,
            _ => first,
        };
        let span = last - first + 1;
        for i in 0..span {
            let candidate = first + (start - first + i) % span;
            let ip = Ipv4Addr::from(candidate);
            if let std::collections::btree_map::Entry::Vacant(slot) = self.allocations.entry(ip) {
                slot.insert(uid.to_string());
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted(self.cidr))
    }

    /// Records an address a pod already holds (adoption after a restart). Returns false when
    /// the address is outside the CIDR, reserved, or held by another pod.
    pub fn claim(&mut self, uid: &str, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        if !self.cidr.contains(&ip)
            || n <= u32::from(self.gateway())
            || n >= u32::from(self.cidr.broadcast())
        {
            return false;
        }
        match self.allocations.get(&ip) {
            Some(holder) => holder == uid,
            None => {
                self.allocations.insert(ip, uid.to_string());
                true
            }
        }
    }

    pub fn address_of(&self, uid: &str) -> Option<Ipv4Addr> {
        self.allocations
            .iter()
            .find(|(_, holder)| holder.as_str() == uid)
            .map(|(ip, _)| *ip)
    }

    /// Frees the address of `uid`; returns it.
    pub fn release(&mut self, uid: &str) -> Option<Ipv4Addr> {
        let ip = self.address_of(uid)?;
        self.allocations.remove(&ip);
        Some(ip)
    }

    /// UIDs holding addresses.
    pub fn holders(&self) -> Vec<String> {
        self.allocations.values().cloned().collect()
    }
}

/// A CIDR as its text form in the state file.
mod cidr_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(c: &ipnet::Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(c)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ipnet::Ipv4Net, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The first host address of a CIDR (the pods' gateway).
pub fn gateway_of(cidr: ipnet::Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()) + 1)
}

/// `IpamState` backed by a JSON file (written atomically on every change).
pub struct Ipam {
    path: PathBuf,
    state: IpamState,
}

impl Ipam {
    /// Loads the state for `cidr` from `path`, or starts empty. A file for a different CIDR
    /// (the node was re-created with another range) is discarded.
    pub fn load(path: &Path, cidr: ipnet::IpNet) -> anyhow::Result<Self> {
        let fresh = IpamState::new(cidr)?;
        let state = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<IpamState>(&bytes) {
                Ok(s) if s.cidr == fresh.cidr => s,
                Ok(_) => fresh,
                Err(e) => {
                    tracing::warn!("ignoring unreadable IPAM state {}: {e}", path.display());
                    fresh
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh,
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        Ok(Ipam {
            path: path.to_path_buf(),
            state,
        })
    }

    pub fn state(&self) -> &IpamState {
        &self.state
    }

    pub fn allocate(&mut self, uid: &str) -> anyhow::Result<IpAddr> {
        let ip = self.state.allocate(uid)?;
        self.save()?;
        Ok(IpAddr::V4(ip))
    }

    pub fn claim(&mut self, uid: &str, ip: Ipv4Addr) -> anyhow::Result<bool> {
        let ok = self.state.claim(uid, ip);
        if ok {
            self.save()?;
        }
        Ok(ok)
    }

    pub fn release(&mut self, uid: &str) -> anyhow::Result<Option<Ipv4Addr>> {
        let ip = self.state.release(uid);
        if ip.is_some() {
            self.save()?;
        }
        Ok(ip)
    }

    fn save(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.state)?)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> ipnet::IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn first_pods_get_dot_two_and_up_and_gateway_is_dot_one() {
        let mut s = IpamState::new(cidr("10.244.1.0/24")).unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 244, 1, 1));
        assert_eq!(s.allocate("a").unwrap(), Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(s.allocate("b").unwrap(), Ipv4Addr::new(10, 244, 1, 3));
        // Idempotent per pod.
        assert_eq!(s.allocate("a").unwrap(), Ipv4Addr::new(10, 244, 1, 2));
    }

    #[test]
    fn freed_addresses_are_not_reused_at_once_and_wrap_around() {
        let mut s = IpamState::new(cidr("10.0.0.0/29")).unwrap();
        // Hosts: .1 gateway, .2-.6 pods, .7 broadcast.
        let got: Vec<_> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|u| s.allocate(u).unwrap().octets()[3])
            .collect();
        assert_eq!(got, vec![2, 3, 4, 5, 6]);
        assert_eq!(
            s.allocate("f"),
            Err(IpamError::Exhausted("10.0.0.0/29".parse().unwrap()))
        );
        assert_eq!(s.release("b"), Some(Ipv4Addr::new(10, 0, 0, 3)));
        assert_eq!(s.allocate("f").unwrap(), Ipv4Addr::new(10, 0, 0, 3));
        s.release("a");
        s.release("d");
        // Round robin continues after .3: .4 .5 .6 taken, wraps to .2.
        assert_eq!(s.allocate("g").unwrap(), Ipv4Addr::new(10, 0, 0, 5));
    }

    #[test]
    fn claim_respects_holders_and_reserved_addresses() {
        let mut s = IpamState::new(cidr("10.244.2.0/24")).unwrap();
        assert!(s.claim("a", Ipv4Addr::new(10, 244, 2, 9)));
        assert!(s.claim("a", Ipv4Addr::new(10, 244, 2, 9)));
        assert!(!s.claim("b", Ipv4Addr::new(10, 244, 2, 9)));
        assert!(!s.claim("b", Ipv4Addr::new(10, 244, 2, 1)));
        assert!(!s.claim("b", Ipv4Addr::new(10, 244, 2, 255)));
        assert!(!s.claim("b", Ipv4Addr::new(10, 244, 3, 4)));
        assert_eq!(s.holders(), vec!["a".to_string()]);
    }

    #[test]
    fn rejects_ipv6_and_tiny_cidrs() {
        assert!(matches!(
            IpamState::new(cidr("fd00::/64")),
            Err(IpamError::NotIpv4(_))
        ));
        assert!(matches!(
            IpamState::new(cidr("10.0.0.0/30")),
            Err(IpamError::TooSmall(_))
        ));
    }

    #[test]
    fn persisted_state_survives_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.json");
        let mut ipam = Ipam::load(&path, cidr("10.244.0.0/24")).unwrap();
        assert_eq!(ipam.allocate("a").unwrap().to_string(), "10.244.0.2");
        let mut again = Ipam::load(&path, cidr("10.244.0.0/24")).unwrap();
        assert_eq!(again.allocate("b").unwrap().to_string(), "10.244.0.3");
        assert_eq!(
            again.state().address_of("a"),
            Some(Ipv4Addr::new(10, 244, 0, 2))
        );
        // Another CIDR starts fresh.
        let other = Ipam::load(&path, cidr("10.244.5.0/24")).unwrap();
        assert!(other.state().allocations.is_empty());
    }
}
