//! The authorizer: gathers a principal's identity policies (user, groups, role, session) and
//! evaluates them, with a resource policy where the service has one, through `coffer-policy`.
//! Services call it; nothing else decides access.

use crate::model::*;
use crate::{Iam, internal, managed};
use coffer_core::{PrincipalKind, RequestContext, ServiceError, iso8601};
use coffer_policy::{
    Context, Decision, Policy, PolicyKind, PrincipalInfo, PrincipalMatch, Request, evaluate_all,
};
use coffer_store::get_json;

/// The policies that apply to a principal.
#[derive(Default)]
pub struct IdentityPolicies {
    pub policies: Vec<Policy>,
    /// Session policies (AssumeRole `Policy`/`PolicyArns`): when present, they cap the identity.
    pub session: Option<Vec<Policy>>,
    pub boundary: Option<Policy>,
    /// Root (or a root session): implicitly allowed for the account's IAM-governed actions.
    pub is_root: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialKind {
    ExplicitIdentity,
    ExplicitResource,
    ExplicitSession,
    NoIdentityAllow,
    NoSessionAllow,
    NoBoundaryAllow,
    NoResourceAllow,
}

/// A refused request, with what AWS says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenialKind,
    pub principal_arn: String,
    pub action: String,
    pub resource: String,
}

impl Denial {
    /// AWS's AccessDenied message; S3 quotes the resource.
    pub fn message(&self, quote_resource: bool) -> String {
        let res = if quote_resource {
            format!("\"{}\"", self.resource)
        } else {
            self.resource.clone()
        };
        let why = match self.kind {
            DenialKind::ExplicitIdentity => {
                "with an explicit deny in an identity-based policy".to_string()
            }
            DenialKind::ExplicitResource => {
                "with an explicit deny in a resource-based policy".to_string()
            }
            DenialKind::ExplicitSession => "with an explicit deny in a session policy".to_string(),
            DenialKind::NoIdentityAllow => format!(
                "because no identity-based policy allows the {} action",
                self.action
            ),
            DenialKind::NoSessionAllow => format!(
                "because no session policy allows the {} action",
                self.action
            ),
            DenialKind::NoBoundaryAllow => format!(
                "because no permissions boundary allows the {} action",
                self.action
            ),
            DenialKind::NoResourceAllow => format!(
                "because no resource-based policy allows the {} action",
                self.action
            ),
        };
        format!(
            "User: {} is not authorized to perform: {} on resource: {} {}",
            self.principal_arn, self.action, res, why
        )
    }

    /// IAM/STS's `AccessDenied` (403).
    pub fn to_query_error(&self) -> ServiceError {
        ServiceError::new("AccessDenied", 403, self.message(false))
    }
}

/// Builds the global condition keys for a request (aws-behavior.md §5.5).
pub fn base_context(ctx: &RequestContext) -> Context {
    let p = &ctx.principal;
    let mut c = Context::new();
    if let Some(ip) = ctx.source_ip {
        c.set("aws:SourceIp", ip.to_string());
    }
    c.set(
        "aws:SecureTransport",
        if ctx.secure_transport {
            "true"
        } else {
            "false"
        },
    );
    c.set("aws:CurrentTime", iso8601(ctx.now));
    c.set("aws:EpochTime", ctx.now.unix_timestamp().to_string());
    c.set("aws:PrincipalArn", p.principal_arn());
    c.set("aws:PrincipalAccount", p.account.clone());
    c.set("aws:PrincipalType", p.principal_type());
    c.set("aws:userid", p.user_id.clone());
    if let Some(u) = p.username() {
        c.set("aws:username", u);
    }
    c.set("aws:RequestedRegion", ctx.region.clone());
    c.set(
        "aws:ViaAWSService",
        if ctx.via_service.is_some() {
            "true"
        } else {
            "false"
        },
    );
    if let Some(ua) = &ctx.user_agent {
        c.set("aws:UserAgent", ua.clone());
    }
    for (k, v) in &p.tags {
        c.set(&format!("aws:PrincipalTag/{k}"), v.clone());
    }
    if let PrincipalKind::AssumedRole { .. } = p.kind {
        c.set("aws:MultiFactorAuthPresent", "false");
    }
    c
}

pub struct Authorizer<'a> {
    pub(crate) iam: &'a Iam,
}

impl Iam {
    pub fn authorizer(&self) -> Authorizer<'_> {
        Authorizer { iam: self }
    }
}

fn parse_identity(doc: &str) -> Option<Policy> {
    match Policy::parse(doc, PolicyKind::Identity) {
        Ok(p) => Some(p),
        Err(e) => {
            // Stored documents were validated on the way in; a failure here means the validator
            // changed. Skipping such a policy can only narrow access, never widen it... unless it
            // is a Deny, so say so loudly.
            tracing::error!(error = %e.message, "stored policy no longer parses; ignoring it");
            None
        }
    }
}

impl Authorizer<'_> {
    /// The default document of a managed policy (AWS or customer), if it exists.
    pub fn managed_document(&self, arn: &str) -> Result<Option<String>, ServiceError> {
        if let Some(p) = managed::by_arn(arn) {
            return Ok(Some(p.document.to_string()));
        }
        let Some((acct, name)) = parse_policy_arn(arn) else {
            return Ok(None);
        };
        let p: Option<ManagedPolicy> =
            get_json(self.iam.reader(), NS_POLICY, &name_key(&acct, &name)).map_err(internal)?;
        Ok(p.and_then(|p| {
            p.versions
                .into_iter()
                .find(|v| v.id == p.default_version)
                .map(|v| v.document)
        }))
    }

    fn add_attached(&self, arns: &[String], out: &mut Vec<Policy>) -> Result<(), ServiceError> {
        for arn in arns {
            if let Some(doc) = self.managed_document(arn)?
                && let Some(p) = parse_identity(&doc)
            {
                out.push(p);
            }
        }
        Ok(())
    }

    /// The identity policies of the request's principal (cached for the store's generation).
    pub fn identity_policies(
        &self,
        ctx: &RequestContext,
    ) -> Result<std::sync::Arc<IdentityPolicies>, ServiceError> {
        let generation = self.iam.store.generation();
        let p = &ctx.principal;
        let session = match &p.kind {
            PrincipalKind::AssumedRole { session_key_id, .. } => session_key_id.as_str(),
            _ => "",
        };
        let key = format!("{}\n{session}", p.arn);
        self.iam.ids_cache.get_or_try(generation, &key, || {
            self.collect_identity_policies(ctx).map(std::sync::Arc::new)
        })
    }

    fn collect_identity_policies(
        &self,
        ctx: &RequestContext,
    ) -> Result<IdentityPolicies, ServiceError> {
        let p = &ctx.principal;
        let r = self.iam.reader();
        let mut out = IdentityPolicies::default();
        let user_name = match &p.kind {
            PrincipalKind::Root => {
                out.is_root = true;
                None
            }
            PrincipalKind::UserSession {
                user_name: None, ..
            } => {
                out.is_root = true;
                None
            }
            PrincipalKind::User { name, .. } => Some(name.clone()),
            PrincipalKind::UserSession {
                user_name: Some(n), ..
            } => Some(n.clone()),
            PrincipalKind::AssumedRole {
                role_name,
                session_key_id,
                ..
            } => {
                if let Some(role) = get_json::<Role>(r, NS_ROLE, &name_key(&p.account, role_name))
                    .map_err(internal)?
                {
                    out.policies
                        .extend(role.inline.values().filter_map(|d| parse_identity(d)));
                    self.add_attached(&role.attached, &mut out.policies)?;
                    if let Some(b) = &role.permissions_boundary
                        && let Some(doc) = self.managed_document(b)?
                    {
                        out.boundary = parse_identity(&doc);
                    }
                }
                if let Some(sess) =
                    get_json::<Session>(r, NS_SESSION, session_key_id).map_err(internal)?
                    && let SessionKind::Role {
                        session_policy,
                        policy_arns,
                        ..
                    } = sess.kind
                    && (session_policy.is_some() || !policy_arns.is_empty())
                {
                    let mut sp = Vec::new();
                    if let Some(d) = session_policy.as_deref().and_then(parse_identity) {
                        sp.push(d);
                    }
                    self.add_attached(&policy_arns, &mut sp)?;
                    out.session = Some(sp);
                }
                None
            }
        };
        if let Some(name) = user_name
            && let Some(u) =
                get_json::<User>(r, NS_USER, &name_key(&p.account, &name)).map_err(internal)?
        {
            out.policies
                .extend(u.inline.values().filter_map(|d| parse_identity(d)));
            self.add_attached(&u.attached, &mut out.policies)?;
            for g in &u.groups {
                if let Some(g) =
                    get_json::<Group>(r, NS_GROUP, &name_key(&p.account, g)).map_err(internal)?
                {
                    out.policies
                        .extend(g.inline.values().filter_map(|d| parse_identity(d)));
                    self.add_attached(&g.attached, &mut out.policies)?;
                }
            }
            if let Some(b) = &u.permissions_boundary
                && let Some(doc) = self.managed_document(b)?
            {
                out.boundary = parse_identity(&doc);
            }
        }
        Ok(out)
    }

    /// Decides a same-account request: explicit deny anywhere wins; otherwise an identity allow
    /// (within boundary and session policies) or a resource-policy allow naming the principal
    /// suffices. The root user is allowed unless a resource policy denies it.
    pub fn authorize(
        &self,
        ctx: &RequestContext,
        action: &str,
        resource: &str,
        resource_policy: Option<&Policy>,
        context: &Context,
    ) -> Result<Result<(), Denial>, ServiceError> {
        let ids = self.identity_policies(ctx)?;
        Ok(decide(
            ctx,
            &ids,
            action,
            resource,
            resource_policy,
            context,
        ))
    }
}

/// Pure decision over gathered policies (see [`Authorizer::authorize`]).
pub fn decide(
    ctx: &RequestContext,
    ids: &IdentityPolicies,
    action: &str,
    resource: &str,
    resource_policy: Option<&Policy>,
    context: &Context,
) -> Result<(), Denial> {
    let p = &ctx.principal;
    let role_arn = match &p.kind {
        PrincipalKind::AssumedRole { role_arn, .. } => Some(role_arn.as_str()),
        _ => None,
    };
    let req = Request {
        action,
        resource,
        principal: Some(PrincipalInfo {
            arn: match &p.kind {
                PrincipalKind::UserSession { base_arn, .. } => base_arn,
                _ => &p.arn,
            },
            account: &p.account,
            role_arn,
            service: None,
        }),
        context,
    };
    let deny = |kind| Denial {
        kind,
        principal_arn: p.arn.clone(),
        action: action.to_string(),
        resource: resource.to_string(),
    };
    let identity = evaluate_all(ids.policies.iter(), &req);
    let resource_d = resource_policy.map(|rp| rp.evaluate(&req));
    if matches!(resource_d, Some(Decision::ExplicitDeny(_))) {
        return Err(deny(DenialKind::ExplicitResource));
    }
    if matches!(identity, Decision::ExplicitDeny(_)) {
        return Err(deny(DenialKind::ExplicitIdentity));
    }
    let session_d = ids.session.as_ref().map(|s| evaluate_all(s.iter(), &req));
    if matches!(session_d, Some(Decision::ExplicitDeny(_))) {
        return Err(deny(DenialKind::ExplicitSession));
    }
    let boundary_d = ids.boundary.as_ref().map(|b| b.evaluate(&req));
    if matches!(boundary_d, Some(Decision::ExplicitDeny(_))) {
        return Err(deny(DenialKind::ExplicitIdentity));
    }
    // A resource policy that names the user or the role session itself allows on its own.
    if let Some(rp) = resource_policy {
        let direct = rp.matching_allows(&req).into_iter().any(|m| {
            m.principal_match == Some(PrincipalMatch::Direct)
                || m.principal_match == Some(PrincipalMatch::Wildcard)
        });
        if direct {
            return Ok(());
        }
    }
    if ids.is_root {
        return Ok(());
    }
    if !matches!(identity, Decision::Allow(_)) {
        return Err(deny(DenialKind::NoIdentityAllow));
    }
    if let Some(d) = boundary_d
        && !matches!(d, Decision::Allow(_))
    {
        return Err(deny(DenialKind::NoBoundaryAllow));
    }
    if let Some(d) = session_d
        && !matches!(d, Decision::Allow(_))
    {
        return Err(deny(DenialKind::NoSessionAllow));
    }
    Ok(())
}

/// `arn:aws:iam::ACCT:policy/path/name` → (ACCT, name).
pub fn parse_policy_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (acct, res) = rest.split_once(':')?;
    let path_name = res.strip_prefix("policy/")?;
    let name = path_name.rsplit('/').next()?;
    if name.is_empty() {
        return None;
    }
    Some((acct.to_string(), name.to_string()))
}

impl Iam {
    /// Whether an ARN names an existing principal of this server (account root, user, role, or a
    /// role session of an existing role), for validating principals in resource policies.
    pub fn principal_exists(&self, arn: &str) -> Result<bool, ServiceError> {
        if let Some(rest) = arn.strip_prefix("arn:aws:iam::") {
            let Some((acct, res)) = rest.split_once(':') else {
                return Ok(false);
            };
            let exists_acct = get_json::<Account>(self.reader(), NS_ACCOUNT, acct)
                .map_err(internal)?
                .is_some();
            if res == "root" {
                return Ok(exists_acct);
            }
            let name = res.rsplit('/').next().unwrap_or("");
            let ns = if res.starts_with("user/") {
                NS_USER
            } else if res.starts_with("role/") {
                NS_ROLE
            } else {
                return Ok(false);
            };
            return Ok(self
                .reader()
                .get(ns, &name_key(acct, name))
                .map_err(internal)?
                .is_some());
        }
        if let Some(rest) = arn.strip_prefix("arn:aws:sts::") {
            let Some((acct, res)) = rest.split_once(':') else {
                return Ok(false);
            };
            let mut parts = res.split('/');
            if parts.next() != Some("assumed-role") {
                return Ok(false);
            }
            let role = parts.next().unwrap_or("");
            return Ok(self
                .reader()
                .get(NS_ROLE, &name_key(acct, role))
                .map_err(internal)?
                .is_some());
        }
        if arn.len() == 12 && arn.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(get_json::<Account>(self.reader(), NS_ACCOUNT, arn)
                .map_err(internal)?
                .is_some());
        }
        Ok(false)
    }
}
