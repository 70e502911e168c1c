//! Segment files: `log/<number>.seg`, numbered from 1, each a run of records.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

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

    /// Creates segment `n` (and makes its directory entry durable).
    pub fn create(&self, n: u32) -> io::Result<Arc<File>> {
        if let Some(f) = self.get(n) {
            return Ok(f);
        }
        let file = Arc::new(open_rw(&self.path(n))?);
        sync_dir(&self.dir)?;
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

/// fsyncs a directory so that created, renamed or deleted entries survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
