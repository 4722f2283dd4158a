"""No plaintext and no secret at rest, checked while the data is still stored: object bodies under
every kind of server-side encryption (small ones live inline in meta.sqlite rows, large ones in blob
files), multipart parts, the SSE-C customer key, KMS plaintexts and data keys, IAM secret access
keys and console passwords, STS secrets and tokens. Each is looked for in every file of the data dir
(meta.sqlite and its -wal/-shm included) and in the server's log (docs/ARCHITECTURE.md
"Invariants")."""

from __future__ import annotations

import os
import uuid

import pytest

from disk_scan import data_files, forms, scan
from e2e_helpers import ACCOUNT, ROOT, Creds, allow, policy_doc, uid

LARGE = 300 * 1024
SMALL = 100


def _marker() -> bytes:
    """16 random bytes, unique to one body."""
    return os.urandom(16)


def _body(marker: bytes, size: int) -> bytes:
    return (marker * (size // len(marker) + 1))[:size]


@pytest.fixture
def srv(new_server):
    return new_server()


def _assert_absent(srv, needles: dict[str, bytes], what: str):
    found = scan(srv.data_dir, needles)
    assert not found, f"{what}: found on disk: {found}"
    log = srv.stderr_text().encode() + srv.stdout_text.encode()
    in_log = [label for label, n in needles.items() if n in log]
    assert not in_log, f"{what}: found in the server's log: {in_log}"


def test_object_bodies_are_never_stored_in_clear(srv):
    s3 = srv.client_for("s3", ROOT)
    kms = srv.client_for("kms", ROOT)
    key_arn = kms.create_key(Description="at rest")["KeyMetadata"]["Arn"]
    bucket = f"at-rest-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=bucket)
    customer_key = os.urandom(32)

    modes = {
        "SSE-S3": ({"ServerSideEncryption": "AES256"}, {}),
        "SSE-KMS": ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn, "BucketKeyEnabled": False}, {}),
        "SSE-KMS+bucket key": (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_arn, "BucketKeyEnabled": True}, {},
        ),
        "SSE-C": (
            {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": customer_key},
            {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": customer_key},
        ),
    }
    needles: dict[str, bytes] = {}
    controls: dict[str, bytes] = {}
    stored = {}
    for mode, (put_kw, get_kw) in modes.items():
        for size in (SMALL, LARGE):
            marker = _marker()
            body = _body(marker, size)
            key = f"{mode}/{size}"
            # Object metadata is stored in clear (as on AWS): finding it proves the search reads
            # the rows just written, wherever they are (log or database file).
            control = f"ctl{uuid.uuid4().hex}"
            out = s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"probe": control}, **put_kw)
            if mode.startswith("SSE-KMS"):
                assert (out["ServerSideEncryption"], out["SSEKMSKeyId"]) == ("aws:kms", key_arn)
                assert out.get("BucketKeyEnabled", False) is put_kw["BucketKeyEnabled"]
            elif mode == "SSE-S3":
                assert out["ServerSideEncryption"] == "AES256"
            else:
                assert out["SSECustomerAlgorithm"] == "AES256"
            assert s3.get_object(Bucket=bucket, Key=key, **get_kw)["Body"].read() == body
            needles[f"{key} body marker"] = marker
            controls[f"{key} metadata"] = control.encode()
            stored[key] = get_kw

    # With every object still stored (and readable, checked again afterwards):
    found = scan(srv.data_dir, controls)
    assert set(found) == set(controls), f"the search misses stored rows: {sorted(set(controls) - set(found))}"
    blobs = [p for p in data_files(srv.data_dir) if "blobs" in p.parts and p.stat().st_size >= LARGE]
    assert len(blobs) >= len(modes), f"large objects should be blob files: {blobs}"
    needles.update(forms("SSE-C customer key", customer_key))
    _assert_absent(srv, needles, "object plaintext / customer key")
    for key, get_kw in stored.items():
        assert len(s3.get_object(Bucket=bucket, Key=key, **get_kw)["Body"].read()) in (SMALL, LARGE)


def test_multipart_sse_kms_parts_are_never_stored_in_clear(srv):
    s3 = srv.client_for("s3", ROOT)
    kms = srv.client_for("kms", ROOT)
    key_arn = kms.create_key(Description="at rest mpu")["KeyMetadata"]["Arn"]
    bucket = f"at-rest-mpu-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    m1, m2 = _marker(), _marker()
    p1, p2 = _body(m1, 5 * 1024 * 1024), _body(m2, SMALL)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpu", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
    assert up["ServerSideEncryption"] == "aws:kms"
    e1 = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up["UploadId"], PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=up["UploadId"], PartNumber=2, Body=p2)["ETag"]
    needles = {"part 1 marker": m1, "part 2 marker": m2}
    # parts uploaded, upload not completed
    _assert_absent(srv, needles, "multipart parts in progress")
    out = s3.complete_multipart_upload(
        Bucket=bucket, Key="mpu", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert (out["ServerSideEncryption"], out["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    _assert_absent(srv, needles, "completed multipart object")
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == p1 + p2


def test_kms_plaintexts_and_data_keys_are_never_stored(srv):
    kms = srv.client_for("kms", ROOT)
    key_id = kms.create_key(Description="at rest kms")["KeyMetadata"]["KeyId"]
    secret = os.urandom(64)
    blob = kms.encrypt(KeyId=key_id, Plaintext=secret, EncryptionContext={"purpose": "at-rest"})["CiphertextBlob"]
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    dk2 = kms.generate_data_key(KeyId=key_id, NumberOfBytes=64)
    random = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    needles = {
        **forms("Encrypt plaintext", secret),
        **forms("GenerateDataKey Plaintext", dk["Plaintext"]),
        **forms("GenerateDataKey(64) Plaintext", dk2["Plaintext"]),
        **forms("GenerateRandom", random),
    }
    _assert_absent(srv, needles, "KMS plaintexts")
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"purpose": "at-rest"})["Plaintext"] == secret
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]


def test_iam_and_sts_secrets_are_never_stored(srv):
    iam = srv.client_for("iam", ROOT)
    user = uid("atrest")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy_doc(allow("sts:*")))
    k = iam.create_access_key(UserName=user)["AccessKey"]
    password = f"At-Rest-{uuid.uuid4().hex}!9"
    iam.create_login_profile(UserName=user, Password=password)

    ucreds = Creds(k["AccessKeyId"], k["SecretAccessKey"])
    c = srv.client_for("sts", ucreds).get_session_token(DurationSeconds=900)["Credentials"]
    role = uid("atrest-role")
    trust = policy_doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"}, "Action": "sts:AssumeRole"})
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    r = srv.client_for("sts", ucreds).assume_role(RoleArn=role_arn, RoleSessionName="atrest")["Credentials"]

    needles = {
        "IAM SecretAccessKey": k["SecretAccessKey"].encode(),
        "login profile password": password.encode(),
        "GetSessionToken SecretAccessKey": c["SecretAccessKey"].encode(),
        "GetSessionToken SessionToken": c["SessionToken"].encode(),
        "AssumeRole SecretAccessKey": r["SecretAccessKey"].encode(),
        "AssumeRole SessionToken": r["SessionToken"].encode(),
    }
    # the records themselves are there (the search can see them)
    found = scan(srv.data_dir, {"access key id": k["AccessKeyId"].encode(), "session key id": c["AccessKeyId"].encode()})
    assert set(found) == {"access key id", "session key id"}, found
    _assert_absent(srv, needles, "IAM/STS secrets")
    # and they all still work
    assert srv.client_for("sts", ucreds).get_caller_identity()["Arn"].endswith(f":user/{user}")
    sess = Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    assert srv.client_for("sts", sess).get_caller_identity()["Arn"].endswith(f":user/{user}")
