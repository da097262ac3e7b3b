//! kube-proxy's Prometheus metrics (names, help texts, buckets, label names), rendered in
//! the text exposition format as client_golang does: families sorted by name, help texts with
//! component-base's `[ALPHA]` stability prefix, values as Go's `%g`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::args::ProxyMode;
use crate::gofmt::go_float;

/// `ExponentialBuckets(0.001, 2, 15)`: 1 ms … 16.384 s.
pub fn sync_duration_buckets() -> Vec<f64> {
    (0..15).map(|k| 0.001 * f64::from(1u32 << k)).collect()
}

/// 0.25 s, 0.5 s, 1…59 s, 60…115 s by 5, 120…300 s by 30.
pub fn network_programming_buckets() -> Vec<f64> {
    let mut buckets = vec![0.25, 0.5];
    buckets.extend((1..=59).map(f64::from));
    buckets.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    buckets.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    buckets
}

#[derive(Debug, Clone)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: Vec<f64>) -> Self {
        Histogram {
            counts: vec![0; bounds.len()],
            bounds,
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    /// A metric without labels (always rendered).
    Plain(f64),
    /// One value per label value; rendered only once a label value was set.
    Labelled {
        label: &'static str,
        values: BTreeMap<String, f64>,
    },
    Histogram(Histogram),
}

#[derive(Debug, Clone)]
struct Family {
    help: &'static str,
    kind: Kind,
    value: Value,
}

pub const SYNC_PROXY_RULES_DURATION: &str = "kubeproxy_sync_proxy_rules_duration_seconds";
pub const NETWORK_PROGRAMMING_DURATION: &str = "kubeproxy_network_programming_duration_seconds";
pub const SYNC_PROXY_RULES_LAST_TIMESTAMP: &str =
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
pub const SYNC_PROXY_RULES_LAST_QUEUED_TIMESTAMP: &str =
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds";
pub const ENDPOINT_CHANGES_PENDING: &str = "kubeproxy_sync_proxy_rules_endpoint_changes_pending";
pub const ENDPOINT_CHANGES_TOTAL: &str = "kubeproxy_sync_proxy_rules_endpoint_changes_total";
pub const SERVICE_CHANGES_PENDING: &str = "kubeproxy_sync_proxy_rules_service_changes_pending";
pub const SERVICE_CHANGES_TOTAL: &str = "kubeproxy_sync_proxy_rules_service_changes_total";
pub const PROXY_HEALTHZ_TOTAL: &str = "kubeproxy_proxy_healthz_total";
pub const PROXY_LIVEZ_TOTAL: &str = "kubeproxy_proxy_livez_total";
pub const NO_LOCAL_ENDPOINTS_TOTAL: &str = "kubeproxy_sync_proxy_rules_no_local_endpoints_total";
pub const NFTABLES_SYNC_FAILURES_TOTAL: &str =
    "kubeproxy_sync_proxy_rules_nftables_sync_failures_total";
pub const NFTABLES_CLEANUP_FAILURES_TOTAL: &str =
    "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total";
pub const SYNC_FULL_PROXY_RULES_DURATION: &str = "kubeproxy_sync_full_proxy_rules_duration_seconds";
pub const SYNC_PARTIAL_PROXY_RULES_DURATION: &str =
    "kubeproxy_sync_partial_proxy_rules_duration_seconds";
pub const IPTABLES_RESTORE_FAILURES_TOTAL: &str =
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total";
pub const IPTABLES_PARTIAL_RESTORE_FAILURES_TOTAL: &str =
    "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total";

/// The proxy's metric registry. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    mode: ProxyMode,
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Metrics {
    /// Registers the metrics kube-proxy registers for `mode`.
    pub fn new(mode: ProxyMode) -> Self {
        let mut families = BTreeMap::new();
        let mut add = |name: &'static str, help: &'static str, kind: Kind, value: Value| {
            families.insert(name, Family { help, kind, value });
        };
        let histogram = |bounds| Value::Histogram(Histogram::new(bounds));
        let labelled = |label| Value::Labelled {
            label,
            values: BTreeMap::new(),
        };
        add(
            SYNC_PROXY_RULES_DURATION,
            "SyncProxyRules latency in seconds",
            Kind::Histogram,
            histogram(sync_duration_buckets()),
        );
        add(
            SYNC_PROXY_RULES_LAST_QUEUED_TIMESTAMP,
            "The last time a sync of proxy rules was queued",
            Kind::Gauge,
            Value::Plain(0.0),
        );
        add(
            SYNC_PROXY_RULES_LAST_TIMESTAMP,
            "The last time proxy rules were successfully synced",
            Kind::Gauge,
            Value::Plain(0.0),
        );
        add(
            ENDPOINT_CHANGES_PENDING,
            "Pending proxy rules Endpoint changes",
            Kind::Gauge,
            Value::Plain(0.0),
        );
        add(
            ENDPOINT_CHANGES_TOTAL,
            "Cumulative proxy rules Endpoint changes",
            Kind::Counter,
            Value::Plain(0.0),
        );
        add(
            SERVICE_CHANGES_PENDING,
            "Pending proxy rules Service changes",
            Kind::Gauge,
            Value::Plain(0.0),
        );
        add(
            SERVICE_CHANGES_TOTAL,
            "Cumulative proxy rules Service changes",
            Kind::Counter,
            Value::Plain(0.0),
        );
        add(
            PROXY_HEALTHZ_TOTAL,
            "Cumulative proxy healthz HTTP status",
            Kind::Counter,
            labelled("code"),
        );
        add(
            PROXY_LIVEZ_TOTAL,
            "Cumulative proxy livez HTTP status",
            Kind::Counter,
            labelled("code"),
        );
        add(
            NETWORK_PROGRAMMING_DURATION,
            "In Cluster Network Programming Latency in seconds",
            Kind::Histogram,
            histogram(network_programming_buckets()),
        );
        add(
            NO_LOCAL_ENDPOINTS_TOTAL,
            "Number of services with a Local traffic policy and no endpoints",
            Kind::Gauge,
            labelled("traffic_policy"),
        );
        match mode {
            ProxyMode::Nftables => {
                add(
                    NFTABLES_SYNC_FAILURES_TOTAL,
                    "Cumulative proxy nftables sync failures",
                    Kind::Counter,
                    Value::Plain(0.0),
                );
                add(
                    NFTABLES_CLEANUP_FAILURES_TOTAL,
                    "Cumulative proxy nftables cleanup failures",
                    Kind::Counter,
                    Value::Plain(0.0),
                );
            }
            ProxyMode::Iptables => {
                add(
                    SYNC_FULL_PROXY_RULES_DURATION,
                    "SyncProxyRules latency in seconds for full resyncs",
                    Kind::Histogram,
                    histogram(sync_duration_buckets()),
                );
                add(
                    SYNC_PARTIAL_PROXY_RULES_DURATION,
                    "SyncProxyRules latency in seconds for partial resyncs",
                    Kind::Histogram,
                    histogram(sync_duration_buckets()),
                );
                add(
                    IPTABLES_RESTORE_FAILURES_TOTAL,
                    "Cumulative proxy iptables restore failures",
                    Kind::Counter,
                    Value::Plain(0.0),
                );
                add(
                    IPTABLES_PARTIAL_RESTORE_FAILURES_TOTAL,
                    "Cumulative proxy iptables partial restore failures",
                    Kind::Counter,
                    Value::Plain(0.0),
                );
            }
        }
        Metrics {
            mode,
            families: Mutex::new(families),
        }
    }

    pub fn mode(&self) -> ProxyMode {
        self.mode
    }

    fn with_family(&self, name: &str, f: impl FnOnce(&mut Value)) {
        let mut families = self.families.lock().expect("metrics lock");
        if let Some(family) = families.get_mut(name) {
            f(&mut family.value);
        }
    }

    /// Adds to a counter (or gauge) without labels. Unknown names (another mode's) are ignored.
    pub fn add(&self, name: &str, delta: f64) {
        self.with_family(name, |value| {
            if let Value::Plain(v) = value {
                *v += delta;
            }
        });
    }

    pub fn inc(&self, name: &str) {
        self.add(name, 1.0);
    }

    /// Sets a gauge without labels.
    pub fn set(&self, name: &str, new: f64) {
        self.with_family(name, |value| {
            if let Value::Plain(v) = value {
                *v = new;
            }
        });
    }

    /// Adds to one labelled value.
    pub fn add_labelled(&self, name: &str, label_value: &str, delta: f64) {
        self.with_family(name, |value| {
            if let Value::Labelled { values, .. } = value {
                *values.entry(label_value.to_string()).or_insert(0.0) += delta;
            }
        });
    }

    /// Sets one labelled gauge value.
    pub fn set_labelled(&self, name: &str, label_value: &str, new: f64) {
        self.with_family(name, |value| {
            if let Value::Labelled { values, .. } = value {
                values.insert(label_value.to_string(), new);
            }
        });
    }

    pub fn observe(&self, name: &str, sample: f64) {
        self.with_family(name, |value| {
            if let Value::Histogram(histogram) = value {
                histogram.observe(sample);
            }
        });
    }

    /// Current value of a plain counter/gauge (tests, logs).
    pub fn value(&self, name: &str) -> Option<f64> {
        let families = self.families.lock().expect("metrics lock");
        match families.get(name).map(|f| &f.value) {
            Some(Value::Plain(v)) => Some(*v),
            _ => None,
        }
    }

    /// Number of observations of a histogram.
    pub fn histogram_count(&self, name: &str) -> Option<u64> {
        let families = self.families.lock().expect("metrics lock");
        match families.get(name).map(|f| &f.value) {
            Some(Value::Histogram(h)) => Some(h.count),
            _ => None,
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, family) in families.iter() {
            let mut samples = String::new();
            match &family.value {
                Value::Plain(v) => {
                    let _ = writeln!(samples, "{name} {}", go_float(*v));
                }
                Value::Labelled { label, values } => {
                    for (label_value, v) in values {
                        let _ = writeln!(
                            samples,
                            "{name}{{{label}=\"{}\"}} {}",
                            escape_label(label_value),
                            go_float(*v)
                        );
                    }
                }
                Value::Histogram(h) => {
                    for (bound, count) in h.bounds.iter().zip(&h.counts) {
                        let _ = writeln!(
                            samples,
                            "{name}_bucket{{le=\"{}\"}} {count}",
                            go_float(*bound)
                        );
                    }
                    let _ = writeln!(samples, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(samples, "{name}_sum {}", go_float(h.sum));
                    let _ = writeln!(samples, "{name}_count {}", h.count);
                }
            }
            if samples.is_empty() {
                // client_golang leaves out families without any sample.
                continue;
            }
            let _ = writeln!(out, "# HELP {name} [ALPHA] {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            out.push_str(&samples);
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_match_kube_proxy() {
        let sync = sync_duration_buckets();
        assert_eq!(sync.len(), 15);
        assert_eq!(go_float(sync[0]), "0.001");
        assert_eq!(go_float(sync[14]), "16.384");
        let programming = network_programming_buckets();
        assert_eq!(programming.len(), 80);
        assert_eq!(programming[2], 1.0);
        assert_eq!(programming[60], 59.0);
        assert_eq!(programming[61], 60.0);
        assert_eq!(programming[72], 115.0);
        assert_eq!(*programming.last().unwrap(), 300.0);
    }

    #[test]
    fn exposition_format() {
        let metrics = Metrics::new(ProxyMode::Nftables);
        metrics.observe(SYNC_PROXY_RULES_DURATION, 0.003);
        metrics.inc(SERVICE_CHANGES_TOTAL);
        metrics.add_labelled(PROXY_HEALTHZ_TOTAL, "200", 1.0);
        metrics.set(SYNC_PROXY_RULES_LAST_TIMESTAMP, 1_714_557_600.5);
        let text = metrics.render();
        assert!(text.contains(
            "# HELP kubeproxy_sync_proxy_rules_duration_seconds [ALPHA] SyncProxyRules latency in seconds\n# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram\nkubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.001\"} 0\nkubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.002\"} 0\nkubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.004\"} 1\n"
        ));
        assert!(text.contains(
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket{le=\"+Inf\"} 1\nkubeproxy_sync_proxy_rules_duration_seconds_sum 0.003\nkubeproxy_sync_proxy_rules_duration_seconds_count 1\n"
        ));
        assert!(text.contains(
            "# TYPE kubeproxy_sync_proxy_rules_service_changes_total counter\nkubeproxy_sync_proxy_rules_service_changes_total 1\n"
        ));
        assert!(text.contains("kubeproxy_proxy_healthz_total{code=\"200\"} 1\n"));
        // No livez request yet: the family is left out.
        assert!(!text.contains("kubeproxy_proxy_livez_total"));
        assert!(
            text.contains("kubeproxy_sync_proxy_rules_last_timestamp_seconds 1.7145576005e+09\n")
        );
        assert!(text.contains("kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0\n"));
        assert!(!text.contains("iptables"));
        // Families are sorted by name.
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn iptables_mode_has_iptables_families() {
        let metrics = Metrics::new(ProxyMode::Iptables);
        metrics.inc(IPTABLES_RESTORE_FAILURES_TOTAL);
        metrics.inc(NFTABLES_SYNC_FAILURES_TOTAL);
        let text = metrics.render();
        assert!(text.contains("kubeproxy_sync_proxy_rules_iptables_restore_failures_total 1\n"));
        assert!(!text.contains("nftables"));
    }
}
