//! The key/value namespace: conditional writes, versions, TTLs, counters, appends,
//! scans, the namespace queues share, limits; each checked again after the broker
//! reopens from its log, and after a checkpoint and compaction have reclaimed the
//! segments that held the writes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use godwit_core::*;

fn set(value: &str) -> KvWrite {
    KvWrite {
        value: Bytes::from(value.to_string()),
        ..KvWrite::default()
    }
}

async fn value(b: &Broker, key: &str) -> Option<String> {
    b.kv_get(key)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.value.to_vec()).unwrap())
}

#[tokio::test]
async fn writes_obey_their_conditions_and_versions_never_repeat() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let r = b.kv_set("a", set("1")).await.unwrap();
    let WriteOutcome::Stored { version: v1 } = r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(r.old, None);
    let absent_only = KvWrite {
        condition: Condition::IfAbsent,
        ..set("2")
    };
    assert_eq!(
        b.kv_set("a", absent_only.clone()).await.unwrap().outcome,
        WriteOutcome::Exists
    );
    let present_only = KvWrite {
        condition: Condition::IfPresent,
        ..set("3")
    };
    assert_eq!(
        b.kv_set("nope", present_only).await.unwrap().outcome,
        WriteOutcome::Missing
    );
    assert_eq!(value(b, "nope").await, None);
    // A compare-and-swap on a stale version is refused and names the current one.
    let r = b.kv_set("a", set("4")).await.unwrap();
    let WriteOutcome::Stored { version: v2 } = r.outcome else {
        panic!()
    };
    assert!(v2 > v1);
    assert_eq!(r.old.unwrap().value, Bytes::from("1"));
    let stale = KvWrite {
        condition: Condition::IfVersion(v1),
        ..set("5")
    };
    assert_eq!(
        b.kv_set("a", stale).await.unwrap().outcome,
        WriteOutcome::VersionMismatch { current: v2 }
    );
    let fresh = KvWrite {
        condition: Condition::IfVersion(v2),
        flags: 7,
        ..set("6")
    };
    assert!(matches!(
        b.kv_set("a", fresh).await.unwrap().outcome,
        WriteOutcome::Stored { .. }
    ));
    let got = b.kv_get("a").await.unwrap().unwrap();
    assert_eq!((got.value, got.flags), (Bytes::from("6"), 7));
    // Versions are unique across keys, also within one multi-set.
    b.kv_set_many(vec![("x".into(), set("x")), ("y".into(), set("y"))], false)
        .await
        .unwrap();
    let vx = b.kv_get("x").await.unwrap().unwrap().version;
    let vy = b.kv_get("y").await.unwrap().unwrap().version;
    assert_ne!(vx, vy);
    assert!(vx > got.version && vy > got.version);
    // MSETNX writes nothing when one key exists.
    assert!(!b
        .kv_set_many(vec![("z".into(), set("z")), ("x".into(), set("x2"))], true)
        .await
        .unwrap());
    assert_eq!(value(b, "z").await, None);
    assert_eq!(value(b, "x").await.as_deref(), Some("x"));

    // The same after a restart from the log: values, flags and versions, and the
    // next version is still new.
    let b2 = open(t.store.clone(), t.clock.clone());
    let again = b2.kv_get("a").await.unwrap().unwrap();
    assert_eq!(again, b.kv_get("a").await.unwrap().unwrap());
    b2.kv_set("w", set("w")).await.unwrap();
    assert!(b2.kv_get("w").await.unwrap().unwrap().version > vy);
}

#[tokio::test]
async fn ttls_expire_keys_and_survive_restarts() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let ttl = KvWrite {
        expiry: Expiry::In(Duration::from_secs(10)),
        ..set("v")
    };
    b.kv_set("session", ttl).await.unwrap();
    b.kv_set("forever", set("v")).await.unwrap();
    assert_eq!(b.kv_ttl("session").await.unwrap(), KvTtl::Ms(10_000));
    assert_eq!(b.kv_ttl("forever").await.unwrap(), KvTtl::Never);
    assert_eq!(b.kv_ttl("none").await.unwrap(), KvTtl::Missing);
    // KEEPTTL keeps it; a plain set clears it.
    t.clock.advance(4_000);
    let keep = KvWrite {
        expiry: Expiry::Keep,
        ..set("v2")
    };
    b.kv_set("session", keep).await.unwrap();
    assert_eq!(b.kv_ttl("session").await.unwrap(), KvTtl::Ms(6_000));
    // Expire, persist.
    assert!(b
        .kv_expire("forever", Expiry::In(Duration::from_secs(1)))
        .await
        .unwrap());
    assert!(b.kv_expire("forever", Expiry::Never).await.unwrap());
    assert_eq!(b.kv_ttl("forever").await.unwrap(), KvTtl::Never);
    assert!(!b.kv_expire("none", Expiry::Never).await.unwrap());
    // A time already past deletes.
    b.kv_set("gone", set("v")).await.unwrap();
    assert!(b.kv_expire("gone", Expiry::At(START_MS)).await.unwrap());
    assert_eq!(value(b, "gone").await, None);
    // Refused: a TTL over the bound.
    assert!(matches!(
        b.kv_expire("forever", Expiry::In(MAX_TTL + Duration::from_secs(1)))
            .await,
        Err(Error::InvalidArgument(_))
    ));

    let reopened = open(t.store.clone(), t.clock.clone());
    assert_eq!(reopened.kv_ttl("session").await.unwrap(), KvTtl::Ms(6_000));
    assert_eq!(value(&reopened, "gone").await, None);
    t.clock.advance(6_000);
    for broker in [b, &reopened] {
        assert_eq!(value(broker, "session").await, None);
        assert_eq!(broker.kv_ttl("session").await.unwrap(), KvTtl::Missing);
        assert_eq!(value(broker, "forever").await.as_deref(), Some("v"));
        // An expired key is absent to conditional writes too.
        let absent_only = KvWrite {
            condition: Condition::IfAbsent,
            ..set("new")
        };
        assert!(matches!(
            broker.kv_set("session", absent_only).await.unwrap().outcome,
            WriteOutcome::Stored { .. }
        ));
    }
}

#[tokio::test]
async fn counters_and_appends() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    assert_eq!(
        b.kv_counter("n", Counter::Signed(5)).await.unwrap(),
        Some(5)
    );
    assert_eq!(
        b.kv_counter("n", Counter::Signed(-7)).await.unwrap(),
        Some(-2)
    );
    b.kv_set("big", set(&i64::MAX.to_string())).await.unwrap();
    assert!(matches!(
        b.kv_counter("big", Counter::Signed(1)).await,
        Err(Error::Overflow(_))
    ));
    b.kv_set("text", set("abc")).await.unwrap();
    assert!(matches!(
        b.kv_counter("text", Counter::Signed(1)).await,
        Err(Error::NotAnInteger(_))
    ));
    // memcached's counters: the key must exist; decr stops at 0; incr wraps.
    let up = |by| Counter::Unsigned { by, down: false };
    let down = |by| Counter::Unsigned { by, down: true };
    assert_eq!(b.kv_counter("mc", up(1)).await.unwrap(), None);
    b.kv_set("mc", set("10")).await.unwrap();
    assert_eq!(b.kv_counter("mc", down(25)).await.unwrap(), Some(0));
    b.kv_set("mc", set(&u64::MAX.to_string())).await.unwrap();
    assert_eq!(b.kv_counter("mc", up(2)).await.unwrap(), Some(1));
    // Appends keep flags and TTL.
    let flagged = KvWrite {
        flags: 3,
        expiry: Expiry::In(Duration::from_secs(60)),
        ..set("mid")
    };
    b.kv_set("s", flagged).await.unwrap();
    assert_eq!(
        b.kv_append("s", Bytes::from("-end"), false, false)
            .await
            .unwrap(),
        Some(7)
    );
    assert_eq!(
        b.kv_append("s", Bytes::from("start-"), true, false)
            .await
            .unwrap(),
        Some(13)
    );
    assert_eq!(
        b.kv_append("absent", Bytes::from("x"), false, false)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        b.kv_append("created", Bytes::from("x"), false, true)
            .await
            .unwrap(),
        Some(1)
    );
    for broker in [b.clone(), open(t.store.clone(), t.clock.clone())] {
        let s = broker.kv_get("s").await.unwrap().unwrap();
        assert_eq!(s.value, Bytes::from("start-mid-end"));
        assert_eq!(s.flags, 3);
        assert_eq!(broker.kv_ttl("s").await.unwrap(), KvTtl::Ms(60_000));
        assert_eq!(value(&broker, "n").await.as_deref(), Some("-2"));
        assert_eq!(value(&broker, "mc").await.as_deref(), Some("1"));
    }
}

#[tokio::test]
async fn queues_and_keys_share_one_namespace() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    push(b, "jobs", "x").await;
    b.kv_set("config", set("v")).await.unwrap();
    assert_eq!(b.kind_of("jobs"), Some(Kind::Queue));
    assert_eq!(b.kind_of("config"), Some(Kind::Value));
    assert_eq!(b.kind_of("neither"), None);
    assert!(matches!(
        b.kv_set("jobs", set("v")).await,
        Err(Error::WrongType(_))
    ));
    assert!(matches!(b.kv_get("jobs").await, Err(Error::WrongType(_))));
    assert!(matches!(
        b.kv_counter("jobs", Counter::Signed(1)).await,
        Err(Error::WrongType(_))
    ));
    assert!(matches!(
        b.push("config", vec![NewMessage::new("m")]).await,
        Err(Error::WrongType(_))
    ));
    assert!(matches!(b.ensure("config").await, Err(Error::WrongType(_))));
    // MGET answers nothing for a queue; DEL of keys leaves queues alone.
    let got = b
        .kv_get_many(&["config".into(), "jobs".into(), "none".into()])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(Option::is_some).collect::<Vec<_>>(),
        vec![true, false, false]
    );
    assert_eq!(
        b.kv_delete(&["jobs".into(), "config".into(), "config".into()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(b.kind_of("jobs"), Some(Kind::Queue));
    // Once a key is gone (deleted or expired) its name can be a queue.
    push(b, "config", "now a queue").await;
    let ttl = KvWrite {
        expiry: Expiry::In(Duration::from_millis(5)),
        ..set("v")
    };
    b.kv_set("brief", ttl).await.unwrap();
    t.clock.advance(5);
    push(b, "brief", "a queue too").await;
    let reopened = open(t.store.clone(), t.clock.clone());
    for broker in [b, &reopened] {
        assert_eq!(broker.kind_of("config"), Some(Kind::Queue));
        assert_eq!(broker.kind_of("brief"), Some(Kind::Queue));
        assert_eq!(broker.kv_stats().keys, 0);
    }
}

#[tokio::test]
async fn scans_page_through_keys_by_prefix_and_pattern() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    for i in 0..25 {
        b.kv_set(&format!("user:{i:02}:name"), set("n"))
            .await
            .unwrap();
        b.kv_set(&format!("user:{i:02}:age"), set("1"))
            .await
            .unwrap();
    }
    b.kv_set("other", set("o")).await.unwrap();
    let mut found = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = b
            .kv_scan(KvScan {
                prefix: "user:".into(),
                pattern: Some("*:name".into()),
                after: after.clone(),
                max: 7,
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.keys.len() <= 7);
        found.extend(page.keys);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("user:{i:02}:name")).collect();
    assert_eq!(found, expected);
    assert_eq!(pages, 8, "50 keys looked at, 7 per page");
    assert!(matches!(
        b.kv_scan(KvScan {
            max: 0,
            ..KvScan::default()
        })
        .await,
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(b.kv_flush().await.unwrap(), 51);
    let reopened = open(t.store.clone(), t.clock.clone());
    assert_eq!(reopened.kv_stats().keys, 0);
}

#[tokio::test]
async fn limits_refuse_growth_but_never_shrinking() {
    let store = std::sync::Arc::new(godwit_core::storage::memory::MemoryStorage::new(1 << 20));
    let clock = std::sync::Arc::new(ManualClock::new(START_MS));
    let config = BrokerConfig {
        max_kv_bytes: 1000,
        max_message_bytes: 600,
        ..BrokerConfig::default()
    };
    let b = Broker::open(store, clock, config).unwrap();
    assert!(matches!(
        b.kv_set("k", set(&"x".repeat(601))).await,
        Err(Error::TooLarge { .. })
    ));
    b.kv_set("k", set(&"x".repeat(500))).await.unwrap();
    assert!(matches!(
        b.kv_set("j", set(&"x".repeat(500))).await,
        Err(Error::KvFull(_))
    ));
    // Overwriting with something smaller, and deleting, always work.
    b.kv_set("k", set("small")).await.unwrap();
    b.kv_set("j", set(&"x".repeat(500))).await.unwrap();
    assert!(matches!(
        b.kv_append("j", Bytes::from("x".repeat(200)), false, false)
            .await,
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(b.kv_delete(&["j".into()]).await.unwrap(), 1);
    assert!(matches!(
        b.kv_set("", set("v")).await,
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        b.kv_set(&"k".repeat(256), set("v")).await,
        Err(Error::InvalidName(_))
    ));
}

#[tokio::test]
async fn values_outlive_the_segments_that_held_their_writes() {
    // Tiny segments: the key's write is in a segment that checkpoints and compaction
    // reclaim once the messages around it are consumed.
    let t = TestBroker::new(512);
    let b = &t.broker;
    b.kv_set("keep", set("the value")).await.unwrap();
    for i in 0..200 {
        push(b, "churn", &format!("message {i}")).await;
    }
    take(b, "churn", 200).await;
    b.kv_set("later", set("also")).await.unwrap();
    b.compact().await.unwrap();
    b.checkpoint().await.unwrap();
    assert!(
        t.store.segment_numbers().len() < 10,
        "segments were reclaimed: {}",
        t.store.segment_numbers().len()
    );
    let reopened = open(t.store.clone(), t.clock.clone());
    assert_eq!(value(&reopened, "keep").await.as_deref(), Some("the value"));
    assert_eq!(value(&reopened, "later").await.as_deref(), Some("also"));
}
