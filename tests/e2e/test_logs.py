"""The server's logs: plain text without color codes when they go to a file, one JSON object per
line with `--log-format json`, and never a secret, at the most verbose level, in either format."""

from __future__ import annotations

import base64
import json
import os

import pytest

from disk_scan import forms
from e2e_helpers import ROOT, ROOT_SECRET, root_env


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_in_debug_logs(new_server, fmt):
    srv = new_server(env=root_env(COFFER_LOG="debug"), args=["--log-format", fmt])
    iam = srv.client_for("iam", ROOT)
    kms = srv.client_for("kms", ROOT)
    s3 = srv.client_for("s3", ROOT)
    sts = srv.client_for("sts", ROOT)
    needles: dict[str, bytes] = {}
    needles.update(forms("root secret", ROOT_SECRET.encode()))

    iam.create_user(UserName="logged")
    k = iam.create_access_key(UserName="logged")["AccessKey"]
    needles.update(forms("user secret", k["SecretAccessKey"].encode()))
    password = "Pw-" + os.urandom(9).hex()
    iam.create_login_profile(UserName="logged", Password=password)
    needles.update(forms("password", password.encode()))
    user_sts = srv.client("sts", k["AccessKeyId"], k["SecretAccessKey"])
    creds = user_sts.get_session_token(DurationSeconds=900)["Credentials"]
    needles.update(forms("session secret", creds["SecretAccessKey"].encode()))
    needles["session token"] = creds["SessionToken"].encode()
    # The temporary credentials at work (the token travels in a header); denied, and logged.
    with pytest.raises(Exception, match="AccessDenied"):
        srv.client("s3", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]).list_buckets()

    key = kms.create_key()["KeyMetadata"]["KeyId"]
    plaintext = os.urandom(24)
    needles.update(forms("kms plaintext", plaintext))
    kms.encrypt(KeyId=key, Plaintext=plaintext)
    dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256")["Plaintext"]
    needles.update(forms("data key", dk))

    s3.create_bucket(Bucket="logs")
    customer_key = os.urandom(32)
    needles.update(forms("customer key", customer_key))
    body = os.urandom(16)
    needles.update(forms("object body", body))
    s3.put_object(Bucket="logs", Key="c", Body=body, SSECustomerAlgorithm="AES256", SSECustomerKey=customer_key)
    s3.get_object(Bucket="logs", Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=customer_key)["Body"].read()
    # A denied request and a bad signature are logged too.
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        srv.client("s3", k["AccessKeyId"], "wrong-" + k["SecretAccessKey"]).list_buckets()

    assert srv.stop() == 0
    logs = srv.stderr_text()
    assert "ok" in logs or "error" in logs, "requests are logged at this level"
    leaked = sorted(label for label, needle in needles.items() if needle in logs.encode())
    assert leaked == [], f"secrets in the {fmt} logs: {leaked}"
    assert "\x1b[" not in logs, "no color codes in a log file"
    if fmt == "json":
        lines = [l for l in logs.splitlines() if l.strip()]
        assert lines
        for line in lines:
            rec = json.loads(line)
            assert "level" in rec and "fields" in rec, line
