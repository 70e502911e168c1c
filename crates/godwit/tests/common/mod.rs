//! The one helper every end-to-end test uses: starts the real `godwit` binary on a free
//! loopback port with a temporary data directory, and talks to it over HTTP.
//!
//! Nothing here knows about the server's internals; tests observe what a user observes.

#![allow(dead_code)]

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to answer `/healthz` after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `godwit serve` child process with its own data directory and port.
pub struct TestServer {
    child: Option<Child>,
    /// Holds the data directory and the server logs; deleted when the server is dropped.
    root: tempfile::TempDir,
    port: u16,
    extra_args: Vec<String>,
    starts: u32,
    /// An HTTP client for this server (renewed on restart so no pooled connection to a
    /// dead process is reused).
    pub client: reqwest::Client,
}

/// A reply as a test sees it: status, raw body and the body parsed as JSON (or `Null`).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The `content-type` header, if any.
    pub content_type: String,
    /// The raw body.
    pub text: String,
    /// The body as JSON, `Value::Null` when it is not JSON.
    pub json: Value,
}

impl Reply {
    /// The error code of a `{"error": {"code", "message"}}` reply, or "" when absent.
    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts a JSON error reply with this status and code, and a non-empty message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got {self:?}"
        );
        assert_eq!(self.error_code(), code, "wrong error code in {self:?}");
        assert!(
            self.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without a message: {self:?}"
        );
    }

    /// The `messages` array of a take/lease/peek reply.
    #[track_caller]
    pub fn messages(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "expected 200 with messages, got {self:?}");
        self.json["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages array in {self:?}"))
            .clone()
    }
}

/// Picks a loopback port that is free right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

impl TestServer {
    /// Starts `godwit serve` with `--redis off --memcache off`, a fresh data directory, a
    /// free port and `extra_args`, and waits until `/healthz` answers 200.
    pub async fn start(extra_args: &[&str]) -> TestServer {
        let root = tempfile::Builder::new()
            .prefix("godwit-e2e-")
            .tempdir()
            .expect("tempdir");
        fs::create_dir_all(root.path().join("data")).expect("create data dir");
        let mut server = TestServer {
            child: None,
            root,
            port: free_port(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            starts: 0,
            client: new_client(),
        };
        server.spawn_and_wait().await;
        server
    }

    /// The data directory, kept across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The listening port, kept across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (panics when it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.root.path().join(format!("server-{start}.log"))
    }

    /// The stderr of the current (or last) server process.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
    }

    /// Spawns the server (on the same port and data dir as before) and waits for health.
    async fn spawn_and_wait(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("create server log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_godwit"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--redis", "off", "--memcache", "off"])
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd.spawn().expect("spawn godwit serve");
        self.child = Some(child);
        self.client = new_client();
        self.wait_healthy().await;
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("probe client");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "godwit serve exited with {status} before it was healthy; stderr:\n{}",
                    self.stderr()
                );
            }
            if let Ok(resp) = probe.get(self.url("/healthz")).send().await {
                if resp.status().as_u16() == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!(
                    "godwit serve was not healthy within {START_TIMEOUT:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Kills the server with SIGKILL and reaps it: a crash at an arbitrary instant.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the server to exit; returns its exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "godwit serve did not exit within {EXIT_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    fs::read_to_string(self.log_path(self.starts)).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server again on the same data directory and port (after `kill9` or
    /// `terminate`; a running server is killed first).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait().await;
    }

    // ---- HTTP helpers ---------------------------------------------------------------

    async fn finish(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.bytes().await.expect("read reply body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            text,
            json,
        }
    }

    /// Sends a request with an optional body and content type.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Reply {
        let mut req = self.client.request(method.clone(), self.url(path));
        if let Some((bytes, content_type)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}; stderr:\n{}", self.stderr()));
        Self::finish(resp).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// `POST path` with no body.
    pub async fn post(&self, path: &str) -> Reply {
        self.request(reqwest::Method::POST, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("encode json");
        self.request(
            reqwest::Method::POST,
            path,
            Some((bytes, "application/json")),
        )
        .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("encode json");
        self.request(
            reqwest::Method::PUT,
            path,
            Some((bytes, "application/json")),
        )
        .await
    }

    /// `POST /v1/queues/{queue}/messages{query}` with `body` verbatim.
    pub async fn push_raw(&self, queue: &str, query: &str, body: &[u8]) -> Reply {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/queues/{queue}/messages{query}"),
            Some((body.to_vec(), "application/octet-stream")),
        )
        .await
    }

    /// Pushes `body` and returns the new id, asserting 201.
    pub async fn push(&self, queue: &str, body: &str) -> u64 {
        let reply = self.push_raw(queue, "", body.as_bytes()).await;
        assert_eq!(reply.status, 201, "push to {queue} failed: {reply:?}");
        reply.json["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id in {reply:?}"))
    }

    /// Takes up to `max` messages without waiting.
    pub async fn take(&self, queue: &str, max: usize) -> Vec<Value> {
        self.post(&format!("/v1/queues/{queue}/take?max={max}"))
            .await
            .messages()
    }

    /// Takes until the queue answers empty (bounded by `limit` messages).
    pub async fn drain(&self, queue: &str, limit: usize) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let batch = self.take(queue, 500).await;
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
            assert!(all.len() <= limit, "drained more than {limit} from {queue}");
        }
    }

    /// Every ready message of a queue in delivery order, without consuming (pages of
    /// `range`).
    pub async fn drain_peek(&self, queue: &str) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let start = all.len();
            let page = self
                .get(&format!(
                    "/v1/queues/{queue}/range?start={start}&stop={}",
                    start + 499
                ))
                .await
                .messages();
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    /// The stats of one queue, asserting 200.
    pub async fn stats(&self, queue: &str) -> Value {
        let reply = self.get(&format!("/v1/queues/{queue}")).await;
        assert_eq!(reply.status, 200, "stats of {queue}: {reply:?}");
        reply.json
    }

    /// Asserts the server still answers health checks and a push/take round trip.
    pub async fn assert_still_serving(&self) {
        assert_eq!(self.get("/healthz").await.status, 200, "healthz");
        let id = self.push("still-serving", "ping").await;
        let got = self.take("still-serving", 1).await;
        assert_eq!(got.len(), 1, "round trip after bad inputs");
        assert_eq!(got[0]["id"], id);
        assert_eq!(got[0]["body"], "ping");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The body of a rendered message as bytes, whether given as `body` or `body_base64`.
#[track_caller]
pub fn body_bytes(message: &Value) -> Vec<u8> {
    use base64::Engine as _;
    if let Some(text) = message["body"].as_str() {
        return text.as_bytes().to_vec();
    }
    let b64 = message["body_base64"]
        .as_str()
        .unwrap_or_else(|| panic!("message without body or body_base64: {message}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("bad body_base64 in {message}: {e}"))
}

/// The queue name in a stats object (`name`, or `queue`).
pub fn queue_name(stats: &Value) -> String {
    stats["name"]
        .as_str()
        .or_else(|| stats["queue"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The ids of rendered messages.
pub fn ids(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["id"].as_u64().unwrap_or_else(|| panic!("no id in {m}")))
        .collect()
}

/// The text bodies of rendered messages.
pub fn bodies(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&body_bytes(m)).into_owned())
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
            {
                found.push(path);
            }
        }
    }
    found
}

/// The newest log segment under `dir`: the `*.seg` file with the largest number in its
/// name (ties broken by path).
pub fn newest_segment(dir: &Path) -> PathBuf {
    let number = |p: &PathBuf| -> u64 {
        let name = p.file_stem().and_then(|n| n.to_str()).unwrap_or("");
        let digits: String = name.chars().filter(|c| c.is_ascii_digit()).collect();
        digits.parse().unwrap_or(0)
    };
    let mut segs = files_with_suffix(dir, ".seg");
    segs.sort_by(|a, b| number(a).cmp(&number(b)).then(a.cmp(b)));
    segs.pop()
        .unwrap_or_else(|| panic!("no *.seg file under {}", dir.display()))
}

/// Spoils the first record in `dir`'s newest segment holding each of `bodies` (one
/// byte of the body flipped), as a bad disk would under a running server.
pub fn spoil_bodies(dir: &Path, bodies: &[&str]) {
    let seg = newest_segment(dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    for body in bodies {
        let at = bytes
            .windows(body.len())
            .position(|w| w == body.as_bytes())
            .unwrap_or_else(|| panic!("{body:?} not in {}", seg.display()));
        bytes[at] ^= 0xff;
    }
    std::fs::write(&seg, &bytes).unwrap();
}

/// The numeric field `field=N` of the last line of `log` that contains `message` (the
/// server logs `tracing`'s plain text format to a file, without colours).
pub fn log_field(log: &str, message: &str, field: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(message))?;
    let key = format!("{field}=");
    let start = line.find(&key)? + key.len();
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

// ---- raw TCP helpers (for stalled or hand-written clients) ---------------------------

impl TestServer {
    /// Opens a plain TCP connection to the HTTP listener.
    pub async fn connect(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{}: {e}", self.port))
    }
}

/// Reads until the peer closes the connection (EOF or reset) and returns what arrived,
/// or `None` if it was still open after `limit`.
pub async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.ok()?;
    Some(got)
}

// ---- Added for the store's format and disk-full tests ------------------------------

impl TestServer {
    /// Like [`TestServer::start`], with the root (data dir and logs) created inside
    /// `parent`, e.g. on a small filesystem mounted by the test.
    pub async fn start_in(parent: &Path, extra_args: &[&str]) -> TestServer {
        let root = tempfile::Builder::new()
            .prefix("godwit-e2e-")
            .tempdir_in(parent)
            .expect("tempdir in parent");
        fs::create_dir_all(root.path().join("data")).expect("create data dir");
        let mut server = TestServer {
            child: None,
            root,
            port: free_port(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            starts: 0,
            client: new_client(),
        };
        server.spawn_and_wait().await;
        server
    }

    /// Starts the server again on the same data directory (it must not be running) and
    /// expects it to exit before it is healthy; returns its exit status and stderr.
    pub async fn restart_expecting_exit(&mut self) -> (ExitStatus, String) {
        assert!(self.child.is_none(), "server still running");
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("create server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_godwit"))
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--redis", "off", "--memcache", "off"])
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn godwit serve");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for server") {
                return (status, self.stderr());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "godwit serve kept running; expected it to refuse to start. stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Every file under `dir` (recursively) with its bytes, by path.
pub fn snapshot_files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    files_with_suffix(dir, "")
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}
