//! A test-only front end with the `kubeport` binary's `agent` and `agnhost` commands, so this
//! crate's end-to-end tests can run the agent as a process inside a node network namespace.

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Agent(kubeport_agent::AgentArgs),
    Agnhost(kubeport_agent::AgnhostArgs),
}

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEPORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Agent(args) => rt.block_on(kubeport_agent::run(args)),
        Command::Agnhost(args) => rt.block_on(kubeport_agent::run_agnhost(args)),
    }
}
