//! Streamed blobs on the local file system.
//!
//! Write order (DESIGN "On disk"): the blob is written under `tmp/`, fsynced, renamed into
//! `blobs/ab/cd/<id>`, and the directory fsynced; only then may metadata name it. Deletion removes
//! metadata first, then the blob; [`FileBlobStore::sweep`] removes blobs no metadata names.

use crate::Result;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A blob being written; nothing is visible until [`BlobWriter::commit`].
pub trait BlobWriter: Write + Send {
    /// Makes the blob durable and visible under its id.
    fn commit(self: Box<Self>) -> Result<()>;
}

pub trait BlobStore: Send + Sync {
    /// Starts writing blob `id` (ids are `[A-Za-z0-9_-]+`, chosen by the caller).
    fn create(&self, id: &str) -> Result<Box<dyn BlobWriter>>;
    /// Opens blob `id` positioned at `offset`.
    fn open(&self, id: &str, offset: u64) -> Result<Box<dyn Read + Send>>;
    fn len(&self, id: &str) -> Result<u64>;
    /// Removes blob `id`; absent blobs are not an error.
    fn delete(&self, id: &str) -> Result<()>;
    /// Removes leftovers of interrupted writes and every blob for which `keep` says false.
    fn sweep(&self, keep: &dyn Fn(&str) -> bool) -> Result<usize>;
}

pub struct FileBlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

fn valid_id(id: &str) -> bool {
    id.len() >= 4
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn bad_id() -> crate::StoreError {
    crate::StoreError::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        "invalid blob id",
    ))
}

fn fsync_dir(p: &Path) -> io::Result<()> {
    File::open(p)?.sync_all()
}

/// Creates `dir` and any missing parents, fsyncing each parent a new directory was made in, so
/// that a crash cannot lose a fan-out directory (and every blob under it) whose metadata has
/// committed.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Made by a concurrent writer: it fsyncs the parent itself, but may not have yet.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

impl FileBlobStore {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        create_dir_durably(&root)?;
        create_dir_durably(&tmp)?;
        Ok(FileBlobStore { root, tmp })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.root.join(&id[0..2]).join(&id[2..4]).join(id)
    }
}

struct FileWriter {
    file: File,
    tmp_path: PathBuf,
    final_path: PathBuf,
    committed: bool,
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter for FileWriter {
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.file.flush()?;
        self.file.sync_all()?;
        let dir = self
            .final_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        create_dir_durably(&dir)?;
        fs::rename(&self.tmp_path, &self.final_path)?;
        fsync_dir(&dir)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

impl BlobStore for FileBlobStore {
    fn create(&self, id: &str) -> Result<Box<dyn BlobWriter>> {
        if !valid_id(id) {
            return Err(bad_id());
        }
        let tmp_path = self.tmp.join(format!("{id}.{}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        Ok(Box::new(FileWriter {
            file,
            tmp_path,
            final_path: self.path(id),
            committed: false,
        }))
    }

    fn open(&self, id: &str, offset: u64) -> Result<Box<dyn Read + Send>> {
        if !valid_id(id) {
            return Err(bad_id());
        }
        let mut f = File::open(self.path(id))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(f))
    }

    fn len(&self, id: &str) -> Result<u64> {
        if !valid_id(id) {
            return Err(bad_id());
        }
        Ok(fs::metadata(self.path(id))?.len())
    }

    fn delete(&self, id: &str) -> Result<()> {
        if !valid_id(id) {
            return Err(bad_id());
        }
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn sweep(&self, keep: &dyn Fn(&str) -> bool) -> Result<usize> {
        let mut removed = 0;
        for e in fs::read_dir(&self.tmp)? {
            fs::remove_file(e?.path())?;
            removed += 1;
        }
        for a in fs::read_dir(&self.root)? {
            let a = a?.path();
            if !a.is_dir() {
                continue;
            }
            for b in fs::read_dir(&a)? {
                let b = b?.path();
                if !b.is_dir() {
                    continue;
                }
                for f in fs::read_dir(&b)? {
                    let f = f?.path();
                    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    if !keep(name) {
                        fs::remove_file(&f)?;
                        removed += 1;
                    }
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `io::ErrorKind` of the `StoreError::Io` that `r` must be.
    fn io_kind<T>(r: Result<T>) -> io::ErrorKind {
        match r {
            Err(crate::StoreError::Io(e)) => e.kind(),
            Err(e) => panic!("expected an I/O error, got {e:?}"),
            Ok(_) => panic!("expected an I/O error, got Ok"),
        }
    }

    #[test]
    fn write_commit_read_delete_sweep() {
        let d = tempfile::tempdir().unwrap();
        let s = FileBlobStore::open(d.path()).unwrap();
        let mut w = s.create("abcdef01").unwrap();
        w.write_all(b"hello world").unwrap();
        // not visible before commit
        assert_eq!(io_kind(s.open("abcdef01", 0)), io::ErrorKind::NotFound);
        w.commit().unwrap();
        let mut out = String::new();
        s.open("abcdef01", 6)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "world");
        assert_eq!(s.len("abcdef01").unwrap(), 11);

        // an abandoned writer leaves nothing behind
        let mut w2 = s.create("abcdef02").unwrap();
        w2.write_all(b"partial").unwrap();
        drop(w2);
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);

        let mut w3 = s.create("orphan01").unwrap();
        w3.write_all(b"x").unwrap();
        w3.commit().unwrap();
        let removed = s.sweep(&|id| id == "abcdef01").unwrap();
        assert_eq!(removed, 1);
        assert_eq!(io_kind(s.open("orphan01", 0)), io::ErrorKind::NotFound);
        s.delete("abcdef01").unwrap();
        s.delete("abcdef01").unwrap();
        assert_eq!(io_kind(s.create("../x")), io::ErrorKind::InvalidInput);
        assert!(!d.path().join("x").exists() && !d.path().join("tmp/x").exists());
    }
}
