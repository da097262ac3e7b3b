//! The host-side TCP forwarder behind `networking.apiServerAddress: 127.0.0.1`: kind
//! publishes the API server on the host's loopback; kubeport forwards that port to the
//! API server on the control-plane node.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// `kubeport lab-forward` flags (started by `create cluster`, not meant for users).
#[derive(clap::Args, Debug, Clone)]
pub struct ForwardArgs {
    /// Where to listen (port 0 picks a free one).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where to connect for every accepted connection.
    #[arg(long)]
    pub target: SocketAddr,
    /// Receives the port actually listened on.
    #[arg(long)]
    pub port_file: PathBuf,
}

/// Runs the forwarder until it is killed.
pub fn run_forwarder(args: ForwardArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let port = listener.local_addr()?.port();
        let tmp = args.port_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{port}\n"))?;
        std::fs::rename(&tmp, &args.port_file)?;
        loop {
            let (mut inbound, peer) = listener.accept().await?;
            let target = args.target;
            tokio::spawn(async move {
                let _ = inbound.set_nodelay(true);
                match tokio::net::TcpStream::connect(target).await {
                    Ok(mut outbound) => {
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    Err(e) => eprintln!("forwarding {peer} to {target}: {e}"),
                }
            });
        }
    })
}
