"""The KMS key-policy walkthrough: who may use a customer managed key, and the exact AccessDenied
message when not. Runs on a server of its own, so that the users can have the walkthrough's
names (S3-KMS-Admin-User, S3-Admin-User).

Key policy + IAM (aws-behavior.md §2.9): the key policy is required; a statement for the account
principal delegates to IAM; explicit deny anywhere wins; the lockout check protects PutKeyPolicy."""

import base64
import json
from dataclasses import dataclass

import pytest

from e2e_helpers import ACCOUNT, REGION, ROOT, CofferServer, Creds, allow, deny, expect_error, policy_doc, uid

ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"
S3_FULL = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
KEY_USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


def denied(principal: str, action: str, resource: str, why: str = "identity") -> str:
    reason = {
        "identity": f"because no identity-based policy allows the {action} action",
        "resource": f"because no resource-based policy allows the {action} action",
        "explicit-resource": "with an explicit deny in a resource-based policy",
        "explicit-identity": "with an explicit deny in an identity-based policy",
    }[why]
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {reason}"


def kms_error(call, **kw):
    code, msg, status = expect_error(call, **kw)
    assert status == 400, (code, msg, status)
    return code, msg or ""


def statement(sid, principal, actions, effect="Allow", **extra):
    return {"Sid": sid, "Effect": effect, "Principal": {"AWS": principal}, "Action": actions, "Resource": "*", **extra}


def key_policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Id": "key-walkthrough", "Statement": list(statements)}, indent=2)


ENABLE_IAM = statement("Enable IAM User Permissions", ROOT_ARN, "kms:*")


@dataclass
class User:
    name: str
    arn: str
    creds: Creds
    kms: object


@dataclass
class Walk:
    srv: CofferServer
    iam: object
    kms: object
    key_user: User  # S3-KMS-Admin-User: named by the key policy
    s3_admin: User  # S3-Admin-User: AmazonS3FullAccess only
    admin: User  # AdministratorAccess
    key_id: str
    key_arn: str
    alias: str

    def user(self, name, managed=(), inline=None, boundary=None) -> User:
        self.iam.create_user(UserName=name, **({"PermissionsBoundary": boundary} if boundary else {}))
        for arn in managed:
            self.iam.attach_user_policy(UserName=name, PolicyArn=arn)
        if inline:
            self.iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=inline)
        k = self.iam.create_access_key(UserName=name)["AccessKey"]
        creds = Creds(k["AccessKeyId"], k["SecretAccessKey"])
        return User(name, f"arn:aws:iam::{ACCOUNT}:user/{name}", creds, self.srv.client_for("kms", creds))


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Walk:
    base = tmp_path_factory.mktemp("kms-walkthrough")
    srv = CofferServer(base / "data").start()
    try:
        iam = srv.client_for("iam", ROOT)
        w = Walk(srv, iam, srv.client_for("kms", ROOT), None, None, None, "", "", "")
        # the users first: a key policy may only name principals that exist
        w.key_user = w.user("S3-KMS-Admin-User", managed=[S3_FULL])
        w.s3_admin = w.user("S3-Admin-User", managed=[S3_FULL])
        w.admin = w.user("Admin-User", managed=[ADMIN])

        # root creates the key and its alias with the aws CLI
        (base / "policy.json").write_text(
            key_policy(ENABLE_IAM, statement("Allow use of the key", w.key_user.arn, KEY_USER_ACTIONS))
        )
        rc, out, err = srv.aws(
            ["kms", "create-key", "--description", "S3 walkthrough key", "--policy", f"file://{base / 'policy.json'}"], ROOT
        )
        assert rc == 0, err
        w.key_id, w.key_arn = out["KeyMetadata"]["KeyId"], out["KeyMetadata"]["Arn"]
        w.alias = "alias/s3-walkthrough"
        rc, _, err = srv.aws(["kms", "create-alias", "--alias-name", w.alias, "--target-key-id", w.key_id], ROOT)
        assert rc == 0, err
        # the policy is kept as written
        assert w.kms.get_key_policy(KeyId=w.key_id)["Policy"] == (base / "policy.json").read_text()
        yield w
    finally:
        rc = srv.stop()
    assert rc == 0, f"coffer exited {rc} on SIGTERM; stderr tail:\n{srv.stderr_text()[-3000:]}"


def test_key_policy_principals_must_exist(walk):
    name = uid("Late-User")
    arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    policy = key_policy(ENABLE_IAM, statement("Allow use of the key", arn, KEY_USER_ACTIONS))
    assert kms_error(walk.kms.create_key, Policy=policy) == ("MalformedPolicyDocumentException", INVALID_PRINCIPALS)
    ghost_role = key_policy(ENABLE_IAM, statement("r", f"arn:aws:iam::{ACCOUNT}:role/{uid('NoRole')}", "kms:Decrypt"))
    assert kms_error(walk.kms.create_key, Policy=ghost_role) == ("MalformedPolicyDocumentException", INVALID_PRINCIPALS)
    # and so does PutKeyPolicy
    assert kms_error(walk.kms.put_key_policy, KeyId=walk.key_id, PolicyName="default", Policy=policy) == (
        "MalformedPolicyDocumentException",
        INVALID_PRINCIPALS,
    )
    # once the user exists the same policy is accepted
    walk.iam.create_user(UserName=name)
    md = walk.kms.create_key(Policy=policy)["KeyMetadata"]
    assert json.loads(walk.kms.get_key_policy(KeyId=md["KeyId"])["Policy"])["Statement"][1]["Principal"] == {"AWS": arn}
    # a malformed document is refused too
    code, _ = kms_error(walk.kms.create_key, Policy='{"Version": "2012-10-17", "Statement": [')
    assert code == "MalformedPolicyDocumentException"


def test_key_user_decrypts_and_the_s3_admin_is_denied(walk, tmp_path):
    ku, s3a = walk.key_user, walk.s3_admin
    # the key user encrypts and decrypts with the aws CLI (fileb://)
    (tmp_path / "plain.txt").write_bytes(b"credit card numbers, obviously")
    rc, out, err = walk.srv.aws(
        ["kms", "encrypt", "--key-id", walk.alias, "--plaintext", f"fileb://{tmp_path / 'plain.txt'}"], ku.creds
    )
    assert rc == 0, err
    assert out["KeyId"] == walk.key_arn
    blob = base64.b64decode(out["CiphertextBlob"])
    (tmp_path / "blob.bin").write_bytes(blob)
    rc, out, err = walk.srv.aws(["kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob.bin'}"], ku.creds)
    assert rc == 0, err
    assert base64.b64decode(out["Plaintext"]) == b"credit card numbers, obviously"
    assert ku.kms.describe_key(KeyId=walk.alias)["KeyMetadata"]["KeyId"] == walk.key_id
    dk = ku.kms.generate_data_key(KeyId=walk.key_id, KeySpec="AES_256")
    assert ku.kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]

    # S3-Admin-User (AmazonS3FullAccess only) may not
    assert kms_error(s3a.kms.decrypt, CiphertextBlob=blob) == (
        "AccessDeniedException",
        f"User: arn:aws:iam::{ACCOUNT}:user/S3-Admin-User is not authorized to perform: kms:Decrypt on resource: "
        f"{walk.key_arn} because no identity-based policy allows the kms:Decrypt action",
    )
    assert kms_error(s3a.kms.encrypt, KeyId=walk.alias, Plaintext=b"x") == (
        "AccessDeniedException",
        denied(s3a.arn, "kms:Encrypt", walk.key_arn),
    )
    rc, _, err = walk.srv.aws(["kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob.bin'}"], s3a.creds)
    assert rc != 0
    assert "AccessDeniedException" in err and denied(s3a.arn, "kms:Decrypt", walk.key_arn) in err

    # the key user uses the key but does not administer it
    assert kms_error(ku.kms.disable_key, KeyId=walk.key_id) == (
        "AccessDeniedException",
        denied(ku.arn, "kms:DisableKey", walk.key_arn),
    )
    assert kms_error(ku.kms.get_key_policy, KeyId=walk.key_id)[0] == "AccessDeniedException"
    assert kms_error(ku.kms.schedule_key_deletion, KeyId=walk.key_id, PendingWindowInDays=7)[0] == "AccessDeniedException"
    # creating keys and listing them are IAM decisions
    code, msg = kms_error(ku.kms.create_key)
    assert code == "AccessDeniedException" and "kms:CreateKey" in msg

    # an administrator is allowed through the key policy's delegation to IAM
    assert walk.admin.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"credit card numbers, obviously"
    assert walk.admin.kms.get_key_policy(KeyId=walk.key_id)["Policy"]
    assert walk.key_id in [k["KeyId"] for k in walk.admin.kms.list_keys()["Keys"]]


def test_administrator_needs_a_key_policy_that_delegates(walk):
    adm, ku = walk.admin, walk.key_user
    # under the default key policy AdministratorAccess is enough
    default_key = adm.kms.create_key()["KeyMetadata"]
    blob = adm.kms.encrypt(KeyId=default_key["KeyId"], Plaintext=b"admin data")["CiphertextBlob"]
    assert adm.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"admin data"

    # a key policy that names only the key user does not delegate to IAM: the lockout check
    # stops root from creating it unless bypassed
    only_user = key_policy(statement("Key user only", ku.arn, "kms:*"))
    assert kms_error(walk.kms.create_key, Policy=only_user) == ("MalformedPolicyDocumentException", LOCKOUT)
    md = walk.kms.create_key(Policy=only_user, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    arn = md["Arn"]
    assert kms_error(adm.kms.encrypt, KeyId=md["KeyId"], Plaintext=b"x") == (
        "AccessDeniedException",
        denied(adm.arn, "kms:Encrypt", arn, "resource"),
    )
    assert kms_error(adm.kms.describe_key, KeyId=arn) == (
        "AccessDeniedException",
        denied(adm.arn, "kms:DescribeKey", arn, "resource"),
    )
    # not even root, whose access to keys also comes from the delegating statement
    assert kms_error(walk.kms.describe_key, KeyId=md["KeyId"]) == (
        "AccessDeniedException",
        f"User: {ROOT_ARN} is not authorized to perform: kms:DescribeKey on resource: {arn} "
        "because no resource-based policy allows the kms:DescribeKey action",
    )
    # the key user, named directly, needs no IAM permission at all
    b = ku.kms.encrypt(KeyId=md["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    assert ku.kms.decrypt(CiphertextBlob=b)["Plaintext"] == b"mine"
    ku.kms.update_key_description(KeyId=md["KeyId"], Description="administered by its key policy")
    # the admin cannot decrypt what the key user made
    assert kms_error(adm.kms.decrypt, CiphertextBlob=b) == ("AccessDeniedException", denied(adm.arn, "kms:Decrypt", arn, "resource"))
    # the key user hands the key back to the account (staying in the policy: the lockout check
    # applies to whoever calls PutKeyPolicy)
    assert kms_error(ku.kms.put_key_policy, KeyId=md["KeyId"], PolicyName="default", Policy=key_policy(ENABLE_IAM)) == (
        "MalformedPolicyDocumentException",
        LOCKOUT,
    )
    ku.kms.put_key_policy(
        KeyId=md["KeyId"], PolicyName="default", Policy=key_policy(ENABLE_IAM, statement("Key user", ku.arn, "kms:*"))
    )
    assert adm.kms.decrypt(CiphertextBlob=b)["Plaintext"] == b"mine"
    assert walk.kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["Description"] == "administered by its key policy"


def test_explicit_deny_in_the_key_policy_wins(walk):
    adm, ku = walk.admin, walk.key_user
    policy = key_policy(
        ENABLE_IAM,
        statement("Allow use of the key", ku.arn, KEY_USER_ACTIONS),
        statement("No decrypting for the admin", adm.arn, "kms:Decrypt", effect="Deny"),
        statement("No encrypting for the key user", ku.arn, ["kms:Encrypt", "kms:GenerateDataKey*"], effect="Deny"),
    )
    md = walk.kms.create_key(Policy=policy)["KeyMetadata"]
    kid, arn = md["KeyId"], md["Arn"]
    blob = adm.kms.encrypt(KeyId=kid, Plaintext=b"deny me")["CiphertextBlob"]  # allowed through IAM
    assert kms_error(adm.kms.decrypt, CiphertextBlob=blob) == (
        "AccessDeniedException",
        denied(adm.arn, "kms:Decrypt", arn, "explicit-resource"),
    )
    # the key user's allow loses to the deny
    assert kms_error(ku.kms.encrypt, KeyId=kid, Plaintext=b"x") == (
        "AccessDeniedException",
        denied(ku.arn, "kms:Encrypt", arn, "explicit-resource"),
    )
    assert ku.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"deny me"
    # a grant does not override an explicit deny
    walk.kms.create_grant(KeyId=kid, GranteePrincipal=adm.arn, Operations=["Decrypt"])
    assert kms_error(adm.kms.decrypt, CiphertextBlob=blob)[1] == denied(adm.arn, "kms:Decrypt", arn, "explicit-resource")

    # an explicit deny in an identity-based policy, with AdministratorAccess beside it
    name = uid("Denied-Admin")
    u = walk.user(name, managed=[ADMIN], inline=policy_doc(deny("kms:Decrypt", arn)))
    assert kms_error(u.kms.decrypt, CiphertextBlob=blob) == (
        "AccessDeniedException",
        denied(u.arn, "kms:Decrypt", arn, "explicit-identity"),
    )
    assert u.kms.describe_key(KeyId=kid)["KeyMetadata"]["Arn"] == arn


def test_lockout_safety_check(walk):
    ku = walk.key_user
    md = walk.kms.create_key()["KeyMetadata"]
    kid, arn = md["KeyId"], md["Arn"]
    original = walk.kms.get_key_policy(KeyId=kid)["Policy"]
    locked = key_policy(statement("Key user only", ku.arn, "kms:*"))
    assert kms_error(walk.kms.put_key_policy, KeyId=kid, PolicyName="default", Policy=locked) == (
        "MalformedPolicyDocumentException",
        LOCKOUT,
    )
    # delegating only some actions, without kms:PutKeyPolicy, is a lockout too
    partial = key_policy(statement("Use only", ROOT_ARN, ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]))
    assert kms_error(walk.kms.put_key_policy, KeyId=kid, PolicyName="default", Policy=partial) == (
        "MalformedPolicyDocumentException",
        LOCKOUT,
    )
    # a policy with kms:PutKeyPolicy for the account is fine
    keeps = key_policy(statement("Admin only", ROOT_ARN, ["kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:DescribeKey"]))
    walk.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=keeps)
    assert walk.kms.get_key_policy(KeyId=kid)["Policy"] == keeps
    walk.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=original)
    assert walk.kms.get_key_policy(KeyId=kid)["Policy"] == original

    # bypassing the check locks root out, as promised
    walk.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=locked, BypassPolicyLockoutSafetyCheck=True)
    assert kms_error(walk.kms.get_key_policy, KeyId=kid) == (
        "AccessDeniedException",
        f"User: {ROOT_ARN} is not authorized to perform: kms:GetKeyPolicy on resource: {arn} "
        "because no resource-based policy allows the kms:GetKeyPolicy action",
    )
    assert kms_error(walk.kms.put_key_policy, KeyId=kid, PolicyName="default", Policy=original)[0] == "AccessDeniedException"
    assert ku.kms.get_key_policy(KeyId=kid)["Policy"] == locked
    # the key user's own lockout check: handing the key to the account alone would lock it out
    assert kms_error(ku.kms.put_key_policy, KeyId=kid, PolicyName="default", Policy=original) == (
        "MalformedPolicyDocumentException",
        LOCKOUT,
    )
    ku.kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=original, BypassPolicyLockoutSafetyCheck=True)
    assert walk.kms.get_key_policy(KeyId=kid)["Policy"] == original


def test_encryption_context_condition_in_the_key_policy(walk):
    ku = walk.key_user
    policy = key_policy(
        ENABLE_IAM,
        statement(
            "Only for app x",
            ku.arn,
            ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
            Condition={"StringEquals": {"kms:EncryptionContext:app": "x"}},
        ),
    )
    md = walk.kms.create_key(Policy=policy)["KeyMetadata"]
    kid, arn = md["KeyId"], md["Arn"]
    blob = ku.kms.encrypt(KeyId=kid, Plaintext=b"for x", EncryptionContext={"app": "x"})["CiphertextBlob"]
    assert ku.kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "x"})["Plaintext"] == b"for x"
    # more pairs are fine: the condition looks at "app" only
    dk = ku.kms.generate_data_key(KeyId=kid, KeySpec="AES_128", EncryptionContext={"app": "x", "user": "bob"})
    assert len(dk["Plaintext"]) == 16
    for ctx in ({"app": "y"}, {}, {"app": "X"}, {"application": "x"}):
        assert kms_error(ku.kms.encrypt, KeyId=kid, Plaintext=b"no", EncryptionContext=ctx) == (
            "AccessDeniedException",
            denied(ku.arn, "kms:Encrypt", arn),
        ), ctx
    # a ciphertext for another app (made by root) stays closed to the key user
    other = walk.kms.encrypt(KeyId=kid, Plaintext=b"for y", EncryptionContext={"app": "y"})["CiphertextBlob"]
    assert kms_error(ku.kms.decrypt, CiphertextBlob=other, EncryptionContext={"app": "y"})[0] == "AccessDeniedException"
    assert walk.kms.decrypt(CiphertextBlob=other, EncryptionContext={"app": "y"})["Plaintext"] == b"for y"


def test_caller_account_condition(walk):
    s3a = walk.s3_admin  # no KMS permission in IAM
    def caller_account_key(account):
        policy = key_policy(
            ENABLE_IAM,
            statement(
                "Anyone in the account",
                "*",
                ["kms:Encrypt", "kms:Decrypt"],
                Condition={"StringEquals": {"kms:CallerAccount": account}},
            ),
        )
        return walk.kms.create_key(Policy=policy)["KeyMetadata"]

    mine = caller_account_key(ACCOUNT)
    blob = s3a.kms.encrypt(KeyId=mine["KeyId"], Plaintext=b"account-wide")["CiphertextBlob"]
    assert s3a.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"account-wide"
    # ...only for the named actions
    assert kms_error(s3a.kms.describe_key, KeyId=mine["KeyId"]) == (
        "AccessDeniedException",
        denied(s3a.arn, "kms:DescribeKey", mine["Arn"]),
    )
    theirs = caller_account_key("111122223333")
    assert kms_error(s3a.kms.encrypt, KeyId=theirs["KeyId"], Plaintext=b"x") == (
        "AccessDeniedException",
        denied(s3a.arn, "kms:Encrypt", theirs["Arn"]),
    )


def test_iam_policies_on_key_arns_and_alias_condition_keys(walk):
    a = walk.kms.create_key()["KeyMetadata"]
    b = walk.kms.create_key()["KeyMetadata"]
    alias_a = "alias/" + uid("team-a")
    walk.kms.create_alias(AliasName=alias_a, TargetKeyId=a["KeyId"])
    # an IAM policy naming key a's ARN allows key a only
    u = walk.user(uid("Key-A-User"), inline=policy_doc(allow(["kms:Encrypt", "kms:Decrypt"], a["Arn"])))
    blob = u.kms.encrypt(KeyId=alias_a, Plaintext=b"a")["CiphertextBlob"]
    assert u.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"a"
    assert kms_error(u.kms.encrypt, KeyId=b["KeyId"], Plaintext=b"b") == ("AccessDeniedException", denied(u.arn, "kms:Encrypt", b["Arn"]))
    # an alias ARN is not a resource of Encrypt
    v = walk.user(uid("Alias-Arn-User"), inline=policy_doc(allow("kms:Encrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias_a}")))
    assert kms_error(v.kms.encrypt, KeyId=alias_a, Plaintext=b"x")[0] == "AccessDeniedException"
    # kms:RequestAlias: only when the request names the key through that alias
    r = walk.user(
        uid("Request-Alias-User"),
        inline=policy_doc(allow("kms:Encrypt", "*", Condition={"StringEquals": {"kms:RequestAlias": alias_a}})),
    )
    assert r.kms.encrypt(KeyId=alias_a, Plaintext=b"x")["KeyId"] == a["Arn"]
    assert kms_error(r.kms.encrypt, KeyId=a["KeyId"], Plaintext=b"x")[0] == "AccessDeniedException"
    # kms:ResourceAliases: any request on a key that has that alias
    s = walk.user(
        uid("Resource-Alias-User"),
        inline=policy_doc(allow("kms:Encrypt", "*", Condition={"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias_a}})),
    )
    assert s.kms.encrypt(KeyId=a["KeyId"], Plaintext=b"x")["KeyId"] == a["Arn"]
    assert kms_error(s.kms.encrypt, KeyId=b["KeyId"], Plaintext=b"x")[0] == "AccessDeniedException"


def test_role_sessions_named_by_the_key_policy(walk):
    ku = walk.key_user
    role = uid("KMS-Role")
    trust = policy_doc({"Effect": "Allow", "Principal": {"AWS": ku.arn}, "Action": "sts:AssumeRole"})
    role_arn = walk.iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    md = walk.kms.create_key(Policy=key_policy(ENABLE_IAM, statement("Role", role_arn, KEY_USER_ACTIONS)))["KeyMetadata"]
    c = walk.srv.client_for("sts", ku.creds).assume_role(RoleArn=role_arn, RoleSessionName="kms-session")["Credentials"]
    session = walk.srv.client_for("kms", Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]))
    blob = session.encrypt(KeyId=md["KeyId"], Plaintext=b"role data")["CiphertextBlob"]
    assert session.decrypt(CiphertextBlob=blob)["Plaintext"] == b"role data"
    sess_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/kms-session"
    assert kms_error(session.encrypt, KeyId=walk.key_id, Plaintext=b"x") == (
        "AccessDeniedException",
        denied(sess_arn, "kms:Encrypt", walk.key_arn),
    )

    # a grant to the role works for its sessions
    grant_key = walk.kms.create_key()["KeyMetadata"]
    walk.kms.create_grant(KeyId=grant_key["KeyId"], GranteePrincipal=role_arn, Operations=["Encrypt", "Decrypt"])
    b = session.encrypt(KeyId=grant_key["KeyId"], Plaintext=b"via grant")["CiphertextBlob"]
    assert session.decrypt(CiphertextBlob=b)["Plaintext"] == b"via grant"


def test_grant_condition_keys_in_the_key_policy(walk):
    ku, s3a = walk.key_user, walk.s3_admin
    policy = key_policy(
        ENABLE_IAM,
        # as in the console's default policy: grants only for AWS services acting for the user
        statement(
            "Allow attachment of persistent resources",
            ku.arn,
            ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
            Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        # the S3 admin may hand out Decrypt/Encrypt grants, nothing more
        statement(
            "Limited grants",
            s3a.arn,
            "kms:CreateGrant",
            Condition={"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "Encrypt"]}},
        ),
    )
    md = walk.kms.create_key(Policy=policy)["KeyMetadata"]
    kid, arn = md["KeyId"], md["Arn"]
    assert kms_error(ku.kms.create_grant, KeyId=kid, GranteePrincipal=ku.arn, Operations=["Decrypt"]) == (
        "AccessDeniedException",
        denied(ku.arn, "kms:CreateGrant", arn),
    )
    assert kms_error(ku.kms.list_grants, KeyId=kid)[0] == "AccessDeniedException"
    s3a.kms.create_grant(KeyId=kid, GranteePrincipal=ku.arn, Operations=["Decrypt", "Encrypt"])
    assert kms_error(s3a.kms.create_grant, KeyId=kid, GranteePrincipal=ku.arn, Operations=["Decrypt", "CreateGrant"]) == (
        "AccessDeniedException",
        denied(s3a.arn, "kms:CreateGrant", arn),
    )
    # the grant it made works
    blob = ku.kms.encrypt(KeyId=kid, Plaintext=b"granted")["CiphertextBlob"]
    assert ku.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"granted"


def test_re_encrypt_needs_re_encrypt_permissions(walk):
    a = walk.kms.create_key()["KeyMetadata"]
    b = walk.kms.create_key()["KeyMetadata"]
    blob = walk.kms.encrypt(KeyId=a["KeyId"], Plaintext=b"re")["CiphertextBlob"]
    plain = walk.user(uid("Plain-User"), inline=policy_doc(allow(["kms:Encrypt", "kms:Decrypt"])))
    assert kms_error(plain.kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=b["KeyId"]) == (
        "AccessDeniedException",
        denied(plain.arn, "kms:ReEncryptFrom", a["Arn"]),
    )
    from_only = walk.user(uid("From-User"), inline=policy_doc(allow("kms:ReEncryptFrom", a["Arn"])))
    assert kms_error(from_only.kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=b["KeyId"]) == (
        "AccessDeniedException",
        denied(from_only.arn, "kms:ReEncryptTo", b["Arn"]),
    )
    both = walk.user(uid("ReEncrypt-User"), inline=policy_doc(allow("kms:ReEncrypt*")))
    out = both.kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=b["KeyId"])
    assert walk.kms.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"] == b"re"
    # ReEncrypt never hands out the plaintext: Decrypt is still refused
    assert kms_error(both.kms.decrypt, CiphertextBlob=blob)[0] == "AccessDeniedException"


def test_create_alias_is_authorized_on_the_alias_and_the_key(walk):
    k = walk.kms.create_key()["KeyMetadata"]
    name = "alias/" + uid("team")
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:{name}"
    on_alias = walk.user(uid("Alias-Only"), inline=policy_doc(allow("kms:CreateAlias", alias_arn)))
    assert kms_error(on_alias.kms.create_alias, AliasName=name, TargetKeyId=k["KeyId"]) == (
        "AccessDeniedException",
        denied(on_alias.arn, "kms:CreateAlias", k["Arn"]),
    )
    on_key = walk.user(uid("Key-Only"), inline=policy_doc(allow("kms:CreateAlias", k["Arn"])))
    code, msg = kms_error(on_key.kms.create_alias, AliasName=name, TargetKeyId=k["KeyId"])
    assert code == "AccessDeniedException" and f"kms:CreateAlias on resource: {alias_arn}" in msg, msg
    both = walk.user(uid("Alias-And-Key"), inline=policy_doc(allow("kms:CreateAlias", [alias_arn, k["Arn"]])))
    both.kms.create_alias(AliasName=name, TargetKeyId=k["KeyId"])
    assert walk.kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == k["KeyId"]


def test_permissions_boundary_and_resource_tags(walk):
    k = walk.kms.create_key(Tags=[{"TagKey": "team", "TagValue": "blue"}])["KeyMetadata"]
    other = walk.kms.create_key(Tags=[{"TagKey": "team", "TagValue": "red"}])["KeyMetadata"]
    # AdministratorAccess bounded to S3 cannot use KMS
    bounded = walk.user(uid("Bounded-Admin"), managed=[ADMIN], boundary=S3_FULL)
    code, msg = kms_error(bounded.kms.encrypt, KeyId=k["KeyId"], Plaintext=b"x")
    assert (code, msg) == (
        "AccessDeniedException",
        f"User: {bounded.arn} is not authorized to perform: kms:Encrypt on resource: {k['Arn']} "
        "because no permissions boundary allows the kms:Encrypt action",
    )
    # ABAC: an IAM policy on aws:ResourceTag/team
    tagged = walk.user(
        uid("Blue-Team"),
        inline=policy_doc(allow(["kms:Encrypt", "kms:Decrypt"], "*", Condition={"StringEquals": {"aws:ResourceTag/team": "blue"}})),
    )
    blob = tagged.kms.encrypt(KeyId=k["KeyId"], Plaintext=b"blue")["CiphertextBlob"]
    assert tagged.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"blue"
    assert kms_error(tagged.kms.encrypt, KeyId=other["KeyId"], Plaintext=b"x") == (
        "AccessDeniedException",
        denied(tagged.arn, "kms:Encrypt", other["Arn"]),
    )
    # retagging the key takes effect at once
    walk.kms.tag_resource(KeyId=k["KeyId"], Tags=[{"TagKey": "team", "TagValue": "green"}])
    assert kms_error(tagged.kms.decrypt, CiphertextBlob=blob)[0] == "AccessDeniedException"


def test_a_bare_account_id_principal_delegates_like_the_root_arn(walk):
    md = walk.kms.create_key(Policy=key_policy(statement("Account", ACCOUNT, "kms:*")))["KeyMetadata"]
    blob = walk.admin.kms.encrypt(KeyId=md["KeyId"], Plaintext=b"delegated")["CiphertextBlob"]
    assert walk.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"delegated"  # root, through the delegation
    assert kms_error(walk.s3_admin.kms.decrypt, CiphertextBlob=blob) == (
        "AccessDeniedException",
        denied(walk.s3_admin.arn, "kms:Decrypt", md["Arn"]),
    )
