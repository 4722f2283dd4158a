//! Storage behind traits: [`MetaStore`] (typed, transactional metadata) and [`BlobStore`]
//! (streamed blobs), with the embedded implementation (SQLite + files).
//!
//! The metadata model is an ordered key-value space split into namespaces: each namespace is a
//! table of `(key TEXT, value BLOB)` rows ordered by key, so that listings are range scans and
//! secondary indexes (access key → user, alias → key) are namespaces of their own, written in the
//! same transaction as the rows they index. The schema is portable SQL; PostgreSQL can implement
//! the same trait later.

mod blob;
mod lock;
pub mod metrics;
mod sqlite;

pub use blob::{BlobStore, BlobWriter, FileBlobStore};
pub use lock::{DataDirLock, lock_data_dir};
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
    /// A transaction closure ended with its own error (see [`transact`]).
    #[error("transaction aborted")]
    Aborted,
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

/// Namespaces that no generation-keyed cache reads, so that their writes do not move
/// [`MetaStore::generation`]: bulk data (S3 buckets, objects, versions, uploads, under `s3.`) and
/// bookkeeping written as a side effect of requests (an access key's "last used", under
/// `uncached.`). A namespace a cache reads must never start with one of these.
pub const UNCACHED_PREFIXES: [&str; 2] = ["s3.", "uncached."];

/// Whether a write to `ns` moves [`MetaStore::generation`].
pub fn moves_generation(ns: &str) -> bool {
    !UNCACHED_PREFIXES.iter().any(|p| ns.starts_with(p))
}

/// The metadata store.
pub trait MetaStore: Reader + Send + Sync {
    /// A number that grows after every committed transaction that changed a cacheable
    /// namespace (see [`moves_generation`]): caches of anything read from
    /// those namespaces are valid while it has not moved (read it *before* reading what you
    /// cache). Object writes, the bulk of all writes, leave it alone, so that they do not empty
    /// every credential, policy and key cache.
    fn generation(&self) -> u64;

    /// Runs `f` in one serializable write transaction; commits (durably, fsynced) only when `f`
    /// returns `Ok`. The closure may be called once.
    fn transact(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()>;

    /// Makes rows deleted so far unrecoverable from the store's files (for destroyed key
    /// material): no copy left in free pages or journals. May be slow; call it rarely.
    fn purge_deleted(&self) -> Result<()> {
        Ok(())
    }

    /// Commit statistics, for stores that keep them.
    fn stats(&self) -> Option<&metrics::StoreStats> {
        None
    }
}

/// Runs `f` in one transaction of `store` and carries the closure's own result or error type
/// out of it: the one way every service runs a write transaction. Store failures (including a
/// failed commit after `f` succeeded) become `E` through `on_store_error`. Everything `f` wrote
/// commits durably when it returns `Ok`, and nothing does when it returns `Err` or panics.
pub fn transact<T, E>(
    store: &(impl MetaStore + ?Sized),
    on_store_error: impl FnOnce(StoreError) -> E,
    mut f: impl FnMut(&mut dyn Txn) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let mut out: Option<std::result::Result<T, E>> = None;
    let r = store.transact(&mut |t| match f(t) {
        Ok(v) => {
            out = Some(Ok(v));
            Ok(())
        }
        Err(e) => {
            out = Some(Err(e));
            Err(StoreError::Aborted)
        }
    });
    match (r, out) {
        (Ok(()), Some(Ok(v))) => Ok(v),
        (Err(StoreError::Aborted), Some(Err(e))) => Err(e),
        (Err(e), _) => Err(on_store_error(e)),
        (Ok(()), _) => Err(on_store_error(StoreError::Backend(
            "transaction closure did not run".into(),
        ))),
    }
}

/// Reads the JSON record `ns/key` inside the transaction `t`, lets `f` change it, and writes it
/// back in the same transaction: the one way to update a record, so that a concurrent writer's
/// acknowledged change is never overwritten by a copy read earlier. `Ok(None)` (and nothing
/// written) when there is no such record; nothing is written when `f` fails.
pub fn update_json<T, R, E>(
    t: &mut (impl Txn + ?Sized),
    ns: &str,
    key: &str,
    on_store_error: impl Fn(StoreError) -> E,
    f: impl FnOnce(&mut T) -> std::result::Result<R, E>,
) -> std::result::Result<Option<R>, E>
where
    T: Serialize + DeserializeOwned,
{
    let Some(mut v) = get_json::<T>(&*t, ns, key).map_err(&on_store_error)? else {
        return Ok(None);
    };
    let r = f(&mut v)?;
    put_json(t, ns, key, &v).map_err(&on_store_error)?;
    Ok(Some(r))
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

/// A small cache of values derived from the store, valid for one store generation. Its
/// lookups are counted under its name ([`metrics::cache_stats`]).
pub struct GenCache<V> {
    map: parking_lot::Mutex<std::collections::HashMap<String, (u64, V)>>,
    capacity: usize,
    counters: &'static metrics::CacheCounters,
}

impl<V: Clone> GenCache<V> {
    /// A cache named `name` (a fixed name: it labels the cache's metrics).
    pub fn new(name: &'static str, capacity: usize) -> Self {
        GenCache {
            map: parking_lot::Mutex::new(std::collections::HashMap::new()),
            capacity,
            counters: metrics::cache_counters(name),
        }
    }

    /// The cached value for `key` if it was computed at generation `generation`.
    pub fn get(&self, generation: u64, key: &str) -> Option<V> {
        let m = self.map.lock();
        let v = m
            .get(key)
            .filter(|(g, _)| *g == generation)
            .map(|(_, v)| v.clone());
        drop(m);
        let c = if v.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        v
    }

    pub fn put(&self, generation: u64, key: String, value: V) {
        let mut m = self.map.lock();
        if m.len() >= self.capacity {
            m.retain(|_, (g, _)| *g == generation);
            if m.len() >= self.capacity {
                m.clear();
            }
        }
        m.insert(key, (generation, value));
    }

    /// Returns the cached value, or computes, caches and returns it. `generation` must be read
    /// before `compute` reads the store.
    pub fn get_or_try<E>(
        &self,
        generation: u64,
        key: &str,
        compute: impl FnOnce() -> std::result::Result<V, E>,
    ) -> std::result::Result<V, E> {
        if let Some(v) = self.get(generation, key) {
            return Ok(v);
        }
        let v = compute()?;
        self.put(generation, key.to_string(), v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod cache_tests {
    use super::GenCache;

    #[test]
    fn values_live_for_one_generation() {
        let c: GenCache<u32> = GenCache::new("test_values_live_for_one_generation", 2);
        c.put(1, "a".into(), 10);
        assert_eq!(c.get(1, "a"), Some(10));
        assert_eq!(c.get(2, "a"), None);
        assert_eq!(c.get_or_try::<()>(2, "a", || Ok(11)), Ok(11));
        assert_eq!(c.get(2, "a"), Some(11));
        c.put(2, "b".into(), 1);
        c.put(2, "c".into(), 2);
        assert!(c.map.lock().len() <= 2);
        let (_, hits, misses) = crate::metrics::cache_stats()
            .into_iter()
            .find(|(n, _, _)| *n == "test_values_live_for_one_generation")
            .unwrap();
        // Hits: (1, a) and (2, a) once computed; misses: (2, a) before, and get_or_try's look.
        assert_eq!((hits, misses), (2, 2));
    }
}
