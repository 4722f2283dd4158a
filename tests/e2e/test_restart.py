"""Persistence across restarts, first-start credential generation, and refusals to start on a
data dir that contradicts the environment. Every test here runs its own server."""

import base64
import os
import re
import stat

from e2e_helpers import (
    ACCOUNT,
    ROOT,
    ROOT_KEY_ID,
    Creds,
    allow,
    expect_error,
    policy_doc,
    read_ini,
    root_env,
    uid,
    user_arn,
)


def test_everything_survives_a_restart(new_server):
    srv = new_server()
    iam = srv.client_for("iam", ROOT)

    user = uid("keep")
    iam.create_user(UserName=user, Path="/kept/", Tags=[{"Key": "team", "Value": "red"}])
    iam.put_user_policy(
        UserName=user, PolicyName="self", PolicyDocument=policy_doc(allow("iam:GetUser", "arn:aws:iam::*:user/*/${aws:username}"))
    )
    k = iam.create_access_key(UserName=user)["AccessKey"]
    ucreds = Creds(k["AccessKeyId"], k["SecretAccessKey"])

    group = uid("grp")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_group_policy(GroupName=group, PolicyName="g", PolicyDocument=policy_doc(allow("iam:ListGroups")))

    pol = uid("pol")
    parn = iam.create_policy(PolicyName=pol, PolicyDocument=policy_doc(allow("iam:ListRoles")))["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=parn, PolicyDocument=policy_doc(allow(["iam:ListRoles", "iam:GetRole"])), SetAsDefault=True)

    role = uid("role")
    trust = policy_doc({"Effect": "Allow", "Principal": {"AWS": user_arn(user, "/kept/")}, "Action": "sts:AssumeRole"})
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn=parn)
    c = srv.client_for("sts", ucreds).assume_role(RoleArn=role_arn, RoleSessionName="before")["Credentials"]
    session = Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])

    old_endpoint = srv.endpoint
    srv.restart()  # SIGTERM (asserts exit 0), then the same data dir again
    assert srv.endpoint  # port 0: maybe another port
    iam = srv.client_for("iam", ROOT)

    u = iam.get_user(UserName=user)["User"]
    assert u["Path"] == "/kept/" and u["Tags"] == [{"Key": "team", "Value": "red"}]
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["self"]
    assert [m["AccessKeyId"] for m in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]] == [ucreds.key]
    assert [m["UserName"] for m in iam.get_group(GroupName=group)["Users"]] == [user]
    assert iam.list_group_policies(GroupName=group)["PolicyNames"] == ["g"]
    p = iam.get_policy(PolicyArn=parn)["Policy"]
    assert (p["DefaultVersionId"], p["AttachmentCount"]) == ("v2", 1)
    assert len(iam.list_policy_versions(PolicyArn=parn)["Versions"]) == 2
    r = iam.get_role(RoleName=role)["Role"]
    assert r["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": user_arn(user, "/kept/")}
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"][0]["PolicyArn"] == parn

    # the user's key still authenticates, and its policies still decide
    assert srv.client_for("sts", ucreds).get_caller_identity()["Arn"] == user_arn(user, "/kept/")
    uiam = srv.client_for("iam", ucreds)
    assert uiam.get_user()["User"]["UserName"] == user
    uiam.list_groups(MaxItems=1)
    assert expect_error(uiam.list_users)[0] == "AccessDenied"
    # and so does the STS session made before the restart
    assert srv.client_for("sts", session).get_caller_identity()["Arn"].endswith(f"/{role}/before")
    assert srv.client_for("iam", session).get_role(RoleName=role)["Role"]["Arn"] == role_arn

    # restarting without any COFFER_* variable keeps the stored root credentials
    srv.restart(env={})
    assert srv.client_for("sts", ROOT).get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert "Root credentials" not in srv.stdout_text
    assert old_endpoint.startswith("http://127.0.0.1:")
    assert srv.stop() == 0


def test_generated_root_credentials_file_is_private(new_server):
    srv = new_server(env={})
    out = srv.stdout_text
    m = re.search(r"Root credentials for account (\d{12}) \(also in (.+?), mode 0600\):", out)
    assert m, out
    account, path = m.group(1), m.group(2)
    key_id = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", out).group(1)
    secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", out).group(1)
    assert key_id.startswith("AKIA") and len(secret) == 40

    cred_file = srv.data_dir / "root-credentials"
    assert os.path.samefile(path, cred_file)
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((srv.data_dir / "root.key").stat().st_mode) == 0o600
    ini = read_ini(cred_file)
    assert ini["coffer"]["aws_access_key_id"] == key_id
    assert ini["coffer"]["aws_secret_access_key"] == secret
    assert f"# account {account}" in cred_file.read_text()

    # the secret goes to the terminal and the file only, never to the logs
    assert secret not in srv.stderr_text()

    creds = Creds(key_id, secret)
    ident = srv.client_for("sts", creds).get_caller_identity()
    assert ident["Arn"] == f"arn:aws:iam::{account}:root" and ident["Account"] == account

    # a restart does not print (or regenerate) them again
    srv.restart()
    assert "Root credentials" not in srv.stdout_text
    assert srv.client_for("sts", creds).get_caller_identity()["Account"] == account
    assert srv.stop() == 0


def refused(new_server, data_dir, env, needle):
    bad = new_server(env=env, data_dir=data_dir, start=False)
    bad.spawn()
    rc = bad.wait_exit()
    assert rc != 0
    assert bad.endpoint is None, "it must not start listening"
    err = bad.stderr_text()
    assert needle in err, err
    return err


def test_contradicting_environment_refuses_to_start(new_server):
    srv = new_server()
    srv.client_for("iam", ROOT).create_user(UserName=uid("marker"))
    assert srv.stop() == 0
    d = srv.data_dir

    refused(
        new_server,
        d,
        root_env(COFFER_ACCOUNT_ID="999999999999"),
        f"COFFER_ACCOUNT_ID=999999999999 contradicts the account {ACCOUNT} stored in this data dir",
    )
    refused(
        new_server,
        d,
        root_env(COFFER_ROOT_ACCESS_KEY_ID="AKIAOTHEROTHEROTHER1"),
        f"COFFER_ROOT_ACCESS_KEY_ID=AKIAOTHEROTHEROTHER1 contradicts the root access key {ROOT_KEY_ID}",
    )
    refused(
        new_server,
        d,
        root_env(COFFER_ROOT_SECRET_ACCESS_KEY="a-different-secret-of-enough-length"),
        "COFFER_ROOT_SECRET_ACCESS_KEY contradicts the root secret stored in this data dir",
    )
    other_key = base64.b64encode(bytes(range(32))).decode()
    refused(
        new_server,
        d,
        {**root_env(), "COFFER_ROOT_KEY": other_key},
        "this data dir was created with another root key",
    )

    # none of the refusals damaged the data dir
    again = new_server(data_dir=d)
    assert again.client_for("sts", ROOT).get_caller_identity()["Account"] == ACCOUNT
    assert again.stop() == 0


def test_invalid_bootstrap_values_refuse_to_start(new_server, tmp_path):
    refused(new_server, tmp_path / "bad-acct", root_env(COFFER_ACCOUNT_ID="12345"), "COFFER_ACCOUNT_ID must be 12 digits")
    refused(
        new_server,
        tmp_path / "bad-secret",
        root_env(COFFER_ROOT_SECRET_ACCESS_KEY="short"),
        "COFFER_ROOT_SECRET_ACCESS_KEY must be at least 16 characters",
    )
