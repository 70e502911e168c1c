//! A full disk refuses pushes and nothing else, and pushes resume once reclamation frees
//! space, without a restart: the real binary on a real 4 MiB tmpfs (needs root to
//! mount; skipped with a message otherwise).
//!
//! With `--segment-bytes 256KiB` the watermark (`--min-free-bytes`, default twice the
//! segment size) is 512 KiB: pushes are refused (507 `disk_full`) while less is free,
//! takes and acks go on and let a checkpoint delete the consumed segments.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{eventually, files_with_suffix, ids, TestServer};
use serde_json::json;

const BODY: usize = 16 * 1024;
/// Messages left unconsumed, to be found again after `kill -9`.
const KEEP: usize = 5;
/// Messages leased and acked (the rest are taken).
const ACKED: usize = 10;

/// A tmpfs mounted on a temporary directory, unmounted on drop (after the server, which
/// is declared later and so dropped first).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn body(id: u64) -> String {
    format!("{id:0>width$}", width = BODY)
}

#[tokio::test]
async fn a_full_disk_refuses_pushes_until_reclamation_frees_space() {
    let Some(fs) = Tmpfs::mount("4m") else {
        eprintln!("skipped: cannot mount tmpfs (needs root)");
        return;
    };
    // Ballast that stays: the log must fit in what is left, refusals included.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 512 * 1024]).expect("write ballast");
    let mut s = TestServer::start_in(
        fs.path(),
        &["--segment-bytes", "256KiB", "--checkpoint-bytes", "64KiB"],
    )
    .await;

    // Push until refused.
    let mut acked: Vec<u64> = Vec::new();
    let refusal = loop {
        let next = acked.len() as u64 + 1;
        let reply = s.push_raw("jobs", "", body(next).as_bytes()).await;
        if reply.status != 201 {
            break reply;
        }
        assert_eq!(reply.json["id"], next, "{reply:?}");
        acked.push(next);
        assert!(acked.len() < 1000, "the 4 MiB tmpfs never filled");
    };
    assert!(
        acked.len() > ACKED + KEEP,
        "only {} pushes fit",
        acked.len()
    );

    // The core maps the store's low-space signal to `Error::DiskFull`: 507 with
    // `Retry-After`, and the broker stays healthy.
    refusal.assert_error(507, "disk_full");
    // Still refused once the free-space reading is fresh, and the server is healthy.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = s.push_raw("jobs", "", b"x").await;
    again.assert_error(507, "disk_full");
    let raw = s
        .client
        .post(s.url("/v1/queues/jobs/messages"))
        .body("x")
        .send()
        .await
        .expect("push while full");
    assert_eq!(raw.status().as_u16(), 507);
    assert_eq!(
        raw.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "507 without Retry-After: {:?}",
        raw.headers()
    );
    assert_eq!(s.get("/healthz").await.status, 200);
    let full_segments = files_with_suffix(&s.data_dir(), ".seg");

    // Takes and acks drain.
    let leased = s
        .post(&format!(
            "/v1/queues/jobs/lease?max={ACKED}&visibility_ms=60000"
        ))
        .await
        .messages();
    assert_eq!(ids(&leased), acked[..ACKED].to_vec());
    let receipts: Vec<&str> = leased
        .iter()
        .map(|m| m["receipt"].as_str().expect("receipt"))
        .collect();
    let ack = s
        .post_json("/v1/queues/jobs/ack", &json!({ "receipts": receipts }))
        .await;
    assert_eq!(ack.json, json!({ "acked": ACKED }), "{ack:?}");
    let mut taken = Vec::new();
    while taken.len() < acked.len() - ACKED - KEEP {
        let max = (acked.len() - ACKED - KEEP - taken.len()).min(100);
        let batch = s.take("jobs", max).await;
        assert!(!batch.is_empty(), "take returned nothing");
        taken.extend(ids(&batch));
    }
    assert_eq!(taken, acked[ACKED..acked.len() - KEEP].to_vec());

    // Reclamation (a checkpoint deleting consumed segments) frees space; pushes resume.
    let resumed = eventually(
        Duration::from_secs(60),
        "a push accepted after reclamation",
        || async {
            let next = acked.len() as u64 + 1;
            let reply = s.push_raw("jobs", "", body(next).as_bytes()).await;
            match reply.status {
                201 => Some(reply.json["id"].as_u64().expect("id")),
                507 => None,
                _ => panic!("unexpected reply while waiting for space: {reply:?}"),
            }
        },
    )
    .await;
    let reclaimed = full_segments.iter().filter(|p| !p.exists()).count();
    assert!(
        reclaimed > 0,
        "pushes resumed but no segment of {full_segments:?} was reclaimed"
    );
    let mut kept: Vec<u64> = acked[acked.len() - KEEP..].to_vec();
    kept.push(resumed);
    kept.push(s.push("jobs", &body(resumed + 1)).await);

    // A crash now loses nothing acknowledged.
    s.kill9();
    s.restart().await;
    let got = s.drain("jobs", 10 * kept.len()).await;
    assert_eq!(ids(&got), kept);
}
