"""Authentication failures and their per-protocol error shapes (aws-behavior.md §1.4-1.7), plus
unknown operations and the not-yet-implemented surfaces (S3, parts of KMS), which must answer
only after authenticating and never with a fake success."""

import datetime as dt
import json
import re
import socket
import time
import urllib.parse

import botocore.config
import pytest

from e2e_helpers import (
    ACCOUNT,
    ROOT,
    ROOT_KEY_ID,
    Creds,
    expect_error,
    http_request,
    parse_query_error,
    parse_s3_error,
    query_body,
    signed_request,
    utcnow,
    _boto_session,
)

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SIG_TEXT = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
S3_SIG_TEXT = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)
INVALID_TOKEN = "The security token included in the request is invalid."
KMS_JSON = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.ListKeys"}
WRONG_SECRET = Creds(ROOT_KEY_ID, "W" * 40)
UNKNOWN_KEY = Creds("AKIAUNKNOWNUNKNOWN00", "U" * 40)
AMZ_DATE = r"\d{8}T\d{6}Z"


def amz(t: dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")


def s3v4_client(server, creds):
    cfg = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "total_max_attempts": 1},
    )
    return _boto_session().client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.key,
        aws_secret_access_key=creds.secret,
        config=cfg,
    )


# ---- wrong secret / unknown key -----------------------------------------------------------


def test_wrong_secret_per_protocol(server):
    code, msg, status = expect_error(server.client_for("iam", WRONG_SECRET).list_users)
    assert (code, status, msg) == ("SignatureDoesNotMatch", 403, SIG_TEXT)
    code, msg, status = expect_error(server.client_for("sts", WRONG_SECRET).get_caller_identity)
    assert (code, status, msg) == ("SignatureDoesNotMatch", 403, SIG_TEXT)
    code, msg, status = expect_error(server.client_for("kms", WRONG_SECRET).list_keys)
    assert (code, status, msg) == ("InvalidSignatureException", 400, SIG_TEXT)

    s3 = server.client_for("s3", WRONG_SECRET)
    try:
        s3.list_buckets()
        raise AssertionError("S3 accepted a wrong secret")
    except s3.exceptions.ClientError as e:
        err = e.response["Error"]
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err["Code"] == "SignatureDoesNotMatch"
    assert err["Message"] == S3_SIG_TEXT
    assert err["AWSAccessKeyId"] == ROOT_KEY_ID
    assert err["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    assert err["CanonicalRequest"].startswith("GET\n/\n")


def test_unknown_access_key_per_protocol(server):
    code, msg, status = expect_error(server.client_for("iam", UNKNOWN_KEY).list_users)
    assert (code, status, msg) == ("InvalidClientTokenId", 403, INVALID_TOKEN)
    code, msg, status = expect_error(server.client_for("sts", UNKNOWN_KEY).get_caller_identity)
    assert (code, status, msg) == ("InvalidClientTokenId", 403, INVALID_TOKEN)
    code, msg, status = expect_error(server.client_for("kms", UNKNOWN_KEY).list_keys)
    assert (code, status, msg) == ("UnrecognizedClientException", 400, INVALID_TOKEN)

    s3 = server.client_for("s3", UNKNOWN_KEY)
    try:
        s3.list_buckets()
        raise AssertionError("S3 accepted an unknown key")
    except s3.exceptions.ClientError as e:
        err = e.response["Error"]
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert err["Code"] == "InvalidAccessKeyId"
    assert err["Message"] == "The AWS Access Key Id you provided does not exist in our records."
    assert err["AWSAccessKeyId"] == UNKNOWN_KEY.key


# ---- no authentication at all ---------------------------------------------------------------


def test_missing_authentication(server):
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    status, headers, body = http_request(
        "POST", server.endpoint + "/", b"Action=ListUsers&Version=2010-05-08", form
    )
    assert status == 403
    e = parse_query_error(body)
    assert (e["xmlns"], e["root"], e["Type"], e["Code"]) == (IAM_NS, "ErrorResponse", "Sender", "MissingAuthenticationToken")
    assert e["Message"] == "Request is missing Authentication Token"
    assert e["RequestId"] == headers["x-amzn-RequestId"]

    status, _, body = http_request(
        "POST", server.endpoint + "/", b"Action=GetCallerIdentity&Version=2011-06-15", form
    )
    assert status == 403
    e = parse_query_error(body)
    assert (e["xmlns"], e["Code"]) == (STS_NS, "MissingAuthenticationToken")

    status, headers, body = http_request("POST", server.endpoint + "/", b"{}", KMS_JSON)
    assert status == 400
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert json.loads(body) == {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}

    # anonymous S3 is evaluated, not "not implemented": no bucket policy lets anyone in
    status, _, body = http_request("GET", server.endpoint + "/")
    assert status == 403
    assert parse_s3_error(body)["Code"] == "AccessDenied"


# ---- clock skew ------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [-20, 20], ids=["past", "future"])
def test_clock_skew_iam(server, minutes):
    at = utcnow() + dt.timedelta(minutes=minutes)
    status, _, body = signed_request(server.endpoint, ROOT, "iam", query_body("ListUsers"), at=at)
    assert status == 403
    e = parse_query_error(body)
    assert e["Code"] == "SignatureDoesNotMatch"
    if minutes < 0:
        pat = rf"Signature expired: {amz(at)} is now earlier than ({AMZ_DATE}) \(({AMZ_DATE}) - 15 min\.\)"
    else:
        pat = rf"Signature not yet current: {amz(at)} is still later than ({AMZ_DATE}) \(({AMZ_DATE}) \+ 15 min\.\)"
    m = re.fullmatch(pat, e["Message"])
    assert m, e["Message"]
    bound = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ")
    server_now = dt.datetime.strptime(m.group(2), "%Y%m%dT%H%M%SZ")
    assert abs((server_now - utcnow()).total_seconds()) < 60
    assert abs((bound - server_now).total_seconds()) == 900


def test_small_clock_skew_is_tolerated(server):
    for minutes in (-10, 10):
        status, _, body = signed_request(
            server.endpoint, ROOT, "iam", query_body("ListUsers", MaxItems="1"), at=utcnow() + dt.timedelta(minutes=minutes)
        )
        assert status == 200, body


def test_clock_skew_s3_and_kms(server):
    at = utcnow() - dt.timedelta(minutes=20)
    status, headers, body = signed_request(server.endpoint, ROOT, "s3", method="GET", s3=True, at=at)
    assert status == 403
    e = parse_s3_error(body)
    assert e["Code"] == "RequestTimeTooSkewed"
    assert e["Message"] == "The difference between the request time and the current time is too large."
    assert e["RequestTime"] == amz(at)
    assert e["MaxAllowedSkewMilliseconds"] == "900000"
    assert e["ServerTime"].endswith("Z")
    assert e["RequestId"] == headers["x-amz-request-id"]

    status, _, body = signed_request(server.endpoint, ROOT, "kms", b"{}", headers=KMS_JSON, at=at)
    assert status == 400
    j = json.loads(body)
    assert j["__type"] == "InvalidSignatureException"
    assert j["message"].startswith(f"Signature expired: {amz(at)} is now earlier than ")


# ---- presigned URLs ----------------------------------------------------------------------------


def test_fresh_presigned_sts_url_works(server, sts):
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=300, HttpMethod="GET")
    assert "X-Amz-Signature=" in url
    status, _, body = http_request("GET", url)
    assert status == 200, body
    assert "<GetCallerIdentityResult>" in body
    assert "<Arn>arn:aws:iam::123456789012:root</Arn>" in body

    # botocore's default presigned Query URL is signed for POST (empty body)
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=300)
    status, _, body = http_request("POST", url, b"")
    assert status == 200 and "<GetCallerIdentityResult>" in body

    # ...so fetching it with GET is a different request: the signature does not match
    status, _, body = http_request("GET", url)
    assert status == 403 and parse_query_error(body)["Code"] == "SignatureDoesNotMatch"


def test_tampered_presigned_url_is_refused(server, sts):
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=300, HttpMethod="GET")
    tampered = url.replace("X-Amz-Expires=300", "X-Amz-Expires=301")
    status, _, body = http_request("GET", tampered)
    assert status == 403
    assert parse_query_error(body)["Code"] == "SignatureDoesNotMatch"


def test_presigned_s3_url_authenticates_then_meets_s3(server):
    url = s3v4_client(server, ROOT).generate_presigned_url(
        "get_object", Params={"Bucket": "no-such-bucket-e2e", "Key": "key"}, ExpiresIn=300
    )
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    status, _, body = http_request("GET", url)
    assert status == 404
    assert parse_s3_error(body)["Code"] == "NoSuchBucket"
    # with a wrong secret it never gets that far
    bad = s3v4_client(server, WRONG_SECRET).generate_presigned_url(
        "get_object", Params={"Bucket": "bucket", "Key": "key"}, ExpiresIn=300
    )
    status, _, body = http_request("GET", bad)
    assert status == 403
    assert parse_s3_error(body)["Code"] == "SignatureDoesNotMatch"


def test_expired_presigned_urls(server, sts):
    sts_url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=1, HttpMethod="GET")
    s3_url = s3v4_client(server, ROOT).generate_presigned_url(
        "get_object", Params={"Bucket": "bucket", "Key": "key"}, ExpiresIn=1
    )

    def once_refused(url):
        """GETs `url` until it is refused (403: the URL expired) or 10 s pass; the last answer."""
        deadline = time.monotonic() + 10
        while True:
            answer = http_request("GET", url)
            if answer[0] == 403 or time.monotonic() > deadline:
                return answer
            time.sleep(0.1)

    status, _, body = once_refused(sts_url)
    assert status == 403
    e = parse_query_error(body)
    assert (e["xmlns"], e["Code"], e["Message"]) == (STS_NS, "SignatureDoesNotMatch", "Signature expired")

    status, headers, body = once_refused(s3_url)
    assert status == 403
    e = parse_s3_error(body)
    assert (e["Code"], e["Message"]) == ("AccessDenied", "Request has expired")
    # Expires is X-Amz-Date + X-Amz-Expires; ServerTime (whole seconds) is not before it (it may
    # be the same second: the URL is refused as soon as that instant has passed)
    signed_at = dt.datetime.strptime(urllib.parse.parse_qs(urllib.parse.urlsplit(s3_url).query)["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    assert e["Expires"] == (signed_at + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), (e, s3_url)
    assert e["ServerTime"].endswith("Z") and e["Expires"] <= e["ServerTime"], e
    assert e["RequestId"] == headers["x-amz-request-id"]


# ---- malformed or mis-scoped signatures ------------------------------------------------------


def test_tampered_body_is_refused(server):
    def tamper(headers, body):
        return headers, body.replace(b"ListUsers", b"ListRoles")

    status, _, body = signed_request(server.endpoint, ROOT, "iam", query_body("ListUsers"), tamper=tamper)
    assert status == 403
    assert parse_query_error(body)["Message"] == SIG_TEXT


def test_credential_scoped_to_the_wrong_service(server):
    status, _, body = signed_request(server.endpoint, ROOT, "sts", query_body("ListUsers"))
    assert status == 403
    e = parse_query_error(body)
    assert (e["Code"], e["Message"]) == ("SignatureDoesNotMatch", "Credential should be scoped to correct service: 'iam'. ")


def test_kms_checks_the_region_of_the_scope(server):
    status, _, body = signed_request(server.endpoint, ROOT, "kms", b"{}", headers=KMS_JSON, region="eu-west-1")
    assert status == 400
    assert json.loads(body) == {
        "__type": "InvalidSignatureException",
        "message": "Credential should be scoped to a valid region. ",
    }


def test_unsigned_amz_header_on_s3(server):
    def add_header(headers, body):
        headers = dict(headers)
        headers["x-amz-meta-sneaky"] = "1"
        return headers, body

    status, _, body = signed_request(server.endpoint, ROOT, "s3", method="GET", s3=True, tamper=add_header)
    assert status == 403
    e = parse_s3_error(body)
    assert (e["Code"], e["Message"]) == ("AccessDenied", "There were headers present in the request which were not signed")
    assert e["HeadersNotSigned"] == "x-amz-meta-sneaky"


def test_malformed_authorization_header(server):
    hdrs = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Authorization": "AWS4-HMAC-SHA256 Credential=garbage",
        "X-Amz-Date": amz(utcnow()),
    }
    status, _, body = http_request("POST", server.endpoint + "/", query_body("ListUsers").encode(), hdrs)
    # AWS (IAM CommonErrors): a malformed Authorization header is IncompleteSignature, HTTP 400.
    e = parse_query_error(body)
    assert (status, e["xmlns"], e["Code"]) == (400, IAM_NS, "IncompleteSignature"), (status, e)


# ---- unknown actions and unimplemented services ---------------------------------------------


def test_unknown_iam_and_sts_actions(server):
    status, _, body = signed_request(server.endpoint, ROOT, "iam", query_body("NoSuchThing"))
    assert status == 400
    e = parse_query_error(body)
    assert (e["xmlns"], e["Code"], e["Message"]) == (
        IAM_NS,
        "InvalidAction",
        "Could not find operation NoSuchThing for version 2010-05-08",
    )
    status, _, body = signed_request(server.endpoint, ROOT, "sts", query_body("NoSuchThing", version="2011-06-15"))
    assert status == 400
    e = parse_query_error(body)
    assert (e["xmlns"], e["Code"], e["Message"]) == (
        STS_NS,
        "InvalidAction",
        "Could not find operation NoSuchThing for version 2011-06-15",
    )


def test_unknown_kms_operation(server):
    target = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.NoSuchOperation"}
    status, headers, body = signed_request(server.endpoint, ROOT, "kms", b"{}", headers=target)
    assert status == 400
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert json.loads(body) == {
        "__type": "UnknownOperationException",
        "message": "Coffer does not implement the KMS operation 'NoSuchOperation' yet.",
    }


def test_kms_operations_never_fake_success(server):
    # These operations are implemented: a key that does not exist is AWS's NotFoundException
    # (HTTP 400, the key ARN quoted), never a made-up result.
    kms = server.client_for("kms", ROOT)
    missing = "11111111-2222-3333-4444-555555555555"
    calls = {
        "Sign": lambda: kms.sign(KeyId=missing, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256"),
        "GetPublicKey": lambda: kms.get_public_key(KeyId=missing),
        "Encrypt": lambda: kms.encrypt(KeyId=missing, Plaintext=b"secret"),
        "DescribeKey": lambda: kms.describe_key(KeyId=missing),
    }
    for op, call in calls.items():
        assert expect_error(call) == (
            "NotFoundException",
            f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{missing}' does not exist",
            400,
        ), op


def test_unimplemented_s3_operations_say_so(server):
    # a fresh client (connection pool) per call: see test_early_response_announces_connection_close
    calls = [
        lambda s3: s3.get_bucket_replication(Bucket="e2e-bucket"),
        lambda s3: s3.get_bucket_lifecycle_configuration(Bucket="e2e-bucket"),
        lambda s3: s3.get_object_acl(Bucket="e2e-bucket", Key="k"),
    ]
    for call in calls:
        code, msg, status = expect_error(call, server.client_for("s3", ROOT))
        assert (code, status) == ("NotImplemented", 501)
        assert "not implemented" in msg
    # HEAD of a missing bucket: status only
    code, _, status = expect_error(server.client_for("s3", ROOT).head_bucket, Bucket="e2e-no-bucket")
    assert status == 404


def test_early_response_announces_connection_close(server):
    host, port = server.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as c:
        # headers announce a body that is not sent (yet): the server answers without reading it
        # (unsigned: anonymous, so S3's answer is AccessDenied, 403, "Access Denied")
        c.sendall(f"PUT /bucket/key HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: 200000\r\n\r\n".encode())
        data = b""
        closed = False
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                chunk = c.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            data += chunk
            if b"\r\n\r\n" in data and closed:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    head = head.decode("latin-1").lower()
    assert head.startswith("http/1.1 403 "), head
    e = parse_s3_error(body.decode())
    assert (e["Code"], e["Message"]) == ("AccessDenied", "Access Denied"), e
    # the body was left unread, so the connection is closed, and the answer says so
    assert closed, "the connection stayed open after an answer that left the body unread"
    assert "\r\nconnection: close" in head, head
