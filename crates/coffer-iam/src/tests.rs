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

/// Asserts that `r` is IAM's AccessDenied (HTTP 403) for user `who` doing `iam:<action>` on
/// `resource`, for want of an identity-based allow.
fn assert_denied<T>(f: &Fx, r: Result<T, ServiceError>, who: &str, action: &str, resource: &str) {
    let Err(e) = r else {
        panic!("{who} {action}: expected AccessDenied, got Ok")
    };
    assert_eq!(
        (e.code.as_str(), e.status, e.message.as_str()),
        (
            "AccessDenied",
            403,
            &*format!(
                "User: arn:aws:iam::{0}:user/{who} is not authorized to perform: iam:{action} on resource: {resource} because no identity-based policy allows the iam:{action} action",
                f.acct
            )
        ),
        "{who} {action}"
    );
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
    assert_eq!(
        f.iam
            .bootstrap(Some("999999999999"), None, None)
            .err()
            .as_deref(),
        Some(
            "COFFER_ACCOUNT_ID=999999999999 contradicts the account 123456789012 stored in this data dir; unset it or use another --data-dir"
        )
    );
    assert_eq!(
        f.iam
            .bootstrap(None, Some("AKIAOTHEROTHEROTHER1"), None)
            .err(),
        Some(format!(
            "COFFER_ROOT_ACCESS_KEY_ID=AKIAOTHEROTHEROTHER1 contradicts the root access key {} stored in this data dir; unset it or use another --data-dir",
            f.root_key
        ))
    );
    assert_eq!(
        f.iam
            .bootstrap(None, None, Some("wrong-secret-wrong-secret"))
            .err()
            .as_deref(),
        Some("COFFER_ROOT_SECRET_ACCESS_KEY contradicts the root secret stored in this data dir")
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
    assert_denied(
        &f,
        f.iam.handle(&bob, "ListGroups", &params(&[])),
        "bob",
        "ListGroups",
        &format!("arn:aws:iam::{}:group/", f.acct),
    );
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
    assert_denied(
        &f,
        f.iam
            .handle(&carol, "GetUser", &params(&[("UserName", "dave")])),
        "carol",
        "GetUser",
        &format!("arn:aws:iam::{}:user/dave", f.acct),
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
    assert_denied(
        &f,
        f.iam.handle(&carol, "GetUser", &params(&[])),
        "carol",
        "GetUser",
        &format!("arn:aws:iam::{}:user/carol", f.acct),
    );
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
    let e = f
        .iam
        .handle(
            &root,
            "GetPolicy",
            &params(&[("PolicyArn", &format!("arn:aws:iam::{}:policy/bad", f.acct))]),
        )
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status, e.message.as_str()),
        (
            "NoSuchEntity",
            404,
            &*format!("Policy arn:aws:iam::{}:policy/bad was not found.", f.acct)
        )
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

// ---------- no lost updates: concurrent read-modify-writes of one record ----------

/// Runs every job on its own thread, all released at once; returns their results in order.
fn race<T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    let go = std::sync::Barrier::new(jobs.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let go = &go;
                s.spawn(move || {
                    go.wait();
                    job()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn allow_doc(action: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
    )
}

fn stored<T: serde::de::DeserializeOwned>(f: &Fx, ns: &str, key: &str) -> Option<T> {
    get_json(&*f.iam.store, ns, key).unwrap()
}

#[test]
fn concurrent_changes_to_one_user_are_all_kept() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    let h = |action: &str, pairs: &[(&str, &str)]| f.iam.handle(&root, action, &params(pairs));
    h("CreateUser", &[("UserName", "target")]).unwrap();
    let mut arns = vec![];
    for i in 0..8 {
        let o = h(
            "CreatePolicy",
            &[
                ("PolicyName", &format!("p{i}")),
                ("PolicyDocument", &allow_doc(&format!("iam:Get{i}"))),
            ],
        )
        .unwrap()
        .unwrap();
        arns.push(field(&o, &["Policy", "Arn"]).unwrap().to_string());
        h("CreateGroup", &[("GroupName", &format!("g{i}"))]).unwrap();
    }
    let mut jobs: Vec<Box<dyn FnOnce() -> Result<(), String> + Send + '_>> = vec![];
    for (i, arn) in arns.iter().cloned().enumerate() {
        let h = &h;
        jobs.push(Box::new(move || {
            h(
                "TagUser",
                &[
                    ("UserName", "target"),
                    ("Tags.member.1.Key", &format!("k{i}")),
                    ("Tags.member.1.Value", "v"),
                ],
            )
            .map(|_| ())
            .map_err(|e| e.message)
        }));
        jobs.push(Box::new(move || {
            h(
                "AttachUserPolicy",
                &[("UserName", "target"), ("PolicyArn", &arn)],
            )
            .map(|_| ())
            .map_err(|e| e.message)
        }));
        jobs.push(Box::new(move || {
            h(
                "PutUserPolicy",
                &[
                    ("UserName", "target"),
                    ("PolicyName", &format!("inline{i}")),
                    ("PolicyDocument", &allow_doc(&format!("iam:List{i}"))),
                ],
            )
            .map(|_| ())
            .map_err(|e| e.message)
        }));
        jobs.push(Box::new(move || {
            h(
                "AddUserToGroup",
                &[("GroupName", &format!("g{i}")), ("UserName", "target")],
            )
            .map(|_| ())
            .map_err(|e| e.message)
        }));
    }
    for r in race(jobs) {
        r.unwrap();
    }
    let u: User = stored(&f, NS_USER, &name_key(&f.acct, "target")).unwrap();
    let mut tags: Vec<_> = u.tags.iter().map(|t| t.key.clone()).collect();
    tags.sort();
    assert_eq!(tags, (0..8).map(|i| format!("k{i}")).collect::<Vec<_>>());
    let mut attached = u.attached.clone();
    attached.sort();
    assert_eq!(attached, arns);
    assert_eq!(u.inline.len(), 8, "{:?}", u.inline.keys());
    let mut groups = u.groups.clone();
    groups.sort();
    assert_eq!(groups, (0..8).map(|i| format!("g{i}")).collect::<Vec<_>>());
    for i in 0..8 {
        let g: Group = stored(&f, NS_GROUP, &name_key(&f.acct, &format!("g{i}"))).unwrap();
        assert_eq!(g.members, vec!["target".to_string()]);
        let p: ManagedPolicy = stored(&f, NS_POLICY, &name_key(&f.acct, &format!("p{i}"))).unwrap();
        assert_eq!(p.attachment_count, 1, "p{i}");
    }
}

#[test]
fn concurrent_changes_to_one_group_and_one_policy_are_all_kept() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    let h = |action: &str, pairs: &[(&str, &str)]| f.iam.handle(&root, action, &params(pairs));
    h("CreateGroup", &[("GroupName", "team")]).unwrap();
    let o = h(
        "CreatePolicy",
        &[
            ("PolicyName", "shared"),
            ("PolicyDocument", &allow_doc("iam:GetUser")),
        ],
    )
    .unwrap()
    .unwrap();
    let arn = field(&o, &["Policy", "Arn"]).unwrap().to_string();
    let aws = "arn:aws:iam::aws:policy/IAMReadOnlyAccess";
    for i in 0..8 {
        h("CreateUser", &[("UserName", &format!("m{i}"))]).unwrap();
    }
    let mut jobs: Vec<Box<dyn FnOnce() -> Result<(), String> + Send + '_>> = vec![];
    let h = &h;
    for i in 0..8 {
        let (arn, user) = (arn.clone(), format!("m{i}"));
        jobs.push(Box::new(move || {
            let run = || -> Result<(), ServiceError> {
                h(
                    "AddUserToGroup",
                    &[("GroupName", "team"), ("UserName", &user)],
                )?;
                // Every member also gets the shared customer policy and an AWS managed one: the
                // policy's attachment count and the AWS attachment counter are raced on.
                h(
                    "AttachUserPolicy",
                    &[("UserName", &user), ("PolicyArn", &arn)],
                )?;
                h(
                    "AttachUserPolicy",
                    &[("UserName", &user), ("PolicyArn", aws)],
                )?;
                Ok(())
            };
            run().map_err(|e| e.message)
        }));
    }
    for i in 0..3 {
        let arn = arn.clone();
        jobs.push(Box::new(move || {
            h(
                "CreatePolicyVersion",
                &[
                    ("PolicyArn", &arn),
                    ("PolicyDocument", &allow_doc(&format!("iam:List{i}"))),
                ],
            )
            .map(|_| ())
            .map_err(|e| e.message)
        }));
    }
    {
        let arn = arn.clone();
        jobs.push(Box::new(move || {
            h(
                "SetDefaultPolicyVersion",
                &[("PolicyArn", &arn), ("VersionId", "v1")],
            )
            .map(|_| ())
            .map_err(|e| e.message)
        }));
    }
    jobs.push(Box::new(move || {
        h(
            "PutGroupPolicy",
            &[
                ("GroupName", "team"),
                ("PolicyName", "inline"),
                ("PolicyDocument", &allow_doc("iam:ListUsers")),
            ],
        )
        .map(|_| ())
        .map_err(|e| e.message)
    }));
    jobs.push(Box::new(move || {
        h(
            "AttachGroupPolicy",
            &[("GroupName", "team"), ("PolicyArn", aws)],
        )
        .map(|_| ())
        .map_err(|e| e.message)
    }));
    for r in race(jobs) {
        r.unwrap();
    }
    let g: Group = stored(&f, NS_GROUP, &name_key(&f.acct, "team")).unwrap();
    let mut members = g.members.clone();
    members.sort();
    assert_eq!(members, (0..8).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(g.inline.len(), 1);
    assert_eq!(g.attached, vec![aws.to_string()]);
    let p: ManagedPolicy = stored(&f, NS_POLICY, &name_key(&f.acct, "shared")).unwrap();
    assert_eq!(p.attachment_count, 8);
    let mut versions: Vec<_> = p.versions.iter().map(|v| v.id.clone()).collect();
    versions.sort();
    assert_eq!(versions, ["v1", "v2", "v3", "v4"]);
    assert_eq!(p.next_version, 5);
    assert_eq!(p.default_version, "v1");
    let aws_count: u32 =
        stored(&f, NS_AWS_ATTACH, &format!("{}/IAMReadOnlyAccess", f.acct)).unwrap();
    assert_eq!(aws_count, 9, "8 users and the group");
}

#[test]
fn last_used_never_undoes_an_access_key_update_or_delete() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    for round in 0..5 {
        let user = format!("ku{round}");
        let k1 = new_user_key(&f, &root, &user);
        let o = f
            .iam
            .handle(&root, "CreateAccessKey", &params(&[("UserName", &user)]))
            .unwrap()
            .unwrap();
        let k2 = field(&o, &["AccessKey", "AccessKeyId"])
            .unwrap()
            .to_string();
        let (iam, root, user) = (&f.iam, &root, user.as_str());
        let mut jobs: Vec<Box<dyn FnOnce() -> Result<(), String> + Send + '_>> = vec![];
        for _ in 0..6 {
            let (k1, k2) = (k1.clone(), k2.clone());
            jobs.push(Box::new(move || {
                for _ in 0..10 {
                    iam.note_key_used(&k1, "iam", "us-east-1");
                    iam.note_key_used(&k2, "s3", "us-east-1");
                }
                Ok(())
            }));
        }
        {
            let k1 = k1.clone();
            jobs.push(Box::new(move || {
                iam.handle(
                    root,
                    "UpdateAccessKey",
                    &params(&[
                        ("UserName", user),
                        ("AccessKeyId", &k1),
                        ("Status", "Inactive"),
                    ]),
                )
                .map(|_| ())
                .map_err(|e| e.message)
            }));
        }
        {
            let k2 = k2.clone();
            jobs.push(Box::new(move || {
                iam.handle(
                    root,
                    "DeleteAccessKey",
                    &params(&[("UserName", user), ("AccessKeyId", &k2)]),
                )
                .map(|_| ())
                .map_err(|e| e.message)
            }));
        }
        for r in race(jobs) {
            r.unwrap();
        }
        let rec: AccessKey = stored(&f, NS_ACCESS_KEY, &k1).unwrap();
        assert_eq!(rec.status, "Inactive", "round {round}");
        assert!(stored::<LastUsed>(&f, NS_KEY_LAST_USED, &k1).is_some());
        assert!(
            stored::<LastUsed>(&f, NS_KEY_LAST_USED, &k2).is_none(),
            "round {round}: a deleted key's last use is gone with it"
        );
        assert!(
            stored::<AccessKey>(&f, NS_ACCESS_KEY, &k2).is_none(),
            "round {round}: a deleted key came back"
        );
        let u: User = stored(&f, NS_USER, &name_key(&f.acct, user)).unwrap();
        assert_eq!(u.access_keys, vec![k1.clone()]);
        assert_eq!(
            f.iam.resolve(&k1, None).err(),
            Some(CredentialError::UnknownAccessKey)
        );
        assert_eq!(
            f.iam.resolve(&k2, None).err(),
            Some(CredentialError::UnknownAccessKey)
        );
        // And once more after the fact: a late "last used" of a deleted key writes nothing.
        f.iam.note_key_used(&k2, "s3", "us-east-1");
        assert!(stored::<AccessKey>(&f, NS_ACCESS_KEY, &k2).is_none());
        assert!(stored::<LastUsed>(&f, NS_KEY_LAST_USED, &k2).is_none());
    }
}

#[test]
fn recording_a_key_use_leaves_the_cache_generation_alone() {
    let f = fx();
    let g = f.iam.store.generation();
    f.iam.note_key_used(&f.root_key, "kms", "us-east-1");
    assert_eq!(f.iam.store.generation(), g, "every cache would be emptied");
    let root = ctx_for(&f, &f.root_key);
    let o = f
        .iam
        .handle(
            &root,
            "GetAccessKeyLastUsed",
            &params(&[("AccessKeyId", &f.root_key)]),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        field(&o, &["AccessKeyLastUsed", "ServiceName"]).unwrap(),
        "kms"
    );
}

#[test]
fn concurrent_account_aliases_leave_exactly_one() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    for round in 0..5 {
        let root = &root;
        let iam = &f.iam;
        let jobs: Vec<Box<dyn FnOnce() -> Result<(), String> + Send + '_>> = (0..8)
            .map(|i| -> Box<dyn FnOnce() -> Result<(), String> + Send + '_> {
                Box::new(move || {
                    iam.handle(
                        root,
                        "CreateAccountAlias",
                        &params(&[("AccountAlias", &format!("alias-{round}-{i}"))]),
                    )
                    .map(|_| ())
                    .map_err(|e| e.message)
                })
            })
            .collect();
        for r in race(jobs) {
            r.unwrap();
        }
        let aliases: Vec<(String, String)> =
            coffer_store::scan_json(&*f.iam.store, NS_ACCOUNT_ALIAS, "alias/", None, 100).unwrap();
        let current: String = stored(&f, NS_ACCOUNT_ALIAS, &format!("account/{}", f.acct)).unwrap();
        assert_eq!(
            aliases,
            vec![(format!("alias/{current}"), f.acct.clone())],
            "round {round}: every alias but the account's must be gone"
        );
    }
}

#[test]
fn concurrent_deletes_keep_the_roots_last_access_key() {
    for round in 0..5 {
        let f = fx();
        let root = ctx_for(&f, &f.root_key);
        let mut keys = vec![f.root_key.clone()];
        for _ in 0..3 {
            let o = f
                .iam
                .handle(&root, "CreateAccessKey", &params(&[]))
                .unwrap()
                .unwrap();
            keys.push(
                field(&o, &["AccessKey", "AccessKeyId"])
                    .unwrap()
                    .to_string(),
            );
        }
        let ctxs: Vec<_> = keys.iter().map(|k| ctx_for(&f, k)).collect();
        let iam = &f.iam;
        let jobs: Vec<Box<dyn FnOnce() -> Result<(), ServiceError> + Send + '_>> = ctxs
            .iter()
            .map(
                |c| -> Box<dyn FnOnce() -> Result<(), ServiceError> + Send + '_> {
                    Box::new(move || {
                        iam.handle(
                            c,
                            "DeleteAccessKey",
                            &params(&[("AccessKeyId", &c.principal.access_key_id)]),
                        )
                        .map(|_| ())
                    })
                },
            )
            .collect();
        let results = race(jobs);
        let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(refused.len(), 1, "round {round}: {results:?}");
        assert_eq!(refused[0].code, "DeleteConflict");
        let left: Vec<(String, AccessKey)> =
            coffer_store::scan_json(&*f.iam.store, NS_ACCESS_KEY, "", None, 100).unwrap();
        assert_eq!(left.len(), 1, "round {round}: the root keeps one key");
    }
}

#[test]
fn change_password_never_overwrites_a_concurrent_password_change() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    let key = new_user_key(&f, &root, "pat");
    let pat = ctx_for(&f, &key);
    f.iam
        .handle(
            &root,
            "PutUserPolicy",
            &params(&[
                ("UserName", "pat"),
                ("PolicyName", "pw"),
                ("PolicyDocument", &allow_doc("iam:ChangePassword")),
            ]),
        )
        .unwrap();
    f.iam
        .handle(
            &root,
            "CreateLoginProfile",
            &params(&[("UserName", "pat"), ("Password", "old password 1")]),
        )
        .unwrap();
    let (iam, root, pat) = (&f.iam, &root, &pat);
    let change = |new: &'static str| -> Box<dyn FnOnce() -> Result<(), ServiceError> + Send + '_> {
        Box::new(move || {
            iam.handle(
                pat,
                "ChangePassword",
                &params(&[("OldPassword", "old password 1"), ("NewPassword", new)]),
            )
            .map(|_| ())
        })
    };
    let results = race(vec![
        change("user password 2"),
        change("user password 3"),
        Box::new(move || {
            iam.handle(
                root,
                "UpdateLoginProfile",
                &params(&[("UserName", "pat"), ("Password", "admin password 4")]),
            )
            .map(|_| ())
        }),
    ]);
    results[2].as_ref().unwrap();
    // In any serial order, at most one ChangePassword can still present the old password, and
    // the administrator's reset is never silently undone by one that checked a stale hash.
    let accepted: Vec<_> = ["user password 2", "user password 3"]
        .into_iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(pw, _)| pw)
        .collect();
    for r in &results[..2] {
        if let Err(e) = r {
            assert_eq!(e.message, "The old password is incorrect.");
        }
    }
    assert!(accepted.len() <= 1, "{results:?}");
    // UpdateLoginProfile is the only writer of the administrator's password: it is the password
    // now unless a ChangePassword checked against its hash came after it (and none can).
    assert!(
        f.iam
            .check_password(&f.acct, "pat", "admin password 4")
            .unwrap(),
        "a ChangePassword that checked a stale hash undid the reset: {results:?}"
    );
}

#[test]
fn deleting_a_key_while_its_user_is_renamed_leaves_no_dangling_key() {
    let f = fx();
    let root = ctx_for(&f, &f.root_key);
    for round in 0..10 {
        let (old, new) = (format!("ren{round}"), format!("renamed{round}"));
        let key = new_user_key(&f, &root, &old);
        let (iam, root) = (&f.iam, &root);
        let (o2, k2) = (old.clone(), key.clone());
        let (o3, n3) = (old.clone(), new.clone());
        let results = race(vec![
            Box::new(move || {
                iam.handle(
                    root,
                    "DeleteAccessKey",
                    &params(&[("UserName", &o2), ("AccessKeyId", &k2)]),
                )
                .map(|_| ())
            }) as Box<dyn FnOnce() -> Result<(), ServiceError> + Send + '_>,
            Box::new(move || {
                iam.handle(
                    root,
                    "UpdateUser",
                    &params(&[("UserName", &o3), ("NewUserName", &n3)]),
                )
                .map(|_| ())
            }),
        ]);
        results[1].as_ref().unwrap();
        let u: User = stored(&f, NS_USER, &name_key(&f.acct, &new)).unwrap();
        let key_there = stored::<AccessKey>(&f, NS_ACCESS_KEY, &key).is_some();
        assert_eq!(
            u.access_keys.contains(&key),
            key_there,
            "round {round}: {results:?}"
        );
        assert_eq!(results[0].is_ok(), !key_there, "round {round}: {results:?}");
    }
}

#[test]
fn concurrent_bootstraps_make_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetaStore> =
        Arc::new(SqliteMetaStore::open(&dir.path().join("m.sqlite")).unwrap());
    let root_key = Arc::new(RootKey::generate().unwrap());
    let iams: Vec<Iam> = (0..4)
        .map(|_| Iam::new(store.clone(), root_key.clone(), Arc::new(SystemClock)))
        .collect();
    let jobs: Vec<Box<dyn FnOnce() -> Result<Bootstrap, String> + Send + '_>> = iams
        .iter()
        .map(
            |iam| -> Box<dyn FnOnce() -> Result<Bootstrap, String> + Send + '_> {
                Box::new(move || iam.bootstrap(None, None, None))
            },
        )
        .collect();
    let results: Vec<Bootstrap> = race(jobs).into_iter().map(Result::unwrap).collect();
    let stored_acct: String = get_json(&*store, NS_META, "account").unwrap().unwrap();
    let stored_key: String = get_json(&*store, NS_META, "root-access-key")
        .unwrap()
        .unwrap();
    for b in &results {
        assert_eq!(b.account_id, stored_acct);
        assert_eq!(b.root_access_key_id, stored_key);
    }
    assert_eq!(
        results
            .iter()
            .filter(|b| b.generated_secret.is_some())
            .count(),
        1,
        "one start made the account and printed its secret"
    );
    let keys: Vec<(String, AccessKey)> =
        coffer_store::scan_json(&*store, NS_ACCESS_KEY, "", None, 100).unwrap();
    assert_eq!(keys.len(), 1);
    let accounts: Vec<(String, Account)> =
        coffer_store::scan_json(&*store, NS_ACCOUNT, "", None, 100).unwrap();
    assert_eq!(accounts.len(), 1);
}

#[test]
fn expired_sessions_answer_expired_for_a_day_then_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetaStore> =
        Arc::new(SqliteMetaStore::open(&dir.path().join("m.sqlite")).unwrap());
    let clock = Arc::new(coffer_core::TestClock::default());
    let iam = Iam::new(store, Arc::new(RootKey::generate().unwrap()), clock.clone());
    let b = iam.bootstrap(Some("123456789012"), None, None).unwrap();
    let f = Fx {
        _dir: dir,
        iam,
        acct: b.account_id,
        root_key: b.root_access_key_id,
    };
    let root = ctx_for(&f, &f.root_key);
    let key = new_user_key(&f, &root, "sess");
    let user = ctx_for(&f, &key);
    let o = f
        .iam
        .handle_sts(
            &user,
            "GetSessionToken",
            &params(&[("DurationSeconds", "900")]),
        )
        .unwrap()
        .unwrap();
    let id = field(&o, &["Credentials", "AccessKeyId"])
        .unwrap()
        .to_string();
    let tok = field(&o, &["Credentials", "SessionToken"])
        .unwrap()
        .to_string();
    assert!(f.iam.resolve(&id, Some(&tok)).is_ok());
    clock.advance(time::Duration::seconds(901));
    assert_eq!(f.iam.sweep_sessions().unwrap(), 0);
    assert_eq!(
        f.iam.resolve(&id, Some(&tok)).err(),
        Some(CredentialError::ExpiredToken)
    );
    clock.advance(time::Duration::hours(24));
    assert_eq!(f.iam.sweep_sessions().unwrap(), 1);
    assert_eq!(
        f.iam.resolve(&id, Some(&tok)).err(),
        Some(CredentialError::UnknownAccessKey)
    );
}
