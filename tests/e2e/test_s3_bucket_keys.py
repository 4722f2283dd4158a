"""S3 Bucket Keys: with BucketKeyEnabled, S3 asks KMS (as the caller) for a bucket-level data key
bound to the encryption context {"aws:s3:arn": <bucket ARN>} and derives each object's key from
it; every request is still authorized by KMS as the caller."""

from __future__ import annotations

import json
import uuid

import pytest

from e2e_helpers import ACCOUNT, ROOT, allow, expect_error, policy_doc


@pytest.fixture(scope="module")
def s3(server):
    return server.client_for("s3", ROOT)


@pytest.fixture(scope="module")
def kms(server):
    return server.client_for("kms", ROOT)


def key_policy(*statements) -> str:
    root = {
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *statements]})


def for_context(user_arn: str, s3_arn: str) -> dict:
    """kms:GenerateDataKey and kms:Decrypt for one user, only under one aws:s3:arn context."""
    return {
        "Effect": "Allow", "Principal": {"AWS": user_arn},
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:aws:s3:arn": s3_arn}},
    }


def test_bucket_keys(s3, kms, make_user):
    bucket = f"bk-{uuid.uuid4().hex[:16]}"
    bucket_arn = f"arn:aws:s3:::{bucket}"
    s3_only = policy_doc(allow("s3:*"))
    writer = make_user(inline=s3_only)  # the key policy allows it under the bucket's ARN
    per_object = make_user(inline=s3_only)  # the key policy allows it under one object's ARN
    outsider = make_user(inline=s3_only)  # no KMS permission at all
    key_arn = kms.create_key(
        Description="bucket keys",
        Policy=key_policy(for_context(writer.arn, bucket_arn), for_context(per_object.arn, f"{bucket_arn}/c")),
    )["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True}]
        },
    )
    ws3 = writer.client("s3")
    for k in ("a", "b"):
        out = ws3.put_object(Bucket=bucket, Key=k, Body=f"body {k}".encode())
        assert (out["ServerSideEncryption"], out["SSEKMSKeyId"], out["BucketKeyEnabled"]) == ("aws:kms", key_arn, True)
    for k in ("a", "b"):
        got = ws3.get_object(Bucket=bucket, Key=k)
        assert got["Body"].read() == f"body {k}".encode() and got["BucketKeyEnabled"] is True
    assert ws3.head_object(Bucket=bucket, Key="a")["BucketKeyEnabled"] is True

    # the context is the bucket's ARN: a key policy naming an object's ARN does not match
    code, _, status = expect_error(per_object.client("s3").put_object, Bucket=bucket, Key="c", Body=b"x")
    assert (code, status) == ("AccessDenied", 403)
    # KMS still decides every request, even while the bucket key is in use
    os3 = outsider.client("s3")
    for call, kw in ((os3.put_object, {"Key": "d", "Body": b"x"}), (os3.get_object, {"Key": "a"})):
        code, msg, status = expect_error(call, Bucket=bucket, **kw)
        assert (code, status) == ("AccessDenied", 403) and key_arn in msg, msg
    assert "kms:GenerateDataKey" in expect_error(os3.put_object, Bucket=bucket, Key="d", Body=b"x")[1]
    assert "kms:Decrypt" in expect_error(os3.get_object, Bucket=bucket, Key="a")[1]

    # an object asking for no bucket key gets its own data key, bound to its own ARN (which the
    # writer's key policy statement does not allow)
    own = s3.put_object(Bucket=bucket, Key="own", Body=b"own key", BucketKeyEnabled=False)
    assert "BucketKeyEnabled" not in own
    assert s3.get_object(Bucket=bucket, Key="own")["Body"].read() == b"own key"
    assert expect_error(ws3.get_object, Bucket=bucket, Key="own")[2] == 403

    # a disabled key stops new objects at once, bucket key or not
    kms.disable_key(KeyId=key_arn)
    try:
        code, _, status = expect_error(ws3.put_object, Bucket=bucket, Key="e", Body=b"x")
        assert (code, status) == ("KMS.DisabledException", 400)
        assert expect_error(ws3.get_object, Bucket=bucket, Key="a")[:1] == ("KMS.DisabledException",)
    finally:
        kms.enable_key(KeyId=key_arn)
    assert ws3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"body b"


def test_bucket_key_requested_by_header(s3, kms):
    bucket = f"bkh-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=bucket)
    key_arn = kms.create_key(Description="bucket key header")["KeyMetadata"]["Arn"]
    out = s3.put_object(
        Bucket=bucket, Key="k", Body=b"data", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn, BucketKeyEnabled=True
    )
    assert out["BucketKeyEnabled"] is True
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn, BucketKeyEnabled=True)
    assert up["BucketKeyEnabled"] is True
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part data")
    assert part["BucketKeyEnabled"] is True
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"part data" and got["BucketKeyEnabled"] is True
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
