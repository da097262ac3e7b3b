//! The HTTPS listener: TLS with optional client certificates (identity = CN/O), HTTP/1.1
//! and HTTP/2 with upgrades, start-up and clean shutdown.

use crate::http::{ApiServer, Identity};
use crate::lifecycle;
use crate::registry::Registry;
use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kubeport_service::{PortRange, ServiceConfig};
use kubeport_store::{Store, StoreOptions};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests).
    pub secure_port: u16,
    pub kubeconfig_out: Option<PathBuf>,
    pub service_cluster_ip_range: ipnet::IpNet,
    pub service_node_port_range: PortRange,
    /// The address written into kubeconfigs and the `kubernetes` endpoints; defaults to the
    /// bind address, or 127.0.0.1 when binding all addresses.
    pub advertise_address: Option<IpAddr>,
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            data_dir,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            secure_port: 6443,
            kubeconfig_out: None,
            service_cluster_ip_range: "10.96.0.0/12".parse().unwrap(),
            service_node_port_range: PortRange {
                base: 30000,
                size: 2768,
            },
            advertise_address: None,
        }
    }

    fn advertise(&self) -> IpAddr {
        self.advertise_address
            .unwrap_or(if self.bind_address.is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                self.bind_address
            })
    }
}

/// A started server: its address and a handle to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// An admin kubeconfig for in-process clients (controllers), always written.
    pub admin_kubeconfig: PathBuf,
    pub registry: Arc<Registry>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.registry.store.close().await;
    }
}

fn tls_config(pki: &kubeport_pki::Pki) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.serving_cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut pki.serving_key_pem.as_bytes())?
            .context("serving key missing")?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Opens the store, prepares certificates and state, and starts serving.
pub async fn start(cfg: ServerConfig) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let store = Store::open(&cfg.data_dir.join("store"), StoreOptions::default())
        .map_err(|e| anyhow::anyhow!("opening store: {e}"))?;
    let advertise = cfg.advertise();
    let mut ip_sans = vec![
        cfg.bind_address,
        advertise,
        lifecycle::first_service_ip(&cfg.service_cluster_ip_range),
    ];
    ip_sans.retain(|ip| !ip.is_unspecified());
    let pki = kubeport_pki::load_or_create(&cfg.data_dir.join("pki"), &ip_sans, &[])?;
    let registry = Registry::new(
        store,
        ServiceConfig {
            cluster_ip_range: cfg.service_cluster_ip_range,
            node_port_range: cfg.service_node_port_range,
        },
    );
    let report = registry.repair_services().await;
    for p in &report.problems {
        tracing::warn!("service allocation repair at start-up: {p:?}");
    }

    let listener = TcpListener::bind(SocketAddr::new(cfg.bind_address, cfg.secure_port))
        .await
        .with_context(|| format!("binding {}:{}", cfg.bind_address, cfg.secure_port))?;
    let addr = listener.local_addr()?;
    lifecycle::bootstrap(&registry, advertise, addr.port()).await?;
    lifecycle::spawn_background(registry.clone());

    let (cert, key) = pki.issue_client_cert("kubernetes-admin", &["system:masters"])?;
    let entry = kubeport_pki::KubeconfigEntry {
        name: "kubeport".into(),
        server: format!("https://{}", SocketAddr::new(advertise, addr.port())),
        ca_pem: pki.ca_cert_pem.clone(),
        client_cert_pem: cert,
        client_key_pem: key,
    };
    let admin_kubeconfig = cfg.data_dir.join("admin.kubeconfig");
    kubeport_pki::write_kubeconfig(&admin_kubeconfig, &entry)?;
    if let Some(path) = &cfg.kubeconfig_out {
        kubeport_pki::write_kubeconfig(path, &entry)?;
    }

    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&pki)?));
    let api = Arc::new(ApiServer {
        registry: registry.clone(),
        advertise: SocketAddr::new(advertise, addr.port()).to_string(),
    });
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _peer) = tokio::select! {
                _ = shutdown_rx.changed() => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let api = api.clone();
            let mut conn_shutdown = shutdown_rx.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(t)) => t,
                    _ => return,
                };
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|der| kubeport_pki::identity_from_der(der.as_ref()))
                    .map(|(user, groups)| Identity { user, groups });
                let svc = service_fn(move |req| {
                    let api = api.clone();
                    let identity = identity.clone();
                    async move { Ok::<_, std::convert::Infallible>(api.handle(req, identity).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = conn_shutdown.changed() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                    }
                }
            });
        }
    });
    Ok(RunningServer {
        addr,
        admin_kubeconfig,
        registry,
        shutdown: shutdown_tx,
        task,
    })
}
