//! Condition operator tests: every operator, positive/negative, missing key,
//! IfExists and set operators.

use coffer_policy::*;

/// Evaluate an identity policy `Allow * *` with the given Condition block.
fn check(condition: &str, ctx: &Context) -> bool {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}]}}"#
    );
    let policy = match Policy::parse(&doc, PolicyKind::Identity) {
        Ok(p) => p,
        Err(e) => panic!("parse failed for {condition}: {e}"),
    };
    let req = Request {
        action: "s3:GetObject",
        resource: "arn:aws:s3:::b/k",
        principal: None,
        context: ctx,
    };
    policy.evaluate(&req).is_allow()
}

fn parse_err(condition: &str) -> String {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}]}}"#
    );
    match Policy::parse(&doc, PolicyKind::Identity) {
        Ok(_) => panic!("expected parse error for {condition}"),
        Err(e) => e.message,
    }
}

fn ctx1(k: &str, v: &str) -> Context {
    Context::new().with(k, v)
}

fn empty() -> Context {
    Context::new()
}

#[test]
fn string_equals() {
    let c = r#"{"StringEquals":{"s3:prefix":["home/","docs/"]}}"#;
    assert!(check(c, &ctx1("s3:prefix", "home/")));
    assert!(check(c, &ctx1("s3:prefix", "docs/")));
    assert!(!check(c, &ctx1("s3:prefix", "HOME/")));
    assert!(!check(c, &ctx1("s3:prefix", "other")));
    assert!(!check(c, &empty()));
    // wildcards are literal for Equals
    let c = r#"{"StringEquals":{"s3:prefix":"a*"}}"#;
    assert!(check(c, &ctx1("s3:prefix", "a*")));
    assert!(!check(c, &ctx1("s3:prefix", "abc")));
}

#[test]
fn string_not_equals() {
    let c = r#"{"StringNotEquals":{"s3:x-amz-server-side-encryption":["aws:kms","AES256"]}}"#;
    assert!(check(c, &ctx1("s3:x-amz-server-side-encryption", "none")));
    assert!(!check(
        c,
        &ctx1("s3:x-amz-server-side-encryption", "aws:kms")
    ));
    assert!(!check(
        c,
        &ctx1("s3:x-amz-server-side-encryption", "AES256")
    ));
    assert!(check(c, &ctx1("s3:x-amz-server-side-encryption", "aes256")));
    // missing key: negated ⇒ true
    assert!(check(c, &empty()));
}

#[test]
fn string_ignore_case() {
    let c = r#"{"StringEqualsIgnoreCase":{"aws:username":"Bob"}}"#;
    assert!(check(c, &ctx1("aws:username", "bob")));
    assert!(check(c, &ctx1("aws:username", "BOB")));
    assert!(!check(c, &ctx1("aws:username", "bobby")));
    assert!(!check(c, &empty()));
    let c = r#"{"StringNotEqualsIgnoreCase":{"aws:username":"Bob"}}"#;
    assert!(!check(c, &ctx1("aws:username", "bOb")));
    assert!(check(c, &ctx1("aws:username", "alice")));
    assert!(check(c, &empty()));
}

#[test]
fn string_like() {
    let c = r#"{"StringLike":{"s3:prefix":["home/*","a?c"]}}"#;
    assert!(check(c, &ctx1("s3:prefix", "home/x/y")));
    assert!(check(c, &ctx1("s3:prefix", "abc")));
    assert!(!check(c, &ctx1("s3:prefix", "abbc")));
    assert!(!check(c, &ctx1("s3:prefix", "Home/x")));
    assert!(!check(c, &empty()));
    let c = r#"{"StringNotLike":{"s3:prefix":"home/*"}}"#;
    assert!(!check(c, &ctx1("s3:prefix", "home/x")));
    assert!(check(c, &ctx1("s3:prefix", "other")));
    assert!(check(c, &empty()));
}

#[test]
fn numeric_operators() {
    let k = "s3:max-keys";
    let cases: &[(&str, &str, bool)] = &[
        ("NumericEquals", "10", true),
        ("NumericEquals", "10.0", true),
        ("NumericEquals", "11", false),
        ("NumericNotEquals", "10", false),
        ("NumericNotEquals", "11", true),
        ("NumericLessThan", "9", true),
        ("NumericLessThan", "10", false),
        ("NumericLessThanEquals", "10", true),
        ("NumericLessThanEquals", "11", false),
        ("NumericGreaterThan", "11", true),
        ("NumericGreaterThan", "10", false),
        ("NumericGreaterThanEquals", "10", true),
        ("NumericGreaterThanEquals", "9", false),
        ("NumericEquals", "abc", false),
    ];
    for (op, v, want) in cases {
        // policy value as JSON string and as JSON number
        for pv in ["\"10\"", "10"] {
            let c = format!(r#"{{"{op}":{{"{k}":{pv}}}}}"#);
            assert_eq!(check(&c, &ctx1(k, v)), *want, "{op} {pv} vs {v}");
        }
    }
    assert!(!check(
        r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#,
        &empty()
    ));
    assert!(check(
        r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#,
        &empty()
    ));
    assert!(check(
        r#"{"NumericLessThanIfExists":{"s3:max-keys":"10"}}"#,
        &empty()
    ));
    assert!(!check(
        r#"{"NumericLessThanIfExists":{"s3:max-keys":"10"}}"#,
        &ctx1(k, "20")
    ));
    assert_eq!(
        parse_err(r#"{"NumericEquals":{"s3:max-keys":"ten"}}"#),
        MSG_SYNTAX
    );
}

#[test]
fn date_operators() {
    let k = "aws:CurrentTime";
    let policy_forms = [
        "\"2020-06-01T00:00:00Z\"",
        "\"2020-06-01\"",
        "\"2020-06-01T00:00:00.000Z\"",
        "\"2020-06-01T02:00:00+02:00\"",
        "1590969600",
        "\"1590969600\"",
    ];
    for pv in policy_forms {
        let t = |op: &str, v: &str| check(&format!(r#"{{"{op}":{{"{k}":{pv}}}}}"#), &ctx1(k, v));
        assert!(t("DateEquals", "2020-06-01T00:00:00Z"), "{pv}");
        assert!(t("DateEquals", "1590969600"), "{pv}");
        assert!(!t("DateEquals", "2020-06-01T00:00:01Z"), "{pv}");
        assert!(t("DateNotEquals", "2020-06-01T00:00:01Z"), "{pv}");
        assert!(!t("DateNotEquals", "2020-06-01T00:00:00.000Z"), "{pv}");
        assert!(t("DateLessThan", "2020-05-31T23:59:59Z"), "{pv}");
        assert!(!t("DateLessThan", "2020-06-01T00:00:00Z"), "{pv}");
        assert!(t("DateLessThanEquals", "2020-06-01T00:00:00Z"), "{pv}");
        assert!(!t("DateLessThanEquals", "2020-06-01T00:00:00.001Z"), "{pv}");
        assert!(t("DateGreaterThan", "2020-06-01T00:00:00.001Z"), "{pv}");
        assert!(!t("DateGreaterThan", "2020-06-01"), "{pv}");
        assert!(
            t("DateGreaterThanEquals", "2020-06-01T00:00:00+00:00"),
            "{pv}"
        );
        assert!(!t("DateGreaterThanEquals", "1590969599"), "{pv}");
        assert!(!t("DateEquals", "not a date"), "{pv}");
    }
    assert!(!check(
        r#"{"DateLessThan":{"aws:CurrentTime":"2020-01-01"}}"#,
        &empty()
    ));
    assert!(check(
        r#"{"DateNotEquals":{"aws:CurrentTime":"2020-01-01"}}"#,
        &empty()
    ));
    assert!(check(
        r#"{"DateLessThanIfExists":{"aws:CurrentTime":"2020-01-01"}}"#,
        &empty()
    ));
    assert_eq!(
        parse_err(r#"{"DateEquals":{"aws:CurrentTime":"yesterday"}}"#),
        MSG_SYNTAX
    );
}

#[test]
fn bool_operator() {
    let k = "aws:SecureTransport";
    for pv in ["true", "\"true\"", "\"TRUE\""] {
        let c = format!(r#"{{"Bool":{{"{k}":{pv}}}}}"#);
        assert!(check(&c, &ctx1(k, "true")), "{pv}");
        assert!(check(&c, &ctx1(k, "True")), "{pv}");
        assert!(!check(&c, &ctx1(k, "false")), "{pv}");
        assert!(!check(&c, &empty()), "{pv}");
    }
    let c = r#"{"Bool":{"aws:SecureTransport":false}}"#;
    assert!(check(c, &ctx1(k, "false")));
    assert!(!check(c, &ctx1(k, "true")));
    assert!(check(
        r#"{"BoolIfExists":{"aws:SecureTransport":"false"}}"#,
        &empty()
    ));
    // classic "deny insecure transport"
    let c = r#"{"Bool":{"kms:GrantIsForAWSResource":true}}"#;
    assert!(check(c, &ctx1("kms:GrantIsForAWSResource", "true")));
}

#[test]
fn binary_equals() {
    // "hello" = aGVsbG8=
    let c = r#"{"BinaryEquals":{"aws:SomeBinary":"aGVsbG8="}}"#;
    assert!(check(c, &ctx1("aws:SomeBinary", "aGVsbG8=")));
    assert!(check(c, &ctx1("aws:SomeBinary", "hello")));
    assert!(!check(c, &ctx1("aws:SomeBinary", "aGVsbG9=")));
    assert!(!check(c, &ctx1("aws:SomeBinary", "bye")));
    assert!(!check(c, &empty()));
    assert!(check(
        r#"{"BinaryEqualsIfExists":{"aws:SomeBinary":"aGVsbG8="}}"#,
        &empty()
    ));
    assert_eq!(
        parse_err(r#"{"BinaryEquals":{"aws:SomeBinary":"!!"}}"#),
        MSG_SYNTAX
    );
}

#[test]
fn ip_address() {
    let k = "aws:SourceIp";
    let c = r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.7","2001:db8::/32"]}}"#;
    assert!(check(c, &ctx1(k, "10.1.2.3")));
    assert!(check(c, &ctx1(k, "192.168.1.7")));
    assert!(!check(c, &ctx1(k, "192.168.1.8")));
    assert!(check(c, &ctx1(k, "2001:db8:abcd::1")));
    assert!(!check(c, &ctx1(k, "2001:db9::1")));
    assert!(check(c, &ctx1(k, "::ffff:10.0.0.1")));
    assert!(!check(c, &ctx1(k, "not-an-ip")));
    assert!(!check(c, &empty()));
    let c = r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#;
    assert!(!check(c, &ctx1(k, "10.9.9.9")));
    assert!(check(c, &ctx1(k, "11.0.0.1")));
    assert!(check(c, &empty()));
    assert!(check(
        r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        &empty()
    ));
    assert_eq!(
        parse_err(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/40"}}"#),
        MSG_SYNTAX
    );
    assert_eq!(
        parse_err(r#"{"IpAddress":{"aws:SourceIp":"nope"}}"#),
        MSG_SYNTAX
    );
}

#[test]
fn arn_operators() {
    let k = "aws:SourceArn";
    let role = "arn:aws:iam::123456789012:role/path/R";
    for op in ["ArnEquals", "ArnLike"] {
        let c = format!(r#"{{"{op}":{{"{k}":"arn:aws:iam::*:role/*"}}}}"#);
        assert!(check(&c, &ctx1(k, role)), "{op}");
        assert!(
            !check(&c, &ctx1(k, "arn:aws:iam::123456789012:user/u")),
            "{op}"
        );
        assert!(!check(&c, &ctx1(k, "arn:aws:iam:role/x")), "{op}");
        assert!(!check(&c, &empty()), "{op}");
        let c = format!(r#"{{"{op}":{{"{k}":"{role}"}}}}"#);
        assert!(check(&c, &ctx1(k, role)), "{op}");
        assert!(!check(&c, &ctx1(k, &role.to_uppercase())), "{op}");
    }
    // `*` in one component doesn't span components
    let c = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:*:role/R"}}"#;
    assert!(!check(c, &ctx1(k, "arn:aws:iam::1:role/R")));
    for op in ["ArnNotEquals", "ArnNotLike"] {
        let c = format!(r#"{{"{op}":{{"{k}":"arn:aws:iam::*:role/*"}}}}"#);
        assert!(!check(&c, &ctx1(k, role)), "{op}");
        assert!(check(&c, &ctx1(k, "arn:aws:s3:::bucket")), "{op}");
        assert!(check(&c, &empty()), "{op}");
    }
    assert!(check(
        r#"{"ArnLikeIfExists":{"aws:SourceArn":"arn:aws:s3:::x"}}"#,
        &empty()
    ));
}

#[test]
fn null_operator() {
    let k = "aws:TokenIssueTime";
    let c = r#"{"Null":{"aws:TokenIssueTime":"true"}}"#;
    assert!(check(c, &empty()));
    assert!(!check(c, &ctx1(k, "2020-01-01T00:00:00Z")));
    let c = r#"{"Null":{"aws:TokenIssueTime":false}}"#;
    assert!(!check(c, &empty()));
    assert!(check(c, &ctx1(k, "x")));
    // empty multi-valued key counts as absent
    let c = r#"{"Null":{"aws:TagKeys":"true"}}"#;
    assert!(check(c, &Context::new().with_multi("aws:TagKeys", vec![])));
    assert_eq!(
        parse_err(r#"{"NullIfExists":{"aws:TokenIssueTime":"true"}}"#),
        "Invalid Condition type : NullIfExists"
    );
    assert_eq!(
        parse_err(r#"{"Null":{"aws:TokenIssueTime":"maybe"}}"#),
        MSG_SYNTAX
    );
}

#[test]
fn if_exists_present_key_still_checked() {
    let c = r#"{"StringEqualsIfExists":{"aws:RequestedRegion":"us-east-1"}}"#;
    assert!(check(c, &empty()));
    assert!(check(c, &ctx1("aws:RequestedRegion", "us-east-1")));
    assert!(!check(c, &ctx1("aws:RequestedRegion", "eu-west-1")));
    let c = r#"{"StringNotEqualsIfExists":{"aws:RequestedRegion":"us-east-1"}}"#;
    assert!(check(c, &empty()));
    assert!(!check(c, &ctx1("aws:RequestedRegion", "us-east-1")));
}

fn multi(k: &str, vals: &[&str]) -> Context {
    Context::new().with_multi(k, vals.iter().map(|s| s.to_string()).collect())
}

#[test]
fn for_any_value() {
    let k = "aws:TagKeys";
    let c = r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","team"]}}"#;
    assert!(check(c, &multi(k, &["env", "other"])));
    assert!(!check(c, &multi(k, &["x", "y"])));
    assert!(!check(c, &multi(k, &[])));
    assert!(!check(c, &empty()));
    assert!(check(c, &ctx1(k, "team")));
    assert!(check(
        r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"env"}}"#,
        &empty()
    ));
    // negated: at least one request value matches none of the policy values
    let c = r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["env","team"]}}"#;
    assert!(check(c, &multi(k, &["env", "other"])));
    assert!(!check(c, &multi(k, &["env", "team"])));
    assert!(!check(c, &empty()));
}

#[test]
fn for_all_values() {
    let k = "kms:EncryptionContextKeys";
    let c = r#"{"ForAllValues:StringLike":{"kms:EncryptionContextKeys":["app","dep*"]}}"#;
    assert!(check(c, &multi(k, &["app", "department"])));
    assert!(!check(c, &multi(k, &["app", "other"])));
    // absent / empty ⇒ true
    assert!(check(c, &multi(k, &[])));
    assert!(check(c, &empty()));
    let c = r#"{"ForAllValues:StringNotEquals":{"kms:EncryptionContextKeys":["secret"]}}"#;
    assert!(check(c, &multi(k, &["a", "b"])));
    assert!(!check(c, &multi(k, &["a", "secret"])));
    assert!(check(c, &empty()));
    // Paired with Null to require presence.
    let c = r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":"app"},"Null":{"kms:EncryptionContextKeys":"false"}}"#;
    assert!(!check(c, &empty()));
    assert!(check(c, &multi(k, &["app"])));
}

#[test]
fn plain_operator_on_multi_valued_key() {
    let c = r#"{"StringEquals":{"aws:TagKeys":"env"}}"#;
    assert!(check(c, &multi("aws:TagKeys", &["x", "env"])));
    assert!(!check(c, &multi("aws:TagKeys", &["x"])));
    let c = r#"{"StringNotEquals":{"aws:TagKeys":"env"}}"#;
    assert!(!check(c, &multi("aws:TagKeys", &["x", "env"])));
    assert!(check(c, &multi("aws:TagKeys", &["x"])));
}

#[test]
fn and_or_semantics() {
    // operators AND, keys AND, values OR
    let c = r#"{"StringEquals":{"aws:username":["a","b"],"aws:PrincipalAccount":"111122223333"},"Bool":{"aws:SecureTransport":"true"}}"#;
    let full = Context::new()
        .with("aws:username", "b")
        .with("aws:PrincipalAccount", "111122223333")
        .with("aws:SecureTransport", "true");
    assert!(check(c, &full));
    let mut no_tls = full.clone();
    no_tls.set("aws:SecureTransport", "false");
    assert!(!check(c, &no_tls));
    let mut other_user = full.clone();
    other_user.set("aws:username", "c");
    assert!(!check(c, &other_user));
    let mut no_account = full.clone();
    no_account.remove("aws:PrincipalAccount");
    assert!(!check(c, &no_account));
}

#[test]
fn condition_keys_case_insensitive() {
    let c = r#"{"StringEquals":{"KMS:EncryptionContext:Project":"alpha"}}"#;
    assert!(check(c, &ctx1("kms:encryptioncontext:project", "alpha")));
    assert!(!check(c, &ctx1("kms:encryptioncontext:project", "ALPHA")));
    // operator names too
    assert!(check(
        r#"{"stringequals":{"aws:username":"a"}}"#,
        &ctx1("AWS:USERNAME", "a")
    ));
}

#[test]
fn invalid_operators_and_keys() {
    assert_eq!(
        parse_err(r#"{"Foo":{"aws:username":"a"}}"#),
        "Invalid Condition type : Foo"
    );
    assert_eq!(
        parse_err(r#"{"ForAnyValue:Foo":{"aws:username":"a"}}"#),
        "Invalid Condition type : ForAnyValue:Foo"
    );
    assert_eq!(
        parse_err(r#"{"StringEqualsIfExistsIfExists":{"aws:username":"a"}}"#),
        "Invalid Condition type : StringEqualsIfExistsIfExists"
    );
    assert_eq!(
        parse_err(r#"{"StringEquals":{"username":"a"}}"#),
        MSG_VENDOR_PREFIX
    );
    assert_eq!(
        parse_err(r#"{"StringEquals":{"aws:username":{"a":1}}}"#),
        MSG_SYNTAX
    );
    assert_eq!(
        parse_err(r#"{"StringEquals":{"aws:username":null}}"#),
        MSG_SYNTAX
    );
    assert_eq!(
        parse_err(r#"{"StringEquals":{"aws:username":[]}}"#),
        MSG_SYNTAX
    );
    assert_eq!(parse_err(r#"{"StringEquals":"x"}"#), MSG_SYNTAX);
    assert_eq!(parse_err(r#"["x"]"#), MSG_SYNTAX);
}

#[test]
fn string_values_from_numbers_and_bools() {
    let c = r#"{"StringEquals":{"aws:userid":[123, true]}}"#;
    assert!(check(c, &ctx1("aws:userid", "123")));
    assert!(check(c, &ctx1("aws:userid", "true")));
    assert!(!check(c, &ctx1("aws:userid", "124")));
}

#[test]
fn variables_in_condition_values() {
    let c = r#"{"StringEquals":{"s3:prefix":"home/${aws:username}/"}}"#;
    let mut ctx = ctx1("aws:username", "bob");
    ctx.set("s3:prefix", "home/bob/");
    assert!(check(c, &ctx));
    ctx.set("s3:prefix", "home/alice/");
    assert!(!check(c, &ctx));
    // StringLike with a variable: the rest of the pattern keeps its wildcards
    let c = r#"{"StringLike":{"s3:prefix":["home/${aws:username}/*"]}}"#;
    let ctx = ctx1("aws:username", "bob").with("s3:prefix", "home/bob/x");
    assert!(check(c, &ctx));
    // `${*}` is a literal star
    let c = r#"{"StringLike":{"s3:prefix":"a${*}"}}"#;
    assert!(check(c, &ctx1("s3:prefix", "a*")));
    assert!(!check(c, &ctx1("s3:prefix", "ab")));
    // undefined variable: positive ⇒ value doesn't match, negated ⇒ statement doesn't apply
    let c = r#"{"StringEquals":{"s3:prefix":["${aws:username}","public"]}}"#;
    assert!(!check(c, &ctx1("s3:prefix", "bob")));
    assert!(check(c, &ctx1("s3:prefix", "public")));
    let c = r#"{"StringNotEquals":{"s3:prefix":"${aws:username}"}}"#;
    assert!(!check(c, &ctx1("s3:prefix", "x")));
    // default value
    let c =
        r#"{"StringEquals":{"aws:PrincipalTag/team":"${aws:RequestTag/team, 'company-wide'}"}}"#;
    assert!(check(c, &ctx1("aws:PrincipalTag/team", "company-wide")));
    let ctx = ctx1("aws:PrincipalTag/team", "red").with("aws:RequestTag/team", "red");
    assert!(check(c, &ctx));
    // ArnLike with a variable
    let c = r#"{"ArnLike":{"aws:SourceArn":"arn:aws:iam::*:user/${aws:username}"}}"#;
    let ctx = ctx1("aws:username", "bob").with("aws:SourceArn", "arn:aws:iam::1:user/bob");
    assert!(check(c, &ctx));
}

#[test]
fn version_2008_condition_values_literal() {
    let doc = r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"s3:prefix":"${aws:username}"}}}]}"#;
    let p = Policy::parse(doc, PolicyKind::Identity).expect("parse");
    let ctx = ctx1("aws:username", "bob").with("s3:prefix", "bob");
    let req = Request {
        action: "s3:ListBucket",
        resource: "arn:aws:s3:::b",
        principal: None,
        context: &ctx,
    };
    assert!(!p.evaluate(&req).is_allow());
    let ctx = ctx1("s3:prefix", "${aws:username}");
    let req = Request {
        context: &ctx,
        ..req
    };
    assert!(p.evaluate(&req).is_allow());
}
