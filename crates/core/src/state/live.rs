//! Disk-space accounting: how many live references point into each log segment, kept
//! as messages come and go, so maintenance never walks the backlog to find out.
//!
//! A message held by several subscriptions (fan-out) and a retained log counts once per
//! holder, so `bytes` is an upper bound of the distinct live bytes: it can only make
//! compaction more conservative, never delete a segment something still needs. A
//! segment is reclaimable only when its reference count is zero.

use std::collections::BTreeMap;

use crate::op::Location;

/// Live references per segment.
#[derive(Debug, Default)]
pub(crate) struct Live {
    segments: BTreeMap<u32, SegmentLive>,
}

/// The live references into one segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentLive {
    /// Holders of records in the segment.
    pub(crate) refs: u64,
    /// Record bytes they reference (counted per holder).
    pub(crate) bytes: u64,
}

impl Live {
    /// One more holder of the record at `loc`.
    pub(crate) fn add(&mut self, loc: Location) {
        let s = self.segments.entry(loc.segment).or_default();
        s.refs += 1;
        s.bytes += u64::from(loc.len);
    }

    /// One holder fewer of the record at `loc`.
    pub(crate) fn remove(&mut self, loc: Location) {
        if let Some(s) = self.segments.get_mut(&loc.segment) {
            s.refs = s.refs.saturating_sub(1);
            s.bytes = s.bytes.saturating_sub(u64::from(loc.len));
            if s.refs == 0 {
                self.segments.remove(&loc.segment);
            }
        }
    }

    /// Segments something lives in, with their live bytes.
    pub(crate) fn segments(&self) -> impl Iterator<Item = (u32, SegmentLive)> + '_ {
        self.segments.iter().map(|(n, s)| (*n, *s))
    }

    /// The live references into segment `n`.
    pub(crate) fn get(&self, n: u32) -> SegmentLive {
        self.segments.get(&n).copied().unwrap_or_default()
    }
}
