//! `godwit copy INPUT OUTPUT`: queue_service's reader-writer. A reader task cuts INPUT
//! into pieces (a line with its newline, or a slice of a line longer than
//! [`PIECE_BYTES`]) and pushes them in batches; a writer task leases them, writes them to
//! OUTPUT in order and acks them. OUTPUT is the same bytes as INPUT, whatever they are.
//!
//! It survives the server restarting (even kill -9) in the middle: every piece carries
//! the headers `copy` (this run's id) and `seq` (its position), a push or lease that
//! fails is retried until the server is back (for up to `--retry-secs`), a piece pushed
//! twice or delivered again (its lease expired, its ack was lost) is recognised by its
//! `seq` and written once, and pieces that arrive out of order wait in a reorder buffer.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use godwit_client::{Client, Message, NewMessage, ReadOptions};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::watch;

use super::{Conn, EXIT_OK};

/// The largest piece of a line one message carries (under the default 1 MiB limit).
const PIECE_BYTES: usize = 512 << 10;
/// The most body bytes per batch push (JSON escaping can grow them; the server's batch
/// limit is 16 MiB by default).
const BATCH_BYTES: usize = 2 << 20;
/// The header naming the run a piece belongs to.
const RUN_HEADER: &str = "copy";
/// The header holding a piece's position.
const SEQ_HEADER: &str = "seq";

/// Flags of `godwit copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The file to read.
    pub input: PathBuf,
    /// The file to write (created or truncated).
    pub output: PathBuf,
    /// The queue to go through (default: a fresh `copy-<run>` queue, deleted at the end).
    #[arg(long)]
    pub queue: Option<String>,
    /// Messages per push and per lease (at most the server's `--max-batch`).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// How long to keep retrying while the server is unreachable, seconds.
    #[arg(long, default_value_t = 120)]
    pub retry_secs: u64,
    /// How long a leased piece stays hidden before it is delivered again, ms.
    #[arg(long, default_value_t = 10_000)]
    pub visibility_ms: u64,
    /// Show a progress bar: `auto` (when stderr is a terminal) or `never`.
    #[arg(long, default_value = "auto")]
    pub progress: Progress,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

/// When to draw the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// When stderr is a terminal.
    Auto,
    /// Never.
    Never,
}

/// What the reader tells the writer once it has pushed everything.
#[derive(Debug, Clone, Copy, Default)]
struct Read {
    pieces: u64,
    lines: u64,
    bytes: u64,
}

/// Retries `op` while the server is unreachable or temporarily unable, for up to
/// `retry` since the first failure; counts the retries.
async fn retrying<T, F, Fut>(retry: Duration, retries: &mut u64, mut op: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = godwit_client::Result<T>>,
{
    let mut first_failure: Option<Instant> = None;
    let mut pause = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() => {
                let since = *first_failure.get_or_insert_with(Instant::now);
                if since.elapsed() >= retry {
                    return Err(e).context(format!(
                        "the server did not come back within {} s",
                        retry.as_secs()
                    ));
                }
                *retries = retries.saturating_add(1);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A run id unlikely to repeat: the clock's nanoseconds and the process id.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", nanos, std::process::id())
}

pub(super) async fn copy(a: CopyArgs) -> anyhow::Result<i32> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()?;
    let client = Client::with_http(&a.conn.server, http)?;
    let run = run_id();
    let (queue, owned_queue) = match &a.queue {
        Some(q) => (q.clone(), false),
        None => (format!("copy-{run}"), true),
    };
    let input = tokio::fs::File::open(&a.input)
        .await
        .with_context(|| format!("opening {}", a.input.display()))?;
    let size = input.metadata().await.map_or(0, |m| m.len());
    let output = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let show = match a.progress {
        Progress::Auto => std::io::stderr().is_terminal(),
        Progress::Never => false,
    };
    let bar = if show {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let retry = Duration::from_secs(a.retry_secs);
    let started = Instant::now();
    let (done_tx, done_rx) = watch::channel(None);
    let reader = read_input(
        client.clone(),
        queue.clone(),
        run.clone(),
        input,
        a.batch,
        retry,
        done_tx,
    );
    let writer = Writer {
        client: client.clone(),
        queue: queue.clone(),
        run,
        batch: a.batch,
        visibility_ms: a.visibility_ms,
        retry,
        bar: bar.clone(),
    }
    .run(output, done_rx);
    let (read, written) = tokio::try_join!(reader, writer)?;
    bar.finish_and_clear();
    if owned_queue {
        let mut ignored = 0;
        retrying(retry, &mut ignored, || client.delete(&queue)).await?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let summary = json!({
        "queue": queue,
        "lines": read.0.lines,
        "bytes": read.0.bytes,
        "messages": read.0.pieces,
        "duplicates_skipped": written.duplicates,
        "retries": read.1.saturating_add(written.retries),
        "seconds": secs,
        "lines_per_sec": read.0.lines as f64 / secs,
        "mb_per_sec": read.0.bytes as f64 / secs / 1e6,
    });
    if a.conn.json {
        println!("{summary}");
    } else {
        eprintln!(
            "copied {} lines, {} bytes in {:.2} s ({:.0} lines/s, {:.1} MB/s; {} duplicates skipped, {} retries)",
            read.0.lines,
            read.0.bytes,
            secs,
            read.0.lines as f64 / secs,
            read.0.bytes as f64 / secs / 1e6,
            written.duplicates,
            read.1.saturating_add(written.retries),
        );
    }
    Ok(EXIT_OK)
}

/// The reader: cuts the input into pieces and pushes them, batch by batch.
async fn read_input(
    client: Client,
    queue: String,
    run: String,
    input: tokio::fs::File,
    batch_len: u32,
    retry: Duration,
    done: watch::Sender<Option<Read>>,
) -> anyhow::Result<(Read, u64)> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let mut read = Read::default();
    let mut retries = 0u64;
    let mut batch: Vec<NewMessage> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .await
            .context("reading the input")?;
        if n > 0 {
            read.bytes = read.bytes.saturating_add(n as u64);
            read.lines = read.lines.saturating_add(1);
            for piece in line.chunks(PIECE_BYTES) {
                batch.push(
                    NewMessage::new(piece)
                        .header(RUN_HEADER, run.as_str())
                        .header(SEQ_HEADER, read.pieces.to_string()),
                );
                read.pieces = read.pieces.saturating_add(1);
                batch_bytes = batch_bytes.saturating_add(piece.len());
            }
        }
        let full = batch.len() >= batch_len as usize || batch_bytes >= BATCH_BYTES;
        if !batch.is_empty() && (n == 0 || full) {
            retrying(retry, &mut retries, || {
                client.push_batch(&queue, &batch, None)
            })
            .await
            .with_context(|| format!("pushing to queue {queue}"))?;
            batch.clear();
            batch_bytes = 0;
        }
        if n == 0 {
            break;
        }
    }
    // The writer may have failed and gone: then its error is the one reported.
    let _ = done.send(Some(read));
    Ok((read, retries))
}

/// What the writer reports.
struct Written {
    duplicates: u64,
    retries: u64,
}

/// The writer: leases pieces, writes them in order, acks them.
struct Writer {
    client: Client,
    queue: String,
    run: String,
    batch: u32,
    visibility_ms: u64,
    retry: Duration,
    bar: ProgressBar,
}

impl Writer {
    async fn run(
        self,
        output: std::fs::File,
        mut done: watch::Receiver<Option<Read>>,
    ) -> anyhow::Result<Written> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, output);
        let mut next = 0u64;
        let mut waiting: BTreeMap<u64, Bytes> = BTreeMap::new();
        let mut written = Written {
            duplicates: 0,
            retries: 0,
        };
        let options = ReadOptions {
            max: Some(self.batch),
            wait_ms: Some(500),
            subscription: None,
            visibility_ms: Some(self.visibility_ms),
        };
        loop {
            let total = *done.borrow_and_update();
            if total.is_some_and(|t| next >= t.pieces) {
                break;
            }
            let messages = retrying(self.retry, &mut written.retries, || {
                self.client.lease(&self.queue, &options)
            })
            .await
            .with_context(|| format!("leasing from queue {}", self.queue))?;
            let mut receipts = Vec::with_capacity(messages.len());
            for m in &messages {
                let seq = self.seq(m)?;
                if seq < next || waiting.contains_key(&seq) {
                    written.duplicates = written.duplicates.saturating_add(1);
                } else {
                    waiting.insert(seq, m.bytes()?);
                }
                receipts.extend(m.receipt.clone());
            }
            while let Some(piece) = waiting.remove(&next) {
                out.write_all(&piece).context("writing the output")?;
                self.bar.inc(piece.len() as u64);
                next = next.saturating_add(1);
            }
            if !receipts.is_empty() {
                // A lost ack only means a redelivery, which `seq` recognises.
                retrying(self.retry, &mut written.retries, || {
                    self.client.ack(&self.queue, &receipts)
                })
                .await
                .with_context(|| format!("acking on queue {}", self.queue))?;
            }
        }
        out.flush().context("writing the output")?;
        out.get_ref().sync_all().context("syncing the output")?;
        Ok(written)
    }

    /// A piece's position, checking it belongs to this run.
    fn seq(&self, m: &Message) -> anyhow::Result<u64> {
        if m.headers.get(RUN_HEADER) != Some(&self.run) {
            anyhow::bail!(
                "queue {} holds message {} that is not from this copy; use an empty queue (godwit purge {})",
                self.queue,
                m.id,
                self.queue
            );
        }
        m.headers
            .get(SEQ_HEADER)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("message {} has no valid seq header", m.id))
    }
}
