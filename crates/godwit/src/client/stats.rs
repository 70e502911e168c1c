//! `godwit stats`: a table of the queues, once or redrawn with `--watch`.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use godwit_client::QueueStats;
use serde_json::json;

use super::{Conn, EXIT_OK};

/// Flags of `godwit stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only queues whose name starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Redraw every `--interval-ms` until interrupted (with `--json`: one line each time).
    #[arg(long)]
    pub watch: bool,
    /// How often `--watch` redraws, ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub interval_ms: u64,
    /// Connection flags.
    #[command(flatten)]
    pub conn: Conn,
}

const COLUMNS: [&str; 8] = [
    "QUEUE",
    "READY",
    "IN_FLIGHT",
    "DELAYED",
    "BYTES",
    "PUSHED",
    "CONSUMED",
    "CONSUMERS",
];

/// The table as text: a header and one row per queue, columns padded to fit.
pub fn render_table(queues: &[QueueStats]) -> String {
    let rows: Vec<[String; 8]> = queues
        .iter()
        .map(|q| {
            [
                q.name.clone(),
                q.ready.to_string(),
                q.in_flight.to_string(),
                q.delayed.to_string(),
                q.bytes.to_string(),
                q.total_pushed.to_string(),
                q.total_consumed.to_string(),
                q.live_consumers.to_string(),
            ]
        })
        .collect();
    let mut widths = COLUMNS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut parts = Vec::with_capacity(cells.len());
        for (i, cell) in cells.iter().enumerate() {
            if i == 0 {
                parts.push(format!("{cell:<w$}", w = widths[i]));
            } else {
                parts.push(format!("{cell:>w$}", w = widths[i]));
            }
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&COLUMNS);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

pub(super) async fn stats(a: StatsArgs) -> anyhow::Result<i32> {
    let client = a.conn.client()?;
    loop {
        let queues = client.list_queues(a.prefix.as_deref()).await?;
        let mut out = std::io::stdout().lock();
        if a.conn.json {
            serde_json::to_writer(&mut out, &json!({ "queues": queues }))?;
            out.write_all(b"\n")?;
        } else {
            if a.watch {
                // Clear the screen and home the cursor: the table is redrawn in place.
                out.write_all(b"\x1b[2J\x1b[H")?;
            }
            out.write_all(render_table(&queues).as_bytes())?;
        }
        out.flush()?;
        drop(out);
        if !a.watch {
            return Ok(EXIT_OK);
        }
        tokio::time::sleep(Duration::from_millis(a.interval_ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_pads_columns() {
        let q: QueueStats =
            serde_json::from_value(json!({"name": "jobs", "ready": 12345})).expect("stats");
        let table = render_table(&[q]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "QUEUE  READY  IN_FLIGHT  DELAYED  BYTES  PUSHED  CONSUMED  CONSUMERS"
        );
        assert_eq!(
            lines[1],
            "jobs   12345          0        0      0       0         0          0"
        );
    }
}
