"""Multipart uploads with boto3: whole-object checksums as S3 computes them (COMPOSITE and
FULL_OBJECT), the checks S3 makes on part and completion checksums, and what Get/HeadObject
report with x-amz-checksum-mode."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import zlib

import boto3
import botocore.config
import pytest

from e2e_helpers import REGION, ROOT, ROOT_KEY_ID, ROOT_SECRET, expect_error

MIB = 1024 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _table(poly: int) -> list[int]:
    """The byte table of a reflected CRC with polynomial `poly` (reflected form)."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_T64 = _table(0x9A6C9329AC4BC9B5)  # CRC-64/NVME
_T32C = _table(0x82F63B78)  # CRC-32C (Castagnoli)


def _reflected_crc(table: list[int], width: int, data: bytes) -> bytes:
    mask = (1 << width) - 1
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return (c ^ mask).to_bytes(width // 8, "big")


def crc64nvme(data: bytes) -> bytes:
    return _reflected_crc(_T64, 64, data)


def crc32c(data: bytes) -> bytes:
    return _reflected_crc(_T32C, 32, data)


def test_crc64nvme_reference():
    # the check values of CRC-64/NVME and CRC-32C
    assert crc64nvme(b"123456789").hex() == "ae8b14860a799888"
    assert crc32c(b"123456789").hex() == "e3069283"


@pytest.fixture(scope="module")
def s3(server):
    return server.client_for("s3", ROOT)


@pytest.fixture(scope="module")
def bare_s3(server):
    """A client that sends checksums only where the API requires them."""
    cfg = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=ROOT_KEY_ID, aws_secret_access_key=ROOT_SECRET, config=cfg,
    )


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = f"mpu-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def bodies():
    """Two parts: 5 MiB (the minimum for all but the last) and a short last one."""
    return [os.urandom(5 * MIB), os.urandom(123_457)]


def checksum_fields(resp: dict) -> dict:
    return {k: v for k, v in resp.items() if k.startswith("Checksum")}


def test_crc32_composite(s3, bucket, bodies):
    key = "crc32-composite"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")
    assert (up["ChecksumAlgorithm"], up["ChecksumType"]) == ("CRC32", "COMPOSITE")
    uid = up["UploadId"]
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=body, ChecksumAlgorithm="CRC32")
        assert r["ChecksumCRC32"] == b64(crc32(body))
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert (listed["ChecksumAlgorithm"], listed["ChecksumType"]) == ("CRC32", "COMPOSITE")
    assert [p["ChecksumCRC32"] for p in listed["Parts"]] == [p["ChecksumCRC32"] for p in parts]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    mine = [u for u in uploads if u["UploadId"] == uid][0]
    assert (mine["ChecksumAlgorithm"], mine["ChecksumType"]) == ("CRC32", "COMPOSITE")

    # Complete must name each part's checksum, and the right one
    assert expect_error(
        s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]},
    ) == (
        "InvalidRequest",
        "The upload was created using a crc32 checksum. The complete request must include the checksum for each part. It was missing for part 1 in the request.",
        400,
    )
    wrong = [dict(parts[0]), dict(parts[1])]
    wrong[1]["ChecksumCRC32"] = b64(crc32(b"other"))
    code, _, status = expect_error(
        s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": wrong}
    )
    assert (code, status) == ("InvalidPart", 400)
    # the type must be the upload's
    assert expect_error(
        s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts},
        ChecksumType="FULL_OBJECT",
    ) == (
        "InvalidRequest",
        "The upload was created using the COMPOSITE checksum mode. The complete request must use the same checksum mode.",
        400,
    )
    expected = b64(crc32(crc32(bodies[0]) + crc32(bodies[1]))) + "-2"
    # a whole-object checksum sent with Complete must match
    assert expect_error(
        s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts},
        ChecksumCRC32=b64(crc32(b"x")) + "-2",
    ) == ("BadDigest", "The crc32 you specified did not match the calculated checksum.", 400)

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}, ChecksumCRC32=expected
    )
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (expected, "COMPOSITE")
    assert done["ETag"].strip('"').endswith("-2")

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (expected, "COMPOSITE")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (got["ChecksumCRC32"], got["ChecksumType"]) == (expected, "COMPOSITE")
    assert got["Body"].read() == b"".join(bodies)
    # without the mode, no checksum
    assert checksum_fields(s3.head_object(Bucket=bucket, Key=key)) == {}


def test_sha256_composite_checksum_of_part_checksums(s3, bucket, bodies):
    key = "sha256-composite"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    assert up["ChecksumType"] == "COMPOSITE"
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body, ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == b64(hashlib.sha256(body).digest())
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    raw = b"".join(hashlib.sha256(b).digest() for b in bodies)
    assert (done["ChecksumSHA256"], done["ChecksumType"]) == (b64(hashlib.sha256(raw).digest()) + "-2", "COMPOSITE")


def test_crc64nvme_full_object(s3, bare_s3, bucket, bodies):
    key = "crc64nvme-full"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC64NVME")
    assert (up["ChecksumAlgorithm"], up["ChecksumType"]) == ("CRC64NVME", "FULL_OBJECT")
    uid = up["UploadId"]
    # part 1 with its CRC64NVME; part 2 with none (FULL_OBJECT uploads compute it)
    r1 = s3.upload_part(
        Bucket=bucket, Key=key, UploadId=uid, PartNumber=1, Body=bodies[0], ChecksumCRC64NVME=b64(crc64nvme(bodies[0]))
    )
    assert r1["ChecksumCRC64NVME"] == b64(crc64nvme(bodies[0]))
    r2 = bare_s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=bodies[1])
    assert r2["ChecksumCRC64NVME"] == b64(crc64nvme(bodies[1]))
    # a part with another algorithm's checksum is refused
    assert expect_error(
        s3.upload_part, Bucket=bucket, Key=key, UploadId=uid, PartNumber=3, Body=b"x", ChecksumAlgorithm="CRC32"
    ) == (
        "InvalidRequest",
        "Checksum Type mismatch occurred, expected checksum Type: crc64nvme, actual checksum Type: crc32",
        400,
    )
    whole = b64(crc64nvme(b"".join(bodies)))
    parts = [{"PartNumber": 1, "ETag": r1["ETag"]}, {"PartNumber": 2, "ETag": r2["ETag"]}]
    assert expect_error(
        s3.complete_multipart_upload, Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts},
        ChecksumCRC64NVME=b64(crc64nvme(b"not it")), ChecksumType="FULL_OBJECT",
    ) == ("BadDigest", "The crc64nvme you specified did not match the calculated checksum.", 400)
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts},
        ChecksumCRC64NVME=whole, ChecksumType="FULL_OBJECT",
    )
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (whole, "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (got["ChecksumCRC64NVME"], got["ChecksumType"]) == (whole, "FULL_OBJECT")
    assert got["Body"].read() == b"".join(bodies)


def test_crc32_full_object(s3, bucket, bodies):
    key = "crc32-full"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    assert up["ChecksumType"] == "FULL_OBJECT"
    parts = []
    for n, body in enumerate(bodies, 1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=body, ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    # the CRC32 of the whole object, as zlib computes it over all the bytes
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (b64(crc32(b"".join(bodies))), "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == b64(crc32(b"".join(bodies)))
    assert got["Body"].read() == b"".join(bodies)  # botocore validated the CRC32 too


def test_upload_part_copy_gets_the_uploads_checksum(s3, bucket, bodies):
    s3.put_object(Bucket=bucket, Key="copy-src", Body=bodies[0])
    key = "copied-parts"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32C", ChecksumType="FULL_OBJECT")
    r1 = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, CopySource={"Bucket": bucket, "Key": "copy-src"})
    r2 = s3.upload_part_copy(
        Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=2, CopySource={"Bucket": bucket, "Key": "copy-src"},
        CopySourceRange="bytes=0-99",
    )
    parts = [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    assert r1["CopyPartResult"]["ChecksumCRC32C"] == b64(crc32c(bodies[0]))
    assert r2["CopyPartResult"]["ChecksumCRC32C"] == b64(crc32c(bodies[0][:100]))
    # the CRC32C of the whole object
    want = b64(crc32c(bodies[0] + bodies[0][:100]))
    assert (done["ChecksumCRC32C"], done["ChecksumType"]) == (want, "FULL_OBJECT")


def test_checksum_mode_validation(s3, bucket):
    for alg in ("SHA1", "SHA256"):
        assert expect_error(
            s3.create_multipart_upload, Bucket=bucket, Key="k", ChecksumAlgorithm=alg, ChecksumType="FULL_OBJECT"
        ) == ("InvalidRequest", f"The FULL_OBJECT checksum type cannot be used with the {alg.lower()} checksum algorithm.", 400)
    assert expect_error(
        s3.create_multipart_upload, Bucket=bucket, Key="k", ChecksumAlgorithm="CRC64NVME", ChecksumType="COMPOSITE"
    ) == ("InvalidRequest", "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.", 400)
    assert expect_error(s3.create_multipart_upload, Bucket=bucket, Key="k", ChecksumType="COMPOSITE") == (
        "InvalidRequest", "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.", 400,
    )
    # a COMPOSITE upload's part must carry the upload's checksum
    up = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA1")
    assert expect_error(
        s3.upload_part, Bucket=bucket, Key="k", UploadId=up["UploadId"], PartNumber=1, Body=b"x"
    ) == ("InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: sha1, actual checksum Type: crc32", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=up["UploadId"])
    # a single PUT's checksum is FULL_OBJECT
    s3.put_object(Bucket=bucket, Key="one", Body=b"hello")
    head = s3.head_object(Bucket=bucket, Key="one", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (b64(crc32(b"hello")), "FULL_OBJECT")
