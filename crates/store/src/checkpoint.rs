//! Checkpoint files: the core's state as of one log position.
//!
//! Layout of `checkpoint`: `"GODWITCP"`, `u32` version, `u32` segment, `u64` offset (the
//! log position the state corresponds to), the state bytes, then a trailer of `u64`
//! state length and `u32` CRC32C of everything before the CRC. It is written as
//! `checkpoint.tmp`, fsynced, and renamed over the old one, so a crash leaves either the
//! old or the new checkpoint, never a mix; a draft that fails (a full disk, say) is
//! removed and the old checkpoint stays.
//!
//! Version history: 1 (first release); 2 (the core's state encoding changed); 3 (every
//! message's state gained its body hash); 4 (subscriptions gained cursor positions and
//! last-action times, and the key/value namespace follows the queues' state); 5 (a third
//! section, the bare cursor subscriptions, follows the key/value namespace). This build
//! writes 5 and reads 5 and 4 (a 4 has no cursors). A version it does not read stops recovery with
//! [`StorageError::UnknownFormat`].

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use godwit_core::StorageError;

/// The first bytes of every checkpoint.
pub const MAGIC: &[u8; 8] = b"GODWITCP";
/// The checkpoint format this build writes: 5 since the bare cursor subscriptions
/// follow the key/value namespace; 4 (still read: it ends before that section) since
/// every subscription's state gained its cursor position and last-action time (and
/// every queue the id its log is complete from), and the key/value namespace follows
/// the queues' state; 3 came with body hashes and soft-get counters; 3, 2 and 1 are
/// refused.
pub const VERSION: u32 = 5;
/// The checkpoint formats this build reads.
pub const READS: [u32; 2] = [4, 5];
/// Bytes before the state: magic, version, segment, offset.
pub const HEAD: usize = 8 + 4 + 4 + 8;
/// Bytes after the state: state length, CRC.
pub const TRAILER: usize = 8 + 4;

/// A log position: segment number and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Segment number.
    pub segment: u32,
    /// Offset in the segment.
    pub offset: u64,
}

/// The checkpoint's file name in the data directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

/// Reads and verifies the checkpoint in `dir`.
pub fn load(dir: &Path) -> Result<Option<(Position, Vec<u8>)>, StorageError> {
    let path = path(dir);
    let buf = match fs::read(&path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(format!("reading {}", path.display()), e)),
    };
    let corrupt = |why: &str| StorageError::Corrupt(format!("{}: {why}", path.display()));
    if buf.len() < 8 || &buf[..8] != MAGIC {
        return Err(StorageError::UnknownFormat(format!(
            "{} at byte 0: not a Godwit checkpoint (no GODWITCP header); \
             refusing to start, nothing was changed",
            path.display()
        )));
    }
    if buf.len() < HEAD + TRAILER {
        return Err(corrupt("shorter than a checkpoint"));
    }
    let u32_at = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().unwrap_or([0; 8]));
    let version = u32_at(8);
    if !READS.contains(&version) {
        return Err(StorageError::UnknownFormat(format!(
            "{} at byte 8: unknown checkpoint version {version} (this build reads {READS:?}); \
             refusing to start, nothing was changed",
            path.display()
        )));
    }
    let crc_at = buf.len() - 4;
    if crc32c::crc32c(&buf[..crc_at]) != u32_at(crc_at) {
        return Err(corrupt("checksum mismatch"));
    }
    let len = u64_at(crc_at - 8) as usize;
    if HEAD + len + TRAILER != buf.len() {
        return Err(corrupt("length mismatch"));
    }
    let pos = Position {
        segment: u32_at(12),
        offset: u64_at(16),
    };
    Ok(Some((pos, buf[HEAD..HEAD + len].to_vec())))
}

/// Streams a new checkpoint into `checkpoint.tmp`, computing its CRC on the way. Dropped
/// without [`Draft::finish`] succeeding, it removes `checkpoint.tmp`.
pub struct Draft {
    out: Option<BufWriter<File>>,
    crc: u32,
    len: u64,
    tmp: PathBuf,
    renamed: bool,
    /// The position the state corresponds to.
    pub position: Position,
}

impl Draft {
    /// Starts a draft for the state at `position`.
    pub fn create(dir: &Path, position: Position) -> io::Result<Self> {
        let tmp = dir.join("checkpoint.tmp");
        let mut draft = Draft {
            out: Some(BufWriter::with_capacity(1 << 20, File::create(&tmp)?)),
            crc: 0,
            len: 0,
            tmp,
            renamed: false,
            position,
        };
        let mut head = Vec::with_capacity(HEAD);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&position.segment.to_le_bytes());
        head.extend_from_slice(&position.offset.to_le_bytes());
        draft.raw(&head)?;
        draft.len = 0;
        Ok(draft)
    }

    fn raw(&mut self, buf: &[u8]) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.len += buf.len() as u64;
        self.out_mut()?.write_all(buf)
    }

    fn out_mut(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("checkpoint draft already finished"))
    }

    /// Writes the trailer, fsyncs, and renames the draft into place.
    pub fn finish(mut self, dir: &Path) -> io::Result<()> {
        let len = self.len;
        self.raw(&len.to_le_bytes())?;
        let crc = self.crc;
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("checkpoint draft already finished"))?;
        out.write_all(&crc.to_le_bytes())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&self.tmp, path(dir))?;
        self.renamed = true;
        crate::segment::sync_dir(dir)
    }
}

impl Drop for Draft {
    fn drop(&mut self) {
        // Unfinished, or failed before the rename: the old checkpoint is the one to keep.
        if !self.renamed {
            drop(self.out.take());
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Write for Draft {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.raw(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out_mut()?.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let pos = Position {
            segment: 3,
            offset: 99,
        };
        let mut d = Draft::create(dir.path(), pos).unwrap();
        d.write_all(b"state bytes").unwrap();
        d.finish(dir.path()).unwrap();
        let (p, bytes) = load(dir.path()).unwrap().unwrap();
        assert_eq!(p, pos);
        assert_eq!(bytes, b"state bytes");
        let mut raw = fs::read(path(dir.path())).unwrap();
        raw[HEAD + 2] ^= 1;
        fs::write(path(dir.path()), raw).unwrap();
        assert!(load(dir.path()).is_err());
    }
}
