"""S3 object versioning end to end (boto3): bucket versioning states, versions made by PutObject,
CopyObject, CompleteMultipartUpload and POST object, reads by version id (with their own
authorization actions), delete markers, permanent deletion of versions (and of their ciphertext),
the null version of unversioned and suspended buckets, SSE-KMS versions each under its own data
key, tagging of versions, DeleteObjects with version ids, ListObjectVersions (prefix, delimiter,
markers, pagination), DeleteBucket refusals, and restarts."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from e2e_helpers import ROOT, allow, expect_error, policy_doc
from test_s3_post_object import post_form, presigned

BIG = 200 * 1024  # above the 64 KiB inline limit: the ciphertext is a blob file
VERSION_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")


@pytest.fixture(scope="module")
def s3(server):
    return server.client_for("s3", ROOT, signature_version="s3v4")


@pytest.fixture(scope="module")
def kms(server):
    return server.client_for("kms", ROOT)


def new_bucket(s3, status: str | None = "Enabled") -> str:
    name = f"ver-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    if status:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
    return name


def headers(resp) -> dict:
    return resp["ResponseMetadata"]["HTTPHeaders"]


def error_headers(call) -> tuple[str, int, dict]:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as e:
        r = e.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["ResponseMetadata"]["HTTPHeaders"]
    raise AssertionError("expected an error")


def all_versions(s3, bucket: str, **kw) -> tuple[list, list]:
    versions, markers = [], []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kw):
        versions += page.get("Versions", [])
        markers += page.get("DeleteMarkers", [])
    return versions, markers


def blob_files(data_dir) -> set[str]:
    return {p.name for p in (data_dir / "blobs").rglob("*") if p.is_file()}


def empty_bucket(s3, bucket: str):
    versions, markers = all_versions(s3, bucket)
    for v in versions + markers:
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    s3.delete_bucket(Bucket=bucket)


# ---------------------------------------------------------------------------------------------
# bucket versioning configuration


def test_bucket_versioning_states(s3):
    b = new_bucket(s3, None)
    assert "Status" not in s3.get_bucket_versioning(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Suspended"
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    # MFA delete is not supported
    code, _, status = expect_error(
        s3.put_bucket_versioning,
        Bucket=b,
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
    )
    assert (code, status) == ("NotImplemented", 501)
    # no way back to "never configured"
    code, _, status = expect_error(s3.put_bucket_versioning, Bucket=b, VersioningConfiguration={})
    assert (code, status) == ("MalformedXML", 400)
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"


# ---------------------------------------------------------------------------------------------
# versions of objects


def test_puts_make_versions_and_old_ones_stay_readable(s3):
    b = new_bucket(s3)
    bodies = [b"one", b"two" * 1000, bytes(range(256)) * (BIG // 256)]
    ids = []
    for body in bodies:
        r = s3.put_object(Bucket=b, Key="doc.txt", Body=body)
        assert VERSION_ID.match(r["VersionId"]), r["VersionId"]
        assert headers(r)["x-amz-version-id"] == r["VersionId"]
        ids.append(r["VersionId"])
    assert len(set(ids)) == 3
    cur = s3.get_object(Bucket=b, Key="doc.txt")
    assert cur["Body"].read() == bodies[-1] and cur["VersionId"] == ids[-1]
    for vid, body in zip(ids, bodies):
        got = s3.get_object(Bucket=b, Key="doc.txt", VersionId=vid)
        assert got["Body"].read() == body and got["VersionId"] == vid
        head = s3.head_object(Bucket=b, Key="doc.txt", VersionId=vid)
        assert (head["ContentLength"], head["VersionId"]) == (len(body), vid)
        # ranges work on old versions too
        part = s3.get_object(Bucket=b, Key="doc.txt", VersionId=vid, Range="bytes=1-2")
        assert part["Body"].read() == body[1:3]
    # the listings show one object, the newest
    objs = s3.list_objects_v2(Bucket=b)["Contents"]
    assert [(o["Key"], o["Size"]) for o in objs] == [("doc.txt", len(bodies[-1]))]
    assert [o["Key"] for o in s3.list_objects(Bucket=b)["Contents"]] == ["doc.txt"]
    versions, markers = all_versions(s3, b)
    assert markers == []
    assert [v["VersionId"] for v in versions] == ids[::-1]
    assert [v["IsLatest"] for v in versions] == [True, False, False]
    assert [v["Size"] for v in versions] == [len(x) for x in bodies[::-1]]


def test_version_id_errors(s3):
    b = new_bucket(s3)
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    other = s3.put_object(Bucket=b, Key="other", Body=b"y")["VersionId"]
    for bad in ("abc", "x" * 40, "!" * 32):
        for call in (
            lambda: s3.get_object(Bucket=b, Key="k", VersionId=bad),
            lambda: s3.get_object_tagging(Bucket=b, Key="k", VersionId=bad),
            lambda: s3.delete_object(Bucket=b, Key="k", VersionId=bad),
        ):
            code, msg, status = expect_error(call)
            assert (code, msg, status) == ("InvalidArgument", "Invalid version id specified", 400)
    # well formed, but not a version of this key
    for call in (
        lambda: s3.get_object(Bucket=b, Key="k", VersionId=other),
        lambda: s3.get_object_tagging(Bucket=b, Key="k", VersionId=other),
        lambda: s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "k", "VersionId": other}),
    ):
        code, msg, status = expect_error(call)
        assert (code, msg, status) == ("NoSuchVersion", "The specified version does not exist.", 404)
    code, status, _ = error_headers(lambda: s3.head_object(Bucket=b, Key="k", VersionId=other))
    assert status == 404


def test_delete_markers(s3, server):
    b = new_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"a" * BIG)["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"second")["VersionId"]
    d = s3.delete_object(Bucket=b, Key="k")
    assert d["DeleteMarker"] is True and VERSION_ID.match(d["VersionId"])
    marker = d["VersionId"]
    assert headers(d)["x-amz-delete-marker"] == "true"
    # the key is gone for GET/HEAD without a version id...
    code, status, h = error_headers(lambda: s3.get_object(Bucket=b, Key="k"))
    assert (code, status) == ("NoSuchKey", 404)
    assert h["x-amz-delete-marker"] == "true" and h["x-amz-version-id"] == marker
    _, status, h = error_headers(lambda: s3.head_object(Bucket=b, Key="k"))
    assert status == 404 and h["x-amz-delete-marker"] == "true"
    # ...the marker itself cannot be read
    code, status, h = error_headers(lambda: s3.get_object(Bucket=b, Key="k", VersionId=marker))
    assert (code, status) == ("MethodNotAllowed", 405)
    assert h["x-amz-delete-marker"] == "true" and h["x-amz-version-id"] == marker
    assert "last-modified" in h
    # nor copied by version id
    code, msg, status = expect_error(
        s3.copy_object, Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "k", "VersionId": marker}
    )
    assert (code, status) == ("InvalidRequest", 400)
    # the listings hide the key; the versions listing shows the marker as latest
    assert "Contents" not in s3.list_objects_v2(Bucket=b)
    assert "Contents" not in s3.list_objects(Bucket=b)
    versions, markers = all_versions(s3, b)
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [(marker, True)]
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(v2, False), (v1, False)]
    # the old versions are still readable
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"a" * BIG
    # deleting the marker (by version id) brings the object back
    r = s3.delete_object(Bucket=b, Key="k", VersionId=marker)
    assert r["DeleteMarker"] is True and r["VersionId"] == marker
    got = s3.get_object(Bucket=b, Key="k")
    assert (got["Body"].read(), got["VersionId"]) == (b"second", v2)
    # deleting a version permanently removes it and its ciphertext
    before = blob_files(server.data_dir)
    r = s3.delete_object(Bucket=b, Key="k", VersionId=v1)
    assert r["VersionId"] == v1 and "DeleteMarker" not in r
    assert len(before - blob_files(server.data_dir)) == 1
    code, _, status = expect_error(s3.get_object, Bucket=b, Key="k", VersionId=v1)
    assert (code, status) == ("NoSuchVersion", 404)
    # deleting the current version makes the next one current
    v3 = s3.put_object(Bucket=b, Key="k", Body=b"third")["VersionId"]
    s3.delete_object(Bucket=b, Key="k", VersionId=v3)
    assert s3.get_object(Bucket=b, Key="k")["VersionId"] == v2
    # a marker for a key that never existed, then its removal
    d = s3.delete_object(Bucket=b, Key="never")
    assert d["DeleteMarker"] is True
    s3.delete_object(Bucket=b, Key="never", VersionId=d["VersionId"])
    empty_bucket(s3, b)


def test_unversioned_bucket_is_unchanged_and_has_null_versions(s3):
    b = new_bucket(s3, None)
    r = s3.put_object(Bucket=b, Key="k", Body=b"x")
    assert "VersionId" not in r and "x-amz-version-id" not in headers(r)
    r = s3.put_object(Bucket=b, Key="k", Body=b"y")
    g = s3.get_object(Bucket=b, Key="k")
    assert g["Body"].read() == b"y" and "VersionId" not in g
    d = s3.delete_object(Bucket=b, Key="no-such")
    assert "DeleteMarker" not in d and "VersionId" not in d
    versions, markers = all_versions(s3, b)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions] == [("k", "null", True)]
    assert s3.get_object(Bucket=b, Key="k", VersionId="null")["Body"].read() == b"y"
    # enabling versioning keeps the object as its null version
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v = s3.put_object(Bucket=b, Key="k", Body=b"z")["VersionId"]
    versions, _ = all_versions(s3, b)
    assert [(x["VersionId"], x["IsLatest"]) for x in versions] == [(v, True), ("null", False)]
    assert s3.get_object(Bucket=b, Key="k", VersionId="null")["Body"].read() == b"y"
    assert s3.head_object(Bucket=b, Key="k", VersionId="null")["VersionId"] == "null"
    empty_bucket(s3, b)


def test_suspended_bucket_writes_the_null_version(s3, server):
    b = new_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=b, Key="k", Body=b"n" * BIG)
    before = blob_files(server.data_dir)
    s3.put_object(Bucket=b, Key="k", Body=b"null again")  # replaces the null version
    assert len(before - blob_files(server.data_dir)) == 1  # its blob is gone
    versions, _ = all_versions(s3, b)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [("null", True), (v1, False)]
    g = s3.get_object(Bucket=b, Key="k")
    assert g["Body"].read() == b"null again" and g["VersionId"] == "null"
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"
    # a delete makes a null delete marker, replacing the null version
    d = s3.delete_object(Bucket=b, Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    versions, markers = all_versions(s3, b)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [(v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in markers] == [("null", True)]
    # enabled again: a new version on top; the null marker becomes noncurrent
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v3 = s3.put_object(Bucket=b, Key="k", Body=b"three")["VersionId"]
    # suspended again: a put replaces the noncurrent null marker, wherever it is
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=b, Key="k", Body=b"last")
    versions, markers = all_versions(s3, b)
    assert [(v["VersionId"], v["IsLatest"]) for v in versions] == [("null", True), (v3, False), (v1, False)]
    assert markers == []
    empty_bucket(s3, b)


def test_copy_multipart_and_post_make_versions(s3):
    b = new_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=b, Key="src", Body=b"second")
    # copy of an old version, onto the same key: it becomes the newest version
    c = s3.copy_object(Bucket=b, Key="src", CopySource={"Bucket": b, "Key": "src", "VersionId": v1})
    assert c["CopySourceVersionId"] == v1 and VERSION_ID.match(c["VersionId"])
    g = s3.get_object(Bucket=b, Key="src")
    assert (g["Body"].read(), g["VersionId"]) == (b"first", c["VersionId"])
    # copy to another key without a version id: source version reported
    c2 = s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"})
    assert c2["CopySourceVersionId"] == c["VersionId"] and VERSION_ID.match(c2["VersionId"])
    # multipart upload, with an UploadPartCopy of an old version
    part1 = b"p" * (5 << 20)
    up = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=part1)["ETag"]
    pc = s3.upload_part_copy(
        Bucket=b, Key="mp", UploadId=up, PartNumber=2, CopySource={"Bucket": b, "Key": "src", "VersionId": v1}
    )
    assert pc["CopySourceVersionId"] == v1
    done = s3.complete_multipart_upload(
        Bucket=b,
        Key="mp",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": pc["CopyPartResult"]["ETag"]}]},
    )
    assert VERSION_ID.match(done["VersionId"])
    assert s3.get_object(Bucket=b, Key="mp", VersionId=done["VersionId"])["Body"].read() == part1 + b"first"
    mp2 = s3.put_object(Bucket=b, Key="mp", Body=b"small")["VersionId"]
    assert s3.get_object(Bucket=b, Key="mp", VersionId=done["VersionId"])["ContentLength"] == len(part1) + 5
    assert s3.get_object(Bucket=b, Key="mp")["VersionId"] == mp2
    # POST object (browser form upload)
    p = presigned(s3, b, "form.txt")
    status, h, body = post_form(p["url"], p["fields"], b"form 1")
    assert status == 204, body
    first = h["x-amz-version-id"]
    status, h, body = post_form(p["url"], p["fields"], b"form 2")
    assert status == 204, body
    assert VERSION_ID.match(first) and h["x-amz-version-id"] != first
    assert s3.get_object(Bucket=b, Key="form.txt", VersionId=first)["Body"].read() == b"form 1"
    empty_bucket(s3, b)


def test_sse_kms_versions_each_keep_their_encryption(s3, kms):
    k1 = kms.create_key(Description="versions 1")["KeyMetadata"]["Arn"]
    k2 = kms.create_key(Description="versions 2")["KeyMetadata"]["Arn"]
    b = new_bucket(s3)
    s3.put_bucket_encryption(
        Bucket=b,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": k1}}]
        },
    )
    a = s3.put_object(Bucket=b, Key="s", Body=b"A" * BIG)
    assert a["SSEKMSKeyId"] == k1
    c = s3.put_object(Bucket=b, Key="s", Body=b"C" * 10, ServerSideEncryption="AES256")
    d = s3.put_object(Bucket=b, Key="s", Body=b"D" * BIG, ServerSideEncryption="aws:kms", SSEKMSKeyId=k2)
    want = {a["VersionId"]: (b"A" * BIG, k1), c["VersionId"]: (b"C" * 10, None), d["VersionId"]: (b"D" * BIG, k2)}
    for vid, (body, key) in want.items():
        g = s3.get_object(Bucket=b, Key="s", VersionId=vid)
        assert g["Body"].read() == body
        assert g.get("SSEKMSKeyId") == key
        assert g["ServerSideEncryption"] == ("aws:kms" if key else "AES256")
        assert s3.head_object(Bucket=b, Key="s", VersionId=vid).get("SSEKMSKeyId") == key
    # each version has its own data key: disabling k1 locks only the first version
    kms.disable_key(KeyId=k1)
    try:
        code, _, _ = expect_error(s3.get_object, Bucket=b, Key="s", VersionId=a["VersionId"])
        assert code.startswith("KMS.")
        assert s3.get_object(Bucket=b, Key="s", VersionId=c["VersionId"])["Body"].read() == b"C" * 10
        assert s3.get_object(Bucket=b, Key="s")["Body"].read() == b"D" * BIG
    finally:
        kms.enable_key(KeyId=k1)
    assert s3.get_object(Bucket=b, Key="s", VersionId=a["VersionId"])["Body"].read() == b"A" * BIG
    empty_bucket(s3, b)


def test_tagging_of_versions(s3):
    b = new_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="t", Body=b"1", Tagging="gen=one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="t", Body=b"2")["VersionId"]
    r = s3.get_object_tagging(Bucket=b, Key="t", VersionId=v1)
    assert r["TagSet"] == [{"Key": "gen", "Value": "one"}] and r["VersionId"] == v1
    r = s3.get_object_tagging(Bucket=b, Key="t")
    assert r["TagSet"] == [] and r["VersionId"] == v2
    r = s3.put_object_tagging(Bucket=b, Key="t", VersionId=v1, Tagging={"TagSet": [{"Key": "gen", "Value": "old"}]})
    assert r["VersionId"] == v1
    r = s3.put_object_tagging(Bucket=b, Key="t", Tagging={"TagSet": [{"Key": "gen", "Value": "new"}]})
    assert r["VersionId"] == v2
    assert s3.get_object_tagging(Bucket=b, Key="t", VersionId=v1)["TagSet"] == [{"Key": "gen", "Value": "old"}]
    assert s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == [{"Key": "gen", "Value": "new"}]
    r = s3.delete_object_tagging(Bucket=b, Key="t", VersionId=v1)
    assert r["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=b, Key="t", VersionId=v1)["TagSet"] == []
    assert s3.get_object_tagging(Bucket=b, Key="t")["TagSet"] == [{"Key": "gen", "Value": "new"}]
    empty_bucket(s3, b)


def test_version_actions_are_authorized_separately(s3, iam, make_user):
    b = new_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"1")["VersionId"]
    s3.put_object(Bucket=b, Key="k", Body=b"2")
    u = make_user(
        inline=policy_doc(
            allow(["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:GetObjectTagging"], f"arn:aws:s3:::{b}/*"),
            allow("s3:ListBucket", f"arn:aws:s3:::{b}"),
        )
    )
    us3 = u.client("s3")
    assert us3.get_object(Bucket=b, Key="k")["Body"].read() == b"2"
    denied = [
        (lambda: us3.get_object(Bucket=b, Key="k", VersionId=v1), "s3:GetObjectVersion"),
        (lambda: us3.get_object_tagging(Bucket=b, Key="k", VersionId=v1), "s3:GetObjectVersionTagging"),
        (lambda: us3.delete_object(Bucket=b, Key="k", VersionId=v1), "s3:DeleteObjectVersion"),
        (lambda: us3.list_object_versions(Bucket=b), "s3:ListBucketVersions"),
        (
            lambda: us3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "k", "VersionId": v1}),
            "s3:GetObjectVersion",
        ),
    ]
    for call, action in denied:
        code, msg, status = expect_error(call)
        assert (code, status) == ("AccessDenied", 403), (action, code, msg)
        assert action in msg, msg
    _, status, _ = error_headers(lambda: us3.head_object(Bucket=b, Key="k", VersionId=v1))
    assert status == 403
    # DeleteObjects: per entry, s3:DeleteObjectVersion for entries with a version id
    r = us3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k", "VersionId": v1}]})
    assert [e["Code"] for e in r["Errors"]] == ["AccessDenied"]
    # a plain delete (s3:DeleteObject) makes a marker
    assert us3.delete_object(Bucket=b, Key="k")["DeleteMarker"] is True
    # with s3:GetObjectVersion the old version is readable
    iam.put_user_policy(
        UserName=u.name,
        PolicyName="versions",
        PolicyDocument=policy_doc(allow(["s3:GetObjectVersion", "s3:ListBucketVersions"], [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"])),
    )
    assert us3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"1"
    assert len(us3.list_object_versions(Bucket=b)["Versions"]) == 2
    empty_bucket(s3, b)


def test_delete_objects_with_version_ids(s3):
    b = new_bucket(s3)
    va = s3.put_object(Bucket=b, Key="a", Body=b"a1")["VersionId"]
    va2 = s3.put_object(Bucket=b, Key="a", Body=b"a2")["VersionId"]
    s3.put_object(Bucket=b, Key="b", Body=b"b1")
    r = s3.delete_objects(
        Bucket=b,
        Delete={"Objects": [{"Key": "a", "VersionId": va}, {"Key": "b"}, {"Key": "c", "VersionId": "bogus"}]},
    )
    deleted = {d["Key"]: d for d in r["Deleted"]}
    assert deleted["a"]["VersionId"] == va and "DeleteMarker" not in deleted["a"]
    assert deleted["b"]["DeleteMarker"] is True and VERSION_ID.match(deleted["b"]["DeleteMarkerVersionId"])
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("c", "InvalidArgument")]
    versions, markers = all_versions(s3, b)
    assert sorted((v["Key"], v["VersionId"]) for v in versions if v["Key"] == "a") == [("a", va2)]
    assert [m["Key"] for m in markers] == ["b"]
    # removing the marker by version id in a batch
    r = s3.delete_objects(
        Bucket=b, Delete={"Objects": [{"Key": "b", "VersionId": deleted["b"]["DeleteMarkerVersionId"]}]}
    )
    assert r["Deleted"][0]["DeleteMarker"] is True
    assert s3.get_object(Bucket=b, Key="b")["Body"].read() == b"b1"
    empty_bucket(s3, b)


# ---------------------------------------------------------------------------------------------
# ListObjectVersions


def test_list_object_versions_prefix_delimiter_and_markers(s3):
    b = new_bucket(s3)
    made = {}
    for key in ("a/1", "a/2", "b", "c/x/y", "d"):
        made[key] = [s3.put_object(Bucket=b, Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(2)]
    s3.delete_object(Bucket=b, Key="d")
    r = s3.list_object_versions(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "c/"]
    assert [(v["Key"], v["VersionId"]) for v in r["Versions"]] == [
        ("b", made["b"][1]),
        ("b", made["b"][0]),
        ("d", made["d"][1]),
        ("d", made["d"][0]),
    ]
    assert [m["Key"] for m in r["DeleteMarkers"]] == ["d"]
    r = s3.list_object_versions(Bucket=b, Prefix="a/")
    assert [(v["Key"], v["IsLatest"]) for v in r["Versions"]] == [("a/1", True), ("a/1", False), ("a/2", True), ("a/2", False)]
    # key-marker: after every version of that key
    r = s3.list_object_versions(Bucket=b, KeyMarker="b")
    assert r["Versions"][0]["Key"] == "c/x/y"
    # key-marker + version-id-marker: the versions after it
    r = s3.list_object_versions(Bucket=b, KeyMarker="a/2", VersionIdMarker=made["a/2"][1])
    assert [(v["Key"], v["VersionId"]) for v in r["Versions"]][:2] == [("a/2", made["a/2"][0]), ("b", made["b"][1])]
    code, _, status = expect_error(s3.list_object_versions, Bucket=b, VersionIdMarker=made["b"][0])
    assert (code, status) == ("InvalidArgument", 400)
    code, msg, status = expect_error(s3.list_object_versions, Bucket=b, KeyMarker="b", VersionIdMarker="nope")
    assert (code, msg, status) == ("InvalidArgument", "Invalid version id specified", 400)
    # small pages with a delimiter: prefixes and versions each once
    seen, kw = [], {"Bucket": b, "Delimiter": "/", "MaxKeys": 1}
    while True:
        r = s3.list_object_versions(**kw)
        entries = [("p", p["Prefix"]) for p in r.get("CommonPrefixes", [])]
        entries += [("v", v["Key"], v["VersionId"]) for v in r.get("Versions", [])]
        entries += [("m", m["Key"], m["VersionId"]) for m in r.get("DeleteMarkers", [])]
        assert len(entries) == 1
        seen += entries
        if not r["IsTruncated"]:
            break
        kw["KeyMarker"] = r["NextKeyMarker"]
        if "NextVersionIdMarker" in r:
            kw["VersionIdMarker"] = r["NextVersionIdMarker"]
        else:
            kw.pop("VersionIdMarker", None)
    assert [e for e in seen if e[0] == "p"] == [("p", "a/"), ("p", "c/")]
    assert len([e for e in seen if e[0] != "p"]) == 2 + 3  # b ×2, d ×2 + marker
    empty_bucket(s3, b)


def test_list_object_versions_pagination_over_a_thousand_versions(s3):
    b = new_bucket(s3)
    keys = ["k0", "k1", "k2"]
    made = {k: [] for k in keys}
    for i in range(1005):
        k = keys[i % 3]
        made[k].append(s3.put_object(Bucket=b, Key=k, Body=str(i).encode())["VersionId"])
    s3.delete_object(Bucket=b, Key="k1")
    expected = [(k, vid) for k in keys for vid in reversed(made[k])]
    # default page size: 1000, then the rest
    r = s3.list_object_versions(Bucket=b)
    assert r["IsTruncated"] is True and r["MaxKeys"] == 1000
    assert len(r.get("Versions", [])) + len(r.get("DeleteMarkers", [])) == 1000
    for page_size in (1000, 97):
        got, markers = [], []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=b, PaginationConfig={"PageSize": page_size}):
            got += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            markers += [(m["Key"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])]
        assert got == expected
        assert markers == [("k1", True)]
    versions, _ = all_versions(s3, b)
    latest = [(v["Key"], v["VersionId"]) for v in versions if v["IsLatest"]]
    assert latest == [("k0", made["k0"][-1]), ("k2", made["k2"][-1])]
    # ListObjectsV2 is unaffected by the versions
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"]] == ["k0", "k2"]
    # clean up in batches
    versions, markers = all_versions(s3, b)
    everything = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions + markers]
    for i in range(0, len(everything), 1000):
        s3.delete_objects(Bucket=b, Delete={"Objects": everything[i : i + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=b)


# ---------------------------------------------------------------------------------------------
# buckets, restarts


def test_delete_bucket_refuses_while_versions_remain(s3):
    b = new_bucket(s3)
    v = s3.put_object(Bucket=b, Key="k", Body=b"x")["VersionId"]
    m = s3.delete_object(Bucket=b, Key="k")["VersionId"]
    assert "Contents" not in s3.list_objects_v2(Bucket=b)
    code, _, status = expect_error(s3.delete_bucket, Bucket=b)
    assert (code, status) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=b, Key="k", VersionId=v)
    code, _, status = expect_error(s3.delete_bucket, Bucket=b)  # the marker remains
    assert (code, status) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=b, Key="k", VersionId=m)
    s3.delete_bucket(Bucket=b)


def test_versions_survive_a_restart_and_the_sweep_keeps_their_blobs(new_server):
    srv = new_server()
    s3 = srv.client_for("s3", ROOT)
    b = new_bucket(s3)
    marker = uuid.uuid4().hex.encode()
    bodies = [marker + bytes([i]) * BIG for i in range(3)]
    ids = [s3.put_object(Bucket=b, Key="big", Body=body)["VersionId"] for body in bodies]
    small = s3.put_object(Bucket=b, Key="small", Body=marker + b"small")["VersionId"]
    s3.delete_object(Bucket=b, Key="big")
    blobs = blob_files(srv.data_dir)
    assert len(blobs) >= 3
    srv.restart()
    s3 = srv.client_for("s3", ROOT)
    assert blob_files(srv.data_dir) == blobs  # the start sweep kept every version's blob
    for vid, body in zip(ids, bodies):
        assert s3.get_object(Bucket=b, Key="big", VersionId=vid)["Body"].read() == body
    assert s3.get_object(Bucket=b, Key="small", VersionId=small)["Body"].read() == marker + b"small"
    code, _, status = expect_error(s3.get_object, Bucket=b, Key="big")
    assert (code, status) == ("NoSuchKey", 404)
    # no plaintext anywhere in the data dir
    for p in srv.data_dir.rglob("*"):
        if p.is_file():
            assert marker not in p.read_bytes(), p
    assert srv.stop() == 0


def test_keys_with_nul_are_refused(s3):
    bucket = new_bucket(s3)
    code, msg, status = expect_error(s3.put_object, Bucket=bucket, Key="a\x00b", Body=b"x")
    assert (code, status) == ("InvalidArgument", 400), msg
    code, _, status = expect_error(s3.create_multipart_upload, Bucket=bucket, Key="a\x00b")
    assert (code, status) == ("InvalidArgument", 400)
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    code, _, status = expect_error(
        s3.copy_object, Bucket=bucket, Key="c\x00d", CopySource={"Bucket": bucket, "Key": "src"}
    )
    assert (code, status) == ("InvalidArgument", 400)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["src"]


def test_listings_stay_bounded_among_many_delete_markers(s3):
    """Keys whose current version is a delete marker are skipped, but one request reads a bounded
    number of them: a page may end early (truncated), and paging still finds every live key."""
    bucket = new_bucket(s3)
    # 2,500 delete markers (DeleteObjects on keys that never existed), then two live keys.
    for chunk in range(3):
        keys = [{"Key": f"m/{chunk}-{i:04d}"} for i in range(1000 if chunk < 2 else 500)]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.put_object(Bucket=bucket, Key="z1", Body=b"1")
    s3.put_object(Bucket=bucket, Key="z2", Body=b"2")
    first = s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    assert first["IsTruncated"] is True
    assert first.get("KeyCount", 0) <= 1
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == ["z1", "z2"]
    keys = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    assert keys == ["z1", "z2"]
    v, m = all_versions(s3, bucket)
    assert len(m) == 2500 and len(v) == 2


def test_versionid_condition_key(s3, make_user):
    b = new_bucket(s3)
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"1")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"2")["VersionId"]
    u = make_user(
        inline=policy_doc(
            allow(["s3:GetObject", "s3:GetObjectVersion"], f"arn:aws:s3:::{b}/*"),
            {
                "Effect": "Deny",
                "Action": "s3:GetObjectVersion",
                "Resource": f"arn:aws:s3:::{b}/*",
                "Condition": {"StringEquals": {"s3:VersionId": v1}},
            },
        )
    )
    us3 = u.client("s3")
    assert us3.get_object(Bucket=b, Key="k", VersionId=v2)["Body"].read() == b"2"
    code, msg, status = expect_error(us3.get_object, Bucket=b, Key="k", VersionId=v1)
    assert (code, status) == ("AccessDenied", 403), msg
    assert "explicit deny" in msg, msg
