//! Property tests: monotonicity of Deny/Allow and glob matcher correctness.

use coffer_policy::*;
use proptest::prelude::*;

const ACTIONS: &[&str] = &[
    "*",
    "s3:*",
    "s3:Get*",
    "s3:GetObject",
    "S3:getobject",
    "s3:?utObject",
    "kms:*",
    "kms:Decrypt",
    "kms:Describe*",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::b/k",
    "arn:aws:s3:::?/k",
    "arn:aws:s3:::home/${aws:username}/*",
    "arn:aws:s3:::home/${aws:username, 'x'}/*",
    "arn:aws:kms:*",
];
const CONDITIONS: &[&str] = &[
    r#"{"StringEquals":{"aws:username":"bob"}}"#,
    r#"{"StringNotEquals":{"aws:username":"bob"}}"#,
    r#"{"StringLike":{"s3:prefix":"home/*"}}"#,
    r#"{"StringNotLikeIfExists":{"s3:prefix":"home/${aws:username}/*"}}"#,
    r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
    r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#,
    r#"{"Null":{"aws:username":"true"}}"#,
    r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["a","b"]}}"#,
    r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"a*"}}"#,
    r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}"#,
    r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#,
];
const PRINCIPALS: &[&str] = &[
    r#""*""#,
    r#"{"AWS":"111122223333"}"#,
    r#"{"AWS":"arn:aws:iam::111122223333:user/alice"}"#,
    r#"{"AWS":"arn:aws:iam::111122223333:role/R"}"#,
    r#"{"AWS":["444455556666","arn:aws:iam::111122223333:root"]}"#,
    r#"{"Service":"s3.amazonaws.com"}"#,
];

const REQ_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "kms:Decrypt",
    "kms:DescribeKey",
    "iam:ListUsers",
];
const REQ_RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::b/k",
    "arn:aws:s3:::b/other",
    "arn:aws:s3:::home/bob/f",
    "arn:aws:s3:::home/x/f",
    "arn:aws:kms:us-east-1:111122223333:key/k",
];

#[derive(Debug, Clone)]
struct StmtSpec {
    deny: bool,
    not_action: bool,
    actions: Vec<usize>,
    not_resource: bool,
    resources: Vec<usize>,
    principal: (bool, usize),
    conditions: Vec<usize>,
}

fn stmt_strategy() -> impl Strategy<Value = StmtSpec> {
    (
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::collection::vec(0..ACTIONS.len(), 1..3),
        prop::bool::weighted(0.2),
        prop::collection::vec(0..RESOURCES.len(), 1..3),
        (prop::bool::weighted(0.2), 0..PRINCIPALS.len()),
        prop::collection::vec(0..CONDITIONS.len(), 0..3),
    )
        .prop_map(
            |(deny, not_action, actions, not_resource, resources, principal, conditions)| {
                StmtSpec {
                    deny,
                    not_action,
                    actions,
                    not_resource,
                    resources,
                    principal,
                    conditions,
                }
            },
        )
}

fn json_list(items: &[usize], table: &[&str]) -> String {
    let v: Vec<String> = items.iter().map(|i| format!("\"{}\"", table[*i])).collect();
    format!("[{}]", v.join(","))
}

fn render_stmt(s: &StmtSpec, kind: PolicyKind) -> String {
    let mut parts = vec![format!(
        "\"Effect\":\"{}\"",
        if s.deny { "Deny" } else { "Allow" }
    )];
    parts.push(format!(
        "\"{}\":{}",
        if s.not_action { "NotAction" } else { "Action" },
        json_list(&s.actions, ACTIONS)
    ));
    parts.push(format!(
        "\"{}\":{}",
        if s.not_resource {
            "NotResource"
        } else {
            "Resource"
        },
        json_list(&s.resources, RESOURCES)
    ));
    if kind != PolicyKind::Identity {
        parts.push(format!(
            "\"{}\":{}",
            if s.principal.0 {
                "NotPrincipal"
            } else {
                "Principal"
            },
            PRINCIPALS[s.principal.1]
        ));
    }
    if !s.conditions.is_empty() {
        // Merge condition snippets into one block (deduplicated by operator).
        let mut map = serde_json::Map::new();
        for c in &s.conditions {
            if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(CONDITIONS[*c]) {
                for (k, v) in o {
                    map.insert(k, v);
                }
            }
        }
        parts.push(format!("\"Condition\":{}", serde_json::Value::Object(map)));
    }
    format!("{{{}}}", parts.join(","))
}

fn render(stmts: &[StmtSpec], kind: PolicyKind) -> Policy {
    let body: Vec<String> = stmts.iter().map(|s| render_stmt(s, kind)).collect();
    let doc = format!(
        "{{\"Version\":\"2012-10-17\",\"Statement\":[{}]}}",
        body.join(",")
    );
    match Policy::parse(&doc, kind) {
        Ok(p) => p,
        Err(e) => panic!("generated policy failed to parse: {e}\n{doc}"),
    }
}

#[derive(Debug, Clone)]
struct ReqSpec {
    action: usize,
    resource: usize,
    principal: usize,
    username: Option<&'static str>,
    prefix: Option<&'static str>,
    tls: Option<bool>,
    ip: Option<&'static str>,
    max_keys: Option<&'static str>,
    tags: Option<Vec<&'static str>>,
}

fn req_strategy() -> impl Strategy<Value = ReqSpec> {
    (
        0..REQ_ACTIONS.len(),
        0..REQ_RESOURCES.len(),
        0..5usize,
        prop::option::of(prop::sample::select(vec!["bob", "x", "*"])),
        prop::option::of(prop::sample::select(vec!["home/bob/", "home/", "other"])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["10.1.1.1", "192.168.0.1", "::1"])),
        prop::option::of(prop::sample::select(vec!["5", "50"])),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["a", "b", "ab", "c"]),
            0..3,
        )),
    )
        .prop_map(
            |(action, resource, principal, username, prefix, tls, ip, max_keys, tags)| ReqSpec {
                action,
                resource,
                principal,
                username,
                prefix,
                tls,
                ip,
                max_keys,
                tags,
            },
        )
}

fn principal_of(i: usize) -> Option<PrincipalInfo<'static>> {
    match i {
        0 => None,
        1 => Some(PrincipalInfo {
            arn: "arn:aws:iam::111122223333:user/alice",
            account: "111122223333",
            role_arn: None,
            service: None,
        }),
        2 => Some(PrincipalInfo {
            arn: "arn:aws:sts::111122223333:assumed-role/R/s",
            account: "111122223333",
            role_arn: Some("arn:aws:iam::111122223333:role/R"),
            service: None,
        }),
        3 => Some(PrincipalInfo {
            arn: "arn:aws:iam::444455556666:user/eve",
            account: "444455556666",
            role_arn: None,
            service: None,
        }),
        _ => Some(PrincipalInfo {
            arn: "s3.amazonaws.com",
            account: "",
            role_arn: None,
            service: Some("s3.amazonaws.com"),
        }),
    }
}

fn context_of(r: &ReqSpec) -> Context {
    let mut c = Context::new();
    if let Some(u) = r.username {
        c.set("aws:username", u);
    }
    if let Some(p) = r.prefix {
        c.set("s3:prefix", p);
    }
    if let Some(t) = r.tls {
        c.set("aws:SecureTransport", t.to_string());
    }
    if let Some(ip) = r.ip {
        c.set("aws:SourceIp", ip);
    }
    if let Some(m) = r.max_keys {
        c.set("s3:max-keys", m);
    }
    if let Some(tags) = &r.tags {
        c.set_multi("aws:TagKeys", tags.iter().map(|s| s.to_string()).collect());
    }
    if r.principal == 2 {
        c.set("aws:PrincipalArn", "arn:aws:iam::111122223333:role/R");
    }
    c.set("aws:CurrentTime", "2025-01-01T00:00:00Z");
    c
}

fn decide(policy: &Policy, r: &ReqSpec, ctx: &Context) -> Decision {
    let req = Request {
        action: REQ_ACTIONS[r.action],
        resource: REQ_RESOURCES[r.resource],
        principal: principal_of(r.principal),
        context: ctx,
    };
    policy.evaluate(&req)
}

fn kind_strategy() -> impl Strategy<Value = PolicyKind> {
    prop::sample::select(vec![
        PolicyKind::Identity,
        PolicyKind::Resource,
        PolicyKind::Trust,
    ])
}

/// Exponential-time reference glob matcher.
fn reference_glob(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| reference_glob(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && reference_glob(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && reference_glob(rest, &t[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Adding a Deny statement never widens access.
    #[test]
    fn adding_deny_never_widens(
        kind in kind_strategy(),
        stmts in prop::collection::vec(stmt_strategy(), 1..4),
        mut extra in stmt_strategy(),
        pos in 0usize..4,
        r in req_strategy(),
    ) {
        extra.deny = true;
        let before = render(&stmts, kind);
        let mut with = stmts.clone();
        with.insert(pos.min(stmts.len()), extra);
        let after = render(&with, kind);
        let ctx = context_of(&r);
        let d0 = decide(&before, &r, &ctx);
        let d1 = decide(&after, &r, &ctx);
        if !d0.is_allow() {
            prop_assert!(!d1.is_allow(), "{d0:?} -> {d1:?}");
        }
        if d0.is_explicit_deny() {
            prop_assert!(d1.is_explicit_deny(), "{d0:?} -> {d1:?}");
        }
    }

    /// Adding an Allow statement never removes access (and never removes an
    /// explicit deny).
    #[test]
    fn adding_allow_never_narrows(
        kind in kind_strategy(),
        stmts in prop::collection::vec(stmt_strategy(), 1..4),
        mut extra in stmt_strategy(),
        pos in 0usize..4,
        r in req_strategy(),
    ) {
        extra.deny = false;
        let before = render(&stmts, kind);
        let mut with = stmts.clone();
        with.insert(pos.min(stmts.len()), extra);
        let after = render(&with, kind);
        let ctx = context_of(&r);
        let d0 = decide(&before, &r, &ctx);
        let d1 = decide(&after, &r, &ctx);
        if d0.is_allow() {
            prop_assert!(d1.is_allow(), "{d0:?} -> {d1:?}");
        }
        prop_assert_eq!(d0.is_explicit_deny(), d1.is_explicit_deny());
    }

    /// evaluate_all over single-statement policies agrees with one combined
    /// policy on allow / explicit-deny.
    #[test]
    fn evaluate_all_matches_combined(
        kind in kind_strategy(),
        stmts in prop::collection::vec(stmt_strategy(), 1..4),
        r in req_strategy(),
    ) {
        let combined = render(&stmts, kind);
        let singles: Vec<Policy> = stmts.iter().map(|s| render(std::slice::from_ref(s), kind)).collect();
        let ctx = context_of(&r);
        let req = Request {
            action: REQ_ACTIONS[r.action],
            resource: REQ_RESOURCES[r.resource],
            principal: principal_of(r.principal),
            context: &ctx,
        };
        let a = combined.evaluate(&req);
        let b = evaluate_all(&singles, &req);
        prop_assert_eq!(a.is_allow(), b.is_allow());
        prop_assert_eq!(a.is_explicit_deny(), b.is_explicit_deny());
    }

    /// The iterative glob matcher agrees with a naive recursive matcher.
    #[test]
    fn glob_agrees_with_reference(
        pat in "[ab*?/:]{0,10}",
        text in "[ab/:]{0,12}",
    ) {
        let p: Vec<char> = pat.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(glob_match(&pat, &text), reference_glob(&p, &t));
    }

    /// `*` matches everything; a wildcard-free pattern matches exactly itself.
    #[test]
    fn glob_star_and_literal(text in "\\PC{0,30}", other in "[a-z]{0,5}") {
        prop_assert!(glob_match("*", &text));
        let literal: String = text.chars().filter(|c| *c != '*' && *c != '?').collect();
        prop_assert!(glob_match(&literal, &literal));
        prop_assert_eq!(glob_match(&literal, &other), literal == other);
        let prefixed = format!("{literal}*");
        let joined = format!("{literal}{other}");
        prop_assert!(glob_match(&prefixed, &joined));
    }

    /// Parsing never panics on arbitrary input.
    #[test]
    fn parse_never_panics(doc in "\\PC{0,200}") {
        let _ = Policy::parse(&doc, PolicyKind::Identity);
        let _ = Policy::parse(&doc, PolicyKind::Resource);
        let _ = size_without_whitespace(&doc);
    }
}
