"""SSE-C: objects encrypted under a key the customer sends with every request."""

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import ROOT, uid


@pytest.fixture
def s3(server):
    return server.client_for("s3", ROOT)


def status_code(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def test_sse_c_round_trip_wrong_and_missing_keys(server, s3):
    bucket = uid("ssec")
    s3.create_bucket(Bucket=bucket)
    key, other = os.urandom(32), os.urandom(32)
    data = os.urandom(200_000)  # several segments
    put = s3.put_object(Bucket=bucket, Key="o", Body=data, SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    assert (put["SSECustomerAlgorithm"], put["SSECustomerKeyMD5"]) == ("AES256", md5)
    assert "ServerSideEncryption" not in put
    got = s3.get_object(Bucket=bucket, Key="o", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert got["Body"].read() == data and got["SSECustomerKeyMD5"] == md5
    ranged = s3.get_object(Bucket=bucket, Key="o", Range="bytes=65530-65600", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert ranged["Body"].read() == data[65530:65601]
    # missing key: 400; wrong key: 403 (GET and HEAD)
    assert status_code(s3.get_object, Bucket=bucket, Key="o") == (400, "InvalidRequest")
    assert status_code(s3.head_object, Bucket=bucket, Key="o")[0] == 400
    assert status_code(s3.get_object, Bucket=bucket, Key="o", SSECustomerAlgorithm="AES256", SSECustomerKey=other) == (403, "AccessDenied")
    assert status_code(s3.head_object, Bucket=bucket, Key="o", SSECustomerAlgorithm="AES256", SSECustomerKey=other)[0] == 403
    head = s3.head_object(Bucket=bucket, Key="o", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert head["SSECustomerKeyMD5"] == md5 and head["ContentLength"] == len(data)
    # SSE-C headers on an object that is not SSE-C
    s3.put_object(Bucket=bucket, Key="plain", Body=b"p")
    assert status_code(s3.get_object, Bucket=bucket, Key="plain", SSECustomerAlgorithm="AES256", SSECustomerKey=key) == (400, "InvalidRequest")
    # a bad key MD5 is refused before anything is stored
    raw = server.client_for("s3", ROOT)

    def bad_md5(params, **_):
        params["headers"]["x-amz-server-side-encryption-customer-key-MD5"] = base64.b64encode(b"0" * 16).decode()

    raw.meta.events.register("before-call.s3.PutObject", bad_md5)
    assert status_code(raw.put_object, Bucket=bucket, Key="bad", Body=b"x", SSECustomerAlgorithm="AES256", SSECustomerKey=key) == (400, "InvalidArgument")
    assert status_code(s3.head_object, Bucket=bucket, Key="bad")[0] == 404
    # the customer key never reaches the disk
    for f in server.data_dir.rglob("*"):
        if f.is_file():
            assert key not in f.read_bytes(), f


def test_sse_c_copies(server, s3):
    bucket = uid("ssecc")
    s3.create_bucket(Bucket=bucket)
    key, key2 = os.urandom(32), os.urandom(32)
    s3.put_object(Bucket=bucket, Key="src", Body=b"secret", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    # SSE-C to SSE-S3 (the destination bucket's default)
    s3.copy_object(
        Bucket=bucket, Key="to-s3", CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key,
    )
    assert s3.head_object(Bucket=bucket, Key="to-s3")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="to-s3")["Body"].read() == b"secret"
    # SSE-C to SSE-C under another key
    s3.copy_object(
        Bucket=bucket, Key="rekeyed", CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key,
        SSECustomerAlgorithm="AES256", SSECustomerKey=key2,
    )
    assert s3.get_object(Bucket=bucket, Key="rekeyed", SSECustomerAlgorithm="AES256", SSECustomerKey=key2)["Body"].read() == b"secret"
    assert status_code(s3.get_object, Bucket=bucket, Key="rekeyed", SSECustomerAlgorithm="AES256", SSECustomerKey=key)[0] == 403
    # copying an SSE-C source without its key fails
    assert status_code(s3.copy_object, Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "src"})[0] == 400
