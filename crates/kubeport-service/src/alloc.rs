//! ClusterIP and NodePort allocation (pkg/registry/core/service/storage/alloc.go, the legacy
//! bitmap `ipallocator` and `portallocator`) and the repair loops
//! (`{ip,port}allocator/controller/repair.go`).

use crate::bitmap::Bitmap;
use crate::ip::{parse_ip_sloppy, parse_ip_strict, Family};
use crate::strategy::{normalize_cluster_ips, patch_allocated_values, prepare_update};
use crate::util::*;
use crate::validation::{validate_cluster_ips_related_fields, validate_create, validate_update};
use crate::{PortRange, ServiceConfig};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use kubeport_core::field::{aggregate, go_quote};
use kubeport_core::{BadValue, FieldError, FieldPath};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How many repair passes must see a value allocated but unused before it is freed
/// (`numRepairsBeforeLeakCleanup`): guards against racing an allocation whose write is
/// still in flight.
const NUM_REPAIRS_BEFORE_LEAK_CLEANUP: u32 = 3;

/// Why an allocation failed, in the form kube-apiserver reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum AllocError {
    /// HTTP 422 `Invalid` with these causes (`Service "x" is invalid: ...`).
    Invalid(Vec<FieldError>),
    /// HTTP 500 `InternalError`; the text goes after `Internal error occurred: `.
    Internal(String),
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Invalid(errs) => f.write_str(&aggregate(errs)),
            AllocError::Internal(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for AllocError {}

/// What one create or update took, and what it will give back once the storage write
/// commits. Hand it to [`ServiceAllocator::commit`] or [`ServiceAllocator::revert`].
#[must_use = "an Allocation must be committed or reverted"]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    taken_ips: Vec<IpAddr>,
    taken_ports: Vec<u16>,
    deferred_ips: Vec<IpAddr>,
    deferred_ports: Vec<u16>,
}

impl Allocation {
    /// NodePorts (including health-check ports) newly taken by this operation.
    pub fn taken_node_ports(&self) -> &[u16] {
        &self.taken_ports
    }
    /// ClusterIPs newly taken by this operation.
    pub fn taken_cluster_ips(&self) -> &[IpAddr] {
        &self.taken_ips
    }
    /// NodePorts that [`ServiceAllocator::commit`] will free.
    pub fn deferred_node_ports(&self) -> &[u16] {
        &self.deferred_ports
    }
    /// ClusterIPs that [`ServiceAllocator::commit`] will free.
    pub fn deferred_cluster_ips(&self) -> &[IpAddr] {
        &self.deferred_ips
    }
}

/// One finding of a repair pass about a stored Service. kube-apiserver records these as
/// Warning Events on the Service (`reason`, `message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairProblem {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    /// e.g. `PortAlreadyAllocated`, `ClusterIPOutOfRange`.
    pub reason: &'static str,
    /// The events.k8s.io `action`: `PortAllocation` or `ClusterIPAllocation`.
    pub action: &'static str,
    /// e.g. `Port 30000 was assigned to multiple services; please recreate service`.
    pub message: String,
}

/// The outcome of [`ServiceAllocator::repair`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Per-Service problems (duplicates, out of range, not allocated, invalid).
    pub problems: Vec<RepairProblem>,
    /// kube-apiserver's log lines for the pass, including leak tracking.
    pub log: Vec<String>,
    /// NodePorts freed this pass because they leaked for 3 passes.
    pub freed_node_ports: Vec<u16>,
    /// ClusterIPs freed this pass because they leaked for 3 passes.
    pub freed_cluster_ips: Vec<IpAddr>,
}

enum IpErr {
    NotInRange,
    Allocated,
    Full,
}

enum PortErr {
    NotInRange,
    Allocated,
    Full,
}

/// The legacy bitmap IP allocator over one CIDR: offsets start at network+1; IPv4 excludes
/// the broadcast address; IPv6 is capped at 65536 addresses.
#[derive(Clone, Debug)]
struct IpPool {
    net: IpNet,
    family: Family,
    base: u128,
    bits: Bitmap,
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl IpPool {
    fn new(net: IpNet) -> Self {
        let net = net.trunc();
        let (family, host_bits) = match net {
            IpNet::V4(n) => (Family::V4, 32 - n.prefix_len() as u32),
            IpNet::V6(n) => (Family::V6, 128 - n.prefix_len() as u32),
        };
        let max: u128 = match family {
            // Minus the network and broadcast addresses.
            Family::V4 => (1u128 << host_bits).saturating_sub(2),
            // The bitmap is capped; minus the network address.
            Family::V6 => (if host_bits >= 17 {
                65536
            } else {
                1u128 << host_bits
            })
            .saturating_sub(1),
        };
        // calculateRangeOffset uses the CIDR size: min(max(16, size/16), 256), 0 if size <= 16.
        let cidr_size: u128 = match family {
            Family::V4 if host_bits >= 31 => 0,
            Family::V6 if host_bits >= 127 => 0,
            Family::V6 if host_bits >= 63 => i64::MAX as u128,
            _ => 1u128 << host_bits,
        };
        let offset = if cidr_size <= 16 {
            0
        } else {
            (cidr_size / 16).clamp(16, 256) as usize
        };
        IpPool {
            net,
            family,
            base: ip_to_u128(net.network()) + 1,
            bits: Bitmap::new(max as usize, offset),
        }
    }

    fn offset_of(&self, ip: IpAddr) -> Option<usize> {
        if !self.net.contains(&ip) {
            return None;
        }
        let off = ip_to_u128(ip).checked_sub(self.base)?;
        (off < self.bits.max() as u128).then_some(off as usize)
    }

    fn ip_at(&self, off: usize) -> IpAddr {
        let v = self.base + off as u128;
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
        }
    }

    fn allocate(&mut self, ip: IpAddr) -> Result<(), IpErr> {
        let off = self.offset_of(ip).ok_or(IpErr::NotInRange)?;
        if self.bits.set(off) {
            Ok(())
        } else {
            Err(IpErr::Allocated)
        }
    }

    fn release(&mut self, ip: IpAddr) {
        if let Some(off) = self.offset_of(ip) {
            self.bits.clear(off);
        }
    }

    fn has(&self, ip: IpAddr) -> bool {
        self.offset_of(ip).is_some_and(|o| self.bits.has(o))
    }

    fn err_text(&self, err: IpErr, ip: IpAddr) -> String {
        match err {
            IpErr::NotInRange => format!(
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                self.net
            ),
            IpErr::Allocated => "provided IP is already allocated".into(),
            IpErr::Full => "range is full".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct PortPool {
    range: PortRange,
    bits: Bitmap,
}

impl PortPool {
    fn new(range: PortRange) -> Self {
        let size = range.size as usize;
        // calculateRangeOffset for ports: min(max(16, size/32), 128), 0 if size <= 16.
        let offset = if size <= 16 {
            0
        } else {
            (size / 32).clamp(16, 128)
        };
        PortPool {
            range,
            bits: Bitmap::new(size, offset),
        }
    }

    fn offset_of(&self, port: i64) -> Option<usize> {
        self.range
            .contains(port)
            .then(|| (port - self.range.base as i64) as usize)
    }

    fn allocate(&mut self, port: i64) -> Result<(), PortErr> {
        let off = self.offset_of(port).ok_or(PortErr::NotInRange)?;
        if self.bits.set(off) {
            Ok(())
        } else {
            Err(PortErr::Allocated)
        }
    }

    fn release(&mut self, port: i64) {
        if let Some(off) = self.offset_of(port) {
            self.bits.clear(off);
        }
    }

    fn has(&self, port: i64) -> bool {
        self.offset_of(port).is_some_and(|o| self.bits.has(o))
    }

    fn err_text(&self, err: PortErr) -> String {
        match err {
            PortErr::NotInRange => {
                format!(
                    "provided port is not in the valid range. The range of valid ports is {}",
                    self.range
                )
            }
            PortErr::Allocated => "provided port is already allocated".into(),
            PortErr::Full => "range is full".into(),
        }
    }
}

/// ClusterIP and NodePort allocation state for one (single-stack) cluster.
///
/// Not thread-safe by design: the API server serialises every Service write, including the
/// storage write between allocation and `commit`/`revert`, behind one lock. State is not
/// persisted; at start-up call [`ServiceAllocator::repair`] with every stored Service.
#[derive(Debug)]
pub struct ServiceAllocator {
    cfg: ServiceConfig,
    ips: IpPool,
    ports: PortPool,
    rng: StdRng,
    port_leaks: HashMap<u16, u32>,
    ip_leaks: HashMap<IpAddr, u32>,
    /// False until the first allocation or repair: the first repair then only loads state.
    populated: bool,
}

impl ServiceAllocator {
    /// An empty allocator for `cfg`.
    pub fn new(cfg: &ServiceConfig) -> Self {
        Self::with_rng(cfg, StdRng::from_os_rng())
    }

    /// Like [`ServiceAllocator::new`] with a fixed random seed (reproducible tests, benches).
    pub fn with_seed(cfg: &ServiceConfig, seed: u64) -> Self {
        Self::with_rng(cfg, StdRng::seed_from_u64(seed))
    }

    fn with_rng(cfg: &ServiceConfig, rng: StdRng) -> Self {
        ServiceAllocator {
            cfg: cfg.clone(),
            ips: IpPool::new(cfg.cluster_ip_range),
            ports: PortPool::new(cfg.node_port_range),
            rng,
            port_leaks: HashMap::new(),
            ip_leaks: HashMap::new(),
            populated: false,
        }
    }

    /// The configuration this allocator serves.
    pub fn config(&self) -> &ServiceConfig {
        &self.cfg
    }

    /// NodePorts currently marked in use (including health-check ports).
    pub fn used_node_ports(&self) -> usize {
        self.ports.bits.count()
    }

    /// ClusterIPs currently marked in use.
    pub fn used_cluster_ips(&self) -> usize {
        self.ips.bits.count()
    }

    /// Whether `port` is marked in use.
    pub fn node_port_in_use(&self, port: u16) -> bool {
        self.ports.has(port as i64)
    }

    /// Whether `ip` is marked in use.
    pub fn cluster_ip_in_use(&self, ip: IpAddr) -> bool {
        self.ips.has(ip)
    }

    fn family(&self) -> Family {
        self.ips.family
    }

    // ---- low-level operations recorded in an Allocation ----

    fn take_port(&mut self, a: &mut Allocation, port: i64) -> Result<(), String> {
        match self.ports.allocate(port) {
            Ok(()) => {
                a.taken_ports.push(port as u16);
                Ok(())
            }
            Err(e) => Err(self.ports.err_text(e)),
        }
    }

    fn take_next_port(&mut self, a: &mut Allocation) -> Result<u16, String> {
        match self.ports.bits.allocate_next(&mut self.rng) {
            Some(off) => {
                let port = self.ports.range.base + off as u16;
                a.taken_ports.push(port);
                Ok(port)
            }
            None => Err(self.ports.err_text(PortErr::Full)),
        }
    }

    /// Gives back everything `a` took: the storage write failed (or validation rejected the
    /// object after allocation). Deferred releases are dropped, so old values stay taken.
    pub fn revert(&mut self, a: Allocation) {
        for ip in a.taken_ips {
            self.ips.release(ip);
        }
        for p in a.taken_ports {
            self.ports.release(p as i64);
        }
    }

    /// The storage write committed: free the values the update gave up.
    pub fn commit(&mut self, a: Allocation) {
        for ip in a.deferred_ips {
            self.ips.release(ip);
        }
        for p in a.deferred_ports {
            self.ports.release(p as i64);
        }
    }

    /// After a delete committed: frees the Service's clusterIPs, nodePorts and, when it
    /// needs one, its healthCheckNodePort (`releaseAllocatedResources`).
    pub fn release(&mut self, svc: &Service) {
        if svc_type(svc) != TYPE_EXTERNAL_NAME
            && cluster_ips(svc)
                .first()
                .is_none_or(|ip| ip != CLUSTER_IP_NONE)
        {
            for ip in cluster_ips(svc) {
                if let Some(addr) = parse_ip_sloppy(ip) {
                    if Family::of(addr) == self.family() {
                        self.ips.release(addr);
                    }
                }
            }
        }
        for np in collect_node_ports(svc) {
            self.ports.release(np as i64);
        }
        if needs_health_check(svc) && hc_node_port(svc) > 0 {
            self.ports.release(hc_node_port(svc) as i64);
        }
    }

    // ---- create ----

    /// `allocateCreate`: fills `ipFamilyPolicy`/`ipFamilies`, `clusterIP(s)`, `nodePort`s and
    /// `healthCheckNodePort`, honouring requested values. On error nothing stays taken.
    pub fn allocate_create(&mut self, svc: &mut Service) -> Result<Allocation, AllocError> {
        self.populated = true;
        normalize_cluster_ips(svc, None);
        none_if_empty(&mut spec_mut(svc).ip_families);
        self.init_ip_family_fields(svc, None)?;
        let mut a = Allocation::default();
        let result = self.create_steps(svc, &mut a);
        match result {
            Ok(()) => Ok(a),
            Err(e) => {
                self.revert(a);
                Err(e)
            }
        }
    }

    fn create_steps(&mut self, svc: &mut Service, a: &mut Allocation) -> Result<(), AllocError> {
        self.alloc_cluster_ips(svc, a)?;
        if needs_node_port(svc) {
            self.init_node_ports(svc, a)?;
        }
        if needs_health_check(svc) {
            self.alloc_health_check_node_port(svc, a)
                .map_err(AllocError::Internal)?;
        }
        Ok(())
    }

    /// [`allocate_create`](Self::allocate_create) then [`validate_create`], in
    /// kube-apiserver's order; a validation failure reverts the allocation.
    pub fn admit_create(&mut self, svc: &mut Service) -> Result<Allocation, AllocError> {
        let a = self.allocate_create(svc)?;
        let errs = validate_create(svc, &self.cfg);
        if errs.is_empty() {
            Ok(a)
        } else {
            self.revert(a);
            Err(AllocError::Invalid(errs))
        }
    }

    fn alloc_cluster_ips(
        &mut self,
        svc: &mut Service,
        a: &mut Allocation,
    ) -> Result<(), AllocError> {
        if svc_type(svc) == TYPE_EXTERNAL_NAME {
            return Ok(());
        }
        if cluster_ips(svc)
            .first()
            .is_some_and(|ip| ip == CLUSTER_IP_NONE)
        {
            return Ok(());
        }
        let families = ip_families(svc).to_vec();
        for (i, fam) in families.iter().enumerate() {
            let spec = spec_mut(svc);
            let ips = spec.cluster_ips.get_or_insert_with(Vec::new);
            if i >= ips.len() {
                ips.push(String::new());
            }
            let requested = ips[i].clone();
            let ip = self.alloc_ip(svc, fam, &requested, a)?;
            let spec = spec_mut(svc);
            spec.cluster_ips.get_or_insert_with(Vec::new)[i] = ip.clone();
            if i == 0 {
                spec.cluster_ip = Some(ip);
            }
        }
        Ok(())
    }

    /// `allocIPs` for one family: a requested IP, or the next free one.
    fn alloc_ip(
        &mut self,
        svc: &Service,
        fam: &str,
        requested: &str,
        a: &mut Allocation,
    ) -> Result<String, AllocError> {
        if fam != self.family().as_str() {
            return Err(AllocError::Internal(format!(
                "failed to allocate a serviceIP: {fam} is not configured on this cluster"
            )));
        }
        if requested.is_empty() {
            return match self.ips.bits.allocate_next(&mut self.rng) {
                Some(off) => {
                    let ip = self.ips.ip_at(off);
                    a.taken_ips.push(ip);
                    Ok(ip.to_string())
                }
                None => Err(AllocError::Internal(format!(
                    "failed to allocate a serviceIP: {}",
                    self.ips.err_text(IpErr::Full, self.ips.net.network())
                ))),
            };
        }
        let ip = parse_ip_sloppy(requested).ok_or_else(|| {
            AllocError::Internal(format!(
                "failed to parse service IP {}",
                go_quote(requested)
            ))
        })?;
        match self.ips.allocate(ip) {
            Ok(()) => {
                a.taken_ips.push(ip);
                Ok(requested.to_string())
            }
            Err(e) => Err(AllocError::Invalid(vec![FieldError::invalid(
                FieldPath::new("spec").child("clusterIPs"),
                BadValue::StrList(cluster_ips(svc).to_vec()),
                format!(
                    "failed to allocate IP {requested}: {}",
                    self.ips.err_text(e, ip)
                ),
            )])),
        }
    }

    /// `initNodePorts`: ports sharing a `port` number share one nodePort (requested or
    /// allocated); with `allocateLoadBalancerNodePorts: false` only requested ones are taken.
    fn init_node_ports(&mut self, svc: &mut Service, a: &mut Allocation) -> Result<(), AllocError> {
        let allocate_new = should_allocate_node_ports(svc);
        let all_ports = ports(svc).to_vec();
        let mut by_port: HashMap<i32, i32> = HashMap::new();
        for i in 0..all_ports.len() {
            let sp = &all_ports[i];
            let np = node_port(sp);
            if np == 0 && !allocate_new {
                continue;
            }
            let np_path = FieldPath::new("spec")
                .child("ports")
                .index(i)
                .child("nodePort");
            let assigned = by_port.get(&sp.port).copied().unwrap_or(0);
            let set_to = if assigned == 0 {
                let requested = all_ports
                    .iter()
                    .find(|p| p.port == sp.port && node_port(p) != 0)
                    .map(node_port)
                    .unwrap_or(0);
                if requested != 0 {
                    self.take_port(a, requested as i64)
                        .map_err(|msg| invalid_node_port(&np_path, requested, msg))?;
                    requested
                } else {
                    let port = self.take_next_port(a).map_err(|e| {
                        AllocError::Internal(format!("failed to allocate a nodePort: {e}"))
                    })?;
                    port as i32
                }
            } else if np != assigned {
                if np == 0 {
                    assigned
                } else {
                    self.take_port(a, np as i64)
                        .map_err(|msg| invalid_node_port(&np_path, np, msg))?;
                    np
                }
            } else {
                continue;
            };
            if assigned == 0 {
                by_port.insert(sp.port, set_to);
            }
            spec_mut(svc).ports.as_mut().expect("ports exist")[i].node_port = Some(set_to);
        }
        Ok(())
    }

    /// `allocHealthCheckNodePort`; the error text is wrapped as an InternalError.
    fn alloc_health_check_node_port(
        &mut self,
        svc: &mut Service,
        a: &mut Allocation,
    ) -> Result<(), String> {
        let hc = hc_node_port(svc);
        if hc != 0 {
            self.take_port(a, hc as i64).map_err(|e| {
                format!("failed to allocate requested HealthCheck NodePort {hc}: {e}")
            })?;
        } else {
            // kube prints the (zero) value returned alongside the error.
            let port = self
                .take_next_port(a)
                .map_err(|e| format!("failed to allocate a HealthCheck NodePort 0: {e}"))?;
            spec_mut(svc).health_check_node_port = Some(port as i32);
        }
        Ok(())
    }

    // ---- update ----

    /// `allocateUpdate`: handles type changes (ExternalName ↔ others, NodePort/LoadBalancer ↔
    /// ClusterIP), new nodePorts and the health-check port. Values the update gives up are
    /// only released by [`commit`](Self::commit). On error nothing stays taken.
    pub fn allocate_update(
        &mut self,
        old: &Service,
        new: &mut Service,
    ) -> Result<Allocation, AllocError> {
        self.populated = true;
        patch_allocated_values(new, old);
        normalize_cluster_ips(new, Some(old));
        none_if_empty(&mut spec_mut(new).ip_families);
        self.init_ip_family_fields(new, Some(old))?;
        let mut a = Allocation::default();
        match self.update_steps(old, new, &mut a) {
            Ok(()) => Ok(a),
            Err(e) => {
                self.revert(a);
                Err(e)
            }
        }
    }

    /// [`prepare_update`], [`allocate_update`](Self::allocate_update) and [`validate_update`]
    /// in kube-apiserver's order; a validation failure reverts the allocation.
    pub fn admit_update(
        &mut self,
        old: &Service,
        new: &mut Service,
    ) -> Result<Allocation, AllocError> {
        prepare_update(new, old);
        let a = self.allocate_update(old, new)?;
        let errs = validate_update(new, old, &self.cfg);
        if errs.is_empty() {
            Ok(a)
        } else {
            self.revert(a);
            Err(AllocError::Invalid(errs))
        }
    }

    fn update_steps(
        &mut self,
        old: &Service,
        new: &mut Service,
        a: &mut Allocation,
    ) -> Result<(), AllocError> {
        self.update_cluster_ips(old, new, a)?;
        let new_type = svc_type(new);
        if needs_node_port(old) && (new_type == TYPE_EXTERNAL_NAME || new_type == TYPE_CLUSTER_IP) {
            a.deferred_ports
                .extend(collect_node_ports(old).into_iter().map(|p| p as u16));
        }
        if needs_node_port(new) {
            self.update_node_ports(old, new, a)?;
        }
        let needed = needs_health_check(old);
        let needs = needs_health_check(new);
        if !needed && needs {
            self.alloc_health_check_node_port(new, a)
                .map_err(AllocError::Internal)?;
        } else if needed && !needs && hc_node_port(old) > 0 {
            a.deferred_ports.push(hc_node_port(old) as u16);
        }
        Ok(())
    }

    fn update_cluster_ips(
        &mut self,
        old: &Service,
        new: &mut Service,
        a: &mut Allocation,
    ) -> Result<(), AllocError> {
        if is_matching_prefer_dual_stack(new, Some(old)) {
            return Ok(());
        }
        // ExternalName → a type with a clusterIP: allocate everything.
        if svc_type(old) == TYPE_EXTERNAL_NAME && svc_type(new) != TYPE_EXTERNAL_NAME {
            return self.alloc_cluster_ips(new, a);
        }
        if cluster_ips(old)
            .first()
            .is_some_and(|ip| ip == CLUSTER_IP_NONE)
        {
            return Ok(());
        }
        // → ExternalName: release everything (after commit).
        if svc_type(old) != TYPE_EXTERNAL_NAME && svc_type(new) == TYPE_EXTERNAL_NAME {
            for (i, _) in ip_families(old).iter().enumerate() {
                if let Some(ip) = cluster_ips(old).get(i).and_then(|s| parse_ip_sloppy(s)) {
                    if Family::of(ip) == self.family() {
                        a.deferred_ips.push(ip);
                    }
                }
            }
            return Ok(());
        }
        let (of, nf) = (ip_families(old).len(), ip_families(new).len());
        if of == 1 && nf == 2 {
            let fam = ip_families(new)[1].clone();
            let spec = spec_mut(new);
            let ips = spec.cluster_ips.get_or_insert_with(Vec::new);
            if ips.len() < 2 {
                ips.push(String::new());
            }
            let requested = ips[1].clone();
            let ip = self.alloc_ip(new, &fam, &requested, a)?;
            spec_mut(new).cluster_ips.get_or_insert_with(Vec::new)[1] = ip;
        } else if of == 2 && nf == 1 {
            if let Some(ip) = cluster_ips(old).get(1).and_then(|s| parse_ip_sloppy(s)) {
                if Family::of(ip) == self.family() {
                    a.deferred_ips.push(ip);
                }
            }
        }
        Ok(())
    }

    /// `updateNodePorts`: requested nodePorts not held before are taken, unset ones are
    /// allocated, and old ones no longer used are released after commit.
    fn update_node_ports(
        &mut self,
        old: &Service,
        new: &mut Service,
        a: &mut Allocation,
    ) -> Result<(), AllocError> {
        let old_numbers = collect_node_ports(old);
        let allocate_new = should_allocate_node_ports(new);
        let mut new_node_ports: Vec<(String, i32)> = Vec::new();
        let mut taken_here: Vec<i32> = Vec::new();
        let count = ports(new).len();
        for i in 0..count {
            let (proto, np) = {
                let p = &ports(new)[i];
                (str_of(&p.protocol).to_string(), node_port(p))
            };
            if np == 0 && !allocate_new {
                continue;
            }
            let np = if np != 0 {
                if !old_numbers.contains(&np) && !taken_here.contains(&np) {
                    let path = FieldPath::new("spec")
                        .child("ports")
                        .index(i)
                        .child("nodePort");
                    self.take_port(a, np as i64)
                        .map_err(|msg| invalid_node_port(&path, np, msg))?;
                    taken_here.push(np);
                }
                np
            } else {
                let port = self.take_next_port(a).map_err(|e| {
                    AllocError::Internal(format!("failed to allocate a nodePort: {e}"))
                })?;
                spec_mut(new).ports.as_mut().expect("ports exist")[i].node_port = Some(port as i32);
                port as i32
            };
            let key = (proto, np);
            if new_node_ports.contains(&key) {
                return Err(AllocError::Internal(format!(
                    "duplicate nodePort: {{{} {}}}",
                    key.0, key.1
                )));
            }
            new_node_ports.push(key);
        }
        let new_numbers = collect_node_ports(new);
        for np in old_numbers {
            if !new_numbers.contains(&np) {
                a.deferred_ports.push(np as u16);
            }
        }
        Ok(())
    }

    // ---- IP families ----

    /// `initIPFamilyFields` for a single-stack cluster.
    fn init_ip_family_fields(
        &mut self,
        svc: &mut Service,
        old: Option<&Service>,
    ) -> Result<(), AllocError> {
        if svc_type(svc) == TYPE_EXTERNAL_NAME {
            return Ok(());
        }
        if is_matching_prefer_dual_stack(svc, old) {
            return Ok(());
        }
        if ip_family_policy(svc).is_none() {
            let policy = match old.and_then(ip_family_policy) {
                Some(p) => p.to_string(),
                None if cluster_ip(svc) == CLUSTER_IP_NONE && selector_is_empty(svc) => {
                    POLICY_REQUIRE_DUAL.to_string()
                }
                None => POLICY_SINGLE.to_string(),
            };
            spec_mut(svc).ip_family_policy = Some(policy);
        }
        let errs = validate_cluster_ips_related_fields(svc);
        if !errs.is_empty() {
            return Err(AllocError::Invalid(errs));
        }
        let mut errs = Vec::new();
        let policy = ip_family_policy(svc).unwrap_or("").to_string();
        let policy_path = FieldPath::new("spec").child("ipFamilyPolicy");
        let policy_value = BadValue::Str(policy.clone());
        if let Some(old) = old {
            if policy == POLICY_SINGLE {
                // Setting single-stack without touching the lists is clear intent to drop
                // the secondary entries.
                let spec = spec_mut(svc);
                if cluster_ips(old) == list_of(&spec.cluster_ips)
                    && list_of(&spec.cluster_ips).len() > 1
                {
                    spec.cluster_ips.as_mut().expect("len > 1").truncate(1);
                }
                if ip_families(old) == list_of(&spec.ip_families)
                    && list_of(&spec.ip_families).len() > 1
                {
                    spec.ip_families.as_mut().expect("len > 1").truncate(1);
                }
            } else {
                let (n_ips, n_fams) = (cluster_ips(svc).len(), ip_families(svc).len());
                if n_ips != 0 && n_ips < cluster_ips(old).len() {
                    errs.push(FieldError::invalid(
                        policy_path.clone(),
                        policy_value.clone(),
                        "must be 'SingleStack' to release the secondary cluster IP",
                    ));
                }
                if n_fams != 0 && n_fams < ip_families(old).len() {
                    errs.push(FieldError::invalid(
                        policy_path.clone(),
                        policy_value.clone(),
                        "must be 'SingleStack' to release the secondary IP family",
                    ));
                }
            }
        }
        if policy == POLICY_SINGLE {
            if cluster_ips(svc).len() == 2 {
                errs.push(FieldError::invalid(
                    policy_path.clone(),
                    policy_value.clone(),
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
                ));
            }
            if ip_families(svc).len() == 2 {
                errs.push(FieldError::invalid(
                    policy_path.clone(),
                    policy_value.clone(),
                    "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
                ));
            }
        }
        // Infer ipFamilies from clusterIPs.
        let ips = cluster_ips(svc).to_vec();
        for (i, ip) in ips.iter().enumerate() {
            if ip == CLUSTER_IP_NONE {
                break;
            }
            let fam = match parse_ip_sloppy(ip) {
                Some(addr) => Family::of(addr).as_str(),
                None => "unknown",
            };
            if i >= ip_families(svc).len() {
                if fam != self.family().as_str() {
                    errs.push(FieldError::invalid(
                        FieldPath::new("spec").child("clusterIPs").index(i),
                        BadValue::StrList(ips.clone()),
                        format!("{fam} is not configured on this cluster"),
                    ));
                } else {
                    spec_mut(svc)
                        .ip_families
                        .get_or_insert_with(Vec::new)
                        .push(fam.to_string());
                }
            }
        }
        if !errs.is_empty() {
            return Err(AllocError::Invalid(errs));
        }
        // Headless and selectorless: endpoints of either family may be added by hand.
        if cluster_ip(svc) == CLUSTER_IP_NONE && selector_is_empty(svc) {
            let ours = self.family();
            let spec = spec_mut(svc);
            let fams = spec.ip_families.get_or_insert_with(Vec::new);
            if fams.is_empty() {
                fams.push(ours.as_str().to_string());
            }
            if fams.len() < 2 && policy != POLICY_SINGLE {
                let first = if fams[0] == Family::V6.as_str() {
                    Family::V6
                } else {
                    Family::V4
                };
                fams.push(first.other().as_str().to_string());
            }
            return Ok(());
        }
        if policy == POLICY_REQUIRE_DUAL {
            errs.push(FieldError::invalid(
                policy_path,
                policy_value,
                "this cluster is not configured for dual-stack services",
            ));
        }
        for (i, fam) in ip_families(svc).iter().enumerate() {
            if fam != self.family().as_str() {
                errs.push(FieldError::invalid(
                    FieldPath::new("spec").child("ipFamilies").index(i),
                    BadValue::Str(fam.clone()),
                    "not configured on this cluster",
                ));
            }
        }
        if !errs.is_empty() {
            return Err(AllocError::Invalid(errs));
        }
        if ip_families(svc).is_empty() {
            spec_mut(svc).ip_families = Some(vec![self.family().as_str().to_string()]);
        }
        Ok(())
    }

    // ---- repair ----

    /// One pass of kube-apiserver's NodePort and ClusterIP repair loops over all stored
    /// Services: values in use but not marked are marked (reported `...NotAllocated`, except
    /// on the first pass of a fresh allocator, which is the start-up load); a value used by
    /// two Services or outside the range is reported; values marked but unused are kept for
    /// two more passes and freed on the third.
    pub fn repair(&mut self, services: &[Service]) -> RepairReport {
        let initial_load = !self.populated;
        self.populated = true;
        let mut report = RepairReport::default();
        self.repair_ports(services, initial_load, &mut report);
        self.repair_ips(services, initial_load, &mut report);
        report
    }

    fn repair_ports(
        &mut self,
        services: &[Service],
        initial_load: bool,
        report: &mut RepairReport,
    ) {
        let mut stored = self.ports.bits.clone();
        let mut rebuilt = PortPool {
            range: self.ports.range,
            bits: self.ports.bits.empty_like(),
        };
        let range = self.ports.range;
        for svc in services {
            let (ns, name) = (
                svc.metadata.namespace.clone().unwrap_or_default(),
                svc.metadata.name.clone().unwrap_or_default(),
            );
            let problem = |reason: &'static str, message: String| RepairProblem {
                namespace: ns.clone(),
                name: name.clone(),
                uid: svc.metadata.uid.clone(),
                reason,
                action: "PortAllocation",
                message,
            };
            for port in collect_repair_node_ports(svc) {
                match rebuilt.allocate(port as i64) {
                    Ok(()) => {
                        let off = port as usize - range.base as usize;
                        if stored.has(off) {
                            stored.clear(off);
                        } else if !initial_load {
                            report.problems.push(problem(
                                "PortNotAllocated",
                                format!("Port {port} is not allocated; repairing"),
                            ));
                            report.log.push(format!("the node port {port} for service {name}/{ns} is not allocated; repairing"));
                        }
                        self.port_leaks.remove(&(port as u16));
                    }
                    Err(PortErr::Allocated) => {
                        report.problems.push(problem(
                            "PortAlreadyAllocated",
                            format!("Port {port} was assigned to multiple services; please recreate service"),
                        ));
                        report.log.push(format!("the node port {port} for service {name}/{ns} was assigned to multiple services; please recreate"));
                    }
                    Err(PortErr::NotInRange) => {
                        report.problems.push(problem(
                            "PortOutOfRange",
                            format!("Port {port} is not within the port range {range}; please recreate service"),
                        ));
                        report.log.push(format!("the port {port} for service {name}/{ns} is not within the port range {range}; please recreate"));
                    }
                    Err(PortErr::Full) => {
                        unreachable!("explicit allocation never reports a full range")
                    }
                }
            }
        }
        for off in stored.iter().collect::<Vec<_>>() {
            let port = range.base + off as u16;
            let count = match self.port_leaks.get(&port) {
                None => {
                    report.log.push(format!(
                        "the node port {port} may have leaked: flagging for later clean up"
                    ));
                    Some(NUM_REPAIRS_BEFORE_LEAK_CLEANUP - 1)
                }
                Some(&c) if c > 0 => Some(c),
                Some(_) => None,
            };
            match count {
                Some(c) => {
                    self.port_leaks.insert(port, c - 1);
                    rebuilt.bits.set(off);
                }
                None => {
                    report.log.push(format!(
                        "the node port {port} appears to have leaked: cleaning up"
                    ));
                    report.freed_node_ports.push(port);
                }
            }
        }
        self.ports = rebuilt;
    }

    fn repair_ips(&mut self, services: &[Service], initial_load: bool, report: &mut RepairReport) {
        let mut stored = self.ips.clone();
        let mut rebuilt = IpPool {
            bits: self.ips.bits.empty_like(),
            ..self.ips.clone()
        };
        let ours = self.family();
        let net = self.ips.net;
        for svc in services {
            let ip0 = cluster_ip(svc);
            if ip0.is_empty() || ip0 == CLUSTER_IP_NONE {
                continue;
            }
            let (ns, name) = (
                svc.metadata.namespace.clone().unwrap_or_default(),
                svc.metadata.name.clone().unwrap_or_default(),
            );
            let problem = |reason: &'static str, message: String| RepairProblem {
                namespace: ns.clone(),
                name: name.clone(),
                uid: svc.metadata.uid.clone(),
                reason,
                action: "ClusterIPAllocation",
                message,
            };
            for text in cluster_ips(svc) {
                let Some(ip) = parse_ip_strict(text) else {
                    // kube formats the nil parse result.
                    report.problems.push(problem(
                        "ClusterIPNotValid",
                        "Cluster IP <nil> is not a valid IP; please recreate service".into(),
                    ));
                    report.log.push(format!("the cluster IP <nil> for service {name}/{ns} is not a valid IP; please recreate"));
                    continue;
                };
                let fam = Family::of(ip);
                if fam != ours {
                    report.problems.push(problem(
                        "ClusterIPNotValid",
                        format!("Cluster IP {ip}({}) is of ip family that is no longer configured on cluster; please recreate service", fam.as_str()),
                    ));
                    report.log.push(format!(
                        "the cluster IP {ip}({}) for service {name}/{ns} is of ip family that is no longer configured on cluster; please recreate",
                        fam.as_str()
                    ));
                    continue;
                }
                let f = fam.as_str();
                match rebuilt.allocate(ip) {
                    Ok(()) => {
                        if stored.has(ip) {
                            stored.release(ip);
                        } else if !initial_load {
                            report.problems.push(problem(
                                "ClusterIPNotAllocated",
                                format!("Cluster IP [{f}]:{ip} is not allocated; repairing"),
                            ));
                            report.log.push(format!("the cluster IP [{f}]:{ip} for service {name}/{ns} is not allocated; repairing"));
                        }
                        self.ip_leaks.remove(&ip);
                    }
                    Err(IpErr::Allocated) => {
                        report.problems.push(problem(
                            "ClusterIPAlreadyAllocated",
                            format!("Cluster IP [{f}]:{ip} was assigned to multiple services; please recreate service"),
                        ));
                        report.log.push(format!("the cluster IP [{f}]:{ip} for service {name}/{ns} was assigned to multiple services; please recreate"));
                    }
                    Err(IpErr::NotInRange) => {
                        report.problems.push(problem(
                            "ClusterIPOutOfRange",
                            format!("Cluster IP [{f}]:{ip} is not within the service CIDR {net}; please recreate service"),
                        ));
                        report.log.push(format!("the cluster IP [{f}]:{ip} for service {name}/{ns} is not within the service CIDR {net}; please recreate"));
                    }
                    Err(IpErr::Full) => {
                        unreachable!("explicit allocation never reports a full range")
                    }
                }
            }
        }
        for off in stored.bits.iter().collect::<Vec<_>>() {
            let ip = stored.ip_at(off);
            let count = match self.ip_leaks.get(&ip) {
                None => {
                    report.log.push(format!(
                        "the cluster IP {ip} may have leaked: flagging for later clean up"
                    ));
                    Some(NUM_REPAIRS_BEFORE_LEAK_CLEANUP - 1)
                }
                Some(&c) if c > 0 => Some(c),
                Some(_) => None,
            };
            match count {
                Some(c) => {
                    self.ip_leaks.insert(ip, c - 1);
                    rebuilt.bits.set(off);
                }
                None => {
                    report.log.push(format!(
                        "the cluster IP {ip} appears to have leaked: cleaning up"
                    ));
                    report.freed_cluster_ips.push(ip);
                }
            }
        }
        self.ips = rebuilt;
    }
}

fn invalid_node_port(path: &FieldPath, port: i32, msg: String) -> AllocError {
    AllocError::Invalid(vec![FieldError::invalid(
        path.clone(),
        BadValue::Int(port as i64),
        msg,
    )])
}

fn should_allocate_node_ports(svc: &Service) -> bool {
    match svc_type(svc) {
        TYPE_NODE_PORT => true,
        TYPE_LOAD_BALANCER => svc
            .spec
            .as_ref()
            .and_then(|s| s.allocate_load_balancer_node_ports)
            .unwrap_or(true),
        _ => false,
    }
}

/// alloc.go's `collectServiceNodePorts`: every non-zero nodePort (repeats included).
fn collect_node_ports(svc: &Service) -> Vec<i32> {
    ports(svc)
        .iter()
        .map(node_port)
        .filter(|&n| n != 0)
        .collect()
}

/// The repair loop's `collectServiceNodePorts`: a nodePort shared by ports of different
/// protocols counts once, the same protocol twice (a duplicate); the health-check port is
/// added unless a non-TCP port already uses that number.
fn collect_repair_node_ports(svc: &Service) -> Vec<i32> {
    let mut out = Vec::new();
    let mut seen: HashMap<i32, Vec<String>> = HashMap::new();
    for p in ports(svc) {
        let np = node_port(p);
        if np == 0 {
            continue;
        }
        let proto = str_of(&p.protocol).to_string();
        match seen.get_mut(&np) {
            None => {
                seen.insert(np, vec![proto]);
                out.push(np);
            }
            Some(protos) if protos.contains(&proto) => out.push(np),
            Some(protos) => protos.push(proto),
        }
    }
    let hc = hc_node_port(svc);
    if hc != 0
        && seen
            .get(&hc)
            .is_none_or(|protos| protos.iter().any(|p| p == "TCP"))
    {
        out.push(hc);
    }
    out
}

/// `isMatchingPreferDualStackClusterIPFields`: an update of a PreferDualStack Service that
/// leaves type, clusterIPs and ipFamilies alone is not re-processed.
fn is_matching_prefer_dual_stack(new: &Service, old: Option<&Service>) -> bool {
    let Some(old) = old else { return false };
    let Some(policy) = ip_family_policy(new) else {
        return false;
    };
    if svc_type(old) != svc_type(new) {
        return false;
    }
    if ![TYPE_CLUSTER_IP, TYPE_NODE_PORT, TYPE_LOAD_BALANCER].contains(&svc_type(new)) {
        return false;
    }
    if policy != POLICY_PREFER_DUAL {
        return false;
    }
    if ip_family_policy(old).is_some_and(|p| p != POLICY_PREFER_DUAL) {
        return false;
    }
    cluster_ips(old) == cluster_ips(new) && same_ip_families(old, new)
}
