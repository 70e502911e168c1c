//! Router-level checks with `oneshot` over a real broker in a temp dir: status codes and
//! the JSON error shape at the edges (the end-to-end suite covers the rest over HTTP).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use godwit_core::{Broker, BrokerConfig, SystemClock};
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::{json, Value};
use tower::ServiceExt;

use std::collections::BTreeSet;

use axum::routing::get;

use super::openapi;
use crate::{route, AppState, HttpOptions};

struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

fn app_with(config: BrokerConfig) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path());
    opts.fsync = FsyncPolicy::Never;
    let store = LogStore::open(opts).unwrap();
    let broker = Broker::open(Arc::new(store), Arc::new(SystemClock), config.clone()).unwrap();
    let handle = PrometheusBuilder::new().build_recorder().handle();
    TestApp {
        router: crate::router(broker, HttpOptions::new(&config, handle)).unwrap(),
        _dir: dir,
    }
}

fn app() -> TestApp {
    app_with(BrokerConfig::default())
}

impl TestApp {
    async fn call(&self, method: Method, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(body.into())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn push_take_round_trip() {
    let app = app();
    let (status, v) = app
        .call(Method::POST, "/v1/queues/jobs/messages?priority=7", "hello")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The store runs with `--fsync never`: the reply says the push is not on disk yet.
    assert_eq!(
        v,
        json!({"queue": "jobs", "id": 1, "length": 1, "durable": false})
    );
    // Asking for more than the policy forces an fsync, and the reply says so.
    let (_, v) = app
        .call(
            Method::POST,
            "/v1/queues/jobs/messages?durability=fsync",
            "synced",
        )
        .await;
    assert_eq!(
        v,
        json!({"queue": "jobs", "id": 2, "length": 2, "durable": true})
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/jobs/take?max=2", Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["messages"][0]["body"], "hello");
    assert_eq!(v["messages"][1]["body"], "synced");
    assert_eq!(v["messages"][0]["priority"], 7);
}

/// (Outside `/v1` an unknown path is RestMQ's 404 page: `crates/godwit/tests/restmq.rs`.)
#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = app();
    let (status, v) = app.call(Method::GET, "/v1/nope", Body::empty()).await;
    assert_eq!((status, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, v) = app
        .call(Method::GET, "/v1/queues/jobs/messages", Body::empty())
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (status, v) = app.call(Method::POST, "/v1/queues//messages", "x").await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_name")
    );
}

#[tokio::test]
async fn bad_names_queries_and_json_are_400() {
    let app = app();
    let long = "x".repeat(256);
    let (status, v) = app
        .call(Method::POST, &format!("/v1/queues/{long}/messages"), "x")
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_name")
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/a%0Ab/messages", "x")
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_name")
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/messages?priority=10", "x")
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_argument")
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/messages?priority=abc", "x")
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/take?max=0", Body::empty())
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_argument")
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/take?max=1001", Body::empty())
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_argument")
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/ack", "{not json")
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/batch", r#"{"messages": []}"#)
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_argument")
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_json() {
    let app = app_with(BrokerConfig {
        max_message_bytes: 1024,
        ..BrokerConfig::default()
    });
    // Over the message limit but within the request limit: refused by the message check.
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/messages", vec![b'x'; 2048])
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    // Over the request limit: refused while reading the body.
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/messages", vec![b'x'; 200_000])
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let app = app();
    let bad = json!({"messages": [{"body": "a"}, {"body": "b", "priority": 12}]});
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/batch", bad.to_string())
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_argument")
    );
    let good = json!({"messages": [{"body": "a"}, {"body_base64": "/wA="}]});
    let (status, v) = app
        .call(Method::POST, "/v1/queues/q/batch", good.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v["ids"], json!([1, 2]));
    let (_, v) = app
        .call(Method::GET, "/v1/queues/q/peek?max=5", Body::empty())
        .await;
    assert_eq!(v["messages"][1]["body_base64"], "/wA=");
}

#[tokio::test]
async fn metrics_label_requests_by_route_template() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = StoreOptions::new(dir.path());
    opts.fsync = FsyncPolicy::Never;
    let store = LogStore::open(opts).unwrap();
    let config = BrokerConfig::default();
    let broker = Broker::open(Arc::new(store), Arc::new(SystemClock), config.clone()).unwrap();
    let router = crate::router(broker, HttpOptions::new(&config, handle.clone())).unwrap();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let req = Request::post("/v1/queues/jobs/messages")
        .body(Body::from("x"))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(r#"route="/v1/queues/{queue}/messages""#),
        "{text}"
    );
    assert!(
        !text.contains(r#"route="/v1/queues/jobs/messages""#),
        "{text}"
    );
    assert!(
        text.contains(r#"godwit_queue_ready{queue="jobs"} 1"#),
        "{text}"
    );
}

/// A state like the one [`crate::router`] builds, for checks on the parts.
fn state(dir: &tempfile::TempDir) -> AppState {
    let mut opts = StoreOptions::new(dir.path());
    opts.fsync = FsyncPolicy::Never;
    let store = LogStore::open(opts).unwrap();
    let config = BrokerConfig::default();
    let broker = Broker::open(Arc::new(store), Arc::new(SystemClock), config.clone()).unwrap();
    let handle = PrometheusBuilder::new().build_recorder().handle();
    AppState::new(
        broker,
        HttpOptions::new(&config, handle),
        openapi::json(&config).into(),
        crate::restmq::Restmq::new(&Default::default()).unwrap(),
    )
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let mut served = route::operations(&super::routes::table(&state));
    served.extend(route::operations(&crate::ops::table()));
    let app = app();
    let (status, v) = app
        .call(Method::GET, "/v1/openapi.json", Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    let documented: BTreeSet<(String, String)> = v["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not documented: {undocumented:?}"
    );
    assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
    // Every documented operation is routed: it answers neither a routing 404 nor a 405.
    for (method, path) in &documented {
        let uri = path
            .replace("{queue}", "q")
            .replace("{name}", "s")
            .replace("{key}", "k");
        if uri.ends_with("/events") {
            // An event stream never ends by itself: tested with real clients in
            // crates/godwit/tests/streams.rs.
            continue;
        }
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let (status, v) = app.call(method.clone(), &uri, Body::empty()).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.starts_with("no route"), "{method} {uri}: {v}");
    }
}

#[tokio::test]
async fn every_documented_status_is_one_the_route_can_answer() {
    let app = app();
    let (_, v) = app
        .call(Method::GET, "/v1/openapi.json", Body::empty())
        .await;
    let statuses = |path: &str, method: &str| -> BTreeSet<String> {
        v["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} undocumented"))
            .keys()
            .cloned()
            .collect()
    };
    let set = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    let push = set(&["200", "201", "400", "404", "409", "413", "503", "507"]);
    assert_eq!(statuses("/v1/queues/{queue}/messages", "post"), push);
    assert_eq!(statuses("/v1/queues/{queue}/batch", "post"), push);
    assert_eq!(
        statuses("/v1/queues/{queue}", "get"),
        set(&["200", "400", "404", "503"])
    );
    assert_eq!(
        statuses("/v1/queues/{queue}/ack", "post"),
        set(&["200", "400", "413", "503"])
    );
    assert_eq!(statuses("/healthz", "get"), set(&["200", "503"]));
    let retry = &v["paths"]["/v1/queues/{queue}/messages"]["post"]["responses"]["507"]["headers"];
    assert!(retry.get("Retry-After").is_some(), "{retry}");
}

#[tokio::test]
async fn healthz_answers_503_once_the_broker_is_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    let broker = state.broker.clone();
    let router = crate::ops::router().with_state(state);
    let get = || Request::get("/healthz").body(Body::empty()).unwrap();
    let resp = router.clone().oneshot(get()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    broker.shutdown().await.unwrap();
    let resp = router.oneshot(get()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v, json!({"status": "unavailable"}));
}

#[tokio::test]
async fn the_json_error_net_covers_native_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(&dir);
    // A sibling dialect with its own (plain-text) error replies, merged beside native.
    let router = Router::new()
        .merge(super::router(&state))
        .route(
            "/plain",
            get(|| async { (StatusCode::BAD_REQUEST, "plain words") }),
        )
        .with_state(state);
    let resp = router
        .oneshot(Request::get("/plain").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let bytes = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    assert_eq!(&bytes[..], b"plain words");
}
