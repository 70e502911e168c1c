//! The client commands of the `godwit` binary (`push`, `pop`, `lease`, `tail`, `stats`,
//! `copy`, …): each parses its flags, calls the server through `godwit-client`, prints
//! the result (plain text, or JSON with `--json`) and ends with an exit code a shell
//! user can test. Nothing here knows the server's internals; `docs/cli.md` is the manual.
//!
//! Exit codes: 0 ok, 1 an error (the server refused, a file could not be read), 2 bad
//! usage (clap), 3 nothing to read (an empty queue, a stale receipt), 4 the server
//! could not be reached.

mod commands;
mod copy;
mod stats;

use std::time::Duration;

use clap::{Args, Subcommand};

/// The exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// The exit code of a failed command (the server refused it, a file failed, …).
pub const EXIT_ERROR: i32 = 1;
/// The exit code when there was nothing to read (empty queue, stale receipt).
pub const EXIT_EMPTY: i32 = 3;
/// The exit code when the server could not be reached.
pub const EXIT_UNREACHABLE: i32 = 4;

/// Flags every client command takes.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The server's base URL.
    #[arg(long, env = "GODWIT_SERVER", default_value = "http://127.0.0.1:8888")]
    pub server: String,
    /// Print JSON (one document, or one line per event for `tail` and `stats --watch`).
    #[arg(long)]
    pub json: bool,
}

impl Conn {
    /// A client with a connect timeout (a request itself may wait as long as it asks to).
    fn client(&self) -> anyhow::Result<godwit_client::Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(godwit_client::Client::with_http(&self.server, http)?)
    }
}

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Pushes a message: BODY, or stdin when BODY is `-` or absent (`--lines`: one
    /// message per stdin line).
    Push(commands::PushArgs),
    /// Takes (removes) messages and prints their bodies; exit 3 when the queue is empty.
    #[command(alias = "take")]
    Pop(commands::ReadArgs),
    /// Leases messages: prints `RECEIPT<TAB>BODY` lines; ack them with `godwit ack`.
    Lease(commands::LeaseArgs),
    /// Acknowledges leased messages by receipt; exit 3 when none was still leased.
    Ack(commands::ReceiptArgs),
    /// Gives leased messages back to the queue at once.
    Nack(commands::ReceiptArgs),
    /// Prints messages from the head without consuming them; exit 3 when empty.
    Peek(commands::PeekArgs),
    /// Follows a queue live (like `tail -f`), taking each message as it arrives.
    Tail(commands::TailArgs),
    /// A table of the queues (`--watch` redraws it).
    Stats(stats::StatsArgs),
    /// Removes every message of a queue.
    Purge(commands::QueueArgs),
    /// Copies a file line by line through a queue (queue_service's reader-writer).
    Copy(copy::CopyArgs),
    /// Prints a shell completion script.
    Completions(commands::CompletionsArgs),
}

/// Runs a client command on a fresh runtime and returns the process exit code; errors
/// are printed on stderr.
pub fn run(command: ClientCommand) -> i32 {
    if let ClientCommand::Completions(args) = &command {
        return commands::completions(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("godwit: starting the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            ClientCommand::Push(a) => commands::push(a).await,
            ClientCommand::Pop(a) => commands::pop(a).await,
            ClientCommand::Lease(a) => commands::lease(a).await,
            ClientCommand::Ack(a) => commands::ack(a, true).await,
            ClientCommand::Nack(a) => commands::ack(a, false).await,
            ClientCommand::Peek(a) => commands::peek(a).await,
            ClientCommand::Tail(a) => commands::tail(a).await,
            ClientCommand::Stats(a) => stats::stats(a).await,
            ClientCommand::Purge(a) => commands::purge(a).await,
            ClientCommand::Copy(a) => copy::copy(a).await,
            ClientCommand::Completions(_) => Ok(EXIT_OK),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("godwit: {e:#}");
            exit_code(&e)
        }
    }
}

/// The exit code for an error: 4 when the server was unreachable, else 1.
fn exit_code(e: &anyhow::Error) -> i32 {
    let unreachable = e.chain().any(|c| {
        c.downcast_ref::<godwit_client::Error>()
            .is_some_and(godwit_client::Error::is_unreachable)
    });
    if unreachable {
        EXIT_UNREACHABLE
    } else {
        EXIT_ERROR
    }
}
