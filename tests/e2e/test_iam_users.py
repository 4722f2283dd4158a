"""IAM users: create/get/list/update/delete, tags, conflicts and validation."""

import pytest

from e2e_helpers import ACCOUNT, expect_error, policy_doc, allow, uid, user_arn


def test_create_and_get_user_with_path_and_tags(iam):
    name = uid("alice")
    path = f"/e2e/{uid('p')}/"
    u = iam.create_user(UserName=name, Path=path, Tags=[{"Key": "team", "Value": "blue"}])["User"]
    assert u["UserName"] == name
    assert u["Path"] == path
    assert u["Arn"] == f"arn:aws:iam::{ACCOUNT}:user{path}{name}"
    assert u["UserId"].startswith("AIDA") and len(u["UserId"]) == 21
    assert u["Tags"] == [{"Key": "team", "Value": "blue"}]

    got = iam.get_user(UserName=name)["User"]
    assert {k: got[k] for k in ("UserName", "Path", "Arn", "UserId")} == {
        k: u[k] for k in ("UserName", "Path", "Arn", "UserId")
    }
    assert got["CreateDate"] == u["CreateDate"]
    assert got["Tags"] == [{"Key": "team", "Value": "blue"}]


def test_create_user_with_the_aws_cli(aws, iam):
    name = uid("cli")
    rc, out, err = aws(["iam", "create-user", "--user-name", name, "--path", "/cli/"])
    assert rc == 0, err
    assert out["User"]["UserName"] == name
    assert out["User"]["Arn"] == user_arn(name, "/cli/")
    assert iam.get_user(UserName=name)["User"]["UserId"] == out["User"]["UserId"]


def test_get_user_without_name_as_root_describes_root(iam):
    u = iam.get_user()["User"]
    assert u["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert u["UserId"] == ACCOUNT


def test_get_missing_user_is_no_such_entity(iam):
    name = uid("ghost")
    code, msg, status = expect_error(iam.get_user, UserName=name)
    assert (code, status) == ("NoSuchEntity", 404)
    assert msg == f"The user with name {name} cannot be found."


def test_duplicate_user_names_conflict_case_insensitively(iam):
    name = uid("Dup")
    first = iam.create_user(UserName=name, Path="/one/")["User"]
    for other in (name, name.upper(), name.lower()):
        code, msg, status = expect_error(iam.create_user, UserName=other, Path="/two/")
        assert (code, status) == ("EntityAlreadyExists", 409)
        assert msg == f"User with name {other} already exists."
    # the original is untouched (path, id, spelling)
    got = iam.get_user(UserName=name.lower())["User"]
    assert got["UserName"] == name
    assert got["Path"] == "/one/"
    assert got["UserId"] == first["UserId"]


def test_list_users_paginates_with_max_items_and_marker(iam):
    prefix = f"/page/{uid('p')}/"
    names = sorted(uid("pg") for _ in range(5))
    for n in names:
        iam.create_user(UserName=n, Path=prefix)

    seen, marker, pages = [], None, 0
    while True:
        kw = {"PathPrefix": prefix, "MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        r = iam.list_users(**kw)
        pages += 1
        assert len(r["Users"]) <= 2
        seen += [u["UserName"] for u in r["Users"]]
        if not r["IsTruncated"]:
            assert "Marker" not in r
            break
        assert r["Marker"]
        marker = r["Marker"]
        assert pages < 10, "pagination does not terminate"
    assert pages == 3
    assert sorted(seen) == names
    assert len(seen) == len(set(seen))

    # an exact multiple of MaxItems ends without a dangling truncated page
    r = iam.list_users(PathPrefix=prefix, MaxItems=5)
    assert len(r["Users"]) == 5 and r["IsTruncated"] is False

    # the boto3 paginator agrees
    pag = iam.get_paginator("list_users").paginate(
        PathPrefix=prefix, PaginationConfig={"PageSize": 3}
    )
    assert sorted(u["UserName"] for page in pag for u in page["Users"]) == names

    # the default page holds them all and every listed user is in the prefix
    all_users = iam.list_users(PathPrefix=prefix)["Users"]
    assert {u["Path"] for u in all_users} == {prefix}


def test_rename_user_keeps_identity_keys_and_groups(iam, make_user, client):
    u = make_user()
    group = uid("grp")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=u.name)
    before = iam.get_user(UserName=u.name)["User"]

    new_name = uid("renamed")
    iam.update_user(UserName=u.name, NewUserName=new_name, NewPath="/moved/")

    code, msg, _ = expect_error(iam.get_user, UserName=u.name)
    assert code == "NoSuchEntity" and msg == f"The user with name {u.name} cannot be found."
    after = iam.get_user(UserName=new_name)["User"]
    assert after["UserId"] == before["UserId"]
    assert after["Path"] == "/moved/"
    assert after["Arn"] == user_arn(new_name, "/moved/")

    # the access key now signs as the renamed user
    ident = client("sts", u.creds.key, u.creds.secret).get_caller_identity()
    assert ident["Arn"] == user_arn(new_name, "/moved/")
    keys = iam.list_access_keys(UserName=new_name)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == u.key_ids
    assert keys[0]["UserName"] == new_name

    # group membership follows the rename
    members = [m["UserName"] for m in iam.get_group(GroupName=group)["Users"]]
    assert members == [new_name]
    groups = iam.list_groups_for_user(UserName=new_name)["Groups"]
    assert [g["GroupName"] for g in groups] == [group]


def test_rename_onto_an_existing_user_conflicts(iam):
    a, b = uid("ra"), uid("rb")
    iam.create_user(UserName=a)
    iam.create_user(UserName=b)
    code, msg, status = expect_error(iam.update_user, UserName=a, NewUserName=b.upper())
    assert (code, status) == ("EntityAlreadyExists", 409)
    assert msg == f"User with name {b.upper()} already exists."
    assert iam.get_user(UserName=a)["User"]["UserName"] == a
    assert iam.get_user(UserName=b)["User"]["UserName"] == b


def test_update_missing_user_is_no_such_entity(iam):
    name = uid("ghost")
    code, msg, _ = expect_error(iam.update_user, UserName=name, NewUserName=uid("x"))
    assert code == "NoSuchEntity" and msg == f"The user with name {name} cannot be found."


def test_delete_user(iam):
    name = uid("del")
    iam.create_user(UserName=name)
    iam.delete_user(UserName=name)
    code, _, _ = expect_error(iam.get_user, UserName=name)
    assert code == "NoSuchEntity"
    code, msg, status = expect_error(iam.delete_user, UserName=name)
    assert (code, status) == ("NoSuchEntity", 404)
    assert msg == f"The user with name {name} cannot be found."
    assert name not in [u["UserName"] for u in iam.list_users()["Users"]]
    # the name is free again
    iam.create_user(UserName=name)


def test_user_tags(iam):
    name = uid("tags")
    iam.create_user(UserName=name, Tags=[{"Key": "a", "Value": "1"}])
    iam.tag_user(UserName=name, Tags=[{"Key": "b", "Value": "2"}, {"Key": "A", "Value": "9"}])
    tags = iam.list_user_tags(UserName=name)["Tags"]
    # tag keys are case-insensitive: "A" overwrote "a"'s value
    assert {t["Key"].lower(): t["Value"] for t in tags} == {"a": "9", "b": "2"}
    iam.untag_user(UserName=name, TagKeys=["b"])
    assert [t["Key"].lower() for t in iam.list_user_tags(UserName=name)["Tags"]] == ["a"]
    assert len(iam.get_user(UserName=name)["User"]["Tags"]) == 1

    code, _, status = expect_error(
        iam.tag_user, UserName=name, Tags=[{"Key": "aws:reserved", "Value": "x"}]
    )
    assert (code, status) == ("ValidationError", 400)
    code, _, _ = expect_error(iam.tag_user, UserName=uid("ghost"), Tags=[{"Key": "k", "Value": "v"}])
    assert code == "NoSuchEntity"


def test_delete_conflicts_come_in_order(iam):
    name = uid("busy")
    iam.create_user(UserName=name)
    iam.create_login_profile(UserName=name, Password="Correct-Horse-9")
    key = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    iam.put_user_policy(UserName=name, PolicyName="inl", PolicyDocument=policy_doc(allow("iam:GetUser")))
    iam.attach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    group = uid("g")
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=name)

    steps = [
        ("Cannot delete entity, must delete login profile first.", lambda: iam.delete_login_profile(UserName=name)),
        ("Cannot delete entity, must delete access keys first.", lambda: iam.delete_access_key(UserName=name, AccessKeyId=key)),
        ("Cannot delete entity, must delete policies first.", lambda: iam.delete_user_policy(UserName=name, PolicyName="inl")),
        (
            "Cannot delete entity, must detach all policies first.",
            lambda: iam.detach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
        ),
        ("Cannot delete entity, must remove users from group first.", lambda: iam.remove_user_from_group(GroupName=group, UserName=name)),
    ]
    for message, fix in steps:
        code, msg, status = expect_error(iam.delete_user, UserName=name)
        assert (code, status, msg) == ("DeleteConflict", 409, message)
        # the refused delete left the user in place
        assert iam.get_user(UserName=name)["User"]["UserName"] == name
        fix()
    iam.delete_user(UserName=name)
    assert expect_error(iam.get_user, UserName=name)[0] == "NoSuchEntity"
    assert iam.get_group(GroupName=group)["Users"] == []


@pytest.mark.parametrize(
    "bad",
    ["white space", "slash/name", "bang!", "x" * 65, "naïve", "semi;colon"],
    ids=["space", "slash", "bang", "65-chars", "non-ascii", "semicolon"],
)
def test_invalid_user_names_are_validation_errors_and_store_nothing(iam, bad):
    code, msg, status = expect_error(iam.create_user, UserName=bad)
    assert (code, status) == ("ValidationError", 400)
    assert msg.startswith("1 validation error detected: Value ")
    assert "at 'userName' failed to satisfy constraint" in msg
    assert bad not in [u["UserName"] for u in iam.list_users()["Users"]]


def test_max_length_user_name_is_accepted(iam):
    name = uid("m")
    name = name + "x" * (64 - len(name))
    assert len(name) == 64
    assert iam.create_user(UserName=name)["User"]["UserName"] == name


def test_rejected_create_stores_nothing(iam):
    name = uid("nostore")
    # bad path
    code, _, _ = expect_error(iam.create_user, UserName=name, Path="no-slashes")
    assert code == "ValidationError"
    # reserved tag key
    code, _, _ = expect_error(iam.create_user, UserName=name, Tags=[{"Key": "aws:x", "Value": "v"}])
    assert code == "ValidationError"
    # too many tags
    code, msg, status = expect_error(
        iam.create_user, UserName=name, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    )
    assert (code, status) == ("LimitExceeded", 409)
    # unknown permissions boundary
    code, _, _ = expect_error(
        iam.create_user, UserName=name, PermissionsBoundary=f"arn:aws:iam::{ACCOUNT}:policy/{uid('none')}"
    )
    assert code == "NoSuchEntity"
    assert expect_error(iam.get_user, UserName=name)[0] == "NoSuchEntity"


def test_user_with_iam_full_access_manages_users(make_user):
    admin = make_user(managed=["arn:aws:iam::aws:policy/IAMFullAccess"])
    name = uid("made-by-admin")
    admin.iam.create_user(UserName=name)
    assert admin.iam.get_user(UserName=name)["User"]["UserName"] == name
    admin.iam.delete_user(UserName=name)
    assert expect_error(admin.iam.get_user, UserName=name)[0] == "NoSuchEntity"
