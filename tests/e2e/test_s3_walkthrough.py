"""The S3 + KMS walkthrough (shared/seed/walkthrough.md), step by step, mostly with the real aws CLI,
on a server of its own (so that the users can have the walkthrough's names):

1. a customer managed key with a description, tags and the alias alias/my-s3-encryption-key;
2. a bucket whose default encryption is SSE-KMS with that alias (bucket key enabled);
3. `aws s3 cp` of encryption-test-file.txt, and head-object showing aws:kms and the key's full ARN;
4. S3-Admin-User (AmazonS3FullAccess only) is refused the download with KMS's AccessDenied message;
5. S3-KMS-Admin-User, added as a key user by the key policy, downloads the file;
6. clean-up: users, objects, bucket, and the key scheduled for deletion.

Between 5 and 6 the server restarts on the same data dir, and the data dir is searched for the
plaintext. A second test (with the test clock) lets the key's deletion come due and checks that
an object encrypted under it can no longer be read."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from pathlib import Path


from e2e_helpers import ACCOUNT, REGION, ROOT, CofferServer, Creds, expect_error

DAY = 86400
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
S3_FULL = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
ALIAS = "alias/my-s3-encryption-key"
FILE_NAME = "encryption-test-file.txt"
FILE_TEXT = b"kms encryption test file\n"
KEY_USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


def kms_denied(user: str, action: str, key_arn: str) -> str:
    """KMS's AccessDenied text, as S3 passes it on (aws-behavior.md §3.4): the default key policy
    delegates to IAM, so the missing piece is an identity-based policy."""
    return (
        f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: {action} on resource: "
        f"{key_arn} because no identity-based policy allows the {action} action"
    )


def console_key_policy(key_user_arn: str) -> str:
    """What the console writes when a key user is added (Enable IAM User Permissions, Allow use of
    the key, Allow attachment of persistent resources)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-consolepolicy-3",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": ROOT_ARN},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "Allow use of the key",
                    "Effect": "Allow",
                    "Principal": {"AWS": key_user_arn},
                    "Action": KEY_USER_ACTIONS,
                    "Resource": "*",
                },
                {
                    "Sid": "Allow attachment of persistent resources",
                    "Effect": "Allow",
                    "Principal": {"AWS": key_user_arn},
                    "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                    "Resource": "*",
                    "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
                },
            ],
        },
        indent=4,
    )


def ok(srv: CofferServer, args: list[str], creds: Creds = ROOT):
    rc, out, err = srv.aws(args, creds)
    assert rc == 0, f"aws {' '.join(args)} failed ({rc}): {err}"
    return out


def create_cli_user(srv: CofferServer, name: str) -> Creds:
    out = ok(srv, ["iam", "create-user", "--user-name", name])
    assert out["User"]["UserName"] == name
    assert out["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{name}"
    ok(srv, ["iam", "attach-user-policy", "--user-name", name, "--policy-arn", S3_FULL])
    out = ok(srv, ["iam", "list-attached-user-policies", "--user-name", name])
    assert [p["PolicyArn"] for p in out["AttachedPolicies"]] == [S3_FULL]
    k = ok(srv, ["iam", "create-access-key", "--user-name", name])["AccessKey"]
    assert k["Status"] == "Active"
    return Creds(k["AccessKeyId"], k["SecretAccessKey"])


def download_denied(srv: CofferServer, creds: Creds, bucket: str, key: str, key_arn: str, user: str):
    """`aws s3 cp s3://bucket/key -` fails with S3's AccessDenied carrying KMS's message."""
    rc, out, err = srv.aws(["s3", "cp", f"s3://{bucket}/{key}", "-"], creds)
    assert rc != 0, out
    assert out == "", out  # not one byte of the object
    assert "An error occurred (AccessDenied) when calling the GetObject operation" in err, err
    assert kms_denied(user, "kms:Decrypt", key_arn) in err, err


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    """Every file under root (binary-safe) that contains any of the needles."""
    hits = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            data = p.read_bytes()
            for n in needles:
                if n in data:
                    hits.append(f"{p} contains {n[:24]!r}...")
    return hits


def test_walkthrough(new_server, tmp_path):
    srv = new_server()
    bucket = f"kms-demo-bucket-{uuid.uuid4().hex[:10]}"

    # ---- 1. the customer managed key, its tags and its alias ---------------------------------
    md = ok(
        srv,
        [
            "kms", "create-key",
            "--description", "my-s3-encryption-key: encrypts the walkthrough bucket",
            "--tags", "TagKey=Project,TagValue=kms-s3-demo", "TagKey=Owner,TagValue=security-team",
        ],
    )["KeyMetadata"]
    key_id, key_arn = md["KeyId"], md["Arn"]
    assert key_arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"
    assert (md["KeyState"], md["KeyManager"], md["KeySpec"], md["KeyUsage"]) == (
        "Enabled", "CUSTOMER", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",
    )
    tags = ok(srv, ["kms", "list-resource-tags", "--key-id", key_id])["Tags"]
    assert sorted((t["TagKey"], t["TagValue"]) for t in tags) == [
        ("Owner", "security-team"), ("Project", "kms-s3-demo"),
    ]
    ok(srv, ["kms", "create-alias", "--alias-name", ALIAS, "--target-key-id", key_id])
    aliases = ok(srv, ["kms", "list-aliases", "--key-id", key_id])["Aliases"]
    assert [a["AliasName"] for a in aliases] == [ALIAS]
    assert ok(srv, ["kms", "describe-key", "--key-id", ALIAS])["KeyMetadata"]["Arn"] == key_arn
    # the default key policy: the account, that is IAM, decides
    policy = json.loads(ok(srv, ["kms", "get-key-policy", "--key-id", key_id, "--policy-name", "default"])["Policy"])
    assert [(s["Sid"], s["Principal"]) for s in policy["Statement"]] == [
        ("Enable IAM User Permissions", {"AWS": ROOT_ARN})
    ]

    # ---- 2. the bucket, encrypted by default with the key (named by its alias) ---------------
    assert ok(srv, ["s3api", "create-bucket", "--bucket", bucket])["Location"] == f"/{bucket}"
    enc_config = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": ALIAS},
                "BucketKeyEnabled": True,
            }
        ]
    }
    ok(srv, ["s3api", "put-bucket-encryption", "--bucket", bucket,
             "--server-side-encryption-configuration", json.dumps(enc_config)])
    got = ok(srv, ["s3api", "get-bucket-encryption", "--bucket", bucket])
    assert got["ServerSideEncryptionConfiguration"] == enc_config  # the alias as given
    names = [b["Name"] for b in ok(srv, ["s3api", "list-buckets"])["Buckets"]]
    assert bucket in names

    # ---- 3. upload the test file (and a larger random one) and verify the encryption ---------
    local = tmp_path / FILE_NAME
    local.write_bytes(FILE_TEXT)  # echo "kms encryption test file" > encryption-test-file.txt
    out = ok(srv, ["s3", "cp", str(local), f"s3://{bucket}/"])
    assert re.search(rf"^upload: \S*{FILE_NAME} to s3://{bucket}/{FILE_NAME}$", out, re.M), out
    big = os.urandom(12 * 1024 * 1024 + 12345)  # over 8 MiB: the CLI goes multipart, with its default checksums
    (tmp_path / "random.bin").write_bytes(big)
    ok(srv, ["s3", "cp", str(tmp_path / "random.bin"), f"s3://{bucket}/data/random.bin"])
    big_head = ok(srv, ["s3api", "head-object", "--bucket", bucket, "--key", "data/random.bin"])
    assert big_head["ETag"].strip('"').endswith("-2"), big_head  # it went multipart (8 MiB parts)
    assert big_head["SSEKMSKeyId"] == key_arn

    head = ok(srv, ["s3api", "head-object", "--bucket", bucket, "--key", FILE_NAME])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn  # the full key ARN, not the alias
    assert head["BucketKeyEnabled"] is True
    assert head["ContentLength"] == len(FILE_TEXT)
    listing = ok(srv, ["s3api", "list-objects-v2", "--bucket", bucket])
    assert sorted((o["Key"], o["Size"]) for o in listing["Contents"]) == [
        ("data/random.bin", len(big)), (FILE_NAME, len(FILE_TEXT)),
    ]
    ls = ok(srv, ["s3", "ls", f"s3://{bucket}/"])
    assert FILE_NAME in ls and "PRE data/" in ls
    # root reads it back (the default key policy delegates to IAM, and root may do anything)
    rc, out, err = srv.aws(["s3", "cp", f"s3://{bucket}/{FILE_NAME}", "-"], ROOT)
    assert rc == 0, err
    assert out == FILE_TEXT.decode()

    # ---- 4. S3-Admin-User: AmazonS3FullAccess, no KMS permission -----------------------------
    s3_admin = create_cli_user(srv, "S3-Admin-User")
    # S3 permissions are enough to see the object...
    out = ok(srv, ["s3", "ls", f"s3://{bucket}/"], s3_admin)
    assert FILE_NAME in out
    head = ok(srv, ["s3api", "head-object", "--bucket", bucket, "--key", FILE_NAME], s3_admin)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    # ...but not to decrypt it
    download_denied(srv, s3_admin, bucket, FILE_NAME, key_arn, "S3-Admin-User")
    rc, _, err = srv.aws(["s3api", "get-object", "--bucket", bucket, "--key", FILE_NAME, str(tmp_path / "o1")], s3_admin)
    assert rc != 0
    assert "An error occurred (AccessDenied) when calling the GetObject operation" in err, err
    assert err.strip().endswith("): " + kms_denied("S3-Admin-User", "kms:Decrypt", key_arn)), err
    assert not (tmp_path / "o1").exists() or (tmp_path / "o1").read_bytes() == b""
    # nor to upload under the key (S3 asks KMS for a data key as the caller)
    rc, _, err = srv.aws(["s3", "cp", str(local), f"s3://{bucket}/by-s3-admin.txt"], s3_admin)
    assert rc != 0
    assert "AccessDenied" in err and kms_denied("S3-Admin-User", "kms:GenerateDataKey", key_arn) in err, err

    # ---- 5. S3-KMS-Admin-User: AmazonS3FullAccess and a key user in the key policy -----------
    key_user = create_cli_user(srv, "S3-KMS-Admin-User")
    key_user_arn = f"arn:aws:iam::{ACCOUNT}:user/S3-KMS-Admin-User"
    # not a key user yet: the same refusal
    download_denied(srv, key_user, bucket, FILE_NAME, key_arn, "S3-KMS-Admin-User")
    # the console's "Add key users" step, as a key policy
    (tmp_path / "key-policy.json").write_text(console_key_policy(key_user_arn))
    ok(srv, ["kms", "put-key-policy", "--key-id", key_id, "--policy-name", "default",
             "--policy", f"file://{tmp_path / 'key-policy.json'}"])
    got = ok(srv, ["kms", "get-key-policy", "--key-id", key_id, "--policy-name", "default"])["Policy"]
    assert got == (tmp_path / "key-policy.json").read_text()

    def check_access():
        rc, out, err = srv.aws(["s3", "cp", f"s3://{bucket}/{FILE_NAME}", "-"], key_user)
        assert rc == 0, err
        assert out == FILE_TEXT.decode()
        ok(srv, ["s3", "cp", f"s3://{bucket}/data/random.bin", str(tmp_path / "random.out")], key_user)
        assert (tmp_path / "random.out").read_bytes() == big
        (tmp_path / "random.out").unlink()
        # S3-Admin-User is still refused, and can still see the object's metadata
        download_denied(srv, s3_admin, bucket, FILE_NAME, key_arn, "S3-Admin-User")
        head = ok(srv, ["s3api", "head-object", "--bucket", bucket, "--key", FILE_NAME], s3_admin)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"], head["ContentLength"]) == (
            "aws:kms", key_arn, len(FILE_TEXT),
        )

    check_access()
    # the key user may also upload under the key (kms:GenerateDataKey*)
    out = ok(srv, ["s3api", "put-object", "--bucket", bucket, "--key", "by-key-user.txt",
                   "--body", str(local)], key_user)
    assert (out["ServerSideEncryption"], out["SSEKMSKeyId"], out["BucketKeyEnabled"]) == ("aws:kms", key_arn, True)

    # ---- a restart on the same data dir changes nothing -------------------------------------
    srv.restart()
    check_access()

    # ---- nothing of the plaintext is stored --------------------------------------------------
    needles = [b"kms encryption test file"] + [big[i : i + 32] for i in (0, len(big) // 2, len(big) - 32)]
    for i in range(0, len(big) - 64, len(big) // 7):
        needles.append(big[i : i + 64])
    assert files_containing(srv.data_dir, needles) == []

    # ---- 6. clean-up -------------------------------------------------------------------------
    for name, creds in (("S3-Admin-User", s3_admin), ("S3-KMS-Admin-User", key_user)):
        ok(srv, ["iam", "delete-access-key", "--user-name", name, "--access-key-id", creds.key])
        ok(srv, ["iam", "detach-user-policy", "--user-name", name, "--policy-arn", S3_FULL])
        ok(srv, ["iam", "delete-user", "--user-name", name])
    users = [u["UserName"] for u in ok(srv, ["iam", "list-users"])["Users"]]
    assert "S3-Admin-User" not in users and "S3-KMS-Admin-User" not in users
    # a deleted user's key no longer works
    rc, _, err = srv.aws(["s3", "ls", f"s3://{bucket}/"], key_user)
    assert rc != 0 and "InvalidAccessKeyId" in err, err

    rc, _, err = srv.aws(["s3api", "delete-bucket", "--bucket", bucket], ROOT)
    assert rc != 0 and "BucketNotEmpty" in err, err
    out = ok(srv, ["s3", "rm", f"s3://{bucket}", "--recursive"])
    for key in (FILE_NAME, "data/random.bin", "by-key-user.txt"):
        assert f"delete: s3://{bucket}/{key}" in out, out
    ok(srv, ["s3api", "delete-bucket", "--bucket", bucket])
    names = [b["Name"] for b in ok(srv, ["s3api", "list-buckets"])["Buckets"]]
    assert bucket not in names
    rc, _, err = srv.aws(["s3api", "head-bucket", "--bucket", bucket], ROOT)
    assert rc != 0 and "404" in err, err

    now = dt.datetime.now(dt.timezone.utc)
    out = ok(srv, ["kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7"])
    assert (out["KeyId"], out["KeyState"], out["PendingWindowInDays"]) == (key_arn, "PendingDeletion", 7)
    # the CLI prints DeletionDate as epoch seconds; KMS deletes at the end of the 7th day
    when = dt.datetime.fromtimestamp(float(out["DeletionDate"]), dt.timezone.utc)
    assert now + dt.timedelta(days=7) - dt.timedelta(minutes=1) <= when <= now + dt.timedelta(days=8)
    md = ok(srv, ["kms", "describe-key", "--key-id", ALIAS])["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"]) == ("PendingDeletion", False)


def test_objects_under_a_deleted_key_cannot_be_read(clock_server):
    """The walkthrough's last step, carried through: once the deletion window has passed the key
    is gone, and so is every SSE-KMS object encrypted under it (an error, never data)."""
    srv = clock_server
    s3 = srv.client_for("s3", ROOT)
    kms = srv.client_for("kms", ROOT)
    md = ok(srv, ["kms", "create-key", "--description", "my-s3-encryption-key",
                  "--tags", "TagKey=Project,TagValue=kms-s3-demo"])["KeyMetadata"]
    key_id, key_arn = md["KeyId"], md["Arn"]
    ok(srv, ["kms", "create-alias", "--alias-name", ALIAS, "--target-key-id", key_id])
    bucket = f"kms-demo-bucket-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": ALIAS},
                       "BucketKeyEnabled": True}]
        },
    )
    s3.put_object(Bucket=bucket, Key=FILE_NAME, Body=FILE_TEXT)
    # an SSE-S3 object beside it is not affected by anything that happens to the key
    s3.put_object(Bucket=bucket, Key="sse-s3.txt", Body=b"root-key protected", ServerSideEncryption="AES256")
    assert s3.get_object(Bucket=bucket, Key=FILE_NAME)["Body"].read() == FILE_TEXT

    out = ok(srv, ["kms", "schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7"])
    assert out["KeyState"] == "PendingDeletion"
    # pending deletion: KMS's KMSInvalidStateException behind S3's KMS. prefix (aws-behavior.md §3.4)
    code, msg, status = expect_error(s3.get_object, Bucket=bucket, Key=FILE_NAME)
    assert (code, msg, status) == ("KMS.KMSInvalidStateException", f"{key_arn} is pending deletion.", 400)
    # HeadObject needs no KMS call
    assert s3.head_object(Bucket=bucket, Key=FILE_NAME)["SSEKMSKeyId"] == key_arn

    assert srv.advance_clock(6 * DAY)["deleted"] == 0
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert srv.advance_clock(2 * DAY)["deleted"] == 1
    code, msg, status = expect_error(kms.describe_key, KeyId=key_id)
    assert (code, msg) == ("NotFoundException", f"Key '{key_arn}' does not exist")
    rc, _, err = srv.aws(["kms", "describe-key", "--key-id", ALIAS], ROOT)
    assert rc != 0 and "NotFoundException" in err, err

    # the object is still listed and described, but its data is gone for good
    head = s3.head_object(Bucket=bucket, Key=FILE_NAME)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    # S3 names the key it stored, so KMS answers NotFoundException, which S3 reports as
    # 400 KMS.NotFoundException (aws-behavior.md §3.4)
    code, msg, status = expect_error(s3.get_object, Bucket=bucket, Key=FILE_NAME)
    assert (code, msg, status) == ("KMS.NotFoundException", f"Key '{key_arn}' does not exist", 400), (code, msg, status)
    rc, out, err = srv.aws(["s3", "cp", f"s3://{bucket}/{FILE_NAME}", "-"], ROOT)
    assert rc != 0 and out == "" and "KMS.NotFoundException" in err, err
    # new uploads to the bucket fail too: its default key no longer exists
    code, msg, status = expect_error(s3.put_object, Bucket=bucket, Key="new.txt", Body=b"x")
    assert (code, status) == ("KMS.NotFoundException", 400), (code, msg, status)
    assert s3.get_object(Bucket=bucket, Key="sse-s3.txt")["Body"].read() == b"root-key protected"
