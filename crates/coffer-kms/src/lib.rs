//! KMS: customer managed keys (symmetric and HMAC), aliases, key policies with IAM delegation,
//! envelope encryption, rotation and real deletion. Inputs and outputs are JSON values in the
//! shapes of botocore's `kms/2014-11-01` model; the gateway does the HTTP part.

mod asym;
mod authz;
pub mod grants;
mod indexes;
pub mod model;
mod ops;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_core::{Clock, ServiceError};
use coffer_crypto::RootKey;
use coffer_iam::Iam;
use coffer_store::MetaStore;
use model::*;
use serde_json::{Map, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

pub struct Kms {
    pub(crate) iam: Arc<Iam>,
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) root_key: Arc<RootKey>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) region: String,
    pub(crate) key_cache: coffer_store::GenCache<Option<Arc<KmsKey>>>,
    /// Parsed key policies by key, each with the text it was parsed from (never by generation).
    pub(crate) policy_cache: coffer_store::GenCache<(Arc<str>, Arc<coffer_policy::Policy>)>,
    pub(crate) alias_cache: coffer_store::GenCache<Vec<String>>,
    /// Each key's grants (for the grant check of a request the key policy does not allow).
    pub(crate) grant_cache: coffer_store::GenCache<Arc<Vec<grants::Grant>>>,
    /// Cryptographic operations by key id (see [`Kms::key_operation_counts`]).
    key_ops: coffer_store::metrics::BoundedCounters,
}

/// Most key ids counted by name in [`Kms::key_operation_counts`]; others count as `other`.
pub const MAX_COUNTED_KEYS: usize = 1000;

/// The cryptographic operations counted per key, by their KMS names.
const CRYPTO_OPS: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "Sign",
    "Verify",
    "GenerateMac",
    "VerifyMac",
];

/// The key id (UUID) of a key ARN as KMS outputs name keys.
fn key_uuid(arn: &str) -> &str {
    arn.rsplit_once(":key/").map_or(arn, |(_, id)| id)
}

pub(crate) fn internal<E: std::fmt::Display>(e: E) -> ServiceError {
    tracing::error!(error = %e, "internal error");
    ServiceError::new("KMSInternalException", 500, "An internal error occurred.")
}

pub(crate) fn validation(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("ValidationException", 400, msg)
}

/// Typed access to a JSON request object, with AWS's validation messages.
pub(crate) struct Input<'a>(pub &'a Map<String, Value>);

fn member(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn serialization(name: &str) -> ServiceError {
    ServiceError::new(
        "SerializationException",
        400,
        format!("Unexpected value type for {name}"),
    )
}

impl<'a> Input<'a> {
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ServiceError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(serialization(name)),
        }
    }
    pub fn str(&self, name: &str) -> Result<&'a str, ServiceError> {
        self.opt_str(name)?.ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                member(name)
            ))
        })
    }
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ServiceError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(serialization(name)),
        }
    }
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ServiceError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| serialization(name)),
            Some(_) => Err(serialization(name)),
        }
    }
    /// A base64 blob member.
    pub fn opt_blob(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ServiceError> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) => B64.decode(s).map(|b| Some(Zeroizing::new(b))).map_err(|_| {
                ServiceError::new(
                    "SerializationException",
                    400,
                    format!("Invalid base64 for {name}"),
                )
            }),
        }
    }
    pub fn blob(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
        self.opt_blob(name)?.ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                member(name)
            ))
        })
    }
    pub fn str_list(&self, name: &str) -> Result<Option<Vec<String>>, ServiceError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| serialization(name))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(serialization(name)),
        }
    }
    /// An encryption context: a map of strings.
    pub fn context(&self, name: &str) -> Result<Vec<(String, String)>, ServiceError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|v| (k.clone(), v.to_string()))
                        .ok_or_else(|| serialization(name))
                })
                .collect(),
            Some(_) => Err(serialization(name)),
        }
    }
}

pub(crate) fn b64(bytes: &[u8]) -> Value {
    Value::String(B64.encode(bytes))
}

impl Kms {
    pub fn new(
        iam: Arc<Iam>,
        store: Arc<dyn MetaStore>,
        root_key: Arc<RootKey>,
        clock: Arc<dyn Clock>,
        region: &str,
    ) -> Self {
        Kms {
            iam,
            store,
            root_key,
            clock,
            region: region.to_string(),
            key_cache: coffer_store::GenCache::new("kms_keys", 10_000),
            policy_cache: coffer_store::GenCache::new("kms_key_policies", 10_000),
            alias_cache: coffer_store::GenCache::new("kms_aliases", 10_000),
            grant_cache: coffer_store::GenCache::new("kms_grants", 1_000),
            key_ops: coffer_store::metrics::BoundedCounters::new(MAX_COUNTED_KEYS),
        }
    }

    /// Successful cryptographic operations by key id and operation name: `(key id, operation,
    /// count)`, sorted. Keys beyond the first [`MAX_COUNTED_KEYS`] seen count under `other`.
    /// ReEncrypt counts for its source and its destination key; S3's use of KMS keys (SSE-KMS)
    /// counts as GenerateDataKey and Decrypt.
    pub fn key_operation_counts(&self) -> Vec<(String, &'static str, u64)> {
        self.key_ops.snapshot()
    }

    /// Counts one successful operation on the key named by the ARN `arn` (taken from the
    /// store's record, never from the request).
    fn count_key_op(&self, arn: &str, op: &'static str) {
        self.key_ops.add(key_uuid(arn), op, 1);
    }

    pub(crate) fn now(&self) -> f64 {
        let t = self.clock.now();
        t.unix_timestamp() as f64 + f64::from(t.millisecond()) / 1000.0
    }

    pub(crate) fn key_arn(&self, account: &str, id: &str) -> String {
        format!("arn:aws:kms:{}:{account}:key/{id}", self.region)
    }

    pub(crate) fn alias_arn(&self, account: &str, name: &str) -> String {
        format!("arn:aws:kms:{}:{account}:{name}", self.region)
    }

    fn material_aad(arn: &str, version: u32) -> Vec<u8> {
        format!("kms-material:{arn}:{version}").into_bytes()
    }

    pub(crate) fn new_material(
        &self,
        arn: &str,
        version: u32,
        len: usize,
        kind: &str,
    ) -> Result<Material, ServiceError> {
        let mut m = Zeroizing::new(vec![0u8; len]);
        coffer_crypto::random_fill(&mut m).map_err(internal)?;
        self.wrap_material(arn, version, &m, kind)
    }

    /// Wraps key material (symmetric bytes or a PKCS#8 private key) under the root key.
    pub(crate) fn wrap_material(
        &self,
        arn: &str,
        version: u32,
        m: &[u8],
        kind: &str,
    ) -> Result<Material, ServiceError> {
        let wrapped = self
            .root_key
            .wrap(&Self::material_aad(arn, version), m)
            .map_err(internal)?;
        Ok(Material {
            version,
            wrapped: B64.encode(wrapped),
            created: self.now(),
            kind: kind.to_string(),
        })
    }

    /// The plaintext material of one version of a key; zeroized on drop.
    pub(crate) fn material(
        &self,
        key: &KmsKey,
        version: u32,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ServiceError> {
        let Some(m) = key.materials.iter().find(|m| m.version == version) else {
            return Ok(None);
        };
        let blob = B64.decode(&m.wrapped).map_err(internal)?;
        self.root_key
            .unwrap(&Self::material_aad(&key.arn, version), &blob)
            .map(Some)
            .map_err(internal)
    }

    /// Handles one KMS operation (the `X-Amz-Target` suffix) with its JSON input.
    pub fn handle(
        &self,
        ctx: &coffer_core::RequestContext,
        op: &str,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let Some(obj) = input.as_object() else {
            return Err(ServiceError::new(
                "SerializationException",
                400,
                "Start of structure or map found where not expected.",
            ));
        };
        let out = self.dispatch(ctx, op, &Input(obj))?;
        if let Some(op) = CRYPTO_OPS.iter().find(|o| **o == op).copied() {
            let src = out.get("SourceKeyId").and_then(Value::as_str);
            let dst = out.get("KeyId").and_then(Value::as_str);
            if let Some(src) = src.filter(|s| Some(*s) != dst) {
                self.count_key_op(src, op);
            }
            if let Some(dst) = dst {
                self.count_key_op(dst, op);
            }
        }
        Ok(out)
    }
}

impl coffer_core::DataKeyProvider for Kms {
    fn generate_data_key(
        &self,
        ctx: &coffer_core::RequestContext,
        key_id: &str,
        context: &[(String, String)],
    ) -> Result<coffer_core::DataKey, ServiceError> {
        let k = self.service_data_key(ctx, key_id, context)?;
        self.count_key_op(&k.key_arn, "GenerateDataKey");
        Ok(k)
    }

    fn decrypt_data_key(
        &self,
        ctx: &coffer_core::RequestContext,
        key_id: Option<&str>,
        ciphertext: &[u8],
        context: &[(String, String)],
    ) -> Result<coffer_core::DataKey, ServiceError> {
        let (key_arn, plaintext) = self.service_decrypt(ctx, key_id, ciphertext, context)?;
        self.count_key_op(&key_arn, "Decrypt");
        Ok(coffer_core::DataKey {
            key_arn,
            plaintext,
            ciphertext: ciphertext.to_vec(),
        })
    }

    fn authorize_generate_data_key(
        &self,
        ctx: &coffer_core::RequestContext,
        key_id: &str,
        context: &[(String, String)],
    ) -> Result<(), ServiceError> {
        self.service_authorize_data_key(ctx, key_id, context)
    }

    fn aws_managed_key(
        &self,
        ctx: &coffer_core::RequestContext,
        service: &str,
    ) -> Result<String, ServiceError> {
        Kms::aws_managed_key(self, ctx, service)
    }

    fn key_arn(
        &self,
        ctx: &coffer_core::RequestContext,
        key_id: &str,
    ) -> Result<String, ServiceError> {
        let out = self.handle(ctx, "DescribeKey", &serde_json::json!({ "KeyId": key_id }))?;
        out["KeyMetadata"]["Arn"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| internal("DescribeKey output"))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod metrics_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_uuids_of_arns() {
        assert_eq!(
            key_uuid("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab"),
            "1234abcd-12ab"
        );
        assert_eq!(key_uuid("1234abcd-12ab"), "1234abcd-12ab");
    }

    #[test]
    fn cryptographic_operations_are_counted_per_key_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetaStore> =
            Arc::new(coffer_store::SqliteMetaStore::open(&dir.path().join("m.sqlite")).unwrap());
        let rk = Arc::new(RootKey::generate().unwrap());
        let clock = Arc::new(coffer_core::TestClock::default());
        let iam = Arc::new(Iam::new(store.clone(), rk.clone(), clock.clone()));
        let b = iam.bootstrap(Some("123456789012"), None, None).unwrap();
        let kms = Kms::new(iam.clone(), store, rk, clock, "us-east-1");
        let ctx = coffer_core::RequestContext {
            principal: iam.resolve(&b.root_access_key_id, None).unwrap().principal,
            source_ip: None,
            secure_transport: false,
            now: time::OffsetDateTime::now_utc(),
            request_id: "t".into(),
            region: "us-east-1".into(),
            user_agent: None,
            via_service: None,
        };
        let new_key = || {
            kms.handle(&ctx, "CreateKey", &json!({})).unwrap()["KeyMetadata"]["KeyId"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (a, b) = (new_key(), new_key());
        let mut blob = String::new();
        for _ in 0..3 {
            let out = kms
                .handle(&ctx, "Encrypt", &json!({"KeyId": a, "Plaintext": "aGk="}))
                .unwrap();
            blob = out["CiphertextBlob"].as_str().unwrap().to_string();
        }
        kms.handle(
            &ctx,
            "ReEncrypt",
            &json!({"CiphertextBlob": blob, "DestinationKeyId": b}),
        )
        .unwrap();
        // Failures and other operations do not count.
        assert!(
            kms.handle(&ctx, "Decrypt", &json!({"CiphertextBlob": "AAAA"}))
                .is_err()
        );
        kms.handle(&ctx, "DescribeKey", &json!({"KeyId": a}))
            .unwrap();
        assert_eq!(kms.key_operation_counts(), {
            let mut want = vec![
                (a.clone(), "Encrypt", 3),
                (a.clone(), "ReEncrypt", 1),
                (b.clone(), "ReEncrypt", 1),
            ];
            want.sort();
            want
        });
    }
}
