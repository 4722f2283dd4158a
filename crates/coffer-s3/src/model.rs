//! Persisted S3 records.

use serde::{Deserialize, Serialize};

pub const NS_BUCKET: &str = "s3.bucket";
pub const NS_OBJECT: &str = "s3.object";
/// Multipart uploads in progress: `bucket/upload-id/key`.
pub const NS_UPLOAD: &str = "s3.upload";
/// Index of uploads in ListMultipartUploads order: see [`upload_index_key`]; the value is the
/// upload's row key.
pub const NS_UPLOAD_BY_KEY: &str = "s3.upload_by_key";
/// Uploaded parts: `upload-id/part-number (5 digits)`.
pub const NS_PART: &str = "s3.part";
/// Noncurrent object versions and delete markers of versioned buckets:
/// `bucket/key` NUL `16 hex digits of (u64::MAX - seq)` (newest first within a key). The current
/// version of every key stays in `NS_OBJECT`.
pub const NS_VERSION: &str = "s3.version";

/// A bucket's default encryption, as configured (the KMS key identifier as given).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DefaultEncryption {
    /// `AES256` or `aws:kms`.
    pub algorithm: String,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Bucket {
    pub name: String,
    pub account: String,
    pub region: String,
    pub created: i64,
    #[serde(default)]
    pub encryption: Option<DefaultEncryption>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Bucket keys (SSE-KMS with `BucketKeyEnabled`): KMS ciphertexts of bucket-level data keys,
    /// one per KMS key identifier and encryption context; objects derive their keys from them.
    #[serde(default)]
    pub bucket_keys: Vec<BucketKey>,
    /// `Enabled` or `Suspended` once configured; `None` when versioning was never configured
    /// (then objects are replaced in place and carry no version id).
    #[serde(default)]
    pub versioning: Option<String>,
}

/// A bucket key: the KMS ciphertext of a bucket-level data key (its plaintext is never stored).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct BucketKey {
    /// The KMS key identifier as the request or the bucket configuration gave it.
    pub key_id: String,
    pub key_arn: String,
    /// base64 KMS ciphertext, bound to `context` (`aws:s3:arn` = the bucket's ARN).
    pub ciphertext: String,
    pub context: Vec<(String, String)>,
    pub created: i64,
}

/// How an object's data key is kept.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum Sse {
    /// SSE-S3: the data key wrapped by the root key (base64), AAD `s3-sse-s3:<id>` where id is
    /// `aad_id` (multipart uploads) or else the object's blob id.
    S3 {
        wrapped_key: String,
        #[serde(default)]
        aad_id: Option<String>,
    },
    /// SSE-C: the data key wrapped by the customer's key (base64), AAD `s3-sse-c:<id>` where id
    /// is `aad_id` (multipart uploads) or else the object's blob id; the customer key itself is
    /// never stored, only its MD5 (as AWS returns it).
    Customer {
        wrapped_key: String,
        key_md5: String,
        #[serde(default)]
        aad_id: Option<String>,
    },
    /// SSE-KMS: the data key's KMS ciphertext (base64), with the KMS key ARN and the encryption
    /// context it is bound to (always including `aws:s3:arn`).
    Kms {
        key_arn: String,
        ciphertext: String,
        context: Vec<(String, String)>,
        bucket_key_enabled: bool,
        /// The `x-amz-server-side-encryption-context` the client gave (base64 JSON), if any.
        client_context: Option<String>,
        /// With a bucket key, `ciphertext` is the bucket key's and the object's data key is
        /// HKDF-SHA256(bucket key, this salt (base64)).
        #[serde(default)]
        bucket_key_salt: Option<String>,
    },
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// Quoted ETag.
    pub etag: String,
    pub last_modified: i64,
    pub blob_id: String,
    pub segment_size: usize,
    pub sse: Sse,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub content_disposition: Option<String>,
    #[serde(default)]
    pub content_language: Option<String>,
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    /// Checksums given or computed at upload: (algorithm, base64 value).
    #[serde(default)]
    pub checksums: Vec<(String, String)>,
    /// `COMPOSITE` for the whole-object checksum of a multipart upload of that type; else (`None`)
    /// the checksums are of the whole object (`FULL_OBJECT`).
    #[serde(default)]
    pub checksum_type: Option<String>,
    /// Multipart objects: the parts' blobs in order (then `blob_id` is empty).
    #[serde(default)]
    pub parts: Vec<PartBlob>,
    /// Small objects: the ciphertext itself (base64), in the same segment format, bound to
    /// `blob_id`; no blob file exists then.
    #[serde(default)]
    pub inline: Option<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The version id in a versioned bucket; `None` is the `null` version (and every object of
    /// a bucket whose versioning was never configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Order of the versions of a key (larger is newer; microseconds, kept strictly increasing
    /// per key). `None` for objects written while the bucket was unversioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A delete marker: no body, no blobs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PartBlob {
    pub blob_id: String,
    pub size: u64,
}

impl Object {
    /// The blob files holding the body, in order, with their plaintext sizes (none when inline).
    pub fn blobs(&self) -> Vec<PartBlob> {
        if self.inline.is_some() || self.delete_marker {
            vec![]
        } else if self.parts.is_empty() {
            vec![PartBlob {
                blob_id: self.blob_id.clone(),
                size: self.size,
            }]
        } else {
            self.parts.clone()
        }
    }

    /// The ordering of this version among its key's versions (objects written unversioned get
    /// their modification time).
    pub fn order(&self) -> u64 {
        self.seq
            .unwrap_or_else(|| (self.last_modified.max(0) as u64).saturating_mul(1_000_000))
    }

    /// The version id as S3 reports it (`null` for the null version).
    pub fn version_label(&self) -> &str {
        self.version_id.as_deref().unwrap_or("null")
    }

    /// A delete marker for `key` made at `now`.
    pub fn new_delete_marker(key: &str, now: i64) -> Object {
        Object {
            key: key.to_string(),
            size: 0,
            etag: String::new(),
            last_modified: now,
            blob_id: String::new(),
            segment_size: 0,
            sse: Sse::S3 {
                wrapped_key: String::new(),
                aad_id: None,
            },
            content_type: None,
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            metadata: vec![],
            checksums: vec![],
            checksum_type: None,
            parts: vec![],
            inline: None,
            tags: vec![],
            version_id: None,
            seq: None,
            delete_marker: true,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub initiated: i64,
    /// Initiation time in microseconds (0 in uploads made before it was recorded), which orders
    /// a key's uploads in listings.
    #[serde(default)]
    pub initiated_us: u64,
    pub initiator_arn: String,
    pub sse: Sse,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub content_disposition: Option<String>,
    #[serde(default)]
    pub content_language: Option<String>,
    #[serde(default)]
    pub cache_control: Option<String>,
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    /// `COMPOSITE` or `FULL_OBJECT` when `checksum_algorithm` is set.
    #[serde(default)]
    pub checksum_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Part {
    pub number: i32,
    pub blob_id: String,
    pub size: u64,
    /// Quoted MD5 hex.
    pub etag: String,
    pub last_modified: i64,
    #[serde(default)]
    pub checksums: Vec<(String, String)>,
}

pub fn upload_key(bucket: &str, upload_id: &str, key: &str) -> String {
    format!("{bucket}/{upload_id}/{key}")
}

/// `bucket/key` NUL initiation time (16 hex digits) NUL upload id: uploads by key, then by
/// initiation time (keys never contain NUL).
pub fn upload_index_key(up: &Upload) -> String {
    let at = match up.initiated_us {
        0 => (up.initiated.max(0) as u64).saturating_mul(1_000_000),
        us => us,
    };
    format!("{}/{}\0{at:016x}\0{}", up.bucket, up.key, up.id)
}

pub fn part_key(upload_id: &str, number: i32) -> String {
    format!("{upload_id}/{number:05}")
}

pub fn object_key(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

/// The `NS_VERSION` row of a noncurrent version of `key` with order `seq`.
pub fn version_row(bucket: &str, key: &str, seq: u64) -> String {
    format!("{bucket}/{key}\u{0}{:016x}", u64::MAX - seq)
}

/// The prefix of every `NS_VERSION` row of `key` (rows of keys that extend `key` with a NUL
/// share it: callers compare the record's key).
pub fn version_rows_prefix(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}\u{0}")
}
