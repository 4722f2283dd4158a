"""POST object: browser form uploads signed with a POST policy (boto3's generate_presigned_post),
sent as multipart/form-data built by hand. The upload is authorized as the policy's signer exactly
like PutObject (s3:PutObject, SSE-KMS through KMS as the caller, the bucket's default encryption);
policy conditions, expiration and size limits answer AWS's errors."""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

import pytest

from e2e_helpers import ACCOUNT, REGION, ROOT, Creds, allow, policy_doc

MAX_FILE = 64 << 20  # coffer_s3::POST_OBJECT_MAX_FILE


@pytest.fixture(scope="module")
def s3(server):
    # botocore presigns S3 with SigV2 unless told otherwise; forms here are SigV4.
    return server.client_for("s3", ROOT, signature_version="s3v4")


@pytest.fixture(scope="module")
def kms(server):
    return server.client_for("kms", ROOT)


def new_bucket(s3, kms_key: str | None = None) -> str:
    name = f"post-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    if kms_key:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key}}]
            },
        )
    return name


def post_form(url: str, fields: dict, data: bytes, filename: str = "upload.bin"):
    """POSTs `fields` then the file as multipart/form-data. The body is sent from a thread while
    the response is read, so that an early refusal (the server stops reading) is still seen.
    Returns (status, headers, body text)."""
    boundary = uuid.uuid4().hex
    head = bytearray()
    for k, v in fields.items():
        head += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.connect()
    sock = conn.sock
    request_head = (
        f"POST {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + len(data) + len(tail)}\r\n\r\n"
    ).encode()

    def send():
        try:
            sock.sendall(request_head + bytes(head))
            view = memoryview(data)
            for i in range(0, len(view), 1 << 20):
                sock.sendall(view[i : i + (1 << 20)])
            sock.sendall(tail)
        except OSError:
            pass  # the server refused early and closed

    t = threading.Thread(target=send, daemon=True)
    t.start()
    resp = http.client.HTTPResponse(sock, method="POST")
    resp.begin()
    body = resp.read().decode("utf-8", "replace")
    t.join(timeout=60)
    conn.close()
    return resp.status, resp.headers, body


def s3_error(body: str) -> dict:
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    return {c.tag: (c.text or "") for c in root}


def presigned(client, bucket: str, key: str, **kw) -> dict:
    return client.generate_presigned_post(Bucket=bucket, Key=key, **kw)


def test_upload_encrypted_with_bucket_default_and_readable(server, s3, kms):
    key_arn = kms.create_key(Description="post object")["KeyMetadata"]["Arn"]
    bucket = new_bucket(s3, key_arn)
    p = presigned(s3, bucket, "docs/hello.txt")
    data = b"hello from a browser form\n" * 100
    status, headers, body = post_form(p["url"], p["fields"], data)
    assert status == 204, body  # success_action_status defaults to 204, empty body
    assert body == ""
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert headers["x-amz-server-side-encryption"] == "aws:kms"
    assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == key_arn
    assert headers["Location"].endswith(f"/{bucket}/docs/hello.txt")
    got = s3.get_object(Bucket=bucket, Key="docs/hello.txt")
    assert got["Body"].read() == data
    assert got["ServerSideEncryption"] == "aws:kms"
    assert got["SSEKMSKeyId"] == key_arn
    assert got["ETag"] == etag

    # Without a configuration the bucket encrypts with SSE-S3; metadata and Content-Type fields.
    plain = new_bucket(s3)
    fields = {"Content-Type": "text/plain", "x-amz-meta-origin": "form"}
    p = presigned(
        s3, plain, "a b+c.txt", Fields=fields,
        Conditions=[{"Content-Type": "text/plain"}, {"x-amz-meta-origin": "form"}],
    )
    status, headers, body = post_form(p["url"], p["fields"], b"x")
    assert status == 204, body
    assert headers["x-amz-server-side-encryption"] == "AES256"
    h = s3.head_object(Bucket=plain, Key="a b+c.txt")
    assert h["ServerSideEncryption"] == "AES256"
    assert h["ContentType"] == "text/plain"
    assert h["Metadata"] == {"origin": "form"}

    # An x-amz-server-side-encryption form field overrides the bucket default, as on PutObject.
    p = presigned(s3, bucket, "sse-s3.txt", Fields={"x-amz-server-side-encryption": "AES256"},
                  Conditions=[{"x-amz-server-side-encryption": "AES256"}])
    status, headers, body = post_form(p["url"], p["fields"], b"y")
    assert status == 204, body
    assert s3.head_object(Bucket=bucket, Key="sse-s3.txt")["ServerSideEncryption"] == "AES256"


def test_success_action_status_and_redirect(s3):
    bucket = new_bucket(s3)
    p = presigned(s3, bucket, "s201", Fields={"success_action_status": "201"},
                  Conditions=[{"success_action_status": "201"}])
    status, headers, body = post_form(p["url"], p["fields"], b"201")
    assert status == 201, body
    root = ET.fromstring(body)
    assert root.tag == "PostResponse", body
    assert root.findtext("Bucket") == bucket
    assert root.findtext("Key") == "s201"
    assert root.findtext("ETag").strip('"') == hashlib.md5(b"201").hexdigest()

    p = presigned(s3, bucket, "s200", Fields={"success_action_status": "200"},
                  Conditions=[{"success_action_status": "200"}])
    status, _, body = post_form(p["url"], p["fields"], b"200")
    assert (status, body) == (200, "")

    redirect = "https://example.com/done?x=1"
    p = presigned(s3, bucket, "redir", Fields={"success_action_redirect": redirect},
                  Conditions=[{"success_action_redirect": redirect}])
    status, headers, body = post_form(p["url"], p["fields"], b"r")
    assert status == 303, body
    loc = urllib.parse.urlsplit(headers["Location"])
    q = dict(urllib.parse.parse_qsl(loc.query))
    assert (loc.netloc, loc.path) == ("example.com", "/done")
    assert q["x"] == "1" and q["bucket"] == bucket and q["key"] == "redir" and q["etag"]
    assert s3.get_object(Bucket=bucket, Key="redir")["Body"].read() == b"r"


def test_policy_conditions(s3):
    bucket = new_bucket(s3)
    # starts-with on the key: the form names another key.
    p = presigned(s3, bucket, "uploads/${filename}", Conditions=[["starts-with", "$key", "uploads/"]])
    fields = dict(p["fields"], key="elsewhere/x.txt")
    status, _, body = post_form(p["url"], fields, b"x")
    e = s3_error(body)
    assert (status, e["Code"]) == (403, "AccessDenied"), body
    assert e["Message"] == 'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "uploads/"]'
    assert e["RequestId"] and e["HostId"]

    # eq on the key (boto3 adds {"key": ...}).
    p = presigned(s3, bucket, "exact.txt")
    status, _, body = post_form(p["url"], dict(p["fields"], key="other.txt"), b"x")
    e = s3_error(body)
    assert (status, e["Code"]) == (403, "AccessDenied")
    assert e["Message"] == 'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "exact.txt"]'

    # A form field the policy does not mention.
    p = presigned(s3, bucket, "extra.txt")
    status, _, body = post_form(p["url"], dict(p["fields"], **{"x-amz-meta-sneaky": "1"}), b"x")
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (
        403, "AccessDenied", "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky"
    )

    # content-length-range: too large and too small.
    p = presigned(s3, bucket, "sized.bin", Conditions=[["content-length-range", 10, 100]])
    status, _, body = post_form(p["url"], p["fields"], b"z" * 101)
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    status, _, body = post_form(p["url"], p["fields"], b"z" * 9)
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
    status, _, body = post_form(p["url"], p["fields"], b"z" * 100)
    assert status == 204, body

    # A tampered policy no longer matches its signature.
    p = presigned(s3, bucket, "tampered.txt")
    doc = json.loads(base64.b64decode(p["fields"]["policy"]))
    doc["conditions"].append(["content-length-range", 0, 10])
    fields = dict(p["fields"], policy=base64.b64encode(json.dumps(doc).encode()).decode())
    status, _, body = post_form(p["url"], fields, b"x")
    e = s3_error(body)
    assert (status, e["Code"]) == (403, "SignatureDoesNotMatch"), body

    for k in ("elsewhere/x.txt", "other.txt", "extra.txt", "tampered.txt"):
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=k)


def test_sigv2_form_refused(server, s3):
    bucket = new_bucket(s3)
    p = server.client_for("s3", ROOT).generate_presigned_post(Bucket=bucket, Key="v2.txt")
    assert "signature" in p["fields"]  # SigV2: AWSAccessKeyId, policy, signature
    status, _, body = post_form(p["url"], p["fields"], b"v2")
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (
        400, "InvalidRequest", "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
    )


def test_expired_policy(s3):
    bucket = new_bucket(s3)
    p = presigned(s3, bucket, "late.txt", ExpiresIn=-5)
    status, _, body = post_form(p["url"], p["fields"], b"late")
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")


def test_unsigned_form_refused(s3, endpoint):
    bucket = new_bucket(s3)
    status, _, body = post_form(f"{endpoint}/{bucket}", {"key": "anon.txt"}, b"anon")
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (403, "AccessDenied", "Access Denied")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_user_without_put_object(s3, make_user):
    bucket = new_bucket(s3)
    reader = make_user(inline=policy_doc(allow(["s3:GetObject", "s3:ListBucket"])))
    p = presigned(reader.client("s3", signature_version="s3v4"), bucket, "denied.txt")
    status, _, body = post_form(p["url"], p["fields"], b"no")
    e = s3_error(body)
    assert (status, e["Code"]) == (403, "AccessDenied"), body
    assert f"is not authorized to perform: s3:PutObject on resource: \"arn:aws:s3:::{bucket}/denied.txt\"" in e["Message"]

    writer = make_user(inline=policy_doc(allow("s3:PutObject", f"arn:aws:s3:::{bucket}/*")))
    p = presigned(writer.client("s3", signature_version="s3v4"), bucket, "allowed.txt")
    status, _, body = post_form(p["url"], p["fields"], b"yes")
    assert status == 204, body
    assert s3.get_object(Bucket=bucket, Key="allowed.txt")["Body"].read() == b"yes"


def test_sse_kms_needs_generate_data_key(s3, kms, make_user):
    key_arn = kms.create_key(Description="post object kms")["KeyMetadata"]["Arn"]
    bucket = new_bucket(s3, key_arn)
    s3_only = make_user(inline=policy_doc(allow("s3:*")))
    p = presigned(s3_only.client("s3", signature_version="s3v4"), bucket, "kms.txt")
    status, _, body = post_form(p["url"], p["fields"], b"secret")
    e = s3_error(body)
    assert (status, e["Code"]) == (403, "AccessDenied"), body
    assert "kms:GenerateDataKey" in e["Message"] and key_arn in e["Message"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)

    key_user = make_user(inline=policy_doc(allow("s3:*"), allow("kms:GenerateDataKey", key_arn)))
    p = presigned(key_user.client("s3", signature_version="s3v4"), bucket, "kms.txt")
    status, headers, body = post_form(p["url"], p["fields"], b"secret")
    assert status == 204, body
    assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == key_arn


def _sign_policy(creds: Creds, conditions: list, fields: dict, expires_in: int = 600) -> dict:
    """A SigV4 POST policy signed by hand (for shapes boto3 does not make)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    date, amz_date = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{creds.key}/{date}/{REGION}/s3/aws4_request"
    fields = dict(fields)
    fields.update({"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential, "x-amz-date": amz_date})
    doc = {
        "expiration": (now + _dt.timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [*conditions, *({k: v} for k, v in fields.items())],
    }
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    k = ("AWS4" + creds.secret).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    fields["policy"] = policy
    fields["x-amz-signature"] = hmac.new(k, policy.encode(), hashlib.sha256).hexdigest()
    return fields


def test_session_credentials(server, s3, make_user):
    bucket = new_bucket(s3)
    user = make_user(inline=policy_doc(allow("s3:*")))
    c = user.sts.get_session_token()["Credentials"]
    sess = Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    # boto3 puts the token in the form and in the policy (an eq condition).
    p = presigned(server.client_for("s3", sess, signature_version="s3v4"), bucket, "session.txt")
    assert p["fields"]["x-amz-security-token"] == sess.token
    status, _, body = post_form(p["url"], p["fields"], b"session")
    assert status == 204, body
    assert s3.get_object(Bucket=bucket, Key="session.txt")["Body"].read() == b"session"

    # A wrong token.
    fields = _sign_policy(sess, [{"bucket": bucket}], {"key": "bad.txt", "x-amz-security-token": sess.token[:-4] + "AAAA"})
    status, _, body = post_form(f"{server.endpoint}/{bucket}", fields, b"bad")
    e = s3_error(body)
    assert (status, e["Code"]) == (400, "InvalidToken"), body

    # The token field is read from the form whatever condition covers it.
    fields = _sign_policy(sess, [{"bucket": bucket}, ["starts-with", "$x-amz-security-token", ""]], {"key": "sw.txt"})
    fields["x-amz-security-token"] = sess.token
    status, _, body = post_form(f"{server.endpoint}/{bucket}", fields, b"sw")
    assert status == 204, body
    # Session credentials without their token; a long-term key needs none.
    fields = _sign_policy(sess, [{"bucket": bucket}], {"key": "no-token.txt"})
    status, _, body = post_form(f"{server.endpoint}/{bucket}", fields, b"nt")
    e = s3_error(body)
    assert (status, e["Code"]) == (400, "InvalidToken"), body
    fields = _sign_policy(user.creds, [{"bucket": bucket}], {"key": "long-term.txt"})
    status, _, body = post_form(f"{server.endpoint}/{bucket}", fields, b"lt")
    assert status == 204, body


def test_wrong_region_and_unknown_key(server, s3):
    bucket = new_bucket(s3)
    fields = _sign_policy(ROOT, [{"bucket": bucket}], {"key": "r.txt"})
    fields["x-amz-credential"] = fields["x-amz-credential"].replace(REGION, "eu-west-3")
    # (the policy still names the original credential: re-sign for the other region)
    now = fields["x-amz-date"]
    doc = json.loads(base64.b64decode(fields["policy"]))
    doc["conditions"] = [c for c in doc["conditions"] if "x-amz-credential" not in c] + [{"x-amz-credential": fields["x-amz-credential"]}]
    fields["policy"] = base64.b64encode(json.dumps(doc).encode()).decode()
    k = ("AWS4" + ROOT.secret).encode()
    for part in (now[:8], "eu-west-3", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    fields["x-amz-signature"] = hmac.new(k, fields["policy"].encode(), hashlib.sha256).hexdigest()
    status, _, body = post_form(f"{server.endpoint}/{bucket}", fields, b"r")
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (400, "InvalidArgument", f"the region 'eu-west-3' is wrong; expecting '{REGION}'")

    fields = _sign_policy(Creds("AKIANOSUCHKEY0000000", "x" * 40), [{"bucket": bucket}], {"key": "u.txt"})
    status, _, body = post_form(f"{server.endpoint}/{bucket}", fields, b"u")
    e = s3_error(body)
    assert (status, e["Code"]) == (403, "InvalidAccessKeyId"), body


def test_file_over_server_limit(s3):
    bucket = new_bucket(s3)
    p = presigned(s3, bucket, "big.bin")
    status, _, body = post_form(p["url"], p["fields"], b"\0" * (MAX_FILE + 1))
    e = s3_error(body)
    assert (status, e["Code"], e["Message"]) == (400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
