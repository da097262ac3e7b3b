//! Backends turn the backend-neutral desired state into kernel rules.

use std::time::Duration;

use kubeport_nftables::{cleanup_transaction, Nft, NftProxier};
use kubeport_proxy_model::ProxyState;

/// What a successful sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The rules were rebuilt from scratch (first sync, after a failure, …).
    pub full_resync: bool,
    /// Commands sent to the kernel (0 when nothing changed).
    pub commands: usize,
    /// The backend needs another sync after this delay even without changes (nftables
    /// deletes chains it flushed in this sync one sync later).
    pub follow_up: Option<Duration>,
}

/// A sync or cleanup that did not happen. The rules in the kernel are those of the last
/// successful sync (transactions are atomic).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The kernel front end (`nft`, `iptables-restore`) could not run or refused the rules.
    #[error("{program}: {message}")]
    Apply {
        program: &'static str,
        message: String,
    },
    /// The requested mode is not part of this build.
    #[error("{0} mode is not available in this build")]
    Unavailable(&'static str),
}

/// A dataplane: programs a desired state, and removes everything it installed.
pub trait Backend: Send {
    /// Moves the kernel rules to `state`. On error nothing was changed, and the next call
    /// starts over from a full resync.
    fn sync(&mut self, state: &ProxyState) -> Result<SyncReport, BackendError>;
    /// Removes every rule, chain, set and table this backend owns (also those left by an
    /// earlier process); succeeds when there is nothing to remove.
    fn cleanup(&mut self) -> Result<(), BackendError>;
    /// Makes the next sync rewrite every rule, restoring anything changed behind the
    /// proxy's back (called periodically).
    fn request_full_resync(&mut self) {}
}

/// kube-proxy's nftables layout, applied with `nft -f -`.
#[derive(Debug, Default)]
pub struct NftablesBackend {
    proxier: NftProxier,
    nft: Nft,
}

/// Chains flushed in one transaction are deleted by the next one, at least this long after
/// (older kernels keep a chain referenced for a moment after its last user went away).
pub const STALE_CHAIN_DELETE_DELAY: Duration = Duration::from_secs(1);

impl NftablesBackend {
    /// `nft` from `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A specific `nft` program.
    pub fn with_nft(nft: Nft) -> Self {
        NftablesBackend {
            proxier: NftProxier::new(),
            nft,
        }
    }
}

impl Backend for NftablesBackend {
    fn sync(&mut self, state: &ProxyState) -> Result<SyncReport, BackendError> {
        let transaction = self.proxier.sync(state);
        if transaction.is_empty() {
            self.proxier.mark_committed(&transaction);
            return Ok(SyncReport::default());
        }
        match self.nft.apply(transaction.as_str()) {
            Ok(()) => {
                self.proxier.mark_committed(&transaction);
                let flushed_chains = transaction
                    .lines()
                    .any(|line| line.starts_with("flush chain "));
                Ok(SyncReport {
                    full_resync: transaction.is_full_resync(),
                    commands: transaction.lines().count(),
                    follow_up: flushed_chains.then_some(STALE_CHAIN_DELETE_DELAY),
                })
            }
            Err(err) => {
                self.proxier.mark_failed();
                Err(BackendError::Apply {
                    program: "nft",
                    message: err.to_string(),
                })
            }
        }
    }

    fn request_full_resync(&mut self) {
        // Forgetting the committed state makes the next transaction recreate the tables.
        self.proxier.mark_failed();
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        self.proxier = NftProxier::new();
        self.nft
            .apply(&cleanup_transaction())
            .map_err(|err| BackendError::Apply {
                program: "nft",
                message: err.to_string(),
            })
    }
}
