//! The live dashboard in a real browser: headless Chromium, driven over WebDriver by
//! chromedriver (the `fantoccini` client), against the real binary. The test does what
//! a person would: opens `/ui`, pushes through the page's form, watches the queue's
//! counts and tail change without reloading, pauses and resumes live delivery with the
//! button, takes a message. RestMQ's static pages are checked with a plain client.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`). Without them the browser test prints why it is skipped and
//! passes, unless `GODWIT_REQUIRE_CHROMIUM=1` (as in CI) makes it fail. With
//! `GODWIT_WRITE_SCREENSHOT=1` it saves what the page shows as `docs/dashboard.png`.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, TestServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show a change.
const PAGE_WAIT: Duration = Duration::from_secs(10);
/// A queue name that needs escaping in a URL and would be markup if put in as HTML.
const QUEUE: &str = "jobs <i>&1";
/// A body that would be markup if put in as HTML.
const BODY: &str = "resize <b>photo</b> 1";

/// A chromedriver process on a free loopback port, killed (with the browser it started)
/// when dropped.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            0,
        )
        .spawn()
        .expect("spawn chromedriver");
        Chromedriver { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits (bounded) until chromedriver answers `/status` as ready.
    async fn wait_ready(&self) {
        let url = format!("{}/status", self.url());
        let client = reqwest::Client::new();
        eventually(PAGE_WAIT, "chromedriver to be ready", || async {
            let status: Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            status["value"]["ready"].as_bool().filter(|ready| *ready)
        })
        .await;
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // chromedriver leads its own process group; the browser it started is in it.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group of our own, not yet reaped, child.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above; whatever is left of the group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser and its driver are here; a skip note when they are not (a
/// failure under `GODWIT_REQUIRE_CHROMIUM=1`).
fn chromium_present(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("GODWIT_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "GODWIT_REQUIRE_CHROMIUM=1 but {missing:?} are absent \
         (apt-get install chromium chromium-driver)"
    );
    eprintln!(
        "SKIPPED {test}: {missing:?} absent (apt-get install chromium chromium-driver, \
         or set GODWIT_REQUIRE_CHROMIUM=1 to fail)"
    );
    false
}

async fn browser(driver: &Chromedriver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,860"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// The text of the first element matching `css`, or `None` when there is none.
async fn text(page: &Client, css: &str) -> Option<String> {
    let v = page
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )
        .await
        .expect("run a script in the page");
    v.as_str().map(str::to_owned)
}

/// Waits until the element matching `css` shows `want` (after trimming).
async fn wait_text(page: &Client, css: &str, want: &str) {
    let what = format!("{css} to show {want:?}");
    eventually(PAGE_WAIT, &what, || async {
        let got = text(page, css).await?;
        (got.trim() == want).then_some(())
    })
    .await;
}

/// Waits until the element matching `css` shows text containing `part`; returns it.
async fn wait_contains(page: &Client, css: &str, part: &str) -> String {
    let what = format!("{css} to contain {part:?}");
    eventually(PAGE_WAIT, &what, || async {
        text(page, css).await.filter(|got| got.contains(part))
    })
    .await
}

/// The CSS selector of a cell of `queue`'s row in the queue table.
fn cell(queue: &str, class: &str) -> String {
    let quoted = serde_json::to_string(queue).expect("quote");
    format!("#queues tr[data-queue={quoted}] .{class}")
}

async fn click(page: &Client, css: &str) {
    page.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(page: &Client, css: &str, text: &str) {
    let field = page
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find {css}: {e}"));
    field.clear().await.expect("clear field");
    field.send_keys(text).await.expect("type into field");
}

async fn live_paused(s: &TestServer, queue: &str) -> bool {
    let path = format!("/v1/queues/{}", queue_path(queue));
    let reply = s.get(&path).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json["settings"]["live_paused"]
        .as_bool()
        .unwrap_or_else(|| panic!("no settings.live_paused in {reply:?}"))
}

/// `queue` percent-encoded for a path.
fn queue_path(queue: &str) -> String {
    queue
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Everything the browser does, as a person would.
async fn drive(s: TestServer, page: Client) {
    page.goto(&s.url("/ui")).await.expect("open /ui");
    wait_text(&page, "#conn", "live").await;
    // A mark that a reload would wipe: every change below must come without one.
    page.execute("window.__notReloaded = true; return null;", vec![])
        .await
        .expect("mark the page");

    // Push through the form; the queue appears with one ready message.
    type_into(&page, "#push-queue", QUEUE).await;
    type_into(&page, "#push-body", BODY).await;
    click(&page, "#push-btn").await;
    wait_contains(&page, "#push-result", "pushed id 1").await;
    wait_text(&page, &cell(QUEUE, "ready"), "1").await;
    wait_text(&page, &cell(QUEUE, "live"), "live").await;
    wait_text(&page, &cell(QUEUE, "name"), QUEUE).await;

    // The first push selects the queue for the tail, which shows the body as text.
    wait_text(&page, "#tail-queue", QUEUE).await;
    wait_contains(&page, "#tail", BODY).await;
    let markup = page
        .execute(
            "return document.querySelectorAll('#queues b, #queues i, #tail b').length;",
            vec![],
        )
        .await
        .expect("count elements");
    assert_eq!(markup, json!(0), "names and bodies are text, not markup");

    // A push by another client shows in the counts and the tail as the stream reports it.
    let id = s.push(&queue_path(QUEUE), "second").await;
    assert_eq!(id, 2);
    wait_text(&page, &cell(QUEUE, "ready"), "2").await;
    wait_contains(&page, "#tail", "second").await;
    wait_text(&page, "#t-ready", "2").await;

    if std::env::var("GODWIT_WRITE_SCREENSHOT").is_ok_and(|v| v == "1") {
        let png = page.screenshot().await.expect("screenshot");
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::write(&out, png).expect("write docs/dashboard.png");
        eprintln!("wrote {}", out.display());
    }

    // Pause live delivery with the button; the server has it paused; resume it.
    click(&page, &cell(QUEUE, "pause")).await;
    wait_text(&page, &cell(QUEUE, "live"), "paused").await;
    wait_text(&page, &cell(QUEUE, "pause"), "Resume").await;
    assert!(live_paused(&s, QUEUE).await, "the button paused the queue");
    click(&page, &cell(QUEUE, "pause")).await;
    wait_text(&page, &cell(QUEUE, "live"), "live").await;
    assert!(
        !live_paused(&s, QUEUE).await,
        "the button resumed the queue"
    );

    // Take one through the page: the oldest message, and the count goes down.
    click(&page, "#take-btn").await;
    wait_text(&page, "#take-result", BODY).await;
    wait_text(&page, &cell(QUEUE, "ready"), "1").await;
    wait_text(&page, "#tail .body", "second").await;

    let still = page
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .expect("read the mark");
    assert_eq!(still, json!(true), "the page was never reloaded");
    assert!(
        !s.stderr().contains("panicked"),
        "server log:\n{}",
        s.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_pushes_pauses_and_takes_live() {
    if !chromium_present("the_dashboard_shows_pushes_pauses_and_takes_live") {
        return;
    }
    let s = TestServer::start(&["--fsync", "never"]).await;
    let driver = Chromedriver::start();
    driver.wait_ready().await;
    let page = browser(&driver).await;
    // The steps run in their own task so that a failed assertion still closes the
    // browser session before the driver is killed.
    let outcome = tokio::spawn(drive(s, page.clone())).await;
    let _ = page.close().await;
    drop(driver);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[tokio::test]
async fn restmq_static_pages_the_form_and_the_error_pages() {
    let s = TestServer::start(&[]).await;

    let help = s.get("/static/help.html").await;
    assert_eq!(help.status, 200, "{help:?}");
    assert_eq!(help.content_type, "text/html; charset=UTF-8");
    for part in [
        r#"<form method="post" action="/queue" enctype="application/x-www-form-urlencoded">"#,
        r#"<textarea id="body" name="body""#,
        r#"{"cmd": "add", "queue": "q", "value": "v"}"#,
        r#"{"cmd": "get", "queue": "q"}"#,
        r#"{"cmd": "take", "queue": "q"}"#,
        r#"{"cmd": "del", "queue": "q", "key": "q:1"}"#,
    ] {
        assert!(
            help.text.contains(part),
            "help.html lacks {part}:\n{}",
            help.text
        );
    }

    let ui = s.get("/ui").await;
    assert_eq!(ui.status, 200);
    assert_eq!(ui.content_type, "text/html; charset=UTF-8");
    assert!(ui.text.contains(r#"name="viewport""#), "{}", ui.text);
    assert_eq!(s.get("/static/index.html").await.text, ui.text);
    let script = s.get("/static/dashboard.js").await;
    assert_eq!(script.status, 200);
    assert!(script
        .text
        .contains("new EventSource(\"/v1/stats/events\")"));

    for path in ["/static/missing.css", "/static/", "/static/js/app.js"] {
        let missing = s.get(path).await;
        assert_eq!(missing.status, 404, "{path}: {missing:?}");
        assert_eq!(missing.content_type, "text/html; charset=UTF-8", "{path}");
        assert_eq!(
            missing.text, "<html><title>404: Not Found</title><body>404: Not Found</body></html>",
            "{path}"
        );
    }
    let posted = s.post("/static/help.html").await;
    assert_eq!(posted.status, 405, "{posted:?}");
    assert_eq!(posted.content_type, "text/html; charset=UTF-8");
    assert_eq!(
        posted.text,
        "<html><title>405: Method Not Allowed</title><body>405: Method Not Allowed</body></html>"
    );
}
