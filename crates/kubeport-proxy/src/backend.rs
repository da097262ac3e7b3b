//! Backends turn the backend-neutral desired state into kernel rules.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kubeport_iptables::{Iptables, IptablesConfig, IptablesProxier};
use kubeport_nftables::{cleanup_transaction, Nft, NftProxier};
use kubeport_proxy_model::{IpFamily, ProxyState};

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
        /// The failed sync was an incremental one (not a full rewrite).
        partial: bool,
    },
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
                    partial: !transaction.is_full_resync(),
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
                partial: false,
            })
    }
}

/// How often the iptables backend checks that its canary chain still exists (kube-proxy
/// polls it every sync period, 30 s by default): a missing canary means someone flushed the
/// tables, and the next sync rewrites everything.
pub const CANARY_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// kube-proxy's iptables layout, applied with the nft-backed `iptables-restore`.
#[derive(Debug)]
pub struct IptablesBackend {
    proxier: IptablesProxier,
    /// Families written at least once (their canaries are checked).
    applied: BTreeSet<IpFamily>,
    started: bool,
    canary_checked: Option<Instant>,
}

impl IptablesBackend {
    /// With localhost NodePorts on (`config.localhost_nodeports`), sets
    /// `net.ipv4.conf.all.route_localnet=1` in the current network namespace, as kube-proxy
    /// does; when that is impossible they are turned off.
    pub fn new(mut config: IptablesConfig) -> Self {
        if config.localhost_nodeports {
            let path = "/proc/sys/net/ipv4/conf/all/route_localnet";
            if let Err(err) = std::fs::write(path, "1") {
                tracing::warn!(error = %err, "cannot set route_localnet: NodePorts will not answer on localhost");
                config.localhost_nodeports = false;
            }
        }
        IptablesBackend {
            proxier: IptablesProxier::new(config),
            applied: BTreeSet::new(),
            started: false,
            canary_checked: None,
        }
    }

    fn iptables_error(err: impl std::fmt::Display, partial: bool) -> BackendError {
        BackendError::Apply {
            program: "iptables-restore",
            message: err.to_string(),
            partial,
        }
    }
}

impl Backend for IptablesBackend {
    fn sync(&mut self, state: &ProxyState) -> Result<SyncReport, BackendError> {
        if !self.started {
            // Chains left by an earlier run are deleted by the first sync unless still used.
            for family in IpFamily::ALL {
                if let Ok(chains) = Iptables::new(family).existing_service_chains() {
                    self.proxier.observe_existing_chains(family, chains);
                }
            }
            self.started = true;
        }
        let canary_due = self
            .canary_checked
            .is_none_or(|at| at.elapsed() >= CANARY_CHECK_INTERVAL);
        if canary_due && !self.proxier.needs_full_sync() {
            self.canary_checked = Some(Instant::now());
            for family in &self.applied {
                if matches!(Iptables::new(*family).canary_present(), Ok(false)) {
                    tracing::info!(?family, "the iptables canary is gone: rewriting every rule");
                    self.proxier.request_full_sync();
                }
            }
        }
        let input = self.proxier.sync(state);
        let full = input.is_full_sync();
        for family in input.families() {
            if let Err(err) = Iptables::new(family.family()).apply(family) {
                self.proxier.mark_failed();
                return Err(Self::iptables_error(err, !family.is_full_sync()));
            }
            self.applied.insert(family.family());
        }
        self.proxier.mark_committed(&input);
        Ok(SyncReport {
            full_resync: full,
            commands: input.families().iter().map(|f| f.lines().count()).sum(),
            follow_up: None,
        })
    }

    fn request_full_resync(&mut self) {
        self.proxier.request_full_sync();
    }

    fn cleanup(&mut self) -> Result<(), BackendError> {
        self.proxier = IptablesProxier::new(self.proxier.config().clone());
        self.applied.clear();
        let commands = IptablesProxier::cleanup_commands();
        Iptables::new(IpFamily::V4)
            .cleanup(&commands)
            .map_err(|err| Self::iptables_error(err, false))?;
        // IPv6 tables exist only where ip6tables does; a missing tool leaves nothing to remove.
        if let Err(err) = Iptables::new(IpFamily::V6).cleanup(&commands) {
            match err {
                kubeport_iptables::ApplyError::Io { .. } => {}
                other => return Err(Self::iptables_error(other, false)),
            }
        }
        Ok(())
    }
}
