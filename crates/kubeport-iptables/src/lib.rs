//! iptables backend of kubeport's node service proxy, in kube-proxy's exact layout.
//!
//! [`IptablesProxier::sync`] renders a [`kubeport_proxy_model::ProxyState`] into the input
//! of `iptables-restore --noflush --counters` (filter and nat tables): `KUBE-SERVICES`,
//! `KUBE-NODEPORTS`, `KUBE-POSTROUTING`, `KUBE-MARK-MASQ`, per service port `KUBE-SVC-`,
//! `KUBE-SVL-`, `KUBE-EXT-`, `KUBE-FW-` and per endpoint `KUBE-SEP-` chains (names hashed as
//! kube-proxy hashes them), the filter chains rejecting or dropping traffic without
//! endpoints, comments `ns/svc:port` and `ns/svc:port -> ip:port`, endpoints in `ip:port`
//! string order with probabilities `1/(n-i)` written as Go's `%0.10f`, and session affinity
//! with the `recent` match. After the first (full) sync, a sync rewrites only the chains of
//! Services that changed and deletes chains nothing uses.
//!
//! The jump rules from the built-in chains ([`jump_rules`]) are not part of the restore
//! input: kube-proxy prepends them with `iptables -I` when missing, on full syncs.
//! Everything but [`apply`] is pure; [`apply::Iptables`] runs the nft-backed tools.
//!
//! A sync loop:
//!
//! ```no_run
//! # fn desired_state() -> kubeport_proxy_model::ProxyState { unimplemented!() }
//! use kubeport_iptables::{Iptables, IptablesConfig, IptablesProxier};
//! use kubeport_proxy_model::IpFamily;
//!
//! let mut proxier = IptablesProxier::new(IptablesConfig::default());
//! // Leftovers of an earlier run are deleted by the first (full) sync.
//! if let Ok(chains) = Iptables::new(IpFamily::V4).existing_service_chains() {
//!     proxier.observe_existing_chains(IpFamily::V4, chains);
//! }
//! let input = proxier.sync(&desired_state());
//! // Full syncs also ensure the canaries and the jump rules.
//! let result = input
//!     .families()
//!     .iter()
//!     .try_for_each(|family| Iptables::new(family.family()).apply(family));
//! match result {
//!     Ok(()) => proxier.mark_committed(&input),
//!     Err(_) => proxier.mark_failed(),
//! }
//! // `kubeport proxy --cleanup`:
//! Iptables::new(IpFamily::V4).cleanup(&IptablesProxier::cleanup_commands()).ok();
//! ```
//!
//! Localhost NodePorts (on by default, IPv4, NodePorts on all addresses; see
//! [`IptablesConfig::localhost_nodeports_active`]) need `net.ipv4.conf.all.route_localnet=1`
//! in the node's network namespace: setting it is the caller's job.

pub mod apply;
pub mod jumps;
pub mod names;
mod proxier;
mod rules;

pub use apply::{ApplyError, Iptables};
pub use jumps::{canary_chains, jump_rules, saved_chains, CleanupCommands, JumpRule, Table};
pub use proxier::{FamilyRestore, IptablesProxier, RestoreInput};
pub use rules::{
    probability, IptablesConfig, CT_STATE_INVALID_DROPPED_COUNTER,
    LARGE_CLUSTER_ENDPOINTS_THRESHOLD, LOCALHOST_NODEPORT_ACCEPTED_COUNTER,
};
