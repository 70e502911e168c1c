//! In-process throughput of the broker over the log store, without HTTP: what group
//! commit buys against the disk's own fsync rate. Run with `cargo bench -p godwit-store`.
//! Prints a table; asserts nothing.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use godwit_core::*;
use godwit_store::{FsyncPolicy, LogStore, StoreOptions};

const RUN: Duration = Duration::from_secs(3);

fn open(dir: &std::path::Path, fsync: FsyncPolicy) -> Broker {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = fsync;
    let store = LogStore::open(opts).expect("store opens");
    Broker::open(
        Arc::new(store),
        Arc::new(SystemClock),
        BrokerConfig::default(),
    )
    .expect("broker opens")
}

/// Plain `fdatasync` loop on the same filesystem: the rate one-sync-per-write would get.
fn fsync_rate(dir: &std::path::Path) -> f64 {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < RUN {
        f.write_all(&[0u8; 256]).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn concurrent_pushes(b: &Broker, writers: usize, batch: usize) -> f64 {
    let body = bytes::Bytes::from(vec![b'x'; 200]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let b = b.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let queue = format!("bench-{}", w % 4);
            while started.elapsed() < RUN {
                let msgs = (0..batch).map(|_| NewMessage::new(body.clone())).collect();
                b.push(&queue, msgs).await.unwrap();
                n += batch as u64;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn takes(b: &Broker, batch: usize) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    let mut q = 0;
    while started.elapsed() < RUN {
        let opts = ReadOptions {
            max: batch,
            ..ReadOptions::default()
        };
        let got = b
            .take(&format!("bench-{}", q % 4), opts)
            .await
            .unwrap()
            .into_messages()
            .await
            .unwrap();
        if got.is_empty() {
            q += 1;
            if q > 8 {
                break;
            }
        }
        n += got.len() as u64;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Seeks on a log queue of `backlog` messages: a bare cursor against a consuming
/// subscription, alternating between the oldest message and the end. Returns the mean
/// time of one seek of each kind and of one 20-message cursor read, in microseconds.
async fn seeks(b: &Broker, backlog: u64) -> (f64, f64, f64) {
    let patch = SettingsPatch {
        retention: Some(Retention {
            mode: RetentionMode::Log,
            ..Retention::default()
        }),
        ..SettingsPatch::default()
    };
    b.configure("log", patch).await.unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 200]);
    for _ in 0..backlog / 1000 {
        let msgs = (0..1000).map(|_| NewMessage::new(body.clone())).collect();
        b.push("log", msgs).await.unwrap();
    }
    b.subscribe_cursor("log", "cursor", StartAt::Latest)
        .await
        .unwrap();
    b.subscribe("log", "consumer", StartAt::Latest)
        .await
        .unwrap();
    let mean = |started: Instant, n: u32| started.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let mut each = Vec::new();
    for (sub, n) in [("cursor", 2000u32), ("consumer", 20)] {
        let started = Instant::now();
        for i in 0..n {
            let id = if i % 2 == 0 { 0 } else { u64::MAX };
            b.seek("log", sub, id).await.unwrap();
        }
        each.push(mean(started, n));
    }
    let started = Instant::now();
    for i in 0..2000u32 {
        b.seek("log", "cursor", u64::from(i) * 400).await.unwrap();
        b.read_cursor("log", "cursor", 20).await.unwrap();
    }
    let read = mean(started, 2000) - each[0];
    (each[0], each[1], read)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir_in(".").unwrap();
    println!("godwit-store in-process benchmark (200-byte bodies, {RUN:?} per row)");
    println!("{:<48} {:>14}", "scenario", "msgs/s");
    println!(
        "{:<48} {:>14.0}",
        "raw fdatasync loop (one sync per write)",
        fsync_rate(dir.path())
    );
    rt.block_on(async {
        for (name, policy) in [
            ("always", FsyncPolicy::Always),
            ("never", FsyncPolicy::Never),
        ] {
            let sub = tempfile::tempdir_in(dir.path()).unwrap();
            let b = open(sub.path(), policy);
            for writers in [1, 8, 64] {
                let rate = concurrent_pushes(&b, writers, 1).await;
                println!(
                    "{:<48} {:>14.0}",
                    format!("push, fsync {name}, {writers} concurrent writers"),
                    rate
                );
            }
            let rate = concurrent_pushes(&b, 8, 100).await;
            println!(
                "{:<48} {:>14.0}",
                format!("push batches of 100, fsync {name}, 8 writers"),
                rate
            );
            let rate = takes(&b, 100).await;
            println!(
                "{:<48} {:>14.0}",
                format!("take batches of 100, fsync {name}"),
                rate
            );
            b.shutdown().await.unwrap();
        }
        let sub = tempfile::tempdir_in(dir.path()).unwrap();
        let b = open(sub.path(), FsyncPolicy::Never);
        let backlog = 1_000_000;
        let (cursor, consumer, read) = seeks(&b, backlog).await;
        println!(
            "{:<48} {:>14}",
            format!("log queue of {backlog}, fsync never"),
            "µs each"
        );
        println!("{:<48} {:>14.1}", "  seek, bare cursor", cursor);
        println!(
            "{:<48} {:>14.1}",
            "  seek, consuming subscription", consumer
        );
        println!("{:<48} {:>14.1}", "  read 20 from the bare cursor", read);
        b.shutdown().await.unwrap();
    });
}
