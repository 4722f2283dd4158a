//! The embedded metadata store: SQLite in WAL mode with `synchronous=FULL`, one writer
//! connection and a few reader connections.

use crate::{MetaStore, Reader, Result, StoreError, Txn};
use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const READERS: usize = 4;
/// Most transactions committed together.
const MAX_BATCH: usize = 64;

/// The writer connection and the batch of transactions it has open.
struct Writer {
    c: Connection,
    /// A SQLite transaction is open, holding members that wait for its commit.
    open: bool,
    members: usize,
    /// Number of the open (or last) batch.
    batch: u64,
    /// Last batch committed (successfully or not).
    committed: u64,
    /// Batches whose commit failed (their members report the error); kept short.
    failed: Vec<u64>,
    /// The open batch changed a cacheable namespace: its commit moves the generation.
    changes_cached: bool,
}

pub struct SqliteMetaStore {
    writer: Mutex<Writer>,
    /// Threads waiting for the writer: while there are some, a finished transaction leaves the
    /// batch open for them and the last one commits (group commit: one fsync for many).
    waiting: AtomicUsize,
    committed: Condvar,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    path: std::path::PathBuf,
    generation: AtomicU64,
    stats: crate::metrics::StoreStats,
}

fn be(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open(path: &Path, write: bool) -> Result<Connection> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let c = Connection::open_with_flags(path, flags).map_err(be)?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(be)?;
    if write {
        c.pragma_update(None, "journal_mode", "WAL").map_err(be)?;
        // Deleted content (destroyed key material, deleted secrets) is overwritten with zeros
        // in its page, and freed pages are zeroed, instead of lingering in the file.
        c.pragma_update(None, "secure_delete", "ON").map_err(be)?;
    }
    c.pragma_update(None, "synchronous", "FULL").map_err(be)?;
    c.pragma_update(None, "foreign_keys", "ON").map_err(be)?;
    Ok(c)
}

impl SqliteMetaStore {
    pub fn open(path: &Path) -> Result<Self> {
        let w = open(path, true)?;
        w.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (
                ns TEXT NOT NULL,
                key TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (ns, key)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version);",
        )
        .map_err(be)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(Mutex::new(open(path, false)?));
        }
        Ok(SqliteMetaStore {
            writer: Mutex::new(Writer {
                c: w,
                open: false,
                members: 0,
                batch: 0,
                committed: 0,
                failed: Vec::new(),
                changes_cached: false,
            }),
            waiting: AtomicUsize::new(0),
            committed: Condvar::new(),
            readers,
            next: AtomicUsize::new(0),
            path: path.to_path_buf(),
            generation: AtomicU64::new(0),
            stats: crate::metrics::StoreStats::default(),
        })
    }

    fn reader(&self) -> &Mutex<Connection> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        &self.readers[i]
    }
}

fn get_in(c: &Connection, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
    c.prepare_cached("SELECT value FROM kv WHERE ns = ?1 AND key = ?2")
        .map_err(be)?
        .query_row(params![ns, key], |r| r.get::<_, Vec<u8>>(0))
        .optional()
        .map_err(be)
}

/// The smallest string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(n) = char::from_u32(c as u32 + 1) {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn scan_in(
    c: &Connection,
    ns: &str,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>> {
    let upper = prefix_end(prefix);
    let lim = i64::try_from(limit).unwrap_or(i64::MAX);
    let (sql, lower) = match start_after {
        Some(s) if s >= prefix => (
            "SELECT key, value FROM kv WHERE ns = ?1 AND key > ?2
             AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4",
            s,
        ),
        _ => (
            "SELECT key, value FROM kv WHERE ns = ?1 AND key >= ?2
             AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4",
            prefix,
        ),
    };
    let mut stmt = c.prepare_cached(sql).map_err(be)?;
    let rows = stmt
        .query_map(params![ns, lower, upper, lim], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(be)?;
    rows.map(|r| r.map_err(be)).collect()
}

impl Reader for SqliteMetaStore {
    fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        get_in(&self.reader().lock(), ns, key)
    }
    fn scan(
        &self,
        ns: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        scan_in(&self.reader().lock(), ns, prefix, start_after, limit)
    }
}

struct SqlTxn<'a> {
    c: &'a Connection,
    /// A namespace that caches read was written (see `MetaStore::generation`).
    cached: bool,
}

impl Reader for SqlTxn<'_> {
    fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        get_in(self.c, ns, key)
    }
    fn scan(
        &self,
        ns: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        scan_in(self.c, ns, prefix, start_after, limit)
    }
}

impl Txn for SqlTxn<'_> {
    fn put(&mut self, ns: &str, key: &str, value: &[u8]) -> Result<()> {
        self.cached |= crate::moves_generation(ns);
        self.c
            .prepare_cached("INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value")
            .map_err(be)?
            .execute(params![ns, key, value])
            .map_err(be)?;
        Ok(())
    }
    fn delete(&mut self, ns: &str, key: &str) -> Result<bool> {
        self.cached |= crate::moves_generation(ns);
        let n = self
            .c
            .prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")
            .map_err(be)?
            .execute(params![ns, key])
            .map_err(be)?;
        Ok(n > 0)
    }
}

impl MetaStore for SqliteMetaStore {
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn stats(&self) -> Option<&crate::metrics::StoreStats> {
        Some(&self.stats)
    }

    /// Deleted rows are already zeroed in their pages (`secure_delete`); what remains are the
    /// older page images in the write-ahead log. A TRUNCATE checkpoint copies the log into the
    /// database and empties the log file.
    fn purge_deleted(&self) -> Result<()> {
        let c = open(&self.path, true)?;
        // A reader in the middle of a read keeps the log in use: try again a few times.
        for _ in 0..20 {
            let (busy, _, _): (i64, i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(be)?;
            if busy == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(StoreError::Backend(
            "checkpoint could not complete: the log is in use".into(),
        ))
    }

    /// Runs `f` in a transaction and returns once it is durable. Concurrent transactions are
    /// committed together: each runs in its own savepoint inside one SQLite transaction (so a
    /// failing one rolls back alone), and the last writer in line commits for all of them.
    /// A closure that panics is rolled back like a failing one (its batch-mates still commit and
    /// are woken), then the panic goes on.
    fn transact(&self, f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>) -> Result<()> {
        let mut panicked = None;
        let r = self.transact_batched(f, &mut panicked);
        if let Some(p) = panicked {
            std::panic::resume_unwind(p);
        }
        r
    }
}

impl SqliteMetaStore {
    fn transact_batched(
        &self,
        f: &mut dyn FnMut(&mut dyn Txn) -> Result<()>,
        panicked: &mut Option<Box<dyn std::any::Any + Send>>,
    ) -> Result<()> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let mut w = self.writer.lock();
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let exec = |c: &Connection, sql: &str| -> rusqlite::Result<()> {
            // Cached statements: not parsed again for every transaction.
            c.prepare_cached(sql)?.execute([])?;
            Ok(())
        };
        if !w.open {
            exec(&w.c, "BEGIN IMMEDIATE").map_err(be)?;
            w.open = true;
            w.members = 0;
            w.batch += 1;
            w.changes_cached = false;
        }
        let mut result = exec(&w.c, "SAVEPOINT tx").map_err(be);
        if result.is_ok() {
            let mut t = SqlTxn {
                c: &w.c,
                cached: false,
            };
            result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut t))) {
                Ok(r) => r,
                Err(p) => {
                    *panicked = Some(p);
                    Err(StoreError::Backend("transaction panicked".into()))
                }
            };
            let touched_cached = t.cached;
            let end = if result.is_ok() {
                exec(&w.c, "RELEASE tx")
            } else {
                exec(&w.c, "ROLLBACK TO tx").and_then(|_| exec(&w.c, "RELEASE tx"))
            };
            if let Err(e) = end {
                // The batch is in an unknown state: abandon all of it.
                let _ = exec(&w.c, "ROLLBACK");
                self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                w.open = false;
                let b = w.batch;
                w.committed = b;
                w.failed.push(b);
                self.committed.notify_all();
                return Err(be(e));
            }
            if result.is_ok() {
                w.changes_cached |= touched_cached;
            }
        }
        if result.is_ok() {
            w.members += 1;
        }
        let my_batch = w.batch;
        let commit_now = self.waiting.load(Ordering::Acquire) == 0 || w.members >= MAX_BATCH;
        if commit_now {
            let ok = if w.members == 0 {
                // Nothing to keep: end the transaction without a sync.
                exec(&w.c, "ROLLBACK").is_ok()
            } else {
                let started = std::time::Instant::now();
                let r = exec(&w.c, "COMMIT");
                self.stats
                    .commit_seconds
                    .observe_duration(started.elapsed());
                match r {
                    Ok(()) => {
                        self.stats.commits.fetch_add(1, Ordering::Relaxed);
                        self.stats.batch_size.observe(w.members as f64);
                        true
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "metadata commit failed");
                        let _ = exec(&w.c, "ROLLBACK");
                        self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                }
            };
            w.open = false;
            w.committed = my_batch;
            if !ok {
                w.failed.push(my_batch);
            } else if w.members > 0 && w.changes_cached {
                // After the commit, so that a reader that saw the old generation re-reads.
                self.generation.fetch_add(1, Ordering::Release);
            }
            if w.failed.len() > 64 {
                w.failed.drain(..32);
            }
            self.committed.notify_all();
            result?;
            return if ok {
                Ok(())
            } else {
                Err(StoreError::Backend("commit failed".into()))
            };
        }
        // Someone else is in line: they (or the last of them) commit this batch.
        result?;
        while w.committed < my_batch {
            self.committed.wait(&mut w);
        }
        if w.failed.contains(&my_batch) {
            return Err(StoreError::Backend("commit failed".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{get_json, put_json, scan_json};

    fn store() -> (tempfile::TempDir, SqliteMetaStore) {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteMetaStore::open(&d.path().join("meta.sqlite")).unwrap();
        (d, s)
    }

    #[test]
    fn put_get_scan_delete() {
        let (_d, s) = store();
        s.transact(&mut |t| {
            for k in ["a/1", "a/2", "a/3", "b/1"] {
                put_json(t, "ns", k, &k.to_string())?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            get_json::<String>(&s, "ns", "a/2").unwrap().as_deref(),
            Some("a/2")
        );
        assert_eq!(get_json::<String>(&s, "other", "a/2").unwrap(), None);
        let all: Vec<(String, String)> = scan_json(&s, "ns", "a/", None, 100).unwrap();
        assert_eq!(all.len(), 3);
        let page: Vec<(String, String)> = scan_json(&s, "ns", "a/", Some("a/1"), 1).unwrap();
        assert_eq!(page[0].0, "a/2");
        let everything: Vec<(String, String)> = scan_json(&s, "ns", "", None, 100).unwrap();
        assert_eq!(everything.len(), 4);
        s.transact(&mut |t| {
            assert!(t.delete("ns", "a/1")?);
            assert!(!t.delete("ns", "zzz")?);
            Ok(())
        })
        .unwrap();
        assert_eq!(s.get("ns", "a/1").unwrap(), None);
    }

    #[test]
    fn bulk_writes_leave_the_generation_alone() {
        let (_d, s) = store();
        let g0 = s.generation();
        s.transact(&mut |t| t.put("s3.object", "b/k", b"v"))
            .unwrap();
        assert_eq!(s.generation(), g0);
        s.transact(&mut |t| {
            t.put("s3.object", "b/k2", b"v")?;
            t.put("iam.user", "u", b"v")
        })
        .unwrap();
        assert!(s.generation() > g0);
    }

    #[test]
    fn generation_moves_on_commit_only() {
        let (_d, s) = store();
        let g0 = s.generation();
        s.transact(&mut |t| t.put("ns", "k", b"v")).unwrap();
        let g1 = s.generation();
        assert!(g1 > g0);
        let _ = s.transact(&mut |_| Err(StoreError::NotFound));
        assert_eq!(s.generation(), g1);
    }

    #[test]
    fn failed_transaction_changes_nothing() {
        let (_d, s) = store();
        let r = s.transact(&mut |t| {
            t.put("ns", "k", b"v")?;
            Err(StoreError::NotFound)
        });
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
        assert_eq!(s.get("ns", "k").unwrap(), None);
    }

    #[test]
    fn a_panicking_transaction_is_rolled_back_and_the_next_batch_commits_without_it() {
        let (_d, s) = store();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.transact(&mut |t| {
                t.put("ns", "partial", b"v")?;
                panic!("boom");
            })
        }));
        assert!(r.is_err(), "the panic goes on to the caller");
        s.transact(&mut |t| t.put("ns", "next", b"v")).unwrap();
        assert_eq!(s.get("ns", "next").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(
            s.get("ns", "partial").unwrap(),
            None,
            "partial writes never commit"
        );
        // And the store is still usable by many writers at once.
        let s = std::sync::Arc::new(s);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for j in 0..20 {
                        let key = format!("{i}/{j}");
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            s.transact(&mut |t| {
                                t.put("ns", &key, b"v")?;
                                if j % 5 == 0 {
                                    panic!("boom");
                                }
                                Ok(())
                            })
                        }));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let rows = s.scan("ns", "", None, 1000).unwrap();
        assert_eq!(rows.len(), 1 + 4 * 16, "{rows:?}");
        for (k, _) in rows.iter().filter(|(k, _)| k != "next") {
            let j: u32 = k.split('/').nth(1).unwrap().parse().unwrap();
            assert_ne!(j % 5, 0, "{k} panicked and must not be stored");
        }
    }

    #[test]
    fn transact_carries_the_closures_error_and_update_json_reads_inside() {
        #[derive(Debug, PartialEq)]
        enum E {
            Store,
            Mine(&'static str),
        }
        let (_d, s) = store();
        crate::transact(
            &s,
            |_| E::Store,
            |t| put_json(t, "ns", "k", &1u32).map_err(|_| E::Store),
        )
        .unwrap();
        let r: std::result::Result<(), E> = crate::transact(
            &s,
            |_| E::Store,
            |t| {
                crate::update_json(
                    t,
                    "ns",
                    "k",
                    |_| E::Store,
                    |v: &mut u32| {
                        *v += 1;
                        Ok::<_, E>(())
                    },
                )?;
                Err(E::Mine("no"))
            },
        );
        assert_eq!(r, Err(E::Mine("no")));
        assert_eq!(get_json::<u32>(&s, "ns", "k").unwrap(), Some(1));
        let n = crate::transact(
            &s,
            |_| E::Store,
            |t| {
                crate::update_json(
                    t,
                    "ns",
                    "k",
                    |_| E::Store,
                    |v: &mut u32| {
                        *v += 1;
                        Ok::<_, E>(*v)
                    },
                )
            },
        )
        .unwrap();
        assert_eq!(n, Some(2));
        let missing = crate::transact(
            &s,
            |_| E::Store,
            |t| crate::update_json(t, "ns", "nope", |_| E::Store, |_: &mut u32| Ok::<_, E>(())),
        )
        .unwrap();
        assert_eq!(missing, None);
    }

    #[test]
    fn survives_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("meta.sqlite");
        {
            let s = SqliteMetaStore::open(&p).unwrap();
            s.transact(&mut |t| t.put("ns", "k", b"v")).unwrap();
        }
        let s = SqliteMetaStore::open(&p).unwrap();
        assert_eq!(s.get("ns", "k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn prefix_end_works() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end(""), None);
    }

    #[test]
    fn commits_are_counted_with_their_batch_size_and_time() {
        let (_d, s) = store();
        let st = s.stats().unwrap();
        s.transact(&mut |t| t.put("ns", "a", b"v")).unwrap();
        s.transact(&mut |t| t.put("ns", "b", b"v")).unwrap();
        // A failing transaction alone commits nothing (and is no failed commit).
        let _ = s.transact(&mut |_| Err(StoreError::NotFound));
        assert_eq!(st.commits.load(Ordering::Relaxed), 2);
        assert_eq!(st.failed_commits.load(Ordering::Relaxed), 0);
        let batches = st.batch_size.snapshot();
        assert_eq!(batches.count, 2);
        assert_eq!(batches.buckets[0], (1.0, 2), "one transaction per commit");
        assert!((batches.sum - 2.0).abs() < 1e-9);
        let fsync = st.commit_seconds.snapshot();
        assert_eq!(fsync.count, 2);
        assert!(fsync.sum > 0.0);
    }

    #[test]
    fn concurrent_transactions_commit_together_and_fail_alone() {
        let (_d, s) = store();
        let s = std::sync::Arc::new(s);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let key = format!("{t}/{i}");
                        let fail = i % 7 == 3;
                        let r = s.transact(&mut |tx| {
                            tx.put("ns", &key, b"v")?;
                            if fail {
                                return Err(StoreError::Backend("no".into()));
                            }
                            Ok(())
                        });
                        assert_eq!(r.is_ok(), !fail, "{key}");
                        // Acknowledged means visible to every reader.
                        assert_eq!(s.get("ns", &key).unwrap().is_some(), !fail, "{key}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = s.scan("ns", "", None, 10_000).unwrap();
        assert_eq!(all.len(), 8 * (50 - 7));
        assert!(s.generation() > 0);
        // Every acknowledged transaction was in exactly one commit.
        let batches = s.stats().unwrap().batch_size.snapshot();
        assert_eq!(batches.sum as usize, 8 * (50 - 7));
        assert_eq!(
            batches.count,
            s.stats().unwrap().commits.load(Ordering::Relaxed)
        );
    }
}
