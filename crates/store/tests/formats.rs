//! On-disk formats are versioned, and an upgrade never silently cuts the log.
//!
//! - The fixtures under `tests/fixtures/` were written by this format version; the tests
//!   read them with the current code and check exactly what comes back, and check that
//!   the current code still writes the very same bytes. Any format change makes them
//!   fail, so it is always a conscious one (bump the version, add a new fixture
//!   directory, see `tests/fixtures/README.md`).
//! - A segment or checkpoint of an unknown version, a segment without its magic, or a
//!   record whose checksum holds but which does not decode stops `open`/`replay` with
//!   `StorageError::UnknownFormat` naming the file and byte offset, and changes no byte.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use godwit_core::op::SettingsV1;
use godwit_core::storage::{PushRecord, RemoveReason};
use godwit_core::{
    Location, Op, Overflow, QueueSettings, Retention, RetentionMode, StartAt, Storage, StorageError,
};
use godwit_store::checkpoint::{self, Draft, Position};
use godwit_store::{segment, FsyncPolicy, LogStore, StoreOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Log format 1's fixture: `fixtures/v1/log/*.seg` (no checkpoint).
fn log_fixture() -> PathBuf {
    fixtures().join("v1")
}

/// Checkpoint format 5's fixture: `fixtures/checkpoint-v5/checkpoint`.
fn checkpoint_fixture() -> PathBuf {
    fixtures().join("checkpoint-v5")
}

const CHECKPOINT_POSITION: Position = Position {
    segment: 3,
    offset: 1234,
};
const CHECKPOINT_STATE: &[u8] = b"opaque core state: the container does not look inside";

fn push(queue: &str, id: u64, body: &str) -> PushRecord {
    PushRecord {
        queue: queue.into(),
        id,
        created_at_ms: 1_700_000_000_000 + id,
        priority: (id % 10) as u8,
        not_before_ms: 1_700_000_000_000 + id,
        expires_at_ms: if id.is_multiple_of(2) {
            1_800_000_000_000
        } else {
            0
        },
        dedup_id: (id == 2).then(|| "dedup-2".to_string()),
        headers: BTreeMap::from([("trace".to_string(), format!("t{id}"))]),
        body: bytes::Bytes::from(body.to_string()),
        at_head: id == 3,
        body_hash: None,
    }
}

/// The groups the v1 fixture holds: a few ops of every `Op` variant.
fn fixture_groups() -> Vec<Vec<Op>> {
    let settings = SettingsV1 {
        max_deliveries: Some(3),
        dead_letter_queue: Some("jobs.dead".into()),
        dedup_window_ms: 60_000,
        retention: Retention {
            mode: RetentionMode::Log,
            max_age_ms: Some(86_400_000),
            max_bytes: None,
            max_count: Some(1000),
        },
        max_length: Some(10_000),
        max_bytes: None,
        overflow: Overflow::DropOldest,
        paused: false,
    };
    let (q, s) = ("jobs".to_string(), "".to_string());
    vec![
        vec![Op::Configure {
            queue: q.clone(),
            settings,
        }],
        vec![
            Op::Push(push("jobs", 1, "first")),
            Op::Push(push("jobs", 2, "second, with a dedup id")),
            Op::Push(push("jobs", 3, "third, at the head")),
        ],
        vec![Op::Subscribe {
            queue: q.clone(),
            sub: "audit".into(),
            start: StartAt::Earliest,
        }],
        vec![Op::Subscribe {
            queue: q.clone(),
            sub: "tail".into(),
            start: StartAt::Id(2),
        }],
        vec![Op::Lease {
            queue: q.clone(),
            sub: s.clone(),
            ids: vec![1, 2],
            until_ms: 1_700_000_030_000,
            first_token: 77,
        }],
        vec![Op::Release {
            queue: q.clone(),
            sub: s.clone(),
            ids: vec![2],
        }],
        vec![
            Op::Remove {
                queue: q.clone(),
                sub: s.clone(),
                ids: vec![1],
                reason: RemoveReason::Acked,
            },
            Op::Remove {
                queue: q.clone(),
                sub: "audit".into(),
                ids: vec![3],
                reason: RemoveReason::Taken,
            },
        ],
        vec![Op::Promote {
            queue: q.clone(),
            sub: s.clone(),
            ids: vec![3],
        }],
        vec![Op::Move {
            queue: q.clone(),
            sub: s.clone(),
            id: 2,
            to: "jobs.dead".into(),
            new_id: 1,
            dead_letter: true,
        }],
        vec![Op::Seek {
            queue: q.clone(),
            sub: "audit".into(),
            id: 1,
        }],
        vec![Op::Relocate {
            from: Location {
                segment: 1,
                offset: 12,
                len: 90,
            },
            push: push("jobs", 3, "third, at the head"),
        }],
        vec![Op::Trim {
            queue: q.clone(),
            below: 2,
        }],
        vec![Op::Unsubscribe {
            queue: q.clone(),
            sub: "tail".into(),
        }],
        vec![
            Op::Push(push("other", 1, "to be purged")),
            Op::Purge {
                queue: "other".into(),
            },
        ],
        vec![Op::DropQueue {
            queue: "other".into(),
        }],
        vec![Op::Remove {
            queue: q.clone(),
            sub: s.clone(),
            ids: vec![3],
            reason: RemoveReason::Expired,
        }],
        // Added to format 1 later (the `v1-base` fixture ends before them): ops and a
        // remove reason appended to the enums, so every earlier log still decodes.
        vec![Op::Push(push("jobs", 4, "fourth, to be moved"))],
        vec![Op::SoftGet {
            queue: q.clone(),
            sub: s.clone(),
            id: 4,
        }],
        vec![Op::MoveTo {
            queue: q.clone(),
            sub: s.clone(),
            id: 4,
            to: "jobs.done".into(),
            new_id: 1,
            at_head: true,
        }],
        vec![Op::Remove {
            queue: "jobs.done".into(),
            sub: s,
            ids: vec![1],
            reason: RemoveReason::Deleted,
        }],
        vec![Op::Create {
            queue: "topic".into(),
            created_at_ms: 1_700_000_000_500,
            description: Some("orders, fanned out".into()),
            fanout_only: true,
        }],
        vec![Op::Describe {
            queue: "topic".into(),
            description: None,
        }],
        vec![Op::settings(
            "topic",
            &QueueSettings {
                max_message_bytes: Some(4096),
                dedup_until_consumed: true,
                ..QueueSettings::default()
            },
        )],
        vec![
            Op::KvSet {
                key: "config".into(),
                value: bytes::Bytes::from_static(b"on"),
                flags: 7,
                version: 1,
                expires_at_ms: 0,
            },
            Op::KvSet {
                key: "session".into(),
                value: bytes::Bytes::from_static(b"token"),
                flags: 0,
                version: 2,
                expires_at_ms: 1_800_000_000_000,
            },
        ],
        vec![Op::KvExpire {
            key: "session".into(),
            expires_at_ms: 0,
        }],
        vec![Op::KvDelete {
            keys: vec!["config".into()],
        }],
        vec![Op::KvFlush],
        vec![
            Op::Seek {
                queue: "topic".into(),
                sub: "audit".into(),
                id: 2,
            },
            Op::Touch {
                queue: "topic".into(),
                sub: "audit".into(),
                at_ms: 1_700_000_000_900,
            },
        ],
        vec![Op::Reset {
            queue: "topic".into(),
            id: 1,
        }],
        vec![
            Op::Cursor {
                queue: "topic".into(),
                sub: "reader".into(),
                start: StartAt::Id(2),
            },
            Op::Touch {
                queue: "topic".into(),
                sub: "reader".into(),
                at_ms: 1_700_000_001_000,
            },
        ],
    ]
}

/// How many of [`fixture_groups`] the first format-1 fixture (`v1-base/`) holds.
const BASE_GROUPS: usize = 16;

/// Every `Op` variant by name: adding one fails to compile here, a reminder that the
/// fixture (and maybe the format version) must follow.
fn variant(op: &Op) -> &'static str {
    match op {
        Op::Push(_) => "Push",
        Op::Remove { .. } => "Remove",
        Op::Promote { .. } => "Promote",
        Op::Lease { .. } => "Lease",
        Op::Release { .. } => "Release",
        Op::Move { .. } => "Move",
        Op::Configure { .. } => "Configure",
        Op::Purge { .. } => "Purge",
        Op::DropQueue { .. } => "DropQueue",
        Op::Subscribe { .. } => "Subscribe",
        Op::Seek { .. } => "Seek",
        Op::Unsubscribe { .. } => "Unsubscribe",
        Op::Trim { .. } => "Trim",
        Op::Relocate { .. } => "Relocate",
        Op::MoveTo { .. } => "MoveTo",
        Op::SoftGet { .. } => "SoftGet",
        Op::Create { .. } => "Create",
        Op::Describe { .. } => "Describe",
        Op::Settings { .. } => "Settings",
        Op::KvSet { .. } => "KvSet",
        Op::KvExpire { .. } => "KvExpire",
        Op::KvDelete { .. } => "KvDelete",
        Op::KvFlush => "KvFlush",
        Op::Touch { .. } => "Touch",
        Op::Reset { .. } => "Reset",
        Op::Cursor { .. } => "Cursor",
    }
}

const VARIANTS: usize = 26;

/// Writes the fixture groups with the current code into `dir`.
fn write_log(dir: &Path) {
    let mut opts = StoreOptions::new(dir);
    opts.fsync = FsyncPolicy::Never;
    // Small segments, so the fixture spans more than one.
    opts.segment_bytes = 512;
    let store = LogStore::open(opts).unwrap();
    store.replay(&mut |_| Ok(())).unwrap();
    for group in fixture_groups() {
        store.append(&group).unwrap();
    }
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The segments of a log directory, without the store's `LOCK`.
fn segments_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    snapshot(dir)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|x| x == "seg"))
        .collect()
}

/// Asserts that every file that was in `dir` is still there with the same bytes, and
/// nothing but the store's (empty) `LOCK` was added.
#[track_caller]
fn assert_unchanged(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let mut after = snapshot(dir);
    if !before.contains_key(Path::new("LOCK")) {
        after.remove(Path::new("LOCK"));
    }
    assert!(
        &after == before,
        "files changed: before {:?}, after {:?}",
        before
            .keys()
            .map(|k| (k, before[k].len()))
            .collect::<Vec<_>>(),
        after
            .keys()
            .map(|k| (k, after[k].len()))
            .collect::<Vec<_>>()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for (rel, bytes) in snapshot(from) {
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
}

fn replay_all(dir: &Path) -> Result<Vec<Vec<(Op, Location)>>, StorageError> {
    let store = LogStore::open(StoreOptions::new(dir))?;
    let mut groups = Vec::new();
    store.replay(&mut |g| {
        groups.push(g);
        Ok(())
    })?;
    Ok(groups)
}

/// Regenerates the fixtures from the current code. Run only on a conscious format change
/// (after bumping the version and moving the old fixture aside):
/// `cargo test -p godwit-store --release --test formats -- --ignored regenerate_fixtures`.
#[test]
#[ignore]
fn regenerate_fixtures() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path());
    let out = log_fixture().join("log");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    for (rel, bytes) in segments_of(tmp.path()) {
        std::fs::write(log_fixture().join(rel), bytes).unwrap();
    }
    let out = checkpoint_fixture();
    std::fs::create_dir_all(&out).unwrap();
    let mut draft = Draft::create(&out, CHECKPOINT_POSITION).unwrap();
    draft.write_all(CHECKPOINT_STATE).unwrap();
    draft.finish(&out).unwrap();
}

#[test]
fn the_v1_log_fixture_replays_exactly_and_is_what_this_build_writes() {
    let names: BTreeSet<&str> = fixture_groups().iter().flatten().map(variant).collect();
    assert_eq!(names.len(), VARIANTS, "the fixture covers every Op variant");

    let fixture = segments_of(&log_fixture());
    assert!(fixture.len() >= 2, "fixture segments: {:?}", fixture.keys());
    for bytes in fixture.values() {
        assert_eq!(&bytes[..8], segment::MAGIC);
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes(), "segment format version");
    }

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&log_fixture(), dir.path());
    let groups = replay_all(dir.path()).unwrap();
    let ops: Vec<Vec<Op>> = groups
        .iter()
        .map(|g| g.iter().map(|(op, _)| op.clone()).collect())
        .collect();
    assert_eq!(ops, fixture_groups());
    // The first record of the first segment starts right after the header.
    assert_eq!(
        groups[0][0].1,
        Location {
            segment: 1,
            offset: segment::HEADER_LEN as u32,
            len: groups[0][0].1.len,
        }
    );
    // Replaying changed nothing (no torn tail was found).
    assert_eq!(segments_of(dir.path()), fixture);

    let fresh = tempfile::tempdir().unwrap();
    write_log(fresh.path());
    assert_eq!(
        segments_of(fresh.path()),
        fixture,
        "this build writes different bytes than log format 1's fixture: a format change \
         needs a new version and fixture (see tests/fixtures/README.md)"
    );
}

#[test]
fn the_first_v1_log_fixture_still_replays_exactly() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("v1-base"), dir.path());
    let ops: Vec<Vec<Op>> = replay_all(dir.path())
        .unwrap()
        .iter()
        .map(|g| g.iter().map(|(op, _)| op.clone()).collect())
        .collect();
    assert_eq!(ops, fixture_groups()[..BASE_GROUPS]);
}

#[test]
fn the_v4_checkpoint_container_fixture_still_loads() {
    let dir = fixtures().join("checkpoint-v4");
    let raw = std::fs::read(checkpoint::path(&dir)).unwrap();
    assert_eq!(
        &raw[8..12],
        &4u32.to_le_bytes(),
        "checkpoint format version"
    );
    let (pos, state) = checkpoint::load(&dir).unwrap().unwrap();
    assert_eq!(pos, CHECKPOINT_POSITION);
    assert_eq!(state, CHECKPOINT_STATE);
}

#[test]
fn the_v5_checkpoint_container_fixture_loads_and_is_what_this_build_writes() {
    let raw = std::fs::read(checkpoint::path(&checkpoint_fixture())).unwrap();
    assert_eq!(&raw[..8], checkpoint::MAGIC);
    assert_eq!(
        &raw[8..12],
        &5u32.to_le_bytes(),
        "checkpoint format version"
    );
    let (pos, state) = checkpoint::load(&checkpoint_fixture()).unwrap().unwrap();
    assert_eq!(pos, CHECKPOINT_POSITION);
    assert_eq!(state, CHECKPOINT_STATE);

    let fresh = tempfile::tempdir().unwrap();
    let mut draft = Draft::create(fresh.path(), CHECKPOINT_POSITION).unwrap();
    draft.write_all(CHECKPOINT_STATE).unwrap();
    draft.finish(fresh.path()).unwrap();
    assert_eq!(
        std::fs::read(checkpoint::path(fresh.path())).unwrap(),
        raw,
        "this build writes a different checkpoint container than format 5's fixture"
    );
}

/// Asserts `result` is `UnknownFormat` naming `path` and `at byte {offset}`.
#[track_caller]
fn assert_unknown<T>(result: Result<T, StorageError>, path: &Path, offset: u64) {
    match result {
        Err(StorageError::UnknownFormat(msg)) => {
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("at byte {offset}:")), "{msg}");
            assert!(msg.contains("nothing was changed"), "{msg}");
        }
        Err(other) => panic!(
            "expected UnknownFormat for {}, got {other:?}",
            path.display()
        ),
        Ok(_) => panic!("expected UnknownFormat for {}, got Ok", path.display()),
    }
}

fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&log_fixture(), dir.path());
    dir
}

#[test]
fn an_unknown_segment_version_refuses_to_open_and_changes_nothing() {
    let dir = fixture_copy();
    let seg = dir.path().join("log/0000000002.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let before = snapshot(dir.path());
    assert_unknown(LogStore::open(StoreOptions::new(dir.path())), &seg, 8);
    assert_unchanged(dir.path(), &before);
}

#[test]
fn a_segment_without_the_magic_refuses_to_open_and_changes_nothing() {
    let dir = fixture_copy();
    let seg = dir.path().join("log/0000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    // A pre-versioning segment started right with a record.
    bytes.drain(..segment::HEADER_LEN as usize);
    std::fs::write(&seg, &bytes).unwrap();
    let before = snapshot(dir.path());
    assert_unknown(LogStore::open(StoreOptions::new(dir.path())), &seg, 0);
    assert_unchanged(dir.path(), &before);
}

#[test]
fn a_valid_checksum_over_an_undecodable_record_refuses_to_replay_and_changes_nothing() {
    let dir = fixture_copy();
    // The middle of the log: the first record of the last group in segment 1.
    let groups = replay_all(dir.path()).unwrap();
    let at = groups
        .iter()
        .filter(|g| g[0].1.segment == 1)
        .map(|g| g[0].1)
        .nth(2)
        .unwrap();
    let seg = dir.path().join("log/0000000001.seg");
    let mut bytes = std::fs::read(&seg).unwrap();
    let (start, end) = (at.offset as usize, (at.offset + at.len) as usize);
    // Op variant 0x7f does not exist; the checksum is made to hold, as a newer build's
    // record would.
    bytes[start + 9] = 0x7f;
    let crc = crc32c::crc32c(&bytes[start + 8..end]);
    bytes[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let before = snapshot(dir.path());
    assert_unknown(replay_all(dir.path()), &seg, at.offset as u64);
    assert_unchanged(dir.path(), &before);
}

#[test]
fn an_unknown_checkpoint_version_refuses_to_open_and_changes_nothing() {
    let dir = fixture_copy();
    let path = checkpoint::path(dir.path());
    let mut raw = std::fs::read(checkpoint::path(&checkpoint_fixture())).unwrap();
    raw[8..12].copy_from_slice(&6u32.to_le_bytes());
    let crc_at = raw.len() - 4;
    let crc = crc32c::crc32c(&raw[..crc_at]);
    raw[crc_at..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &raw).unwrap();
    let before = snapshot(dir.path());
    assert_unknown(LogStore::open(StoreOptions::new(dir.path())), &path, 8);
    assert_unchanged(dir.path(), &before);

    // And a version-1 checkpoint is refused the same way.
    raw[8..12].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&path, &raw).unwrap();
    assert_unknown(LogStore::open(StoreOptions::new(dir.path())), &path, 8);

    // As is the version-2 fixture, written by the build before the value index: its
    // state has no body hashes, so it is not guessed at.
    let v2 = std::fs::read(checkpoint::path(&fixtures().join("checkpoint-v2"))).unwrap();
    std::fs::write(&path, &v2).unwrap();
    let before = snapshot(dir.path());
    assert_unknown(LogStore::open(StoreOptions::new(dir.path())), &path, 8);
    assert_unchanged(dir.path(), &before);

    // And the version-3 fixture, written by the build before cursors: its state has no
    // cursor positions or last-action times.
    let v3 = std::fs::read(checkpoint::path(&fixtures().join("checkpoint-v3"))).unwrap();
    std::fs::write(&path, &v3).unwrap();
    let before = snapshot(dir.path());
    assert_unknown(LogStore::open(StoreOptions::new(dir.path())), &path, 8);
    assert_unchanged(dir.path(), &before);
}

/// A crash while creating a segment leaves its header cut short: that is a torn tail
/// (the segment holds no record), removed on open; appends go on.
#[test]
fn a_torn_header_in_the_newest_segment_is_a_torn_tail() {
    let dir = fixture_copy();
    let torn = dir.path().join("log/0000000009.seg");
    std::fs::write(&torn, &segment::header()[..5]).unwrap();
    let store = LogStore::open(StoreOptions::new(dir.path())).unwrap();
    let mut n = 0;
    store
        .replay(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, fixture_groups().len());
    assert!(!torn.exists());
    let appended = store.append(&[Op::Purge { queue: "q".into() }]).unwrap();
    drop(appended);
    drop(store);
    let groups = replay_all(dir.path()).unwrap();
    assert_eq!(groups.len(), fixture_groups().len() + 1);
}

/// A log written before settings travelled as JSON (`Op::Configure`'s first layout)
/// opens as a broker with those settings, and the new fields take their defaults.
#[tokio::test]
async fn the_first_v1_log_opens_as_a_broker_with_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("v1-base"), dir.path());
    let mut opts = StoreOptions::new(dir.path());
    opts.segment_bytes = 512;
    let store = std::sync::Arc::new(LogStore::open(opts).unwrap());
    let clock = std::sync::Arc::new(godwit_core::ManualClock::new(1_700_000_000_000));
    let broker =
        godwit_core::Broker::open(store, clock, godwit_core::BrokerConfig::default()).unwrap();
    let s = broker.settings("jobs").unwrap();
    assert_eq!(
        (
            s.max_deliveries,
            s.dead_letter_queue.as_deref(),
            s.max_length
        ),
        (Some(3), Some("jobs.dead"), Some(10_000))
    );
    assert_eq!(s.overflow, Overflow::DropOldest);
    assert_eq!((s.max_message_bytes, s.dedup_until_consumed), (None, false));
    broker.shutdown().await.unwrap();
}
