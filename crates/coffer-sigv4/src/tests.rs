//! Vectors from AWS documentation, botocore-generated vectors, round trips and negative tests.

use http::{HeaderMap, HeaderValue, Method, Uri};
use time::{Duration, OffsetDateTime};

use crate::*;

fn t(s: &str) -> OffsetDateTime {
    parse_amz_date(s).expect("test date")
}

fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn uri(s: &str) -> Uri {
    s.parse().expect("uri")
}

fn secret(s: &str) -> Secret {
    Secret::new(s.to_owned())
}

fn parsed(m: &Method, u: &Uri, h: &HeaderMap) -> ParsedAuth {
    parse(m, u, h).expect("parse ok").expect("auth present")
}

const IAM_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

// ---------------------------------------------------------------- AWS published examples

/// IAM User Guide, "create-signed-request" example.
#[test]
fn aws_iam_example() {
    let sig = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
    let m = Method::GET;
    let u = uri("/?Action=ListUsers&Version=2010-05-08");
    let authz = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={sig}"
    );
    let h = hm(&[
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("host", "iam.amazonaws.com"),
        ("x-amz-date", "20150830T123600Z"),
        ("authorization", &authz),
    ]);
    let a = parsed(&m, &u, &h);
    assert_eq!(a.access_key_id, "AKIDEXAMPLE");
    assert_eq!(a.scope(), "20150830/us-east-1/iam/aws4_request");
    assert_eq!(a.kind, AuthKind::Header);
    let now = t("20150830T123600Z");
    verify(
        &a,
        &secret(IAM_SECRET),
        &m,
        &u,
        &h,
        EMPTY_SHA256,
        Flavor::Standard,
        now,
    )
    .expect("verifies");

    // Our signer reproduces it.
    let mut h2 = hm(&[
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("host", "iam.amazonaws.com"),
    ]);
    let s = sign_request(
        &m,
        &u,
        &mut h2,
        EMPTY_SHA256,
        "AKIDEXAMPLE",
        &secret(IAM_SECRET),
        "us-east-1",
        "iam",
        now,
        None,
        Flavor::Standard,
    )
    .expect("sign");
    assert_eq!(s, sig);
    assert_eq!(h2.get("authorization").expect("authz"), authz.as_str());
}

/// S3 API reference, "GET Object" with Range.
#[test]
fn aws_s3_get_object_example() {
    let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
    let m = Method::GET;
    let u = uri("/test.txt");
    let authz = format!(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={sig}"
    );
    let h = hm(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY_SHA256),
        ("x-amz-date", "20130524T000000Z"),
        ("authorization", &authz),
    ]);
    let a = parsed(&m, &u, &h);
    assert_eq!(a.s3_payload_hash(), Some(EMPTY_SHA256));
    let now = t("20130524T000000Z");
    verify(
        &a,
        &secret(S3_SECRET),
        &m,
        &u,
        &h,
        EMPTY_SHA256,
        Flavor::S3,
        now,
    )
    .expect("verifies");

    let mut h2 = hm(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("range", "bytes=0-9"),
    ]);
    let s = sign_request(
        &m,
        &u,
        &mut h2,
        EMPTY_SHA256,
        "AKIAIOSFODNN7EXAMPLE",
        &secret(S3_SECRET),
        "us-east-1",
        "s3",
        now,
        None,
        Flavor::S3,
    )
    .expect("sign");
    assert_eq!(s, sig);
}

const S3_PRESIGNED: &str = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

/// S3 API reference, presigned GET example.
#[test]
fn aws_s3_presigned_example() {
    let m = Method::GET;
    let u = uri(S3_PRESIGNED);
    let h = hm(&[("host", "examplebucket.s3.amazonaws.com")]);
    let a = parsed(&m, &u, &h);
    assert_eq!(
        a.kind,
        AuthKind::Presigned {
            expires_secs: 86400
        }
    );
    assert_eq!(a.s3_payload_hash(), Some(UNSIGNED_PAYLOAD));
    let start = t("20130524T000000Z");
    let s = secret(S3_SECRET);
    for now in [
        start,
        start + Duration::hours(23),
        start + Duration::seconds(86400),
    ] {
        verify(&a, &s, &m, &u, &h, UNSIGNED_PAYLOAD, Flavor::S3, now).expect("verifies");
    }
    // No 15-minute skew check for presigned URLs (§1.4).
    let late = start + Duration::seconds(86401);
    match verify(&a, &s, &m, &u, &h, UNSIGNED_PAYLOAD, Flavor::S3, late) {
        Err(AuthError::Expired {
            expires_at,
            server_time,
        }) => {
            assert_eq!(expires_at, start + Duration::days(1));
            assert_eq!(server_time, late);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    // Dated too far in the future.
    assert!(matches!(
        verify(
            &a,
            &s,
            &m,
            &u,
            &h,
            UNSIGNED_PAYLOAD,
            Flavor::S3,
            start - Duration::minutes(16)
        ),
        Err(AuthError::Skewed { .. })
    ));

    let url = presign_url(
        &m,
        &uri("https://examplebucket.s3.amazonaws.com/test.txt"),
        &HeaderMap::new(),
        "AKIAIOSFODNN7EXAMPLE",
        &s,
        "us-east-1",
        "s3",
        start,
        86400,
        None,
        Flavor::S3,
    );
    assert_eq!(
        url,
        format!("https://examplebucket.s3.amazonaws.com{S3_PRESIGNED}")
    );
}

const STREAM_SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const STREAM_SIGS: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

fn stream_request() -> (Method, Uri, HeaderMap) {
    let authz = format!(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature={STREAM_SEED}"
    );
    let h = hm(&[
        ("host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("authorization", &authz),
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("content-length", "66824"),
    ]);
    (Method::PUT, uri("/examplebucket/chunkObject.txt"), h)
}

fn stream_body(sigs: [&str; 3]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(format!("10000;chunk-signature={}\r\n", sigs[0]).as_bytes());
    b.extend(std::iter::repeat_n(b'a', 65536));
    b.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", sigs[1]).as_bytes());
    b.extend(std::iter::repeat_n(b'a', 1024));
    b.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n\r\n", sigs[2]).as_bytes());
    b
}

fn stream_decoder() -> (ChunkedDecoder, SigningKey, ParsedAuth) {
    let (m, u, h) = stream_request();
    let a = parsed(&m, &u, &h);
    let hash = a.s3_payload_hash().expect("hash").to_owned();
    let mode = PayloadMode::from_header(&hash)
        .and_then(|p| p.chunked_mode())
        .expect("streaming");
    assert_eq!(mode, ChunkedMode::SignedPayload);
    let key = verify(
        &a,
        &secret(S3_SECRET),
        &m,
        &u,
        &h,
        &hash,
        Flavor::S3,
        t("20130524T000000Z"),
    )
    .expect("seed verifies");
    let d = ChunkedDecoder::new(
        mode,
        Some(key.clone()),
        &a.signature,
        &a.amz_date,
        &a.scope(),
    )
    .with_decoded_length(66560);
    (d, key, a)
}

/// S3 API reference, streaming PUT with signed chunks (65536 + 1024 bytes of 'a').
#[test]
fn aws_s3_streaming_example() {
    let body = stream_body(STREAM_SIGS);
    assert_eq!(body.len(), 66824);

    // whole body at once
    let (mut d, key, a) = stream_decoder();
    let mut out = Vec::new();
    d.feed(&body, &mut out).expect("feed");
    assert_eq!(d.decoded_len(), 66560);
    assert!(d.finish().expect("finish").is_empty());
    assert_eq!(out.len(), 66560);
    assert!(out.iter().all(|&b| b == b'a'));

    // one byte at a time
    let (mut d, _, _) = stream_decoder();
    let mut out1 = Vec::new();
    for b in &body {
        d.feed(std::slice::from_ref(b), &mut out1)
            .expect("feed byte");
    }
    d.finish().expect("finish");
    assert_eq!(out1, out);

    // irregular splits
    let (mut d, _, _) = stream_decoder();
    let mut out2 = Vec::new();
    let mut i = 0;
    let mut step = 1usize;
    while i < body.len() {
        let end = (i + step).min(body.len());
        d.feed(&body[i..end], &mut out2).expect("feed split");
        i = end;
        step = (step * 7 + 3) % 9001 + 1;
    }
    d.finish().expect("finish");
    assert_eq!(out2, out);

    // The encoder reproduces the exact body.
    let mut enc = ChunkedEncoder::signed(key, &a.signature, &a.amz_date, &a.scope(), false);
    let mut encoded = Vec::new();
    enc.encode_chunk(&out[..65536], &mut encoded);
    enc.encode_chunk(&out[65536..], &mut encoded);
    enc.finish(&[], &mut encoded);
    assert_eq!(encoded, body);
}

#[test]
fn chunk_bad_signature() {
    let mut sigs = STREAM_SIGS;
    let tampered = STREAM_SIGS[1].replace("0055", "0056");
    sigs[1] = &tampered;
    let body = stream_body(sigs);
    let (mut d, _, _) = stream_decoder();
    let mut out = Vec::new();
    assert!(matches!(
        d.feed(&body, &mut out),
        Err(AuthError::BadChunk(_))
    ));
    // sticky failure
    assert_eq!(
        bad_chunk(d.feed(b"", &mut out)),
        "The aws-chunked decoder already failed"
    );
    assert_eq!(
        bad_chunk(d.finish()),
        "The aws-chunked decoder already failed"
    );

    // tampered data byte in the first chunk
    let mut body = stream_body(STREAM_SIGS);
    body[100] = b'b';
    let (mut d, _, _) = stream_decoder();
    assert!(matches!(
        d.feed(&body, &mut Vec::new()),
        Err(AuthError::BadChunk(_))
    ));

    // wrong final-chunk signature
    let mut sigs = STREAM_SIGS;
    sigs[2] = STREAM_SIGS[0];
    let (mut d, _, _) = stream_decoder();
    assert_eq!(
        bad_chunk(d.feed(&stream_body(sigs), &mut Vec::new())),
        CHUNK_SIG_MISMATCH
    );

    // missing signing key
    let (m, u, h) = stream_request();
    let a = parsed(&m, &u, &h);
    let mut d = ChunkedDecoder::new(
        ChunkedMode::SignedPayload,
        None,
        &a.signature,
        &a.amz_date,
        &a.scope(),
    );
    assert_eq!(
        bad_chunk(d.feed(&stream_body(STREAM_SIGS), &mut Vec::new())),
        "The chunk signature could not be verified"
    );

    // unsigned chunk header in signed mode
    let (mut d, _, _) = stream_decoder();
    assert_eq!(
        bad_chunk(d.feed(b"5\r\nhello\r\n", &mut Vec::new())),
        "Missing chunk-signature in signed aws-chunked body"
    );
}

#[test]
fn chunk_truncated_and_framing_errors() {
    let body = stream_body(STREAM_SIGS);
    for cut in [0, 10, 90, 65536 + 85, body.len() - 2, body.len() - 1] {
        let (mut d, _, _) = stream_decoder();
        d.feed(&body[..cut], &mut Vec::new()).expect("prefix ok");
        assert!(
            matches!(d.finish(), Err(AuthError::BadChunk(_))),
            "cut at {cut}"
        );
    }
    // trailing garbage
    let (mut d, _, _) = stream_decoder();
    let mut b = body.clone();
    b.push(b'x');
    assert_eq!(
        bad_chunk(d.feed(&b, &mut Vec::new())),
        "Data after the end of the aws-chunked body"
    );
    // over-long header line
    let (mut d, _, _) = stream_decoder();
    assert_eq!(
        bad_chunk(d.feed(&vec![b'1'; 5000], &mut Vec::new())),
        "aws-chunked header or trailer line too long"
    );
    // bad size / missing CRLF after data
    let mut d = ChunkedDecoder::new(ChunkedMode::UnsignedPayloadTrailer, None, "", "", "");
    assert_eq!(
        bad_chunk(d.feed(b"zz\r\n", &mut Vec::new())),
        "Invalid aws-chunked chunk size"
    );
    let mut d = ChunkedDecoder::new(ChunkedMode::UnsignedPayloadTrailer, None, "", "", "");
    assert_eq!(
        bad_chunk(d.feed(b"2\r\nabXY", &mut Vec::new())),
        "aws-chunked chunk data not followed by CRLF"
    );
    let mut d = ChunkedDecoder::new(ChunkedMode::UnsignedPayloadTrailer, None, "", "", "");
    assert_eq!(
        bad_chunk(d.feed(b"2\nab", &mut Vec::new())),
        "aws-chunked line not terminated by CRLF"
    );
    // decoded length mismatch
    let mut d = ChunkedDecoder::new(ChunkedMode::UnsignedPayloadTrailer, None, "", "", "")
        .with_decoded_length(3);
    assert_eq!(
        bad_chunk(d.feed(b"4\r\nabcd\r\n", &mut Vec::new())),
        "aws-chunked body is longer than x-amz-decoded-content-length"
    );
    let mut d = ChunkedDecoder::new(ChunkedMode::UnsignedPayloadTrailer, None, "", "", "")
        .with_decoded_length(3);
    d.feed(b"2\r\nab\r\n0\r\n\r\n", &mut Vec::new())
        .expect("ok");
    assert_eq!(
        bad_chunk(d.finish()),
        "aws-chunked body is shorter than x-amz-decoded-content-length"
    );
    // trailer in a no-trailer mode
    let (mut d, _, _) = stream_decoder();
    let mut b = stream_body(STREAM_SIGS);
    b.truncate(b.len() - 2);
    b.extend_from_slice(b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    assert_eq!(
        bad_chunk(d.feed(&b, &mut Vec::new())),
        "Unexpected trailer in aws-chunked body"
    );
}

/// Unsigned trailer body exactly as botocore 1.43's `AwsChunkedWrapper` produces it
/// (`AwsChunkedWrapper(BytesIO(b"hello world"), Crc32Checksum, "x-amz-checksum-crc32",
/// chunk_size=4).read()`).
#[test]
fn unsigned_trailer_botocore() {
    let body: &[u8] =
        b"4\r\nhell\r\n4\r\no wo\r\n3\r\nrld\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    for step in [1usize, 2, 3, 5, body.len()] {
        let mut d = ChunkedDecoder::new(ChunkedMode::UnsignedPayloadTrailer, None, "", "", "")
            .with_decoded_length(11);
        let mut out = Vec::new();
        for c in body.chunks(step) {
            d.feed(c, &mut out).expect("feed");
        }
        assert!(d.is_done());
        let tr = d.finish().expect("finish");
        assert_eq!(out, b"hello world");
        assert_eq!(
            tr,
            vec![("x-amz-checksum-crc32".to_owned(), "DUoRhQ==".to_owned())]
        );
    }
    let mut enc = ChunkedEncoder::unsigned_trailer();
    let mut out = Vec::new();
    for c in b"hello world".chunks(4) {
        enc.encode_chunk(c, &mut out);
    }
    enc.finish(&[("x-amz-checksum-crc32", "DUoRhQ==")], &mut out);
    assert_eq!(out, body);
    // Empty body, no trailer.
    let mut d = ChunkedDecoder::new(ChunkedMode::UnsignedPayloadTrailer, None, "", "", "");
    d.feed(b"0\r\n\r\n", &mut Vec::new()).expect("ok");
    assert!(d.finish().expect("finish").is_empty());
}

fn signed_trailer_body(key: &SigningKey, a: &ParsedAuth, data: &[u8]) -> Vec<u8> {
    let mut enc = ChunkedEncoder::signed(key.clone(), &a.signature, &a.amz_date, &a.scope(), true);
    let mut out = Vec::new();
    for c in data.chunks(8192) {
        enc.encode_chunk(c, &mut out);
    }
    enc.finish(&[("x-amz-checksum-crc32", "sOO8/Q==")], &mut out);
    out
}

#[test]
fn signed_trailer_round_trip_and_tamper() {
    let (_, key, a) = stream_decoder();
    let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
    let body = signed_trailer_body(&key, &a, &data);
    let text = String::from_utf8_lossy(&body[body.len() - 130..]).into_owned();
    assert!(text.contains("x-amz-checksum-crc32:sOO8/Q==\r\nx-amz-trailer-signature:"));

    let new = || {
        ChunkedDecoder::new(
            ChunkedMode::SignedPayloadTrailer,
            Some(key.clone()),
            &a.signature,
            &a.amz_date,
            &a.scope(),
        )
    };
    let mut d = new();
    let mut out = Vec::new();
    for b in &body {
        d.feed(std::slice::from_ref(b), &mut out).expect("feed");
    }
    assert_eq!(out, data);
    assert_eq!(
        d.finish().expect("finish"),
        vec![("x-amz-checksum-crc32".to_owned(), "sOO8/Q==".to_owned())]
    );

    // The body is binary: edit it as bytes (a lossy UTF-8 round trip would corrupt the chunk
    // data and fail on the chunk signature, never reaching the trailer).
    let at = |needle: &[u8]| {
        body.windows(needle.len())
            .rposition(|w| w == needle)
            .expect("needle in body")
    };
    // Tampered trailer value.
    let mut b = body.clone();
    let pos = at(b"sOO8/Q==");
    b[pos..pos + 8].copy_from_slice(b"AAAAAA==");
    let mut d = new();
    assert_eq!(
        bad_chunk(d.feed(&b, &mut Vec::new())),
        "The request signature we calculated does not match the signature you provided (aws-chunked trailer)."
    );
    // Tampered trailer signature.
    let mut b = body.clone();
    let pos = b.len() - 5;
    b[pos] = if b[pos] == b'0' { b'1' } else { b'0' };
    let mut d = new();
    assert_eq!(
        bad_chunk(d.feed(&b, &mut Vec::new())),
        "The request signature we calculated does not match the signature you provided (aws-chunked trailer)."
    );
    // Missing trailer signature.
    let mut stripped = body[..at(b"x-amz-trailer-signature")].to_vec();
    stripped.extend_from_slice(b"\r\n");
    let mut d = new();
    assert_eq!(
        bad_chunk(d.feed(&stripped, &mut Vec::new())),
        "Missing x-amz-trailer-signature"
    );
    // Truncated before the empty line.
    let mut d = new();
    d.feed(&body[..body.len() - 2], &mut Vec::new())
        .expect("prefix");
    assert_eq!(
        bad_chunk(d.finish()),
        "The aws-chunked body ended before its final chunk (incomplete body)"
    );
}

// ---------------------------------------------------------------- botocore vectors
//
// Generated with botocore 1.43.11 by /tmp/sigv4gen/gen.py (kept here in essence):
//
//   FIXED = datetime.datetime(2024, 3, 15, 10, 20, 30)
//   req = AWSRequest(method=..., url=..., headers=..., data=...)
//   req.context['payload_signing_enabled'] = True
//   with mock.patch.object(botocore.auth, 'get_current_datetime', return_value=FIXED):
//       signer.add_auth(req)
//
// creds = Credentials('AKIDBOTOCORE', BOTO_SECRET) or, with token,
// Credentials('ASIABOTOCORE', BOTO_SECRET, BOTO_TOKEN); signers: SigV4Auth(creds, 'kms',
// 'eu-west-1'), SigV4Auth(creds, 'iam', 'us-east-1'), S3SigV4Auth(creds, 's3', 'us-east-1'),
// S3SigV4QueryAuth(tcreds, 's3', 'us-west-2', expires=3600). The host header is botocore's
// `_host_from_url(url)`, which its HTTP client sends.

const BOTO_SECRET: &str = "botocoreSecretKey/+EXAMPLE0123456789abcdef";
const BOTO_TOKEN: &str = "FQoGZXIvYXdzEXAMPLETOKEN//+==";
const BOTO_DATE: &str = "20240315T102030Z";

#[test]
fn botocore_kms_with_token() {
    let body = br#"{"KeyId":"alias/test","Plaintext":"aGVsbG8="}"#;
    let authz = "AWS4-HMAC-SHA256 Credential=ASIABOTOCORE/20240315/eu-west-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=6d029d70c45f274c82b3ca50af45df51f0d3ef6b428c9b474980207639b03de4";
    let m = Method::POST;
    let u = uri("/");
    let h = hm(&[
        ("host", "localhost:4566"),
        ("x-amz-target", "TrentService.Encrypt"),
        ("content-type", "application/x-amz-json-1.1"),
        ("user-agent", "Boto3/1.0"),
        ("x-amz-date", BOTO_DATE),
        ("x-amz-security-token", BOTO_TOKEN),
        ("authorization", authz),
    ]);
    let a = parsed(&m, &u, &h);
    assert_eq!(a.security_token.as_deref(), Some(BOTO_TOKEN));
    assert_eq!(a.service, "kms");
    let now = t(BOTO_DATE) + Duration::minutes(14);
    verify(
        &a,
        &secret(BOTO_SECRET),
        &m,
        &u,
        &h,
        &sha256_hex(body),
        Flavor::Standard,
        now,
    )
    .expect("verifies");
    // Wrong body hash.
    assert!(matches!(
        verify(
            &a,
            &secret(BOTO_SECRET),
            &m,
            &u,
            &h,
            EMPTY_SHA256,
            Flavor::Standard,
            now
        ),
        Err(AuthError::SignatureMismatch { .. })
    ));

    let mut h2 = hm(&[
        ("host", "localhost:4566"),
        ("x-amz-target", "TrentService.Encrypt"),
        ("content-type", "application/x-amz-json-1.1"),
        ("user-agent", "Boto3/1.0"),
    ]);
    sign_request(
        &m,
        &u,
        &mut h2,
        &sha256_hex(body),
        "ASIABOTOCORE",
        &secret(BOTO_SECRET),
        "eu-west-1",
        "kms",
        t(BOTO_DATE),
        Some(BOTO_TOKEN),
        Flavor::Standard,
    )
    .expect("sign");
    assert_eq!(h2.get("authorization").expect("authz"), authz);
}

#[test]
fn botocore_iam_path_normalisation() {
    let body = b"Action=ListUsers&Version=2010-05-08";
    let authz = "AWS4-HMAC-SHA256 Credential=AKIDBOTOCORE/20240315/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=9aaf49c6e7dd3b9a03655c0dc8c724915dc6f44a85853c3d7cf6f3b44a886415";
    let m = Method::POST;
    let u = uri("/a/./b/../c//d/");
    let h = hm(&[
        ("host", "coffer.local:8443"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("x-amz-date", BOTO_DATE),
        ("authorization", authz),
    ]);
    let a = parsed(&m, &u, &h);
    let s = secret(BOTO_SECRET);
    verify(
        &a,
        &s,
        &m,
        &u,
        &h,
        &sha256_hex(body),
        Flavor::Standard,
        t(BOTO_DATE),
    )
    .expect("verifies");
    // The S3 flavour (no normalisation) must not verify it.
    assert!(matches!(
        verify(
            &a,
            &s,
            &m,
            &u,
            &h,
            &sha256_hex(body),
            Flavor::S3,
            t(BOTO_DATE)
        ),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

#[test]
fn botocore_s3_put() {
    let body = b"hello world";
    let authz = "AWS4-HMAC-SHA256 Credential=AKIDBOTOCORE/20240315/us-east-1/s3/aws4_request, SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-foo, Signature=74927689eda1a782b382dec6280cf9c3405f92e441e3896e4c49e2175c85426e";
    let m = Method::PUT;
    let u = uri("/my-bucket/dir/a%20b%2Bc~d%21.txt?partNumber=2&uploadId=abc%2Fdef%20g");
    let base = [
        ("host", "127.0.0.1:9000"),
        ("content-type", "text/plain"),
        ("x-amz-meta-foo", "  spaced    value  "),
        ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ];
    let mut h = hm(&base);
    h.insert("x-amz-date", HeaderValue::from_static(BOTO_DATE));
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_str(&sha256_hex(body)).expect("v"),
    );
    h.insert("authorization", HeaderValue::from_static(authz));
    let a = parsed(&m, &u, &h);
    let hash = a.s3_payload_hash().expect("hash").to_owned();
    assert_eq!(
        PayloadMode::from_header(&hash),
        Some(PayloadMode::Sha256(sha256_hex(body)))
    );
    check_content_sha256(&hash, &sha256_hex(body)).expect("body hash");
    assert!(matches!(
        check_content_sha256(&hash, EMPTY_SHA256),
        Err(AuthError::ContentSha256Mismatch { .. })
    ));
    verify(
        &a,
        &secret(BOTO_SECRET),
        &m,
        &u,
        &h,
        &hash,
        Flavor::S3,
        t(BOTO_DATE),
    )
    .expect("ok");

    let mut h2 = hm(&base);
    sign_request(
        &m,
        &u,
        &mut h2,
        &sha256_hex(body),
        "AKIDBOTOCORE",
        &secret(BOTO_SECRET),
        "us-east-1",
        "s3",
        t(BOTO_DATE),
        None,
        Flavor::S3,
    )
    .expect("sign");
    assert_eq!(h2.get("authorization").expect("authz"), authz);
}

#[test]
fn botocore_s3_presigned_with_token() {
    let full = "https://my-bucket.s3.coffer.local/some/key%20with%20space?versionId=v1&response-content-type=text%2Fplain&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIABOTOCORE%2F20240315%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Date=20240315T102030Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLETOKEN%2F%2F%2B%3D%3D&X-Amz-Signature=9132b0f08c6d1ac94e293a745ac2b5abeaea2d58561f239f7cab5b0fee7a2978";
    let m = Method::GET;
    let full_uri = uri(full);
    let u = uri(full_uri.path_and_query().expect("pq").as_str());
    let h = hm(&[("host", "my-bucket.s3.coffer.local")]);
    let a = parsed(&m, &u, &h);
    assert_eq!(a.security_token.as_deref(), Some(BOTO_TOKEN));
    assert_eq!(a.region, "us-west-2");
    let s = secret(BOTO_SECRET);
    let now = t(BOTO_DATE) + Duration::minutes(59);
    verify(&a, &s, &m, &u, &h, UNSIGNED_PAYLOAD, Flavor::S3, now).expect("ok");
    // Absolute-form URI without a Host header (HTTP/2 style) also verifies.
    verify(
        &a,
        &s,
        &m,
        &full_uri,
        &HeaderMap::new(),
        UNSIGNED_PAYLOAD,
        Flavor::S3,
        now,
    )
    .expect("ok via authority");

    let url = presign_url(
        &m,
        &uri(
            "https://my-bucket.s3.coffer.local/some/key%20with%20space?versionId=v1&response-content-type=text%2Fplain",
        ),
        &HeaderMap::new(),
        "ASIABOTOCORE",
        &s,
        "us-west-2",
        "s3",
        t(BOTO_DATE),
        3600,
        Some(BOTO_TOKEN),
        Flavor::S3,
    );
    assert_eq!(url, full);
}

// ---------------------------------------------------------------- round trips

struct Req {
    m: Method,
    u: Uri,
    h: HeaderMap,
    hash: String,
    flavor: Flavor,
}

const AK: &str = "AKIAROUNDTRIP";
const SK: &str = "roundTripSecret/abc+def";

fn signed(
    m: Method,
    target: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    flavor: Flavor,
    token: Option<&str>,
    now: OffsetDateTime,
) -> Req {
    let u = uri(target);
    let mut h = hm(extra);
    let hash = sha256_hex(body);
    let service = if flavor == Flavor::S3 { "s3" } else { "kms" };
    sign_request(
        &m,
        &u,
        &mut h,
        &hash,
        AK,
        &secret(SK),
        "eu-central-1",
        service,
        now,
        token,
        flavor,
    )
    .expect("sign");
    Req {
        m,
        u,
        h,
        hash,
        flavor,
    }
}

fn check(r: &Req, now: OffsetDateTime) -> Result<SigningKey, AuthError> {
    let a = parse(&r.m, &r.u, &r.h)?.ok_or_else(|| AuthError::Malformed("none".into()))?;
    verify(&a, &secret(SK), &r.m, &r.u, &r.h, &r.hash, r.flavor, now)
}

/// The message of the `AuthError::BadChunk` that `r` must be.
fn bad_chunk<T>(r: Result<T, AuthError>) -> String {
    match r {
        Err(AuthError::BadChunk(m)) => m,
        Err(e) => panic!("expected BadChunk, got {e:?}"),
        Ok(_) => panic!("expected BadChunk, got Ok"),
    }
}

const CHUNK_SIG_MISMATCH: &str = "The request signature we calculated does not match the signature you provided (aws-chunked chunk).";

fn now0() -> OffsetDateTime {
    t("20240601T120000Z")
}

#[test]
fn round_trips() {
    let cases: &[(&str, Flavor)] = &[
        (
            "http://s3.local:9000/bucket/k%C3%A9y%20x/y%2Bz?list-type=2&prefix=a%2Fb&delimiter=%2F",
            Flavor::S3,
        ),
        ("/bucket/key?uploads", Flavor::S3),
        ("/bucket/a//b/../c", Flavor::S3),
        ("/", Flavor::Standard),
        (
            "/x/../y/./%7Ez%20q?b=2&a=1&a=0&empty=&flag",
            Flavor::Standard,
        ),
    ];
    for (target, flavor) in cases {
        for token in [None, Some("tok+/=")] {
            let r = signed(
                Method::POST,
                target,
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", "TrentService.Encrypt"),
                    ("user-agent", "test"),
                ],
                b"{}",
                *flavor,
                token,
                now0(),
            );
            check(&r, now0()).unwrap_or_else(|e| panic!("{target} {flavor:?}: {e:?}"));
        }
    }
    // Presigned round trips for both flavours.
    for flavor in [Flavor::S3, Flavor::Standard] {
        let url = presign_url(
            &Method::GET,
            &uri("https://host.example:8443/p/a%20th?x=1"),
            &HeaderMap::new(),
            AK,
            &secret(SK),
            "eu-central-1",
            "s3",
            now0(),
            604800,
            Some("tok"),
            flavor,
        );
        let u = uri(&url);
        let pq = uri(u.path_and_query().expect("pq").as_str());
        let h = hm(&[("host", "host.example:8443")]);
        let a = parsed(&Method::GET, &pq, &h);
        assert_eq!(
            a.kind,
            AuthKind::Presigned {
                expires_secs: 604800
            }
        );
        let hash = if flavor == Flavor::S3 {
            UNSIGNED_PAYLOAD
        } else {
            EMPTY_SHA256
        };
        verify(
            &a,
            &secret(SK),
            &Method::GET,
            &pq,
            &h,
            hash,
            flavor,
            now0() + Duration::days(7),
        )
        .expect("presigned ok");
    }
}

#[test]
fn date_header_fallback() {
    // botocore uses the Date header (RFC 1123) when the request has one.
    let u = uri("/");
    let mut h = hm(&[
        ("host", "kms.local"),
        ("date", "Sat, 01 Jun 2024 12:00:00 GMT"),
    ]);
    let hash = EMPTY_SHA256;
    // Sign via the string-to-sign machinery directly: x-amz-date absent, date signed.
    let signed_headers = vec!["date".to_owned(), "host".to_owned()];
    let cr = crate::canonical::canonical_request(&crate::canonical::CanonicalInput {
        method: &Method::GET,
        path: "/",
        query: "",
        uri: &u,
        headers: &h,
        signed_headers: &signed_headers,
        payload_hash: hash,
        flavor: Flavor::Standard,
        exclude_signature: false,
        plus_as_space: false,
    });
    let sts = string_to_sign(
        "20240601T120000Z",
        "20240601/us-east-1/kms/aws4_request",
        &cr,
    );
    let sig =
        SigningKey::derive(&secret(SK), "20240601", "us-east-1", "kms").sign_hex(sts.as_bytes());
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={AK}/20240601/us-east-1/kms/aws4_request, SignedHeaders=date;host, Signature={sig}"
        ))
        .expect("v"),
    );
    let a = parsed(&Method::GET, &u, &h);
    assert_eq!(a.amz_date, "20240601T120000Z");
    verify(
        &a,
        &secret(SK),
        &Method::GET,
        &u,
        &h,
        hash,
        Flavor::Standard,
        now0(),
    )
    .expect("ok");
}

#[test]
fn plus_in_query() {
    // Client encodes '+' as %2B but sends a literal '+': canonical %2B on both sides.
    let r = signed(
        Method::GET,
        "/b/k?q=a%2Bb",
        &[("host", "h")],
        b"",
        Flavor::S3,
        None,
        now0(),
    );
    let sent = Req {
        u: uri("/b/k?q=a+b"),
        ..r
    };
    check(&sent, now0()).expect("plus as literal");
    // Client meant a space (form encoding) and signed %20: accepted by the fallback.
    let r = signed(
        Method::GET,
        "/b/k?q=a%20b",
        &[("host", "h")],
        b"",
        Flavor::S3,
        None,
        now0(),
    );
    let sent = Req {
        u: uri("/b/k?q=a+b"),
        ..r
    };
    check(&sent, now0()).expect("plus as space");
    // But not anything else.
    let r = signed(
        Method::GET,
        "/b/k?q=a%20b",
        &[("host", "h")],
        b"",
        Flavor::S3,
        None,
        now0(),
    );
    let sent = Req {
        u: uri("/b/k?q=a+c"),
        ..r
    };
    assert!(matches!(
        check(&sent, now0()),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

#[test]
fn cache_and_redaction() {
    let cache = SigningKeyCache::new();
    let r = signed(
        Method::GET,
        "/",
        &[("host", "h")],
        b"",
        Flavor::Standard,
        None,
        now0(),
    );
    let a = parsed(&r.m, &r.u, &r.h);
    for _ in 0..3 {
        verify_with_cache(
            &a,
            &secret(SK),
            &r.m,
            &r.u,
            &r.h,
            &r.hash,
            r.flavor,
            now0(),
            Some(&cache),
        )
        .expect("ok");
    }
    assert_eq!(cache.len(), 1);
    // Wrong secret is a different cache entry and fails.
    assert!(matches!(
        verify_with_cache(
            &a,
            &secret("nope"),
            &r.m,
            &r.u,
            &r.h,
            &r.hash,
            r.flavor,
            now0(),
            Some(&cache)
        ),
        Err(AuthError::SignatureMismatch { .. })
    ));
    assert_eq!(cache.len(), 2);

    let s = secret("super-secret-value");
    assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    let k = SigningKey::derive(&s, "20240101", "r", "s");
    assert!(!format!("{k:?}").contains("super"));
    assert!(!format!("{cache:?}").contains("super"));
    let r = signed(
        Method::GET,
        "/",
        &[("host", "h")],
        b"",
        Flavor::Standard,
        Some("SESSIONTOKEN123"),
        now0(),
    );
    let a = parsed(&r.m, &r.u, &r.h);
    assert!(!format!("{a:?}").contains("SESSIONTOKEN123"));
}

// ---------------------------------------------------------------- negative tests

#[test]
fn wrong_secret_and_tampering() {
    let r = signed(
        Method::POST,
        "/bucket/key?acl=&x=1",
        &[
            ("host", "h"),
            ("x-amz-meta-a", "1"),
            ("content-type", "text/plain"),
        ],
        b"data",
        Flavor::S3,
        None,
        now0(),
    );
    check(&r, now0()).expect("baseline");
    let a = parsed(&r.m, &r.u, &r.h);
    match verify(
        &a,
        &secret("wrong"),
        &r.m,
        &r.u,
        &r.h,
        &r.hash,
        r.flavor,
        now0(),
    ) {
        Err(AuthError::SignatureMismatch {
            canonical_request,
            string_to_sign,
        }) => {
            assert!(canonical_request.starts_with("POST\n/bucket/key\nacl=&x=1\n"));
            assert!(string_to_sign.starts_with("AWS4-HMAC-SHA256\n20240601T120000Z\n"));
        }
        other => panic!("{other:?}"),
    }
    // tampered signed header
    let mut h = r.h.clone();
    h.insert("x-amz-meta-a", HeaderValue::from_static("2"));
    assert!(matches!(
        check(
            &Req {
                h,
                ..signed_clone(&r)
            },
            now0()
        ),
        Err(AuthError::SignatureMismatch { .. })
    ));
    // tampered query / path / method
    for (m, u) in [
        (Method::POST, "/bucket/key?acl=&x=2"),
        (Method::POST, "/bucket/key?acl=&x=1&y=1"),
        (Method::POST, "/bucket/key2?acl=&x=1"),
        (Method::PUT, "/bucket/key?acl=&x=1"),
    ] {
        let t2 = Req {
            m,
            u: uri(u),
            ..signed_clone(&r)
        };
        assert!(
            matches!(check(&t2, now0()), Err(AuthError::SignatureMismatch { .. })),
            "{u}"
        );
    }
    // tampered payload hash
    let t2 = Req {
        hash: sha256_hex(b"other"),
        ..signed_clone(&r)
    };
    assert!(matches!(
        check(&t2, now0()),
        Err(AuthError::SignatureMismatch { .. })
    ));
}

fn signed_clone(r: &Req) -> Req {
    Req {
        m: r.m.clone(),
        u: r.u.clone(),
        h: r.h.clone(),
        hash: r.hash.clone(),
        flavor: r.flavor,
    }
}

#[test]
fn unsigned_headers() {
    let r = signed(
        Method::GET,
        "/b/k",
        &[("host", "h")],
        b"",
        Flavor::S3,
        None,
        now0(),
    );
    let mut h = r.h.clone();
    h.insert(
        "x-amz-server-side-encryption",
        HeaderValue::from_static("aws:kms"),
    );
    h.insert("x-amz-meta-z", HeaderValue::from_static("1"));
    h.insert("x-amzn-trace-id", HeaderValue::from_static("Root=1")); // not x-amz-
    h.insert("user-agent", HeaderValue::from_static("ua")); // blacklisted: fine
    assert_eq!(
        check(
            &Req {
                h,
                ..signed_clone(&r)
            },
            now0()
        )
        .map(|_| ()),
        Err(AuthError::HeadersNotSigned(vec![
            "x-amz-meta-z".to_owned(),
            "x-amz-server-side-encryption".to_owned()
        ]))
    );
    // host not signed
    let mut h = hm(&[("host", "h"), ("x-amz-date", "20240601T120000Z")]);
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={AK}/20240601/eu-central-1/s3/aws4_request, SignedHeaders=x-amz-date, Signature={}",
            "0".repeat(64)
        ))
        .expect("v"),
    );
    assert_eq!(
        check(
            &Req {
                h,
                ..signed_clone(&r)
            },
            now0()
        )
        .map(|_| ()),
        Err(AuthError::HeadersNotSigned(vec!["host".to_owned()]))
    );
}

#[test]
fn clock_skew() {
    let r = signed(
        Method::GET,
        "/",
        &[("host", "h")],
        b"",
        Flavor::Standard,
        None,
        now0(),
    );
    for d in [-15, -14, 0, 14, 15] {
        check(&r, now0() + Duration::minutes(d)).unwrap_or_else(|e| panic!("{d}: {e:?}"));
    }
    for d in [-16, 16] {
        let now = now0() + Duration::minutes(d);
        assert_eq!(
            check(&r, now).map(|_| ()),
            Err(AuthError::Skewed {
                request_time: now0(),
                server_time: now
            })
        );
    }
    assert_eq!(
        kms_skew_message(t("20170111T204052Z"), t("20170111T230949Z")),
        "Signature expired: 20170111T204052Z is now earlier than 20170111T225449Z (20170111T230949Z - 15 min.)"
    );
    assert_eq!(
        kms_skew_message(t("20170111T233000Z"), t("20170111T230949Z")),
        "Signature not yet current: 20170111T233000Z is still later than 20170111T232449Z (20170111T230949Z + 15 min.)"
    );
}

fn parse_err(target: &str, headers: &[(&str, &str)]) -> AuthError {
    parse(&Method::GET, &uri(target), &hm(headers)).expect_err("should fail")
}

#[test]
fn presigned_param_errors() {
    let base = S3_PRESIGNED;
    let expires_big = base.replace("X-Amz-Expires=86400", "X-Amz-Expires=604801");
    assert_eq!(
        parse_err(&expires_big, &[]),
        AuthError::QueryParams("X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds".to_owned())
    );
    let huge = base.replace(
        "X-Amz-Expires=86400",
        "X-Amz-Expires=99999999999999999999999",
    );
    assert!(matches!(parse_err(&huge, &[]), AuthError::QueryParams(_)));
    for bad in ["X-Amz-Expires=0", "X-Amz-Expires=-1", "X-Amz-Expires=abc"] {
        let q = base.replace("X-Amz-Expires=86400", bad);
        assert!(
            matches!(parse_err(&q, &[]), AuthError::QueryParams(_)),
            "{bad}"
        );
    }
    let ok = base.replace("X-Amz-Expires=86400", "X-Amz-Expires=604800");
    assert!(parse(&Method::GET, &uri(&ok), &HeaderMap::new()).is_ok());

    let missing = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";
    for p in [
        "X-Amz-Expires=86400&",
        "X-Amz-Date=20130524T000000Z&",
        "X-Amz-SignedHeaders=host&",
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&",
    ] {
        let q = base.replace(p, "");
        assert_eq!(
            parse_err(&q, &[]),
            AuthError::QueryParams(missing.to_owned()),
            "{p}"
        );
    }
    let q = base.replace("&X-Amz-Signature=", "&X-Amz-Foo=");
    assert_eq!(
        parse_err(&q, &[]),
        AuthError::QueryParams(missing.to_owned())
    );

    let q = base.replace("aws4_request", "aws4_reques");
    assert_eq!(
        parse_err(&q, &[]),
        AuthError::QueryParams("Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".".to_owned())
    );
    let q = base.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130524");
    assert!(matches!(parse_err(&q, &[]), AuthError::QueryParams(_)));
    let q = base.replace("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z");
    assert!(matches!(parse_err(&q, &[]), AuthError::QueryParams(_)));
    let q = base.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256");
    assert!(matches!(
        parse_err(&q, &[]),
        AuthError::UnsupportedAlgorithm(_)
    ));
    let q = format!("{base}&X-Amz-Date=20130524T000000Z");
    assert!(matches!(parse_err(&q, &[]), AuthError::QueryParams(_)));
    // Both mechanisms at once.
    assert!(matches!(
        parse_err(base, &[("authorization", "AWS4-HMAC-SHA256 Credential=x")]),
        AuthError::Malformed(_)
    ));
    // SigV2 presigned.
    assert!(matches!(
        parse_err("/b/k?AWSAccessKeyId=AK&Expires=1&Signature=abc", &[]),
        AuthError::UnsupportedAlgorithm(_)
    ));
}

#[test]
fn malformed_authorization() {
    let sig = "0".repeat(64);
    let date = ("x-amz-date", "20130524T000000Z");
    let good_cred = "Credential=AK/20130524/us-east-1/s3/aws4_request";
    let cases: Vec<String> = vec![
        format!("AWS4-HMAC-SHA256 {good_cred}, SignedHeaders=host"),
        format!("AWS4-HMAC-SHA256 SignedHeaders=host, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 {good_cred}, Signature={sig}"),
        "AWS4-HMAC-SHA256".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_reques, SignedHeaders=host, Signature={sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3, SignedHeaders=host, Signature={sig}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Credential=AK/2013-05-24/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}"
        ),
        format!("AWS4-HMAC-SHA256 {good_cred}, SignedHeaders=host, Signature=abc"),
        format!(
            "AWS4-HMAC-SHA256 {good_cred}, SignedHeaders=host, Signature={}",
            "g".repeat(64)
        ),
        format!("AWS4-HMAC-SHA256 {good_cred}, SignedHeaders=host;;x, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 {good_cred}, SignedHeaders=, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 {good_cred}, {good_cred}, SignedHeaders=host, Signature={sig}"),
        format!("AWS4-HMAC-SHA256 {good_cred}, SignedHeaders=host, garbage, Signature={sig}"),
        format!(
            "AWS4-HMAC-SHA256 Credential=AK/20130525/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}"
        ),
    ];
    for c in &cases {
        assert!(
            matches!(
                parse_err("/", &[("authorization", c), date]),
                AuthError::Malformed(_)
            ),
            "{c}"
        );
    }
    let e = parse_err("/", &[("authorization", &cases[0]), date]);
    assert_eq!(
        e,
        AuthError::Malformed("Authorization header requires 'Signature' parameter.".to_owned())
    );
    // No date at all / bad date.
    let full = format!("AWS4-HMAC-SHA256 {good_cred}, SignedHeaders=host, Signature={sig}");
    assert!(matches!(
        parse_err("/", &[("authorization", &full)]),
        AuthError::Malformed(_)
    ));
    assert!(matches!(
        parse_err(
            "/",
            &[
                ("authorization", &full),
                ("x-amz-date", "2013-05-24T00:00:00Z")
            ]
        ),
        AuthError::Malformed(_)
    ));
    // Unsupported algorithms.
    for a in [
        format!("AWS4-ECDSA-P256-SHA256 {good_cred}, SignedHeaders=host, Signature={sig}"),
        "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=".to_owned(),
        "Bearer abc".to_owned(),
    ] {
        assert!(
            matches!(
                parse_err("/", &[("authorization", &a), date]),
                AuthError::UnsupportedAlgorithm(_)
            ),
            "{a}"
        );
    }
    // Tolerated variations: no space after commas, extra spaces, uppercase hex.
    let ok = format!(
        "AWS4-HMAC-SHA256  {good_cred},SignedHeaders=host ,  Signature={}",
        "AB".repeat(32)
    );
    let a = parse(
        &Method::GET,
        &uri("/"),
        &hm(&[("authorization", &ok), date]),
    )
    .expect("ok")
    .expect("some");
    assert_eq!(a.signature, "ab".repeat(32));
    // Anonymous.
    assert!(
        parse(&Method::GET, &uri("/b/k?x=1"), &hm(&[("host", "h")]))
            .expect("ok")
            .is_none()
    );
}

#[test]
fn payload_modes() {
    assert_eq!(
        PayloadMode::from_header("UNSIGNED-PAYLOAD"),
        Some(PayloadMode::Unsigned)
    );
    assert_eq!(
        PayloadMode::from_header("STREAMING-UNSIGNED-PAYLOAD-TRAILER")
            .and_then(|m| m.chunked_mode()),
        Some(ChunkedMode::UnsignedPayloadTrailer)
    );
    assert_eq!(
        PayloadMode::from_header("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
        Some(PayloadMode::StreamingEcdsa)
    );
    assert_eq!(PayloadMode::from_header("nope"), None);
    for m in [
        ChunkedMode::SignedPayload,
        ChunkedMode::SignedPayloadTrailer,
        ChunkedMode::UnsignedPayloadTrailer,
    ] {
        assert_eq!(
            ChunkedMode::from_content_sha256(m.content_sha256()),
            Some(m)
        );
    }
}

#[test]
fn presigned_tamper_and_payload_rule() {
    let m = Method::GET;
    let h = hm(&[("host", "examplebucket.s3.amazonaws.com")]);
    let s = secret(S3_SECRET);
    let now = t("20130524T000000Z");
    for (from, to) in [
        ("X-Amz-Expires=86400", "X-Amz-Expires=86399"),
        ("/test.txt", "/test2.txt"),
        (
            "X-Amz-SignedHeaders=host",
            "X-Amz-SignedHeaders=host&extra=1",
        ),
    ] {
        let u = uri(&S3_PRESIGNED.replace(from, to));
        let a = parsed(&m, &u, &h);
        assert!(
            matches!(
                verify(&a, &s, &m, &u, &h, UNSIGNED_PAYLOAD, Flavor::S3, now),
                Err(AuthError::SignatureMismatch { .. })
            ),
            "{to}"
        );
    }
    // Wrong host.
    let u = uri(S3_PRESIGNED);
    let h2 = hm(&[("host", "evil.s3.amazonaws.com")]);
    let a = parsed(&m, &u, &h2);
    assert!(matches!(
        verify(&a, &s, &m, &u, &h2, UNSIGNED_PAYLOAD, Flavor::S3, now),
        Err(AuthError::SignatureMismatch { .. })
    ));
    // An unsigned x-amz-content-sha256 header on a presigned request does not change the
    // payload hash (and is tolerated).
    let h3 = hm(&[
        ("host", "examplebucket.s3.amazonaws.com"),
        ("x-amz-content-sha256", EMPTY_SHA256),
    ]);
    let a = parsed(&m, &u, &h3);
    assert_eq!(a.s3_payload_hash(), Some(UNSIGNED_PAYLOAD));
    verify(&a, &s, &m, &u, &h3, UNSIGNED_PAYLOAD, Flavor::S3, now).expect("ok");
}

/// Deterministic pseudo-random garbage must never panic the parser or the decoder.
#[test]
fn garbage_does_not_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"0123456789abcdefABCDEF;=,/ \r\n:-chunk-signatureCredentialSignedHeadersSignatureAWS4-HMAC-SHA256x-amz-trailer-signature";
    let valid = stream_body(STREAM_SIGS);
    for round in 0..400 {
        let len = (next() % 200) as usize;
        let junk: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        for mode in [
            ChunkedMode::SignedPayload,
            ChunkedMode::SignedPayloadTrailer,
            ChunkedMode::UnsignedPayloadTrailer,
        ] {
            let mut d = ChunkedDecoder::new(mode, None, "", "", "");
            let _ = d.feed(&junk, &mut Vec::new());
            let _ = d.finish();
        }
        // Mutate one byte of a valid body.
        let mut b = valid[..(valid.len().min(300))].to_vec();
        let i = (next() % b.len() as u64) as usize;
        b[i] = junk.first().copied().unwrap_or(b'x');
        let (mut d, _, _) = stream_decoder();
        let _ = d.feed(&b, &mut Vec::new());
        let _ = d.finish();

        let authz = format!("AWS4-HMAC-SHA256 {}", String::from_utf8_lossy(&junk));
        if let Ok(v) = HeaderValue::from_str(&authz) {
            let mut h = hm(&[("x-amz-date", "20130524T000000Z")]);
            h.insert("authorization", v);
            let _ = parse(&Method::GET, &uri("/"), &h);
        }
        let q = String::from_utf8_lossy(&junk)
            .replace([' ', '\\', '\r', '\n'], "")
            .replace(',', "&");
        if let Ok(u) = format!("/?X-Amz-Algorithm=AWS4-HMAC-SHA256&{q}").parse::<Uri>() {
            let _ = parse(&Method::GET, &u, &HeaderMap::new());
        }
        let _ = round;
    }
}

/// A server that drops a signed header re-signs the request so that a second verifier accepts
/// it with the same key, date and scope; the original signature no longer matches.
#[test]
fn resign_without_a_signed_header() {
    let now = OffsetDateTime::now_utc();
    let m = Method::GET;
    let u = uri("/bucket/key");
    let mut h = hm(&[("host", "localhost:9000"), ("range", "bytes=abc")]);
    let sec = secret("resign-secret");
    sign_request(
        &m,
        &u,
        &mut h,
        EMPTY_SHA256,
        "AKIARESIGN",
        &sec,
        "us-east-1",
        "s3",
        now,
        Some("token-1"),
        Flavor::S3,
    )
    .expect("sign");
    let auth = parse(&m, &u, &h).expect("parse").expect("auth");
    assert!(auth.signed_headers.iter().any(|s| s == "range"));
    verify(&auth, &sec, &m, &u, &h, EMPTY_SHA256, Flavor::S3, now).expect("original");

    h.remove("range");
    assert!(matches!(
        verify(&auth, &sec, &m, &u, &h, EMPTY_SHA256, Flavor::S3, now),
        Err(AuthError::SignatureMismatch { .. })
    ));
    let signed: Vec<String> = auth
        .signed_headers
        .iter()
        .filter(|s| *s != "range")
        .cloned()
        .collect();
    resign_header_auth(
        &auth,
        &m,
        &u,
        &mut h,
        &signed,
        EMPTY_SHA256,
        &sec,
        Flavor::S3,
    )
    .expect("resign");
    let again = parse(&m, &u, &h).expect("parse").expect("auth");
    assert_eq!(again.access_key_id, "AKIARESIGN");
    assert_eq!(again.amz_date, auth.amz_date);
    assert_eq!(again.security_token.as_deref(), Some("token-1"));
    assert!(!again.signed_headers.iter().any(|s| s == "range"));
    verify(&again, &sec, &m, &u, &h, EMPTY_SHA256, Flavor::S3, now).expect("re-signed");
}
