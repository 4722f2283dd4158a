"""Fixtures for Coffer's end-to-end tests.

A session-wide `coffer serve` runs on an ephemeral port in a temporary data dir, with fixed root
credentials (account 123456789012). Tests that need their own server (restart, startup
refusals, TLS) use the `new_server` factory instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e_helpers import (
    ROOT,
    CofferServer,
    Creds,
    run_aws,
    uid,
    user_arn,
)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> CofferServer:
    base = tmp_path_factory.mktemp("coffer-session")
    srv = CofferServer(base / "data").start()
    yield srv
    rc = srv.stop()
    assert rc == 0, f"coffer exited {rc} on SIGTERM; stderr tail:\n{srv.stderr_text()[-3000:]}"


@pytest.fixture(scope="session")
def endpoint(server) -> str:
    return server.endpoint


@pytest.fixture(scope="session")
def client(server):
    """client(service, key, secret, token=None) -> boto3 client bound to the session server."""

    def make(service: str, key: str, secret: str, token: str | None = None, **kw):
        return server.client(service, key, secret, token, **kw)

    return make


@pytest.fixture(scope="session")
def aws(server):
    """aws(args, creds) -> (rc, parsed json or stdout, stderr), via the real aws CLI."""

    def run(args: list[str], creds: Creds = ROOT, check: bool = False):
        return run_aws(server.endpoint, args, creds, check=check)

    return run


@pytest.fixture(scope="session")
def iam(server):
    return server.client_for("iam", ROOT)


@pytest.fixture(scope="session")
def sts(server):
    return server.client_for("sts", ROOT)


@dataclass
class UserHandle:
    name: str
    arn: str
    creds: Creds
    server: CofferServer
    key_ids: list = field(default_factory=list)

    def client(self, service: str, **kw):
        return self.server.client_for(service, self.creds, **kw)

    @property
    def iam(self):
        if not hasattr(self, "_iam"):
            self._iam = self.client("iam")
        return self._iam

    @property
    def sts(self):
        if not hasattr(self, "_sts"):
            self._sts = self.client("sts")
        return self._sts


@pytest.fixture
def make_user(server, iam):
    """make_user(inline=None|doc|{name: doc}, managed=[arn], groups=[name], path='/', tags=[])
    creates a user with one access key and returns a UserHandle."""

    def make(inline=None, managed=(), groups=(), path="/", prefix="u", tags=None) -> UserHandle:
        name = uid(prefix)
        kw = {"UserName": name, "Path": path}
        if tags:
            kw["Tags"] = tags
        iam.create_user(**kw)
        if isinstance(inline, str):
            inline = {"inline": inline}
        for pname, doc in (inline or {}).items():
            iam.put_user_policy(UserName=name, PolicyName=pname, PolicyDocument=doc)
        for arn in managed:
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
        for g in groups:
            iam.add_user_to_group(GroupName=g, UserName=name)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        return UserHandle(
            name=name,
            arn=user_arn(name, path),
            creds=Creds(k["AccessKeyId"], k["SecretAccessKey"]),
            server=server,
            key_ids=[k["AccessKeyId"]],
        )

    return make


@pytest.fixture
def new_server(tmp_path):
    """new_server(env=None, args=None, data_dir=None, start=True) -> CofferServer of this test
    only; killed (if still running) when the test ends."""
    made: list[CofferServer] = []

    def make(env=None, args=None, data_dir: Path | None = None, start: bool = True) -> CofferServer:
        d = data_dir or (tmp_path / f"data{len(made)}")
        srv = CofferServer(d, env=env, args=args)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in made:
        srv.kill()


@pytest.fixture
def clock_server(new_server) -> CofferServer:
    """A server of this test only, started with `--test-clock`: `clock_server.advance_clock(n)`
    moves its service clock n seconds forward and runs due key deletions and rotations."""
    return new_server(args=["--test-clock"])
