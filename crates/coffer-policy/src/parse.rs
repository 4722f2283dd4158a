//! Document parsing and validation.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::condition::parse_condition_block;
use crate::error::*;
use crate::glob::{lowercase_toks, tokenize};
use crate::pattern::Pattern;
use crate::principal::PrincipalSet;
use crate::{
    ActionBlock, Effect, Policy, PolicyKind, PolicyVersion, PrincipalBlock, ResourceBlock,
    Statement,
};

/// Messages that differ between IAM (`MalformedPolicyDocument`) and S3
/// (`MalformedPolicy`).
struct Messages {
    invalid_json: &'static str,
    missing_statement: &'static str,
    /// Enforce IAM's character set (U+0009, U+000A, U+000D, U+0020–U+00FF).
    restrict_chars: bool,
}

const IAM_MESSAGES: Messages = Messages {
    invalid_json: MSG_INVALID_JSON,
    missing_statement: MSG_MISSING_STATEMENT,
    restrict_chars: true,
};

const S3_MESSAGES: Messages = Messages {
    invalid_json: MSG_S3_INVALID_JSON,
    missing_statement: MSG_S3_MISSING_STATEMENT,
    restrict_chars: false,
};

const TOP_LEVEL: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
];

fn is_json_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn allowed_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{ff}')
}

/// Number of characters in `doc` excluding JSON insignificant whitespace
/// (whitespace outside string literals). Used for IAM size quotas.
pub fn size_without_whitespace(doc: &str) -> usize {
    let mut n = 0;
    let mut in_string = false;
    let mut escaped = false;
    for c in doc.chars() {
        if in_string {
            n += 1;
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            n += 1;
        } else if !is_json_ws(c) {
            n += 1;
        }
    }
    n
}

/// String or non-empty array of strings. `empty_msg` is used for an empty
/// array; a non-string value is a syntax error.
fn string_list(v: &Value, empty_msg: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if items.is_empty() => err(empty_msg),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| PolicyError::new(MSG_SYNTAX))
            })
            .collect(),
        _ => err(MSG_SYNTAX),
    }
}

/// Pick exactly one of `pos`/`neg`. Both present ⇒ syntax error.
fn one_of<'a>(
    obj: &'a Map<String, Value>,
    pos: &str,
    neg: &str,
) -> Result<Option<(&'a Value, bool)>, PolicyError> {
    match (obj.get(pos), obj.get(neg)) {
        (Some(_), Some(_)) => err(MSG_SYNTAX),
        (Some(v), None) => Ok(Some((v, false))),
        (None, Some(v)) => Ok(Some((v, true))),
        (None, None) => Ok(None),
    }
}

fn validate_action(a: &str) -> Result<(), PolicyError> {
    if a == "*" {
        return Ok(());
    }
    match a.split_once(':') {
        Some((vendor, _)) if !vendor.is_empty() => Ok(()),
        _ => err(MSG_VENDOR_PREFIX),
    }
}

fn validate_resource(r: &str) -> Result<(), PolicyError> {
    if r == "*" || (r.starts_with("arn:") && (r.splitn(6, ':').count() == 6 || r.contains('*'))) {
        Ok(())
    } else {
        Err(invalid_resource(r))
    }
}

fn parse_statement(
    v: &Value,
    index: usize,
    kind: PolicyKind,
    version: PolicyVersion,
) -> Result<Statement, PolicyError> {
    let Value::Object(obj) = v else {
        return err(MSG_SYNTAX);
    };
    if obj.keys().any(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return err(MSG_SYNTAX);
    }
    let effect = match obj.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return err(MSG_SYNTAX),
    };
    let principal = match (kind, one_of(obj, "Principal", "NotPrincipal")?) {
        (PolicyKind::Identity, Some(_)) => return err(MSG_PRINCIPAL_FORBIDDEN),
        (PolicyKind::Identity, None) => None,
        (_, None) => return err(MSG_PRINCIPAL_REQUIRED),
        (_, Some((pv, negated))) => Some(PrincipalBlock {
            negated,
            set: PrincipalSet::parse(pv)?,
        }),
    };

    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => {
            if kind == PolicyKind::Identity && !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                return err(MSG_SID_NOT_ALNUM);
            }
            Some(s.clone())
        }
        Some(_) => return err(MSG_SYNTAX),
    };

    let Some((av, negated)) = one_of(obj, "Action", "NotAction")? else {
        return err(MSG_MISSING_ACTIONS);
    };
    let values = string_list(av, MSG_MISSING_ACTIONS)?;
    for a in &values {
        validate_action(a)?;
    }
    let patterns = values
        .iter()
        .map(|a| lowercase_toks(&tokenize(a)))
        .collect();
    let actions = ActionBlock {
        negated,
        values,
        patterns,
    };

    let resources = match one_of(obj, "Resource", "NotResource")? {
        None if kind == PolicyKind::Trust => None,
        None => return err(MSG_MISSING_RESOURCES),
        Some((rv, negated)) => {
            let values = string_list(rv, MSG_MISSING_RESOURCES)?;
            for r in &values {
                validate_resource(r)?;
            }
            let patterns = values.iter().map(|r| Pattern::parse(r, version)).collect();
            Some(ResourceBlock {
                negated,
                values,
                patterns,
            })
        }
    };

    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(c) => parse_condition_block(c, version)?,
    };

    Ok(Statement {
        sid,
        effect,
        index,
        actions,
        resources,
        principal,
        conditions,
    })
}

fn parse_with(doc: &str, kind: PolicyKind, msgs: &Messages) -> Result<Policy, PolicyError> {
    if msgs.restrict_chars && !doc.chars().all(allowed_char) {
        return err(msgs.invalid_json);
    }
    if doc.chars().find(|c| !is_json_ws(*c)) != Some('{') {
        return err(msgs.invalid_json);
    }
    let value: Value =
        serde_json::from_str(doc).map_err(|_| PolicyError::new(msgs.invalid_json))?;
    let Value::Object(top) = value else {
        return err(msgs.invalid_json);
    };
    if top.keys().any(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return err(MSG_SYNTAX);
    }
    let (version, version_present) = match top.get("Version") {
        None => (PolicyVersion::V2008, false),
        Some(Value::String(s)) if s == "2012-10-17" => (PolicyVersion::V2012, true),
        Some(Value::String(s)) if s == "2008-10-17" => (PolicyVersion::V2008, true),
        Some(_) => return err(MSG_LEGACY_PARSING),
    };
    let id = match top.get("Id") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return err(MSG_SYNTAX),
    };
    let raw_statements: Vec<&Value> = match top.get("Statement") {
        None => return err(msgs.missing_statement),
        Some(Value::Array(items)) if items.is_empty() => return err(MSG_SYNTAX),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(obj @ Value::Object(_)) => vec![obj],
        Some(_) => return err(MSG_SYNTAX),
    };
    let mut statements = Vec::with_capacity(raw_statements.len());
    let mut sids = HashSet::new();
    for (index, sv) in raw_statements.into_iter().enumerate() {
        let st = parse_statement(sv, index, kind, version)?;
        if let Some(sid) = st.sid.as_deref()
            && !sid.is_empty()
            && !sids.insert(sid.to_string())
        {
            return err(MSG_DUPLICATE_SID);
        }
        statements.push(st);
    }
    Ok(Policy {
        text: doc.to_string(),
        kind,
        version,
        version_present,
        id,
        statements,
    })
}

impl Policy {
    /// Parse and validate `doc` as a policy of the given kind.
    ///
    /// Errors carry IAM `MalformedPolicyDocument` messages (see the `MSG_*`
    /// constants). Checks, in order: allowed characters and a leading `{`
    /// ([`MSG_INVALID_JSON`]), JSON syntax ([`MSG_INVALID_JSON`]), unknown
    /// top-level elements ([`MSG_SYNTAX`]), `Version`
    /// ([`MSG_LEGACY_PARSING`]), `Id` type, `Statement` presence
    /// ([`MSG_MISSING_STATEMENT`]); then per statement: unknown elements,
    /// `Effect`, `Sid` (alphanumeric in identity policies), `Principal`
    /// rules, `Action`, `Resource`, `Condition`; finally `Sid` uniqueness.
    pub fn parse(doc: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        parse_with(doc, kind, &IAM_MESSAGES)
    }

    /// Parse an S3 bucket policy ([`PolicyKind::Resource`]) using S3's
    /// `MalformedPolicy` wording for invalid JSON ([`MSG_S3_INVALID_JSON`])
    /// and a missing `Statement` ([`MSG_S3_MISSING_STATEMENT`]). Unlike IAM
    /// and KMS, characters outside U+0020–U+00FF are accepted (object keys in
    /// `Resource` may be any UTF-8); everything else is validated as for
    /// [`PolicyKind::Resource`].
    pub fn parse_bucket_policy(doc: &str) -> Result<Policy, PolicyError> {
        parse_with(doc, PolicyKind::Resource, &S3_MESSAGES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_string_whitespace() {
        assert_eq!(
            size_without_whitespace("{ \"a b\" : 1 }"),
            "{\"a b\":1}".len()
        );
        assert_eq!(
            size_without_whitespace("{\n\t\"a\\\" b\": \"\"\r\n}"),
            "{\"a\\\" b\":\"\"}".len()
        );
        assert_eq!(size_without_whitespace(""), 0);
    }
}
