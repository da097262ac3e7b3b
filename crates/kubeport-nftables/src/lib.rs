//! nftables backend of kubeport's node service proxy.
//!
//! [`NftProxier::sync`] renders a [`kubeport_proxy_model::ProxyState`] into the layout of
//! kube-proxy's nftables mode (table `ip kube-proxy`, and `ip6 kube-proxy` for IPv6 services:
//! `service-ips`/`service-nodeports` verdict maps, per-service `service-`, `local-`,
//! `external-`, `firewall-` and `endpoint-` chains, `affinity-` sets) and returns one
//! transaction holding only what changed since the last committed one. Everything but
//! [`apply`] is pure; [`apply::Nft`] pipes a transaction to `nft -f -`.

pub mod apply;
pub mod names;
mod proxier;
mod ruleset;

pub use apply::{ApplyError, Nft};
pub use proxier::{cleanup_transaction, NftProxier, Transaction};
pub use ruleset::{family_keyword, TABLE_COMMENT, TABLE_NAME};
