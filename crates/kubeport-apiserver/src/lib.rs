//! kubeport's API server: the Kubernetes HTTP API (discovery, OpenAPI for kubectl's
//! validation gate, CRUD, patch, watch, Tables) over the embedded store.

pub mod body;
pub mod discovery;
pub mod http;
pub mod lifecycle;
pub mod meta;
pub mod nodeproxy;
pub mod registry;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod strategy;
pub mod tables;
pub mod typed;
pub mod watch;

pub use server::{start, RunningServer, ServerConfig};
