//! IAM and STS over HTTP against the real binary: user round trip, policy enforcement,
//! AssumeRole and session credentials.

mod common;

use common::*;
use time::OffsetDateTime;

#[test]
fn iam_response_has_request_id_date_and_namespace() {
    let s = Server::start();
    let before = OffsetDateTime::now_utc();
    let r = s.iam(&Creds::root(), "ListUsers", &[]);
    r.expect_ok("ListUsers");
    assert_eq!(r.header("content-type"), Some("text/xml"));
    let rid = r.header("x-amzn-requestid").expect("x-amzn-requestid");
    assert_eq!(rid.len(), 36, "{rid}");
    assert_eq!(r.xml("RequestId").as_deref(), Some(rid));
    assert!(
        r.body.starts_with(&format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListUsersResponse xmlns=\"{IAM_NS}\">"
        )),
        "{}",
        r.body
    );
    assert!(r.body.contains("<ListUsersResult>"));
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));

    let date = r.header("date").expect("Date header");
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let parsed = time::PrimitiveDateTime::parse(date, &fmt)
        .unwrap_or_else(|e| panic!("bad Date {date:?}: {e}"))
        .assume_utc();
    assert!(
        (parsed - before).abs() < time::Duration::minutes(1),
        "{date}"
    );

    // Another request gets another id.
    let r2 = s.iam(&Creds::root(), "ListUsers", &[]);
    assert_ne!(r2.header("x-amzn-requestid"), Some(rid));
}

#[test]
fn user_create_get_list_delete_round_trip() {
    let s = Server::start();
    let root = Creds::root();

    let r = s.iam(
        &root,
        "CreateUser",
        &[("UserName", "alice"), ("Path", "/team/")],
    );
    r.expect_ok("CreateUser");
    assert!(
        r.body
            .contains(&format!("<CreateUserResponse xmlns=\"{IAM_NS}\">")),
        "{}",
        r.body
    );
    assert!(r.body.contains("<CreateUserResult><User>"), "{}", r.body);
    assert_eq!(r.xml("UserName").as_deref(), Some("alice"));
    assert_eq!(r.xml("Path").as_deref(), Some("/team/"));
    let arn = format!("arn:aws:iam::{ACCOUNT}:user/team/alice");
    assert_eq!(r.xml("Arn").as_deref(), Some(arn.as_str()));
    let user_id = r.xml("UserId").expect("UserId");
    assert!(user_id.starts_with("AIDA"), "{user_id}");
    let created = r.xml("CreateDate").expect("CreateDate");
    assert!(created.ends_with('Z'), "{created}");

    // Creating it again conflicts.
    s.iam(&root, "CreateUser", &[("UserName", "alice")])
        .expect_query_error(409, "EntityAlreadyExists", "alice");

    let r = s.iam(&root, "GetUser", &[("UserName", "alice")]);
    r.expect_ok("GetUser");
    assert!(r.body.contains("<GetUserResult><User>"), "{}", r.body);
    assert_eq!(r.xml("UserId").as_deref(), Some(user_id.as_str()));
    assert_eq!(r.xml("Arn").as_deref(), Some(arn.as_str()));
    assert_eq!(r.xml("CreateDate").as_deref(), Some(created.as_str()));

    s.iam(&root, "CreateUser", &[("UserName", "bob")])
        .expect_ok("CreateUser bob");
    let r = s.iam(&root, "ListUsers", &[]);
    r.expect_ok("ListUsers");
    let mut names = r.xml_all("UserName");
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(r.xml_all("member").len(), 2);

    let r = s.iam(&root, "DeleteUser", &[("UserName", "alice")]);
    r.expect_ok("DeleteUser");
    assert!(!r.body.contains("DeleteUserResult"), "{}", r.body);
    assert!(r.body.contains(&format!(
        "<DeleteUserResponse xmlns=\"{IAM_NS}\"><ResponseMetadata><RequestId>"
    )));

    s.iam(&root, "GetUser", &[("UserName", "alice")])
        .expect_query_error(
            404,
            "NoSuchEntity",
            "The user with name alice cannot be found.",
        );
    s.iam(&root, "DeleteUser", &[("UserName", "alice")])
        .expect_query_error(404, "NoSuchEntity", "alice");
    let r = s.iam(&root, "ListUsers", &[]);
    assert_eq!(r.xml_all("UserName"), ["bob"]);
}

#[test]
fn iam_accepts_any_signing_region() {
    // IAM and STS are global: the scope's region is not checked.
    let s = Server::start();
    let r = s.query(
        "2010-05-08",
        "ListUsers",
        &[],
        Some(&Signing::new(&Creds::root(), "iam").region("eu-west-3")),
    );
    r.expect_ok("ListUsers signed for eu-west-3");
}

#[test]
fn user_is_denied_until_a_policy_allows() {
    let s = Server::start();
    let alice = s.create_user_with_key("alice");
    assert!(alice.access_key.starts_with("AKIA"), "{}", alice.access_key);
    assert_eq!(alice.access_key.len(), 20);
    assert_eq!(alice.secret.len(), 40);

    let r = s.iam(&alice, "ListUsers", &[]);
    r.expect_query_error(403, "AccessDenied", "");
    assert_eq!(
        r.xml("Message").unwrap(),
        format!(
            "User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::{ACCOUNT}:user/ because no identity-based policy allows the iam:ListUsers action"
        )
    );
    // The user can always find out who it is.
    let r = s.sts(&alice, "GetCallerIdentity", &[]);
    r.expect_ok("GetCallerIdentity");
    assert_eq!(
        r.xml("Arn").as_deref(),
        Some(&*format!("arn:aws:iam::{ACCOUNT}:user/alice"))
    );
    assert_eq!(r.xml("Account").as_deref(), Some(ACCOUNT));
    assert!(r.xml("UserId").unwrap().starts_with("AIDA"));

    s.iam(
        &Creds::root(),
        "AttachUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyArn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
        ],
    )
    .expect_ok("AttachUserPolicy");

    let r = s.iam(&alice, "ListUsers", &[]);
    r.expect_ok("ListUsers after IAMReadOnlyAccess");
    assert_eq!(r.xml_all("UserName"), ["alice"]);
    let r = s.iam(&alice, "ListAttachedUserPolicies", &[("UserName", "alice")]);
    r.expect_ok("ListAttachedUserPolicies");
    assert_eq!(r.xml("PolicyName").as_deref(), Some("IAMReadOnlyAccess"));

    // Read-only: writes are still denied.
    let r = s.iam(&alice, "CreateUser", &[("UserName", "mallory")]);
    r.expect_query_error(403, "AccessDenied", "iam:CreateUser");
    assert!(
        r.xml("Message")
            .unwrap()
            .starts_with(&format!("User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::{ACCOUNT}:user/mallory")),
        "{}",
        r.body
    );

    // Detaching takes effect at once.
    s.iam(
        &Creds::root(),
        "DetachUserPolicy",
        &[
            ("UserName", "alice"),
            ("PolicyArn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
        ],
    )
    .expect_ok("DetachUserPolicy");
    s.iam(&alice, "ListUsers", &[])
        .expect_query_error(403, "AccessDenied", "iam:ListUsers");
}

#[test]
fn deleted_access_key_stops_working() {
    let s = Server::start();
    let alice = s.create_user_with_key("alice");
    s.sts(&alice, "GetCallerIdentity", &[]).expect_ok("before");
    s.iam(
        &Creds::root(),
        "DeleteAccessKey",
        &[("UserName", "alice"), ("AccessKeyId", &alice.access_key)],
    )
    .expect_ok("DeleteAccessKey");
    s.sts(&alice, "GetCallerIdentity", &[]).expect_query_error(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    );
}

const TRUST_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"sts:AssumeRole"}]}"#;

#[test]
fn assume_role_and_use_session_credentials() {
    let s = Server::start();
    let root = Creds::root();
    let alice = s.create_user_with_key("alice");
    let r = s.iam(
        &root,
        "CreateRole",
        &[
            ("RoleName", "reader"),
            ("AssumeRolePolicyDocument", TRUST_ALICE),
        ],
    );
    r.expect_ok("CreateRole");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/reader");
    assert_eq!(r.xml("Arn").as_deref(), Some(role_arn.as_str()));
    let role_id = r.xml("RoleId").expect("RoleId");
    assert!(role_id.starts_with("AROA"), "{role_id}");
    s.iam(
        &root,
        "AttachRolePolicy",
        &[
            ("RoleName", "reader"),
            ("PolicyArn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
        ],
    )
    .expect_ok("AttachRolePolicy");

    // The trust policy names alice directly: no identity policy is needed.
    let r = s.sts(
        &alice,
        "AssumeRole",
        &[("RoleArn", &role_arn), ("RoleSessionName", "sess-1")],
    );
    r.expect_ok("AssumeRole");
    assert!(
        r.body
            .contains(&format!("<AssumeRoleResponse xmlns=\"{STS_NS}\">")),
        "{}",
        r.body
    );
    let ak = r.xml("AccessKeyId").expect("AccessKeyId");
    let sk = r.xml("SecretAccessKey").expect("SecretAccessKey");
    let token = r.xml("SessionToken").expect("SessionToken");
    assert!(ak.starts_with("ASIA"), "{ak}");
    let exp = r.xml("Expiration").expect("Expiration");
    assert!(exp.ends_with('Z'), "{exp}");
    let assumed_arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/reader/sess-1");
    assert_eq!(r.xml("Arn").as_deref(), Some(assumed_arn.as_str()));
    assert_eq!(
        r.xml("AssumedRoleId").as_deref(),
        Some(&*format!("{role_id}:sess-1"))
    );

    let session = Creds::new(&ak, &sk).with_token(&token);
    let r = s.sts(&session, "GetCallerIdentity", &[]);
    r.expect_ok("GetCallerIdentity with session credentials");
    assert_eq!(r.xml("Arn").as_deref(), Some(assumed_arn.as_str()));
    assert_eq!(r.xml("Account").as_deref(), Some(ACCOUNT));
    assert_eq!(
        r.xml("UserId").as_deref(),
        Some(&*format!("{role_id}:sess-1"))
    );

    // The session carries the role's permissions.
    let r = s.iam(&session, "ListUsers", &[]);
    r.expect_ok("ListUsers with the role session");
    let r = s.iam(&session, "DeleteUser", &[("UserName", "alice")]);
    r.expect_query_error(403, "AccessDenied", &assumed_arn);

    // Without the token the session key is not valid.
    let r = s.sts(&session.clone().without_token(), "GetCallerIdentity", &[]);
    r.expect_query_error(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    );
    let r = s.iam(&session.clone().without_token(), "ListUsers", &[]);
    r.expect_query_error(403, "InvalidClientTokenId", "invalid");
    // A wrong token neither.
    let r = s.sts(
        &session.clone().with_token("bm90LXRoZS10b2tlbg=="),
        "GetCallerIdentity",
        &[],
    );
    r.expect_query_error(403, "InvalidClientTokenId", "invalid");
    // A long-term key with a token attached is refused too.
    let r = s.sts(&alice.clone().with_token(&token), "GetCallerIdentity", &[]);
    r.expect_query_error(403, "InvalidClientTokenId", "invalid");
}

#[test]
fn assume_role_denied_when_trust_does_not_match() {
    let s = Server::start();
    let root = Creds::root();
    s.create_user_with_key("alice");
    let bob = s.create_user_with_key("bob");
    s.iam(
        &root,
        "CreateRole",
        &[
            ("RoleName", "reader"),
            ("AssumeRolePolicyDocument", TRUST_ALICE),
        ],
    )
    .expect_ok("CreateRole");
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/reader");
    let r = s.sts(
        &bob,
        "AssumeRole",
        &[("RoleArn", &role_arn), ("RoleSessionName", "nope")],
    );
    r.expect_query_error(
        403,
        "AccessDenied",
        &format!(
            "User: arn:aws:iam::{ACCOUNT}:user/bob is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        ),
    );
    assert!(
        r.body
            .contains(&format!("<ErrorResponse xmlns=\"{STS_NS}\">")),
        "{}",
        r.body
    );
}

#[test]
fn iam_query_in_the_url() {
    // The Query protocol also works with GET and with a presigned URL.
    let s = Server::start();
    let root = Creds::root();
    s.iam(&root, "CreateUser", &[("UserName", "carol")])
        .expect_ok("CreateUser");
    let path = format!(
        "/?{}",
        query_body("GetUser", "2010-05-08", &[("UserName", "carol")])
    );
    let r = s.send(
        http::Method::GET,
        &path,
        http::HeaderMap::new(),
        b"",
        Some(&Signing::new(&root, "iam")),
    );
    r.expect_ok("GET GetUser");
    assert_eq!(r.xml("UserName").as_deref(), Some("carol"));

    let url = s.presign(&http::Method::GET, &path, &Signing::new(&root, "iam"), 300);
    let r = s.send(http::Method::GET, &url, http::HeaderMap::new(), b"", None);
    r.expect_ok("presigned GetUser");
    assert!(
        r.body
            .contains(&format!("<GetUserResponse xmlns=\"{IAM_NS}\">"))
    );
    assert_eq!(r.xml("UserName").as_deref(), Some("carol"));
}
