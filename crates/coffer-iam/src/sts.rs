//! STS: GetCallerIdentity, AssumeRole, GetSessionToken.

use crate::authz::base_context;
use crate::model::*;
use crate::params::validation;
use crate::service::tx;
use crate::{Iam, Params, internal};
use base64::Engine;
use coffer_core::{Out, PrincipalKind, RequestContext, ServiceError, ids};
use coffer_policy::{Decision, Policy, PolicyKind, PrincipalInfo, PrincipalMatch, Request};
use coffer_store::{get_json, put_json};
use zeroize::Zeroizing;

type R = Result<Option<Out>, ServiceError>;

fn access_denied(msg: String) -> ServiceError {
    ServiceError::new("AccessDenied", 403, msg)
}

impl Iam {
    /// Handles an STS action. Unknown actions answer `InvalidAction`.
    pub fn handle_sts(&self, ctx: &RequestContext, action: &str, p: &Params) -> R {
        match action {
            "GetCallerIdentity" => Ok(Some(Out::Struct(vec![
                ("UserId", Out::s(&ctx.principal.user_id)),
                ("Account", Out::s(&ctx.principal.account)),
                ("Arn", Out::s(&ctx.principal.arn)),
            ]))),
            "AssumeRole" => self.assume_role(ctx, p),
            "GetSessionToken" => self.get_session_token(ctx, p),
            _ => Err(ServiceError::new(
                "InvalidAction",
                400,
                format!("Could not find operation {action} for version 2011-06-15"),
            )),
        }
    }

    /// Stores a new session and returns the `Credentials` element.
    fn new_session(
        &self,
        account: &str,
        duration: i64,
        kind: SessionKind,
        owner_id: Option<String>,
    ) -> Result<(String, Out), ServiceError> {
        let id = ids::access_key_id("ASIA");
        let secret = Zeroizing::new(ids::secret_access_key());
        let token =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(ids::token(96)));
        let now = self.now();
        let s = Session {
            access_key_id: id.clone(),
            account: account.to_string(),
            secret: self.wrap_secret("sts-secret", &id, &secret)?,
            token_sha256: coffer_crypto::sha256_hex(token.as_bytes()),
            expiration: now + duration,
            created: now,
            kind,
            owner_id,
        };
        tx(self, |t| put_json(t, NS_SESSION, &id, &s).map_err(internal))?;
        Ok((
            id.clone(),
            Out::Struct(vec![
                ("AccessKeyId", Out::s(&id)),
                ("SecretAccessKey", Out::s(secret.as_str())),
                ("SessionToken", Out::s(token.as_str())),
                ("Expiration", Out::t(s.expiration)),
            ]),
        ))
    }

    fn assume_role(&self, ctx: &RequestContext, p: &Params) -> R {
        let role_arn = p.req("RoleArn")?;
        let session_name = p.req("RoleSessionName")?;
        let name_ok = (2..=64).contains(&session_name.len())
            && session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
        if !name_ok {
            return Err(validation(format!(
                "1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            )));
        }
        if role_arn.len() < 20 || role_arn.len() > 2048 {
            return Err(validation(format!(
                "1 validation error detected: Value '{role_arn}' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"
            )));
        }
        if ctx.principal.is_root() {
            return Err(access_denied(
                "Roles may not be assumed by root accounts.".to_string(),
            ));
        }
        let duration = p.opt_int("DurationSeconds")?.unwrap_or(3600);
        if !(900..=43200).contains(&duration) {
            return Err(validation(format!(
                "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900 and less than or equal to 43200"
            )));
        }
        let session_policy = p.opt("Policy").map(str::to_string);
        if let Some(sp) = &session_policy {
            Policy::parse(sp, PolicyKind::Identity)
                .map_err(|e| ServiceError::new("MalformedPolicyDocument", 400, e.message))?;
            if coffer_policy::size_without_whitespace(sp) > 2048 {
                return Err(ServiceError::new(
                    "PackedPolicyTooLarge",
                    400,
                    "Packed policy consumes 100% of allotted space, please use smaller policy.",
                ));
            }
        }
        let policy_arns: Vec<String> = p
            .struct_list("PolicyArns", &["arn"])
            .into_iter()
            .filter_map(|v| v.into_iter().next().flatten())
            .collect();
        for arn in &policy_arns {
            if self.authorizer().managed_document(arn)?.is_none() {
                return Err(ServiceError::new(
                    "InvalidParameterValue",
                    400,
                    format!("Policy {arn} does not exist or is not attachable."),
                ));
            }
        }
        let deny = || {
            access_denied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                ctx.principal.arn
            ))
        };
        // The role: in this account, by ARN.
        let acct = &ctx.principal.account;
        let rest = role_arn
            .strip_prefix(&format!("arn:aws:iam::{acct}:role/"))
            .ok_or_else(deny)?;
        let role_name = rest.rsplit('/').next().unwrap_or("");
        let role: Role = get_json(self.reader(), NS_ROLE, &name_key(acct, role_name))
            .map_err(internal)?
            .filter(|r: &Role| r.arn == role_arn)
            .ok_or_else(deny)?;
        if duration > role.max_session_duration {
            return Err(validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        // Role chaining is limited to one hour.
        if matches!(ctx.principal.kind, PrincipalKind::AssumedRole { .. }) && duration > 3600 {
            return Err(validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ));
        }
        // The trust policy must allow the caller (a resource policy).
        let trust = Policy::parse(&role.trust_policy, PolicyKind::Trust).map_err(|_| deny())?;
        let mut c = base_context(ctx);
        if let Some(e) = p.opt("ExternalId") {
            c.set("sts:ExternalId", e);
        }
        c.set("sts:RoleSessionName", session_name);
        let principal_role_arn = match &ctx.principal.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => Some(role_arn.as_str()),
            _ => None,
        };
        let principal_arn = match &ctx.principal.kind {
            PrincipalKind::UserSession { base_arn, .. } => base_arn.as_str(),
            _ => ctx.principal.arn.as_str(),
        };
        let req = Request {
            action: "sts:AssumeRole",
            resource: role_arn,
            principal: Some(PrincipalInfo {
                arn: principal_arn,
                account: acct,
                role_arn: principal_role_arn,
                service: None,
            }),
            context: &c,
        };
        match trust.evaluate(&req) {
            Decision::ExplicitDeny(_) | Decision::ImplicitDeny => return Err(deny()),
            Decision::Allow(_) => {}
        }
        let direct = trust
            .matching_allows(&req)
            .into_iter()
            .any(|m| m.principal_match != Some(PrincipalMatch::Account));
        // A trust policy that names only the account delegates to the caller's identity policies.
        let ids = self.authorizer().identity_policies(ctx)?;
        match crate::authz::decide(ctx, &ids, "sts:AssumeRole", role_arn, None, &c) {
            Ok(()) => {}
            Err(d)
                if !direct
                    || matches!(
                        d.kind,
                        crate::DenialKind::ExplicitIdentity | crate::DenialKind::ExplicitSession
                    ) =>
            {
                return Err(access_denied(d.message(false)));
            }
            Err(_) => {}
        }
        let (_, creds) = self.new_session(
            acct,
            duration,
            SessionKind::Role {
                role_name: role.name.clone(),
                role_id: role.id.clone(),
                session_name: session_name.to_string(),
                session_policy: session_policy.clone(),
                policy_arns,
            },
            None,
        )?;
        let packed = session_policy
            .as_deref()
            .map(|s| (coffer_policy::size_without_whitespace(s) * 100 / 2048) as i64)
            .unwrap_or(0);
        Ok(Some(Out::Struct(vec![
            ("Credentials", creds),
            (
                "AssumedRoleUser",
                Out::Struct(vec![
                    (
                        "AssumedRoleId",
                        Out::s(format!("{}:{}", role.id, session_name)),
                    ),
                    (
                        "Arn",
                        Out::s(format!(
                            "arn:aws:sts::{acct}:assumed-role/{}/{}",
                            role.name, session_name
                        )),
                    ),
                ]),
            ),
            ("PackedPolicySize", Out::n(packed)),
        ])))
    }

    fn get_session_token(&self, ctx: &RequestContext, p: &Params) -> R {
        let owner = match &ctx.principal.kind {
            PrincipalKind::Root => KeyOwner::Root,
            PrincipalKind::User { name, .. } => KeyOwner::User(name.clone()),
            _ => {
                return Err(access_denied(
                    "Cannot call GetSessionToken with session credentials".to_string(),
                ));
            }
        };
        let max = if matches!(owner, KeyOwner::Root) {
            3600
        } else {
            129_600
        };
        let duration =
            p.opt_int("DurationSeconds")?
                .unwrap_or(if max == 3600 { 3600 } else { 43200 });
        if !(900..=max).contains(&duration) {
            return Err(validation(format!(
                "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900 and less than or equal to {max}"
            )));
        }
        let owner_id = matches!(owner, KeyOwner::User(_)).then(|| ctx.principal.user_id.clone());
        let (_, creds) = self.new_session(
            &ctx.principal.account,
            duration,
            SessionKind::Owner(owner),
            owner_id,
        )?;
        Ok(Some(Out::Struct(vec![("Credentials", creds)])))
    }

    /// Starts a console session: temporary credentials acting as `owner` (like
    /// GetSessionToken), for `duration` seconds. The console signs its API calls with them.
    pub fn console_session(
        &self,
        account: &str,
        owner: KeyOwner,
        duration: i64,
    ) -> Result<ConsoleCredentials, ServiceError> {
        let owner_id = match &owner {
            KeyOwner::User(name) => Some(
                get_json::<User>(&*self.store, NS_USER, &name_key(account, name))
                    .map_err(internal)?
                    .ok_or_else(ServiceError::internal)?
                    .id,
            ),
            KeyOwner::Root => None,
        };
        let (id, out) = self.new_session(account, duration, SessionKind::Owner(owner), owner_id)?;
        let field = |name: &str| -> Option<String> {
            match &out {
                Out::Struct(fields) => {
                    fields
                        .iter()
                        .find(|(k, _)| *k == name)
                        .and_then(|(_, v)| match v {
                            Out::Str(s) => Some(s.to_string()),
                            _ => None,
                        })
                }
                _ => None,
            }
        };
        let (Some(secret), Some(token)) = (field("SecretAccessKey"), field("SessionToken")) else {
            return Err(ServiceError::internal());
        };
        Ok(ConsoleCredentials {
            access_key_id: id,
            secret: Zeroizing::new(secret),
            token: Zeroizing::new(token),
            expiration: self.now() + duration,
        })
    }

    /// Ends a session now (console sign-out): its credentials stop working at once.
    pub fn end_session(&self, access_key_id: &str) -> Result<(), ServiceError> {
        if !access_key_id.starts_with("ASIA") {
            return Ok(());
        }
        tx(self, |t| {
            t.delete(NS_SESSION, access_key_id).map_err(internal)?;
            Ok(())
        })
    }

    /// True when `access_key_id` is the root user's and `secret` is its secret (constant time).
    pub fn check_root_key(
        &self,
        access_key_id: &str,
        secret: &str,
    ) -> Result<Option<String>, ServiceError> {
        let rec: Option<AccessKey> =
            get_json(&*self.store, NS_ACCESS_KEY, access_key_id).map_err(internal)?;
        let stored = match self.secret_of(access_key_id) {
            Ok(s) => s,
            Err(_) => Zeroizing::new(String::new()),
        };
        let same = coffer_crypto::ct_eq(stored.as_bytes(), secret.as_bytes());
        Ok(match rec {
            Some(r)
                if same
                    && r.owner == KeyOwner::Root
                    && r.status == "Active"
                    && !stored.is_empty() =>
            {
                Some(r.account)
            }
            _ => None,
        })
    }

    /// Removes STS sessions that expired more than [`SESSION_GRACE_SECS`] ago; returns how many.
    pub fn sweep_sessions(&self) -> Result<usize, ServiceError> {
        // Expired sessions are kept a day, so that their credentials are refused as AWS does
        // (`ExpiredToken`), not as unknown; then their wrapped secrets go.
        let now = self.now() - SESSION_GRACE_SECS;
        let rows: Vec<(String, Session)> =
            coffer_store::scan_json(self.reader(), NS_SESSION, "", None, 100_000)
                .map_err(internal)?;
        let expired: Vec<String> = rows
            .into_iter()
            .filter(|(_, s)| s.expiration <= now)
            .map(|(k, _)| k)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        // Each one is read again in the deleting transaction: only what is still there and
        // expired goes (and is counted).
        tx(self, |t| {
            let mut n = 0;
            for k in &expired {
                let s: Option<Session> = get_json(&*t, NS_SESSION, k).map_err(internal)?;
                if s.is_some_and(|s| s.expiration <= now) {
                    t.delete(NS_SESSION, k).map_err(internal)?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }
}

/// How long an expired session's record is kept (see [`Iam::sweep_sessions`]).
const SESSION_GRACE_SECS: i64 = 24 * 3600;
