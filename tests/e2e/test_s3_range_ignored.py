"""A Range header that is not one byte range (`bytes=abc`, several ranges, last < first) is
ignored as AWS does: 200 with the whole object. Clients sign the header; the gateway verifies the
original signature, drops the header and re-signs for s3s's second check."""

from __future__ import annotations

import uuid

import pytest

from e2e_helpers import ROOT, Creds, http_request, parse_s3_error, signed_request

DATA = bytes(range(256)) * 40  # 10 KiB

INVALID = ["bytes=abc", "bytes=0-1,5-6", "bytes=5-2", "items=0-1", "bytes=", "bytes=1-2-3"]


@pytest.fixture(scope="module")
def s3(server):
    return server.client_for("s3", ROOT)


@pytest.fixture(scope="module")
def obj(s3):
    bucket = f"range-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=DATA)
    return bucket, "k"


@pytest.mark.parametrize("rng", INVALID)
def test_boto3_invalid_range_ignored(s3, obj, rng):
    bucket, key = obj
    r = s3.get_object(Bucket=bucket, Key=key, Range=rng)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "ContentRange" not in r
    assert r["Body"].read() == DATA
    h = s3.head_object(Bucket=bucket, Key=key, Range=rng)
    assert h["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert h["ContentLength"] == len(DATA)


def test_valid_ranges_still_apply(s3, obj):
    bucket, key = obj
    r = s3.get_object(Bucket=bucket, Key=key, Range="bytes=10-19")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == f"bytes 10-19/{len(DATA)}"
    assert r["Body"].read() == DATA[10:20]
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=-5")["Body"].read() == DATA[-5:]
    assert s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={len(DATA) - 3}-")["Body"].read() == DATA[-3:]


def test_raw_signed_requests(server, obj, make_user):
    bucket, key = obj
    status, headers, body = signed_request(
        server.endpoint, ROOT, "s3", method="GET", path=f"/{bucket}/{key}", headers={"Range": "bytes=abc"}, s3=True
    )
    assert status == 200, body
    assert "Content-Range" not in headers
    assert int(headers["Content-Length"]) == len(DATA)

    # Session credentials: the token header stays as signed.
    user = make_user(inline='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}')
    c = user.sts.get_session_token()["Credentials"]
    sess = Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    status, headers, body = signed_request(
        server.endpoint, sess, "s3", method="GET", path=f"/{bucket}/{key}", headers={"Range": "bytes=0-1,5-6"}, s3=True
    )
    assert status == 200, body
    assert int(headers["Content-Length"]) == len(DATA)

    # The original signature is still checked before the header is dropped.
    def tamper(h, b):
        h = dict(h)
        h["Range"] = "bytes=xyz"
        return h, b

    status, _, body = signed_request(
        server.endpoint, ROOT, "s3", method="GET", path=f"/{bucket}/{key}", headers={"Range": "bytes=abc"},
        s3=True, tamper=tamper,
    )
    assert status == 403, body
    assert parse_s3_error(body)["Code"] == "SignatureDoesNotMatch"


def test_presigned_url_with_unsigned_range(server, obj):
    bucket, key = obj
    url = server.client_for("s3", ROOT, signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
    )
    status, headers, body = http_request("GET", url, headers={"Range": "bytes=abc"})
    assert status == 200, body
    assert int(headers["Content-Length"]) == len(DATA)
    status, headers, _ = http_request("GET", url, headers={"Range": "bytes=0-3"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 0-3/{len(DATA)}"
