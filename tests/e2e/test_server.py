"""The server process itself: health endpoint, response metadata headers, refusing plain HTTP on
a public address, and self-signed TLS."""

import email.utils
import hashlib
import json
import re
import socket
import ssl
import urllib.parse
import uuid

import pytest

from e2e_helpers import (
    ROOT,
    allow,
    deny,
    http_request,
    make_client,
    parse_query_error,
    parse_s3_error,
    policy_doc,
    query_body,
    signed_request,
    uid,
    utcnow,
)


def test_health(server):
    status, headers, body = http_request("GET", server.endpoint + "/_coffer/health")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    j = json.loads(body)
    assert j["status"] == "ok" and j["service"] == "coffer"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", j["version"])


def test_iam_responses_carry_a_request_id(server):
    seen = set()
    for body in (query_body("ListUsers", MaxItems="1"), query_body("GetUser", UserName=uid("ghost"))):
        status, headers, text = signed_request(server.endpoint, ROOT, "iam", body)
        rid = headers["x-amzn-RequestId"]
        assert rid and str(uuid.UUID(rid)) == rid
        if status == 200:
            assert f"<RequestId>{rid}</RequestId>" in text
        else:
            assert status == 404 and parse_query_error(text)["RequestId"] == rid
        assert headers["Content-Type"] == "text/xml"
        # a Date header lets SDKs correct clock skew
        date = email.utils.parsedate_to_datetime(headers["Date"]).replace(tzinfo=None)
        assert abs((date - utcnow()).total_seconds()) < 60
        seen.add(rid)
    assert len(seen) == 2

    # boto3 sees the same id
    r = server.client_for("sts", ROOT).get_caller_identity()
    assert r["ResponseMetadata"]["RequestId"] == r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_s3_errors_carry_s3_request_ids(server):
    status, headers, text = http_request("GET", server.endpoint + "/some-bucket/some-key")
    assert status == 403
    rid = headers["x-amz-request-id"]
    assert re.fullmatch(r"[0-9A-F]{16}", rid), rid
    assert headers["x-amz-id-2"]
    assert headers["Content-Type"] == "application/xml"
    e = parse_s3_error(text)
    assert e["RequestId"] == rid and e["HostId"]
    assert "x-amzn-RequestId" not in headers

    status, headers, text = signed_request(server.endpoint + "/no-such-bucket-ids", ROOT, "s3", method="GET", s3=True)
    assert status == 404
    assert parse_s3_error(text)["RequestId"] == headers["x-amz-request-id"]


def test_s3_host_id_header_matches_the_body(server):
    status, headers, text = http_request("GET", server.endpoint + "/some-bucket")
    assert status == 403
    assert parse_s3_error(text)["HostId"] == headers["x-amz-id-2"]


def test_s3_request_ids_are_uniform_hex(server):
    ids = [http_request("GET", server.endpoint + "/")[1]["x-amz-request-id"] for _ in range(40)]
    chars = "".join(ids)
    assert len(set(ids)) == len(ids)
    # uniform hex gives 'A' about 1/16 of the time, and every digit shows up in 640 characters
    assert chars.count("A") / len(chars) < 0.3
    assert set("0189") <= set(chars)


def test_plain_http_on_a_public_address_is_refused(new_server):
    srv = new_server(args=["--listen", "0.0.0.0:0"], start=False)
    srv.spawn()
    rc = srv.wait_exit()
    assert rc != 0
    assert srv.endpoint is None
    err = srv.stderr_text()
    assert "--allow-insecure-http" in err and "without TLS" in err, err


def test_plain_http_on_a_public_address_with_explicit_opt_in(new_server):
    srv = new_server(args=["--listen", "0.0.0.0:0", "--allow-insecure-http"])
    assert srv.endpoint.startswith("http://")
    assert re.search(r"Coffer listening on http://0\.0\.0\.0:\d+ ", srv.stdout_text)
    assert srv.client_for("sts", ROOT).get_caller_identity()["Arn"].endswith(":root")
    assert srv.stop() == 0


def test_self_signed_tls(new_server):
    srv = new_server(args=["--tls-self-signed"])
    assert srv.endpoint.startswith("https://127.0.0.1:")
    m = re.search(r"TLS: self-signed certificate, SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2}) \(PEM in (.+)\)", srv.stdout_text)
    assert m, srv.stdout_text
    fingerprint, pem_path = m.group(1), m.group(2)

    status, _, body = http_request("GET", srv.endpoint + "/_coffer/health", insecure=True)
    assert status == 200 and json.loads(body)["status"] == "ok"

    # the printed fingerprint is the served certificate's
    host, port = urllib.parse.urlsplit(srv.endpoint).netloc.rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    digest = hashlib.sha256(der).hexdigest().upper()
    assert fingerprint == ":".join(digest[i : i + 2] for i in range(0, 64, 2))

    # the written PEM verifies the server for 127.0.0.1 (hostname checked)
    creds = ROOT
    sts = make_client(srv.endpoint, "sts", creds.key, creds.secret, verify=pem_path)
    assert sts.get_caller_identity()["Arn"].endswith(":root")

    # over TLS aws:SecureTransport is true: the deny-insecure statement does not apply
    iam = make_client(srv.endpoint, "iam", creds.key, creds.secret, verify=pem_path)
    name = uid("tls")
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="p",
        PolicyDocument=policy_doc(allow("iam:GetUser"), deny("*", Condition={"Bool": {"aws:SecureTransport": "false"}})),
    )
    k = iam.create_access_key(UserName=name)["AccessKey"]
    u = make_client(srv.endpoint, "iam", k["AccessKeyId"], k["SecretAccessKey"], verify=pem_path)
    assert u.get_user()["User"]["UserName"] == name

    # plain HTTP on the TLS port is not served: the answer is a TLS alert record (content type
    # 21), never an HTTP status line, and the connection is closed
    with socket.create_connection((host, int(port)), timeout=5) as c:
        c.sendall(f"GET /_coffer/health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        data, closed = b"", False
        while not closed:
            chunk = c.recv(65536)
            closed = not chunk
            data += chunk
    assert data[:3] == b"\x15\x03\x03", data
    assert srv.stop() == 0
