//! Rendering of bench results: one row per scenario, a plain-text table.

use std::time::Duration;

/// What one scenario measured.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Scenario label, e.g. `push` or `take (batch 100)`.
    pub scenario: String,
    /// Concurrent connections used.
    pub connections: usize,
    /// HTTP requests that succeeded.
    pub requests: u64,
    /// Messages moved by those requests.
    pub messages: u64,
    /// Body bytes moved.
    pub bytes: u64,
    /// Wall time of the scenario.
    pub elapsed: Duration,
    /// Request latencies (successful requests only).
    pub latencies: Vec<Duration>,
    /// Requests that failed (transport errors or unexpected status).
    pub errors: u64,
    /// Why the first failed request failed, if one did.
    pub first_error: Option<String>,
}

impl Row {
    fn rate(&self, n: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            n as f64 / secs
        } else {
            0.0
        }
    }

    /// Messages per second.
    pub fn messages_per_sec(&self) -> f64 {
        self.rate(self.messages)
    }

    /// A latency percentile (0–100) in milliseconds, or `None` without samples.
    pub fn percentile_ms(&self, pct: f64) -> Option<f64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let rank = ((pct / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        Some(sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0)
    }
}

/// Resident memory of the server around a backlog fill.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The queue holding the backlog.
    pub queue: String,
    /// Messages in the backlog.
    pub messages: u64,
    /// Body size of each.
    pub size: usize,
    /// VmRSS before the fill, in KiB (`None` without a pid).
    pub before_kib: Option<u64>,
    /// VmRSS right after the fill, in KiB.
    pub after_kib: Option<u64>,
    /// VmHWM (peak RSS) after the fill, in KiB.
    pub peak_kib: Option<u64>,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// Prints a one-line summary as soon as a scenario finishes.
pub fn print_progress(row: Option<&Row>) {
    if let Some(r) = row {
        eprintln!(
            "  done: {:<22} {:>12.0} msg/s  ({} errors)",
            r.scenario,
            r.messages_per_sec(),
            r.errors
        );
        if let Some(why) = &r.first_error {
            eprintln!("        first error: {why}");
        }
    }
}

/// Prints the results table.
pub fn print_table(rows: &[Row]) {
    println!(
        "{:<24} {:>5} {:>10} {:>8} {:>12} {:>8} {:>8} {:>8} {:>7}",
        "scenario", "conns", "messages", "secs", "msg/s", "MB/s", "p50 ms", "p99 ms", "errors"
    );
    println!("{}", "-".repeat(100));
    for r in rows {
        println!(
            "{:<24} {:>5} {:>10} {:>8.2} {:>12.0} {:>8.1} {:>8} {:>8} {:>7}",
            r.scenario,
            r.connections,
            r.messages,
            r.elapsed.as_secs_f64(),
            r.messages_per_sec(),
            r.rate(r.bytes) / 1_000_000.0,
            fmt_opt(r.percentile_ms(50.0)),
            fmt_opt(r.percentile_ms(99.0)),
            r.errors
        );
    }
}

/// Prints the backlog memory report.
pub fn print_memory(m: &Memory) {
    let mib = |k: Option<u64>| {
        k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "- (no --pid)".into())
    };
    println!();
    println!(
        "backlog: {} × {} B in queue {}",
        m.messages, m.size, m.queue
    );
    println!("  server RSS before fill: {}", mib(m.before_kib));
    println!("  server RSS after fill:  {}", mib(m.after_kib));
    println!("  server peak RSS:        {}", mib(m.peak_kib));
    if let (Some(b), Some(a)) = (m.before_kib, m.after_kib) {
        println!(
            "  growth:                 {:.1} MiB",
            (a as f64 - b as f64) / 1024.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles() {
        let row = Row {
            messages: 500,
            elapsed: Duration::from_secs(2),
            latencies: (1..=100).map(Duration::from_millis).collect(),
            ..Row::default()
        };
        assert_eq!(row.messages_per_sec(), 250.0);
        assert_eq!(row.percentile_ms(0.0), Some(1.0));
        assert_eq!(row.percentile_ms(50.0), Some(51.0));
        assert_eq!(row.percentile_ms(100.0), Some(100.0));
        assert_eq!(Row::default().percentile_ms(50.0), None);
        assert_eq!(Row::default().messages_per_sec(), 0.0);
    }
}
