//! Parsing/validation, matching and evaluation tests.

use coffer_policy::*;

const ACCT: &str = "111122223333";
const USER: &str = "arn:aws:iam::111122223333:user/alice";
const ROLE: &str = "arn:aws:iam::111122223333:role/Builder";
const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/Builder/sess1";
const ROOT: &str = "arn:aws:iam::111122223333:root";

fn parse(doc: &str, kind: PolicyKind) -> Policy {
    match Policy::parse(doc, kind) {
        Ok(p) => p,
        Err(e) => panic!("parse failed: {e}\n{doc}"),
    }
}

fn parse_err(doc: &str, kind: PolicyKind) -> String {
    match Policy::parse(doc, kind) {
        Ok(_) => panic!("expected error for {doc}"),
        Err(e) => e.message,
    }
}

fn req<'a>(action: &'a str, resource: &'a str, ctx: &'a Context) -> Request<'a> {
    Request {
        action,
        resource,
        principal: None,
        context: ctx,
    }
}

fn user() -> PrincipalInfo<'static> {
    PrincipalInfo {
        arn: USER,
        account: ACCT,
        role_arn: None,
        service: None,
    }
}

fn session() -> PrincipalInfo<'static> {
    PrincipalInfo {
        arn: SESSION,
        account: ACCT,
        role_arn: Some(ROLE),
        service: None,
    }
}

fn root() -> PrincipalInfo<'static> {
    PrincipalInfo {
        arn: ROOT,
        account: ACCT,
        role_arn: None,
        service: None,
    }
}

fn foreign() -> PrincipalInfo<'static> {
    PrincipalInfo {
        arn: "arn:aws:iam::444455556666:user/mallory",
        account: "444455556666",
        role_arn: None,
        service: None,
    }
}

fn allows(p: &Policy, action: &str, resource: &str) -> bool {
    let ctx = Context::new();
    p.evaluate(&req(action, resource, &ctx)).is_allow()
}

fn identity(stmts: &str) -> Policy {
    parse(
        &format!(r#"{{"Version":"2012-10-17","Statement":{stmts}}}"#),
        PolicyKind::Identity,
    )
}

// ---------------------------------------------------------------- validation

#[test]
fn invalid_json() {
    for doc in [
        "",
        "   ",
        "[]",
        "\"x\"",
        "{",
        "{\"Statement\": [}",
        " x{}",
        "{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}trailing",
    ] {
        assert_eq!(
            parse_err(doc, PolicyKind::Identity),
            MSG_INVALID_JSON,
            "{doc:?}"
        );
    }
    // leading whitespace is fine
    parse(
        "\n\t {\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}",
        PolicyKind::Identity,
    );
}

#[test]
fn invalid_characters() {
    let doc = "{\"Statement\":{\"Sid\":\"x\u{100}\",\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}";
    assert_eq!(parse_err(doc, PolicyKind::Resource), MSG_INVALID_JSON);
    let doc = "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"arn:aws:s3:::b/\u{e9}\"}}";
    parse(doc, PolicyKind::Identity); // Latin-1 is allowed
    let doc = "{\u{1}\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}";
    assert_eq!(parse_err(doc, PolicyKind::Identity), MSG_INVALID_JSON);
}

#[test]
fn version_handling() {
    let st = r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#;
    let p = parse(&format!(r#"{{"Statement":{st}}}"#), PolicyKind::Identity);
    assert_eq!(p.version(), PolicyVersion::V2008);
    assert!(!p.has_version());
    let p = parse(
        &format!(r#"{{"Version":"2008-10-17","Statement":{st}}}"#),
        PolicyKind::Identity,
    );
    assert_eq!(p.version(), PolicyVersion::V2008);
    assert!(p.has_version());
    let p = parse(
        &format!(r#"{{"Version":"2012-10-17","Statement":{st}}}"#),
        PolicyKind::Identity,
    );
    assert_eq!(p.version(), PolicyVersion::V2012);
    for v in ["\"2012-10-18\"", "\"\"", "2012", "null"] {
        assert_eq!(
            parse_err(
                &format!(r#"{{"Version":{v},"Statement":{st}}}"#),
                PolicyKind::Identity
            ),
            MSG_LEGACY_PARSING
        );
    }
}

#[test]
fn structure_errors() {
    let k = PolicyKind::Identity;
    assert_eq!(
        parse_err(r#"{"Version":"2012-10-17"}"#, k),
        MSG_MISSING_STATEMENT
    );
    assert_eq!(
        parse_err(r#"{"Version":"2012-10-17","Statement":[]}"#, k),
        MSG_SYNTAX
    );
    assert_eq!(
        parse_err(r#"{"Version":"2012-10-17","Statement":"x"}"#, k),
        MSG_SYNTAX
    );
    assert_eq!(
        parse_err(r#"{"Version":"2012-10-17","Statement":["x"]}"#, k),
        MSG_SYNTAX
    );
    assert_eq!(
        parse_err(
            r#"{"Version":"2012-10-17","Foo":1,"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            k
        ),
        MSG_SYNTAX
    );
    assert_eq!(
        parse_err(
            r#"{"Id":5,"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            k
        ),
        MSG_SYNTAX
    );
    let cases: &[(&str, &str)] = &[
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*","Bogus":1}"#,
            MSG_SYNTAX,
        ),
        (r#"{"Action":"*","Resource":"*"}"#, MSG_SYNTAX),
        (
            r#"{"Effect":"allow","Action":"*","Resource":"*"}"#,
            MSG_SYNTAX,
        ),
        (
            r#"{"Effect":"Permit","Action":"*","Resource":"*"}"#,
            MSG_SYNTAX,
        ),
        (r#"{"Effect":"Allow","Resource":"*"}"#, MSG_MISSING_ACTIONS),
        (
            r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#,
            MSG_MISSING_ACTIONS,
        ),
        (r#"{"Effect":"Allow","Action":"*"}"#, MSG_MISSING_RESOURCES),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":[]}"#,
            MSG_MISSING_RESOURCES,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}"#,
            MSG_SYNTAX,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}"#,
            MSG_SYNTAX,
        ),
        (
            r#"{"Effect":"Allow","Action":5,"Resource":"*"}"#,
            MSG_SYNTAX,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":[1]}"#,
            MSG_SYNTAX,
        ),
        (
            r#"{"Effect":"Allow","Action":"GetObject","Resource":"*"}"#,
            MSG_VENDOR_PREFIX,
        ),
        (
            r#"{"Effect":"Allow","Action":":GetObject","Resource":"*"}"#,
            MSG_VENDOR_PREFIX,
        ),
        (
            r#"{"Effect":"Allow","Action":["s3:Get*","Put*"],"Resource":"*"}"#,
            MSG_VENDOR_PREFIX,
        ),
        (
            r#"{"Sid":"has space","Effect":"Allow","Action":"*","Resource":"*"}"#,
            MSG_SID_NOT_ALNUM,
        ),
        (
            r#"{"Sid":1,"Effect":"Allow","Action":"*","Resource":"*"}"#,
            MSG_SYNTAX,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}"#,
            MSG_PRINCIPAL_FORBIDDEN,
        ),
        (
            r#"{"Effect":"Allow","Action":"*","Resource":"*","NotPrincipal":{"AWS":"111122223333"}}"#,
            MSG_PRINCIPAL_FORBIDDEN,
        ),
    ];
    for (st, want) in cases {
        let doc = format!(r#"{{"Version":"2012-10-17","Statement":[{st}]}}"#);
        assert_eq!(parse_err(&doc, k), *want, "{st}");
    }
    assert_eq!(
        parse_err(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"bucket/x"}}"#,
            k
        ),
        "Resource bucket/x must be in ARN format or \"*\"."
    );
}

#[test]
fn duplicate_sids() {
    let doc = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},
        {"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#;
    assert_eq!(parse_err(doc, PolicyKind::Identity), MSG_DUPLICATE_SID);
    let doc = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},
        {"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"},
        {"Effect":"Deny","Action":"*","Resource":"*"},
        {"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
    parse(doc, PolicyKind::Identity);
}

#[test]
fn resource_and_trust_principal_rules() {
    let no_principal =
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
    assert_eq!(
        parse_err(no_principal, PolicyKind::Resource),
        MSG_PRINCIPAL_REQUIRED
    );
    assert_eq!(
        parse_err(no_principal, PolicyKind::Trust),
        MSG_PRINCIPAL_REQUIRED
    );
    let both = r#"{"Statement":{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"s3:*","Resource":"*"}}"#;
    assert_eq!(parse_err(both, PolicyKind::Resource), MSG_SYNTAX);
    // trust policies may omit Resource; resource policies may not
    let trust = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
    parse(trust, PolicyKind::Trust);
    assert_eq!(
        parse_err(trust, PolicyKind::Resource),
        MSG_MISSING_RESOURCES
    );
    let bad =
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"sts:AssumeRole"}}"#;
    assert_eq!(
        parse_err(bad, PolicyKind::Trust),
        "Invalid principal in policy: \"AWS\":\"alice\""
    );
}

#[test]
fn bucket_policy_messages() {
    assert_eq!(
        Policy::parse_bucket_policy("nope").err().map(|e| e.message),
        Some(MSG_S3_INVALID_JSON.to_string())
    );
    assert_eq!(
        Policy::parse_bucket_policy(r#"{"Version":"2012-10-17"}"#)
            .err()
            .map(|e| e.message),
        Some(MSG_S3_MISSING_STATEMENT.to_string())
    );
    let p = Policy::parse_bucket_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"Public read","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
    );
    assert!(p.is_ok_and(|p| p.kind() == PolicyKind::Resource));
    // UTF-8 object keys are fine in bucket policies, not in IAM/KMS documents.
    let doc = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/日本/*"}}"#;
    let p = Policy::parse_bucket_policy(doc);
    assert!(p.is_ok());
    assert_eq!(parse_err(doc, PolicyKind::Resource), MSG_INVALID_JSON);
    if let Ok(p) = p {
        let ctx = Context::new();
        let r = Request {
            action: "s3:GetObject",
            resource: "arn:aws:s3:::b/日本/x",
            principal: None,
            context: &ctx,
        };
        assert!(p.evaluate(&r).is_allow());
    }
}

#[test]
fn text_and_accessors() {
    let doc = "{ \"Version\": \"2012-10-17\", \"Id\": \"x\", \"Statement\": {\"Sid\":\"S1\",\"Effect\":\"Deny\",\"NotAction\":[\"s3:*\"],\"NotResource\":\"arn:aws:s3:::b\"} }";
    let p = parse(doc, PolicyKind::Identity);
    assert_eq!(p.text(), doc);
    assert_eq!(p.id(), Some("x"));
    assert_eq!(p.statements().len(), 1);
    let s = &p.statements()[0];
    assert_eq!(s.sid.as_deref(), Some("S1"));
    assert_eq!(s.effect, Effect::Deny);
    assert_eq!(s.index, 0);
    assert!(s.is_not_action());
    assert!(s.is_not_resource());
    assert_eq!(s.actions(), ["s3:*".to_string()]);
    assert_eq!(s.resources(), Some(&["arn:aws:s3:::b".to_string()][..]));
    assert!(s.principal().is_none());
    assert!(s.covers_action("kms:Decrypt"));
    assert!(!s.covers_action("S3:GetObject"));
}

#[test]
fn size_without_whitespace_counts() {
    let doc = "{\n  \"Version\" : \"2012-10-17\",\n  \"Statement\" : [ ]\n}";
    assert_eq!(
        size_without_whitespace(doc),
        r#"{"Version":"2012-10-17","Statement":[]}"#.len()
    );
}

// ---------------------------------------------------------------- matching

#[test]
fn action_wildcards_case_insensitive() {
    let p = identity(
        r#"[{"Effect":"Allow","Action":["s3:Get*","KMS:Describe?ey","iam:*User"],"Resource":"*"}]"#,
    );
    assert!(allows(&p, "s3:GetObject", "*"));
    assert!(allows(&p, "S3:getobject", "*"));
    assert!(allows(&p, "s3:Get", "*"));
    assert!(!allows(&p, "s3:PutObject", "*"));
    assert!(!allows(&p, "s3-object-lambda:GetObject", "*"));
    assert!(allows(&p, "kms:DescribeKey", "*"));
    assert!(!allows(&p, "kms:DescribeKeys", "*"));
    assert!(allows(&p, "iam:CreateUser", "*"));
    assert!(!allows(&p, "iam:CreateUsers", "*"));
    let p = identity(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#);
    assert!(allows(&p, "anything:AtAll", "*"));
}

#[test]
fn resource_wildcards_case_sensitive() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::bucket/home/*","arn:aws:s3:::b?"]}"#,
    );
    assert!(allows(&p, "s3:GetObject", "arn:aws:s3:::bucket/home/a/b:c"));
    assert!(allows(&p, "s3:GetObject", "arn:aws:s3:::bucket/home/"));
    assert!(!allows(&p, "s3:GetObject", "arn:aws:s3:::bucket/Home/a"));
    assert!(!allows(&p, "s3:GetObject", "arn:aws:s3:::BUCKET/home/a"));
    assert!(!allows(&p, "s3:GetObject", "arn:aws:s3:::bucket"));
    assert!(allows(&p, "s3:ListBucket", "arn:aws:s3:::b1"));
    assert!(!allows(&p, "s3:ListBucket", "arn:aws:s3:::b12"));
    assert!(!allows(&p, "s3:ListAllMyBuckets", "*"));
    // `*` crosses `:` too
    let p = identity(r#"{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:*"}"#);
    assert!(allows(
        &p,
        "kms:Decrypt",
        "arn:aws:kms:us-east-1:111122223333:key/abc"
    ));
    let p = identity(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#);
    assert!(allows(&p, "s3:ListAllMyBuckets", "*"));
    assert!(allows(&p, "s3:GetObject", "arn:aws:s3:::x/y"));
}

#[test]
fn not_action_and_not_resource() {
    let p = identity(r#"{"Effect":"Allow","NotAction":["iam:*","kms:Delete*"],"Resource":"*"}"#);
    assert!(allows(&p, "s3:GetObject", "*"));
    assert!(allows(&p, "kms:Decrypt", "*"));
    assert!(!allows(&p, "iam:CreateUser", "*"));
    assert!(!allows(&p, "KMS:DeleteAlias", "*"));
    let p = identity(
        r#"[{"Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::safe","arn:aws:s3:::safe/*"]}]"#,
    );
    assert!(allows(&p, "s3:GetObject", "arn:aws:s3:::safe/x"));
    assert!(allows(&p, "s3:ListBucket", "arn:aws:s3:::safe"));
    let ctx = Context::new();
    let d = p.evaluate(&req("s3:GetObject", "arn:aws:s3:::other/x", &ctx));
    assert_eq!(
        d,
        Decision::ExplicitDeny(Matched {
            statement_index: 1,
            sid: None,
            principal_match: None
        })
    );
}

#[test]
fn deny_wins_and_first_allow_reported() {
    let p = identity(
        r#"[{"Sid":"A1","Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Sid":"A2","Effect":"Allow","Action":"s3:GetObject","Resource":"*"},
            {"Sid":"D1","Effect":"Deny","Action":"s3:DeleteObject","Resource":"*"}]"#,
    );
    let ctx = Context::new();
    let r = req("s3:GetObject", "arn:aws:s3:::b/k", &ctx);
    assert_eq!(
        p.evaluate(&r),
        Decision::Allow(Matched {
            statement_index: 0,
            sid: Some("A1".into()),
            principal_match: None
        })
    );
    assert_eq!(p.matching_allows(&r).len(), 2);
    let r = req("s3:DeleteObject", "arn:aws:s3:::b/k", &ctx);
    assert!(matches!(p.evaluate(&r), Decision::ExplicitDeny(m) if m.sid.as_deref() == Some("D1")));
    assert_eq!(p.matching_allows(&r).len(), 1);
    assert_eq!(p.matching_denies(&r).len(), 1);
    let r = req("kms:Decrypt", "*", &ctx);
    assert_eq!(p.evaluate(&r), Decision::ImplicitDeny);
}

#[test]
fn evaluate_all_combines() {
    let allow = identity(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#);
    let deny = identity(r#"{"Effect":"Deny","Action":"s3:Delete*","Resource":"*"}"#);
    let other = identity(r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#);
    let ctx = Context::new();
    let r = req("s3:GetObject", "arn:aws:s3:::b/k", &ctx);
    assert!(evaluate_all([&other, &allow, &deny], &r).is_allow());
    let r = req("s3:DeleteObject", "arn:aws:s3:::b/k", &ctx);
    assert!(evaluate_all([&allow, &deny], &r).is_explicit_deny());
    let r = req("iam:ListUsers", "*", &ctx);
    assert_eq!(
        evaluate_all([&allow, &deny, &other], &r),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate_all(std::iter::empty::<&Policy>(), &r),
        Decision::ImplicitDeny
    );
    let v = vec![allow, deny];
    let r = req("s3:GetObject", "arn:aws:s3:::b/k", &ctx);
    assert!(evaluate_all(&v, &r).is_allow());
}

// ---------------------------------------------------------------- principals

fn resource_policy(principal: &str) -> Policy {
    parse(
        &format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"S","Effect":"Allow","Principal":{principal},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}]}}"#
        ),
        PolicyKind::Resource,
    )
}

fn principal_match(p: &Policy, who: Option<PrincipalInfo<'_>>) -> Option<PrincipalMatch> {
    let ctx = Context::new();
    let r = Request {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/k",
        principal: who,
        context: &ctx,
    };
    match p.evaluate(&r) {
        Decision::Allow(m) => {
            assert_eq!(m.statement_index, 0);
            m.principal_match
        }
        _ => None,
    }
}

#[test]
fn principal_match_kinds() {
    use PrincipalMatch::*;
    let p = resource_policy(&format!(r#"{{"AWS":"{USER}"}}"#));
    assert_eq!(principal_match(&p, Some(user())), Some(Direct));
    assert_eq!(principal_match(&p, Some(session())), None);
    assert_eq!(principal_match(&p, Some(root())), None);
    assert_eq!(principal_match(&p, None), None);

    let p = resource_policy(&format!(r#"{{"AWS":"{ROLE}"}}"#));
    assert_eq!(principal_match(&p, Some(session())), Some(Direct));
    assert_eq!(principal_match(&p, Some(user())), None);

    let p = resource_policy(&format!(r#"{{"AWS":["{SESSION}"]}}"#));
    assert_eq!(principal_match(&p, Some(session())), Some(Direct));
    assert_eq!(principal_match(&p, Some(user())), None);

    for acct in [
        format!(r#"{{"AWS":"{ACCT}"}}"#),
        format!(r#"{{"AWS":"{ROOT}"}}"#),
    ] {
        let p = resource_policy(&acct);
        assert_eq!(principal_match(&p, Some(user())), Some(Account));
        assert_eq!(principal_match(&p, Some(session())), Some(Account));
        assert_eq!(principal_match(&p, Some(root())), Some(Account));
        assert_eq!(principal_match(&p, Some(foreign())), None);
        assert_eq!(principal_match(&p, None), None);
    }

    for wild in [r#""*""#, r#"{"AWS":"*"}"#, r#"{"AWS":["*"]}"#] {
        let p = resource_policy(wild);
        assert_eq!(principal_match(&p, Some(user())), Some(Wildcard));
        assert_eq!(principal_match(&p, Some(foreign())), Some(Wildcard));
        assert_eq!(principal_match(&p, None), Some(Wildcard));
    }

    // strongest match wins when several entries match
    let p = resource_policy(&format!(r#"{{"AWS":["*","{ACCT}","{USER}"]}}"#));
    assert_eq!(principal_match(&p, Some(user())), Some(Direct));
    assert_eq!(principal_match(&p, Some(session())), Some(Account));
    assert_eq!(principal_match(&p, Some(foreign())), Some(Wildcard));
}

#[test]
fn service_principals() {
    let p = resource_policy(r#"{"Service":["cloudtrail.amazonaws.com"]}"#);
    let svc = PrincipalInfo {
        arn: "cloudtrail.amazonaws.com",
        account: "",
        role_arn: None,
        service: Some("cloudtrail.amazonaws.com"),
    };
    assert_eq!(principal_match(&p, Some(svc)), Some(PrincipalMatch::Direct));
    assert_eq!(principal_match(&p, Some(user())), None);
    let p = resource_policy(&format!(r#"{{"AWS":"{ACCT}"}}"#));
    assert_eq!(principal_match(&p, Some(svc)), None);
    let p = resource_policy(
        r#"{"Federated":"cognito-identity.amazonaws.com","CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#,
    );
    assert_eq!(principal_match(&p, Some(user())), None);
}

#[test]
fn identity_policy_ignores_request_principal() {
    let p = identity(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#);
    let ctx = Context::new();
    let r = Request {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/k",
        principal: Some(foreign()),
        context: &ctx,
    };
    assert!(matches!(
        p.evaluate(&r),
        Decision::Allow(Matched {
            principal_match: None,
            ..
        })
    ));
}

#[test]
fn not_principal() {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}},
        {{"Sid":"DenyOthers","Effect":"Deny","NotPrincipal":{{"AWS":["{USER}","{ROLE}"]}},"Action":"s3:*","Resource":"*"}}]}}"#
    );
    let p = parse(&doc, PolicyKind::Resource);
    let ctx = Context::new();
    let r = |who: Option<PrincipalInfo<'static>>| Request {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/k",
        principal: who,
        context: &ctx,
    };
    // listed user and sessions of the listed role are excluded from the deny
    assert!(p.evaluate(&r(Some(user()))).is_allow());
    assert!(p.evaluate(&r(Some(session()))).is_allow());
    // everyone else (incl. root of the same account and anonymous) is denied
    assert!(p.evaluate(&r(Some(root()))).is_explicit_deny());
    assert!(p.evaluate(&r(Some(foreign()))).is_explicit_deny());
    assert!(p.evaluate(&r(None)).is_explicit_deny());

    // A listed account excludes all of its principals.
    let doc = format!(
        r#"{{"Statement":{{"Effect":"Allow","NotPrincipal":{{"AWS":"{ACCT}"}},"Action":"s3:*","Resource":"*"}}}}"#
    );
    let p = parse(&doc, PolicyKind::Resource);
    assert!(!p.evaluate(&r(Some(user()))).is_allow());
    assert!(!p.evaluate(&r(Some(session()))).is_allow());
    assert_eq!(
        p.evaluate(&r(Some(foreign()))),
        Decision::Allow(Matched {
            statement_index: 0,
            sid: None,
            principal_match: Some(PrincipalMatch::Wildcard)
        })
    );
}

// ---------------------------------------------------------------- variables

#[test]
fn resource_variables() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}"#,
    );
    let ctx = Context::new().with("aws:username", "bob");
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/bob/f", &ctx))
            .is_allow()
    );
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/alice/f", &ctx))
            .is_allow()
    );
    // undefined variable: no match
    let empty = Context::new();
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home//f", &empty))
            .is_allow()
    );
    assert!(
        !p.evaluate(&req(
            "s3:GetObject",
            "arn:aws:s3:::home/${aws:username}/f",
            &empty
        ))
        .is_allow()
    );
    // substituted values are literal: a username containing `*` is not a wildcard
    let star = Context::new().with("aws:username", "*");
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/bob/f", &star))
            .is_allow()
    );
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/*/f", &star))
            .is_allow()
    );
}

#[test]
fn resource_variable_escapes_and_defaults() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::b/${*}${?}${$}","arn:aws:s3:::t/${aws:PrincipalTag/team, 'company-wide'}/*"]}"#,
    );
    let ctx = Context::new();
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/*?$", &ctx))
            .is_allow()
    );
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/xy$", &ctx))
            .is_allow()
    );
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::b/*x$", &ctx))
            .is_allow()
    );
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::t/company-wide/x", &ctx))
            .is_allow()
    );
    let ctx = Context::new().with("aws:principaltag/TEAM", "red");
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::t/red/x", &ctx))
            .is_allow()
    );
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::t/company-wide/x", &ctx))
            .is_allow()
    );
}

#[test]
fn not_resource_with_undefined_variable_does_not_apply() {
    let p = identity(
        r#"[{"Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Effect":"Deny","Action":"s3:*","NotResource":"arn:aws:s3:::home/${aws:username}/*"}]"#,
    );
    let ctx = Context::new().with("aws:username", "bob");
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/bob/x", &ctx))
            .is_allow()
    );
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/eve/x", &ctx))
            .is_explicit_deny()
    );
    let empty = Context::new();
    assert!(
        p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/eve/x", &empty))
            .is_allow()
    );
}

#[test]
fn version_2008_variables_literal() {
    let p = parse(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}}"#,
        PolicyKind::Identity,
    );
    let ctx = Context::new().with("aws:username", "bob");
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/bob/f", &ctx))
            .is_allow()
    );
    assert!(
        p.evaluate(&req(
            "s3:GetObject",
            "arn:aws:s3:::home/${aws:username}/f",
            &ctx
        ))
        .is_allow()
    );
    // absent Version behaves like 2008
    let p = parse(
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}}"#,
        PolicyKind::Identity,
    );
    assert!(
        !p.evaluate(&req("s3:GetObject", "arn:aws:s3:::home/bob/f", &ctx))
            .is_allow()
    );
}

// ---------------------------------------------------------------- real policies

#[test]
fn managed_policies() {
    let admin = parse(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#,
        PolicyKind::Identity,
    );
    assert!(allows(&admin, "iam:CreateUser", "*"));
    assert!(allows(
        &admin,
        "kms:Decrypt",
        "arn:aws:kms:us-east-1:111122223333:key/k"
    ));
    let s3full = parse(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}]}"#,
        PolicyKind::Identity,
    );
    assert!(allows(&s3full, "s3:PutObject", "arn:aws:s3:::b/k"));
    assert!(allows(&s3full, "s3:ListAllMyBuckets", "*"));
    assert!(allows(&s3full, "s3-object-lambda:GetObject", "*"));
    assert!(!allows(&s3full, "kms:Decrypt", "*"));
    assert!(!allows(&s3full, "iam:ListUsers", "*"));
    let ro = parse(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Describe*", "s3-object-lambda:Get*", "s3-object-lambda:List*"], "Resource": "*"}]}"#,
        PolicyKind::Identity,
    );
    assert!(allows(&ro, "s3:GetObject", "arn:aws:s3:::b/k"));
    assert!(!allows(&ro, "s3:PutObject", "arn:aws:s3:::b/k"));
    let kms_power = parse(
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:CreateAlias", "kms:CreateKey", "kms:DeleteAlias", "kms:Describe*", "kms:GenerateRandom", "kms:Get*", "kms:List*", "kms:TagResource", "kms:UntagResource", "iam:ListGroups", "iam:ListRoles", "iam:ListUsers"], "Resource": "*"}]}"#,
        PolicyKind::Identity,
    );
    assert!(allows(&kms_power, "kms:CreateKey", "*"));
    assert!(!allows(&kms_power, "kms:Encrypt", "*"));
}

const KMS_DEFAULT: &str = r#"{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::111122223333:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}"#;

#[test]
fn kms_default_key_policy() {
    let p = parse(KMS_DEFAULT, PolicyKind::Resource);
    assert_eq!(p.text(), KMS_DEFAULT);
    assert_eq!(p.id(), Some("key-default-1"));
    let s = &p.statements()[0];
    assert_eq!(s.sid.as_deref(), Some("Enable IAM User Permissions"));
    assert_eq!(
        s.principal().map(|p| p.aws.clone()),
        Some(vec![AwsPrincipal::Account(ACCT.into())])
    );
    let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let ctx = Context::new();
    let r = |who, action| Request {
        action,
        resource: key,
        principal: Some(who),
        context: &ctx,
    };
    for who in [user(), session(), root()] {
        assert_eq!(
            p.evaluate(&r(who, "kms:Decrypt")),
            Decision::Allow(Matched {
                statement_index: 0,
                sid: Some("Enable IAM User Permissions".into()),
                principal_match: Some(PrincipalMatch::Account)
            })
        );
        assert!(p.evaluate(&r(who, "kms:PutKeyPolicy")).is_allow());
        assert!(!p.evaluate(&r(who, "s3:GetObject")).is_allow());
    }
    assert_eq!(
        p.evaluate(&r(foreign(), "kms:Decrypt")),
        Decision::ImplicitDeny
    );
    // Also accepted as an identity policy? No: it names a principal.
    assert_eq!(
        parse_err(KMS_DEFAULT, PolicyKind::Identity),
        MSG_PRINCIPAL_FORBIDDEN
    );
}

#[test]
fn kms_console_and_aws_managed_key_policies() {
    let console = r#"{"Version":"2012-10-17","Id":"key-consolepolicy-3","Statement":[
      {"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
      {"Sid":"Allow access for Key Administrators","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/KMSAdminUser","arn:aws:iam::111122223333:role/KMSAdminRole"]},
       "Action":["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*","kms:Revoke*","kms:Disable*","kms:Get*","kms:Delete*","kms:TagResource","kms:UntagResource","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion"],"Resource":"*"},
      {"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/ExampleUser","arn:aws:iam::111122223333:role/ExampleRole","arn:aws:iam::444455556666:root"]},
       "Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"},
      {"Sid":"Allow attachment of persistent resources","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/ExampleUser","arn:aws:iam::111122223333:role/ExampleRole","arn:aws:iam::444455556666:root"]},
       "Action":["kms:CreateGrant","kms:ListGrants","kms:RevokeGrant"],"Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}]}"#;
    let p = parse(console, PolicyKind::Resource);
    let ex_user = PrincipalInfo {
        arn: "arn:aws:iam::111122223333:user/ExampleUser",
        account: ACCT,
        role_arn: None,
        service: None,
    };
    let ctx = Context::new();
    let r = Request {
        action: "kms:GenerateDataKeyWithoutPlaintext",
        resource: "*",
        principal: Some(ex_user),
        context: &ctx,
    };
    let allows = p.matching_allows(&r);
    let kinds: Vec<_> = allows
        .iter()
        .map(|m| (m.statement_index, m.principal_match))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (0, Some(PrincipalMatch::Account)),
            (2, Some(PrincipalMatch::Direct))
        ]
    );
    // grant statement needs the condition
    let r2 = Request {
        action: "kms:CreateGrant",
        ..r
    };
    assert_eq!(p.matching_allows(&r2).len(), 1);
    let ctx2 = Context::new().with("kms:GrantIsForAWSResource", "true");
    let r3 = Request {
        action: "kms:CreateGrant",
        context: &ctx2,
        ..r
    };
    assert_eq!(p.matching_allows(&r3).len(), 2);
    // foreign account root entry: Account match for a principal of that account
    let r4 = Request {
        principal: Some(foreign()),
        ..r
    };
    assert_eq!(
        p.matching_allows(&r4)
            .iter()
            .map(|m| m.principal_match)
            .collect::<Vec<_>>(),
        vec![Some(PrincipalMatch::Account)]
    );

    let aws_s3 = r#"{
  "Version" : "2012-10-17",
  "Id" : "auto-s3-2",
  "Statement" : [ {
    "Sid" : "Allow access through S3 for all principals in the account that are authorized to use S3",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "*"
    },
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {
      "StringEquals" : {
        "kms:CallerAccount" : "111122223333",
        "kms:ViaService" : "s3.us-east-1.amazonaws.com"
      }
    }
  }, {
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::111122223333:root"
    },
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  } ]
}"#;
    let p = parse(aws_s3, PolicyKind::Resource);
    let via = Context::new()
        .with("kms:CallerAccount", ACCT)
        .with("kms:ViaService", "s3.us-east-1.amazonaws.com");
    let direct = Context::new().with("kms:CallerAccount", ACCT);
    let mk = |ctx, action| Request {
        action,
        resource: "*",
        principal: Some(user()),
        context: ctx,
    };
    assert!(matches!(
        p.evaluate(&mk(&via, "kms:GenerateDataKey")),
        Decision::Allow(Matched {
            principal_match: Some(PrincipalMatch::Wildcard),
            ..
        })
    ));
    assert_eq!(
        p.evaluate(&mk(&direct, "kms:Decrypt")),
        Decision::ImplicitDeny
    );
    assert!(p.evaluate(&mk(&direct, "kms:DescribeKey")).is_allow());
}

#[test]
fn require_sse_kms_bucket_policy() {
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"DenyUnencrypted","Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*",
        "Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"aws:kms"}}}]}"#;
    let p = parse(doc, PolicyKind::Resource);
    let mk = |ctx| Request {
        action: "s3:PutObject",
        resource: "arn:aws:s3:::b/k",
        principal: Some(user()),
        context: ctx,
    };
    let none = Context::new();
    assert!(p.evaluate(&mk(&none)).is_explicit_deny());
    let aes = Context::new().with("s3:x-amz-server-side-encryption", "AES256");
    assert!(p.evaluate(&mk(&aes)).is_explicit_deny());
    let kms = Context::new().with("s3:x-amz-server-side-encryption", "aws:kms");
    assert_eq!(p.evaluate(&mk(&kms)), Decision::ImplicitDeny);
}

#[test]
fn trust_policy_evaluation() {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ROOT}"}},"Action":"sts:AssumeRole"}},
        {{"Effect":"Allow","Principal":{{"Service":"ec2.amazonaws.com"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let p = parse(&doc, PolicyKind::Trust);
    let ctx = Context::new();
    let r = Request {
        action: "sts:AssumeRole",
        resource: ROLE,
        principal: Some(user()),
        context: &ctx,
    };
    assert!(matches!(
        p.evaluate(&r),
        Decision::Allow(Matched {
            principal_match: Some(PrincipalMatch::Account),
            ..
        })
    ));
    assert_eq!(
        p.evaluate(&Request {
            principal: Some(foreign()),
            ..r
        }),
        Decision::ImplicitDeny
    );
    assert_eq!(
        p.evaluate(&Request {
            action: "sts:AssumeRoleWithSAML",
            ..r
        }),
        Decision::ImplicitDeny
    );
    let ec2 = PrincipalInfo {
        arn: "ec2.amazonaws.com",
        account: "",
        role_arn: None,
        service: Some("ec2.amazonaws.com"),
    };
    assert!(matches!(
        p.evaluate(&Request {
            principal: Some(ec2),
            ..r
        }),
        Decision::Allow(Matched {
            statement_index: 1,
            principal_match: Some(PrincipalMatch::Direct),
            ..
        })
    ));
}
