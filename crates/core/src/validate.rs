//! Every check of what a client sends, in one place, so no face checks twice or
//! forgets: bodies and their options, read sizes and waits, visibility, settings.
//! Each bound is documented on the item it bounds; a value outside it is refused
//! with [`Error::InvalidArgument`] (or [`Error::TooLarge`] for a body).

use std::time::Duration;

use crate::config::BrokerConfig;
use crate::error::{Error, Result};
use crate::model::*;
use crate::name::validate_queue;

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// Checks a duration against `MAX_DURATION_MS`.
pub fn duration(what: &str, d: Duration) -> Result<()> {
    if millis(d) > u128::from(MAX_DURATION_MS) {
        return Err(invalid(format!(
            "{what} is {} ms; the limit is {MAX_DURATION_MS} ms (100 years)",
            millis(d)
        )));
    }
    Ok(())
}

/// Checks messages about to be pushed.
pub fn messages(config: &BrokerConfig, messages: &[NewMessage]) -> Result<()> {
    if messages.is_empty() {
        return Err(invalid("no messages to push"));
    }
    if messages.len() > config.max_batch {
        return Err(invalid(format!(
            "{} messages in one push; the limit is {}",
            messages.len(),
            config.max_batch
        )));
    }
    let many = messages.len() > 1;
    for (i, m) in messages.iter().enumerate() {
        message(config, m).map_err(|e| match e {
            Error::InvalidArgument(why) if many => {
                Error::InvalidArgument(format!("messages[{i}]: {why}"))
            }
            e => e,
        })?;
    }
    Ok(())
}

/// Checks one message.
fn message(config: &BrokerConfig, m: &NewMessage) -> Result<()> {
    {
        if m.body.len() > config.max_message_bytes {
            return Err(Error::TooLarge {
                size: m.body.len(),
                limit: config.max_message_bytes,
            });
        }
        if m.priority > MAX_PRIORITY {
            return Err(invalid(format!(
                "priority {} is out of range 0..={MAX_PRIORITY}",
                m.priority
            )));
        }
        if let Some(key) = &m.dedup_id {
            if key.is_empty() || key.len() > MAX_DEDUP_ID_BYTES {
                return Err(invalid(format!(
                    "dedup_id must be 1 to {MAX_DEDUP_ID_BYTES} bytes"
                )));
            }
        }
        if let Some(delay) = m.delay {
            duration("delay", delay)?;
        }
        if let Some(ttl) = m.ttl {
            duration("ttl", ttl)?;
        }
        if m.headers.keys().any(String::is_empty) {
            return Err(invalid("header names must not be empty"));
        }
    }
    Ok(())
}

/// Checks a read's size and wait.
pub fn read(config: &BrokerConfig, opts: &ReadOptions) -> Result<()> {
    if opts.max == 0 || opts.max > config.max_batch {
        return Err(invalid(format!(
            "max must be 1..={}, not {}",
            config.max_batch, opts.max
        )));
    }
    if opts.wait > config.max_wait {
        return Err(invalid(format!(
            "wait is {} ms; the limit is {} ms",
            millis(opts.wait),
            millis(config.max_wait)
        )));
    }
    Ok(())
}

/// Checks a visibility timeout: 1 ms ..= `MAX_DURATION_MS`.
pub fn visibility(d: Duration) -> Result<()> {
    if d.is_zero() {
        return Err(invalid("visibility must be at least 1 ms"));
    }
    duration("visibility", d)
}

/// Checks a settings change of `queue`.
pub fn settings(queue: &str, patch: &SettingsPatch) -> Result<()> {
    if let Some(Some(dlq)) = &patch.dead_letter_queue {
        validate_queue(dlq)?;
        if dlq == queue {
            return Err(invalid("a queue cannot be its own dead-letter queue"));
        }
    }
    if patch.max_deliveries == Some(Some(0)) {
        return Err(invalid("max_deliveries must be at least 1"));
    }
    if patch.max_message_bytes == Some(Some(0)) {
        return Err(invalid("max_message_bytes must be at least 1"));
    }
    if let Some(ms) = patch.dedup_window_ms {
        duration("dedup_window_ms", Duration::from_millis(ms))?;
    }
    if let Some(r) = &patch.retention {
        if let Some(ms) = r.max_age_ms {
            if ms == 0 {
                return Err(invalid("retention.max_age_ms must be at least 1"));
            }
            duration("retention.max_age_ms", Duration::from_millis(ms))?;
        }
    }
    Ok(())
}

/// A queue description: at most [`MAX_DESCRIPTION_BYTES`].
pub fn description(text: Option<&str>) -> Result<()> {
    match text {
        Some(t) if t.len() > MAX_DESCRIPTION_BYTES => Err(Error::InvalidArgument(format!(
            "a description is at most {MAX_DESCRIPTION_BYTES} bytes, not {}",
            t.len()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_past_the_limit_are_refused_and_the_limit_itself_is_taken() {
        let limit = Duration::from_millis(MAX_DURATION_MS);
        assert!(duration("ttl", limit).is_ok());
        assert!(duration("ttl", limit + Duration::from_millis(1)).is_err());
        assert!(visibility(Duration::ZERO).is_err());
        let patch = SettingsPatch {
            dedup_window_ms: Some(u64::MAX),
            ..SettingsPatch::default()
        };
        assert!(settings("q", &patch).is_err());
        let patch = SettingsPatch {
            retention: Some(Retention {
                mode: RetentionMode::Log,
                max_age_ms: Some(u64::MAX),
                ..Retention::default()
            }),
            ..SettingsPatch::default()
        };
        assert!(settings("q", &patch).is_err());
    }

    #[test]
    fn reads_past_the_batch_or_wait_limit_are_refused() {
        let config = BrokerConfig::default();
        let ok = ReadOptions {
            max: config.max_batch,
            wait: config.max_wait,
            subscription: None,
            ..ReadOptions::default()
        };
        assert!(read(&config, &ok).is_ok());
        let too_many = ReadOptions {
            max: config.max_batch + 1,
            ..ok.clone()
        };
        assert!(read(&config, &too_many).is_err());
        let too_long = ReadOptions {
            wait: config.max_wait + Duration::from_millis(1),
            ..ok.clone()
        };
        assert!(read(&config, &too_long).is_err());
        assert!(read(&config, &ReadOptions { max: 0, ..ok }).is_err());
    }
}
