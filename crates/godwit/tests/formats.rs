//! An upgrade can never silently cut the log: a segment of a format version this build
//! does not read makes `godwit serve` refuse to start, naming the file, and leaves every
//! byte of the data directory as it was.

mod common;

use common::{newest_segment, snapshot_files, TestServer};

#[tokio::test]
async fn an_unknown_segment_version_refuses_to_start_and_changes_nothing() {
    let mut s = TestServer::start(&[]).await;
    for i in 1..=3 {
        assert_eq!(s.push("jobs", &format!("message {i}")).await, i);
    }
    assert!(s.terminate().await.success());

    let seg = newest_segment(&s.data_dir());
    let mut bytes = std::fs::read(&seg).expect("read segment");
    assert_eq!(&bytes[..8], b"GODWITLG", "segment header");
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&seg, &bytes).expect("write segment");
    let before = snapshot_files(&s.data_dir());

    let (status, stderr) = s.restart_expecting_exit().await;
    assert!(!status.success(), "exited with {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&seg.display().to_string()),
        "the segment's path is not in stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("unknown log segment version 99"),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        snapshot_files(&s.data_dir()),
        before,
        "the data dir changed"
    );
}
