//! SigV4 request parsing (`Authorization` header and presigned query), verification (which
//! rebuilds the canonical request) and the canonicalisation helpers, on arbitrary requests.
//!
//! Input: text lines — method, request target (`/path?query` or an absolute URI), then
//! `name: value` header lines. Invalid methods/URIs are skipped; invalid header lines dropped.
//!
//! Properties checked besides "never panics":
//! * `canonical_query_string` is idempotent and emits only unreserved characters, `%XX`,
//!   `=` and `&`; `uri_encode` emits only unreserved characters and `%XX`;
//! * a request signed by `sign_request` (header auth) or `presign_url` (query auth), with the
//!   crate's own signer, parses and verifies with the same secret, in both flavours.
#![no_main]

use coffer_sigv4::{
    EMPTY_SHA256, Flavor, Secret, canonical_query_string, canonical_uri, parse, parse_amz_date,
    presign_url, sign_request, uri_encode, verify,
};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const NOW: &str = "20240315T102030Z";

fn is_canonical_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%')
}

fn check_encoded(s: &str, extra: &[u8]) {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        assert!(
            is_canonical_byte(c) || extra.contains(&c),
            "non-canonical byte {c:#x} in {s:?}"
        );
        if c == b'%' {
            assert!(
                b.len() > i + 2 && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit(),
                "bad escape in {s:?}"
            );
        }
    }
}

/// Names whose values the parser reads as text: keep one valid-text value each for the
/// round trips (the parser rightly rejects duplicates or non-text values of those).
fn parser_reads(name: &str) -> bool {
    name.starts_with("x-amz-") || name == "date" || name == "authorization" || name == "host"
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(Ok(method)) = lines.next().map(|m| Method::from_bytes(m.as_bytes())) else {
        return;
    };
    let Some(Ok(uri)) = lines.next().map(|u| u.parse::<Uri>()) else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut clean = HeaderMap::new();
    for line in lines {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_bytes(v.trim().as_bytes()),
        ) else {
            continue;
        };
        if parser_reads(name.as_str()) {
            if value.to_str().is_ok() && !clean.contains_key(&name) {
                clean.insert(name.clone(), value.clone());
            }
        } else {
            clean.append(name.clone(), value.clone());
        }
        headers.append(name, value);
    }

    let secret = Secret::new(SECRET.to_owned());
    let now = parse_amz_date(NOW).expect("fixed date");
    let path = uri.path();
    let query = uri.query().unwrap_or("");

    // Canonicalisation helpers.
    for flavor in [Flavor::S3, Flavor::Standard] {
        let _ = canonical_uri(path, flavor);
    }
    check_encoded(&uri_encode(data), &[]);
    for (excl, plus) in [(false, false), (true, false), (false, true), (true, true)] {
        let c = canonical_query_string(query, excl, plus);
        check_encoded(&c, b"=&");
        assert_eq!(
            canonical_query_string(&c, excl, plus),
            c,
            "canonical query not idempotent for {query:?}"
        );
    }

    // Parse (and verify) the request as given.
    if let Ok(Some(auth)) = parse(&method, &uri, &headers) {
        let _ = auth.scope();
        let _ = format!("{auth:?}");
        let payload = auth.s3_payload_hash().unwrap_or(EMPTY_SHA256).to_owned();
        for flavor in [Flavor::S3, Flavor::Standard] {
            // At the request's own time (passes the clock checks, so the canonical request is
            // built) and at a fixed time.
            for t in [auth.request_time, now] {
                let _ = verify(&auth, &secret, &method, &uri, &headers, &payload, flavor, t);
            }
        }
    }

    // Round trips through the crate's own signer.
    let q = query.to_ascii_lowercase();
    if q.contains("x-amz-") || q.contains("awsaccesskeyid") || q.contains("signature") {
        return;
    }
    if !clean.contains_key(http::header::HOST)
        && let Some(a) = uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        clean.insert(http::header::HOST, v);
    }
    for (flavor, service) in [(Flavor::S3, "s3"), (Flavor::Standard, "kms")] {
        let mut h = clean.clone();
        let Ok(_sig) = sign_request(
            &method,
            &uri,
            &mut h,
            EMPTY_SHA256,
            "AKIDFUZZ",
            &secret,
            "us-east-1",
            service,
            now,
            None,
            flavor,
        ) else {
            continue;
        };
        let auth = match parse(&method, &uri, &h) {
            Ok(Some(a)) => a,
            other => panic!("signed request does not parse: {other:?}"),
        };
        let payload = match flavor {
            Flavor::S3 => auth
                .s3_payload_hash()
                .expect("signed payload hash")
                .to_owned(),
            Flavor::Standard => EMPTY_SHA256.to_owned(),
        };
        if let Err(e) = verify(&auth, &secret, &method, &uri, &h, &payload, flavor, now) {
            panic!("header-signed request does not verify ({flavor:?}): {e:?}");
        }

        let mut h = clean.clone();
        h.remove(http::header::AUTHORIZATION);
        let url = presign_url(
            &method,
            &uri,
            &h,
            "AKIDFUZZ",
            &secret,
            "us-west-2",
            service,
            now,
            3600,
            None,
            flavor,
        );
        let Ok(u2) = url.parse::<Uri>() else {
            continue;
        };
        let auth = match parse(&method, &u2, &h) {
            Ok(Some(a)) => a,
            other => panic!("presigned URL {url:?} does not parse: {other:?}"),
        };
        let payload = match flavor {
            Flavor::S3 => auth.s3_payload_hash().expect("payload").to_owned(),
            Flavor::Standard => EMPTY_SHA256.to_owned(),
        };
        if let Err(e) = verify(&auth, &secret, &method, &u2, &h, &payload, flavor, now) {
            panic!("presigned URL {url:?} does not verify ({flavor:?}): {e:?}");
        }
    }
});
