//! The iptables proxier: turns desired states into `iptables-restore --noflush` inputs that
//! rewrite the fixed chains every time and a Service's own chains only when they changed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kubeport_proxy_model::{IpFamily, NamespacedName, ProxyState};

use crate::jumps::{jump_rules, CleanupCommands, JumpRule};
use crate::names::is_service_chain;
use crate::rules::{render_family, IptablesConfig, PortChains, RenderedPort, NAT_FIXED_CHAINS};

/// The restore input of one IP family (for `iptables-restore` or `ip6tables-restore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRestore {
    family: IpFamily,
    text: String,
    full_sync: bool,
    rewritten_services: usize,
    deleted_chains: usize,
}

impl FamilyRestore {
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// The text for `iptables-restore --noflush --counters`: `*filter … COMMIT`,
    /// `*nat … COMMIT`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Lines of the text.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }

    /// Every Service's chains are written (first sync, after a failure, or when a full sync
    /// was requested). The jump rules from the built-in chains must be ensured before such a
    /// restore (see [`FamilyRestore::jump_rules`]).
    pub fn is_full_sync(&self) -> bool {
        self.full_sync
    }

    /// Services whose chains this input rewrites.
    pub fn rewritten_services(&self) -> usize {
        self.rewritten_services
    }

    /// Stale per-service chains this input deletes.
    pub fn deleted_chains(&self) -> usize {
        self.deleted_chains
    }

    /// Jump rules to ensure before restoring: all of them on a full sync, none otherwise
    /// (kube-proxy assumes they survive between full syncs; the canary catches flushes).
    pub fn jump_rules(&self) -> Vec<JumpRule> {
        if self.full_sync {
            jump_rules()
        } else {
            Vec::new()
        }
    }
}

impl fmt::Display for FamilyRestore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What one [`IptablesProxier::sync`] produced: one restore input per managed family
/// (IPv4 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreInput {
    generation: u64,
    families: Vec<FamilyRestore>,
}

impl RestoreInput {
    pub fn families(&self) -> &[FamilyRestore] {
        &self.families
    }

    /// The input of one family, if that family is managed.
    pub fn family(&self, family: IpFamily) -> Option<&FamilyRestore> {
        self.families.iter().find(|f| f.family == family)
    }

    /// Some family is fully rewritten.
    pub fn is_full_sync(&self) -> bool {
        self.families.iter().any(|f| f.full_sync)
    }
}

/// What the kernel holds for one family, as far as the proxier knows.
#[derive(Debug, Clone, Default)]
struct FamilyState {
    /// Per Service (in this family): the chains of each of its ports as last written.
    services: BTreeMap<NamespacedName, Vec<PortChains>>,
    /// Every per-service chain present.
    chains: BTreeSet<String>,
}

#[derive(Debug)]
struct Pending {
    generation: u64,
    full_for_all: bool,
    families: BTreeMap<IpFamily, FamilyState>,
}

/// Keeps the last committed rules in memory and produces restore inputs.
///
/// Protocol: `let input = proxier.sync(&desired)`; for each family of `input`, ensure its
/// jump rules when it is a full sync, then run `iptables-restore --noflush --counters` with
/// its text (see [`crate::apply::Iptables::apply`]); then call
/// [`mark_committed`](IptablesProxier::mark_committed) when every family succeeded or
/// [`mark_failed`](IptablesProxier::mark_failed) otherwise (the next sync is then a full one).
///
/// Like kube-proxy ≥ 1.26, a sync rewrites the fixed chains (`KUBE-SERVICES`,
/// `KUBE-NODEPORTS`, `KUBE-POSTROUTING`, `KUBE-MARK-MASQ`, the filter chains) every time,
/// but a Service's `KUBE-SVC/SVL/EXT/FW/SEP` chains only when they differ from what was
/// committed; chains nothing uses any more are flushed and deleted in the same input.
#[derive(Debug, Default)]
pub struct IptablesProxier {
    config: IptablesConfig,
    committed: BTreeMap<IpFamily, FamilyState>,
    /// Per-service chains that may exist without being in `committed` (after a failed
    /// restore, or found in the kernel at start-up). Deleted by the next sync unless used.
    uncertain_chains: BTreeMap<IpFamily, BTreeSet<String>>,
    /// Families written once; they stay managed.
    managed: BTreeSet<IpFamily>,
    force_full: bool,
    pending: Option<Pending>,
    generation: u64,
}

impl IptablesProxier {
    /// A proxier with nothing committed: the first sync is a full one.
    pub fn new(config: IptablesConfig) -> Self {
        IptablesProxier {
            config,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &IptablesConfig {
        &self.config
    }

    /// The next sync rewrites every Service's chains.
    pub fn needs_full_sync(&self) -> bool {
        self.force_full || self.committed.is_empty()
    }

    /// Makes the next sync a full one (kube-proxy does this periodically, on node label
    /// changes, and when the canary chain disappeared).
    pub fn request_full_sync(&mut self) {
        self.force_full = true;
    }

    /// Reports per-service chains found in the kernel (e.g. `iptables-save -t nat` at
    /// start-up, left by an earlier run): the next sync deletes those it does not use.
    pub fn observe_existing_chains<I, S>(&mut self, family: IpFamily, chains: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let known = self.uncertain_chains.entry(family).or_default();
        known.extend(
            chains
                .into_iter()
                .map(Into::into)
                .filter(|chain| is_service_chain(chain)),
        );
    }

    /// Builds the restore inputs moving the kernel from the last committed state to
    /// `desired`. IPv4 is always managed; IPv6 from its first service port on.
    pub fn sync(&mut self, desired: &ProxyState) -> RestoreInput {
        self.generation += 1;
        let mut families = Vec::new();
        let mut states = BTreeMap::new();
        let mut full_for_all = true;
        for family in IpFamily::ALL {
            let wanted = family == IpFamily::V4
                || self.managed.contains(&family)
                || desired.service_ports_of(family).next().is_some();
            if !wanted {
                continue;
            }
            let committed = self.committed.get(&family);
            let previous = if self.force_full { None } else { committed };
            let mut known_chains: BTreeSet<&str> = committed
                .map(|state| state.chains.iter().map(String::as_str).collect())
                .unwrap_or_default();
            if let Some(uncertain) = self.uncertain_chains.get(&family) {
                known_chains.extend(uncertain.iter().map(String::as_str));
            }
            let (restore, state) =
                build_family(desired, family, &self.config, previous, &known_chains);
            full_for_all &= restore.full_sync;
            families.push(restore);
            states.insert(family, state);
        }
        self.pending = Some(Pending {
            generation: self.generation,
            full_for_all,
            families: states,
        });
        RestoreInput {
            generation: self.generation,
            families,
        }
    }

    /// Records that `input` (the latest result of [`sync`](IptablesProxier::sync)) was
    /// restored successfully. An older input cannot be trusted to describe the kernel:
    /// committing one forces a full sync next time.
    pub fn mark_committed(&mut self, input: &RestoreInput) {
        match self.pending.take() {
            Some(pending) if pending.generation == input.generation => {
                for (family, state) in pending.families {
                    self.uncertain_chains.remove(&family);
                    self.managed.insert(family);
                    self.committed.insert(family, state);
                }
                if pending.full_for_all {
                    self.force_full = false;
                }
            }
            other => {
                self.pending = other;
                self.forget_committed();
            }
        }
    }

    /// Records that restoring the last input failed: what the kernel holds is unknown, so the
    /// next sync is a full one that also deletes every chain the failed input may have left.
    pub fn mark_failed(&mut self) {
        if let Some(pending) = self.pending.take() {
            for (family, state) in pending.families {
                self.managed.insert(family);
                self.uncertain_chains
                    .entry(family)
                    .or_default()
                    .extend(state.chains);
            }
        }
        self.forget_committed();
    }

    fn forget_committed(&mut self) {
        for (family, state) in std::mem::take(&mut self.committed) {
            self.uncertain_chains
                .entry(family)
                .or_default()
                .extend(state.chains);
        }
    }

    /// What `kubeport proxy --cleanup` removes: the jump rules, then every `KUBE-*` chain
    /// (see [`CleanupCommands`]).
    pub fn cleanup_commands() -> CleanupCommands {
        CleanupCommands::new()
    }
}

/// Groups the rendered ports by Service, keeping their order (ports of one Service are
/// contiguous because the model sorts them by name).
fn group_by_service(ports: Vec<RenderedPort>) -> Vec<(NamespacedName, Vec<RenderedPort>)> {
    let mut groups: Vec<(NamespacedName, Vec<RenderedPort>)> = Vec::new();
    for port in ports {
        match groups.last_mut() {
            Some((service, group)) if *service == port.service => group.push(port),
            _ => groups.push((port.service.clone(), vec![port])),
        }
    }
    groups
}

fn unchanged(previous: Option<&Vec<PortChains>>, ports: &[RenderedPort]) -> bool {
    previous.is_some_and(|old| {
        old.len() == ports.len() && old.iter().zip(ports).all(|(old, new)| *old == new.own)
    })
}

fn chain_line(out: &mut String, chain: &str) {
    out.push(':');
    out.push_str(chain);
    out.push_str(" - [0:0]\n");
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

fn build_family(
    desired: &ProxyState,
    family: IpFamily,
    config: &IptablesConfig,
    previous: Option<&FamilyState>,
    known_chains: &BTreeSet<&str>,
) -> (FamilyRestore, FamilyState) {
    let rendered = render_family(desired, family, config);
    let full_sync = previous.is_none();

    let mut text = String::with_capacity(4096);
    text.push_str("*filter\n");
    for chain in &rendered.filter_chains {
        chain_line(&mut text, chain);
    }
    for rule in &rendered.filter_rules {
        push_line(&mut text, rule);
    }
    text.push_str("COMMIT\n");

    let mut nat_chains = String::with_capacity(4096);
    let mut nat_rules = String::with_capacity(4096);
    nat_chains.push_str("*nat\n");
    for chain in NAT_FIXED_CHAINS {
        chain_line(&mut nat_chains, chain);
    }
    for rule in &rendered.nat_head {
        push_line(&mut nat_rules, rule);
    }

    let mut state = FamilyState::default();
    let mut rewritten_services = 0;
    for (service, ports) in group_by_service(rendered.ports) {
        let write = !unchanged(previous.and_then(|p| p.services.get(&service)), &ports);
        if write && ports.iter().any(|port| !port.own.chains.is_empty()) {
            rewritten_services += 1;
        }
        let mut owned = Vec::with_capacity(ports.len());
        for port in ports {
            for rule in &port.capture {
                push_line(&mut nat_rules, rule);
            }
            if write {
                for chain in &port.own.chains {
                    chain_line(&mut nat_chains, chain);
                }
                for rule in &port.own.rules {
                    push_line(&mut nat_rules, rule);
                }
            }
            state.chains.extend(port.own.chains.iter().cloned());
            owned.push(port.own);
        }
        state.services.insert(service, owned);
    }

    // Chains nothing uses any more: the chain line flushes them (and creates them if they
    // are already gone, so the delete cannot fail), then they are deleted.
    let mut deleted_chains = 0;
    for chain in known_chains {
        if !state.chains.contains(*chain) {
            chain_line(&mut nat_chains, chain);
            nat_rules.push_str("-X ");
            push_line(&mut nat_rules, chain);
            deleted_chains += 1;
        }
    }

    for rule in &rendered.nat_tail {
        push_line(&mut nat_rules, rule);
    }
    text.push_str(&nat_chains);
    text.push_str(&nat_rules);
    text.push_str("COMMIT\n");

    (
        FamilyRestore {
            family,
            text,
            full_sync,
            rewritten_services,
            deleted_chains,
        },
        state,
    )
}
