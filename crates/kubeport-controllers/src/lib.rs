//! Controllers that run inside `kubeport server` but talk to the API only over HTTP (kube-rs).

/// Which controllers run; names as kube-controller-manager's `--controllers`.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Enabled controller names; empty means all.
    pub enabled: Vec<String>,
}

impl ControllerOptions {
    /// Parses `*`, `*,-scheduler`, or `endpointslice,replicaset`.
    pub fn from_flag(flag: &str) -> Self {
        let _ = flag;
        ControllerOptions {
            enabled: Vec::new(),
        }
    }
}

/// Runs the enabled controllers until the process ends.
pub async fn run(_client: kube::Client, _opts: ControllerOptions) -> anyhow::Result<()> {
    anyhow::bail!("controllers are being written (scaffolding)")
}
