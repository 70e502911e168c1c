//! The failed-store and disk-full paths over real HTTP: the router served by
//! `axum::serve` on a loopback port, a broker over the core's fault-injecting store,
//! and a `reqwest` client. What a client sees when the disk dies or fills, and that
//! nothing acknowledged before is lost.

use std::sync::Arc;
use std::time::Duration;

use godwit_core::storage::faulty::FaultyStorage;
use godwit_core::storage::memory::MemoryStorage;
use godwit_core::{Broker, BrokerConfig, ReadOptions, Storage, SystemClock};
use godwit_http::HttpOptions;
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::{json, Value};

/// A router over `broker`, served on 127.0.0.1:0 until the test ends.
struct Served {
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(broker: Broker) -> Served {
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let router =
            godwit_http::router(broker.clone(), HttpOptions::new(broker.config(), handle)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Served {
            base: format!("http://{addr}"),
            client,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; the status, headers and body, or the error of reading the body
    /// (a reply cut before its end). A connection closed before any reply is status 0
    /// with an error body.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Result<Value, String>) {
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) if e.is_request() => {
                return (
                    0,
                    reqwest::header::HeaderMap::new(),
                    Err(format!("cut: {e}")),
                );
            }
            Err(e) => panic!("request failed: {e}"),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes))),
            Err(e) => Err(format!("body cut: {e}")),
        };
        (status, headers, body)
    }

    async fn push(&self, queue: &str, body: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let req = self
            .client
            .post(self.url(&format!("/v1/queues/{queue}/messages")))
            .body(body.to_string());
        let (status, headers, body) = self.send(req).await;
        (status, headers, body.expect("a push reply is plain JSON"))
    }

    async fn post(&self, path: &str) -> (u16, Result<Value, String>) {
        let (status, _, body) = self.send(self.client.post(self.url(path))).await;
        (status, body)
    }

    async fn healthz(&self) -> (u16, Value) {
        let (status, _, body) = self.send(self.client.get(self.url("/healthz"))).await;
        (status, body.expect("healthz is JSON"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bodies(reply: &Value) -> Vec<String> {
    reply["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {reply}"))
        .iter()
        .map(|m| m["body"].as_str().expect("text body").to_string())
        .collect()
}

fn open(storage: Arc<dyn Storage>) -> Broker {
    Broker::open(storage, Arc::new(SystemClock), BrokerConfig::default()).expect("open broker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_syncs_answer_503_stay_unhealthy_and_lose_nothing_acknowledged() {
    let inner = Arc::new(MemoryStorage::new(1 << 20));
    let faulty = Arc::new(FaultyStorage::new(inner.clone()));
    let server = Served::start(open(faulty.clone())).await;

    let mut acked = Vec::new();
    for i in 0..20 {
        let body = format!("m{i}");
        let (status, _, reply) = server.push("jobs", &body).await;
        assert_eq!(status, 201, "{reply}");
        acked.push(body);
    }
    // Five taken from complete replies: their removal is durable and final.
    let (status, reply) = server.post("/v1/queues/jobs/take?max=5").await;
    assert_eq!(status, 200);
    let taken = bodies(&reply.expect("complete take reply"));
    assert_eq!(taken, acked[..5].to_vec());
    assert_eq!(server.healthz().await, (200, json!({"status": "ok"})));

    faulty.fail_syncs(true);
    for i in 0..3 {
        let (status, _, reply) = server.push("jobs", &format!("late{i}")).await;
        assert_eq!(status, 503, "push after a failed sync: {reply}");
        let code = reply["error"]["code"].as_str().unwrap_or("");
        assert!(
            code == "storage_error" || code == "unavailable",
            "push after a failed sync: {reply}"
        );
        assert!(reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // A take answers 503: the broker knows its store failed and hands nothing out that
    // it could not confirm.
    for _ in 0..3 {
        let (status, reply) = server.post("/v1/queues/jobs/take?max=3").await;
        let v = reply.expect("a complete 503 reply");
        assert_eq!(status, 503, "{v}");
        assert!(
            matches!(
                v["error"]["code"].as_str(),
                Some("storage_error" | "unavailable")
            ),
            "{v}"
        );
    }
    // Unhealthy, and it stays so.
    for _ in 0..5 {
        assert_eq!(
            server.healthz().await,
            (503, json!({"status": "unavailable"}))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A new broker over the inner store holds every acknowledged push not taken, once.
    let reopened = open(inner.clone());
    let left = reopened
        .take(
            "jobs",
            ReadOptions {
                max: 100,
                ..ReadOptions::default()
            },
        )
        .await
        .expect("take after reopen")
        .into_messages()
        .await
        .expect("confirm after reopen");
    let left: Vec<String> = left
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(left, acked[5..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_is_sticky_even_once_the_disk_recovers() {
    let inner = Arc::new(MemoryStorage::new(1 << 20));
    let faulty = Arc::new(FaultyStorage::new(inner.clone()));
    let server = Served::start(open(faulty.clone())).await;
    let (status, _, _) = server.push("jobs", "before").await;
    assert_eq!(status, 201);

    faulty.fail_appends(true);
    let (status, _, reply) = server.push("jobs", "during").await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"]["code"], "storage_error", "{reply}");
    faulty.fail_appends(false);
    // The broker refuses writes until a restart: it cannot know what reached the disk.
    assert_eq!(
        server.healthz().await,
        (503, json!({"status": "unavailable"}))
    );
    let (status, _, reply) = server.push("jobs", "after").await;
    assert_eq!(status, 503, "{reply}");

    let reopened = open(inner.clone());
    let left = reopened
        .take(
            "jobs",
            ReadOptions {
                max: 10,
                ..ReadOptions::default()
            },
        )
        .await
        .expect("take after reopen")
        .into_messages()
        .await
        .expect("confirm after reopen");
    assert_eq!(left.len(), 1);
    assert_eq!(&left[0].body[..], b"before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_to_pushes_only_and_recovers_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = StoreOptions::new(dir.path());
    opts.fsync = FsyncPolicy::Always;
    let store: Arc<dyn Storage> = Arc::new(LogStore::open(opts).expect("open store"));
    let faulty = Arc::new(FaultyStorage::new(store));
    let server = Served::start(open(faulty.clone())).await;
    for i in 0..4 {
        let (status, _, reply) = server.push("jobs", &format!("m{i}")).await;
        assert_eq!(status, 201, "{reply}");
    }

    faulty.disk_full(true);
    let (status, headers, reply) = server.push("jobs", "refused").await;
    assert_eq!(status, 507, "{reply}");
    assert_eq!(reply["error"]["code"], "disk_full", "{reply}");
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "{headers:?}"
    );
    let batch = server
        .client
        .post(server.url("/v1/queues/jobs/batch"))
        .json(&json!({"messages": [{"body": "b1"}]}))
        .send()
        .await
        .expect("batch");
    assert_eq!(batch.status().as_u16(), 507, "batch push while full");
    assert_eq!(server.healthz().await, (200, json!({"status": "ok"})));

    // Takes, leases and acks free space, so they go on.
    let (status, reply) = server.post("/v1/queues/jobs/take?max=2").await;
    assert_eq!(status, 200);
    assert_eq!(bodies(&reply.expect("complete take")), vec!["m0", "m1"]);
    let (status, reply) = server
        .post("/v1/queues/jobs/lease?max=1&visibility_ms=60000")
        .await;
    assert_eq!(status, 200);
    let leased = reply.expect("complete lease");
    assert_eq!(bodies(&leased), vec!["m2"]);
    let ack = server
        .client
        .post(server.url("/v1/queues/jobs/ack"))
        .json(&json!({"receipts": [leased["messages"][0]["receipt"]]}))
        .send()
        .await
        .expect("ack");
    assert_eq!(ack.status().as_u16(), 200);
    assert_eq!(
        ack.json::<Value>().await.expect("ack json"),
        json!({"acked": 1})
    );
    assert_eq!(server.healthz().await, (200, json!({"status": "ok"})));

    faulty.disk_full(false);
    let (status, _, reply) = server.push("jobs", "m4").await;
    assert_eq!(status, 201, "{reply}");
    let (status, reply) = server.post("/v1/queues/jobs/take?max=10").await;
    assert_eq!(status, 200);
    assert_eq!(bodies(&reply.expect("complete take")), vec!["m3", "m4"]);
}
