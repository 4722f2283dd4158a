//! Policy validation errors and the messages used for them.
//!
//! Every message is a constant so callers (and tests) can compare against it
//! and so the wording can be tweaked in one place. Messages built at runtime
//! ([`invalid_principal`], [`invalid_condition_type`], [`invalid_resource`])
//! have documented formats.

/// Malformed JSON, first non-whitespace byte not `{`, top level not an
/// object, or characters outside U+0009, U+000A, U+000D, U+0020–U+00FF.
pub const MSG_INVALID_JSON: &str = "This policy contains invalid Json";
/// Unknown element, wrong value type, missing/invalid `Effect`, both
/// `Action` and `NotAction` (etc.), empty `Statement` list, bad condition value.
pub const MSG_SYNTAX: &str = "Syntax errors in policy.";
/// `Version` present but not `2012-10-17`/`2008-10-17`.
pub const MSG_LEGACY_PARSING: &str = "The policy failed legacy parsing";
/// `Statement` element missing (IAM wording; S3 uses
/// [`MSG_S3_MISSING_STATEMENT`], see [`crate::Policy::parse_bucket_policy`]).
pub const MSG_MISSING_STATEMENT: &str = MSG_SYNTAX;
/// S3 `MalformedPolicy` message for a missing `Statement`.
pub const MSG_S3_MISSING_STATEMENT: &str = "Missing required field Statement";
/// S3 `MalformedPolicy` message for invalid JSON.
pub const MSG_S3_INVALID_JSON: &str = "Policies must be valid JSON and the first byte must be '{'";
/// `Principal`/`NotPrincipal` in an identity policy.
pub const MSG_PRINCIPAL_FORBIDDEN: &str = "Policy document should not specify a principal.";
/// Resource or trust policy statement without `Principal`/`NotPrincipal`.
pub const MSG_PRINCIPAL_REQUIRED: &str = "Policy document should specify a principal.";
/// Statement without `Action`/`NotAction` (or with an empty list).
pub const MSG_MISSING_ACTIONS: &str = "Policy statement must contain actions.";
/// Identity/resource policy statement without `Resource`/`NotResource`.
pub const MSG_MISSING_RESOURCES: &str = "Policy statement must contain resources.";
/// Action (other than `*`) or condition key without a `vendor:` prefix.
pub const MSG_VENDOR_PREFIX: &str =
    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";
/// Two statements with the same (non-empty) `Sid`.
pub const MSG_DUPLICATE_SID: &str = "Statement IDs (SID) in a single policy must be unique.";
/// Non-alphanumeric `Sid` in an identity policy (IAM restriction).
pub const MSG_SID_NOT_ALNUM: &str = "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*";

/// A `MalformedPolicyDocument` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    pub message: String,
}

impl PolicyError {
    pub fn new(message: impl Into<String>) -> Self {
        PolicyError {
            message: message.into(),
        }
    }
}

pub(crate) fn err<T>(message: &str) -> Result<T, PolicyError> {
    Err(PolicyError::new(message))
}

/// `Invalid principal in policy: "AWS":"<value>"` (the principal type and the
/// offending value, JSON-quoted).
pub fn invalid_principal(kind: &str, value: &str) -> PolicyError {
    PolicyError::new(format!(
        "Invalid principal in policy: \"{kind}\":\"{value}\""
    ))
}

/// `Invalid Condition type : <operator>` (operator exactly as written).
pub fn invalid_condition_type(op: &str) -> PolicyError {
    PolicyError::new(format!("Invalid Condition type : {op}"))
}

/// `Resource <value> must be in ARN format or "*".`
pub fn invalid_resource(value: &str) -> PolicyError {
    PolicyError::new(format!("Resource {value} must be in ARN format or \"*\"."))
}
