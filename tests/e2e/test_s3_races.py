"""S3 requests that race on one key or one multipart upload, and the multipart error paths.

Each test uses a server of its own (`new_server`) so it can count the blob files in its data
dir: nothing acknowledged may be lost, and nothing refused or aborted may leave a blob behind."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from e2e_helpers import ROOT, expect_error

MIB = 1024 * 1024


def blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]


@pytest.fixture
def srv(new_server):
    return new_server()


@pytest.fixture
def s3(srv):
    return srv.client_for("s3", ROOT)


def user_s3(srv, policy: dict | None = None):
    """An S3 client of a new IAM user of `srv` with the given inline policy (or none)."""
    iam = srv.client_for("iam", ROOT)
    name = f"u{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return srv.client("s3", k["AccessKeyId"], k["SecretAccessKey"])


def bucket_of(s3) -> str:
    name = f"race-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


def test_complete_racing_a_replaced_part_never_names_a_deleted_blob(srv, s3):
    b = bucket_of(s3)
    outcomes = set()
    for round_ in range(8):
        key = f"k{round_}"
        up = s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
        first = os.urandom(5 * MIB)
        tail = os.urandom(1000)
        e1 = s3.upload_part(Bucket=b, Key=key, UploadId=up, PartNumber=1, Body=first)["ETag"]
        e2 = s3.upload_part(Bucket=b, Key=key, UploadId=up, PartNumber=2, Body=tail)["ETag"]
        replacement = os.urandom(5 * MIB)
        go = threading.Barrier(2)
        result = {}

        def complete():
            go.wait()
            try:
                result["complete"] = s3.complete_multipart_upload(
                    Bucket=b,
                    Key=key,
                    UploadId=up,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
                )
            except ClientError as e:
                result["complete"] = e.response["Error"]["Code"]

        def replace():
            go.wait()
            try:
                s3.upload_part(Bucket=b, Key=key, UploadId=up, PartNumber=1, Body=replacement)
                result["replace"] = "ok"
            except ClientError as e:
                result["replace"] = e.response["Error"]["Code"]

        ts = [threading.Thread(target=complete), threading.Thread(target=replace)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        if isinstance(result["complete"], dict):
            # Acknowledged: the object is exactly the parts the request named, and readable.
            body = s3.get_object(Bucket=b, Key=key)["Body"].read()
            assert hashlib.sha256(body).digest() == hashlib.sha256(first + tail).digest(), round_
            outcomes.add(("completed", result["replace"]))
            assert result["replace"] in ("ok", "NoSuchUpload"), result
        else:
            assert result["complete"] == "InvalidPart", result
            assert result["replace"] == "ok", result
            outcomes.add(("refused", "ok"))
            s3.abort_multipart_upload(Bucket=b, Key=key, UploadId=up)
    # Whatever the interleavings, no upload is left and every blob file belongs to an object.
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []
    objects = s3.list_objects_v2(Bucket=b).get("KeyCount", 0)
    # Each completed object has 1 large part file (the 1000-byte part is a file too: parts
    # are never inline); nothing else may remain.
    assert len(blob_files(srv.data_dir)) == 2 * objects, outcomes


def test_multipart_error_paths(srv, s3):
    b = bucket_of(s3)
    up = s3.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    small = s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=1, Body=b"x" * 1000)["ETag"]
    last = s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=2, Body=b"y" * 10)["ETag"]
    code, _, status = expect_error(
        s3.complete_multipart_upload,
        Bucket=b,
        Key="k",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": last}]},
    )
    assert (code, status) == ("EntityTooSmall", 400)
    code, _, status = expect_error(
        s3.complete_multipart_upload,
        Bucket=b,
        Key="k",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": last}, {"PartNumber": 1, "ETag": small}]},
    )
    assert (code, status) == ("InvalidPartOrder", 400)
    code, _, status = expect_error(
        s3.complete_multipart_upload,
        Bucket=b,
        Key="k",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": last}]},
    )
    assert (code, status) == ("InvalidPart", 400)
    # An unknown upload id is NoSuchUpload.
    code, _, status = expect_error(
        s3.upload_part, Bucket=b, Key="k", UploadId="nope", PartNumber=1, Body=b"z"
    )
    assert (code, status) == ("NoSuchUpload", 404)
    # A user with no S3 permission may not touch the upload.
    ns3 = user_s3(srv)
    code, _, status = expect_error(
        ns3.upload_part, Bucket=b, Key="k", UploadId=up, PartNumber=3, Body=b"z"
    )
    assert (code, status) == ("AccessDenied", 403)
    code, _, status = expect_error(ns3.abort_multipart_upload, Bucket=b, Key="k", UploadId=up)
    assert (code, status) == ("AccessDenied", 403)
    assert len(blob_files(srv.data_dir)) == 2
    # Abort: the upload and every part's blob are gone; later calls are NoSuchUpload.
    s3.abort_multipart_upload(Bucket=b, Key="k", UploadId=up)
    assert blob_files(srv.data_dir) == []
    for call, kw in [
        (s3.upload_part, {"PartNumber": 1, "Body": b"z"}),
        (s3.list_parts, {}),
        (s3.abort_multipart_upload, {}),
        (
            s3.complete_multipart_upload,
            {"MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": small}]}},
        ),
    ]:
        code, _, status = expect_error(call, Bucket=b, Key="k", UploadId=up, **kw)
        assert (code, status) == ("NoSuchUpload", 404), call
    assert blob_files(srv.data_dir) == []


def test_delete_bucket_takes_its_uploads_in_progress_with_it(srv, s3):
    b = bucket_of(s3)
    up = s3.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    s3.upload_part(Bucket=b, Key="k", UploadId=up, PartNumber=1, Body=os.urandom(2000))
    assert len(blob_files(srv.data_dir)) == 1
    s3.delete_bucket(Bucket=b)
    assert blob_files(srv.data_dir) == []
    # A new bucket of the same name starts with no upload.
    s3.create_bucket(Bucket=b)
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []
    code, _, _ = expect_error(s3.list_parts, Bucket=b, Key="k", UploadId=up)
    assert code == "NoSuchUpload"


def test_copy_with_a_bad_tagging_header_writes_nothing(srv, s3):
    b = bucket_of(s3)
    body = os.urandom(200 * 1024)  # large enough for a blob file
    s3.put_object(Bucket=b, Key="src", Body=body)
    before = blob_files(srv.data_dir)
    code, _, status = expect_error(
        s3.copy_object,
        Bucket=b,
        Key="dst",
        CopySource={"Bucket": b, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="a=1&a=2",
    )
    assert (code, status) == ("InvalidTag", 400)
    assert blob_files(srv.data_dir) == before
    expect_error(s3.head_object, Bucket=b, Key="dst")


def test_copy_with_tags_needs_put_object_tagging_and_its_conditions(srv, s3):
    b = bucket_of(s3)
    s3.put_object(Bucket=b, Key="src", Body=b"hello")
    us3 = user_s3(
        srv,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": "s3:PutObjectTagging",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"s3:RequestObjectTag/team": "blue"}},
                },
            ],
        },
    )
    us3.copy_object(
        Bucket=b, Key="ok", CopySource={"Bucket": b, "Key": "src"}, TaggingDirective="REPLACE", Tagging="team=blue"
    )
    tags = s3.get_object_tagging(Bucket=b, Key="ok")["TagSet"]
    assert tags == [{"Key": "team", "Value": "blue"}]
    code, _, status = expect_error(
        us3.copy_object,
        Bucket=b,
        Key="no",
        CopySource={"Bucket": b, "Key": "src"},
        TaggingDirective="REPLACE",
        Tagging="team=red",
    )
    assert (code, status) == ("AccessDenied", 403)
    expect_error(s3.head_object, Bucket=b, Key="no")


def test_a_get_of_a_many_part_object_holds_one_part_open_at_a_time(srv, s3):
    b = bucket_of(s3)
    up = s3.create_multipart_upload(Bucket=b, Key="big")["UploadId"]
    part = os.urandom(5 * MIB)
    parts = []
    for n in range(1, 13):
        e = s3.upload_part(Bucket=b, Key="big", UploadId=up, PartNumber=n, Body=part)["ETag"]
        parts.append({"PartNumber": n, "ETag": e})
    s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=up, MultipartUpload={"Parts": parts})
    fd_dir = Path(f"/proc/{srv.proc.pid}/fd")
    before = len(list(fd_dir.iterdir()))
    body = s3.get_object(Bucket=b, Key="big")["Body"]
    first = body.read(1024)
    during = len(list(fd_dir.iterdir()))
    rest = body.read()
    assert first + rest == part * 12
    # The connection and one part's file (two handles while it opens the next), not 12 parts.
    assert during - before <= 4, (before, during)


def test_caller_chosen_encryption_contexts_do_not_grow_the_bucket_record(srv, s3):
    import base64
    import sqlite3

    kms = srv.client_for("kms", ROOT)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    b = bucket_of(s3)
    s3.put_bucket_encryption(
        Bucket=b,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    for i in range(40):
        ctx = base64.b64encode(json.dumps({"n": str(i)}).encode()).decode()
        s3.put_object(Bucket=b, Key=f"k{i}", Body=b"x", SSEKMSEncryptionContext=ctx)
    db = sqlite3.connect(f"file:{srv.data_dir / 'meta.sqlite'}?mode=ro", uri=True)
    (value,) = db.execute("SELECT value FROM kv WHERE ns = 's3.bucket' AND key = ?", (b,)).fetchone()
    db.close()
    assert len(json.loads(value)["bucket_keys"]) <= 32
    # Every object still reads back (each keeps its own copy of its bucket key's ciphertext).
    for i in (0, 20, 39):
        assert s3.get_object(Bucket=b, Key=f"k{i}")["Body"].read() == b"x"


def test_list_multipart_uploads_pages_by_key_then_initiation(srv, s3):
    b = bucket_of(s3)
    made = []
    for key in ["b", "a", "c/1", "a", "c/2", "b"]:
        made.append((key, s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]))
    seen = []
    kw = {}
    while True:
        r = s3.list_multipart_uploads(Bucket=b, MaxUploads=2, **kw)
        seen += [(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])]
        if not r["IsTruncated"]:
            break
        kw = {"KeyMarker": r["NextKeyMarker"], "UploadIdMarker": r["NextUploadIdMarker"]}
    assert [k for k, _ in seen] == ["a", "a", "b", "b", "c/1", "c/2"]
    # Within a key, in the order they were initiated (made[] is in initiation order).
    for key in ("a", "b"):
        assert [u for k, u in seen if k == key] == [u for k, u in made if k == key]
    assert sorted(seen) == sorted(made)
    r = s3.list_multipart_uploads(Bucket=b, Prefix="c/")
    assert [u["Key"] for u in r["Uploads"]] == ["c/1", "c/2"]
    r = s3.list_multipart_uploads(Bucket=b, KeyMarker="b")
    assert [u["Key"] for u in r["Uploads"]] == ["c/1", "c/2"]
    # Aborted and completed uploads leave the listing.
    key, up = made[0]
    s3.abort_multipart_upload(Bucket=b, Key=key, UploadId=up)
    r = s3.list_multipart_uploads(Bucket=b)
    assert (key, up) not in [(u["Key"], u["UploadId"]) for u in r["Uploads"]]
    assert len(r["Uploads"]) == 5


def test_reading_a_version_while_newer_ones_are_deleted_and_promoted_never_misses(srv, s3):
    b = bucket_of(s3)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    versions = []
    for i in range(30):
        versions.append((s3.put_object(Bucket=b, Key="k", Body=f"v{i}".encode())["VersionId"], f"v{i}".encode()))
    keep_id, keep_body = versions[0]
    stop = threading.Event()
    misses = []
    reads = [0]

    def read():
        while not stop.is_set():
            try:
                body = s3.get_object(Bucket=b, Key="k", VersionId=keep_id)["Body"].read()
                if body != keep_body:
                    misses.append(body)
                reads[0] += 1
            except ClientError as e:
                misses.append(e.response["Error"]["Code"])

    readers = [threading.Thread(target=read) for _ in range(3)]
    [t.start() for t in readers]
    try:
        # Newest first: each delete removes the current version and promotes the next one.
        for vid, _ in reversed(versions[1:]):
            s3.delete_object(Bucket=b, Key="k", VersionId=vid)
            # And a version in the middle of the list, by id, as the current row moves.
            got = s3.get_object(Bucket=b, Key="k")["Body"].read()
            assert got in {body for _, body in versions}
    finally:
        stop.set()
        [t.join() for t in readers]
    assert misses == [], misses[:5]
    assert reads[0] > 0
    listed = s3.list_object_versions(Bucket=b, Prefix="k")["Versions"]
    assert [(v["VersionId"], v["IsLatest"]) for v in listed] == [(keep_id, True)]
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == keep_body


def test_concurrent_writes_to_one_key_keep_every_acknowledged_version_and_no_orphan(srv, s3):
    b = bucket_of(s3)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    acked = {}
    lock = threading.Lock()

    def write(t):
        c = srv.client_for("s3", ROOT)
        for i in range(8):
            body = f"{t}-{i}-".encode() + os.urandom(70 * 1024 if i % 2 else 100)
            vid = c.put_object(Bucket=b, Key="hot", Body=body)["VersionId"]
            with lock:
                acked[vid] = hashlib.sha256(body).hexdigest()

    ts = [threading.Thread(target=write, args=(t,)) for t in range(6)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    listed = s3.list_object_versions(Bucket=b, Prefix="hot")["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(acked)
    for vid, digest in acked.items():
        body = s3.get_object(Bucket=b, Key="hot", VersionId=vid)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest
    # Unversioned: the last writer wins, and every overwritten blob is gone.
    u = bucket_of(s3)
    ts = [threading.Thread(target=lambda t=t: [srv.client_for("s3", ROOT).put_object(Bucket=u, Key="hot", Body=os.urandom(70 * 1024)) for _ in range(5)]) for t in range(6)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    big_versions = sum(1 for v in listed if v["Size"] > 64 * 1024)
    assert len(blob_files(srv.data_dir)) == big_versions + 1
