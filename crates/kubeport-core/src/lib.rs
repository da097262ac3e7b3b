//! API machinery shared by every kubeport component, free of I/O.
//!
//! This crate holds the vocabulary that the API server, the Service registry and the
//! controllers must agree on byte for byte with kube-apiserver: field errors and their
//! rendering, and `Status` objects.

pub mod field;
pub mod status;
pub mod validation;

pub use field::{BadValue, ErrorType, FieldError, FieldPath};
pub use status::{Status, StatusReason};
