//! A damaged log tail (garbage appended, bytes cut off, a byte flipped) is cut off on
//! restart: the server starts, serves every message before the damage, and goes on.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use common::{bodies, ids, newest_segment, TestServer};

const N: u64 = 50;

async fn filled_server(queue: &str) -> TestServer {
    let s = TestServer::start(&["--fsync", "always"]).await;
    for i in 1..=N {
        assert_eq!(s.push(queue, &format!("message {i}")).await, i);
    }
    s
}

fn expected_bodies(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.map(|i| format!("message {i}")).collect()
}

/// Asserts the queue holds messages 1..=N in order (or 1..=N-1 when the damaged tail may
/// have held message N), then that new pushes get ids above everything served.
async fn assert_recovered(s: &TestServer, queue: &str, last_may_be_lost: bool) {
    let got = s.drain(queue, 10 * N as usize).await;
    let got_ids = ids(&got);
    let full: Vec<u64> = (1..=N).collect();
    let without_last: Vec<u64> = (1..N).collect();
    if last_may_be_lost {
        assert!(
            got_ids == full || got_ids == without_last,
            "expected ids 1..={N} (the last may be lost), got {got_ids:?}"
        );
    } else {
        assert_eq!(got_ids, full);
    }
    assert_eq!(bodies(&got), expected_bodies(1..=got_ids.len() as u64));
    let max_served = got_ids.last().copied().unwrap_or(0);
    let next = s.push(queue, "after repair").await;
    assert!(next > max_served, "new id {next} not above {max_served}");
    let next2 = s.push(queue, "after repair 2").await;
    assert_eq!(next2, next + 1);
    assert_eq!(
        bodies(&s.take(queue, 10).await),
        vec!["after repair", "after repair 2"]
    );
}

fn append_garbage(seg: &Path) {
    let mut f = OpenOptions::new()
        .append(true)
        .open(seg)
        .expect("open segment");
    // Something that looks like a record header followed by junk, then plain noise.
    let mut junk = vec![0x10, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef];
    junk.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    f.write_all(&junk).expect("append garbage");
    f.sync_all().expect("sync");
}

fn truncate_tail(seg: &Path, cut: u64) {
    let f = OpenOptions::new()
        .write(true)
        .open(seg)
        .expect("open segment");
    let len = f.metadata().expect("metadata").len();
    assert!(len > cut, "segment {} is only {len} bytes", seg.display());
    f.set_len(len - cut).expect("truncate");
    f.sync_all().expect("sync");
}

fn flip_byte_near_end(seg: &Path, from_end: u64) {
    let mut bytes = std::fs::read(seg).expect("read segment");
    let len = bytes.len() as u64;
    assert!(
        len > from_end,
        "segment {} is only {len} bytes",
        seg.display()
    );
    let at = (len - from_end) as usize;
    bytes[at] ^= 0x5a;
    std::fs::write(seg, bytes).expect("write segment");
}

#[tokio::test]
async fn garbage_appended_after_sigterm_is_cut_off() {
    let mut s = filled_server("g1").await;
    let status = s.terminate().await;
    assert!(status.success(), "{status}");
    append_garbage(&newest_segment(&s.data_dir()));
    s.restart().await;
    assert_recovered(&s, "g1", false).await;
}

#[tokio::test]
async fn garbage_appended_after_sigkill_is_cut_off() {
    let mut s = filled_server("g2").await;
    s.kill9();
    append_garbage(&newest_segment(&s.data_dir()));
    s.restart().await;
    assert_recovered(&s, "g2", false).await;
    // And a second restart after the repair is clean too.
    s.kill9();
    s.restart().await;
    let got = s.drain("g2", 100).await;
    assert!(got.is_empty(), "everything was taken before: {got:?}");
}

#[tokio::test]
async fn truncated_tail_after_sigkill_is_cut_off() {
    let mut s = filled_server("t1").await;
    s.kill9();
    truncate_tail(&newest_segment(&s.data_dir()), 5);
    s.restart().await;
    assert_recovered(&s, "t1", true).await;
}

#[tokio::test]
async fn flipped_byte_in_the_last_record_is_detected() {
    let mut s = filled_server("f1").await;
    s.kill9();
    // Inside the last record (its body is near the end); a CRC must catch it rather than
    // serve an altered body.
    flip_byte_near_end(&newest_segment(&s.data_dir()), 3);
    s.restart().await;
    assert_recovered(&s, "f1", true).await;
}

#[tokio::test]
async fn a_torn_batch_is_all_or_nothing() {
    let mut s = TestServer::start(&["--fsync", "always"]).await;
    for i in 1..=10 {
        s.push("tb", &format!("single {i}")).await;
    }
    let batch: Vec<_> = (1..=20)
        .map(|i| serde_json::json!({ "body": format!("batched {i}") }))
        .collect();
    let r = s
        .post_json(
            "/v1/queues/tb/batch",
            &serde_json::json!({ "messages": batch }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    s.kill9();
    // Cut into the batch's bytes: the batch was the last thing written.
    truncate_tail(&newest_segment(&s.data_dir()), 40);
    s.restart().await;
    let got = s.drain("tb", 100).await;
    let n = got.len();
    assert!(
        n == 10 || n == 30,
        "a batch is atomic: expected 10 or 30 messages after a torn tail, got {n}: {:?}",
        ids(&got)
    );
    assert_eq!(ids(&got), (1..=n as u64).collect::<Vec<_>>());
    let next = s.push("tb", "after").await;
    assert!(next > n as u64);
}
