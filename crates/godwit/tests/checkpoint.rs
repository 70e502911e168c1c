//! Restart after checkpoints: state rebuilt from a checkpoint plus the log tail matches
//! what was acknowledged, in order.

mod common;

use common::{ids, TestServer};

#[tokio::test]
async fn restart_after_several_checkpoints_keeps_everything_in_order() {
    let mut s = TestServer::start(&["--fsync", "never", "--checkpoint-bytes", "65536"]).await;
    let body = |i: u64| format!("{i:06}-{}", "c".repeat(490));
    // ~500 KB in batches and single pushes: several checkpoints' worth of log.
    // Each round: a batch of 49, then one single push.
    let mut next = 1u64;
    for _round in 0..20 {
        let batch: Vec<_> = (next..next + 49)
            .map(|i| serde_json::json!({ "body": body(i) }))
            .collect();
        let r = s
            .post_json(
                "/v1/queues/ck/batch",
                &serde_json::json!({ "messages": batch }),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        next += 49;
        assert_eq!(s.push("ck", &body(next)).await, next);
        next += 1;
    }
    let total = next - 1;
    // Consume the first 100 so checkpoints also carry removals, and lease 5 unacked.
    assert_eq!(ids(&s.take("ck", 100).await), (1..=100).collect::<Vec<_>>());
    let leased = s
        .post("/v1/queues/ck/lease?max=5&visibility_ms=60000")
        .await
        .messages();
    assert_eq!(ids(&leased), (101..=105).collect::<Vec<_>>());

    let status = s.terminate().await;
    assert!(status.success(), "{status}");
    s.restart().await;
    let stats = s.stats("ck").await;
    assert_eq!(stats["ready"].as_u64(), Some(total - 100), "{stats}");
    assert_eq!(stats["next_id"].as_u64(), Some(total + 1), "{stats}");

    // Cross a few more checkpoints, then crash rather than stop.
    for _ in 0..3 {
        let batch: Vec<_> = (0..50)
            .map(|_| serde_json::json!({ "body": "x".repeat(500) }))
            .collect();
        let r = s
            .post_json(
                "/v1/queues/other/batch",
                &serde_json::json!({ "messages": batch }),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    s.kill9();
    s.restart().await;

    let got = s.drain("ck", 10_000).await;
    assert_eq!(ids(&got), (101..=total).collect::<Vec<_>>());
    for m in &got {
        let id = m["id"].as_u64().unwrap();
        assert_eq!(m["body"].as_str(), Some(body(id).as_str()), "body of {id}");
    }
    assert_eq!(s.drain("other", 1000).await.len(), 150);
    assert_eq!(s.push("ck", "tail").await, total + 1);
}
