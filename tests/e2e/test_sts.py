"""STS: GetCallerIdentity, AssumeRole (trust policies, session policies, chaining, revocation)
and GetSessionToken."""

import datetime as dt

from e2e_helpers import ACCOUNT, ROOT, Creds, allow, expect_error, policy_doc, uid, user_arn

INVALID_TOKEN = "The security token included in the request is invalid."
LIST_USERS_RES = f"arn:aws:iam::{ACCOUNT}:user/"


def trust(principal_aws, **cond):
    st = {"Effect": "Allow", "Principal": {"AWS": principal_aws}, "Action": "sts:AssumeRole"}
    if cond:
        st["Condition"] = cond
    return policy_doc(st)


def make_role(iam, trust_doc, inline=None, **kw):
    name = uid("role")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_doc, **kw)["Role"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:role/{name}"
    if inline:
        iam.put_role_policy(RoleName=name, PolicyName="perm", PolicyDocument=inline)
    return name, arn


def session_creds(resp) -> Creds:
    c = resp["Credentials"]
    return Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def test_get_caller_identity_root_with_the_aws_cli(aws):
    rc, out, err = aws(["sts", "get-caller-identity"], ROOT)
    assert rc == 0, err
    assert out == {"UserId": ACCOUNT, "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root"}


def test_get_caller_identity_user_with_the_aws_cli(aws, make_user, iam):
    u = make_user()
    rc, out, err = aws(["sts", "get-caller-identity"], u.creds)
    assert rc == 0, err
    assert out["Arn"] == u.arn
    assert out["Account"] == ACCOUNT
    assert out["UserId"] == iam.get_user(UserName=u.name)["User"]["UserId"]


def test_assume_role_with_the_aws_cli_and_act_with_the_session(aws, make_user, iam, server):
    u = make_user()
    role, role_arn = make_role(iam, trust(u.arn), inline=policy_doc(allow(["iam:ListRoles", "iam:GetRole"])))
    role_id = iam.get_role(RoleName=role)["Role"]["RoleId"]

    rc, out, err = aws(["sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "cli-session"], u.creds)
    assert rc == 0, err
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA")
    assert c["SecretAccessKey"] and c["SessionToken"]
    expires = dt.datetime.fromisoformat(c["Expiration"].replace("Z", "+00:00"))
    remaining = (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 3500 < remaining <= 3605
    sess_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/cli-session"
    assert out["AssumedRoleUser"] == {"AssumedRoleId": f"{role_id}:cli-session", "Arn": sess_arn}

    creds = session_creds(out)
    rc, ident, err = aws(["sts", "get-caller-identity"], creds)
    assert rc == 0, err
    assert ident == {"UserId": f"{role_id}:cli-session", "Account": ACCOUNT, "Arn": sess_arn}

    s_iam = server.client_for("iam", creds)
    assert s_iam.get_role(RoleName=role)["Role"]["Arn"] == role_arn
    assert role in [r["RoleName"] for r in s_iam.list_roles(MaxItems=1000)["Roles"]]
    code, msg, status = expect_error(s_iam.list_users)
    assert (code, status) == ("AccessDenied", 403)
    assert msg == (
        f"User: {sess_arn} is not authorized to perform: iam:ListUsers on resource: {LIST_USERS_RES} "
        "because no identity-based policy allows the iam:ListUsers action"
    )


def test_trust_policy_not_naming_the_caller_denies(make_user, iam):
    named, other = make_user(), make_user()
    _, role_arn = make_role(iam, trust(named.arn))
    code, msg, status = expect_error(other.sts.assume_role, RoleArn=role_arn, RoleSessionName="nope")
    assert (code, status) == ("AccessDenied", 403)
    assert msg == f"User: {other.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    # even an administrator must be named by the trust policy
    admin = make_user(managed=["arn:aws:iam::aws:policy/AdministratorAccess"])
    code, _, _ = expect_error(admin.sts.assume_role, RoleArn=role_arn, RoleSessionName="nope")
    assert code == "AccessDenied"
    # a missing role answers the same way
    missing = f"arn:aws:iam::{ACCOUNT}:role/{uid('ghost')}"
    code, msg, _ = expect_error(named.sts.assume_role, RoleArn=missing, RoleSessionName="nope")
    assert code == "AccessDenied"
    assert msg == f"User: {named.arn} is not authorized to perform: sts:AssumeRole on resource: {missing}"


def test_trust_naming_the_account_delegates_to_identity_policies(make_user, iam):
    _, role_arn = make_role(iam, trust(f"arn:aws:iam::{ACCOUNT}:root"))
    without = make_user()
    code, _, _ = expect_error(without.sts.assume_role, RoleArn=role_arn, RoleSessionName="s1")
    assert code == "AccessDenied"
    allowed = make_user(inline=policy_doc(allow("sts:AssumeRole", role_arn)))
    r = allowed.sts.assume_role(RoleArn=role_arn, RoleSessionName="s1")
    assert r["AssumedRoleUser"]["Arn"].endswith("/s1")


def test_trust_policy_conditions_on_external_id(make_user, iam):
    u = make_user()
    _, role_arn = make_role(iam, trust(u.arn, StringEquals={"sts:ExternalId": "secret-42"}))
    code, _, _ = expect_error(u.sts.assume_role, RoleArn=role_arn, RoleSessionName="s1", ExternalId="wrong-id")
    assert code == "AccessDenied"
    code, _, _ = expect_error(u.sts.assume_role, RoleArn=role_arn, RoleSessionName="s1")
    assert code == "AccessDenied"
    u.sts.assume_role(RoleArn=role_arn, RoleSessionName="s1", ExternalId="secret-42")


def test_session_policy_narrows_the_role(make_user, iam, server):
    u = make_user()
    _, role_arn = make_role(iam, trust(u.arn), inline=policy_doc(allow("iam:List*")))
    r = u.sts.assume_role(
        RoleArn=role_arn, RoleSessionName="narrow", Policy=policy_doc(allow("iam:ListRoles"))
    )
    assert r["PackedPolicySize"] >= 0
    s_iam = server.client_for("iam", session_creds(r))
    s_iam.list_roles(MaxItems=1)
    code, msg, _ = expect_error(s_iam.list_users)
    assert code == "AccessDenied"
    assert msg.endswith("because no session policy allows the iam:ListUsers action")
    # a session policy cannot widen the role
    r2 = u.sts.assume_role(RoleArn=role_arn, RoleSessionName="wide", Policy=policy_doc(allow("iam:*")))
    code, msg, _ = expect_error(server.client_for("iam", session_creds(r2)).get_user, UserName=u.name)
    assert code == "AccessDenied"
    assert msg.endswith("because no identity-based policy allows the iam:GetUser action")


def test_assume_role_validation(make_user, iam):
    u = make_user()
    _, role_arn = make_role(iam, trust(u.arn))
    code, msg, status = expect_error(u.sts.assume_role, RoleArn=role_arn, RoleSessionName="Session1:2")
    assert (code, status) == ("ValidationError", 400)
    assert msg == (
        "1 validation error detected: Value 'Session1:2' at 'roleSessionName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [\\w+=,.@-]*"
    )
    code, msg, _ = expect_error(u.sts.assume_role, RoleArn=role_arn, RoleSessionName="s1", DurationSeconds=7200)
    assert (code, msg) == ("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
    code, _, _ = expect_error(
        u.sts.assume_role, RoleArn=role_arn, RoleSessionName="s1", Policy='{"Version":"2012-10-17"'
    )
    assert code == "MalformedPolicyDocument"


def test_role_chaining(make_user, iam, server):
    u = make_user()
    a_name, a_arn = make_role(iam, trust(u.arn))
    b_name, b_arn = make_role(iam, trust(a_arn), MaxSessionDuration=7200)
    a = session_creds(u.sts.assume_role(RoleArn=a_arn, RoleSessionName="first"))
    a_sts = server.client_for("sts", a)
    code, msg, _ = expect_error(a_sts.assume_role, RoleArn=b_arn, RoleSessionName="second", DurationSeconds=7200)
    assert code == "ValidationError" and "role chaining" in msg
    b = session_creds(a_sts.assume_role(RoleArn=b_arn, RoleSessionName="second"))
    ident = server.client_for("sts", b).get_caller_identity()
    assert ident["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{b_name}/second"
    # the user itself is not named by B's trust policy
    code, _, _ = expect_error(u.sts.assume_role, RoleArn=b_arn, RoleSessionName="direct")
    assert code == "AccessDenied"


def test_get_session_token_acts_as_the_user(make_user, server):
    u = make_user(inline=policy_doc(allow("iam:GetUser", "arn:aws:iam::*:user/${aws:username}")))
    r = u.sts.get_session_token(DurationSeconds=900)
    creds = session_creds(r)
    assert creds.key.startswith("ASIA")
    ident = server.client_for("sts", creds).get_caller_identity()
    assert ident["Arn"] == u.arn
    s_iam = server.client_for("iam", creds)
    assert s_iam.get_user()["User"]["UserName"] == u.name
    code, msg, _ = expect_error(s_iam.list_users)
    assert code == "AccessDenied"
    assert msg == (
        f"User: {u.arn} is not authorized to perform: iam:ListUsers on resource: {LIST_USERS_RES} "
        "because no identity-based policy allows the iam:ListUsers action"
    )
    # session credentials cannot mint further session tokens
    code, msg, status = expect_error(server.client_for("sts", creds).get_session_token)
    assert (code, status) == ("AccessDenied", 403)
    assert msg == "Cannot call GetSessionToken with session credentials"


def test_root_session_token(sts, server):
    creds = session_creds(sts.get_session_token())
    assert server.client_for("sts", creds).get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    server.client_for("iam", creds).list_users(MaxItems=1)
    code, _, _ = expect_error(sts.get_session_token, DurationSeconds=7200)
    assert code == "ValidationError"


def test_wrong_or_missing_session_token_is_refused(make_user, server):
    u = make_user()
    good = session_creds(u.sts.get_session_token(DurationSeconds=900))
    for bad in (
        Creds(good.key, good.secret, good.token[:-4] + "AAAA"),  # tampered token
        Creds(good.key, good.secret, None),  # missing token
        Creds(u.creds.key, u.creds.secret, good.token),  # a token on a long-term key
    ):
        code, msg, status = expect_error(server.client_for("sts", bad).get_caller_identity)
        assert (code, status, msg) == ("InvalidClientTokenId", 403, INVALID_TOKEN)
    assert server.client_for("sts", good).get_caller_identity()["Arn"] == u.arn


def test_deleted_role_revokes_its_sessions(make_user, iam, server):
    u = make_user()
    role, role_arn = make_role(iam, trust(u.arn), inline=policy_doc(allow("iam:ListRoles")))
    creds = session_creds(u.sts.assume_role(RoleArn=role_arn, RoleSessionName="doomed"))
    s_sts = server.client_for("sts", creds)
    assert s_sts.get_caller_identity()["Arn"].endswith(f"/{role}/doomed")

    code, msg, _ = expect_error(iam.delete_role, RoleName=role)
    assert (code, msg) == ("DeleteConflict", "Cannot delete entity, must delete policies first.")
    iam.delete_role_policy(RoleName=role, PolicyName="perm")
    iam.delete_role(RoleName=role)
    code, msg, status = expect_error(s_sts.get_caller_identity)
    assert (code, status, msg) == ("InvalidClientTokenId", 403, INVALID_TOKEN)

    # re-creating a role with the same name does not revive old sessions
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(u.arn))
    code, _, _ = expect_error(s_sts.get_caller_identity)
    assert code == "InvalidClientTokenId"
    assert u.sts.assume_role(RoleArn=role_arn, RoleSessionName="fresh")["AssumedRoleUser"]["Arn"].endswith("/fresh")


def test_role_crud(iam):
    doc = trust(user_arn("someone"))
    name, arn = make_role(iam, doc, Description="e2e role", MaxSessionDuration=7200)
    r = iam.get_role(RoleName=name)["Role"]
    assert r["RoleId"].startswith("AROA")
    assert r["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": user_arn("someone")}
    assert r["MaxSessionDuration"] == 7200 and r["Description"] == "e2e role"
    code, msg, _ = expect_error(iam.create_role, RoleName=name.upper(), AssumeRolePolicyDocument=doc)
    assert (code, msg) == ("EntityAlreadyExists", f"Role with name {name.upper()} already exists.")
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust(f"arn:aws:iam::{ACCOUNT}:root"))
    assert iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "AWS": f"arn:aws:iam::{ACCOUNT}:root"
    }
    iam.delete_role(RoleName=name)
    code, msg, _ = expect_error(iam.get_role, RoleName=name)
    assert (code, msg) == ("NoSuchEntity", f"The role with name {name} cannot be found.")
