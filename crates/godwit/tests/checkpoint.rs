//! Restart after checkpoints: state rebuilt from a checkpoint plus the log tail matches
//! what was acknowledged, in order, and the checkpoint is what recovery started from
//! (only the tail after it is replayed).

mod common;

use std::time::Duration;

use common::{eventually, ids, log_field, TestServer};

/// How long the sweeper may take to write a due checkpoint (it looks every 100 ms).
const WAIT: Duration = Duration::from_secs(10);

/// The line the broker logs when recovery is done, with `replayed_groups=N`.
const RECOVERED: &str = "broker state recovered";

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

    // ~500 KB of log with a checkpoint due every 64 KiB: the sweeper writes one while
    // serving (not only at shutdown).
    let checkpoint = s.data_dir().join("checkpoint");
    eventually(WAIT, "a checkpoint written while serving", || async {
        checkpoint.is_file().then_some(())
    })
    .await;

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
    // 60 single pushes of 8 KB (480 KB), a checkpoint after them, then a crash:
    // recovery must start from that checkpoint and replay (almost) nothing of the 60.
    const TAIL_PUSHES: u64 = 60;
    let before = std::fs::read(&checkpoint).expect("read the checkpoint");
    let big = "t".repeat(8 * 1024);
    for _ in 0..TAIL_PUSHES {
        s.push("tail", &big).await;
    }
    eventually(WAIT, "a checkpoint after the tail pushes", || async {
        let now = std::fs::read(&checkpoint).unwrap_or_default();
        (!now.is_empty() && now != before).then_some(())
    })
    .await;
    // A checkpoint may have landed mid-way: give the sweeper (every 100 ms) time to
    // write the next one if the rest is due, so at most 64 KiB (8 pushes) stay behind.
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.kill9();
    s.restart().await;
    let replayed = log_field(&s.stderr(), RECOVERED, "replayed_groups").unwrap_or_else(|| {
        panic!(
            "no {RECOVERED:?} line with replayed_groups:\n{}",
            s.stderr()
        )
    });
    assert!(
        replayed <= TAIL_PUSHES / 3,
        "replayed {replayed} groups after {TAIL_PUSHES} pushes: checkpoints are not being \
         written (or not used)"
    );

    let got = s.drain("ck", 10_000).await;
    assert_eq!(ids(&got), (101..=total).collect::<Vec<_>>());
    for m in &got {
        let id = m["id"].as_u64().unwrap();
        assert_eq!(m["body"].as_str(), Some(body(id).as_str()), "body of {id}");
    }
    assert_eq!(s.drain("other", 1000).await.len(), 150);
    assert_eq!(s.drain("tail", 1000).await.len(), TAIL_PUSHES as usize);
    assert_eq!(s.push("ck", "tail").await, total + 1);
}
