"""S3 end to end (boto3, raw SigV4 requests): buckets and their rules, default encryption, SSE-S3
and SSE-KMS objects (headers, encryption context, checksums, ranges across the 64 KiB
segments, conditional requests), listings, presigned URLs, authorization (identity policies,
bucket policies, KMS as the caller), KMS key states as S3 reports them, tampered ciphertext at
rest, and what is not implemented yet.

The walkthrough (aws CLI, named users, restart, plaintext search) is in test_s3_walkthrough.py.

Where Coffer deviates from AWS a test says so with `xfail(strict=True, reason="server bug: ...")`."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import os
import re
import urllib.parse
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ResponseStreamingError
from urllib3.exceptions import ProtocolError

from e2e_helpers import (
    ACCOUNT,
    REGION,
    ROOT,
    Creds,
    allow,
    deny,
    expect_error,
    http_request,
    parse_s3_error,
    policy_doc,
    signed_request,
    signing_time,
    utcnow,
)

SEGMENT = 64 * 1024
READ_ONLY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
S3_FULL = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
INVALID_NAME = ("InvalidBucketName", "The specified bucket is not valid.", 400)
MALFORMED_XML = "The XML you provided was not well-formed or did not validate against our published schema"


# ---------------------------------------------------------------------------------------------
# helpers and fixtures


def s3c(who, creds: Creds = ROOT, **kw):
    """An S3 client of a server (as `creds`) or of a user (UserHandle)."""
    return who.client("s3", **kw) if hasattr(who, "creds") else who.client_for("s3", creds, **kw)


def bucket_name(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def s3_denied(principal: str, action: str, resource: str, why: str = "identity") -> str:
    """S3's AccessDenied text (aws-behavior.md §5.8: the resource ARN is quoted)."""
    reason = {
        "identity": f"because no identity-based policy allows the {action} action",
        "explicit-resource": "with an explicit deny in a resource-based policy",
        "explicit-identity": "with an explicit deny in an identity-based policy",
    }[why]
    return f'User: {principal} is not authorized to perform: {action} on resource: "{resource}" {reason}'


def kms_denied(principal: str, action: str, key_arn: str, why: str = "identity") -> str:
    """KMS's AccessDenied text, which S3 passes on (resource ARN unquoted, aws-behavior.md §3.4)."""
    reason = {
        "identity": f"because no identity-based policy allows the {action} action",
        "explicit-identity": "with an explicit deny in an identity-based policy",
    }[why]
    return f"User: {principal} is not authorized to perform: {action} on resource: {key_arn} {reason}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def crc32_b64(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def body_of(s3, bucket: str, key: str, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def kms_bucket_config(key_id: str, bucket_key: bool = False) -> dict:
    return {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id},
                "BucketKeyEnabled": bucket_key,
            }
        ]
    }


@pytest.fixture(scope="module")
def s3(server):
    return s3c(server)


@pytest.fixture(scope="module")
def kms(server):
    return server.client_for("kms", ROOT)


@pytest.fixture
def bucket(s3) -> str:
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def kms_key(kms) -> dict:
    """A customer managed key with the default key policy (IAM decides), and an alias."""
    md = kms.create_key(Description="e2e S3 key")["KeyMetadata"]
    alias = "alias/" + bucket_name("s3-key")
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    return {"id": md["KeyId"], "arn": md["Arn"], "alias": alias, "alias_arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}"}


def sign_s3(endpoint: str, creds: Creds, method: str, path: str, headers: dict | None = None, body: bytes = b""):
    """A SigV4-signed S3 request, prepared but not sent: (url, headers, body)."""
    req = AWSRequest(method=method, url=endpoint + path, data=body, headers=dict(headers or {}))
    signer = botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(creds.key, creds.secret, creds.token), "s3", REGION)
    req.context["payload_signing_enabled"] = True
    signer.add_auth(req)
    p = req.prepare()
    return p.url, dict(p.headers.items()), body


def raw_get(endpoint: str, creds: Creds, path: str, headers: dict | None = None):
    """GET with http.client, reading the body until the server stops: (status, headers, bytes
    received, whether the body ended early)."""
    url, hdrs, _ = sign_s3(endpoint, creds, "GET", path, headers)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", u.path + (f"?{u.query}" if u.query else ""), headers=hdrs)
        try:
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            return None, {}, b"", True  # the connection closed before a status line
        chunks, short = [], False
        while True:
            try:
                c = resp.read(16384)
            except http.client.IncompleteRead as e:
                chunks.append(e.partial)
                short = True
                break
            except (ConnectionError, OSError):
                short = True
                break
            if not c:
                break
            chunks.append(c)
        data = b"".join(chunks)
        length = resp.getheader("content-length")
        if length is not None and len(data) < int(length):
            short = True
        return resp.status, dict(resp.getheaders()), data, short
    finally:
        conn.close()


# =============================================================================================
# 1. buckets


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "Upper-Case-Bucket",
        "under_score",
        "-leading-hyphen",
        "trailing-hyphen-",
        ".leading-dot",
        "trailing-dot.",
        "double..dot",
        "192.168.5.4",  # formatted as an IP address
        "xn--punycode-prefix",
        "sthree-reserved",
        "reserved-s3alias",
        "reserved--ol-s3",
    ],
)
def test_invalid_bucket_names(s3, name):
    code, _, status = expect_error(s3.create_bucket, Bucket=name)
    assert (code, status) == ("InvalidBucketName", 400)


def test_reserved_bucket_names_say_why(s3):
    for name in ("sthree-reserved", "reserved-s3alias", "reserved--ol-s3"):
        assert expect_error(s3.create_bucket, Bucket=name) == INVALID_NAME


def test_invalid_bucket_name_message(s3):
    for name in ("ab", "Upper-Case-Bucket", "under_score", "double..dot", "192.168.5.4"):
        assert expect_error(s3.create_bucket, Bucket=name) == INVALID_NAME, name


def test_valid_bucket_names_at_the_limits(s3):
    for name in ("a1b", "9" + uuid.uuid4().hex[:8] + "x" * 54, f"dots.{uuid.uuid4().hex[:8]}.and-hyphens"):
        assert len(name) <= 63
        s3.create_bucket(Bucket=name)
        s3.head_bucket(Bucket=name)
        s3.delete_bucket(Bucket=name)


def test_create_head_locate_bucket(s3):
    name = bucket_name()
    out = s3.create_bucket(Bucket=name)
    assert out["Location"] == f"/{name}"
    # creating it again: already yours (409)
    assert expect_error(s3.create_bucket, Bucket=name) == (
        "BucketAlreadyOwnedByYou",
        "Your previous request to create the named bucket succeeded and you already own it.",
        409,
    )
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["BucketRegion"] == REGION
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == REGION
    # us-east-1 is reported as an empty location constraint
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    # HeadBucket of a missing bucket: 404 without a body
    assert expect_error(s3.head_bucket, Bucket=bucket_name("missing")) == ("404", "Not Found", 404)
    assert expect_error(s3.get_bucket_location, Bucket=bucket_name("missing")) == (
        "NoSuchBucket", "The specified bucket does not exist", 404,
    )
    # a location constraint for another region
    other = bucket_name()
    assert expect_error(s3.create_bucket, Bucket=other, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}) == (
        "IllegalLocationConstraintException",
        "The eu-west-1 location constraint is incompatible for the region specific endpoint this request was sent to.",
        400,
    )
    assert expect_error(s3.head_bucket, Bucket=other)[2] == 404


def test_list_buckets_shows_the_accounts_buckets(s3, make_user):
    prefix = f"lb-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i}" for i in range(5)]
    for n in names[:3]:
        s3.create_bucket(Bucket=n)
    # buckets an IAM user creates belong to the account too
    u = make_user(managed=[S3_FULL])
    us3 = s3c(u)
    for n in names[3:]:
        us3.create_bucket(Bucket=n)
    for client in (s3, us3):
        out = client.list_buckets(Prefix=prefix)
        assert [b["Name"] for b in out["Buckets"]] == names
        assert all(b["BucketRegion"] == REGION for b in out["Buckets"])
        assert re.fullmatch(r"[0-9a-f]{64}", out["Owner"]["ID"])
    assert s3.list_buckets()["Owner"] == us3.list_buckets()["Owner"]
    # (one account per data dir: every bucket of the server is the account's)
    assert set(names) <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
    # pages
    page = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
    assert [b["Name"] for b in page["Buckets"]] == names[:2]
    seen = [b["Name"] for b in page["Buckets"]]
    while "ContinuationToken" in page:
        page = s3.list_buckets(Prefix=prefix, MaxBuckets=2, ContinuationToken=page["ContinuationToken"])
        seen += [b["Name"] for b in page["Buckets"]]
    assert seen == names
    # a user without s3:ListAllMyBuckets may not list
    nobody = make_user()
    code, msg, status = expect_error(s3c(nobody).list_buckets)
    assert (code, status) == ("AccessDenied", 403) and "s3:ListAllMyBuckets" in msg, msg
    # deleted buckets are gone from the list
    s3.delete_bucket(Bucket=names[0])
    assert [b["Name"] for b in s3.list_buckets(Prefix=prefix)["Buckets"]] == names[1:]


def test_delete_bucket_only_when_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key="c.txt", Body=b"y")
    assert expect_error(s3.delete_bucket, Bucket=bucket) == (
        "BucketNotEmpty", "The bucket you tried to delete is not empty", 409,
    )
    s3.delete_object(Bucket=bucket, Key="a/b.txt")
    assert expect_error(s3.delete_bucket, Bucket=bucket)[0] == "BucketNotEmpty"
    s3.delete_object(Bucket=bucket, Key="c.txt")
    out = s3.delete_bucket(Bucket=bucket)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert expect_error(s3.head_bucket, Bucket=bucket)[2] == 404
    assert expect_error(s3.delete_bucket, Bucket=bucket) == ("NoSuchBucket", "The specified bucket does not exist", 404)
    assert expect_error(s3.put_object, Bucket=bucket, Key="k", Body=b"x")[0] == "NoSuchBucket"
    # the name can be used again, and the new bucket is empty
    s3.create_bucket(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# =============================================================================================
# 2. default encryption


def test_bucket_encryption_defaults_and_kms_key_forms(s3, bucket, kms_key):
    default = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert default == {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}]
    }
    out = s3.put_object(Bucket=bucket, Key="plain.txt", Body=b"sse-s3 by default")
    assert out["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in out

    # the key by id, key ARN, alias name, alias ARN: kept and reported as given; objects name the key ARN
    for n, form in enumerate((kms_key["id"], kms_key["arn"], kms_key["alias"], kms_key["alias_arn"])):
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_bucket_config(form, n % 2 == 1))
        got = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert got == kms_bucket_config(form, n % 2 == 1)
        key = f"kms-{n}.txt"
        out = s3.put_object(Bucket=bucket, Key=key, Body=f"encrypted under {form}".encode())
        assert (out["ServerSideEncryption"], out["SSEKMSKeyId"]) == ("aws:kms", kms_key["arn"]), form
        assert out.get("BucketKeyEnabled", False) is (n % 2 == 1)
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == f"encrypted under {form}".encode()
        assert (got["ServerSideEncryption"], got["SSEKMSKeyId"]) == ("aws:kms", kms_key["arn"])
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["SSEKMSKeyId"] == kms_key["arn"]

    out = s3.delete_bucket_encryption(Bucket=bucket)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"] == default
    s3.delete_bucket_encryption(Bucket=bucket)  # idempotent
    assert s3.put_object(Bucket=bucket, Key="after.txt", Body=b"x")["ServerSideEncryption"] == "AES256"
    # objects written before keep their encryption
    assert s3.head_object(Bucket=bucket, Key="kms-0.txt")["ServerSideEncryption"] == "aws:kms"
    assert body_of(s3, bucket, "kms-2.txt") == f"encrypted under {kms_key['alias']}".encode()

    # explicit SSE-S3 configuration
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
    )
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"] == default


def test_bucket_encryption_validation(s3, bucket, kms_key, kms):
    assert expect_error(
        s3.put_bucket_encryption,
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": kms_key["id"]}}]
        },
    ) == (
        "InvalidArgument",
        "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse",
        400,
    )
    two = kms_bucket_config(kms_key["id"])["Rules"] * 2
    assert expect_error(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": two}) == (
        "MalformedXML", MALFORMED_XML, 400,
    )
    # the key is not checked when configured (as AWS), but uploads then fail on it
    missing = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.uuid4()}"
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_bucket_config(missing))
    assert expect_error(s3.put_object, Bucket=bucket, Key="k", Body=b"x") == (
        "KMS.NotFoundException", f"Key '{missing}' does not exist", 400,
    )
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_bucket_config("alias/no-such-alias"))
    assert expect_error(s3.put_object, Bucket=bucket, Key="k", Body=b"x") == (
        "KMS.NotFoundException", f"Alias arn:aws:kms:{REGION}:{ACCOUNT}:alias/no-such-alias is not found.", 400,
    )
    # SSE-KMS with no key anywhere means the AWS managed key aws/s3 (test_s3_aws_managed_key.py)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]},
    )
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert put["SSEKMSKeyId"] == kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"]


# =============================================================================================
# 3. PutObject: SSE headers, encryption context, metadata, digests and checksums


def test_put_object_with_explicit_sse_headers(s3, bucket, kms, kms_key):
    other = kms.create_key()["KeyMetadata"]
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_bucket_config(kms_key["id"]))
    # AES256 in the request beats the bucket's SSE-KMS default
    out = s3.put_object(Bucket=bucket, Key="s3.txt", Body=b"sse-s3", ServerSideEncryption="AES256")
    assert out["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in out
    assert s3.head_object(Bucket=bucket, Key="s3.txt")["ServerSideEncryption"] == "AES256"
    # a key in the request beats the bucket's key, in any of its forms
    for form in (other["KeyId"], other["Arn"]):
        out = s3.put_object(Bucket=bucket, Key="other.txt", Body=b"other key", ServerSideEncryption="aws:kms", SSEKMSKeyId=form)
        assert out["SSEKMSKeyId"] == other["Arn"]
        got = s3.get_object(Bucket=bucket, Key="other.txt")
        assert (got["Body"].read(), got["SSEKMSKeyId"]) == (b"other key", other["Arn"])
    out = s3.put_object(
        Bucket=bucket, Key="alias.txt", Body=b"by alias", ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key["alias"], BucketKeyEnabled=True,
    )
    assert (out["SSEKMSKeyId"], out["BucketKeyEnabled"]) == (kms_key["arn"], True)
    assert s3.head_object(Bucket=bucket, Key="alias.txt")["BucketKeyEnabled"] is True
    # on an SSE-S3 bucket, aws:kms + key
    plain = bucket_name()
    s3.create_bucket(Bucket=plain)
    out = s3.put_object(Bucket=plain, Key="k", Body=b"kms", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["arn"])
    assert (out["ServerSideEncryption"], out["SSEKMSKeyId"]) == ("aws:kms", kms_key["arn"])
    assert "BucketKeyEnabled" not in out
    # a KMS key id with AES256 makes no sense
    assert expect_error(
        s3.put_object, Bucket=plain, Key="k2", Body=b"x", ServerSideEncryption="AES256", SSEKMSKeyId=kms_key["id"]
    ) == (
        "InvalidArgument",
        "Server Side Encryption with KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms",
        400,
    )
    # unknown and malformed keys, as S3 reports KMS's NotFoundException (aws-behavior.md §3.4)
    assert expect_error(
        s3.put_object, Bucket=plain, Key="k2", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="fake-key-id"
    ) == ("KMS.NotFoundException", "Invalid keyId 'fake-key-id'", 400)
    ghost = str(uuid.uuid4())
    assert expect_error(
        s3.put_object, Bucket=plain, Key="k2", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=ghost
    ) == ("KMS.NotFoundException", f"Key 'arn:aws:kms:{REGION}:{ACCOUNT}:key/{ghost}' does not exist", 400)
    assert expect_error(s3.head_object, Bucket=plain, Key="k2")[2] == 404


def test_aws_kms_header_without_a_key_uses_the_bucket_default_key(s3, bucket, kms_key):
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_bucket_config(kms_key["alias"]))
    out = s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms")
    assert out["SSEKMSKeyId"] == kms_key["arn"]


def test_unknown_sse_algorithm(s3, bucket):
    assert expect_error(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="DES") == (
        "InvalidEncryptionAlgorithmError",
        "The Encryption request you specified is not valid. Supported value: AES256.",
        400,
    )


def test_encryption_context_is_bound_and_echoed(server, s3, bucket, kms_key, make_user):
    key_arn = kms_key["arn"]
    context = {"department": "finance", "project": "coffer"}
    ctx_b64 = b64(json.dumps(context).encode())
    out = s3.put_object(
        Bucket=bucket, Key="ctx.txt", Body=b"with context",
        ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["id"], SSEKMSEncryptionContext=ctx_b64,
    )
    assert out["SSEKMSEncryptionContext"] == ctx_b64  # echoed as given
    assert body_of(s3, bucket, "ctx.txt") == b"with context"
    s3.put_object(Bucket=bucket, Key="no-ctx.txt", Body=b"no context", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)

    # a user whose KMS permissions require the context: the pairs really reach KMS, with aws:s3:arn
    u = make_user(
        inline=policy_doc(
            allow("s3:*"),
            allow(["kms:GenerateDataKey", "kms:Decrypt"], key_arn,
                  Condition={"StringEquals": {"kms:EncryptionContext:department": "finance"}}),
        )
    )
    us3 = s3c(u)
    assert body_of(us3, bucket, "ctx.txt") == b"with context"
    assert expect_error(us3.get_object, Bucket=bucket, Key="no-ctx.txt") == (
        "AccessDenied", kms_denied(u.arn, "kms:Decrypt", key_arn), 403,
    )
    out = us3.put_object(Bucket=bucket, Key="mine.txt", Body=b"mine", ServerSideEncryption="aws:kms",
                         SSEKMSKeyId=key_arn, SSEKMSEncryptionContext=b64(b'{"department":"finance"}'))
    assert out["SSEKMSKeyId"] == key_arn
    assert expect_error(us3.put_object, Bucket=bucket, Key="theirs.txt", Body=b"x",
                        ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn) == (
        "AccessDenied", kms_denied(u.arn, "kms:GenerateDataKey", key_arn), 403,
    )
    # S3 sets aws:s3:arn to the object's ARN, and calls KMS with kms:ViaService
    v = make_user(
        inline=policy_doc(
            allow("s3:*"),
            allow("kms:Decrypt", key_arn, Condition={
                "StringEquals": {
                    "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/no-ctx.txt",
                    "kms:ViaService": f"s3.{REGION}.amazonaws.com",
                }
            }),
        )
    )
    assert body_of(s3c(v), bucket, "no-ctx.txt") == b"no context"
    assert expect_error(s3c(v).get_object, Bucket=bucket, Key="ctx.txt")[0] == "AccessDenied"
    # ...so the same permission does not work on KMS directly
    blob = server.client_for("kms", ROOT).encrypt(
        KeyId=key_arn, Plaintext=b"x", EncryptionContext={"aws:s3:arn": f"arn:aws:s3:::{bucket}/no-ctx.txt"}
    )["CiphertextBlob"]
    code, _, _ = expect_error(
        v.client("kms").decrypt, CiphertextBlob=blob, EncryptionContext={"aws:s3:arn": f"arn:aws:s3:::{bucket}/no-ctx.txt"}
    )
    assert code == "AccessDeniedException"

    # a context that is not base64 JSON of strings
    bad = "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map"
    for value in ("not base64!", b64(b"[1, 2]"), b64(b'{"n": 1}'), b64(b"{not json")):
        assert expect_error(
            s3.put_object, Bucket=bucket, Key="bad.txt", Body=b"x", ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_arn, SSEKMSEncryptionContext=value,
        ) == ("InvalidArgument", bad, 400), value


def test_metadata_and_content_headers_round_trip(s3, bucket):
    body = b"\x1f\x8b pretend gzip"
    s3.put_object(
        Bucket=bucket, Key="report.csv.gz", Body=body,
        Metadata={"color": "blue", "Mixed-Case": "Value With Spaces", "empty": ""},
        ContentType="text/csv; charset=utf-8",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="report.csv.gz"',
        ContentLanguage="de-CH",
        CacheControl="max-age=3600, private",
    )
    expected = {
        "ContentType": "text/csv; charset=utf-8",
        "ContentEncoding": "gzip",
        "ContentDisposition": 'attachment; filename="report.csv.gz"',
        "ContentLanguage": "de-CH",
        "CacheControl": "max-age=3600, private",
    }
    meta = {"color": "blue", "mixed-case": "Value With Spaces", "empty": ""}
    got = s3.get_object(Bucket=bucket, Key="report.csv.gz")
    assert got["Body"].read() == body
    assert {k: got.get(k) for k in expected} == expected
    assert got["Metadata"] == meta
    head = s3.head_object(Bucket=bucket, Key="report.csv.gz")
    assert {k: head.get(k) for k in expected} == expected
    assert head["Metadata"] == meta
    # response-* overrides on GET
    got = s3.get_object(
        Bucket=bucket, Key="report.csv.gz",
        ResponseContentType="application/octet-stream",
        ResponseContentDisposition="inline",
        ResponseContentEncoding="identity",
        ResponseContentLanguage="en",
        ResponseCacheControl="no-store",
    )
    assert got["Body"].read() == body
    assert (got["ContentType"], got["ContentDisposition"], got["ContentEncoding"], got["ContentLanguage"], got["CacheControl"]) == (
        "application/octet-stream", "inline", "identity", "en", "no-store",
    )
    # the stored headers are unchanged; a PUT replaces them all
    assert s3.head_object(Bucket=bucket, Key="report.csv.gz")["ContentType"] == "text/csv; charset=utf-8"
    s3.put_object(Bucket=bucket, Key="report.csv.gz", Body=b"v2", ContentType="text/plain")
    head = s3.head_object(Bucket=bucket, Key="report.csv.gz")
    assert (head["ContentType"], head["Metadata"], head["ContentLength"]) == ("text/plain", {}, 2)
    assert "ContentEncoding" not in head and "CacheControl" not in head


def test_default_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="k").get("ContentType") == "binary/octet-stream"


def test_content_md5(s3, bucket):
    body = b"checked with MD5" * 100
    out = s3.put_object(Bucket=bucket, Key="md5.txt", Body=body, ContentMD5=b64(hashlib.md5(body).digest()))
    assert out["ETag"] == f'"{md5_hex(body)}"'
    wrong = b64(hashlib.md5(b"something else").digest())
    assert expect_error(s3.put_object, Bucket=bucket, Key="md5.txt", Body=b"new", ContentMD5=wrong) == (
        "BadDigest", "The Content-MD5 you specified did not match what we received.", 400,
    )
    assert expect_error(s3.put_object, Bucket=bucket, Key="other.txt", Body=b"new", ContentMD5=wrong)[0] == "BadDigest"
    # nothing changed, nothing was created
    assert body_of(s3, bucket, "md5.txt") == body
    assert expect_error(s3.head_object, Bucket=bucket, Key="other.txt")[2] == 404


def test_malformed_content_md5(s3, bucket):
    code, _, status = expect_error(s3.put_object, Bucket=bucket, Key="k", Body=b"bar", ContentMD5="YWJyYWNhZGFicmE=")
    assert (code, status) == ("InvalidDigest", 400)


def test_checksums(server, s3, bucket):
    body = os.urandom(70_000)
    # boto3 sends a CRC32 by default (as a header over plain HTTP)
    out = s3.put_object(Bucket=bucket, Key="crc32", Body=body)
    assert out["ChecksumCRC32"] == crc32_b64(body)
    got = s3.get_object(Bucket=bucket, Key="crc32", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32_b64(body)
    assert got["Body"].read() == body  # botocore validated the checksum too
    # only when asked (botocore asks by default: x-amz-checksum-mode: ENABLED)
    status, headers, _ = signed_request(server.endpoint, ROOT, "s3", method="GET", path=f"/{bucket}/crc32", s3=True)
    assert status == 200 and "x-amz-checksum-crc32" not in headers
    status, headers, _ = signed_request(
        server.endpoint, ROOT, "s3", method="GET", path=f"/{bucket}/crc32", s3=True, headers={"x-amz-checksum-mode": "ENABLED"}
    )
    assert status == 200 and headers["x-amz-checksum-crc32"] == crc32_b64(body)
    # SHA256 and SHA1 on request
    out = s3.put_object(Bucket=bucket, Key="sha256", Body=body, ChecksumAlgorithm="SHA256")
    assert out["ChecksumSHA256"] == b64(hashlib.sha256(body).digest())
    got = s3.get_object(Bucket=bucket, Key="sha256", ChecksumMode="ENABLED")
    assert (got["ChecksumSHA256"], got["Body"].read()) == (b64(hashlib.sha256(body).digest()), body)
    out = s3.put_object(Bucket=bucket, Key="sha1", Body=body, ChecksumAlgorithm="SHA1")
    assert out["ChecksumSHA1"] == b64(hashlib.sha1(body).digest())
    # a ranged GET has no full-object checksum
    part = s3.get_object(Bucket=bucket, Key="sha256", ChecksumMode="ENABLED", Range="bytes=0-99")
    assert part["Body"].read() == body[:100] and "ChecksumSHA256" not in part

    # wrong values: BadDigest, and the previous object stays
    assert expect_error(s3.put_object, Bucket=bucket, Key="crc32", Body=b"new body", ChecksumCRC32="AAAAAA==") == (
        "BadDigest", "The CRC32 you specified did not match the calculated checksum.", 400,
    )
    assert expect_error(
        s3.put_object, Bucket=bucket, Key="sha256", Body=b"new body", ChecksumSHA256=b64(hashlib.sha256(b"x").digest())
    ) == ("BadDigest", "The SHA256 you specified did not match the calculated checksum.", 400)
    assert body_of(s3, bucket, "crc32") == body and body_of(s3, bucket, "sha256") == body

    # corrupted after botocore computed it: a hook changes the header just before sending
    def corrupt(request, **kw):
        del request.headers["x-amz-checksum-crc32"]  # (assigning would add a second header)
        request.headers["x-amz-checksum-crc32"] = crc32_b64(b"not the body")

    hooked = s3c(server)
    hooked.meta.events.register("before-sign.s3.PutObject", corrupt)
    assert expect_error(hooked.put_object, Bucket=bucket, Key="hooked", Body=b"the body") == (
        "BadDigest", "The CRC32 you specified did not match the calculated checksum.", 400,
    )
    # and a raw signed request with a wrong SHA-1
    status, _, text = signed_request(
        server.endpoint, ROOT, "s3", method="PUT", path=f"/{bucket}/raw", body=b"raw body", s3=True,
        headers={"x-amz-checksum-sha1": b64(hashlib.sha1(b"other").digest())},
    )
    assert status == 400, text
    err = parse_s3_error(text)
    assert (err["Code"], err["Message"]) == ("BadDigest", "The SHA1 you specified did not match the calculated checksum.")
    for k in ("hooked", "raw"):
        assert expect_error(s3.head_object, Bucket=bucket, Key=k)[2] == 404
    # the right value in a raw request is accepted
    status, headers, text = signed_request(
        server.endpoint, ROOT, "s3", method="PUT", path=f"/{bucket}/raw", body=b"raw body", s3=True,
        headers={"x-amz-checksum-sha1": b64(hashlib.sha1(b"raw body").digest())},
    )
    assert status == 200, text
    assert headers["x-amz-checksum-sha1"] == b64(hashlib.sha1(b"raw body").digest())


# =============================================================================================
# 4. GetObject: ranges across segments, conditions; HeadObject; DeleteObject


@pytest.fixture(scope="module")
def big_objects(s3, kms_key):
    """300,000 random bytes (five 64 KiB segments, the last one short) under SSE-S3 and SSE-KMS."""
    name = bucket_name("ranges")
    s3.create_bucket(Bucket=name)
    data = os.urandom(300_000)
    s3.put_object(Bucket=name, Key="sse-s3", Body=data)
    s3.put_object(Bucket=name, Key="sse-kms", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["id"])
    s3.put_object(Bucket=name, Key="exact", Body=data[: 3 * SEGMENT])  # a whole number of segments
    s3.put_object(Bucket=name, Key="empty", Body=b"")
    return name, data


RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=0-9", 0, 9),
    ("bytes=65530-65545", 65530, 65545),  # across the first segment boundary
    ("bytes=65535-65536", 65535, 65536),
    ("bytes=65536-131071", 65536, 131071),  # exactly the second segment
    ("bytes=131070-262145", 131070, 262145),  # three boundaries
    ("bytes=262143-262144", 262143, 262144),  # into the short last segment
    ("bytes=100000-", 100000, 299999),
    ("bytes=-10", 299990, 299999),
    ("bytes=-70000", 230000, 299999),
    ("bytes=299999-299999", 299999, 299999),
    ("bytes=299990-400000", 299990, 299999),  # the end is clipped
    ("bytes=-400000", 0, 299999),  # a suffix longer than the object is all of it
]


@pytest.mark.parametrize("key", ["sse-s3", "sse-kms"])
def test_ranges_across_segments(s3, big_objects, key):
    name, data = big_objects
    whole = s3.get_object(Bucket=name, Key=key)
    assert whole["ContentLength"] == len(data) and whole["Body"].read() == data
    assert whole["ResponseMetadata"]["HTTPStatusCode"] == 200 and "ContentRange" not in whole
    for rng, first, last in RANGES:
        got = s3.get_object(Bucket=name, Key=key, Range=rng)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, rng
        assert got["ContentRange"] == f"bytes {first}-{last}/{len(data)}", rng
        assert got["ContentLength"] == last - first + 1, rng
        assert got["Body"].read() == data[first : last + 1], rng
    for rng in ("bytes=300000-", "bytes=300000-300010", "bytes=999999-"):
        assert expect_error(s3.get_object, Bucket=name, Key=key, Range=rng) == (
            "InvalidRange", "The requested range is not satisfiable", 416,
        ), rng


def test_ranges_on_segment_aligned_and_empty_objects(s3, big_objects):
    name, data = big_objects
    exact = data[: 3 * SEGMENT]
    assert body_of(s3, name, "exact") == exact
    for first, last in ((0, 3 * SEGMENT - 1), (2 * SEGMENT - 1, 2 * SEGMENT), (3 * SEGMENT - 5, 3 * SEGMENT - 1)):
        assert body_of(s3, name, "exact", Range=f"bytes={first}-{last}") == exact[first : last + 1]
    assert body_of(s3, name, "exact", Range="bytes=-1") == exact[-1:]
    assert expect_error(s3.get_object, Bucket=name, Key="exact", Range=f"bytes={3 * SEGMENT}-")[2] == 416
    got = s3.get_object(Bucket=name, Key="empty")
    assert (got["ContentLength"], got["Body"].read(), got["ETag"]) == (0, b"", f'"{md5_hex(b"")}"')
    assert expect_error(s3.get_object, Bucket=name, Key="empty", Range="bytes=0-0")[2] == 416


def test_conditional_requests(s3, bucket):
    body = b"conditional"
    s3.put_object(Bucket=bucket, Key="c.txt", Body=body)
    head = s3.head_object(Bucket=bucket, Key="c.txt")
    etag, modified = head["ETag"], head["LastModified"]
    future = modified + dt.timedelta(days=1)
    past = modified - dt.timedelta(days=1)
    not_modified = ("304", "Not Modified", 304)
    failed = ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)

    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfNoneMatch=etag) == not_modified
    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfNoneMatch="*") == not_modified
    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfMatch='"0123456789abcdef0123456789abcdef"') == failed
    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfModifiedSince=future) == not_modified
    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfModifiedSince=modified) == not_modified
    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfUnmodifiedSince=past) == failed
    # the ones that hold
    assert body_of(s3, bucket, "c.txt", IfMatch=etag) == body
    assert body_of(s3, bucket, "c.txt", IfMatch="*") == body
    assert body_of(s3, bucket, "c.txt", IfNoneMatch='"0123456789abcdef0123456789abcdef"') == body
    assert body_of(s3, bucket, "c.txt", IfModifiedSince=past) == body
    assert body_of(s3, bucket, "c.txt", IfUnmodifiedSince=future) == body
    # RFC 9110 precedence as S3 applies it: If-Match true wins over If-Unmodified-Since false,
    # If-None-Match false over If-Modified-Since true
    assert body_of(s3, bucket, "c.txt", IfMatch=etag, IfUnmodifiedSince=past) == body
    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfNoneMatch=etag, IfModifiedSince=past) == not_modified
    # with a range
    assert body_of(s3, bucket, "c.txt", IfMatch=etag, Range="bytes=0-3") == b"cond"
    # HEAD: the statuses without bodies
    assert expect_error(s3.head_object, Bucket=bucket, Key="c.txt", IfNoneMatch=etag) == not_modified
    assert expect_error(s3.head_object, Bucket=bucket, Key="c.txt", IfMatch='"nope"') == ("412", "Precondition Failed", 412)
    assert s3.head_object(Bucket=bucket, Key="c.txt", IfMatch=etag)["ETag"] == etag
    # a new version has a new ETag
    s3.put_object(Bucket=bucket, Key="c.txt", Body=b"changed")
    assert body_of(s3, bucket, "c.txt", IfNoneMatch=etag) == b"changed"
    assert expect_error(s3.get_object, Bucket=bucket, Key="c.txt", IfMatch=etag) == failed


def test_head_object_fields(s3, bucket, kms_key):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
    body = b"head me" * 1000
    s3.put_object(Bucket=bucket, Key="dir/h.bin", Body=body, ContentType="application/x-test", Metadata={"k": "v"})
    h = s3.head_object(Bucket=bucket, Key="dir/h.bin")
    hdrs = h["ResponseMetadata"]["HTTPHeaders"]
    assert h["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (h["ContentLength"], h["ETag"], h["AcceptRanges"], h["ContentType"]) == (
        len(body), f'"{md5_hex(body)}"', "bytes", "application/x-test",
    )
    assert before <= h["LastModified"] <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
    assert h["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in h and "BucketKeyEnabled" not in h
    assert h["Metadata"] == {"k": "v"}
    assert hdrs["content-length"] == str(len(body))
    # the listing agrees
    [o] = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")["Contents"]
    assert (o["Key"], o["Size"], o["ETag"], o["LastModified"], o["StorageClass"]) == (
        "dir/h.bin", len(body), h["ETag"], h["LastModified"], "STANDARD",
    )
    # SSE-KMS: the key ARN; the ETag is not the MD5 (as on AWS)
    s3.put_object(Bucket=bucket, Key="kms.bin", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["alias"])
    k = s3.head_object(Bucket=bucket, Key="kms.bin")
    assert (k["ServerSideEncryption"], k["SSEKMSKeyId"], k["ContentLength"]) == ("aws:kms", kms_key["arn"], len(body))
    assert re.fullmatch(r'"[0-9a-f]{32}"', k["ETag"]) and k["ETag"] != h["ETag"]
    # missing: 404 without a body
    assert expect_error(s3.head_object, Bucket=bucket, Key="nope") == ("404", "Not Found", 404)
    assert expect_error(s3.head_object, Bucket=bucket_name("missing"), Key="nope")[2] == 404
    assert expect_error(s3.get_object, Bucket=bucket, Key="nope") == ("NoSuchKey", "The specified key does not exist.", 404)


def test_delete_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="d.txt", Body=b"bye")
    out = s3.delete_object(Bucket=bucket, Key="d.txt")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert expect_error(s3.get_object, Bucket=bucket, Key="d.txt")[0] == "NoSuchKey"
    # idempotent: deleting a missing key is a success
    assert s3.delete_object(Bucket=bucket, Key="d.txt")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="never-was")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert expect_error(s3.delete_object, Bucket=bucket_name("missing"), Key="k") == (
        "NoSuchBucket", "The specified bucket does not exist", 404,
    )
    # overwrite, then delete: nothing of either version remains
    s3.put_object(Bucket=bucket, Key="d.txt", Body=b"v1")
    s3.put_object(Bucket=bucket, Key="d.txt", Body=b"v2")
    assert body_of(s3, bucket, "d.txt") == b"v2"
    s3.delete_object(Bucket=bucket, Key="d.txt")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# =============================================================================================
# 5. listings


SPECIAL_KEYS = [
    "a b c.txt",
    "plus+sign&amp=1",
    "percent%20literal",
    "ünïcødé/ファイル.txt",
    "ünïcødé/naïve café.md",
    "quote'\"<xml>.txt",
    "tilde~dash-under_score.dot",
    "space dir/inner file",
    "emoji-\U0001F600.bin",
    "top-level",
]


@pytest.fixture(scope="module")
def listing(s3):
    """1,100 keys: data/0000..0999, logs/2024/00..49, logs/2025/00..39 and 10 special ones."""
    name = bucket_name("list")
    s3.create_bucket(Bucket=name)
    keys = (
        [f"data/{i:04d}" for i in range(1000)]
        + [f"logs/2024/{i:02d}" for i in range(50)]
        + [f"logs/2025/{i:02d}" for i in range(40)]
        + SPECIAL_KEYS
    )
    assert len(keys) == 1100
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=name, Key=k, Body=k.encode()), keys))
    # S3 lists in UTF-8 byte order
    return name, sorted(keys, key=lambda k: k.encode())


def expected_listing(keys: list[str], prefix: str, delimiter: str) -> tuple[list[str], list[str]]:
    """What S3 lists for a prefix and delimiter: (keys, common prefixes), each in order."""
    contents, prefixes = [], []
    for k in keys:
        if not k.startswith(prefix):
            continue
        rest = k[len(prefix) :]
        i = rest.find(delimiter)
        if i < 0:
            contents.append(k)
        elif prefix + rest[: i + len(delimiter)] not in prefixes:
            prefixes.append(prefix + rest[: i + len(delimiter)])
    return contents, prefixes


def test_list_objects_v2_pages(s3, listing):
    name, keys = listing
    first = s3.list_objects_v2(Bucket=name)
    assert (first["KeyCount"], first["MaxKeys"], first["IsTruncated"]) == (1000, 1000, True)
    assert [o["Key"] for o in first["Contents"]] == keys[:1000]
    second = s3.list_objects_v2(Bucket=name, ContinuationToken=first["NextContinuationToken"])
    assert (second["KeyCount"], second["IsTruncated"], second["ContinuationToken"]) == (
        100, False, first["NextContinuationToken"],
    )
    assert "NextContinuationToken" not in second
    assert [o["Key"] for o in second["Contents"]] == keys[1000:]
    # sizes: each body is its key
    assert all(o["Size"] == len(o["Key"].encode()) for o in first["Contents"] + second["Contents"])
    # the paginator with max-keys 250: 5 pages
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=name, PaginationConfig={"PageSize": 250}))
    assert [p["KeyCount"] for p in pages] == [250, 250, 250, 250, 100]
    assert [o["Key"] for p in pages for o in p["Contents"]] == keys
    # max-keys above 1000 is 1000
    assert s3.list_objects_v2(Bucket=name, MaxKeys=5000)["KeyCount"] == 1000
    # start-after
    out = s3.list_objects_v2(Bucket=name, StartAfter="data/0995", MaxKeys=7)
    assert [o["Key"] for o in out["Contents"]] == keys[keys.index("data/0995") + 1 :][:7]
    assert out["StartAfter"] == "data/0995" and out["IsTruncated"]
    out = s3.list_objects_v2(Bucket=name, StartAfter="data/09951")  # between keys
    assert out["Contents"][0]["Key"] == "data/0996"
    # a prefix
    out = s3.list_objects_v2(Bucket=name, Prefix="logs/2025/")
    assert [o["Key"] for o in out["Contents"]] == [f"logs/2025/{i:02d}" for i in range(40)]
    assert s3.list_objects_v2(Bucket=name, Prefix="nothing/")["KeyCount"] == 0
    # a bad continuation token
    assert expect_error(s3.list_objects_v2, Bucket=name, ContinuationToken="!!not-a-token!!") == (
        "InvalidArgument", "The continuation token provided is incorrect", 400,
    )
    # fetch-owner
    out = s3.list_objects_v2(Bucket=name, MaxKeys=1, FetchOwner=True)
    assert re.fullmatch(r"[0-9a-f]{64}", out["Contents"][0]["Owner"]["ID"])
    assert "Owner" not in s3.list_objects_v2(Bucket=name, MaxKeys=1)["Contents"][0]


def test_list_objects_v2_delimiter(s3, listing):
    name, keys = listing
    out = s3.list_objects_v2(Bucket=name, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["data/", "logs/", "space dir/", "ünïcødé/"]
    top = [k for k in keys if "/" not in k]
    assert [o["Key"] for o in out["Contents"]] == top
    assert out["KeyCount"] == 4 + len(top) and not out["IsTruncated"]
    out = s3.list_objects_v2(Bucket=name, Prefix="logs/", Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["logs/2024/", "logs/2025/"]
    assert "Contents" not in out and out["KeyCount"] == 2
    # one entry per page: each common prefix once, then the keys
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=name, Delimiter="/", MaxKeys=1, **kw)
        assert page["KeyCount"] == 1
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(["data/", "logs/", "space dir/", "ünïcødé/"] + top, key=lambda k: k.encode())
    # a delimiter that is not "/"
    out = s3.list_objects_v2(Bucket=name, Prefix="data/09", Delimiter="9")
    want_keys, want_prefixes = expected_listing(keys, "data/09", "9")
    assert [o["Key"] for o in out["Contents"]] == want_keys
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == want_prefixes
    assert want_prefixes[:2] == ["data/0909", "data/0919"] and want_prefixes[-1] == "data/099" and len(want_keys) == 81


def test_list_objects_v2_url_encoding(s3, listing):
    name, keys = listing

    def enc(k):
        return urllib.parse.quote(k, safe="/-_.~")

    # botocore asks for encoding-type=url by itself and decodes: keys come back as they are
    out = s3.list_objects_v2(Bucket=name, StartAfter="data/0999", MaxKeys=1000)
    assert [o["Key"] for o in out["Contents"]] == [k for k in keys if k.encode() > b"data/0999"]
    # asked for explicitly, botocore leaves the encoding alone
    out = s3.list_objects_v2(Bucket=name, EncodingType="url", Prefix="ünïcødé/")
    assert out["EncodingType"] == "url"
    assert [o["Key"] for o in out["Contents"]] == [enc("ünïcødé/naïve café.md"), enc("ünïcødé/ファイル.txt")]
    assert out["Prefix"] == enc("ünïcødé/")
    out = s3.list_objects_v2(Bucket=name, EncodingType="url", StartAfter="logs/2025/39", Delimiter="/")
    assert [o["Key"] for o in out["Contents"]] == [enc(k) for k in keys if k.encode() > b"logs/2025/39" and "/" not in k]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == [enc("space dir/"), enc("ünïcødé/")]
    assert enc("a b c.txt") == "a%20b%20c.txt" and enc("plus+sign&amp=1") == "plus%2Bsign%26amp%3D1"
    # every special key reads back by its name
    for k in SPECIAL_KEYS:
        assert body_of(s3, name, k) == k.encode(), k


def test_list_objects_v1(s3, listing):
    name, keys = listing
    out = s3.list_objects(Bucket=name, MaxKeys=300)
    assert (len(out["Contents"]), out["IsTruncated"], out["Marker"]) == (300, True, "")
    assert "NextMarker" not in out  # only with a delimiter; the last key is the next marker
    seen = [o["Key"] for o in out["Contents"]]
    while out["IsTruncated"]:
        out = s3.list_objects(Bucket=name, MaxKeys=300, Marker=seen[-1])
        assert out["Marker"] == seen[-1]
        seen += [o["Key"] for o in out["Contents"]]
    assert seen == keys
    # v1 always names the owner
    assert re.fullmatch(r"[0-9a-f]{64}", s3.list_objects(Bucket=name, MaxKeys=1)["Contents"][0]["Owner"]["ID"])
    out = s3.list_objects(Bucket=name, Prefix="logs/", Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["logs/2024/", "logs/2025/"]
    # the paginator
    got = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=name, PaginationConfig={"PageSize": 400})
           for o in p["Contents"]]
    assert got == keys


def test_list_objects_v1_delimiter_paging_ends(s3, listing):
    name, keys = listing
    seen, marker = [], ""
    for _ in range(20):
        page = s3.list_objects(Bucket=name, Delimiter="/", MaxKeys=1, Marker=marker)
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])] + [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
    top = [k for k in keys if "/" not in k]
    assert seen == sorted(["data/", "logs/", "space dir/", "ünïcødé/"] + top, key=lambda k: k.encode())


def test_list_with_max_keys_zero(s3, listing):
    name, _ = listing
    v2 = s3.list_objects_v2(Bucket=name, MaxKeys=0)
    assert (v2["KeyCount"], v2["IsTruncated"]) == (0, False)
    v1 = s3.list_objects(Bucket=name, MaxKeys=0)
    assert ("Contents" in v1, v1["IsTruncated"]) == (False, False)


# =============================================================================================
# 6. presigned URLs


def test_presigned_urls(server, bucket):
    s3v4 = s3c(server, signature_version="s3v4")
    s3v4.put_object(Bucket=bucket, Key="shared.txt", Body=b"presigned content")
    url = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=300)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=300" in url
    status, headers, text = http_request("GET", url)
    assert (status, text) == (200, "presigned content")
    assert headers["x-amz-server-side-encryption"] == "AES256"
    # response-* overrides travel in the signed query
    url2 = s3v4.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "shared.txt", "ResponseContentDisposition": "attachment; filename=x.txt"},
    )
    status, headers, text = http_request("GET", url2)
    assert status == 200 and headers["content-disposition"] == "attachment; filename=x.txt"
    # a presigned PUT
    put = s3v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "uploaded.txt"}, ExpiresIn=60)
    status, _, text = http_request("PUT", put, body=b"uploaded through a presigned URL")
    assert status == 200, text
    assert body_of(s3v4, bucket, "uploaded.txt") == b"uploaded through a presigned URL"
    # tampering with the URL breaks the signature
    status, _, text = http_request("GET", url.replace("shared.txt", "uploaded.txt"))
    assert status == 403 and parse_s3_error(text)["Code"] == "SignatureDoesNotMatch", text
    # expired: signed two hours ago for one hour
    with signing_time(utcnow() - dt.timedelta(hours=2)):
        old = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=3600)
    status, _, text = http_request("GET", old)
    assert status == 403, text
    err = parse_s3_error(text)
    assert (err["Code"], err["Message"]) == ("AccessDenied", "Request has expired"), text
    # a presigned URL signed a day ago for a week is still good (no 15-minute skew check)
    with signing_time(utcnow() - dt.timedelta(days=1)):
        week = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared.txt"}, ExpiresIn=604800)
    assert http_request("GET", week)[:3:2] == (200, "presigned content")


def test_presigned_url_carries_the_signers_permissions(server, bucket, make_user):
    s3c(server).put_object(Bucket=bucket, Key="r.txt", Body=b"readable")
    reader = make_user(managed=[READ_ONLY])
    rs3 = s3c(reader, signature_version="s3v4")
    url = rs3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "r.txt"})
    assert http_request("GET", url)[::2] == (200, "readable")
    put = rs3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "w.txt"})
    status, _, text = http_request("PUT", put, body=b"nope")
    assert status == 403
    err = parse_s3_error(text)
    assert (err["Code"], err["Message"]) == (
        "AccessDenied", s3_denied(reader.arn, "s3:PutObject", f"arn:aws:s3:::{bucket}/w.txt"),
    )


# =============================================================================================
# 7. authorization


def test_read_only_user(s3, bucket, make_user):
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"read me")
    u = make_user(managed=[READ_ONLY])
    us3 = s3c(u)
    assert body_of(us3, bucket, "doc.txt") == b"read me"
    assert us3.head_object(Bucket=bucket, Key="doc.txt")["ContentLength"] == 7
    assert [o["Key"] for o in us3.list_objects_v2(Bucket=bucket)["Contents"]] == ["doc.txt"]
    assert bucket in [b["Name"] for b in us3.list_buckets()["Buckets"]]
    us3.head_bucket(Bucket=bucket)
    assert us3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert us3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
    # writes are refused with AWS's message (resource ARN quoted)
    assert expect_error(us3.put_object, Bucket=bucket, Key="new/k.txt", Body=b"x") == (
        "AccessDenied", s3_denied(u.arn, "s3:PutObject", f"arn:aws:s3:::{bucket}/new/k.txt"), 403,
    )
    assert expect_error(us3.delete_object, Bucket=bucket, Key="doc.txt") == (
        "AccessDenied", s3_denied(u.arn, "s3:DeleteObject", f"arn:aws:s3:::{bucket}/doc.txt"), 403,
    )
    name = bucket_name()
    assert expect_error(us3.create_bucket, Bucket=name) == (
        "AccessDenied", s3_denied(u.arn, "s3:CreateBucket", f"arn:aws:s3:::{name}"), 403,
    )
    assert expect_error(us3.delete_bucket, Bucket=bucket) == (
        "AccessDenied", s3_denied(u.arn, "s3:DeleteBucket", f"arn:aws:s3:::{bucket}"), 403,
    )
    assert expect_error(us3.put_bucket_policy, Bucket=bucket, Policy=policy_doc(allow("s3:*"))) == (
        "AccessDenied", s3_denied(u.arn, "s3:PutBucketPolicy", f"arn:aws:s3:::{bucket}"), 403,
    )
    assert expect_error(us3.delete_bucket_encryption, Bucket=bucket) == (
        "AccessDenied", s3_denied(u.arn, "s3:PutEncryptionConfiguration", f"arn:aws:s3:::{bucket}"), 403,
    )
    # missing key: NoSuchKey, because the user may list the bucket
    assert expect_error(us3.get_object, Bucket=bucket, Key="missing") == (
        "NoSuchKey", "The specified key does not exist.", 404,
    )
    assert body_of(s3, bucket, "doc.txt") == b"read me"


def test_missing_key_without_list_permission_is_access_denied(s3, bucket, make_user):
    s3.put_object(Bucket=bucket, Key="there", Body=b"here")
    u = make_user(inline=policy_doc(allow("s3:GetObject", f"arn:aws:s3:::{bucket}/*")))
    us3 = s3c(u)
    assert body_of(us3, bucket, "there") == b"here"
    code, _, status = expect_error(us3.get_object, Bucket=bucket, Key="missing")
    assert (code, status) == ("AccessDenied", 403)
    assert expect_error(us3.head_object, Bucket=bucket, Key="missing") == ("403", "Forbidden", 403)
    assert expect_error(us3.list_objects_v2, Bucket=bucket) == (
        "AccessDenied", s3_denied(u.arn, "s3:ListBucket", f"arn:aws:s3:::{bucket}"), 403,
    )
    # another bucket: nothing
    other = bucket_name()
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="there", Body=b"x")
    assert expect_error(us3.get_object, Bucket=other, Key="there") == (
        "AccessDenied", s3_denied(u.arn, "s3:GetObject", f"arn:aws:s3:::{other}/there"), 403,
    )


def test_role_session_is_named_in_denials(server, s3, bucket, iam):
    s3.put_object(Bucket=bucket, Key="r.txt", Body=b"for the role")
    role = f"s3-reader-{uuid.uuid4().hex[:8]}"
    trust = policy_doc({"Effect": "Allow", "Principal": {"AWS": ROOT_ARN}, "Action": "sts:AssumeRole"})
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn=READ_ONLY)
    u = iam.create_user(UserName=f"assumer-{uuid.uuid4().hex[:8]}")["User"]
    iam.put_user_policy(UserName=u["UserName"], PolicyName="assume", PolicyDocument=policy_doc(allow("sts:AssumeRole", role_arn)))
    k = iam.create_access_key(UserName=u["UserName"])["AccessKey"]
    c = server.client_for("sts", Creds(k["AccessKeyId"], k["SecretAccessKey"])).assume_role(
        RoleArn=role_arn, RoleSessionName="s3-session"
    )["Credentials"]
    session = s3c(server, Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]))
    assert body_of(session, bucket, "r.txt") == b"for the role"
    assert expect_error(session.put_object, Bucket=bucket, Key="w.txt", Body=b"x") == (
        "AccessDenied",
        s3_denied(f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s3-session", "s3:PutObject", f"arn:aws:s3:::{bucket}/w.txt"),
        403,
    )
    # without its session token the temporary key is refused
    bare = s3c(server, Creds(c["AccessKeyId"], c["SecretAccessKey"]))
    assert expect_error(bare.get_object, Bucket=bucket, Key="r.txt") == (
        "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403,
    )


def test_temporary_key_without_its_session_token(server, s3, bucket, iam):
    role = f"s3-bare-{uuid.uuid4().hex[:8]}"
    trust = policy_doc({"Effect": "Allow", "Principal": {"AWS": ROOT_ARN}, "Action": "sts:AssumeRole"})
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    u = iam.create_user(UserName=f"assumer-{uuid.uuid4().hex[:8]}")["User"]
    iam.put_user_policy(UserName=u["UserName"], PolicyName="assume", PolicyDocument=policy_doc(allow("sts:AssumeRole", role_arn)))
    k = iam.create_access_key(UserName=u["UserName"])["AccessKey"]
    c = server.client_for("sts", Creds(k["AccessKeyId"], k["SecretAccessKey"])).assume_role(
        RoleArn=role_arn, RoleSessionName="bare"
    )["Credentials"]
    bare = s3c(server, Creds(c["AccessKeyId"], c["SecretAccessKey"]))
    assert expect_error(bare.list_objects_v2, Bucket=bucket) == (
        "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.", 403,
    )


def test_bucket_policy_grants_another_user(s3, bucket, kms_key, make_user):
    s3.put_object(Bucket=bucket, Key="shared/sse-s3.txt", Body=b"shared by policy")
    s3.put_object(Bucket=bucket, Key="shared/sse-kms.txt", Body=b"kms", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["id"])
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"private")
    friend = make_user()  # no identity policy at all
    fs3 = s3c(friend)
    assert expect_error(fs3.get_object, Bucket=bucket, Key="shared/sse-s3.txt") == (
        "AccessDenied", s3_denied(friend.arn, "s3:GetObject", f"arn:aws:s3:::{bucket}/shared/sse-s3.txt"), 403,
    )
    assert expect_error(s3.get_bucket_policy, Bucket=bucket) == ("NoSuchBucketPolicy", "The bucket policy does not exist", 404)

    doc = json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "share",
            "Statement": [
                {
                    "Sid": "ReadShared",
                    "Effect": "Allow",
                    "Principal": {"AWS": friend.arn},
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/shared/*",
                }
            ],
        },
        indent=2,
    )
    out = s3.put_bucket_policy(Bucket=bucket, Policy=doc)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == doc  # kept as written
    assert body_of(fs3, bucket, "shared/sse-s3.txt") == b"shared by policy"
    assert fs3.head_object(Bucket=bucket, Key="shared/sse-s3.txt")["ContentLength"] == 16
    # SSE-KMS still needs KMS's permission, which the bucket policy cannot give
    assert expect_error(fs3.get_object, Bucket=bucket, Key="shared/sse-kms.txt") == (
        "AccessDenied", kms_denied(friend.arn, "kms:Decrypt", kms_key["arn"]), 403,
    )
    # only what the policy names
    assert expect_error(fs3.get_object, Bucket=bucket, Key="private.txt")[:3:2] == ("AccessDenied", 403)
    assert expect_error(fs3.get_object, Bucket=bucket, Key="shared/missing")[:3:2] == ("AccessDenied", 403)
    assert expect_error(fs3.list_objects_v2, Bucket=bucket)[:3:2] == ("AccessDenied", 403)
    assert expect_error(fs3.put_object, Bucket=bucket, Key="shared/x", Body=b"x")[:3:2] == ("AccessDenied", 403)
    # removing the policy removes the access
    assert s3.delete_bucket_policy(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert expect_error(fs3.get_object, Bucket=bucket, Key="shared/sse-s3.txt")[:3:2] == ("AccessDenied", 403)
    assert expect_error(s3.get_bucket_policy, Bucket=bucket)[0] == "NoSuchBucketPolicy"
    # malformed policies
    code, _, status = expect_error(s3.put_bucket_policy, Bucket=bucket, Policy="not json")
    assert (code, status) == ("MalformedPolicy", 400)
    code, _, status = expect_error(s3.put_bucket_policy, Bucket=bucket, Policy='{"Version": "2012-10-17"}')
    assert (code, status) == ("MalformedPolicy", 400)


def test_bucket_policy_requiring_sse_kms(s3, bucket, kms_key, make_user):
    u = make_user(managed=[S3_FULL], inline=policy_doc(allow(["kms:GenerateDataKey", "kms:Decrypt"], kms_key["arn"])))
    us3 = s3c(u)
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyIncorrectEncryptionHeader",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
                    }
                ],
            }
        ),
    )
    for kw in ({}, {"ServerSideEncryption": "AES256"}):
        assert expect_error(us3.put_object, Bucket=bucket, Key="k.txt", Body=b"x", **kw) == (
            "AccessDenied", s3_denied(u.arn, "s3:PutObject", f"arn:aws:s3:::{bucket}/k.txt", "explicit-resource"), 403,
        ), kw
    # root is subject to an explicit deny in a bucket policy too
    assert expect_error(s3.put_object, Bucket=bucket, Key="k.txt", Body=b"x") == (
        "AccessDenied", s3_denied(ROOT_ARN, "s3:PutObject", f"arn:aws:s3:::{bucket}/k.txt", "explicit-resource"), 403,
    )
    out = us3.put_object(Bucket=bucket, Key="k.txt", Body=b"kms only", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["id"])
    assert out["SSEKMSKeyId"] == kms_key["arn"]
    assert body_of(us3, bucket, "k.txt") == b"kms only"
    # the bucket's default encryption does not count: the condition looks at the request header
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_bucket_config(kms_key["id"]))
    assert expect_error(us3.put_object, Bucket=bucket, Key="d.txt", Body=b"x")[:3:2] == ("AccessDenied", 403)
    # reads are not affected
    assert body_of(s3, bucket, "k.txt") == b"kms only"


def test_kms_key_states_as_s3_reports_them(s3, kms, bucket):
    md = kms.create_key()["KeyMetadata"]
    kid, arn = md["KeyId"], md["Arn"]
    s3.put_object(Bucket=bucket, Key="k.txt", Body=b"state test", ServerSideEncryption="aws:kms", SSEKMSKeyId=kid)
    kms.disable_key(KeyId=kid)
    disabled = ("KMS.DisabledException", f"{arn} is disabled.", 400)
    assert expect_error(s3.get_object, Bucket=bucket, Key="k.txt") == disabled
    assert expect_error(s3.put_object, Bucket=bucket, Key="k2.txt", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=kid) == disabled
    assert s3.head_object(Bucket=bucket, Key="k.txt")["SSEKMSKeyId"] == arn  # no KMS call
    kms.enable_key(KeyId=kid)
    assert body_of(s3, bucket, "k.txt") == b"state test"
    kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    pending = ("KMS.KMSInvalidStateException", f"{arn} is pending deletion.", 400)
    assert expect_error(s3.get_object, Bucket=bucket, Key="k.txt") == pending
    assert expect_error(s3.put_object, Bucket=bucket, Key="k2.txt", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=kid) == pending
    assert expect_error(s3.head_object, Bucket=bucket, Key="k2.txt")[2] == 404
    kms.cancel_key_deletion(KeyId=kid)
    kms.enable_key(KeyId=kid)
    assert body_of(s3, bucket, "k.txt") == b"state test"


def test_s3_permissions_without_kms_permissions(s3, bucket, kms_key, make_user):
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=kms_bucket_config(kms_key["alias"]))
    s3.put_object(Bucket=bucket, Key="existing.txt", Body=b"kms data")
    key_arn = kms_key["arn"]
    only_s3 = make_user(inline=policy_doc(allow("s3:*")))
    denied = make_user(inline=policy_doc(allow("s3:*"), allow("kms:*"), deny("kms:*", key_arn)))
    for u, why in ((only_s3, "identity"), (denied, "explicit-identity")):
        us3 = s3c(u)
        assert expect_error(us3.put_object, Bucket=bucket, Key="new.txt", Body=b"x") == (
            "AccessDenied", kms_denied(u.arn, "kms:GenerateDataKey", key_arn, why), 403,
        )
        assert expect_error(us3.get_object, Bucket=bucket, Key="existing.txt") == (
            "AccessDenied", kms_denied(u.arn, "kms:Decrypt", key_arn, why), 403,
        )
        # SSE-S3 is fine for them
        us3.put_object(Bucket=bucket, Key=f"{u.name}.txt", Body=b"sse-s3", ServerSideEncryption="AES256")
        assert body_of(us3, bucket, f"{u.name}.txt") == b"sse-s3"
        assert us3.head_object(Bucket=bucket, Key="existing.txt")["SSEKMSKeyId"] == key_arn
    assert expect_error(s3.head_object, Bucket=bucket, Key="new.txt")[2] == 404


# =============================================================================================
# 8. ciphertext at rest


def newest_blob(data_dir: Path) -> Path:
    files = [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns)


def failed_read(endpoint: str, path: str, plaintext: bytes, first: int = 0, headers: dict | None = None, tries: int = 5) -> set:
    """GETs `path` a few times; each answer must be an error, never the object: either the
    connection closes before a status line, a 500 InternalError before any byte of the object (a
    blob whose header does not match its record is refused when it is opened), or a 200/206 whose
    body stops short and is a prefix of the true plaintext (from byte `first`). Returns the
    outcomes seen."""
    seen = set()
    for _ in range(tries):
        status, hdrs, body, short = raw_get(endpoint, ROOT, path, headers)
        if status is None:
            seen.add("closed before a status line")
            continue
        if status == 500:
            assert b"<Code>InternalError</Code>" in body, body
            seen.add("500 InternalError")
            continue
        assert status in (200, 206) and short, (status, len(body), hdrs)
        assert int(hdrs["content-length"]) > len(body)
        assert body == plaintext[first : first + len(body)], "bytes that are not the object's"
        seen.add(f"{status} with {len(body)} of {hdrs['content-length']} bytes, then closed")
    return seen


def test_tampered_blob_never_yields_wrong_bytes(new_server):
    """What a client sees when stored ciphertext was altered: the server notices while streaming
    (each 64 KiB segment is authenticated); it has usually sent nothing yet and closes the
    connection (boto3: ConnectionClosedError); if earlier, intact segments were already sent, the
    200 response's body stops short of its Content-Length (boto3: ResponseStreamingError). Never a
    complete body, and only bytes of the true plaintext."""
    srv = new_server()
    s3 = s3c(srv)
    s3.create_bucket(Bucket="tamper")
    data = os.urandom(5 * SEGMENT - 1000)  # five segments, the last one short
    s3.put_object(Bucket="tamper", Key="victim", Body=data)
    blob = newest_blob(srv.data_dir)
    raw = bytearray(blob.read_bytes())
    assert len(raw) > len(data)
    assert data[:4096] not in raw and data[SEGMENT : SEGMENT + 4096] not in raw  # ciphertext only
    # flip one bit in the middle of the file (the third segment)
    raw[len(raw) // 2] ^= 0x01
    blob.write_bytes(bytes(raw))

    # boto3: a connection error (no response) or a short body: an exception either way
    for _ in range(3):
        try:
            got = s3.get_object(Bucket="tamper", Key="victim")
        except (ConnectionClosedError, EndpointConnectionError, ProtocolError):
            continue
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200 and got["ContentLength"] == len(data)
        with pytest.raises(ResponseStreamingError):
            got["Body"].read()
    # raw HTTP
    outcomes = failed_read(srv.endpoint, "/tamper/victim", data, tries=10)
    print("tampered segment, whole object:", sorted(outcomes))
    # ranges clear of the bad segment still work; ones that touch it fail the same way
    assert body_of(s3, "tamper", "victim", Range=f"bytes=0-{2 * SEGMENT - 1}") == data[: 2 * SEGMENT]
    assert body_of(s3, "tamper", "victim", Range=f"bytes={3 * SEGMENT}-") == data[3 * SEGMENT :]
    first = 2 * SEGMENT + 10
    failed_read(srv.endpoint, "/tamper/victim", data, first, {"Range": f"bytes={first}-{first + 10}"})
    failed_read(srv.endpoint, "/tamper/victim", data, SEGMENT, {"Range": f"bytes={SEGMENT}-"})

    # a flipped bit in the blob's header: in its segment size (refused when the blob is opened),
    # or in its key-derivation salt (no segment opens)
    for i, name in ((3, "header-size"), (20, "header-salt")):
        s3.put_object(Bucket="tamper", Key=name, Body=data)
        blob = newest_blob(srv.data_dir)
        raw = bytearray(blob.read_bytes())
        raw[i] ^= 0x80
        blob.write_bytes(bytes(raw))
        failed_read(srv.endpoint, f"/tamper/{name}", data)

    # a truncated blob (the last segment cut short)
    s3.put_object(Bucket="tamper", Key="truncated", Body=data)
    blob = newest_blob(srv.data_dir)
    blob.write_bytes(blob.read_bytes()[:-100])
    failed_read(srv.endpoint, "/tamper/truncated", data)
    # the last segment dropped entirely: the segment before it is not marked last, so this fails too
    s3.put_object(Bucket="tamper", Key="dropped", Body=data)
    blob = newest_blob(srv.data_dir)
    last_ct = len(data) - 4 * SEGMENT + 16
    blob.write_bytes(blob.read_bytes()[:-last_ct])
    failed_read(srv.endpoint, "/tamper/dropped", data)
    # two segments swapped (same length)
    s3.put_object(Bucket="tamper", Key="swapped", Body=data)
    blob = newest_blob(srv.data_dir)
    raw = blob.read_bytes()
    ct = SEGMENT + 16
    head_len = len(raw) - 4 * ct - last_ct
    segs = [raw[head_len + i * ct : head_len + (i + 1) * ct] for i in range(4)]
    blob.write_bytes(raw[:head_len] + segs[1] + segs[0] + segs[2] + segs[3] + raw[head_len + 4 * ct :])
    failed_read(srv.endpoint, "/tamper/swapped", data)
    # untouched objects are fine, and the server is still up
    s3.put_object(Bucket="tamper", Key="fine", Body=data)
    assert body_of(s3, "tamper", "fine") == data
    assert body_of(s3, "tamper", "victim", Range="bytes=0-99") == data[:100]


# =============================================================================================
# 9. connections


def test_early_error_answer_to_a_put_announces_connection_close(server):
    """RFC 9112 §9.6: a server that will close the connection after a response says so. Probe: a
    PUT to a missing bucket whose 1-byte body is held back (http.client sends it after the
    headers; botocore's `Expect: 100-continue` only after 100 Continue). Coffer answers 404 at
    once, without the body, so it must close the connection and say `Connection: close`."""
    import socket
    import time

    def probe(expect: bool):
        path = f"/{bucket_name('missing')}/k"
        url, hdrs, _ = sign_s3(server.endpoint, ROOT, "PUT", path, {"Expect": "100-continue"} if expect else {}, b"x")
        u = urllib.parse.urlsplit(url)
        with socket.create_connection((u.hostname, u.port), timeout=3) as c:
            lines = [f"PUT {u.path} HTTP/1.1", f"Host: {u.netloc}", "Content-Length: 1"]
            lines += [f"{k}: {v}" for k, v in hdrs.items() if k.lower() not in ("host", "content-length")]
            c.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data, closed, deadline = b"", False, time.monotonic() + 3
            # the answer comes before the body is sent; only then does the body byte follow
            sent_body = expect
            while time.monotonic() < deadline:
                if not sent_body and b"\r\n\r\n" in data:
                    with contextlib.suppress(OSError):
                        c.sendall(b"x")
                    sent_body = True
                try:
                    chunk = c.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        head = head.decode("latin-1").lower()
        assert head.startswith("http/1.1 404"), head
        assert parse_s3_error(body.decode())["Code"] == "NoSuchBucket", body
        return closed, head

    for expect in (False, True):
        closed, head = probe(expect)
        assert closed, (expect, "the connection stayed open after an answer that left the body unread", head)
        assert "\r\nconnection: close" in head, (expect, head)


# =============================================================================================
# 10. not implemented (yet)


def test_not_implemented(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for call in (
        lambda c: c.get_bucket_replication(Bucket=bucket),
        lambda c: c.get_bucket_lifecycle_configuration(Bucket=bucket),
        lambda c: c.get_object_acl(Bucket=bucket, Key="k"),
    ):
        # a fresh client per call: the server may close the connection after an early answer
        code, _, status = expect_error(call, s3c(server))
        assert (code, status) == ("NotImplemented", 501)


def test_missing_key_and_bucket_are_named_in_the_error(server, bucket):
    status, _, text = signed_request(server.endpoint, ROOT, "s3", method="GET", path=f"/{bucket}/no/such%20key", s3=True)
    err = parse_s3_error(text)
    assert (status, err["Code"], err["Key"]) == (404, "NoSuchKey", "no/such key")
    missing = bucket_name("missing")
    status, _, text = signed_request(server.endpoint, ROOT, "s3", method="GET", path=f"/{missing}/k", s3=True)
    err = parse_s3_error(text)
    assert (status, err["Code"], err["BucketName"]) == (404, "NoSuchBucket", missing)


def test_kms_key_condition_applies_to_put_and_copy(s3, bucket, kms, kms_key, make_user):
    """s3:x-amz-server-side-encryption-aws-kms-key-id is set whenever a write names a key:
    PutObject, CreateMultipartUpload and CopyObject alike."""
    other = kms.create_key(Description="e2e other key")["KeyMetadata"]["Arn"]
    u = make_user(
        inline=policy_doc(
            allow(["s3:PutObject", "s3:GetObject", "kms:GenerateDataKey", "kms:Decrypt"]),
            {
                "Effect": "Deny",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": kms_key["arn"]}},
            },
        )
    )
    us3 = u.client("s3")
    us3.put_object(Bucket=bucket, Key="src", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["arn"])
    for call in [
        lambda: us3.put_object(Bucket=bucket, Key="p", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=other),
        lambda: us3.create_multipart_upload(Bucket=bucket, Key="m", ServerSideEncryption="aws:kms", SSEKMSKeyId=other),
        lambda: us3.copy_object(
            Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
            ServerSideEncryption="aws:kms", SSEKMSKeyId=other,
        ),
    ]:
        code, msg, status = expect_error(call)
        assert (code, status) == ("AccessDenied", 403), msg
    us3.copy_object(
        Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "src"},
        ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["arn"],
    )
