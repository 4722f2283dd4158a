//! `Principal` / `NotPrincipal` parsing and matching.

use serde_json::Value;

use crate::error::{MSG_SYNTAX, PolicyError, err, invalid_principal};
use crate::{PrincipalInfo, PrincipalMatch};

/// One entry of the `AWS` principal list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AwsPrincipal {
    /// `"*"`.
    Any,
    /// The account principal: `"123456789012"` or
    /// `arn:aws:iam::123456789012:root` (holds the account id).
    Account(String),
    /// A user, role, group, assumed-role session or federated-user ARN,
    /// exactly as written.
    Arn(String),
}

impl AwsPrincipal {
    /// The account id this entry refers to (`None` for `Any`).
    pub fn account(&self) -> Option<&str> {
        match self {
            AwsPrincipal::Any => None,
            AwsPrincipal::Account(a) => Some(a),
            AwsPrincipal::Arn(arn) => arn.split(':').nth(4),
        }
    }
}

/// The parsed value of a `Principal` or `NotPrincipal` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalSet {
    /// `"Principal": "*"`.
    pub everyone: bool,
    pub aws: Vec<AwsPrincipal>,
    pub service: Vec<String>,
    pub federated: Vec<String>,
    pub canonical_user: Vec<String>,
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn string_list(v: &Value) -> Result<Vec<&str>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().ok_or_else(|| PolicyError::new(MSG_SYNTAX)))
            .collect(),
        _ => err(MSG_SYNTAX),
    }
}

fn parse_aws(value: &str) -> Result<AwsPrincipal, PolicyError> {
    if value == "*" {
        return Ok(AwsPrincipal::Any);
    }
    if is_account_id(value) {
        return Ok(AwsPrincipal::Account(value.to_string()));
    }
    let bad = || invalid_principal("AWS", value);
    if value.contains(['*', '?']) {
        return Err(bad());
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[1].is_empty() || !parts[3].is_empty() {
        return Err(bad());
    }
    let (service, account, res) = (parts[2], parts[4], parts[5]);
    if !is_account_id(account) {
        return Err(bad());
    }
    let ok = match service {
        "iam" => {
            if res == "root" {
                return Ok(AwsPrincipal::Account(account.to_string()));
            }
            ["user/", "role/", "group/"]
                .iter()
                .any(|p| res.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
        }
        "sts" => res.strip_prefix("assumed-role/").is_some_and(
            |rest| matches!(rest.split_once('/'), Some((r, s)) if !r.is_empty() && !s.is_empty()),
        ) || res
            .strip_prefix("federated-user/")
            .is_some_and(|rest| !rest.is_empty()),
        _ => false,
    };
    if ok {
        Ok(AwsPrincipal::Arn(value.to_string()))
    } else {
        Err(bad())
    }
}

impl PrincipalSet {
    pub(crate) fn parse(v: &Value) -> Result<PrincipalSet, PolicyError> {
        let mut set = PrincipalSet::default();
        match v {
            Value::String(s) if s == "*" => set.everyone = true,
            Value::Object(map) if !map.is_empty() => {
                for (k, val) in map {
                    let values = string_list(val)?;
                    match k.as_str() {
                        "AWS" => {
                            for s in values {
                                set.aws.push(parse_aws(s)?);
                            }
                        }
                        "Service" | "Federated" | "CanonicalUser" => {
                            for s in &values {
                                if s.is_empty() {
                                    return Err(invalid_principal(k, s));
                                }
                            }
                            let owned = values.into_iter().map(str::to_string);
                            match k.as_str() {
                                "Service" => set.service.extend(owned),
                                "Federated" => set.federated.extend(owned),
                                _ => set.canonical_user.extend(owned),
                            }
                        }
                        _ => return err(MSG_SYNTAX),
                    }
                }
            }
            _ => return err(MSG_SYNTAX),
        }
        Ok(set)
    }

    /// Whether this set names everyone (`"*"` or `{"AWS":"*"}`).
    pub fn is_wildcard(&self) -> bool {
        self.everyone || self.aws.contains(&AwsPrincipal::Any)
    }

    /// The strongest way in which this set matches `who` (`None` = anonymous
    /// caller), or `None` if it does not match.
    pub fn match_principal(&self, who: Option<&PrincipalInfo<'_>>) -> Option<PrincipalMatch> {
        let mut best: Option<PrincipalMatch> = None;
        let mut consider = |m: PrincipalMatch| {
            best = Some(match best {
                Some(b) if b <= m => b,
                _ => m,
            });
        };
        if self.is_wildcard() {
            consider(PrincipalMatch::Wildcard);
        }
        if let Some(who) = who {
            match who.service {
                Some(svc) => {
                    if self.service.iter().any(|s| s.eq_ignore_ascii_case(svc)) {
                        consider(PrincipalMatch::Direct);
                    }
                }
                None => {
                    for entry in &self.aws {
                        match entry {
                            AwsPrincipal::Any => {}
                            AwsPrincipal::Account(a) => {
                                if a == who.account {
                                    consider(PrincipalMatch::Account);
                                }
                            }
                            AwsPrincipal::Arn(arn) => {
                                if arn == who.arn || Some(arn.as_str()) == who.role_arn {
                                    consider(PrincipalMatch::Direct);
                                }
                            }
                        }
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_forms() {
        let s = PrincipalSet::parse(&json!("*")).unwrap_or_default();
        assert!(s.everyone);
        let s = PrincipalSet::parse(&json!({"AWS": ["123456789012", "arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/a", "arn:aws:sts::123456789012:assumed-role/R/s"]}))
            .unwrap_or_default();
        assert_eq!(
            s.aws,
            vec![
                AwsPrincipal::Account("123456789012".into()),
                AwsPrincipal::Account("123456789012".into()),
                AwsPrincipal::Arn("arn:aws:iam::123456789012:user/a".into()),
                AwsPrincipal::Arn("arn:aws:sts::123456789012:assumed-role/R/s".into()),
            ]
        );
        assert!(PrincipalSet::parse(&json!({"Service": "s3.amazonaws.com"})).is_ok());
    }

    #[test]
    fn parse_errors() {
        for bad in [
            json!({"AWS": "bob"}),
            json!({"AWS": "arn:aws:iam::123456789012:user/*"}),
            json!({"AWS": "arn:aws:iam::12345:user/a"}),
            json!({"AWS": "arn:aws:s3:::bucket"}),
        ] {
            let e = PrincipalSet::parse(&bad).err().map(|e| e.message);
            assert!(
                e.as_deref()
                    .is_some_and(|m| m.starts_with("Invalid principal in policy: \"AWS\":")),
                "{bad}: {e:?}"
            );
        }
        for bad in [
            json!("arn:aws:iam::123456789012:root"),
            json!({}),
            json!({"Foo": "x"}),
            json!({"AWS": []}),
            json!({"AWS": 5}),
        ] {
            assert_eq!(
                PrincipalSet::parse(&bad).err().map(|e| e.message),
                Some(MSG_SYNTAX.to_string()),
                "{bad}"
            );
        }
    }
}
