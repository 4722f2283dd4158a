//! Authentication failures over HTTP, in each protocol's own error shape (the gateway's
//! `auth_error` / `credential_error` mapping), and the not-yet-implemented KMS and S3 answers.

mod common;

use common::*;
use http::{HeaderMap, Method};
use time::{Duration, OffsetDateTime};

fn wrong_secret() -> Creds {
    Creds::new(ROOT_AK, "thisIsNotTheRootSecretAtAll0123456789abc")
}

fn unknown_key() -> Creds {
    Creds::new("AKIAUNKNOWNKEY000001", ROOT_SK)
}

const SIG_TEXT: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

#[test]
fn wrong_secret_is_a_signature_mismatch() {
    let s = Server::start();
    let r = s.iam(&wrong_secret(), "ListUsers", &[]);
    r.expect_query_error(403, "SignatureDoesNotMatch", SIG_TEXT);
    assert!(
        r.body.contains(&format!(
            "<ErrorResponse xmlns=\"{IAM_NS}\"><Error><Type>Sender</Type>"
        )),
        "{}",
        r.body
    );

    let r = s.sts(&wrong_secret(), "GetCallerIdentity", &[]);
    r.expect_query_error(403, "SignatureDoesNotMatch", SIG_TEXT);
    assert!(
        r.body
            .contains(&format!("<ErrorResponse xmlns=\"{STS_NS}\">")),
        "{}",
        r.body
    );

    let r = s.kms(
        "ListKeys",
        "{}",
        Some(&Signing::new(&wrong_secret(), "kms")),
    );
    r.expect_json_error(400, "InvalidSignatureException", SIG_TEXT);
    let v = r.json();
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");

    let r = s.s3(Method::GET, "/", Some(&Signing::new(&wrong_secret(), "s3")));
    r.expect_s3_error(
        403,
        "SignatureDoesNotMatch",
        "Check your key and signing method.",
    );
    assert_eq!(r.xml("AWSAccessKeyId").as_deref(), Some(ROOT_AK));
    assert!(
        r.xml("StringToSign")
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256\n")
    );
    assert!(r.xml("CanonicalRequest").unwrap().starts_with("GET\n/\n"));
}

#[test]
fn tampered_body_is_a_signature_mismatch() {
    let s = Server::start();
    let signed_body = query_body("ListUsers", "2010-05-08", &[]);
    let sent_body = query_body("ListUsers", "2010-05-08", &[("MaxItems", "1")]);
    let mut h = headers(&[("content-type", FORM_CT)]);
    s.sign(
        &Method::POST,
        "/",
        &mut h,
        signed_body.as_bytes(),
        &Signing::new(&Creds::root(), "iam"),
    );
    let r = s.send(Method::POST, "/", h, sent_body.as_bytes(), None);
    r.expect_query_error(403, "SignatureDoesNotMatch", SIG_TEXT);
}

#[test]
fn unknown_access_key_is_rejected_per_protocol() {
    let s = Server::start();
    let r = s.iam(&unknown_key(), "ListUsers", &[]);
    r.expect_query_error(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    );

    let r = s.kms("ListKeys", "{}", Some(&Signing::new(&unknown_key(), "kms")));
    r.expect_json_error(
        400,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );

    let r = s.s3(Method::GET, "/", Some(&Signing::new(&unknown_key(), "s3")));
    r.expect_s3_error(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
    );
    assert_eq!(
        r.xml("AWSAccessKeyId").as_deref(),
        Some("AKIAUNKNOWNKEY000001")
    );
}

#[test]
fn skewed_clock_is_rejected() {
    let s = Server::start();
    let root = Creds::root();
    let past = OffsetDateTime::now_utc() - Duration::minutes(16);
    let future = OffsetDateTime::now_utc() + Duration::minutes(16);

    let r = s.query(
        "2010-05-08",
        "ListUsers",
        &[],
        Some(&Signing::new(&root, "iam").at(past)),
    );
    r.expect_query_error(403, "SignatureDoesNotMatch", "Signature expired: ");
    assert!(
        r.xml("Message").unwrap().ends_with(" - 15 min.)"),
        "{}",
        r.body
    );

    let r = s.query(
        "2010-05-08",
        "ListUsers",
        &[],
        Some(&Signing::new(&root, "iam").at(future)),
    );
    r.expect_query_error(403, "SignatureDoesNotMatch", "Signature not yet current: ");
    assert!(r.xml("Message").unwrap().ends_with(" + 15 min.)"));

    let r = s.kms("ListKeys", "{}", Some(&Signing::new(&root, "kms").at(past)));
    r.expect_json_error(400, "InvalidSignatureException", "Signature expired: ");

    for at in [past, future] {
        let r = s.s3(Method::GET, "/", Some(&Signing::new(&root, "s3").at(at)));
        r.expect_s3_error(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        );
        assert_eq!(
            r.xml("RequestTime"),
            Some(coffer_sigv4::format_amz_date(at))
        );
        assert_eq!(
            r.xml("MaxAllowedSkewMilliseconds").as_deref(),
            Some("900000")
        );
        assert!(r.xml("ServerTime").is_some());
    }

    // Within the window is fine.
    let r = s.query(
        "2010-05-08",
        "ListUsers",
        &[],
        Some(&Signing::new(&root, "iam").at(OffsetDateTime::now_utc() - Duration::minutes(14))),
    );
    r.expect_ok("ListUsers signed 14 minutes ago");
}

#[test]
fn presigned_s3_urls() {
    let s = Server::start();
    let root = Creds::root();

    // Expired an hour and 59 minutes ago.
    let two_hours_ago = OffsetDateTime::now_utc() - Duration::hours(2);
    let url = s.presign(
        &Method::GET,
        "/bucket/key.txt",
        &Signing::new(&root, "s3").at(two_hours_ago),
        60,
    );
    assert!(
        url.starts_with("/bucket/key.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"),
        "{url}"
    );
    let r = s.s3(Method::GET, &url, None);
    r.expect_s3_error(403, "AccessDenied", "Request has expired");
    assert!(r.xml("Expires").is_some(), "{}", r.body);
    assert!(r.xml("ServerTime").is_some(), "{}", r.body);

    // A current presigned URL authenticates (and then meets S3: there is no such bucket).
    let url = s.presign(
        &Method::GET,
        "/bucket/key.txt",
        &Signing::new(&root, "s3"),
        300,
    );
    let r = s.s3(Method::GET, &url, None);
    r.expect_s3_error(404, "NoSuchBucket", "The specified bucket does not exist");

    // A presigned URL with the wrong secret does not.
    let url = s.presign(
        &Method::GET,
        "/bucket/key.txt",
        &Signing::new(&wrong_secret(), "s3"),
        300,
    );
    let r = s.s3(Method::GET, &url, None);
    r.expect_s3_error(403, "SignatureDoesNotMatch", "signature");
}

#[test]
fn missing_authentication() {
    let s = Server::start();
    let r = s.query("2010-05-08", "ListUsers", &[], None);
    r.expect_query_error(
        403,
        "MissingAuthenticationToken",
        "Request is missing Authentication Token",
    );
    assert!(r.body.contains(IAM_NS));

    let r = s.query("2011-06-15", "GetCallerIdentity", &[], None);
    r.expect_query_error(
        403,
        "MissingAuthenticationToken",
        "Request is missing Authentication Token",
    );
    assert!(r.body.contains(STS_NS), "{}", r.body);

    let r = s.kms("ListKeys", "{}", None);
    r.expect_json_error(
        400,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    );

    let r = s.s3(Method::GET, "/bucket", None);
    r.expect_s3_error(403, "AccessDenied", "Access Denied");
}

#[test]
fn credential_scoped_to_the_wrong_service() {
    let s = Server::start();
    let root = Creds::root();
    // An IAM request (Version=2010-05-08) signed for sts.
    let r = s.query(
        "2010-05-08",
        "ListUsers",
        &[],
        Some(&Signing::new(&root, "sts")),
    );
    r.expect_query_error(
        403,
        "SignatureDoesNotMatch",
        "Credential should be scoped to correct service: 'iam'.",
    );
    assert!(r.body.contains(IAM_NS));

    // An STS request signed for iam.
    let r = s.query(
        "2011-06-15",
        "GetCallerIdentity",
        &[],
        Some(&Signing::new(&root, "iam")),
    );
    r.expect_query_error(
        403,
        "SignatureDoesNotMatch",
        "Credential should be scoped to correct service: 'sts'.",
    );
    assert!(r.body.contains(STS_NS));

    // A KMS request signed for iam.
    let r = s.kms("ListKeys", "{}", Some(&Signing::new(&root, "iam")));
    r.expect_json_error(
        400,
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'kms'.",
    );
}

#[test]
fn credential_scoped_to_the_wrong_region() {
    let s = Server::start();
    let root = Creds::root();
    let r = s.kms(
        "ListKeys",
        "{}",
        Some(&Signing::new(&root, "kms").region("eu-west-1")),
    );
    r.expect_json_error(
        400,
        "InvalidSignatureException",
        "Credential should be scoped to a valid region.",
    );

    let r = s.s3(
        Method::GET,
        "/",
        Some(&Signing::new(&root, "s3").region("eu-west-1")),
    );
    r.expect_s3_error(
        400,
        "AuthorizationHeaderMalformed",
        "the region 'eu-west-1' is wrong; expecting 'us-east-1'",
    );
    assert_eq!(r.xml("Region").as_deref(), Some("us-east-1"));
}

#[test]
fn unknown_actions_are_invalid_action() {
    let s = Server::start();
    let r = s.iam(&Creds::root(), "Frobnicate", &[]);
    r.expect_query_error(
        400,
        "InvalidAction",
        "Could not find operation Frobnicate for version 2010-05-08",
    );
    let r = s.sts(&Creds::root(), "Frobnicate", &[]);
    r.expect_query_error(
        400,
        "InvalidAction",
        "Could not find operation Frobnicate for version 2011-06-15",
    );
    // No Action at all.
    let body = form(&[("Version", "2010-05-08")]);
    let r = s.send(
        Method::POST,
        "/",
        headers(&[("content-type", FORM_CT)]),
        body.as_bytes(),
        Some(&Signing::new(&Creds::root(), "iam")),
    );
    r.expect_query_error(400, "MissingAction", "Missing Action");
}

#[test]
fn unknown_kms_operation_is_unknown_operation_exception() {
    let s = Server::start();
    let root = Creds::root();
    for op in ["Frobnicate", "ListKeyz"] {
        let r = s.kms(op, "{}", Some(&Signing::new(&root, "kms")));
        r.expect_json_error(
            400,
            "UnknownOperationException",
            &format!("Coffer does not implement the KMS operation '{op}' yet."),
        );
    }
}

#[test]
fn kms_never_fakes_success() {
    // ListKeys is implemented: an authenticated call really succeeds and answers its documented
    // shape (never an empty 200, and not UnknownOperationException).
    let s = Server::start();
    let r = s.kms("ListKeys", "{}", Some(&Signing::new(&Creds::root(), "kms")));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(
        v["Keys"].is_array(),
        "ListKeys 200 without Keys: {}",
        r.body
    );
    assert_eq!(v["Truncated"], false, "{}", r.body);
    assert!(r.header("x-amzn-requestid").is_some());
}

#[test]
fn s3_answers_after_auth_with_s3_errors_and_ids() {
    let s = Server::start();
    let root = Creds::root();
    // Operations Coffer does not implement yet answer NotImplemented, never a fake success.
    for path in [
        "/bucket?replication",
        "/bucket?lifecycle",
        "/bucket/some/key.txt?acl",
    ] {
        let r = s.s3(Method::GET, path, Some(&Signing::new(&root, "s3")));
        r.expect_s3_error(501, "NotImplemented", "is not implemented yet");
        assert_eq!(r.header("content-type"), Some("application/xml"));
        let rid = r.header("x-amz-request-id").unwrap();
        assert_eq!(rid.len(), 16, "{rid}");
        assert!(
            rid.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
            "{rid}"
        );
        assert!(r.header("x-amzn-requestid").is_none());
        assert!(r.header("date").is_some());
    }

    // HEAD: status and headers, no body.
    let r = s.s3(Method::HEAD, "/bucket", Some(&Signing::new(&root, "s3")));
    assert_eq!(r.status, 404);
    assert!(r.header("x-amz-request-id").is_some());
    assert!(r.body.is_empty());

    // Without x-amz-content-sha256 an S3 request is refused before anything else.
    let mut h = HeaderMap::new();
    s.sign(
        &Method::GET,
        "/bucket",
        &mut h,
        b"",
        &Signing {
            flavor: coffer_sigv4::Flavor::Standard,
            ..Signing::new(&root, "s3")
        },
    );
    let r = s.send(Method::GET, "/bucket", h, b"", None);
    r.expect_s3_error(
        400,
        "InvalidRequest",
        "Missing required header for this request: x-amz-content-sha256",
    );
}
