"""The AWS managed key aws/s3: S3 makes it on first use when SSE-KMS names no key (request or
bucket default), with AWS's key policy: usable through S3 by every principal of the account
that S3 authorizes, its metadata readable by the account, and nobody can change or delete it."""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import UserHandle
from e2e_helpers import ACCOUNT, REGION, ROOT, CofferServer, Creds, expect_error, uid, user_arn

S3_FULL = "arn:aws:iam::aws:policy/AmazonS3FullAccess"


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A server of this module only: whether aws/s3 exists must not depend on what other
    tests did first."""
    srv = CofferServer(tmp_path_factory.mktemp("aws-managed") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def s3(own):
    return own.client_for("s3", ROOT)


@pytest.fixture(scope="module")
def kms(own):
    return own.client_for("kms", ROOT)


@pytest.fixture
def make_user(own):
    """make_user(managed=[arn]) -> a user of this module's server with those managed policies."""

    def make(managed=()):
        iam = own.client_for("iam", ROOT)
        name = uid("u")
        iam.create_user(UserName=name)
        for arn in managed:
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return UserHandle(name=name, arn=user_arn(name), creds=Creds(k["AccessKeyId"], k["SecretAccessKey"]), server=own)

    return make


def test_sse_kms_without_a_key_uses_aws_s3(s3, kms, make_user):
    # Made on first use: a fresh server has no aws/s3 key yet.
    code, _, _ = expect_error(kms.describe_key, KeyId="alias/aws/s3")
    assert code == "NotFoundException"
    bucket = f"managed-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        },
    )
    # The bucket default is reported as given: no key.
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert "KMSMasterKeyID" not in rule["ApplyServerSideEncryptionByDefault"]

    put = s3.put_object(Bucket=bucket, Key="a.txt", Body=b"managed key body")
    assert put["ServerSideEncryption"] == "aws:kms"
    arn = put["SSEKMSKeyId"]
    meta = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert meta["Arn"] == arn
    assert meta["KeyManager"] == "AWS"
    assert meta["Description"] == "Default key that protects my S3 objects when no other key is defined"
    assert meta["KeyState"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=meta["KeyId"])["KeyRotationEnabled"] is True
    policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    assert policy["Id"] == "auto-s3-2"
    cond = policy["Statement"][0]["Condition"]["StringEquals"]
    assert cond == {"kms:CallerAccount": ACCOUNT, "kms:ViaService": f"s3.{REGION}.amazonaws.com"}

    # A request naming aws:kms without a key on a bucket with SSE-S3 gets the same key.
    plain = f"plain-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=plain)
    put2 = s3.put_object(Bucket=plain, Key="b", Body=b"x", ServerSideEncryption="aws:kms")
    assert put2["SSEKMSKeyId"] == arn
    head = s3.head_object(Bucket=bucket, Key="a.txt")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == arn
    assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"managed key body"

    # Any principal of the account that S3 authorizes may use it through S3, without KMS rights.
    user = make_user(managed=[S3_FULL])
    us3 = user.client("s3")
    assert us3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"managed key body"
    us3.put_object(Bucket=bucket, Key="by-user", Body=b"u")
    # ... but not directly.
    ukms = user.client("kms")
    code, _, _ = expect_error(ukms.encrypt, KeyId=arn, Plaintext=b"x")
    assert code == "AccessDeniedException"

    # Nobody, not even root, may change, disable or delete it, or use it outside S3.
    for call, kwargs in [
        (kms.encrypt, {"KeyId": arn, "Plaintext": b"x"}),
        (kms.schedule_key_deletion, {"KeyId": arn, "PendingWindowInDays": 7}),
        (kms.disable_key, {"KeyId": arn}),
        (kms.put_key_policy, {"KeyId": arn, "PolicyName": "default", "Policy": json.dumps(policy)}),
        (kms.tag_resource, {"KeyId": arn, "Tags": [{"TagKey": "a", "TagValue": "b"}]}),
    ]:
        code, msg, _ = expect_error(call, **kwargs)
        assert code == "AccessDeniedException", (call, code, msg)
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"
    # Listed among the account's keys and aliases.
    assert any(k["KeyId"] == meta["KeyId"] for k in kms.list_keys(Limit=1000)["Keys"])
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(Limit=100)["Aliases"]}
    assert aliases.get("alias/aws/s3") == meta["KeyId"]
