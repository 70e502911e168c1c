//! A ready lane: one priority's delivery order, with pushes at both ends.
//!
//! The lane is a deque of fixed-size chunks shared by reference count. Cloning a lane
//! (what a checkpoint snapshot does under the lock) copies one pointer per chunk, not
//! one `Meta` per message; a later change to a shared chunk copies that chunk only.
//! So a checkpoint of a two-million-message backlog holds the lock for microseconds.
//! The interface is the one a paged lane (head window in memory, the rest read back
//! from segments) would offer: push at either end, pop the head, remove by id, iterate
//! from the head.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Meta;

/// Messages per chunk: large enough that a snapshot copies few pointers, small enough
/// that copying one shared chunk on write is cheap (256 × 48 bytes).
const CHUNK: usize = 256;

/// One priority's ready order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lane {
    chunks: VecDeque<Arc<VecDeque<Meta>>>,
    len: usize,
}

impl Lane {
    /// Messages in the lane.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds at the tail.
    pub(crate) fn push_back(&mut self, meta: Meta) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK => Arc::make_mut(chunk).push_back(meta),
            _ => self.chunks.push_back(Arc::new(VecDeque::from([meta]))),
        }
        self.len += 1;
    }

    /// Adds at the head.
    pub(crate) fn push_front(&mut self, meta: Meta) {
        match self.chunks.front_mut() {
            Some(chunk) if chunk.len() < CHUNK => Arc::make_mut(chunk).push_front(meta),
            _ => self.chunks.push_front(Arc::new(VecDeque::from([meta]))),
        }
        self.len += 1;
    }

    /// The head, if any.
    pub(crate) fn front(&self) -> Option<&Meta> {
        self.chunks.front().and_then(|c| c.front())
    }

    /// Removes the head.
    pub(crate) fn pop_front(&mut self) -> Option<Meta> {
        let chunk = self.chunks.front_mut()?;
        let meta = Arc::make_mut(chunk).pop_front();
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        if meta.is_some() {
            self.len -= 1;
        }
        meta
    }

    /// Removes the message with `id`, searching from the head (where the messages a
    /// consumer, an expiry or an overflow removes usually are).
    pub(crate) fn remove(&mut self, id: u64) -> Option<Meta> {
        let (c, i) = self
            .chunks
            .iter()
            .enumerate()
            .find_map(|(c, chunk)| chunk.iter().position(|m| m.id == id).map(|i| (c, i)))?;
        let chunk = &mut self.chunks[c];
        let meta = Arc::make_mut(chunk).remove(i)?;
        if chunk.is_empty() {
            self.chunks.remove(c);
        }
        self.len -= 1;
        Some(meta)
    }

    /// Messages from the head.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Meta> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Every message, mutably (compaction rewrites locations).
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&mut Meta)) {
        for chunk in self.chunks.iter_mut() {
            Arc::make_mut(chunk).iter_mut().for_each(&mut f);
        }
    }

    /// Empties the lane, returning what it held.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Meta> {
        self.len = 0;
        std::mem::take(&mut self.chunks)
            .into_iter()
            .flat_map(|c| Arc::unwrap_or_clone(c).into_iter())
    }
}

impl Serialize for Lane {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.len))?;
        for m in self.iter() {
            seq.serialize_element(m)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Lane {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let metas = Vec::<Meta>::deserialize(d)?;
        let mut lane = Lane::default();
        metas.into_iter().for_each(|m| lane.push_back(m));
        Ok(lane)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Location;

    fn meta(id: u64) -> Meta {
        Meta {
            id,
            created_at_ms: 0,
            expires_at_ms: 0,
            loc: Location::default(),
            body_len: 0,
            deliveries: 0,
            priority: 0,
        }
    }

    fn ids(lane: &Lane) -> Vec<u64> {
        lane.iter().map(|m| m.id).collect()
    }

    #[test]
    fn both_ends_pop_and_remove_keep_order_across_chunks() {
        let mut lane = Lane::default();
        for id in 1..=600 {
            lane.push_back(meta(id));
        }
        lane.push_front(meta(0));
        assert_eq!(lane.len(), 601);
        assert_eq!(lane.pop_front().map(|m| m.id), Some(0));
        assert_eq!(lane.remove(300).map(|m| m.id), Some(300));
        assert_eq!(lane.remove(9999), None);
        let want: Vec<u64> = (1..=600).filter(|i| *i != 300).collect();
        assert_eq!(ids(&lane), want);
        assert_eq!(lane.len(), 599);
    }

    #[test]
    fn a_clone_is_a_snapshot_untouched_by_later_changes() {
        let mut lane = Lane::default();
        (1..=1000).for_each(|id| lane.push_back(meta(id)));
        let snap = lane.clone();
        lane.pop_front();
        lane.remove(500);
        lane.push_back(meta(1001));
        assert_eq!(ids(&snap), (1..=1000).collect::<Vec<_>>());
        assert_eq!(lane.len(), 999);
        let bytes = postcard::to_allocvec(&snap).unwrap();
        let back: Lane = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(ids(&back), ids(&snap));
    }

    #[test]
    fn drain_empties_the_lane_in_order_and_leaves_a_snapshot_whole() {
        let mut lane = Lane::default();
        (1..=600).for_each(|id| lane.push_back(meta(id)));
        lane.push_front(meta(0));
        let snap = lane.clone();
        let drained: Vec<u64> = lane.drain().map(|m| m.id).collect();
        assert_eq!(drained, (0..=600).collect::<Vec<_>>());
        assert_eq!(lane.len(), 0);
        assert!(lane.front().is_none());
        assert_eq!(lane.iter().count(), 0);
        assert_eq!(ids(&snap), (0..=600).collect::<Vec<_>>());
        // The drained lane is usable again.
        lane.push_back(meta(7));
        assert_eq!((ids(&lane), lane.len()), (vec![7], 1));
    }

    #[test]
    fn for_each_mut_changes_every_message_but_not_a_snapshot() {
        let mut lane = Lane::default();
        (1..=600).for_each(|id| lane.push_back(meta(id)));
        let snap = lane.clone();
        lane.for_each_mut(|m| m.loc.segment = 9);
        assert_eq!(lane.len(), 600);
        assert!(lane.iter().all(|m| m.loc.segment == 9));
        assert_eq!(ids(&lane), (1..=600).collect::<Vec<_>>());
        assert!(
            snap.iter().all(|m| m.loc.segment == 0),
            "chunks copied on write"
        );
    }
}
