//! RestMQ's routes through the real binary, byte for byte: every route and reply
//! shape of `specs/restmq.md` section 4 (status, content type, body, key order, CRLF
//! and its absence, JSONP with and without `;`), the argument rules (blank is absent,
//! `;` separates, stripping), the ACL file (address and password refusals, a reload),
//! and the section 12 fixes (no body on 204, bad `ttl` refused, bodies gone once
//! consumed, numeric-looking names, a status set before the first message kept).

mod common;

use common::TestServer;
use reqwest::header::{CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

const HTML: &str = "text/html; charset=UTF-8";
const JSON: &str = "application/json";
const PAGE_400: &str = "<html><title>400: Bad Request</title><body>400: Bad Request</body></html>";
const PAGE_401: &str =
    "<html><title>401: Unauthorized</title><body>401: Unauthorized</body></html>";
const PAGE_404: &str = "<html><title>404: Not Found</title><body>404: Not Found</body></html>";
const PAGE_405: &str =
    "<html><title>405: Method Not Allowed</title><body>405: Method Not Allowed</body></html>";
const STORE: &str = "<Godwit store: embedded>";

/// What a client sees of a reply.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    content_type: Option<String>,
    location: Option<String>,
    auth: Option<String>,
    content_length: Option<String>,
    body: String,
}

/// A RestMQ client: no redirects followed, form bodies.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(s: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: s.url(""),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Seen {
        let resp = req.send().await.expect("request");
        let header = |name| {
            resp.headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let (content_type, location, auth) = (
            header(CONTENT_TYPE),
            header(LOCATION),
            header(WWW_AUTHENTICATE),
        );
        let content_length = header(reqwest::header::CONTENT_LENGTH);
        let status = resp.status();
        let body = resp.text().await.expect("body");
        Seen {
            status,
            content_type,
            location,
            auth,
            content_length,
            body,
        }
    }

    async fn get(&self, path: &str) -> Seen {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn call(&self, method: Method, path: &str) -> Seen {
        self.send(self.http.request(method, format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a form body (`a=b&c=d`, already encoded).
    async fn form(&self, method: Method, path: &str, form: &str) -> Seen {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_string());
        self.send(req).await
    }

    async fn post(&self, path: &str, form: &str) -> Seen {
        self.form(Method::POST, path, form).await
    }
}

#[track_caller]
fn assert_seen(seen: &Seen, status: u16, content_type: &str, body: &str) {
    assert_eq!(seen.status.as_u16(), status, "{seen:?}");
    assert_eq!(seen.content_type.as_deref(), Some(content_type), "{seen:?}");
    assert_eq!(seen.body, body, "{seen:?}");
}

#[tokio::test]
async fn q_adds_pops_purges_and_lists_with_restmqs_exact_bytes() {
    let s = TestServer::start(&[]).await;
    let c = Client::new(&s);
    assert_seen(
        &c.post("/q/test", "value=foobar").await,
        200,
        HTML,
        "test:1\r\n",
    );
    assert_seen(
        &c.post("/q/test?callback=cb", "value=v2").await,
        200,
        HTML,
        "cb(test:2);\r\n",
    );
    // msg wins unless empty; the value may come in the query string.
    assert_seen(
        &c.post("/q/test", "msg=m3&value=ignored").await,
        200,
        HTML,
        "test:3\r\n",
    );
    assert_seen(
        &c.post("/q/test?value=v4", "").await,
        200,
        HTML,
        "test:4\r\n",
    );
    let popped = c.get("/q/test").await;
    assert_seen(
        &popped,
        200,
        HTML,
        "{\"count\": 0, \"key\": \"test:1\", \"value\": \"foobar\"}\r\n",
    );
    assert_seen(
        &c.get("/q/test?callback=cb").await,
        200,
        HTML,
        "cb({\"count\": 0, \"key\": \"test:2\", \"value\": \"v2\"});\r\n",
    );
    // The list of queues links each.
    let list = c.get("/q/").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("<title>avaliable queue for REST</title>"),
        "{list:?}"
    );
    assert!(
        list.body
            .contains("<li><a href=\"/q/test\">/q/test</a></li>"),
        "{list:?}"
    );
    // Purge: status 1 when it held messages, 0 after; numbering goes on.
    assert_seen(
        &c.call(Method::DELETE, "/q/test").await,
        200,
        HTML,
        "{\"queue\": \"test\", \"status\": 1}\r\n",
    );
    assert_seen(
        &c.call(Method::DELETE, "/q/test").await,
        200,
        HTML,
        "{\"queue\": \"test\", \"status\": 0}\r\n",
    );
    assert_seen(
        &c.call(Method::DELETE, "/q/test?callback=cb").await,
        200,
        HTML,
        "cb({\"queue\": \"test\", \"status\": 0});\r\n",
    );
    assert_seen(
        &c.post("/q/test", "value=again").await,
        200,
        HTML,
        "test:5\r\n",
    );
    // Empty: 204 with no body at all (Godwit fix 12.2 #1).
    c.get("/q/test").await;
    let empty = c.get("/q/test").await;
    assert_eq!(empty.status, 204, "{empty:?}");
    assert_eq!(empty.body, "");
    assert_eq!(empty.content_length, None, "{empty:?}");
    assert_eq!(c.get("/q/never").await.status, 204);
}

#[tokio::test]
async fn values_come_back_as_restmq_converted_them_and_names_decode_with_plus_as_space() {
    let s = TestServer::start(&[]).await;
    let c = Client::new(&s);
    for (value, shown) in [
        ("007", "7"),
        ("-1.50", "-1.5"),
        ("1.5e3", "1500.0"),
        ("1e5", "\"1e5\""),
        ("1.5e400", "\"1.5e400\""),
        ("caf%C3%A9+%3C%2Fx%3E", "\"caf\\u00e9 <\\/x>\""),
        ("%20%20spaced%20%20", "\"spaced\""),
        ("a%01b", "\"a b\""),
        ("a;b", "\"a\""),
    ] {
        c.post("/q/conv", &format!("value={value}")).await;
        let got = c.get("/q/conv").await;
        assert!(
            got.body.ends_with(&format!("\"value\": {shown}}}\r\n")),
            "{value}: {got:?}"
        );
    }
    assert_seen(
        &c.post("/q/a%2Bb+c", "value=x").await,
        200,
        HTML,
        "a+b c:1\r\n",
    );
    // A numeric-looking queue name is never converted.
    assert_seen(&c.post("/q/007", "value=x").await, 200, HTML, "007:1\r\n");
    let stats = c.get("/stats/007").await;
    assert_seen(
        &stats,
        200,
        JSON,
        &format!("{{\"queue\": \"007\", \"redis\": \"{STORE}\", \"len\": 1}}"),
    );
}

#[tokio::test]
async fn bad_input_gets_restmqs_pages_and_stores_nothing() {
    let s = TestServer::start(&["--max-message-bytes", "1KiB"]).await;
    let c = Client::new(&s);
    // Missing, or blank (absent), value: 400; present but whitespace stores "".
    assert_seen(&c.post("/q/bad", "").await, 400, HTML, PAGE_400);
    assert_seen(&c.post("/q/bad", "value=").await, 400, HTML, PAGE_400);
    assert_seen(&c.post("/q/bad", "msg=").await, 400, HTML, PAGE_400);
    // Bad ttl: 400, nothing stored, no id used (Godwit fix 12.2 #11).
    assert_seen(
        &c.post("/q/bad", "value=v&ttl=soon").await,
        400,
        HTML,
        PAGE_400,
    );
    assert_seen(
        &c.post("/q/bad", "value=v&ttl=%20").await,
        400,
        HTML,
        PAGE_400,
    );
    assert_seen(&c.post("/q/bad", "value=%20").await, 200, HTML, "bad:1\r\n");
    assert_seen(
        &c.get("/q/bad").await,
        200,
        HTML,
        "{\"count\": 0, \"key\": \"bad:1\", \"value\": \"\"}\r\n",
    );
    // A callback that is not a name: 400 (fix 12.2 #20); a blank one is no JSONP.
    assert_seen(
        &c.post("/q/bad?callback=alert(1)", "value=v").await,
        400,
        HTML,
        PAGE_400,
    );
    assert_seen(
        &c.post("/q/bad?callback=", "value=v").await,
        200,
        HTML,
        "bad:2\r\n",
    );
    // Invalid UTF-8 in a value or the path: 400.
    assert_seen(&c.post("/q/bad", "value=%FF").await, 400, HTML, PAGE_400);
    assert_seen(&c.post("/q/%FF", "value=v").await, 400, HTML, PAGE_400);
    // Over the message limit: 413 page.
    let big = "x".repeat(2000);
    let refused = c.post("/q/bad", &format!("value={big}")).await;
    assert_seen(
        &refused,
        413,
        HTML,
        "<html><title>413: Request Entity Too Large</title><body>413: Request Entity Too Large</body></html>",
    );
    // Unknown paths, missing trailing slashes, other methods.
    for path in [
        "/q", "/c", "/stats", "/control", "/p", "/j", "/ws", "/nowhere", "/queue/",
    ] {
        assert_seen(&c.get(path).await, 404, HTML, PAGE_404);
    }
    for method in [Method::PUT, Method::HEAD, Method::OPTIONS, Method::PATCH] {
        let seen = c.call(method.clone(), "/q/x").await;
        assert_eq!(seen.status, 405, "{method}: {seen:?}");
        if method != Method::HEAD {
            assert_eq!(seen.body, PAGE_405);
        }
    }
    assert_eq!(c.call(Method::DELETE, "/p/x").await.status, 405);
    // ttl <= 0 is taken and expires at once: never delivered.
    assert_seen(
        &c.post("/q/ttl", "value=gone&ttl=0").await,
        200,
        HTML,
        "ttl:1\r\n",
    );
    assert_seen(
        &c.post("/q/ttl", "value=kept&ttl=60").await,
        200,
        HTML,
        "ttl:2\r\n",
    );
    assert_seen(
        &c.get("/q/ttl").await,
        200,
        HTML,
        "{\"count\": 0, \"key\": \"ttl:2\", \"value\": \"kept\"}\r\n",
    );
    s.assert_still_serving().await;
}

#[tokio::test]
async fn the_root_api_pops_adds_and_redirects() {
    let s = TestServer::start(&[]).await;
    let c = Client::new(&s);
    let home = c.get("/").await;
    assert_eq!(
        (home.status.as_u16(), home.location.as_deref()),
        (302, Some("/static/index.html"))
    );
    assert_eq!(home.body, "");
    // A blank queue is absent: the redirect too.
    assert_eq!(c.get("/?queue=").await.status, 302);
    assert_seen(
        &c.post("/", "queue=test&value=v1").await,
        200,
        HTML,
        "test:1\r\n",
    );
    assert_seen(
        &c.post("/?callback=cb", "queue=test&msg=v2").await,
        200,
        HTML,
        "cb(test:2);\r\n",
    );
    assert_seen(&c.post("/", "value=v").await, 400, HTML, PAGE_400);
    assert_seen(&c.post("/", "queue=test").await, 400, HTML, PAGE_400);
    assert_seen(
        &c.get("/?queue=test").await,
        200,
        HTML,
        "{\"count\": 0, \"key\": \"test:1\", \"value\": \"v1\"}\r\n",
    );
    assert_seen(
        &c.get("/?queue=test").await,
        200,
        HTML,
        "{\"count\": 0, \"key\": \"test:2\", \"value\": \"v2\"}\r\n",
    );
    // Empty: the 404 page, not 204.
    assert_seen(&c.get("/?queue=test").await, 404, HTML, PAGE_404);
}

#[tokio::test]
async fn the_json_protocol_soft_gets_takes_and_deletes() {
    let s = TestServer::start(&[]).await;
    let c = Client::new(&s);
    let cmd = |json: &str| format!("body={}", urlencode(json));
    let add = c
        .post(
            "/queue",
            &cmd(r#"{"cmd": "add", "queue": "jq", "value": "a1"}"#),
        )
        .await;
    assert_seen(
        &add,
        200,
        JSON,
        r#"{"queue": "jq", "value": "a1", "key": "jq:1"}"#,
    );
    c.post(
        "/queue",
        &cmd(r#"{"cmd": "add", "queue": "jq", "value": "2"}"#),
    )
    .await;
    c.post(
        "/queue",
        &cmd(r#"{"cmd": "add", "queue": "jq", "value": "a3"}"#),
    )
    .await;
    // The soft get: same message, counter 1, 2.
    for n in 1..=2 {
        let got = c
            .post("/queue", &cmd(r#"{"cmd": "get", "queue": "jq"}"#))
            .await;
        assert_seen(
            &got,
            200,
            JSON,
            &format!(r#"{{"queue": "jq", "count": {n}, "value": "a1", "key": "jq:1"}}"#),
        );
    }
    let took = c
        .post("/queue", &cmd(r#"{"cmd": "take", "queue": "jq"}"#))
        .await;
    assert_seen(
        &took,
        200,
        JSON,
        r#"{"queue": "jq", "value": "a1", "key": "jq:1"}"#,
    );
    // Consumed: its body is gone (fix 12.2 #9).
    let del = c
        .post(
            "/queue",
            &cmd(r#"{"cmd": "del", "queue": "jq", "key": "jq:1"}"#),
        )
        .await;
    assert_seen(
        &del,
        200,
        JSON,
        r#"{"queue": "jq", "deleted": false, "key": "jq:1"}"#,
    );
    // Deleting jq:3 leaves jq:2, converted to a number by take.
    let del = c
        .post(
            "/queue",
            &cmd(r#"{"cmd": "del", "queue": "jq", "key": "jq:3"}"#),
        )
        .await;
    assert_seen(
        &del,
        200,
        JSON,
        r#"{"queue": "jq", "deleted": true, "key": "jq:3"}"#,
    );
    let took = c
        .post("/queue", &cmd(r#"{"cmd": "take", "queue": "jq"}"#))
        .await;
    assert_seen(
        &took,
        200,
        JSON,
        r#"{"queue": "jq", "value": 2, "key": "jq:2"}"#,
    );
    let empty = c
        .post("/queue", &cmd(r#"{"cmd": "take", "queue": "jq"}"#))
        .await;
    assert_seen(&empty, 200, JSON, r#"{"error": "empty queue"}"#);
    let empty = c
        .post("/queue", &cmd(r#"{"cmd": "get", "queue": "jq"}"#))
        .await;
    assert_seen(&empty, 200, JSON, r#"{"error": "empty queue"}"#);
    // Python's error texts.
    for (json, reply) in [
        (r#"{"cmd": "add", "value": "v"}"#, r#"{"error": "'queue'"}"#),
        (
            r#"{"cmd": "add", "queue": "jq"}"#,
            r#"{"error": "'value'"}"#,
        ),
        (
            r#"{"cmd": "add", "queue": 7, "value": "v"}"#,
            r#"{"error": "'int' object has no attribute 'encode'"}"#,
        ),
        (
            r#"{"cmd": "add", "queue": "jq", "value": 1.5}"#,
            r#"{"error": "'float' object has no attribute 'encode'"}"#,
        ),
        (
            r#"{"cmd": "add", "queue": "jq", "value": null}"#,
            r#"{"error": "'NoneType' object has no attribute 'encode'"}"#,
        ),
        (
            r#"{"cmd": "add", "queue": "jq", "value": [1]}"#,
            r#"{"error": "'list' object has no attribute 'encode'"}"#,
        ),
        (r#"{"cmd": "del", "queue": "jq"}"#, r#"{"error": "'key'"}"#),
        (
            r#"{"cmd": "del", "queue": "jq", "key": 5}"#,
            r#"{"error": "data must be utf-8"}"#,
        ),
        (r#"{"cmd": "take"}"#, r#"{"error": "'queue'"}"#),
    ] {
        assert_seen(&c.post("/queue", &cmd(json)).await, 200, JSON, reply);
    }
    // An unknown command: HTML type.
    let unknown = c
        .post("/queue", &cmd(r#"{"cmd": "foo", "queue": "jq"}"#))
        .await;
    assert_seen(&unknown, 200, HTML, r#"{"error": "null resultset"}"#);
    // 400 pages: no field, bad JSON, not an object, no/empty/non-string cmd.
    for form in [
        String::new(),
        cmd("{not json"),
        cmd("[1, 2]"),
        cmd(r#"{"queue": "jq"}"#),
        cmd(r#"{"cmd": ""}"#),
        cmd(r#"{"cmd": 0}"#),
        cmd(r#"{"cmd": 1}"#),
    ] {
        assert_seen(&c.post("/queue", &form).await, 400, HTML, PAGE_400);
    }
    // msg wins unless empty; a raw application/json body works (fix 12.2 #13).
    let via_msg = c
        .post(
            "/queue",
            &format!(
                "msg={}&body=x",
                urlencode(r#"{"cmd": "add", "queue": "m", "value": "v"}"#)
            ),
        )
        .await;
    assert_seen(
        &via_msg,
        200,
        JSON,
        r#"{"queue": "m", "value": "v", "key": "m:1"}"#,
    );
    let raw = c
        .send(
            c.http
                .post(format!("{}/queue", c.base))
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"cmd": "add", "queue": "m", "value": "w"}"#),
        )
        .await;
    assert_seen(
        &raw,
        200,
        JSON,
        r#"{"queue": "m", "value": "w", "key": "m:2"}"#,
    );
    let help = c.get("/queue").await;
    assert_eq!(
        (help.status.as_u16(), help.location.as_deref()),
        (302, Some("/static/help.html"))
    );
}

#[tokio::test]
async fn policy_control_stats_and_jobs_pages() {
    let s = TestServer::start(&[]).await;
    let c = Client::new(&s);
    assert_seen(
        &c.get("/p/dq").await,
        200,
        HTML,
        "{\"queue\": \"dq\", \"value\": \"unknown\"}\r\n",
    );
    assert_seen(
        &c.post("/p/dq", "policy=roundrobin").await,
        200,
        HTML,
        "OK\r\n",
    );
    assert_seen(
        &c.get("/p/dq?callback=cb").await,
        200,
        HTML,
        "cb({\"queue\": \"dq\", \"value\": \"roundrobin\"});\r\n",
    );
    assert_seen(
        &c.post("/p/dq", "policy=bogus").await,
        200,
        HTML,
        "null\r\n",
    );
    assert_seen(&c.post("/p/dq", "policy=").await, 400, HTML, PAGE_400);
    assert_seen(
        &c.post("/p/dq?callback=cb", "policy=broadcast").await,
        200,
        HTML,
        "cb(OK);\r\n",
    );
    assert_seen(
        &c.get("/p/dq").await,
        200,
        HTML,
        "{\"queue\": \"dq\", \"value\": \"broadcast\"}\r\n",
    );

    // Control: never set is null; a first message starts it.
    let control = |q: &str, status: &str| {
        format!("{{\"queue\": \"{q}\", \"status\": {{\"queue\": \"{q}\", \"status\": {status}}}, \"redis\": \"{STORE}\"}}\r\n")
    };
    assert_seen(
        &c.get("/control/new").await,
        200,
        JSON,
        &control("new", "null"),
    );
    c.post("/q/cq", "value=m").await;
    assert_seen(&c.get("/control/cq").await, 200, JSON, &control("cq", "1"));
    assert_seen(
        &c.post("/control/cq", "status=stop").await,
        200,
        HTML,
        "{\"stat\": {\"queue\": \"cq\", \"status\": 0}}\r\n",
    );
    assert_seen(&c.get("/control/cq").await, 200, JSON, &control("cq", "0"));
    assert_seen(
        &c.post("/control/cq?callback=cb", "status=start").await,
        200,
        HTML,
        "cb({\"stat\": {\"queue\": \"cq\", \"status\": 1}})\r\n",
    );
    assert_seen(
        &c.post("/control/cq", "status=bogus").await,
        200,
        HTML,
        "{\"stat\": \"invalid status: bogus\"}\r\n",
    );
    assert_seen(
        &c.post("/control/cq", "status=").await,
        200,
        HTML,
        "{\"stat\": \"invalid status: None\"}\r\n",
    );
    // A status set before the first message is kept (fix 12.2 #16).
    c.post("/control/early", "status=stop").await;
    c.post("/q/early", "value=m").await;
    assert_seen(
        &c.get("/control/early").await,
        200,
        JSON,
        &control("early", "0"),
    );
    // The whole list lists the real queues (fix 12.2 #6).
    let all = c.get("/control/").await;
    assert_eq!(all.status, 200);
    assert!(
        all.body.starts_with("{\"count\": 3, \"queues\": {"),
        "{all:?}"
    );
    assert!(
        all.body
            .contains("\"early\": {\"queue\": \"early\", \"status\": 0}"),
        "{all:?}"
    );
    assert!(
        all.body
            .ends_with(&format!("}}, \"redis\": \"{STORE}\"}}\r\n")),
        "{all:?}"
    );

    // Stats: one queue, all queues (raw policy ids, "" when never set), JSONP without ;.
    assert_seen(
        &c.get("/stats/cq").await,
        200,
        JSON,
        &format!("{{\"queue\": \"cq\", \"redis\": \"{STORE}\", \"len\": 1}}"),
    );
    assert_seen(
        &c.get("/stats/cq?callback=cb").await,
        200,
        JSON,
        &format!("cb({{\"queue\": \"cq\", \"redis\": \"{STORE}\", \"len\": 1}})"),
    );
    let all = c.get("/stats/").await;
    assert_eq!(all.content_type.as_deref(), Some(JSON));
    assert!(
        all.body.starts_with("{\"count\": 3, \"queues\": {"),
        "{all:?}"
    );
    assert!(
        all.body
            .contains("\"cq\": {\"status\": 1, \"policy\": \"\", \"name\": \"cq\", \"len\": 1}"),
        "{all:?}"
    );
    assert!(
        all.body
            .contains("\"dq\": {\"status\": \"\", \"policy\": 1, \"name\": \"dq\", \"len\": 0}"),
        "{all:?}"
    );
    assert!(
        all.body.contains(
            "\"early\": {\"status\": 0, \"policy\": \"\", \"name\": \"early\", \"len\": 1}"
        ),
        "{all:?}"
    );
    assert!(
        all.body.ends_with(&format!("}}, \"redis\": \"{STORE}\"}}")),
        "{all:?}"
    );

    // The jobs page: newest keys first, escaped once.
    for i in 0..12 {
        c.post("/q/a%26b", &format!("value=v{i}")).await;
    }
    let jobs = c.get("/j/a%26b").await;
    assert_eq!(jobs.content_type.as_deref(), Some(HTML));
    assert!(
        jobs.body.contains("<title>jobs in queue a&amp;b</title>"),
        "{jobs:?}"
    );
    assert!(
        jobs.body.contains("queue objects: {'objects': 12}"),
        "{jobs:?}"
    );
    assert!(jobs.body.contains("job count: 12"), "{jobs:?}");
    assert!(
        jobs.body.contains("<li>a&amp;b:12</li><li>a&amp;b:11</li>"),
        "{jobs:?}"
    );
    assert!(!jobs.body.contains("a&amp;b:2<"), "only ten: {jobs:?}");
}

#[tokio::test]
async fn the_acl_file_refuses_by_address_and_by_password_and_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl.conf");
    std::fs::write(
        &acl,
        "[rest:producer]\nhosts_allow = 10.\n\n[rest:consumer]\nusername = u\npassword = p\n",
    )
    .unwrap();
    let s = TestServer::start(&["--restmq-acl", acl.to_str().unwrap()]).await;
    let c = Client::new(&s);
    // The address check comes before the arguments: 401, even without a value.
    let refused = c.post("/q/acl", "").await;
    assert_seen(&refused, 401, HTML, PAGE_401);
    assert_eq!(refused.auth, None);
    let challenged = c.get("/q/acl").await;
    assert_seen(&challenged, 401, HTML, PAGE_401);
    assert_eq!(
        challenged.auth.as_deref(),
        Some("Basic realm=\"RestMQ Restricted Access\"")
    );
    let wrong = c
        .send(
            c.http
                .get(format!("{}/q/acl", c.base))
                .basic_auth("u", Some("nope")),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let right = c
        .send(
            c.http
                .get(format!("{}/q/acl", c.base))
                .basic_auth("u", Some("p")),
        )
        .await;
    assert_eq!(right.status, 204, "{right:?}");
    // /j/ and GET /queue have no ACL.
    assert_eq!(c.get("/j/acl").await.status, 200);
    // A broken file at start is an error with the reason.
    std::fs::write(&acl, "[rest:producer\n").unwrap();
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_godwit"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--redis",
            "off",
            "--memcache",
            "off",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--restmq-acl")
        .arg(&acl)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("ACL"),
        "{bad:?}"
    );
}

/// Form-urlencodes `text`.
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn collectd_handlers_are_off_by_default_and_store_collectd_text_as_json_when_on() {
    let off = TestServer::start(&[]).await;
    let c = Client::new(&off);
    assert_seen(&c.post("/collectd/data", "x").await, 404, HTML, PAGE_404);
    // favicon and robots are static paths: 404 without a file, 405 for other methods.
    assert_seen(&c.get("/favicon.ico").await, 404, HTML, PAGE_404);
    assert_seen(&c.post("/robots.txt", "").await, 405, HTML, PAGE_405);

    let s = TestServer::start(&["--restmq-collectd"]).await;
    let c = Client::new(&s);
    let text = |path: &str, content_type: &str, body: &str| {
        c.http
            .post(format!("{}{path}", c.base))
            .header(CONTENT_TYPE, content_type.to_string())
            .body(body.to_string())
    };
    let data = "PUTVAL web1/cpu-0/cpu-idle interval=10 N:98.5\nSeverity: OKAY\n";
    let stored = c.send(text("/collectd/data", "text/plain", data)).await;
    assert_seen(&stored, 200, HTML, "collectd_data:1\r\n");
    let event = "Severity: FAILURE\nHost: web1\n\nDisk </dev/sda> is full\n";
    let stored = c
        .send(text("/collectd/event?callback=cb", "text/plain", event))
        .await;
    assert_seen(&stored, 200, HTML, "cb(collectd_event:1);\r\n");
    let stored = c
        .send(text("/collectd/data", "application/json", "{\"raw\": 1}"))
        .await;
    assert_seen(&stored, 200, HTML, "collectd_data:2\r\n");
    // Refused: another content type, a line that does not parse, another name.
    let refused = c.send(text("/collectd/data", "text/csv", data)).await;
    assert_eq!(refused.status, 415, "{refused:?}");
    let refused = c
        .send(text("/collectd/data", "text/plain", "PUTVAL a/b 1 2"))
        .await;
    assert_seen(&refused, 400, HTML, PAGE_400);
    let refused = c.send(text("/collectd/other", "text/plain", data)).await;
    assert_seen(&refused, 400, HTML, PAGE_400);
    // What was stored, read back as RestMQ messages (the JSON text is the value).
    let got = c.get("/q/collectd_data").await;
    let v: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    let records: serde_json::Value = serde_json::from_str(v["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        records,
        serde_json::json!([
            {"host": "web1", "type_instance": "cpu-idle", "plugin_instance": "cpu-0",
             "value": "N:98.5", "interval": "10"},
            {"severity": "OKAY"}
        ])
    );
    // Stored as plain `json.dumps` text (no `<\/` rewrite): the native peek shows the
    // body as it is.
    let peeked = s.get("/v1/queues/collectd_event/peek").await;
    assert_eq!(
        peeked.json["messages"][0]["body"],
        "[{\"severity\": \"FAILURE\"}, {\"host\": \"web1\"}, \
         {\"event_text\": \"Disk </dev/sda> is full\"}]",
        "{peeked:?}"
    );
}

/// A message whose record went bad on disk after it was accepted is skipped (the core
/// logs and counts it) and the hard GET and the JSON `take` answer the next one, where
/// they once indexed an empty delivery.
#[tokio::test]
async fn a_record_unreadable_on_disk_is_skipped_by_the_hard_get_and_take() {
    let s = TestServer::start(&["--fsync", "always"]).await;
    let c = Client::new(&s);
    for v in [
        "first-bad-aaaa",
        "second-good",
        "third-bad-bbbb",
        "fourth-good",
    ] {
        assert_eq!(c.post("/q/rot", &format!("value={v}")).await.status, 200);
    }
    common::spoil_bodies(&s.data_dir(), &["first-bad-aaaa", "third-bad-bbbb"]);

    let got = c.get("/q/rot").await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.body.contains("\"second-good\""), "{got:?}");
    let got = c
        .post(
            "/queue",
            &format!("body={}", urlencode(r#"{"cmd": "take", "queue": "rot"}"#)),
        )
        .await;
    assert!(got.body.contains("fourth-good"), "{got:?}");
    let got = c.get("/q/rot").await;
    assert!(!got.body.contains("good"), "nothing left: {got:?}");
    s.assert_still_serving().await;
}
