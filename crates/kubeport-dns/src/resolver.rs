//! Name → records, from a [`Snapshot`]: the Kubernetes DNS schema
//! (kubernetes/dns `docs/specification.md`) with CoreDNS's `kubernetes` plugin conventions
//! where the spec leaves room (TTL 5 s, SRV priority 0 / weight 100÷n, SOA shape,
//! system-assigned endpoint hostnames, NODATA for empty non-terminals).
//!
//! No I/O: the server hands every question to [`Resolver::resolve`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::snapshot::{dashed_ip, IpOwner, ServiceAddressing, ServiceEntry, Snapshot};

/// The DNS schema version served at `dns-version.<zone>` TXT (what CoreDNS reports).
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";
/// TTL of the `dns-version` record (the spec's example and CoreDNS).
const SCHEMA_VERSION_TTL: u32 = 28800;
/// The longest CNAME chain followed inside the cluster domain (CoreDNS stops at 8 too).
const MAX_CNAME_CHAIN: usize = 8;

/// How `<a-b-c-d>.<ns>.pod.<zone>` names are answered (CoreDNS's `pods` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PodRecords {
    /// Any well-formed address in an existing namespace (kube-dns compatible; kubeadm's default).
    #[default]
    Insecure,
    /// Only addresses of Pods that exist in that namespace.
    Verified,
    /// No pod records.
    Disabled,
}

/// Resolver settings.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// The cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// TTL of every record (CoreDNS default: 5 s).
    pub ttl: u32,
    pub pod_records: PodRecords,
    /// The Service whose ClusterIPs are this server's addresses (`ns.dns.<zone>`, NS records).
    pub dns_service: (String, String),
}

impl ResolverConfig {
    /// Defaults for `cluster_domain`: TTL 5, insecure pod records, `kube-system/kube-dns`.
    pub fn new(cluster_domain: &str) -> Self {
        ResolverConfig {
            cluster_domain: cluster_domain.to_string(),
            ttl: 5,
            pod_records: PodRecords::Insecure,
            dns_service: ("kube-system".to_string(), "kube-dns".to_string()),
        }
    }
}

/// A response, ready to be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub response_code: ResponseCode,
    /// Set for every name this server owns (the cluster domain and the reverse zones).
    pub authoritative: bool,
    pub answers: Vec<Record>,
    /// The zone's SOA on NXDOMAIN and NODATA (RFC 2308 negative caching).
    pub authorities: Vec<Record>,
    /// Addresses of SRV targets and name servers.
    pub additionals: Vec<Record>,
}

impl Answer {
    fn refused() -> Answer {
        Answer {
            response_code: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn authoritative() -> Answer {
        Answer {
            authoritative: true,
            response_code: ResponseCode::NoError,
            ..Answer::refused()
        }
    }
}

/// What exists at one name, restricted to the asked type.
#[derive(Default)]
struct Found {
    /// False: NXDOMAIN.
    exists: bool,
    /// Records of the asked type at the name, plus a CNAME if the name is an alias.
    records: Vec<RData>,
    additionals: Vec<Record>,
}

impl Found {
    fn nxdomain() -> Found {
        Found::default()
    }

    fn exists() -> Found {
        Found {
            exists: true,
            ..Found::default()
        }
    }

    fn exists_if(condition: bool) -> Found {
        if condition {
            Found::exists()
        } else {
            Found::nxdomain()
        }
    }
}

/// Which reverse zone a name falls in.
#[derive(Clone, Copy)]
enum ReverseZone {
    V4,
    V6,
}

/// Answers questions from snapshots. Cheap to share; holds only configuration.
#[derive(Debug, Clone)]
pub struct Resolver {
    zone: Name,
    /// The zone as text with a trailing dot, for building names.
    zone_text: String,
    ttl: u32,
    pod_records: PodRecords,
    dns_service: (String, String),
    ns_name: Name,
    hostmaster: Name,
    in_addr_arpa: Name,
    ip6_arpa: Name,
}

impl Resolver {
    /// Fails when the cluster domain is not a valid domain name.
    pub fn new(config: ResolverConfig) -> anyhow::Result<Resolver> {
        let domain = config
            .cluster_domain
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if domain.is_empty() {
            anyhow::bail!("the cluster domain must not be empty");
        }
        let zone_text = format!("{domain}.");
        let zone = Name::from_ascii(&zone_text)
            .map_err(|err| anyhow::anyhow!("invalid cluster domain {domain:?}: {err}"))?;
        Ok(Resolver {
            ns_name: Name::from_ascii(format!("ns.dns.{zone_text}"))?,
            hostmaster: Name::from_ascii(format!("hostmaster.{zone_text}"))?,
            in_addr_arpa: Name::from_ascii("in-addr.arpa.")?,
            ip6_arpa: Name::from_ascii("ip6.arpa.")?,
            zone,
            zone_text,
            ttl: config.ttl,
            pod_records: config.pod_records,
            dns_service: config.dns_service,
        })
    }

    /// The cluster domain as a fully qualified name.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// Whether this server owns `name` (the cluster domain or a reverse zone): names outside
    /// are refused, since the lab has no outside to forward to.
    pub fn owns(&self, name: &Name) -> bool {
        self.zone.zone_of(name) || self.in_addr_arpa.zone_of(name) || self.ip6_arpa.zone_of(name)
    }

    /// Answers one question. `qname` is used as asked (its case is kept in the answer's owner
    /// names; matching ignores case).
    pub fn resolve(
        &self,
        snapshot: &Snapshot,
        qname: &Name,
        qtype: RecordType,
        qclass: DNSClass,
    ) -> Answer {
        if qclass != DNSClass::IN && qclass != DNSClass::ANY {
            return Answer::refused();
        }
        if self.zone.zone_of(qname) {
            return self.answer_in_zone(snapshot, qname, qtype);
        }
        if self.in_addr_arpa.zone_of(qname) {
            return self.answer_reverse(snapshot, qname, qtype, ReverseZone::V4);
        }
        if self.ip6_arpa.zone_of(qname) {
            return self.answer_reverse(snapshot, qname, qtype, ReverseZone::V6);
        }
        // Not ours, and there is nothing to forward to: REFUSED tells the client at once that
        // this server will not answer for the name (SERVFAIL would invite retries of a failure
        // that is not transient).
        Answer::refused()
    }

    fn answer_in_zone(&self, snapshot: &Snapshot, qname: &Name, qtype: RecordType) -> Answer {
        let mut answer = Answer::authoritative();
        let mut owner = qname.clone();
        let mut visited: Vec<Name> = vec![qname.to_lowercase()];
        loop {
            let labels = relative_labels(&owner, &self.zone);
            let found = self.lookup_forward(snapshot, &labels, qtype);
            if !found.exists {
                answer.response_code = ResponseCode::NXDomain;
                answer.authorities.push(self.soa(&self.zone, snapshot));
                return answer;
            }
            let cname = found.records.iter().find_map(|rdata| match rdata {
                RData::CNAME(CNAME(target)) if qtype != RecordType::CNAME => Some(target.clone()),
                _ => None,
            });
            if let Some(target) = cname {
                answer.answers.push(Record::from_rdata(
                    owner.clone(),
                    self.ttl,
                    RData::CNAME(CNAME(target.clone())),
                ));
                let lower = target.to_lowercase();
                // Aliases are followed only inside the cluster domain: there is no outside
                // to ask about the rest.
                if self.zone.zone_of(&target)
                    && visited.len() <= MAX_CNAME_CHAIN
                    && !visited.contains(&lower)
                {
                    visited.push(lower);
                    owner = target;
                    continue;
                }
                return answer;
            }
            if found.records.is_empty() {
                // NODATA: the name exists without records of this type.
                answer.authorities.push(self.soa(&self.zone, snapshot));
                return answer;
            }
            let ttl = |rdata: &RData| match rdata {
                RData::TXT(_) => SCHEMA_VERSION_TTL,
                _ => self.ttl,
            };
            for rdata in found.records {
                answer
                    .answers
                    .push(Record::from_rdata(owner.clone(), ttl(&rdata), rdata));
            }
            answer.additionals = found.additionals;
            return answer;
        }
    }

    /// `labels`: the name below the zone, lowercase, outermost last
    /// (`nginx.dev.svc` → `["nginx", "dev", "svc"]`).
    fn lookup_forward(&self, snapshot: &Snapshot, labels: &[String], qtype: RecordType) -> Found {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        match labels.as_slice() {
            [] => self.apex(snapshot, qtype),
            ["dns-version"] => {
                let mut found = Found::exists();
                if wants(qtype, RecordType::TXT) {
                    found
                        .records
                        .push(RData::TXT(TXT::new(vec![DNS_SCHEMA_VERSION.to_string()])));
                }
                found
            }
            ["dns"] => Found::exists(),
            ["ns", "dns"] => {
                let mut found = Found::exists();
                for ip in self.dns_service_ips(snapshot) {
                    if let Some(rdata) = address_rdata(ip, qtype) {
                        found.records.push(rdata);
                    }
                }
                found
            }
            [rest @ .., "svc"] => self.lookup_svc(snapshot, rest, qtype),
            [rest @ .., "pod"] => self.lookup_pod(snapshot, rest, qtype),
            _ => Found::nxdomain(),
        }
    }

    fn apex(&self, snapshot: &Snapshot, qtype: RecordType) -> Found {
        let mut found = Found::exists();
        if wants(qtype, RecordType::SOA) {
            found.records.push(self.soa(&self.zone, snapshot).data);
        }
        if wants(qtype, RecordType::NS) {
            found.records.push(RData::NS(NS(self.ns_name.clone())));
            for ip in self.dns_service_ips(snapshot) {
                found
                    .additionals
                    .push(self.address_record(&self.ns_name, ip));
            }
        }
        found
    }

    fn dns_service_ips(&self, snapshot: &Snapshot) -> Vec<IpAddr> {
        let (namespace, name) = &self.dns_service;
        match snapshot.service(namespace, name).map(|s| &s.addressing) {
            Some(ServiceAddressing::ClusterIp(ips)) => ips.clone(),
            _ => Vec::new(),
        }
    }

    /// Below `svc.<zone>`: `[]`, `[ns]`, `[service, ns]`, `[endpoint, service, ns]`,
    /// `[_port, _proto, service, ns]`.
    fn lookup_svc(&self, snapshot: &Snapshot, labels: &[&str], qtype: RecordType) -> Found {
        let Some((namespace, below)) = labels.split_last() else {
            return Found::exists();
        };
        if !snapshot.has_namespace(namespace) {
            return Found::nxdomain();
        }
        let Some((service, below)) = below.split_last() else {
            return Found::exists();
        };
        let Some(service) = snapshot.service(namespace, service) else {
            return Found::nxdomain();
        };
        match below {
            [] => self.service_records(service, qtype),
            [label] if label.starts_with('_') => {
                // `_tcp.svc.ns.svc.<zone>` is an empty non-terminal when some port uses TCP.
                Found::exists_if(service_has_protocol(service, &label[1..]))
            }
            [endpoint] => self.endpoint_records(service, endpoint, qtype),
            [port, protocol] if port.starts_with('_') && protocol.starts_with('_') => {
                self.port_records(service, &port[1..], &protocol[1..], qtype)
            }
            // Deeper names, e.g. search-list expansions of an already qualified name
            // (`a.b.svc.cluster.local.b.svc.cluster.local`), do not exist.
            _ => Found::nxdomain(),
        }
    }

    fn service_name(&self, service: &ServiceEntry) -> Name {
        self.name(&format!("{}.{}.svc.", service.name, service.namespace))
    }

    fn endpoint_name(&self, service: &ServiceEntry, hostname: &str) -> Name {
        self.name(&format!(
            "{hostname}.{}.{}.svc.",
            service.name, service.namespace
        ))
    }

    /// `prefix` ends with a dot; the zone is appended.
    fn name(&self, prefix: &str) -> Name {
        // Built from Kubernetes names (DNS labels), so it parses; fall back to the zone
        // rather than panic on a malformed object.
        Name::from_ascii(format!("{prefix}{}", self.zone_text))
            .unwrap_or_else(|_| self.zone.clone())
    }

    fn service_records(&self, service: &ServiceEntry, qtype: RecordType) -> Found {
        match &service.addressing {
            ServiceAddressing::ExternalName(target) => {
                let mut found = Found::exists();
                if let Ok(target) = Name::from_ascii(format!("{target}.")) {
                    found.records.push(RData::CNAME(CNAME(target)));
                }
                found
            }
            ServiceAddressing::ClusterIp(ips) => {
                let mut found = Found::exists();
                for ip in ips {
                    if let Some(rdata) = address_rdata(*ip, qtype) {
                        found.records.push(rdata);
                    }
                }
                if wants(qtype, RecordType::SRV) {
                    let target = self.service_name(service);
                    let ports: Vec<u16> = service.ports.iter().map(|p| p.port).collect();
                    self.push_srv(&mut found, ports.iter().map(|port| (*port, &target)));
                    for ip in ips {
                        found.additionals.push(self.address_record(&target, *ip));
                    }
                }
                found
            }
            ServiceAddressing::Headless => {
                // The spec: a headless Service without ready endpoints is NXDOMAIN.
                if service.endpoints.is_empty() {
                    return Found::nxdomain();
                }
                let mut found = Found::exists();
                let mut seen: Vec<IpAddr> = Vec::new();
                for endpoint in &service.endpoints {
                    for ip in &endpoint.addresses {
                        if seen.contains(ip) {
                            continue;
                        }
                        seen.push(*ip);
                        if let Some(rdata) = address_rdata(*ip, qtype) {
                            found.records.push(rdata);
                        }
                    }
                }
                if wants(qtype, RecordType::SRV) {
                    self.headless_srv(&mut found, service, |_| true);
                }
                found
            }
        }
    }

    /// SRV records for a headless Service: one per (ready endpoint, matching port), target
    /// `<hostname>.<service>.<ns>.svc.<zone>`, with the endpoint's addresses as additionals.
    fn headless_srv(
        &self,
        found: &mut Found,
        service: &ServiceEntry,
        port_matches: impl Fn(&crate::snapshot::PortEntry) -> bool,
    ) {
        let mut targets: Vec<(u16, Name)> = Vec::new();
        let mut additionals = Vec::new();
        for endpoint in &service.endpoints {
            let target = self.endpoint_name(service, &endpoint.hostname);
            let mut used = false;
            for port in endpoint.ports.iter().filter(|p| port_matches(p)) {
                if !targets.iter().any(|(p, t)| *p == port.port && *t == target) {
                    targets.push((port.port, target.clone()));
                    used = true;
                }
            }
            if used {
                for ip in &endpoint.addresses {
                    let record = self.address_record(&target, *ip);
                    if !additionals.contains(&record) {
                        additionals.push(record);
                    }
                }
            }
        }
        self.push_srv(found, targets.iter().map(|(port, target)| (*port, target)));
        found.additionals.extend(additionals);
    }

    /// Priority 0 and an equal share of weight 100 each (CoreDNS's choice; RFC 2782 leaves it
    /// open).
    fn push_srv<'a>(&self, found: &mut Found, targets: impl Iterator<Item = (u16, &'a Name)>) {
        let targets: Vec<(u16, &Name)> = targets.collect();
        if targets.is_empty() {
            return;
        }
        let weight = u16::try_from((100 / targets.len()).max(1)).unwrap_or(1);
        for (port, target) in targets {
            found
                .records
                .push(RData::SRV(SRV::new(0, weight, port, target.clone())));
        }
    }

    /// `<hostname>.<service>.<ns>.svc.<zone>`: the ready endpoints carrying that hostname
    /// (explicit, or the system-assigned dashed address). Any Service but ExternalName.
    fn endpoint_records(&self, service: &ServiceEntry, hostname: &str, qtype: RecordType) -> Found {
        if matches!(service.addressing, ServiceAddressing::ExternalName(_)) {
            return Found::nxdomain();
        }
        let matching: Vec<_> = service
            .endpoints
            .iter()
            .filter(|endpoint| endpoint.hostname == hostname)
            .collect();
        if matching.is_empty() {
            return Found::nxdomain();
        }
        let mut found = Found::exists();
        let mut seen: Vec<IpAddr> = Vec::new();
        for endpoint in &matching {
            for ip in &endpoint.addresses {
                if !seen.contains(ip) {
                    seen.push(*ip);
                    if let Some(rdata) = address_rdata(*ip, qtype) {
                        found.records.push(rdata);
                    }
                }
            }
        }
        if wants(qtype, RecordType::SRV) {
            let target = self.endpoint_name(service, hostname);
            let mut ports: Vec<u16> = Vec::new();
            for endpoint in &matching {
                for port in endpoint.ports.iter() {
                    if !ports.contains(&port.port) {
                        ports.push(port.port);
                    }
                }
            }
            self.push_srv(&mut found, ports.iter().map(|port| (*port, &target)));
            for ip in &seen {
                found.additionals.push(self.address_record(&target, *ip));
            }
        }
        found
    }

    /// `_<port>._<proto>.<service>.<ns>.svc.<zone>`: named ports only (an unnamed port has no
    /// label to ask for).
    fn port_records(
        &self,
        service: &ServiceEntry,
        port_name: &str,
        protocol: &str,
        qtype: RecordType,
    ) -> Found {
        let port_matches = |port: &crate::snapshot::PortEntry| {
            !port.name.is_empty() && port.name == port_name && port.protocol == protocol
        };
        match &service.addressing {
            ServiceAddressing::ExternalName(_) => Found::nxdomain(),
            ServiceAddressing::ClusterIp(ips) => {
                let ports: Vec<u16> = service
                    .ports
                    .iter()
                    .filter(|p| port_matches(p))
                    .map(|p| p.port)
                    .collect();
                if ports.is_empty() {
                    return Found::nxdomain();
                }
                let mut found = Found::exists();
                if wants(qtype, RecordType::SRV) {
                    let target = self.service_name(service);
                    self.push_srv(&mut found, ports.iter().map(|port| (*port, &target)));
                    for ip in ips {
                        found.additionals.push(self.address_record(&target, *ip));
                    }
                }
                found
            }
            ServiceAddressing::Headless => {
                let any = service
                    .endpoints
                    .iter()
                    .any(|endpoint| endpoint.ports.iter().any(port_matches));
                if !any {
                    return Found::nxdomain();
                }
                let mut found = Found::exists();
                if wants(qtype, RecordType::SRV) {
                    self.headless_srv(&mut found, service, port_matches);
                }
                found
            }
        }
    }

    /// Below `pod.<zone>`: `[]`, `[ns]`, `[a-b-c-d, ns]`.
    fn lookup_pod(&self, snapshot: &Snapshot, labels: &[&str], qtype: RecordType) -> Found {
        let Some((namespace, below)) = labels.split_last() else {
            return Found::exists();
        };
        if self.pod_records == PodRecords::Disabled || !snapshot.has_namespace(namespace) {
            return Found::nxdomain();
        }
        let [dashed] = below else {
            return Found::exists_if(below.is_empty());
        };
        let Some(ip) = parse_dashed_ip(dashed) else {
            return Found::nxdomain();
        };
        if self.pod_records == PodRecords::Verified && !snapshot.pod_has_ip(namespace, &ip) {
            return Found::nxdomain();
        }
        let mut found = Found::exists();
        found.records.extend(address_rdata(ip, qtype));
        found
    }

    fn answer_reverse(
        &self,
        snapshot: &Snapshot,
        qname: &Name,
        qtype: RecordType,
        zone: ReverseZone,
    ) -> Answer {
        let apex = match zone {
            ReverseZone::V4 => &self.in_addr_arpa,
            ReverseZone::V6 => &self.ip6_arpa,
        };
        let labels = relative_labels(qname, apex);
        let mut answer = Answer::authoritative();
        let mut records: Vec<RData> = Vec::new();
        let exists = if labels.is_empty() {
            if wants(qtype, RecordType::SOA) {
                records.push(self.soa(apex, snapshot).data);
            }
            if wants(qtype, RecordType::NS) {
                records.push(RData::NS(NS(self.ns_name.clone())));
            }
            true
        } else {
            match parse_reverse(&labels, zone) {
                Reverse::Address(ip) => {
                    let owners = snapshot.owners_of(&ip);
                    if wants(qtype, RecordType::PTR) {
                        for owner in &owners {
                            let target = self.ptr_target(owner, &ip);
                            let rdata = RData::PTR(PTR(target));
                            if !records.contains(&rdata) {
                                records.push(rdata);
                            }
                        }
                    }
                    !owners.is_empty()
                }
                // An empty non-terminal exists when some known address lies below it.
                Reverse::Prefix(prefix) => snapshot
                    .known_ips()
                    .any(|ip| address_nibbles(ip, zone).is_some_and(|n| n.starts_with(&prefix))),
                Reverse::Invalid => false,
            }
        };
        if !exists {
            answer.response_code = ResponseCode::NXDomain;
            answer.authorities.push(self.soa(apex, snapshot));
        } else if records.is_empty() {
            answer.authorities.push(self.soa(apex, snapshot));
        } else {
            answer.answers = records
                .into_iter()
                .map(|rdata| Record::from_rdata(qname.clone(), self.ttl, rdata))
                .collect();
        }
        answer
    }

    fn ptr_target(&self, owner: &IpOwner, ip: &IpAddr) -> Name {
        match owner {
            IpOwner::Service { namespace, name } => self.name(&format!("{name}.{namespace}.svc.")),
            IpOwner::Endpoint {
                namespace,
                service,
                hostname,
            } => self.name(&format!("{hostname}.{service}.{namespace}.svc.")),
            IpOwner::Pod { namespace } => self.name(&format!("{}.{namespace}.pod.", dashed_ip(ip))),
        }
    }

    /// The SOA CoreDNS serves: `ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400 <ttl>`.
    fn soa(&self, apex: &Name, snapshot: &Snapshot) -> Record {
        Record::from_rdata(
            apex.clone(),
            self.ttl.min(300),
            RData::SOA(SOA::new(
                self.ns_name.clone(),
                self.hostmaster.clone(),
                snapshot.serial(),
                7200,
                1800,
                86400,
                self.ttl,
            )),
        )
    }

    fn address_record(&self, name: &Name, ip: IpAddr) -> Record {
        let rdata = match ip {
            IpAddr::V4(ip) => RData::A(A(ip)),
            IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
        };
        Record::from_rdata(name.clone(), self.ttl, rdata)
    }
}

/// Whether a question of type `qtype` asks for records of type `rtype`.
fn wants(qtype: RecordType, rtype: RecordType) -> bool {
    qtype == rtype || qtype == RecordType::ANY
}

/// The A or AAAA record data for `ip`, if the question asks for that family.
fn address_rdata(ip: IpAddr, qtype: RecordType) -> Option<RData> {
    match ip {
        IpAddr::V4(ip) if wants(qtype, RecordType::A) => Some(RData::A(A(ip))),
        IpAddr::V6(ip) if wants(qtype, RecordType::AAAA) => Some(RData::AAAA(AAAA(ip))),
        _ => None,
    }
}

fn service_has_protocol(service: &ServiceEntry, protocol: &str) -> bool {
    match &service.addressing {
        ServiceAddressing::ExternalName(_) => false,
        ServiceAddressing::ClusterIp(_) => service.ports.iter().any(|p| p.protocol == protocol),
        ServiceAddressing::Headless => service
            .endpoints
            .iter()
            .any(|endpoint| endpoint.ports.iter().any(|p| p.protocol == protocol)),
    }
}

/// The labels of `name` below `zone`, lowercase, innermost first.
fn relative_labels(name: &Name, zone: &Name) -> Vec<String> {
    let count = usize::from(name.num_labels()).saturating_sub(usize::from(zone.num_labels()));
    name.iter()
        .take(count)
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect()
}

/// `10-244-1-2` → 10.244.1.2; `fd00--1` → fd00::1 (how CoreDNS reads pod names).
pub fn parse_dashed_ip(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3 && !label.contains("--") {
        label
            .replace('-', ".")
            .parse::<Ipv4Addr>()
            .ok()
            .map(IpAddr::V4)
    } else {
        label
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
    }
}

enum Reverse {
    /// A whole address.
    Address(IpAddr),
    /// The leading components (octets or nibbles) of an address, most significant first.
    Prefix(Vec<u8>),
    Invalid,
}

/// Reads the labels below `in-addr.arpa.` (decimal octets) or `ip6.arpa.` (hex nibbles),
/// innermost first.
fn parse_reverse(labels: &[String], zone: ReverseZone) -> Reverse {
    let (limit, radix) = match zone {
        ReverseZone::V4 => (4, 10),
        ReverseZone::V6 => (32, 16),
    };
    if labels.len() > limit {
        return Reverse::Invalid;
    }
    let mut parts = Vec::with_capacity(labels.len());
    for label in labels.iter().rev() {
        let valid = match zone {
            ReverseZone::V4 => {
                !label.is_empty()
                    && label.len() <= 3
                    && label.bytes().all(|b| b.is_ascii_digit())
                    && (label == "0" || !label.starts_with('0'))
            }
            ReverseZone::V6 => label.len() == 1,
        };
        let Some(value) = valid
            .then(|| u16::from_str_radix(label, radix).ok())
            .flatten()
            .and_then(|v| u8::try_from(v).ok())
        else {
            return Reverse::Invalid;
        };
        parts.push(value);
    }
    if parts.len() < limit {
        return Reverse::Prefix(parts);
    }
    let ip = match zone {
        ReverseZone::V4 => IpAddr::V4(Ipv4Addr::new(parts[0], parts[1], parts[2], parts[3])),
        ReverseZone::V6 => {
            let mut octets = [0u8; 16];
            for (i, pair) in parts.chunks(2).enumerate() {
                octets[i] = (pair[0] << 4) | pair[1];
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
    };
    Reverse::Address(ip)
}

/// An address as reverse-zone components (octets for IPv4, nibbles for IPv6), or `None` when it
/// belongs to the other zone.
fn address_nibbles(ip: &IpAddr, zone: ReverseZone) -> Option<Vec<u8>> {
    match (ip, zone) {
        (IpAddr::V4(ip), ReverseZone::V4) => Some(ip.octets().to_vec()),
        (IpAddr::V6(ip), ReverseZone::V6) => Some(
            ip.octets()
                .iter()
                .flat_map(|byte| [byte >> 4, byte & 0x0f])
                .collect(),
        ),
        _ => None,
    }
}
