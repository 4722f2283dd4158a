//! `coffer-policy`: parse, validate and evaluate AWS IAM policy documents.
//!
//! This is a pure library (no I/O). It implements the policy grammar and the
//! single-policy evaluation rules described in the Coffer reference
//! (`aws-behavior.md` §5, §2.8, §2.9):
//!
//! * [`Policy::parse`] validates a document for a given [`PolicyKind`] and
//!   returns a [`PolicyError`] carrying the AWS `MalformedPolicyDocument`
//!   message (see the `MSG_*` constants in this crate for the full list).
//! * [`Policy::evaluate`] evaluates one policy against a [`Request`];
//!   [`evaluate_all`] combines several policies (explicit deny wins, then any
//!   allow, else implicit deny).
//!
//! Cross-policy logic that depends on the service (KMS root delegation, S3
//! "direct principal" allows, permission boundaries…) is the caller's job; the
//! [`PrincipalMatch`] reported in [`Matched`] gives it what it needs.
//!
//! ```
//! use coffer_policy::{Context, Policy, PolicyKind, Request};
//!
//! let policy = Policy::parse(
//!     r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*",
//!         "Resource":"arn:aws:s3:::home/${aws:username}/*"}]}"#,
//!     PolicyKind::Identity,
//! )?;
//! let ctx = Context::new().with("aws:username", "bob");
//! let req = Request {
//!     action: "s3:GetObject",
//!     resource: "arn:aws:s3:::home/bob/notes.txt",
//!     principal: None,
//!     context: &ctx,
//! };
//! assert!(policy.evaluate(&req).is_allow());
//! # Ok::<(), coffer_policy::PolicyError>(())
//! ```
//!
//! # Chosen semantics (summary)
//!
//! * **Actions** match case-insensitively with `*`/`?` wildcards.
//! * **Resources** match case-sensitively; `*` matches any run of characters
//!   (including `/` and `:`), `?` exactly one character; a `"*"` resource
//!   matches everything (including a request resource of `"*"`).
//! * **Policy variables** (only with `Version` `2012-10-17`) are resolved from
//!   the request [`Context`]; substituted text (and `${*}`, `${?}`, `${$}`)
//!   is always *literal*, never a wildcard. A variable whose key is absent (or
//!   multi-valued) and has no default is *unresolvable*:
//!   - in `Resource` and in positive condition operators that value simply
//!     does not match;
//!   - in `NotResource` and in negated condition operators (`StringNotEquals`,
//!     `ArnNotLike`, …) the whole statement does not apply (AWS: "the statement
//!     is invalid").
//! * **Principals**: `"*"` / `{"AWS":"*"}` match every caller, including an
//!   anonymous one (`Request::principal == None`), and service principals.
//!   An AWS ARN entry matches the caller's ARN or (for role sessions) the
//!   caller's role ARN ⇒ [`PrincipalMatch::Direct`]; an account entry
//!   (`"123456789012"` or `arn:aws:iam::123456789012:root`) matches any
//!   non-service caller of that account ⇒ [`PrincipalMatch::Account`].
//!   `Service` entries match `PrincipalInfo::service` (case-insensitive).
//!   `Federated` and `CanonicalUser` entries are accepted by the parser but
//!   never match (Coffer has no such principals).
//!   When several entries match, the strongest is reported
//!   (Direct > Account > Wildcard).
//! * **NotPrincipal**: the statement applies to every caller that is *not*
//!   matched by the listed entries (using the same matching as `Principal`,
//!   so an account entry excludes every principal of that account and a role
//!   ARN excludes its sessions; `"*"` excludes everyone). A statement that
//!   applies through `NotPrincipal` reports `PrincipalMatch::Wildcard`.

mod condition;
mod error;
mod eval;
mod glob;
mod parse;
mod pattern;
mod principal;

use std::collections::HashMap;

pub use condition::{Condition, ConditionOperator, SetQualifier};
pub use error::*;
pub use eval::evaluate_all;
pub use glob::glob_match;
pub use parse::size_without_whitespace;
pub use principal::{AwsPrincipal, PrincipalSet};

/// Which kind of policy a document is; controls validation of `Principal`
/// and `Resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Identity-based policy (user/group/role inline or managed policy):
    /// `Principal`/`NotPrincipal` forbidden, `Resource`/`NotResource` required.
    Identity,
    /// Resource-based policy (bucket policy, key policy): `Principal` or
    /// `NotPrincipal` required, `Resource`/`NotResource` required.
    Resource,
    /// Role trust policy: `Principal` or `NotPrincipal` required,
    /// `Resource`/`NotResource` optional.
    Trust,
}

/// Policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    /// `2008-10-17`, also used when `Version` is absent: no policy variables.
    V2008,
    /// `2012-10-17`: policy variables are substituted.
    V2012,
}

/// Statement effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// A parsed, validated policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) text: String,
    pub(crate) kind: PolicyKind,
    pub(crate) version: PolicyVersion,
    pub(crate) version_present: bool,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<Statement>,
}

impl Policy {
    /// The original document text, exactly as given to [`Policy::parse`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The kind this policy was parsed as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Effective language version (`V2008` when `Version` is absent).
    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// Whether the document had an explicit `Version` element.
    pub fn has_version(&self) -> bool {
        self.version_present
    }

    /// The `Id` element, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// One statement of a policy.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// Zero-based position of the statement in the document.
    pub index: usize,
    pub(crate) actions: ActionBlock,
    pub(crate) resources: Option<ResourceBlock>,
    pub(crate) principal: Option<PrincipalBlock>,
    pub(crate) conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub(crate) struct ActionBlock {
    pub(crate) negated: bool,
    pub(crate) values: Vec<String>,
    /// Lower-cased glob tokens per value.
    pub(crate) patterns: Vec<Vec<glob::Tok>>,
}

#[derive(Debug, Clone)]
pub(crate) struct ResourceBlock {
    pub(crate) negated: bool,
    pub(crate) values: Vec<String>,
    pub(crate) patterns: Vec<pattern::Pattern>,
}

#[derive(Debug, Clone)]
pub(crate) struct PrincipalBlock {
    pub(crate) negated: bool,
    pub(crate) set: PrincipalSet,
}

impl Statement {
    /// The `Action` (or `NotAction`, see [`Statement::is_not_action`]) values.
    pub fn actions(&self) -> &[String] {
        &self.actions.values
    }

    /// True when the statement uses `NotAction`.
    pub fn is_not_action(&self) -> bool {
        self.actions.negated
    }

    /// The `Resource`/`NotResource` values; `None` when omitted (trust policies).
    pub fn resources(&self) -> Option<&[String]> {
        self.resources.as_ref().map(|r| r.values.as_slice())
    }

    /// True when the statement uses `NotResource`.
    pub fn is_not_resource(&self) -> bool {
        self.resources.as_ref().is_some_and(|r| r.negated)
    }

    /// The `Principal`/`NotPrincipal` set; `None` in identity policies.
    pub fn principal(&self) -> Option<&PrincipalSet> {
        self.principal.as_ref().map(|p| &p.set)
    }

    /// True when the statement uses `NotPrincipal`.
    pub fn is_not_principal(&self) -> bool {
        self.principal.as_ref().is_some_and(|p| p.negated)
    }

    /// The parsed `Condition` clauses (one per operator/key pair).
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether this statement's `Action`/`NotAction` element covers `action`
    /// (case-insensitive). Ignores principal, resource and conditions.
    pub fn covers_action(&self, action: &str) -> bool {
        eval::action_matches(&self.actions, action)
    }
}

/// Who is making the request; used to match `Principal`/`NotPrincipal` in
/// resource and trust policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalInfo<'a> {
    /// User ARN / root ARN / `arn:aws:sts::ACCT:assumed-role/R/S`.
    pub arn: &'a str,
    /// The caller's account id.
    pub account: &'a str,
    /// For role sessions: `arn:aws:iam::ACCT:role/R` (a `Principal` naming the
    /// role ARN matches the session).
    pub role_arn: Option<&'a str>,
    /// Set when an AWS service principal calls (e.g. `s3.amazonaws.com`).
    pub service: Option<&'a str>,
}

/// A request-context value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    Single(String),
    Multi(Vec<String>),
}

impl ContextValue {
    /// The values as a slice (one element for `Single`).
    pub fn values(&self) -> &[String] {
        match self {
            ContextValue::Single(s) => std::slice::from_ref(s),
            ContextValue::Multi(v) => v,
        }
    }
}

/// Request context: condition keys (case-insensitive names) and values. Also
/// the source of policy-variable values.
#[derive(Default, Clone, Debug)]
pub struct Context {
    values: HashMap<String, ContextValue>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a single-valued key (replaces any previous value).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values
            .insert(key.to_lowercase(), ContextValue::Single(value.into()));
    }

    /// Set a multi-valued key such as `aws:TagKeys` or
    /// `kms:EncryptionContextKeys` (replaces any previous value).
    pub fn set_multi(&mut self, key: &str, values: Vec<String>) {
        self.values
            .insert(key.to_lowercase(), ContextValue::Multi(values));
    }

    /// Remove a key.
    pub fn remove(&mut self, key: &str) -> Option<ContextValue> {
        self.values.remove(&key.to_lowercase())
    }

    /// Look a key up (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.values.get(&key.to_lowercase())
    }

    pub(crate) fn get_lower(&self, lower_key: &str) -> Option<&ContextValue> {
        self.values.get(lower_key)
    }

    /// Builder-style [`Context::set`].
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Builder-style [`Context::set_multi`].
    pub fn with_multi(mut self, key: &str, values: Vec<String>) -> Self {
        self.set_multi(key, values);
        self
    }
}

/// An authorization request to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// e.g. `"s3:GetObject"` (matched case-insensitively).
    pub action: &'a str,
    /// Resource ARN or `"*"`.
    pub resource: &'a str,
    /// The caller; required to match `Principal` in resource/trust policies
    /// (`None` = anonymous, matched only by wildcard principals and by
    /// `NotPrincipal`).
    pub principal: Option<PrincipalInfo<'a>>,
    /// Condition keys; also provides policy variables (`${aws:username}` …).
    pub context: &'a Context,
}

/// How a resource/trust-policy statement matched the principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalMatch {
    /// Named the exact principal: the user ARN, the session ARN, the role ARN
    /// of a session, or the calling service.
    Direct,
    /// Named the account (`"123456789012"` or `arn:aws:iam::ACCT:root`).
    Account,
    /// `"*"`, `{"AWS":"*"}`, or applied through `NotPrincipal`.
    Wildcard,
}

/// A statement that matched a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub statement_index: usize,
    pub sid: Option<String>,
    /// `None` for identity policies.
    pub principal_match: Option<PrincipalMatch>,
}

/// Outcome of evaluating one or more policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Matched),
    ExplicitDeny(Matched),
    ImplicitDeny,
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn is_explicit_deny(&self) -> bool {
        matches!(self, Decision::ExplicitDeny(_))
    }
}
