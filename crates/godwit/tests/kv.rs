//! The key/value namespace over real HTTP against the real binary: values, versions and
//! compare-and-swap, TTLs, counters, appends, multi-get, scans and flush, the namespace
//! queues share, with their bad inputs; and `kill -9` under concurrent writers proving
//! that nothing acknowledged is lost and no stale value comes back.

mod common;

use common::*;
use serde_json::{json, Value};

async fn put(s: &TestServer, key: &str, query: &str, value: &[u8]) -> Reply {
    s.request(
        reqwest::Method::PUT,
        &format!("/v1/kv/{key}{query}"),
        Some((value.to_vec(), "application/octet-stream")),
    )
    .await
}

#[tokio::test]
async fn values_round_trip_with_versions_flags_and_conditions() {
    let mut s = TestServer::start(&[]).await;
    let r = put(&s, "greeting", "?flags=9", b"hello").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["durable"], true, "{r:?}");
    let v1 = r.json["version"].as_u64().unwrap();
    assert!(r.json.get("old").is_none());

    let got = s.client.get(s.url("/v1/kv/greeting")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["x-godwit-version"], v1.to_string().as_str());
    assert_eq!(got.headers()["x-godwit-flags"], "9");
    assert_eq!(got.headers()["etag"], format!("\"{v1}\"").as_str());
    assert!(got.headers().get("x-godwit-expires-at-ms").is_none());
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"hello");

    // Conditions: if_absent, if_present, if_version (stale, then current).
    put(&s, "greeting", "?if_absent=true", b"x")
        .await
        .assert_error(412, "exists");
    put(&s, "nobody", "?if_present=true", b"x")
        .await
        .assert_error(404, "not_found");
    let r = put(&s, "greeting", "", b"hi").await;
    let v2 = r.json["version"].as_u64().unwrap();
    assert!(v2 > v1);
    assert_eq!(r.json["old"]["value"], "hello", "{r:?}");
    put(&s, "greeting", &format!("?if_version={v1}"), b"x")
        .await
        .assert_error(412, "version_mismatch");
    let r = put(&s, "greeting", &format!("?if_version={v2}"), &[0xff, 0x00]).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Binary values are base64 in JSON replies.
    let r = s
        .post_json("/v1/kv", &json!({"keys": ["greeting", "nobody"]}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json["values"][0]["value_base64"], "/wA=");
    assert_eq!(r.json["values"][1], Value::Null);

    // After kill -9 the value and its version are there; a new write gets a new one.
    let before = s.get("/v1/kv/greeting").await;
    s.kill9();
    s.restart().await;
    let after = s.client.get(s.url("/v1/kv/greeting")).send().await.unwrap();
    assert_eq!(
        after.headers()["x-godwit-version"].to_str().unwrap(),
        (v2 + 1).to_string(),
        "{before:?}"
    );
    assert_eq!(after.bytes().await.unwrap().as_ref(), &[0xff, 0x00]);
    let r = put(&s, "other", "", b"o").await;
    assert!(r.json["version"].as_u64().unwrap() > v2 + 1);

    s.delete("/v1/kv/greeting").await;
    s.get("/v1/kv/greeting")
        .await
        .assert_error(404, "not_found");
    s.delete("/v1/kv/greeting")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn ttls_counters_appends_scans_and_flush() {
    let mut s = TestServer::start(&[]).await;
    let r = put(&s, "session", "?ttl_ms=60000", b"token").await;
    assert_eq!(r.status, 200, "{r:?}");
    let ttl = s.get("/v1/kv/session/ttl").await;
    let left = ttl.json["ttl_ms"].as_u64().unwrap();
    assert!((59_000..=60_000).contains(&left), "{ttl:?}");
    let r = s
        .put_json("/v1/kv/session/ttl", &json!({"ttl_ms": null}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        s.get("/v1/kv/session/ttl").await.json["ttl_ms"],
        Value::Null
    );
    let r = put(&s, "brief", "?ttl_ms=150", b"x").await;
    assert_eq!(r.status, 200, "{r:?}");
    eventually(
        std::time::Duration::from_secs(5),
        "the brief key expires",
        || async { (s.get("/v1/kv/brief").await.status == 404).then_some(()) },
    )
    .await;

    for by in [5, -2] {
        s.post_json("/v1/kv/hits/incr", &json!({"by": by})).await;
    }
    let r = s.post_json("/v1/kv/hits/incr", &json!({})).await;
    assert_eq!(r.json["value"], 4, "{r:?}");
    s.post_json("/v1/kv/session/incr", &json!({"by": 1}))
        .await
        .assert_error(409, "not_an_integer");
    put(&s, "max", "", i64::MAX.to_string().as_bytes()).await;
    s.post_json("/v1/kv/max/incr", &json!({"by": 1}))
        .await
        .assert_error(409, "overflow");
    s.post_json("/v1/kv/hits/incr", &json!({"by": 1.5}))
        .await
        .assert_error(400, "invalid_json");

    async fn append(s: &TestServer, query: &str, data: &[u8]) -> Reply {
        s.request(
            reqwest::Method::POST,
            &format!("/v1/kv/log/append{query}"),
            Some((data.to_vec(), "application/octet-stream")),
        )
        .await
    }
    append(&s, "?must_exist=true", b"x")
        .await
        .assert_error(404, "not_found");
    append(&s, "", b"mid").await;
    append(&s, "", b"-end").await;
    let r = append(&s, "?front=true", b"start-").await;
    assert_eq!(r.json["length"], 13, "{r:?}");

    for i in 0..12 {
        put(&s, &format!("user:{i:02}"), "", b"u").await;
    }
    let mut keys = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let after = next
            .as_ref()
            .map(|n| format!("&after={n}"))
            .unwrap_or_default();
        let page = s
            .get(&format!(
                "/v1/kv?prefix=user:&pattern=*[02468]&limit=5{after}"
            ))
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        keys.extend(
            page.json["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
        match page.json["next"].as_str() {
            Some(n) => next = Some(n.to_string()),
            None => break,
        }
    }
    let even: Vec<String> = (0..12).step_by(2).map(|i| format!("user:{i:02}")).collect();
    assert_eq!(keys, even);
    s.get("/v1/kv?limit=0")
        .await
        .assert_error(400, "invalid_argument");
    s.get("/v1/kv?limit=1001")
        .await
        .assert_error(400, "invalid_argument");

    s.kill9();
    s.restart().await;
    assert_eq!(s.get("/v1/kv/log").await.text, "start-mid-end");
    assert_eq!(s.get("/v1/kv/hits").await.text, "4");
    assert_eq!(
        s.get("/v1/kv/session/ttl").await.json["ttl_ms"],
        Value::Null
    );
    let totals = s.get("/v1/stats").await;
    assert_eq!(totals.json["kv_keys"], 16, "{totals:?}");
    assert!(
        totals.json["kv_bytes"].as_u64().unwrap() > 16 * 64,
        "{totals:?}"
    );
    let r = s.delete("/v1/kv").await;
    assert_eq!(r.json["deleted"], 16, "{r:?}");
    assert_eq!(s.get("/v1/stats").await.json["kv_bytes"], 0);
    assert_eq!(s.get("/v1/kv").await.json["keys"], json!([]));
}

#[tokio::test]
async fn queues_and_keys_share_names_and_bad_inputs_are_refused() {
    let s = TestServer::start(&["--max-message-bytes", "1000", "--max-kv-bytes", "4000"]).await;
    s.push("jobs", "x").await;
    put(&s, "jobs", "", b"v")
        .await
        .assert_error(409, "wrong_type");
    s.get("/v1/kv/jobs").await.assert_error(409, "wrong_type");
    s.post_json("/v1/kv/jobs/incr", &json!({"by": 1}))
        .await
        .assert_error(409, "wrong_type");
    put(&s, "config", "", b"v").await;
    s.push_raw("config", "", b"m")
        .await
        .assert_error(409, "wrong_type");
    s.post("/v1/queues/config")
        .await
        .assert_error(409, "wrong_type");

    put(&s, "big", "", &vec![b'x'; 1001])
        .await
        .assert_error(413, "too_large");
    for i in 0..3 {
        let r = put(&s, &format!("fill{i}"), "", &vec![b'x'; 1000]).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    put(&s, "fill3", "", &vec![b'x'; 1000])
        .await
        .assert_error(507, "kv_full");
    // Shrinking always works.
    assert_eq!(put(&s, "fill0", "", b"small").await.status, 200);

    put(&s, "k", "?ttl_ms=0", b"v")
        .await
        .assert_error(400, "invalid_argument");
    put(&s, "k", "?ttl_ms=18446744073709551615", b"v")
        .await
        .assert_error(400, "invalid_argument");
    put(&s, "k", "?ttl_ms=5&keep_ttl=true", b"v")
        .await
        .assert_error(400, "invalid_argument");
    put(&s, "k", "?if_absent=true&if_version=3", b"v")
        .await
        .assert_error(400, "invalid_argument");
    put(&s, "k", "?if_version=-1", b"v")
        .await
        .assert_error(400, "invalid_query");
    put(&s, "k", "?if_version=99999999999999999999", b"v")
        .await
        .assert_error(400, "invalid_query");
    put(&s, "k", "?flags=4294967296", b"v")
        .await
        .assert_error(400, "invalid_query");
    put(&s, "k", "?bogus=1", b"v")
        .await
        .assert_error(400, "invalid_query");
    put(&s, &"k".repeat(256), "", b"v")
        .await
        .assert_error(400, "invalid_name");
    put(&s, "a%0Ab", "", b"v")
        .await
        .assert_error(400, "invalid_name");
    s.post_json("/v1/kv", &json!({"keys": []}))
        .await
        .assert_error(400, "invalid_argument");
    s.post_json("/v1/kv", &json!({"keys": "a"}))
        .await
        .assert_error(400, "invalid_json");
    s.put_json("/v1/kv/config/ttl", &json!({"ttl_ms": 0}))
        .await
        .assert_error(400, "invalid_argument");
    s.put_json("/v1/kv/none/ttl", &json!({"ttl_ms": 10}))
        .await
        .assert_error(404, "not_found");
    s.assert_still_serving().await;
}

/// Writers on their own keys (sets with rising values, increments, deletes), `kill -9`
/// among them, then a restart: every key holds its last acknowledged value, or the
/// value of the one write that was in flight when the server died — never an older
/// one.
#[tokio::test]
async fn no_acknowledged_write_is_lost_and_no_stale_value_returns_after_kill9() {
    let mut s = TestServer::start(&[]).await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let client = client.clone();
        let base = s.url("/v1/kv");
        tasks.push(tokio::spawn(async move {
            // Per key: the last acknowledged value (None: deleted) and the value of a
            // write in flight when the server went away.
            let mut acked: Vec<(String, Option<String>, Option<Option<String>>)> = Vec::new();
            for k in 0..4 {
                acked.push((format!("w{t}-{k}"), None, None));
            }
            for i in 0..u32::MAX {
                let slot = (i % 4) as usize;
                let key = acked[slot].0.clone();
                let url = format!("{base}/{key}");
                let (request, value) = match i % 9 {
                    8 => (client.delete(&url), None),
                    7 => (
                        client.post(format!("{url}/incr")).json(&json!({"by": 1})),
                        None,
                    ),
                    _ => {
                        let v = format!("{i}");
                        (client.put(&url).body(v.clone()), Some(v))
                    }
                };
                let is_incr = i % 9 == 7;
                let Ok(r) = request.send().await else {
                    acked[slot].2 = Some(value);
                    break;
                };
                let status = r.status().as_u16();
                let Ok(body) = r.text().await else {
                    acked[slot].2 = Some(value);
                    break;
                };
                if is_incr {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    acked[slot].1 = Some(v["value"].to_string());
                } else if value.is_some() {
                    assert_eq!(status, 200, "{body}");
                    acked[slot].1 = value;
                } else {
                    assert!(status == 204 || status == 404, "{status} {body}");
                    acked[slot].1 = None;
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.kill9();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    s.restart().await;
    let mut in_flight = 0;
    for (key, acked, pending) in &all {
        let r = s.get(&format!("/v1/kv/{key}")).await;
        let now = (r.status == 200).then(|| r.text.clone());
        let ok = now == *acked
            || match pending {
                // A set or delete in flight may have landed.
                Some(Some(v)) => now.as_deref() == Some(v.as_str()),
                Some(None) => {
                    now.is_none()
                        || now.as_deref().and_then(|n| n.parse::<i64>().ok())
                            == Some(acked.as_deref().and_then(|a| a.parse().ok()).unwrap_or(0) + 1)
                }
                None => false,
            };
        assert!(
            ok,
            "{key}: acknowledged {acked:?}, in flight {pending:?}, found {now:?}"
        );
        in_flight += usize::from(pending.is_some());
    }
    assert!(
        in_flight > 0,
        "the kill landed while requests were in flight"
    );
}
