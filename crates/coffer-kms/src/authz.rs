//! KMS authorization (aws-behavior.md §2.9): the key policy is required; IAM policies count only
//! where the key policy allows the account principal; explicit deny anywhere wins.

use crate::Kms;
use crate::grants::GrantNeed;
use crate::model::KmsKey;
use coffer_core::{PrincipalKind, RequestContext, ServiceError};
use coffer_iam::authz::{IdentityPolicies, base_context};
use coffer_policy::{
    Context, Decision, Policy, PolicyKind, PrincipalInfo, PrincipalMatch, Request, evaluate_all,
};

fn denied(ctx: &RequestContext, action: &str, resource: &str, why: String) -> ServiceError {
    ServiceError::new(
        "AccessDeniedException",
        400,
        format!(
            "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
            ctx.principal.arn
        ),
    )
}

/// The key a decision is about, with the key policy to decide by (the key's own, or a proposed
/// one for the lockout check).
#[derive(Clone, Copy)]
pub(crate) struct KeyTarget<'a> {
    pub arn: &'a str,
    pub account: &'a str,
    pub policy: &'a Policy,
}

impl Kms {
    /// The key's policy, parsed. The cache is keyed by the policy text itself (a hit needs the
    /// very text of `key`), so it can never answer with another version of the policy than the
    /// one in the key record the caller holds, whatever was committed meanwhile.
    pub(crate) fn key_policy(&self, key: &KmsKey) -> Result<std::sync::Arc<Policy>, ServiceError> {
        let slot = format!("{}/{}", key.account, key.id);
        if let Some((text, p)) = self.policy_cache.get(0, &slot)
            && *text == *key.policy
        {
            return Ok(p);
        }
        let p = Policy::parse(&key.policy, PolicyKind::Resource)
            .map(std::sync::Arc::new)
            .map_err(|e| ServiceError::new("MalformedPolicyDocumentException", 400, e.message))?;
        self.policy_cache.put(
            0,
            slot,
            (std::sync::Arc::from(key.policy.as_str()), p.clone()),
        );
        Ok(p)
    }

    /// The condition keys of a KMS request on `key` (besides the global ones).
    pub(crate) fn key_context(
        &self,
        ctx: &RequestContext,
        key: Option<&KmsKey>,
    ) -> Result<Context, ServiceError> {
        let mut c = base_context(ctx);
        c.set("kms:CallerAccount", ctx.principal.account.clone());
        if let Some(v) = &ctx.via_service {
            c.set("kms:ViaService", v.clone());
        }
        if let Some(k) = key {
            c.set("kms:KeySpec", k.key_spec.clone());
            c.set("kms:KeyUsage", k.key_usage.clone());
            c.set("kms:KeyOrigin", "AWS_KMS");
            c.set("kms:MultiRegion", "false");
            let aliases = self.aliases_of(&k.account, &k.id)?;
            c.set_multi("kms:ResourceAliases", aliases);
            for t in &k.tags {
                c.set(&format!("aws:ResourceTag/{}", t.key), t.value.clone());
            }
        }
        Ok(c)
    }

    /// Decides `action` on a key for the caller.
    pub(crate) fn decide(
        &self,
        ctx: &RequestContext,
        target: KeyTarget<'_>,
        action: &str,
        context: &Context,
        ids: &IdentityPolicies,
    ) -> Result<(), ServiceError> {
        let KeyTarget {
            arn: key_arn,
            account: key_account,
            policy,
        } = target;
        let p = &ctx.principal;
        let role_arn = match &p.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => Some(role_arn.as_str()),
            _ => None,
        };
        let principal_arn = match &p.kind {
            PrincipalKind::UserSession { base_arn, .. } => base_arn.as_str(),
            _ => p.arn.as_str(),
        };
        let req = Request {
            action,
            resource: key_arn,
            principal: Some(PrincipalInfo {
                arn: principal_arn,
                account: &p.account,
                role_arn,
                service: None,
            }),
            context,
        };
        if let Decision::ExplicitDeny(_) = policy.evaluate(&req) {
            return Err(denied(
                ctx,
                action,
                key_arn,
                "with an explicit deny in a resource-based policy".into(),
            ));
        }
        let identity = evaluate_all(ids.policies.iter(), &req);
        if let Decision::ExplicitDeny(_) = identity {
            return Err(denied(
                ctx,
                action,
                key_arn,
                "with an explicit deny in an identity-based policy".into(),
            ));
        }
        let session = ids.session.as_ref().map(|s| evaluate_all(s.iter(), &req));
        if let Some(Decision::ExplicitDeny(_)) = session {
            return Err(denied(
                ctx,
                action,
                key_arn,
                "with an explicit deny in a session policy".into(),
            ));
        }
        let allows = policy.matching_allows(&req);
        let direct = allows.iter().any(|m| {
            matches!(
                m.principal_match,
                Some(PrincipalMatch::Direct | PrincipalMatch::Wildcard)
            )
        });
        let delegated = allows
            .iter()
            .any(|m| m.principal_match == Some(PrincipalMatch::Account))
            && p.account == key_account;
        let session_ok = !matches!(session, Some(Decision::ImplicitDeny));
        if direct && session_ok {
            return Ok(());
        }
        if delegated {
            // The account principal delegates to IAM; the root user is allowed by it.
            if ids.is_root {
                return Ok(());
            }
            if !identity.is_allow() {
                return Err(denied(
                    ctx,
                    action,
                    key_arn,
                    format!("because no identity-based policy allows the {action} action"),
                ));
            }
            if let Some(b) = &ids.boundary
                && !b.evaluate(&req).is_allow()
            {
                return Err(denied(
                    ctx,
                    action,
                    key_arn,
                    format!("because no permissions boundary allows the {action} action"),
                ));
            }
            if !session_ok {
                return Err(denied(
                    ctx,
                    action,
                    key_arn,
                    format!("because no session policy allows the {action} action"),
                ));
            }
            return Ok(());
        }
        if direct && !session_ok {
            return Err(denied(
                ctx,
                action,
                key_arn,
                format!("because no session policy allows the {action} action"),
            ));
        }
        Err(denied(
            ctx,
            action,
            key_arn,
            format!("because no resource-based policy allows the {action} action"),
        ))
    }

    /// Authorizes `action` on `key`: key policy (with IAM where it delegates), then grants.
    /// `ec` is the request's encryption context (condition keys and grant constraints).
    pub(crate) fn authorize_key(
        &self,
        ctx: &RequestContext,
        key: &KmsKey,
        action: &str,
        extra: &[(String, String)],
        ec: &[(String, String)],
    ) -> Result<(), ServiceError> {
        let c = self.request_context(ctx, key, extra, ec)?;
        let op = action.trim_start_matches("kms:");
        self.authorize_key_with(ctx, key, action, &c, GrantNeed::Op(op, ec))
    }

    /// The condition keys of a request on `key`: the key's, `extra`, and the encryption context.
    pub(crate) fn request_context(
        &self,
        ctx: &RequestContext,
        key: &KmsKey,
        extra: &[(String, String)],
        ec: &[(String, String)],
    ) -> Result<Context, ServiceError> {
        let mut c = self.key_context(ctx, Some(key))?;
        for (k, v) in extra {
            c.set(k, v.clone());
        }
        for (k, v) in ec {
            c.set(&format!("kms:EncryptionContext:{k}"), v.clone());
        }
        if !ec.is_empty() {
            c.set_multi(
                "kms:EncryptionContextKeys",
                ec.iter().map(|(k, _)| k.clone()).collect(),
            );
        }
        Ok(c)
    }

    /// Decides `action` on `key` with condition keys `c`: key policy (with IAM where it
    /// delegates), then, unless a policy denied explicitly, the caller's grants (`need`).
    pub(crate) fn authorize_key_with(
        &self,
        ctx: &RequestContext,
        key: &KmsKey,
        action: &str,
        c: &Context,
        need: GrantNeed<'_>,
    ) -> Result<(), ServiceError> {
        let ids = self.iam.authorizer().identity_policies(ctx)?;
        let policy = self.key_policy(key)?;
        let target = KeyTarget {
            arn: &key.arn,
            account: &key.account,
            policy: &policy,
        };
        match self.decide(ctx, target, action, c, &ids) {
            Ok(()) => Ok(()),
            Err(e) if e.message.contains(" with an explicit deny in ") => Err(e),
            Err(e) => {
                if self.grant_allows(ctx, key, &need)? {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Authorizes an IAM-only KMS action (CreateKey, ListKeys, ListAliases, GenerateRandom, alias ARNs).
    pub(crate) fn authorize_iam(
        &self,
        ctx: &RequestContext,
        action: &str,
        resource: &str,
    ) -> Result<(), ServiceError> {
        let c = self.key_context(ctx, None)?;
        self.iam
            .authorizer()
            .authorize(ctx, action, resource, None, &c)?
            .map_err(|d| ServiceError::new("AccessDeniedException", 400, d.message(false)))
    }
}
