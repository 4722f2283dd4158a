//! Persisted S3 records.

use serde::{Deserialize, Serialize};

pub const NS_BUCKET: &str = "s3.bucket";
pub const NS_OBJECT: &str = "s3.object";

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
}

/// How an object's data key is kept.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum Sse {
    /// SSE-S3: the data key wrapped by the root key (base64), AAD `s3-sse-s3:<blob id>`.
    S3 { wrapped_key: String },
    /// SSE-KMS: the data key's KMS ciphertext (base64), with the KMS key ARN and the encryption
    /// context it is bound to (always including `aws:s3:arn`).
    Kms {
        key_arn: String,
        ciphertext: String,
        context: Vec<(String, String)>,
        bucket_key_enabled: bool,
        /// The `x-amz-server-side-encryption-context` the client gave (base64 JSON), if any.
        client_context: Option<String>,
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
}

pub fn object_key(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}
