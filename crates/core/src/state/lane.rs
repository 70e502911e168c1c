//! A ready lane: one priority's delivery order, with pushes at both ends.
//!
//! The lane is a deque of fixed-size chunks shared by reference count. Cloning a lane
//! (what a checkpoint snapshot does under the lock) copies one pointer per chunk, not
//! one `Meta` per message; a later change to a shared chunk copies that chunk only.
//! So a checkpoint of a two-million-message backlog holds the lock for microseconds.
//! The interface is the one a paged lane (head window in memory, the rest read back
//! from segments) would offer: push and pop at either end, remove by id, iterate from
//! either end.
//!
//! Each chunk keeps bounds on the ids it holds (never narrowed on removal), so a removal
//! by id skips every chunk that cannot hold it: ids rise along the lane except where
//! messages were pushed at the head or returned, so finding one message in a
//! million-message lane looks into one or two chunks, not all of them.

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
    chunks: VecDeque<Arc<Chunk>>,
    len: usize,
}

/// Up to [`CHUNK`] messages and bounds on their ids.
#[derive(Debug, Clone)]
struct Chunk {
    metas: VecDeque<Meta>,
    /// No message here has an id below this.
    lo: u64,
    /// No message here has an id above this.
    hi: u64,
}

impl Chunk {
    fn of(meta: Meta) -> Arc<Chunk> {
        Arc::new(Chunk {
            metas: VecDeque::from([meta]),
            lo: meta.id,
            hi: meta.id,
        })
    }

    fn widen(&mut self, id: u64) {
        self.lo = self.lo.min(id);
        self.hi = self.hi.max(id);
    }

    fn may_hold(&self, id: u64) -> bool {
        (self.lo..=self.hi).contains(&id)
    }
}

impl Lane {
    /// Messages in the lane.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds at the tail.
    pub(crate) fn push_back(&mut self, meta: Meta) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.metas.len() < CHUNK => {
                let chunk = Arc::make_mut(chunk);
                chunk.widen(meta.id);
                chunk.metas.push_back(meta);
            }
            _ => self.chunks.push_back(Chunk::of(meta)),
        }
        self.len += 1;
    }

    /// Adds at the head.
    pub(crate) fn push_front(&mut self, meta: Meta) {
        match self.chunks.front_mut() {
            Some(chunk) if chunk.metas.len() < CHUNK => {
                let chunk = Arc::make_mut(chunk);
                chunk.widen(meta.id);
                chunk.metas.push_front(meta);
            }
            _ => self.chunks.push_front(Chunk::of(meta)),
        }
        self.len += 1;
    }

    /// The head, if any.
    pub(crate) fn front(&self) -> Option<&Meta> {
        self.chunks.front().and_then(|c| c.metas.front())
    }

    /// The tail, if any.
    pub(crate) fn back(&self) -> Option<&Meta> {
        self.chunks.back().and_then(|c| c.metas.back())
    }

    /// Removes the head.
    pub(crate) fn pop_front(&mut self) -> Option<Meta> {
        let chunk = self.chunks.front_mut()?;
        let meta = Arc::make_mut(chunk).metas.pop_front();
        if chunk.metas.is_empty() {
            self.chunks.pop_front();
        }
        if meta.is_some() {
            self.len -= 1;
        }
        meta
    }

    /// Removes the tail.
    pub(crate) fn pop_back(&mut self) -> Option<Meta> {
        let chunk = self.chunks.back_mut()?;
        let meta = Arc::make_mut(chunk).metas.pop_back();
        if chunk.metas.is_empty() {
            self.chunks.pop_back();
        }
        if meta.is_some() {
            self.len -= 1;
        }
        meta
    }

    /// Removes the message with `id`: either end at once, else the chunks whose id
    /// bounds admit it, from the head.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Meta> {
        if self.front().is_some_and(|m| m.id == id) {
            return self.pop_front();
        }
        if self.back().is_some_and(|m| m.id == id) {
            return self.pop_back();
        }
        let (c, i) = self.chunks.iter().enumerate().find_map(|(c, chunk)| {
            if !chunk.may_hold(id) {
                return None;
            }
            chunk.metas.iter().position(|m| m.id == id).map(|i| (c, i))
        })?;
        let chunk = &mut self.chunks[c];
        let meta = Arc::make_mut(chunk).metas.remove(i)?;
        if chunk.metas.is_empty() {
            self.chunks.remove(c);
        }
        self.len -= 1;
        Some(meta)
    }

    /// The message with `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&Meta> {
        self.chunks
            .iter()
            .filter(|c| c.may_hold(id))
            .find_map(|c| c.metas.iter().find(|m| m.id == id))
    }

    /// Messages from the head (reversed, from the tail).
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Meta> + '_ {
        self.chunks.iter().flat_map(|c| c.metas.iter())
    }

    /// Messages with ids from `id` on, in lane order, for a lane in id order (a queue's
    /// retained log): the first one is found by binary search over the chunks' bounds,
    /// so this costs O(log n) before the first message.
    pub(crate) fn iter_from_id(&self, id: u64) -> impl Iterator<Item = &Meta> + '_ {
        // In an id-ordered lane every chunk's ids are below the next chunk's, and a
        // chunk's upper bound only widens by pushes at the tail.
        let first = self.chunks.partition_point(|c| c.hi < id);
        self.chunks
            .range(first..)
            .flat_map(|c| c.metas.iter())
            .skip_while(move |m| m.id < id)
    }

    /// How many messages have ids from `id` on, for a lane in id order: a binary
    /// search for the chunk, then one addition per chunk on the shorter side of it
    /// (a 1,000,000-message log is about 4,000 chunks).
    pub(crate) fn count_from_id(&self, id: u64) -> usize {
        let first = self.chunks.partition_point(|c| c.hi < id);
        let Some(chunk) = self.chunks.get(first) else {
            return 0;
        };
        let within = chunk.metas.len() - chunk.metas.partition_point(|m| m.id < id);
        if first < self.chunks.len() / 2 {
            let before: usize = self.chunks.range(..first).map(|c| c.metas.len()).sum();
            self.len - before - (chunk.metas.len() - within)
        } else {
            let after: usize = self.chunks.range(first + 1..).map(|c| c.metas.len()).sum();
            after + within
        }
    }

    /// Every message, mutably (compaction rewrites locations).
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&mut Meta)) {
        for chunk in self.chunks.iter_mut() {
            Arc::make_mut(chunk).metas.iter_mut().for_each(&mut f);
        }
    }

    /// Empties the lane, returning what it held.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Meta> {
        self.len = 0;
        std::mem::take(&mut self.chunks)
            .into_iter()
            .flat_map(|c| Arc::unwrap_or_clone(c).metas.into_iter())
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
            hash: 0,
            priority: 0,
        }
    }

    fn ids(lane: &Lane) -> Vec<u64> {
        lane.iter().map(|m| m.id).collect()
    }

    #[test]
    fn iter_from_id_starts_at_the_first_id_at_or_after_it() {
        let mut lane = Lane::default();
        (1..=1000)
            .filter(|i| i % 3 != 0)
            .for_each(|i| lane.push_back(meta(i)));
        while lane.front().is_some_and(|m| m.id < 100) {
            lane.pop_front();
        }
        let from = |id| {
            lane.iter_from_id(id)
                .map(|m| m.id)
                .take(3)
                .collect::<Vec<_>>()
        };
        assert_eq!(from(0), vec![100, 101, 103]);
        assert_eq!(from(300), vec![301, 302, 304]);
        assert_eq!(from(511), vec![511, 512, 514]);
        assert_eq!(from(999), vec![1000]);
        assert_eq!(from(1001), Vec::<u64>::new());
        assert_eq!(from(u64::MAX), Vec::<u64>::new());
        assert_eq!(
            lane.iter_from_id(500).count(),
            lane.iter().filter(|m| m.id >= 500).count()
        );
    }

    #[test]
    fn count_from_id_agrees_with_a_scan_on_both_sides_of_the_middle() {
        let mut lane = Lane::default();
        (1..=3000)
            .filter(|i| i % 7 != 0)
            .for_each(|i| lane.push_back(meta(i)));
        while lane.front().is_some_and(|m| m.id < 40) {
            lane.pop_front();
        }
        for id in [
            0,
            39,
            40,
            41,
            256,
            700,
            1499,
            1500,
            2048,
            2999,
            3000,
            3001,
            u64::MAX,
        ] {
            assert_eq!(
                lane.count_from_id(id),
                lane.iter().filter(|m| m.id >= id).count(),
                "from {id}"
            );
        }
        assert_eq!(Lane::default().count_from_id(0), 0);
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
    fn the_tail_pops_and_removal_by_id_finds_messages_pushed_at_either_end() {
        let mut lane = Lane::default();
        (1..=1000).for_each(|id| lane.push_back(meta(id)));
        // Head pushes carry ids above the rest: the bounds of the head chunk widen.
        lane.push_front(meta(5000));
        lane.push_front(meta(5001));
        assert_eq!(lane.back().map(|m| m.id), Some(1000));
        assert_eq!(lane.pop_back().map(|m| m.id), Some(1000));
        assert_eq!(lane.remove(5000).map(|m| m.id), Some(5000));
        assert_eq!(lane.remove(999).map(|m| m.id), Some(999));
        assert_eq!(lane.remove(257).map(|m| m.id), Some(257));
        assert_eq!(lane.remove(257), None);
        let mut want = vec![5001];
        want.extend((1..=998).filter(|i| *i != 257));
        assert_eq!(ids(&lane), want);
        assert_eq!(lane.len(), want.len());
        let from_tail: Vec<u64> = lane.iter().rev().take(2).map(|m| m.id).collect();
        assert_eq!(from_tail, vec![998, 997]);
        while lane.pop_back().is_some() {}
        assert_eq!((lane.len(), lane.front()), (0, None));
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
