//! Segment files: `log/<number>.seg`, numbered from 1, each a [`HEADER_LEN`]-byte header
//! (`"GODWITLG"`, `u32` format version, little-endian) followed by a run of records.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use godwit_core::StorageError;
use parking_lot::RwLock;

/// The first bytes of every segment.
pub const MAGIC: &[u8; 8] = b"GODWITLG";
/// The segment format this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of the header; the first record starts here.
pub const HEADER_LEN: u64 = 12;

/// The header this build writes.
pub fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// What the front of a segment file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// A header of this build's version: records follow.
    Valid,
    /// Fewer bytes than a header, all of them a prefix of this build's header: the
    /// process stopped while creating the segment, so it holds no record.
    Torn,
}

/// Checks the header at the front of `data` (the first bytes of the segment at `path`).
/// A foreign or newer file is [`StorageError::UnknownFormat`]: recovery must stop rather
/// than cut it.
pub fn check_header(path: &Path, data: &[u8]) -> Result<Header, StorageError> {
    let want = header();
    let n = data.len().min(want.len());
    if data.len() < want.len() && data[..n] == want[..n] {
        return Ok(Header::Torn);
    }
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Err(StorageError::UnknownFormat(format!(
            "{} at byte 0: not a Godwit log segment (no GODWITLG header); \
             refusing to start, nothing was changed",
            path.display()
        )));
    }
    let mut v = [0u8; 4];
    let got = &data[8..data.len().min(12)];
    v[..got.len()].copy_from_slice(got);
    let version = u32::from_le_bytes(v);
    if data.len() < want.len() || version != VERSION {
        return Err(StorageError::UnknownFormat(format!(
            "{} at byte 8: unknown log segment version {version} (this build reads {VERSION}); \
             refusing to start, nothing was changed",
            path.display()
        )));
    }
    Ok(Header::Valid)
}

/// The open segment files, shared by the writer (which creates them) and readers.
/// Readers hold an `Arc<File>`, so a segment deleted by reclamation stays readable
/// until the last reader lets go.
#[derive(Debug, Default)]
pub struct Segments {
    dir: PathBuf,
    files: RwLock<BTreeMap<u32, Arc<File>>>,
}

impl Segments {
    /// The segments in `dir` (the `log` directory), opened for reading and writing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if let Some(n) = segment_number(&path) {
                files.insert(n, Arc::new(open_rw(&path)?));
            }
        }
        Ok(Segments {
            dir: dir.to_path_buf(),
            files: RwLock::new(files),
        })
    }

    /// The path of segment `n`.
    pub fn path(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{n:010}.seg"))
    }

    /// The file of segment `n`, if it exists.
    pub fn get(&self, n: u32) -> Option<Arc<File>> {
        self.files.read().get(&n).cloned()
    }

    /// Segment numbers, ascending.
    pub fn numbers(&self) -> Vec<u32> {
        self.files.read().keys().copied().collect()
    }

    /// Creates segment `n` with its header, and makes both the header and the directory
    /// entry durable before any record can be written to it. On failure (a full disk,
    /// say) the half-made file is removed again, so no headerless segment is left.
    pub fn create(&self, n: u32) -> io::Result<Arc<File>> {
        let path = self.path(n);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let made = file
            .write_all_at(&header(), 0)
            .and_then(|_| file.sync_data())
            .and_then(|_| sync_dir(&self.dir));
        if let Err(e) = made {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let file = Arc::new(file);
        self.files.write().insert(n, file.clone());
        Ok(file)
    }

    /// Deletes segment `n`.
    pub fn remove(&self, n: u32) -> io::Result<()> {
        self.files.write().remove(&n);
        match fs::remove_file(self.path(n)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves segment `n` aside as `<n>.seg.corrupt` so it is neither replayed nor lost.
    pub fn quarantine(&self, n: u32) -> io::Result<()> {
        self.files.write().remove(&n);
        let path = self.path(n);
        fs::rename(&path, path.with_extension("seg.corrupt"))
    }

    /// Makes the directory's entries durable.
    pub fn sync_dir(&self) -> io::Result<()> {
        sync_dir(&self.dir)
    }
}

fn segment_number(path: &Path) -> Option<u32> {
    if path.extension()? != "seg" {
        return None;
    }
    path.file_stem()?.to_str()?.parse().ok()
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Reserves `file`'s disk blocks from `from` to `end` without changing its size
/// (`fallocate` with `FALLOC_FL_KEEP_SIZE`), so that writes in that range cannot fail
/// for want of space. False when the filesystem cannot (no `fallocate`, or no room):
/// writes there are then made one by one, each able to be refused.
pub fn reserve(file: &File, from: u64, end: u64) -> bool {
    let (Ok(offset), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(end.saturating_sub(from)),
    ) else {
        return false;
    };
    if len == 0 {
        return false;
    }
    // SAFETY: fallocate on a file descriptor we own; no memory is shared with the kernel.
    unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) == 0 }
}

/// Gives back the blocks [`reserve`] took past `end_of_data`, once a segment is sealed
/// (best effort: at worst they are freed with the segment). Truncating to the file's own
/// size frees the blocks reserved past it.
pub fn release(file: &File, end_of_data: u64) {
    let _ = file.set_len(end_of_data);
}

/// fsyncs a directory so that created, renamed or deleted entries survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
