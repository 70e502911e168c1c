//! Recovery: check every segment's header, replay the groups after the checkpoint, and
//! cut a torn tail.
//!
//! Two kinds of bad bytes are told apart. A *torn* tail (a short record, a checksum
//! mismatch, a length out of range, a group without its last record, a header cut
//! short) is what a crash mid-write leaves: it is cut and recovery goes on. An *unknown*
//! format (a segment without the magic, a segment version this build does not read, a
//! record whose checksum holds but which does not decode) is what a newer Godwit or a
//! foreign file leaves: recovery stops with [`StorageError::UnknownFormat`] and changes
//! nothing, so a downgrade or a mistake never silently cuts the log.

use std::fs;
use std::os::unix::fs::FileExt;

use godwit_core::storage::ReplayGroup;
use godwit_core::{Location, StorageError};

use crate::checkpoint::Position;
use crate::record::{self, Parsed};
use crate::segment::{self, Header, Segments, HEADER_LEN};

/// Checks the header of every segment before anything is replayed or cut. A header cut
/// short in the newest segment (a crash while creating it) is a torn tail: that
/// segment holds no record and is removed.
pub(crate) fn check_headers(segments: &Segments) -> Result<(), StorageError> {
    let numbers = segments.numbers();
    for (i, &n) in numbers.iter().enumerate() {
        let path = segments.path(n);
        let Some(file) = segments.get(n) else {
            continue;
        };
        let mut head = [0u8; HEADER_LEN as usize];
        let mut got = 0;
        while got < head.len() {
            match file.read_at(&mut head[got..], got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) => return Err(StorageError::io(format!("reading {}", path.display()), e)),
            }
        }
        if segment::check_header(&path, &head[..got])? == Header::Torn {
            if i + 1 != numbers.len() {
                return Err(StorageError::Corrupt(format!(
                    "{} at byte {got}: a segment header cut short, with later segments \
                     after it; refusing to start, nothing was changed",
                    path.display()
                )));
            }
            tracing::warn!(
                segment = n,
                "removing a segment whose creation was cut short"
            );
            segments
                .remove(n)
                .and_then(|_| segments.sync_dir())
                .map_err(|e| StorageError::io(format!("removing {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// Calls `visit` with every complete group from `start` on; returns the end of the
/// last one (where the next append goes).
pub(crate) fn replay(
    segments: &Segments,
    start: Position,
    visit: &mut dyn FnMut(ReplayGroup) -> Result<(), StorageError>,
) -> Result<Position, StorageError> {
    let numbers: Vec<u32> = segments
        .numbers()
        .into_iter()
        .filter(|n| *n >= start.segment)
        .collect();
    let mut end = Position {
        segment: start.segment.max(1),
        offset: start.offset,
    };
    for (i, &n) in numbers.iter().enumerate() {
        let path = segments.path(n);
        let data = fs::read(&path)
            .map_err(|e| StorageError::io(format!("reading {}", path.display()), e))?;
        segment::check_header(&path, &data)?;
        let size = data.len() as u64;
        let mut off = if n == start.segment {
            start.offset.max(HEADER_LEN) as usize
        } else {
            HEADER_LEN as usize
        };
        if off > data.len() {
            return Err(StorageError::Corrupt(format!(
                "segment {n} is shorter ({size} bytes) than the checkpoint's position {off}"
            )));
        }
        let mut group: ReplayGroup = Vec::new();
        let mut group_start = off;
        let mut damage = None;
        while off < data.len() {
            match record::parse(&data[off..]) {
                Parsed::Record {
                    op,
                    end_of_group,
                    len,
                } => {
                    let loc = Location {
                        segment: n,
                        offset: off as u32,
                        len: len as u32,
                    };
                    group.push((op, loc));
                    off += len;
                    if end_of_group {
                        visit(std::mem::take(&mut group))?;
                        group_start = off;
                    }
                }
                Parsed::Incomplete => {
                    damage = Some("torn record".to_string());
                    break;
                }
                Parsed::Corrupt(why) => {
                    damage = Some(why);
                    break;
                }
                Parsed::Unknown(why) => {
                    return Err(StorageError::UnknownFormat(format!(
                        "{} at byte {off}: a record with a valid checksum that this build \
                         cannot read ({why}); refusing to start, nothing was changed",
                        path.display()
                    )));
                }
            }
        }
        if damage.is_none() && !group.is_empty() {
            damage = Some("group without its last record".into());
        }
        if let Some(why) = damage {
            cut(
                segments,
                n,
                group_start as u64,
                &numbers[i + 1..],
                &why,
                size,
            )?;
            return Ok(Position {
                segment: n,
                offset: group_start as u64,
            });
        }
        end = Position {
            segment: n,
            offset: size,
        };
    }
    Ok(end)
}

/// Cuts segment `n` at `at` (the start of a damaged group) and sets aside every later
/// segment.
fn cut(
    segments: &Segments,
    n: u32,
    at: u64,
    later: &[u32],
    why: &str,
    size: u64,
) -> Result<(), StorageError> {
    tracing::warn!(
        segment = n,
        offset = at,
        bytes_cut = size - at,
        reason = why,
        "cutting a damaged log tail"
    );
    let file = segments
        .get(n)
        .ok_or_else(|| StorageError::Corrupt(format!("segment {n} vanished")))?;
    file.set_len(at)
        .and_then(|_| file.sync_all())
        .map_err(|e| StorageError::io(format!("truncating segment {n}"), e))?;
    for &m in later {
        tracing::warn!(segment = m, "setting aside a log segment after the damage");
        segments
            .quarantine(m)
            .map_err(|e| StorageError::io(format!("setting aside segment {m}"), e))?;
    }
    Ok(())
}
