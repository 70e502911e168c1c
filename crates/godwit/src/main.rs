//! The `godwit` binary: parse the command line, set up logging, run a subcommand.

mod config;
mod serve;
mod server;

use std::io::IsTerminal as _;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, ServeConfig};

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers, and glibc's malloc was 8–10% of a `--fsync never` push profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => serve::run(ServeConfig::resolve(args)?).await,
        Command::Bench(args) => godwit_bench::run(args).await,
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
