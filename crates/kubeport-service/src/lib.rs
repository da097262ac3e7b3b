//! The Service registry's pure logic with kube-apiserver's semantics (1.33-era):
//! defaulting ([`set_defaults`]), validation ([`validate_create`], [`validate_update`],
//! [`validate_status_update`]), the registry strategy ([`prepare_create`],
//! [`prepare_update`], [`prepare_status_update`]) and ClusterIP / NodePort allocation with
//! repair ([`ServiceAllocator`]).
//!
//! # Order of operations (as kube-apiserver's generic store runs them)
//!
//! Create: decode → [`set_defaults`] → [`prepare_create`] → [`ServiceAllocator::allocate_create`]
//! → [`validate_create`] (on errors: `revert`) → storage write → `commit` (or `revert`).
//! Allocation runs *before* validation: a `LoadBalancer` with `externalTrafficPolicy: Local`
//! only passes validation once its `healthCheckNodePort` has been allocated, and allocation
//! errors (`provided port is already allocated`...) win over validation errors.
//! [`ServiceAllocator::admit_create`] does the allocate-validate-revert part in one call.
//!
//! Update: decode → [`set_defaults`] → [`prepare_update`] → [`ServiceAllocator::allocate_update`]
//! → [`validate_update`] (on errors: `revert`) → write → `commit` (old values are released
//! only now) or `revert`. [`ServiceAllocator::admit_update`] bundles the middle three.
//!
//! Status update: [`prepare_status_update`] → [`validate_status_update`]; no allocation.
//!
//! Delete: after the write committed, [`ServiceAllocator::release`].
//!
//! All errors are `kubeport_core::FieldError`s rendered byte-for-byte as kube-apiserver does;
//! [`AllocError::Internal`] carries the text kube-apiserver wraps as
//! `Internal error occurred: <text>` (HTTP 500).

mod alloc;
mod bitmap;
mod defaults;
mod ip;
mod strategy;
mod util;
mod validation;

pub use alloc::{AllocError, Allocation, RepairProblem, RepairReport, ServiceAllocator};
pub use defaults::set_defaults;
pub use strategy::{
    normalize_cluster_ips, patch_allocated_values, prepare_create, prepare_status_update,
    prepare_update,
};
pub use validation::{
    validate_create, validate_object_meta, validate_object_meta_update, validate_status_update,
    validate_update,
};

use std::fmt;
use std::str::FromStr;

/// `--service-node-port-range`: `size` ports starting at `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub base: u16,
    pub size: u16,
}

impl PortRange {
    /// kube-apiserver's default, 30000-32767.
    pub const DEFAULT: PortRange = PortRange {
        base: 30000,
        size: 2768,
    };

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: i64) -> bool {
        port >= self.base as i64 && port < self.base as i64 + self.size as i64
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::DEFAULT
    }
}

/// Printed as kube-apiserver prints it in messages: `30000-32767` (empty for an empty range).
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.size == 0 {
            return Ok(());
        }
        write!(
            f,
            "{}-{}",
            self.base,
            self.base as u32 + self.size as u32 - 1
        )
    }
}

/// Why a port range string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRangeError(pub String);

impl fmt::Display for PortRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortRangeError {}

fn atoi(s: &str) -> Result<i64, PortRangeError> {
    s.parse::<i64>().map_err(|_| {
        PortRangeError(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            kubeport_core::field::go_quote(s)
        ))
    })
}

/// Parses `min-max` (inclusive), `min+offset` (inclusive) or a single `port`, like
/// apimachinery's `PortRange.Set`.
impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(PortRange { base: 0, size: 0 });
        }
        let (low, high) = match (value.find('-'), value.find('+')) {
            (None, None) => {
                let p = atoi(value)?;
                (p, p)
            }
            (Some(h), None) => (atoi(&value[..h])?, atoi(&value[h + 1..])?),
            (None, Some(p)) => {
                let low = atoi(&value[..p])?;
                (low, low + atoi(&value[p + 1..])?)
            }
            (Some(_), Some(_)) => {
                return Err(PortRangeError(format!(
                    "unable to parse port range: {value}"
                )))
            }
        };
        if low > 65535 || high > 65535 {
            return Err(PortRangeError(format!(
                "the port range cannot be greater than 65535: {value}"
            )));
        }
        if high < low {
            return Err(PortRangeError(format!(
                "end port cannot be less than start port: {value}"
            )));
        }
        if low < 0 {
            return Err(PortRangeError(format!(
                "unable to parse port range: {value}"
            )));
        }
        let size = 1 + high - low;
        if size > u16::MAX as i64 {
            return Err(PortRangeError(format!(
                "the port range may hold at most 65535 ports: {value}"
            )));
        }
        Ok(PortRange {
            base: low as u16,
            size: size as u16,
        })
    }
}

/// The cluster's Service networking flags (single-stack: one `--service-cluster-ip-range`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `--service-cluster-ip-range`, e.g. `10.96.0.0/12`.
    pub cluster_ip_range: ipnet::IpNet,
    /// `--service-node-port-range`, e.g. `30000-32767`.
    pub node_port_range: PortRange,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_parses_and_prints() {
        assert_eq!(
            "30000-32767".parse::<PortRange>().unwrap(),
            PortRange {
                base: 30000,
                size: 2768
            }
        );
        assert_eq!(
            "30000+2767".parse::<PortRange>().unwrap(),
            PortRange {
                base: 30000,
                size: 2768
            }
        );
        assert_eq!(
            " 31000 ".parse::<PortRange>().unwrap(),
            PortRange {
                base: 31000,
                size: 1
            }
        );
        assert_eq!(
            PortRange {
                base: 30000,
                size: 2768
            }
            .to_string(),
            "30000-32767"
        );
        assert_eq!(
            "32767-30000".parse::<PortRange>().unwrap_err().to_string(),
            "end port cannot be less than start port: 32767-30000"
        );
        assert_eq!(
            "1-70000".parse::<PortRange>().unwrap_err().to_string(),
            "the port range cannot be greater than 65535: 1-70000"
        );
        assert_eq!(
            "a-b".parse::<PortRange>().unwrap_err().to_string(),
            "strconv.Atoi: parsing \"a\": invalid syntax"
        );
        assert!(PortRange::DEFAULT.contains(32767) && !PortRange::DEFAULT.contains(32768));
    }
}
