"""KMS end to end: keys, tags, aliases, symmetric cryptography, data keys, asymmetric keys (signing
checked independently with `cryptography`), HMAC, grants, rotation and deletion (with the test
clock), persistence across a restart, and KMS's authentication errors.

The key-policy walkthrough (who may use a key, and why not) is in test_kms_walkthrough.py."""

import base64
import datetime as dt
import hashlib
import json
import re
import uuid

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from e2e_helpers import (
    ACCOUNT,
    REGION,
    ROOT,
    ROOT_KEY_ID,
    Creds,
    expect_error,
    signed_request,
    uid,
)

DAY = 86400
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"
ALIAS_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
DRY_RUN = "The request would have succeeded, but the DryRun option is set."
CIPHERTEXT_ORPHAN = (
    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, "
    "or you are not allowed to access."
)
INCORRECT_KEY = "The key ID in the request does not identify a CMK that can perform this operation."
SIG_TEXT = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
INVALID_TOKEN = "The security token included in the request is invalid."
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEX64 = re.compile(r"[0-9a-f]{64}")
KEY_USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


def default_policy(account: str = ACCOUNT) -> str:
    """AWS's default key policy, byte for byte (aws-behavior.md §2.8)."""
    return (
        "{\n"
        '  "Version" : "2012-10-17",\n'
        '  "Id" : "key-default-1",\n'
        '  "Statement" : [ {\n'
        '    "Sid" : "Enable IAM User Permissions",\n'
        '    "Effect" : "Allow",\n'
        '    "Principal" : {\n'
        f'      "AWS" : "arn:aws:iam::{account}:root"\n'
        "    },\n"
        '    "Action" : "kms:*",\n'
        '    "Resource" : "*"\n'
        "  } ]\n"
        "}"
    )


def kms_error(call, **kw) -> tuple[str, str]:
    """(code, message) of the KMS error `call(**kw)` must raise; KMS errors are HTTP 400."""
    code, msg, status = expect_error(call, **kw)
    assert status == 400, (code, msg, status)
    return code, msg or ""


def denied(principal: str, action: str, resource: str, why: str = "identity") -> str:
    reason = {
        "identity": f"because no identity-based policy allows the {action} action",
        "resource": f"because no resource-based policy allows the {action} action",
        "explicit-resource": "with an explicit deny in a resource-based policy",
        "explicit-identity": "with an explicit deny in an identity-based policy",
    }[why]
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {reason}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def flip(blob: bytes, i: int) -> bytes:
    b = bytearray(blob)
    b[i] ^= 0x01
    return bytes(b)


@pytest.fixture(scope="module")
def kms(server):
    return server.client_for("kms", ROOT)


@pytest.fixture(scope="module")
def kms_nv(server):
    """A root KMS client without botocore's parameter validation (to reach the server's)."""
    return server.client_for("kms", ROOT, validate=False)


@pytest.fixture(scope="module")
def sym(kms):
    """One symmetric key shared by the read-only crypto tests (never disabled or deleted)."""
    return kms.create_key(Description="e2e shared symmetric key")["KeyMetadata"]


def new_key(kms, **kw) -> dict:
    return kms.create_key(**kw)["KeyMetadata"]


def all_pages(call, result_key: str, marker_in: str = "Marker", **kw) -> list:
    """Follows Truncated/NextMarker; asserts every page respects the Limit and no marker repeats."""
    out, markers = [], set()
    while True:
        r = call(**kw)
        if "Limit" in kw:
            assert len(r[result_key]) <= kw["Limit"]
        out.extend(r[result_key])
        if not r["Truncated"]:
            assert "NextMarker" not in r
            return out
        assert r["NextMarker"] not in markers
        markers.add(r["NextMarker"])
        kw[marker_in] = r["NextMarker"]


# =============================================================================================
# 1. keys


def test_create_key_metadata_and_the_default_policy(kms):
    before = utc_now()
    md = kms.create_key(
        Description="orders database",
        Tags=[{"TagKey": "team", "TagValue": "red"}, {"TagKey": "empty", "TagValue": ""}],
    )["KeyMetadata"]
    kid = md["KeyId"]
    assert UUID_RE.fullmatch(kid)
    expected = {
        "AWSAccountId": ACCOUNT,
        "Arn": KEY_ARN + kid,
        "Enabled": True,
        "Description": "orders database",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "Enabled",
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": False,
    }
    assert {k: md.get(k) for k in expected} == expected
    assert HEX64.fullmatch(md["CurrentKeyMaterialId"])
    for absent in ("DeletionDate", "PendingDeletionWindowInDays", "SigningAlgorithms", "MacAlgorithms"):
        assert absent not in md
    assert before - dt.timedelta(seconds=5) <= md["CreationDate"] <= utc_now() + dt.timedelta(seconds=5)

    # the default policy is AWS's text exactly
    pol = kms.get_key_policy(KeyId=kid, PolicyName="default")
    assert pol["Policy"] == default_policy()
    assert pol["PolicyName"] == "default"
    assert kms.get_key_policy(KeyId=kid)["Policy"] == default_policy()
    assert kms.list_key_policies(KeyId=kid)["PolicyNames"] == ["default"]
    code, _ = kms_error(kms.get_key_policy, KeyId=kid, PolicyName="other")
    assert code == "ValidationException"

    # DescribeKey answers the same metadata; tags were stored
    assert kms.describe_key(KeyId=kid)["KeyMetadata"] == md
    tags = kms.list_resource_tags(KeyId=kid)
    assert sorted(tags["Tags"], key=lambda t: t["TagKey"]) == [
        {"TagKey": "empty", "TagValue": ""},
        {"TagKey": "team", "TagValue": "red"},
    ]
    assert tags["Truncated"] is False


def test_create_key_without_description_and_unsupported_specs(kms):
    md = new_key(kms)
    assert md["Description"] == ""
    code, msg = kms_error(kms.create_key, KeySpec="HMAC_256")
    assert (code, msg) == (
        "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
    )
    code, _ = kms_error(kms.create_key, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="SIGN_VERIFY")
    assert code == "ValidationException"
    code, _ = kms_error(kms.create_key, KeySpec="ECC_NIST_P256", KeyUsage="ENCRYPT_DECRYPT")
    assert code == "ValidationException"


def test_describe_key_by_id_arn_alias_and_alias_arn(kms):
    md = new_key(kms)
    alias = "alias/" + uid("describe")
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    for ident in (md["KeyId"], md["Arn"], alias, ALIAS_ARN + alias):
        got = kms.describe_key(KeyId=ident)["KeyMetadata"]
        assert (got["KeyId"], got["Arn"]) == (md["KeyId"], md["Arn"]), ident

    missing = str(uuid.uuid4())
    assert kms_error(kms.describe_key, KeyId=missing) == (
        "NotFoundException",
        f"Key '{KEY_ARN}{missing}' does not exist",
    )
    assert kms_error(kms.describe_key, KeyId=KEY_ARN + missing)[0] == "NotFoundException"
    assert kms_error(kms.describe_key, KeyId="not-a-key") == ("NotFoundException", "Invalid keyId 'not-a-key'")
    other_region = md["Arn"].replace(f":{REGION}:", ":eu-west-1:")
    assert kms_error(kms.describe_key, KeyId=other_region) == ("NotFoundException", "Invalid arn eu-west-1")
    nope = "alias/" + uid("nope")
    assert kms_error(kms.describe_key, KeyId=nope) == ("NotFoundException", f"Alias {ALIAS_ARN}{nope} is not found.")
    assert kms_error(kms.describe_key, KeyId=ALIAS_ARN + nope) == (
        "NotFoundException",
        f"Alias {ALIAS_ARN}{nope} is not found.",
    )


def test_list_keys_pagination(kms):
    mine = {new_key(kms)["KeyId"] for _ in range(3)}
    everything = kms.list_keys(Limit=1000)
    assert everything["Truncated"] is False
    all_ids = [k["KeyId"] for k in everything["Keys"]]
    assert mine <= set(all_ids)
    for k in everything["Keys"]:
        assert k["KeyArn"] == KEY_ARN + k["KeyId"]

    paged = all_pages(kms.list_keys, "Keys", Limit=2)
    assert [k["KeyId"] for k in paged] == all_ids  # same order, nothing repeated or lost

    first = kms.list_keys(Limit=1)
    assert len(first["Keys"]) == 1 and first["Truncated"] is True
    assert first["NextMarker"]
    # the boto3 paginator follows the same markers
    via_paginator = [k["KeyId"] for p in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}) for k in p["Keys"]]
    assert via_paginator == all_ids


def test_update_key_description(kms):
    md = new_key(kms, Description="before")
    kms.update_key_description(KeyId=md["KeyId"], Description="after")
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["Description"] == "after"
    kms.update_key_description(KeyId=md["Arn"], Description="")
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["Description"] == ""


def test_disable_and_enable_key(kms):
    md = new_key(kms)
    kid, arn = md["KeyId"], md["Arn"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"while enabled")["CiphertextBlob"]

    kms.disable_key(KeyId=kid)
    d = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert (d["Enabled"], d["KeyState"]) == (False, "Disabled")
    disabled = ("DisabledException", f"{arn} is disabled.")
    assert kms_error(kms.encrypt, KeyId=kid, Plaintext=b"x") == disabled
    assert kms_error(kms.decrypt, CiphertextBlob=blob) == disabled
    assert kms_error(kms.generate_data_key, KeyId=kid, KeySpec="AES_256") == disabled
    # DryRun reports the state error, not "would have succeeded"
    assert kms_error(kms.encrypt, KeyId=kid, Plaintext=b"x", DryRun=True) == disabled
    kms.disable_key(KeyId=kid)  # idempotent
    assert kms_error(kms.cancel_key_deletion, KeyId=kid) == (
        "KMSInvalidStateException",
        f"{arn} is not pending deletion.",
    )
    # management still works on a disabled key
    kms.update_key_description(KeyId=kid, Description="disabled for now")

    kms.enable_key(KeyId=kid)
    d = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert (d["Enabled"], d["KeyState"]) == (True, "Enabled")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"while enabled"


def tag_dict(kms, kid) -> dict:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=kid)["Tags"]}


def test_tags_add_list_remove_and_tag_exceptions(kms, kms_nv):
    md = new_key(kms, Tags=[{"TagKey": "team", "TagValue": "red"}])
    kid = md["KeyId"]
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "team", "TagValue": "blue"}, {"TagKey": "cost", "TagValue": "42"}])
    assert tag_dict(kms, kid) == {"team": "blue", "cost": "42"}
    kms.untag_resource(KeyId=md["Arn"], TagKeys=["team", "not-there"])
    assert tag_dict(kms, kid) == {"cost": "42"}

    assert kms_error(kms.tag_resource, KeyId=kid, Tags=[{"TagKey": "aws:owner", "TagValue": "x"}]) == (
        "TagException",
        "Tags beginning with aws: are reserved",
    )
    assert kms_error(
        kms.tag_resource, KeyId=kid, Tags=[{"TagKey": "dup", "TagValue": "1"}, {"TagKey": "dup", "TagValue": "2"}]
    ) == ("TagException", "Duplicate tag keys")
    # 50 tags per key: one is there, 49 more fit, the 51st does not
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": f"k{i:02}", "TagValue": "v"} for i in range(49)])
    assert len(tag_dict(kms, kid)) == 50
    assert kms_error(kms.tag_resource, KeyId=kid, Tags=[{"TagKey": "one-too-many", "TagValue": "v"}]) == (
        "TagException",
        "Too many tags",
    )
    # overwriting an existing tag does not count as a new one
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "k00", "TagValue": "changed"}])
    tags = tag_dict(kms, kid)
    assert len(tags) == 50 and tags["k00"] == "changed" and "one-too-many" not in tags
    # failed requests changed nothing
    assert "aws:owner" not in tags and "dup" not in tags

    code, _ = kms_error(kms_nv.tag_resource, KeyId=kid, Tags=[{"TagKey": "x" * 129, "TagValue": "v"}])
    assert code == "ValidationException"
    assert kms_error(kms.create_key, Tags=[{"TagKey": "aws:reserved", "TagValue": "v"}]) == (
        "TagException",
        "Tags beginning with aws: are reserved",
    )


# =============================================================================================
# 2. aliases


def alias_names(kms, **kw) -> list:
    return [a["AliasName"] for a in all_pages(kms.list_aliases, "Aliases", **kw)]


def test_alias_lifecycle(kms):
    k1, k2 = new_key(kms), new_key(kms)
    name = "alias/" + uid("app")
    kms.create_alias(AliasName=name, TargetKeyId=k1["KeyId"])

    listed = kms.list_aliases(KeyId=k1["KeyId"])
    assert listed["Truncated"] is False
    [a] = listed["Aliases"]
    assert (a["AliasName"], a["AliasArn"], a["TargetKeyId"]) == (name, ALIAS_ARN + name, k1["KeyId"])
    assert isinstance(a["CreationDate"], dt.datetime) and isinstance(a["LastUpdatedDate"], dt.datetime)
    assert name in alias_names(kms)
    assert name in alias_names(kms, KeyId=k1["Arn"])

    # the alias (name or ARN) resolves in Encrypt
    r = kms.encrypt(KeyId=name, Plaintext=b"via alias")
    assert r["KeyId"] == k1["Arn"]
    assert kms.encrypt(KeyId=ALIAS_ARN + name, Plaintext=b"via alias arn")["KeyId"] == k1["Arn"]
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"], KeyId=name)["Plaintext"] == b"via alias"

    assert kms_error(kms.create_alias, AliasName=name, TargetKeyId=k2["KeyId"]) == (
        "AlreadyExistsException",
        f"An alias with the name {ALIAS_ARN}{name} already exists",
    )

    kms.update_alias(AliasName=name, TargetKeyId=k2["KeyId"])
    assert kms.list_aliases(KeyId=k1["KeyId"])["Aliases"] == []
    assert [a["TargetKeyId"] for a in kms.list_aliases(KeyId=k2["KeyId"])["Aliases"]] == [k2["KeyId"]]
    assert kms.encrypt(KeyId=name, Plaintext=b"now k2")["KeyId"] == k2["Arn"]
    # ciphertexts made through the alias still decrypt with their own key
    assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["KeyId"] == k1["Arn"]
    # the alias now names k2: asking for it with k1's ciphertext is the wrong key
    assert kms_error(kms.decrypt, CiphertextBlob=r["CiphertextBlob"], KeyId=name) == (
        "IncorrectKeyException",
        INCORRECT_KEY,
    )

    kms.delete_alias(AliasName=name)
    missing = ("NotFoundException", f"Alias {ALIAS_ARN}{name} is not found.")
    assert kms_error(kms.describe_key, KeyId=name) == missing
    assert kms_error(kms.encrypt, KeyId=name, Plaintext=b"x") == missing
    assert kms_error(kms.delete_alias, AliasName=name) == missing
    assert kms_error(kms.update_alias, AliasName=name, TargetKeyId=k1["KeyId"]) == missing
    assert name not in alias_names(kms)
    assert kms.list_aliases(KeyId=k2["KeyId"])["Aliases"] == []


def test_alias_name_rules(kms):
    k = new_key(kms)["KeyId"]
    assert kms_error(kms.create_alias, AliasName="no-prefix-" + uid(), TargetKeyId=k) == (
        "ValidationException",
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
    )
    code, _ = kms_error(kms.create_alias, AliasName="alias/aws/" + uid("mine"), TargetKeyId=k)
    assert code == "NotAuthorizedException"
    assert kms_error(kms.create_alias, AliasName="alias/Service:Test", TargetKeyId=k) == (
        "ValidationException",
        "alias/Service:Test contains invalid characters for an alias",
    )
    missing = str(uuid.uuid4())
    assert kms_error(kms.create_alias, AliasName="alias/" + uid(), TargetKeyId=missing) == (
        "NotFoundException",
        f"Key '{KEY_ARN}{missing}' does not exist",
    )
    # none of the refused names exists
    assert kms.list_aliases(KeyId=k)["Aliases"] == []


def test_list_aliases_pagination_and_usage_mismatch(kms):
    k = new_key(kms)["KeyId"]
    names = sorted("alias/" + uid(f"page{i}") for i in range(3))
    for n in names:
        kms.create_alias(AliasName=n, TargetKeyId=k)
    p1 = kms.list_aliases(KeyId=k, Limit=2)
    assert len(p1["Aliases"]) == 2 and p1["Truncated"] is True
    p2 = kms.list_aliases(KeyId=k, Limit=2, Marker=p1["NextMarker"])
    assert p2["Truncated"] is False and "NextMarker" not in p2
    assert sorted(a["AliasName"] for a in p1["Aliases"] + p2["Aliases"]) == names
    # all aliases of the account, one at a time
    everything = alias_names(kms, Limit=1)
    assert len(everything) == len(set(everything))
    assert set(names) <= set(everything)

    # an alias cannot move to a key of another usage
    hmac_key = new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    code, _ = kms_error(kms.update_alias, AliasName=names[0], TargetKeyId=hmac_key["KeyId"])
    assert code == "ValidationException"


# =============================================================================================
# 3. symmetric cryptography


def test_encrypt_decrypt_round_trip_with_encryption_context(kms, sym):
    ctx = {"purpose": "e2e", "tenant": "t1"}
    r = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"attack at dawn", EncryptionContext=ctx)
    assert (r["KeyId"], r["EncryptionAlgorithm"]) == (sym["Arn"], "SYMMETRIC_DEFAULT")
    blob = r["CiphertextBlob"]
    assert 0 < len(blob) <= 6144
    # every encryption is fresh
    assert kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"attack at dawn", EncryptionContext=ctx)["CiphertextBlob"] != blob

    d = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "t1", "purpose": "e2e"})  # order is irrelevant
    assert d["Plaintext"] == b"attack at dawn"
    assert (d["KeyId"], d["EncryptionAlgorithm"]) == (sym["Arn"], "SYMMETRIC_DEFAULT")
    assert d["KeyMaterialId"] == kms.describe_key(KeyId=sym["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    for ident in (sym["KeyId"], sym["Arn"]):
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx, KeyId=ident)["Plaintext"] == b"attack at dawn"

    for wrong in ({}, {"purpose": "e2e"}, {"purpose": "e2e", "tenant": "T1"}, {"Purpose": "e2e", "tenant": "t1"}, {**ctx, "extra": "1"}):
        code, msg = kms_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext=wrong)
        assert (code, msg) == ("InvalidCiphertextException", ""), wrong

    # without a context at both ends
    r2 = kms.encrypt(KeyId=sym["Arn"], Plaintext=bytes(range(256)))
    assert kms.decrypt(CiphertextBlob=r2["CiphertextBlob"])["Plaintext"] == bytes(range(256))
    assert kms_error(kms.decrypt, CiphertextBlob=r2["CiphertextBlob"], EncryptionContext={"a": "b"})[0] == "InvalidCiphertextException"


def test_tampered_or_garbage_ciphertext(kms, sym):
    ctx = {"k": "v"}
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"integrity matters", EncryptionContext=ctx)["CiphertextBlob"]
    # byte 0: format version; 17-20: material version; then salt, nonce, ciphertext and tag
    for i in (0, 17, 20, 25, 40, 55, len(blob) - 1):
        assert kms_error(kms.decrypt, CiphertextBlob=flip(blob, i), EncryptionContext=ctx) == (
            "InvalidCiphertextException",
            "",
        ), i
    for bad in (blob[:-1], blob[:30], b"\x00" * 64, blob + b"\x00"):
        assert kms_error(kms.decrypt, CiphertextBlob=bad, EncryptionContext=ctx)[0] == "InvalidCiphertextException"
    # bytes 1-16 name the key: another (absent) key is refused without saying more
    assert kms_error(kms.decrypt, CiphertextBlob=flip(blob, 5), EncryptionContext=ctx) == (
        "AccessDeniedException",
        CIPHERTEXT_ORPHAN,
    )
    # the original still decrypts
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == b"integrity matters"


def test_decrypt_with_another_key_id_is_incorrect_key(kms, sym):
    other = new_key(kms)
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    for ident in (other["KeyId"], other["Arn"]):
        assert kms_error(kms.decrypt, CiphertextBlob=blob, KeyId=ident) == ("IncorrectKeyException", INCORRECT_KEY)
    missing = str(uuid.uuid4())
    assert kms_error(kms.decrypt, CiphertextBlob=blob, KeyId=missing)[0] == "NotFoundException"


def test_plaintext_size_limits(kms, kms_nv, sym):
    big = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"\xab" * 4096)
    assert kms.decrypt(CiphertextBlob=big["CiphertextBlob"])["Plaintext"] == b"\xab" * 4096
    assert kms_error(kms_nv.encrypt, KeyId=sym["KeyId"], Plaintext=b"\xab" * 4097) == (
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
    )
    code, _ = kms_error(kms_nv.encrypt, KeyId=sym["KeyId"], Plaintext=b"")
    assert code == "ValidationException"


def test_generate_data_key(kms, kms_nv, sym):
    ctx = {"bucket": "b1", "object": "o1"}
    for spec, n in (("AES_256", 32), ("AES_128", 16)):
        r = kms.generate_data_key(KeyId=sym["KeyId"], KeySpec=spec, EncryptionContext=ctx)
        assert len(r["Plaintext"]) == n
        assert r["KeyId"] == sym["Arn"]
        assert HEX64.fullmatch(r["KeyMaterialId"])
        d = kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext=ctx)
        assert d["Plaintext"] == r["Plaintext"]
        assert kms_error(kms.decrypt, CiphertextBlob=r["CiphertextBlob"])[0] == "InvalidCiphertextException"
    for n in (1, 64, 1024):
        r = kms.generate_data_key(KeyId=sym["Arn"], NumberOfBytes=n)
        assert len(r["Plaintext"]) == n
        assert kms.decrypt(CiphertextBlob=r["CiphertextBlob"])["Plaintext"] == r["Plaintext"]
    keys = {kms.generate_data_key(KeyId=sym["KeyId"], KeySpec="AES_256")["Plaintext"] for _ in range(3)}
    assert len(keys) == 3

    w = kms.generate_data_key_without_plaintext(KeyId=sym["KeyId"], KeySpec="AES_256", EncryptionContext=ctx)
    assert "Plaintext" not in w
    assert w["KeyId"] == sym["Arn"]
    assert len(kms.decrypt(CiphertextBlob=w["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"]) == 32
    w = kms.generate_data_key_without_plaintext(KeyId=sym["KeyId"], NumberOfBytes=48)
    assert len(kms.decrypt(CiphertextBlob=w["CiphertextBlob"])["Plaintext"]) == 48

    either = ("ValidationException", "Please specify either number of bytes or key spec.")
    assert kms_error(kms.generate_data_key, KeyId=sym["KeyId"], KeySpec="AES_256", NumberOfBytes=32) == either
    assert kms_error(kms.generate_data_key, KeyId=sym["KeyId"]) == either
    assert kms_error(kms.generate_data_key_without_plaintext, KeyId=sym["KeyId"]) == either
    for n in (0, 1025):
        code, msg = kms_error(kms_nv.generate_data_key, KeyId=sym["KeyId"], NumberOfBytes=n)
        assert code == "ValidationException" and "numberOfBytes" in msg, msg
    code, _ = kms_error(kms_nv.generate_data_key, KeyId=sym["KeyId"], KeySpec="AES_512")
    assert code == "ValidationException"


def test_re_encrypt_to_another_key(kms, sym):
    dst = new_key(kms)
    src_ctx, dst_ctx = {"stage": "one"}, {"stage": "two"}
    blob = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"moving house", EncryptionContext=src_ctx)["CiphertextBlob"]
    r = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext=src_ctx,
        DestinationKeyId=dst["KeyId"],
        DestinationEncryptionContext=dst_ctx,
    )
    assert (r["SourceKeyId"], r["KeyId"]) == (sym["Arn"], dst["Arn"])
    assert (r["SourceEncryptionAlgorithm"], r["DestinationEncryptionAlgorithm"]) == ("SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT")
    d = kms.decrypt(CiphertextBlob=r["CiphertextBlob"], EncryptionContext=dst_ctx)
    assert (d["Plaintext"], d["KeyId"]) == (b"moving house", dst["Arn"])
    assert kms_error(kms.decrypt, CiphertextBlob=r["CiphertextBlob"], EncryptionContext=src_ctx)[0] == "InvalidCiphertextException"
    # the source context must match; SourceKeyId must be the right key
    code, _ = kms_error(kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext=dst_ctx, DestinationKeyId=dst["KeyId"])
    assert code == "InvalidCiphertextException"
    assert kms_error(
        kms.re_encrypt, CiphertextBlob=blob, SourceEncryptionContext=src_ctx, SourceKeyId=dst["KeyId"], DestinationKeyId=dst["KeyId"]
    ) == ("IncorrectKeyException", INCORRECT_KEY)
    # re-encrypting onto the same key (a new context) also works
    same = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=src_ctx, DestinationKeyId=sym["Arn"])
    assert kms.decrypt(CiphertextBlob=same["CiphertextBlob"])["Plaintext"] == b"moving house"


def test_generate_random(kms, kms_nv):
    for n in (1, 32, 1024):
        assert len(kms.generate_random(NumberOfBytes=n)["Plaintext"]) == n
    assert kms.generate_random(NumberOfBytes=32)["Plaintext"] != kms.generate_random(NumberOfBytes=32)["Plaintext"]
    for n in (0, 1025):
        code, msg = kms_error(kms_nv.generate_random, NumberOfBytes=n)
        assert code == "ValidationException" and f"Value '{n}' at 'numberOfBytes'" in msg, msg
    assert kms_error(kms.generate_random) == ("ValidationException", "NumberOfBytes is required.")


def test_dry_run(kms, sym, make_user):
    kid = sym["KeyId"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"dry")["CiphertextBlob"]
    dry = ("DryRunOperationException", DRY_RUN)
    assert kms_error(kms.encrypt, KeyId=kid, Plaintext=b"dry", DryRun=True) == dry
    assert kms_error(kms.decrypt, CiphertextBlob=blob, DryRun=True) == dry
    assert kms_error(kms.generate_data_key, KeyId=kid, KeySpec="AES_256", DryRun=True) == dry
    assert kms_error(kms.generate_data_key_without_plaintext, KeyId=kid, KeySpec="AES_256", DryRun=True) == dry
    assert kms_error(kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=kid, DryRun=True) == dry
    # a dry run still checks everything else: a bad context, and authorization
    assert kms_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"x": "y"}, DryRun=True)[0] == "InvalidCiphertextException"
    u = make_user()
    code, msg = kms_error(u.client("kms").encrypt, KeyId=kid, Plaintext=b"dry", DryRun=True)
    assert (code, msg) == ("AccessDeniedException", denied(u.arn, "kms:Encrypt", sym["Arn"]))


def test_kms_cli_create_key_alias_encrypt_decrypt_with_fileb(aws, kms, tmp_path):
    rc, out, err = aws(
        ["kms", "create-key", "--description", "made by the aws CLI", "--tags", "TagKey=via,TagValue=cli"]
    )
    assert rc == 0, err
    md = out["KeyMetadata"]
    assert (md["Description"], md["KeySpec"], md["KeyState"], md["KeyManager"]) == (
        "made by the aws CLI",
        "SYMMETRIC_DEFAULT",
        "Enabled",
        "CUSTOMER",
    )
    assert tag_dict(kms, md["KeyId"]) == {"via": "cli"}
    alias = "alias/" + uid("cli")
    rc, out, err = aws(["kms", "create-alias", "--alias-name", alias, "--target-key-id", md["KeyId"]])
    assert rc == 0, err
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == md["KeyId"]

    plain = bytes(range(256)) * 3  # binary, not text
    (tmp_path / "plain.bin").write_bytes(plain)
    rc, out, err = aws(
        [
            "kms", "encrypt", "--key-id", alias,
            "--plaintext", f"fileb://{tmp_path / 'plain.bin'}",
            "--encryption-context", "app=cli,stage=test",
        ]
    )
    assert rc == 0, err
    assert out["KeyId"] == md["Arn"]
    (tmp_path / "cipher.bin").write_bytes(base64.b64decode(out["CiphertextBlob"]))
    rc, out, err = aws(
        [
            "kms", "decrypt",
            "--ciphertext-blob", f"fileb://{tmp_path / 'cipher.bin'}",
            "--encryption-context", "app=cli,stage=test",
        ]
    )
    assert rc == 0, err
    assert base64.b64decode(out["Plaintext"]) == plain
    assert out["KeyId"] == md["Arn"]
    # and boto3 reads what the CLI wrote
    blob = (tmp_path / "cipher.bin").read_bytes()
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "cli", "stage": "test"})["Plaintext"] == plain

    rc, _, err = aws(["kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'cipher.bin'}"])
    assert rc != 0
    assert "InvalidCiphertextException" in err


# =============================================================================================
# 4. asymmetric keys and HMAC

HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
RSA_SIGNING = [
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
]


def hash_of(alg: str) -> hashes.HashAlgorithm:
    return HASHES[alg[-7:]]()


def digest_of(alg: str, msg: bytes) -> bytes:
    return hashlib.new(alg[-7:].replace("SHA_", "sha"), msg).digest()


def public_key_of(kms, key_id):
    r = kms.get_public_key(KeyId=key_id)
    return serialization.load_der_public_key(r["PublicKey"]), r


def verify_locally(pub, alg: str, sig: bytes, msg: bytes) -> str:
    """Verifies a KMS signature over `msg` with `cryptography`; returns how it verified. Raises
    InvalidSignature when no accepted parameter set verifies it."""
    h = hash_of(alg)
    if alg.startswith("ECDSA"):
        pub.verify(sig, msg, ec.ECDSA(h))  # KMS's ECDSA signature is DER
        return "ecdsa-der"
    if alg.startswith("RSASSA_PKCS1"):
        pub.verify(sig, msg, padding.PKCS1v15(), h)
        return "pkcs1v15"
    # RSASSA-PSS: MGF1 with the same hash, salt length = digest length (what AWS documents)
    try:
        pub.verify(sig, msg, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        return "pss-salt=digest"
    except InvalidSignature:
        pub.verify(sig, msg, padding.PSS(mgf=padding.MGF1(h), salt_length=padding.PSS.MAX_LENGTH), h)
        return "pss-salt=max"


@pytest.fixture(scope="module")
def rsa_sign_key(kms):
    return new_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Description="e2e RSA signing")


@pytest.fixture(scope="module")
def ecc_sign_key(kms):
    return new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description="e2e ECC signing")


def test_asymmetric_key_metadata_and_public_keys(kms, rsa_sign_key, ecc_sign_key):
    r = rsa_sign_key
    assert (r["KeySpec"], r["CustomerMasterKeySpec"], r["KeyUsage"], r["KeyState"]) == (
        "RSA_2048", "RSA_2048", "SIGN_VERIFY", "Enabled",
    )
    assert r["SigningAlgorithms"] == RSA_SIGNING
    assert "EncryptionAlgorithms" not in r
    e = ecc_sign_key
    assert (e["KeySpec"], e["KeyUsage"], e["SigningAlgorithms"]) == ("ECC_NIST_P256", "SIGN_VERIFY", ["ECDSA_SHA_256"])

    pub, out = public_key_of(kms, r["KeyId"])
    assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == 2048 and pub.public_numbers().e == 65537
    assert (out["KeyId"], out["KeySpec"], out["KeyUsage"], out["SigningAlgorithms"]) == (
        r["Arn"], "RSA_2048", "SIGN_VERIFY", RSA_SIGNING,
    )
    # the same DER every time, and it is a SubjectPublicKeyInfo
    assert out["PublicKey"] == pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert kms.get_public_key(KeyId=r["Arn"])["PublicKey"] == out["PublicKey"]
    pub, out = public_key_of(kms, e["KeyId"])
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    assert out["SigningAlgorithms"] == ["ECDSA_SHA_256"]

    code, _ = kms_error(kms.get_public_key, KeyId=new_key(kms)["KeyId"])
    assert code == "UnsupportedOperationException"


@pytest.mark.parametrize("alg", RSA_SIGNING)
def test_rsa_sign_and_verify(kms, rsa_sign_key, alg):
    kid, arn = rsa_sign_key["KeyId"], rsa_sign_key["Arn"]
    pub, _ = public_key_of(kms, kid)
    msg = f"sign me with {alg}".encode()
    digest = digest_of(alg, msg)

    raw = kms.sign(KeyId=kid, Message=msg, MessageType="RAW", SigningAlgorithm=alg)
    assert (raw["KeyId"], raw["SigningAlgorithm"]) == (arn, alg)
    assert len(raw["Signature"]) == 256
    dig = kms.sign(KeyId=arn, Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)

    for sig in (raw["Signature"], dig["Signature"]):
        # KMS verifies either form of the message
        v = kms.verify(KeyId=kid, Message=msg, MessageType="RAW", Signature=sig, SigningAlgorithm=alg)
        assert (v["SignatureValid"], v["KeyId"], v["SigningAlgorithm"]) == (True, arn, alg)
        v = kms.verify(KeyId=kid, Message=digest, MessageType="DIGEST", Signature=sig, SigningAlgorithm=alg)
        assert v["SignatureValid"] is True
        # and so does `cryptography`, from the public key alone
        how = verify_locally(pub, alg, sig, msg)
        if "PSS" in alg:
            assert how == "pss-salt=digest", f"{alg}: KMS's PSS signature verifies only with salt length MAX_LENGTH"
    if "PKCS1" in alg:
        assert raw["Signature"] == dig["Signature"]  # deterministic

    assert kms_error(kms.verify, KeyId=kid, Message=msg + b"!", Signature=raw["Signature"], SigningAlgorithm=alg) == (
        "KMSInvalidSignatureException",
        "",
    )
    other = digest_of(alg, b"something else")
    code, _ = kms_error(kms.verify, KeyId=kid, Message=other, MessageType="DIGEST", Signature=raw["Signature"], SigningAlgorithm=alg)
    assert code == "KMSInvalidSignatureException"
    with pytest.raises(InvalidSignature):
        verify_locally(pub, alg, raw["Signature"], msg + b"!")
    # a digest of the wrong length
    assert kms_error(kms.sign, KeyId=kid, Message=digest[:-1], MessageType="DIGEST", SigningAlgorithm=alg) == (
        "ValidationException",
        f"Digest is invalid length for algorithm {alg}.",
    )


def test_ecc_sign_and_verify(kms, ecc_sign_key):
    kid, arn = ecc_sign_key["KeyId"], ecc_sign_key["Arn"]
    pub, _ = public_key_of(kms, kid)
    alg = "ECDSA_SHA_256"
    msg = b"elliptic curves are nice"
    digest = hashlib.sha256(msg).digest()
    raw = kms.sign(KeyId=kid, Message=msg, SigningAlgorithm=alg)  # MessageType defaults to RAW
    dig = kms.sign(KeyId=kid, Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)
    for sig in (raw["Signature"], dig["Signature"]):
        assert sig[0] == 0x30  # a DER SEQUENCE
        assert kms.verify(KeyId=arn, Message=msg, Signature=sig, SigningAlgorithm=alg)["SignatureValid"] is True
        assert kms.verify(KeyId=kid, Message=digest, MessageType="DIGEST", Signature=sig, SigningAlgorithm=alg)["SignatureValid"] is True
        assert verify_locally(pub, alg, sig, msg) == "ecdsa-der"
    assert kms_error(kms.verify, KeyId=kid, Message=b"tampered", Signature=raw["Signature"], SigningAlgorithm=alg) == (
        "KMSInvalidSignatureException",
        "",
    )
    assert kms_error(kms.sign, KeyId=kid, Message=digest[:20], MessageType="DIGEST", SigningAlgorithm=alg) == (
        "ValidationException",
        "Digest is invalid length for algorithm ECDSA_SHA_256.",
    )
    assert kms_error(kms.sign, KeyId=kid, Message=msg, SigningAlgorithm="ECDSA_SHA_384") == (
        "InvalidKeyUsageException",
        "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.",
    )
    assert kms_error(kms.sign, KeyId=kid, Message=msg, SigningAlgorithm="RSASSA_PSS_SHA_256")[0] == "InvalidKeyUsageException"
    # signing keys do not encrypt; DryRun on Sign
    assert kms_error(kms.encrypt, KeyId=kid, Plaintext=b"x") == (
        "InvalidKeyUsageException",
        f"{arn} key usage is SIGN_VERIFY which is not valid for Encrypt.",
    )
    assert kms_error(kms.sign, KeyId=kid, Message=msg, SigningAlgorithm=alg, DryRun=True) == ("DryRunOperationException", DRY_RUN)
    # a symmetric key does not sign
    code, _ = kms_error(kms.sign, KeyId=new_key(kms)["KeyId"], Message=msg, SigningAlgorithm=alg)
    assert code == "InvalidKeyUsageException"


def test_rsa_encrypt_decrypt_key(kms):
    md = new_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    kid, arn = md["KeyId"], md["Arn"]
    assert md["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    assert "SigningAlgorithms" not in md
    pub, out = public_key_of(kms, kid)
    assert out["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert out["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]

    for alg, h, limit in (("RSAES_OAEP_SHA_256", hashes.SHA256, 190), ("RSAES_OAEP_SHA_1", hashes.SHA1, 214)):
        # through KMS both ways
        r = kms.encrypt(KeyId=kid, Plaintext=b"rsa secret", EncryptionAlgorithm=alg)
        assert (r["KeyId"], r["EncryptionAlgorithm"], len(r["CiphertextBlob"])) == (arn, alg, 256)
        d = kms.decrypt(KeyId=kid, CiphertextBlob=r["CiphertextBlob"], EncryptionAlgorithm=alg)
        assert (d["Plaintext"], d["KeyId"], d["EncryptionAlgorithm"]) == (b"rsa secret", arn, alg)
        # encrypted locally with the public key, decrypted by KMS
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(), label=None)
        local = pub.encrypt(b"from cryptography " + alg.encode(), oaep)
        d = kms.decrypt(KeyId=arn, CiphertextBlob=local, EncryptionAlgorithm=alg)
        assert d["Plaintext"] == b"from cryptography " + alg.encode()
        # the largest plaintext fits, one more byte does not
        full = kms.encrypt(KeyId=kid, Plaintext=b"m" * limit, EncryptionAlgorithm=alg)
        assert kms.decrypt(KeyId=kid, CiphertextBlob=full["CiphertextBlob"], EncryptionAlgorithm=alg)["Plaintext"] == b"m" * limit
        assert kms_error(kms.encrypt, KeyId=kid, Plaintext=b"m" * (limit + 1), EncryptionAlgorithm=alg) == (
            "ValidationException",
            f"Algorithm {alg} and key spec RSA_2048 cannot encrypt data larger than {limit} bytes.",
        )

    r = kms.encrypt(KeyId=kid, Plaintext=b"sha256 only", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    code, _ = kms_error(kms.decrypt, KeyId=kid, CiphertextBlob=r["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert code == "InvalidCiphertextException"
    code, _ = kms_error(kms.decrypt, KeyId=kid, CiphertextBlob=flip(r["CiphertextBlob"], 100), EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert code == "InvalidCiphertextException"
    # no encryption context with asymmetric keys; symmetric algorithm refused
    code, _ = kms_error(kms.encrypt, KeyId=kid, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256", EncryptionContext={"a": "b"})
    assert code == "ValidationException"
    assert kms_error(kms.encrypt, KeyId=kid, Plaintext=b"x")[0] == "InvalidKeyUsageException"
    assert kms_error(kms.sign, KeyId=kid, Message=b"x", SigningAlgorithm="RSASSA_PSS_SHA_256") == (
        "InvalidKeyUsageException",
        f"{arn} key usage is ENCRYPT_DECRYPT which is not valid for Sign.",
    )
    # RSA-OAEP with a symmetric key
    code, _ = kms_error(kms.encrypt, KeyId=new_key(kms)["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert code == "InvalidKeyUsageException"


def test_hmac_key_generate_and_verify_mac(kms):
    md = new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    kid, arn = md["KeyId"], md["Arn"]
    assert (md["KeySpec"], md["KeyUsage"], md["MacAlgorithms"]) == ("HMAC_256", "GENERATE_VERIFY_MAC", ["HMAC_SHA_256"])
    assert "EncryptionAlgorithms" not in md and "SigningAlgorithms" not in md

    m = kms.generate_mac(KeyId=kid, Message=b"authenticate me", MacAlgorithm="HMAC_SHA_256")
    assert (m["KeyId"], m["MacAlgorithm"], len(m["Mac"])) == (arn, "HMAC_SHA_256", 32)
    # deterministic, and keyed: another HMAC key gives another MAC
    assert kms.generate_mac(KeyId=arn, Message=b"authenticate me", MacAlgorithm="HMAC_SHA_256")["Mac"] == m["Mac"]
    other = new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    assert kms.generate_mac(KeyId=other["KeyId"], Message=b"authenticate me", MacAlgorithm="HMAC_SHA_256")["Mac"] != m["Mac"]

    v = kms.verify_mac(KeyId=kid, Message=b"authenticate me", MacAlgorithm="HMAC_SHA_256", Mac=m["Mac"])
    assert (v["MacValid"], v["KeyId"], v["MacAlgorithm"]) == (True, arn, "HMAC_SHA_256")
    assert kms_error(kms.verify_mac, KeyId=kid, Message=b"authenticate me", MacAlgorithm="HMAC_SHA_256", Mac=flip(m["Mac"], 0)) == (
        "KMSInvalidMacException",
        "",
    )
    assert kms_error(kms.verify_mac, KeyId=kid, Message=b"authenticate me!", MacAlgorithm="HMAC_SHA_256", Mac=m["Mac"])[0] == "KMSInvalidMacException"
    assert kms_error(kms.verify_mac, KeyId=other["KeyId"], Message=b"authenticate me", MacAlgorithm="HMAC_SHA_256", Mac=m["Mac"])[0] == "KMSInvalidMacException"

    assert kms_error(kms.generate_mac, KeyId=kid, Message=b"x", MacAlgorithm="HMAC_SHA_512") == (
        "InvalidKeyUsageException",
        "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_256.",
    )
    assert kms_error(kms.encrypt, KeyId=kid, Plaintext=b"x") == (
        "InvalidKeyUsageException",
        f"{arn} key usage is GENERATE_VERIFY_MAC which is not valid for Encrypt.",
    )
    code, _ = kms_error(kms.generate_mac, KeyId=new_key(kms)["KeyId"], Message=b"x", MacAlgorithm="HMAC_SHA_256")
    assert code == "InvalidKeyUsageException"
    assert kms_error(kms.generate_mac, KeyId=kid, Message=b"x", MacAlgorithm="HMAC_SHA_256", DryRun=True) == (
        "DryRunOperationException",
        DRY_RUN,
    )
    # rotation is for symmetric encryption keys only
    assert kms_error(kms.enable_key_rotation, KeyId=kid)[0] == "UnsupportedOperationException"


@pytest.mark.parametrize("pair_spec", ["ECC_NIST_P256", "RSA_2048"])
def test_generate_data_key_pair(kms, sym, pair_spec):
    ctx = {"pair": pair_spec}
    r = kms.generate_data_key_pair(KeyId=sym["KeyId"], KeyPairSpec=pair_spec, EncryptionContext=ctx)
    assert (r["KeyId"], r["KeyPairSpec"]) == (sym["Arn"], pair_spec)
    sk = serialization.load_der_private_key(r["PrivateKeyPlaintext"], password=None)  # PKCS#8 DER
    pk_der = sk.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pk_der == r["PublicKey"]
    assert r["PrivateKeyPlaintext"] == sk.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if pair_spec == "RSA_2048":
        assert sk.key_size == 2048
    else:
        assert sk.curve.name == "secp256r1"
    d = kms.decrypt(CiphertextBlob=r["PrivateKeyCiphertextBlob"], EncryptionContext=ctx)
    assert (d["Plaintext"], d["KeyId"]) == (r["PrivateKeyPlaintext"], sym["Arn"])
    assert kms_error(kms.decrypt, CiphertextBlob=r["PrivateKeyCiphertextBlob"])[0] == "InvalidCiphertextException"

    w = kms.generate_data_key_pair_without_plaintext(KeyId=sym["Arn"], KeyPairSpec=pair_spec)
    assert "PrivateKeyPlaintext" not in w
    assert w["PublicKey"] != r["PublicKey"]
    sk2 = serialization.load_der_private_key(kms.decrypt(CiphertextBlob=w["PrivateKeyCiphertextBlob"])["Plaintext"], password=None)
    pub2 = serialization.load_der_public_key(w["PublicKey"])
    assert sk2.public_key().public_numbers() == pub2.public_numbers()
    # the pair works: sign locally with the private key, verify with the public key
    if pair_spec == "RSA_2048":
        sig = sk2.sign(b"pair", padding.PKCS1v15(), hashes.SHA256())
        pub2.verify(sig, b"pair", padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = sk2.sign(b"pair", ec.ECDSA(hashes.SHA256()))
        pub2.verify(sig, b"pair", ec.ECDSA(hashes.SHA256()))


def test_generate_data_key_pair_errors(kms, ecc_sign_key, sym):
    code, _ = kms_error(kms.generate_data_key_pair, KeyId=ecc_sign_key["KeyId"], KeyPairSpec="ECC_NIST_P256")
    assert code == "InvalidKeyUsageException"
    code, _ = kms_error(kms.generate_data_key_pair, KeyId=sym["KeyId"], KeyPairSpec="DSA_1024")
    assert code == "ValidationException"
    assert kms_error(kms.generate_data_key_pair, KeyId=sym["KeyId"], KeyPairSpec="ECC_NIST_P256", DryRun=True) == (
        "DryRunOperationException",
        DRY_RUN,
    )


# =============================================================================================
# 6. grants


def test_grant_with_encryption_context_subset(kms, make_user):
    md = new_key(kms)
    kid, arn = md["KeyId"], md["Arn"]
    grantee, retirer, outsider = make_user(prefix="grantee"), make_user(prefix="retirer"), make_user(prefix="outsider")
    g = grantee.client("kms")
    eng = {"dept": "eng", "doc": "42"}
    blob_eng = kms.encrypt(KeyId=kid, Plaintext=b"eng secret", EncryptionContext=eng)["CiphertextBlob"]
    blob_hr = kms.encrypt(KeyId=kid, Plaintext=b"hr secret", EncryptionContext={"dept": "hr"})["CiphertextBlob"]

    # no access before the grant: the default key policy delegates to IAM, which allows nothing
    assert kms_error(g.decrypt, CiphertextBlob=blob_eng, EncryptionContext=eng) == (
        "AccessDeniedException",
        denied(grantee.arn, "kms:Decrypt", arn),
    )

    r = kms.create_grant(
        KeyId=kid,
        GranteePrincipal=grantee.arn,
        RetiringPrincipal=retirer.arn,
        Operations=["Decrypt", "Encrypt", "GenerateDataKey"],
        Constraints={"EncryptionContextSubset": {"dept": "eng"}},
        Name="e2e-grant",
    )
    gid, token = r["GrantId"], r["GrantToken"]
    assert HEX64.fullmatch(gid) and token

    # effective at once, with or without the grant token
    assert g.decrypt(CiphertextBlob=blob_eng, EncryptionContext=eng)["Plaintext"] == b"eng secret"
    assert g.decrypt(CiphertextBlob=blob_eng, EncryptionContext=eng, GrantTokens=[token])["Plaintext"] == b"eng secret"
    e = g.encrypt(KeyId=arn, Plaintext=b"by the grantee", EncryptionContext={"dept": "eng"})
    assert kms.decrypt(CiphertextBlob=e["CiphertextBlob"], EncryptionContext={"dept": "eng"})["Plaintext"] == b"by the grantee"
    dk = g.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext={"dept": "eng", "x": "y"})
    assert len(dk["Plaintext"]) == 32
    # ...only with a context containing dept=eng, and only for the granted operations
    assert kms_error(g.decrypt, CiphertextBlob=blob_hr, EncryptionContext={"dept": "hr"}) == (
        "AccessDeniedException",
        denied(grantee.arn, "kms:Decrypt", arn),
    )
    assert kms_error(g.encrypt, KeyId=kid, Plaintext=b"x")[0] == "AccessDeniedException"
    assert kms_error(g.encrypt, KeyId=kid, Plaintext=b"x", EncryptionContext={"dept": "Eng"})[0] == "AccessDeniedException"
    assert kms_error(g.describe_key, KeyId=kid) == ("AccessDeniedException", denied(grantee.arn, "kms:DescribeKey", arn))
    assert kms_error(g.generate_data_key_without_plaintext, KeyId=kid, KeySpec="AES_256", EncryptionContext=eng)[0] == "AccessDeniedException"
    # the grant is the grantee's alone
    assert kms_error(outsider.client("kms").decrypt, CiphertextBlob=blob_eng, EncryptionContext=eng)[0] == "AccessDeniedException"

    # ListGrants
    listed = kms.list_grants(KeyId=kid)
    assert listed["Truncated"] is False
    [gr] = listed["Grants"]
    assert {k: gr[k] for k in ("KeyId", "GrantId", "Name", "GranteePrincipal", "RetiringPrincipal", "IssuingAccount")} == {
        "KeyId": arn,
        "GrantId": gid,
        "Name": "e2e-grant",
        "GranteePrincipal": grantee.arn,
        "RetiringPrincipal": retirer.arn,
        "IssuingAccount": ROOT_ARN,
    }
    assert sorted(gr["Operations"]) == ["Decrypt", "Encrypt", "GenerateDataKey"]
    assert gr["Constraints"] == {"EncryptionContextSubset": {"dept": "eng"}}
    assert isinstance(gr["CreationDate"], dt.datetime)
    assert [x["GrantId"] for x in kms.list_grants(KeyId=arn, GrantId=gid)["Grants"]] == [gid]
    assert kms.list_grants(KeyId=kid, GranteePrincipal=outsider.arn)["Grants"] == []

    # ListRetirableGrants (an IAM-authorized call)
    retirable = kms.list_retirable_grants(RetiringPrincipal=retirer.arn)["Grants"]
    assert [(x["GrantId"], x["KeyId"]) for x in retirable] == [(gid, arn)]
    assert kms.list_retirable_grants(RetiringPrincipal=outsider.arn)["Grants"] == []

    # only the retiring principal may retire it (the grant has no RetireGrant operation)
    for who in (outsider, grantee):
        code, msg = kms_error(who.client("kms").retire_grant, GrantToken=token)
        assert code == "AccessDeniedException", msg
    assert kms_error(retirer.client("kms").retire_grant, GrantToken=token, DryRun=True) == ("DryRunOperationException", DRY_RUN)
    retirer.client("kms").retire_grant(GrantToken=token)
    assert kms.list_grants(KeyId=kid)["Grants"] == []
    assert kms_error(g.decrypt, CiphertextBlob=blob_eng, EncryptionContext=eng)[0] == "AccessDeniedException"
    assert kms.list_retirable_grants(RetiringPrincipal=retirer.arn)["Grants"] == []
    code, _ = kms_error(retirer.client("kms").retire_grant, GrantToken=token)
    assert code == "InvalidGrantTokenException"


def test_revoke_grant_and_grantee_retiring_its_own_grant(kms, make_user):
    md = new_key(kms)
    kid, arn = md["KeyId"], md["Arn"]
    grantee = make_user(prefix="grantee")
    g = grantee.client("kms")
    blob = kms.encrypt(KeyId=kid, Plaintext=b"revocable")["CiphertextBlob"]

    gid = kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=["Decrypt", "DescribeKey"])["GrantId"]
    assert g.decrypt(CiphertextBlob=blob)["Plaintext"] == b"revocable"
    assert g.describe_key(KeyId=kid)["KeyMetadata"]["Arn"] == arn
    assert kms_error(kms.revoke_grant, KeyId=kid, GrantId=gid, DryRun=True) == ("DryRunOperationException", DRY_RUN)
    assert g.decrypt(CiphertextBlob=blob)["Plaintext"] == b"revocable"
    kms.revoke_grant(KeyId=kid, GrantId=gid)
    assert kms_error(g.decrypt, CiphertextBlob=blob) == ("AccessDeniedException", denied(grantee.arn, "kms:Decrypt", arn))
    assert kms_error(kms.revoke_grant, KeyId=kid, GrantId=gid) == ("NotFoundException", f"Grant ID {gid} not found")
    # the grantee cannot revoke (no key policy permission)
    gid2 = kms.create_grant(KeyId=kid, GranteePrincipal=grantee.arn, Operations=["Decrypt"])["GrantId"]
    assert kms_error(g.revoke_grant, KeyId=kid, GrantId=gid2)[0] == "AccessDeniedException"
    kms.revoke_grant(KeyId=kid, GrantId=gid2)

    # a grant with RetireGrant lets the grantee retire it, by key and grant id
    gid3 = kms.create_grant(KeyId=kid, GranteePrincipal=grantee.arn, Operations=["Decrypt", "RetireGrant"])["GrantId"]
    assert g.decrypt(CiphertextBlob=blob)["Plaintext"] == b"revocable"
    g.retire_grant(KeyId=arn, GrantId=gid3)
    assert kms_error(g.decrypt, CiphertextBlob=blob)[0] == "AccessDeniedException"
    assert kms_error(g.retire_grant, KeyId=arn, GrantId=gid3) == ("NotFoundException", f"Grant ID {gid3} not found")

    # EncryptionContextEquals: exactly this context
    ctx = {"a": "1", "b": "2"}
    exact = kms.encrypt(KeyId=kid, Plaintext=b"exact", EncryptionContext=ctx)["CiphertextBlob"]
    more = kms.encrypt(KeyId=kid, Plaintext=b"more", EncryptionContext={**ctx, "c": "3"})["CiphertextBlob"]
    kms.create_grant(KeyId=kid, GranteePrincipal=grantee.arn, Operations=["Decrypt"], Constraints={"EncryptionContextEquals": ctx})
    assert g.decrypt(CiphertextBlob=exact, EncryptionContext={"b": "2", "a": "1"})["Plaintext"] == b"exact"
    assert kms_error(g.decrypt, CiphertextBlob=more, EncryptionContext={**ctx, "c": "3"})[0] == "AccessDeniedException"
    assert kms_error(g.decrypt, CiphertextBlob=blob)[0] == "AccessDeniedException"


def test_grant_validation(kms, make_user):
    md = new_key(kms)
    grantee = make_user(prefix="grantee")
    code, _ = kms_error(kms.create_grant, KeyId=md["KeyId"], GranteePrincipal=grantee.arn, Operations=["Dance"])
    assert code == "ValidationException"
    missing = str(uuid.uuid4())
    assert kms_error(kms.create_grant, KeyId=missing, GranteePrincipal=grantee.arn, Operations=["Decrypt"])[0] == "NotFoundException"
    assert kms_error(kms.create_grant, KeyId=md["KeyId"], GranteePrincipal=grantee.arn, Operations=["Decrypt"], DryRun=True) == (
        "DryRunOperationException",
        DRY_RUN,
    )
    assert kms.list_grants(KeyId=md["KeyId"])["Grants"] == []
    kms.disable_key(KeyId=md["KeyId"])
    assert kms_error(kms.create_grant, KeyId=md["KeyId"], GranteePrincipal=grantee.arn, Operations=["Decrypt"]) == (
        "DisabledException",
        f"{md['Arn']} is disabled.",
    )
    code, _ = kms_error(kms.retire_grant, GrantToken="not-a-token")
    assert code == "InvalidGrantTokenException"
    assert kms_error(kms.retire_grant)[0] == "ValidationException"


def test_list_grants_pagination(kms, make_user):
    md = new_key(kms)
    grantee = make_user(prefix="grantee")
    ids = sorted(
        kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=grantee.arn, Operations=["Decrypt"], Name=f"g{i}")["GrantId"]
        for i in range(3)
    )
    got = [g["GrantId"] for g in all_pages(kms.list_grants, "Grants", KeyId=md["KeyId"], Limit=2)]
    assert sorted(got) == ids and len(got) == 3
    assert sorted(g["GrantId"] for g in kms.list_grants(KeyId=md["KeyId"], GranteePrincipal=grantee.arn)["Grants"]) == ids


def test_grantee_with_create_grant_passes_its_operations_on(kms, make_user):
    md = new_key(kms)
    parent, child = make_user(prefix="parent"), make_user(prefix="child")
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"handed down")["CiphertextBlob"]
    kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=parent.arn, Operations=["Decrypt", "CreateGrant"])
    # the parent grant's CreateGrant lets the grantee give the same operations to another principal
    parent.client("kms").create_grant(KeyId=md["Arn"], GranteePrincipal=child.arn, Operations=["Decrypt"])
    assert child.client("kms").decrypt(CiphertextBlob=blob)["Plaintext"] == b"handed down"
    issuers = {g["GranteePrincipal"]: g["IssuingAccount"] for g in kms.list_grants(KeyId=md["KeyId"])["Grants"]}
    assert issuers == {parent.arn: ROOT_ARN, child.arn: ROOT_ARN}


def test_a_grant_cannot_create_grants_beyond_its_own_operations(kms, make_user):
    md = new_key(kms)
    holder = make_user(prefix="holder")
    h = holder.client("kms")
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"not yours")["CiphertextBlob"]
    kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=holder.arn, Operations=["CreateGrant"])
    code, _ = kms_error(h.create_grant, KeyId=md["KeyId"], GranteePrincipal=holder.arn, Operations=["Decrypt"])
    assert code == "AccessDeniedException"
    assert kms_error(h.decrypt, CiphertextBlob=blob)[0] == "AccessDeniedException"


def test_a_constrained_grant_can_create_equally_strict_grants(kms, make_user):
    md = new_key(kms)
    parent, child = make_user(prefix="parent"), make_user(prefix="child")
    it = {"Department": "IT"}
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"IT only", EncryptionContext=it)["CiphertextBlob"]
    kms.create_grant(
        KeyId=md["KeyId"],
        GranteePrincipal=parent.arn,
        Operations=["Decrypt", "CreateGrant"],
        Constraints={"EncryptionContextSubset": it},
    )
    assert parent.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=it)["Plaintext"] == b"IT only"
    parent.client("kms").create_grant(
        KeyId=md["KeyId"], GranteePrincipal=child.arn, Operations=["Decrypt"], Constraints={"EncryptionContextEquals": it}
    )
    assert child.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=it)["Plaintext"] == b"IT only"


def test_create_grant_with_an_alias_is_invalid_arn(kms, make_user):
    md = new_key(kms)
    alias = "alias/" + uid("grant")
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    grantee = make_user(prefix="grantee")
    assert kms_error(kms.create_grant, KeyId=alias, GranteePrincipal=grantee.arn, Operations=["Decrypt"]) == (
        "InvalidArnException",
        "Key Aliases are not supported for this operation.",
    )


def test_the_issuing_account_may_retire_a_grant(kms, make_user):
    md = new_key(kms)
    grantee, retirer = make_user(prefix="grantee"), make_user(prefix="retirer")
    gid = kms.create_grant(
        KeyId=md["KeyId"], GranteePrincipal=grantee.arn, RetiringPrincipal=retirer.arn, Operations=["Decrypt"]
    )["GrantId"]
    kms.retire_grant(KeyId=md["Arn"], GrantId=gid)
    assert kms.list_grants(KeyId=md["KeyId"])["Grants"] == []


# =============================================================================================
# 7. rotation


def test_rotation_settings_and_on_demand_rotation(kms, kms_nv):
    md = new_key(kms)
    kid, arn = md["KeyId"], md["Arn"]
    st = kms.get_key_rotation_status(KeyId=kid)
    assert (st["KeyRotationEnabled"], st["KeyId"]) == (False, arn)
    assert "RotationPeriodInDays" not in st and "NextRotationDate" not in st
    assert kms.list_key_rotations(KeyId=kid)["Rotations"] == []

    before = utc_now()
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    st = kms.get_key_rotation_status(KeyId=arn)
    assert (st["KeyRotationEnabled"], st["RotationPeriodInDays"]) == (True, 90)
    assert before + dt.timedelta(days=90) - dt.timedelta(seconds=5) <= st["NextRotationDate"] <= utc_now() + dt.timedelta(days=90, seconds=5)
    for days in (89, 2561):
        code, msg = kms_error(kms_nv.enable_key_rotation, KeyId=kid, RotationPeriodInDays=days)
        assert code == "ValidationException" and "rotationPeriodInDays" in msg
    kms.enable_key_rotation(KeyId=kid)  # default period
    assert kms.get_key_rotation_status(KeyId=kid)["RotationPeriodInDays"] == 365
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)

    ctx = {"era": "before"}
    old_blob = kms.encrypt(KeyId=kid, Plaintext=b"pre-rotation", EncryptionContext=ctx)["CiphertextBlob"]
    old_material = md["CurrentKeyMaterialId"]

    r = kms.rotate_key_on_demand(KeyId=kid)
    assert r["KeyId"] in (kid, arn)
    new_material = kms.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert HEX64.fullmatch(new_material) and new_material != old_material
    [rot] = kms.list_key_rotations(KeyId=kid)["Rotations"]
    assert (rot["KeyId"], rot["RotationType"]) == (arn, "ON_DEMAND")
    assert isinstance(rot["RotationDate"], dt.datetime)
    assert rot["KeyMaterialId"] == new_material

    # old ciphertexts still decrypt (with their own material); new ones use the new material
    d = kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=ctx)
    assert (d["Plaintext"], d["KeyMaterialId"]) == (b"pre-rotation", old_material)
    new_blob = kms.encrypt(KeyId=kid, Plaintext=b"post-rotation")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == new_material
    # on-demand rotation leaves the schedule as it was
    assert kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is True

    kms.disable_key_rotation(KeyId=kid)
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["KeyRotationEnabled"] is False and "NextRotationDate" not in st
    # on-demand rotation does not need automatic rotation
    kms.rotate_key_on_demand(KeyId=kid)
    assert [x["RotationType"] for x in kms.list_key_rotations(KeyId=kid)["Rotations"]] == ["ON_DEMAND", "ON_DEMAND"]
    assert kms.decrypt(CiphertextBlob=old_blob, EncryptionContext=ctx)["Plaintext"] == b"pre-rotation"

    # a disabled key is not rotated; asymmetric keys never are
    kms.disable_key(KeyId=kid)
    assert kms_error(kms.rotate_key_on_demand, KeyId=kid) == ("DisabledException", f"{arn} is disabled.")
    assert kms_error(kms.enable_key_rotation, KeyId=kid) == ("DisabledException", f"{arn} is disabled.")
    ecc = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    assert kms_error(kms.rotate_key_on_demand, KeyId=ecc["KeyId"]) == (
        "UnsupportedOperationException",
        f"{ecc['Arn']} key spec ECC_NIST_P256 is not valid for this operation.",
    )


def test_automatic_rotation_with_the_test_clock(clock_server):
    kms = clock_server.client_for("kms", ROOT)
    k = new_key(kms)
    kid, arn = k["KeyId"], k["Arn"]
    paused = new_key(kms)  # rotation enabled, then disabled: not rotated while disabled
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    kms.enable_key_rotation(KeyId=paused["KeyId"], RotationPeriodInDays=90)
    kms.disable_key(KeyId=paused["KeyId"])
    first_next = kms.get_key_rotation_status(KeyId=kid)["NextRotationDate"]
    blobs = [kms.encrypt(KeyId=kid, Plaintext=b"generation 0")["CiphertextBlob"]]
    kms.rotate_key_on_demand(KeyId=kid)
    blobs.append(kms.encrypt(KeyId=kid, Plaintext=b"generation 1")["CiphertextBlob"])

    assert clock_server.advance_clock(89 * DAY)["rotated"] == 0
    out = clock_server.advance_clock(2 * DAY)
    assert out["rotated"] == 1 and out["deleted"] == 0, out  # `paused` is disabled
    rots = kms.list_key_rotations(KeyId=kid)["Rotations"]
    assert [r["RotationType"] for r in rots] == ["ON_DEMAND", "AUTOMATIC"]
    assert rots[-1]["KeyMaterialId"] == kms.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"]
    # the rotation date is the service clock's (91 days ahead)
    assert rots[-1]["RotationDate"] > utc_now() + dt.timedelta(days=90)
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["KeyRotationEnabled"] is True
    assert st["NextRotationDate"] - first_next == dt.timedelta(days=90)
    assert clock_server.advance_clock(0)["rotated"] == 0  # not twice

    blobs.append(kms.encrypt(KeyId=kid, Plaintext=b"generation 2")["CiphertextBlob"])
    for i, b in enumerate(blobs):
        assert kms.decrypt(CiphertextBlob=b)["Plaintext"] == f"generation {i}".encode()

    # the disabled key rotates as soon as it is enabled again (its date has passed)
    assert kms.list_key_rotations(KeyId=paused["KeyId"])["Rotations"] == []
    kms.enable_key(KeyId=paused["KeyId"])
    assert clock_server.advance_clock(0)["rotated"] == 1
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=paused["KeyId"])["Rotations"]] == ["AUTOMATIC"]

    # another period later: one more automatic rotation of each
    assert clock_server.advance_clock(90 * DAY)["rotated"] == 2
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=kid)["Rotations"]] == ["ON_DEMAND", "AUTOMATIC", "AUTOMATIC"]
    for i, b in enumerate(blobs):
        assert kms.decrypt(CiphertextBlob=b)["Plaintext"] == f"generation {i}".encode()


# =============================================================================================
# 8. deletion


def test_scheduled_deletion_with_the_test_clock(clock_server, tmp_path):
    kms = clock_server.client_for("kms", ROOT)
    k = new_key(kms)
    kid, arn = k["KeyId"], k["Arn"]
    alias = "alias/" + uid("doomed")
    kms.create_alias(AliasName=alias, TargetKeyId=kid)
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    blob = kms.encrypt(KeyId=kid, Plaintext=b"last words", EncryptionContext={"k": "v"})["CiphertextBlob"]
    survivor = new_key(kms)
    survivor_blob = kms.encrypt(KeyId=survivor["KeyId"], Plaintext=b"still here")["CiphertextBlob"]

    assert kms_error(kms.schedule_key_deletion, KeyId=kid, PendingWindowInDays=6) == (
        "ValidationException",
        "1 validation error detected: Value '6' at 'pendingWindowInDays' failed to satisfy constraint: "
        "Member must have value greater than or equal to 7 and less than or equal to 30",
    )
    assert kms_error(kms.schedule_key_deletion, KeyId=kid, PendingWindowInDays=31)[0] == "ValidationException"
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"

    now = utc_now()
    r = kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    assert (r["KeyId"], r["KeyState"], r["PendingWindowInDays"]) == (arn, "PendingDeletion", 7)
    assert now + dt.timedelta(days=7) - dt.timedelta(seconds=5) <= r["DeletionDate"] <= now + dt.timedelta(days=8)
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"], md["PendingDeletionWindowInDays"], md["DeletionDate"]) == (
        "PendingDeletion", False, 7, r["DeletionDate"],
    )
    pending = ("KMSInvalidStateException", f"{arn} is pending deletion.")
    assert kms_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"k": "v"}) == pending
    assert kms_error(kms.encrypt, KeyId=alias, Plaintext=b"x") == pending
    assert kms_error(kms.generate_data_key, KeyId=kid, KeySpec="AES_256") == pending
    assert kms_error(kms.enable_key, KeyId=kid) == pending
    assert kms_error(kms.schedule_key_deletion, KeyId=kid, PendingWindowInDays=7) == pending
    assert kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is False

    c = kms.cancel_key_deletion(KeyId=kid)
    assert c["KeyId"] == arn
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in md and "PendingDeletionWindowInDays" not in md
    assert kms_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"k": "v"}) == ("DisabledException", f"{arn} is disabled.")
    kms.enable_key(KeyId=kid)
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})["Plaintext"] == b"last words"

    # schedule again, with the aws CLI
    rc, out, err = clock_server.aws(
        ["kms", "schedule-key-deletion", "--key-id", kid, "--pending-window-in-days", "7"], ROOT
    )
    assert rc == 0, err
    assert (out["KeyId"], out["KeyState"], out["PendingWindowInDays"]) == (arn, "PendingDeletion", 7)

    assert clock_server.advance_clock(6 * DAY)["deleted"] == 0
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    out = clock_server.advance_clock(2 * DAY)
    assert out["deleted"] == 1, out

    assert kms_error(kms.describe_key, KeyId=kid) == ("NotFoundException", f"Key '{arn}' does not exist")
    assert kms_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"k": "v"}) == (
        "AccessDeniedException",
        CIPHERTEXT_ORPHAN,
    )
    assert kms_error(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"k": "v"}, KeyId=kid)[0] == "NotFoundException"
    assert kms_error(kms.describe_key, KeyId=alias) == ("NotFoundException", f"Alias {ALIAS_ARN}{alias} is not found.")
    assert alias not in alias_names(kms)
    assert kid not in [x["KeyId"] for x in kms.list_keys(Limit=1000)["Keys"]]
    assert kms_error(kms.cancel_key_deletion, KeyId=kid)[0] == "NotFoundException"
    # the alias name is free again
    kms.create_alias(AliasName=alias, TargetKeyId=survivor["KeyId"])
    # other keys are untouched
    assert kms.decrypt(CiphertextBlob=survivor_blob)["Plaintext"] == b"still here"
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyState"] == "Enabled"


def test_deletion_takes_grants_along(clock_server):
    iam = clock_server.client_for("iam", ROOT)
    kms = clock_server.client_for("kms", ROOT)
    name = uid("grantee")
    iam.create_user(UserName=name)
    grantee_arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    k = new_key(kms)
    kms.create_grant(KeyId=k["KeyId"], GranteePrincipal=grantee_arn, RetiringPrincipal=grantee_arn, Operations=["Decrypt"])
    assert len(kms.list_retirable_grants(RetiringPrincipal=grantee_arn)["Grants"]) == 1
    kms.schedule_key_deletion(KeyId=k["KeyId"], PendingWindowInDays=30)
    assert clock_server.advance_clock(31 * DAY)["deleted"] == 1
    assert kms.list_retirable_grants(RetiringPrincipal=grantee_arn)["Grants"] == []
    assert kms_error(kms.list_grants, KeyId=k["KeyId"])[0] == "NotFoundException"


# =============================================================================================
# 9. a restart in the middle


def test_kms_state_survives_a_restart(clock_server):
    srv = clock_server
    iam = srv.client_for("iam", ROOT)
    kms = srv.client_for("kms", ROOT)
    name = uid("grantee")
    iam.create_user(UserName=name)
    ak = iam.create_access_key(UserName=name)["AccessKey"]
    grantee = Creds(ak["AccessKeyId"], ak["SecretAccessKey"])
    grantee_arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"

    sym_k = new_key(kms, Description="kept", Tags=[{"TagKey": "keep", "TagValue": "yes"}])
    sid = sym_k["KeyId"]
    alias = "alias/" + uid("kept")
    kms.create_alias(AliasName=alias, TargetKeyId=sid)
    ctx = {"restart": "test"}
    blob0 = kms.encrypt(KeyId=alias, Plaintext=b"before rotation", EncryptionContext=ctx)["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=sid)
    blob1 = kms.encrypt(KeyId=sid, Plaintext=b"after rotation", EncryptionContext=ctx)["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=sid, RotationPeriodInDays=100)
    rotation = kms.get_key_rotation_status(KeyId=sid)
    gid = kms.create_grant(
        KeyId=sid, GranteePrincipal=grantee_arn, Operations=["Decrypt"], Constraints={"EncryptionContextSubset": ctx}
    )["GrantId"]
    assert srv.client_for("kms", grantee).decrypt(CiphertextBlob=blob0, EncryptionContext=ctx)["Plaintext"] == b"before rotation"

    ecc = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    pub_der = kms.get_public_key(KeyId=ecc["KeyId"])["PublicKey"]
    sig = kms.sign(KeyId=ecc["KeyId"], Message=b"signed before", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    mac_k = new_key(kms, KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")
    mac = kms.generate_mac(KeyId=mac_k["KeyId"], Message=b"mac before", MacAlgorithm="HMAC_SHA_384")["Mac"]

    doomed = new_key(kms)
    doomed_alias = "alias/" + uid("doomed")
    kms.create_alias(AliasName=doomed_alias, TargetKeyId=doomed["KeyId"])
    deletion = kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=10)["DeletionDate"]
    off = new_key(kms)
    kms.disable_key(KeyId=off["KeyId"])
    custom = new_key(
        kms,
        Policy=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Sid": "root", "Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "kms:*", "Resource": "*"}]},
            indent=1,
        ),
    )
    custom_policy = kms.get_key_policy(KeyId=custom["KeyId"])["Policy"]
    listed = sorted(k["KeyId"] for k in kms.list_keys()["Keys"])

    srv.restart()  # SIGTERM (exit 0 asserted), same data dir, same --test-clock
    kms = srv.client_for("kms", ROOT)

    assert sorted(k["KeyId"] for k in kms.list_keys()["Keys"]) == listed
    md = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert (md["KeyId"], md["Description"], md["KeyState"]) == (sid, "kept", "Enabled")
    assert tag_dict(kms, sid) == {"keep": "yes"}
    assert kms.decrypt(CiphertextBlob=blob0, EncryptionContext=ctx)["Plaintext"] == b"before rotation"
    assert kms.decrypt(CiphertextBlob=blob1, EncryptionContext=ctx)["Plaintext"] == b"after rotation"
    assert kms.encrypt(KeyId=ALIAS_ARN + alias, Plaintext=b"x")["KeyId"] == sym_k["Arn"]
    assert kms.get_key_rotation_status(KeyId=sid) | {"ResponseMetadata": None} == rotation | {"ResponseMetadata": None}
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=sid)["Rotations"]] == ["ON_DEMAND"]
    # the grant still works for the grantee, whose key also survived
    g = srv.client_for("kms", grantee)
    assert g.decrypt(CiphertextBlob=blob1, EncryptionContext=ctx)["Plaintext"] == b"after rotation"
    assert kms_error(g.encrypt, KeyId=sid, Plaintext=b"x", EncryptionContext=ctx)[0] == "AccessDeniedException"
    assert [x["GrantId"] for x in kms.list_grants(KeyId=sid)["Grants"]] == [gid]
    # asymmetric and HMAC material
    assert kms.get_public_key(KeyId=ecc["KeyId"])["PublicKey"] == pub_der
    assert kms.verify(KeyId=ecc["KeyId"], Message=b"signed before", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True
    sig2 = kms.sign(KeyId=ecc["KeyId"], Message=b"signed after", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    serialization.load_der_public_key(pub_der).verify(sig2, b"signed after", ec.ECDSA(hashes.SHA256()))
    assert kms.generate_mac(KeyId=mac_k["KeyId"], Message=b"mac before", MacAlgorithm="HMAC_SHA_384")["Mac"] == mac
    # states
    md = kms.describe_key(KeyId=doomed_alias)["KeyMetadata"]
    assert (md["KeyState"], md["DeletionDate"], md["PendingDeletionWindowInDays"]) == ("PendingDeletion", deletion, 10)
    assert kms.describe_key(KeyId=off["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    assert kms.get_key_policy(KeyId=custom["KeyId"])["Policy"] == custom_policy
    assert kms.get_key_policy(KeyId=sid)["Policy"] == default_policy()

    # the deletion still happens when its date comes (the test clock restarted at the wall clock)
    out = srv.advance_clock(11 * DAY)
    assert (out["deleted"], out["rotated"]) == (1, 0), out
    assert kms_error(kms.describe_key, KeyId=doomed["KeyId"])[0] == "NotFoundException"
    assert kms_error(kms.describe_key, KeyId=doomed_alias)[0] == "NotFoundException"
    assert kms.decrypt(CiphertextBlob=blob0, EncryptionContext=ctx)["Plaintext"] == b"before rotation"


# =============================================================================================
# 10. authentication errors


def test_kms_authentication_errors(server, kms, sym):
    wrong_secret = server.client_for("kms", Creds(ROOT_KEY_ID, "W" * 40))
    assert expect_error(wrong_secret.encrypt, KeyId=sym["KeyId"], Plaintext=b"x") == (
        "InvalidSignatureException",
        SIG_TEXT,
        400,
    )
    unknown = server.client_for("kms", Creds("AKIAUNKNOWNUNKNOWN00", "U" * 40))
    assert expect_error(unknown.describe_key, KeyId=sym["KeyId"]) == ("UnrecognizedClientException", INVALID_TOKEN, 400)

    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.NoSuchOp"}
    status, hdrs, body = signed_request(server.endpoint, ROOT, "kms", b"{}", headers=headers)
    assert status == 400
    assert hdrs["Content-Type"] == "application/x-amz-json-1.1"
    err = json.loads(body)
    assert err["__type"] == "UnknownOperationException"
    # the same unknown operation with a bad signature is an authentication error first
    status, _, body = signed_request(server.endpoint, Creds(ROOT_KEY_ID, "W" * 40), "kms", b"{}", headers=headers)
    assert (status, json.loads(body)["__type"]) == (400, "InvalidSignatureException")
    # a real operation through the raw path works
    headers["X-Amz-Target"] = "TrentService.DescribeKey"
    status, _, body = signed_request(server.endpoint, ROOT, "kms", json.dumps({"KeyId": sym["KeyId"]}), headers=headers)
    assert status == 200
    assert json.loads(body)["KeyMetadata"]["Arn"] == sym["Arn"]
