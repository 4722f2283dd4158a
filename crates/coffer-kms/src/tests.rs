//! Service-level tests of KMS over a real embedded store (no HTTP).

use super::*;
use coffer_core::{Out, RequestContext, TestClock};
use coffer_iam::Params;
use coffer_store::SqliteMetaStore;
use serde_json::json;

struct Fx {
    _dir: tempfile::TempDir,
    iam: Arc<Iam>,
    kms: Kms,
    clock: Arc<TestClock>,
    root: RequestContext,
}

fn ctx(iam: &Iam, key: &str) -> RequestContext {
    let r = iam.resolve(key, None).unwrap();
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

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetaStore> =
        Arc::new(SqliteMetaStore::open(&dir.path().join("m.sqlite")).unwrap());
    let rk = Arc::new(RootKey::generate().unwrap());
    let clock = Arc::new(TestClock::default());
    let iam = Arc::new(Iam::new(store.clone(), rk.clone(), clock.clone()));
    let b = iam.bootstrap(Some("123456789012"), None, None).unwrap();
    let kms = Kms::new(iam.clone(), store, rk, clock.clone(), "us-east-1");
    let root = ctx(&iam, &b.root_access_key_id);
    Fx {
        _dir: dir,
        iam,
        kms,
        clock,
        root,
    }
}

fn p(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())))
}

/// Creates a user with the given managed policy and returns its context.
fn user(f: &Fx, name: &str, policy: Option<&str>) -> RequestContext {
    f.iam
        .handle(&f.root, "CreateUser", &p(&[("UserName", name)]))
        .unwrap();
    if let Some(pol) = policy {
        f.iam
            .handle(
                &f.root,
                "AttachUserPolicy",
                &p(&[("UserName", name), ("PolicyArn", pol)]),
            )
            .unwrap();
    }
    let o = f
        .iam
        .handle(&f.root, "CreateAccessKey", &p(&[("UserName", name)]))
        .unwrap()
        .unwrap();
    let Out::Struct(fields) = o else { panic!() };
    let Out::Struct(ak) = &fields[0].1 else {
        panic!()
    };
    let id = ak
        .iter()
        .find(|(k, _)| *k == "AccessKeyId")
        .map(|(_, v)| v.clone())
        .unwrap();
    let Out::Str(id) = id else { panic!() };
    ctx(&f.iam, &id)
}

fn call(f: &Fx, c: &RequestContext, op: &str, input: Value) -> Result<Value, ServiceError> {
    f.kms.handle(c, op, &input)
}

/// Asserts that `r` is KMS's AccessDeniedException (HTTP 400) for user `who` and `kms:<action>`
/// on `resource`, for want of an identity-based allow (the key policy delegates to IAM).
fn assert_denied<T>(r: Result<T, ServiceError>, who: &str, action: &str, resource: &str) {
    let Err(e) = r else {
        panic!("{who} {action}: expected AccessDeniedException, got Ok")
    };
    assert_eq!(
        (e.code.as_str(), e.status, e.message.as_str()),
        (
            "AccessDeniedException",
            400,
            &*format!(
                "User: arn:aws:iam::123456789012:user/{who} is not authorized to perform: kms:{action} on resource: {resource} because no identity-based policy allows the kms:{action} action"
            )
        ),
        "{who} {action}"
    );
}

fn key_arn(id: &str) -> String {
    format!("arn:aws:kms:us-east-1:123456789012:key/{id}")
}

fn new_key(f: &Fx, input: Value) -> String {
    call(f, &f.root, "CreateKey", input).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn encrypt_decrypt_context_and_tamper() {
    let f = fx();
    let id = new_key(&f, json!({"Description": "d"}));
    let out = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "aGVsbG8=", "EncryptionContext": {"a": "1"}}),
    )
    .unwrap();
    let blob = out["CiphertextBlob"].as_str().unwrap().to_string();
    assert!(
        out["KeyId"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:kms:us-east-1:123456789012:key/")
    );
    let d = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "1"}}),
    )
    .unwrap();
    assert_eq!(d["Plaintext"], "aGVsbG8=");
    let e = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": blob, "EncryptionContext": {"a": "2"}}),
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("InvalidCiphertextException", "")
    );
    let mut raw = B64.decode(&blob).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let e = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": B64.encode(&raw), "EncryptionContext": {"a": "1"}}),
    )
    .unwrap_err();
    assert_eq!(e.code, "InvalidCiphertextException");
    // wrong KeyId
    let other = new_key(&f, json!({}));
    let e = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": blob, "KeyId": other, "EncryptionContext": {"a": "1"}}),
    )
    .unwrap_err();
    assert_eq!(e.code, "IncorrectKeyException");
    // data keys decrypt to their plaintext
    let dk = call(
        &f,
        &f.root,
        "GenerateDataKey",
        json!({"KeyId": id, "KeySpec": "AES_256"}),
    )
    .unwrap();
    let back = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": dk["CiphertextBlob"]}),
    )
    .unwrap();
    assert_eq!(back["Plaintext"], dk["Plaintext"]);
    assert_eq!(
        B64.decode(dk["Plaintext"].as_str().unwrap()).unwrap().len(),
        32
    );
    let e = call(&f, &f.root, "GenerateDataKey", json!({"KeyId": id})).unwrap_err();
    assert_eq!(e.code, "ValidationException");
}

#[test]
fn key_policy_decides_and_delegates() {
    let f = fx();
    let admin = user(
        &f,
        "admin",
        Some("arn:aws:iam::aws:policy/AdministratorAccess"),
    );
    let nobody = user(&f, "nobody", None);
    let keyuser = user(&f, "keyuser", None);
    // Default policy delegates to IAM: the administrator may, the user without policies may not.
    let id = new_key(&f, json!({}));
    call(&f, &admin, "DescribeKey", json!({"KeyId": id})).unwrap();
    let e = call(&f, &nobody, "DescribeKey", json!({"KeyId": id})).unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    assert!(
        e.message
            .ends_with("because no identity-based policy allows the kms:DescribeKey action"),
        "{}",
        e.message
    );
    // A key policy that does not delegate: even AdministratorAccess is denied; a named key user is allowed.
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Key admins", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/admin"}, "Action": ["kms:PutKeyPolicy", "kms:GetKeyPolicy"], "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/keyuser"}, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}
        ]
    })
    .to_string();
    let id2 =
        call(&f, &admin, "CreateKey", json!({"Policy": policy})).unwrap()["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_string();
    let e = call(
        &f,
        &admin,
        "Encrypt",
        json!({"KeyId": id2, "Plaintext": "eA=="}),
    )
    .unwrap_err();
    assert!(
        e.message
            .ends_with("because no resource-based policy allows the kms:Encrypt action"),
        "{}",
        e.message
    );
    let ct = call(
        &f,
        &keyuser,
        "Encrypt",
        json!({"KeyId": id2, "Plaintext": "eA=="}),
    )
    .unwrap();
    call(
        &f,
        &keyuser,
        "Decrypt",
        json!({"CiphertextBlob": ct["CiphertextBlob"]}),
    )
    .unwrap();
    // An explicit deny in the key policy wins over IAM.
    let deny = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "No decrypt", "Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::123456789012:user/admin"}, "Action": "kms:Decrypt", "Resource": "*"}
        ]
    })
    .to_string();
    call(
        &f,
        &f.root,
        "PutKeyPolicy",
        json!({"KeyId": id, "Policy": deny}),
    )
    .unwrap();
    let ct = call(
        &f,
        &admin,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA=="}),
    )
    .unwrap();
    let e = call(
        &f,
        &admin,
        "Decrypt",
        json!({"CiphertextBlob": ct["CiphertextBlob"]}),
    )
    .unwrap_err();
    assert!(
        e.message
            .ends_with("with an explicit deny in a resource-based policy"),
        "{}",
        e.message
    );
    // Unknown principals and lockouts are refused.
    let bad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/ghost"}, "Action": "kms:*", "Resource": "*"}]}).to_string();
    let e = call(
        &f,
        &f.root,
        "PutKeyPolicy",
        json!({"KeyId": id, "Policy": bad}),
    )
    .unwrap_err();
    assert_eq!(e.code, "MalformedPolicyDocumentException");
    let lock = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/keyuser"}, "Action": "kms:Encrypt", "Resource": "*"}]}).to_string();
    let e = call(
        &f,
        &f.root,
        "PutKeyPolicy",
        json!({"KeyId": id, "Policy": lock}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "The new key policy will not allow you to update the key policy in the future."
    );
    call(
        &f,
        &f.root,
        "PutKeyPolicy",
        json!({"KeyId": id, "Policy": lock, "BypassPolicyLockoutSafetyCheck": true}),
    )
    .unwrap();
}

#[test]
fn states_rotation_and_deletion() {
    let f = fx();
    let id = new_key(&f, json!({}));
    call(
        &f,
        &f.root,
        "CreateAlias",
        json!({"AliasName": "alias/k", "TargetKeyId": id}),
    )
    .unwrap();
    let old = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": "alias/k", "Plaintext": "b2xk"}),
    )
    .unwrap();
    // rotation keeps old ciphertexts readable
    call(&f, &f.root, "RotateKeyOnDemand", json!({"KeyId": id})).unwrap();
    call(
        &f,
        &f.root,
        "EnableKeyRotation",
        json!({"KeyId": id, "RotationPeriodInDays": 90}),
    )
    .unwrap();
    f.clock.advance(time::Duration::days(91));
    assert_eq!(f.kms.run_due().unwrap(), (0, 1));
    let rots = call(&f, &f.root, "ListKeyRotations", json!({"KeyId": id})).unwrap();
    assert_eq!(rots["Rotations"].as_array().unwrap().len(), 2);
    assert_eq!(
        call(
            &f,
            &f.root,
            "Decrypt",
            json!({"CiphertextBlob": old["CiphertextBlob"]})
        )
        .unwrap()["Plaintext"],
        "b2xk"
    );
    // disabled
    call(&f, &f.root, "DisableKey", json!({"KeyId": id})).unwrap();
    let e = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA=="}),
    )
    .unwrap_err();
    assert_eq!(e.code, "DisabledException");
    // scheduled, cancelled (→ Disabled), scheduled again, executed
    let e = call(
        &f,
        &f.root,
        "ScheduleKeyDeletion",
        json!({"KeyId": id, "PendingWindowInDays": 6}),
    )
    .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    call(
        &f,
        &f.root,
        "ScheduleKeyDeletion",
        json!({"KeyId": id, "PendingWindowInDays": 7}),
    )
    .unwrap();
    let e = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": old["CiphertextBlob"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "KMSInvalidStateException");
    call(&f, &f.root, "CancelKeyDeletion", json!({"KeyId": id})).unwrap();
    let d = call(&f, &f.root, "DescribeKey", json!({"KeyId": id})).unwrap();
    assert_eq!(d["KeyMetadata"]["KeyState"], "Disabled");
    call(
        &f,
        &f.root,
        "ScheduleKeyDeletion",
        json!({"KeyId": id, "PendingWindowInDays": 7}),
    )
    .unwrap();
    f.clock.advance(time::Duration::days(6));
    assert_eq!(f.kms.run_due().unwrap().0, 0);
    f.clock.advance(time::Duration::days(2));
    assert_eq!(f.kms.run_due().unwrap().0, 1);
    let e = call(&f, &f.root, "DescribeKey", json!({"KeyId": id})).unwrap_err();
    assert_eq!(e.code, "NotFoundException");
    let e = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": old["CiphertextBlob"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    let e = call(&f, &f.root, "DescribeKey", json!({"KeyId": "alias/k"})).unwrap_err();
    assert_eq!(e.code, "NotFoundException");
    // nothing of the key remains in the store
    assert!(f.kms.store.scan(NS_KEY, "", None, 10).unwrap().is_empty());
}

#[test]
fn hmac_keys_and_validation() {
    let f = fx();
    let e = call(&f, &f.root, "CreateKey", json!({"KeySpec": "HMAC_256"})).unwrap_err();
    assert_eq!(
        e.message,
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."
    );
    let id = new_key(
        &f,
        json!({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}),
    );
    let mac = call(
        &f,
        &f.root,
        "GenerateMac",
        json!({"KeyId": id, "Message": "bXNn", "MacAlgorithm": "HMAC_SHA_256"}),
    )
    .unwrap();
    let ok = call(
        &f,
        &f.root,
        "VerifyMac",
        json!({"KeyId": id, "Message": "bXNn", "MacAlgorithm": "HMAC_SHA_256", "Mac": mac["Mac"]}),
    )
    .unwrap();
    assert_eq!(ok["MacValid"], true);
    let e = call(
        &f,
        &f.root,
        "VerifyMac",
        json!({"KeyId": id, "Message": "bXNo", "MacAlgorithm": "HMAC_SHA_256", "Mac": mac["Mac"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "KMSInvalidMacException");
    let e = call(
        &f,
        &f.root,
        "GenerateMac",
        json!({"KeyId": id, "Message": "bXNn", "MacAlgorithm": "HMAC_SHA_512"}),
    )
    .unwrap_err();
    assert_eq!(e.code, "InvalidKeyUsageException");
    let e = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA=="}),
    )
    .unwrap_err();
    assert_eq!(e.code, "InvalidKeyUsageException");
    let e = call(
        &f,
        &f.root,
        "CreateKey",
        json!({"KeySpec": "SM2", "KeyUsage": "SIGN_VERIFY"}),
    )
    .unwrap_err();
    assert_eq!(e.code, "UnsupportedOperationException");
    let e = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": "nope", "Plaintext": "eA=="}),
    )
    .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("NotFoundException", "Invalid keyId 'nope'")
    );
    let e = call(
        &f,
        &f.root,
        "CreateAlias",
        json!({"AliasName": "nope", "TargetKeyId": id}),
    )
    .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    let e = call(
        &f,
        &f.root,
        "GenerateRandom",
        json!({"NumberOfBytes": 1025}),
    )
    .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    let r = call(&f, &f.root, "GenerateRandom", json!({"NumberOfBytes": 16})).unwrap();
    assert_eq!(
        B64.decode(r["Plaintext"].as_str().unwrap()).unwrap().len(),
        16
    );
    let e = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA==", "DryRun": true}),
    )
    .unwrap_err();
    assert_eq!(e.code, "InvalidKeyUsageException");
    let sym = new_key(&f, json!({}));
    let e = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": sym, "Plaintext": "eA==", "DryRun": true}),
    )
    .unwrap_err();
    assert_eq!(e.code, "DryRunOperationException");
}

#[test]
fn grants_grant_constrain_retire_and_revoke() {
    let f = fx();
    let grantee = user(&f, "grantee", None);
    let retirer = user(&f, "retirer", None);
    let id = new_key(&f, json!({}));
    let ct = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA==", "EncryptionContext": {"app": "a"}}),
    )
    .unwrap();
    let e = call(
        &f,
        &grantee,
        "Decrypt",
        json!({"CiphertextBlob": ct["CiphertextBlob"], "EncryptionContext": {"app": "a"}}),
    )
    .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    let g = call(
        &f,
        &f.root,
        "CreateGrant",
        json!({
            "KeyId": id,
            "GranteePrincipal": "arn:aws:iam::123456789012:user/grantee",
            "RetiringPrincipal": "arn:aws:iam::123456789012:user/retirer",
            "Operations": ["Decrypt"],
            "Constraints": {"EncryptionContextSubset": {"app": "a"}}
        }),
    )
    .unwrap();
    assert_eq!(g["GrantId"].as_str().unwrap().len(), 64);
    // allowed at once, within the constraint only, and only for the granted operation
    call(
        &f,
        &grantee,
        "Decrypt",
        json!({"CiphertextBlob": ct["CiphertextBlob"], "EncryptionContext": {"app": "a"}}),
    )
    .unwrap();
    let ct2 = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA==", "EncryptionContext": {"app": "b"}}),
    )
    .unwrap();
    assert_denied(
        call(
            &f,
            &grantee,
            "Decrypt",
            json!({"CiphertextBlob": ct2["CiphertextBlob"], "EncryptionContext": {"app": "b"}}),
        ),
        "grantee",
        "Decrypt",
        &key_arn(&id),
    );
    assert_denied(
        call(
            &f,
            &grantee,
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "eA==", "EncryptionContext": {"app": "a"}}),
        ),
        "grantee",
        "Encrypt",
        &key_arn(&id),
    );
    let l = call(&f, &f.root, "ListGrants", json!({"KeyId": id})).unwrap();
    assert_eq!(l["Grants"].as_array().unwrap().len(), 1);
    let r = call(
        &f,
        &retirer,
        "ListRetirableGrants",
        json!({"RetiringPrincipal": "arn:aws:iam::123456789012:user/retirer"}),
    );
    // ListRetirableGrants is IAM-only and retirer has no policy.
    assert_denied(r, "retirer", "ListRetirableGrants", "*");
    // the grantee may not retire (no RetireGrant operation); the retiring principal may
    let e = call(
        &f,
        &grantee,
        "RetireGrant",
        json!({"GrantToken": g["GrantToken"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "AccessDeniedException");
    call(
        &f,
        &retirer,
        "RetireGrant",
        json!({"GrantToken": g["GrantToken"]}),
    )
    .unwrap();
    assert_denied(
        call(
            &f,
            &grantee,
            "Decrypt",
            json!({"CiphertextBlob": ct["CiphertextBlob"], "EncryptionContext": {"app": "a"}}),
        ),
        "grantee",
        "Decrypt",
        &key_arn(&id),
    );
    // revoke
    let g2 = call(&f, &f.root, "CreateGrant", json!({"KeyId": id, "GranteePrincipal": "arn:aws:iam::123456789012:user/grantee", "Operations": ["Encrypt"]})).unwrap();
    call(
        &f,
        &grantee,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA=="}),
    )
    .unwrap();
    call(
        &f,
        &f.root,
        "RevokeGrant",
        json!({"KeyId": id, "GrantId": g2["GrantId"]}),
    )
    .unwrap();
    assert_denied(
        call(
            &f,
            &grantee,
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "eA=="}),
        ),
        "grantee",
        "Encrypt",
        &key_arn(&id),
    );
    let e = call(
        &f,
        &f.root,
        "RevokeGrant",
        json!({"KeyId": id, "GrantId": g2["GrantId"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, "NotFoundException");
    // bad operations and unknown grantees are refused
    let e = call(&f, &f.root, "CreateGrant", json!({"KeyId": id, "GranteePrincipal": "arn:aws:iam::123456789012:user/grantee", "Operations": ["Fly"]})).unwrap_err();
    assert_eq!(e.code, "ValidationException");
    let e = call(&f, &f.root, "CreateGrant", json!({"KeyId": id, "GranteePrincipal": "arn:aws:iam::123456789012:user/ghost", "Operations": ["Encrypt"]})).unwrap_err();
    assert_eq!(e.code, "InvalidArnException");
}

#[test]
fn asymmetric_keys_sign_verify_encrypt_and_key_pairs() {
    let f = fx();
    let e = call(
        &f,
        &f.root,
        "CreateKey",
        json!({"KeySpec": "ECC_NIST_P256"}),
    )
    .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    for (spec, alg) in [
        ("ECC_NIST_P256", "ECDSA_SHA_256"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
        ("ECC_NIST_P384", "ECDSA_SHA_384"),
        ("RSA_2048", "RSASSA_PSS_SHA_256"),
    ] {
        let meta = call(
            &f,
            &f.root,
            "CreateKey",
            json!({"KeySpec": spec, "KeyUsage": "SIGN_VERIFY"}),
        )
        .unwrap();
        let id = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        assert!(
            meta["KeyMetadata"]["SigningAlgorithms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == alg)
        );
        let s = call(
            &f,
            &f.root,
            "Sign",
            json!({"KeyId": id, "Message": "bXNn", "SigningAlgorithm": alg}),
        )
        .unwrap();
        let v = call(&f, &f.root, "Verify", json!({"KeyId": id, "Message": "bXNn", "Signature": s["Signature"], "SigningAlgorithm": alg})).unwrap();
        assert_eq!(v["SignatureValid"], true);
        let e = call(&f, &f.root, "Verify", json!({"KeyId": id, "Message": "bXNo", "Signature": s["Signature"], "SigningAlgorithm": alg})).unwrap_err();
        assert_eq!(e.code, "KMSInvalidSignatureException");
        let e = call(&f, &f.root, "Sign", json!({"KeyId": id, "Message": "bXNn", "MessageType": "DIGEST", "SigningAlgorithm": alg})).unwrap_err();
        assert_eq!(
            e.message,
            format!("Digest is invalid length for algorithm {alg}.")
        );
        let pk = call(&f, &f.root, "GetPublicKey", json!({"KeyId": id})).unwrap();
        assert!(!pk["PublicKey"].as_str().unwrap().is_empty());
        let e = call(
            &f,
            &f.root,
            "Encrypt",
            json!({"KeyId": id, "Plaintext": "eA=="}),
        )
        .unwrap_err();
        assert_eq!(e.code, "InvalidKeyUsageException");
        let e = call(&f, &f.root, "RotateKeyOnDemand", json!({"KeyId": id})).unwrap_err();
        assert_eq!(e.code, "UnsupportedOperationException");
    }
    let rsa = call(
        &f,
        &f.root,
        "CreateKey",
        json!({"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}),
    )
    .unwrap();
    let id = rsa["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    let ct = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "c2VjcmV0", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    )
    .unwrap();
    let pt = call(&f, &f.root, "Decrypt", json!({"KeyId": id, "CiphertextBlob": ct["CiphertextBlob"], "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"})).unwrap();
    assert_eq!(pt["Plaintext"], "c2VjcmV0");
    let big = B64.encode([0u8; 191]);
    let e = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": big, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes."
    );
    let e = call(
        &f,
        &f.root,
        "Encrypt",
        json!({"KeyId": id, "Plaintext": "eA=="}),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048."
    );
    // data key pairs: the private key comes back encrypted under a symmetric key
    let sym = new_key(&f, json!({}));
    let kp = call(
        &f,
        &f.root,
        "GenerateDataKeyPair",
        json!({"KeyId": sym, "KeyPairSpec": "ECC_NIST_P256"}),
    )
    .unwrap();
    let back = call(
        &f,
        &f.root,
        "Decrypt",
        json!({"CiphertextBlob": kp["PrivateKeyCiphertextBlob"]}),
    )
    .unwrap();
    assert_eq!(back["Plaintext"], kp["PrivateKeyPlaintext"]);
    let kp2 = call(
        &f,
        &f.root,
        "GenerateDataKeyPairWithoutPlaintext",
        json!({"KeyId": sym, "KeyPairSpec": "RSA_2048"}),
    )
    .unwrap();
    assert!(kp2.get("PrivateKeyPlaintext").is_none());
    assert!(!kp2["PublicKey"].as_str().unwrap().is_empty());
}

#[test]
fn data_key_provider_acts_as_the_caller_via_a_service() {
    use coffer_core::DataKeyProvider;
    let f = fx();
    let s3user = user(&f, "s3user", None);
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Through S3 only", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/s3user"},
             "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com", "kms:CallerAccount": "123456789012"}}}
        ]
    })
    .to_string();
    let id = new_key(&f, json!({"Policy": policy}));
    let ec = vec![(
        "aws:s3:arn".to_string(),
        "arn:aws:s3:::bucket/key".to_string(),
    )];
    // Directly: denied.
    assert_denied(
        f.kms.generate_data_key(&s3user, &id, &ec),
        "s3user",
        "GenerateDataKey",
        &key_arn(&id),
    );
    // Through S3: allowed, and the data key opens with the same context only.
    let via = RequestContext {
        via_service: Some("s3.us-east-1.amazonaws.com".into()),
        source_ip: None,
        ..s3user.clone()
    };
    let dk = f.kms.generate_data_key(&via, &id, &ec).unwrap();
    assert_eq!(dk.plaintext.len(), 32);
    assert!(dk.key_arn.ends_with(&id));
    let back = f
        .kms
        .decrypt_data_key(&via, Some(&dk.key_arn), &dk.ciphertext, &ec)
        .unwrap();
    assert_eq!(&back.plaintext[..], &dk.plaintext[..]);
    let other = vec![(
        "aws:s3:arn".to_string(),
        "arn:aws:s3:::bucket/other".to_string(),
    )];
    assert_eq!(
        f.kms
            .decrypt_data_key(&via, None, &dk.ciphertext, &other)
            .unwrap_err()
            .code,
        "InvalidCiphertextException"
    );
    assert_eq!(
        DataKeyProvider::key_arn(&f.kms, &via, &id).unwrap(),
        dk.key_arn
    );
    assert!(format!("{dk:?}").contains("<redacted>"));
}

// ---------- concurrent changes to one key: nothing acknowledged is lost ----------

/// Runs `a` and `b` released together on two threads.
fn race<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    let go = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let ha = s.spawn(|| {
            go.wait();
            a()
        });
        let hb = s.spawn(|| {
            go.wait();
            b()
        });
        (ha.join().unwrap(), hb.join().unwrap())
    })
}

#[test]
fn rotations_tags_and_encryptions_at_once_lose_nothing() {
    let f = fx();
    let id = new_key(&f, json!({}));
    let rotations = std::sync::atomic::AtomicUsize::new(0);
    let cts = std::sync::Mutex::new(Vec::new());
    let last_tags = std::sync::Mutex::new(std::collections::HashMap::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..20 {
                if call(&f, &f.root, "RotateKeyOnDemand", json!({"KeyId": id})).is_ok() {
                    rotations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        for t in 0..3 {
            let (f, id, last_tags) = (&f, &id, &last_tags);
            s.spawn(move || {
                for i in 0..30 {
                    let (k, v) = (format!("t{t}"), format!("v{i}"));
                    call(
                        f,
                        &f.root,
                        "TagResource",
                        json!({"KeyId": id, "Tags": [{"TagKey": k, "TagValue": v}]}),
                    )
                    .unwrap();
                    last_tags.lock().unwrap().insert(k, v);
                }
            });
        }
        for _ in 0..2 {
            let (f, id, cts) = (&f, &id, &cts);
            s.spawn(move || {
                for _ in 0..60 {
                    let o = call(
                        f,
                        &f.root,
                        "Encrypt",
                        json!({"KeyId": id, "Plaintext": "c2VjcmV0"}),
                    )
                    .unwrap();
                    cts.lock().unwrap().push(o["CiphertextBlob"].clone());
                }
            });
        }
    });
    let listed = call(&f, &f.root, "ListKeyRotations", json!({"KeyId": id})).unwrap();
    assert_eq!(
        listed["Rotations"].as_array().unwrap().len(),
        rotations.load(std::sync::atomic::Ordering::SeqCst),
        "every acknowledged rotation is listed"
    );
    for ct in cts.lock().unwrap().iter() {
        let o = call(&f, &f.root, "Decrypt", json!({"CiphertextBlob": ct})).unwrap();
        assert_eq!(o["Plaintext"], "c2VjcmV0");
    }
    let tags = call(&f, &f.root, "ListResourceTags", json!({"KeyId": id})).unwrap();
    for (k, v) in last_tags.lock().unwrap().iter() {
        assert!(
            tags["Tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["TagKey"] == *k && t["TagValue"] == *v),
            "tag {k}={v} acknowledged last, missing from {tags}"
        );
    }
}

#[test]
fn state_and_policy_changes_racing_tags_are_never_reverted() {
    let f = fx();
    let deny_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"},{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"kms:Encrypt","Resource":"*"}]}"#;
    for i in 0..10 {
        let id = new_key(&f, json!({}));
        let tag = || {
            call(
                &f,
                &f.root,
                "TagResource",
                json!({"KeyId": id, "Tags": [{"TagKey": "k", "TagValue": format!("{i}")}]}),
            )
            .unwrap()
        };
        race(
            || call(&f, &f.root, "DisableKey", json!({"KeyId": id})).unwrap(),
            tag,
        );
        race(
            || {
                call(
                    &f,
                    &f.root,
                    "PutKeyPolicy",
                    json!({"KeyId": id, "Policy": deny_all}),
                )
                .unwrap()
            },
            tag,
        );
        race(
            || {
                call(
                    &f,
                    &f.root,
                    "ScheduleKeyDeletion",
                    json!({"KeyId": id, "PendingWindowInDays": 7}),
                )
                .unwrap()
            },
            || {
                // Refused once the deletion is scheduled; never reverts it.
                let _ = call(
                    &f,
                    &f.root,
                    "TagResource",
                    json!({"KeyId": id, "Tags": [{"TagKey": "x", "TagValue": "y"}]}),
                );
            },
        );
        let d = call(&f, &f.root, "DescribeKey", json!({"KeyId": id})).unwrap();
        assert_eq!(d["KeyMetadata"]["KeyState"], "PendingDeletion", "round {i}");
        let p = call(&f, &f.root, "GetKeyPolicy", json!({"KeyId": id})).unwrap();
        assert_eq!(p["Policy"], deny_all, "round {i}");
    }
}

#[test]
fn background_work_never_reverts_a_change_made_during_its_scan() {
    let f = fx();
    for i in 0..8 {
        // A key due for automatic rotation, scheduled for deletion while the rotation runs.
        let id = new_key(&f, json!({}));
        call(
            &f,
            &f.root,
            "EnableKeyRotation",
            json!({"KeyId": id, "RotationPeriodInDays": 90}),
        )
        .unwrap();
        f.clock.advance(time::Duration::days(91));
        race(
            || f.kms.run_due().unwrap(),
            || {
                call(
                    &f,
                    &f.root,
                    "ScheduleKeyDeletion",
                    json!({"KeyId": id, "PendingWindowInDays": 30}),
                )
                .unwrap()
            },
        );
        let d = call(&f, &f.root, "DescribeKey", json!({"KeyId": id})).unwrap();
        assert_eq!(d["KeyMetadata"]["KeyState"], "PendingDeletion", "round {i}");
        // A key due for destruction whose deletion is cancelled while the destruction runs:
        // either the cancel is acknowledged and the key lives, or the key is gone and the
        // cancel fails. Never both.
        let id = new_key(&f, json!({}));
        call(
            &f,
            &f.root,
            "ScheduleKeyDeletion",
            json!({"KeyId": id, "PendingWindowInDays": 7}),
        )
        .unwrap();
        f.clock.advance(time::Duration::days(8));
        let (_, cancel) = race(
            || f.kms.run_due().unwrap(),
            || call(&f, &f.root, "CancelKeyDeletion", json!({"KeyId": id})),
        );
        let d = call(&f, &f.root, "DescribeKey", json!({"KeyId": id}));
        match cancel {
            Ok(_) => assert_eq!(d.unwrap()["KeyMetadata"]["KeyState"], "Disabled"),
            Err(e) => {
                assert_eq!(e.code, "NotFoundException", "{e}");
                assert_eq!(d.unwrap_err().code, "NotFoundException");
            }
        }
        // Leave nothing due for the next round.
        let _ = f.kms.run_due();
    }
}

#[test]
fn a_policy_parsed_from_a_stale_copy_of_the_key_is_never_used_for_the_new_policy() {
    let f = fx();
    let alice = user(&f, "alice", None);
    let id = new_key(&f, json!({}));
    let allow_alice = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"kms:Encrypt","Resource":"*"}]}"#;
    call(
        &f,
        &f.root,
        "PutKeyPolicy",
        json!({"KeyId": id, "Policy": allow_alice}),
    )
    .unwrap();
    let enc = json!({"KeyId": id, "Plaintext": "eA=="});
    call(&f, &alice, "Encrypt", enc.clone()).unwrap();
    // A request that loaded the key before the revocation parses its (old) policy after it.
    let stale = f.kms.resolve("123456789012", &id, false).unwrap();
    call(
        &f,
        &f.root,
        "PutKeyPolicy",
        json!({"KeyId": id, "Policy": ops::default_policy("123456789012")}),
    )
    .unwrap();
    f.kms.key_policy(&stale).unwrap();
    let e = call(&f, &alice, "Encrypt", enc).unwrap_err();
    assert_eq!(e.code, "AccessDeniedException", "the revocation holds: {e}");
}

#[test]
fn alias_and_grant_indexes_are_built_for_older_records_and_kept_with_them() {
    use crate::indexes::*;
    let f = fx();
    let id = new_key(&f, json!({}));
    call(
        &f,
        &f.root,
        "CreateAlias",
        json!({"AliasName": "alias/a1", "TargetKeyId": id}),
    )
    .unwrap();
    let bob = user(&f, "bob", None);
    let bob_arn = "arn:aws:iam::123456789012:user/bob";
    let mut tokens = vec![];
    for _ in 0..3 {
        let g = call(
            &f,
            &f.root,
            "CreateGrant",
            json!({"KeyId": id, "GranteePrincipal": bob_arn, "RetiringPrincipal": bob_arn, "Operations": ["Encrypt"]}),
        )
        .unwrap();
        tokens.push(g["GrantToken"].as_str().unwrap().to_string());
    }
    // As a data directory written before the indexes existed: drop every index row.
    f.kms
        .tx(|t| {
            for ns in [NS_ALIAS_BY_KEY, NS_GRANT_BY_TOKEN, NS_GRANT_BY_RETIRING] {
                for (k, _) in t.scan(ns, "", None, 1000).map_err(crate::internal)? {
                    t.delete(ns, &k).map_err(crate::internal)?;
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(f.kms.aliases_of("123456789012", &id).unwrap().is_empty());
    assert_eq!(f.kms.build_indexes().unwrap(), 4);
    assert_eq!(f.kms.build_indexes().unwrap(), 0, "built once");
    assert_eq!(
        f.kms.aliases_of("123456789012", &id).unwrap(),
        vec!["alias/a1".to_string()]
    );
    // ListRetirableGrants pages through the index.
    let p1 = call(
        &f,
        &f.root,
        "ListRetirableGrants",
        json!({"RetiringPrincipal": bob_arn, "Limit": 2}),
    )
    .unwrap();
    assert_eq!(p1["Grants"].as_array().unwrap().len(), 2);
    assert_eq!(p1["Truncated"], true);
    let p2 = call(
        &f,
        &f.root,
        "ListRetirableGrants",
        json!({"RetiringPrincipal": bob_arn, "Limit": 2, "Marker": p1["NextMarker"]}),
    )
    .unwrap();
    assert_eq!(p2["Grants"].as_array().unwrap().len(), 1);
    assert_eq!(p2["Truncated"], false);
    // RetireGrant by token finds the grant through the index and removes its index rows.
    call(&f, &bob, "RetireGrant", json!({"GrantToken": tokens[0]})).unwrap();
    let e = call(&f, &bob, "RetireGrant", json!({"GrantToken": tokens[0]})).unwrap_err();
    assert_eq!(e.code, "InvalidGrantTokenException");
    // Destroying the key removes its grants and aliases with their index rows.
    call(
        &f,
        &f.root,
        "ScheduleKeyDeletion",
        json!({"KeyId": id, "PendingWindowInDays": 7}),
    )
    .unwrap();
    f.clock.advance(time::Duration::days(8));
    assert_eq!(f.kms.run_due().unwrap().0, 1);
    for ns in [
        NS_ALIAS_BY_KEY,
        NS_GRANT_BY_TOKEN,
        NS_GRANT_BY_RETIRING,
        crate::grants::NS_GRANT,
        crate::model::NS_ALIAS,
    ] {
        let left = f.kms.store.scan(ns, "", None, 10).unwrap();
        assert!(left.is_empty(), "{ns}: {left:?}");
    }
}
