//! The live streams hub without sockets: an offer counts as delivered only once a
//! consumer reports it written; one dropped unwritten goes to the next consumer
//! (round-robin) or back to the head of the queue (nobody left); broadcast offers each
//! batch to every consumer; pauses and queue events reach the streams.

mod common;

use std::time::Duration;

use common::*;
use godwit_core::*;

async fn next_offer(s: &mut Stream) -> Offer {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("an item in time")
            .expect("the stream is open");
        if let StreamItem::Offer(o) = item {
            return o;
        }
    }
}

fn bodies(o: &Offer) -> Vec<String> {
    o.messages()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

fn rr() -> StreamOptions {
    StreamOptions {
        policy: StreamPolicy::RoundRobin,
        ..StreamOptions::default()
    }
}

async fn settled(b: &Broker, queue: &str, ready: u64, consumed: u64) {
    for _ in 0..200 {
        let st = b.stats(queue).unwrap();
        if st.ready == ready && st.total_consumed == consumed && st.in_flight == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("queue {queue}: {:?}", b.stats(queue).unwrap());
}

#[tokio::test]
async fn an_offer_dropped_unwritten_goes_to_the_next_consumer_or_back_to_the_queue() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    b.ensure("q").await.unwrap();
    let mut first = b.connect("q", rr()).unwrap();
    let mut second = b.connect("q", rr()).unwrap();
    push(b, "q", "one").await;
    // Whoever gets it first drops it unwritten (a connection that failed to write).
    let offer = tokio::select! {
        o = next_offer(&mut first) => o,
        o = next_offer(&mut second) => o,
    };
    assert_eq!(bodies(&offer), vec!["one"]);
    drop(offer);
    // It is offered again, and written this time.
    let again = tokio::select! {
        o = next_offer(&mut first) => o,
        o = next_offer(&mut second) => o,
    };
    assert_eq!(bodies(&again), vec!["one"]);
    again.written();
    settled(b, "q", 0, 1).await;

    // With nobody left, an unwritten offer returns to the head of the queue.
    drop(second);
    push(b, "q", "two").await;
    let offer = next_offer(&mut first).await;
    drop(first);
    drop(offer);
    settled(b, "q", 1, 1).await;
    assert_eq!(b.live_consumers("q"), 0);
    let left = take(b, "q", 10).await;
    assert_eq!(left.len(), 1);
}

#[tokio::test]
async fn broadcast_confirms_once_one_consumer_wrote_and_events_reach_every_stream() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    b.ensure("news").await.unwrap();
    let mut a = b.connect("news", StreamOptions::default()).unwrap();
    let mut c = b.connect("news", StreamOptions::default()).unwrap();
    push(b, "news", "n1").await;
    let oa = next_offer(&mut a).await;
    let oc = next_offer(&mut c).await;
    assert_eq!(
        (bodies(&oa), bodies(&oc)),
        (vec!["n1".into()], vec!["n1".into()])
    );
    drop(oa);
    // One consumer's offer dropped, the other's still out: reserved, not consumed.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let st = b.stats("news").unwrap();
    assert_eq!((st.ready, st.in_flight, st.total_consumed), (0, 1, 0));
    oc.written();
    settled(b, "news", 0, 1).await;

    let patch = SettingsPatch {
        live_paused: Some(true),
        ..SettingsPatch::default()
    };
    b.configure("news", patch).await.unwrap();
    for s in [&mut a, &mut c] {
        let item = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(item, StreamItem::Event(QueueEvent::Paused)),
            "{item:?}"
        );
    }
    push(b, "news", "n2").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Paused for streams only: a plain read still gets it.
    assert_eq!(take(b, "news", 1).await.len(), 1);
    b.purge("news").await.unwrap();
    let item = tokio::time::timeout(Duration::from_secs(5), a.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(item, StreamItem::Event(QueueEvent::Purged)),
        "{item:?}"
    );
}

#[tokio::test]
async fn consumers_that_follow_the_queue_policy_switch_when_it_changes() {
    let t = TestBroker::new(1 << 20);
    let b = &t.broker;
    b.ensure("q").await.unwrap();
    let follow = || StreamOptions {
        policy: StreamPolicy::FromQueue,
        ..StreamOptions::default()
    };
    let mut one = b.connect("q", follow()).unwrap();
    let mut two = b.connect("q", follow()).unwrap();

    // Never set: broadcast, both get the message.
    push(b, "q", "m1").await;
    for s in [&mut one, &mut two] {
        let o = next_offer(s).await;
        assert_eq!(bodies(&o), vec!["m1"]);
        o.written();
    }
    settled(b, "q", 0, 1).await;

    // Round-robin from now on, for the consumers already connected: each message to one.
    let patch = SettingsPatch {
        live_policy: Some(LivePolicy::RoundRobin),
        ..SettingsPatch::default()
    };
    b.configure("q", patch).await.unwrap();
    push(b, "q", "m2").await;
    push(b, "q", "m3").await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let o = tokio::select! {
            o = next_offer(&mut one) => ("one", o),
            o = next_offer(&mut two) => ("two", o),
        };
        got.push((o.0, bodies(&o.1)));
        o.1.written();
    }
    settled(b, "q", 0, 3).await;
    let mut seen: Vec<String> = got.iter().flat_map(|(_, b)| b.clone()).collect();
    seen.sort();
    assert_eq!(seen, vec!["m2", "m3"], "each once: {got:?}");
    assert_ne!(got[0].0, got[1].0, "one each: {got:?}");
}
