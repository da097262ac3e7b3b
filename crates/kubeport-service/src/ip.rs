//! IP parsing as Go's `netutils.ParseIPSloppy` / `ParseCIDRSloppy` and `net.ParseIP` accept it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family, spelled as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    pub(crate) fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    pub(crate) fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// IPv4-mapped IPv6 addresses count as IPv4, as in Go's `net.IP`.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Go's `net.ParseIP` (strict: no leading zeros in IPv4 octets).
pub(crate) fn parse_ip_strict(s: &str) -> Option<IpAddr> {
    if let Ok(v4) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    s.parse::<Ipv6Addr>().ok().map(|v6| unmap(IpAddr::V6(v6)))
}

/// `netutils.ParseIPSloppy`: like `net.ParseIP` but IPv4 octets may carry leading zeros
/// (read as decimal).
pub(crate) fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Some(ip) = parse_ip_strict(s) {
        return Some(ip);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        octets[i] = p.parse::<u8>().ok()?;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// `netutils.ParseCIDRSloppy` succeeded.
pub(crate) fn is_valid_cidr_sloppy(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    if parse_ip_sloppy(addr).is_none() {
        return false;
    }
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return false;
    }
    let Ok(bits) = len.parse::<u32>() else {
        return false;
    };
    // Go checks the prefix against the textual form's family (an IPv4-mapped IPv6 address
    // takes IPv6 lengths).
    let max = if addr.contains(':') { 128 } else { 32 };
    bits <= max
}

/// `validation.IsValidIP`'s message.
pub(crate) const INVALID_IP_MSG: &str =
    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
/// `validation.IsValidCIDR`'s message.
pub(crate) const INVALID_CIDR_MSG: &str =
    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// Go's `IsLinkLocalUnicast`.
pub(crate) fn is_link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 169 && v4.octets()[1] == 254,
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Go's `IsLinkLocalMulticast`.
pub(crate) fn is_link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 224 && v4.octets()[1] == 0 && v4.octets()[2] == 0,
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_parsing_accepts_leading_zeros_and_unmaps() {
        assert_eq!(
            parse_ip_sloppy("010.096.000.010"),
            Some("10.96.0.10".parse().unwrap())
        );
        assert_eq!(parse_ip_strict("010.096.000.010"), None);
        assert_eq!(
            parse_ip_sloppy("::ffff:10.96.0.1"),
            Some("10.96.0.1".parse().unwrap())
        );
        assert!(is_valid_cidr_sloppy("10.0.0.0/8") && is_valid_cidr_sloppy("2001:db8::/64"));
        assert!(
            !is_valid_cidr_sloppy("10.0.0.0/33")
                && !is_valid_cidr_sloppy("10.0.0.0")
                && !is_valid_cidr_sloppy("x/8")
        );
    }
}
