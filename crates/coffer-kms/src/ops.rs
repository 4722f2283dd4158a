//! The KMS operations.

use crate::model::*;
use crate::{Input, Kms, b64, internal, validation};
use coffer_core::{RequestContext, ServiceError};
use coffer_crypto::kms_blob::{self, BlobHeader};
use coffer_policy::{Policy, PolicyKind};
use coffer_store::{Txn, get_json, put_json, scan_json};
use serde_json::{Value, json};
use zeroize::Zeroizing;

type R = Result<Value, ServiceError>;

const MAX_ON_DEMAND_ROTATIONS: u32 = 25;
const DEFAULT_ROTATION_DAYS: i64 = 365;
const DAY: f64 = 86400.0;

fn not_found(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("NotFoundException", 400, msg)
}
fn invalid_state(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("KMSInvalidStateException", 400, msg)
}
fn disabled(arn: &str) -> ServiceError {
    ServiceError::new("DisabledException", 400, format!("{arn} is disabled."))
}
fn pending(arn: &str) -> ServiceError {
    invalid_state(format!("{arn} is pending deletion."))
}
pub(crate) fn invalid_ciphertext() -> ServiceError {
    ServiceError::new("InvalidCiphertextException", 400, "")
}
fn tag_error(msg: &str) -> ServiceError {
    ServiceError::new("TagException", 400, msg)
}
pub(crate) fn dry_run() -> ServiceError {
    ServiceError::new(
        "DryRunOperationException",
        400,
        "The request would have succeeded, but the DryRun option is set.",
    )
}
fn store_err(e: coffer_store::StoreError) -> ServiceError {
    internal(e)
}

/// Which states an operation accepts (aws-behavior.md §2.6).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateRule {
    /// Cryptographic operations: Enabled only.
    Crypto,
    /// Refused while pending deletion (EnableKey, CreateAlias, tags, description...).
    NotPending,
    /// Enabled only, Disabled → DisabledException (rotation).
    Rotation,
    /// Any state.
    Any,
}

pub(crate) fn check_state(key: &KmsKey, rule: StateRule) -> Result<(), ServiceError> {
    match (rule, key.state) {
        (StateRule::Any, _) | (_, KeyState::Enabled) => Ok(()),
        (_, KeyState::PendingDeletion) => Err(pending(&key.arn)),
        (StateRule::Crypto | StateRule::Rotation, KeyState::Disabled) => Err(disabled(&key.arn)),
        (StateRule::NotPending, KeyState::Disabled) => Ok(()),
    }
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

/// The default key policy, exactly as AWS writes it.
pub fn default_policy(account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

/// The key policy of the AWS managed key `aws/s3`, as AWS writes it.
pub fn aws_s3_policy(account: &str, region: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"auto-s3-2\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Allow access through S3 for all principals in the account that are authorized to use S3\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"*\"\n    }},\n    \"Action\" : [ \"kms:Encrypt\", \"kms:Decrypt\", \"kms:ReEncrypt*\", \"kms:GenerateDataKey*\", \"kms:DescribeKey\" ],\n    \"Resource\" : \"*\",\n    \"Condition\" : {{\n      \"StringEquals\" : {{\n        \"kms:CallerAccount\" : \"{account}\",\n        \"kms:ViaService\" : \"s3.{region}.amazonaws.com\"\n      }}\n    }}\n  }}, {{\n    \"Sid\" : \"Allow direct access to key metadata to the account\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account}:root\"\n    }},\n    \"Action\" : [ \"kms:Describe*\", \"kms:Get*\", \"kms:List*\" ],\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

pub(crate) fn key_metadata(k: &KmsKey) -> Value {
    let mut m = json!({
        "AWSAccountId": k.account,
        "KeyId": k.id,
        "Arn": k.arn,
        "CreationDate": k.created,
        "Enabled": k.state == KeyState::Enabled,
        "Description": k.description,
        "KeyUsage": k.key_usage,
        "KeyState": k.state.as_str(),
        "Origin": "AWS_KMS",
        "KeyManager": if k.aws_managed { "AWS" } else { "CUSTOMER" },
        "CustomerMasterKeySpec": k.key_spec,
        "KeySpec": k.key_spec,
        "MultiRegion": false,
        "CurrentKeyMaterialId": material_id(k, k.current_material),
    });
    if k.is_symmetric() {
        m["EncryptionAlgorithms"] = json!(["SYMMETRIC_DEFAULT"]);
    }
    if let Some(bits) = k.hmac_bits() {
        m["MacAlgorithms"] = json!([format!("HMAC_SHA_{bits}")]);
    }
    if let Some(a) = k.asym() {
        if k.key_usage == "SIGN_VERIFY" {
            m["SigningAlgorithms"] = json!(a.signing_algorithms());
        } else {
            m["EncryptionAlgorithms"] = json!(["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]);
        }
    }
    if let Some(d) = k.deletion_date {
        m["DeletionDate"] = json!(d);
    }
    if let Some(w) = k.pending_window_days {
        m["PendingDeletionWindowInDays"] = json!(w);
    }
    m
}

/// A non-secret id of one material version (64 hex), as AWS's `KeyMaterialId`.
fn material_id(k: &KmsKey, version: u32) -> String {
    coffer_crypto::sha256_hex(format!("{}:{version}", k.arn).as_bytes())
}

fn uuid_bytes(id: &str) -> Result<[u8; 16], ServiceError> {
    uuid::Uuid::parse_str(id)
        .map(|u| *u.as_bytes())
        .map_err(internal)
}

fn check_tags(existing: &[Tag], new: &Value) -> Result<Vec<Tag>, ServiceError> {
    let Some(arr) = new.as_array() else {
        return Err(ServiceError::new(
            "SerializationException",
            400,
            "Unexpected value type for Tags",
        ));
    };
    let mut tags = existing.to_vec();
    let mut seen = std::collections::HashSet::new();
    for t in arr {
        let k = t.get("TagKey").and_then(Value::as_str).ok_or_else(|| validation("1 validation error detected: Value null at 'tags.member.tagKey' failed to satisfy constraint: Member must not be null"))?;
        let v = t.get("TagValue").and_then(Value::as_str).ok_or_else(|| validation("1 validation error detected: Value null at 'tags.member.tagValue' failed to satisfy constraint: Member must not be null"))?;
        if k.is_empty() || k.chars().count() > 128 {
            return Err(validation(format!(
                "1 validation error detected: Value '{k}' at 'tags.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128"
            )));
        }
        if v.chars().count() > 256 {
            return Err(validation(
                "1 validation error detected: Value at 'tags.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256",
            ));
        }
        if k.starts_with("aws:") {
            return Err(tag_error("Tags beginning with aws: are reserved"));
        }
        if !seen.insert(k.to_string()) {
            return Err(tag_error("Duplicate tag keys"));
        }
        match tags.iter_mut().find(|e| e.key == k) {
            Some(e) => e.value = v.to_string(),
            None => tags.push(Tag {
                key: k.into(),
                value: v.into(),
            }),
        }
    }
    if tags.len() > 50 {
        return Err(tag_error("Too many tags"));
    }
    Ok(tags)
}

fn check_alias_name(name: &str) -> Result<(), ServiceError> {
    if !name.starts_with("alias/") {
        return Err(validation(
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        ));
    }
    if name.len() > 256
        || name.len() <= "alias/".len()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    {
        return Err(validation(format!(
            "{name} contains invalid characters for an alias"
        )));
    }
    if name.starts_with("alias/aws/") {
        return Err(ServiceError::new(
            "NotAuthorizedException",
            400,
            "Cannot create alias with prefix 'alias/aws/': it is reserved for AWS managed keys.",
        ));
    }
    Ok(())
}

fn canonical(ec: &[(String, String)]) -> Vec<u8> {
    kms_blob::canonical_context(ec.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

impl Kms {
    pub(crate) fn tx<T>(
        &self,
        f: impl FnMut(&mut dyn Txn) -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        coffer_store::transact(&*self.store, store_err, f)
    }

    /// The one way to change a key: re-reads the key's record inside one transaction, checks
    /// its state there against `rule`, applies `f` and writes it back, so a concurrent change
    /// acknowledged meanwhile (a rotation, a deletion, a policy) is never overwritten by a copy
    /// read earlier. Returns the key as written.
    pub(crate) fn update_key(
        &self,
        key: &KmsKey,
        rule: StateRule,
        mut f: impl FnMut(&mut KmsKey) -> Result<(), ServiceError>,
    ) -> Result<KmsKey, ServiceError> {
        let row = format!("{}/{}", key.account, key.id);
        self.tx(|t| {
            coffer_store::update_json(t, NS_KEY, &row, store_err, |k: &mut KmsKey| {
                check_state(k, rule)?;
                f(k)?;
                Ok(k.clone())
            })?
            .ok_or_else(|| not_found(format!("Key '{}' does not exist", key.arn)))
        })
    }

    pub(crate) fn aliases_of(
        &self,
        account: &str,
        key_id: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let generation = self.store.generation();
        self.alias_cache
            .get_or_try(generation, &format!("{account}/{key_id}"), || {
                self.aliases_uncached(account, key_id)
            })
    }

    fn aliases_uncached(&self, account: &str, key_id: &str) -> Result<Vec<String>, ServiceError> {
        crate::indexes::alias_names(&*self.store, account, key_id)
    }

    fn load_key(&self, account: &str, id: &str) -> Result<Option<KmsKey>, ServiceError> {
        let generation = self.store.generation();
        let k = format!("{account}/{id}");
        self.key_cache
            .get_or_try(generation, &k, || {
                get_json::<KmsKey>(&*self.store, NS_KEY, &k)
                    .map(|o| o.map(std::sync::Arc::new))
                    .map_err(store_err)
            })
            .map(|o| o.map(|k| (*k).clone()))
    }

    /// Resolves a key identifier (id, key ARN, and — where allowed — alias name or alias ARN).
    pub(crate) fn resolve(
        &self,
        account: &str,
        key_id: &str,
        allow_alias: bool,
    ) -> Result<KmsKey, ServiceError> {
        let arn_prefix = "arn:aws:kms:";
        let (alias_name, id) = if let Some(rest) = key_id.strip_prefix(arn_prefix) {
            let mut parts = rest.splitn(3, ':');
            let (region, acct, res) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            if region != self.region {
                return Err(not_found(format!("Invalid arn {region}")));
            }
            if acct != account {
                return Err(not_found(format!("Invalid keyId '{key_id}'")));
            }
            if let Some(id) = res.strip_prefix("key/") {
                (None, id.to_string())
            } else if res.starts_with("alias/") {
                (Some(res.to_string()), String::new())
            } else {
                return Err(not_found(format!("Invalid keyId '{key_id}'")));
            }
        } else if key_id.starts_with("alias/") {
            (Some(key_id.to_string()), String::new())
        } else {
            (None, key_id.to_string())
        };
        if let Some(name) = alias_name {
            if !allow_alias {
                return Err(ServiceError::new(
                    "InvalidArnException",
                    400,
                    "Key Aliases are not supported for this operation.",
                ));
            }
            let a: Alias = get_json(&*self.store, NS_ALIAS, &format!("{account}/{name}"))
                .map_err(store_err)?
                .ok_or_else(|| {
                    not_found(format!(
                        "Alias {} is not found.",
                        self.alias_arn(account, &name)
                    ))
                })?;
            return self
                .load_key(account, &a.target)?
                .ok_or_else(|| not_found(format!("Alias {} is not found.", a.arn)));
        }
        if !is_uuid(&id) {
            return Err(not_found(format!("Invalid keyId '{key_id}'")));
        }
        self.load_key(account, &id)?.ok_or_else(|| {
            not_found(format!(
                "Key '{}' does not exist",
                self.key_arn(account, &id)
            ))
        })
    }

    /// Resolves, authorizes and state-checks the key of a key-scoped operation.
    fn key_for(
        &self,
        ctx: &RequestContext,
        inp: &Input,
        field: &str,
        action: &str,
        allow_alias: bool,
        rule: StateRule,
    ) -> Result<KmsKey, ServiceError> {
        let id = inp.str(field)?;
        let key = self.resolve(&ctx.principal.account, id, allow_alias)?;
        let mut extra = vec![];
        if id.contains("alias/") {
            extra.push((
                "kms:RequestAlias".to_string(),
                id.rsplit(':').next().unwrap_or(id).to_string(),
            ));
        }
        self.authorize_key(ctx, &key, action, &extra, &[])?;
        check_state(&key, rule)?;
        Ok(key)
    }

    pub(crate) fn dispatch(&self, ctx: &RequestContext, op: &str, inp: &Input) -> R {
        match op {
            "CreateKey" => self.create_key(ctx, inp),
            "DescribeKey" => {
                let k = self.key_for(ctx, inp, "KeyId", "kms:DescribeKey", true, StateRule::Any)?;
                Ok(json!({ "KeyMetadata": key_metadata(&k) }))
            }
            "ListKeys" => self.list_keys(ctx, inp),
            "UpdateKeyDescription" => {
                let desc = inp.str("Description")?;
                check_description(desc)?;
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:UpdateKeyDescription",
                    false,
                    StateRule::NotPending,
                )?;
                self.update_key(&k, StateRule::NotPending, |k| {
                    k.description = desc.to_string();
                    Ok(())
                })?;
                Ok(json!({}))
            }
            "EnableKey" | "DisableKey" => {
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    &format!("kms:{op}"),
                    false,
                    StateRule::NotPending,
                )?;
                self.update_key(&k, StateRule::NotPending, |k| {
                    k.state = if op == "EnableKey" {
                        KeyState::Enabled
                    } else {
                        KeyState::Disabled
                    };
                    Ok(())
                })?;
                Ok(json!({}))
            }
            "ScheduleKeyDeletion" => self.schedule_deletion(ctx, inp),
            "CancelKeyDeletion" => {
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:CancelKeyDeletion",
                    false,
                    StateRule::Any,
                )?;
                self.update_key(&k, StateRule::Any, |k| {
                    if k.state != KeyState::PendingDeletion {
                        return Err(invalid_state(format!("{} is not pending deletion.", k.arn)));
                    }
                    k.state = KeyState::Disabled;
                    k.deletion_date = None;
                    k.pending_window_days = None;
                    Ok(())
                })?;
                Ok(json!({ "KeyId": k.arn }))
            }
            "TagResource" => {
                let tags = inp.0.get("Tags").cloned().unwrap_or(Value::Null);
                if tags.is_null() {
                    return Err(validation(
                        "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null",
                    ));
                }
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:TagResource",
                    false,
                    StateRule::NotPending,
                )?;
                self.update_key(&k, StateRule::NotPending, |k| {
                    k.tags = check_tags(&k.tags, &tags)?;
                    Ok(())
                })?;
                Ok(json!({}))
            }
            "UntagResource" => {
                let keys = inp.str_list("TagKeys")?.ok_or_else(|| validation("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null"))?;
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:UntagResource",
                    false,
                    StateRule::NotPending,
                )?;
                self.update_key(&k, StateRule::NotPending, |k| {
                    k.tags.retain(|t| !keys.contains(&t.key));
                    Ok(())
                })?;
                Ok(json!({}))
            }
            "ListResourceTags" => {
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:ListResourceTags",
                    false,
                    StateRule::Any,
                )?;
                let tags: Vec<Value> = k
                    .tags
                    .iter()
                    .map(|t| json!({"TagKey": t.key, "TagValue": t.value}))
                    .collect();
                Ok(json!({ "Tags": tags, "Truncated": false }))
            }
            "GetKeyPolicy" => {
                check_policy_name(inp)?;
                let k =
                    self.key_for(ctx, inp, "KeyId", "kms:GetKeyPolicy", false, StateRule::Any)?;
                Ok(json!({ "Policy": k.policy, "PolicyName": "default" }))
            }
            "ListKeyPolicies" => {
                self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:ListKeyPolicies",
                    false,
                    StateRule::Any,
                )?;
                Ok(json!({ "PolicyNames": ["default"], "Truncated": false }))
            }
            "PutKeyPolicy" => self.put_key_policy(ctx, inp),
            "CreateAlias" => self.create_alias(ctx, inp),
            "UpdateAlias" => self.update_alias(ctx, inp),
            "DeleteAlias" => self.delete_alias(ctx, inp),
            "ListAliases" => self.list_aliases(ctx, inp),
            "Encrypt" => self.encrypt(ctx, inp),
            "Decrypt" => self.decrypt(ctx, inp),
            "ReEncrypt" => self.re_encrypt(ctx, inp),
            "GenerateDataKey" => self.generate_data_key(ctx, inp, true),
            "GenerateDataKeyWithoutPlaintext" => self.generate_data_key(ctx, inp, false),
            "GenerateRandom" => self.generate_random(ctx, inp),
            "GenerateMac" | "VerifyMac" => self.mac(ctx, inp, op == "VerifyMac"),
            "EnableKeyRotation" => self.enable_rotation(ctx, inp),
            "DisableKeyRotation" => {
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:DisableKeyRotation",
                    false,
                    StateRule::Rotation,
                )?;
                require_rotatable(&k)?;
                self.update_key(&k, StateRule::Rotation, |k| {
                    k.rotation_period_days = None;
                    k.next_rotation = None;
                    Ok(())
                })?;
                Ok(json!({}))
            }
            "GetKeyRotationStatus" => {
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:GetKeyRotationStatus",
                    false,
                    StateRule::Any,
                )?;
                let enabled =
                    k.rotation_period_days.is_some() && k.state != KeyState::PendingDeletion;
                let mut out = json!({ "KeyRotationEnabled": enabled, "KeyId": k.arn });
                if let (true, Some(p), Some(n)) = (enabled, k.rotation_period_days, k.next_rotation)
                {
                    out["RotationPeriodInDays"] = json!(p);
                    out["NextRotationDate"] = json!(n);
                }
                Ok(out)
            }
            "RotateKeyOnDemand" => self.rotate_on_demand(ctx, inp),
            "Sign" => self.sign(ctx, inp),
            "Verify" => self.verify(ctx, inp),
            "GetPublicKey" => self.get_public_key(ctx, inp),
            "GenerateDataKeyPair" => self.data_key_pair(ctx, inp, true),
            "GenerateDataKeyPairWithoutPlaintext" => self.data_key_pair(ctx, inp, false),
            "CreateGrant" => {
                let key = self.resolve(&ctx.principal.account, inp.str("KeyId")?, false)?;
                self.create_grant(ctx, inp, key)
            }
            "ListGrants" => {
                let limit = limit_of(inp, 100, 50)?;
                let k = self.key_for(ctx, inp, "KeyId", "kms:ListGrants", false, StateRule::Any)?;
                self.list_grants(inp, &k, limit)
            }
            "ListRetirableGrants" => self.list_retirable_grants(ctx, inp),
            "RetireGrant" => self.retire_grant(ctx, inp),
            "RevokeGrant" => {
                let k =
                    self.key_for(ctx, inp, "KeyId", "kms:RevokeGrant", false, StateRule::Any)?;
                self.revoke_grant(inp, &k)
            }
            "ListKeyRotations" => {
                let k = self.key_for(
                    ctx,
                    inp,
                    "KeyId",
                    "kms:ListKeyRotations",
                    false,
                    StateRule::Any,
                )?;
                require_rotatable(&k)?;
                let rotations: Vec<Value> = k
                    .materials
                    .iter()
                    .filter(|m| m.kind != "INITIAL")
                    .map(|m| json!({ "KeyId": k.arn, "RotationDate": m.created, "RotationType": m.kind, "KeyMaterialId": material_id(&k, m.version) }))
                    .collect();
                Ok(json!({ "Rotations": rotations, "Truncated": false }))
            }
            _ => Err(ServiceError::new(
                "UnknownOperationException",
                400,
                format!("Coffer does not implement the KMS operation '{op}' yet."),
            )),
        }
    }

    fn create_key(&self, ctx: &RequestContext, inp: &Input) -> R {
        let account = ctx.principal.account.clone();
        let spec = inp
            .opt_str("KeySpec")?
            .or(inp.opt_str("CustomerMasterKeySpec")?)
            .unwrap_or("SYMMETRIC_DEFAULT");
        let usage = inp.opt_str("KeyUsage")?;
        const SPECS: &[&str] = &[
            "SYMMETRIC_DEFAULT",
            "HMAC_224",
            "HMAC_256",
            "HMAC_384",
            "HMAC_512",
            "RSA_2048",
            "RSA_3072",
            "RSA_4096",
            "ECC_NIST_P256",
            "ECC_NIST_P384",
            "ECC_NIST_P521",
            "ECC_SECG_P256K1",
            "SM2",
            "ML_DSA_44",
            "ML_DSA_65",
            "ML_DSA_87",
        ];
        if !SPECS.contains(&spec) {
            return Err(validation(format!(
                "1 validation error detected: Value '{spec}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                SPECS.join(", ")
            )));
        }
        let asym = coffer_crypto::asym::AsymSpec::from_kms(spec);
        let (usage, material_len) = match spec {
            "SYMMETRIC_DEFAULT" => match usage {
                None | Some("ENCRYPT_DECRYPT") => ("ENCRYPT_DECRYPT", 32),
                Some(u) => {
                    return Err(validation(format!(
                        "KeyUsage {u} is not compatible with KeySpec SYMMETRIC_DEFAULT"
                    )));
                }
            },
            s if s.starts_with("HMAC_") => match usage {
                Some("GENERATE_VERIFY_MAC") => (
                    "GENERATE_VERIFY_MAC",
                    s[5..].parse::<usize>().unwrap_or(256) / 8,
                ),
                None => {
                    return Err(validation(
                        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
                    ));
                }
                Some(u) => {
                    return Err(validation(format!(
                        "KeyUsage {u} is not compatible with KeySpec {s}"
                    )));
                }
            },
            s if asym.is_some() => match (usage, asym.is_some_and(|a| a.is_rsa())) {
                (Some("SIGN_VERIFY"), _) => ("SIGN_VERIFY", 0),
                (Some("ENCRYPT_DECRYPT"), true) => ("ENCRYPT_DECRYPT", 0),
                (None, _) => {
                    return Err(validation(
                        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
                    ));
                }
                (Some("KEY_AGREEMENT"), false) => {
                    return Err(ServiceError::new(
                        "UnsupportedOperationException",
                        400,
                        "KeyUsage KEY_AGREEMENT is not supported by Coffer yet.",
                    ));
                }
                (Some(u), _) => {
                    return Err(validation(format!(
                        "KeyUsage {u} is not compatible with KeySpec {s}"
                    )));
                }
            },
            s => {
                return Err(ServiceError::new(
                    "UnsupportedOperationException",
                    400,
                    format!("KeySpec {s} is not supported by Coffer yet."),
                ));
            }
        };
        if let Some(o) = inp.opt_str("Origin")?
            && o != "AWS_KMS"
        {
            return Err(ServiceError::new(
                "UnsupportedOperationException",
                400,
                format!("Origin {o} is not supported by Coffer yet."),
            ));
        }
        if inp.opt_bool("MultiRegion")?.unwrap_or(false) {
            return Err(ServiceError::new(
                "UnsupportedOperationException",
                400,
                "Multi-Region keys are not supported by Coffer yet.",
            ));
        }
        let description = inp.opt_str("Description")?.unwrap_or("");
        check_description(description)?;
        let tags = match inp.0.get("Tags") {
            None | Some(Value::Null) => vec![],
            Some(t) => check_tags(&[], t)?,
        };
        self.authorize_iam(ctx, "kms:CreateKey", "*")?;
        if !tags.is_empty() {
            self.authorize_iam(ctx, "kms:TagResource", "*")?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let arn = self.key_arn(&account, &id);
        let policy = match inp.opt_str("Policy")? {
            Some(p) => {
                let bypass = inp
                    .opt_bool("BypassPolicyLockoutSafetyCheck")?
                    .unwrap_or(false);
                self.check_key_policy(ctx, &arn, &account, p, bypass)?;
                p.to_string()
            }
            None => default_policy(&account),
        };
        let (material, public_key) = match asym {
            Some(a) => {
                let (sk, pk) =
                    coffer_crypto::asym::generate(a).map_err(|e| internal(format!("{e:?}")))?;
                (
                    self.wrap_material(&arn, 1, &sk, "INITIAL")?,
                    Some(base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        pk,
                    )),
                )
            }
            None => (self.new_material(&arn, 1, material_len, "INITIAL")?, None),
        };
        let key = KmsKey {
            id: id.clone(),
            arn,
            account: account.clone(),
            created: self.now(),
            description: description.to_string(),
            key_usage: usage.to_string(),
            key_spec: spec.to_string(),
            state: KeyState::Enabled,
            deletion_date: None,
            pending_window_days: None,
            policy,
            tags,
            materials: vec![material],
            current_material: 1,
            rotation_period_days: None,
            next_rotation: None,
            on_demand_rotations: 0,
            public_key,
            aws_managed: false,
        };
        self.tx(|t| put_json(t, NS_KEY, &format!("{account}/{id}"), &key).map_err(store_err))?;
        Ok(json!({ "KeyMetadata": key_metadata(&key) }))
    }

    /// Validates a key policy: syntax, size, principals, and (unless bypassed) the lockout check.
    fn check_key_policy(
        &self,
        ctx: &RequestContext,
        arn: &str,
        account: &str,
        policy: &str,
        bypass: bool,
    ) -> Result<(), ServiceError> {
        if policy.len() > 32768 {
            return Err(ServiceError::new(
                "LimitExceededException",
                400,
                "Policy exceeds the maximum size of 32768 bytes.",
            ));
        }
        let parsed = Policy::parse(policy, PolicyKind::Resource)
            .map_err(|e| ServiceError::new("MalformedPolicyDocumentException", 400, e.message))?;
        for st in parsed.statements() {
            if let Some(ps) = st.principal() {
                for p in &ps.aws {
                    let ok = match p {
                        coffer_policy::AwsPrincipal::Any => true,
                        coffer_policy::AwsPrincipal::Account(a) => self.iam.principal_exists(a)?,
                        coffer_policy::AwsPrincipal::Arn(a) => self.iam.principal_exists(a)?,
                    };
                    if !ok {
                        return Err(ServiceError::new(
                            "MalformedPolicyDocumentException",
                            400,
                            "Policy contains a statement with one or more invalid principals.",
                        ));
                    }
                }
            }
        }
        if !bypass {
            let c = self.key_context(ctx, None)?;
            let ids = self.iam.authorizer().identity_policies(ctx)?;
            let target = crate::authz::KeyTarget {
                arn,
                account,
                policy: &parsed,
            };
            if self
                .decide(ctx, target, "kms:PutKeyPolicy", &c, &ids)
                .is_err()
            {
                return Err(ServiceError::new(
                    "MalformedPolicyDocumentException",
                    400,
                    "The new key policy will not allow you to update the key policy in the future.",
                ));
            }
        }
        Ok(())
    }

    fn put_key_policy(&self, ctx: &RequestContext, inp: &Input) -> R {
        check_policy_name(inp)?;
        let policy = inp.str("Policy")?;
        let bypass = inp
            .opt_bool("BypassPolicyLockoutSafetyCheck")?
            .unwrap_or(false);
        let k = self.key_for(ctx, inp, "KeyId", "kms:PutKeyPolicy", false, StateRule::Any)?;
        self.check_key_policy(ctx, &k.arn, &k.account, policy, bypass)?;
        self.update_key(&k, StateRule::Any, |k| {
            k.policy = policy.to_string();
            Ok(())
        })?;
        Ok(json!({}))
    }

    fn list_keys(&self, ctx: &RequestContext, inp: &Input) -> R {
        self.authorize_iam(ctx, "kms:ListKeys", "*")?;
        let limit = limit_of(inp, 1000, 100)?;
        let account = &ctx.principal.account;
        let marker = inp.opt_str("Marker")?;
        let rows: Vec<(String, KmsKey)> = scan_json(
            &*self.store,
            NS_KEY,
            &format!("{account}/"),
            marker.map(|m| format!("{account}/{m}")).as_deref(),
            limit + 1,
        )
        .map_err(store_err)?;
        let truncated = rows.len() > limit;
        let page: Vec<&KmsKey> = rows.iter().take(limit).map(|(_, k)| k).collect();
        let mut out = json!({
            "Keys": page.iter().map(|k| json!({"KeyId": k.id, "KeyArn": k.arn})).collect::<Vec<_>>(),
            "Truncated": truncated,
        });
        if truncated && let Some(last) = page.last() {
            out["NextMarker"] = json!(last.id);
        }
        Ok(out)
    }

    fn schedule_deletion(&self, ctx: &RequestContext, inp: &Input) -> R {
        let days = inp.opt_int("PendingWindowInDays")?.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(validation(format!(
                "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value greater than or equal to 7 and less than or equal to 30"
            )));
        }
        let k = self.key_for(
            ctx,
            inp,
            "KeyId",
            "kms:ScheduleKeyDeletion",
            false,
            StateRule::NotPending,
        )?;
        let date = (self.now() / DAY).ceil() * DAY + days as f64 * DAY;
        self.update_key(&k, StateRule::NotPending, |k| {
            k.state = KeyState::PendingDeletion;
            k.deletion_date = Some(date);
            k.pending_window_days = Some(days);
            Ok(())
        })?;
        Ok(
            json!({ "KeyId": k.arn, "DeletionDate": date, "KeyState": "PendingDeletion", "PendingWindowInDays": days }),
        )
    }

    // ---------- aliases ----------

    fn create_alias(&self, ctx: &RequestContext, inp: &Input) -> R {
        let name = inp.str("AliasName")?;
        check_alias_name(name)?;
        let account = ctx.principal.account.clone();
        let alias_arn = self.alias_arn(&account, name);
        self.authorize_iam(ctx, "kms:CreateAlias", &alias_arn)?;
        let key = self.key_for(
            ctx,
            inp,
            "TargetKeyId",
            "kms:CreateAlias",
            false,
            StateRule::NotPending,
        )?;
        let now = self.now();
        let a = Alias {
            name: name.to_string(),
            arn: alias_arn.clone(),
            target: key.id.clone(),
            created: now,
            updated: now,
        };
        let ak = format!("{account}/{name}");
        self.tx(|t| {
            // Checked on what the transaction reads: the key may have been scheduled for
            // deletion or destroyed, or aliases added, since it was authorized.
            key_in(t, &key, StateRule::NotPending)?;
            let count = crate::indexes::alias_names(t, &account, &key.id)?.len();
            if t.get(NS_ALIAS, &ak).map_err(store_err)?.is_some() {
                return Err(ServiceError::new(
                    "AlreadyExistsException",
                    400,
                    format!("An alias with the name {alias_arn} already exists"),
                ));
            }
            if count >= 50 {
                return Err(ServiceError::new(
                    "LimitExceededException",
                    400,
                    "The key has reached the maximum of 50 aliases.",
                ));
            }
            crate::indexes::put_alias(t, &account, &a)
        })?;
        Ok(json!({}))
    }

    fn load_alias(&self, account: &str, name: &str) -> Result<Alias, ServiceError> {
        get_json(&*self.store, NS_ALIAS, &format!("{account}/{name}"))
            .map_err(store_err)?
            .ok_or_else(|| {
                not_found(format!(
                    "Alias {} is not found.",
                    self.alias_arn(account, name)
                ))
            })
    }

    fn update_alias(&self, ctx: &RequestContext, inp: &Input) -> R {
        let name = inp.str("AliasName")?;
        if !name.starts_with("alias/") {
            check_alias_name(name)?;
        }
        inp.str("TargetKeyId")?;
        let account = ctx.principal.account.clone();
        let a = self.load_alias(&account, name)?;
        self.authorize_iam(ctx, "kms:UpdateAlias", &a.arn)?;
        let old = self.load_key(&account, &a.target)?;
        if let Some(old) = &old {
            self.authorize_key(ctx, old, "kms:UpdateAlias", &[], &[])?;
        }
        let new = self.key_for(
            ctx,
            inp,
            "TargetKeyId",
            "kms:UpdateAlias",
            false,
            StateRule::NotPending,
        )?;
        if let Some(old) = &old
            && old.key_usage != new.key_usage
        {
            return Err(validation(format!(
                "{} key usage {} does not match the alias's current key usage {}.",
                new.arn, new.key_usage, old.key_usage
            )));
        }
        let (old_target, now) = (a.target.clone(), self.now());
        let ak = format!("{account}/{name}");
        self.tx(|t| {
            key_in(t, &new, StateRule::NotPending)?;
            // The alias must still be the one authorized (not deleted nor moved meanwhile).
            let mut a: Alias = get_json(&*t, NS_ALIAS, &ak)
                .map_err(store_err)?
                .ok_or_else(|| not_found(format!("Alias {} is not found.", a.arn)))?;
            if a.target != old_target {
                return Err(ServiceError::new(
                    "ConflictException",
                    400,
                    format!("Alias {} was changed by another request; retry.", a.arn),
                ));
            }
            a.target = new.id.clone();
            a.updated = now;
            crate::indexes::put_alias(t, &account, &a)
        })?;
        Ok(json!({}))
    }

    fn delete_alias(&self, ctx: &RequestContext, inp: &Input) -> R {
        let name = inp.str("AliasName")?;
        let account = ctx.principal.account.clone();
        let a = self.load_alias(&account, name)?;
        self.authorize_iam(ctx, "kms:DeleteAlias", &a.arn)?;
        if let Some(k) = self.load_key(&account, &a.target)? {
            self.authorize_key(ctx, &k, "kms:DeleteAlias", &[], &[])?;
        }
        self.tx(|t| crate::indexes::delete_alias(t, &account, name).map(|_| ()))?;
        Ok(json!({}))
    }

    fn list_aliases(&self, ctx: &RequestContext, inp: &Input) -> R {
        let account = ctx.principal.account.clone();
        let limit = limit_of(inp, 100, 50)?;
        let key_filter = match inp.opt_str("KeyId")? {
            Some(id) => {
                let k = self.resolve(&account, id, false)?;
                self.authorize_key(ctx, &k, "kms:ListAliases", &[], &[])?;
                Some(k.id)
            }
            None => {
                self.authorize_iam(ctx, "kms:ListAliases", "*")?;
                None
            }
        };
        let marker = inp.opt_str("Marker")?;
        let rows: Vec<(String, Alias)> = scan_json(
            &*self.store,
            NS_ALIAS,
            &format!("{account}/"),
            marker.map(|m| format!("{account}/{m}")).as_deref(),
            100_000,
        )
        .map_err(store_err)?;
        let all: Vec<&Alias> = rows
            .iter()
            .map(|(_, a)| a)
            .filter(|a| key_filter.as_ref().is_none_or(|k| &a.target == k))
            .collect();
        let truncated = all.len() > limit;
        let page = &all[..all.len().min(limit)];
        let mut out = json!({
            "Aliases": page.iter().map(|a| json!({
                "AliasName": a.name, "AliasArn": a.arn, "TargetKeyId": a.target,
                "CreationDate": a.created, "LastUpdatedDate": a.updated
            })).collect::<Vec<_>>(),
            "Truncated": truncated,
        });
        if truncated && let Some(last) = page.last() {
            out["NextMarker"] = json!(last.name);
        }
        Ok(out)
    }

    // ---------- cryptography ----------

    /// Resolves and authorizes a crypto operation, with the encryption context as condition keys.
    pub(crate) fn crypto_key(
        &self,
        ctx: &RequestContext,
        id: &str,
        action: &str,
        ec: &[(String, String)],
    ) -> Result<KmsKey, ServiceError> {
        let key = self.resolve(&ctx.principal.account, id, true)?;
        let mut extra = vec![];
        if id.contains("alias/") {
            extra.push((
                "kms:RequestAlias".into(),
                id.rsplit(':').next().unwrap_or(id).to_string(),
            ));
        }
        extra.push(("kms:EncryptionAlgorithm".into(), "SYMMETRIC_DEFAULT".into()));
        self.authorize_key(ctx, &key, action, &extra, ec)?;
        check_state(&key, StateRule::Crypto)?;
        Ok(key)
    }

    pub(crate) fn require_encrypt_usage(key: &KmsKey, op: &str) -> Result<(), ServiceError> {
        if key.key_usage == "ENCRYPT_DECRYPT" && !key.is_symmetric() {
            return Err(ServiceError::new(
                "InvalidKeyUsageException",
                400,
                format!(
                    "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec {}.",
                    key.key_spec
                ),
            ));
        }
        if key.key_usage != "ENCRYPT_DECRYPT" || !key.is_symmetric() {
            return Err(ServiceError::new(
                "InvalidKeyUsageException",
                400,
                format!(
                    "{} key usage is {} which is not valid for {op}.",
                    key.arn, key.key_usage
                ),
            ));
        }
        Ok(())
    }

    fn check_algorithm(inp: &Input, field: &str) -> Result<(), ServiceError> {
        match inp.opt_str(field)? {
            None | Some("SYMMETRIC_DEFAULT") => Ok(()),
            Some(a @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" | "SM2PKE")) => {
                Err(ServiceError::new(
                    "InvalidKeyUsageException",
                    400,
                    format!("Algorithm {a} is incompatible with key spec SYMMETRIC_DEFAULT."),
                ))
            }
            Some(a) => Err(validation(format!(
                "1 validation error detected: Value '{a}' at 'encryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]"
            ))),
        }
    }

    /// Seals `plaintext` under the key's current material.
    pub(crate) fn seal(
        &self,
        key: &KmsKey,
        ec: &[(String, String)],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ServiceError> {
        let material = self
            .material(key, key.current_material)?
            .ok_or_else(|| internal("current material missing"))?;
        let header = BlobHeader {
            key_id: uuid_bytes(&key.id)?,
            material_version: key.current_material,
        };
        kms_blob::seal(&material, &header, &canonical(ec), plaintext).map_err(internal)
    }

    fn encrypt(&self, ctx: &RequestContext, inp: &Input) -> R {
        let id = inp.str("KeyId")?;
        let plaintext = inp.blob("Plaintext")?;
        if plaintext.is_empty() || plaintext.len() > 4096 {
            return Err(validation(if plaintext.is_empty() {
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1"
            } else {
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096"
            }));
        }
        let ec = inp.context("EncryptionContext")?;
        if let Some(alg @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256")) =
            inp.opt_str("EncryptionAlgorithm")?
        {
            return self.rsa_encrypt(ctx, inp, id, alg, &plaintext, &ec);
        }
        Self::check_algorithm(inp, "EncryptionAlgorithm")?;
        let key = self.crypto_key(ctx, id, "kms:Encrypt", &ec)?;
        Self::require_encrypt_usage(&key, "Encrypt")?;
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let blob = self.seal(&key, &ec, &plaintext)?;
        Ok(
            json!({ "CiphertextBlob": b64(&blob), "KeyId": key.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT" }),
        )
    }

    /// Opens a blob for `action`: finds its key, checks `expected` (a KeyId given by the caller),
    /// authorizes, checks state, and decrypts.
    fn open_blob(
        &self,
        ctx: &RequestContext,
        blob: &[u8],
        ec: &[(String, String)],
        expected: Option<&str>,
        action: &str,
    ) -> Result<(KmsKey, Zeroizing<Vec<u8>>), ServiceError> {
        if blob.is_empty() || blob.len() > 6144 {
            return Err(validation(
                "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length less than or equal to 6144",
            ));
        }
        let header = kms_blob::peek(blob).map_err(|_| invalid_ciphertext())?;
        let blob_key_id = uuid::Uuid::from_bytes(header.key_id).to_string();
        let account = &ctx.principal.account;
        let key = match expected {
            Some(id) => {
                let k = self.resolve(account, id, true)?;
                if k.id != blob_key_id {
                    return Err(ServiceError::new(
                        "IncorrectKeyException",
                        400,
                        "The key ID in the request does not identify a CMK that can perform this operation.",
                    ));
                }
                k
            }
            None => self.load_key(account, &blob_key_id)?.ok_or_else(|| {
                ServiceError::new(
                    "AccessDeniedException",
                    400,
                    "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.",
                )
            })?,
        };
        let extra = vec![("kms:EncryptionAlgorithm".into(), "SYMMETRIC_DEFAULT".into())];
        self.authorize_key(ctx, &key, action, &extra, ec)?;
        check_state(&key, StateRule::Crypto)?;
        Self::require_encrypt_usage(&key, "Decrypt")?;
        let material = self
            .material(&key, header.material_version)?
            .ok_or_else(invalid_ciphertext)?;
        let plain =
            kms_blob::open(&material, blob, &canonical(ec)).map_err(|_| invalid_ciphertext())?;
        Ok((key, plain))
    }

    fn decrypt(&self, ctx: &RequestContext, inp: &Input) -> R {
        let blob = inp.blob("CiphertextBlob")?;
        let ec = inp.context("EncryptionContext")?;
        if let Some(alg @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256")) =
            inp.opt_str("EncryptionAlgorithm")?
        {
            return self.rsa_decrypt(ctx, inp, alg, &blob, &ec);
        }
        Self::check_algorithm(inp, "EncryptionAlgorithm")?;
        let dry = inp.opt_bool("DryRun")?.unwrap_or(false);
        let (key, plain) = self.open_blob(ctx, &blob, &ec, inp.opt_str("KeyId")?, "kms:Decrypt")?;
        if dry {
            return Err(dry_run());
        }
        let version = kms_blob::peek(&blob)
            .map(|h| h.material_version)
            .unwrap_or(key.current_material);
        Ok(json!({
            "KeyId": key.arn, "Plaintext": b64(&plain), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "KeyMaterialId": material_id(&key, version),
        }))
    }

    fn re_encrypt(&self, ctx: &RequestContext, inp: &Input) -> R {
        let blob = inp.blob("CiphertextBlob")?;
        let dest_id = inp.str("DestinationKeyId")?;
        let src_ec = inp.context("SourceEncryptionContext")?;
        let dst_ec = inp.context("DestinationEncryptionContext")?;
        Self::check_algorithm(inp, "SourceEncryptionAlgorithm")?;
        Self::check_algorithm(inp, "DestinationEncryptionAlgorithm")?;
        let (src, plain) = self.open_blob(
            ctx,
            &blob,
            &src_ec,
            inp.opt_str("SourceKeyId")?,
            "kms:ReEncryptFrom",
        )?;
        let dst = self.crypto_key(ctx, dest_id, "kms:ReEncryptTo", &dst_ec)?;
        Self::require_encrypt_usage(&dst, "ReEncrypt")?;
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let out = self.seal(&dst, &dst_ec, &plain)?;
        Ok(json!({
            "CiphertextBlob": b64(&out), "SourceKeyId": src.arn, "KeyId": dst.arn,
            "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }))
    }

    fn generate_data_key(&self, ctx: &RequestContext, inp: &Input, with_plaintext: bool) -> R {
        let id = inp.str("KeyId")?;
        let n = match (inp.opt_str("KeySpec")?, inp.opt_int("NumberOfBytes")?) {
            (Some("AES_256"), None) => 32,
            (Some("AES_128"), None) => 16,
            (Some(s), None) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{s}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"
                )));
            }
            (None, Some(n)) if (1..=1024).contains(&n) => n as usize,
            (None, Some(n)) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024"
                )));
            }
            _ => {
                return Err(validation(
                    "Please specify either number of bytes or key spec.",
                ));
            }
        };
        let ec = inp.context("EncryptionContext")?;
        let action = if with_plaintext {
            "kms:GenerateDataKey"
        } else {
            "kms:GenerateDataKeyWithoutPlaintext"
        };
        let key = self.crypto_key(ctx, id, action, &ec)?;
        Self::require_encrypt_usage(
            &key,
            if with_plaintext {
                "GenerateDataKey"
            } else {
                "GenerateDataKeyWithoutPlaintext"
            },
        )?;
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let mut dk = Zeroizing::new(vec![0u8; n]);
        coffer_crypto::random_fill(&mut dk).map_err(internal)?;
        let blob = self.seal(&key, &ec, &dk)?;
        let mut out = json!({ "CiphertextBlob": b64(&blob), "KeyId": key.arn, "KeyMaterialId": material_id(&key, key.current_material) });
        if with_plaintext {
            out["Plaintext"] = b64(&dk);
        }
        Ok(out)
    }

    /// GenerateDataKey (AES_256) for a service acting as the caller: the same authorization,
    /// state and usage checks as the API operation, without a JSON round trip, and the plaintext
    /// stays in zeroizing memory.
    pub(crate) fn service_data_key(
        &self,
        ctx: &RequestContext,
        key_id: &str,
        ec: &[(String, String)],
    ) -> Result<coffer_core::DataKey, ServiceError> {
        let key = self.crypto_key(ctx, key_id, "kms:GenerateDataKey", ec)?;
        Self::require_encrypt_usage(&key, "GenerateDataKey")?;
        let mut dk = Zeroizing::new(vec![0u8; 32]);
        coffer_crypto::random_fill(&mut dk).map_err(internal)?;
        let blob = self.seal(&key, ec, &dk)?;
        Ok(coffer_core::DataKey {
            key_arn: key.arn,
            plaintext: dk,
            ciphertext: blob,
        })
    }

    /// The AWS managed key of `service` in the caller's account (`alias/aws/s3`): made on first
    /// use as AWS does, with AWS's key policy (usable only through the service, by principals of
    /// the account; its metadata readable by the account), yearly rotation, and no way for anyone
    /// to change, disable or delete it. Returns its ARN.
    pub(crate) fn aws_managed_key(
        &self,
        ctx: &RequestContext,
        service: &str,
    ) -> Result<String, ServiceError> {
        let account = ctx.principal.account.clone();
        let alias_name = format!("alias/aws/{service}");
        let ak = format!("{account}/{alias_name}");
        if let Some(a) = get_json::<Alias>(&*self.store, NS_ALIAS, &ak).map_err(store_err)? {
            return Ok(self.key_arn(&account, &a.target));
        }
        let (description, policy) = match service {
            "s3" => (
                "Default key that protects my S3 objects when no other key is defined",
                aws_s3_policy(&account, &self.region),
            ),
            _ => return Err(internal(format!("no AWS managed key for {service}"))),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let arn = self.key_arn(&account, &id);
        let now = self.now();
        let key = KmsKey {
            id: id.clone(),
            arn: arn.clone(),
            account: account.clone(),
            created: now,
            description: description.to_string(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            state: KeyState::Enabled,
            deletion_date: None,
            pending_window_days: None,
            policy,
            tags: vec![],
            materials: vec![self.new_material(&arn, 1, 32, "INITIAL")?],
            current_material: 1,
            rotation_period_days: Some(365),
            next_rotation: Some(now + 365.0 * 86400.0),
            on_demand_rotations: 0,
            public_key: None,
            aws_managed: true,
        };
        let alias = Alias {
            name: alias_name.clone(),
            arn: self.alias_arn(&account, &alias_name),
            target: id.clone(),
            created: now,
            updated: now,
        };
        let mut existing: Option<String> = None;
        self.tx(|t| {
            // Two first uses at once: the one that commits first wins, the other uses its key.
            if let Some(v) = t.get(NS_ALIAS, &ak).map_err(store_err)?
                && let Ok(a) = serde_json::from_slice::<Alias>(&v)
            {
                existing = Some(a.target);
                return Ok(());
            }
            put_json(t, NS_KEY, &format!("{account}/{id}"), &key).map_err(store_err)?;
            crate::indexes::put_alias(t, &account, &alias)
        })?;
        Ok(match existing {
            Some(target) => self.key_arn(&account, &target),
            None => arn,
        })
    }

    /// The checks of `service_data_key` (authorization, key state and usage) without making a key.
    pub(crate) fn service_authorize_data_key(
        &self,
        ctx: &RequestContext,
        key_id: &str,
        ec: &[(String, String)],
    ) -> Result<(), ServiceError> {
        let key = self.crypto_key(ctx, key_id, "kms:GenerateDataKey", ec)?;
        Self::require_encrypt_usage(&key, "GenerateDataKey")
    }

    /// Decrypt for a service acting as the caller (see `service_data_key`).
    pub(crate) fn service_decrypt(
        &self,
        ctx: &RequestContext,
        key_id: Option<&str>,
        blob: &[u8],
        ec: &[(String, String)],
    ) -> Result<(String, Zeroizing<Vec<u8>>), ServiceError> {
        let (key, plain) = self.open_blob(ctx, blob, ec, key_id, "kms:Decrypt")?;
        Ok((key.arn, plain))
    }

    fn generate_random(&self, ctx: &RequestContext, inp: &Input) -> R {
        let n = inp
            .opt_int("NumberOfBytes")?
            .ok_or_else(|| validation("NumberOfBytes is required."))?;
        if !(1..=1024).contains(&n) {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value {} 1024",
                if n < 1 {
                    "greater than or equal to 1 and less than or equal to"
                } else {
                    "less than or equal to"
                }
            )));
        }
        if inp.opt_str("CustomKeyStoreId")?.is_some() {
            return Err(ServiceError::new(
                "CustomKeyStoreNotFoundException",
                400,
                "Custom key stores are not supported by Coffer.",
            ));
        }
        self.authorize_iam(ctx, "kms:GenerateRandom", "*")?;
        let mut b = Zeroizing::new(vec![0u8; n as usize]);
        coffer_crypto::random_fill(&mut b).map_err(internal)?;
        Ok(json!({ "Plaintext": b64(&b) }))
    }

    fn mac(&self, ctx: &RequestContext, inp: &Input, verify: bool) -> R {
        let id = inp.str("KeyId")?;
        let msg = inp.blob("Message")?;
        if msg.is_empty() || msg.len() > 4096 {
            return Err(validation(
                "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096",
            ));
        }
        let alg = inp.str("MacAlgorithm")?;
        let bits: u16 = match alg {
            "HMAC_SHA_224" => 224,
            "HMAC_SHA_256" => 256,
            "HMAC_SHA_384" => 384,
            "HMAC_SHA_512" => 512,
            a => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{a}' at 'macAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [HMAC_SHA_384, HMAC_SHA_256, HMAC_SHA_224, HMAC_SHA_512]"
                )));
            }
        };
        let provided = if verify { Some(inp.blob("Mac")?) } else { None };
        let op = if verify { "VerifyMac" } else { "GenerateMac" };
        let key = self.resolve(&ctx.principal.account, id, true)?;
        self.authorize_key(
            ctx,
            &key,
            &format!("kms:{op}"),
            &[("kms:MacAlgorithm".into(), alg.into())],
            &[],
        )?;
        check_state(&key, StateRule::Crypto)?;
        let Some(key_bits) = key.hmac_bits() else {
            return Err(ServiceError::new(
                "InvalidKeyUsageException",
                400,
                format!(
                    "{} key usage is {} which is not valid for {op}.",
                    key.arn, key.key_usage
                ),
            ));
        };
        if key_bits != bits {
            return Err(ServiceError::new(
                "InvalidKeyUsageException",
                400,
                format!(
                    "Algorithm {alg} is incompatible with key spec {}.",
                    key.key_spec
                ),
            ));
        }
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let material = self
            .material(&key, key.current_material)?
            .ok_or_else(|| internal("material missing"))?;
        let mac = coffer_crypto::hmac(bits, &material, &msg).ok_or_else(|| internal("hmac"))?;
        match provided {
            None => Ok(json!({ "Mac": b64(&mac), "MacAlgorithm": alg, "KeyId": key.arn })),
            Some(p) => {
                if coffer_crypto::ct_eq(&mac, &p) {
                    Ok(json!({ "KeyId": key.arn, "MacValid": true, "MacAlgorithm": alg }))
                } else {
                    Err(ServiceError::new("KMSInvalidMacException", 400, ""))
                }
            }
        }
    }

    // ---------- rotation ----------

    fn enable_rotation(&self, ctx: &RequestContext, inp: &Input) -> R {
        let days = inp
            .opt_int("RotationPeriodInDays")?
            .unwrap_or(DEFAULT_ROTATION_DAYS);
        if !(90..=2560).contains(&days) {
            return Err(validation(format!(
                "1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value greater than or equal to 90 and less than or equal to 2560"
            )));
        }
        let k = self.key_for(
            ctx,
            inp,
            "KeyId",
            "kms:EnableKeyRotation",
            false,
            StateRule::Rotation,
        )?;
        require_rotatable(&k)?;
        let next = self.now() + days as f64 * DAY;
        self.update_key(&k, StateRule::Rotation, |k| {
            k.rotation_period_days = Some(days);
            k.next_rotation = Some(next);
            Ok(())
        })?;
        Ok(json!({}))
    }

    fn rotate(&self, k: &mut KmsKey, kind: &str) -> Result<(), ServiceError> {
        let v = k.materials.iter().map(|m| m.version).max().unwrap_or(0) + 1;
        let m = self.new_material(&k.arn, v, 32, kind)?;
        k.materials.push(m);
        k.current_material = v;
        Ok(())
    }

    fn rotate_on_demand(&self, ctx: &RequestContext, inp: &Input) -> R {
        let k = self.key_for(
            ctx,
            inp,
            "KeyId",
            "kms:RotateKeyOnDemand",
            false,
            StateRule::Rotation,
        )?;
        require_rotatable(&k)?;
        self.update_key(&k, StateRule::Rotation, |k| {
            if k.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS {
                return Err(ServiceError::new(
                    "LimitExceededException",
                    400,
                    format!(
                        "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: {}",
                        k.arn
                    ),
                ));
            }
            self.rotate(k, "ON_DEMAND")?;
            k.on_demand_rotations += 1;
            Ok(())
        })?;
        Ok(json!({ "KeyId": k.id }))
    }

    /// Background work that is due: destroys keys whose deletion date has passed (with their
    /// aliases, grants and every material version) and rotates keys whose rotation is due. The
    /// scan only finds candidates: each key is re-read inside its own transaction and changed
    /// only if it is still due there, so a CancelKeyDeletion, PutKeyPolicy or rotation
    /// acknowledged meanwhile is never reverted or overridden.
    pub fn run_due(&self) -> Result<(usize, usize), ServiceError> {
        let now = self.now();
        let (mut deleted, mut rotated) = (0, 0);
        let mut after: Option<String> = None;
        loop {
            let rows: Vec<(String, KmsKey)> =
                scan_json(&*self.store, NS_KEY, "", after.as_deref(), 500).map_err(store_err)?;
            let Some((last, _)) = rows.last() else { break };
            after = Some(last.clone());
            for (row_key, k) in rows {
                if k.state == KeyState::PendingDeletion {
                    if self.destroy_if_due(&row_key, now)? {
                        tracing::info!(key = %k.arn, "key deleted: its material is destroyed");
                        deleted += 1;
                    }
                } else if k.state == KeyState::Enabled && k.next_rotation.is_some_and(|n| n <= now)
                {
                    let done = self.tx(|t| {
                        coffer_store::update_json(
                            t,
                            NS_KEY,
                            &row_key,
                            store_err,
                            |k: &mut KmsKey| {
                                let (Some(p), Some(next)) =
                                    (k.rotation_period_days, k.next_rotation)
                                else {
                                    return Ok(false);
                                };
                                if k.state != KeyState::Enabled || next > now {
                                    return Ok(false);
                                }
                                self.rotate(k, "AUTOMATIC")?;
                                k.next_rotation =
                                    Some(next.max(now - p as f64 * DAY) + p as f64 * DAY);
                                Ok(true)
                            },
                        )
                    })?;
                    if done == Some(true) {
                        rotated += 1;
                    }
                }
            }
        }
        if deleted > 0 {
            self.after_destruction();
        }
        Ok((deleted, rotated))
    }

    /// Makes destroyed keys unrecoverable from the store's files too (deleted rows zeroed,
    /// journal truncated).
    fn after_destruction(&self) {
        if let Err(e) = self.store.purge_deleted() {
            tracing::warn!(error = %e, "could not purge destroyed key material from the store's files");
        }
    }

    /// Destroys the key at `row_key` (its record with every material version, its grants and
    /// its aliases) in one transaction, if it is there still pending deletion and due.
    fn destroy_if_due(&self, row_key: &str, now: f64) -> Result<bool, ServiceError> {
        self.tx(|t| {
            let Some(k) = get_json::<KmsKey>(&*t, NS_KEY, row_key).map_err(store_err)? else {
                return Ok(false);
            };
            if k.state != KeyState::PendingDeletion || !k.deletion_date.is_some_and(|d| d <= now) {
                return Ok(false);
            }
            t.delete(NS_KEY, row_key).map_err(store_err)?;
            let grant_prefix = format!("{}/{}/", k.account, k.id);
            loop {
                let grants = t
                    .scan(crate::grants::NS_GRANT, &grant_prefix, None, 1000)
                    .map_err(store_err)?;
                if grants.is_empty() {
                    break;
                }
                for (g, _) in grants {
                    crate::indexes::delete_grant(t, &g)?;
                }
            }
            for name in crate::indexes::alias_names(&*t, &k.account, &k.id)? {
                crate::indexes::delete_alias(t, &k.account, &name)?;
            }
            Ok(true)
        })
    }
}

/// The key `key` names, read inside the transaction `t` and checked against `rule` there.
fn key_in(t: &dyn Txn, key: &KmsKey, rule: StateRule) -> Result<KmsKey, ServiceError> {
    let k: KmsKey = get_json(t, NS_KEY, &format!("{}/{}", key.account, key.id))
        .map_err(store_err)?
        .ok_or_else(|| not_found(format!("Key '{}' does not exist", key.arn)))?;
    check_state(&k, rule)?;
    Ok(k)
}

fn require_rotatable(k: &KmsKey) -> Result<(), ServiceError> {
    if !k.is_symmetric() {
        return Err(ServiceError::new(
            "UnsupportedOperationException",
            400,
            format!(
                "{} key spec {} is not valid for this operation.",
                k.arn, k.key_spec
            ),
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), ServiceError> {
    if d.chars().count() > 8192 {
        return Err(validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192",
        ));
    }
    Ok(())
}

fn check_policy_name(inp: &Input) -> Result<(), ServiceError> {
    match inp.opt_str("PolicyName")? {
        None | Some("default") => Ok(()),
        Some(p) => Err(validation(format!(
            "PolicyName {p} is not valid: the only supported policy name is 'default'."
        ))),
    }
}

fn limit_of(inp: &Input, max: i64, default: usize) -> Result<usize, ServiceError> {
    match inp.opt_int("Limit")? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to {max}"
        ))),
    }
}
