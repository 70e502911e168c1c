//! `max_bytes` counts body bytes, as documented. The old core mixed record bytes
//! (headers, ids, framing) into the sum, so a queue filled up before its bodies did.

mod common;

use common::*;
use godwit_core::*;

async fn capped(overflow: Overflow) -> TestBroker {
    let t = TestBroker::new(1 << 20);
    let patch = SettingsPatch {
        max_bytes: Some(Some(1000)),
        overflow: Some(overflow),
        ..SettingsPatch::default()
    };
    t.broker.configure("q", patch).await.unwrap();
    for i in 0..10 {
        push(&t.broker, "q", &format!("{i}").repeat(100)).await;
    }
    assert_eq!(t.broker.stats("q").unwrap().bytes, 1000);
    t
}

#[tokio::test]
async fn ten_hundred_byte_bodies_fill_a_thousand_bytes_and_the_eleventh_is_refused() {
    let t = capped(Overflow::Reject).await;
    let eleventh = t
        .broker
        .push("q", vec![NewMessage::new("x".repeat(100))])
        .await;
    assert!(matches!(eleventh, Err(Error::QueueFull(_))), "{eleventh:?}");
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.bytes), (10, 1000));
    // A smaller body still fits once a message is gone.
    take(&t.broker, "q", 1).await;
    push(&t.broker, "q", &"y".repeat(100)).await;
}

#[tokio::test]
async fn with_drop_oldest_the_eleventh_drops_the_first() {
    let t = capped(Overflow::DropOldest).await;
    push(&t.broker, "q", &"x".repeat(100)).await;
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.bytes), (10, 1000));
    let got = take(&t.broker, "q", 20).await;
    assert_eq!(
        got.iter().map(|m| m.id).collect::<Vec<_>>(),
        (2..=11).collect::<Vec<_>>()
    );
}
