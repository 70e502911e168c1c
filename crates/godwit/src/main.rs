//! The `godwit` binary: parse the command line, set up logging, run a subcommand.

mod client;
mod config;
mod serve;
mod server;

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, ServeConfig};

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers, and glibc's malloc was 8–10% of a `--fsync never` push profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Client(_)) {
        init_logging();
    }
    match cli.command {
        Command::Serve(args) => {
            // Resolved before the runtime exists: the runtime's size is one of its settings.
            let config = ServeConfig::resolve(args)?;
            runtime(Some(config.worker_threads))?.block_on(serve::run(config))
        }
        Command::Bench(args) => runtime(None)?.block_on(godwit_bench::run(args)),
        Command::Client(command) => std::process::exit(client::run(command)),
    }
}

/// The multi-threaded tokio runtime, with `worker_threads` threads (`None`: tokio's
/// default, one per core).
fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder.build().context("starting the async runtime")
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
