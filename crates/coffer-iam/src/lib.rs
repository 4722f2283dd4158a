//! IAM and STS: accounts, users, groups, roles, access keys, managed and inline policies, login
//! profiles, STS sessions; credential resolution for SigV4; and the authorizer that every
//! service uses to evaluate identity policies through `coffer-policy`.

pub mod authz;
pub mod managed;
pub mod model;
pub mod params;
mod service;
mod sts;

pub use authz::{Authorizer, Denial, DenialKind};
pub use params::Params;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_core::{Clock, Principal, PrincipalKind, ServiceError, ids};
use coffer_crypto::RootKey;
use coffer_store::{GenCache, MetaStore, Reader, get_json, put_json};
use model::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

pub struct Iam {
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) root_key: Arc<RootKey>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Last time an access key's "last used" was written, to write it at most once a minute.
    last_used_written: Mutex<HashMap<String, i64>>,
    /// Resolved credentials by access key id and token hash, valid for one store generation.
    creds_cache: GenCache<Arc<CachedCreds>>,
    /// Identity policies by principal, valid for one store generation.
    pub(crate) ids_cache: GenCache<Arc<authz::IdentityPolicies>>,
}

struct CachedCreds {
    secret: Zeroizing<String>,
    principal: Principal,
    /// Session credentials end then.
    expiration: Option<i64>,
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// Unknown or inactive access key id.
    UnknownAccessKey,
    /// A session token that does not belong to the key (or a token on a long-term key).
    InvalidToken,
    /// Temporary credentials past their expiration.
    ExpiredToken,
    Internal,
}

/// Resolved credentials: the secret to verify the signature with, and who signed.
pub struct Resolved {
    pub secret: Zeroizing<String>,
    pub principal: Principal,
}

/// What the first start created (printed once by the binary).
pub struct Bootstrap {
    pub account_id: String,
    pub root_access_key_id: String,
    /// Present only when this start generated the secret.
    pub generated_secret: Option<Zeroizing<String>>,
}

pub(crate) fn internal<E: std::fmt::Display>(e: E) -> ServiceError {
    tracing::error!(error = %e, "internal error");
    ServiceError::internal()
}

pub(crate) fn secret_aad(prefix: &str, id: &str) -> Vec<u8> {
    format!("{prefix}:{id}").into_bytes()
}

impl Iam {
    pub fn new(store: Arc<dyn MetaStore>, root_key: Arc<RootKey>, clock: Arc<dyn Clock>) -> Self {
        Iam {
            store,
            root_key,
            clock,
            last_used_written: Mutex::new(HashMap::new()),
            creds_cache: GenCache::new("iam_credentials", 10_000),
            ids_cache: GenCache::new("iam_identity_policies", 10_000),
        }
    }

    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    pub(crate) fn wrap_secret(
        &self,
        prefix: &str,
        id: &str,
        secret: &str,
    ) -> Result<String, ServiceError> {
        let blob = self
            .root_key
            .wrap(&secret_aad(prefix, id), secret.as_bytes())
            .map_err(internal)?;
        Ok(B64.encode(blob))
    }

    fn unwrap_secret(
        &self,
        prefix: &str,
        id: &str,
        wrapped: &str,
    ) -> Result<Zeroizing<String>, CredentialError> {
        let blob = B64.decode(wrapped).map_err(|_| CredentialError::Internal)?;
        let plain = self
            .root_key
            .unwrap(&secret_aad(prefix, id), &blob)
            .map_err(|_| CredentialError::Internal)?;
        let s = std::str::from_utf8(&plain).map_err(|_| CredentialError::Internal)?;
        Ok(Zeroizing::new(s.to_string()))
    }

    /// The one account of this server (created by [`Iam::bootstrap`]).
    pub fn account_id(&self) -> Result<String, ServiceError> {
        let v: Option<String> = get_json(&*self.store, NS_META, "account").map_err(internal)?;
        v.ok_or_else(ServiceError::internal)
    }

    /// Creates the account and its root access key on first start; on later starts checks that
    /// the given values agree with what is stored.
    pub fn bootstrap(
        &self,
        account_id: Option<&str>,
        root_key_id: Option<&str>,
        root_secret: Option<&str>,
    ) -> Result<Bootstrap, String> {
        if let Some(b) = self.bootstrapped(account_id, root_key_id, root_secret)? {
            return Ok(b);
        }
        let acct = match account_id {
            Some(a) if coffer_core::is_valid_account_id(a) => a.to_string(),
            Some(a) => return Err(format!("COFFER_ACCOUNT_ID must be 12 digits, got {a:?}")),
            None => ids::account_id(),
        };
        let key_id = match root_key_id {
            Some(k)
                if k.len() >= 16
                    && k.len() <= 128
                    && k.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                k.to_string()
            }
            Some(_) => {
                return Err(
                    "COFFER_ROOT_ACCESS_KEY_ID must be 16 to 128 letters and digits".into(),
                );
            }
            None => ids::access_key_id("AKIA"),
        };
        let (secret, generated) = match root_secret {
            Some(s) if s.len() >= 16 => (Zeroizing::new(s.to_string()), false),
            Some(_) => {
                return Err("COFFER_ROOT_SECRET_ACCESS_KEY must be at least 16 characters".into());
            }
            None => (Zeroizing::new(ids::secret_access_key()), true),
        };
        let wrapped = self
            .wrap_secret("iam-secret", &key_id, &secret)
            .map_err(|e| e.message)?;
        let now = self.now();
        let rec = AccessKey {
            id: key_id.clone(),
            account: acct.clone(),
            owner: KeyOwner::Root,
            status: "Active".into(),
            created: now,
            secret: wrapped,
            last_used: None,
        };
        let account = Account {
            id: acct.clone(),
            created: now,
        };
        // Whether the data dir is still empty is decided in the transaction that fills it.
        let fresh = coffer_store::transact(
            &*self.store,
            |e| e.to_string(),
            |t| {
                let there: Option<String> =
                    get_json(&*t, NS_META, "account").map_err(|e| e.to_string())?;
                if there.is_some() {
                    return Ok(false);
                }
                put_json(t, NS_ACCOUNT, &acct, &account).map_err(|e| e.to_string())?;
                put_json(t, NS_ACCESS_KEY, &key_id, &rec).map_err(|e| e.to_string())?;
                put_json(t, NS_META, "account", &acct).map_err(|e| e.to_string())?;
                put_json(t, NS_META, "root-access-key", &key_id).map_err(|e| e.to_string())?;
                Ok(true)
            },
        )?;
        if !fresh {
            // Another start bootstrapped this data dir meanwhile: check against what it stored.
            return self
                .bootstrapped(account_id, root_key_id, root_secret)?
                .ok_or_else(|| "this data dir's account has no root access key".to_string());
        }
        Ok(Bootstrap {
            account_id: acct,
            root_access_key_id: key_id,
            generated_secret: generated.then_some(secret),
        })
    }

    /// The stored account and root key, checked against the given values; `None` before the
    /// first start.
    fn bootstrapped(
        &self,
        account_id: Option<&str>,
        root_key_id: Option<&str>,
        root_secret: Option<&str>,
    ) -> Result<Option<Bootstrap>, String> {
        let stored_acct: Option<String> =
            get_json(&*self.store, NS_META, "account").map_err(|e| e.to_string())?;
        let stored_key: Option<String> =
            get_json(&*self.store, NS_META, "root-access-key").map_err(|e| e.to_string())?;
        let (Some(acct), Some(key_id)) = (stored_acct, stored_key) else {
            return Ok(None);
        };
        if let Some(a) = account_id.filter(|a| *a != acct) {
            return Err(format!(
                "COFFER_ACCOUNT_ID={a} contradicts the account {acct} stored in this data dir; unset it or use another --data-dir"
            ));
        }
        if let Some(k) = root_key_id.filter(|k| *k != key_id) {
            return Err(format!(
                "COFFER_ROOT_ACCESS_KEY_ID={k} contradicts the root access key {key_id} stored in this data dir; unset it or use another --data-dir"
            ));
        }
        if let Some(s) = root_secret {
            let rec: Option<AccessKey> =
                get_json(&*self.store, NS_ACCESS_KEY, &key_id).map_err(|e| e.to_string())?;
            let rec = rec.ok_or("the stored root access key is missing")?;
            let stored = self
                .unwrap_secret("iam-secret", &key_id, &rec.secret)
                .map_err(
                    |_| "cannot unwrap the stored root secret: is this the data dir's root key?",
                )?;
            if !coffer_crypto::ct_eq(stored.as_bytes(), s.as_bytes()) {
                return Err("COFFER_ROOT_SECRET_ACCESS_KEY contradicts the root secret stored in this data dir".into());
            }
        }
        Ok(Some(Bootstrap {
            account_id: acct,
            root_access_key_id: key_id,
            generated_secret: None,
        }))
    }

    /// The secret of an access key (long-term or STS), without checking a session token: for
    /// verifiers that need the secret before the request's token can be checked (S3 through
    /// s3s). The token is checked afterwards by [`Iam::resolve`].
    pub fn secret_of(&self, access_key_id: &str) -> Result<Zeroizing<String>, CredentialError> {
        if let Some(rec) = get_json::<AccessKey>(&*self.store, NS_ACCESS_KEY, access_key_id)
            .map_err(|_| CredentialError::Internal)?
        {
            if rec.status != "Active" {
                return Err(CredentialError::UnknownAccessKey);
            }
            return self.unwrap_secret("iam-secret", access_key_id, &rec.secret);
        }
        let sess: Session = get_json(&*self.store, NS_SESSION, access_key_id)
            .map_err(|_| CredentialError::Internal)?
            .ok_or(CredentialError::UnknownAccessKey)?;
        self.unwrap_secret("sts-secret", access_key_id, &sess.secret)
    }

    /// Resolves an access key (and session token) to its secret and principal.
    pub fn resolve(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Resolved, CredentialError> {
        let generation = self.store.generation();
        let key = format!(
            "{access_key_id}\n{}",
            session_token
                .map(|t| coffer_crypto::sha256_hex(t.as_bytes()))
                .unwrap_or_default()
        );
        let c = match self.creds_cache.get(generation, &key) {
            Some(c) => c,
            None => {
                let (r, expiration) = self.resolve_uncached(access_key_id, session_token)?;
                let c = Arc::new(CachedCreds {
                    secret: r.secret,
                    principal: r.principal,
                    expiration,
                });
                self.creds_cache.put(generation, key, c.clone());
                c
            }
        };
        if c.expiration.is_some_and(|e| self.now() >= e) {
            return Err(CredentialError::ExpiredToken);
        }
        Ok(Resolved {
            secret: c.secret.clone(),
            principal: c.principal.clone(),
        })
    }

    fn resolve_uncached(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<(Resolved, Option<i64>), CredentialError> {
        let now = self.now();
        if let Some(rec) = get_json::<AccessKey>(&*self.store, NS_ACCESS_KEY, access_key_id)
            .map_err(|_| CredentialError::Internal)?
        {
            if rec.status != "Active" {
                return Err(CredentialError::UnknownAccessKey);
            }
            if session_token.is_some() {
                return Err(CredentialError::InvalidToken);
            }
            let principal = self.owner_principal(&rec.account, &rec.owner, access_key_id)?;
            let secret = self.unwrap_secret("iam-secret", access_key_id, &rec.secret)?;
            return Ok((Resolved { secret, principal }, None));
        }
        let sess: Session = get_json(&*self.store, NS_SESSION, access_key_id)
            .map_err(|_| CredentialError::Internal)?
            .ok_or(CredentialError::UnknownAccessKey)?;
        let token = session_token.ok_or(CredentialError::InvalidToken)?;
        let hash = coffer_crypto::sha256_hex(token.as_bytes());
        if !coffer_crypto::ct_eq(hash.as_bytes(), sess.token_sha256.as_bytes()) {
            return Err(CredentialError::InvalidToken);
        }
        if now >= sess.expiration {
            return Err(CredentialError::ExpiredToken);
        }
        let principal = match &sess.kind {
            SessionKind::Role {
                role_name,
                role_id,
                session_name,
                ..
            } => {
                // A deleted (or re-created) role revokes its sessions.
                let role: Role =
                    get_json(&*self.store, NS_ROLE, &name_key(&sess.account, role_name))
                        .map_err(|_| CredentialError::Internal)?
                        .ok_or(CredentialError::InvalidToken)?;
                if &role.id != role_id {
                    return Err(CredentialError::InvalidToken);
                }
                Principal {
                    account: sess.account.clone(),
                    arn: format!(
                        "arn:aws:sts::{}:assumed-role/{}/{}",
                        sess.account, role.name, session_name
                    ),
                    user_id: format!("{}:{}", role.id, session_name),
                    kind: PrincipalKind::AssumedRole {
                        role_name: role.name.clone(),
                        role_arn: role.arn.clone(),
                        role_id: role.id.clone(),
                        session_name: session_name.clone(),
                        session_key_id: access_key_id.to_string(),
                    },
                    access_key_id: access_key_id.to_string(),
                    tags: role
                        .tags
                        .iter()
                        .map(|t| (t.key.clone(), t.value.clone()))
                        .collect(),
                }
            }
            SessionKind::Owner(owner) => {
                let base = self.owner_principal(&sess.account, owner, access_key_id)?;
                if sess.owner_id.as_ref().is_some_and(|id| *id != base.user_id) {
                    // The user it was made for was deleted; this one only shares the name.
                    return Err(CredentialError::UnknownAccessKey);
                }
                let (user_name, user_id) = match &base.kind {
                    PrincipalKind::User { name, id } => (Some(name.clone()), id.clone()),
                    _ => (None, base.user_id.clone()),
                };
                Principal {
                    kind: PrincipalKind::UserSession {
                        base_arn: base.arn.clone(),
                        user_name,
                        user_id,
                    },
                    ..base
                }
            }
        };
        let secret = self.unwrap_secret("sts-secret", access_key_id, &sess.secret)?;
        Ok((Resolved { secret, principal }, Some(sess.expiration)))
    }

    fn owner_principal(
        &self,
        account: &str,
        owner: &KeyOwner,
        key_id: &str,
    ) -> Result<Principal, CredentialError> {
        Ok(match owner {
            KeyOwner::Root => Principal {
                account: account.to_string(),
                arn: coffer_core::root_arn(account),
                user_id: account.to_string(),
                kind: PrincipalKind::Root,
                access_key_id: key_id.to_string(),
                tags: vec![],
            },
            KeyOwner::User(name) => {
                let u: User = get_json(&*self.store, NS_USER, &name_key(account, name))
                    .map_err(|_| CredentialError::Internal)?
                    .ok_or(CredentialError::UnknownAccessKey)?;
                Principal {
                    account: account.to_string(),
                    arn: u.arn.clone(),
                    user_id: u.id.clone(),
                    kind: PrincipalKind::User {
                        name: u.name.clone(),
                        id: u.id.clone(),
                    },
                    access_key_id: key_id.to_string(),
                    tags: u
                        .tags
                        .iter()
                        .map(|t| (t.key.clone(), t.value.clone()))
                        .collect(),
                }
            }
        })
    }

    /// Whether a long-term key's "last used" is due to be written (at most once a minute); if
    /// so, marks it written: the caller then calls [`Iam::note_key_used`]. Cheap, no I/O.
    pub fn key_use_due(&self, access_key_id: &str) -> bool {
        let now = self.now();
        let mut m = self.last_used_written.lock();
        if m.get(access_key_id).is_some_and(|t| now - t < 60) {
            return false;
        }
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(access_key_id.to_string(), now);
        true
    }

    /// Records that a long-term access key was used (see [`Iam::key_use_due`]).
    pub fn note_key_used(&self, access_key_id: &str, service: &str, region: &str) {
        let now = self.now();
        // Read and written in one transaction: a concurrent UpdateAccessKey is kept, and a key
        // deleted meanwhile stays deleted (nothing is written when the record is gone).
        let used = LastUsed {
            date: now,
            service: service.to_string(),
            region: region.to_string(),
        };
        let r = coffer_store::transact(
            &*self.store,
            |e| e,
            |t| {
                if t.get(NS_ACCESS_KEY, access_key_id)?.is_none() {
                    return Ok(());
                }
                put_json(t, model::NS_KEY_LAST_USED, access_key_id, &used)
            },
        );
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not record access key use");
        }
    }

    /// Checks a console password (argon2id) for `user_name`; constant work whether or not the
    /// user exists.
    pub fn check_password(
        &self,
        account: &str,
        user_name: &str,
        password: &str,
    ) -> Result<bool, ServiceError> {
        let u: Option<User> =
            get_json(&*self.store, NS_USER, &name_key(account, user_name)).map_err(internal)?;
        let hash = u
            .as_ref()
            .and_then(|u| u.login_profile.as_ref())
            .map(|p| p.hash.clone());
        Ok(service::verify_password(hash.as_deref(), password))
    }

    /// The account an account alias names (sign-in accepts either).
    pub fn account_for_alias(&self, alias: &str) -> Result<Option<String>, ServiceError> {
        get_json(&*self.store, NS_ACCOUNT_ALIAS, &format!("alias/{alias}")).map_err(internal)
    }

    /// Whether IAM user `user_name` must set a new console password before anything else.
    pub fn password_reset_required(
        &self,
        account: &str,
        user_name: &str,
    ) -> Result<bool, ServiceError> {
        let u: Option<User> =
            get_json(&*self.store, NS_USER, &name_key(account, user_name)).map_err(internal)?;
        Ok(u.and_then(|u| u.login_profile)
            .is_some_and(|lp| lp.reset_required))
    }

    /// The ARN of IAM user `user_name`, if it exists.
    pub fn user_arn(&self, account: &str, user_name: &str) -> Result<Option<String>, ServiceError> {
        let u: Option<User> =
            get_json(&*self.store, NS_USER, &name_key(account, user_name)).map_err(internal)?;
        Ok(u.map(|u| u.arn))
    }

    pub(crate) fn reader(&self) -> &dyn Reader {
        &*self.store
    }
}

#[cfg(test)]
mod tests;
