//! Blocking writers ([`Overflow::Block`], queue_service's bounded queue): a push to a
//! full queue waits until a take, purge or settings change makes room, for at most its
//! wait, and a push that leaves while it waits leaves nothing behind.

mod common;

use std::time::Duration;

use common::*;
use godwit_core::*;

async fn blocking(max_length: u64) -> TestBroker {
    let t = TestBroker::new(1 << 20);
    let patch = SettingsPatch {
        max_length: Some(Some(max_length)),
        overflow: Some(Overflow::Block),
        ..SettingsPatch::default()
    };
    t.broker.configure("q", patch).await.unwrap();
    t
}

fn waiting_push(
    t: &TestBroker,
    body: &str,
    wait: Duration,
) -> tokio::task::JoinHandle<Result<PushReply>> {
    let broker = t.broker.clone();
    let body = body.to_string();
    tokio::spawn(async move {
        let opts = PushOptions {
            wait: Some(wait),
            ..PushOptions::default()
        };
        broker
            .push_with("q", vec![NewMessage::new(body)], opts)
            .await
    })
}

#[tokio::test]
async fn a_push_to_a_full_queue_waits_for_a_take_and_then_lands_last() {
    let t = blocking(2).await;
    push(&t.broker, "q", "a").await;
    push(&t.broker, "q", "b").await;
    let third = waiting_push(&t, "c", Duration::from_secs(30));
    let_others_run().await;
    assert!(!third.is_finished(), "the queue is full: the push waits");
    assert_eq!(t.broker.stats("q").unwrap().ready, 2);

    assert_eq!(bodies(&take(&t.broker, "q", 1).await), ["a"]);
    let reply = third.await.unwrap().unwrap();
    assert!(!reply.outcomes[0].duplicate);
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["b", "c"]);
}

#[tokio::test]
async fn purge_and_raising_the_limit_free_blocked_pushes_too() {
    let t = blocking(1).await;
    push(&t.broker, "q", "a").await;
    let second = waiting_push(&t, "b", Duration::from_secs(30));
    let_others_run().await;
    assert!(!second.is_finished());
    t.broker.purge("q").await.unwrap();
    second.await.unwrap().unwrap();
    assert_eq!(t.broker.stats("q").unwrap().ready, 1);

    let third = waiting_push(&t, "c", Duration::from_secs(30));
    let_others_run().await;
    assert!(!third.is_finished());
    let raise = SettingsPatch {
        max_length: Some(Some(5)),
        ..SettingsPatch::default()
    };
    t.broker.configure("q", raise).await.unwrap();
    third.await.unwrap().unwrap();
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["b", "c"]);
}

#[tokio::test]
async fn a_blocked_push_gives_up_after_its_wait_with_queue_full_and_stores_nothing() {
    let t = blocking(1).await;
    push(&t.broker, "q", "a").await;
    let second = waiting_push(&t, "b", Duration::from_millis(200));
    let result = second.await.unwrap();
    assert!(matches!(result, Err(Error::QueueFull(_))), "{result:?}");
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["a"]);
}

#[tokio::test]
async fn a_push_larger_than_the_whole_queue_is_refused_at_once() {
    let t = blocking(2).await;
    let three = (0..3).map(|i| NewMessage::new(format!("m{i}"))).collect();
    let result = t.broker.push("q", three).await;
    assert!(matches!(result, Err(Error::QueueFull(_))), "{result:?}");
    assert_eq!(t.broker.stats("q").unwrap().ready, 0);
}

#[tokio::test]
async fn a_blocked_push_that_is_dropped_leaves_nothing_and_later_pushes_still_wait_their_turn() {
    let t = blocking(1).await;
    push(&t.broker, "q", "a").await;
    let gone = waiting_push(&t, "never", Duration::from_secs(30));
    let_others_run().await;
    gone.abort();
    let _ = gone.await;
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["a"]);
    push(&t.broker, "q", "b").await;
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["b"]);
}

#[tokio::test]
async fn stop_waiting_ends_a_blocked_push_with_queue_full() {
    let t = blocking(1).await;
    push(&t.broker, "q", "a").await;
    let second = waiting_push(&t, "b", Duration::from_secs(30));
    let_others_run().await;
    t.broker.stop_waiting();
    let result = second.await.unwrap();
    assert!(matches!(result, Err(Error::QueueFull(_))), "{result:?}");
}

#[tokio::test]
async fn a_blocked_queue_survives_a_restart_with_its_policy() {
    let t = blocking(1).await;
    push(&t.broker, "q", "a").await;
    let reopened = open(t.store.clone(), t.clock.clone());
    assert_eq!(reopened.settings("q").unwrap().overflow, Overflow::Block);
    assert_eq!(reopened.stats("q").unwrap().ready, 1);
}
