//! Cheap in-process metrics: fixed-bucket histograms and counters on atomics, the store's commit
//! statistics, the hit and miss counts of every [`GenCache`](crate::GenCache), and counters by a
//! bounded set of labels. The gateway renders them (`GET /_coffer/metrics`); nothing here does
//! I/O or allocates on the counting path (except the first time a bounded label is seen).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Latency buckets, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of the number of transactions in one commit (at most 64, the store's batch limit).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// A histogram with fixed upper bounds (Prometheus `le`, inclusive).
pub struct Histogram {
    bounds: &'static [f64],
    /// `counts[i]`: observations in `(bounds[i-1], bounds[i]]`; the last one: above every bound.
    counts: Box<[AtomicU64]>,
    /// The sum of all observations, as `f64` bits.
    sum: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations ≤ bound)`, cumulative, in increasing order of bound.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
    }

    pub fn observe_duration(&self, d: std::time::Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (b, c) in self.bounds.iter().zip(self.counts.iter()) {
            total += c.load(Ordering::Relaxed);
            buckets.push((*b, total));
        }
        total += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count: total,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// What a [`MetaStore`](crate::MetaStore) counts about its commits.
pub struct StoreStats {
    /// Commits that made at least one transaction durable.
    pub commits: AtomicU64,
    /// Batches that did not commit because of a store error (their transactions failed).
    pub failed_commits: AtomicU64,
    /// Transactions per commit.
    pub batch_size: Histogram,
    /// Time of the `COMMIT` statement (which fsyncs), in seconds.
    pub commit_seconds: Histogram,
}

impl Default for StoreStats {
    fn default() -> Self {
        StoreStats {
            commits: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_BUCKETS),
            commit_seconds: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// Lookups of one named cache.
#[derive(Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

/// Every cache name seen, with its counters (one entry per distinct `&'static` name, so the
/// set is as small as the program's list of caches; instances with one name share counters).
static CACHES: Mutex<Vec<(&'static str, &'static CacheCounters)>> = Mutex::new(Vec::new());

/// The counters of the cache named `name`, made on first use.
pub fn cache_counters(name: &'static str) -> &'static CacheCounters {
    let mut all = CACHES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = all.iter().find(|(n, _)| *n == name) {
        return c;
    }
    let c: &'static CacheCounters = Box::leak(Box::default());
    all.push((name, c));
    c
}

/// `(cache name, hits, misses)` of every cache, by name.
pub fn cache_stats() -> Vec<(&'static str, u64, u64)> {
    let all = CACHES.lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<_> = all
        .iter()
        .map(|(n, c)| {
            (
                *n,
                c.hits.load(Ordering::Relaxed),
                c.misses.load(Ordering::Relaxed),
            )
        })
        .collect();
    v.sort_by_key(|(n, _, _)| *n);
    v
}

/// The label [`BoundedCounters`] counts under once its set of labels is full.
pub const OTHER_LABEL: &str = "other";

/// Counters by `(label, operation)` where the labels seen are at most `max`: later ones are
/// counted under [`OTHER_LABEL`], so a series set never grows without bound.
pub struct BoundedCounters {
    max: usize,
    map: Mutex<HashMap<String, HashMap<&'static str, u64>>>,
}

impl BoundedCounters {
    pub fn new(max: usize) -> Self {
        BoundedCounters {
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn add(&self, label: &str, op: &'static str, n: u64) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ops) = m.get_mut(label) {
            *ops.entry(op).or_insert(0) += n;
            return;
        }
        let label = if m.len() < self.max {
            label
        } else {
            OTHER_LABEL
        };
        *m.entry(label.to_string())
            .or_default()
            .entry(op)
            .or_insert(0) += n;
    }

    /// `(label, operation, count)`, sorted.
    pub fn snapshot(&self) -> Vec<(String, &'static str, u64)> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = m
            .iter()
            .flat_map(|(l, ops)| ops.iter().map(move |(op, n)| (l.clone(), *op, *n)))
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let h = Histogram::new(&[1.0, 2.0, 4.0]);
        for v in [0.5, 1.0, 1.5, 3.0, 9.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (2.0, 3), (4.0, 4)]);
        assert_eq!(s.count, 5);
        assert!((s.sum - 15.0).abs() < 1e-9);
    }

    #[test]
    fn bounded_counters_fold_new_labels_into_other() {
        let c = BoundedCounters::new(2);
        c.add("a", "Encrypt", 1);
        c.add("b", "Encrypt", 1);
        c.add("c", "Encrypt", 1);
        c.add("d", "Decrypt", 2);
        // Labels already known keep counting under their own name.
        c.add("a", "Encrypt", 1);
        assert_eq!(
            c.snapshot(),
            vec![
                ("a".to_string(), "Encrypt", 2),
                ("b".to_string(), "Encrypt", 1),
                (OTHER_LABEL.to_string(), "Decrypt", 2),
                (OTHER_LABEL.to_string(), "Encrypt", 1),
            ]
        );
        // Many more labels: still 2 + "other".
        for i in 0..1000 {
            c.add(&format!("k{i}"), "Sign", 1);
        }
        let labels: std::collections::BTreeSet<String> =
            c.snapshot().into_iter().map(|(l, _, _)| l).collect();
        assert_eq!(labels.len(), 3, "{labels:?}");
    }

    #[test]
    fn caches_with_one_name_share_counters() {
        let a = cache_counters("test_cache_shared");
        let b = cache_counters("test_cache_shared");
        assert!(std::ptr::eq(a, b));
        a.hits.fetch_add(2, Ordering::Relaxed);
        let (_, hits, misses) = cache_stats()
            .into_iter()
            .find(|(n, _, _)| *n == "test_cache_shared")
            .unwrap();
        assert_eq!((hits, misses), (2, 0));
    }
}
