//! A tiny worker: pushes a few jobs, leases them, "processes" them and acks them.
//!
//! Run a server (`godwit serve`), then `cargo run -p godwit-client --example worker`.

use godwit_client::{Client, PushOptions, ReadOptions};

#[tokio::main]
async fn main() -> godwit_client::Result<()> {
    let server = std::env::var("GODWIT_SERVER").unwrap_or_else(|_| "http://127.0.0.1:8888".into());
    let client = Client::new(&server)?;
    for n in 1..=3 {
        let pushed = client
            .push("example-jobs", format!("job {n}"), &PushOptions::default())
            .await?;
        println!("pushed {} (queue length {})", pushed.id, pushed.length);
    }
    let options = ReadOptions {
        max: Some(10),
        wait_ms: Some(1000),
        ..ReadOptions::default()
    };
    let leased = client.lease("example-jobs", &options).await?;
    let mut receipts = Vec::new();
    for m in &leased {
        println!("working on {}: {:?}", m.id, m.body);
        receipts.extend(m.receipt.clone());
    }
    let acked = client.ack("example-jobs", &receipts).await?;
    println!("acked {acked}");
    Ok(())
}
