//! Persisted IAM and STS records (JSON in the metadata store).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const NS_ACCOUNT: &str = "account";
pub const NS_USER: &str = "iam.user";
/// `alias/<alias>` → account id, and `account/<id>` → alias.
pub const NS_ACCOUNT_ALIAS: &str = "iam.account_alias";
pub const NS_GROUP: &str = "iam.group";
pub const NS_ROLE: &str = "iam.role";
pub const NS_POLICY: &str = "iam.policy";
pub const NS_ACCESS_KEY: &str = "iam.accesskey";
/// Access key id → [`LastUsed`]: written at most once a minute per key as a side effect of
/// requests, so it lives apart from the key record in a namespace that does not move the cache
/// generation (a key's record, which credential caches read, changes only when the key does).
pub const NS_KEY_LAST_USED: &str = "uncached.iam.key_last_used";
pub const NS_AWS_ATTACH: &str = "iam.awspolicy.attachments";
pub const NS_SESSION: &str = "sts.session";
pub const NS_META: &str = "coffer.meta";

/// Records are keyed `ACCOUNT/lowercased-name`: IAM names are unique case-insensitively.
pub fn name_key(account: &str, name: &str) -> String {
    format!("{account}/{}", name.to_ascii_lowercase())
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Account {
    pub id: String,
    pub created: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LoginProfile {
    /// argon2id PHC string.
    pub hash: String,
    pub created: i64,
    pub reset_required: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct User {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub created: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Managed policy ARNs, in attachment order.
    #[serde(default)]
    pub attached: Vec<String>,
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub access_keys: Vec<String>,
    #[serde(default)]
    pub login_profile: Option<LoginProfile>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
    #[serde(default)]
    pub password_last_used: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Group {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub created: i64,
    #[serde(default)]
    pub attached: Vec<String>,
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    /// Member user names (as spelled at creation).
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Role {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub created: i64,
    pub trust_policy: String,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub attached: Vec<String>,
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PolicyVersion {
    pub id: String,
    pub document: String,
    pub created: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ManagedPolicy {
    pub name: String,
    pub path: String,
    pub id: String,
    pub arn: String,
    pub created: i64,
    pub updated: i64,
    #[serde(default)]
    pub description: Option<String>,
    pub default_version: String,
    pub versions: Vec<PolicyVersion>,
    pub next_version: u32,
    pub attachment_count: u32,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum KeyOwner {
    Root,
    User(String),
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LastUsed {
    pub date: i64,
    pub service: String,
    pub region: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct AccessKey {
    pub id: String,
    pub account: String,
    pub owner: KeyOwner,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created: i64,
    /// Secret access key wrapped by the root key (base64), AAD `iam-secret:<id>`.
    pub secret: String,
    #[serde(default)]
    pub last_used: Option<LastUsed>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub enum SessionKind {
    Role {
        role_name: String,
        role_id: String,
        session_name: String,
        #[serde(default)]
        session_policy: Option<String>,
        #[serde(default)]
        policy_arns: Vec<String>,
    },
    /// GetSessionToken: the session acts as its long-term owner.
    Owner(KeyOwner),
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Session {
    pub access_key_id: String,
    pub account: String,
    /// Wrapped secret (base64), AAD `sts-secret:<id>`.
    pub secret: String,
    /// SHA-256 hex of the session token: the token itself is not stored.
    pub token_sha256: String,
    pub expiration: i64,
    pub created: i64,
    pub kind: SessionKind,
    /// The unique id of the user the session acts as (`Owner(User)`): a user deleted and made
    /// again under the same name is another user, and the old session must not act as it.
    #[serde(default)]
    pub owner_id: Option<String>,
}

/// Temporary credentials of a console session.
pub struct ConsoleCredentials {
    pub access_key_id: String,
    pub secret: zeroize::Zeroizing<String>,
    pub token: zeroize::Zeroizing<String>,
    pub expiration: i64,
}
