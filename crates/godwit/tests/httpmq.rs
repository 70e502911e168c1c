//! httpmq's dialect end to end (`specs/httpmq.md`): its ten unit cases and its
//! `correctness()` and `speed()` sequences as HTTP scenarios, every fix of section 6.2 /
//! 6.3, bad input, and durability across kill -9. Every scenario runs against both
//! mounts: `/httpmq` on the main port and the root of `--httpmq-listen`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{free_port, TestServer};
use reqwest::Method;
use serde_json::Value;

/// One mount of the dialect, with a topic namespace of its own so that the two mounts
/// of one server do not share topics.
struct Mount {
    client: reqwest::Client,
    /// `http://host:port` + the prefix (`/httpmq` or empty).
    base: String,
    /// The main port's root, for the native API.
    main: String,
    /// `host:port` of the listener, for raw requests.
    addr: String,
    /// The path prefix (`/httpmq` or empty).
    prefix: String,
    ns: String,
}

/// A reply as an httpmq client sees it.
#[derive(Debug)]
struct Hm {
    status: u16,
    content_type: String,
    content_length: Option<u64>,
    body: Vec<u8>,
}

impl Hm {
    #[track_caller]
    fn is(&self, status: u16, body: &[u8]) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.body, body, "{self:?}");
        assert_eq!(self.content_type, "text/html", "{self:?}");
    }
}

impl Mount {
    /// A topic name in this mount's namespace.
    fn t(&self, name: &str) -> String {
        format!("{}{name}", self.ns)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Hm {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let content_length = header(reqwest::header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        let body = resp.bytes().await.expect("body").to_vec();
        Hm {
            status,
            content_type,
            content_length,
            body,
        }
    }

    async fn sub(&self, topic: &str, user: &str) -> Hm {
        self.call(Method::POST, &format!("/{}/{user}", self.t(topic)), None)
            .await
    }

    async fn unsub(&self, topic: &str, user: &str) -> Hm {
        self.call(Method::DELETE, &format!("/{}/{user}", self.t(topic)), None)
            .await
    }

    async fn publish(&self, topic: &str, body: &[u8]) -> Hm {
        self.call(
            Method::POST,
            &format!("/{}", self.t(topic)),
            Some(body.to_vec()),
        )
        .await
    }

    async fn fetch(&self, topic: &str, user: &str) -> Hm {
        self.call(Method::GET, &format!("/{}/{user}", self.t(topic)), None)
            .await
    }

    async fn head(&self, topic: &str, user: &str) -> Hm {
        self.call(Method::HEAD, &format!("/{}/{user}", self.t(topic)), None)
            .await
    }

    /// The native view of a topic's subscriptions: (name, ready) pairs, or `None` when
    /// the queue does not exist.
    async fn subscriptions(&self, topic: &str) -> Option<Vec<(String, u64)>> {
        let name = self.t(topic);
        let resp = self
            .client
            .get(format!("{}/v1/queues/{name}/subscriptions", self.main))
            .send()
            .await
            .expect("native subscriptions");
        if resp.status().as_u16() == 404 {
            return None;
        }
        let json: Value = resp.json().await.expect("json");
        let mut out: Vec<(String, u64)> = json["subscriptions"]
            .as_array()
            .expect("subscriptions array")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_string(),
                    s["ready"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        out.sort();
        Some(out)
    }

    /// A raw HTTP/1.1 exchange (`request` without the trailing CRLF pair, path relative
    /// to the mount); returns the status line and the whole reply.
    fn raw(&self, request_line_and_headers: &str) -> (String, String) {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        let req = request_line_and_headers.replacen(" /", &format!(" {}/", self.prefix), 1);
        write!(s, "{req}\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let line = text.lines().next().unwrap_or("").to_string();
        (line, text)
    }
}

/// A server with the dialect's own listener, and its two mounts.
async fn server(extra: &[&str]) -> (TestServer, u16) {
    let own = free_port();
    let listen = format!("127.0.0.1:{own}");
    let mut args = vec!["--httpmq-listen", listen.as_str()];
    args.extend_from_slice(extra);
    (TestServer::start(&args).await, own)
}

fn mounts(server: &TestServer, own: u16) -> [Mount; 2] {
    let main = server.url("");
    let client = reqwest::Client::new();
    [
        Mount {
            client: client.clone(),
            base: server.url("/httpmq"),
            main: main.clone(),
            addr: format!("127.0.0.1:{}", server.port()),
            prefix: "/httpmq".into(),
            ns: "p-".into(),
        },
        Mount {
            client,
            base: format!("http://127.0.0.1:{own}"),
            main,
            addr: format!("127.0.0.1:{own}"),
            prefix: String::new(),
            ns: "o-".into(),
        },
    ]
}

/// The spec's ten unit tests (5.1), as what a client observes.
#[tokio::test]
async fn the_ten_unit_cases() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        // 1. pop_message: a message held for two users survives one fetch.
        m.sub("pop", "a").await.is(200, b"Subscription succeeded");
        m.sub("pop", "b").await.is(200, b"Subscription succeeded");
        m.fetch("pop", "a").await.is(204, b"");
        m.publish("pop", b"fake_data").await.is(200, b"");
        m.fetch("pop", "a").await.is(200, b"fake_data");
        assert_eq!(
            m.subscriptions("pop").await,
            Some(vec![("a".into(), 0), ("b".into(), 1)])
        );
        m.fetch("pop", "b").await.is(200, b"fake_data");
        m.fetch("pop", "b").await.is(204, b"");

        // 2. subscribe: after three messages a new user starts past them.
        m.sub("s", "early").await.is(200, b"Subscription succeeded");
        for i in 1..=3 {
            m.publish("s", format!("m{i}").as_bytes())
                .await
                .is(200, b"");
        }
        m.sub("s", "late").await.is(200, b"Subscription succeeded");
        m.fetch("s", "late").await.is(204, b"");
        m.publish("s", b"m4").await.is(200, b"");
        m.fetch("s", "late").await.is(200, b"m4");

        // 3. unsubscribe without a subscription: unknown topic, and another user.
        m.unsub("nowhere", "u").await.is(404, b"");
        m.unsub("s", "stranger").await.is(404, b"");

        // 4. unsubscribe with no messages.
        m.sub("u4", "u").await.is(200, b"Subscription succeeded");
        m.unsub("u4", "u").await.is(200, b"");

        // 5. unsubscribe with messages: the only claim goes, nothing is left.
        m.sub("u5", "u").await.is(200, b"Subscription succeeded");
        m.publish("u5", b"fake_data").await.is(200, b"");
        assert_eq!(m.subscriptions("u5").await, Some(vec![("u".into(), 1)]));
        m.unsub("u5", "u").await.is(200, b"");
        assert_eq!(m.subscriptions("u5").await, Some(vec![]));
        m.sub("u5", "u").await.is(200, b"Subscription succeeded");
        m.fetch("u5", "u").await.is(204, b"");

        // 6. unsubscribe after a fetch: the other user still has all three.
        m.sub("u6", "u1").await.is(200, b"Subscription succeeded");
        m.sub("u6", "u2").await.is(200, b"Subscription succeeded");
        for i in 1..=3 {
            m.publish("u6", format!("m{i}").as_bytes())
                .await
                .is(200, b"");
        }
        m.fetch("u6", "u1").await.is(200, b"m1");
        m.unsub("u6", "u1").await.is(200, b"");
        assert_eq!(m.subscriptions("u6").await, Some(vec![("u2".into(), 3)]));
        for i in 1..=3 {
            m.fetch("u6", "u2")
                .await
                .is(200, format!("m{i}").as_bytes());
        }

        // 7. publish without subscribers: 200 and nothing stored (no queue at all).
        m.publish("u7", b"fake_data").await.is(200, b"");
        assert_eq!(m.subscriptions("u7").await, None);

        // 8. publish with two subscribers: one message for both.
        m.sub("u8", "a").await.is(200, b"Subscription succeeded");
        m.sub("u8", "b").await.is(200, b"Subscription succeeded");
        m.publish("u8", b"fake_data").await.is(200, b"");
        assert_eq!(
            m.subscriptions("u8").await,
            Some(vec![("a".into(), 1), ("b".into(), 1)])
        );

        // 9. fetch: the body, then 204.
        m.sub("u9", "u").await.is(200, b"Subscription succeeded");
        m.publish("u9", b"fake_data").await.is(200, b"");
        m.fetch("u9", "u").await.is(200, b"fake_data");
        m.fetch("u9", "u").await.is(204, b"");
        assert_eq!(m.subscriptions("u9").await, Some(vec![("u".into(), 0)]));

        // 10. fetch while not subscribed.
        m.fetch("u9", "other").await.is(404, b"");
        m.fetch("u10", "u").await.is(404, b"");
    }
}

/// `testbench.correctness()` (5.2), step by step.
#[tokio::test]
async fn the_correctness_sequence() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        m.publish("t1", b"t1m0").await.is(200, b"");
        for (t, u) in [
            ("t1", "u1"),
            ("t1", "u2"),
            ("t1", "u3"),
            ("t2", "u1"),
            ("t2", "u2"),
        ] {
            m.sub(t, u).await.is(200, b"Subscription succeeded");
        }
        for body in ["t1m1", "t1m2", "t1m3"] {
            m.publish("t1", body.as_bytes()).await.is(200, b"");
        }
        for body in ["t2m1", "t2m2"] {
            m.publish("t2", body.as_bytes()).await.is(200, b"");
        }
        m.fetch("t1", "u1").await.is(200, b"t1m1");
        m.fetch("t1", "u2").await.is(200, b"t1m1");
        m.unsub("t1", "u2").await.is(200, b"");
        m.unsub("t1", "u2").await.is(404, b"");
        m.sub("t1", "u2").await.is(200, b"Subscription succeeded");
        m.fetch("t1", "u2").await.is(204, b"");
        m.publish("t1", b"t1m4").await.is(200, b"");
        m.fetch("t1", "u2").await.is(200, b"t1m4");
        m.fetch("t1", "u2").await.is(204, b"");
        m.fetch("t2", "u2").await.is(200, b"t2m1");
        m.fetch("t1", "u3").await.is(200, b"t1m1");
        m.fetch("t2", "u3").await.is(404, b"");
    }
}

/// `testbench.speed(n)` (5.2) as a functional check: four users, a no-op re-subscribe,
/// a publish, and each user fetches exactly that message.
#[tokio::test]
async fn the_speed_sequence_delivers_each_message_to_each_user_once() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        for u in ["u1", "u2", "u3", "u4"] {
            m.sub("t1", u).await.is(200, b"Subscription succeeded");
        }
        for i in 0..100 {
            m.sub("t1", "u4").await.is(200, b"Subscription succeeded");
            m.publish("t1", i.to_string().as_bytes()).await.is(200, b"");
            for u in ["u1", "u2", "u3", "u4"] {
                m.fetch("t1", u).await.is(200, i.to_string().as_bytes());
            }
        }
        for u in ["u1", "u2", "u3", "u4"] {
            m.fetch("t1", u).await.is(204, b"");
        }
    }
}

/// 6.1: raw bodies byte for byte whatever the content type, an empty body is a message,
/// `+` is kept and escapes decoded, everything else is an empty 404.
#[tokio::test]
async fn bodies_names_and_unknown_routes() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        m.sub("b", "u").await.is(200, b"Subscription succeeded");
        let binary: Vec<u8> = (0..=255u8).collect();
        m.publish("b", &binary).await.is(200, b"");
        let form = m
            .client
            .post(format!("{}/{}", m.base, m.t("b")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=1&b=%20")
            .send()
            .await
            .expect("form post");
        assert_eq!(form.status().as_u16(), 200);
        m.publish("b", b"").await.is(200, b"");
        m.fetch("b", "u").await.is(200, &binary);
        m.fetch("b", "u").await.is(200, b"a=1&b=%20");
        m.fetch("b", "u").await.is(200, b"");
        m.fetch("b", "u").await.is(204, b"");

        // `+` is not a space; `%2B` is the same user.
        let topic = format!("{}a%20b", m.ns);
        m.call(Method::POST, &format!("/{topic}/u+1"), None)
            .await
            .is(200, b"Subscription succeeded");
        m.call(Method::POST, &format!("/{topic}"), Some(b"x".to_vec()))
            .await
            .is(200, b"");
        m.call(Method::GET, &format!("/{topic}/u%2B1"), None)
            .await
            .is(200, b"x");
        assert_eq!(m.subscriptions("a b").await, Some(vec![("u+1".into(), 0)]));

        let t = m.t("b");
        for (method, path) in [
            (Method::GET, format!("/{t}")),
            (Method::DELETE, format!("/{t}")),
            (Method::HEAD, format!("/{t}")),
            (Method::PUT, format!("/{t}/u")),
            (Method::PATCH, format!("/{t}")),
            (Method::GET, "/".to_string()),
            (Method::POST, "/".to_string()),
            (Method::POST, format!("/{t}/")),
            (Method::GET, format!("/{t}/u/")),
            (Method::POST, format!("/{t}/u/x")),
            (Method::GET, format!("//{t}")),
        ] {
            let reply = m.call(method.clone(), &path, None).await;
            assert_eq!(reply.status, 404, "{method} {path}: {reply:?}");
            assert_eq!(reply.body, b"", "{method} {path}");
            if method != Method::HEAD {
                assert_eq!(reply.content_type, "text/html", "{method} {path}");
            }
        }
        // The bare mount point is the original's `/`.
        let bare = m.client.get(&m.base).send().await.expect("bare");
        assert_eq!(bare.status().as_u16(), 404);
        // A lower-case method name is not GET.
        let (line, _) = m.raw(&format!("get /{t}/u HTTP/1.1"));
        assert!(line.contains(" 404 "), "{line}");
        // Nothing above consumed or stored anything.
        assert_eq!(m.subscriptions("b").await, Some(vec![("u".into(), 0)]));
    }
}

/// 6.2 #1: HEAD answers what GET would, with the message's length, and consumes nothing.
#[tokio::test]
async fn head_peeks_without_consuming() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        m.head("h", "u").await.is(404, b"");
        m.sub("h", "u").await.is(200, b"Subscription succeeded");
        let empty = m.head("h", "u").await;
        empty.is(204, b"");
        m.publish("h", b"twelve bytes").await.is(200, b"");
        for _ in 0..3 {
            let head = m.head("h", "u").await;
            head.is(200, b"");
            assert_eq!(head.content_length, Some(12), "{head:?}");
        }
        m.fetch("h", "u").await.is(200, b"twelve bytes");
        m.head("h", "u").await.is(204, b"");
        m.head("h", "other").await.is(404, b"");
    }
}

/// 6.2 #2: names are split on the raw `/`, so `%2F` is a slash inside a name.
#[tokio::test]
async fn encoded_slash_is_part_of_a_name() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        let x = m.t("x");
        m.call(Method::POST, &format!("/{x}%2Fy/u"), None)
            .await
            .is(200, b"Subscription succeeded");
        m.call(Method::POST, &format!("/{x}%2Fy"), Some(b"to x/y".to_vec()))
            .await
            .is(200, b"");
        // Topic `x` was never subscribed: the publish above did not go there.
        assert_eq!(m.subscriptions("x").await, None);
        m.call(Method::GET, &format!("/{x}%2Fy/u"), None)
            .await
            .is(200, b"to x/y");
        // A user name may hold a slash too.
        m.call(Method::POST, &format!("/{x}/a%2Fb"), None)
            .await
            .is(200, b"Subscription succeeded");
        assert_eq!(m.subscriptions("x").await, Some(vec![("a/b".into(), 0)]));
    }
}

/// 6.2 #3: a body up to the message limit is stored whole; a larger one is a 413 and
/// stores nothing.
#[tokio::test]
async fn size_limit_is_explicit() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        m.sub("big", "u").await.is(200, b"Subscription succeeded");
        let mib: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        m.publish("big", &mib).await.is(200, b"");
        let mut over = mib.clone();
        over.push(0);
        m.publish("big", &over).await.is(413, b"");
        assert_eq!(m.subscriptions("big").await, Some(vec![("u".into(), 1)]));
        let got = m.fetch("big", "u").await;
        assert_eq!(got.status, 200);
        assert!(got.body == mib, "the 1 MiB body came back altered");
        m.fetch("big", "u").await.is(204, b"");
    }
}

/// 6.2 #7: a topic nobody subscribed to gets no state; one whose users left keeps no
/// messages.
#[tokio::test]
async fn topics_without_subscribers_hold_nothing() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        for i in 0..20 {
            m.publish("ghost", format!("{i}").as_bytes())
                .await
                .is(200, b"");
        }
        assert_eq!(m.subscriptions("ghost").await, None);
        m.fetch("ghost", "u").await.is(404, b"");
        m.unsub("ghost", "u").await.is(404, b"");
        assert_eq!(m.subscriptions("ghost").await, None);

        m.sub("left", "u").await.is(200, b"Subscription succeeded");
        m.publish("left", b"held").await.is(200, b"");
        m.unsub("left", "u").await.is(200, b"");
        for _ in 0..20 {
            m.publish("left", b"dropped").await.is(200, b"");
        }
        let stats: Value = m
            .client
            .get(format!("{}/v1/queues/{}", m.main, m.t("left")))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        assert_eq!(stats["ready"], 0, "{stats}");
        assert_eq!(stats["bytes"], 0, "{stats}");
        m.sub("left", "u").await.is(200, b"Subscription succeeded");
        m.fetch("left", "u").await.is(204, b"");
    }
}

/// Bad input answers httpmq's form (a status, an empty text/html body), never a panic
/// or a dropped connection.
#[tokio::test]
async fn bad_input_gets_httpmq_errors() {
    let (server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        let long = "n".repeat(256);
        let t = m.t("bad");
        for (method, path) in [
            (Method::POST, "/%FF/u".to_string()),
            (Method::POST, format!("/{t}/%C3")),
            (Method::POST, format!("/{long}/u")),
            (Method::POST, format!("/{t}/{long}")),
            (Method::POST, format!("/{t}/a%0Ab")),
            (Method::POST, format!("/{long}")),
            (Method::POST, "/%FF".to_string()),
            (Method::GET, format!("/{t}/{long}")),
            (Method::DELETE, format!("/{t}/%FF")),
        ] {
            let reply = m.call(method.clone(), &path, None).await;
            assert_eq!(reply.status, 400, "{method} {path}: {reply:?}");
            assert_eq!(reply.body, b"", "{method} {path}");
            assert_eq!(reply.content_type, "text/html", "{method} {path}");
        }
        // A name at the limit works.
        let at_limit = format!("{}{}", m.ns, "n".repeat(255 - m.ns.len()));
        m.call(Method::POST, &format!("/{at_limit}/u"), None)
            .await
            .is(200, b"Subscription succeeded");
        // A Content-Length past any number is refused by the HTTP stack, cleanly.
        let (line, _) = m.raw(&format!(
            "POST /{t} HTTP/1.1\r\nContent-Length: 99999999999999999999999"
        ));
        assert!(line.starts_with("HTTP/1.1 4"), "{line}");
        // A body declared far over the limit is a 413 before it is read.
        let (line, _) = m.raw(&format!("POST /{t} HTTP/1.1\r\nContent-Length: 100000000"));
        assert!(line.contains(" 413 "), "{line}");
        // An unparsable request line is the HTTP stack's 400.
        let (line, _) = m.raw("GARBAGE");
        assert!(line.contains(" 400 "), "{line}");
        // The server still serves.
        m.sub("after", "u").await.is(200, b"Subscription succeeded");
    }
}

/// 6.2 #4, #5 and 6.3 #3: after kill -9 every subscription and every unread message is
/// there, each user continues where it stopped, and a quick subscribe/unsubscribe
/// leaves no stale subscription; non-ASCII names survive.
#[tokio::test]
async fn subscriptions_and_messages_survive_kill9() {
    let (mut server, own) = server(&[]).await;
    for m in mounts(&server, own) {
        m.sub("d", "u1").await.is(200, b"Subscription succeeded");
        m.sub("d", "u2").await.is(200, b"Subscription succeeded");
        for i in 1..=5 {
            m.publish("d", format!("m{i}").as_bytes())
                .await
                .is(200, b"");
        }
        m.fetch("d", "u1").await.is(200, b"m1");
        m.fetch("d", "u1").await.is(200, b"m2");
        m.fetch("d", "u2").await.is(200, b"m1");
        for _ in 0..10 {
            m.sub("d", "flap").await.is(200, b"Subscription succeeded");
            m.unsub("d", "flap").await.is(200, b"");
        }
        m.sub("d", "gone").await.is(200, b"Subscription succeeded");
        m.unsub("d", "gone").await.is(200, b"");
        let cafe = format!("/{}caf%C3%A9/%C3%BCser", m.ns);
        m.call(Method::POST, &cafe, None)
            .await
            .is(200, b"Subscription succeeded");
        m.call(
            Method::POST,
            &format!("/{}caf%C3%A9", m.ns),
            Some(b"cr\xc3\xa8me".to_vec()),
        )
        .await
        .is(200, b"");
    }
    server.kill9();
    server.restart().await;
    for m in mounts(&server, own) {
        m.fetch("d", "u1").await.is(200, b"m3");
        m.fetch("d", "u2").await.is(200, b"m2");
        m.fetch("d", "flap").await.is(404, b"");
        m.fetch("d", "gone").await.is(404, b"");
        m.sub("d", "u1").await.is(200, b"Subscription succeeded");
        m.fetch("d", "u1").await.is(200, b"m4");
        m.publish("d", b"m6").await.is(200, b"");
        m.fetch("d", "u1").await.is(200, b"m5");
        m.fetch("d", "u1").await.is(200, b"m6");
        m.fetch("d", "u1").await.is(204, b"");
        for i in 3..=6 {
            m.fetch("d", "u2").await.is(200, format!("m{i}").as_bytes());
        }
        m.fetch("d", "u2").await.is(204, b"");
        let cafe = format!("/{}caf%C3%A9/%C3%BCser", m.ns);
        m.call(Method::GET, &cafe, None)
            .await
            .is(200, "crème".as_bytes());
    }
}

/// 6.2 #6: a client that leaves before the message was handed to its connection does not
/// lose it. The message is larger than any socket buffers, and the client reads only the
/// status line before closing with unread bytes (a reset): the server cannot have written
/// the whole message, so the user's next GET gets it again (while the first reply is
/// in flight the message is reserved, and a GET answers 204).
#[tokio::test]
async fn a_vanished_client_loses_no_message() {
    let (server, own) = server(&["--max-message-bytes", "50000000"]).await;
    for m in mounts(&server, own) {
        m.sub("v", "u").await.is(200, b"Subscription succeeded");
        let big: Vec<u8> = (0..40_000_000u32).map(|i| (i % 253) as u8).collect();
        m.publish("v", &big).await.is(200, b"");
        let path = format!("{}/{}/u", m.prefix, m.t("v"));
        let addr = m.addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(&addr).expect("connect");
            shrink_receive_buffer(&s);
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
            let mut first = [0u8; 12];
            s.read_exact(&mut first).expect("status line");
            assert_eq!(&first, b"HTTP/1.1 200");
            // Dropped with unread data: the kernel resets the connection.
        })
        .await
        .expect("client");
        let again = common::eventually(
            Duration::from_secs(20),
            "the user's next message",
            || async {
                let r = m.fetch("v", "u").await;
                (r.status == 200).then_some(r)
            },
        )
        .await;
        assert!(
            again.body == big,
            "the big message did not come back first: {} bytes, {:?}",
            again.body.len(),
            String::from_utf8_lossy(&again.body[..again.body.len().min(20)])
        );
        m.fetch("v", "u").await.is(204, b"");
    }
}

/// Caps the socket's receive buffer (and stops its autotuning), so that the kernel cannot
/// absorb a large reply the client does not read.
fn shrink_receive_buffer(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt(2) on a socket this function borrows, with a c_int option value
    // whose pointer and length are valid for the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF)");
}

/// Storage that cannot take a write answers 503 with an empty body (spec 6.2 #8): a
/// free-space watermark above the disk's size refuses every publish, while subscribing
/// and fetching go on and nothing half-written is delivered.
#[tokio::test]
async fn a_store_refusing_writes_answers_503_with_an_empty_body() {
    let (server, own) = server(&["--min-free-bytes", "1125899906842624"]).await;
    for m in mounts(&server, own) {
        m.sub("full", "u").await.is(200, b"Subscription succeeded");
        m.publish("full", b"not stored").await.is(503, b"");
        m.fetch("full", "u").await.is(204, b"");
        m.head("full", "u").await.is(204, b"");
        assert_eq!(m.subscriptions("full").await, Some(vec![("u".into(), 0)]));
    }
}
