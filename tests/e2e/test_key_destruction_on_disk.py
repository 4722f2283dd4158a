"""Scheduled key deletion really destroys the key: once the window has passed (test clock) and the
server has restarted on the same data dir, neither the key's wrapped material nor its record is
anywhere in the data dir's files (meta.sqlite, its -wal and -shm, blobs/, tmp/), and everything that
was encrypted under it (a KMS ciphertext, SSE-KMS objects with and without a bucket key) is
unreadable with AWS's errors (aws-behavior.md §2.7, §3.4)."""

from __future__ import annotations

import base64
import os
import uuid

from disk_scan import kv_get, kv_rows, scan
from e2e_helpers import ACCOUNT, ROOT, expect_error

DAY = 86400
CIPHERTEXT_ORPHAN = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, "
    "or you are not allowed to access."
)


def _bucket(s3, key_arn: str, bucket_key: bool) -> str:
    name = f"destroy-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                    "BucketKeyEnabled": bucket_key,
                }
            ]
        },
    )
    return name


def test_deleted_key_leaves_nothing_on_disk(clock_server):
    srv = clock_server
    kms = srv.client_for("kms", ROOT)
    s3 = srv.client_for("s3", ROOT)

    # A description unique to this key: it lives only in the key's kms.key row, so finding it
    # anywhere after the deletion would mean the row's bytes survived (a stale page, the log).
    row_marker = f"doomed-key-row-{uuid.uuid4().hex}"
    md = kms.create_key(Description=row_marker)["KeyMetadata"]
    key_id, key_arn = md["KeyId"], md["Arn"]
    plaintext = os.urandom(48)
    blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext

    per_object = _bucket(s3, key_arn, bucket_key=False)
    with_bucket_key = _bucket(s3, key_arn, bucket_key=True)
    bodies = {}
    for bucket, bk in ((per_object, False), (with_bucket_key, True)):
        body = f"marker {uuid.uuid4().hex}\n".encode() * 10
        out = s3.put_object(Bucket=bucket, Key="marker.txt", Body=body)
        assert (out["ServerSideEncryption"], out["SSEKMSKeyId"]) == ("aws:kms", key_arn)
        assert out.get("BucketKeyEnabled", False) is bk
        assert s3.get_object(Bucket=bucket, Key="marker.txt")["Body"].read() == body
        bodies[bucket] = body

    # The key's record as stored: its material versions, wrapped by the root key (base64).
    rec = kv_get(srv.data_dir, "kms.key", f"{ACCOUNT}/{key_id}")
    assert rec is not None, [k for n, k, _ in kv_rows(srv.data_dir, "kms.")]
    assert rec["id"] == key_id and rec["description"] == row_marker
    wrapped = [m["wrapped"] for m in rec["materials"]]
    assert wrapped and all(wrapped), rec["materials"]
    needles = {"key id": key_id.encode(), "row marker": row_marker.encode()}
    for i, w in enumerate(wrapped):
        needles[f"material {i} (base64 as stored)"] = w.encode()
        needles[f"material {i} (raw)"] = base64.b64decode(w)
    # The search sees the stored record (whether it is still in the log or already in the
    # database file): otherwise the absence below would prove nothing.
    before = scan(srv.data_dir, needles)
    for label in ["key id", "row marker", *(f"material {i} (base64 as stored)" for i in range(len(wrapped)))]:
        assert label in before, f"{label} not found in the data dir before the deletion: {before}"

    r = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert (r["KeyId"], r["KeyState"]) == (key_arn, "PendingDeletion")
    out = srv.advance_clock(8 * DAY)
    assert out["deleted"] == 1, out

    srv.restart()  # SIGTERM (exit 0 asserted), then the same data dir and --test-clock again
    assert srv.proc.poll() is None

    after = scan(srv.data_dir, needles)
    # No trace of the material, in any form, nor of the key's record.
    leaked = {k: v for k, v in after.items() if k != "key id"}
    assert not leaked, f"the destroyed key is still on disk: {leaked}"
    # The key id: S3 legitimately keeps naming the key its objects (s3.object: the key ARN of
    # their SSE-KMS data key) and buckets (s3.bucket: default encryption, bucket keys) were
    # encrypted under, as AWS does (HeadObject still reports SSEKMSKeyId). So the id may remain
    # in live S3 rows of meta.sqlite, but in no KMS row, and in no other file.
    if "key id" in after:
        assert after["key id"] == ["meta.sqlite"], f"key id found in {after['key id']}"
        naming = [(ns, k) for ns, k, v in kv_rows(srv.data_dir) if key_id in k or key_id in v]
        assert naming, "the id is in meta.sqlite but in no live row: a stale copy of a deleted row"
        not_s3 = [(ns, k) for ns, k in naming if ns not in ("s3.object", "s3.version", "s3.bucket")]
        assert not not_s3, f"rows outside S3 still name the deleted key: {not_s3}"
    assert not [r for r in kv_rows(srv.data_dir, "kms.") if key_id in r[1] or key_id in r[2]]

    kms = srv.client_for("kms", ROOT)
    s3 = srv.client_for("s3", ROOT)
    assert expect_error(kms.describe_key, KeyId=key_id) == (
        "NotFoundException", f"Key '{key_arn}' does not exist", 400,
    )
    # Decrypt of a ciphertext whose key is gone: AccessDeniedException (aws-behavior.md §2.7,
    # "ciphertext naming a key the caller cannot see (absent ...)"); naming the key: NotFound.
    assert expect_error(kms.decrypt, CiphertextBlob=blob) == ("AccessDeniedException", CIPHERTEXT_ORPHAN, 400)
    assert expect_error(kms.decrypt, CiphertextBlob=blob, KeyId=key_arn) == (
        "NotFoundException", f"Key '{key_arn}' does not exist", 400,
    )
    # Objects under it: described still, never read (aws-behavior.md §3.4 "key absent").
    for bucket in (per_object, with_bucket_key):
        head = s3.head_object(Bucket=bucket, Key="marker.txt")
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)
        assert expect_error(s3.get_object, Bucket=bucket, Key="marker.txt") == (
            "KMS.NotFoundException", f"Key '{key_arn}' does not exist", 400,
        ), bucket
    assert srv.stop() == 0
