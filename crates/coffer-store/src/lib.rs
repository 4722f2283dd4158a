//! Storage behind traits: [`MetaStore`] (typed, transactional metadata) and [`BlobStore`]
//! (streamed blobs), with the embedded implementation (SQLite + files).
//!
//! The metadata model is an ordered key-value space split into namespaces: each namespace is a
//! table of `(key TEXT, value BLOB)` rows ordered by key, so that listings are range scans and
//! secondary indexes (access key → user, alias → key) are namespaces of their own, written in the
//! same transaction as the rows they index. The schema is portable SQL; PostgreSQL can implement
//! the same trait later.

mod blob;
mod sqlite;

pub use blob::{BlobStore, BlobWriter, FileBlobStore};
pub use sqlite::SqliteMetaStore;

use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("corrupt record in {ns}/{key}: {msg}")]
    Corrupt {
        ns: String,
        key: String,
        msg: String,
    },
    #[error("not found")]
    NotFound,
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Reads on a consistent view.
pub trait Reader {
    fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Rows of `ns` whose key starts with `prefix` and is `> start_after` (if given), in key order.
    fn scan(
        &self,
        ns: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>>;
}

/// A write transaction: everything in it commits atomically and durably, or not at all.
pub trait Txn: Reader {
    fn put(&mut self, ns: &str, key: &str, value: &[u8]) -> Result<()>;
    fn delete(&mut self, ns: &str, key: &str) -> Result<bool>;
}

/// The metadata store.
pub trait MetaStore: Reader + Send + Sync {
    /// Runs `f` in one serializable write transaction; commits (durably, fsynced) only when `f`
    /// returns `Ok`. The closure may be called once.
    fn transact(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()>;
}

/// JSON helpers for typed records.
pub fn get_json<T: DeserializeOwned>(
    r: &(impl Reader + ?Sized),
    ns: &str,
    key: &str,
) -> Result<Option<T>> {
    match r.get(ns, key)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                ns: ns.into(),
                key: key.into(),
                msg: e.to_string(),
            }),
    }
}

pub fn put_json<T: Serialize>(
    t: &mut (impl Txn + ?Sized),
    ns: &str,
    key: &str,
    value: &T,
) -> Result<()> {
    let v = serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
    t.put(ns, key, &v)
}

pub fn scan_json<T: DeserializeOwned>(
    r: &(impl Reader + ?Sized),
    ns: &str,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, T)>> {
    r.scan(ns, prefix, start_after, limit)?
        .into_iter()
        .map(|(k, v)| {
            serde_json::from_slice(&v)
                .map(|t| (k.clone(), t))
                .map_err(|e| StoreError::Corrupt {
                    ns: ns.into(),
                    key: k,
                    msg: e.to_string(),
                })
        })
        .collect()
}
