//! Object versioning: version ids, where versions live, delete markers, lookups by version id,
//! permanent deletion of a version and ListObjectVersions.
//!
//! Layout: the *current* version of every key (an object or a delete marker) is its `NS_OBJECT`
//! row `bucket/key`, exactly where unversioned buckets keep their objects, so GET, HEAD and the
//! object listings read one row per key. Every *noncurrent* version is an `NS_VERSION` row
//! `bucket/key NUL hex(u64::MAX - seq)`: newest first within a key, and since NUL sorts before
//! every other character, the two namespaces merged by row name give ListObjectVersions' order
//! (key ascending, then newest to oldest). A key has versions iff its `NS_OBJECT` row exists.

use crate::model::{
    Bucket, NS_BUCKET, NS_OBJECT, NS_VERSION, Object, object_key, version_row, version_rows_prefix,
};
use crate::{Inner, internal, s3e, timestamp};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_core::ServiceError;
use coffer_store::{Reader, Txn, get_json, put_json, scan_json};
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use std::collections::VecDeque;

pub(crate) const ENABLED: &str = "Enabled";

/// Rows read per store round trip when walking versions (each row may hold up to 64 KiB of
/// inline ciphertext, so pages stay small).
const PAGE: usize = 100;

/// A version named by a request's `versionId`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VersionSel {
    Null,
    Id { id: String, seq: u64 },
}

/// A version id: 24 bytes (the version's order, big-endian, then 16 random bytes) in URL-safe
/// base64 without padding: 32 opaque characters, like AWS's.
pub(crate) fn new_version_id(seq: u64) -> Result<String, ServiceError> {
    let mut raw = [0u8; 24];
    raw[..8].copy_from_slice(&seq.to_be_bytes());
    coffer_crypto::random_fill(&mut raw[8..]).map_err(internal)?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

pub(crate) fn invalid_version() -> S3Error {
    s3_error!(InvalidArgument, "Invalid version id specified")
}

pub(crate) fn no_such_version() -> S3Error {
    let mut e = s3_error!(NoSuchVersion, "The specified version does not exist.");
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

/// Parses a `versionId`: `null` or one of Coffer's ids (`InvalidArgument` otherwise).
pub(crate) fn parse_version_id(v: &str) -> S3Result<VersionSel> {
    if v == "null" {
        return Ok(VersionSel::Null);
    }
    if v.len() != 32 {
        return Err(invalid_version());
    }
    let raw = URL_SAFE_NO_PAD.decode(v).map_err(|_| invalid_version())?;
    let seq: [u8; 8] = raw
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(invalid_version)?;
    Ok(VersionSel::Id {
        id: v.to_string(),
        seq: u64::from_be_bytes(seq),
    })
}

/// The service clock in microseconds (the order of new versions, kept increasing per key).
pub(crate) fn now_micros(s: &Inner) -> u64 {
    let n = s.clock.now().unix_timestamp_nanos() / 1000;
    u64::try_from(n).unwrap_or(0)
}

/// Where a version lives.
pub(crate) enum Loc {
    Current,
    Noncurrent(String),
}

/// Walks the noncurrent versions of `key`, newest first, a page at a time, until `f` returns
/// true for one (returned with its row).
fn walk_noncurrent<R: Reader + ?Sized>(
    r: &R,
    bucket: &str,
    key: &str,
    f: impl FnMut(&Object) -> bool,
) -> Result<Option<(String, Object)>, ServiceError> {
    walk_noncurrent_paged(r, bucket, key, PAGE, f)
}

/// `walk_noncurrent` reading `page` rows at a time (1 when the first row will do: the newest).
fn walk_noncurrent_paged<R: Reader + ?Sized>(
    r: &R,
    bucket: &str,
    key: &str,
    page: usize,
    mut f: impl FnMut(&Object) -> bool,
) -> Result<Option<(String, Object)>, ServiceError> {
    let prefix = version_rows_prefix(bucket, key);
    let mut after: Option<String> = None;
    loop {
        let rows: Vec<(String, Object)> =
            scan_json(r, NS_VERSION, &prefix, after.as_deref(), page).map_err(internal)?;
        let n = rows.len();
        for (row, o) in rows {
            if o.key == key && f(&o) {
                return Ok(Some((row, o)));
            }
            after = Some(row);
        }
        if n < page {
            return Ok(None);
        }
    }
}

/// The version `sel` of `key`, if it exists.
pub(crate) fn find_version<R: Reader + ?Sized>(
    r: &R,
    bucket: &str,
    key: &str,
    sel: &VersionSel,
) -> Result<Option<(Loc, Object)>, ServiceError> {
    let Some(cur) = get_json::<Object>(r, NS_OBJECT, &object_key(bucket, key)).map_err(internal)?
    else {
        return Ok(None);
    };
    match sel {
        VersionSel::Null => {
            if cur.version_id.is_none() {
                return Ok(Some((Loc::Current, cur)));
            }
            Ok(walk_noncurrent(r, bucket, key, |o| o.version_id.is_none())?
                .map(|(row, o)| (Loc::Noncurrent(row), o)))
        }
        VersionSel::Id { id, seq } => {
            if cur.version_id.as_deref() == Some(id.as_str()) {
                return Ok(Some((Loc::Current, cur)));
            }
            let row = version_row(bucket, key, *seq);
            let found = get_json::<Object>(r, NS_VERSION, &row)
                .map_err(internal)?
                .filter(|o| o.key == key && o.version_id.as_deref() == Some(id.as_str()))
                .map(|o| (Loc::Noncurrent(row), o));
            if found.is_some() {
                return Ok(found);
            }
            // The two reads are not one snapshot: a commit between them may have made this
            // version current (its newer version deleted). Look at the current one again.
            Ok(get_json::<Object>(r, NS_OBJECT, &object_key(bucket, key))
                .map_err(internal)?
                .filter(|o| o.version_id.as_deref() == Some(id.as_str()))
                .map(|o| (Loc::Current, o)))
        }
    }
}

/// The bucket's versioning state, read in the transaction (`NoSuchBucket` if it went away).
pub(crate) fn versioning_in<R: Reader + ?Sized>(
    r: &R,
    bucket: &str,
) -> Result<Option<String>, ServiceError> {
    let b: Bucket = get_json(r, NS_BUCKET, bucket)
        .map_err(internal)?
        .ok_or_else(|| {
            ServiceError::new("NoSuchBucket", 404, "The specified bucket does not exist")
        })?;
    Ok(b.versioning)
}

/// Makes `obj` (an object whose blobs are durable, or a delete marker) the current version of
/// its key, inside a transaction, and gives it its version id and order:
/// - unversioned bucket: it replaces the current object;
/// - `Enabled`: it gets a new version id; the current version becomes noncurrent;
/// - `Suspended`: it is the `null` version, replacing the existing `null` version wherever it
///   is; a current non-null version becomes noncurrent.
///
/// Returns the blob ids no version names any more (to delete after the commit).
pub(crate) fn place_current(
    t: &mut dyn Txn,
    bucket: &str,
    versioning: Option<&str>,
    obj: &mut Object,
    now_us: u64,
) -> Result<Vec<String>, ServiceError> {
    let row = object_key(bucket, &obj.key);
    let cur = get_json::<Object>(t, NS_OBJECT, &row).map_err(internal)?;
    let mut dead = vec![];
    let Some(state) = versioning else {
        obj.version_id = None;
        obj.seq = None;
        dead.extend(cur.iter().flat_map(|c| c.blobs()).map(|b| b.blob_id));
        put_json(t, NS_OBJECT, &row, obj).map_err(internal)?;
        return Ok(dead);
    };
    let seq = match &cur {
        Some(c) => now_us.max(c.order().saturating_add(1)),
        None => now_us,
    };
    obj.seq = Some(seq);
    obj.version_id = if state == ENABLED {
        Some(new_version_id(seq)?)
    } else {
        None
    };
    if let Some(mut c) = cur {
        if obj.version_id.is_none() && c.version_id.is_none() {
            // Suspended: the null version is overwritten.
            dead.extend(c.blobs().into_iter().map(|b| b.blob_id));
        } else {
            if obj.version_id.is_none()
                && let Some((old_row, old)) =
                    walk_noncurrent(t, bucket, &obj.key, |o| o.version_id.is_none())?
            {
                t.delete(NS_VERSION, &old_row).map_err(internal)?;
                dead.extend(old.blobs().into_iter().map(|b| b.blob_id));
            }
            let order = c.order();
            c.seq = Some(order);
            put_json(t, NS_VERSION, &version_row(bucket, &c.key, order), &c).map_err(internal)?;
        }
    }
    put_json(t, NS_OBJECT, &row, obj).map_err(internal)?;
    Ok(dead)
}

/// Permanently removes the version `sel` of `key` (an object version or a delete marker); when
/// it was current, the newest noncurrent version becomes current. Returns what was removed.
pub(crate) fn remove_version(
    t: &mut dyn Txn,
    bucket: &str,
    key: &str,
    sel: &VersionSel,
) -> Result<Option<Object>, ServiceError> {
    let Some((loc, o)) = find_version(t, bucket, key, sel)? else {
        return Ok(None);
    };
    match loc {
        Loc::Noncurrent(row) => {
            t.delete(NS_VERSION, &row).map_err(internal)?;
        }
        Loc::Current => {
            let row = object_key(bucket, key);
            match walk_noncurrent_paged(t, bucket, key, 1, |_| true)? {
                Some((vrow, next)) => {
                    t.delete(NS_VERSION, &vrow).map_err(internal)?;
                    put_json(t, NS_OBJECT, &row, &next).map_err(internal)?;
                }
                None => {
                    t.delete(NS_OBJECT, &row).map_err(internal)?;
                }
            }
        }
    }
    Ok(Some(o))
}

/// An error carrying extra response headers (s3s then sends only these, so the XML content
/// type is set too).
pub(crate) fn with_headers(mut e: S3Error, headers: &[(&'static str, String)]) -> S3Error {
    let mut map = http::HeaderMap::new();
    map.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    for (k, v) in headers {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            map.insert(*k, v);
        }
    }
    e.set_headers(map);
    e
}

/// The answer for a delete marker: without a version id the key does not exist (404
/// `NoSuchKey`); named by its version id, 405 `MethodNotAllowed`. Both with
/// `x-amz-delete-marker: true` and the marker's version id.
pub(crate) fn marker_error(o: &Object, by_version: bool) -> S3Error {
    let mut headers = vec![
        ("x-amz-delete-marker", "true".to_string()),
        ("x-amz-version-id", o.version_label().to_string()),
    ];
    if by_version {
        let mut date = vec![];
        if timestamp(o.last_modified)
            .format(TimestampFormat::HttpDate, &mut date)
            .is_ok()
        {
            headers.push(("last-modified", String::from_utf8_lossy(&date).into_owned()));
        }
        headers.push(("allow", "DELETE".to_string()));
        let mut e = s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        );
        e.set_status_code(http::StatusCode::METHOD_NOT_ALLOWED);
        with_headers(e, &headers)
    } else {
        let mut e = s3_error!(NoSuchKey, "The specified key does not exist.");
        e.set_status_code(http::StatusCode::NOT_FOUND);
        with_headers(e, &headers)
    }
}

/// The version id to report for `o` in `bucket`: none for buckets never versioned.
pub(crate) fn reported_version(bucket: &Bucket, o: &Object) -> Option<String> {
    (bucket.versioning.is_some() || o.version_id.is_some()).then(|| o.version_label().to_string())
}

/// Rows of one namespace read in pages, in order, from a position that can jump forward.
struct Cursor {
    ns: &'static str,
    prefix: String,
    after: Option<String>,
    buf: VecDeque<(String, Object)>,
    done: bool,
}

impl Cursor {
    fn new(ns: &'static str, prefix: String, after: Option<String>) -> Self {
        Cursor {
            ns,
            prefix,
            after,
            buf: VecDeque::new(),
            done: false,
        }
    }

    fn peek(&mut self, s: &Inner) -> S3Result<Option<&str>> {
        if self.buf.is_empty() && !self.done {
            let rows: Vec<(String, Object)> = scan_json(
                &*s.store,
                self.ns,
                &self.prefix,
                self.after.as_deref(),
                PAGE,
            )
            .map_err(|e| s3e(internal(e)))?;
            self.done = rows.len() < PAGE;
            if let Some((last, _)) = rows.last() {
                self.after = Some(last.clone());
            }
            self.buf.extend(rows);
        }
        Ok(self.buf.front().map(|(k, _)| k.as_str()))
    }

    fn pop(&mut self) -> Option<(String, Object)> {
        self.buf.pop_front()
    }

    /// Continues after `bound` (every row up to it is skipped).
    fn skip_past(&mut self, bound: &str) {
        while self.buf.front().is_some_and(|(k, _)| k.as_str() <= bound) {
            self.buf.pop_front();
        }
        if self.buf.is_empty() && self.after.as_deref().is_none_or(|a| a < bound) {
            self.after = Some(bound.to_string());
            self.done = false;
        }
    }
}

/// What a listing keeps of a version (not its inline ciphertext).
struct Listed {
    key: String,
    version: String,
    latest: bool,
    delete_marker: bool,
    etag: String,
    size: u64,
    last_modified: i64,
    checksum_algorithms: Vec<String>,
    checksum_type: Option<ChecksumType>,
}

enum Entry {
    Version(Listed),
    Prefix(String),
}

/// One page of ListObjectVersions, read from the store in small pages (memory: a few hundred
/// rows whatever the number of versions).
#[allow(clippy::too_many_arguments)]
fn list_versions(
    s: &Inner,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    version_marker: Option<&VersionSel>,
    max: usize,
) -> S3Result<(Vec<Entry>, bool)> {
    let row_prefix = format!("{bucket}/{prefix}");
    let (cur_after, old_after) = match (key_marker, version_marker) {
        (None, _) => (None, None),
        (Some(k), None) => (
            Some(object_key(bucket, k)),
            // past every noncurrent row of k (`k NUL hex` < `k \x01`)
            Some(format!("{bucket}/{k}\u{1}")),
        ),
        (Some(k), Some(sel)) => {
            let seq = match sel {
                VersionSel::Id { seq, .. } => Some(*seq),
                VersionSel::Null => find_version(&*s.store, bucket, k, sel)
                    .map_err(s3e)?
                    .map(|(_, o)| o.order()),
            };
            (
                Some(object_key(bucket, k)),
                Some(match seq {
                    Some(seq) => version_row(bucket, k, seq),
                    None => format!("{bucket}/{k}\u{1}"),
                }),
            )
        }
    };
    let mut cur = Cursor::new(NS_OBJECT, row_prefix.clone(), cur_after);
    let mut old = Cursor::new(NS_VERSION, row_prefix, old_after);
    let mut out: Vec<Entry> = vec![];
    if max == 0 {
        return Ok((out, false));
    }
    let mut last_prefix: Option<String> = None;
    loop {
        let a = cur.peek(s)?.map(str::to_string);
        let b = old.peek(s)?.map(str::to_string);
        let take_current = match (&a, &b) {
            (None, None) => return Ok((out, false)),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(x), Some(y)) => x < y,
        };
        let Some((_, o)) = (if take_current { cur.pop() } else { old.pop() }) else {
            return Ok((out, false));
        };
        let Some(rest) = o
            .key
            .get(prefix.len()..)
            .filter(|_| o.key.starts_with(prefix))
        else {
            continue;
        };
        let common = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            rest.find(d)
                .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
        });
        if let Some(cp) = &common
            && (last_prefix.as_ref() == Some(cp) || key_marker.is_some_and(|k| cp.as_str() <= k))
        {
            let bound = format!("{bucket}/{cp}\u{10FFFF}");
            cur.skip_past(&bound);
            old.skip_past(&bound);
            continue;
        }
        if out.len() == max {
            return Ok((out, true));
        }
        match common {
            Some(cp) => {
                let bound = format!("{bucket}/{cp}\u{10FFFF}");
                cur.skip_past(&bound);
                old.skip_past(&bound);
                last_prefix = Some(cp.clone());
                out.push(Entry::Prefix(cp));
            }
            None => out.push(Entry::Version(Listed {
                version: o.version_label().to_string(),
                latest: take_current,
                delete_marker: o.delete_marker,
                etag: o.etag.trim_matches('"').to_string(),
                size: o.size,
                last_modified: o.last_modified,
                checksum_algorithms: o.checksums.iter().map(|(a, _)| a.clone()).collect(),
                checksum_type: crate::objects::checksum_type_of(&o),
                key: o.key,
            })),
        }
    }
}

pub(crate) async fn list_object_versions(
    s: &Inner,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let i = &req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let max = crate::objects::check_max_keys(i.max_keys)?;
    let extra = crate::objects::list_conditions(&prefix, i.delimiter.as_deref(), max as i32);
    s.authorize(
        &ctx,
        "s3:ListBucketVersions",
        &format!("arn:aws:s3:::{}", bucket.name),
        Some(&bucket),
        &extra,
    )?;
    let key_marker = i.key_marker.as_deref().filter(|k| !k.is_empty());
    let version_marker = match i.version_id_marker.as_deref().filter(|v| !v.is_empty()) {
        None => None,
        Some(_) if key_marker.is_none() => {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        Some(v) => Some(parse_version_id(v)?),
    };
    let (entries, truncated) = list_versions(
        s,
        &bucket.name,
        &prefix,
        i.delimiter.as_deref(),
        key_marker,
        version_marker.as_ref(),
        max,
    )?;
    let url = i
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == "url");
    let enc = |k: &str| {
        if url {
            crate::objects::url_encode(k)
        } else {
            k.to_string()
        }
    };
    let owner = crate::principal_owner(&ctx.principal);
    let (mut versions, mut markers, mut prefixes) = (vec![], vec![], vec![]);
    let (mut next_key, mut next_version) = (None, None);
    for e in &entries {
        match e {
            Entry::Prefix(p) => {
                prefixes.push(CommonPrefix {
                    prefix: Some(enc(p)),
                });
                next_key = Some(p.clone());
                next_version = None;
            }
            Entry::Version(o) => {
                next_key = Some(o.key.clone());
                next_version = Some(o.version.clone());
                if o.delete_marker {
                    markers.push(DeleteMarkerEntry {
                        is_latest: Some(o.latest),
                        key: Some(enc(&o.key)),
                        last_modified: Some(timestamp(o.last_modified)),
                        owner: Some(owner.clone()),
                        version_id: Some(o.version.clone()),
                    });
                } else {
                    versions.push(ObjectVersion {
                        e_tag: Some(ETag::Strong(o.etag.clone())),
                        is_latest: Some(o.latest),
                        key: Some(enc(&o.key)),
                        last_modified: Some(timestamp(o.last_modified)),
                        owner: Some(owner.clone()),
                        size: Some(o.size as i64),
                        storage_class: Some(ObjectVersionStorageClass::from(
                            "STANDARD".to_string(),
                        )),
                        version_id: Some(o.version.clone()),
                        checksum_algorithm: (!o.checksum_algorithms.is_empty()).then(|| {
                            o.checksum_algorithms
                                .iter()
                                .map(|a| ChecksumAlgorithm::from(a.clone()))
                                .collect()
                        }),
                        checksum_type: o.checksum_type.clone(),
                        ..Default::default()
                    });
                }
            }
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(bucket.name.clone()),
        prefix: Some(enc(&prefix)),
        delimiter: i.delimiter.as_deref().map(enc),
        encoding_type: i.encoding_type.clone(),
        key_marker: Some(i.key_marker.as_deref().map(enc).unwrap_or_default()),
        version_id_marker: Some(i.version_id_marker.clone().unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: if truncated {
            next_key.as_deref().map(enc)
        } else {
            None
        },
        next_version_id_marker: if truncated { next_version } else { None },
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_opaque_url_safe_and_carry_their_order() {
        let a = new_version_id(42).unwrap();
        let b = new_version_id(42).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b, "random part");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(
            parse_version_id(&a).unwrap(),
            VersionSel::Id {
                id: a.clone(),
                seq: 42
            }
        );
        assert_eq!(parse_version_id("null").unwrap(), VersionSel::Null);
        for bad in ["", "abc", "NULL", &"!".repeat(32), &"a".repeat(33)] {
            let e = parse_version_id(bad).unwrap_err();
            assert_eq!(
                (e.code(), e.message()),
                (
                    &s3s::S3ErrorCode::InvalidArgument,
                    Some("Invalid version id specified")
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn version_rows_sort_newest_first_and_between_keys() {
        let b = "bkt";
        // newest first within a key
        assert!(version_row(b, "k", 200) < version_row(b, "k", 100));
        assert!(version_row(b, "k", u64::MAX) < version_row(b, "k", 0));
        // a key's current row, then its noncurrent rows, then the next key (merged order)
        let cur_k = object_key(b, "k");
        let cur_next = object_key(b, "k!");
        let cur_child = object_key(b, "k/a");
        for seq in [0, 1, 1 << 40, u64::MAX] {
            let r = version_row(b, "k", seq);
            assert!(cur_k < r);
            assert!(r < cur_next);
            assert!(r < cur_child);
            assert!(r < format!("{b}/k\u{1}"));
            assert!(r.starts_with(&version_rows_prefix(b, "k")));
        }
    }

    fn obj(key: &str, blob: &str) -> Object {
        let mut o = Object::new_delete_marker(key, 1_700_000_000);
        o.delete_marker = false;
        o.blob_id = blob.to_string();
        o
    }

    fn place(
        st: &coffer_store::SqliteMetaStore,
        state: Option<&str>,
        o: Object,
        now: u64,
    ) -> (Object, Vec<String>) {
        use coffer_store::MetaStore;
        let mut o = o;
        let mut dead = vec![];
        st.transact(&mut |t| {
            dead = place_current(t, "b", state, &mut o, now)
                .map_err(|_| coffer_store::StoreError::Backend("place".into()))?;
            Ok(())
        })
        .unwrap();
        (o, dead)
    }

    fn noncurrent(st: &coffer_store::SqliteMetaStore, key: &str) -> Vec<String> {
        scan_json::<Object>(st, NS_VERSION, &version_rows_prefix("b", key), None, 1000)
            .unwrap()
            .into_iter()
            .filter(|(_, o)| o.key == key)
            .map(|(_, o)| o.blob_id)
            .collect()
    }

    #[test]
    fn versions_in_the_store_order_replace_and_promote() {
        use coffer_store::MetaStore;
        let dir = tempfile::tempdir().unwrap();
        let st = coffer_store::SqliteMetaStore::open(&dir.path().join("m.sqlite")).unwrap();
        // unversioned: replaced in place
        let (_, dead) = place(&st, None, obj("k", "blob0"), 10);
        assert!(dead.is_empty());
        let (_, dead) = place(&st, None, obj("k", "blob1"), 11);
        assert_eq!(dead, vec!["blob0".to_string()]);
        // enabled: the null version becomes noncurrent; the clock going back still orders
        let (v2, dead) = place(&st, Some(ENABLED), obj("k", "blob2"), u64::MAX / 2);
        assert!(dead.is_empty());
        let (v3, _) = place(&st, Some(ENABLED), obj("k", "blob3"), 5);
        assert!(v3.seq > v2.seq);
        // a key sharing the prefix is kept apart
        place(&st, Some(ENABLED), obj("k\u{0}x", "other"), 7);
        assert_eq!(noncurrent(&st, "k"), vec!["blob2", "blob1"]);
        // suspended: the null version (noncurrent) is replaced
        let (_, dead) = place(&st, Some("Suspended"), obj("k", "blob4"), 20);
        assert_eq!(dead, vec!["blob1".to_string()]);
        assert_eq!(noncurrent(&st, "k"), vec!["blob3", "blob2"]);
        // removing the current version promotes the newest noncurrent one
        let mut removed = None;
        st.transact(&mut |t| {
            removed = remove_version(t, "b", "k", &VersionSel::Null).unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(removed.unwrap().blob_id, "blob4");
        let cur: Object = get_json(&st, NS_OBJECT, "b/k").unwrap().unwrap();
        assert_eq!(cur.blob_id, "blob3");
        assert_eq!(noncurrent(&st, "k"), vec!["blob2"]);
        // by id
        let sel = parse_version_id(v2.version_id.as_deref().unwrap()).unwrap();
        let found = find_version(&st, "b", "k", &sel).unwrap().unwrap();
        assert!(matches!(found.0, Loc::Noncurrent(_)));
        assert_eq!(found.1.blob_id, "blob2");
    }
}
