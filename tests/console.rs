//! The web console over HTTP against the real binary: sign-in, CSRF, sign-out, rate limiting,
//! security headers, and that console actions are authorized as the signed-in principal.
//! (The whole walkthrough by clicking in Chromium is in tests/e2e/test_console.py.)

mod common;

use common::*;
use http::{HeaderMap, HeaderValue, Method};

/// A browser-like client: a cookie jar and the last CSRF token seen.
struct Browser<'a> {
    s: &'a Server,
    cookies: Vec<(String, String)>,
    csrf: String,
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

fn hidden_csrf(body: &str) -> Option<String> {
    let at = body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(body[at..].split('"').next()?.to_string())
}

impl<'a> Browser<'a> {
    fn new(s: &'a Server) -> Self {
        Browser {
            s,
            cookies: vec![],
            csrf: String::new(),
        }
    }

    fn request(&mut self, method: Method, path: &str, body: &str) -> Resp {
        let mut h = HeaderMap::new();
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            h.insert("cookie", HeaderValue::from_str(&c.join("; ")).unwrap());
        }
        if method == Method::POST {
            h.insert(
                "content-type",
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        let r = self.s.send(method, path, h, body.as_bytes(), None);
        for (k, v) in &r.headers {
            if k == "set-cookie" {
                let first = v.split(';').next().unwrap_or("");
                if let Some((name, value)) = first.split_once('=') {
                    self.cookies.retain(|(n, _)| n != name);
                    if !value.is_empty() && !v.contains("Max-Age=0") {
                        self.cookies.push((name.to_string(), value.to_string()));
                    }
                }
            }
        }
        if let Some(t) = hidden_csrf(&r.body) {
            self.csrf = t;
        }
        r
    }

    fn get(&mut self, path: &str) -> Resp {
        self.request(Method::GET, path, "")
    }

    fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        self.request(Method::POST, path, &form(pairs))
    }

    fn sign_in_root(&mut self) -> Resp {
        self.get("/console/signin");
        let csrf = self.csrf.clone();
        self.post(
            "/console/signin",
            &[
                ("kind", "root"),
                ("access_key_id", ROOT_AK),
                ("secret_access_key", ROOT_SK),
                ("csrf", &csrf),
            ],
        )
    }

    fn sign_in_iam(&mut self, account: &str, user: &str, password: &str) -> Resp {
        self.get("/console/signin");
        let csrf = self.csrf.clone();
        self.post(
            "/console/signin",
            &[
                ("kind", "iam"),
                ("account", account),
                ("username", user),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
    }
}

fn error_text(body: &str) -> String {
    body.split_once("id=\"error\"")
        .and_then(|(_, r)| r.split_once('>'))
        .and_then(|(_, r)| r.split_once('<'))
        .map(|(t, _)| t.replace("&quot;", "\""))
        .unwrap_or_default()
}

#[test]
fn sign_in_csrf_and_sign_out() {
    let s = Server::start();
    let mut b = Browser::new(&s);
    // Not signed in: every page leads to the sign-in page.
    let r = b.get("/console/kms");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/signin"));

    // The sign-in form's token must come back with the form.
    b.get("/console/signin");
    let r = b.post(
        "/console/signin",
        &[
            ("kind", "root"),
            ("access_key_id", ROOT_AK),
            ("secret_access_key", ROOT_SK),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // A wrong secret and an unknown key id get the same answer.
    for (ak, sk) in [(ROOT_AK, "wrong-secret"), ("AKIANOSUCHKEY0000000", ROOT_SK)] {
        b.get("/console/signin");
        let csrf = b.csrf.clone();
        let r = b.post(
            "/console/signin",
            &[
                ("kind", "root"),
                ("access_key_id", ak),
                ("secret_access_key", sk),
                ("csrf", &csrf),
            ],
        );
        assert_eq!(r.status, 401);
        assert_eq!(
            error_text(&r.body),
            "AuthFailure: Your authentication information is incorrect. Please try again."
        );
    }

    let r = b.sign_in_root();
    assert_eq!(r.status, 303, "{}", r.body);
    let set_cookie = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("coffer_session="))
        .map(|(_, v)| v.clone())
        .expect("session cookie");
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let r = b.get("/console/kms");
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&format!(
        "<span id=\"whoami\" title=\"Signed in as\">arn:aws:iam::{ACCOUNT}:root</span>"
    )));
    let csp = r.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));

    // A form without the session's CSRF token changes nothing.
    let r = b.post(
        "/console/s3/create",
        &[("bucket", "csrf-less"), ("encryption", "AES256")],
    );
    assert_eq!(r.status, 403);
    assert!(error_text(&r.body).starts_with("InvalidCsrfToken"));
    let r = s.s3(
        Method::HEAD,
        "/csrf-less",
        Some(&Signing::new(&Creds::root(), "s3")),
    );
    assert_eq!(r.status, 404);
    let csrf = b.csrf.clone();
    let r = b.post(
        "/console/s3/create",
        &[
            ("bucket", "with-csrf"),
            ("encryption", "AES256"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = s.s3(
        Method::HEAD,
        "/with-csrf",
        Some(&Signing::new(&Creds::root(), "s3")),
    );
    assert_eq!(r.status, 200);

    // Sign-out: the old cookie no longer works.
    let old = b.cookies.clone();
    let csrf = b.csrf.clone();
    let r = b.post("/console/signout", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    let mut replay = Browser::new(&s);
    replay.cookies = old;
    let r = replay.get("/console/s3");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/signin"));
}

#[test]
fn failed_sign_ins_are_rate_limited() {
    let s = Server::start();
    let mut b = Browser::new(&s);
    for _ in 0..5 {
        let r = b.sign_in_iam(ACCOUNT, "nobody", "guess");
        assert_eq!(r.status, 401);
        assert_eq!(
            error_text(&r.body),
            "AuthFailure: Your authentication information is incorrect. Please try again."
        );
    }
    // Even the right credentials are refused for a while now (same client address).
    let r = b.sign_in_root();
    assert_eq!(r.status, 429);
    assert!(error_text(&r.body).contains("Too many sign-in attempts"));
}

#[test]
fn console_actions_are_the_signed_in_users() {
    let s = Server::start();
    let root = Creds::root();
    for (a, p) in [
        ("CreateUser", vec![("UserName", "reader")]),
        (
            "CreateLoginProfile",
            vec![("UserName", "reader"), ("Password", "Reader-passw0rd!")],
        ),
        (
            "AttachUserPolicy",
            vec![
                ("UserName", "reader"),
                ("PolicyArn", "arn:aws:iam::aws:policy/AmazonS3FullAccess"),
            ],
        ),
    ] {
        s.iam(&root, a, &p).expect_ok(a);
    }
    // A bucket whose default encryption is a customer key the user may not use.
    let key = s.kms("CreateKey", "{}", Some(&Signing::new(&root, "kms")));
    let key_arn = key.json()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let s3 = Signing::new(&root, "s3");
    assert_eq!(s.s3(Method::PUT, "/enc-bkt", Some(&s3)).status, 200);
    let cfg = format!(
        "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{key_arn}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
    );
    let r = s.send(
        Method::PUT,
        "/enc-bkt?encryption",
        HeaderMap::new(),
        cfg.as_bytes(),
        Some(&s3),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.send(
        Method::PUT,
        "/enc-bkt/secret.txt",
        HeaderMap::new(),
        b"top secret",
        Some(&s3),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Sign-in by account alias.
    s.iam(
        &root,
        "CreateAccountAlias",
        &[("AccountAlias", "coffer-console-test")],
    )
    .expect_ok("CreateAccountAlias");
    let r = s.iam(&root, "ListAccountAliases", &[]);
    assert_eq!(r.xml("member").as_deref(), Some("coffer-console-test"));
    let r = s.iam(
        &root,
        "CreateAccountAlias",
        &[("AccountAlias", "Bad_Alias")],
    );
    r.expect_query_error(
        400,
        "ValidationError",
        "1 validation error detected: Value 'Bad_Alias' at 'accountAlias' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$",
    );
    let mut b = Browser::new(&s);
    let r = b.sign_in_iam("coffer-console-test", "reader", "Reader-passw0rd!");
    assert_eq!(r.status, 303, "{}", r.body);
    // S3 rights: the object's properties are visible, and show the key.
    let r = b.get("/console/s3/object/enc-bkt?key=secret.txt");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<dd id=\"object-sse\">aws:kms</dd>"));
    assert!(
        r.body
            .contains(&format!("<dd id=\"object-kms-key\">{key_arn}</dd>"))
    );
    // No kms:Decrypt: opening it is denied with KMS's reason, as with the API.
    let r = b.get("/console/s3/open/enc-bkt?key=secret.txt");
    assert_eq!(r.status, 403);
    let e = error_text(&r.body);
    assert!(
        e.starts_with(&format!(
            "AccessDenied: User: arn:aws:iam::{ACCOUNT}:user/reader is not authorized to perform: kms:Decrypt"
        )),
        "{e}"
    );
    assert!(!r.body.contains("top secret"));
    // No IAM rights: the users page says so.
    let r = b.get("/console/iam/users");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        error_text(&r.body).starts_with("AccessDenied"),
        "{}",
        r.body
    );

    // Made a key user (by root, in the console), the user reads the object.
    let mut admin = Browser::new(&s);
    assert_eq!(admin.sign_in_root().status, 303);
    let key_id = key_arn.rsplit('/').next().unwrap().to_string();
    admin.get(&format!("/console/kms/keys/{key_id}"));
    let csrf = admin.csrf.clone();
    let user_arn = format!("arn:aws:iam::{ACCOUNT}:user/reader");
    let r = admin.post(
        &format!("/console/kms/keys/{key_id}/user-add"),
        &[("principal", &user_arn), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let policy = s.kms(
        "GetKeyPolicy",
        &format!("{{\"KeyId\":\"{key_id}\",\"PolicyName\":\"default\"}}"),
        Some(&Signing::new(&root, "kms")),
    );
    let text = policy.json()["Policy"].as_str().unwrap().to_string();
    assert!(
        text.contains("Allow use of the key") && text.contains(&user_arn),
        "{text}"
    );
    let r = b.get("/console/s3/download/enc-bkt?key=secret.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "top secret");
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
}

#[test]
fn console_upload_streams_a_large_file_into_put_object() {
    let s = Server::start();
    let root = Creds::root();
    let s3 = Signing::new(&root, "s3");
    assert_eq!(s.s3(Method::PUT, "/big-bkt", Some(&s3)).status, 200);
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in_root().status, 303);
    b.get("/console/s3/buckets/big-bkt");
    let body: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let mut h = HeaderMap::new();
    let cookie: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    h.insert("cookie", HeaderValue::from_str(&cookie.join("; ")).unwrap());
    h.insert("x-coffer-encryption", HeaderValue::from_static("AES256"));
    h.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    // Without the session's CSRF token the upload is refused and nothing is stored.
    let r = s.send(
        Method::PUT,
        "/console/s3/upload/big-bkt?key=dir/big.bin",
        h.clone(),
        b"small body",
        None,
    );
    assert_eq!(r.status, 403);
    assert!(
        error_text(&r.body).starts_with("InvalidCsrfToken"),
        "{}",
        r.body
    );
    let r = s.s3(Method::HEAD, "/big-bkt/dir/big.bin", Some(&s3));
    assert_eq!(r.status, 404);
    h.insert("x-csrf-token", HeaderValue::from_str(&b.csrf).unwrap());
    let r = s.send(
        Method::PUT,
        "/console/s3/upload/big-bkt?key=dir/big.bin",
        h,
        &body,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.s3(Method::HEAD, "/big-bkt/dir/big.bin", Some(&s3));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("20971520"));
    assert_eq!(r.header("x-amz-server-side-encryption"), Some("AES256"));
    let got = s.send(
        Method::GET,
        "/big-bkt/dir/big.bin",
        HeaderMap::new(),
        b"",
        Some(&s3),
    );
    assert_eq!(got.status, 200);
    // The download through the console streams the same bytes back.
    let r = b.get("/console/s3/download/big-bkt?key=dir/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("20971520"));
    assert!(
        r.body.as_bytes() == body.as_slice(),
        "downloaded bytes differ"
    );
}

#[test]
fn concurrent_failed_sign_ins_cannot_outrun_the_limit() {
    let s = Server::start();
    let mut b = Browser::new(&s);
    b.get("/console/signin");
    let (cookies, csrf) = (b.cookies.clone(), b.csrf.clone());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let (s, cookies, csrf) = (&s, cookies.clone(), csrf.clone());
                scope.spawn(move || {
                    let mut b = Browser::new(s);
                    b.cookies = cookies;
                    let user = if i % 2 == 0 { "Alice" } else { "ALICE" };
                    b.post(
                        "/console/signin",
                        &[
                            ("kind", "iam"),
                            ("account", ACCOUNT),
                            ("username", user),
                            ("password", "wrong-password"),
                            ("csrf", &csrf),
                        ],
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    assert!(evaluated <= 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
}

#[test]
fn a_session_does_not_outlive_its_user() {
    let s = Server::start();
    let root = Creds::root();
    let mk = |admin: bool| {
        s.iam(&root, "CreateUser", &[("UserName", "carol")])
            .expect_ok("CreateUser");
        s.iam(
            &root,
            "CreateLoginProfile",
            &[("UserName", "carol"), ("Password", "Carol-passw0rd!")],
        )
        .expect_ok("CreateLoginProfile");
        if admin {
            s.iam(
                &root,
                "AttachUserPolicy",
                &[
                    ("UserName", "carol"),
                    ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess"),
                ],
            )
            .expect_ok("AttachUserPolicy");
        }
    };
    mk(false);
    let mut b = Browser::new(&s);
    let r = b.sign_in_iam(ACCOUNT, "carol", "Carol-passw0rd!");
    assert_eq!(r.status, 303);
    let r = b.get("/console/iam/users");
    assert_eq!(r.status, 403);
    assert_eq!(
        error_text(&r.body),
        format!(
            "AccessDenied: User: arn:aws:iam::{ACCOUNT}:user/carol is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::{ACCOUNT}:user/ because no identity-based policy allows the iam:ListUsers action"
        )
    );
    // carol is deleted, and another carol, an administrator, is made.
    s.iam(&root, "DeleteLoginProfile", &[("UserName", "carol")])
        .expect_ok("DeleteLoginProfile");
    s.iam(&root, "DeleteUser", &[("UserName", "carol")])
        .expect_ok("DeleteUser");
    mk(true);
    // The first carol's session is not the second carol's: its key went with the first carol.
    let r = b.get("/console/iam/users");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        error_text(&r.body),
        "InvalidClientTokenId: The security token included in the request is invalid."
    );
    assert!(!r.body.contains("data-user=\"carol\""));
}

#[test]
fn objects_are_sandboxed_and_a_bucket_may_be_named_console() {
    let s = Server::start();
    let s3 = Signing::new(&Creds::root(), "s3");
    // Signed requests for /console/… are S3 path-style requests to the bucket "console".
    assert_eq!(s.s3(Method::PUT, "/console", Some(&s3)).status, 200);
    let page = b"<html><script>alert(1)</script></html>";
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("text/html"));
    let r = s.send(Method::PUT, "/console/signin", h, page, Some(&s3));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.send(
        Method::GET,
        "/console/signin",
        HeaderMap::new(),
        b"",
        Some(&s3),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_bytes(), page);
    // A stored page runs no script in the console's origin, whoever opens it.
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    let url = s.presign(&Method::GET, "/console/signin", &s3, 300);
    let r = s.send(Method::GET, &url, HeaderMap::new(), b"", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    // Unsigned, the same path is the console's sign-in page.
    let r = s.send(Method::GET, "/console/signin", HeaderMap::new(), b"", None);
    assert!(r.body.contains("signin-iam"));
}

#[test]
fn a_required_password_change_comes_first() {
    let s = Server::start();
    let root = Creds::root();
    s.iam(&root, "CreateUser", &[("UserName", "dora")])
        .expect_ok("CreateUser");
    s.iam(
        &root,
        "CreateLoginProfile",
        &[
            ("UserName", "dora"),
            ("Password", "First-passw0rd"),
            ("PasswordResetRequired", "true"),
        ],
    )
    .expect_ok("CreateLoginProfile");
    let sign_in = |b: &mut Browser, pw: &str| b.sign_in_iam(ACCOUNT, "dora", pw);
    let mut b = Browser::new(&s);
    assert_eq!(sign_in(&mut b, "First-passw0rd").status, 303);
    let r = b.get("/console/s3");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/change-password"));
    let r = b.get("/console/change-password");
    assert!(r.body.contains("password-reset-notice"));
    let change = |b: &mut Browser, old: &str, new: &str, confirm: &str| {
        let csrf = b.csrf.clone();
        b.post(
            "/console/change-password",
            &[
                ("old_password", old),
                ("new_password", new),
                ("confirm_password", confirm),
                ("csrf", &csrf),
            ],
        )
    };
    // Without iam:ChangePassword the API refuses, as AWS does.
    let r = change(
        &mut b,
        "First-passw0rd",
        "Second-passw0rd",
        "Second-passw0rd",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        error_text(&r.body).starts_with("AccessDenied"),
        "{}",
        r.body
    );
    s.iam(
        &root,
        "AttachUserPolicy",
        &[
            ("UserName", "dora"),
            ("PolicyArn", "arn:aws:iam::aws:policy/IAMUserChangePassword"),
        ],
    )
    .expect_ok("AttachUserPolicy");
    let r = change(
        &mut b,
        "First-passw0rd",
        "Second-passw0rd",
        "Other-passw0rd",
    );
    assert!(error_text(&r.body).starts_with("PasswordMismatch"));
    let r = change(
        &mut b,
        "wrong-password",
        "Second-passw0rd",
        "Second-passw0rd",
    );
    assert_eq!(
        error_text(&r.body),
        "InvalidUserType: The old password is incorrect."
    );
    let r = change(
        &mut b,
        "First-passw0rd",
        "Second-passw0rd",
        "Second-passw0rd",
    );
    assert_eq!(r.status, 303, "{}", r.body);
    // The rest of the console is open now (and says what dora may not do).
    let dora_denied = format!(
        "AccessDenied: User: arn:aws:iam::{ACCOUNT}:user/dora is not authorized to perform: s3:ListAllMyBuckets"
    );
    let r = b.get("/console/s3");
    assert_eq!(r.status, 403);
    assert!(error_text(&r.body).starts_with(&dora_denied), "{}", r.body);
    let r = s.iam(&root, "GetLoginProfile", &[("UserName", "dora")]);
    assert_eq!(r.xml("PasswordResetRequired").as_deref(), Some("false"));
    let mut again = Browser::new(&s);
    let r = sign_in(&mut again, "First-passw0rd");
    assert_eq!(r.status, 401);
    assert_eq!(
        error_text(&r.body),
        "AuthFailure: Your authentication information is incorrect. Please try again."
    );
    assert_eq!(sign_in(&mut again, "Second-passw0rd").status, 303);
    let r = again.get("/console/s3");
    assert_eq!(r.status, 403);
    assert!(error_text(&r.body).starts_with(&dora_denied), "{}", r.body);
    // Root has no IAM user password to change.
    let r = s.iam(
        &root,
        "ChangePassword",
        &[("OldPassword", "x"), ("NewPassword", "Another-passw0rd")],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.xml("Code").as_deref(), Some("InvalidUserType"));
}

#[test]
fn versioned_buckets_from_the_console() {
    let s = Server::start();
    let s3 = Signing::new(&Creds::root(), "s3");
    let mut b = Browser::new(&s);
    assert_eq!(b.sign_in_root().status, 303);
    b.get("/console/s3/create");
    let csrf = b.csrf.clone();
    let r = b.post(
        "/console/s3/create",
        &[
            ("bucket", "ver-bkt"),
            ("encryption", "AES256"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = b.get("/console/s3/buckets/ver-bkt/properties");
    assert!(
        r.body
            .contains("<span id=\"bucket-versioning-status\">Disabled</span>")
    );
    let csrf = b.csrf.clone();
    let r = b.post(
        "/console/s3/buckets/ver-bkt/versioning",
        &[("status", "Enabled"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = b.get("/console/s3/buckets/ver-bkt/properties");
    assert!(
        r.body
            .contains("<span id=\"bucket-versioning-status\">Enabled</span>")
    );
    // Two versions and a delete marker, made through the API.
    for body in [&b"one"[..], b"two"] {
        let r = s.send(Method::PUT, "/ver-bkt/k", HeaderMap::new(), body, Some(&s3));
        assert_eq!(r.status, 200);
    }
    let r = b.get("/console/s3/object/ver-bkt?key=k");
    assert!(r.body.contains("id=\"object-version-id\""), "{}", r.body);
    assert_eq!(s.s3(Method::DELETE, "/ver-bkt/k", Some(&s3)).status, 204);
    // Empty removes every version and marker, so the bucket can be deleted.
    let csrf = b.csrf.clone();
    let r = b.post("/console/s3/buckets/ver-bkt/empty", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    let r = s.s3(Method::GET, "/ver-bkt?versions", Some(&s3));
    assert!(
        !r.body.contains("<Version>") && !r.body.contains("<DeleteMarker>"),
        "{}",
        r.body
    );
    let csrf = b.csrf.clone();
    let r = b.post("/console/s3/buckets/ver-bkt/delete", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(s.s3(Method::HEAD, "/ver-bkt", Some(&s3)).status, 404);
}
