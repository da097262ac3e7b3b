//! The nftables proxier: turns desired states into transactions holding only what changed
//! since the last committed one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kubeport_proxy_model::{IpFamily, ProxyState};

use crate::names::is_service_chain;
use crate::ruleset::{
    family_keyword, quote, render_table, Chain, Element, SetDecl, Table, TABLE_COMMENT, TABLE_NAME,
};

/// What the kernel holds for one family after a committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CommittedTable {
    table: Table,
    /// Service chains that were flushed because nothing uses them any more; they are
    /// deleted by a later transaction (see [`NftProxier::sync`]).
    stale_chains: BTreeSet<String>,
}

/// One nftables transaction (a script for `nft -f -`) plus the table contents it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    text: String,
    full_resync: bool,
    /// Generation of the committed state this transaction was computed against.
    base_generation: u64,
    result: BTreeMap<IpFamily, CommittedTable>,
}

impl Transaction {
    /// The script, one command per line, for `nft -f -`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Nothing to change: running it is unnecessary (it must still be marked committed).
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The transaction recreates at least one table from scratch (first sync, after a failure,
    /// a new family, or a declaration change an update cannot express).
    pub fn is_full_resync(&self) -> bool {
        self.full_resync
    }

    /// The commands, one per line.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }
}

impl fmt::Display for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Keeps the last committed table contents in memory and produces incremental transactions.
///
/// Protocol: `let tx = proxier.sync(&desired)`, run `tx` with `nft -f -`, then call
/// [`mark_committed`](NftProxier::mark_committed) on success or
/// [`mark_failed`](NftProxier::mark_failed) on failure (the next sync then rebuilds the
/// tables from scratch). Stale service chains are flushed in one sync and deleted in the next
/// one; callers should keep syncs at least a second apart (kube-proxy's minimum sync period),
/// because kernels before 6.2 keep a chain referenced for a short while after the map element
/// pointing to it was deleted.
#[derive(Debug, Clone, Default)]
pub struct NftProxier {
    committed: Option<BTreeMap<IpFamily, CommittedTable>>,
    /// Families whose table was created once; they stay managed (also across failures).
    managed: BTreeSet<IpFamily>,
    generation: u64,
}

struct Script {
    lines: Vec<String>,
}

impl Script {
    fn push(&mut self, line: String) {
        self.lines.push(line);
    }
}

impl NftProxier {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when the next sync recreates the tables (nothing committed yet, or a failure).
    pub fn needs_full_sync(&self) -> bool {
        self.committed.is_none()
    }

    /// Builds the transaction moving the kernel from the last committed state to `desired`.
    /// The IPv4 table is always managed; the IPv6 one from the first IPv6 service port on.
    pub fn sync(&mut self, desired: &ProxyState) -> Transaction {
        let mut script = Script { lines: Vec::new() };
        let mut result = BTreeMap::new();
        let mut full_resync = false;
        for family in IpFamily::ALL {
            let wanted = family == IpFamily::V4
                || self.managed.contains(&family)
                || desired.service_ports_of(family).next().is_some();
            if !wanted {
                continue;
            }
            let previous = self
                .committed
                .as_ref()
                .and_then(|committed| committed.get(&family));
            let table = render_table(desired, family);
            let committed = match previous {
                Some(previous) if !needs_recreate(previous, &table) => {
                    diff_table(&mut script, previous, table)
                }
                _ => {
                    full_resync = true;
                    create_table(&mut script, table)
                }
            };
            result.insert(family, committed);
        }
        let mut text = script.lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        Transaction {
            text,
            full_resync,
            base_generation: self.generation,
            result,
        }
    }

    /// Records that `tx` (the latest transaction from [`sync`](NftProxier::sync)) was applied.
    /// A transaction computed against an older committed state cannot be trusted to describe
    /// the kernel; committing one forces a full resync instead.
    pub fn mark_committed(&mut self, tx: &Transaction) {
        if tx.base_generation != self.generation {
            self.committed = None;
        } else {
            self.managed.extend(tx.result.keys().copied());
            self.committed = Some(tx.result.clone());
        }
        self.generation += 1;
    }

    /// Records that the last transaction failed: the kernel state is unknown, so the next sync
    /// flushes and rebuilds the tables.
    pub fn mark_failed(&mut self) {
        self.committed = None;
        self.generation += 1;
    }
}

fn table_ref(family: IpFamily) -> String {
    format!("{} {TABLE_NAME}", family_keyword(family))
}

fn set_line(verb: &str, table: &str, set: &SetDecl) -> String {
    format!(
        "{verb} {} {table} {} {{ {} }}",
        set.kind.keyword(),
        set.name,
        set.spec
    )
}

fn chain_add_line(table: &str, chain: &Chain) -> String {
    match &chain.spec {
        Some(spec) => format!("add chain {table} {} {{ {spec} }}", chain.name),
        None => format!("add chain {table} {}", chain.name),
    }
}

fn rule_line(table: &str, chain: &str, rule: &str) -> String {
    format!("add rule {table} {chain} {rule}")
}

fn element_add_line(table: &str, element: &Element) -> String {
    format!("add element {table} {} {}", element.set, element.body())
}

fn element_delete_line(table: &str, element: &Element) -> String {
    format!(
        "delete element {table} {} {{ {} }}",
        element.set, element.key
    )
}

/// A declaration changed in a way an incremental update cannot express (a base chain's hook,
/// a set's type or timeout): the table has to be rebuilt.
fn needs_recreate(previous: &CommittedTable, table: &Table) -> bool {
    let old_sets: BTreeMap<&str, &SetDecl> = previous
        .table
        .sets
        .iter()
        .map(|set| (set.name.as_str(), set))
        .collect();
    let old_chains: BTreeMap<&str, &Chain> = previous
        .table
        .chains
        .iter()
        .map(|chain| (chain.name.as_str(), chain))
        .collect();
    table.sets.iter().any(|set| {
        old_sets
            .get(set.name.as_str())
            .is_some_and(|old| *old != set)
    }) || table.chains.iter().any(|chain| {
        old_chains
            .get(chain.name.as_str())
            .is_some_and(|old| old.spec != chain.spec)
    })
}

/// Recreates a family's table from scratch: `add` + `delete` removes whatever an earlier run
/// left (and cannot fail when the table is absent), then everything is declared and filled.
fn create_table(script: &mut Script, table: Table) -> CommittedTable {
    let table_name = table_ref(table.family);
    script.push(format!("add table {table_name}"));
    script.push(format!("delete table {table_name}"));
    script.push(format!(
        "add table {table_name} {{ comment {} ; }}",
        quote(TABLE_COMMENT)
    ));
    for set in &table.sets {
        script.push(set_line("add", &table_name, set));
    }
    for chain in &table.chains {
        script.push(chain_add_line(&table_name, chain));
    }
    for chain in &table.chains {
        for rule in &chain.rules {
            script.push(rule_line(&table_name, &chain.name, rule));
        }
    }
    for element in &table.elements {
        script.push(element_add_line(&table_name, element));
    }
    CommittedTable {
        table,
        stale_chains: BTreeSet::new(),
    }
}

/// Appends the commands turning `previous` into `table`. Order matters inside a transaction:
/// sets and chains are declared before rules and elements refer to them, references are
/// removed (chains flushed, elements deleted) before what they point to is deleted.
fn diff_table(script: &mut Script, previous: &CommittedTable, table: Table) -> CommittedTable {
    let table_name = table_ref(table.family);
    let old_sets: BTreeSet<&str> = previous
        .table
        .sets
        .iter()
        .map(|set| set.name.as_str())
        .collect();
    let new_sets: BTreeSet<&str> = table.sets.iter().map(|set| set.name.as_str()).collect();
    let old_chains: BTreeMap<&str, &Chain> = previous
        .table
        .chains
        .iter()
        .map(|chain| (chain.name.as_str(), chain))
        .collect();
    let new_chains: BTreeSet<&str> = table
        .chains
        .iter()
        .map(|chain| chain.name.as_str())
        .collect();

    // 1. New sets and maps.
    for set in table
        .sets
        .iter()
        .filter(|set| !old_sets.contains(set.name.as_str()))
    {
        script.push(set_line("add", &table_name, set));
    }
    // 2. New chains (a stale chain still exists, empty, and is simply reused).
    for chain in &table.chains {
        if !old_chains.contains_key(chain.name.as_str())
            && !previous.stale_chains.contains(&chain.name)
        {
            script.push(chain_add_line(&table_name, chain));
        }
    }
    // 3. Rules of new chains, and of chains whose rules changed (flushed and rewritten).
    for chain in &table.chains {
        match old_chains.get(chain.name.as_str()) {
            Some(old) if old.rules == chain.rules => continue,
            Some(old) if !old.rules.is_empty() => {
                script.push(format!("flush chain {table_name} {}", chain.name));
            }
            _ => {}
        }
        for rule in &chain.rules {
            script.push(rule_line(&table_name, &chain.name, rule));
        }
    }
    // 4. Elements: deletions (gone, or changed value/comment) first, then additions.
    let element_key = |element: &Element| (element.set.clone(), element.key.clone());
    let old_elements: BTreeMap<(String, String), &Element> = previous
        .table
        .elements
        .iter()
        .map(|element| (element_key(element), element))
        .collect();
    let new_elements: BTreeMap<(String, String), &Element> = table
        .elements
        .iter()
        .map(|element| (element_key(element), element))
        .collect();
    for element in &previous.table.elements {
        if !new_sets.contains(element.set.as_str()) {
            continue; // the whole set goes away below
        }
        if new_elements.get(&element_key(element)) != Some(&element) {
            script.push(element_delete_line(&table_name, element));
        }
    }
    for element in &table.elements {
        if old_elements.get(&element_key(element)) != Some(&element) {
            script.push(element_add_line(&table_name, element));
        }
    }
    // 5. Chains nothing uses any more: flushed now, deleted by a later transaction.
    let mut stale_chains = BTreeSet::new();
    for chain in &previous.table.chains {
        if !new_chains.contains(chain.name.as_str()) {
            if !chain.rules.is_empty() {
                script.push(format!("flush chain {table_name} {}", chain.name));
            }
            if is_service_chain(&chain.name) {
                stale_chains.insert(chain.name.clone());
            } else {
                // Fixed chains only disappear with a configuration change; nothing refers
                // to them once their jump rules are rewritten, so they go at once.
                script.push(format!("delete chain {table_name} {}", chain.name));
            }
        }
    }
    // 6. Sets and maps nothing uses any more (affinity sets, nodeport-ips): their users were
    // flushed above.
    for set in previous
        .table
        .sets
        .iter()
        .filter(|set| !new_sets.contains(set.name.as_str()))
    {
        script.push(format!(
            "delete {} {table_name} {}",
            set.kind.keyword(),
            set.name
        ));
    }
    // 7. Chains flushed by an earlier transaction and still unused.
    for chain in &previous.stale_chains {
        if !new_chains.contains(chain.as_str()) {
            script.push(format!("delete chain {table_name} {chain}"));
        }
    }
    CommittedTable {
        table,
        stale_chains,
    }
}

/// Removes kubeport's tables in both families; does not fail when they do not exist.
pub fn cleanup_transaction() -> String {
    let mut text = String::new();
    for family in IpFamily::ALL {
        let table = table_ref(family);
        text.push_str(&format!("add table {table}\ndelete table {table}\n"));
    }
    text
}
