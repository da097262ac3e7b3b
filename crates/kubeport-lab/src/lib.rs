//! The local multi-node lab (scaffolding, being written).

#[derive(clap::Subcommand, Debug)]
pub enum LabCommand {
    /// Create a resource (`cluster`).
    #[command(subcommand)]
    Create(CreateCommand),
}

#[derive(clap::Subcommand, Debug)]
pub enum CreateCommand {
    /// Create a local multi-node cluster.
    Cluster,
}

pub fn run(_cmd: LabCommand) -> anyhow::Result<()> {
    anyhow::bail!("the lab is being written (scaffolding)")
}
