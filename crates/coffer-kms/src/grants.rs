//! Grants (aws-behavior.md §2.10): per-key permissions for a grantee, optionally constrained by
//! the encryption context; effective as soon as CreateGrant returns.

use crate::model::*;
use crate::{Input, Kms, internal, validation};
use coffer_core::{PrincipalKind, RequestContext, ServiceError};
use coffer_store::{get_json, scan_json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const NS_GRANT: &str = "kms.grant";
/// Most grants a key may have (AWS's quota).
const MAX_GRANTS: usize = 50_000;

pub const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Grant {
    pub id: String,
    pub key_id: String,
    pub account: String,
    pub name: Option<String>,
    pub grantee: String,
    pub retiring: Option<String>,
    pub operations: Vec<String>,
    /// `EncryptionContextSubset`.
    pub subset: Option<Vec<(String, String)>>,
    /// `EncryptionContextEquals`.
    pub equals: Option<Vec<(String, String)>>,
    pub issuing_account: String,
    pub created: f64,
    /// SHA-256 of the grant token.
    pub token_sha256: String,
}

fn grant_key(account: &str, key_id: &str, grant_id: &str) -> String {
    format!("{account}/{key_id}/{grant_id}")
}

/// The ARNs a grant's grantee may name for the caller: its ARN, and for role sessions the role.
fn caller_names(ctx: &RequestContext) -> Vec<String> {
    let p = &ctx.principal;
    let mut v = vec![p.arn.clone()];
    match &p.kind {
        PrincipalKind::AssumedRole { role_arn, .. } => v.push(role_arn.clone()),
        PrincipalKind::UserSession { base_arn, .. } => v.push(base_arn.clone()),
        _ => {}
    }
    v
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

/// What a grant must allow for a request to pass through it.
pub(crate) enum GrantNeed<'a> {
    /// An operation, with the request's encryption context.
    Op(&'a str, &'a [(String, String)]),
    /// CreateGrant through a grant: the child's operations must be among the parent's, and its
    /// constraints at least as strict as the parent's.
    Child {
        operations: &'a [String],
        subset: Option<&'a [(String, String)]>,
        equals: Option<&'a [(String, String)]>,
    },
}

impl GrantNeed<'_> {
    fn met_by(&self, g: &Grant) -> bool {
        let has = |op: &str| g.operations.iter().any(|o| o == op);
        match self {
            GrantNeed::Op(op, ec) => has(op) && constraints_ok(g, ec),
            GrantNeed::Child {
                operations,
                subset,
                equals,
            } => {
                let contains = |outer: &[(String, String)], inner: &[(String, String)]| {
                    inner.iter().all(|p| outer.contains(p))
                };
                let strict_enough = match (&g.equals, &g.subset) {
                    (Some(pe), _) => {
                        equals.is_some_and(|ce| sorted(ce.to_vec()) == sorted(pe.clone()))
                    }
                    (None, Some(ps)) => {
                        equals.is_some_and(|ce| contains(ce, ps))
                            || subset.is_some_and(|cs| contains(cs, ps))
                    }
                    (None, None) => true,
                };
                has("CreateGrant") && operations.iter().all(|o| has(o)) && strict_enough
            }
        }
    }
}

fn constraints_ok(g: &Grant, ec: &[(String, String)]) -> bool {
    if let Some(eq) = &g.equals
        && sorted(eq.clone()) != sorted(ec.to_vec())
    {
        return false;
    }
    if let Some(sub) = &g.subset
        && !sub.iter().all(|pair| ec.contains(pair))
    {
        return false;
    }
    true
}

fn ctx_pairs(v: Option<&Value>) -> Result<Option<Vec<(String, String)>>, ServiceError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| {
                        ServiceError::new(
                            "SerializationException",
                            400,
                            "Unexpected value type for Constraints",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(ServiceError::new(
            "SerializationException",
            400,
            "Unexpected value type for Constraints",
        )),
    }
}

fn grant_out(g: &Grant, key_arn: &str) -> Value {
    let mut v = json!({
        "KeyId": key_arn,
        "GrantId": g.id,
        "CreationDate": g.created,
        "GranteePrincipal": g.grantee,
        "IssuingAccount": format!("arn:aws:iam::{}:root", g.issuing_account),
        "Operations": g.operations,
    });
    if let Some(n) = &g.name {
        v["Name"] = json!(n);
    }
    if let Some(r) = &g.retiring {
        v["RetiringPrincipal"] = json!(r);
    }
    let mut c = serde_json::Map::new();
    if let Some(s) = &g.subset {
        c.insert(
            "EncryptionContextSubset".into(),
            Value::Object(s.iter().map(|(k, v)| (k.clone(), json!(v))).collect()),
        );
    }
    if let Some(e) = &g.equals {
        c.insert(
            "EncryptionContextEquals".into(),
            Value::Object(e.iter().map(|(k, v)| (k.clone(), json!(v))).collect()),
        );
    }
    if !c.is_empty() {
        v["Constraints"] = Value::Object(c);
    }
    v
}

impl Kms {
    /// The grants of one key (at most 50,000), cached for the store's generation.
    pub(crate) fn grants_of(
        &self,
        account: &str,
        key_id: &str,
    ) -> Result<std::sync::Arc<Vec<Grant>>, ServiceError> {
        let generation = self.store.generation();
        let prefix = format!("{account}/{key_id}/");
        self.grant_cache.get_or_try(generation, &prefix, || {
            let rows: Vec<(String, Grant)> =
                scan_json(&*self.store, NS_GRANT, &prefix, None, MAX_GRANTS).map_err(internal)?;
            Ok(std::sync::Arc::new(
                rows.into_iter().map(|(_, g)| g).collect(),
            ))
        })
    }

    /// Whether one of the caller's grants on `key` meets `need`.
    pub(crate) fn grant_allows(
        &self,
        ctx: &RequestContext,
        key: &KmsKey,
        need: &GrantNeed<'_>,
    ) -> Result<bool, ServiceError> {
        let names = caller_names(ctx);
        Ok(self
            .grants_of(&key.account, &key.id)?
            .iter()
            .any(|g| names.contains(&g.grantee) && need.met_by(g)))
    }

    pub(crate) fn create_grant(
        &self,
        ctx: &RequestContext,
        inp: &Input,
        key: KmsKey,
    ) -> Result<Value, ServiceError> {
        let grantee = inp.str("GranteePrincipal")?.to_string();
        let retiring = inp.opt_str("RetiringPrincipal")?.map(str::to_string);
        let ops = inp.str_list("Operations")?.ok_or_else(|| {
            validation("1 validation error detected: Value null at 'operations' failed to satisfy constraint: Member must not be null")
        })?;
        if ops.is_empty() {
            return Err(validation(
                "1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        for o in &ops {
            if !GRANT_OPERATIONS.contains(&o.as_str()) {
                return Err(validation(format!(
                    "1 validation error detected: Value '[{o}]' at 'operations' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                    GRANT_OPERATIONS.join(", ")
                )));
            }
        }
        let name = inp.opt_str("Name")?.map(str::to_string);
        if let Some(n) = &name
            && (n.is_empty()
                || n.len() > 256
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b)))
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
            )));
        }
        let constraints = inp.0.get("Constraints");
        let subset = ctx_pairs(constraints.and_then(|c| c.get("EncryptionContextSubset")))?;
        let equals = ctx_pairs(constraints.and_then(|c| c.get("EncryptionContextEquals")))?;
        for p in std::iter::once(&grantee).chain(retiring.iter()) {
            if !self.iam.principal_exists(p)? {
                return Err(ServiceError::new(
                    "InvalidArnException",
                    400,
                    format!("ARN {p} is not valid."),
                ));
            }
        }
        // Authorization of CreateGrant itself, with its condition keys.
        let mut extra = vec![
            ("kms:GranteePrincipal".to_string(), grantee.clone()),
            ("kms:GrantIsForAWSResource".to_string(), "false".to_string()),
        ];
        if let Some(r) = &retiring {
            extra.push(("kms:RetiringPrincipal".to_string(), r.clone()));
        }
        let ctype = match (&subset, &equals) {
            (Some(_), _) => Some("EncryptionContextSubset"),
            (_, Some(_)) => Some("EncryptionContextEquals"),
            _ => None,
        };
        if let Some(t) = ctype {
            extra.push(("kms:GrantConstraintType".to_string(), t.to_string()));
        }
        let mut c = self.request_context(ctx, &key, &extra, &[])?;
        c.set_multi("kms:GrantOperations", ops.clone());
        let need = GrantNeed::Child {
            operations: &ops,
            subset: subset.as_deref(),
            equals: equals.as_deref(),
        };
        self.authorize_key_with(ctx, &key, "kms:CreateGrant", &c, need)?;
        if key.state == KeyState::PendingDeletion {
            return Err(ServiceError::new(
                "KMSInvalidStateException",
                400,
                format!("{} is pending deletion.", key.arn),
            ));
        }
        if key.state == KeyState::Disabled {
            return Err(ServiceError::new(
                "DisabledException",
                400,
                format!("{} is disabled.", key.arn),
            ));
        }
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(ServiceError::new(
                "DryRunOperationException",
                400,
                "The request would have succeeded, but the DryRun option is set.",
            ));
        }
        let mut raw = [0u8; 32];
        coffer_crypto::random_fill(&mut raw).map_err(internal)?;
        let id = raw.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut tok = [0u8; 48];
        coffer_crypto::random_fill(&mut tok).map_err(internal)?;
        use base64::Engine;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok);
        let g = Grant {
            id: id.clone(),
            key_id: key.id.clone(),
            account: key.account.clone(),
            name,
            grantee,
            retiring,
            operations: ops,
            subset,
            equals,
            issuing_account: ctx.principal.account.clone(),
            created: self.now(),
            token_sha256: coffer_crypto::sha256_hex(token.as_bytes()),
        };
        let key_row = format!("{}/{}", key.account, key.id);
        let prefix = format!("{}/{}/", key.account, key.id);
        self.tx(|t| {
            // Read here: the key may have been destroyed since it was authorized (its grants
            // went with it), and grants may have been added meanwhile.
            if t.get(crate::model::NS_KEY, &key_row)
                .map_err(internal)?
                .is_none()
            {
                return Err(ServiceError::new(
                    "NotFoundException",
                    400,
                    format!("Key '{}' does not exist", key.arn),
                ));
            }
            let count = t
                .scan(NS_GRANT, &prefix, None, MAX_GRANTS)
                .map_err(internal)?
                .len();
            if count >= MAX_GRANTS {
                return Err(ServiceError::new(
                    "LimitExceededException",
                    400,
                    "The key has reached the maximum number of grants.",
                ));
            }
            crate::indexes::put_grant(t, &g)
        })?;
        Ok(json!({ "GrantToken": token, "GrantId": id }))
    }

    pub(crate) fn list_grants(
        &self,
        inp: &Input,
        key: &KmsKey,
        limit: usize,
    ) -> Result<Value, ServiceError> {
        let filter_id = inp.opt_str("GrantId")?;
        let filter_grantee = inp.opt_str("GranteePrincipal")?;
        let marker = inp.opt_str("Marker")?;
        let mut grants: Vec<Grant> = self
            .grants_of(&key.account, &key.id)?
            .iter()
            .filter(|g| {
                filter_id.is_none_or(|f| g.id == f) && filter_grantee.is_none_or(|f| g.grantee == f)
            })
            .cloned()
            .collect();
        grants.sort_by(|a, b| a.id.cmp(&b.id));
        let start = marker
            .map(|m| {
                grants
                    .iter()
                    .position(|g| g.id.as_str() > m)
                    .unwrap_or(grants.len())
            })
            .unwrap_or(0);
        let page: Vec<&Grant> = grants[start..].iter().take(limit).collect();
        let truncated = start + page.len() < grants.len();
        let mut out = json!({ "Grants": page.iter().map(|g| grant_out(g, &key.arn)).collect::<Vec<_>>(), "Truncated": truncated });
        if truncated && let Some(last) = page.last() {
            out["NextMarker"] = json!(last.id);
        }
        Ok(out)
    }

    pub(crate) fn list_retirable_grants(
        &self,
        ctx: &RequestContext,
        inp: &Input,
    ) -> Result<Value, ServiceError> {
        let retiring = inp.str("RetiringPrincipal")?;
        let limit = match inp.opt_int("Limit")? {
            None => 50,
            Some(n) if (1..=100).contains(&n) => n as usize,
            Some(n) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100"
                )));
            }
        };
        let marker = inp.opt_str("Marker")?;
        self.authorize_iam(ctx, "kms:ListRetirableGrants", "*")?;
        let mut page = crate::indexes::grants_retirable_by(
            &*self.store,
            &ctx.principal.account,
            retiring,
            marker,
            limit + 1,
        )?;
        let truncated = page.len() > limit;
        page.truncate(limit);
        let grants: Vec<Value> = page
            .iter()
            .map(|g| grant_out(g, &self.key_arn(&g.account, &g.key_id)))
            .collect();
        let mut out = json!({ "Grants": grants, "Truncated": truncated });
        if truncated && let Some(last) = page.last() {
            out["NextMarker"] = json!(crate::indexes::grant_row_key(last));
        }
        Ok(out)
    }

    /// RetireGrant: by token, or by key and grant id; allowed to the retiring principal, or to the
    /// grantee when the grant includes RetireGrant.
    pub(crate) fn retire_grant(
        &self,
        ctx: &RequestContext,
        inp: &Input,
    ) -> Result<Value, ServiceError> {
        let account = ctx.principal.account.clone();
        let grant = match (
            inp.opt_str("GrantToken")?,
            inp.opt_str("KeyId")?,
            inp.opt_str("GrantId")?,
        ) {
            (Some(tok), _, _) => {
                let h = coffer_crypto::sha256_hex(tok.as_bytes());
                crate::indexes::grant_by_token(&*self.store, &h)?
                    .filter(|g| g.account == account)
                    .ok_or_else(|| {
                        ServiceError::new(
                            "InvalidGrantTokenException",
                            400,
                            "Grant token is invalid.",
                        )
                    })?
            }
            (None, Some(key_id), Some(grant_id)) => {
                let key = self.resolve(&account, key_id, false)?;
                get_json::<Grant>(
                    &*self.store,
                    NS_GRANT,
                    &grant_key(&account, &key.id, grant_id),
                )
                .map_err(internal)?
                .ok_or_else(|| {
                    ServiceError::new(
                        "NotFoundException",
                        400,
                        format!("Grant ID {grant_id} not found"),
                    )
                })?
            }
            _ => {
                return Err(validation(
                    "Either GrantToken or both KeyId and GrantId must be specified.",
                ));
            }
        };
        let names = caller_names(ctx);
        // The retiring principal, the grantee when the grant includes RetireGrant, or the account
        // that created the grant (its root user).
        let may = grant.retiring.as_ref().is_some_and(|r| names.contains(r))
            || (names.contains(&grant.grantee)
                && grant.operations.iter().any(|o| o == "RetireGrant"))
            || (ctx.principal.is_root() && ctx.principal.account == grant.issuing_account);
        if !may {
            return Err(ServiceError::new(
                "AccessDeniedException",
                400,
                format!(
                    "User: {} is not authorized to perform: kms:RetireGrant on resource: {} because no grant allows the kms:RetireGrant action",
                    ctx.principal.arn,
                    self.key_arn(&grant.account, &grant.key_id)
                ),
            ));
        }
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(ServiceError::new(
                "DryRunOperationException",
                400,
                "The request would have succeeded, but the DryRun option is set.",
            ));
        }
        let k = grant_key(&grant.account, &grant.key_id, &grant.id);
        self.tx(|t| crate::indexes::delete_grant(t, &k).map(|_| ()))?;
        Ok(json!({}))
    }

    pub(crate) fn revoke_grant(&self, inp: &Input, key: &KmsKey) -> Result<Value, ServiceError> {
        let grant_id = inp.str("GrantId")?;
        if inp.opt_bool("DryRun")?.unwrap_or(false) {
            return Err(ServiceError::new(
                "DryRunOperationException",
                400,
                "The request would have succeeded, but the DryRun option is set.",
            ));
        }
        let k = grant_key(&key.account, &key.id, grant_id);
        self.tx(|t| {
            if crate::indexes::delete_grant(t, &k)? {
                Ok(())
            } else {
                Err(ServiceError::new(
                    "NotFoundException",
                    400,
                    format!("Grant ID {grant_id} not found"),
                ))
            }
        })?;
        Ok(json!({}))
    }
}
