"""Managed policies (customer and AWS), their versions, attachments, inline policies, and
policy-document validation."""

import json
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from e2e_helpers import (
    ACCOUNT,
    ROOT,
    allow,
    deny,
    expect_error,
    policy_doc,
    query_body,
    signed_request,
    uid,
)

IAM_NS = "{https://iam.amazonaws.com/doc/2010-05-08/}"


def policy_arn(name, path="/"):
    return f"arn:aws:iam::{ACCOUNT}:policy{path}{name}"


def sized_doc(size: int) -> str:
    """A compact identity policy whose length (it has no whitespace) is exactly `size`."""
    base = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": ""}]}
    empty = len(json.dumps(base, separators=(",", ":")))
    prefix = f"arn:aws:iam::{ACCOUNT}:user/"
    base["Statement"][0]["Resource"] = prefix + "a" * (size - empty - len(prefix))
    doc = json.dumps(base, separators=(",", ":"))
    assert len(doc) == size
    return doc


def test_customer_policy_round_trip(iam):
    name = uid("pol")
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*"], "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "iam:DeleteUser",
                "Resource": f"arn:aws:iam::{ACCOUNT}:user/*",
                "Condition": {"StringLike": {"aws:username": "adm-*"}},
            },
        ],
    }
    p = iam.create_policy(PolicyName=name, Path="/team/", PolicyDocument=json.dumps(doc), Description="e2e policy")[
        "Policy"
    ]
    assert p["Arn"] == policy_arn(name, "/team/")
    assert p["PolicyId"].startswith("ANPA")
    assert p["DefaultVersionId"] == "v1"
    assert p["AttachmentCount"] == 0
    assert p["IsAttachable"] is True

    got = iam.get_policy(PolicyArn=p["Arn"])["Policy"]
    assert got["PolicyName"] == name and got["Description"] == "e2e policy"

    v = iam.get_policy_version(PolicyArn=p["Arn"], VersionId="v1")["PolicyVersion"]
    # boto3 URL-decodes and parses the document: it is a dict equal to what was sent
    assert isinstance(v["Document"], dict)
    assert v["Document"] == doc
    assert v["IsDefaultVersion"] is True

    code, msg, status = expect_error(iam.get_policy_version, PolicyArn=p["Arn"], VersionId="v9")
    assert (code, status) == ("NoSuchEntity", 404)
    assert msg == f"Policy {p['Arn']} version v9 does not exist or is not attachable."

    code, msg, _ = expect_error(iam.create_policy, PolicyName=name, PolicyDocument=json.dumps(doc))
    assert code == "EntityAlreadyExists"
    assert msg == f"A policy called {name} already exists. Duplicate names are not allowed."

    local = [x["Arn"] for x in iam.list_policies(Scope="Local", MaxItems=1000)["Policies"]]
    assert p["Arn"] in local


def test_policy_documents_are_url_encoded_on_the_wire(server, iam):
    name = uid("wire")
    doc = policy_doc(allow("iam:GetUser"))
    arn = iam.create_policy(PolicyName=name, PolicyDocument=doc)["Policy"]["Arn"]
    status, _, body = signed_request(
        server.endpoint, ROOT, "iam", query_body("GetPolicyVersion", PolicyArn=arn, VersionId="v1")
    )
    assert status == 200
    raw = ET.fromstring(body).find(f".//{IAM_NS}Document").text
    assert raw.startswith("%7B")  # not raw JSON
    assert json.loads(urllib.parse.unquote(raw)) == json.loads(doc)


def test_policy_versions_and_the_five_version_limit(iam):
    name = uid("ver")
    docs = [policy_doc(allow(f"iam:Get{n}")) for n in ("User", "Group", "Role", "Policy", "LoginProfile", "AccountSummary")]
    arn = iam.create_policy(PolicyName=name, PolicyDocument=docs[0])["Policy"]["Arn"]

    v2 = iam.create_policy_version(PolicyArn=arn, PolicyDocument=docs[1], SetAsDefault=True)["PolicyVersion"]
    assert v2["VersionId"] == "v2" and v2["IsDefaultVersion"] is True
    for d in docs[2:5]:
        v = iam.create_policy_version(PolicyArn=arn, PolicyDocument=d)["PolicyVersion"]
        assert v["IsDefaultVersion"] is False
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"

    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == ["v1", "v2", "v3", "v4", "v5"]
    assert [v["VersionId"] for v in versions if v["IsDefaultVersion"]] == ["v2"]

    code, msg, status = expect_error(iam.create_policy_version, PolicyArn=arn, PolicyDocument=docs[5])
    assert (code, status) == ("LimitExceeded", 409)
    assert msg.startswith("A managed policy can have up to 5 versions.")
    assert len(iam.list_policy_versions(PolicyArn=arn)["Versions"]) == 5

    for vid, d in zip(["v1", "v2", "v3", "v4", "v5"], docs):
        assert iam.get_policy_version(PolicyArn=arn, VersionId=vid)["PolicyVersion"]["Document"] == json.loads(d)

    iam.set_default_policy_version(PolicyArn=arn, VersionId="v4")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v4"
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v4")["PolicyVersion"]["IsDefaultVersion"] is True
    assert iam.get_policy_version(PolicyArn=arn, VersionId="v2")["PolicyVersion"]["IsDefaultVersion"] is False

    code, msg, status = expect_error(iam.delete_policy_version, PolicyArn=arn, VersionId="v4")
    assert (code, status, msg) == ("DeleteConflict", 409, "Cannot delete the default version of a policy.")
    code, _, _ = expect_error(iam.set_default_policy_version, PolicyArn=arn, VersionId="v7")
    assert code == "NoSuchEntity"

    iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
    assert sorted(v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]) == ["v2", "v3", "v4", "v5"]
    # version ids keep counting up
    assert iam.create_policy_version(PolicyArn=arn, PolicyDocument=docs[5])["PolicyVersion"]["VersionId"] == "v6"

    # a policy with several versions cannot be deleted
    code, _, _ = expect_error(iam.delete_policy, PolicyArn=arn)
    assert code == "DeleteConflict"
    for vid in ("v2", "v3", "v5", "v6"):
        iam.delete_policy_version(PolicyArn=arn, VersionId=vid)
    iam.delete_policy(PolicyArn=arn)
    code, msg, _ = expect_error(iam.get_policy, PolicyArn=arn)
    assert code == "NoSuchEntity" and msg == f"Policy {arn} was not found."


def test_attached_policy_cannot_be_deleted(iam, aws):
    name = uid("att")
    arn = iam.create_policy(PolicyName=name, PolicyDocument=policy_doc(allow("iam:GetUser")))["Policy"]["Arn"]
    user = uid("holder")
    iam.create_user(UserName=user)
    rc, out, err = aws(["iam", "attach-user-policy", "--user-name", user, "--policy-arn", arn])
    assert rc == 0, err
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    assert attached == [{"PolicyName": name, "PolicyArn": arn}]
    # attaching twice is a no-op
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    assert arn in [p["Arn"] for p in iam.list_policies(Scope="Local", OnlyAttached=True, MaxItems=1000)["Policies"]]

    code, msg, status = expect_error(iam.delete_policy, PolicyArn=arn)
    assert (code, status, msg) == ("DeleteConflict", 409, "Cannot delete a policy attached to entities.")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["PolicyName"] == name

    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 0
    code, msg, _ = expect_error(iam.detach_user_policy, UserName=user, PolicyArn=arn)
    assert code == "NoSuchEntity" and msg == f"Policy {arn} was not found."
    iam.delete_policy(PolicyArn=arn)


def test_attach_unknown_or_malformed_policy_arn(iam):
    user = uid("att")
    iam.create_user(UserName=user)
    missing = policy_arn(uid("none"))
    code, msg, status = expect_error(iam.attach_user_policy, UserName=user, PolicyArn=missing)
    assert (code, status, msg) == ("NoSuchEntity", 404, f"Policy {missing} does not exist or is not attachable.")
    code, msg, status = expect_error(iam.attach_user_policy, UserName=user, PolicyArn="arn:aws:iam::nonsense-but-long")
    assert (code, status, msg) == ("ValidationError", 400, "Invalid ARN:  Could not be parsed!")
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == []


def test_aws_managed_policies_are_listed(iam):
    r = iam.list_policies(Scope="AWS", MaxItems=1000)
    by_name = {p["PolicyName"]: p for p in r["Policies"]}
    for name in ("AdministratorAccess", "AmazonS3FullAccess", "AmazonS3ReadOnlyAccess", "ReadOnlyAccess", "IAMFullAccess", "IAMReadOnlyAccess"):
        assert name in by_name, name
        assert by_name[name]["Arn"] == f"arn:aws:iam::aws:policy/{name}"
    assert all(p["Arn"].startswith("arn:aws:iam::aws:policy/") for p in r["Policies"])

    s3full = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")["Policy"]
    assert s3full["DefaultVersionId"] == "v2"
    doc = iam.get_policy_version(PolicyArn=s3full["Arn"], VersionId="v2")["PolicyVersion"]["Document"]
    assert doc == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}],
    }
    admin = iam.get_policy_version(PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess", VersionId="v1")
    assert admin["PolicyVersion"]["Document"] == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    # "All" holds both kinds
    everything = [p["Arn"] for p in iam.list_policies(MaxItems=1000)["Policies"]]
    assert "arn:aws:iam::aws:policy/AdministratorAccess" in everything


def test_aws_managed_policy_attachment_count_and_immutability(iam):
    arn = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    before = iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"]
    role = uid("r")
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=policy_doc({"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}),
    )
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == before + 1
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == before

    code, _, status = expect_error(iam.delete_policy, PolicyArn=arn)
    assert status == 400 and code == "InvalidInput"
    code, _, _ = expect_error(iam.create_policy_version, PolicyArn=arn, PolicyDocument=policy_doc(allow("s3:*")))
    assert code == "InvalidInput"
    code, msg, _ = expect_error(iam.get_policy, PolicyArn="arn:aws:iam::aws:policy/NoSuchManagedPolicy")
    assert code == "NoSuchEntity"


def test_inline_user_policy_round_trip(iam):
    user = uid("inl")
    iam.create_user(UserName=user)
    doc = json.loads(policy_doc(allow("iam:ListUsers"), deny("iam:DeleteUser")))
    iam.put_user_policy(UserName=user, PolicyName="p1", PolicyDocument=json.dumps(doc, indent=2))
    got = iam.get_user_policy(UserName=user, PolicyName="p1")
    assert got["UserName"] == user and got["PolicyName"] == "p1"
    assert got["PolicyDocument"] == doc
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["p1"]
    # replacing keeps one policy
    iam.put_user_policy(UserName=user, PolicyName="p1", PolicyDocument=policy_doc(allow("iam:GetUser")))
    assert iam.get_user_policy(UserName=user, PolicyName="p1")["PolicyDocument"]["Statement"][0]["Action"] == "iam:GetUser"
    iam.delete_user_policy(UserName=user, PolicyName="p1")
    code, msg, status = expect_error(iam.get_user_policy, UserName=user, PolicyName="p1")
    assert (code, status, msg) == ("NoSuchEntity", 404, "The user policy with name p1 cannot be found.")


MALFORMED = {
    "not-json": ("{not json", "This policy contains invalid Json"),
    "json-array": ("[]", "This policy contains invalid Json"),
    "principal": (
        policy_doc({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "iam:GetUser", "Resource": "*"}),
        "Policy document should not specify a principal.",
    ),
    "bad-version": (
        json.dumps({"Version": "2020-01-01", "Statement": [allow("iam:GetUser")]}),
        "The policy failed legacy parsing",
    ),
    "bad-effect": (policy_doc({"Effect": "Maybe", "Action": "iam:GetUser", "Resource": "*"}), "Syntax errors in policy."),
    "no-resource": (policy_doc({"Effect": "Allow", "Action": "iam:GetUser"}), "Policy statement must contain resources."),
    "no-vendor": (
        policy_doc(allow("GetUser")),
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
    ),
    "bad-resource": (policy_doc(allow("iam:GetUser", "not-an-arn")), 'Resource not-an-arn must be in ARN format or "*".'),
    "bad-condition": (
        policy_doc(allow("iam:GetUser", Condition={"StringEqualz": {"aws:username": "x"}})),
        "Invalid Condition type : StringEqualz",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_managed_policy(iam, case):
    doc, message = MALFORMED[case]
    name = uid("bad")
    code, msg, status = expect_error(iam.create_policy, PolicyName=name, PolicyDocument=doc)
    assert (code, status, msg) == ("MalformedPolicyDocument", 400, message)
    assert expect_error(iam.get_policy, PolicyArn=policy_arn(name))[0] == "NoSuchEntity"


def test_malformed_inline_policy_stores_nothing(iam):
    user = uid("inl")
    iam.create_user(UserName=user)
    doc, message = MALFORMED["principal"]
    code, msg, _ = expect_error(iam.put_user_policy, UserName=user, PolicyName="p", PolicyDocument=doc)
    assert (code, msg) == ("MalformedPolicyDocument", message)
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []


def test_trust_policy_needs_a_principal(iam):
    role = uid("r")
    code, msg, _ = expect_error(
        iam.create_role, RoleName=role, AssumeRolePolicyDocument=policy_doc({"Effect": "Allow", "Action": "sts:AssumeRole"})
    )
    assert (code, msg) == ("MalformedPolicyDocument", "Policy document should specify a principal.")
    assert expect_error(iam.get_role, RoleName=role)[0] == "NoSuchEntity"


def test_managed_policy_size_limit_ignores_whitespace(iam):
    # exactly 6144 non-whitespace characters: accepted, even with lots of whitespace around
    at_limit = json.loads(sized_doc(6144))
    ok = uid("big")
    iam.create_policy(PolicyName=ok, PolicyDocument=json.dumps(at_limit, indent=8))
    assert iam.get_policy_version(PolicyArn=policy_arn(ok), VersionId="v1")["PolicyVersion"]["Document"] == at_limit

    # one more: LimitExceeded, nothing stored
    over = uid("toobig")
    code, msg, status = expect_error(iam.create_policy, PolicyName=over, PolicyDocument=sized_doc(6145))
    assert (code, status, msg) == ("LimitExceeded", 409, "Cannot exceed quota for PolicySize: 6144")
    assert expect_error(iam.get_policy, PolicyArn=policy_arn(over))[0] == "NoSuchEntity"

    # same for a new version of an existing policy
    code, _, _ = expect_error(iam.create_policy_version, PolicyArn=policy_arn(ok), PolicyDocument=sized_doc(6145))
    assert code == "LimitExceeded"
    assert len(iam.list_policy_versions(PolicyArn=policy_arn(ok))["Versions"]) == 1


def test_policy_document_characters_outside_latin1_are_rejected(iam):
    name = uid("snow")
    # The character itself, not a JSON escape of it (which is ASCII and allowed).
    doc = json.dumps(
        {"Version": "2012-10-17", "Statement": [allow("iam:GetUser", Condition={"StringEquals": {"aws:username": "\u2603"}})]},
        ensure_ascii=False,
    )
    code, _, status = expect_error(iam.create_policy, PolicyName=name, PolicyDocument=doc)
    # (the reference records the allowed characters, not AWS's error code; this is Coffer's)
    assert (code, status) == ("MalformedPolicyDocument", 400)
