//! Service-level tests of IAM and STS against a real embedded store (no HTTP).

use super::*;
use coffer_core::{Out, RequestContext, SystemClock};
use coffer_store::SqliteMetaStore;

struct Fx {
    _dir: tempfile::TempDir,
    iam: Iam,
    acct: String,
    root_key: String,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetaStore> =
        Arc::new(SqliteMetaStore::open(&dir.path().join("m.sqlite")).unwrap());
    let iam = Iam::new(
        store,
        Arc::new(RootKey::generate().unwrap()),
        Arc::new(SystemClock),
    );
    let b = iam.bootstrap(Some("123456789012"), None, None).unwrap();
    Fx {
        _dir: dir,
        iam,
        acct: b.account_id,
        root_key: b.root_access_key_id,
    }
}

fn ctx_for(f: &Fx, key: &str) -> RequestContext {
    let r = f.iam.resolve(key, None).unwrap();
    RequestContext {
        principal: r.principal,
        source_ip: None,
        secure_transport: false,
        now: time::OffsetDateTime::now_utc(),
        request_id: "t".into(),
        region: "us-east-1".into(),
        user_agent: None,
        via_service: None,
    }
}

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())))
}

fn field<'a>(o: &'a Out, path: &[&str]) -> Option<&'a str> {
    let mut cur = o;
    for p in path {
        let Out::Struct(fields) = cur else {
            return None;
        };
        cur = &fields.iter().find(|(k, _)| k == p)?.1;
    }
    match cur {
        Out::Str(s) => Some(s),
        _ => None,
    }
}

fn new_user_key(f: &Fx, root: &RequestContext, name: &str) -> String {
    f.iam
        .handle(root, "CreateUser", &params(&[("UserName", name)]))
        .unwrap();
    let o = f
        .iam
        .handle(root, "CreateAccessKey", &params(&[("UserName", name)]))
        .unwrap()
        .unwrap();
    field(&o, &["AccessKey", "AccessKeyId"])
        .unwrap()
        .to_string()
}

#[test]
fn bootstrap_is_stable_and_checks_env() {
    let f = fx();
    let again = f.iam.bootstrap(None, None, None).unwrap();
    assert_eq!(again.account_id, f.acct);
    assert!(again.generated_secret.is_none());
    assert!(f.iam.bootstrap(Some("999999999999"), None, None).is_err());
    assert!(
        f.iam
            .bootstrap(None, Some("AKIAOTHEROTHEROTHER1"), None)
            .is_err()
    );
    assert!(
        f.iam
            .bootstrap(None, None, Some("wrong-secret-wrong-secret"))
            .is_err()
    );
}

#[test]
fn users_keys_policies_and_enforcement() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    let alice_key = new_user_key(&f, &root, "alice");
    let alice = ctx_for(&f, &alice_key);
    // alice has no policy: denied, with AWS's message
    let e = f.iam.handle(&alice, "ListUsers", &params(&[])).unwrap_err();
    assert_eq!(e.code, "AccessDenied");
    assert_eq!(
        e.message,
        format!(
            "User: arn:aws:iam::{0}:user/alice is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::{0}:user/ because no identity-based policy allows the iam:ListUsers action",
            f.acct
        )
    );
    // attach IAMReadOnlyAccess: allowed to list, not to create
    f.iam
        .handle(
            &root,
            "AttachUserPolicy",
            &params(&[
                ("UserName", "alice"),
                ("PolicyArn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
            ]),
        )
        .unwrap();
    f.iam.handle(&alice, "ListUsers", &params(&[])).unwrap();
    assert_eq!(
        f.iam
            .handle(&alice, "CreateUser", &params(&[("UserName", "x")]))
            .unwrap_err()
            .code,
        "AccessDenied"
    );
    // an inline Deny wins
    f.iam
        .handle(
            &root,
            "PutUserPolicy",
            &params(&[
                ("UserName", "alice"),
                ("PolicyName", "deny-list"),
                ("PolicyDocument", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:ListUsers","Resource":"*"}]}"#),
            ]),
        )
        .unwrap();
    let e = f.iam.handle(&alice, "ListUsers", &params(&[])).unwrap_err();
    assert!(
        e.message
            .ends_with("with an explicit deny in an identity-based policy"),
        "{}",
        e.message
    );
    // DeleteUser conflicts in AWS's order
    let e = f
        .iam
        .handle(&root, "DeleteUser", &params(&[("UserName", "alice")]))
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "DeleteConflict",
            "Cannot delete entity, must delete access keys first."
        )
    );
    // names are unique case-insensitively
    let e = f
        .iam
        .handle(&root, "CreateUser", &params(&[("UserName", "ALICE")]))
        .unwrap_err();
    assert_eq!(e.code, "EntityAlreadyExists");
    // invalid names change nothing
    let e = f
        .iam
        .handle(&root, "CreateUser", &params(&[("UserName", "bad name")]))
        .unwrap_err();
    assert_eq!(e.code, "ValidationError");
}

#[test]
fn groups_grant_through_membership() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    let key = new_user_key(&f, &root, "bob");
    let bob = ctx_for(&f, &key);
    f.iam
        .handle(&root, "CreateGroup", &params(&[("GroupName", "readers")]))
        .unwrap();
    f.iam
        .handle(
            &root,
            "AttachGroupPolicy",
            &params(&[
                ("GroupName", "readers"),
                ("PolicyArn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
            ]),
        )
        .unwrap();
    assert!(f.iam.handle(&bob, "ListGroups", &params(&[])).is_err());
    f.iam
        .handle(
            &root,
            "AddUserToGroup",
            &params(&[("GroupName", "readers"), ("UserName", "bob")]),
        )
        .unwrap();
    f.iam.handle(&bob, "ListGroups", &params(&[])).unwrap();
    let e = f
        .iam
        .handle(&root, "DeleteGroup", &params(&[("GroupName", "readers")]))
        .unwrap_err();
    assert_eq!(e.code, "DeleteConflict");
}

#[test]
fn policy_versions_and_variables() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    let key = new_user_key(&f, &root, "carol");
    let carol = ctx_for(&f, &key);
    let own = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::*:user/${aws:username}"}]}"#;
    let o = f
        .iam
        .handle(
            &root,
            "CreatePolicy",
            &params(&[("PolicyName", "self"), ("PolicyDocument", own)]),
        )
        .unwrap()
        .unwrap();
    let arn = field(&o, &["Policy", "Arn"]).unwrap().to_string();
    f.iam
        .handle(
            &root,
            "AttachUserPolicy",
            &params(&[("UserName", "carol"), ("PolicyArn", &arn)]),
        )
        .unwrap();
    f.iam.handle(&carol, "GetUser", &params(&[])).unwrap();
    new_user_key(&f, &root, "dave");
    assert!(
        f.iam
            .handle(&carol, "GetUser", &params(&[("UserName", "dave")]))
            .is_err()
    );
    // a new default version takes effect at once
    let none = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]}"#;
    f.iam
        .handle(
            &root,
            "CreatePolicyVersion",
            &params(&[
                ("PolicyArn", &arn),
                ("PolicyDocument", none),
                ("SetAsDefault", "true"),
            ]),
        )
        .unwrap();
    assert!(f.iam.handle(&carol, "GetUser", &params(&[])).is_err());
    f.iam
        .handle(
            &root,
            "SetDefaultPolicyVersion",
            &params(&[("PolicyArn", &arn), ("VersionId", "v1")]),
        )
        .unwrap();
    f.iam.handle(&carol, "GetUser", &params(&[])).unwrap();
    let e = f
        .iam
        .handle(&root, "DeletePolicy", &params(&[("PolicyArn", &arn)]))
        .unwrap_err();
    assert_eq!(e.code, "DeleteConflict");
    // malformed policy documents are refused and nothing is stored
    let e = f
        .iam
        .handle(
            &root,
            "CreatePolicy",
            &params(&[("PolicyName", "bad"), ("PolicyDocument", "{nope")]),
        )
        .unwrap_err();
    assert_eq!(e.code, "MalformedPolicyDocument");
    assert!(
        f.iam
            .handle(
                &root,
                "GetPolicy",
                &params(&[("PolicyArn", &format!("arn:aws:iam::{}:policy/bad", f.acct))])
            )
            .is_err()
    );
}

#[test]
fn assume_role_and_session_policies() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    let key = new_user_key(&f, &root, "erin");
    let erin = ctx_for(&f, &key);
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:user/erin"}},"Action":"sts:AssumeRole"}}]}}"#,
        f.acct
    );
    f.iam
        .handle(
            &root,
            "CreateRole",
            &params(&[("RoleName", "admin"), ("AssumeRolePolicyDocument", &trust)]),
        )
        .unwrap();
    f.iam
        .handle(
            &root,
            "AttachRolePolicy",
            &params(&[
                ("RoleName", "admin"),
                ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess"),
            ]),
        )
        .unwrap();
    let role_arn = format!("arn:aws:iam::{}:role/admin", f.acct);
    let o = f
        .iam
        .handle_sts(
            &erin,
            "AssumeRole",
            &params(&[("RoleArn", &role_arn), ("RoleSessionName", "s1")]),
        )
        .unwrap()
        .unwrap();
    let id = field(&o, &["Credentials", "AccessKeyId"]).unwrap();
    let tok = field(&o, &["Credentials", "SessionToken"]).unwrap();
    assert!(id.starts_with("ASIA"));
    let r = f.iam.resolve(id, Some(tok)).unwrap();
    assert_eq!(
        r.principal.arn,
        format!("arn:aws:sts::{}:assumed-role/admin/s1", f.acct)
    );
    assert_eq!(
        f.iam.resolve(id, None).err(),
        Some(CredentialError::InvalidToken)
    );
    assert_eq!(
        f.iam.resolve(id, Some("bogus")).err(),
        Some(CredentialError::InvalidToken)
    );
    let sess = RequestContext {
        principal: r.principal,
        ..erin.clone()
    };
    f.iam.handle(&sess, "ListUsers", &params(&[])).unwrap();
    // another user is not trusted
    let key2 = new_user_key(&f, &root, "frank");
    let frank = ctx_for(&f, &key2);
    let e = f
        .iam
        .handle_sts(
            &frank,
            "AssumeRole",
            &params(&[("RoleArn", &role_arn), ("RoleSessionName", "s2")]),
        )
        .unwrap_err();
    assert_eq!(e.code, "AccessDenied");
    // a session policy narrows the session
    let sp = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"*"}]}"#;
    let o = f
        .iam
        .handle_sts(
            &erin,
            "AssumeRole",
            &params(&[
                ("RoleArn", &role_arn),
                ("RoleSessionName", "s3"),
                ("Policy", sp),
            ]),
        )
        .unwrap()
        .unwrap();
    let r = f
        .iam
        .resolve(
            field(&o, &["Credentials", "AccessKeyId"]).unwrap(),
            field(&o, &["Credentials", "SessionToken"]),
        )
        .unwrap();
    let narrow = RequestContext {
        principal: r.principal,
        ..erin.clone()
    };
    let e = f
        .iam
        .handle(&narrow, "ListUsers", &params(&[]))
        .unwrap_err();
    assert!(
        e.message.contains("because no session policy allows"),
        "{}",
        e.message
    );
    // deleting the role revokes its sessions
    f.iam
        .handle(
            &root,
            "DetachRolePolicy",
            &params(&[
                ("RoleName", "admin"),
                ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess"),
            ]),
        )
        .unwrap();
    f.iam
        .handle(&root, "DeleteRole", &params(&[("RoleName", "admin")]))
        .unwrap();
    assert_eq!(
        f.iam.resolve(id, Some(tok)).err(),
        Some(CredentialError::InvalidToken)
    );
}

#[test]
fn passwords_are_hashed_and_checked() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    f.iam
        .handle(&root, "CreateUser", &params(&[("UserName", "gina")]))
        .unwrap();
    f.iam
        .handle(
            &root,
            "CreateLoginProfile",
            &params(&[("UserName", "gina"), ("Password", "correct horse 1")]),
        )
        .unwrap();
    assert!(
        f.iam
            .check_password(&f.acct, "gina", "correct horse 1")
            .unwrap()
    );
    assert!(!f.iam.check_password(&f.acct, "gina", "wrong").unwrap());
    assert!(
        !f.iam
            .check_password(&f.acct, "nobody", "correct horse 1")
            .unwrap()
    );
    let e = f
        .iam
        .handle(&root, "DeleteUser", &params(&[("UserName", "gina")]))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Cannot delete entity, must delete login profile first."
    );
}
