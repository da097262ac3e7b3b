//! healthCheckNodePort servers: one HTTP server per LoadBalancer Service with
//! `externalTrafficPolicy: Local`, answering 200 when this node has Ready local endpoints
//! (and the proxy is healthy), 503 otherwise, so load balancers skip nodes without them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use kubeport_proxy_model::{HealthCheckService, NamespacedName};

use crate::gofmt::Timestamp;
use crate::health::{service_health_body, service_health_status, ProxyHealth};
use crate::http::{response, serve, Handler, Server};

/// Where health check servers listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddresses {
    /// Every address (`[::]`, falling back to `0.0.0.0` without IPv6).
    All,
    /// These node addresses (`--nodeport-addresses` CIDRs or the primary IPs).
    Ips(Vec<IpAddr>),
}

struct Running {
    port: u16,
    bind: BindAddresses,
    _servers: Vec<Server>,
}

/// A healthCheckNodePort that could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    pub service: NamespacedName,
    pub port: u16,
    pub error: String,
}

/// Starts and stops the per-Service servers as the desired state changes.
pub struct ServiceHealthServers {
    counts: Arc<Mutex<BTreeMap<NamespacedName, usize>>>,
    health: Arc<Mutex<ProxyHealth>>,
    running: BTreeMap<NamespacedName, Running>,
}

impl ServiceHealthServers {
    pub fn new(health: Arc<Mutex<ProxyHealth>>) -> Self {
        ServiceHealthServers {
            counts: Arc::new(Mutex::new(BTreeMap::new())),
            health,
            running: BTreeMap::new(),
        }
    }

    /// Services with a running server and their ports.
    pub fn running(&self) -> Vec<(NamespacedName, u16)> {
        self.running
            .iter()
            .map(|(name, running)| (name.clone(), running.port))
            .collect()
    }

    /// Makes the running servers match `checks`: closes those no longer wanted (or whose port
    /// or addresses changed), opens new ones, updates every endpoint count. Servers that
    /// failed to open are retried by the next call.
    pub async fn sync(
        &mut self,
        checks: &[HealthCheckService],
        bind: &BindAddresses,
    ) -> Vec<StartFailure> {
        {
            let mut counts = self.counts.lock().expect("health counts lock");
            counts.clear();
            for check in checks {
                counts.insert(check.service.clone(), check.local_endpoints);
            }
        }
        let wanted: BTreeMap<&NamespacedName, u16> = checks
            .iter()
            .map(|check| (&check.service, check.node_port))
            .collect();
        self.running.retain(|name, running| {
            let keep = wanted.get(name) == Some(&running.port) && running.bind == *bind;
            if !keep {
                tracing::info!(service = %name, port = running.port, "closing healthcheck");
            }
            keep
        });
        let mut failures = Vec::new();
        for (name, port) in wanted {
            if self.running.contains_key(name) {
                continue;
            }
            match self.open(name, port, bind).await {
                Ok(servers) => {
                    tracing::info!(service = %name, port, "opened healthcheck");
                    self.running.insert(
                        name.clone(),
                        Running {
                            port,
                            bind: bind.clone(),
                            _servers: servers,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(service = %name, port, %error, "failed to start healthcheck");
                    failures.push(StartFailure {
                        service: name.clone(),
                        port,
                        error,
                    });
                }
            }
        }
        failures
    }

    async fn open(
        &self,
        name: &NamespacedName,
        port: u16,
        bind: &BindAddresses,
    ) -> Result<Vec<Server>, String> {
        let handler = self.handler(name.clone());
        match bind {
            BindAddresses::All => {
                let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
                match serve(v6, handler.clone()).await {
                    Ok(server) => Ok(vec![server]),
                    Err(_) => {
                        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
                        serve(v4, handler)
                            .await
                            .map(|server| vec![server])
                            .map_err(|err| format!("listen tcp {v4}: {err}"))
                    }
                }
            }
            BindAddresses::Ips(ips) => {
                let mut servers = Vec::new();
                for ip in ips {
                    let addr = SocketAddr::new(*ip, port);
                    // On error the servers opened so far are dropped (closed) with `servers`.
                    servers.push(
                        serve(addr, handler.clone())
                            .await
                            .map_err(|err| format!("listen tcp {addr}: {err}"))?,
                    );
                }
                Ok(servers)
            }
        }
    }

    fn handler(&self, name: NamespacedName) -> Handler {
        let counts = self.counts.clone();
        let health = self.health.clone();
        Arc::new(move |_method, _path| {
            let count = counts
                .lock()
                .expect("health counts lock")
                .get(&name)
                .copied()
                .unwrap_or(0);
            let healthy = health
                .lock()
                .expect("health lock")
                .is_healthy(Timestamp::now())
                .0;
            response(
                service_health_status(count, healthy),
                &[
                    ("Content-Type", "application/json".to_string()),
                    ("X-Content-Type-Options", "nosniff".to_string()),
                    ("X-Load-Balancing-Endpoint-Weight", count.to_string()),
                ],
                service_health_body(&name.namespace, &name.name, count, healthy),
            )
        })
    }
}
