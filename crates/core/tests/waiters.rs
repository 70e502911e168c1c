//! Long-poll waiters are served in arrival order, by hand-off, over one queue or
//! several. The old core woke every waiter and let them race for the message.

mod common;

use std::time::Duration;

use common::*;
use godwit_core::*;
use tokio::task::JoinHandle;

const LONG: Duration = Duration::from_secs(10);

/// Starts a long-poll take over `queues`; it returns the queue that served it and the
/// bodies it got.
fn waiter(broker: &Broker, queues: &'static [&'static str]) -> JoinHandle<(String, Vec<String>)> {
    let b = broker.clone();
    tokio::spawn(async move {
        let d = b.take_any(queues, waiting(1, LONG)).await.unwrap();
        let queue = d.queue().to_string();
        (queue, bodies(&d.into_messages().await.unwrap()))
    })
}

#[tokio::test]
async fn three_waiters_get_three_messages_in_arrival_order() {
    let t = TestBroker::new(1 << 20);
    let mut waiters = Vec::new();
    for _ in 0..3 {
        waiters.push(waiter(&t.broker, &["q"]));
        let_others_run().await;
    }
    for body in ["1", "2", "3"] {
        push(&t.broker, "q", body).await;
        // The push handed its message over at once (reserved for the oldest waiter, or
        // already taken by it): served by hand-off, never left ready for a race of
        // woken readers.
        let stats = t.broker.stats("q").unwrap();
        assert_eq!(stats.ready, 0, "after pushing {body}");
    }
    for (w, want) in waiters.into_iter().zip(["1", "2", "3"]) {
        assert_eq!(w.await.unwrap(), ("q".to_string(), vec![want.to_string()]));
    }
    assert_eq!(t.broker.stats("q").unwrap().ready, 0);
}

#[tokio::test]
async fn a_push_to_the_second_queue_wakes_a_multi_queue_waiter() {
    let t = TestBroker::new(1 << 20);
    let w = waiter(&t.broker, &["a", "b"]);
    let_others_run().await;
    push(&t.broker, "b", "from b").await;
    assert_eq!(t.broker.stats("b").unwrap().in_flight, 1, "handed over");
    assert_eq!(
        w.await.unwrap(),
        ("b".to_string(), vec!["from b".to_string()])
    );
}

#[tokio::test]
async fn a_multi_queue_waiter_served_by_one_queue_is_not_served_again_by_the_other() {
    let t = TestBroker::new(1 << 20);
    let both = waiter(&t.broker, &["a", "b"]);
    let_others_run().await;
    push(&t.broker, "a", "from a").await;
    assert_eq!(
        both.await.unwrap(),
        ("a".to_string(), vec!["from a".to_string()])
    );
    // With no other waiter the push to b stays queued.
    push(&t.broker, "b", "b1").await;
    assert_eq!(t.broker.stats("b").unwrap().ready, 1);
    // A later waiter on b gets what comes next, not a stale registration.
    let later = waiter(&t.broker, &["b"]);
    let_others_run().await;
    assert_eq!(
        later.await.unwrap(),
        ("b".to_string(), vec!["b1".to_string()])
    );
    let later = waiter(&t.broker, &["b"]);
    let_others_run().await;
    push(&t.broker, "b", "b2").await;
    assert_eq!(
        later.await.unwrap(),
        ("b".to_string(), vec!["b2".to_string()])
    );
}

#[tokio::test]
async fn a_waiter_that_is_gone_is_skipped_for_the_next_one() {
    let t = TestBroker::new(1 << 20);
    let first = waiter(&t.broker, &["q"]);
    let_others_run().await;
    let second = waiter(&t.broker, &["q"]);
    let_others_run().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    push(&t.broker, "q", "m").await;
    assert_eq!(
        second.await.unwrap(),
        ("q".to_string(), vec!["m".to_string()])
    );
}
