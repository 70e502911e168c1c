//! The `godwit` client commands against a real server: every command's plain and `--json`
//! output and exit code, and `godwit copy` of a large awkward file, also across a kill -9
//! and restart of the server in the middle.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{eventually, TestServer};
use serde_json::Value;

/// Runs `godwit ARGS` against `server` with `stdin`, and returns its output.
fn godwit(server: &TestServer, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_godwit"))
        .args(args)
        .env("GODWIT_SERVER", server.url(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn godwit");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("godwit output")
}

/// Asserts the exit code and returns stdout as text.
#[track_caller]
fn expect(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stdout {:?}, stderr {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

#[tokio::test]
async fn push_pop_peek_lease_ack_purge_with_exit_codes() {
    let server = TestServer::start(&[]).await;
    // push BODY prints the id; --json prints the server's reply.
    assert_eq!(
        expect(&godwit(&server, &["push", "jobs", "one"], b""), 0),
        "1\n"
    );
    let reply = json(&expect(
        &godwit(&server, &["push", "jobs", "two", "--json"], b""),
        0,
    ));
    assert_eq!(reply["id"], 2);
    assert_eq!(reply["length"], 2);
    // push - reads stdin verbatim, non-UTF-8 and newlines included.
    expect(&godwit(&server, &["push", "raw", "-"], b"\xff\x00a\nb"), 0);
    let m = &server.take("raw", 1).await[0];
    assert_eq!(common::body_bytes(m), b"\xff\x00a\nb");
    // --lines: one message per line, without the newline; an empty line is a message.
    let reply = json(&expect(
        &godwit(&server, &["push", "lines", "--lines", "--json"], b"a\n\nc"),
        0,
    ));
    assert_eq!(reply["pushed"], 3);
    assert_eq!(
        common::bodies(&server.drain_peek("lines").await),
        ["a", "", "c"]
    );

    // peek does not consume; pop (and its alias take) does.
    assert_eq!(
        expect(&godwit(&server, &["peek", "jobs", "-n", "5"], b""), 0),
        "one\ntwo\n"
    );
    let peeked = json(&expect(
        &godwit(&server, &["peek", "jobs", "--json"], b""),
        0,
    ));
    assert_eq!(peeked["messages"][0]["body"], "one");
    assert_eq!(expect(&godwit(&server, &["pop", "jobs"], b""), 0), "one\n");
    let taken = json(&expect(
        &godwit(&server, &["take", "jobs", "--json"], b""),
        0,
    ));
    assert_eq!(taken["messages"][0]["body"], "two");
    // An empty queue: exit 3, a message on stderr, nothing (or an empty list) on stdout.
    let out = godwit(&server, &["pop", "jobs"], b"");
    assert_eq!(expect(&out, 3), "");
    assert!(!out.stderr.is_empty());
    let empty = json(&expect(
        &godwit(&server, &["pop", "jobs", "--json"], b""),
        3,
    ));
    assert_eq!(empty["messages"], Value::Array(vec![]));
    assert_eq!(expect(&godwit(&server, &["peek", "jobs"], b""), 3), "");

    // lease prints RECEIPT<TAB>BODY; ack takes the receipt; a second ack is stale (3).
    godwit(&server, &["push", "work", "task"], b"");
    let leased = expect(
        &godwit(&server, &["lease", "work", "--visibility-ms", "60000"], b""),
        0,
    );
    let (receipt, body) = leased
        .trim_end()
        .split_once('\t')
        .expect("receipt<TAB>body");
    assert_eq!(body, "task");
    assert_eq!(
        expect(&godwit(&server, &["pop", "work"], b""), 3),
        "",
        "leased is hidden"
    );
    let acked = json(&expect(
        &godwit(&server, &["ack", "work", receipt, "--json"], b""),
        0,
    ));
    assert_eq!(acked["acked"], 1);
    expect(&godwit(&server, &["ack", "work", receipt], b""), 3);
    // nack gives a lease back at once.
    godwit(&server, &["push", "work", "again"], b"");
    let leased = json(&expect(
        &godwit(&server, &["lease", "work", "--json"], b""),
        0,
    ));
    let receipt = leased["messages"][0]["receipt"]
        .as_str()
        .expect("receipt")
        .to_string();
    assert_eq!(
        expect(&godwit(&server, &["nack", "work", &receipt], b""), 0),
        "1\n"
    );
    assert_eq!(
        expect(&godwit(&server, &["pop", "work"], b""), 0),
        "again\n"
    );

    // purge reports how many it removed.
    godwit(&server, &["push", "p", "x"], b"");
    godwit(&server, &["push", "p", "y"], b"");
    assert_eq!(expect(&godwit(&server, &["purge", "p"], b""), 0), "2\n");
    let purged = json(&expect(&godwit(&server, &["purge", "p", "--json"], b""), 0));
    assert_eq!(purged["purged"], 0);

    // A refusal from the server is exit 1 with its message on stderr.
    let out = godwit(&server, &["push", "bad\u{1}name", "x"], b"");
    expect(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_name"));
}

#[tokio::test]
async fn stats_table_json_and_watch() {
    let server = TestServer::start(&[]).await;
    for body in ["a", "b", "c"] {
        server.push("alpha", body).await;
    }
    server.push("beta", "z").await;
    let table = expect(&godwit(&server, &["stats"], b""), 0);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("QUEUE") && lines[0].contains("READY"),
        "{table}"
    );
    let alpha: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&alpha[..2], ["alpha", "3"], "{table}");
    assert!(lines[2].starts_with("beta"), "{table}");
    let stats = json(&expect(
        &godwit(&server, &["stats", "--json", "--prefix", "al"], b""),
        0,
    ));
    assert_eq!(stats["queues"].as_array().map(Vec::len), Some(1));
    assert_eq!(stats["queues"][0]["ready"], 3);

    // --watch --json prints a line per interval until stopped.
    let mut child = Command::new(env!("CARGO_BIN_EXE_godwit"))
        .args([
            "stats",
            "--watch",
            "--json",
            "--interval-ms",
            "100",
            "--server",
            &server.url(""),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stats --watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = json(&lines.next().expect("a line").expect("read"));
    assert_eq!(first["queues"][0]["ready"], 3);
    server.take("alpha", 1).await;
    let updated = (0..100)
        .map(|_| json(&lines.next().expect("a line").expect("read")))
        .find(|v| v["queues"][0]["ready"] == 2);
    assert!(updated.is_some(), "the watch shows the take");
    child.kill().expect("stop watch");
    let _ = child.wait();
}

#[tokio::test]
async fn tail_follows_live_messages() {
    let server = TestServer::start(&[]).await;
    // A stream does not create its queue; a push or PUT does.
    assert_eq!(
        server
            .put_json("/v1/queues/live", &serde_json::json!({}))
            .await
            .status,
        200
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_godwit"))
        .args(["tail", "live", "--json", "--server", &server.url("")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tail");
    // Wait until the stream is connected, so the pushes are live deliveries.
    eventually(Duration::from_secs(20), "tail connects", || async {
        (server.get("/v1/queues/live").await.json["live_consumers"] == 1).then_some(())
    })
    .await;
    server.push("live", "first").await;
    server.push("live", "second").await;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let a = json(&lines.next().expect("line").expect("read"));
    let b = json(&lines.next().expect("line").expect("read"));
    assert_eq!(a["type"], "message");
    assert_eq!(a["message"]["body"], "first");
    assert_eq!(b["message"]["body"], "second");
    // A purge is reported as an event.
    server.post("/v1/queues/live/purge").await;
    let c = json(&lines.next().expect("line").expect("read"));
    assert_eq!(c["type"], "purged");
    child.kill().expect("stop tail");
    let _ = child.wait();
    // tail took what it printed.
    assert_eq!(server.stats("live").await["ready"], 0);
}

#[tokio::test]
async fn usage_unreachable_and_completions() {
    let server = TestServer::start(&[]).await;
    // Usage errors are exit 2 (clap).
    expect(&godwit(&server, &["pop"], b""), 2);
    expect(&godwit(&server, &["pop", "q", "-n", "many"], b""), 2);
    // An unreachable server is exit 4 with a message naming it.
    let dead = format!("http://127.0.0.1:{}", common::free_port());
    let out = godwit(&server, &["pop", "q", "--server", &dead], b"");
    expect(&out, 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
    let out = godwit(&server, &["stats", "--json", "--server", &dead], b"");
    expect(&out, 4);
    // Completions for the usual shells.
    for shell in ["bash", "zsh", "fish"] {
        let script = expect(&godwit(&server, &["completions", shell], b""), 0);
        assert!(
            script.contains("copy") && script.contains("tail"),
            "{shell}"
        );
    }
    expect(&godwit(&server, &["completions", "nosuchshell"], b""), 2);
}

/// Writes a file of about `mb` MB whose lines are awkward: empty, short, long (some over
/// the 1 MiB message limit), with non-UTF-8 bytes, and no newline at the end.
fn generate(path: &Path, mb: usize) -> u64 {
    let target = mb * 1_000_000;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create input"));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut written = 0usize;
    let mut line = Vec::new();
    while written < target {
        line.clear();
        let kind = next() % 10_000;
        let len = match kind {
            0..=999 => 0,
            1000..=8999 => (next() % 200) as usize,
            9000..=9998 => (next() % 2000) as usize,
            _ => 1_000_000 + (next() % 1_500_000) as usize,
        };
        for _ in 0..len {
            let r = next();
            // Mostly printable ASCII; now and then any byte but a newline.
            let b = if r % 50 == 0 {
                (r >> 8) as u8
            } else {
                b' ' + (r >> 8) as u8 % 94
            };
            line.push(if b == b'\n' { 0xff } else { b });
        }
        line.push(b'\n');
        out.write_all(&line).expect("write input");
        written += line.len();
    }
    out.write_all(b"last line \xc3\x28 without newline")
        .expect("write tail");
    out.flush().expect("flush input");
    std::fs::metadata(path).expect("input metadata").len()
}

fn hash(path: &Path) -> u64 {
    let bytes = std::fs::read(path).expect("read file");
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// The size of the generated file, MB (`GODWIT_CLI_COPY_MB`, default 100).
fn copy_mb() -> usize {
    std::env::var("GODWIT_CLI_COPY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

#[tokio::test]
async fn copy_of_a_large_awkward_file_is_identical() {
    let server = TestServer::start(&["--fsync", "never"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    let size = generate(&input, copy_mb());
    let out = godwit(
        &server,
        &[
            "copy",
            input.to_str().expect("path"),
            output.to_str().expect("path"),
            "--json",
        ],
        b"",
    );
    let summary = json(&expect(&out, 0));
    assert_eq!(summary["bytes"], size);
    assert_eq!(std::fs::metadata(&output).expect("output").len(), size);
    assert_eq!(hash(&input), hash(&output), "the copy differs");
    // Piped, so no progress bar was drawn on stderr.
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\r'));
    // The copy's own queue is gone.
    let queues = server.get("/v1/queues").await.json;
    assert_eq!(queues["queues"], Value::Array(vec![]));

    // An empty file and a named queue work too; the named queue is left (empty).
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").expect("write empty");
    let copied = dir.path().join("empty-out");
    let args = [
        "copy",
        empty.to_str().expect("p"),
        copied.to_str().expect("p"),
        "--queue",
        "mine",
    ];
    expect(&godwit(&server, &args, b""), 0);
    assert_eq!(std::fs::read(&copied).expect("read"), b"");
}

#[tokio::test]
async fn copy_survives_a_server_kill_and_restart() {
    let mut server = TestServer::start(&["--fsync", "never"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, output) = (dir.path().join("in"), dir.path().join("out"));
    let size = generate(&input, copy_mb());
    let mut child = Command::new(env!("CARGO_BIN_EXE_godwit"))
        .args([
            "copy",
            input.to_str().expect("p"),
            output.to_str().expect("p"),
        ])
        .args(["--queue", "through", "--json", "--server", &server.url("")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn copy");
    // Kill the server once part of the file has gone through.
    eventually(
        Duration::from_secs(300),
        "the copy is under way",
        || async {
            let written = std::fs::metadata(&output).map_or(0, |m| m.len());
            (written >= size / 10).then_some(())
        },
    )
    .await;
    assert!(
        child.try_wait().expect("poll copy").is_none(),
        "copy ended too early"
    );
    server.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("copy output");
    let summary = json(&expect(&out, 0));
    assert!(summary["retries"].as_u64().unwrap_or(0) > 0, "{summary}");
    assert_eq!(std::fs::metadata(&output).expect("output").len(), size);
    assert_eq!(hash(&input), hash(&output), "lost or duplicated lines");
}
