//! Operations on asymmetric keys: Sign, Verify, GetPublicKey, RSAES-OAEP Encrypt/Decrypt, and
//! GenerateDataKeyPair(+WithoutPlaintext).

use crate::model::KmsKey;
use crate::ops::{StateRule, check_state, dry_run, invalid_ciphertext};
use crate::{Input, Kms, b64, internal, validation};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_core::{RequestContext, ServiceError};
use coffer_crypto::asym::{self, AsymError, AsymSpec};
use serde_json::{Value, json};

type R = Result<Value, ServiceError>;

fn usage_error(key: &KmsKey, op: &str) -> ServiceError {
    ServiceError::new(
        "InvalidKeyUsageException",
        400,
        format!(
            "{} key usage is {} which is not valid for {op}.",
            key.arn, key.key_usage
        ),
    )
}

fn incompatible(alg: &str, key: &KmsKey) -> ServiceError {
    ServiceError::new(
        "InvalidKeyUsageException",
        400,
        format!(
            "Algorithm {alg} is incompatible with key spec {}.",
            key.key_spec
        ),
    )
}

fn no_context() -> ServiceError {
    validation("EncryptionContext is not supported for asymmetric KMS keys.")
}

impl Kms {
    fn public_key_der(&self, key: &KmsKey) -> Result<Vec<u8>, ServiceError> {
        let pk = key
            .public_key
            .as_deref()
            .ok_or_else(|| internal("public key missing"))?;
        B64.decode(pk).map_err(internal)
    }

    /// Resolves, authorizes (with the algorithm as a condition key) and state-checks an
    /// asymmetric key.
    fn asym_key(
        &self,
        ctx: &RequestContext,
        id: &str,
        action: &str,
        alg_key: &str,
        alg: &str,
    ) -> Result<(KmsKey, AsymSpec), ServiceError> {
        let key = self.resolve(&ctx.principal.account, id, true)?;
        let mut extra = vec![(alg_key.to_string(), alg.to_string())];
        if id.contains("alias/") {
            extra.push((
                "kms:RequestAlias".into(),
                id.rsplit(':').next().unwrap_or(id).to_string(),
            ));
        }
        self.authorize_key(ctx, &key, action, &extra, &[])?;
        check_state(&key, StateRule::Crypto)?;
        let spec = key.asym().ok_or_else(|| incompatible(alg, &key))?;
        Ok((key, spec))
    }

    pub(crate) fn rsa_encrypt(
        &self,
        ctx: &RequestContext,
        inp: &Input,
        id: &str,
        alg: &str,
        plaintext: &[u8],
        ec: &[(String, String)],
    ) -> R {
        if !ec.is_empty() {
            return Err(no_context());
        }
        let (key, spec) = self.asym_key(ctx, id, "kms:Encrypt", "kms:EncryptionAlgorithm", alg)?;
        if key.key_usage != "ENCRYPT_DECRYPT" {
            return Err(usage_error(&key, "Encrypt"));
        }
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let ct = asym::oaep_encrypt(spec, &self.public_key_der(&key)?, alg, plaintext).map_err(
            |e| match e {
                AsymError::TooLong(max) => validation(format!(
                    "Algorithm {alg} and key spec {} cannot encrypt data larger than {max} bytes.",
                    key.key_spec
                )),
                AsymError::Incompatible => incompatible(alg, &key),
                e => internal(format!("{e:?}")),
            },
        )?;
        Ok(json!({ "CiphertextBlob": b64(&ct), "KeyId": key.arn, "EncryptionAlgorithm": alg }))
    }

    pub(crate) fn rsa_decrypt(
        &self,
        ctx: &RequestContext,
        inp: &Input,
        alg: &str,
        blob: &[u8],
        ec: &[(String, String)],
    ) -> R {
        if !ec.is_empty() {
            return Err(no_context());
        }
        let id = inp.opt_str("KeyId")?.ok_or_else(|| {
            validation("KeyId is required when decrypting with an asymmetric KMS key.")
        })?;
        let (key, _) = self.asym_key(ctx, id, "kms:Decrypt", "kms:EncryptionAlgorithm", alg)?;
        if key.key_usage != "ENCRYPT_DECRYPT" {
            return Err(usage_error(&key, "Decrypt"));
        }
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let sk = self
            .material(&key, key.current_material)?
            .ok_or_else(|| internal("material missing"))?;
        let plain = asym::oaep_decrypt(&sk, alg, blob).map_err(|e| match e {
            AsymError::Incompatible => incompatible(alg, &key),
            _ => invalid_ciphertext(),
        })?;
        Ok(json!({ "KeyId": key.arn, "Plaintext": b64(&plain), "EncryptionAlgorithm": alg }))
    }

    fn message_of(inp: &Input) -> Result<(zeroize::Zeroizing<Vec<u8>>, bool), ServiceError> {
        let msg = inp.blob("Message")?;
        if msg.is_empty() || msg.len() > 4096 {
            return Err(validation(
                "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096",
            ));
        }
        let digest = match inp.opt_str("MessageType")? {
            None | Some("RAW") => false,
            Some("DIGEST") => true,
            Some(t) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{t}' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]"
                )));
            }
        };
        Ok((msg, digest))
    }

    fn map_sign_error(e: AsymError, alg: &str, key: &KmsKey) -> ServiceError {
        match e {
            AsymError::Incompatible => incompatible(alg, key),
            AsymError::DigestLength => {
                validation(format!("Digest is invalid length for algorithm {alg}."))
            }
            e => internal(format!("{e:?}")),
        }
    }

    pub(crate) fn sign(&self, ctx: &RequestContext, inp: &Input) -> R {
        let id = inp.str("KeyId")?;
        let (msg, is_digest) = Self::message_of(inp)?;
        let alg = inp.str("SigningAlgorithm")?;
        let (key, spec) = self.asym_key(ctx, id, "kms:Sign", "kms:SigningAlgorithm", alg)?;
        if key.key_usage != "SIGN_VERIFY" {
            return Err(usage_error(&key, "Sign"));
        }
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let sk = self
            .material(&key, key.current_material)?
            .ok_or_else(|| internal("material missing"))?;
        let sig = asym::sign(spec, &sk, alg, &msg, is_digest)
            .map_err(|e| Self::map_sign_error(e, alg, &key))?;
        Ok(json!({ "KeyId": key.arn, "Signature": b64(&sig), "SigningAlgorithm": alg }))
    }

    pub(crate) fn verify(&self, ctx: &RequestContext, inp: &Input) -> R {
        let id = inp.str("KeyId")?;
        let (msg, is_digest) = Self::message_of(inp)?;
        let sig = inp.blob("Signature")?;
        let alg = inp.str("SigningAlgorithm")?;
        let (key, spec) = self.asym_key(ctx, id, "kms:Verify", "kms:SigningAlgorithm", alg)?;
        if key.key_usage != "SIGN_VERIFY" {
            return Err(usage_error(&key, "Verify"));
        }
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let ok = asym::verify(
            spec,
            &self.public_key_der(&key)?,
            alg,
            &msg,
            is_digest,
            &sig,
        )
        .map_err(|e| Self::map_sign_error(e, alg, &key))?;
        if !ok {
            return Err(ServiceError::new("KMSInvalidSignatureException", 400, ""));
        }
        Ok(json!({ "KeyId": key.arn, "SignatureValid": true, "SigningAlgorithm": alg }))
    }

    pub(crate) fn get_public_key(&self, ctx: &RequestContext, inp: &Input) -> R {
        let id = inp.str("KeyId")?;
        let key = self.resolve(&ctx.principal.account, id, true)?;
        self.authorize_key(ctx, &key, "kms:GetPublicKey", &[], &[])?;
        check_state(&key, StateRule::Crypto)?;
        let Some(spec) = key.asym() else {
            return Err(ServiceError::new(
                "UnsupportedOperationException",
                400,
                format!(
                    "{} key spec {} is not valid for this operation.",
                    key.arn, key.key_spec
                ),
            ));
        };
        let mut out = json!({
            "KeyId": key.arn,
            "PublicKey": b64(&self.public_key_der(&key)?),
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "KeyUsage": key.key_usage,
        });
        if key.key_usage == "SIGN_VERIFY" {
            out["SigningAlgorithms"] = json!(spec.signing_algorithms());
        } else {
            out["EncryptionAlgorithms"] = json!(["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]);
        }
        Ok(out)
    }

    pub(crate) fn data_key_pair(
        &self,
        ctx: &RequestContext,
        inp: &Input,
        with_plaintext: bool,
    ) -> R {
        let id = inp.str("KeyId")?;
        let pair_spec = inp.str("KeyPairSpec")?;
        let spec = AsymSpec::from_kms(pair_spec).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value '{pair_spec}' at 'keyPairSpec' failed to satisfy constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1]"
            ))
        })?;
        let ec = inp.context("EncryptionContext")?;
        let (action, op) = if with_plaintext {
            ("kms:GenerateDataKeyPair", "GenerateDataKeyPair")
        } else {
            (
                "kms:GenerateDataKeyPairWithoutPlaintext",
                "GenerateDataKeyPairWithoutPlaintext",
            )
        };
        let key = self.crypto_key(ctx, id, action, &ec)?;
        Self::require_encrypt_usage(&key, op)?;
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(dry_run());
        }
        let (sk, pk) = asym::generate(spec).map_err(|e| internal(format!("{e:?}")))?;
        let blob = self.seal(&key, &ec, &sk)?;
        let mut out = json!({
            "PrivateKeyCiphertextBlob": b64(&blob),
            "PublicKey": b64(&pk),
            "KeyId": key.arn,
            "KeyPairSpec": pair_spec,
        });
        if with_plaintext {
            out["PrivateKeyPlaintext"] = b64(&sk);
        }
        Ok(out)
    }
}
