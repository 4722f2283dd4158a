"""Shared helpers for Coffer's end-to-end tests: running the server, boto3 clients, the aws CLI,
and raw SigV4-signed HTTP requests.

Only pytest, boto3/botocore, the aws CLI and the standard library are used.
"""

from __future__ import annotations

import atexit
import configparser
import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.auth
import botocore.config
import botocore.credentials
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

# tests/e2e/e2e_helpers.py -> repository root is two levels up from this directory.
REPO_ROOT = Path(__file__).resolve().parents[2]

ACCOUNT = "123456789012"
ROOT_KEY_ID = "AKIAE2EROOTKEY000001"
ROOT_SECRET = "e2eRootSecretAccessKey0000000000000000001"
REGION = "us-east-1"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"

LISTEN_RE = re.compile(r"Coffer listening on (https?)://(\S+) ")

# boto3 and the CLI must not pick up anything from the developer's machine.
_NOWHERE = str(Path("/nonexistent-coffer-e2e") / uuid.uuid4().hex)
for _v in list(os.environ):
    if _v.startswith("AWS_"):
        del os.environ[_v]
os.environ["AWS_CONFIG_FILE"] = _NOWHERE + "/config"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = _NOWHERE + "/credentials"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def uid(prefix: str = "e2e") -> str:
    """A name unique to this call (valid as an IAM user/role/group/policy name)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def user_arn(name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{ACCOUNT}:user{path}{name}"


def policy_doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# ---------------------------------------------------------------------------------------------
# the binary


_bin_lock = threading.Lock()
_bin_snapshot: Path | None = None


def coffer_bin() -> Path:
    """The binary under test: $COFFER_BIN, else <repo>/target/debug/coffer (built once with
    `cargo build` if missing). A private copy is taken on first use, so that every server of one
    test run is the same build even if someone rebuilds meanwhile."""
    global _bin_snapshot
    with _bin_lock:
        if _bin_snapshot is not None:
            return _bin_snapshot
        env = os.environ.get("COFFER_BIN")
        path = Path(env) if env else REPO_ROOT / "target" / "debug" / "coffer"
        if not env and not path.exists():
            # One debug build, only when the binary is missing.
            subprocess.run(["cargo", "build"], cwd=REPO_ROOT, check=True)
        if not path.exists():
            raise RuntimeError(f"coffer binary not found at {path}")
        snap_dir = Path(tempfile.mkdtemp(prefix="coffer-e2e-bin-"))
        atexit.register(shutil.rmtree, snap_dir, True)
        snap = snap_dir / "coffer"
        shutil.copy2(path, snap)
        _bin_snapshot = snap
        return snap


@dataclass
class Creds:
    key: str
    secret: str
    token: str | None = None


ROOT = Creds(ROOT_KEY_ID, ROOT_SECRET)


def root_env(**overrides) -> dict:
    env = {
        "COFFER_ACCOUNT_ID": ACCOUNT,
        "COFFER_ROOT_ACCESS_KEY_ID": ROOT_KEY_ID,
        "COFFER_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


class CofferServer:
    """One `coffer serve` process on an ephemeral port."""

    def __init__(self, data_dir: Path, env: dict | None = None, args: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.extra_env = root_env() if env is None else env
        self.extra_args = args or []
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.stderr_path: Path | None = None
        self.endpoint: str | None = None
        self._ready = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env.update(self.extra_env)
        return env

    def spawn(self) -> subprocess.Popen:
        """Starts the process without waiting for it to be ready."""
        self._ready = threading.Event()
        self.endpoint = None
        self.stderr_path = self.data_dir.parent / f"{self.data_dir.name}.{uuid.uuid4().hex[:8]}.stderr.log"
        listen = [] if "--listen" in self.extra_args else ["--listen", "127.0.0.1:0"]
        cmd = [
            str(coffer_bin()),
            "serve",
            "--data-dir",
            str(self.data_dir),
            *listen,
            "--region",
            REGION,
            *self.extra_args,
        ]
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            stdin=subprocess.DEVNULL,
            env=self._env(),
            text=True,
        )
        # Each process gets its own pump, line list and event: a previous process's pump that
        # reaches EOF late must not touch the new one's state.
        lines: list[str] = []
        self.stdout_lines = lines
        t = threading.Thread(target=self._pump, args=(self.proc, lines, self._ready), daemon=True)
        t.start()
        self._pump_thread = t
        return self.proc

    def _pump(self, proc: subprocess.Popen, lines: list, ready: threading.Event):
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            m = LISTEN_RE.search(line)
            if m and not ready.is_set() and proc is self.proc:
                addr = m.group(2)
                # a wildcard listener is reached through loopback
                addr = addr.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:")
                self.endpoint = f"{m.group(1)}://{addr}"
                ready.set()
        ready.set()

    def start(self, timeout: float = 30.0) -> "CofferServer":
        self.spawn()
        if not self._ready.wait(timeout) or self.endpoint is None:
            rc = self.proc.poll()
            self.kill()
            raise RuntimeError(
                f"coffer did not become ready (rc={rc}); stdout={self.stdout_lines!r}; "
                f"stderr={self.stderr_text()[-2000:]!r}"
            )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                status, _, body = http_request("GET", self.endpoint + "/_coffer/health", insecure=True)
                if status == 200:
                    return json.loads(body)
            except OSError as e:  # not accepting yet
                last = e
            time.sleep(0.05)
        raise RuntimeError(f"coffer at {self.endpoint} never became healthy: {last}")

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM, wait, and return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self._pump_thread.join(5)
        self._stderr_file.close()
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "_stderr_file", None):
            self._stderr_file.close()

    def restart(self, env: dict | None = None, args: list[str] | None = None) -> "CofferServer":
        rc = self.stop()
        assert rc == 0, f"coffer exited {rc} on SIGTERM: {self.stderr_text()[-2000:]}"
        if env is not None:
            self.extra_env = env
        if args is not None:
            self.extra_args = args
        return self.start()

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        self._pump_thread.join(5)  # all of stdout is in stdout_lines
        self._stderr_file.close()
        return rc

    def stderr_text(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout_text(self) -> str:
        return "\n".join(self.stdout_lines)

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.endpoint).netloc

    # -- clients ----------------------------------------------------------------------------

    def client(self, service: str, key: str, secret: str, token: str | None = None, **kw):
        return make_client(self.endpoint, service, key, secret, token, **kw)

    def client_for(self, service: str, creds: Creds, **kw):
        return make_client(self.endpoint, service, creds.key, creds.secret, creds.token, **kw)

    def aws(self, args: list[str], creds: Creds, check: bool = False):
        return run_aws(self.endpoint, args, creds, check=check)

    # -- the test clock (servers started with `--test-clock`) --------------------------------

    def advance_clock(self, seconds: int) -> dict:
        """Moves the service clock forward and runs due key deletions and rotations at once;
        returns {"now", "deleted", "rotated"}. SigV4 is still checked against the wall clock."""
        status, _, body = http_request(
            "POST", f"{self.endpoint}/_coffer/test/advance-clock?seconds={int(seconds)}", b"", insecure=True
        )
        assert status == 200, f"advance-clock answered {status}: {body}"
        return json.loads(body)


# ---------------------------------------------------------------------------------------------
# boto3 and the aws CLI

_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _boto_session() -> boto3.session.Session:
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session


def make_client(
    endpoint: str,
    service: str,
    key: str,
    secret: str,
    token: str | None = None,
    region: str = REGION,
    validate: bool = True,
    verify: Any = False,
    signature_version: str | None = None,
):
    cfg = botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        parameter_validation=validate,
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
        # e.g. "s3v4": botocore presigns S3 URLs with SigV2 unless told otherwise
        **({"signature_version": signature_version} if signature_version else {}),
    )
    return _boto_session().client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=cfg,
        verify=verify,
    )


def aws_cli_command() -> list[str]:
    """The aws CLI of this Python environment (a CI venv need not be activated), else the one on
    PATH, else `python -m awscli`."""
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return [str(beside)]
    exe = shutil.which("aws")
    if exe:
        return [exe]
    return [sys.executable, "-m", "awscli"]


def run_aws(endpoint: str, args: list[str], creds: Creds, check: bool = False):
    """Runs the real aws CLI. Returns (rc, parsed JSON or raw stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": creds.key,
            "AWS_SECRET_ACCESS_KEY": creds.secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": _NOWHERE + "/config",
            "AWS_SHARED_CREDENTIALS_FILE": _NOWHERE + "/credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
            "AWS_PAGER": "",
        }
    )
    if creds.token:
        env["AWS_SESSION_TOKEN"] = creds.token
    cmd = [*aws_cli_command(), *args, "--endpoint-url", endpoint, "--output", "json"]
    if endpoint.startswith("https://"):
        cmd.append("--no-verify-ssl")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    out: Any = p.stdout
    if p.stdout.strip():
        try:
            out = json.loads(p.stdout)
        except json.JSONDecodeError:
            pass
    if check and p.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p.returncode, out, p.stderr


def error_of(exc: ClientError) -> tuple[str, str, int]:
    e = exc.response["Error"]
    return e.get("Code"), e.get("Message"), exc.response["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(fn, *args, **kwargs) -> tuple[str, str, int]:
    """Calls fn and returns (code, message, status) of the ClientError it must raise."""
    try:
        r = fn(*args, **kwargs)
    except ClientError as e:
        return error_of(e)
    raise AssertionError(f"expected an error, got {r!r}")


# ---------------------------------------------------------------------------------------------
# raw HTTP


def http_request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict | None = None,
    insecure: bool = False,
    timeout: float = 30,
):
    """Sends one request with urllib; returns (status, headers as a case-insensitive Message,
    body text). HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    ctx = None
    if url.startswith("https://"):
        ctx = ssl.create_default_context()
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.headers, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


@contextlib.contextmanager
def signing_time(at: _dt.datetime | None):
    """Makes botocore's SigV4 signers sign as of `at` (naive UTC), or now when None.

    botocore 1.43 reads the clock through `botocore.auth.get_current_datetime()`; older
    releases called `datetime.datetime.utcnow()` through the `botocore.auth.datetime` module.
    """
    if at is None:
        yield
        return
    if hasattr(botocore.auth, "get_current_datetime"):
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
            yield
    else:  # pragma: no cover - older botocore
        fake = mock.MagicMock(wraps=_dt)
        fake.datetime.utcnow.return_value = at
        fake.datetime.now.return_value = at
        fake.datetime.strptime = _dt.datetime.strptime
        with mock.patch.object(botocore.auth, "datetime", fake):
            yield


def signed_request(
    endpoint: str,
    creds: Creds,
    service: str,
    body: bytes | str = b"",
    method: str = "POST",
    path: str = "/",
    query: str = "",
    headers: dict | None = None,
    region: str = REGION,
    at: _dt.datetime | None = None,
    s3: bool = False,
    tamper=None,
):
    """Signs a request with botocore's SigV4 signer (optionally as of time `at`) and sends it
    with urllib. `tamper(headers, body)` may alter the request after signing."""
    if isinstance(body, str):
        body = body.encode()
    url = endpoint + path + (("?" + query) if query else "")
    hdrs = dict(headers or {})
    if method == "POST" and not s3 and "Content-Type" not in hdrs:
        hdrs["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
    bc = botocore.credentials.Credentials(creds.key, creds.secret, creds.token)
    signer_cls = botocore.auth.S3SigV4Auth if s3 else botocore.auth.SigV4Auth
    signer = signer_cls(bc, service, region)
    if s3:
        req.context["payload_signing_enabled"] = True
    with signing_time(at):
        signer.add_auth(req)
    prepared = req.prepare()
    out_headers = {k: v for k, v in prepared.headers.items()}
    out_body = prepared.body or b""
    if isinstance(out_body, str):
        out_body = out_body.encode()
    if tamper is not None:
        out_headers, out_body = tamper(out_headers, out_body)
    return http_request(method, prepared.url, body=out_body if method != "GET" else None, headers=out_headers)


def query_body(action: str, version: str = "2010-05-08", **params) -> str:
    return urllib.parse.urlencode({"Action": action, "Version": version, **params})


def parse_query_error(body: str) -> dict:
    """Code/Message/Type/RequestId (and the namespace) of a Query (IAM/STS) ErrorResponse."""
    root = ET.fromstring(body)
    m = re.match(r"\{(.*)\}(.*)", root.tag)
    ns, tag = (m.group(1), m.group(2)) if m else ("", root.tag)
    q = (lambda name: f"{{{ns}}}{name}") if ns else (lambda name: name)
    err = root.find(q("Error"))
    assert err is not None, body

    def text(el, name):
        c = el.find(q(name))
        return c.text if c is not None else None

    return {
        "xmlns": ns,
        "root": tag,
        "Type": text(err, "Type"),
        "Code": text(err, "Code"),
        "Message": text(err, "Message"),
        "RequestId": text(root, "RequestId"),
    }


def parse_s3_error(body: str) -> dict:
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    return {child.tag: (child.text or "") for child in root}


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


def read_ini(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser()
    cp.read(path)
    return cp
