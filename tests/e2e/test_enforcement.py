"""Authorization as seen by IAM users signing with their own keys: inline, managed and group
policies, explicit deny, NotAction, conditions, policy variables, permissions boundaries, and
SimulatePrincipalPolicy agreeing with real calls."""

import pytest

from e2e_helpers import ACCOUNT, allow, deny, expect_error, make_client, policy_doc, uid, user_arn

LIST_USERS_RES = f"arn:aws:iam::{ACCOUNT}:user/"
LIST_GROUPS_RES = f"arn:aws:iam::{ACCOUNT}:group/"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def denied_msg(principal, action, resource, explicit=False, kind="identity-based policy"):
    why = (
        f"with an explicit deny in an {kind}"
        if explicit
        else f"because no {kind} allows the {action} action"
    )
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {why}"


def assert_denied(call, principal, action, resource, explicit=False, kind="identity-based policy", **kw):
    code, msg, status = expect_error(call, **kw)
    assert (code, status) == ("AccessDenied", 403), msg
    assert msg == denied_msg(principal, action, resource, explicit, kind)


def test_user_without_policies_is_denied_with_the_aws_message(make_user):
    u = make_user()
    assert_denied(u.iam.get_user, u.arn, "iam:GetUser", u.arn)
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)
    # GetCallerIdentity needs no permission
    assert u.sts.get_caller_identity()["Arn"] == u.arn


def test_denial_through_the_aws_cli(make_user, aws):
    u = make_user()
    rc, out, err = aws(["iam", "list-users"], u.creds)
    assert rc != 0
    assert "AccessDenied" in err
    assert denied_msg(u.arn, "iam:ListUsers", LIST_USERS_RES) in err


def test_inline_policy_allows_then_removal_denies(make_user, iam):
    u = make_user(inline=policy_doc(allow("iam:GetUser")))
    assert u.iam.get_user()["User"]["Arn"] == u.arn
    assert u.iam.get_user(UserName=u.name)["User"]["UserName"] == u.name
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)
    iam.delete_user_policy(UserName=u.name, PolicyName="inline")
    assert_denied(u.iam.get_user, u.arn, "iam:GetUser", u.arn)


def test_action_names_match_case_insensitively_with_wildcards(make_user):
    u = make_user(inline=policy_doc(allow("IAM:getus?r")))
    assert u.iam.get_user()["User"]["UserName"] == u.name
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)


def test_attached_managed_policy_and_its_default_version(make_user, iam, aws):
    u = make_user()
    arn = iam.create_policy(PolicyName=uid("list"), PolicyDocument=policy_doc(allow("iam:ListUsers")))["Policy"]["Arn"]
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)
    rc, _, err = aws(["iam", "attach-user-policy", "--user-name", u.name, "--policy-arn", arn])
    assert rc == 0, err
    u.iam.list_users(MaxItems=1)

    # a new default version takes effect at once; switching back restores it
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=policy_doc(allow("iam:ListGroups")), SetAsDefault=True)
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)
    u.iam.list_groups(MaxItems=1)
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    u.iam.list_users(MaxItems=1)

    iam.detach_user_policy(UserName=u.name, PolicyArn=arn)
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)


def test_group_policies_apply_while_member(make_user, iam):
    group = uid("grp")
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="g", PolicyDocument=policy_doc(allow("iam:ListGroups")))
    iam.attach_group_policy(GroupName=group, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    u = make_user()
    assert_denied(u.iam.list_groups, u.arn, "iam:ListGroups", LIST_GROUPS_RES)
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)

    iam.add_user_to_group(GroupName=group, UserName=u.name)
    assert group in [g["GroupName"] for g in u.iam.list_groups(MaxItems=1000)["Groups"]]
    u.iam.list_users(MaxItems=1)  # via the group's attached IAMReadOnlyAccess

    iam.remove_user_from_group(GroupName=group, UserName=u.name)
    assert_denied(u.iam.list_groups, u.arn, "iam:ListGroups", LIST_GROUPS_RES)
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)


def test_explicit_deny_wins_over_allow(make_user, iam):
    u = make_user(inline=policy_doc(deny("iam:ListUsers")), managed=[ADMIN])
    assert u.iam.get_user()["User"]["UserName"] == u.name
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES, explicit=True)

    # a deny in a group beats the user's own allow
    group = uid("deny")
    iam.create_group(GroupName=group)
    iam.put_group_policy(GroupName=group, PolicyName="d", PolicyDocument=policy_doc(deny("iam:Get*", u.arn)))
    iam.add_user_to_group(GroupName=group, UserName=u.name)
    assert_denied(u.iam.get_user, u.arn, "iam:GetUser", u.arn, explicit=True)
    # ...only on the denied resource
    other = uid("other")
    iam.create_user(UserName=other)
    assert u.iam.get_user(UserName=other)["User"]["UserName"] == other


def test_not_action(make_user):
    u = make_user(inline=policy_doc({"Effect": "Allow", "NotAction": "iam:ListUsers", "Resource": "*"}))
    u.iam.get_user()
    u.iam.list_groups(MaxItems=1)
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)

    v = make_user(
        inline=policy_doc(allow("iam:*"), {"Effect": "Deny", "NotAction": ["iam:GetUser"], "Resource": "*"})
    )
    v.iam.get_user()
    assert_denied(v.iam.list_users, v.arn, "iam:ListUsers", LIST_USERS_RES, explicit=True)


def test_secure_transport_condition(make_user):
    # over plain HTTP aws:SecureTransport is false
    u = make_user(
        inline=policy_doc(
            allow("iam:GetUser"),
            deny("*", Condition={"Bool": {"aws:SecureTransport": "false"}}),
        )
    )
    assert_denied(u.iam.get_user, u.arn, "iam:GetUser", u.arn, explicit=True)

    v = make_user(inline=policy_doc(allow("iam:GetUser", Condition={"Bool": {"aws:SecureTransport": "true"}})))
    assert_denied(v.iam.get_user, v.arn, "iam:GetUser", v.arn)


def test_requested_region_condition(make_user, server):
    u = make_user(inline=policy_doc(allow("iam:GetUser", Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1"}})))
    assert u.iam.get_user()["User"]["UserName"] == u.name
    # IAM accepts any signing region; the condition sees the one the client signed with
    eu = make_client(server.endpoint, "iam", u.creds.key, u.creds.secret, region="eu-west-1")
    assert_denied(eu.get_user, u.arn, "iam:GetUser", u.arn)


def test_current_time_conditions(make_user):
    future = "2099-01-01T00:00:00Z"
    u = make_user(inline=policy_doc(allow("iam:GetUser", Condition={"DateGreaterThan": {"aws:CurrentTime": future}})))
    assert_denied(u.iam.get_user, u.arn, "iam:GetUser", u.arn)
    v = make_user(inline=policy_doc(allow("iam:GetUser", Condition={"DateLessThan": {"aws:CurrentTime": future}})))
    assert v.iam.get_user()["User"]["UserName"] == v.name


def test_source_ip_conditions(make_user):
    u = make_user(inline=policy_doc(allow("iam:GetUser", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})))
    u.iam.get_user()
    v = make_user(inline=policy_doc(allow("iam:GetUser", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})))
    assert_denied(v.iam.get_user, v.arn, "iam:GetUser", v.arn)
    w = make_user(
        inline=policy_doc(
            allow("iam:GetUser"),
            deny("iam:*", Condition={"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24"]}}),
        )
    )
    assert_denied(w.iam.get_user, w.arn, "iam:GetUser", w.arn, explicit=True)


def test_username_policy_variable(make_user, iam):
    own = "arn:aws:iam::*:user/${aws:username}"
    u = make_user(inline=policy_doc(allow(["iam:GetUser", "iam:ListUserTags"], own)))
    other = make_user()
    assert u.iam.get_user()["User"]["UserName"] == u.name
    assert u.iam.get_user(UserName=u.name)["User"]["Arn"] == u.arn
    u.iam.list_user_tags(UserName=u.name)
    assert_denied(u.iam.get_user, u.arn, "iam:GetUser", other.arn, UserName=other.name)
    assert_denied(u.iam.list_user_tags, u.arn, "iam:ListUserTags", other.arn, UserName=other.name)


def test_principal_tag_policy_variable(make_user, iam):
    team = uid("team").replace("-", "")
    u = make_user(
        tags=[{"Key": "team", "Value": team}],
        inline=policy_doc(allow("iam:GetUser", f"arn:aws:iam::{ACCOUNT}:user/" + "${aws:PrincipalTag/team}-*")),
    )
    mate, outsider = f"{team}-{uid('m')}", uid("out")
    iam.create_user(UserName=mate)
    iam.create_user(UserName=outsider)
    assert u.iam.get_user(UserName=mate)["User"]["UserName"] == mate
    assert_denied(u.iam.get_user, u.arn, "iam:GetUser", user_arn(outsider), UserName=outsider)


def test_permissions_boundary_caps_the_user(iam, server):
    boundary = iam.create_policy(PolicyName=uid("bound"), PolicyDocument=policy_doc(allow("iam:Get*")))["Policy"]["Arn"]
    name = uid("bounded")
    iam.create_user(UserName=name, PermissionsBoundary=boundary)
    assert iam.get_user(UserName=name)["User"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    iam.attach_user_policy(UserName=name, PolicyArn=ADMIN)
    k = iam.create_access_key(UserName=name)["AccessKey"]
    c = make_client(server.endpoint, "iam", k["AccessKeyId"], k["SecretAccessKey"])
    arn = user_arn(name)
    assert c.get_user()["User"]["UserName"] == name
    assert_denied(c.list_users, arn, "iam:ListUsers", LIST_USERS_RES, kind="permissions boundary")


def test_simulate_principal_policy_agrees_with_real_calls(make_user, iam):
    victim = make_user()
    u = make_user(
        inline=policy_doc(
            allow(["iam:GetUser", "iam:DeleteUser"]),
            deny("iam:DeleteUser", victim.arn),
        )
    )
    sim = iam.simulate_principal_policy(
        PolicySourceArn=u.arn,
        ActionNames=["iam:GetUser", "iam:ListUsers", "iam:DeleteUser"],
        ResourceArns=[victim.arn],
    )["EvaluationResults"]
    decisions = {r["EvalActionName"]: r["EvalDecision"] for r in sim}
    assert decisions == {"iam:GetUser": "allowed", "iam:ListUsers": "implicitDeny", "iam:DeleteUser": "explicitDeny"}
    assert {r["EvalResourceName"] for r in sim} == {victim.arn}

    # the real calls decide the same way
    assert u.iam.get_user(UserName=victim.name)["User"]["UserName"] == victim.name
    assert_denied(u.iam.list_users, u.arn, "iam:ListUsers", LIST_USERS_RES)
    assert_denied(u.iam.delete_user, u.arn, "iam:DeleteUser", victim.arn, explicit=True, UserName=victim.name)

    # and for a condition that depends on the request: DateGreaterThan far in the future
    w = make_user(inline=policy_doc(allow("iam:GetUser", Condition={"DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}})))
    r = iam.simulate_principal_policy(PolicySourceArn=w.arn, ActionNames=["iam:GetUser"], ResourceArns=[w.arn])
    assert r["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"
    assert_denied(w.iam.get_user, w.arn, "iam:GetUser", w.arn)


def test_root_is_not_subject_to_identity_policies(iam):
    iam.list_users(MaxItems=1)
    r = iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:root", ActionNames=["iam:DeleteUser"])
    assert r["EvaluationResults"][0]["EvalDecision"] == "allowed"


def test_unauthorized_caller_cannot_probe_for_user_existence(make_user):
    u = make_user()
    code, _, status = expect_error(u.iam.get_user, UserName=uid("ghost"))
    assert (code, status) == ("AccessDenied", 403)
