//! The node service proxy (scaffolding, being written).

#[derive(clap::Args, Debug)]
pub struct ProxyArgs {}

pub async fn run(_args: ProxyArgs) -> anyhow::Result<()> {
    anyhow::bail!("the proxy is being written (scaffolding)")
}
