//! Rules kube-proxy installs outside `iptables-restore`: the jumps from the built-in chains
//! into its own chains (prepended with `iptables -I`), the canary chains, and what
//! `--cleanup` removes.

use std::collections::BTreeMap;
use std::fmt;

use crate::names::{
    KUBE_EXTERNAL_SERVICES, KUBE_FIREWALL, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_POSTROUTING,
    KUBE_PROXY_CANARY, KUBE_PROXY_FIREWALL, KUBE_SERVICES,
};

/// An iptables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Filter,
    Nat,
    Mangle,
}

impl Table {
    /// The name given to `-t` and printed by `iptables-save` (`*nat`).
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
            Table::Mangle => "mangle",
        }
    }

    fn from_name(name: &str) -> Option<Table> {
        match name {
            "filter" => Some(Table::Filter),
            "nat" => Some(Table::Nat),
            "mangle" => Some(Table::Mangle),
            _ => None,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule in a built-in chain jumping to one of kube-proxy's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpRule {
    pub table: Table,
    /// The built-in chain holding the rule (`PREROUTING`, `INPUT`, …).
    pub chain: &'static str,
    /// The kube-proxy chain jumped to.
    pub target: &'static str,
    /// Only for new connections (`-m conntrack --ctstate NEW`).
    pub new_connections_only: bool,
    /// `-m comment --comment …` (none for the kubelet-owned `KUBE-FIREWALL` jumps).
    pub comment: Option<&'static str>,
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_string()).collect()
}

impl JumpRule {
    const fn new(
        table: Table,
        chain: &'static str,
        target: &'static str,
        comment: Option<&'static str>,
        new_connections_only: bool,
    ) -> Self {
        JumpRule {
            table,
            chain,
            target,
            new_connections_only,
            comment,
        }
    }

    /// The rule specification: `[-m conntrack --ctstate NEW] [-m comment --comment C]
    /// -j TARGET` (one argument per element; no shell quoting needed).
    pub fn rule_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.new_connections_only {
            args.extend(strings(&["-m", "conntrack", "--ctstate", "NEW"]));
        }
        if let Some(comment) = self.comment {
            args.extend(strings(&["-m", "comment", "--comment", comment]));
        }
        args.extend(strings(&["-j", self.target]));
        args
    }

    fn with_operation(&self, operation: &str) -> Vec<String> {
        let mut args = strings(&["-t", self.table.as_str(), operation, self.chain]);
        args.extend(self.rule_args());
        args
    }

    /// `iptables` arguments testing whether the rule exists (exit status 0 if it does).
    pub fn check_args(&self) -> Vec<String> {
        self.with_operation("-C")
    }

    /// `iptables` arguments prepending the rule.
    pub fn insert_args(&self) -> Vec<String> {
        self.with_operation("-I")
    }

    /// `iptables` arguments deleting (one copy of) the rule.
    pub fn delete_args(&self) -> Vec<String> {
        self.with_operation("-D")
    }

    /// `iptables` arguments creating the target chain (fails if it exists).
    pub fn new_chain_args(&self) -> Vec<String> {
        strings(&["-t", self.table.as_str(), "-N", self.target])
    }
}

const SERVICE_PORTALS: &str = "kubernetes service portals";
const EXTERNAL_PORTALS: &str = "kubernetes externally-visible service portals";
const LB_FIREWALL: &str = "kubernetes load balancer firewall";

/// kube-proxy's jump rules, in the order it ensures them (each is prepended, so the last
/// one ends up first in its chain), followed by the kubelet's `KUBE-FIREWALL` jumps that
/// kube-proxy also ensures (kubeport has no kubelet to create them).
pub fn jump_rules() -> Vec<JumpRule> {
    use Table::{Filter, Nat};
    vec![
        JumpRule::new(
            Filter,
            "INPUT",
            KUBE_EXTERNAL_SERVICES,
            Some(EXTERNAL_PORTALS),
            true,
        ),
        JumpRule::new(
            Filter,
            "FORWARD",
            KUBE_EXTERNAL_SERVICES,
            Some(EXTERNAL_PORTALS),
            true,
        ),
        JumpRule::new(
            Filter,
            "INPUT",
            KUBE_NODEPORTS,
            Some("kubernetes health check service ports"),
            false,
        ),
        JumpRule::new(
            Filter,
            "FORWARD",
            KUBE_SERVICES,
            Some(SERVICE_PORTALS),
            true,
        ),
        JumpRule::new(Filter, "OUTPUT", KUBE_SERVICES, Some(SERVICE_PORTALS), true),
        JumpRule::new(
            Filter,
            "FORWARD",
            KUBE_FORWARD,
            Some("kubernetes forwarding rules"),
            false,
        ),
        JumpRule::new(
            Filter,
            "INPUT",
            KUBE_PROXY_FIREWALL,
            Some(LB_FIREWALL),
            true,
        ),
        JumpRule::new(
            Filter,
            "OUTPUT",
            KUBE_PROXY_FIREWALL,
            Some(LB_FIREWALL),
            true,
        ),
        JumpRule::new(
            Filter,
            "FORWARD",
            KUBE_PROXY_FIREWALL,
            Some(LB_FIREWALL),
            true,
        ),
        JumpRule::new(Nat, "OUTPUT", KUBE_SERVICES, Some(SERVICE_PORTALS), false),
        JumpRule::new(
            Nat,
            "PREROUTING",
            KUBE_SERVICES,
            Some(SERVICE_PORTALS),
            false,
        ),
        JumpRule::new(
            Nat,
            "POSTROUTING",
            KUBE_POSTROUTING,
            Some("kubernetes postrouting rules"),
            false,
        ),
        JumpRule::new(Filter, "INPUT", KUBE_FIREWALL, None, false),
        JumpRule::new(Filter, "OUTPUT", KUBE_FIREWALL, None, false),
    ]
}

/// The canary chains (empty; created with `iptables -N`). When the mangle one disappears
/// the tables were flushed by someone else and a full sync must rebuild everything.
pub fn canary_chains() -> [(Table, &'static str); 3] {
    [
        (Table::Mangle, KUBE_PROXY_CANARY),
        (Table::Nat, KUBE_PROXY_CANARY),
        (Table::Filter, KUBE_PROXY_CANARY),
    ]
}

/// Chain names per table in `iptables-save` output (`:NAME POLICY [p:b]` lines).
pub fn saved_chains(saved: &str) -> BTreeMap<Table, Vec<String>> {
    let mut result: BTreeMap<Table, Vec<String>> = BTreeMap::new();
    let mut table = None;
    for line in saved.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = Table::from_name(name.trim());
        } else if let (Some(table), Some(rest)) = (table, line.strip_prefix(':')) {
            if let Some(chain) = rest.split_whitespace().next() {
                result.entry(table).or_default().push(chain.to_string());
            }
        }
    }
    result
}

/// What `--cleanup` does in one family: delete the jump rules (every copy), then flush and
/// delete every `KUBE-*` chain of the filter, nat and mangle tables in one restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupCommands {
    /// Rules to delete from the built-in chains (repeat `-D` until it fails).
    pub jump_rules: Vec<JumpRule>,
}

impl Default for CleanupCommands {
    fn default() -> Self {
        Self::new()
    }
}

impl CleanupCommands {
    pub fn new() -> Self {
        CleanupCommands {
            jump_rules: jump_rules(),
        }
    }

    /// The `iptables-restore --noflush` input removing every `KUBE-*` chain listed in
    /// `saved` (the output of `iptables-save`): all chain lines (flushing them) before any
    /// `-X`, so chains referring to each other can go together. Empty when there is nothing
    /// to remove.
    pub fn restore_input(&self, saved: &str) -> String {
        let mut text = String::new();
        for (table, chains) in saved_chains(saved) {
            let ours: Vec<&String> = chains
                .iter()
                .filter(|chain| chain.starts_with("KUBE-"))
                .collect();
            if ours.is_empty() {
                continue;
            }
            text.push_str(&format!("*{table}\n"));
            for chain in &ours {
                text.push_str(&format!(":{chain} - [0:0]\n"));
            }
            for chain in &ours {
                text.push_str(&format!("-X {chain}\n"));
            }
            text.push_str("COMMIT\n");
        }
        text
    }
}
