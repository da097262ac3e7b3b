//! The per-pod files a pod's processes see in place of the node's (bind-mounted in the pod's
//! mount namespace): /etc/resolv.conf, /etc/hosts, /etc/hostname, and for nginx pods the
//! configuration and the document root at /usr/share/nginx/html.

use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

/// nginx's default welcome page (the page the official image serves, 615 bytes).
pub const NGINX_WELCOME_PAGE: &str = "<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href=\"http://nginx.org/\">nginx.org</a>.<br/>
Commercial support is available at
<a href=\"http://nginx.com/\">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
";

/// nginx's error page for 50x answers (as in the official image's document root).
pub const NGINX_50X_PAGE: &str = "<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
";

/// Where the pod sees nginx's document root.
pub const NGINX_DOC_ROOT: &str = "/usr/share/nginx/html";

/// The pod's hostname: `spec.hostname` or the pod's name (cut to 63 characters, as kubelet).
pub fn pod_hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

/// The pod's resolv.conf for its dnsPolicy and dnsConfig.
///
/// `ClusterFirst` (the default) names the cluster DNS service with the namespace's search
/// path and `ndots:5`, as kubelet writes it. Without a cluster DNS address, and for `Default`,
/// no nameserver is written: a lab has no network beyond its own namespaces.
pub fn resolv_conf(pod: &Pod, cluster_dns: Option<IpAddr>, cluster_domain: &str) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".to_string());
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut nameservers: Vec<String> = Vec::new();
    let mut searches: Vec<String> = Vec::new();
    let mut options: Vec<(String, Option<String>)> = Vec::new();
    let cluster_first =
        policy == "ClusterFirstWithHostNet" || (policy == "ClusterFirst" && !host_network);
    if cluster_first {
        if let Some(dns) = cluster_dns {
            nameservers.push(dns.to_string());
        }
        searches.push(format!("{ns}.svc.{cluster_domain}"));
        searches.push(format!("svc.{cluster_domain}"));
        searches.push(cluster_domain.to_string());
        options.push(("ndots".into(), Some("5".into())));
    }
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        for n in cfg.nameservers.iter().flatten() {
            if !nameservers.contains(n) {
                nameservers.push(n.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !searches.contains(s) {
                searches.push(s.clone());
            }
        }
        for o in cfg.options.iter().flatten() {
            let Some(name) = o.name.clone() else { continue };
            if let Some(existing) = options.iter_mut().find(|(n, _)| *n == name) {
                existing.1 = o.value.clone();
            } else {
                options.push((name, o.value.clone()));
            }
        }
    }
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for n in &nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !options.is_empty() {
        let opts: Vec<String> = options
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}:{v}"),
                None => n.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// The pod's /etc/hosts, as kubelet writes it.
pub fn hosts_file(pod: &Pod, pod_ips: &[IpAddr], cluster_domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let hostname = pod_hostname(pod);
    let spec = pod.spec.as_ref();
    let subdomain = spec
        .and_then(|s| s.subdomain.clone())
        .filter(|s| !s.is_empty());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for ip in pod_ips {
        match &subdomain {
            Some(sub) => out.push_str(&format!(
                "{ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}\n"
            )),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default();
            out.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
        }
    }
    out
}

/// A per-pod nginx configuration: the official image's behaviour (access log to stdout,
/// errors to stderr, the document root at /usr/share/nginx/html) with its runtime files in
/// the pod's state directory. `runtime_dir` is the pod's directory for pid and temp files.
pub fn nginx_conf(port: u16, runtime_dir: &Path) -> String {
    let d = runtime_dir.display();
    let mime = if Path::new("/etc/nginx/mime.types").exists() {
        "    include /etc/nginx/mime.types;\n"
    } else {
        ""
    };
    format!(
        "# Generated by kubeport for this pod.
user root;
worker_processes 1;
daemon off;
error_log stderr notice;
pid {d}/nginx.pid;

events {{
    worker_connections 1024;
}}

http {{
{mime}    default_type application/octet-stream;
    log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '
                    '$status $body_bytes_sent \"$http_referer\" '
                    '\"$http_user_agent\" \"$http_x_forwarded_for\"';
    access_log /dev/stdout main;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    server {{
        listen {port};
        server_name localhost;

        location / {{
            root {root};
            index index.html index.htm;
        }}

        error_page 500 502 503 504 /50x.html;
        location = /50x.html {{
            root {root};
        }}
    }}
}}
",
        root = NGINX_DOC_ROOT
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodDNSConfigOption, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, ns: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    #[test]
    fn welcome_page_is_nginx_size() {
        assert_eq!(NGINX_WELCOME_PAGE.len(), 615);
        assert!(NGINX_WELCOME_PAGE.contains("<title>Welcome to nginx!</title>"));
        assert_eq!(NGINX_50X_PAGE.len(), 497);
    }

    #[test]
    fn cluster_first_resolv_conf() {
        let p = pod("web", "dev");
        assert_eq!(
            resolv_conf(&p, Some("10.96.0.10".parse().unwrap()), "cluster.local"),
            "search dev.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n"
        );
        // No cluster DNS: the search path without a nameserver.
        assert_eq!(
            resolv_conf(&p, None, "cluster.local"),
            "search dev.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }

    #[test]
    fn dns_config_is_merged() {
        let mut p = pod("web", "default");
        let spec = p.spec.as_mut().unwrap();
        spec.dns_policy = Some("None".into());
        spec.dns_config = Some(PodDNSConfig {
            nameservers: Some(vec!["1.2.3.4".into()]),
            searches: Some(vec!["example.test".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        });
        assert_eq!(
            resolv_conf(&p, Some("10.96.0.10".parse().unwrap()), "cluster.local"),
            "search example.test\nnameserver 1.2.3.4\noptions ndots:2 edns0\n"
        );
    }

    #[test]
    fn hosts_file_names_the_pod() {
        let mut p = pod("nginx-abc", "dev");
        let ips = ["10.244.1.2".parse().unwrap()];
        let h = hosts_file(&p, &ips, "cluster.local");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.244.1.2\tnginx-abc\n"), "{h}");
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("db-0".into());
        spec.subdomain = Some("db".into());
        spec.host_aliases = Some(vec![HostAlias {
            ip: "10.0.0.9".into(),
            hostnames: Some(vec!["foo.local".into(), "bar.local".into()]),
        }]);
        let h = hosts_file(&p, &ips, "cluster.local");
        assert!(
            h.contains("10.244.1.2\tdb-0.db.dev.svc.cluster.local\tdb-0\n"),
            "{h}"
        );
        assert!(h.ends_with("\n# Entries added by HostAliases.\n10.0.0.9\tfoo.local\tbar.local\n"));
        assert_eq!(pod_hostname(&p), "db-0");
    }

    #[test]
    fn nginx_conf_listens_on_port_and_keeps_runtime_files_in_pod_dir() {
        let c = nginx_conf(8080, Path::new("/state/pods/u/nginx"));
        assert!(c.contains("listen 8080;"));
        assert!(c.contains("pid /state/pods/u/nginx/nginx.pid;"));
        assert!(c.contains("daemon off;"));
        assert!(c.contains("root /usr/share/nginx/html;"));
        assert!(!c.contains("server_tokens"));
    }
}
