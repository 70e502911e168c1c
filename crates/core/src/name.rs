//! Validation of queue and subscription names, shared by every face.

use crate::error::{Error, Result};

/// Longest accepted queue or subscription name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a queue name: 1–255 bytes, no control characters.
pub fn validate_queue(name: &str) -> Result<()> {
    validate("queue", name)
}

/// Checks a key of the key/value namespace, which queues share: the same rules as
/// queue names.
pub fn validate_key(name: &str) -> Result<()> {
    validate("key", name)
}

/// Checks a subscription name with the same rules as queue names.
pub fn validate_subscription(name: &str) -> Result<()> {
    validate("subscription", name)
}

fn validate(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidName(format!("{what} name is empty")));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::InvalidName(format!(
            "{what} name is {} bytes; the limit is {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidName(format!(
            "{what} name contains a control character"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names_and_rejects_bad_ones() {
        assert!(validate_queue("jobs").is_ok());
        assert!(validate_queue("a.b-c_d:e/f").is_ok());
        assert!(validate_queue("").is_err());
        assert!(validate_queue(&"x".repeat(256)).is_err());
        assert!(validate_queue(&"x".repeat(255)).is_ok());
        assert!(validate_queue("a\nb").is_err());
        assert!(validate_queue("a\u{7f}b").is_err());
    }
}
