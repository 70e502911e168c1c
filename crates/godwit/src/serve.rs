//! `godwit serve`: open the store and the broker, serve the faces, shut down cleanly.
//!
//! Every listener runs on one [`Runtime`] (connection limit, timeouts, shutdown).
//! Shutdown on SIGTERM or SIGINT: stop accepting, end long-polls at once (they answer
//! with what they have), let in-flight requests finish (for at most [`DRAIN_TIMEOUT`]),
//! then stop the broker, which writes a final checkpoint and syncs the store, and exit 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use godwit_core::{Broker, BrokerConfig, SystemClock};
use godwit_http::{Dialect, Http, HttpOptions};
use godwit_store::{LogStore, StoreOptions};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

use crate::config::{Listen, ServeConfig};
use crate::server::http::{HttpFace, HttpTimeouts};
use crate::server::{Runtime, RuntimeLimits};

/// Longest time shutdown waits for in-flight connections before stopping the broker.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often histograms are folded and idle series dropped.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);
/// A queue's depth gauges disappear this long after the queue is gone.
const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Buckets of the fsync latency histogram, in seconds.
const FSYNC_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Buckets of the HTTP request latency histogram, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Runs the broker until SIGTERM or SIGINT.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    tracing::info!(
        data_dir = %config.data_dir.display(),
        fsync = ?config.fsync,
        max_message_bytes = config.max_message_bytes,
        worker_threads = config.worker_threads,
        "starting godwit {}",
        env!("CARGO_PKG_VERSION")
    );
    let metrics = install_metrics()?;

    let started = Instant::now();
    let store = LogStore::open(StoreOptions {
        dir: config.data_dir.clone(),
        fsync: config.fsync,
        segment_bytes: config.segment_bytes,
        min_free_bytes: config.min_free_bytes,
    })
    .with_context(|| format!("opening the store in {}", config.data_dir.display()))?;
    let broker_config = BrokerConfig {
        max_message_bytes: config.max_message_bytes,
        max_wait: config.max_wait,
        max_batch: config.max_batch,
        checkpoint_bytes: config.checkpoint_bytes,
        max_kv_bytes: config.max_kv_bytes,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(
        Arc::new(store),
        Arc::new(SystemClock),
        broker_config.clone(),
    )
    .context("recovering the broker from the store")?;
    tracing::info!(
        queues = broker.list().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "store open"
    );

    for (face, listen) in [("redis", config.redis), ("memcache", config.memcache)] {
        match listen {
            Listen::On(addr) => {
                tracing::info!(%addr, "{face} listener configured but not served yet")
            }
            Listen::Off => tracing::info!("{face} listener off"),
        }
    }

    let mut runtime = Runtime::new(RuntimeLimits {
        max_connections: config.max_connections,
        idle_timeout: config.idle_timeout,
        drain_timeout: DRAIN_TIMEOUT,
    });
    let served = serve_http(&mut runtime, &config, &broker, &broker_config, metrics).await;
    if served.is_ok() {
        let draining = broker.clone();
        runtime
            .run_until(async move {
                shutdown_signal().await;
                // Long-polls return at once instead of holding the drain for their wait.
                draining.stop_waiting();
            })
            .await;
    }

    tracing::info!("flushing the store");
    let closed = broker.shutdown().await.context("shutting down the broker");
    served?;
    closed?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the HTTP listeners: the main one and each dialect's own, those that are on.
async fn serve_http(
    runtime: &mut Runtime,
    config: &ServeConfig,
    broker: &Broker,
    broker_config: &BrokerConfig,
    metrics: PrometheusHandle,
) -> anyhow::Result<()> {
    let mut options = HttpOptions::new(broker_config, metrics);
    options.max_batch_body_bytes = config.max_batch_bytes;
    options.restmq = godwit_http::restmq::RestmqOptions {
        acl_file: config.restmq_acl.clone(),
        trust_proxy: config.restmq_trust_proxy,
        collectd: config.restmq_collectd,
    };
    options.queue_service.wait = config.queue_service_wait;
    options.queue_service.capacity = config.queue_service_capacity;
    godwit_http::queue_service::prepare(broker, &options.queue_service)
        .await
        .context("preparing queue_service's queue")?;
    let http = Http::new(broker.clone(), options).context("reading the RestMQ ACL file")?;
    let timeouts = HttpTimeouts {
        header: config.header_timeout,
        body: config.body_timeout,
    };
    match config.http {
        Listen::On(addr) => {
            let local = runtime
                .listen(addr, HttpFace::new(http.main(), timeouts))
                .await?;
            tracing::info!(
                max_connections = config.max_connections,
                "listening on http://{local}"
            );
        }
        Listen::Off => tracing::info!("HTTP listener off"),
    }
    for (dialect, listen) in [
        (Dialect::Httpmq, config.httpmq_listen),
        (Dialect::QueueService, config.queue_service_listen),
        (Dialect::QueueSample, config.queue_sample_listen),
    ] {
        if let Listen::On(addr) = listen {
            let face = HttpFace::new(http.dialect(dialect), timeouts);
            let local = runtime
                .listen(addr, face)
                .await
                .with_context(|| format!("listening for {} on {addr}", dialect.name()))?;
            tracing::info!("{} listening on http://{local}", dialect.name());
        }
    }
    Ok(())
}

/// Installs the global Prometheus recorder and starts its upkeep task.
fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("godwit_fsync_seconds".into()), FSYNC_BUCKETS)
        .context("configuring fsync histogram buckets")?
        .set_buckets_for_metric(
            Matcher::Full(godwit_http::metrics::HTTP_REQUEST_SECONDS.into()),
            REQUEST_BUCKETS,
        )
        .context("configuring request histogram buckets")?
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))
        .install_recorder()
        .context("installing the metrics recorder")?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received; shutting down"),
        _ = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}
