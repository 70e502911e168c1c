//! The small commands: push, pop/take, lease, ack/nack, peek, tail, purge, completions.

use std::io::{BufRead as _, Read as _, Write as _};

use anyhow::Context as _;
use clap::{Args, CommandFactory as _};
use godwit_client::{Message, NewMessage, PushOptions, ReadOptions, StreamEvent, StreamOptions};
use serde_json::json;

use super::{Conn, EXIT_EMPTY, EXIT_OK};

/// The most messages one `push --lines` batch carries (the server's default `--max-batch`).
const LINES_PER_BATCH: usize = 1000;
/// The most body bytes one `push --lines` batch carries (well under `--max-batch-bytes`).
const BYTES_PER_BATCH: usize = 4 << 20;

/// Flags of `godwit push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The queue.
    pub queue: String,
    /// The body; `-` or absent reads stdin.
    pub body: Option<String>,
    /// Push every line of stdin as a message (without its newline).
    #[arg(long)]
    pub lines: bool,
    /// Priority 0–9 (higher first).
    #[arg(long)]
    pub priority: Option<u8>,
    /// Delay before the message is ready, ms.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Time to live, ms.
    #[arg(long)]
    pub ttl_ms: Option<u64>,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

/// Flags of `godwit pop` / `take`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The queue.
    pub queue: String,
    /// At most this many messages.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub max: u32,
    /// Wait up to this many ms for a message.
    #[arg(long, default_value_t = 0)]
    pub wait_ms: u64,
    /// A named subscription instead of the queue's own.
    #[arg(long)]
    pub subscription: Option<String>,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

/// Flags of `godwit lease`.
#[derive(Debug, Args)]
pub struct LeaseArgs {
    /// What to read.
    #[command(flatten)]
    pub read: ReadArgs,
    /// How long the messages stay hidden, ms.
    #[arg(long)]
    pub visibility_ms: Option<u64>,
}

/// Flags of `godwit peek`.
#[derive(Debug, Args)]
pub struct PeekArgs {
    /// The queue.
    pub queue: String,
    /// At most this many messages.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub max: u32,
    /// A named subscription instead of the queue's own.
    #[arg(long)]
    pub subscription: Option<String>,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

/// Flags of `godwit ack` / `nack`.
#[derive(Debug, Args)]
pub struct ReceiptArgs {
    /// The queue.
    pub queue: String,
    /// Receipts from `godwit lease`.
    #[arg(required = true)]
    pub receipts: Vec<String>,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

/// Flags of `godwit tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The queue.
    pub queue: String,
    /// A named subscription instead of the queue's own.
    #[arg(long)]
    pub subscription: Option<String>,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

/// Flags of commands that take just a queue.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue.
    pub queue: String,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

/// Flags of `godwit completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Prints one JSON document on stdout.
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Writes a message's body and a newline.
fn write_body(out: &mut impl std::io::Write, m: &Message) -> anyhow::Result<()> {
    out.write_all(&m.bytes()?)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub(super) async fn push(a: PushArgs) -> anyhow::Result<i32> {
    let client = a.conn.client()?;
    let options = PushOptions {
        priority: a.priority,
        delay_ms: a.delay_ms,
        ttl_ms: a.ttl_ms,
        ..PushOptions::default()
    };
    if a.lines {
        anyhow::ensure!(
            a.body.as_deref().is_none_or(|b| b == "-"),
            "--lines reads stdin; give no BODY (or `-`)"
        );
        return push_lines(&client, &a.queue, &options, a.conn.json).await;
    }
    let body = match a.body.as_deref() {
        Some(b) if b != "-" => b.as_bytes().to_vec(),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .context("reading stdin")?;
            buf
        }
    };
    let pushed = client.push(&a.queue, body, &options).await?;
    if a.conn.json {
        print_json(&serde_json::to_value(&pushed)?)?;
    } else {
        println!("{}", pushed.id);
    }
    Ok(EXIT_OK)
}

async fn push_lines(
    client: &godwit_client::Client,
    queue: &str,
    options: &PushOptions,
    as_json: bool,
) -> anyhow::Result<i32> {
    let mut stdin = std::io::stdin().lock();
    let (mut pushed, mut first, mut last) = (0u64, None, None);
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = stdin
            .read_until(b'\n', &mut line)
            .context("reading stdin")?;
        if n > 0 {
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            bytes = bytes.saturating_add(line.len());
            let mut m = NewMessage::new(&line);
            m.priority = options.priority;
            m.delay_ms = options.delay_ms;
            m.ttl_ms = options.ttl_ms;
            batch.push(m);
        }
        if !batch.is_empty()
            && (n == 0 || batch.len() >= LINES_PER_BATCH || bytes >= BYTES_PER_BATCH)
        {
            let reply = client.push_batch(queue, &batch, None).await?;
            pushed = pushed.saturating_add(reply.ids.len() as u64);
            first = first.or(reply.ids.first().copied());
            last = reply.ids.last().copied().or(last);
            batch.clear();
            bytes = 0;
        }
        if n == 0 {
            break;
        }
    }
    if as_json {
        print_json(&json!({"queue": queue, "pushed": pushed, "first_id": first, "last_id": last}))?;
    } else {
        println!("{pushed}");
    }
    Ok(EXIT_OK)
}

/// Prints read messages (bodies, or `{"messages": [...]}`); exit 3 when there are none.
fn print_messages(messages: &[Message], as_json: bool, with_receipt: bool) -> anyhow::Result<i32> {
    if as_json {
        print_json(&json!({ "messages": messages }))?;
    } else {
        let mut out = std::io::stdout().lock();
        for m in messages {
            if with_receipt {
                write!(out, "{}\t", m.receipt.as_deref().unwrap_or(""))?;
            }
            write_body(&mut out, m)?;
        }
        out.flush()?;
    }
    if messages.is_empty() {
        eprintln!("godwit: no message");
        return Ok(EXIT_EMPTY);
    }
    Ok(EXIT_OK)
}

fn read_options(a: &ReadArgs) -> ReadOptions {
    ReadOptions {
        max: Some(a.max),
        wait_ms: Some(a.wait_ms),
        subscription: a.subscription.clone(),
        visibility_ms: None,
    }
}

pub(super) async fn pop(a: ReadArgs) -> anyhow::Result<i32> {
    let messages = a.conn.client()?.take(&a.queue, &read_options(&a)).await?;
    print_messages(&messages, a.conn.json, false)
}

pub(super) async fn lease(a: LeaseArgs) -> anyhow::Result<i32> {
    let mut options = read_options(&a.read);
    options.visibility_ms = a.visibility_ms;
    let messages = a.read.conn.client()?.lease(&a.read.queue, &options).await?;
    print_messages(&messages, a.read.conn.json, true)
}

pub(super) async fn peek(a: PeekArgs) -> anyhow::Result<i32> {
    let options = ReadOptions {
        max: Some(a.max),
        subscription: a.subscription,
        ..ReadOptions::default()
    };
    let messages = a.conn.client()?.peek(&a.queue, &options).await?;
    print_messages(&messages, a.conn.json, false)
}

pub(super) async fn ack(a: ReceiptArgs, ack: bool) -> anyhow::Result<i32> {
    let client = a.conn.client()?;
    let n = if ack {
        client.ack(&a.queue, &a.receipts).await?
    } else {
        client.nack(&a.queue, &a.receipts).await?
    };
    let key = if ack { "acked" } else { "nacked" };
    if a.conn.json {
        print_json(&json!({ key: n }))?;
    } else {
        println!("{n}");
    }
    if n == 0 {
        eprintln!("godwit: no receipt was still leased (expired, acked or nacked)");
        return Ok(EXIT_EMPTY);
    }
    Ok(EXIT_OK)
}

pub(super) async fn purge(a: QueueArgs) -> anyhow::Result<i32> {
    let n = a.conn.client()?.purge(&a.queue).await?;
    if a.conn.json {
        print_json(&json!({ "purged": n }))?;
    } else {
        println!("{n}");
    }
    Ok(EXIT_OK)
}

pub(super) async fn tail(a: TailArgs) -> anyhow::Result<i32> {
    let options = StreamOptions {
        subscription: a.subscription.clone(),
        ..StreamOptions::default()
    };
    let mut sub = a.conn.client()?.subscribe(&a.queue, &options).await?;
    loop {
        let Some(event) = sub.next().await? else {
            return Ok(EXIT_OK);
        };
        match event {
            StreamEvent::Message(m) => {
                if a.conn.json {
                    print_json(&json!({"type": "message", "message": m}))?;
                } else {
                    let mut out = std::io::stdout().lock();
                    write_body(&mut out, &m)?;
                    out.flush()?;
                }
            }
            StreamEvent::Queue(name) => {
                if a.conn.json {
                    print_json(&json!({ "type": name }))?;
                } else {
                    eprintln!("godwit: queue {}: {name}", a.queue);
                }
            }
        }
    }
}

/// Prints the completion script for a shell; always exit 0.
pub(super) fn completions(a: &CompletionsArgs) -> i32 {
    let mut cmd = crate::config::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "godwit", &mut std::io::stdout());
    EXIT_OK
}
