//! Queue lifecycle and metadata: create that fails when the queue exists, ensure, push
//! only to an existing queue, descriptions, creation time and order, prefix listing,
//! and fan-out-only queues; each checked again after the broker reopens (a crash).

mod common;

use common::*;
use godwit_core::*;

fn names(stats: &[QueueStats]) -> Vec<&str> {
    stats.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn create_fails_when_the_queue_exists_and_creations_are_dated_and_numbered() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let opts = CreateOptions {
        description: Some("invoices to send".into()),
        fanout_only: false,
    };
    b.create("orders.eu", opts.clone()).await.unwrap();
    assert!(matches!(
        b.create("orders.eu", opts).await,
        Err(Error::AlreadyExists(_))
    ));
    t.clock.advance(10);
    assert!(b.ensure("orders.us").await.unwrap());
    assert!(!b.ensure("orders.us").await.unwrap());
    t.clock.advance(10);
    // Created by a push: dated and numbered the same way.
    push(b, "billing", "x").await;
    let too_long = CreateOptions {
        description: Some("d".repeat(MAX_DESCRIPTION_BYTES + 1)),
        fanout_only: false,
    };
    assert!(matches!(
        b.create("long", too_long).await,
        Err(Error::InvalidArgument(_))
    ));
    b.describe("orders.us", Some("the US shop".into()))
        .await
        .unwrap();
    assert!(matches!(
        b.describe("nope", None).await,
        Err(Error::NotFound(_))
    ));

    for broker in [b.clone(), open(t.store.clone(), t.clock.clone())] {
        let all = broker.list();
        assert_eq!(names(&all), vec!["billing", "orders.eu", "orders.us"]);
        let by = |n: &str| all.iter().find(|s| s.name == n).unwrap().clone();
        assert_eq!(
            (
                by("orders.eu").creation,
                by("orders.us").creation,
                by("billing").creation
            ),
            (1, 2, 3)
        );
        assert_eq!(by("orders.eu").created_at_ms, START_MS);
        assert_eq!(by("orders.us").created_at_ms, START_MS + 10);
        assert_eq!(by("billing").created_at_ms, START_MS + 20);
        assert_eq!(
            by("orders.eu").description.as_deref(),
            Some("invoices to send")
        );
        assert_eq!(by("orders.us").description.as_deref(), Some("the US shop"));
        assert_eq!(
            names(&broker.list_prefix("orders.")),
            vec!["orders.eu", "orders.us"]
        );
        assert!(broker.list_prefix("zzz").is_empty());
    }
}

#[tokio::test]
async fn a_push_that_must_find_its_queue_creates_nothing() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let must = PushOptions {
        must_exist: true,
        ..PushOptions::default()
    };
    let err = b
        .push_with("ghost", vec![NewMessage::new("m")], must)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(matches!(b.stats("ghost"), Err(Error::NotFound(_))));
    b.ensure("ghost").await.unwrap();
    let reply = b
        .push_with("ghost", vec![NewMessage::new("m")], must)
        .await
        .unwrap();
    assert_eq!(reply.length, 1);
}

#[tokio::test]
async fn a_fanout_only_queue_keeps_a_message_for_the_subscriptions_that_existed_at_its_push() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let opts = CreateOptions {
        description: None,
        fanout_only: true,
    };
    b.create("news", opts).await.unwrap();
    // Nobody listens: the message is kept nowhere.
    push(b, "news", "unheard").await;
    b.subscribe("news", "mail", StartAt::Latest).await.unwrap();
    push(b, "news", "first").await;
    b.subscribe("news", "sms", StartAt::Latest).await.unwrap();
    push(b, "news", "second").await;

    let stats = b.stats("news").unwrap();
    assert!(stats.fanout_only);
    assert_eq!(
        (stats.ready, stats.subscriptions, stats.total_pushed),
        (0, 2, 3)
    );
    // Reads must name a subscription.
    assert!(matches!(
        b.take("news", now(5)).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        b.peek("news", 5, None).await,
        Err(Error::NotFound(_))
    ));

    let sub = |name: &str| ReadOptions {
        max: 10,
        subscription: Some(name.to_string()),
        ..ReadOptions::default()
    };
    let reopened = open(t.store.clone(), t.clock.clone());
    let mail = reopened.take("news", sub("mail")).await.unwrap();
    assert_eq!(
        bodies(&mail.into_messages().await.unwrap()),
        vec!["first", "second"]
    );
    let sms = reopened.take("news", sub("sms")).await.unwrap();
    assert_eq!(bodies(&sms.into_messages().await.unwrap()), vec!["second"]);
    // Once every subscription consumed them, nothing holds the records: compaction
    // and checkpoints may reclaim them.
    reopened.checkpoint().await.unwrap();
    let subs = reopened.subscriptions("news").unwrap();
    assert!(subs.iter().all(|s| s.ready == 0 && s.in_flight == 0));
    assert!(reopened.stats("news").unwrap().fanout_only);
}

fn keyed(body: &str, key: &str) -> NewMessage {
    NewMessage {
        dedup_id: Some(key.to_string()),
        ..NewMessage::new(body.to_string())
    }
}

#[tokio::test]
async fn dedup_until_consumed_holds_an_id_while_its_message_is_queued_or_leased() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let patch = SettingsPatch {
        dedup_until_consumed: Some(true),
        // A window this short would forget the id at once.
        dedup_window_ms: Some(1),
        ..SettingsPatch::default()
    };
    b.configure("jobs", patch).await.unwrap();
    b.subscribe("jobs", "audit", StartAt::Latest).await.unwrap();
    let first = b.push("jobs", vec![keyed("a", "k1")]).await.unwrap()[0];
    t.clock.advance(60_000);
    let again = b.push("jobs", vec![keyed("a again", "k1")]).await.unwrap()[0];
    assert_eq!(
        again,
        PushOutcome {
            id: first.id,
            duplicate: true
        }
    );

    // Leased from the default subscription, still held by `audit`: still a duplicate.
    let opts = LeaseOptions {
        read: now(1),
        visibility: std::time::Duration::from_secs(30),
    };
    let leased = b
        .lease("jobs", opts)
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    b.ack("jobs", &[leased[0].receipt.clone().unwrap()])
        .await
        .unwrap();
    assert!(b.push("jobs", vec![keyed("x", "k1")]).await.unwrap()[0].duplicate);

    // After a restart the id is held still; once `audit` consumed it, it is free.
    let reopened = open(t.store.clone(), t.clock.clone());
    assert!(reopened.push("jobs", vec![keyed("x", "k1")]).await.unwrap()[0].duplicate);
    let audit = ReadOptions {
        max: 5,
        subscription: Some("audit".into()),
        ..ReadOptions::default()
    };
    let got = reopened
        .take("jobs", audit)
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(bodies(&got), vec!["a"]);
    let fresh = reopened.push("jobs", vec![keyed("b", "k1")]).await.unwrap()[0];
    assert!(!fresh.duplicate);
    assert_eq!(fresh.id, first.id + 1);
}

#[tokio::test]
async fn a_queue_may_take_smaller_messages_than_the_server() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let patch = SettingsPatch {
        max_message_bytes: Some(Some(4)),
        ..SettingsPatch::default()
    };
    b.configure("small", patch).await.unwrap();
    push(b, "small", "four").await;
    let err = b
        .push("small", vec![NewMessage::new("fives")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { size: 5, limit: 4 }),
        "{err:?}"
    );
    let zero = SettingsPatch {
        max_message_bytes: Some(Some(0)),
        ..SettingsPatch::default()
    };
    assert!(matches!(
        b.configure("small", zero).await,
        Err(Error::InvalidArgument(_))
    ));
    // The setting is durable, and clearing it restores the server's limit.
    let reopened = open(t.store.clone(), t.clock.clone());
    assert_eq!(
        reopened.settings("small").unwrap().max_message_bytes,
        Some(4)
    );
    let clear = SettingsPatch {
        max_message_bytes: Some(None),
        ..SettingsPatch::default()
    };
    reopened.configure("small", clear).await.unwrap();
    reopened
        .push("small", vec![NewMessage::new("fives")])
        .await
        .unwrap();
}
