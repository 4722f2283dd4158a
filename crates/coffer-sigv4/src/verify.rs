//! Signature verification (§1.2, §1.4–§1.6).

use http::{HeaderMap, Method, Uri};
use time::OffsetDateTime;

use crate::canonical::{CanonicalInput, canonical_request};
use crate::{
    AuthError, AuthKind, Flavor, MAX_SKEW, ParsedAuth, Secret, SigningKey, SigningKeyCache,
    UNSIGNED_PAYLOAD, format_amz_date, string_to_sign,
};

/// Verify a parsed SigV4 request without a key cache. See [`verify_with_cache`].
#[allow(clippy::too_many_arguments)]
pub fn verify(
    auth: &ParsedAuth,
    secret: &Secret,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    payload_hash: &str,
    flavor: Flavor,
    now: OffsetDateTime,
) -> Result<SigningKey, AuthError> {
    verify_with_cache(
        auth,
        secret,
        method,
        uri,
        headers,
        payload_hash,
        flavor,
        now,
        None,
    )
}

/// Verify a parsed SigV4 request and return the derived signing key (needed to verify
/// aws-chunked bodies).
///
/// `payload_hash`: for [`Flavor::Standard`] the hex SHA-256 of the body (always computed by the
/// caller); for [`Flavor::S3`] the `x-amz-content-sha256` header value, or `UNSIGNED-PAYLOAD`
/// for presigned URLs (see [`ParsedAuth::s3_payload_hash`]). The caller remains responsible
/// for checking a declared 64-hex body hash against the body ([`check_content_sha256`]).
///
/// Checks, in order:
/// 1. time — header auth: `|now - X-Amz-Date| <= 15 min` ([`AuthError::Skewed`]); presigned:
///    `now <= X-Amz-Date + X-Amz-Expires` ([`AuthError::Expired`]) and the date is not more
///    than 15 min in the future ([`AuthError::Skewed`]); no skew check otherwise (§1.4);
/// 2. `host` and every `x-amz-*` header present are signed ([`AuthError::HeadersNotSigned`]).
///    `x-amz-content-sha256` is exempt: for header auth its value is the payload line of the
///    canonical request, so it is bound anyway, and presigned URLs do not cover the payload;
/// 3. the signature, in constant time ([`AuthError::SignatureMismatch`]). If the raw query
///    contains a literal `+`, it is first read as `%2B` and, failing that, as a space.
#[allow(clippy::too_many_arguments)]
pub fn verify_with_cache(
    auth: &ParsedAuth,
    secret: &Secret,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    payload_hash: &str,
    flavor: Flavor,
    now: OffsetDateTime,
    cache: Option<&SigningKeyCache>,
) -> Result<SigningKey, AuthError> {
    check_time(auth, now)?;
    check_signed_headers(auth, uri, headers)?;

    let key = match cache {
        Some(c) => c.get(secret, &auth.date, &auth.region, &auth.service),
        None => SigningKey::derive(secret, &auth.date, &auth.region, &auth.service),
    };
    let scope = auth.scope();
    let presigned = matches!(auth.kind, AuthKind::Presigned { .. });
    let mut input = CanonicalInput {
        method,
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        uri,
        headers,
        signed_headers: &auth.signed_headers,
        payload_hash,
        flavor,
        exclude_signature: presigned,
        plus_as_space: false,
    };
    let cr = canonical_request(&input);
    let sts = string_to_sign(&auth.amz_date, &scope, &cr);
    if key.verify_hex(sts.as_bytes(), &auth.signature) {
        return Ok(key);
    }
    if uri.query().is_some_and(|q| q.contains('+')) {
        input.plus_as_space = true;
        let cr2 = canonical_request(&input);
        let sts2 = string_to_sign(&auth.amz_date, &scope, &cr2);
        if key.verify_hex(sts2.as_bytes(), &auth.signature) {
            return Ok(key);
        }
    }
    Err(AuthError::SignatureMismatch {
        canonical_request: cr,
        string_to_sign: sts,
    })
}

fn check_time(auth: &ParsedAuth, now: OffsetDateTime) -> Result<(), AuthError> {
    let skewed = || AuthError::Skewed {
        request_time: auth.request_time,
        server_time: now,
    };
    match auth.kind {
        AuthKind::Header => {
            if (now - auth.request_time).abs() > MAX_SKEW {
                return Err(skewed());
            }
        }
        AuthKind::Presigned { expires_secs } => {
            if auth.request_time - now > MAX_SKEW {
                return Err(skewed());
            }
            let secs = i64::try_from(expires_secs).unwrap_or(i64::MAX);
            let expires_at = auth
                .request_time
                .checked_add(time::Duration::seconds(secs))
                .unwrap_or(auth.request_time);
            if now > expires_at {
                return Err(AuthError::Expired {
                    expires_at,
                    server_time: now,
                });
            }
        }
    }
    Ok(())
}

fn check_signed_headers(
    auth: &ParsedAuth,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), AuthError> {
    let is_signed = |n: &str| auth.signed_headers.iter().any(|s| s == n);
    let mut unsigned: Vec<String> = Vec::new();
    let has_host = headers.contains_key(http::header::HOST) || uri.authority().is_some();
    if has_host && !is_signed("host") {
        unsigned.push("host".to_owned());
    }
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with("x-amz-")
            && n != "x-amz-content-sha256"
            && !is_signed(n)
            && !unsigned.iter().any(|u| u == n)
        {
            unsigned.push(n.to_owned());
        }
    }
    if unsigned.is_empty() {
        Ok(())
    } else {
        unsigned.sort();
        Err(AuthError::HeadersNotSigned(unsigned))
    }
}

/// How an S3 body is framed/hashed, from the `x-amz-content-sha256` value (§1.2 table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadMode {
    /// 64-hex SHA-256 of the whole body (lowercased); verify with [`check_content_sha256`].
    Sha256(String),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
    StreamingSigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`.
    StreamingSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
    StreamingUnsignedTrailer,
    /// `STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD[-TRAILER]` (SigV4a; not supported).
    StreamingEcdsa,
}

impl PayloadMode {
    /// Classify an `x-amz-content-sha256` value; `None` if it is none of the accepted values
    /// (S3: `InvalidArgument` "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, ...").
    pub fn from_header(value: &str) -> Option<Self> {
        Some(match value {
            UNSIGNED_PAYLOAD => PayloadMode::Unsigned,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => PayloadMode::StreamingSigned,
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => PayloadMode::StreamingSignedTrailer,
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => PayloadMode::StreamingUnsignedTrailer,
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
            | "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER" => PayloadMode::StreamingEcdsa,
            v if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                PayloadMode::Sha256(v.to_ascii_lowercase())
            }
            _ => return None,
        })
    }

    /// The aws-chunked mode, for the streaming variants handled by [`crate::ChunkedDecoder`].
    pub fn chunked_mode(&self) -> Option<crate::ChunkedMode> {
        match self {
            PayloadMode::StreamingSigned => Some(crate::ChunkedMode::SignedPayload),
            PayloadMode::StreamingSignedTrailer => Some(crate::ChunkedMode::SignedPayloadTrailer),
            PayloadMode::StreamingUnsignedTrailer => {
                Some(crate::ChunkedMode::UnsignedPayloadTrailer)
            }
            _ => None,
        }
    }
}

/// Compare a declared 64-hex `x-amz-content-sha256` with the hash computed over the body.
pub fn check_content_sha256(declared: &str, computed: &str) -> Result<(), AuthError> {
    if declared.eq_ignore_ascii_case(computed) {
        Ok(())
    } else {
        Err(AuthError::ContentSha256Mismatch {
            client: declared.to_owned(),
            computed: computed.to_owned(),
        })
    }
}

/// The KMS `InvalidSignatureException` message for a skewed request (§1.5), e.g.
/// `Signature expired: 20170111T204052Z is now earlier than 20170111T225449Z (20170111T230949Z - 15 min.)`
/// or `Signature not yet current: <t> is still later than <now+15m> (<now> + 15 min.)`.
pub fn kms_skew_message(request_time: OffsetDateTime, server_time: OffsetDateTime) -> String {
    let rt = format_amz_date(request_time);
    let st = format_amz_date(server_time);
    if request_time < server_time {
        format!(
            "Signature expired: {rt} is now earlier than {} ({st} - 15 min.)",
            format_amz_date(server_time - MAX_SKEW)
        )
    } else {
        format!(
            "Signature not yet current: {rt} is still later than {} ({st} + 15 min.)",
            format_amz_date(server_time + MAX_SKEW)
        )
    }
}
