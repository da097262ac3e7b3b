//! The node agent (scaffolding, being written).

#[derive(clap::Args, Debug)]
pub struct AgentArgs {}

pub async fn run(_args: AgentArgs) -> anyhow::Result<()> {
    anyhow::bail!("the node agent is being written (scaffolding)")
}
