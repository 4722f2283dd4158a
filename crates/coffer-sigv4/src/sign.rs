//! Client-side signing (botocore-compatible), for tests, the load generator and the demo client.

use http::header::{AUTHORIZATION, HOST, HeaderName, HeaderValue, InvalidHeaderValue};
use http::{HeaderMap, Method, Uri};
use time::OffsetDateTime;

use crate::canonical::{CanonicalInput, authority_host, canonical_request, uri_encode};
use crate::{
    ALGORITHM, EMPTY_SHA256, Flavor, SIGNED_HEADERS_BLACKLIST, Secret, SigningKey,
    UNSIGNED_PAYLOAD, format_amz_date, scope, string_to_sign,
};

fn headers_to_sign(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|n| !SIGNED_HEADERS_BLACKLIST.contains(n) && *n != "authorization")
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Sign a request like botocore's `SigV4Auth` ([`Flavor::Standard`]) / `S3SigV4Auth`
/// ([`Flavor::S3`]).
///
/// Removes any `Authorization`, sets `x-amz-date`, `x-amz-security-token` (when
/// `session_token` is given) and, for S3, `x-amz-content-sha256: <body_hash>`; inserts a
/// `host` header from the URI authority if none is present (botocore relies on its HTTP client
/// for that). Signs every header except `SIGNED_HEADERS_BLACKLIST`, then sets
/// `Authorization`. `uri`'s path and query must already be percent-encoded as they will be
/// sent. `body_hash` is the hex SHA-256 of the body, `UNSIGNED-PAYLOAD`, or a `STREAMING-*`
/// value.
///
/// Returns the signature (the seed signature for an aws-chunked body).
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    body_hash: &str,
    access_key: &str,
    secret: &Secret,
    region: &str,
    service: &str,
    now: OffsetDateTime,
    session_token: Option<&str>,
    flavor: Flavor,
) -> Result<String, InvalidHeaderValue> {
    headers.remove(AUTHORIZATION);
    let amz_date = format_amz_date(now);
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date)?);
    if let Some(t) = session_token {
        headers.insert("x-amz-security-token", HeaderValue::from_str(t)?);
    }
    if flavor == Flavor::S3 {
        headers.insert("x-amz-content-sha256", HeaderValue::from_str(body_hash)?);
    }
    if !headers.contains_key(HOST)
        && let Some(h) = authority_host(uri)
    {
        headers.insert(HOST, HeaderValue::from_str(&h)?);
    }
    let signed = headers_to_sign(headers);
    let date = crate::parse::ymd(&amz_date);
    let scope = scope(date, region, service);
    let cr = canonical_request(&CanonicalInput {
        method,
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        uri,
        headers,
        signed_headers: &signed,
        payload_hash: body_hash,
        flavor,
        exclude_signature: false,
        plus_as_space: false,
    });
    let sts = string_to_sign(&amz_date, &scope, &cr);
    let signature = SigningKey::derive(secret, date, region, service).sign_hex(sts.as_bytes());
    let authz = format!(
        "{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    );
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&authz)?);
    Ok(signature)
}

/// Re-signs a request authenticated by an `Authorization` header after the server changed it
/// (e.g. removed a header it must ignore), for a verifier further down the same server: the
/// same access key, date, scope and payload hash as `auth` (whose signature was verified
/// with `secret`), over `signed_headers`. Only the `Authorization` header is replaced; the
/// session token header, if any, stays as sent.
#[allow(clippy::too_many_arguments)]
pub fn resign_header_auth(
    auth: &crate::ParsedAuth,
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    signed_headers: &[String],
    payload_hash: &str,
    secret: &Secret,
    flavor: Flavor,
) -> Result<(), InvalidHeaderValue> {
    let scope = scope(&auth.date, &auth.region, &auth.service);
    let cr = canonical_request(&CanonicalInput {
        method,
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        uri,
        headers,
        signed_headers,
        payload_hash,
        flavor,
        exclude_signature: false,
        plus_as_space: false,
    });
    let sts = string_to_sign(&auth.amz_date, &scope, &cr);
    let signature = SigningKey::derive(secret, &auth.date, &auth.region, &auth.service)
        .sign_hex(sts.as_bytes());
    let authz = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        auth.access_key_id,
        signed_headers.join(";")
    );
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&authz)?);
    Ok(())
}

/// Presign a URL like botocore's `SigV4QueryAuth` / `S3SigV4QueryAuth`.
///
/// `uri` should be absolute (`scheme://authority/path?query`, percent-encoded); its query is
/// kept and followed by `X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
/// `X-Amz-Expires`, `X-Amz-SignedHeaders`, [`X-Amz-Security-Token`] and finally
/// `X-Amz-Signature`. Signed headers: `host` plus any non-blacklisted header in `headers`
/// (usually none). Payload: `UNSIGNED-PAYLOAD` for S3 (or the `x-amz-content-sha256` header
/// if given), the empty-body SHA-256 otherwise.
#[allow(clippy::too_many_arguments)]
pub fn presign_url(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    access_key: &str,
    secret: &Secret,
    region: &str,
    service: &str,
    now: OffsetDateTime,
    expires_secs: u64,
    session_token: Option<&str>,
    flavor: Flavor,
) -> String {
    let mut hdrs = headers.clone();
    hdrs.remove(AUTHORIZATION);
    if !hdrs.contains_key(HOST)
        && let Some(h) = authority_host(uri).and_then(|h| HeaderValue::from_str(&h).ok())
    {
        hdrs.insert(HOST, h);
    }
    let mut signed = headers_to_sign(&hdrs);
    if !signed.iter().any(|s| s == "host") {
        signed.push("host".to_owned());
        signed.sort();
    }
    let amz_date = format_amz_date(now);
    let date = crate::parse::ymd(&amz_date);
    let scope = scope(date, region, service);

    let mut query = uri.query().unwrap_or("").to_owned();
    let mut push = |k: &str, v: &str| {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(k);
        query.push('=');
        query.push_str(&uri_encode(v.as_bytes()));
    };
    push("X-Amz-Algorithm", ALGORITHM);
    push("X-Amz-Credential", &format!("{access_key}/{scope}"));
    push("X-Amz-Date", &amz_date);
    push("X-Amz-Expires", &expires_secs.to_string());
    push("X-Amz-SignedHeaders", &signed.join(";"));
    if let Some(t) = session_token {
        push("X-Amz-Security-Token", t);
    }

    let payload_hash = match flavor {
        Flavor::S3 => hdrs
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(UNSIGNED_PAYLOAD)
            .to_owned(),
        Flavor::Standard => EMPTY_SHA256.to_owned(),
    };
    let cr = canonical_request(&CanonicalInput {
        method,
        path: uri.path(),
        query: &query,
        uri,
        headers: &hdrs,
        signed_headers: &signed,
        payload_hash: &payload_hash,
        flavor,
        exclude_signature: true,
        plus_as_space: false,
    });
    let sts = string_to_sign(&amz_date, &scope, &cr);
    let signature = SigningKey::derive(secret, date, region, service).sign_hex(sts.as_bytes());
    let prefix = match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => String::new(),
    };
    let path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    format!("{prefix}{path}?{query}&X-Amz-Signature={signature}")
}
