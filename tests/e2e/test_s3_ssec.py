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


def sse_c_args(key: bytes, prefix: str = "") -> dict:
    return {f"{prefix}SSECustomerAlgorithm": "AES256", f"{prefix}SSECustomerKey": key}


def test_sse_c_multipart_upload(server, s3):
    bucket = uid("ssecmp")
    s3.create_bucket(Bucket=bucket)
    key, other = os.urandom(32), os.urandom(32)
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    parts_data = [os.urandom(5 * 1024 * 1024), os.urandom(70_000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32", **sse_c_args(key))
    assert (up["SSECustomerAlgorithm"], up["SSECustomerKeyMD5"]) == ("AES256", md5)
    assert "ServerSideEncryption" not in up
    uid_ = up["UploadId"]
    # every part needs the upload's key: missing 400, another key 400
    assert status_code(s3.upload_part, Bucket=bucket, Key="mp", UploadId=uid_, PartNumber=1, Body=b"x") == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid_, PartNumber=1, Body=b"x", **sse_c_args(other))
    err = e.value.response["Error"]
    assert (err["Code"], err["Message"]) == ("InvalidRequest", "The provided encryption parameters did not match the ones used originally.")
    parts = []
    for n, body in enumerate(parts_data, 1):
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid_, PartNumber=n, Body=body, **sse_c_args(key))
        assert (r["SSECustomerAlgorithm"], r["SSECustomerKeyMD5"]) == ("AES256", md5)
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    # ListParts of an upload with checksums needs the key too
    assert status_code(s3.list_parts, Bucket=bucket, Key="mp", UploadId=uid_) == (400, "InvalidRequest")
    # (botocore encodes the key for ListParts only if given as text)
    encoded = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(), "SSECustomerKeyMD5": md5}
    assert len(s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid_, **encoded)["Parts"]) == 2
    assert status_code(
        s3.complete_multipart_upload, Bucket=bucket, Key="mp", UploadId=uid_, MultipartUpload={"Parts": parts}, **sse_c_args(other)
    ) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid_, MultipartUpload={"Parts": parts})
    assert e.value.response["Error"]["Message"] == (
        "To retrieve Part Checksum data requests must include appropriate encryption parameters."
    )
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid_, MultipartUpload={"Parts": parts}, **sse_c_args(key))
    data = b"".join(parts_data)
    # reading needs the key: 400 without, 403 with another
    assert status_code(s3.get_object, Bucket=bucket, Key="mp") == (400, "InvalidRequest")
    assert status_code(s3.get_object, Bucket=bucket, Key="mp", **sse_c_args(other)) == (403, "AccessDenied")
    got = s3.get_object(Bucket=bucket, Key="mp", **sse_c_args(key))
    assert got["SSECustomerKeyMD5"] == md5 and got["Body"].read() == data
    ranged = s3.get_object(Bucket=bucket, Key="mp", Range="bytes=5242000-5243000", **sse_c_args(key))
    assert ranged["Body"].read() == data[5242000:5243001]
    head = s3.head_object(Bucket=bucket, Key="mp", **sse_c_args(key))
    assert head["ContentLength"] == len(data) and head["ETag"].strip('"').endswith("-2")
    # the customer key never reaches the disk
    for f in server.data_dir.rglob("*"):
        if f.is_file():
            assert key not in f.read_bytes(), f


def test_sse_c_upload_part_copy(s3):
    bucket = uid("ssecpc")
    s3.create_bucket(Bucket=bucket)
    src_key, dst_key = os.urandom(32), os.urandom(32)
    data = os.urandom(5 * 1024 * 1024 + 10)
    s3.put_object(Bucket=bucket, Key="src", Body=data, **sse_c_args(src_key))
    s3.put_object(Bucket=bucket, Key="plain", Body=b"tail bytes")
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst", **sse_c_args(dst_key))
    u = up["UploadId"]
    # the source needs its key, the destination the upload's
    assert status_code(
        s3.upload_part_copy, Bucket=bucket, Key="dst", UploadId=u, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"},
        **sse_c_args(dst_key),
    ) == (400, "InvalidRequest")
    assert status_code(
        s3.upload_part_copy, Bucket=bucket, Key="dst", UploadId=u, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"},
        **sse_c_args(src_key, "CopySource"),
    ) == (400, "InvalidRequest")
    r1 = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=u, PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"},
        **sse_c_args(src_key, "CopySource"), **sse_c_args(dst_key),
    )
    assert r1["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(dst_key).digest()).decode()
    r2 = s3.upload_part_copy(
        Bucket=bucket, Key="dst", UploadId=u, PartNumber=2, CopySource={"Bucket": bucket, "Key": "plain"}, **sse_c_args(dst_key),
    )
    parts = [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]
    # no checksums: Complete does not need the key
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=u, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="dst", **sse_c_args(dst_key))["Body"].read() == data + b"tail bytes"
    assert status_code(s3.get_object, Bucket=bucket, Key="dst", **sse_c_args(src_key)) == (403, "AccessDenied")
    # a multipart SSE-C object copies as a source like any other
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "dst"}, **sse_c_args(dst_key, "CopySource"))
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == data + b"tail bytes"
