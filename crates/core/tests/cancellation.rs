//! Cancellation loses nothing: a read's messages count as delivered only once its
//! `Delivery` is confirmed, and a long-poll that is dropped leaves no waiter behind.
//! On the old core a take removed its messages before they reached the client, and a
//! cancelled long-poll could leave a registration that swallowed the next push.

mod common;

use std::future::Future as _;
use std::time::Duration;

use common::*;
use godwit_core::*;

const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_take_dropped_after_it_completed_but_before_confirm_loses_nothing() {
    let t = TestBroker::new(1 << 20);
    for body in ["a", "b", "c"] {
        push(&t.broker, "q", body).await;
    }
    let mut delivery = t.broker.take("q", now(2)).await.unwrap();
    assert_eq!(bodies(delivery.messages()), ["a", "b"]);
    assert_eq!(t.broker.stats("q").unwrap().ready, 1, "reserved while open");
    delivery.written();
    drop(delivery);
    // A confirm future that never ran is a cancelled confirm.
    let delivery = t.broker.take("q", now(1)).await.unwrap();
    drop(delivery.into_messages());
    let stats = t.broker.stats("q").unwrap();
    assert_eq!(
        (stats.ready, stats.in_flight, stats.total_consumed),
        (3, 0, 0)
    );
    let got = take(&t.broker, "q", 3).await;
    assert_eq!(bodies(&got), ["a", "b", "c"]);
    assert!(
        got.iter().all(|m| m.deliveries == 1),
        "no delivery was counted"
    );
}

#[tokio::test]
async fn a_long_poll_cancelled_by_timeout_leaves_no_waiter() {
    let t = TestBroker::new(1 << 20);
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        t.broker.take("q", waiting(1, LONG)),
    )
    .await;
    assert!(cancelled.is_err(), "nothing was there to take");
    push(&t.broker, "q", "after").await;
    assert_eq!(t.broker.stats("q").unwrap().ready, 1);
    assert_eq!(bodies(&take(&t.broker, "q", 1).await), ["after"]);
}

#[tokio::test]
async fn a_multi_queue_long_poll_cancelled_by_select_leaves_no_waiter() {
    let t = TestBroker::new(1 << 20);
    tokio::select! {
        _ = t.broker.take_any(&["a", "b"], waiting(1, LONG)) => panic!("nothing to take"),
        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
    }
    push(&t.broker, "a", "to a").await;
    push(&t.broker, "b", "to b").await;
    assert_eq!(bodies(&take(&t.broker, "a", 1).await), ["to a"]);
    assert_eq!(bodies(&take(&t.broker, "b", 1).await), ["to b"]);
}

#[tokio::test]
async fn a_long_poll_served_then_cancelled_before_it_ran_returns_the_message() {
    let t = TestBroker::new(1 << 20);
    let b = t.broker.clone();
    let waiter = tokio::spawn(async move { b.take("q", waiting(1, LONG)).await });
    let_others_run().await;
    // The push hands the message to the waiter under the lock; the waiter is
    // cancelled before it runs again, with the delivery in its channel.
    push(&t.broker, "q", "handed").await;
    let stats = t.broker.stats("q").unwrap();
    assert_eq!(
        (stats.ready, stats.in_flight),
        (0, 1),
        "handed to the waiter"
    );
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(t.broker.stats("q").unwrap().ready, 1);
    assert_eq!(bodies(&take(&t.broker, "q", 1).await), ["handed"]);
}

#[tokio::test]
async fn a_session_lease_dropped_before_confirm_is_not_stranded() {
    let t = TestBroker::new(1 << 20);
    push(&t.broker, "q", "m").await;
    let session = t.broker.open_session();
    let delivery = session.lease("q", lease(1, LONG)).await.unwrap();
    assert_eq!(bodies(delivery.messages()), ["m"]);
    drop(delivery);
    // No visibility wait: the message is ready right away, for anyone.
    assert_eq!(bodies(&take(&t.broker, "q", 1).await), ["m"]);
    assert_eq!(session.end(), 0, "the session owned no lease");
}

#[tokio::test]
async fn a_session_lease_cancelled_while_waiting_is_not_stranded() {
    let t = TestBroker::new(1 << 20);
    let session = t.broker.open_session();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(20),
        session.lease(
            "q",
            LeaseOptions {
                read: waiting(1, LONG),
                visibility: LONG,
            },
        ),
    )
    .await;
    assert!(cancelled.is_err());
    push(&t.broker, "q", "m").await;
    assert_eq!(bodies(&take(&t.broker, "q", 1).await), ["m"]);
    assert_eq!(session.end(), 0);
}

#[tokio::test]
async fn ending_a_session_returns_its_leases_to_the_head_at_once() {
    let t = TestBroker::new(1 << 20);
    for body in ["a", "b", "c"] {
        push(&t.broker, "q", body).await;
    }
    let session = t.broker.open_session();
    let got = session.lease("q", lease(2, LONG)).await.unwrap();
    assert_eq!(bodies(&got.into_messages().await.unwrap()), ["a", "b"]);
    drop(session);
    let stats = t.broker.stats("q").unwrap();
    assert_eq!((stats.ready, stats.in_flight), (3, 0));
    let again = take(&t.broker, "q", 3).await;
    assert_eq!(bodies(&again), ["a", "b", "c"]);
    assert_eq!(
        again.iter().map(|m| m.deliveries).collect::<Vec<_>>(),
        [2, 2, 1]
    );
}

#[tokio::test]
async fn a_session_lease_confirmed_after_its_session_ended_goes_back_at_once() {
    let t = TestBroker::new(1 << 20);
    push(&t.broker, "q", "m").await;
    let session = t.broker.open_session();
    let delivery = session.lease("q", lease(1, LONG)).await.unwrap();
    // The connection closes while the reply is being written: the session ends first,
    // then the write's confirm runs.
    assert_eq!(session.end(), 0);
    delivery.confirm().await.unwrap();
    // Owned by no session, the lease is returned at once rather than held for LONG.
    let back = take(&t.broker, "q", 1).await;
    assert_eq!(bodies(&back), ["m"]);
    assert_eq!(back[0].deliveries, 2);
}

#[tokio::test]
async fn a_push_dropped_while_it_leads_a_batch_strands_no_other_push() {
    let t = TestBroker::new(1 << 20);
    // The first push of a batch leads it: it waits a moment for others to join, then
    // applies them all. Drop it during that wait.
    let mut leader = Box::pin(t.broker.push("q", vec![NewMessage::new("led".to_string())]));
    let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(leader.as_mut().poll(cx))).await;
    assert!(
        polled.is_pending(),
        "the leader waits for its batch to form"
    );
    let follower = tokio::spawn({
        let b = t.broker.clone();
        async move { push(&b, "q", "followed").await }
    });
    let_others_run().await;
    assert!(!follower.is_finished(), "the follower waits for the leader");
    drop(leader);
    let id = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the follower's push is applied although its leader is gone")
        .unwrap();
    // The dropped push was never acknowledged; it was applied all the same (nothing
    // half-done): both are queued, in order.
    assert_eq!(id, 2);
    assert_eq!(bodies(&take(&t.broker, "q", 10).await), ["led", "followed"]);
}
