"""Security of Coffer's web console: CSRF tokens, sign-out, what a user's policies deny, sign-in
failures and their rate limit, the session cookie's attributes and the Content-Security-Policy.

Browser tests run headless Chromium (see console_helpers); what a browser cannot show (status
codes, Set-Cookie attributes, a request no page would send) is checked with raw HTTP requests
that carry the browser's own session cookie.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
import urllib.parse
import uuid

import pytest
from botocore.exceptions import ClientError

pytest.register_assert_rewrite("console_helpers")

from console_helpers import (  # noqa: E402
    SIGNIN_FAILED,
    TOO_MANY,
    ConsoleBrowser,
    RawConsole,
    RawResponse,
    csp_directives,
    form_field,
    needs_browser,
    raw_request,
)
from e2e_helpers import ACCOUNT, ROOT, uid  # noqa: E402

pytest_plugins = ["console_helpers"]

ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
S3_READ_ONLY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


def _bucket_exists(s3, name: str) -> bool:
    try:
        s3.head_bucket(Bucket=name)
        return True
    except ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


def _signin_redirect(r: RawResponse) -> bool:
    # CONSOLE_CONTRACT.md: not signed in -> 303 redirect to /console/signin
    return r.status == 303 and r.location_path == "/console/signin"


def _assert_csp(r: RawResponse, what: str):
    csp = r.header("Content-Security-Policy")
    assert csp, f"{what}: no Content-Security-Policy header (status {r.status})"
    d = csp_directives(csp)
    script = d.get("script-src", d.get("default-src"))
    assert script is not None, f"{what}: the CSP restricts no scripts (no script-src nor default-src): {csp!r}"
    assert "'unsafe-inline'" not in script, f"{what}: script-src allows 'unsafe-inline': {csp!r}"
    assert "*" not in script, f"{what}: script-src allows any origin: {csp!r}"


def _assert_no_inline_script(html_text: str, what: str):
    inline = [
        m.group(0)
        for m in re.finditer(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", html_text, re.I)
        if not re.search(r"\btype\s*=\s*[\"']?application/(ld\+)?json", m.group(0), re.I)  # data, not code
    ]
    assert not inline, f"{what}: inline <script> blocks (the CSP would block them): {inline}"
    handlers = [
        a
        for tag in re.findall(r"<[a-zA-Z][^>]*>", html_text)
        for a in re.findall(r"\s(on[a-z]+)\s*=", tag, re.I)
    ]
    assert not handlers, f"{what}: inline event handler attributes (the CSP would block them): {handlers}"


@contextlib.contextmanager
def _attacker_site(html_text: str):
    """Serves one page at http://localhost:<port>/ (a different site from 127.0.0.1)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html_text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://localhost:{srv.server_port}/"
    finally:
        srv.shutdown()
        srv.server_close()


# -----------------------------------------------------------------------------------------------
# (a) CSRF


@needs_browser
def test_form_post_without_csrf_is_refused(browser: ConsoleBrowser, server):
    b = browser
    s3 = server.client_for("s3", ROOT)
    names = {k: f"console-csrf-{k}-{uuid.uuid4().hex[:10]}" for k in ("removed", "wrong", "raw", "xsite", "ok")}
    try:
        b.sign_in_root(server.endpoint, ROOT.key, ROOT.secret)

        # 1. the create-bucket form, submitted by the browser with its csrf field removed
        b.go("/console/s3/create")
        b.wait_for("create-bucket-form")
        b.fill("bucket-name", names["removed"])
        removed = b.driver.execute_script(
            "const f = arguments[0]; const c = f.querySelectorAll('input[name=csrf]');"
            "c.forEach(e => e.remove()); return c.length;",
            b.find("create-bucket-form"),
        )
        assert removed == 1, f"form#create-bucket-form has {removed} csrf fields, expected one"
        b.click_and_wait("create-bucket-button", "submit without csrf")
        err = b.error_text()
        assert err and "InvalidCsrfToken" in err, f"a form without csrf: div#error is {err!r}"

        # 2. ... and with a wrong token
        b.go("/console/s3/create")
        b.wait_for("create-bucket-form")
        b.fill("bucket-name", names["wrong"])
        b.driver.execute_script(
            "const c = arguments[0].querySelector('input[name=csrf]'); c.value = 'x' + c.value.split('').reverse().join('');",
            b.find("create-bucket-form"),
        )
        b.click_and_wait("create-bucket-button", "submit with a wrong csrf")
        err = b.error_text()
        assert err and "InvalidCsrfToken" in err, f"a form with a wrong csrf: div#error is {err!r}"

        # 3. raw POSTs with the browser's session cookie: the status is 403
        b.go("/console/s3/create")
        b.wait_for("create-bucket-form")
        b.fill("bucket-name", names["raw"])
        fields = b.form_fields("create-bucket-form")
        action = b.form_action("create-bucket-form")
        assert any(k == "csrf" and v for k, v in fields), f"form#create-bucket-form sends no csrf: {fields}"
        cookies = b.cookies()
        assert "coffer_session" in cookies, f"no coffer_session cookie in the browser: {sorted(cookies)}"
        no_csrf = [(k, v) for k, v in fields if k != "csrf"]
        r = raw_request("POST", action, form=no_csrf, cookies=cookies)
        assert r.status == 403, f"POST {action} without csrf answered {r.status}: {r.body[:500]}"
        assert "InvalidCsrfToken" in (r.error_text() or ""), f"the 403 page's div#error: {r.error_text()!r}"
        r = raw_request("POST", action, form=no_csrf + [("csrf", "")], cookies=cookies)
        assert r.status == 403, f"POST {action} with an empty csrf answered {r.status}"
        # a token is bound to its session: a token of another session does not do
        other = RawConsole(server.endpoint)
        assert other.sign_in_root(ROOT.key, ROOT.secret).status == 303
        other_token = form_field(other.get("/console/s3/create").body, "create-bucket-form", "csrf")
        assert other_token, "the other session's create-bucket form has an empty csrf field"
        r = raw_request("POST", action, form=no_csrf + [("csrf", other_token)], cookies=cookies)
        assert r.status == 403, f"POST {action} with another session's csrf answered {r.status}"

        # the genuine form works (the refusals were about the token, nothing else)
        b.go("/console/s3/create")
        b.wait_for("create-bucket-form")
        b.fill("bucket-name", names["ok"])
        b.click_and_wait("create-bucket-button", "create a bucket with the genuine form")
        b.assert_no_error("the genuine form")
        assert _bucket_exists(s3, names["ok"]), "the genuine form did not create its bucket"

        # 4. (last: it may leave the browser on the sign-in page) a cross-site page's forged form:
        # the SameSite=Strict cookie stays home, and the form has no token anyway; the browser
        # ends on the sign-in page or the 403 page
        forged = (
            "<!doctype html><title>win a prize</title>"
            f'<form id="forged" method="post" action="{action}">'
            f'<input type="hidden" name="bucket" value="{names["xsite"]}">'
            '<input type="hidden" name="encryption" value="AES256">'
            '<button id="forged-button" type="submit">claim</button></form>'
        )
        with _attacker_site(forged) as evil:
            b.driver.get(evil)
            b.wait_for("forged-button")
            b.click_and_wait("forged-button", "submit the cross-site form")
        landed = urllib.parse.urlsplit(b.driver.current_url)
        err = b.error_text() or ""
        assert landed.path == "/console/signin" or "InvalidCsrfToken" in err, (
            f"the cross-site form led to {b.driver.current_url} with div#error {err!r}"
        )

        for k in ("removed", "wrong", "raw", "xsite"):
            assert not _bucket_exists(s3, names[k]), f"the forged request ({k}) created bucket {names[k]}"
    finally:
        for n in names.values():
            with contextlib.suppress(ClientError):
                s3.delete_bucket(Bucket=n)


# -----------------------------------------------------------------------------------------------
# (b) sign-out


@needs_browser
def test_signed_out_cookie_no_longer_works(browser: ConsoleBrowser, server):
    b = browser
    s3 = server.client_for("s3", ROOT)
    bucket = f"console-signout-{uuid.uuid4().hex[:10]}"

    b.sign_in_root(server.endpoint, ROOT.key, ROOT.secret)
    old = b.session_cookie()
    assert old, "no coffer_session cookie after signing in"
    assert "coffer_session" not in (b.driver.execute_script("return document.cookie;") or ""), (
        "the session cookie is readable by page scripts (not HttpOnly)"
    )
    cookies = {"coffer_session": old}

    # the cookie works before sign-out
    r = raw_request("GET", server.endpoint + "/console/kms", cookies=cookies)
    assert r.status == 200 and ROOT_ARN in r.body, f"GET /console/kms with the live cookie: {r.status}"
    # a form, as the page offers it (with its token), kept for a replay after sign-out
    b.go("/console/s3/create")
    b.wait_for("create-bucket-form")
    b.fill("bucket-name", bucket)
    fields = b.form_fields("create-bucket-form")
    action = b.form_action("create-bucket-form")

    b.sign_out()

    for path in ("/console/kms", "/console/s3", "/console/iam/users", f"/console/s3/buckets/{bucket}"):
        r = raw_request("GET", server.endpoint + path, cookies=cookies)
        assert _signin_redirect(r), (
            f"GET {path} with the signed-out cookie answered {r.status} -> {r.header('Location')!r}, "
            "expected a redirect to /console/signin"
        )
    r = raw_request("POST", action, form=fields, cookies=cookies)
    assert _signin_redirect(r), (
        f"POST {action} with the signed-out cookie and its old token answered {r.status} -> "
        f"{r.header('Location')!r}, expected a redirect to /console/signin"
    )
    assert not _bucket_exists(s3, bucket), "the signed-out session created a bucket"

    # the browser, given the old cookie back, is still asked to sign in
    b.driver.add_cookie({"name": "coffer_session", "value": old, "path": "/console", "httpOnly": True, "sameSite": "Strict"})
    b.go("/console/kms")
    assert urllib.parse.urlsplit(b.driver.current_url).path == "/console/signin", (
        f"the old cookie still opens {b.driver.current_url}"
    )

    # a new sign-in gets a new session, not the old one back
    b.driver.delete_cookie("coffer_session")
    b.sign_in_root(server.endpoint, ROOT.key, ROOT.secret)
    assert b.session_cookie() not in (None, old), "signing in again reused the signed-out session id"


# -----------------------------------------------------------------------------------------------
# (c) what a user's policies deny


@needs_browser
def test_read_only_user_cannot_see_or_change_what_is_denied(browser: ConsoleBrowser, server, tmp_path):
    b = browser
    iam = server.client_for("iam", ROOT)
    s3 = server.client_for("s3", ROOT)
    user = uid("console-ro")
    other = uid("console-other")
    password = f"Ro-{uuid.uuid4().hex[:10]}-9!"
    bucket = f"console-ro-{uuid.uuid4().hex[:10]}"
    denied_bucket = f"console-ro-new-{uuid.uuid4().hex[:8]}"
    try:
        iam.create_user(UserName=user)
        iam.create_login_profile(UserName=user, Password=password)
        iam.attach_user_policy(UserName=user, PolicyArn=S3_READ_ONLY)
        iam.create_user(UserName=other)
        other_key = iam.create_access_key(UserName=other)["AccessKey"]["AccessKeyId"]
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="keep.txt", Body=b"keep me\n")

        b.sign_in_iam(ACCOUNT, user, password, endpoint=server.endpoint)
        # the landing page lists KMS keys, which AmazonS3ReadOnlyAccess does not allow
        err = b.expect_error("AccessDenied", "the read-only user's KMS page")
        assert re.search(r"kms:List(Keys|Aliases)", err), f"the denial should name kms:ListKeys: {err!r}"
        assert not b.css("table#keys tr[data-key-id]"), "the read-only user sees KMS keys"

        # S3: may list, may not create a bucket
        b.nav("s3")
        b.wait_for("buckets")
        assert b.css(f'table#buckets tr[data-bucket="{bucket}"]'), "s3:ListAllMyBuckets is allowed: the bucket should be listed"
        b.click_and_wait("create-bucket", "open the create-bucket form")
        b.wait_for("create-bucket-form")
        b.fill("bucket-name", denied_bucket)
        b.click_and_wait("create-bucket-button", "create a bucket (denied)")
        err = b.expect_error("AccessDenied", "the read-only user creates a bucket")
        assert "s3:CreateBucket" in err, f"the denial should name s3:CreateBucket: {err!r}"
        assert f"user/{user}" in err, f"the denial should name the user: {err!r}"
        assert not _bucket_exists(s3, denied_bucket), "the read-only user created a bucket"

        # may not upload into a bucket it can read
        b.nav("s3")
        b.click_row_link(f'table#buckets tr[data-bucket="{bucket}"]', "bucket-link", "open the bucket")
        b.wait_for("objects")
        f = tmp_path / "denied-upload.txt"
        f.write_text("should not be stored\n")
        status = b.upload(f, f.name)
        assert status.startswith("AccessDenied"), f"the read-only user's upload: span#upload-status says {status!r}"
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key=f.name)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, "the denied upload was stored"

        # may see an object's properties, may not delete it
        b.go(f"/console/s3/buckets/{bucket}")
        b.click_row_link('table#objects tr.object[data-key="keep.txt"]', "object-link", "open keep.txt")
        b.wait_for("object-sse")
        b.click_and_wait("delete-object-button", "delete the object (denied)")
        err = b.expect_error("AccessDenied", "the read-only user deletes an object")
        assert "s3:DeleteObject" in err, f"the denial should name s3:DeleteObject: {err!r}"
        assert s3.get_object(Bucket=bucket, Key="keep.txt")["Body"].read() == b"keep me\n", "the object was deleted"

        # IAM: the users list is denied, and shows no user
        b.nav("iam")
        err = b.expect_error("AccessDenied", "the read-only user's IAM users page")
        assert "iam:ListUsers" in err, f"the denial should name iam:ListUsers: {err!r}"
        assert not b.css("table#users tr[data-user]"), "the read-only user sees IAM users"
        assert other not in b.driver.page_source, "the read-only user's page names another user"
        # nor another user's page
        b.go(f"/console/iam/users/{other}")
        err = b.expect_error("AccessDenied", "the read-only user opens another user's page")
        assert re.search(r"iam:(GetUser|List\w+)", err), f"the denial should name iam:GetUser: {err!r}"
        assert other_key not in b.driver.page_source, "the read-only user sees another user's access key id"
        assert not b.css("table#access-keys tr[data-access-key-id]"), "the read-only user sees access keys"
        iam.get_user(UserName=other)  # still there
    finally:
        with contextlib.suppress(ClientError):
            for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=o["Key"])
        for n in (bucket, denied_bucket):
            with contextlib.suppress(ClientError):
                s3.delete_bucket(Bucket=n)
        with contextlib.suppress(ClientError):
            iam.delete_login_profile(UserName=user)
        with contextlib.suppress(ClientError):
            iam.detach_user_policy(UserName=user, PolicyArn=S3_READ_ONLY)
        for n in (user, other):
            with contextlib.suppress(ClientError):
                for k in iam.list_access_keys(UserName=n)["AccessKeyMetadata"]:
                    iam.delete_access_key(UserName=n, AccessKeyId=k["AccessKeyId"])
        for n in (user, other):
            with contextlib.suppress(ClientError):
                iam.delete_user(UserName=n)


# -----------------------------------------------------------------------------------------------
# (d) failed sign-ins: one message, then a rate limit (own server: the limiter counts per client
# address, and every test signs in from 127.0.0.1)


@needs_browser
def test_failed_signins_look_alike_and_are_rate_limited(browser: ConsoleBrowser, new_server):
    b = browser
    srv = new_server()
    iam = srv.client_for("iam", ROOT)
    user = "console-signin-user"
    password = f"Right-{uuid.uuid4().hex[:10]}-9!"
    iam.create_user(UserName=user)
    iam.create_login_profile(UserName=user, Password=password)

    def failed_in_browser(what: str):
        assert urllib.parse.urlsplit(b.driver.current_url).path == "/console/signin", (
            f"{what}: left the sign-in page for {b.driver.current_url}"
        )
        err = b.error_text() or ""
        # "<Code>: <Message>" like every div#error, or the bare message
        assert err.endswith(SIGNIN_FAILED), f"{what}: div#error is {err!r}, expected {SIGNIN_FAILED!r}"
        assert not b.has("whoami") and b.session_cookie() is None, f"{what}: signed in anyway"
        return err

    # 1-3, in the browser: wrong password, unknown user, wrong account: the same words
    b.submit_signin_iam(ACCOUNT, user, password + "x", endpoint=srv.endpoint)
    wrong_password = failed_in_browser("wrong password")
    b.submit_signin_iam(ACCOUNT, "no-such-" + user, password)
    unknown_user = failed_in_browser("unknown user")
    b.submit_signin_iam("210987654321", user, password)
    wrong_account = failed_in_browser("wrong account")
    assert wrong_password == unknown_user == wrong_account, "the failures must not say which half was wrong"

    # 4-5, raw: a root sign-in with a wrong secret, then with an unknown key id: 401, same words
    for what, key, secret in (
        ("wrong root secret", ROOT.key, ROOT.secret[:-1] + "X"),
        ("unknown access key", "AKIAE2ENOSUCHKEY0001", ROOT.secret),
    ):
        raw = RawConsole(srv.endpoint)
        r = raw.sign_in_root(key, secret)
        assert r.status == 401, f"{what}: answered {r.status}, expected 401"
        assert r.error_text() == wrong_password, f"{what}: div#error {r.error_text()!r}, not {wrong_password!r}"
        assert r.set_cookie("coffer_session") is None, f"{what}: a session cookie was set"
        _assert_csp(r, f"the failed sign-in page ({what})")

    # 6: five failures from this address: even the right password is refused now
    raw = RawConsole(srv.endpoint)
    r = raw.sign_in_iam(ACCOUNT, user, password)
    assert r.status == 429, f"the 6th sign-in after 5 failures answered {r.status}, expected 429"
    assert TOO_MANY in (r.error_text() or ""), f"the 429 page's div#error: {r.error_text()!r}"
    assert r.set_cookie("coffer_session") is None, "the rate-limited sign-in set a session cookie"
    r = RawConsole(srv.endpoint).sign_in_root(ROOT.key, ROOT.secret)
    assert r.status == 429, f"a root sign-in from the same address answered {r.status}, expected 429"

    # and the browser says so
    b.submit_signin_iam(ACCOUNT, user, password)
    err = b.error_text() or ""
    assert TOO_MANY in err, f"the browser's 7th attempt: div#error is {err!r}"
    assert not b.has("whoami"), "signed in despite the rate limit"

    # the API is not the console: access keys keep working
    assert srv.client_for("sts", ROOT).get_caller_identity()["Arn"] == ROOT_ARN


# -----------------------------------------------------------------------------------------------
# (e) the session cookie and the Content-Security-Policy (raw HTTP: no browser needed)


def _cookie_attrs(line: str) -> dict[str, str]:
    parts = [p.strip() for p in line.split(";")]
    out = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        out[k.strip().lower()] = v.strip()
    return out


def test_session_cookie_attributes_and_csp(server):
    raw = RawConsole(server.endpoint)
    page = raw.get("/console/signin")
    assert page.status == 200, f"GET /console/signin answered {page.status}"
    _assert_csp(page, "GET /console/signin")
    _assert_no_inline_script(page.body, "the sign-in page")

    # not signed in: everything but the sign-in page and the assets redirects there
    r = raw_request("GET", server.endpoint + "/console/kms")
    assert _signin_redirect(r), f"GET /console/kms without a session answered {r.status} -> {r.header('Location')!r}"
    r = raw_request("GET", server.endpoint + "/console/static/app.js")
    assert r.status == 200, f"GET /console/static/app.js answered {r.status}"
    assert "javascript" in (r.header("Content-Type") or ""), r.header("Content-Type")

    r = raw.sign_in_root(ROOT.key, ROOT.secret)
    assert r.status == 303 and r.location_path == "/console/kms", (
        f"root sign-in answered {r.status} -> {r.header('Location')!r}: {r.error_text()!r}"
    )
    line = r.set_cookie("coffer_session")
    assert line, f"no coffer_session in Set-Cookie: {r.set_cookies}"
    attrs = _cookie_attrs(line)
    assert "httponly" in attrs, f"the session cookie is not HttpOnly: {line!r}"
    assert attrs.get("samesite", "").lower() == "strict", f"the session cookie is not SameSite=Strict: {line!r}"
    assert attrs.get("path") == "/console", f"the session cookie's Path: {line!r}"
    assert attrs.get("max-age") == "43200", f"the session cookie's Max-Age: {line!r}"
    value = line.split(";", 1)[0].split("=", 1)[1]
    assert len(value) >= 22, f"the session id looks guessable: {value!r}"

    for path in ("/console/kms", "/console/s3", "/console/iam/users", "/console/kms/create", "/console/s3/create"):
        r = raw.get(path)
        assert r.status == 200, f"GET {path} signed in answered {r.status}: {r.error_text()!r}"
        _assert_csp(r, f"GET {path}")
        _assert_no_inline_script(r.body, path)
    assert ROOT_ARN in raw.get("/console/kms").body, "span#whoami should show the root ARN"


def test_session_cookie_is_secure_under_tls(new_server):
    srv = new_server(args=["--tls-self-signed"])
    assert srv.endpoint.startswith("https://")
    r = RawConsole(srv.endpoint).sign_in_root(ROOT.key, ROOT.secret)
    assert r.status == 303, f"root sign-in over TLS answered {r.status}: {r.error_text()!r}"
    line = r.set_cookie("coffer_session")
    assert line, f"no coffer_session in Set-Cookie: {r.set_cookies}"
    attrs = _cookie_attrs(line)
    assert "secure" in attrs, f"under TLS the session cookie must be Secure: {line!r}"
    assert "httponly" in attrs and attrs.get("samesite", "").lower() == "strict", line
    assert r.header("Strict-Transport-Security") == "max-age=31536000", r.headers
