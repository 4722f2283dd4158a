//! Shared vocabulary of Coffer: accounts, principals, ARNs, request context, clocks and ids.
//! No I/O here (beside the system clock and the random generator).

pub mod clock;
pub mod ids;

use std::net::IpAddr;
use time::OffsetDateTime;

pub use clock::{Clock, SystemClock, TestClock};

/// The AWS partition Coffer speaks for.
pub const PARTITION: &str = "aws";

/// Who is making a request, as resolved by authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// 12-digit account id.
    pub account: String,
    /// `arn:aws:iam::ACCT:root`, `arn:aws:iam::ACCT:user/path/name`, or
    /// `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// `aws:userid`: account id for root, `AIDA…` for users, `AROA…:session` for sessions.
    pub user_id: String,
    pub kind: PrincipalKind,
    /// The access key the request was signed with.
    pub access_key_id: String,
    /// `aws:PrincipalTag/*`.
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    Root,
    User {
        name: String,
        /// Unique id (`AIDA…`).
        id: String,
    },
    /// A role session from STS AssumeRole.
    AssumedRole {
        role_name: String,
        role_arn: String,
        role_id: String,
        session_name: String,
        /// The STS session id (access key id of the temporary credentials).
        session_key_id: String,
    },
    /// Temporary credentials from GetSessionToken: acts as the user (or root) that asked.
    UserSession {
        /// The long-term principal's ARN.
        base_arn: String,
        user_name: Option<String>,
        user_id: String,
    },
}

impl Principal {
    pub fn is_root(&self) -> bool {
        matches!(self.kind, PrincipalKind::Root)
            || matches!(
                &self.kind,
                PrincipalKind::UserSession {
                    user_name: None,
                    ..
                }
            )
    }

    /// `aws:PrincipalType`.
    pub fn principal_type(&self) -> &'static str {
        match &self.kind {
            PrincipalKind::Root => "Account",
            PrincipalKind::User { .. } => "User",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
            PrincipalKind::UserSession {
                user_name: None, ..
            } => "Account",
            PrincipalKind::UserSession { .. } => "User",
        }
    }

    /// `aws:username`, present for IAM users only.
    pub fn username(&self) -> Option<&str> {
        match &self.kind {
            PrincipalKind::User { name, .. } => Some(name),
            PrincipalKind::UserSession { user_name, .. } => user_name.as_deref(),
            _ => None,
        }
    }

    /// `aws:PrincipalArn`: for role sessions the role's ARN, else the principal's ARN.
    pub fn principal_arn(&self) -> &str {
        match &self.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => role_arn,
            PrincipalKind::UserSession { base_arn, .. } => base_arn,
            _ => &self.arn,
        }
    }

    pub fn root_arn(&self) -> String {
        root_arn(&self.account)
    }
}

/// Everything a service needs to know about the request besides its typed input.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub principal: Principal,
    pub source_ip: Option<IpAddr>,
    pub secure_transport: bool,
    pub now: OffsetDateTime,
    pub request_id: String,
    pub region: String,
    pub user_agent: Option<String>,
    /// Set when a service calls another on the caller's behalf (S3 calling KMS for SSE-KMS):
    /// the calling service's endpoint name, e.g. `s3.us-east-1.amazonaws.com`.
    pub via_service: Option<String>,
}

pub fn root_arn(account: &str) -> String {
    format!("arn:{PARTITION}:iam::{account}:root")
}

/// Checks a 12-digit account id.
pub fn is_valid_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Formats a timestamp as AWS's ISO-8601 (`2024-01-02T03:04:05Z`).
pub fn iso8601(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_format() {
        let t = time::macros::datetime!(2024-01-02 03:04:05 UTC);
        assert_eq!(iso8601(t), "2024-01-02T03:04:05Z");
    }

    #[test]
    fn account_ids() {
        assert!(is_valid_account_id("123456789012"));
        assert!(!is_valid_account_id("12345678901"));
        assert!(!is_valid_account_id("12345678901a"));
    }
}

/// An error a service returns, in protocol-neutral form: the gateway encodes it in the shape of
/// the request's protocol (S3 XML, KMS JSON, IAM/STS Query XML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    pub code: String,
    pub status: u16,
    pub message: String,
}

/// Data keys for envelope encryption, generated and opened *as the caller*: how S3 uses KMS for
/// SSE-KMS. Implementations authorize the caller with `kms:ViaService` set from
/// `RequestContext::via_service`.
pub trait DataKeyProvider: Send + Sync {
    /// A fresh 256-bit data key under `key_id` (any identifier form), bound to `context`.
    fn generate_data_key(
        &self,
        ctx: &RequestContext,
        key_id: &str,
        context: &[(String, String)],
    ) -> Result<DataKey, ServiceError>;
    /// Opens a data key made by [`DataKeyProvider::generate_data_key`]; `key_id`, when given,
    /// must be the key that made it (a deleted key is then `NotFoundException`).
    fn decrypt_data_key(
        &self,
        ctx: &RequestContext,
        key_id: Option<&str>,
        ciphertext: &[u8],
        context: &[(String, String)],
    ) -> Result<DataKey, ServiceError>;
    /// The full key ARN of `key_id` (any identifier form), if the caller may describe it.
    fn key_arn(&self, ctx: &RequestContext, key_id: &str) -> Result<String, ServiceError>;
    /// Checks, as `generate_data_key` would (authorization and key state), that the caller may
    /// have a data key under `key_id` bound to `context`, without making one: for a service
    /// reusing a data key it obtained earlier (S3 bucket keys).
    fn authorize_generate_data_key(
        &self,
        ctx: &RequestContext,
        key_id: &str,
        context: &[(String, String)],
    ) -> Result<(), ServiceError>;
    /// The ARN of the AWS managed key of `service` (`alias/aws/<service>`) in the caller's
    /// account, made on first use.
    fn aws_managed_key(&self, ctx: &RequestContext, service: &str) -> Result<String, ServiceError>;
}

/// A data key: its plaintext (zeroized on drop), its ciphertext, and the KMS key's ARN.
pub struct DataKey {
    pub key_arn: String,
    pub plaintext: zeroize::Zeroizing<Vec<u8>>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_arn", &self.key_arn)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

impl ServiceError {
    pub fn new(code: impl Into<String>, status: u16, message: impl Into<String>) -> Self {
        ServiceError {
            code: code.into(),
            status,
            message: message.into(),
        }
    }
    pub fn internal() -> Self {
        ServiceError::new(
            "ServiceFailure",
            500,
            "An internal error occurred. Try again later.",
        )
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ServiceError {}

/// A protocol-neutral response tree: the Query protocol encodes structs as elements and lists as
/// `<member>` items; other protocols may map it their own way.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    Str(String),
    Struct(Vec<(&'static str, Out)>),
    List(Vec<Out>),
}

impl Out {
    pub fn s(v: impl Into<String>) -> Out {
        Out::Str(v.into())
    }
    pub fn b(v: bool) -> Out {
        Out::Str(if v { "true" } else { "false" }.into())
    }
    pub fn n(v: impl std::fmt::Display) -> Out {
        Out::Str(v.to_string())
    }
    pub fn t(epoch: i64) -> Out {
        let t = OffsetDateTime::from_unix_timestamp(epoch).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Out::Str(iso8601(t))
    }
}
