//! `kubeport demo`: creates (or reuses) seed 001's three-node cluster, deploys its ReplicaSet
//! and NodePort Service, makes every pod answer with its own name, then sends requests to each
//! node's nodePort and shows which pods on which nodes answered — the articles' picture that any
//! node reaches pods on all nodes. It drives the same CLI a user would (kubeport, kubectl).

use anyhow::{bail, Context};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KIND_CONFIG: &str = include_str!("../../../examples/seed-001/kind-config.yaml");
const REPLICASET: &str = include_str!("../../../examples/seed-001/nginx-replicaset.yaml");
const NODEPORT_SERVICE: &str =
    include_str!("../../../examples/seed-001/nginx-service-nodeport.yaml");

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Cluster name (the seed's).
    #[arg(long, default_value = "service-demo")]
    pub name: String,
    /// Requests sent to each node's nodePort.
    #[arg(long, default_value_t = 30)]
    pub requests: usize,
    /// Kubeconfig to merge the cluster's context into (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

struct Ctx {
    exe: PathBuf,
    kubeconfig: Option<PathBuf>,
    context: String,
    workdir: PathBuf,
}

impl Ctx {
    fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--context")
            .arg(&self.context)
            .args(args)
            .stdin(Stdio::null());
        if let Some(k) = &self.kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        let out = cmd.output().context("running kubectl (is it on PATH?)")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn kubeport(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args);
        if let Some(k) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(k);
        }
        Ok(cmd.stdin(Stdio::null()).output()?)
    }
}

fn step(msg: &str) {
    println!("\u{2022} {msg}");
    let _ = std::io::stdout().flush();
}

/// One HTTP/1.1 GET over a plain TCP connection; returns the body.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default())
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let workdir = std::env::temp_dir().join(format!("kubeport-demo-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    let ctx = Ctx {
        exe,
        kubeconfig: args.kubeconfig.clone(),
        context: format!("kubeport-{}", args.name),
        workdir,
    };
    let result = demo(&ctx, &args);
    let _ = std::fs::remove_dir_all(&ctx.workdir);
    result?;
    println!("\n(done in {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn demo(ctx: &Ctx, args: &DemoArgs) -> anyhow::Result<()> {
    let clusters = ctx.kubeport(&["get", "clusters"])?;
    let exists = String::from_utf8_lossy(&clusters.stdout)
        .lines()
        .any(|l| l.trim() == args.name);
    if exists {
        step(&format!("reusing cluster {:?}", args.name));
    } else {
        step(&format!(
            "creating cluster {:?} from the seed's kind-config.yaml (1 control-plane + 2 workers)",
            args.name
        ));
        let cfg = ctx.workdir.join("kind-config.yaml");
        std::fs::write(&cfg, KIND_CONFIG)?;
        let out = ctx.kubeport(&[
            "create",
            "cluster",
            "--name",
            &args.name,
            "--config",
            cfg.to_str().unwrap(),
        ])?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            bail!(
                "kubeport create cluster failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let _ = ctx.kubectl(&["create", "namespace", "dev"]);
    step("applying the seed's nginx-replicaset.yaml (6 replicas) and nginx-service-nodeport.yaml (nodePort 30000)");
    let rs = ctx.workdir.join("nginx-replicaset.yaml");
    std::fs::write(&rs, REPLICASET)?;
    let svc = ctx.workdir.join("nginx-service-nodeport.yaml");
    std::fs::write(&svc, NODEPORT_SERVICE)?;
    ctx.kubectl(&["apply", "-f", rs.to_str().unwrap()])?;
    ctx.kubectl(&["apply", "-f", svc.to_str().unwrap()])?;
    step("waiting for the 6 pods to be Ready");
    wait_pods_ready(ctx, 6, Duration::from_secs(60))?;
    let pods: Value = serde_json::from_str(&ctx.kubectl(&[
        "get",
        "pods",
        "-n",
        "dev",
        "-l",
        "app=nginx",
        "-o",
        "json",
    ])?)?;
    let mut pod_node: BTreeMap<String, String> = BTreeMap::new();
    for p in pods["items"].as_array().into_iter().flatten() {
        if p.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let name = p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let node = p["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        pod_node.insert(name, node);
    }
    step("writing each pod's name into its index.html (the seed's loop)");
    for pod in pod_node.keys() {
        ctx.kubectl(&[
            "exec",
            "-n",
            "dev",
            pod,
            "--",
            "sh",
            "-c",
            &format!("echo {pod} > /usr/share/nginx/html/index.html"),
        ])?;
    }
    let nodes: Value = serde_json::from_str(&ctx.kubectl(&["get", "nodes", "-o", "json"])?)?;
    let mut node_ips: Vec<(String, IpAddr)> = Vec::new();
    for n in nodes["items"].as_array().into_iter().flatten() {
        let name = n["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ip = n["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["type"] == "InternalIP")
            .and_then(|a| a["address"].as_str())
            .and_then(|a| a.parse().ok());
        if let Some(ip) = ip {
            node_ips.push((name, ip));
        }
    }
    step(&format!(
        "sending {} requests to each node's IP:30000 from this host",
        args.requests
    ));
    println!();
    println!(
        "{:<28} {:<17} answered by (pod @ node: count)",
        "ENTRY NODE", "NODE IP:PORT"
    );
    let mut every_node_reached_all = true;
    for (node, ip) in &node_ips {
        let addr = SocketAddr::new(*ip, 30000);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut failures = 0;
        for _ in 0..args.requests {
            match http_get(addr) {
                Ok(body) if !body.is_empty() => *counts.entry(body).or_default() += 1,
                _ => failures += 1,
            }
        }
        let nodes_reached: std::collections::BTreeSet<&str> = counts
            .keys()
            .filter_map(|p| pod_node.get(p).map(|s| s.as_str()))
            .collect();
        every_node_reached_all &= nodes_reached.len() == node_ips.len();
        let answered: Vec<String> = counts
            .iter()
            .map(|(pod, n)| {
                format!(
                    "{pod} @ {}: {n}",
                    pod_node.get(pod).map(|s| s.as_str()).unwrap_or("?")
                )
            })
            .collect();
        println!(
            "{:<28} {:<17} {}",
            node,
            addr.to_string(),
            answered.join(", ")
        );
        if failures > 0 {
            println!("{:<28} {:<17} ({failures} requests failed)", "", "");
        }
    }
    println!();
    if every_node_reached_all {
        println!("Every node's nodePort reached pods on all {} nodes: どの Node にアクセスしても、クラスター全体の Pod に負荷分散されます。", node_ips.len());
    } else {
        println!("Not every node reached pods on all nodes (see the table above).");
    }
    println!();
    println!("Explore:");
    println!("  kubectl -n dev get svc -o wide");
    println!("  kubectl -n dev describe svc nginx-service");
    println!("  kubectl -n dev get endpoints nginx-service");
    println!("  kubectl -n dev get pod -o wide");
    println!(
        "  ip netns exec {}-worker nft list table ip kube-proxy",
        args.name
    );
    println!("  kubeport trace svc/nginx-service -n dev");
    println!("Delete the cluster:");
    println!("  kubeport delete cluster --name {}", args.name);
    Ok(())
}

fn wait_pods_ready(ctx: &Ctx, want: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pods: Value = serde_json::from_str(&ctx.kubectl(&[
            "get",
            "pods",
            "-n",
            "dev",
            "-l",
            "app=nginx",
            "-o",
            "json",
        ])?)?;
        let ready = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        if ready >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {ready} of {want} pods became Ready within {}s; see `kubectl -n dev get pods`", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
