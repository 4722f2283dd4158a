//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) verification and signing for Coffer.
//!
//! Implements `/work/shared/reference/aws-behavior.md` §1.2–§1.6:
//!
//! * [`parse`] extracts the SigV4 auth of a request (Authorization header or presigned query);
//! * [`verify`] / [`verify_with_cache`] rebuild the canonical request and check the signature
//!   (constant time), the clock skew (header auth, ±15 min), the expiry (presigned) and that
//!   `host` and every `x-amz-*` header are signed;
//! * [`ChunkedDecoder`] is a sans-IO decoder for `aws-chunked` bodies (signed chunks, signed or
//!   unsigned trailers);
//! * [`sign_request`], [`presign_url`] and [`ChunkedEncoder`] produce botocore-identical
//!   signatures, for tests, the load generator and the demo client.
//!
//! Secrets are wrapped in [`Secret`] (redacted `Debug`, zeroized on drop); derived keys in
//! [`SigningKey`] (redacted `Debug`).
//!
//! Server-side flow (S3 shown; for KMS/IAM/STS use [`Flavor::Standard`] and the SHA-256 of
//! the body as payload hash):
//!
//! ```
//! use coffer_sigv4::*;
//! # use http::{HeaderMap, HeaderValue, Method, Uri};
//! # let now = parse_amz_date("20240601T120000Z").unwrap();
//! # let secret = Secret::new("secret".to_owned());
//! # let method = Method::GET;
//! # let uri: Uri = "/bucket/key".parse().unwrap();
//! # let mut headers = HeaderMap::new();
//! # headers.insert("host", HeaderValue::from_static("s3.local"));
//! # sign_request(&method, &uri, &mut headers, EMPTY_SHA256, "AKID", &secret,
//! #     "us-east-1", "s3", now, None, Flavor::S3).unwrap();
//! let cache = SigningKeyCache::new();
//! let auth = parse(&method, &uri, &headers)?.expect("anonymous requests handled elsewhere");
//! // look up auth.access_key_id (and auth.security_token) to get `secret` ...
//! let payload = auth.s3_payload_hash().expect("S3 requires x-amz-content-sha256");
//! let key = verify_with_cache(&auth, &secret, &method, &uri, &headers, payload,
//!     Flavor::S3, now, Some(&cache))?;
//! match PayloadMode::from_header(payload) {
//!     Some(PayloadMode::Sha256(_declared)) => { /* hash the body, then check_content_sha256 */ }
//!     Some(p) if p.chunked_mode().is_some() => {
//!         let mode = p.chunked_mode().unwrap();
//!         let _dec = ChunkedDecoder::new(mode, Some(key), &auth.signature,
//!             &auth.amz_date, &auth.scope());
//!         // dec.feed(..) for every body slice, then commit only if dec.finish() is Ok.
//!     }
//!     _ => {}
//! }
//! # Ok::<(), AuthError>(())
//! ```

mod canonical;
mod chunked;
mod parse;
mod sign;
mod verify;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{digest, hmac};
use parking_lot::Mutex;
use zeroize::{Zeroize, Zeroizing};

pub use canonical::{canonical_query_string, canonical_uri, uri_encode};
pub use chunked::{ChunkedDecoder, ChunkedEncoder, ChunkedMode};
pub use parse::{format_amz_date, format_iso8601, parse, parse_amz_date};
pub use sign::{presign_url, resign_header_auth, sign_request};
pub use verify::{PayloadMode, check_content_sha256, kms_skew_message, verify, verify_with_cache};

/// The only supported algorithm.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Hex SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// `x-amz-content-sha256` / presigned payload placeholder.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Maximum allowed clock skew for header-signed requests (§1.5).
pub const MAX_SKEW: time::Duration = time::Duration::minutes(15);
/// Maximum `X-Amz-Expires` (§1.4).
pub const MAX_EXPIRES_SECS: u64 = 604_800;
/// Headers botocore never signs (`SIGNED_HEADERS_BLACKLIST`), lowercase.
pub const SIGNED_HEADERS_BLACKLIST: &[&str] = &[
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// How the request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// `Authorization: AWS4-HMAC-SHA256 ...` header.
    Header,
    /// Presigned URL (query parameters); `X-Amz-Expires` in seconds (1..=604800).
    Presigned { expires_secs: u64 },
}

/// The SigV4 auth of a request, as parsed by [`parse`]. Nothing here is verified yet.
///
/// `Debug` redacts the session token.
#[derive(Clone)]
pub struct ParsedAuth {
    pub access_key_id: String,
    /// `yyyymmdd` from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase, in the order given by the client.
    pub signed_headers: Vec<String>,
    /// 64 lowercase hex characters.
    pub signature: String,
    /// `yyyymmddThhmmssZ`, from `x-amz-date` (or the `Date` header, converted) or the
    /// `X-Amz-Date` query parameter.
    pub amz_date: String,
    pub request_time: time::OffsetDateTime,
    pub kind: AuthKind,
    /// `x-amz-security-token` header or `X-Amz-Security-Token` query parameter.
    pub security_token: Option<String>,
    /// `x-amz-content-sha256` header value, if present.
    pub content_sha256: Option<String>,
}

impl fmt::Debug for ParsedAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedAuth")
            .field("access_key_id", &self.access_key_id)
            .field("date", &self.date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .field("amz_date", &self.amz_date)
            .field("request_time", &self.request_time)
            .field("kind", &self.kind)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("content_sha256", &self.content_sha256)
            .finish()
    }
}

impl ParsedAuth {
    /// The credential scope `yyyymmdd/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        scope(&self.date, &self.region, &self.service)
    }

    /// The payload hash an S3 request was signed with (pass it to [`verify`] with
    /// [`Flavor::S3`]): for header auth the `x-amz-content-sha256` header (`None` if absent —
    /// S3 requires it); for presigned URLs `UNSIGNED-PAYLOAD`, unless the client signed an
    /// `x-amz-content-sha256` header, whose value botocore then uses.
    pub fn s3_payload_hash(&self) -> Option<&str> {
        match self.kind {
            AuthKind::Header => self.content_sha256.as_deref(),
            AuthKind::Presigned { .. } => {
                let signed = self
                    .signed_headers
                    .iter()
                    .any(|h| h == "x-amz-content-sha256");
                match &self.content_sha256 {
                    Some(v) if signed => Some(v.as_str()),
                    _ => Some(UNSIGNED_PAYLOAD),
                }
            }
        }
    }
}

/// Authentication failures. Messages are AWS-like; callers map variants to per-service error
/// codes (§1.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Authorization header present but unparsable, or scope malformed.
    #[error("{0}")]
    Malformed(String),
    /// Presigned URL missing required parameters / bad X-Amz-Credential / bad X-Amz-Expires.
    #[error("{0}")]
    QueryParams(String),
    /// Algorithm other than AWS4-HMAC-SHA256 (e.g. SigV4a, SigV2).
    #[error("{0}")]
    UnsupportedAlgorithm(String),
    /// The signature does not match; carries what the server computed (AWS returns both).
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )]
    SignatureMismatch {
        canonical_request: String,
        string_to_sign: String,
    },
    /// Header-signed request outside ±15 min (or presigned URL dated > 15 min in the future).
    #[error("The difference between the request time and the current time is too large.")]
    Skewed {
        request_time: time::OffsetDateTime,
        server_time: time::OffsetDateTime,
    },
    /// Presigned URL past X-Amz-Date + X-Amz-Expires.
    #[error("Request has expired")]
    Expired {
        expires_at: time::OffsetDateTime,
        server_time: time::OffsetDateTime,
    },
    /// `host` / `x-amz-*` headers present but not signed (lowercase names, sorted).
    #[error("There were headers present in the request which were not signed")]
    HeadersNotSigned(Vec<String>),
    /// Declared `x-amz-content-sha256` differs from the computed hash.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch { client: String, computed: String },
    /// aws-chunked decoding failed (bad framing, bad chunk signature, bad trailer signature).
    #[error("{0}")]
    BadChunk(String),
}

/// A secret access key. Redacted in `Debug`, zeroized on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(Zeroizing::new(s))
    }

    /// The raw secret. Do not log it.
    pub fn expose_secret(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

/// Derived SigV4 signing key for (secret, date, region, service). Cheap to clone; redacted
/// `Debug`. (The key material lives inside aws-lc's HMAC context, which is cleansed on free.)
#[derive(Clone)]
pub struct SigningKey(Arc<hmac::Key>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

fn hmac_bytes(key: &[u8], msg: &[u8]) -> Zeroizing<Vec<u8>> {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    Zeroizing::new(hmac::sign(&k, msg).as_ref().to_vec())
}

impl SigningKey {
    /// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
    pub fn derive(secret: &Secret, date: &str, region: &str, service: &str) -> Self {
        let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.0.len()));
        k_secret.extend_from_slice(b"AWS4");
        k_secret.extend_from_slice(secret.0.as_bytes());
        let k_date = hmac_bytes(&k_secret, date.as_bytes());
        let k_region = hmac_bytes(&k_date, region.as_bytes());
        let k_service = hmac_bytes(&k_region, service.as_bytes());
        let mut k_signing = hmac_bytes(&k_service, b"aws4_request");
        let key = hmac::Key::new(hmac::HMAC_SHA256, &k_signing);
        k_signing.zeroize();
        SigningKey(Arc::new(key))
    }

    /// Lowercase hex HMAC-SHA256 of `msg` under this key (i.e. a SigV4 signature of a
    /// string to sign).
    pub fn sign_hex(&self, msg: &[u8]) -> String {
        hex::encode(hmac::sign(&self.0, msg).as_ref())
    }

    /// Constant-time check that `provided_hex` is the signature of `msg`.
    pub fn verify_hex(&self, msg: &[u8], provided_hex: &str) -> bool {
        let computed = self.sign_hex(msg);
        let provided = provided_hex.to_ascii_lowercase();
        aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), provided.as_bytes())
            .is_ok()
    }
}

/// Bound on the number of cached signing keys; the cache is cleared when exceeded.
const CACHE_MAX: usize = 10_000;

type CacheKey = ([u8; 32], String, String, String);

/// Cache of derived signing keys keyed by (secret fingerprint, date, region, service).
///
/// The fingerprint is an HMAC of the secret under a random per-cache key, so the map never
/// holds the raw secret (nor a plain hash of it). Bounded: cleared when it exceeds 10 000
/// entries.
pub struct SigningKeyCache {
    salt: hmac::Key,
    map: Mutex<HashMap<CacheKey, SigningKey>>,
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("entries", &self.map.lock().len())
            .finish()
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SigningKeyCache {
    pub fn new() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Falls back to a fixed salt only if the system RNG is unavailable; the fingerprint is
        // still an HMAC (one-way), so this only weakens the hiding of equal secrets.
        let salt = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"coffer-sigv4-cache"));
        SigningKeyCache {
            salt,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, secret: &Secret, date: &str, region: &str, service: &str) -> SigningKey {
        let mut fp = [0u8; 32];
        fp.copy_from_slice(hmac::sign(&self.salt, secret.0.as_bytes()).as_ref());
        let key: CacheKey = (fp, date.to_owned(), region.to_owned(), service.to_owned());
        if let Some(k) = self.map.lock().get(&key) {
            return k.clone();
        }
        let derived = SigningKey::derive(secret, date, region, service);
        let mut map = self.map.lock();
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(key, derived.clone());
        derived
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// Credential scope `yyyymmdd/region/service/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// `AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The canonical-request flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// S3: path used exactly as received (no normalisation, encoded once by the client);
    /// payload hash from `x-amz-content-sha256` (or `UNSIGNED-PAYLOAD` for presigned).
    S3,
    /// KMS/IAM/STS: path normalised (`.`/`..`/empty segments removed) and encoded again
    /// (double encoding); payload hash = SHA-256 of the body, computed by the caller.
    Standard,
}
