//! Command-line flags, named and defaulted as kube-proxy's, and their parsing.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use kubeport_proxy_model::NodePortAddresses;

/// Which kernel interface programs the rules.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// kube-proxy's nftables layout (table `ip kube-proxy`).
    Nftables,
    /// kube-proxy's iptables layout (`KUBE-SERVICES` and friends).
    Iptables,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
        }
    }
}

/// `kubeport proxy` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Path to a kubeconfig file with the API server's address and credentials (default: the
    /// usual kubeconfig search, then the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Name of this node, as in `spec.nodeName` of the pods (default: the host name).
    #[arg(long)]
    pub hostname_override: Option<String>,

    /// Which proxy mode to use: `nftables` or `iptables`.
    #[arg(long, value_enum, default_value = "nftables")]
    pub proxy_mode: ProxyMode,

    /// Addresses that accept NodePort traffic: `primary` (the node's primary IPs) or a
    /// comma-separated list of CIDRs (`0.0.0.0/0` = every local address). Default: `primary`
    /// in nftables mode, every local address in iptables mode.
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<String>,

    /// The pods' CIDR range(s), comma-separated: traffic from them is cluster-internal
    /// (not masqueraded for ClusterIPs, short-circuited for externalTrafficPolicy Local).
    #[arg(long, value_delimiter = ',')]
    pub cluster_cidr: Vec<IpNet>,

    /// SNAT all traffic sent through Service cluster IPs.
    #[arg(long)]
    pub masquerade_all: bool,

    /// The bit of the packet mark that marks packets for SNAT (0-31).
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u8).range(0..=31))]
    pub iptables_masquerade_bit: u8,

    /// `IP:port` of the Prometheus metrics server; empty disables it.
    #[arg(long, default_value = "127.0.0.1:10249")]
    pub metrics_bind_address: String,

    /// `IP:port` of the `/healthz` and `/livez` server; empty disables it.
    #[arg(long, default_value = "0.0.0.0:10256")]
    pub healthz_bind_address: String,

    /// Maximum interval between two syncs (Go duration, e.g. `30s`, `1m`); also sets the
    /// health timeout (twice this).
    #[arg(long, default_value = "30s", value_parser = parse_go_duration)]
    pub sync_period: Duration,

    /// Minimum interval between two syncs: changes arriving faster are coalesced.
    #[arg(long, default_value = "1s", value_parser = parse_go_duration)]
    pub min_sync_period: Duration,

    /// Remove every rule kubeport's proxy installed (all modes) and exit.
    #[arg(long)]
    pub cleanup: bool,

    /// Allow programming the firewall of the machine's initial network namespace (real
    /// nodes). Without it the proxy refuses to run outside a dedicated network namespace.
    #[arg(long)]
    pub allow_host_netns: bool,
}

impl ProxyArgs {
    /// The `--nodeport-addresses` setting, with the mode's default when the flag is absent.
    pub fn node_port_addresses(&self) -> Result<NodePortAddresses, String> {
        parse_node_port_addresses(&self.nodeport_addresses, self.proxy_mode)
    }
}

/// Parses a Go `time.ParseDuration` string: an optionally signed sequence of decimal numbers
/// with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (`1h30m`, `1.5s`, `300ms`); `0` alone is
/// accepted. Negative durations are rejected (no flag here accepts them).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut rest = text;
    if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    } else if rest.starts_with('-') {
        return Err(format!("negative duration {text:?} is not allowed"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        total_nanos += value * scale;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// `--nodeport-addresses`: empty → the mode's default; `primary` → the node's primary IPs;
/// otherwise CIDRs (kube-proxy rejects plain IPs here, and so do we).
pub fn parse_node_port_addresses(
    values: &[String],
    mode: ProxyMode,
) -> Result<NodePortAddresses, String> {
    let values: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Ok(match mode {
            ProxyMode::Nftables => NodePortAddresses::Primary,
            ProxyMode::Iptables => NodePortAddresses::Cidrs(Vec::new()),
        });
    }
    if values.len() == 1 && values[0] == "primary" {
        return Ok(NodePortAddresses::Primary);
    }
    let mut cidrs = Vec::new();
    for value in values {
        if value == "primary" {
            return Err(
                "--nodeport-addresses: \"primary\" must be the only value when it is given"
                    .to_string(),
            );
        }
        let net: IpNet = value.parse().map_err(|_| {
            format!("--nodeport-addresses: invalid value {value:?}: must be \"primary\" or a CIDR")
        })?;
        cidrs.push(net);
    }
    Ok(NodePortAddresses::Cidrs(cidrs))
}

/// A `--*-bind-address` value: `IP:port`, `[IPv6]:port`, or a bare IP (then `default_port`).
/// Empty means "disabled" (`None`).
pub fn parse_bind_address(value: &str, default_port: u16) -> Result<Option<SocketAddr>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    if let Ok(ip) = value.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(Some(SocketAddr::new(ip, default_port)));
    }
    Err(format!("invalid bind address {value:?}: expected IP:port"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProxyArgs,
    }

    #[test]
    fn defaults_are_kube_proxy_defaults() {
        let cli = Cli::try_parse_from(["proxy"]).unwrap();
        let args = cli.args;
        assert_eq!(args.proxy_mode, ProxyMode::Nftables);
        assert_eq!(args.metrics_bind_address, "127.0.0.1:10249");
        assert_eq!(args.healthz_bind_address, "0.0.0.0:10256");
        assert_eq!(args.sync_period, Duration::from_secs(30));
        assert_eq!(args.min_sync_period, Duration::from_secs(1));
        assert_eq!(args.iptables_masquerade_bit, 14);
        assert!(!args.masquerade_all && !args.cleanup && !args.allow_host_netns);
        assert_eq!(
            args.node_port_addresses().unwrap(),
            NodePortAddresses::Primary
        );
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "proxy",
            "--kubeconfig",
            "/tmp/kc",
            "--hostname-override",
            "worker",
            "--proxy-mode",
            "iptables",
            "--nodeport-addresses",
            "10.0.0.0/8,192.168.1.0/24",
            "--cluster-cidr",
            "10.244.0.0/16,fd00::/48",
            "--masquerade-all",
            "--sync-period",
            "1m30s",
            "--min-sync-period",
            "250ms",
        ])
        .unwrap();
        let args = cli.args;
        assert_eq!(args.proxy_mode, ProxyMode::Iptables);
        assert_eq!(args.hostname_override.as_deref(), Some("worker"));
        assert_eq!(args.cluster_cidr.len(), 2);
        assert!(args.masquerade_all);
        assert_eq!(args.sync_period, Duration::from_secs(90));
        assert_eq!(args.min_sync_period, Duration::from_millis(250));
        assert_eq!(
            args.node_port_addresses().unwrap(),
            NodePortAddresses::Cidrs(vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.168.1.0/24".parse().unwrap()
            ])
        );
    }

    #[test]
    fn iptables_mode_defaults_to_every_address() {
        assert_eq!(
            parse_node_port_addresses(&[], ProxyMode::Iptables).unwrap(),
            NodePortAddresses::Cidrs(Vec::new())
        );
        assert_eq!(
            parse_node_port_addresses(&["primary".into()], ProxyMode::Iptables).unwrap(),
            NodePortAddresses::Primary
        );
        assert!(parse_node_port_addresses(&["10.0.0.1".into()], ProxyMode::Nftables).is_err());
        assert!(parse_node_port_addresses(
            &["primary".into(), "10.0.0.0/8".into()],
            ProxyMode::Nftables
        )
        .is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_go_duration("1h2m3s").unwrap(),
            Duration::from_secs(3723)
        );
        assert_eq!(
            parse_go_duration("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_go_duration("100ms").unwrap(),
            Duration::from_millis(100)
        );
        assert_eq!(
            parse_go_duration("10us").unwrap(),
            Duration::from_micros(10)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_go_duration("30").unwrap_err(),
            "time: missing unit in duration \"30\""
        );
        assert_eq!(
            parse_go_duration("3x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"3x\""
        );
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("-1s").is_err());
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(
            parse_bind_address("0.0.0.0:10256", 10256).unwrap(),
            Some("0.0.0.0:10256".parse().unwrap())
        );
        assert_eq!(
            parse_bind_address("127.0.0.1", 10249).unwrap(),
            Some("127.0.0.1:10249".parse().unwrap())
        );
        assert_eq!(
            parse_bind_address("::1", 10249).unwrap(),
            Some("[::1]:10249".parse().unwrap())
        );
        assert_eq!(parse_bind_address("", 10249).unwrap(), None);
        assert!(parse_bind_address("nope", 1).is_err());
    }
}
