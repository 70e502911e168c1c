//! `--worker-threads`: the runtime's size is bounded (1 to 256) and a bad value stops
//! `godwit serve` before it touches the data directory; one thread serves.

mod common;

use std::process::{Command, Stdio};

use common::{bodies, TestServer};

/// Runs `godwit serve` with `args` and `env`, expecting it to refuse to start; returns
/// its stderr.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_godwit"))
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--http",
            "127.0.0.1:0",
            "--redis",
            "off",
            "--memcache",
            "off",
        ])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run godwit serve");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{args:?} {env:?} started: {}\nstderr:\n{stderr}",
        output.status
    );
    assert!(!data.exists(), "{args:?} {env:?} created the data dir");
    stderr
}

#[test]
fn zero_or_too_many_worker_threads_are_refused_with_a_clear_error() {
    let stderr = refused(&["--worker-threads", "0"], &[]);
    assert!(
        stderr.contains("worker_threads must be between 1 and 256, got 0"),
        "stderr:\n{stderr}"
    );
    let stderr = refused(&["--worker-threads", "257"], &[]);
    assert!(
        stderr.contains("worker_threads must be between 1 and 256, got 257"),
        "stderr:\n{stderr}"
    );
    let stderr = refused(&[], &[("GODWIT_WORKER_THREADS", "0")]);
    assert!(
        stderr.contains("worker_threads must be between 1 and 256, got 0"),
        "stderr:\n{stderr}"
    );
    let stderr = refused(&["--worker-threads", "many"], &[]);
    assert!(stderr.contains("--worker-threads"), "stderr:\n{stderr}");
}

#[tokio::test]
async fn one_worker_thread_serves() {
    let mut s = TestServer::start(&["--worker-threads", "1"]).await;
    for i in 1..=3 {
        assert_eq!(s.push("jobs", &format!("m{i}")).await, i);
    }
    assert_eq!(bodies(&s.take("jobs", 10).await), vec!["m1", "m2", "m3"]);
    assert!(
        s.stderr().contains("worker_threads=1"),
        "stderr:\n{}",
        s.stderr()
    );
    assert!(s.terminate().await.success());
}
