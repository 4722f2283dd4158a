"""The walkthrough (../shared/seed/walkthrough.md) done entirely by clicking in Coffer's web
console, in headless Chromium: every action goes through the browser; boto3 and the data dir
are only read afterwards, to confirm what the pages showed.

1. root creates an extra user Key-Admin-<uid> on the Create user page (console password, no
   policies), then the customer managed key in the wizard (alias, description, tags, that user
   ticked as key administrator and as key user), reviewing the generated key policy (AWS's four
   console statements) and checking the key page lists the user as administrator and key user;
2. creates the bucket with default SSE-KMS under that key;
3. uploads encryption-test-file.txt and reads its encryption in the object's properties;
4. creates S3-Admin-User and S3-KMS-Admin-User with console passwords and AmazonS3FullAccess;
   S3-Admin-User signs in and is denied opening the object (kms:Decrypt);
5. root adds S3-KMS-Admin-User as a key user; that user opens and downloads the file;
6. root cleans up: object, bucket, the three users (Key-Admin-<uid> too, though the key's policy
   still names it: IAM allows that), and schedules the key's deletion (7 days).

Screenshots of the key pages and of the denial go to $COFFER_SCREENSHOTS or
<repo>/target/console-screenshots/ (walkthrough-*.png).
"""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid

import pytest
from botocore.exceptions import ClientError

pytest.register_assert_rewrite("console_helpers")

from console_helpers import (  # noqa: E402
    ConsoleBrowser,
    json_of_text,
    needs_browser,
    principals,
    statements_by_sid,
)
from e2e_helpers import ACCOUNT, REGION, ROOT, uid  # noqa: E402

pytest_plugins = ["console_helpers"]
pytestmark = needs_browser

ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
S3_FULL = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
ENABLE_IAM = "Enable IAM User Permissions"
ADMINS = "Allow access for Key Administrators"
USE = "Allow use of the key"
GRANTS = "Allow attachment of persistent resources"
CONSOLE_SIDS = {ENABLE_IAM, ADMINS, USE, GRANTS}
KEY_USER_ACTIONS = {"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"}
GRANT_ACTIONS = {"kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"}
FILE_NAME = "encryption-test-file.txt"


def _actions(statement: dict) -> set[str]:
    a = statement.get("Action", [])
    return {a} if isinstance(a, str) else set(a)


def _shot(b: ConsoleBrowser, n: int, what: str):
    b.screenshot(f"walkthrough-{n:02d}-{what}")


def _open_object_page(b: ConsoleBrowser, bucket: str, key: str):
    """From any signed-in page: S3 nav -> the bucket -> the object's properties, by clicking."""
    b.nav("s3")
    b.wait_for("buckets")
    b.click_row_link(f'table#buckets tr[data-bucket="{bucket}"]', "bucket-link", f"open bucket {bucket}")
    b.wait_for("objects")
    b.click_row_link(f'table#objects tr.object[data-key="{key}"]', "object-link", f"open object {key}")
    b.wait_for("object-sse")
    assert b.text("object-key") == key, f"#object-key is {b.text('object-key')!r}, expected {key!r}"


def _open_key_page(b: ConsoleBrowser, key_id: str):
    b.nav("kms")
    b.wait_for("keys")
    b.click_row_link(f'table#keys tr[data-key-id="{key_id}"]', "key-link", f"open key {key_id}")
    b.wait_for("key-state")
    assert b.text("key-id") == key_id, f"#key-id is {b.text('key-id')!r}, expected {key_id!r}"


def _create_user(b: ConsoleBrowser, name: str, password: str, policies: tuple[str, ...] = ("AmazonS3FullAccess",)):
    b.nav("iam")
    b.wait_for("users")
    b.click_and_wait("create-user", "open the create-user form")
    b.wait_for("create-user-form")
    b.fill("new-username", name)
    b.set_checked("console-access", True)
    b.fill("new-password", password)
    if b.has("create-access-key"):
        b.set_checked("create-access-key", False)  # console password only, as in the walkthrough
    for box in b.css('#create-user-form input[type=checkbox][name="policy"]'):
        if box.is_selected():  # only the policies asked for
            b.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
            box.click()
    for policy in policies:
        b.set_checked(f"policy-{policy}", True)
    chosen = sorted(box.get_attribute("value") for box in b.css('#create-user-form input[name="policy"]:checked'))
    assert chosen == sorted(f"arn:aws:iam::aws:policy/{p}" for p in policies), (
        f"create user {name}: the form would attach {chosen}, asked for {list(policies)}"
    )
    b.click_and_wait("create-user-button", f"create user {name}")
    b.assert_no_error(f"create user {name}")
    got = b.wait_for("created-user").text.strip()
    assert name in got, f"#created-user shows {got!r}, expected the new user {name!r}"
    assert not b.has("new-secret-access-key"), "no access key was asked for, yet a secret is shown"


def _delete_user(b: ConsoleBrowser, name: str):
    b.nav("iam")
    b.wait_for("users")
    b.click_row_link(f'table#users tr[data-user="{name}"]', "user-link", f"open user {name}")
    b.wait_for("delete-user")
    assert b.text("user-arn") == f"arn:aws:iam::{ACCOUNT}:user/{name}"
    b.fill("delete-confirm", name)
    b.click_and_wait("delete-user-button", f"delete user {name}")
    b.assert_no_error(f"delete user {name}")
    assert urllib.parse.urlsplit(b.driver.current_url).path == "/console/iam/users", (
        f"after deleting {name} expected /console/iam/users, got {b.driver.current_url}"
    )
    assert not b.css(f'table#users tr[data-user="{name}"]'), f"user {name} is still listed after deletion"


def test_console_walkthrough(browser: ConsoleBrowser, server, tmp_path):
    b = browser
    s3 = server.client_for("s3", ROOT)
    kms = server.client_for("kms", ROOT)
    iam = server.client_for("iam", ROOT)

    token = uuid.uuid4().hex
    alias = f"alias/console-walkthrough-{token[:10]}"
    bucket = f"console-walkthrough-{token[:12]}"
    admin_user = uid("S3-Admin-User")
    kms_user = uid("S3-KMS-Admin-User")
    key_admin = uid("Key-Admin")  # created before the key: its administrator and first key user
    admin_arn = f"arn:aws:iam::{ACCOUNT}:user/{admin_user}"
    key_admin_arn = f"arn:aws:iam::{ACCOUNT}:user/{key_admin}"
    kms_user_arn = f"arn:aws:iam::{ACCOUNT}:user/{kms_user}"
    passwords = {
        admin_user: f"Walk-{token[:8]}-Admin!9",
        kms_user: f"Walk-{token[8:16]}-Kms!9",
        key_admin: f"Walk-{token[16:24]}-KeyAdm!9",
    }
    # the walkthrough's content, plus a marker to look for in the data dir
    content = f"kms encryption test file ({token})\n"
    local_file = tmp_path / FILE_NAME
    local_file.write_bytes(content.encode())

    key_id = key_arn = None
    finished = False
    try:
        # -- 1. root signs in with its access key pair, creates the key's administrator and the key
        b.sign_in_root(server.endpoint, ROOT.key, ROOT.secret)
        _create_user(b, key_admin, passwords[key_admin], policies=())
        b.nav("kms")
        b.wait_for("keys")
        b.click_and_wait("create-key", "open the create-key wizard")
        b.wait_for("create-key-form")
        assert b.selected_value("key-spec") == "SYMMETRIC_DEFAULT", "the wizard's default key spec"
        assert b.selected_value("key-usage") == "ENCRYPT_DECRYPT", "the wizard's default key usage"
        b.fill("alias", alias)
        b.fill("description", "Coffer console walkthrough: S3 default encryption key")
        b.fill("tag-key-0", "Project")
        b.fill("tag-value-0", "console-walkthrough")
        b.fill("tag-key-1", "Owner")
        b.fill("tag-value-1", "e2e")
        # Key-Admin-<uid> as the only key administrator and the only key user
        for box in b.css('#create-key-form input[type=checkbox][name="user"], #create-key-form input[type=checkbox][name="admin"]'):
            if box.is_selected():
                b.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
                box.click()
        for role in ("admin", "user"):
            box = b.find(f"{role}-{key_admin}")
            assert box.get_attribute("name") == role and box.get_attribute("value") == key_admin_arn, (
                f"input#{role}-{key_admin}: name {box.get_attribute('name')!r}, value {box.get_attribute('value')!r}"
            )
            b.set_checked(f"{role}-{key_admin}", True)
        assert b.find("admin-delete").is_selected(), "input#admin-delete should be checked by default"
        fields = b.form_fields("create-key-form")
        assert [v for k, v in fields if k == "admin"] == [key_admin_arn], f"the wizard would send admins {fields}"
        assert [v for k, v in fields if k == "user"] == [key_admin_arn], f"the wizard would send users {fields}"
        b.click_and_wait("review-button", "review the key")
        b.assert_no_error("review the key")
        b.wait_for("create-key-review")
        policy = json_of_text(b.value("policy"), "the review page's textarea#policy")
        statements = policy.get("Statement")
        assert isinstance(statements, list), f"the generated policy's Statement is not a list: {policy}"
        assert [st.get("Sid") for st in statements] == [ENABLE_IAM, ADMINS, USE, GRANTS], (
            f"the generated key policy's statements: {[st.get('Sid') for st in statements]}"
        )
        sids = statements_by_sid(policy)
        assert principals(sids[ENABLE_IAM]) == [ROOT_ARN], sids[ENABLE_IAM]
        assert _actions(sids[ENABLE_IAM]) == {"kms:*"}, sids[ENABLE_IAM]
        for sid in (ADMINS, USE, GRANTS):
            st = sids[sid]
            assert principals(st) == [key_admin_arn], f"{sid!r} should name only {key_admin_arn}: {st}"
            assert st.get("Effect") == "Allow" and st.get("Resource") == "*", st
        # admin_delete is on: the administrators may also schedule and cancel the deletion
        assert {"kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"} <= _actions(sids[ADMINS]), sids[ADMINS]
        # the key users' statements exactly as AWS's console writes them for a symmetric key
        assert _actions(sids[USE]) == KEY_USER_ACTIONS, sids[USE]
        assert "Condition" not in sids[USE], sids[USE]
        assert _actions(sids[GRANTS]) == GRANT_ACTIONS, sids[GRANTS]
        assert sids[GRANTS].get("Condition") == {"Bool": {"kms:GrantIsForAWSResource": "true"}}, sids[GRANTS]
        b.click_and_wait("finish-button", "create the key")
        b.assert_no_error("create the key")
        key_id = b.wait_for("key-id").text.strip()
        key_arn = b.text("key-arn")
        assert key_arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}", f"#key-arn {key_arn!r} for #key-id {key_id!r}"
        assert b.current_path == f"/console/kms/keys/{key_id}", f"the wizard ends on {b.driver.current_url}"
        assert b.text("key-state") == "Enabled"
        assert b.text("key-spec") == "SYMMETRIC_DEFAULT"
        assert b.text("key-usage") == "ENCRYPT_DECRYPT"
        assert b.text("key-description") == "Coffer console walkthrough: S3 default encryption key"
        aliases = [li.text.strip() for li in b.css("ul#key-aliases li")]
        assert any(a.startswith(alias) for a in aliases), f"ul#key-aliases {aliases} lacks {alias}"
        tags = {tr.get_attribute("data-tag-key"): tr.text for tr in b.css("table#key-tags tr[data-tag-key]")}
        assert set(tags) == {"Project", "Owner"}, f"table#key-tags rows: {tags}"
        assert "console-walkthrough" in tags["Project"] and "e2e" in tags["Owner"], tags
        page_policy = json_of_text(b.content("policy-document"), "pre#policy-document")
        assert page_policy == policy, f"the key's policy is not the one reviewed: {page_policy}"
        key_admins = [li.get_attribute("data-arn") for li in b.css("ul#key-admins li")]
        key_users = [li.get_attribute("data-arn") for li in b.css("ul#key-users li")]
        assert key_admins == [key_admin_arn], f"ul#key-admins lists {key_admins}, expected [{key_admin_arn}]"
        assert key_users == [key_admin_arn], f"ul#key-users lists {key_users}, expected [{key_admin_arn}]"
        _shot(b, 1, "key-created")
        # the key list shows it
        b.nav("kms")
        row = b.css(f'table#keys tr[data-key-id="{key_id}"]')
        assert row, f"table#keys has no row for {key_id}"
        assert alias in row[0].text and "Enabled" in row[0].text, f"key row: {row[0].text!r}"

        # -- 2. the bucket, with default SSE-KMS under that key ---------------------------------
        b.nav("s3")
        b.wait_for("buckets")
        b.click_and_wait("create-bucket", "open the create-bucket form")
        b.wait_for("create-bucket-form")
        b.fill("bucket-name", bucket)
        assert b.find("enc-sse-s3").is_selected(), "SSE-S3 should be the default encryption choice"
        b.set_checked("enc-sse-kms", True)
        options = dict(b.select_options("kms-key-select"))
        assert key_arn in options, f"select#kms-key-select does not offer {key_arn}: {options}"
        assert alias in options[key_arn] and key_id in options[key_arn], f"option text {options[key_arn]!r}"
        b.select_value("kms-key-select", key_arn)
        b.click_and_wait("create-bucket-button", f"create bucket {bucket}")
        b.assert_no_error(f"create bucket {bucket}")
        assert b.current_path.startswith(f"/console/s3/buckets/{bucket}"), b.driver.current_url
        b.wait_for("objects")

        # -- 3. upload the test file (bucket default encryption) and read its properties ----------
        b.wait_for("upload-form")
        assert b.selected_value("upload-encryption") == "", "the upload's encryption should default to the bucket's"
        status = b.upload(local_file, FILE_NAME)
        assert status == "Upload succeeded", f"upload failed: span#upload-status says {status!r}"
        # the listing is reloaded by the page script; look at it fresh
        b.go(f"/console/s3/buckets/{bucket}")
        assert b.css(f'table#objects tr.object[data-key="{FILE_NAME}"]'), f"{FILE_NAME} is not listed after the upload"
        b.click_row_link(f'table#objects tr.object[data-key="{FILE_NAME}"]', "object-link", "open the object")
        b.wait_for("object-sse")
        assert b.text("object-key") == FILE_NAME
        assert str(len(content)) in b.text("object-size"), f"#object-size {b.text('object-size')!r}, {len(content)} bytes sent"
        assert b.text("object-content-type").startswith("text/plain"), (
            f"#object-content-type is {b.text('object-content-type')!r}; the browser sends text/plain for .txt"
        )
        assert b.text("object-sse") == "aws:kms", f"#object-sse is {b.text('object-sse')!r}"
        assert b.text("object-kms-key") == key_arn, f"#object-kms-key is {b.text('object-kms-key')!r}, expected {key_arn}"
        _shot(b, 2, "object-properties")

        # -- 4. the two users, with console passwords and AmazonS3FullAccess ----------------------
        for name in (admin_user, kms_user):
            _create_user(b, name, passwords[name])
        b.sign_out()

        # S3-Admin-User: may browse S3 but is denied the object (no kms:Decrypt)
        b.sign_in_iam(ACCOUNT, admin_user, passwords[admin_user], endpoint=server.endpoint)
        _open_object_page(b, bucket, FILE_NAME)
        assert b.text("object-sse") == "aws:kms"
        b.click_and_wait("open-object", "S3-Admin-User opens the object")
        err = b.expect_error("AccessDenied", "S3-Admin-User opens the encrypted object")
        assert "kms:Decrypt" in err, f"the denial should name kms:Decrypt: {err!r}"
        assert admin_arn in err, f"the denial should name the user {admin_arn}: {err!r}"
        assert content.strip() not in b.body_text(), "the denied page shows the object's content"
        _shot(b, 3, "s3-admin-user-denied")
        b.close_extra_tabs()
        b.go("/console/kms")
        b.sign_out()

        # -- 5. root adds S3-KMS-Admin-User as a key user ----------------------------------------
        b.sign_in_root(server.endpoint, ROOT.key, ROOT.secret)
        _open_key_page(b, key_id)
        assert not b.css(f'ul#key-users li[data-arn="{kms_user_arn}"]'), "the user is a key user already"
        b.select_value("key-user-select", kms_user_arn)
        b.click_and_wait("add-key-user-button", "add the key user")
        b.assert_no_error("add the key user")
        b.wait_for("key-users")
        assert b.css(f'ul#key-users li[data-arn="{kms_user_arn}"]'), (
            f"ul#key-users lacks {kms_user_arn}: {[li.get_attribute('data-arn') for li in b.css('ul#key-users li')]}"
        )
        assert not b.css(f'ul#key-users li[data-arn="{admin_arn}"]'), "S3-Admin-User must not be a key user"
        key_users = sorted(li.get_attribute("data-arn") for li in b.css("ul#key-users li"))
        assert key_users == sorted([key_admin_arn, kms_user_arn]), f"ul#key-users lists {key_users}"
        key_admins = [li.get_attribute("data-arn") for li in b.css("ul#key-admins li")]
        assert key_admins == [key_admin_arn], f"ul#key-admins lists {key_admins}"
        page_policy = json_of_text(b.content("policy-document"), "pre#policy-document after adding the key user")
        sids = statements_by_sid(page_policy)
        for sid in (ENABLE_IAM, USE, GRANTS):
            assert sid in sids, f"after adding a key user the policy lacks {sid!r}: {sorted(sids)}"
        assert kms_user_arn in principals(sids[USE]) and kms_user_arn in principals(sids[GRANTS]), page_policy
        assert key_admin_arn in principals(sids[USE]) and key_admin_arn in principals(sids[GRANTS]), page_policy
        assert principals(sids[ADMINS]) == [key_admin_arn], page_policy
        assert admin_arn not in b.content("policy-document"), "S3-Admin-User must not be in the key policy"
        assert KEY_USER_ACTIONS <= _actions(sids[USE]), sids[USE]
        assert GRANT_ACTIONS <= _actions(sids[GRANTS]), sids[GRANTS]
        assert sids[GRANTS].get("Condition", {}).get("Bool", {}).get("kms:GrantIsForAWSResource") in (
            "true",
            True,
        ), sids[GRANTS]
        _shot(b, 4, "key-user-added")
        b.sign_out()

        # S3-KMS-Admin-User: opens the object inline, then downloads it
        b.sign_in_iam(ACCOUNT, kms_user, passwords[kms_user], endpoint=server.endpoint)
        _open_object_page(b, bucket, FILE_NAME)
        object_page = b.driver.current_url
        b.click_and_wait("open-object", "S3-KMS-Admin-User opens the object")
        assert b.error_text() is None, f"the key user is denied: {b.error_text()!r}"
        shown = b.body_text()
        assert shown == content.rstrip("\n"), f"the opened object shows {shown!r}, expected {content!r}"
        _shot(b, 5, "s3-kms-admin-user-opens")
        b.close_extra_tabs()
        b.driver.get(object_page)
        b.wait_for("download-object")
        b.clear_downloads()
        b.find("download-object").click()
        downloaded = b.wait_download(FILE_NAME)
        assert downloaded.read_bytes() == content.encode(), (
            f"downloaded {downloaded.read_bytes()!r}, expected {content.encode()!r}"
        )
        b.go("/console/kms")
        b.sign_out()

        # the plaintext never reached the disk: checked while the object is still stored (and was
        # just read back). Its row names the bucket in clear, so finding the bucket name proves
        # the search sees the rows just written (in the log or the database file).
        assert _files_containing(server.data_dir, bucket.encode()), f"bucket {bucket} is in no file of the data dir"
        assert s3.head_object(Bucket=bucket, Key=FILE_NAME)["ContentLength"] == len(content)
        leaked = _files_containing(server.data_dir, token.encode())
        assert not leaked, f"the object's plaintext is on disk in {leaked}"

        # -- 6. root cleans up ----------------------------------------------------------------------
        b.sign_in_root(server.endpoint, ROOT.key, ROOT.secret)
        _open_object_page(b, bucket, FILE_NAME)
        b.click_and_wait("delete-object-button", "delete the object")
        b.assert_no_error("delete the object")
        b.go(f"/console/s3/buckets/{bucket}")
        assert not b.css(f'table#objects tr.object[data-key="{FILE_NAME}"]'), "the object is still listed"
        b.click_and_wait("bucket-properties", "open the bucket's properties")
        b.wait_for("delete-bucket")
        summary = b.text("bucket-encryption-summary")
        assert "aws:kms" in summary or "SSE-KMS" in summary, f"#bucket-encryption-summary: {summary!r}"
        assert key_id in summary or key_arn in summary, f"#bucket-encryption-summary does not name the key: {summary!r}"
        b.click_and_wait("delete-bucket-button", "delete the bucket")
        b.assert_no_error("delete the bucket")
        assert b.current_path == "/console/s3", f"after deleting the bucket: {b.driver.current_url}"
        assert not b.css(f'table#buckets tr[data-bucket="{bucket}"]'), "the bucket is still listed"
        for name in (admin_user, kms_user):
            _delete_user(b, name)
        # the key's policy still names Key-Admin-<uid> (administrator and key user): IAM deletes
        # the user all the same, and the key stays manageable by root
        _delete_user(b, key_admin)
        _open_key_page(b, key_id)
        b.assert_no_error("the key page after deleting its administrator")
        b.fill("pending-days", "7")
        b.click_and_wait("schedule-deletion-button", "schedule the key's deletion")
        b.assert_no_error("schedule the key's deletion")
        b.wait_for("key-state")
        assert b.text("key-state") == "PendingDeletion", f"#key-state is {b.text('key-state')!r}"
        assert b.text("deletion-date"), "#deletion-date is empty"
        assert b.has("cancel-deletion"), "a pending key offers button#cancel-deletion"
        _shot(b, 6, "key-pending-deletion")
        finished = True

        # -- afterwards: the API agrees with what the pages showed -------------------------------
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert meta["KeyState"] == "PendingDeletion", meta
        assert meta["Description"] == "Coffer console walkthrough: S3 default encryption key", meta
        window = meta["DeletionDate"] - meta["CreationDate"]
        assert 6.9 <= window.total_seconds() / 86400 <= 8.0, f"deletion {window} after creation, 7 days asked: {meta}"
        aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]]
        assert alias in aliases, aliases
        tag_list = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
        assert tag_list == {"Project": "console-walkthrough", "Owner": "e2e"}, tag_list
        final_policy = json_of_text(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"], "GetKeyPolicy")
        fsids = statements_by_sid(final_policy)
        assert kms_user_arn in principals(fsids[USE]), final_policy
        assert principals(fsids[ENABLE_IAM]) == [ROOT_ARN], final_policy
        assert set(fsids) == CONSOLE_SIDS, final_policy  # still naming the deleted Key-Admin-<uid>
        assert principals(fsids[ADMINS]) == [key_admin_arn], final_policy
        with pytest.raises(ClientError) as e:
            s3.head_bucket(Bucket=bucket)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        for name in (admin_user, kms_user, key_admin):
            with pytest.raises(ClientError) as e:
                iam.get_user(UserName=name)
            assert e.value.response["Error"]["Code"] == "NoSuchEntity", name
    finally:
        if not finished:
            _cleanup(s3, kms, iam, bucket, [admin_user, kms_user, key_admin], key_id)


def _files_containing(root, needle: bytes) -> list[str]:
    found = []
    for p in root.rglob("*"):
        try:
            if p.is_file() and needle in p.read_bytes():
                found.append(str(p))
        except OSError:  # a temporary file gone meanwhile
            pass
    return found


def _cleanup(s3, kms, iam, bucket, users, key_id):
    """Best effort, only when the test failed part-way: leave the shared server tidy."""
    with contextlib.suppress(ClientError):
        for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
    with contextlib.suppress(ClientError):
        s3.delete_bucket(Bucket=bucket)
    for name in users:
        with contextlib.suppress(ClientError):
            iam.delete_login_profile(UserName=name)
        with contextlib.suppress(ClientError):
            for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
                iam.detach_user_policy(UserName=name, PolicyArn=p["PolicyArn"])
        with contextlib.suppress(ClientError):
            for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
        with contextlib.suppress(ClientError):
            iam.delete_user(UserName=name)
    if key_id:
        with contextlib.suppress(ClientError):
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
