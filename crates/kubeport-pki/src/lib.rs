//! Certificates and kubeconfig files for kubeport.
//!
//! - [`load_or_create`] keeps the cluster CA and the API server's serving certificate under
//!   `<data dir>/pki` (kubeadm's file names), re-issuing the serving certificate when it
//!   lacks a wanted address; [`Pki::issue_client_cert`] issues client certificates whose
//!   CN/O are the Kubernetes user/groups, read back by [`identity_from_der`].
//! - [`render_kubeconfig`], [`write_kubeconfig`], [`merge_into`] and [`remove_from`] write
//!   kubeconfigs as kind does, keeping whatever else a user's file holds.
//!
//! Keys are ECDSA P-256; the CA lives 10 years, leaf certificates 1 year.

mod der;
mod fsutil;
pub mod kubeconfig;
mod pki;
mod yaml;

pub use kubeconfig::{
    default_kubeconfig_path, merge_into, remove_from, render_kubeconfig, write_kubeconfig,
    Kubeconfig, KubeconfigEntry,
};
pub use pki::{
    identity_from_der, load_or_create, Pki, ADMIN_GROUP, ADMIN_USER, CA_CERT_FILE, CA_KEY_FILE,
    DEFAULT_DNS_SANS, PKI_SUBDIR, SERVING_CERT_FILE, SERVING_KEY_FILE,
};
