"""Malformed requests and invalid parameters: each answered with AWS's error code, and nothing is
stored (checked with a Get or a List afterwards)."""

import json

import pytest

from botocore.exceptions import ClientError

from e2e_helpers import (
    ACCOUNT,
    ROOT,
    allow,
    expect_error,
    parse_query_error,
    policy_doc,
    query_body,
    signed_request,
    uid,
)


@pytest.fixture(scope="module")
def raw_iam(server):
    """A root IAM client that skips botocore's client-side parameter validation."""
    return server.client_for("iam", ROOT, validate=False)


def send(server, body, **kw):
    status, _, text = signed_request(server.endpoint, ROOT, "iam", body, **kw)
    return status, (parse_query_error(text) if status >= 400 else text)


def user_count(iam):
    return len(iam.list_users(MaxItems=1000)["Users"])


def trust_doc():
    return policy_doc({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"})


# ---- malformed bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"\x00\xff\xfe garbage &&&== %%%", None),
        (b"", None),
        (b'{"Action": "CreateUser", "UserName": "x"}', "application/json"),
        (b"Version=2010-05-08&UserName=orphan", None),
    ],
    ids=["binary-garbage", "empty", "json", "no-action"],
)
def test_bodies_without_an_action(server, iam, body, content_type):
    before = user_count(iam)
    headers = {"Content-Type": content_type} if content_type else None
    status, err = send(server, body, headers=headers)
    assert status == 400
    assert (err["Code"], err["Message"]) == ("MissingAction", "Missing Action")
    assert err["Type"] == "Sender"
    assert user_count(iam) == before
    assert expect_error(iam.get_user, UserName="orphan")[0] == "NoSuchEntity"


def test_missing_required_parameter(server):
    status, err = send(server, query_body("CreateUser"))
    assert status == 400
    assert err["Code"] == "ValidationError"
    assert err["Message"] == (
        "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null"
    )


@pytest.mark.parametrize(
    "raw_name",
    ["%ZZbad", "ab%FF%FE", "a%20b", "a%3Cb%3E"],
    ids=["bad-percent-escape", "invalid-utf8", "space", "angle-brackets"],
)
def test_undecodable_or_invalid_names(server, iam, raw_name):
    before = user_count(iam)
    status, err = send(server, f"Action=CreateUser&Version=2010-05-08&UserName={raw_name}")
    assert status == 400
    assert err["Code"] == "ValidationError"
    assert "at 'userName' failed to satisfy constraint" in err["Message"]
    assert user_count(iam) == before


def test_body_over_one_mebibyte_is_refused(server, iam):
    name = uid("huge")
    body = query_body("CreateUser", UserName=name, Padding="a" * (1 << 20))
    status, err = send(server, body)
    assert status == 413
    assert err["Code"] == "RequestEntityTooLarge"
    assert expect_error(iam.get_user, UserName=name)[0] == "NoSuchEntity"


def test_query_string_requests_are_accepted(server, iam):
    name = uid("viaget")
    status, _, text = signed_request(
        server.endpoint, ROOT, "iam", method="GET", query=query_body("CreateUser", UserName=name)
    )
    assert status == 200, text
    assert f"<UserName>{name}</UserName>" in text
    assert iam.get_user(UserName=name)["User"]["UserName"] == name


# ---- oversize policies -----------------------------------------------------------------------


def padded_policy(size):
    """A compact identity policy of exactly `size` characters (no whitespace)."""
    base = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": ""}]}
    empty = len(json.dumps(base, separators=(",", ":")))
    prefix = f"arn:aws:iam::{ACCOUNT}:user/"
    base["Statement"][0]["Resource"] = prefix + "p" * (size - empty - len(prefix))
    doc = json.dumps(base, separators=(",", ":"))
    assert len(doc) == size
    return doc


def test_inline_user_policies_share_a_2048_character_quota(iam):
    user = uid("quota")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="first", PolicyDocument=padded_policy(1200))
    code, msg, status = expect_error(
        iam.put_user_policy, UserName=user, PolicyName="second", PolicyDocument=padded_policy(1000)
    )
    assert (code, status) == ("LimitExceeded", 409)
    assert msg == f"Maximum policy size of 2048 bytes exceeded for user {user}"
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["first"]
    assert expect_error(iam.get_user_policy, UserName=user, PolicyName="second")[0] == "NoSuchEntity"
    # exactly at the quota is fine
    iam.put_user_policy(UserName=user, PolicyName="second", PolicyDocument=padded_policy(848))


def test_inline_role_policy_over_10240_characters(iam):
    role = uid("quota")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_doc())
    code, msg, _ = expect_error(
        iam.put_role_policy, RoleName=role, PolicyName="big", PolicyDocument=padded_policy(10241)
    )
    assert code == "LimitExceeded"
    assert msg == f"Maximum policy size of 10240 bytes exceeded for role {role}"
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == []


def test_trust_policy_over_2048_characters(iam):
    role = uid("bigtrust")
    big = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:user/u{i:04d}" for i in range(60)]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    code, msg, status = expect_error(iam.create_role, RoleName=role, AssumeRolePolicyDocument=big)
    assert (code, status, msg) == ("LimitExceeded", 409, "Cannot exceed quota for ACLSizePerRole: 2048")
    assert expect_error(iam.get_role, RoleName=role)[0] == "NoSuchEntity"

    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_doc())
    code, _, _ = expect_error(iam.update_assume_role_policy, RoleName=role, PolicyDocument=big)
    assert code == "LimitExceeded"
    principal = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"AWS": ACCOUNT}


def test_oversize_managed_policy(iam):
    name = uid("big")
    code, _, status = expect_error(iam.create_policy, PolicyName=name, PolicyDocument=padded_policy(7000))
    assert (code, status) == ("LimitExceeded", 409)
    assert expect_error(iam.get_policy, PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/{name}")[0] == "NoSuchEntity"


# ---- invalid names -----------------------------------------------------------------------------


def test_invalid_entity_names(raw_iam, iam):
    cases = [
        ("groupName", lambda n: raw_iam.create_group(GroupName=n), "g" * 129, lambda n: iam.get_group(GroupName=n)),
        ("groupName", lambda n: raw_iam.create_group(GroupName=n), "bad group", lambda n: iam.get_group(GroupName=n)),
        (
            "roleName",
            lambda n: raw_iam.create_role(RoleName=n, AssumeRolePolicyDocument=trust_doc()),
            "r" * 65,
            lambda n: iam.get_role(RoleName=n),
        ),
        (
            "roleName",
            lambda n: raw_iam.create_role(RoleName=n, AssumeRolePolicyDocument=trust_doc()),
            "role#1",
            lambda n: iam.get_role(RoleName=n),
        ),
        (
            "policyName",
            lambda n: raw_iam.create_policy(PolicyName=n, PolicyDocument=policy_doc(allow("iam:GetUser"))),
            "p" * 129,
            lambda n: iam.get_policy(PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/{n}"),
        ),
        (
            "policyName",
            lambda n: raw_iam.create_policy(PolicyName=n, PolicyDocument=policy_doc(allow("iam:GetUser"))),
            "pol*icy",
            lambda n: iam.get_policy(PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/{n}"),
        ),
    ]
    for field, create, name, get in cases:
        code, msg, status = expect_error(create, name)
        assert (code, status) == ("ValidationError", 400), (field, name, msg)
        assert f"at '{field}' failed to satisfy constraint" in msg, msg
        assert expect_error(get, name)[0] == "NoSuchEntity", (field, name)


def test_invalid_inline_policy_name(raw_iam, iam):
    user = uid("inl")
    iam.create_user(UserName=user)
    code, msg, _ = expect_error(
        raw_iam.put_user_policy, UserName=user, PolicyName="has space", PolicyDocument=policy_doc(allow("iam:GetUser"))
    )
    assert code == "ValidationError" and "at 'policyName'" in msg
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []


def test_invalid_role_session_name_and_duration(raw_iam, make_user, server):
    u = make_user()
    sts = server.client_for("sts", u.creds, validate=False)
    arn = raw_iam.create_role(
        RoleName=uid("r"),
        AssumeRolePolicyDocument=policy_doc({"Effect": "Allow", "Principal": {"AWS": u.arn}, "Action": "sts:AssumeRole"}),
    )["Role"]["Arn"]
    for name in ("x", "s" * 65, "with space"):
        code, msg, _ = expect_error(sts.assume_role, RoleArn=arn, RoleSessionName=name)
        assert code == "ValidationError" and "at 'roleSessionName'" in msg
    for dur in (899, 43201, "abc"):
        code, msg, _ = expect_error(sts.assume_role, RoleArn=arn, RoleSessionName="ok", DurationSeconds=dur)
        assert code == "ValidationError" and "'durationSeconds'" in msg


def test_empty_user_name_message(server):
    status, err = send(server, "Action=CreateUser&Version=2010-05-08&UserName=")
    assert status == 400 and err["Code"] == "ValidationError"
    assert err["Message"] == (
        "1 validation error detected: Value '' at 'userName' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )


# ---- invalid paths -----------------------------------------------------------------------------


BAD_PATHS = ["no-slashes", "/no-trailing", "no-leading/", "/sp ace/", "/" + "a" * 511 + "/", "/tab\t/"]


@pytest.mark.parametrize("path", BAD_PATHS, ids=["no-slashes", "no-trailing", "no-leading", "space", "513-chars", "tab"])
def test_invalid_paths(raw_iam, iam, path):
    n = uid("path")
    creates = [
        (lambda: raw_iam.create_user(UserName=n, Path=path), lambda: iam.get_user(UserName=n)),
        (lambda: raw_iam.create_group(GroupName=n, Path=path), lambda: iam.get_group(GroupName=n)),
        (
            lambda: raw_iam.create_role(RoleName=n, Path=path, AssumeRolePolicyDocument=trust_doc()),
            lambda: iam.get_role(RoleName=n),
        ),
        (
            lambda: raw_iam.create_policy(PolicyName=n, Path=path, PolicyDocument=policy_doc(allow("iam:GetUser"))),
            lambda: iam.list_policies(Scope="Local", MaxItems=1000),
        ),
    ]
    for create, check in creates:
        code, msg, status = expect_error(create)
        assert (code, status) == ("ValidationError", 400), msg
        assert "at 'path' failed to satisfy constraint" in msg
    for _, check in creates[:3]:
        assert expect_error(check)[0] == "NoSuchEntity"
    assert n not in [p["PolicyName"] for p in iam.list_policies(Scope="Local", MaxItems=1000)["Policies"]]


def test_update_user_with_invalid_new_path_changes_nothing(raw_iam, iam):
    n = uid("keep")
    iam.create_user(UserName=n, Path="/orig/")
    code, _, _ = expect_error(raw_iam.update_user, UserName=n, NewPath="bad", NewUserName=uid("new"))
    assert code == "ValidationError"
    u = iam.get_user(UserName=n)["User"]
    assert (u["UserName"], u["Path"]) == (n, "/orig/")


# ---- pagination and other scalar parameters ----------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 1001, "abc"])
def test_invalid_max_items(raw_iam, value):
    code, msg, status = expect_error(raw_iam.list_users, MaxItems=value)
    assert (code, status) == ("ValidationError", 400)
    assert "at 'maxItems' failed to satisfy constraint" in msg


def test_max_items_zero_message(raw_iam):
    _, msg, _ = expect_error(raw_iam.list_users, MaxItems=0)
    assert msg == (
        "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_invalid_marker(raw_iam):
    # (AWS's answer is not recorded in the reference; this is Coffer's)
    assert expect_error(raw_iam.list_users, Marker="!!not-a-marker!!") == ("InvalidInput", "Invalid Marker.", 400)


def test_invalid_enum_boolean_and_number_parameters(raw_iam, iam, server):
    code, _, _ = expect_error(raw_iam.list_policies, Scope="Everything")
    assert code == "ValidationError"

    name = uid("bool")
    arn = iam.create_policy(PolicyName=name, PolicyDocument=policy_doc(allow("iam:GetUser")))["Policy"]["Arn"]
    # (botocore would serialise any truthy value as "true": send the bad boolean raw)
    status, err = send(
        server,
        query_body("CreatePolicyVersion", PolicyArn=arn, PolicyDocument=policy_doc(allow("iam:ListUsers")), SetAsDefault="maybe"),
    )
    assert status == 400 and err["Code"] == "ValidationError" and "'setAsDefault'" in err["Message"]
    assert len(iam.list_policy_versions(PolicyArn=arn)["Versions"]) == 1

    role = uid("dur")
    code, msg, _ = expect_error(raw_iam.create_role, RoleName=role, AssumeRolePolicyDocument=trust_doc(), MaxSessionDuration=60)
    assert code == "ValidationError" and "'maxSessionDuration'" in msg
    assert expect_error(iam.get_role, RoleName=role)[0] == "NoSuchEntity"


def test_invalid_access_key_id_and_description(raw_iam, iam):
    user = uid("ak")
    iam.create_user(UserName=user)
    code, msg, _ = expect_error(raw_iam.update_access_key, UserName=user, AccessKeyId="short", Status="Inactive")
    assert code == "ValidationError" and "'accessKeyId'" in msg

    name = uid("desc")
    code, msg, _ = expect_error(
        raw_iam.create_policy, PolicyName=name, PolicyDocument=policy_doc(allow("iam:GetUser")), Description="d" * 1001
    )
    assert code == "ValidationError" and "'description'" in msg
    assert expect_error(iam.get_policy, PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/{name}")[0] == "NoSuchEntity"


def test_invalid_tags(raw_iam, iam):
    name = uid("tags")
    code, _, _ = expect_error(raw_iam.create_user, UserName=name, Tags=[{"Key": "k", "Value": "v" * 257}])
    assert code == "ValidationError"
    code, _, _ = expect_error(raw_iam.create_user, UserName=name, Tags=[{"Key": "k" * 129, "Value": "v"}])
    assert code == "ValidationError"
    assert expect_error(iam.get_user, UserName=name)[0] == "NoSuchEntity"


def test_short_password_is_a_policy_violation(iam):
    user = uid("pw")
    iam.create_user(UserName=user)
    code, _, status = expect_error(iam.create_login_profile, UserName=user, Password="short")
    assert (code, status) == ("PasswordPolicyViolation", 400)
    code, msg, _ = expect_error(iam.get_login_profile, UserName=user)
    assert code == "NoSuchEntity" and msg == f"Login Profile for User {user} cannot be found."
    iam.delete_user(UserName=user)  # no login profile blocks it


# ---- control characters: the XML answer must stay well formed ------------------------------


def test_control_characters_in_a_name_give_a_well_formed_error(server):
    status, _, text = signed_request(
        server.endpoint, ROOT, "iam", "Action=CreateUser&Version=2010-05-08&UserName=a%00b%01c"
    )
    assert status == 400
    err = parse_query_error(text)  # raises ParseError today
    assert err["Code"] == "ValidationError"


def test_tag_values_with_control_characters_are_rejected(new_server):
    # own server: the stored record would poison ListUsers for every other test
    srv = new_server()
    iam = srv.client_for("iam", ROOT)
    name = uid("ctl")
    iam.create_user(UserName=name)
    try:
        iam.tag_user(UserName=name, Tags=[{"Key": "k", "Value": "v\x01"}])
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ValidationError"
    # whatever happened, the user must still be readable
    assert iam.get_user(UserName=name)["User"]["UserName"] == name
    assert srv.stop() == 0
