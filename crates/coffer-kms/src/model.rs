//! Persisted KMS records.

use serde::{Deserialize, Serialize};

pub const NS_KEY: &str = "kms.key";
pub const NS_ALIAS: &str = "kms.alias";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Material {
    pub version: u32,
    /// Key material wrapped by the root key (base64), AAD `kms-material:<key arn>:<version>`.
    pub wrapped: String,
    pub created: f64,
    /// `AUTOMATIC`, `ON_DEMAND`, or `INITIAL`.
    pub kind: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct KmsKey {
    pub id: String,
    pub arn: String,
    pub account: String,
    pub created: f64,
    pub description: String,
    pub key_usage: String,
    pub key_spec: String,
    pub state: KeyState,
    pub deletion_date: Option<f64>,
    pub pending_window_days: Option<i64>,
    pub policy: String,
    pub tags: Vec<Tag>,
    pub materials: Vec<Material>,
    pub current_material: u32,
    pub rotation_period_days: Option<i64>,
    pub next_rotation: Option<f64>,
    pub on_demand_rotations: u32,
    /// Asymmetric keys: the DER SubjectPublicKeyInfo (base64); not secret.
    #[serde(default)]
    pub public_key: Option<String>,
    /// An AWS managed key (`alias/aws/<service>`), made by a service on first use.
    #[serde(default)]
    pub aws_managed: bool,
}

impl KmsKey {
    pub fn is_symmetric(&self) -> bool {
        self.key_spec == "SYMMETRIC_DEFAULT"
    }
    pub fn asym(&self) -> Option<coffer_crypto::asym::AsymSpec> {
        coffer_crypto::asym::AsymSpec::from_kms(&self.key_spec)
    }
    pub fn hmac_bits(&self) -> Option<u16> {
        self.key_spec.strip_prefix("HMAC_")?.parse().ok()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Alias {
    pub name: String,
    pub arn: String,
    pub target: String,
    pub created: f64,
    pub updated: f64,
}
