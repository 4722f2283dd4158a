//! IAM policy parsing and evaluation on arbitrary documents.
//!
//! Input: a policy document (any bytes; lossily UTF-8). It is parsed as identity, resource and
//! trust policy and as an S3 bucket policy; each that parses is evaluated against fixed
//! requests (with and without principal, with a rich condition context). Inputs starting with
//! byte 0x01 instead test `glob_match` (pattern and text split at the first newline) against a
//! simple reference matcher.
//!
//! Checked: never panics; `evaluate` agrees with `matching_allows`/`matching_denies` and with
//! `evaluate_all` over the single policy; `glob_match` agrees with the reference.
#![no_main]

use coffer_policy::{
    Context, Decision, Policy, PolicyKind, PrincipalInfo, Request, evaluate_all, glob_match,
    size_without_whitespace,
};
use libfuzzer_sys::fuzz_target;

/// Reference glob: `*` any run of chars, `?` one char, everything else literal (DP).
fn reference_glob(p: &[char], t: &[char]) -> bool {
    let mut dp = vec![vec![false; t.len() + 1]; p.len() + 1];
    dp[0][0] = true;
    for i in 1..=p.len() {
        dp[i][0] = dp[i - 1][0] && p[i - 1] == '*';
        for j in 1..=t.len() {
            dp[i][j] = match p[i - 1] {
                '*' => dp[i - 1][j] || dp[i][j - 1],
                '?' => dp[i - 1][j - 1],
                c => dp[i - 1][j - 1] && c == t[j - 1],
            };
        }
    }
    dp[p.len()][t.len()]
}

fn context() -> Context {
    Context::new()
        .with("aws:username", "alice")
        .with("aws:userid", "AIDAEXAMPLE")
        .with("aws:PrincipalArn", "arn:aws:iam::123456789012:user/alice")
        .with("aws:PrincipalAccount", "123456789012")
        .with("aws:SourceIp", "203.0.113.7")
        .with("aws:CurrentTime", "2024-03-15T10:20:30Z")
        .with("aws:EpochTime", "1710498030")
        .with("aws:SecureTransport", "true")
        .with("aws:MultiFactorAuthAge", "300")
        .with("s3:prefix", "home/alice/")
        .with("s3:max-keys", "100")
        .with("kms:EncryptionContext:team", "blue")
        .with("aws:RequestTag/env", "prod")
        .with_multi("aws:TagKeys", vec!["env".into(), "team".into()])
        .with_multi("kms:EncryptionContextKeys", vec!["team".into()])
}

fn check(p: &Policy, req: &Request) {
    let d = p.evaluate(req);
    let allows = p.matching_allows(req);
    let denies = p.matching_denies(req);
    match &d {
        Decision::ExplicitDeny(m) => assert_eq!(denies.first(), Some(m)),
        Decision::Allow(m) => {
            assert!(denies.is_empty());
            assert_eq!(allows.first(), Some(m));
        }
        Decision::ImplicitDeny => assert!(allows.is_empty() && denies.is_empty()),
    }
    assert_eq!(evaluate_all([p], req), d);
    for st in p.statements() {
        let _ = st.applies(p.kind(), req);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((&1, rest)) = data.split_first() {
        let s = String::from_utf8_lossy(rest);
        let (pat, text) = s.split_once('\n').unwrap_or((&s, ""));
        let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), text.chars().collect());
        if p.len() <= 256 && t.len() <= 256 {
            assert_eq!(
                glob_match(pat, text),
                reference_glob(&p, &t),
                "glob_match({pat:?}, {text:?})"
            );
        }
        return;
    }

    let doc = String::from_utf8_lossy(data);
    let _ = size_without_whitespace(&doc);
    let ctx = context();
    let empty = Context::new();
    let user = PrincipalInfo {
        arn: "arn:aws:iam::123456789012:user/alice",
        account: "123456789012",
        role_arn: None,
        service: None,
    };
    let session = PrincipalInfo {
        arn: "arn:aws:sts::123456789012:assumed-role/Admin/s1",
        account: "123456789012",
        role_arn: Some("arn:aws:iam::123456789012:role/Admin"),
        service: None,
    };
    let service = PrincipalInfo {
        arn: "",
        account: "",
        role_arn: None,
        service: Some("s3.amazonaws.com"),
    };
    let requests = [
        ("s3:GetObject", "arn:aws:s3:::bucket/home/alice/notes.txt"),
        ("s3:ListBucket", "arn:aws:s3:::bucket"),
        (
            "kms:Decrypt",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        ("iam:CreateUser", "arn:aws:iam::123456789012:user/bob"),
        ("sts:AssumeRole", "arn:aws:iam::123456789012:role/Admin"),
        ("iam:ListUsers", "*"),
    ];

    let parsed = [
        Policy::parse(&doc, PolicyKind::Identity),
        Policy::parse(&doc, PolicyKind::Resource),
        Policy::parse(&doc, PolicyKind::Trust),
        Policy::parse_bucket_policy(&doc),
    ];
    for p in parsed.iter().flatten() {
        assert_eq!(p.text(), doc);
        let _ = (p.version(), p.has_version(), p.id());
        for (action, resource) in requests {
            for principal in [None, Some(user), Some(session), Some(service)] {
                for c in [&ctx, &empty] {
                    check(
                        p,
                        &Request {
                            action,
                            resource,
                            principal,
                            context: c,
                        },
                    );
                }
            }
        }
    }
    let ok: Vec<&Policy> = parsed.iter().flatten().collect();
    let req = Request {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::bucket/home/alice/notes.txt",
        principal: Some(user),
        context: &ctx,
    };
    let _ = evaluate_all(ok, &req);
});
