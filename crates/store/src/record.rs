//! The record format: `[u32 payload length][u32 CRC32C of payload][payload]`, all
//! little-endian, where the payload is one flag byte (bit 0: last record of its atomic
//! group) followed by the postcard encoding of one [`Op`].

use godwit_core::{Op, StorageError};

/// Bytes before the payload.
pub const HEADER: usize = 8;
/// Flag bit marking the last record of a group.
pub const END_OF_GROUP: u8 = 1;
/// Largest payload accepted when reading; anything larger is treated as corruption.
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// Appends one record for `op` to `out`; returns its total length.
pub fn encode(op: &Op, end_of_group: bool, out: &mut Vec<u8>) -> Result<usize, StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    out.push(if end_of_group { END_OF_GROUP } else { 0 });
    let out_taken = std::mem::take(out);
    let mut buf = postcard::to_extend(op, out_taken)
        .map_err(|e| StorageError::Corrupt(format!("encoding op: {e}")))?;
    let payload_len = buf.len() - start - HEADER;
    let crc = crc32c::crc32c(&buf[start + HEADER..]);
    buf[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    *out = buf;
    Ok(HEADER + payload_len)
}

/// About how many bytes [`encode`] writes for `op`, to size a buffer once.
pub fn size_hint(op: &Op) -> usize {
    const FIXED: usize = HEADER + 64;
    match op {
        Op::Push(rec) | Op::Relocate { push: rec, .. } => {
            let headers: usize = rec.headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
            FIXED + rec.queue.len() + rec.body.len() + headers
        }
        _ => FIXED,
    }
}

/// What parsing the front of a buffer found.
#[derive(Debug)]
pub enum Parsed {
    /// A whole, valid record of `len` bytes.
    Record {
        /// The op.
        op: Op,
        /// Whether it ends its group.
        end_of_group: bool,
        /// Total bytes it took.
        len: usize,
    },
    /// The buffer ends inside a record (a torn write).
    Incomplete,
    /// The bytes are not a valid record (a torn or damaged write).
    Corrupt(String),
    /// The checksum is valid but the payload is not one this build understands (an
    /// unknown flag or op, written by a newer Godwit): never a torn write, so never cut.
    Unknown(String),
}

/// Parses the record at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < HEADER {
        return Parsed::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Parsed::Corrupt(format!("record length {len} out of range"));
    }
    if buf.len() < HEADER + len {
        return Parsed::Incomplete;
    }
    let payload = &buf[HEADER..HEADER + len];
    if crc32c::crc32c(payload) != crc {
        return Parsed::Corrupt("checksum mismatch".into());
    }
    if payload[0] & !END_OF_GROUP != 0 {
        return Parsed::Unknown(format!("unknown record flags {:#04x}", payload[0]));
    }
    match postcard::from_bytes::<Op>(&payload[1..]) {
        Ok(op) => Parsed::Record {
            op,
            end_of_group: payload[0] & END_OF_GROUP != 0,
            len: HEADER + len,
        },
        Err(e) => Parsed::Unknown(format!("the op does not decode: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use godwit_core::storage::PushRecord;

    fn push(body: &'static [u8]) -> Op {
        Op::Push(PushRecord {
            queue: "q".into(),
            id: 7,
            created_at_ms: 1,
            priority: 4,
            not_before_ms: 1,
            expires_at_ms: 0,
            dedup_id: None,
            headers: Default::default(),
            body: bytes::Bytes::from_static(body),
            at_head: false,
            body_hash: None,
        })
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let mut buf = Vec::new();
        let n = encode(&push(b"hello"), true, &mut buf).unwrap();
        assert_eq!(n, buf.len());
        match parse(&buf) {
            Parsed::Record {
                op,
                end_of_group,
                len,
            } => {
                assert_eq!(op, push(b"hello"));
                assert!(end_of_group);
                assert_eq!(len, n);
            }
            other => panic!("expected a record, got {other:?}"),
        }
        assert!(matches!(parse(&buf[..n - 1]), Parsed::Incomplete));
        let mut flipped = buf.clone();
        flipped[n - 2] ^= 0x40;
        assert!(matches!(parse(&flipped), Parsed::Corrupt(_)));
        assert!(matches!(parse(&[0u8; 16]), Parsed::Corrupt(_)));
    }

    /// A record whose checksum holds but whose payload does not decode.
    fn valid_crc(payload: &[u8]) -> Vec<u8> {
        let mut buf = (payload.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        buf
    }

    #[test]
    fn a_valid_checksum_over_an_unknown_payload_is_unknown_not_corrupt() {
        // Op variant 200 does not exist.
        assert!(matches!(
            parse(&valid_crc(&[1, 200, 1])),
            Parsed::Unknown(_)
        ));
        // A flag bit this build does not know.
        let mut buf = Vec::new();
        encode(&push(b"x"), true, &mut buf).unwrap();
        let mut payload = buf[HEADER..].to_vec();
        payload[0] |= 0x80;
        assert!(matches!(parse(&valid_crc(&payload)), Parsed::Unknown(_)));
    }
}
