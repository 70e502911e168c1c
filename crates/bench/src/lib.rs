//! Godwit's whole-system load generator: drives a running server over real HTTP
//! connections and prints a table of what it measured.
//!
//! Scenarios: acknowledged single pushes, batched pushes, batched takes, key/value sets and
//! gets, a backlog fill that reports the server's resident memory before and after, and
//! live streams: fan-out to many SSE consumers and publish-to-consumer latency over SSE
//! and WebSocket. `godwit bench` wires its
//! command line to [`BenchArgs`] and calls [`run`]. Timing lives here, never in tests.

mod load;
mod report;
mod stream;

use std::time::Duration;

use anyhow::{bail, Context};

pub use report::Row;

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Acknowledged single-message pushes, one request per message.
    Push,
    /// Batched pushes of `--batch` messages per request.
    Batch,
    /// Batched takes of `--batch` messages per request from a pre-filled queue.
    Take,
    /// Single-value sets (`PUT /v1/kv/{key}`, `--size` bytes) rotating over `--keys` keys.
    KvSet,
    /// Single-value gets (`GET /v1/kv/{key}`) rotating over `--keys` pre-filled keys; a
    /// reply counts only when it is 200 with a value of `--size` bytes.
    KvGet,
    /// Fill `--messages` × `--size` bytes and report the server's RSS before and after.
    Backlog,
    /// `--consumers` broadcast SSE consumers of one queue, batched pushes from
    /// `--connections` pushers for `--duration`: pushes/s and deliveries/s (message events
    /// received by all consumers), each consumer's count and last id checked.
    Fanout,
    /// One live consumer, single pushes paced at `--rate` per second for `--duration`:
    /// publish-to-consumer latency over SSE, then over WebSocket.
    StreamLatency,
    /// Push, batch, take, kv-set and kv-get, then backlog (not the stream scenarios).
    All,
}

/// Command-line options of `godwit bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8888")]
    pub url: String,
    /// What to measure.
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: Scenario,
    /// Concurrent keep-alive HTTP connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Seconds each timed scenario runs.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Messages to pre-fill for `take` and to fill for `backlog`.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Message body (and key/value value) size in bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Keys the `kv-set` and `kv-get` scenarios rotate over.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Messages per batch request (batched push, take and fills).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Live SSE consumers of the `fanout` scenario.
    #[arg(long, default_value_t = 100)]
    pub consumers: usize,
    /// Pushes per second of the `stream-latency` scenario.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Process id of the server, to read its RSS from `/proc/PID/status` (backlog).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Prefix of the queue names the bench creates (a run id is appended).
    #[arg(long, default_value = "bench")]
    pub queue_prefix: String,
    /// Keep the backlog queue after the run (so a restart can be timed with it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub keep_backlog: bool,
}

/// Settings every scenario shares, checked once.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub url: String,
    pub connections: usize,
    pub duration: Duration,
    pub messages: u64,
    pub size: usize,
    pub batch: usize,
    pub keys: u64,
    pub consumers: usize,
    pub rate: u64,
    pub run_id: String,
    pub prefix: String,
}

impl Plan {
    fn from_args(args: &BenchArgs) -> anyhow::Result<Self> {
        if args.connections == 0
            || args.batch == 0
            || args.duration == 0
            || args.keys == 0
            || args.consumers == 0
            || args.rate == 0
        {
            bail!(
                "--connections, --batch, --duration, --keys, --consumers and --rate must be at least 1"
            );
        }
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 1_000_000_000)
            .unwrap_or(0)
            .to_string();
        Ok(Plan {
            url: args.url.trim_end_matches('/').to_string(),
            connections: args.connections,
            duration: Duration::from_secs(args.duration),
            messages: args.messages,
            size: args.size,
            batch: args.batch,
            keys: args.keys,
            consumers: args.consumers,
            rate: args.rate,
            run_id,
            prefix: args.queue_prefix.clone(),
        })
    }

    /// A queue name unique to this run and scenario.
    pub fn queue(&self, scenario: &str) -> String {
        format!("{}-{}-{}", self.prefix, scenario, self.run_id)
    }

    /// The prefix of the keys of a key/value scenario: unique to this run like the queue
    /// names (keys and queues share one namespace); key `n` is this followed by `k{n}`.
    pub fn key_prefix(&self, scenario: &str) -> String {
        format!("{}-k", self.queue(scenario))
    }
}

/// Runs the chosen scenarios against `args.url` and prints a table of results.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = Plan::from_args(&args)?;
    let probe = reqwest::Client::new();
    let health = probe
        .get(format!("{}/healthz", plan.url))
        .send()
        .await
        .with_context(|| format!("reaching {}", plan.url))?;
    if !health.status().is_success() {
        bail!("{}/healthz answered {}", plan.url, health.status());
    }
    println!(
        "godwit bench: {} · {} connections · {} B bodies · batch {} · {} s per timed scenario",
        plan.url,
        plan.connections,
        plan.size,
        plan.batch,
        plan.duration.as_secs()
    );

    let mut rows = Vec::new();
    let wants = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    if wants(Scenario::Push) {
        rows.push(load::single_pushes(&plan).await?);
        report::print_progress(rows.last());
    }
    if wants(Scenario::Batch) {
        rows.push(load::batched_pushes(&plan).await?);
        report::print_progress(rows.last());
    }
    if wants(Scenario::Take) {
        let (fill, take) = load::batched_takes(&plan).await?;
        rows.push(fill);
        rows.push(take);
        report::print_progress(rows.last());
    }
    if wants(Scenario::KvSet) {
        rows.push(load::kv_sets(&plan).await?);
        report::print_progress(rows.last());
    }
    if wants(Scenario::KvGet) {
        let (fill, get) = load::kv_gets(&plan).await?;
        rows.push(fill);
        rows.push(get);
        report::print_progress(rows.last());
    }
    let mut notes = Vec::new();
    if args.scenario == Scenario::Fanout {
        let (push, deliveries, n) = stream::fanout(&plan).await?;
        rows.push(push);
        report::print_progress(rows.last());
        rows.push(deliveries);
        report::print_progress(rows.last());
        notes.extend(n);
    }
    if args.scenario == Scenario::StreamLatency {
        for transport in [stream::Transport::Sse, stream::Transport::WebSocket] {
            let (row, n) = stream::latency(&plan, transport).await?;
            rows.push(row);
            report::print_progress(rows.last());
            notes.extend(n);
        }
    }
    let mut memory = None;
    if wants(Scenario::Backlog) {
        let (row, rss) = load::backlog(&plan, args.pid, args.keep_backlog).await?;
        rows.push(row);
        memory = Some(rss);
        report::print_progress(rows.last());
    }
    println!();
    report::print_table(&rows);
    if !notes.is_empty() {
        println!();
        for n in &notes {
            println!("{n}");
        }
    }
    if let Some(rss) = memory {
        report::print_memory(&rss);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn defaults_and_flags_parse() {
        let cli = Cli::parse_from(["bench"]);
        assert_eq!(cli.bench.url, "http://127.0.0.1:8888");
        assert_eq!(cli.bench.scenario, Scenario::All);
        assert_eq!(cli.bench.connections, 8);
        let cli = Cli::parse_from([
            "bench",
            "--scenario",
            "backlog",
            "--pid",
            "42",
            "--batch",
            "500",
        ]);
        assert_eq!(cli.bench.scenario, Scenario::Backlog);
        assert_eq!(cli.bench.pid, Some(42));
        let plan = Plan::from_args(&cli.bench).unwrap();
        assert!(plan.queue("push").starts_with("bench-push-"));
        assert_eq!(plan.keys, 10_000);
        assert!(plan.key_prefix("kv-set").starts_with("bench-kv-set-"));
        assert!(plan.key_prefix("kv-set").ends_with("-k"));
        let cli = Cli::parse_from(["bench", "--scenario", "kv-get", "--keys", "50"]);
        assert_eq!(cli.bench.scenario, Scenario::KvGet);
        assert_eq!(cli.bench.keys, 50);
        let mut bad = cli.bench.clone();
        bad.connections = 0;
        assert!(Plan::from_args(&bad).is_err());
        let mut bad = cli.bench.clone();
        bad.keys = 0;
        assert!(Plan::from_args(&bad).is_err());
        let cli = Cli::parse_from(["bench", "--scenario", "fanout", "--consumers", "7"]);
        assert_eq!(cli.bench.scenario, Scenario::Fanout);
        assert_eq!(Plan::from_args(&cli.bench).unwrap().consumers, 7);
        let cli = Cli::parse_from(["bench", "--scenario", "stream-latency"]);
        assert_eq!(cli.bench.scenario, Scenario::StreamLatency);
        assert_eq!(cli.bench.rate, 1000);
        assert_eq!(cli.bench.consumers, 100);
        let mut bad = cli.bench.clone();
        bad.rate = 0;
        assert!(Plan::from_args(&bad).is_err());
    }
}
