//! The key policies the console writes: AWS's console default policy (`key-consolepolicy-3`)
//! and the edits its "key administrators" and "key users" panels make.

use serde_json::{Value, json};

pub const SID_ROOT: &str = "Enable IAM User Permissions";
pub const SID_ADMINS: &str = "Allow access for Key Administrators";
pub const SID_USE: &str = "Allow use of the key";
pub const SID_PERSISTENT: &str = "Allow attachment of persistent resources";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Admin,
    User,
}

fn admin_actions(allow_delete: bool) -> Vec<&'static str> {
    let mut v = vec![
        "kms:Create*",
        "kms:Describe*",
        "kms:Enable*",
        "kms:List*",
        "kms:Put*",
        "kms:Update*",
        "kms:Revoke*",
        "kms:Disable*",
        "kms:Get*",
        "kms:Delete*",
        "kms:TagResource",
        "kms:UntagResource",
    ];
    if allow_delete {
        v.extend(["kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]);
    }
    v
}

/// The key users' actions for a key of this spec and usage (as the AWS console writes them).
fn use_actions(spec: &str, usage: &str) -> Vec<&'static str> {
    if spec.starts_with("HMAC_") {
        vec!["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"]
    } else if spec == "SYMMETRIC_DEFAULT" {
        vec![
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:DescribeKey",
        ]
    } else if usage == "SIGN_VERIFY" {
        vec![
            "kms:DescribeKey",
            "kms:GetPublicKey",
            "kms:Sign",
            "kms:Verify",
        ]
    } else {
        vec![
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:DescribeKey",
            "kms:GetPublicKey",
        ]
    }
}

fn principal_value(arns: &[String]) -> Value {
    if arns.len() == 1 {
        json!({ "AWS": arns[0] })
    } else {
        json!({ "AWS": arns })
    }
}

fn statement(sid: &str, arns: &[String], spec: &str, usage: &str, allow_delete: bool) -> Value {
    match sid {
        SID_ADMINS => json!({
            "Sid": SID_ADMINS,
            "Effect": "Allow",
            "Principal": principal_value(arns),
            "Action": admin_actions(allow_delete),
            "Resource": "*",
        }),
        SID_USE => json!({
            "Sid": SID_USE,
            "Effect": "Allow",
            "Principal": principal_value(arns),
            "Action": use_actions(spec, usage),
            "Resource": "*",
        }),
        _ => json!({
            "Sid": SID_PERSISTENT,
            "Effect": "Allow",
            "Principal": principal_value(arns),
            "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
            "Resource": "*",
            "Condition": { "Bool": { "kms:GrantIsForAWSResource": "true" } },
        }),
    }
}

/// The sids a role's statements carry for a key of this spec.
fn sids(role: Role, spec: &str) -> Vec<&'static str> {
    match role {
        Role::Admin => vec![SID_ADMINS],
        // Grants for AWS resources are for symmetric encryption keys only.
        Role::User if spec == "SYMMETRIC_DEFAULT" => vec![SID_USE, SID_PERSISTENT],
        Role::User => vec![SID_USE],
    }
}

/// The policy the console's create-key wizard proposes.
pub fn console_default(
    account: &str,
    admins: &[String],
    users: &[String],
    spec: &str,
    usage: &str,
    allow_delete: bool,
) -> String {
    let mut statements = vec![json!({
        "Sid": SID_ROOT,
        "Effect": "Allow",
        "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
        "Action": "kms:*",
        "Resource": "*",
    })];
    if !admins.is_empty() {
        statements.push(statement(SID_ADMINS, admins, spec, usage, allow_delete));
    }
    if !users.is_empty() {
        for sid in sids(Role::User, spec) {
            statements.push(statement(sid, users, spec, usage, allow_delete));
        }
    }
    let doc = json!({
        "Id": "key-consolepolicy-3",
        "Version": "2012-10-17",
        "Statement": statements,
    });
    pretty(&doc)
}

fn statements_mut(doc: &mut Value) -> Option<&mut Vec<Value>> {
    let st = doc.get_mut("Statement")?;
    if st.is_object() {
        let one = st.take();
        *st = Value::Array(vec![one]);
    }
    st.as_array_mut()
}

fn aws_principals(st: &Value) -> Vec<String> {
    match st.get("Principal").and_then(|p| p.get("AWS")) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    }
}

/// The principals a role's main statement names in `policy`.
pub fn members(policy: &str, role: Role) -> Vec<String> {
    let sid = match role {
        Role::Admin => SID_ADMINS,
        Role::User => SID_USE,
    };
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return vec![];
    };
    let list = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => vec![],
    };
    list.iter()
        .filter(|s| s.get("Sid").and_then(Value::as_str) == Some(sid))
        .flat_map(aws_principals)
        .collect()
}

/// Adds (`add`) or removes `arn` in the statements of `role`, creating or dropping statements
/// as the AWS console does. Returns the new policy text.
pub fn edit(
    policy: &str,
    role: Role,
    arn: &str,
    add: bool,
    spec: &str,
    usage: &str,
) -> Result<String, String> {
    let mut doc: Value = serde_json::from_str(policy)
        .map_err(|_| "The key policy is not valid JSON.".to_string())?;
    let list = statements_mut(&mut doc).ok_or("The key policy has no Statement.")?;
    for sid in sids(role, spec) {
        let pos = list
            .iter()
            .position(|s| s.get("Sid").and_then(Value::as_str) == Some(sid));
        match (pos, add) {
            (Some(i), _) => {
                let mut arns = aws_principals(&list[i]);
                arns.retain(|a| a != arn);
                if add {
                    arns.push(arn.to_string());
                }
                if arns.is_empty() {
                    list.remove(i);
                } else if let Some(obj) = list[i].as_object_mut() {
                    obj.insert("Principal".into(), principal_value(&arns));
                }
            }
            (None, true) => list.push(statement(sid, &[arn.to_string()], spec, usage, true)),
            (None, false) => {}
        }
    }
    Ok(pretty(&doc))
}

/// Policy JSON pretty-printed with the keys in the order people write them (Version, Id,
/// Statement; Sid, Effect, Principal, Action, Resource, Condition), not alphabetically.
pub fn pretty(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, 0, &mut out);
    out
}

const ORDER: &[&str] = &[
    "Version",
    "Id",
    "Statement",
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

fn write_value(v: &Value, indent: usize, out: &mut String) {
    let pad = |n: usize, out: &mut String| out.extend(std::iter::repeat_n(' ', n));
    match v {
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()),
                    k.to_string(),
                )
            });
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                pad(indent + 2, out);
                out.push_str(&Value::String(k.to_string()).to_string());
                out.push_str(": ");
                write_value(&map[k.as_str()], indent + 2, out);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(indent, out);
            out.push('}');
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(indent + 2, out);
                write_value(item, indent + 2, out);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            pad(indent, out);
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_default_has_aws_statements() {
        let p = console_default(
            "111122223333",
            &["arn:aws:iam::111122223333:user/A".into()],
            &["arn:aws:iam::111122223333:user/U".into()],
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            true,
        );
        let v: Value = serde_json::from_str(&p).unwrap();
        let sids: Vec<&str> = v["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids, [SID_ROOT, SID_ADMINS, SID_USE, SID_PERSISTENT]);
        assert_eq!(v["Id"], "key-consolepolicy-3");
        assert!(p.contains("kms:ScheduleKeyDeletion"));
        assert!(p.find("\"Sid\"").unwrap() < p.find("\"Effect\"").unwrap());
        assert!(p.find("\"Version\"").unwrap() < p.find("\"Statement\"").unwrap());
        let no_users = console_default(
            "111122223333",
            &[],
            &[],
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            false,
        );
        assert!(!no_users.contains(SID_USE) && !no_users.contains(SID_ADMINS));
    }

    #[test]
    fn add_and_remove_key_users() {
        let p = console_default("1", &[], &[], "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", true);
        let p = edit(
            &p,
            Role::User,
            "arn:aws:iam::1:user/U",
            true,
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
        )
        .unwrap();
        assert_eq!(members(&p, Role::User), ["arn:aws:iam::1:user/U"]);
        assert!(p.contains(SID_PERSISTENT));
        let p = edit(
            &p,
            Role::User,
            "arn:aws:iam::1:user/V",
            true,
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
        )
        .unwrap();
        assert_eq!(members(&p, Role::User).len(), 2);
        let p = edit(
            &p,
            Role::User,
            "arn:aws:iam::1:user/U",
            false,
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
        )
        .unwrap();
        let p = edit(
            &p,
            Role::User,
            "arn:aws:iam::1:user/V",
            false,
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
        )
        .unwrap();
        assert!(members(&p, Role::User).is_empty());
        assert!(!p.contains(SID_USE) && !p.contains(SID_PERSISTENT));
        let s = edit(
            &p,
            Role::User,
            "arn:aws:iam::1:user/S",
            true,
            "ECC_NIST_P256",
            "SIGN_VERIFY",
        )
        .unwrap();
        assert!(s.contains("kms:Sign") && !s.contains(SID_PERSISTENT));
    }
}
