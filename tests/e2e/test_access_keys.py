"""IAM access keys: create (CLI and boto3), the two-key limit, status changes, deletion, and
GetAccessKeyLastUsed."""

import time

from e2e_helpers import ACCOUNT, ROOT_KEY_ID, Creds, allow, expect_error, policy_doc, uid, user_arn

INVALID_TOKEN = "The security token included in the request is invalid."


def test_create_access_key_with_the_aws_cli(aws, iam, client):
    name = uid("clikey")
    iam.create_user(UserName=name)
    rc, out, err = aws(["iam", "create-access-key", "--user-name", name])
    assert rc == 0, err
    k = out["AccessKey"]
    assert k["UserName"] == name
    assert k["Status"] == "Active"
    assert k["AccessKeyId"].startswith("AKIA") and len(k["AccessKeyId"]) == 20
    assert len(k["SecretAccessKey"]) == 40
    # the new key signs as the user right away, through the CLI too
    rc, ident, err = aws(["sts", "get-caller-identity"], Creds(k["AccessKeyId"], k["SecretAccessKey"]))
    assert rc == 0, err
    assert ident["Arn"] == user_arn(name)
    assert ident["Account"] == ACCOUNT


def test_at_most_two_keys_per_user(iam):
    name = uid("twokeys")
    iam.create_user(UserName=name)
    k1 = iam.create_access_key(UserName=name)["AccessKey"]
    k2 = iam.create_access_key(UserName=name)["AccessKey"]
    assert k1["AccessKeyId"] != k2["AccessKeyId"]
    code, msg, status = expect_error(iam.create_access_key, UserName=name)
    assert (code, status) == ("LimitExceeded", 409)
    assert msg == "Cannot exceed quota for AccessKeysPerUser: 2"

    listed = iam.list_access_keys(UserName=name)
    assert listed["IsTruncated"] is False
    meta = listed["AccessKeyMetadata"]
    assert sorted(m["AccessKeyId"] for m in meta) == sorted([k1["AccessKeyId"], k2["AccessKeyId"]])
    assert {m["Status"] for m in meta} == {"Active"}
    assert {m["UserName"] for m in meta} == {name}
    assert all("SecretAccessKey" not in m for m in meta)

    # deleting one frees a slot
    iam.delete_access_key(UserName=name, AccessKeyId=k1["AccessKeyId"])
    iam.create_access_key(UserName=name)
    assert len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]) == 2


def test_access_keys_of_missing_user(iam):
    name = uid("ghost")
    for call in (iam.create_access_key, iam.list_access_keys):
        code, msg, status = expect_error(call, UserName=name)
        assert (code, status, msg) == ("NoSuchEntity", 404, f"The user with name {name} cannot be found.")


def test_inactive_key_is_refused_and_reactivated(make_user, iam):
    u = make_user()
    iam_root = iam
    sts = u.sts
    assert sts.get_caller_identity()["Arn"] == u.arn

    iam_root.update_access_key(UserName=u.name, AccessKeyId=u.creds.key, Status="Inactive")
    meta = iam_root.list_access_keys(UserName=u.name)["AccessKeyMetadata"]
    assert meta[0]["Status"] == "Inactive"
    code, msg, status = expect_error(sts.get_caller_identity)
    assert (code, status, msg) == ("InvalidClientTokenId", 403, INVALID_TOKEN)
    code, msg, status = expect_error(u.iam.get_user)
    assert (code, status, msg) == ("InvalidClientTokenId", 403, INVALID_TOKEN)

    iam_root.update_access_key(UserName=u.name, AccessKeyId=u.creds.key, Status="Active")
    assert sts.get_caller_identity()["Arn"] == u.arn


def test_deleted_key_is_refused(make_user, iam):
    u = make_user()
    assert u.sts.get_caller_identity()["Arn"] == u.arn
    iam.delete_access_key(UserName=u.name, AccessKeyId=u.creds.key)
    assert iam.list_access_keys(UserName=u.name)["AccessKeyMetadata"] == []
    code, msg, status = expect_error(u.sts.get_caller_identity)
    assert (code, status, msg) == ("InvalidClientTokenId", 403, INVALID_TOKEN)
    # deleting again: the key is gone
    code, msg, status = expect_error(iam.delete_access_key, UserName=u.name, AccessKeyId=u.creds.key)
    assert (code, status) == ("NoSuchEntity", 404)
    assert msg == f"The Access Key with id {u.creds.key} cannot be found."


def test_key_of_another_user_cannot_be_managed_through_this_user(make_user, iam):
    a, b = make_user(), make_user()
    code, msg, _ = expect_error(iam.update_access_key, UserName=a.name, AccessKeyId=b.creds.key, Status="Inactive")
    assert code == "NoSuchEntity" and msg == f"The Access Key with id {b.creds.key} cannot be found."
    code, _, _ = expect_error(iam.delete_access_key, UserName=a.name, AccessKeyId=b.creds.key)
    assert code == "NoSuchEntity"
    assert b.sts.get_caller_identity()["Arn"] == b.arn


def test_update_access_key_rejects_unknown_status(make_user, iam):
    u = make_user()
    code, msg, status = expect_error(
        iam.update_access_key, UserName=u.name, AccessKeyId=u.creds.key, Status="Disabled"
    )
    assert (code, status) == ("ValidationError", 400)
    assert "at 'status' failed to satisfy constraint: Member must satisfy enum value set" in msg
    assert iam.list_access_keys(UserName=u.name)["AccessKeyMetadata"][0]["Status"] == "Active"


def test_user_manages_own_keys_when_allowed(make_user):
    own = "arn:aws:iam::*:user/${aws:username}"
    u = make_user(inline=policy_doc(allow(["iam:CreateAccessKey", "iam:ListAccessKeys", "iam:DeleteAccessKey"], own)))
    # no UserName: the caller's own keys
    k = u.iam.create_access_key()["AccessKey"]
    assert k["UserName"] == u.name
    ids = sorted(m["AccessKeyId"] for m in u.iam.list_access_keys()["AccessKeyMetadata"])
    assert ids == sorted([u.creds.key, k["AccessKeyId"]])
    u.iam.delete_access_key(AccessKeyId=k["AccessKeyId"])
    assert [m["AccessKeyId"] for m in u.iam.list_access_keys()["AccessKeyMetadata"]] == [u.creds.key]


def test_get_access_key_last_used(make_user, iam):
    u = make_user()
    r = iam.get_access_key_last_used(AccessKeyId=u.creds.key)
    assert r["UserName"] == u.name
    assert r["AccessKeyLastUsed"]["ServiceName"] == "N/A"
    assert r["AccessKeyLastUsed"]["Region"] == "N/A"
    assert "LastUsedDate" not in r["AccessKeyLastUsed"]

    u.sts.get_caller_identity()
    # the server records the use asynchronously: poll briefly
    deadline = time.monotonic() + 5
    while True:
        last = iam.get_access_key_last_used(AccessKeyId=u.creds.key)["AccessKeyLastUsed"]
        if last["ServiceName"] != "N/A" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert last["ServiceName"] == "sts"
    assert last["Region"] == "us-east-1"
    assert "LastUsedDate" in last

    code, msg, _ = expect_error(iam.get_access_key_last_used, AccessKeyId="AKIA" + "Z" * 16)
    assert code == "NoSuchEntity"
    assert msg == f"The Access Key with id AKIA{'Z' * 16} cannot be found."


def test_root_lists_its_own_keys(iam):
    meta = iam.list_access_keys()["AccessKeyMetadata"]
    assert ROOT_KEY_ID in [m["AccessKeyId"] for m in meta]
    assert all("UserName" not in m for m in meta)

