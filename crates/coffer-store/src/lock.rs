//! The data directory's lock: one Coffer process per data directory. A second one would sweep
//! the first one's blobs in flight at its start and write the same SQLite file.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Held for as long as the process uses the data directory; the lock goes with the process
/// (the operating system releases it on exit, even on SIGKILL).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the exclusive lock on `DATA/coffer.lock`, or says which directory is in use.
pub fn lock_data_dir(dir: &Path) -> Result<DataDirLock, String> {
    let path = dir.join("coffer.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "the data directory {} is in use by another Coffer process (it holds {})",
            dir.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let first = super::lock_data_dir(d.path()).unwrap();
        let e = super::lock_data_dir(d.path()).unwrap_err();
        assert!(e.contains("in use by another Coffer process"), "{e}");
        drop(first);
        super::lock_data_dir(d.path()).unwrap();
    }
}
