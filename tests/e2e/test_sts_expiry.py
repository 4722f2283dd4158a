"""Temporary credentials stop working when they expire, in every service, with each protocol's own
error (aws-behavior.md §1.6 "expired session token"): IAM/STS `ExpiredToken` 403, KMS
`ExpiredTokenException` 400, S3 `ExpiredToken` 400 "The provided token has expired." — for header-
signed requests, presigned URLs and POST object forms alike.

Session expiry is checked against the service clock (`Iam::resolve` compares the session's
expiration with `Iam::now()`, the injectable `Clock`), so the test clock can move past it; SigV4
freshness stays on the wall clock (docs/ARCHITECTURE.md "Time"), so requests signed now still pass
signature checks. No real-time wait is needed."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import uuid

import pytest

from e2e_helpers import (
    ACCOUNT,
    REGION,
    ROOT,
    Creds,
    allow,
    expect_error,
    http_request,
    parse_query_error,
    parse_s3_error,
    policy_doc,
    query_body,
    signed_request,
    uid,
)
from test_s3_post_object import post_form

DURATION = 900  # the shortest session AWS allows

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
QUERY_EXPIRED = ("ExpiredToken", "The security token included in the request is expired", 403)
KMS_EXPIRED = ("ExpiredTokenException", "The security token included in the request is expired", 400)
S3_EXPIRED = ("ExpiredToken", "The provided token has expired.", 400)


def _post_fields(creds: Creds, bucket: str, key: str) -> dict:
    """A SigV4 POST policy signed by hand with session credentials: the token is a form field
    (and a policy condition), as AWS documents for browser uploads. The policy expires in a day
    (wall clock), far beyond anything the test clock does here."""
    now = _dt.datetime.now(_dt.timezone.utc)
    date, amz_date = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    fields = {
        "key": key,
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{creds.key}/{date}/{REGION}/s3/aws4_request",
        "x-amz-date": amz_date,
        "x-amz-security-token": creds.token,
    }
    doc = {
        "expiration": (now + _dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [{"bucket": bucket}, *({k: v} for k, v in fields.items())],
    }
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    k = ("AWS4" + creds.secret).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return {**fields, "policy": policy, "x-amz-signature": hmac.new(k, policy.encode(), hashlib.sha256).hexdigest()}


def _session(srv, kind: str) -> tuple[Creds, str]:
    """Temporary credentials of `kind` lasting DURATION seconds, allowed everything; and the ARN
    GetCallerIdentity reports for them."""
    iam = srv.client_for("iam", ROOT)
    user = uid("exp")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=policy_doc(allow("*")))
    k = iam.create_access_key(UserName=user)["AccessKey"]
    ucreds = Creds(k["AccessKeyId"], k["SecretAccessKey"])
    sts = srv.client_for("sts", ucreds)
    if kind == "GetSessionToken":
        c = sts.get_session_token(DurationSeconds=DURATION)["Credentials"]
        arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    else:
        role = uid("exp-role")
        trust = policy_doc(
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"}, "Action": "sts:AssumeRole"}
        )
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
        iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=policy_doc(allow("*")))
        c = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="expiring", DurationSeconds=DURATION
        )["Credentials"]
        arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/expiring"
    assert c["AccessKeyId"].startswith("ASIA")
    now = _dt.datetime.now(_dt.timezone.utc)
    assert now + _dt.timedelta(seconds=DURATION - 30) <= c["Expiration"] <= now + _dt.timedelta(seconds=DURATION + 30)
    return Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]), arn


@pytest.mark.parametrize("kind", ["AssumeRole", "GetSessionToken"])
def test_expired_session_credentials_are_refused_everywhere(clock_server, kind):
    srv = clock_server
    creds, arn = _session(srv, kind)
    root_s3 = srv.client_for("s3", ROOT, signature_version="s3v4")
    bucket = f"exp-{uuid.uuid4().hex[:16]}"
    root_s3.create_bucket(Bucket=bucket)
    root_s3.put_object(Bucket=bucket, Key="existing", Body=b"there")

    sts = srv.client_for("sts", creds)
    iam = srv.client_for("iam", creds)
    kms = srv.client_for("kms", creds)
    s3 = srv.client_for("s3", creds, signature_version="s3v4")

    def use_all(tag: str):
        assert sts.get_caller_identity()["Arn"] == arn
        if kind == "AssumeRole":
            # (AWS refuses IAM calls from GetSessionToken credentials obtained without MFA)
            assert "Users" in iam.list_users(MaxItems=1)
        assert "Keys" in kms.list_keys(Limit=1)
        assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert s3.get_object(Bucket=bucket, Key="existing")["Body"].read() == b"there"
        status, _, body = post_form(f"{srv.endpoint}/{bucket}", _post_fields(creds, bucket, f"form-{tag}"), tag.encode())
        assert status == 204, body
        assert root_s3.get_object(Bucket=bucket, Key=f"form-{tag}")["Body"].read() == tag.encode()

    use_all("fresh")
    # A presigned URL made now (valid for an hour of wall-clock time) carries the token.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "existing"}, ExpiresIn=3600)
    assert "X-Amz-Security-Token=" in url
    status, _, body = http_request("GET", url)
    assert (status, body) == (200, "there")

    # A minute before expiry (service clock) everything still works.
    srv.advance_clock(DURATION - 60)
    use_all("late")

    # Past expiry.
    srv.advance_clock(61)

    assert expect_error(sts.get_caller_identity) == QUERY_EXPIRED
    assert expect_error(iam.list_users) == QUERY_EXPIRED
    assert expect_error(iam.get_user) == QUERY_EXPIRED
    # the raw Query error: each service's namespace, Type Sender
    for service, body, ns in (
        ("sts", query_body("GetCallerIdentity", "2011-06-15"), STS_NS),
        ("iam", query_body("ListUsers"), IAM_NS),
    ):
        status, _, text = signed_request(srv.endpoint, creds, service, body)
        e = parse_query_error(text)
        assert (status, e["xmlns"], e["Type"], e["Code"], e["Message"]) == (
            403, ns, "Sender", "ExpiredToken", "The security token included in the request is expired",
        ), text
        assert e["RequestId"]

    assert expect_error(kms.list_keys) == KMS_EXPIRED
    assert expect_error(kms.generate_random, NumberOfBytes=16) == KMS_EXPIRED

    assert expect_error(s3.list_buckets) == S3_EXPIRED
    assert expect_error(s3.get_object, Bucket=bucket, Key="existing") == S3_EXPIRED
    assert expect_error(s3.put_object, Bucket=bucket, Key="after", Body=b"no") == S3_EXPIRED
    status, _, body = http_request("GET", url)
    e = parse_s3_error(body)
    assert (status, e["Code"], e["Message"]) == (400, "ExpiredToken", "The provided token has expired."), body
    status, _, body = post_form(f"{srv.endpoint}/{bucket}", _post_fields(creds, bucket, "form-expired"), b"no")
    e = parse_s3_error(body)
    assert (status, e["Code"], e["Message"]) == (400, "ExpiredToken", "The provided token has expired."), body

    # nothing was written by the refused requests
    keys = sorted(o["Key"] for o in root_s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["existing", "form-fresh", "form-late"], keys
    # long-term credentials are not affected by the clock
    assert srv.client_for("sts", ROOT).get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
