//! The command line and `godwit serve`'s configuration.
//!
//! Every serve setting comes from, in order of precedence: a command-line flag, a
//! `GODWIT_<NAME>` environment variable (both handled by clap), the TOML file given by
//! `--config` (keys in snake_case: `data_dir`, `http`, `fsync`, …), then the default.
//! Flags are therefore `Option`s without clap defaults; [`ServeConfig::resolve`] fills
//! the gaps from the file and the defaults.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use godwit_store::FsyncPolicy;
use serde::Deserialize;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./godwit-data";
/// Default HTTP listen address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8888";
/// Default Redis-protocol listen address.
pub const DEFAULT_REDIS: &str = "127.0.0.1:6390";
/// Default memcache-protocol listen address.
pub const DEFAULT_MEMCACHE: &str = "127.0.0.1:22133";
/// Default largest message body.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;
/// Default longest wait of a long-poll read, in milliseconds.
pub const DEFAULT_MAX_WAIT_MS: u64 = 30_000;
/// Default of `--max-batch`.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Default of `--max-batch-bytes`.
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// Default `--max-kv-bytes`.
pub const DEFAULT_MAX_KV_BYTES: u64 = 256 * 1024 * 1024;
/// Default segment size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default log growth between checkpoints.
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// Default of `--max-connections`, across all listeners.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Largest `--max-connections` accepted.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// Default of `--header-timeout-ms`.
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Default of `--body-timeout-ms`.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 30_000;
/// Default of `--idle-timeout-ms`.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Longest connection timeout accepted: 24 hours, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Default of `--queue-service-wait-ms`.
pub const DEFAULT_QUEUE_SERVICE_WAIT_MS: u64 = 30_000;
/// Largest `--queue-service-capacity`.
pub const MAX_QUEUE_SERVICE_CAPACITY: u64 = 1 << 40;
/// Most `--worker-threads` accepted.
pub const MAX_WORKER_THREADS: usize = 256;

/// Default of `--worker-threads`: the cores this process may run on (as the standard
/// library counts them, affinity and cgroup quota included), at most
/// [`MAX_WORKER_THREADS`]; what `#[tokio::main]` used before the option existed.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_WORKER_THREADS)
}

/// Godwit: a message broker in one binary.
#[derive(Debug, Parser)]
#[command(name = "godwit", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Runs the broker.
    Serve(ServeArgs),
    /// Runs a load benchmark against a running broker.
    Bench(godwit_bench::BenchArgs),
    /// The client commands (push, pop, tail, stats, copy, …), talking to a server.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// Flags of `godwit serve`; unset ones come from the config file or the defaults.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// TOML config file (keys as the flags, in snake_case: data_dir, http, fsync, …).
    #[arg(long, env = "GODWIT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory, created if missing [default: ./godwit-data].
    #[arg(long, env = "GODWIT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address, or `off` [default: 127.0.0.1:8888].
    #[arg(long, env = "GODWIT_HTTP", value_name = "ADDR", value_parser = Listen::from_str)]
    pub http: Option<Listen>,
    /// Redis-protocol listen address, or `off` (not served yet) [default: 127.0.0.1:6390].
    #[arg(long, env = "GODWIT_REDIS", value_name = "ADDR", value_parser = Listen::from_str)]
    pub redis: Option<Listen>,
    /// Memcache-protocol listen address, or `off` (not served yet) [default: 127.0.0.1:22133].
    #[arg(long, env = "GODWIT_MEMCACHE", value_name = "ADDR", value_parser = Listen::from_str)]
    pub memcache: Option<Listen>,
    /// When to fsync: `always`, `interval:MS` or `never` [default: always].
    #[arg(long, env = "GODWIT_FSYNC", value_name = "POLICY", value_parser = FsyncPolicy::from_str)]
    pub fsync: Option<FsyncPolicy>,
    /// Largest message body, in bytes (suffixes KiB, MiB, GiB allowed) [default: 1MiB].
    #[arg(long, env = "GODWIT_MAX_MESSAGE_BYTES", value_name = "BYTES", value_parser = parse_bytes)]
    pub max_message_bytes: Option<u64>,
    /// Longest wait a long-poll read may ask for, in milliseconds [default: 30000].
    #[arg(long, env = "GODWIT_MAX_WAIT_MS", value_name = "MS")]
    pub max_wait_ms: Option<u64>,
    /// Most messages one push, batch or read may carry [default: 1000].
    #[arg(long, env = "GODWIT_MAX_BATCH", value_name = "N")]
    pub max_batch: Option<usize>,
    /// Largest body of a batch request, in bytes (suffixes allowed) [default: 16MiB].
    #[arg(long, env = "GODWIT_MAX_BATCH_BYTES", value_name = "BYTES", value_parser = parse_bytes)]
    pub max_batch_bytes: Option<u64>,
    /// Most bytes the key/value namespace may hold: keys, values and 64 bytes per key
    /// (suffixes allowed) [default: 256MiB].
    #[arg(long, env = "GODWIT_MAX_KV_BYTES", value_name = "BYTES", value_parser = parse_bytes)]
    pub max_kv_bytes: Option<u64>,
    /// Log segment size, in bytes (suffixes allowed) [default: 64MiB].
    #[arg(long, env = "GODWIT_SEGMENT_BYTES", value_name = "BYTES", value_parser = parse_bytes)]
    pub segment_bytes: Option<u64>,
    /// Log growth between checkpoints, in bytes (suffixes allowed) [default: 64MiB].
    #[arg(long, env = "GODWIT_CHECKPOINT_BYTES", value_name = "BYTES", value_parser = parse_bytes)]
    pub checkpoint_bytes: Option<u64>,
    /// Most open connections across all listeners; more are refused (HTTP: 503)
    /// [default: 10000, at most 1000000].
    #[arg(long, env = "GODWIT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Longest time a client may take to send a request's headers, in milliseconds
    /// [default: 10000, at most 86400000].
    #[arg(long, env = "GODWIT_HEADER_TIMEOUT_MS", value_name = "MS")]
    pub header_timeout_ms: Option<u64>,
    /// Longest pause while a request body is being read, in milliseconds; then 408
    /// [default: 30000, at most 86400000].
    #[arg(long, env = "GODWIT_BODY_TIMEOUT_MS", value_name = "MS")]
    pub body_timeout_ms: Option<u64>,
    /// Longest time a connection may sit idle between requests, in milliseconds
    /// [default: 60000, at most 86400000].
    #[arg(long, env = "GODWIT_IDLE_TIMEOUT_MS", value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Refuse pushes while the data dir's filesystem has less free space than this, in
    /// bytes (suffixes allowed) [default: twice --segment-bytes].
    #[arg(long, env = "GODWIT_MIN_FREE_BYTES", value_name = "BYTES", value_parser = parse_bytes)]
    pub min_free_bytes: Option<u64>,
    /// RestMQ's ACL file (INI: `[rest:producer]`, `[rest:consumer]`, `[comet:consumer]`,
    /// `[websocket:consumer]`), re-checked every 60 s [default: none, everyone allowed].
    #[arg(long, env = "GODWIT_RESTMQ_ACL", value_name = "FILE")]
    pub restmq_acl: Option<PathBuf>,
    /// Take RestMQ clients' addresses (for the ACL) from `X-Real-Ip` /
    /// `X-Forwarded-For`, behind a proxy [default: false, the TCP peer].
    #[arg(long, env = "GODWIT_RESTMQ_TRUST_PROXY")]
    pub restmq_trust_proxy: bool,
    /// Serve RestMQ's collectd handlers (`POST /collectd/data`, `/collectd/event`)
    /// [default: false].
    #[arg(long, env = "GODWIT_RESTMQ_COLLECTD")]
    pub restmq_collectd: bool,
    /// Threads of the async runtime that serves connections (the log's sync thread
    /// comes on top) [default: the number of cores, at most 256].
    #[arg(long, env = "GODWIT_WORKER_THREADS", value_name = "N")]
    pub worker_threads: Option<usize>,
    /// A listener serving the httpmq dialect at its root (it is always under
    /// `/httpmq/` on the main listener), or `off` [default: off].
    #[arg(long, env = "GODWIT_HTTPMQ_LISTEN", value_name = "ADDR", value_parser = Listen::from_str)]
    pub httpmq_listen: Option<Listen>,
    /// A listener serving the queue_service dialect at its root (it is always under
    /// `/queue-service/` on the main listener), or `off` [default: off].
    #[arg(long, env = "GODWIT_QUEUE_SERVICE_LISTEN", value_name = "ADDR", value_parser = Listen::from_str)]
    pub queue_service_listen: Option<Listen>,
    /// A listener serving the queue-sample dialect at its root (it is always under
    /// `/queue-sample/` on the main listener), or `off` [default: off].
    #[arg(long, env = "GODWIT_QUEUE_SAMPLE_LISTEN", value_name = "ADDR", value_parser = Listen::from_str)]
    pub queue_sample_listen: Option<Listen>,
    /// Longest time queue_service's `GET /messages` waits for a message before it
    /// answers 204, in milliseconds [default: 30000, at most 86400000].
    #[arg(long, env = "GODWIT_QUEUE_SERVICE_WAIT_MS", value_name = "MS")]
    pub queue_service_wait_ms: Option<u64>,
    /// queue_service's capacity: its queue holds at most N messages and a `POST` to a
    /// full queue waits for room (the original's 10) [default: off, which leaves the
    /// queue's settings as they are].
    #[arg(long, env = "GODWIT_QUEUE_SERVICE_CAPACITY", value_name = "N")]
    pub queue_service_capacity: Option<u64>,
}

/// A listener setting: an address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// The listener is disabled.
    Off,
    /// Listen on this address.
    On(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    /// Parses `off` or an address such as `127.0.0.1:8888`, `[::1]:8888` or
    /// `localhost:8888`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Listen::On(addr));
        }
        s.to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(Listen::On)
            .ok_or_else(|| format!("invalid address {s:?}: expected HOST:PORT or off"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(addr) => addr.fmt(f),
        }
    }
}

/// Parses a byte count: a plain integer, or one with a `K`/`KiB`, `M`/`MiB` or
/// `G`/`GiB` suffix (all binary multiples).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number of bytes, e.g. 1048576 or 1MiB")
    })?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// A byte count in the config file: an integer or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileBytes {
    /// A plain number of bytes.
    Number(u64),
    /// A size such as `"64MiB"`.
    Text(String),
}

impl FileBytes {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            FileBytes::Number(n) => Ok(*n),
            FileBytes::Text(s) => parse_bytes(s),
        }
    }
}

/// The TOML config file: every key optional, names as the flags in snake_case.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--http`.
    pub http: Option<String>,
    /// See `--redis`.
    pub redis: Option<String>,
    /// See `--memcache`.
    pub memcache: Option<String>,
    /// See `--fsync`.
    pub fsync: Option<String>,
    /// See `--max-message-bytes`.
    pub max_message_bytes: Option<FileBytes>,
    /// See `--max-wait-ms`.
    pub max_wait_ms: Option<u64>,
    /// See `--max-batch`.
    pub max_batch: Option<usize>,
    /// See `--max-batch-bytes`.
    pub max_batch_bytes: Option<FileBytes>,
    /// See `--max-kv-bytes`.
    pub max_kv_bytes: Option<FileBytes>,
    /// See `--segment-bytes`.
    pub segment_bytes: Option<FileBytes>,
    /// See `--checkpoint-bytes`.
    pub checkpoint_bytes: Option<FileBytes>,
    /// See `--max-connections`.
    pub max_connections: Option<usize>,
    /// See `--header-timeout-ms`.
    pub header_timeout_ms: Option<u64>,
    /// See `--body-timeout-ms`.
    pub body_timeout_ms: Option<u64>,
    /// See `--idle-timeout-ms`.
    pub idle_timeout_ms: Option<u64>,
    /// See `--min-free-bytes`.
    pub min_free_bytes: Option<FileBytes>,
    /// See `--restmq-acl`.
    pub restmq_acl: Option<PathBuf>,
    /// See `--restmq-trust-proxy`.
    pub restmq_trust_proxy: Option<bool>,
    /// See `--restmq-collectd`.
    pub restmq_collectd: Option<bool>,
    /// See `--worker-threads`.
    pub worker_threads: Option<usize>,
    /// See `--httpmq-listen`.
    pub httpmq_listen: Option<String>,
    /// See `--queue-service-listen`.
    pub queue_service_listen: Option<String>,
    /// See `--queue-sample-listen`.
    pub queue_sample_listen: Option<String>,
    /// See `--queue-service-wait-ms`.
    pub queue_service_wait_ms: Option<u64>,
    /// See `--queue-service-capacity`.
    pub queue_service_capacity: Option<u64>,
}

impl FileConfig {
    /// Reads and parses a TOML config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// The resolved settings of `godwit serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The HTTP listener.
    pub http: Listen,
    /// The Redis-protocol listener (not served yet).
    pub redis: Listen,
    /// The memcache-protocol listener (not served yet).
    pub memcache: Listen,
    /// When the store fsyncs.
    pub fsync: FsyncPolicy,
    /// Largest message body in bytes.
    pub max_message_bytes: usize,
    /// Longest wait of a long-poll read.
    pub max_wait: Duration,
    /// Most messages one push, batch or read may carry.
    pub max_batch: usize,
    /// Largest body of a batch request in bytes.
    pub max_batch_bytes: usize,
    /// Most bytes the key/value namespace may hold.
    pub max_kv_bytes: u64,
    /// Log segment size.
    pub segment_bytes: u64,
    /// Log growth between checkpoints.
    pub checkpoint_bytes: u64,
    /// Most open connections across all listeners.
    pub max_connections: usize,
    /// Longest time to receive a request's headers.
    pub header_timeout: Duration,
    /// Longest pause while reading a request body.
    pub body_timeout: Duration,
    /// Longest idle time of a connection between requests.
    pub idle_timeout: Duration,
    /// Free-space watermark; `None` is the store's default (twice `segment_bytes`).
    pub min_free_bytes: Option<u64>,
    /// RestMQ's ACL file, if any.
    pub restmq_acl: Option<PathBuf>,
    /// Trust `X-Real-Ip` / `X-Forwarded-For` for RestMQ's ACL.
    pub restmq_trust_proxy: bool,
    /// Serve RestMQ's collectd handlers.
    pub restmq_collectd: bool,
    /// Worker threads of the async runtime.
    pub worker_threads: usize,
    /// The httpmq dialect's own listener.
    pub httpmq_listen: Listen,
    /// The queue_service dialect's own listener.
    pub queue_service_listen: Listen,
    /// The queue-sample dialect's own listener.
    pub queue_sample_listen: Listen,
    /// Longest wait of queue_service's `GET /messages`.
    pub queue_service_wait: Duration,
    /// queue_service's capacity (blocking writers), if set.
    pub queue_service_capacity: Option<u64>,
}

impl ServeConfig {
    /// Resolves flags and env (already merged by clap) over the `--config` file (if any)
    /// over the defaults.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        match args.config.clone() {
            Some(path) => {
                let file = FileConfig::load(&path)?;
                Self::merge(args, file)
                    .with_context(|| format!("in config file {}", path.display()))
            }
            None => Self::merge(args, FileConfig::default()),
        }
    }

    /// Merges `args` over `file` over the defaults.
    pub fn merge(args: ServeArgs, file: FileConfig) -> anyhow::Result<Self> {
        let listen = |flag: Option<Listen>, key: &str, value: Option<String>, default: &str| {
            pick(flag, key, value.as_deref(), default, Listen::from_str)
        };
        let bytes = |flag: Option<u64>, key: &str, value: Option<FileBytes>, default: u64| match (
            flag, value,
        ) {
            (Some(v), _) => Ok(v),
            (None, Some(v)) => v.bytes().map_err(|e| anyhow::anyhow!("{key}: {e}")),
            (None, None) => Ok(default),
        };
        let max_message_bytes = bytes(
            args.max_message_bytes,
            "max_message_bytes",
            file.max_message_bytes,
            DEFAULT_MAX_MESSAGE_BYTES,
        )?;
        Ok(Self {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            http: listen(args.http, "http", file.http, DEFAULT_HTTP)?,
            redis: listen(args.redis, "redis", file.redis, DEFAULT_REDIS)?,
            memcache: listen(args.memcache, "memcache", file.memcache, DEFAULT_MEMCACHE)?,
            fsync: pick(
                args.fsync,
                "fsync",
                file.fsync.as_deref(),
                "always",
                FsyncPolicy::from_str,
            )?,
            max_message_bytes: usize::try_from(max_message_bytes)
                .context("max_message_bytes does not fit in memory")?,
            max_wait: Duration::from_millis(
                args.max_wait_ms
                    .or(file.max_wait_ms)
                    .unwrap_or(DEFAULT_MAX_WAIT_MS),
            ),
            max_batch: match args
                .max_batch
                .or(file.max_batch)
                .unwrap_or(DEFAULT_MAX_BATCH)
            {
                0 => anyhow::bail!("max_batch must be at least 1"),
                n => n,
            },
            max_batch_bytes: usize::try_from(bytes(
                args.max_batch_bytes,
                "max_batch_bytes",
                file.max_batch_bytes,
                DEFAULT_MAX_BATCH_BYTES,
            )?)
            .context("max_batch_bytes does not fit in memory")?,
            max_kv_bytes: bytes(
                args.max_kv_bytes,
                "max_kv_bytes",
                file.max_kv_bytes,
                DEFAULT_MAX_KV_BYTES,
            )?,
            segment_bytes: bytes(
                args.segment_bytes,
                "segment_bytes",
                file.segment_bytes,
                DEFAULT_SEGMENT_BYTES,
            )?,
            checkpoint_bytes: bytes(
                args.checkpoint_bytes,
                "checkpoint_bytes",
                file.checkpoint_bytes,
                DEFAULT_CHECKPOINT_BYTES,
            )?,
            max_connections: in_range(
                "max_connections",
                args.max_connections.or(file.max_connections),
                DEFAULT_MAX_CONNECTIONS,
                MAX_MAX_CONNECTIONS,
            )?,
            header_timeout: timeout(
                "header_timeout_ms",
                args.header_timeout_ms.or(file.header_timeout_ms),
                DEFAULT_HEADER_TIMEOUT_MS,
            )?,
            body_timeout: timeout(
                "body_timeout_ms",
                args.body_timeout_ms.or(file.body_timeout_ms),
                DEFAULT_BODY_TIMEOUT_MS,
            )?,
            idle_timeout: timeout(
                "idle_timeout_ms",
                args.idle_timeout_ms.or(file.idle_timeout_ms),
                DEFAULT_IDLE_TIMEOUT_MS,
            )?,
            min_free_bytes: match (args.min_free_bytes, file.min_free_bytes) {
                (Some(v), _) => Some(v),
                (None, Some(v)) => Some(
                    v.bytes()
                        .map_err(|e| anyhow::anyhow!("min_free_bytes: {e}"))?,
                ),
                (None, None) => None,
            },
            restmq_acl: args.restmq_acl.or(file.restmq_acl),
            restmq_trust_proxy: args.restmq_trust_proxy || file.restmq_trust_proxy.unwrap_or(false),
            restmq_collectd: args.restmq_collectd || file.restmq_collectd.unwrap_or(false),
            worker_threads: in_range(
                "worker_threads",
                args.worker_threads.or(file.worker_threads),
                default_worker_threads(),
                MAX_WORKER_THREADS,
            )?,
            httpmq_listen: listen(
                args.httpmq_listen,
                "httpmq_listen",
                file.httpmq_listen,
                "off",
            )?,
            queue_service_listen: listen(
                args.queue_service_listen,
                "queue_service_listen",
                file.queue_service_listen,
                "off",
            )?,
            queue_sample_listen: listen(
                args.queue_sample_listen,
                "queue_sample_listen",
                file.queue_sample_listen,
                "off",
            )?,
            queue_service_wait: timeout(
                "queue_service_wait_ms",
                args.queue_service_wait_ms.or(file.queue_service_wait_ms),
                DEFAULT_QUEUE_SERVICE_WAIT_MS,
            )?,
            queue_service_capacity: match args
                .queue_service_capacity
                .or(file.queue_service_capacity)
            {
                Some(n) => Some(in_range(
                    "queue_service_capacity",
                    Some(n),
                    n,
                    MAX_QUEUE_SERVICE_CAPACITY,
                )?),
                None => None,
            },
        })
    }
}

/// The value set (flag, env or file), else the default; refused unless in `1..=max`.
fn in_range<T>(key: &str, value: Option<T>, default: T, max: T) -> anyhow::Result<T>
where
    T: PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    let v = value.unwrap_or(default);
    if v < T::from(1) || v > max {
        anyhow::bail!("{key} must be between 1 and {max}, got {v}");
    }
    Ok(v)
}

/// A timeout in milliseconds, checked by [`in_range`] against [`MAX_TIMEOUT_MS`].
fn timeout(key: &str, value: Option<u64>, default: u64) -> anyhow::Result<Duration> {
    in_range(key, value, default, MAX_TIMEOUT_MS).map(Duration::from_millis)
}

/// The flag's value, else the file's (parsed), else the default (parsed).
fn pick<T>(
    flag: Option<T>,
    key: &str,
    file: Option<&str>,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<T> {
    match (flag, file) {
        (Some(v), _) => Ok(v),
        (None, Some(text)) => parse(text).map_err(|e| anyhow::anyhow!("{key}: {e}")),
        (None, None) => parse(default).map_err(|e| anyhow::anyhow!("default {key}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Parsing reads `GODWIT_*` variables, so tests that parse or set them take turns.
    static ENV: Mutex<()> = Mutex::new(());

    const VARS: &[&str] = &[
        "GODWIT_CONFIG",
        "GODWIT_DATA_DIR",
        "GODWIT_HTTP",
        "GODWIT_REDIS",
        "GODWIT_MEMCACHE",
        "GODWIT_FSYNC",
        "GODWIT_MAX_MESSAGE_BYTES",
        "GODWIT_MAX_WAIT_MS",
        "GODWIT_SEGMENT_BYTES",
        "GODWIT_CHECKPOINT_BYTES",
        "GODWIT_MAX_CONNECTIONS",
        "GODWIT_HEADER_TIMEOUT_MS",
        "GODWIT_BODY_TIMEOUT_MS",
        "GODWIT_IDLE_TIMEOUT_MS",
        "GODWIT_MIN_FREE_BYTES",
        "GODWIT_WORKER_THREADS",
        "GODWIT_HTTPMQ_LISTEN",
        "GODWIT_QUEUE_SERVICE_LISTEN",
        "GODWIT_QUEUE_SAMPLE_LISTEN",
        "GODWIT_QUEUE_SERVICE_WAIT_MS",
        "GODWIT_QUEUE_SERVICE_CAPACITY",
    ];

    fn serve_args(argv: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["godwit", "serve"].iter().chain(argv)).unwrap();
        match cli.command {
            Command::Serve(args) => args,
            other => panic!("parsed {other:?}"),
        }
    }

    fn with_env<R>(vars: &[(&str, &str)], f: impl FnOnce() -> R) -> R {
        let _guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
        for v in VARS {
            std::env::remove_var(v);
        }
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let out = f();
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        out
    }

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let cfg = with_env(&[], || {
            ServeConfig::merge(serve_args(&[]), FileConfig::default())
        })
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("./godwit-data"));
        assert_eq!(cfg.http, Listen::On("127.0.0.1:8888".parse().unwrap()));
        assert_eq!(cfg.redis, Listen::On("127.0.0.1:6390".parse().unwrap()));
        assert_eq!(cfg.memcache, Listen::On("127.0.0.1:22133".parse().unwrap()));
        assert_eq!(cfg.fsync, FsyncPolicy::Always);
        assert_eq!(cfg.max_message_bytes, 1024 * 1024);
        assert_eq!(cfg.max_wait, Duration::from_secs(30));
        assert_eq!(cfg.segment_bytes, 64 << 20);
        assert_eq!(cfg.checkpoint_bytes, 64 << 20);
        assert_eq!(cfg.max_connections, 10_000);
        assert_eq!(cfg.header_timeout, Duration::from_secs(10));
        assert_eq!(cfg.body_timeout, Duration::from_secs(30));
        assert_eq!(cfg.idle_timeout, Duration::from_secs(60));
        assert_eq!(cfg.worker_threads, default_worker_threads());
    }

    #[test]
    fn worker_threads_come_from_flag_env_or_file_within_bounds() {
        let merged = |argv: &[&str], vars: &[(&str, &str)], toml: &str| {
            with_env(vars, || ServeConfig::merge(serve_args(argv), file(toml)))
        };
        let threads = |argv: &[&str], vars: &[(&str, &str)], toml: &str| {
            merged(argv, vars, toml).unwrap().worker_threads
        };
        let env = [("GODWIT_WORKER_THREADS", "3")];
        assert_eq!(
            threads(&["--worker-threads", "2"], &env, "worker_threads = 4"),
            2
        );
        assert_eq!(threads(&[], &env, "worker_threads = 4"), 3);
        assert_eq!(threads(&[], &[], "worker_threads = 4"), 4);
        assert_eq!(threads(&["--worker-threads", "1"], &[], ""), 1);
        assert_eq!(threads(&["--worker-threads", "256"], &[], ""), 256);
        for (argv, toml) in [
            (&["--worker-threads", "0"][..], ""),
            (&["--worker-threads", "257"][..], ""),
            (&[][..], "worker_threads = 0"),
        ] {
            let err = merged(argv, &[], toml).unwrap_err().to_string();
            assert!(
                err.contains("worker_threads must be between 1 and 256"),
                "{argv:?} {toml:?}: {err}"
            );
        }
        assert!(default_worker_threads() >= 1);
    }

    #[test]
    fn connection_limits_come_from_flag_env_or_file() {
        let toml = file(
            r#"
            max_connections = 7
            header_timeout_ms = 1
            body_timeout_ms = 2
            idle_timeout_ms = 3
            "#,
        );
        let cfg = with_env(
            &[
                ("GODWIT_MAX_CONNECTIONS", "8"),
                ("GODWIT_BODY_TIMEOUT_MS", "20"),
            ],
            || ServeConfig::merge(serve_args(&["--max-connections", "9"]), toml),
        )
        .unwrap();
        assert_eq!(cfg.max_connections, 9, "flag over env");
        assert_eq!(cfg.body_timeout, Duration::from_millis(20), "env over file");
        assert_eq!(cfg.header_timeout, Duration::from_millis(1), "file");
        assert_eq!(cfg.idle_timeout, Duration::from_millis(3), "file");
    }

    #[test]
    fn connection_limits_out_of_range_are_refused_with_their_key() {
        let cases: &[(&[&str], &str)] = &[
            (&["--max-connections", "0"], "max_connections"),
            (&["--max-connections", "1000001"], "max_connections"),
            (&["--header-timeout-ms", "0"], "header_timeout_ms"),
            (&["--body-timeout-ms", "86400001"], "body_timeout_ms"),
            (&["--idle-timeout-ms", "0"], "idle_timeout_ms"),
        ];
        for (argv, key) in cases {
            let err = with_env(&[], || {
                ServeConfig::merge(serve_args(argv), FileConfig::default())
            })
            .unwrap_err();
            assert!(err.to_string().contains(key), "{argv:?}: {err}");
        }
        let err = with_env(&[], || {
            ServeConfig::merge(serve_args(&[]), file("idle_timeout_ms = 0"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("idle_timeout_ms"), "{err}");
        // The largest values are allowed.
        let cfg = with_env(&[], || {
            let argv = [
                "--max-connections",
                "1000000",
                "--header-timeout-ms",
                "86400000",
            ];
            ServeConfig::merge(serve_args(&argv), FileConfig::default())
        })
        .unwrap();
        assert_eq!(cfg.max_connections, 1_000_000);
        assert_eq!(cfg.header_timeout, Duration::from_secs(86_400));
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let toml = file(
            r#"
            data_dir = "/from/file"
            http = "127.0.0.1:1001"
            redis = "off"
            fsync = "never"
            max_message_bytes = "2MiB"
            max_wait_ms = 5
            "#,
        );
        let cfg = with_env(
            &[
                ("GODWIT_HTTP", "127.0.0.1:2002"),
                ("GODWIT_FSYNC", "interval:50"),
            ],
            || ServeConfig::merge(serve_args(&["--fsync", "always"]), toml),
        )
        .unwrap();
        // Flag over env.
        assert_eq!(cfg.fsync, FsyncPolicy::Always);
        // Env over file.
        assert_eq!(cfg.http, Listen::On("127.0.0.1:2002".parse().unwrap()));
        // File over default.
        assert_eq!(cfg.data_dir, PathBuf::from("/from/file"));
        assert_eq!(cfg.redis, Listen::Off);
        assert_eq!(cfg.max_message_bytes, 2 << 20);
        assert_eq!(cfg.max_wait, Duration::from_millis(5));
        // Default where nothing is set.
        assert_eq!(cfg.memcache, Listen::On("127.0.0.1:22133".parse().unwrap()));
    }

    #[test]
    fn config_file_path_comes_from_flag_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("godwit.toml");
        std::fs::write(&path, "data_dir = \"/from/file\"\nsegment_bytes = 4096\n").unwrap();
        let path = path.to_str().unwrap();
        let cfg = with_env(&[("GODWIT_CONFIG", path)], || {
            ServeConfig::resolve(serve_args(&["--memcache", "off"]))
        })
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/from/file"));
        assert_eq!(cfg.segment_bytes, 4096);
        assert_eq!(cfg.memcache, Listen::Off);
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let err = with_env(&[], || {
            ServeConfig::merge(serve_args(&[]), file("fsync = \"sometimes\""))
        })
        .unwrap_err();
        assert!(err.to_string().contains("fsync"), "{err}");
        assert!(toml::from_str::<FileConfig>("no_such_key = 1").is_err());
        let _guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
        assert!(Cli::try_parse_from(["godwit", "serve", "--http", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["godwit", "serve", "--max-message-bytes", "1XB"]).is_err());
    }

    #[test]
    fn min_free_bytes_comes_from_flag_env_or_file_else_the_store_default() {
        let none = with_env(&[], || {
            ServeConfig::merge(serve_args(&[]), FileConfig::default())
        });
        assert_eq!(none.unwrap().min_free_bytes, None);
        let from_file = with_env(&[], || {
            ServeConfig::merge(serve_args(&[]), file("min_free_bytes = \"3MiB\""))
        });
        assert_eq!(from_file.unwrap().min_free_bytes, Some(3 << 20));
        let from_env = with_env(&[("GODWIT_MIN_FREE_BYTES", "2KiB")], || {
            ServeConfig::merge(serve_args(&[]), file("min_free_bytes = 5"))
        });
        assert_eq!(from_env.unwrap().min_free_bytes, Some(2048));
        let from_flag = with_env(&[("GODWIT_MIN_FREE_BYTES", "2KiB")], || {
            ServeConfig::merge(
                serve_args(&["--min-free-bytes", "1MiB"]),
                FileConfig::default(),
            )
        });
        assert_eq!(from_flag.unwrap().min_free_bytes, Some(1 << 20));
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("-1").is_err());
    }

    #[test]
    fn listen_parses_off_and_addresses() {
        assert_eq!("off".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!("OFF".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!(
            "[::1]:9".parse::<Listen>(),
            Ok(Listen::On("[::1]:9".parse().unwrap()))
        );
        assert!("127.0.0.1".parse::<Listen>().is_err());
    }

    #[test]
    fn dialect_listeners_are_off_unless_set_by_flag_env_or_file() {
        let cfg = with_env(&[], || {
            ServeConfig::merge(serve_args(&[]), FileConfig::default())
        })
        .unwrap();
        assert_eq!(cfg.httpmq_listen, Listen::Off);
        assert_eq!(cfg.queue_service_listen, Listen::Off);
        assert_eq!(cfg.queue_sample_listen, Listen::Off);
        assert_eq!(cfg.queue_service_wait, Duration::from_secs(30));

        let cfg = with_env(&[("GODWIT_QUEUE_SERVICE_LISTEN", "127.0.0.1:4001")], || {
            ServeConfig::merge(
                serve_args(&["--httpmq-listen", "127.0.0.1:4000"]),
                file("queue_sample_listen = \"127.0.0.1:4002\"\nqueue_service_wait_ms = 500"),
            )
        })
        .unwrap();
        assert_eq!(
            cfg.httpmq_listen,
            Listen::On("127.0.0.1:4000".parse().unwrap())
        );
        assert_eq!(
            cfg.queue_service_listen,
            Listen::On("127.0.0.1:4001".parse().unwrap())
        );
        assert_eq!(
            cfg.queue_sample_listen,
            Listen::On("127.0.0.1:4002".parse().unwrap())
        );
        assert_eq!(cfg.queue_service_wait, Duration::from_millis(500));

        let err = with_env(&[], || {
            ServeConfig::merge(
                serve_args(&["--queue-service-wait-ms", "0"]),
                FileConfig::default(),
            )
        })
        .unwrap_err();
        assert!(err.to_string().contains("queue_service_wait_ms"), "{err}");
    }

    #[test]
    fn queue_service_capacity_is_off_unless_set_by_flag_env_or_file() {
        let merge = |vars: &[(&str, &str)], argv: &[&str], toml: &str| {
            with_env(vars, || ServeConfig::merge(serve_args(argv), file(toml)))
        };
        assert_eq!(merge(&[], &[], "").unwrap().queue_service_capacity, None);
        let cfg = merge(&[], &["--queue-service-capacity", "10"], "").unwrap();
        assert_eq!(cfg.queue_service_capacity, Some(10));
        let cfg = merge(&[("GODWIT_QUEUE_SERVICE_CAPACITY", "7")], &[], "").unwrap();
        assert_eq!(cfg.queue_service_capacity, Some(7));
        let cfg = merge(&[], &[], "queue_service_capacity = 3").unwrap();
        assert_eq!(cfg.queue_service_capacity, Some(3));
        let err = merge(&[], &["--queue-service-capacity", "0"], "").unwrap_err();
        assert!(err.to_string().contains("queue_service_capacity"), "{err}");
    }
}
