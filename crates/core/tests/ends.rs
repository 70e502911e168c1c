//! Both ends of a queue, positions, moves, delete by id, soft gets and what pushes,
//! purges and drops report: what Redis lists, RestMQ's JSON `get`/`del` and Kestrel's
//! abort ask of the core. Each behaviour is also checked after the broker is reopened
//! over the same store (a crash).

mod common;

use std::time::Duration;

use common::*;
use godwit_core::*;

fn msg(body: &str) -> NewMessage {
    NewMessage::new(body.to_string())
}

fn at_head(body: &str) -> NewMessage {
    NewMessage {
        at_head: true,
        ..msg(body)
    }
}

fn with_priority(body: &str, priority: u8) -> NewMessage {
    NewMessage {
        priority,
        ..msg(body)
    }
}

fn from(end: End, max: usize) -> ReadOptions {
    ReadOptions {
        max,
        end,
        ..ReadOptions::default()
    }
}

async fn take_from(b: &Broker, queue: &str, end: End, max: usize) -> Vec<String> {
    let d = b.take(queue, from(end, max)).await.unwrap();
    bodies(&d.into_messages().await.unwrap())
}

async fn range(b: &Broker, queue: &str, start: i64, stop: i64) -> Vec<String> {
    bodies(&b.range(queue, None, start, stop).await.unwrap())
}

async fn push_all(b: &Broker, queue: &str, messages: Vec<NewMessage>) {
    b.push(queue, messages).await.unwrap();
}

#[tokio::test]
async fn the_tail_is_the_other_end_of_the_delivery_order_across_priorities() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    push_all(b, "l", vec![msg("a"), msg("b"), msg("c")]).await;
    push_all(b, "l", vec![at_head("h")]).await;
    // Delivery order: h a b c. The tail is c; peeking from the tail goes backwards.
    let peeked = b.peek_from("l", from(End::Tail, 2)).await.unwrap();
    assert_eq!(bodies(&peeked), vec!["c", "b"]);
    assert_eq!(take_from(b, "l", End::Tail, 1).await, vec!["c"]);
    assert_eq!(take_from(b, "l", End::Head, 1).await, vec!["h"]);

    // A higher priority is nearer the head; the lowest priority's newest is the tail.
    push_all(
        b,
        "l",
        vec![with_priority("urgent", 9), with_priority("low", 0)],
    )
    .await;
    assert_eq!(range(b, "l", 0, -1).await, vec!["urgent", "a", "b", "low"]);
    assert_eq!(take_from(b, "l", End::Tail, 2).await, vec!["low", "b"]);

    let reopened = open(t.store.clone(), t.clock.clone());
    assert_eq!(range(&reopened, "l", 0, -1).await, vec!["urgent", "a"]);
}

#[tokio::test]
async fn a_lease_from_the_tail_and_a_waiting_take_from_the_tail() {
    let t = TestBroker::new(1 << 20);
    let b = t.broker.clone();
    push_all(&b, "w", vec![msg("x"), msg("y")]).await;
    let opts = LeaseOptions {
        read: from(End::Tail, 1),
        visibility: Duration::from_secs(30),
    };
    let leased = b
        .lease("w", opts)
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(bodies(&leased), vec!["y"]);
    assert_eq!(take_from(&b, "w", End::Tail, 5).await, vec!["x"]);

    // A waiting read from the tail is served by the next push.
    let waiter = tokio::spawn({
        let b = b.clone();
        async move {
            let opts = ReadOptions {
                wait: Duration::from_secs(10),
                ..from(End::Tail, 1)
            };
            bodies(
                &b.take("w", opts)
                    .await
                    .unwrap()
                    .into_messages()
                    .await
                    .unwrap(),
            )
        }
    });
    let_others_run().await;
    push_all(&b, "w", vec![msg("late")]).await;
    assert_eq!(waiter.await.unwrap(), vec!["late"]);
}

#[tokio::test]
async fn positions_count_from_either_end_and_are_clipped() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let ten: Vec<NewMessage> = (0..10).map(|i| msg(&format!("m{i}"))).collect();
    push_all(b, "r", ten).await;
    assert_eq!(range(b, "r", 0, 2).await, vec!["m0", "m1", "m2"]);
    assert_eq!(range(b, "r", -3, -1).await, vec!["m7", "m8", "m9"]);
    assert_eq!(range(b, "r", 8, 100).await, vec!["m8", "m9"]);
    assert_eq!(range(b, "r", -100, 0).await, vec!["m0"]);
    // LINDEX is a one-position range.
    assert_eq!(range(b, "r", 4, 4).await, vec!["m4"]);
    assert_eq!(range(b, "r", -1, -1).await, vec!["m9"]);
    assert!(range(b, "r", 5, 4).await.is_empty());
    assert!(range(b, "r", 10, 20).await.is_empty());
    assert!(range(b, "r", i64::MIN, i64::MIN).await.is_empty());
    assert_eq!(range(b, "r", i64::MIN, i64::MAX).await.len(), 10);
    assert!(range(b, "absent", 0, -1).await.is_empty());

    // Messages being delivered are not in the list: positions skip them.
    let held = b.take("r", from(End::Head, 2)).await.unwrap();
    assert_eq!(range(b, "r", 0, 0).await, vec!["m2"]);
    assert_eq!(range(b, "r", 0, -1).await.len(), 8);
    drop(held);
    assert_eq!(range(b, "r", 0, 0).await, vec!["m0"]);

    // More than max_batch at once is refused, not cut short.
    let many: Vec<NewMessage> = (0..1001).map(|i| msg(&format!("n{i}"))).collect();
    for chunk in many.chunks(500) {
        push_all(b, "big", chunk.to_vec()).await;
    }
    let err = b.range("big", None, 0, -1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(b.range("big", None, 0, 999).await.unwrap().len(), 1000);
    assert_eq!(range(b, "big", -2, -1).await, vec!["n999", "n1000"]);
}

#[tokio::test]
async fn delete_by_id_finds_ready_delayed_and_leased_messages_and_survives_a_restart() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let delayed = NewMessage {
        delay: Some(Duration::from_secs(60)),
        ..msg("later")
    };
    push_all(b, "d", vec![msg("one"), msg("two"), delayed, msg("four")]).await;
    let opts = LeaseOptions {
        read: from(End::Head, 1),
        visibility: Duration::from_secs(30),
    };
    let leased = b
        .lease("d", opts)
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(leased[0].id, 1);

    // One leased, one delayed, one ready, one absent, one repeated.
    assert_eq!(b.delete("d", None, &[1, 3, 4, 99, 4]).await.unwrap(), 3);
    assert_eq!(b.delete("d", None, &[1]).await.unwrap(), 0);
    let stats = b.stats("d").unwrap();
    assert_eq!((stats.ready, stats.delayed, stats.in_flight), (1, 0, 0));
    assert_eq!(stats.total_deleted, 3);
    // The lease's receipt names nothing any more.
    let receipt = leased[0].receipt.clone().unwrap();
    assert_eq!(b.ack("d", &[receipt]).await.unwrap(), 0);
    assert!(matches!(
        b.delete("nope", None, &[1]).await,
        Err(Error::NotFound(_))
    ));

    let reopened = open(t.store.clone(), t.clock.clone());
    t.clock.advance(120_000);
    assert_eq!(take_from(&reopened, "d", End::Head, 10).await, vec!["two"]);
    assert_eq!(reopened.stats("d").unwrap().total_deleted, 3);
}

fn move_opts(to: &str, from_end: End, to_end: End) -> MoveOptions {
    MoveOptions {
        read: from(from_end, 1),
        to: to.to_string(),
        to_end,
    }
}

#[tokio::test]
async fn a_move_takes_from_one_end_and_joins_the_other_queue_at_the_chosen_end() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    push_all(b, "src", vec![msg("a"), msg("b"), msg("c")]).await;
    push_all(b, "dst", vec![msg("x")]).await;

    // RPOPLPUSH src dst: the source's tail to the destination's head.
    let d = b
        .move_messages("src", move_opts("dst", End::Tail, End::Head))
        .await
        .unwrap();
    assert_eq!(bodies(d.messages()), vec!["c"]);
    d.confirm().await.unwrap();
    assert_eq!(range(b, "dst", 0, -1).await, vec!["c", "x"]);
    assert_eq!(range(b, "src", 0, -1).await, vec!["a", "b"]);

    // LMOVE src dst LEFT RIGHT.
    let d = b
        .move_messages("src", move_opts("dst", End::Head, End::Tail))
        .await
        .unwrap();
    d.confirm().await.unwrap();
    assert_eq!(range(b, "dst", 0, -1).await, vec!["c", "x", "a"]);

    // A moved message is a new message of the destination.
    let moved = b.peek("dst", 3, None).await.unwrap();
    assert_eq!(
        moved.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![2, 1, 3]
    );

    // A rotation within one queue.
    push_all(b, "ring", vec![msg("1"), msg("2"), msg("3")]).await;
    let d = b
        .move_messages("ring", move_opts("ring", End::Tail, End::Head))
        .await
        .unwrap();
    d.confirm().await.unwrap();
    assert_eq!(range(b, "ring", 0, -1).await, vec!["3", "1", "2"]);

    // A move dropped before its confirm (the client went away) leaves the message.
    let d = b
        .move_messages("src", move_opts("dst", End::Head, End::Tail))
        .await
        .unwrap();
    assert_eq!(bodies(d.messages()), vec!["b"]);
    drop(d);
    assert_eq!(range(b, "src", 0, -1).await, vec!["b"]);
    assert_eq!(range(b, "dst", 0, -1).await, vec!["c", "x", "a"]);

    // Several moved to the head keep their order there.
    push_all(b, "many", vec![msg("p"), msg("q")]).await;
    let d = b
        .move_messages(
            "many",
            MoveOptions {
                read: from(End::Head, 2),
                ..move_opts("dst", End::Head, End::Head)
            },
        )
        .await
        .unwrap();
    d.confirm().await.unwrap();
    assert_eq!(range(b, "dst", 0, 1).await, vec!["p", "q"]);

    let reopened = open(t.store.clone(), t.clock.clone());
    assert_eq!(
        range(&reopened, "dst", 0, -1).await,
        vec!["p", "q", "c", "x", "a"]
    );
    assert_eq!(range(&reopened, "src", 0, -1).await, vec!["b"]);
    assert_eq!(range(&reopened, "ring", 0, -1).await, vec!["3", "1", "2"]);
    assert!(range(&reopened, "many", 0, -1).await.is_empty());
}

#[tokio::test]
async fn a_blocking_move_waits_for_a_push_and_an_empty_one_returns_nothing() {
    let t = TestBroker::new(1 << 20);
    let b = t.broker.clone();
    let d = b
        .move_messages("empty", move_opts("dst", End::Head, End::Tail))
        .await
        .unwrap();
    assert!(d.is_empty());

    let waiter = tokio::spawn({
        let b = b.clone();
        async move {
            let opts = MoveOptions {
                read: ReadOptions {
                    wait: Duration::from_secs(10),
                    ..from(End::Tail, 1)
                },
                ..move_opts("dst", End::Tail, End::Head)
            };
            let d = b.move_messages("src", opts).await.unwrap();
            let got = bodies(d.messages());
            d.confirm().await.unwrap();
            got
        }
    });
    let_others_run().await;
    push_all(&b, "src", vec![msg("job")]).await;
    assert_eq!(waiter.await.unwrap(), vec!["job"]);
    assert_eq!(range(&b, "dst", 0, -1).await, vec!["job"]);
    assert_eq!(b.stats("src").unwrap().ready, 0);
    assert!(matches!(
        b.move_messages("src", move_opts("", End::Head, End::Tail))
            .await,
        Err(Error::InvalidName(_))
    ));
}

#[tokio::test]
async fn soft_gets_return_the_head_and_count_durably() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    assert!(b.soft_get("sg", None).await.unwrap().is_none());
    push_all(b, "sg", vec![msg("first"), msg("second")]).await;
    for n in 1..=3 {
        let m = b.soft_get("sg", None).await.unwrap().unwrap();
        assert_eq!((m.body.as_ref(), m.soft_gets), (&b"first"[..], n));
    }
    // Nothing was consumed.
    assert_eq!(b.stats("sg").unwrap().ready, 2);

    let reopened = open(t.store.clone(), t.clock.clone());
    let m = reopened.soft_get("sg", None).await.unwrap().unwrap();
    assert_eq!(m.soft_gets, 4, "the counter is durable");
    let peeked = reopened.peek("sg", 2, None).await.unwrap();
    assert_eq!(
        peeked.iter().map(|m| m.soft_gets).collect::<Vec<_>>(),
        vec![4, 0]
    );
    let taken = reopened.take("sg", from(End::Head, 1)).await.unwrap();
    assert_eq!(taken.messages()[0].soft_gets, 4);
}

#[tokio::test]
async fn pushes_report_the_new_length_and_purge_and_drop_what_they_removed() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    let reply = b
        .push_with("len", vec![msg("a"), msg("b")], PushOptions::default())
        .await
        .unwrap();
    assert_eq!(reply.length, 2);
    assert!(reply.durable, "the in-memory store syncs every append");
    let reply = b
        .push_with(
            "len",
            vec![msg("c")],
            PushOptions {
                durability: Some(Durability::Written),
                ..PushOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((reply.length, reply.durable), (3, false));
    assert_eq!(b.purge("len").await.unwrap(), 3);
    push_all(b, "len", vec![msg("d")]).await;
    assert_eq!(b.drop_queue("len").await.unwrap(), 1);
}

#[tokio::test]
async fn stats_count_ready_bytes_waiters_and_the_last_consumed_age() {
    let t = TestBroker::new(1 << 20);
    let b = t.broker.clone();
    push_all(&b, "st", vec![msg("aaaa"), msg("bb")]).await;
    let stats = b.stats("st").unwrap();
    assert_eq!(
        (stats.bytes, stats.ready_bytes, stats.last_age_ms),
        (6, 6, 0)
    );

    // A delivery being written holds its bytes out of `ready_bytes`; dropping it gives
    // them back.
    let held = b.take("st", from(End::Head, 1)).await.unwrap();
    assert_eq!(b.stats("st").unwrap().ready_bytes, 2);
    drop(held);
    assert_eq!(b.stats("st").unwrap().ready_bytes, 6);

    t.clock.advance(1500);
    assert_eq!(take_from(&b, "st", End::Head, 1).await, vec!["aaaa"]);
    let stats = b.stats("st").unwrap();
    assert_eq!(
        (stats.bytes, stats.ready_bytes, stats.last_age_ms),
        (2, 2, 1500)
    );

    // A leased message leaves `ready_bytes`; its ack sets the age.
    let opts = LeaseOptions {
        read: from(End::Head, 1),
        visibility: Duration::from_secs(30),
    };
    let leased = b
        .lease("st", opts)
        .await
        .unwrap()
        .into_messages()
        .await
        .unwrap();
    assert_eq!(b.stats("st").unwrap().ready_bytes, 0);
    t.clock.advance(500);
    b.ack("st", &[leased[0].receipt.clone().unwrap()])
        .await
        .unwrap();
    assert_eq!(b.stats("st").unwrap().last_age_ms, 2000);

    // Waiting reads are counted while they wait.
    let waiter = tokio::spawn({
        let b = b.clone();
        async move {
            let opts = ReadOptions {
                wait: Duration::from_secs(10),
                ..from(End::Head, 1)
            };
            b.take("st", opts)
                .await
                .unwrap()
                .into_messages()
                .await
                .unwrap()
        }
    });
    let_others_run().await;
    assert_eq!(b.stats("st").unwrap().waiters, 1);
    push_all(&b, "other", vec![msg("zzz")]).await;
    let totals = b.totals();
    assert_eq!(
        (
            totals.queues,
            totals.ready,
            totals.ready_bytes,
            totals.waiters
        ),
        (2, 1, 3, 1)
    );
    push_all(&b, "st", vec![msg("c")]).await;
    assert_eq!(bodies(&waiter.await.unwrap()), vec!["c"]);
    assert_eq!(b.stats("st").unwrap().waiters, 0);
    assert_eq!(b.totals().total_pushed, 4);

    // `ready_bytes` is derived again after a restart (from a checkpoint, then the log).
    b.checkpoint().await.unwrap();
    push_all(&b, "st", vec![msg("after")]).await;
    let reopened = open(t.store.clone(), t.clock.clone());
    let stats = reopened.stats("st").unwrap();
    assert_eq!((stats.ready_bytes, stats.last_age_ms), (5, 0));
}
