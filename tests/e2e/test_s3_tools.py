"""Other S3 clients than botocore: rclone and s3cmd (Debian packages) upload and download a
multipart SSE-KMS object byte-identically; and object/bucket tagging."""

import os
import shutil
import subprocess

import pytest

from e2e_helpers import ROOT, ROOT_KEY_ID, ROOT_SECRET, uid

SIZE = 13 * 1024 * 1024 + 12345  # three 5 MiB parts, the last one short


def tool_env():
    # These tools pick up the machine's CA bundle settings and AWS_* variables: give them none.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "CA_BUNDLE" not in k}
    return env


@pytest.fixture
def kms_bucket(server):
    kms = server.client_for("kms", ROOT)
    s3 = server.client_for("s3", ROOT)
    key_arn = kms.create_key(Description="tools")["KeyMetadata"]["Arn"]
    bucket = uid("tools")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]
        },
    )
    return bucket, key_arn, s3


def payload(tmp_path):
    p = tmp_path / "payload.bin"
    p.write_bytes(os.urandom(SIZE))
    return p


def need_tool(name: str):
    """Skips when `name` is missing, unless COFFER_REQUIRE_TOOLS is set (CI sets it: there a
    missing rclone or s3cmd is a failure, not a skip)."""
    if shutil.which(name):
        return
    if os.environ.get("COFFER_REQUIRE_TOOLS"):
        pytest.fail(f"{name} is not installed and COFFER_REQUIRE_TOOLS is set")
    pytest.skip(f"{name} is not installed (.ci/run installs it)")


def check_stored(s3, bucket, key, key_arn, data):
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # it went multipart
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


def test_rclone_multipart_sse_kms_round_trip(server, kms_bucket, tmp_path):
    need_tool("rclone")
    bucket, key_arn, s3 = kms_bucket
    src = payload(tmp_path)
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        "[coffer]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {ROOT_KEY_ID}\nsecret_access_key = {ROOT_SECRET}\n"
        f"endpoint = {server.endpoint}\nregion = us-east-1\n"
        f"server_side_encryption = aws:kms\nsse_kms_key_id = {key_arn}\n"
        "chunk_size = 5Mi\nupload_cutoff = 5Mi\n"
    )
    run = lambda *a: subprocess.run(["rclone", "--config", str(conf), *a], env=tool_env(), capture_output=True, text=True, timeout=120)
    r = run("copyto", str(src), f"coffer:{bucket}/rclone.bin")
    assert r.returncode == 0, r.stderr
    back = tmp_path / "back.bin"
    r = run("copyto", f"coffer:{bucket}/rclone.bin", str(back))
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == src.read_bytes()
    check_stored(s3, bucket, "rclone.bin", key_arn, src.read_bytes())
    r = run("lsf", f"coffer:{bucket}")
    assert r.returncode == 0 and "rclone.bin" in r.stdout.split(), r.stderr


def test_s3cmd_multipart_sse_kms_round_trip(server, kms_bucket, tmp_path):
    need_tool("s3cmd")
    bucket, key_arn, s3 = kms_bucket
    src = payload(tmp_path)
    host = server.endpoint.split("://", 1)[1]
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        f"[default]\naccess_key = {ROOT_KEY_ID}\nsecret_key = {ROOT_SECRET}\n"
        f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\nsignature_v2 = False\n"
        "bucket_location = us-east-1\nmultipart_chunk_size_mb = 5\n"
    )
    run = lambda *a: subprocess.run(["s3cmd", "-c", str(cfg), *a], env=tool_env(), capture_output=True, text=True, timeout=120)
    r = run("put", "--server-side-encryption", f"--server-side-encryption-kms-id={key_arn}", str(src), f"s3://{bucket}/s3cmd.bin")
    assert r.returncode == 0, r.stderr
    back = tmp_path / "back.bin"
    r = run("get", "--force", f"s3://{bucket}/s3cmd.bin", str(back))
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == src.read_bytes()
    check_stored(s3, bucket, "s3cmd.bin", key_arn, src.read_bytes())


def test_object_and_bucket_tagging(server):
    s3 = server.client_for("s3", ROOT)
    bucket = uid("tags")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="team=blue&env=dev")
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]}
    assert tags == {"team": "blue", "env": "dev"}
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count") in (None, "2")
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "a", "Value": "1"}]
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "d", "Value": "1"}, {"Key": "d", "Value": "2"}]})
    assert e.value.response["Error"]["Code"] == "InvalidTag"
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "p", "Value": "q"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "p", "Value": "q"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_bucket_tagging(Bucket=bucket)


def test_existing_object_tag_condition(server, make_user):
    s3 = server.client_for("s3", ROOT)
    bucket = uid("tagcond")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"p", Tagging="class=public")
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=b"s", Tagging="class=secret")
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "public"}},
            }
        ],
    }
    import json

    u = make_user(inline=json.dumps(doc))
    us3 = u.client("s3")
    assert us3.get_object(Bucket=bucket, Key="public.txt")["Body"].read() == b"p"
    with pytest.raises(us3.exceptions.ClientError) as e:
        us3.get_object(Bucket=bucket, Key="secret.txt")
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_bucket_versioning_status(server):
    s3 = server.client_for("s3", ROOT)
    bucket = uid("ver")
    s3.create_bucket(Bucket=bucket)
    # never configured: no Status, as AWS
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # MFA delete is not supported
    with pytest.raises(s3.exceptions.ClientError) as e:
        s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"}
        )
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_crash_mid_upload_leaves_nothing_visible_and_is_swept(new_server):
    """kill -9 while a PUT streams: after restart the object does not exist, the old version (if
    any) is intact, and the interrupted blob is swept from the data dir."""
    import socket
    import time

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    srv = new_server()
    s3 = srv.client_for("s3", ROOT)
    bucket = uid("crash")
    s3.create_bucket(Bucket=bucket)
    old = os.urandom(200 * 1024)  # large enough to live in a blob file (small ones stay inline)
    s3.put_object(Bucket=bucket, Key="obj", Body=old)
    # A signed PUT of 8 MiB whose body we only half send.
    size = 8 * 1024 * 1024
    url = f"{srv.endpoint}/{bucket}/obj"
    req = AWSRequest(method="PUT", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(size)})
    botocore.auth.S3SigV4Auth(Credentials(ROOT.key, ROOT.secret), "s3", "us-east-1").add_auth(req)
    host, port = srv.host.rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=5)
    head = f"PUT /{bucket}/obj HTTP/1.1\r\nHost: {srv.host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
    c.sendall(head.encode())
    c.sendall(os.urandom(size // 2))
    time.sleep(0.5)
    tmp = srv.data_dir / "tmp"
    assert any(tmp.iterdir()), "the upload in progress should be in tmp/"
    srv.kill()
    c.close()
    srv.start()
    s3 = srv.client_for("s3", ROOT)
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == old
    assert not any(tmp.iterdir()), list(tmp.iterdir())
    blobs = [f for f in (srv.data_dir / "blobs").rglob("*") if f.is_file()]
    assert len(blobs) == 1, blobs  # only the old version's blob
