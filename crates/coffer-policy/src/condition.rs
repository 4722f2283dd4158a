//! `Condition` element: operators, value parsing and evaluation.

use std::net::IpAddr;

use base64::Engine;
use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::error::{MSG_SYNTAX, MSG_VENDOR_PREFIX, PolicyError, err, invalid_condition_type};
use crate::glob::{Tok, match_str, match_toks};
use crate::pattern::{Pattern, toks_to_literal};
use crate::{Context, ContextValue, PolicyVersion};

/// A condition operator (without `ForAnyValue:`/`ForAllValues:` and `IfExists`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionOperator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

use ConditionOperator as Op;

const ALL_OPS: [Op; 27] = [
    Op::StringEquals,
    Op::StringNotEquals,
    Op::StringEqualsIgnoreCase,
    Op::StringNotEqualsIgnoreCase,
    Op::StringLike,
    Op::StringNotLike,
    Op::NumericEquals,
    Op::NumericNotEquals,
    Op::NumericLessThan,
    Op::NumericLessThanEquals,
    Op::NumericGreaterThan,
    Op::NumericGreaterThanEquals,
    Op::DateEquals,
    Op::DateNotEquals,
    Op::DateLessThan,
    Op::DateLessThanEquals,
    Op::DateGreaterThan,
    Op::DateGreaterThanEquals,
    Op::Bool,
    Op::BinaryEquals,
    Op::IpAddress,
    Op::NotIpAddress,
    Op::ArnEquals,
    Op::ArnLike,
    Op::ArnNotEquals,
    Op::ArnNotLike,
    Op::Null,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn test<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrMode {
    Exact,
    IgnoreCase,
    Like,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Str(StrMode),
    Num(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

impl ConditionOperator {
    /// The operator's AWS name, e.g. `"StringEquals"`.
    pub fn name(self) -> &'static str {
        match self {
            Op::StringEquals => "StringEquals",
            Op::StringNotEquals => "StringNotEquals",
            Op::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            Op::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
            Op::StringLike => "StringLike",
            Op::StringNotLike => "StringNotLike",
            Op::NumericEquals => "NumericEquals",
            Op::NumericNotEquals => "NumericNotEquals",
            Op::NumericLessThan => "NumericLessThan",
            Op::NumericLessThanEquals => "NumericLessThanEquals",
            Op::NumericGreaterThan => "NumericGreaterThan",
            Op::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            Op::DateEquals => "DateEquals",
            Op::DateNotEquals => "DateNotEquals",
            Op::DateLessThan => "DateLessThan",
            Op::DateLessThanEquals => "DateLessThanEquals",
            Op::DateGreaterThan => "DateGreaterThan",
            Op::DateGreaterThanEquals => "DateGreaterThanEquals",
            Op::Bool => "Bool",
            Op::BinaryEquals => "BinaryEquals",
            Op::IpAddress => "IpAddress",
            Op::NotIpAddress => "NotIpAddress",
            Op::ArnEquals => "ArnEquals",
            Op::ArnLike => "ArnLike",
            Op::ArnNotEquals => "ArnNotEquals",
            Op::ArnNotLike => "ArnNotLike",
            Op::Null => "Null",
        }
    }

    /// Look an operator up by name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        ALL_OPS
            .iter()
            .copied()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// True for the negated operators (`StringNotEquals`, `NotIpAddress`, …):
    /// the request value must match none of the policy values, and a missing
    /// key makes the condition true.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::NumericNotEquals
                | Op::DateNotEquals
                | Op::NotIpAddress
                | Op::ArnNotEquals
                | Op::ArnNotLike
        )
    }

    fn family(self) -> Family {
        match self {
            Op::StringEquals | Op::StringNotEquals => Family::Str(StrMode::Exact),
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase => {
                Family::Str(StrMode::IgnoreCase)
            }
            Op::StringLike | Op::StringNotLike => Family::Str(StrMode::Like),
            Op::NumericEquals | Op::NumericNotEquals => Family::Num(Cmp::Eq),
            Op::NumericLessThan => Family::Num(Cmp::Lt),
            Op::NumericLessThanEquals => Family::Num(Cmp::Le),
            Op::NumericGreaterThan => Family::Num(Cmp::Gt),
            Op::NumericGreaterThanEquals => Family::Num(Cmp::Ge),
            Op::DateEquals | Op::DateNotEquals => Family::Date(Cmp::Eq),
            Op::DateLessThan => Family::Date(Cmp::Lt),
            Op::DateLessThanEquals => Family::Date(Cmp::Le),
            Op::DateGreaterThan => Family::Date(Cmp::Gt),
            Op::DateGreaterThanEquals => Family::Date(Cmp::Ge),
            Op::Bool => Family::Bool,
            Op::BinaryEquals => Family::Binary,
            Op::IpAddress | Op::NotIpAddress => Family::Ip,
            Op::ArnEquals | Op::ArnLike | Op::ArnNotEquals | Op::ArnNotLike => Family::Arn,
            Op::Null => Family::Null,
        }
    }
}

/// `ForAnyValue:` / `ForAllValues:` set-operator prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetQualifier {
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq)]
enum CondValue {
    /// String / ARN operators: pattern with policy variables.
    Pat(Pattern),
    Num(f64),
    /// Unix time in nanoseconds.
    Date(i128),
    Bool(String),
    Bin(Vec<u8>),
    Ip(Cidr),
    Null(bool),
}

/// One operator/key pair of a `Condition` block, with its values (ORed).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: ConditionOperator,
    pub qualifier: Option<SetQualifier>,
    pub if_exists: bool,
    /// The operator exactly as written (e.g. `"ForAnyValue:StringLikeIfExists"`).
    pub operator_text: String,
    /// The condition key exactly as written.
    pub key: String,
    /// The values as text (JSON numbers/bools converted to their text).
    pub values: Vec<String>,
    key_lower: String,
    parsed: Vec<CondValue>,
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    let tail = s.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..at])
}

/// Parse an operator string into (operator, qualifier, if_exists).
fn parse_operator(raw: &str) -> Result<(Op, Option<SetQualifier>, bool), PolicyError> {
    let (qualifier, rest) = if let Some(r) = strip_prefix_ci(raw, "ForAnyValue:") {
        (Some(SetQualifier::ForAnyValue), r)
    } else if let Some(r) = strip_prefix_ci(raw, "ForAllValues:") {
        (Some(SetQualifier::ForAllValues), r)
    } else {
        (None, raw)
    };
    if let Some(op) = Op::from_name(rest) {
        return Ok((op, qualifier, false));
    }
    if let Some(base) = strip_suffix_ci(rest, "IfExists")
        && let Some(op) = Op::from_name(base)
        && op != Op::Null
    {
        return Ok((op, qualifier, true));
    }
    Err(invalid_condition_type(raw))
}

fn value_texts(v: &Value) -> Result<Vec<String>, PolicyError> {
    fn one(v: &Value) -> Result<String, PolicyError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => err(MSG_SYNTAX),
        }
    }
    match v {
        Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
        Value::Array(_) => err(MSG_SYNTAX),
        other => Ok(vec![one(other)?]),
    }
}

fn parse_value(
    family: Family,
    text: &str,
    version: PolicyVersion,
) -> Result<CondValue, PolicyError> {
    let syntax = || PolicyError::new(MSG_SYNTAX);
    Ok(match family {
        Family::Str(_) | Family::Arn => CondValue::Pat(Pattern::parse(text, version)),
        Family::Num(_) => CondValue::Num(parse_number(text).ok_or_else(syntax)?),
        Family::Date(_) => CondValue::Date(parse_date(text).ok_or_else(syntax)?),
        Family::Bool => CondValue::Bool(text.to_ascii_lowercase()),
        Family::Binary => CondValue::Bin(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| syntax())?,
        ),
        Family::Ip => CondValue::Ip(Cidr::parse(text).ok_or_else(syntax)?),
        Family::Null => {
            if text.eq_ignore_ascii_case("true") {
                CondValue::Null(true)
            } else if text.eq_ignore_ascii_case("false") {
                CondValue::Null(false)
            } else {
                return Err(syntax());
            }
        }
    })
}

/// Parse a whole `Condition` element value.
pub(crate) fn parse_condition_block(
    v: &Value,
    version: PolicyVersion,
) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return err(MSG_SYNTAX);
    };
    let mut out = Vec::new();
    for (op_text, keys) in ops {
        let (operator, qualifier, if_exists) = parse_operator(op_text)?;
        let Value::Object(keys) = keys else {
            return err(MSG_SYNTAX);
        };
        for (key, values) in keys {
            match key.split_once(':') {
                Some((vendor, _)) if !vendor.is_empty() => {}
                _ => return err(MSG_VENDOR_PREFIX),
            }
            let texts = value_texts(values)?;
            let family = operator.family();
            let parsed = texts
                .iter()
                .map(|t| parse_value(family, t, version))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Condition {
                operator,
                qualifier,
                if_exists,
                operator_text: op_text.clone(),
                key: key.clone(),
                values: texts,
                key_lower: key.to_lowercase(),
                parsed,
            });
        }
    }
    Ok(out)
}

/// A policy value ready for matching.
enum Ready<'a> {
    Toks(Vec<Tok>),
    /// A policy variable could not be resolved.
    Unresolved,
    Other(&'a CondValue),
}

impl Condition {
    /// Evaluate this clause against the request context.
    ///
    /// * plain operator, key missing: positive ⇒ false, negated ⇒ true,
    ///   `IfExists` ⇒ true;
    /// * `ForAnyValue:` key missing/empty ⇒ false (true with `IfExists`);
    /// * `ForAllValues:` key missing/empty ⇒ true;
    /// * negated operators require the request value(s) to match none of the
    ///   policy values; if a policy value holds an unresolvable variable the
    ///   clause is false (the statement does not apply).
    pub fn evaluate(&self, ctx: &Context) -> bool {
        let raw = ctx.get_lower(&self.key_lower);
        let request: Option<&[String]> = match raw {
            Some(ContextValue::Single(s)) => Some(std::slice::from_ref(s)),
            Some(ContextValue::Multi(v)) if !v.is_empty() => Some(v.as_slice()),
            _ => None,
        };
        if self.operator == Op::Null {
            let present = request.is_some();
            return self
                .parsed
                .iter()
                .any(|v| matches!(v, CondValue::Null(want_absent) if *want_absent != present));
        }
        let negated = self.operator.is_negated();
        let Some(request) = request else {
            return match self.qualifier {
                None => self.if_exists || negated,
                Some(SetQualifier::ForAnyValue) => self.if_exists,
                Some(SetQualifier::ForAllValues) => true,
            };
        };
        let ready: Vec<Ready<'_>> = self
            .parsed
            .iter()
            .map(|v| match v {
                CondValue::Pat(p) => match p.resolve(ctx) {
                    Some(t) => Ready::Toks(t),
                    None => Ready::Unresolved,
                },
                other => Ready::Other(other),
            })
            .collect();
        if negated && ready.iter().any(|r| matches!(r, Ready::Unresolved)) {
            return false;
        }
        let family = self.operator.family();
        let any_policy_value_matches =
            |req: &str| ready.iter().any(|r| value_matches(family, r, req));
        let base = |req: &String| any_policy_value_matches(req) != negated;
        match self.qualifier {
            // Plain operators on a multi-valued key: positive ⇒ some request
            // value matches; negated ⇒ no request value matches.
            None => {
                if negated {
                    request.iter().all(base)
                } else {
                    request.iter().any(base)
                }
            }
            Some(SetQualifier::ForAnyValue) => request.iter().any(base),
            Some(SetQualifier::ForAllValues) => request.iter().all(base),
        }
    }
}

fn value_matches(family: Family, policy: &Ready<'_>, req: &str) -> bool {
    match (family, policy) {
        (_, Ready::Unresolved) => false,
        (Family::Str(StrMode::Exact), Ready::Toks(t)) => toks_to_literal(t) == req,
        (Family::Str(StrMode::IgnoreCase), Ready::Toks(t)) => {
            toks_to_literal(t).to_lowercase() == req.to_lowercase()
        }
        (Family::Str(StrMode::Like), Ready::Toks(t)) => match_str(t, req),
        (Family::Arn, Ready::Toks(t)) => arn_match(t, req),
        (Family::Num(cmp), Ready::Other(CondValue::Num(p))) => {
            parse_number(req).is_some_and(|r| cmp.test(r, *p))
        }
        (Family::Date(cmp), Ready::Other(CondValue::Date(p))) => {
            parse_date(req).is_some_and(|r| cmp.test(r, *p))
        }
        (Family::Bool, Ready::Other(CondValue::Bool(p))) => req.eq_ignore_ascii_case(p),
        (Family::Binary, Ready::Other(CondValue::Bin(p))) => {
            match base64::engine::general_purpose::STANDARD.decode(req) {
                Ok(bytes) => bytes == *p,
                Err(_) => req.as_bytes() == p.as_slice(),
            }
        }
        (Family::Ip, Ready::Other(CondValue::Ip(c))) => {
            req.parse::<IpAddr>().is_ok_and(|ip| c.contains(ip))
        }
        _ => false,
    }
}

/// ARN matching: the six colon-separated components are matched separately
/// (the sixth keeps any further colons). A pattern with fewer than six
/// components matches nothing, except a bare `"*"` which matches everything.
fn arn_match(pat: &[Tok], req: &str) -> bool {
    let mut comps: Vec<&[Tok]> = Vec::with_capacity(6);
    let mut start = 0;
    for (i, t) in pat.iter().enumerate() {
        if comps.len() == 5 {
            break;
        }
        if *t == Tok::Lit(':') {
            comps.push(&pat[start..i]);
            start = i + 1;
        }
    }
    if comps.len() < 5 {
        // Not an ARN pattern: only a bare wildcard (`"*"`) matches.
        return crate::glob::is_match_all(pat);
    }
    comps.push(&pat[start..]);
    let req_parts: Vec<&str> = req.splitn(6, ':').collect();
    if req_parts.len() != 6 {
        return false;
    }
    comps.iter().zip(req_parts.iter()).all(|(p, r)| {
        let chars: Vec<char> = r.chars().collect();
        match_toks(p, &chars)
    })
}

/// Parse a decimal number (no `inf`/`NaN`).
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        || !s.bytes().any(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Parse a date: epoch seconds (optionally negative / fractional), RFC 3339,
/// ISO 8601 with or without offset (no offset ⇒ UTC), or a bare ISO date
/// (midnight UTC). Returns Unix time in nanoseconds.
pub fn parse_date(s: &str) -> Option<i128> {
    let s = s.trim();
    if let Some(n) = parse_epoch(s) {
        return Some(n);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = PrimitiveDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(d) = Date::parse(s, &Iso8601::DEFAULT) {
        return Some(d.midnight().assume_utc().unix_timestamp_nanos());
    }
    None
}

fn parse_epoch(s: &str) -> Option<i128> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() > 15
    {
        return None;
    }
    let secs: i128 = int.parse().ok()?;
    let mut nanos: i128 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += i128::from(b - b'0') * 10i128.pow(8 - i as u32);
    }
    let total = secs * 1_000_000_000 + nanos;
    Some(if neg { -total } else { total })
}

/// An IPv4 or IPv6 network (`addr/prefix`; a plain address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().ok()?
            }
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr.to_canonical(), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                // An IPv4-mapped IPv6 network's prefix counts the 96 mapping bits.
                let prefix = if self.addr.is_ipv6() {
                    u32::from(self.prefix.saturating_sub(96))
                } else {
                    u32::from(self.prefix)
                };
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix)
                };
                (u32::from(net) & mask) == (u32::from(ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let prefix = u32::from(self.prefix);
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix)
                };
                (u128::from(net) & mask) == (u128::from(ip) & mask)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        assert_eq!(
            parse_operator("ForAnyValue:StringLikeIfExists").ok(),
            Some((Op::StringLike, Some(SetQualifier::ForAnyValue), true))
        );
        assert_eq!(
            parse_operator("stringequals").ok(),
            Some((Op::StringEquals, None, false))
        );
        assert_eq!(
            parse_operator("NullIfExists").err().map(|e| e.message),
            Some("Invalid Condition type : NullIfExists".into())
        );
        assert_eq!(
            parse_operator("Foo").err().map(|e| e.message),
            Some("Invalid Condition type : Foo".into())
        );
        for op in ALL_OPS {
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
    }

    #[test]
    fn dates() {
        let base = parse_date("2020-01-01T00:00:00Z");
        assert!(base.is_some());
        assert_eq!(parse_date("2020-01-01"), base);
        assert_eq!(parse_date("2020-01-01T00:00:00"), base);
        assert_eq!(parse_date("2020-01-01T00:00:00.000Z"), base);
        assert_eq!(parse_date("2020-01-01T02:00:00+02:00"), base);
        assert_eq!(parse_date("1577836800"), base);
        assert_eq!(parse_date("1577836800.5"), base.map(|b| b + 500_000_000));
        assert_eq!(parse_date("20200101T000000Z"), base);
        assert_eq!(parse_date("garbage"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("abc"), None);
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8");
        assert!(
            c.is_some_and(|c| c.contains("10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))))
        );
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        let contains = |c: &str, i: &str| {
            Cidr::parse(c)
                .zip(ip(i))
                .is_some_and(|(c, i)| c.contains(i))
        };
        assert!(contains("10.0.0.0/8", "10.255.0.1"));
        assert!(!contains("10.0.0.0/8", "11.0.0.1"));
        assert!(contains("0.0.0.0/0", "1.2.3.4"));
        assert!(contains("1.2.3.4", "1.2.3.4"));
        assert!(!contains("1.2.3.4", "1.2.3.5"));
        assert!(contains("10.0.0.0/8", "::ffff:10.0.0.1"));
        assert!(contains("2001:db8::/32", "2001:db8:1::1"));
        assert!(!contains("2001:db8::/32", "2001:db9::1"));
        assert!(contains("::/0", "::1"));
        assert!(!contains("10.0.0.0/8", "::1"));
        assert!(!contains("2001:db8::/32", "10.0.0.1"));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
        assert!(Cidr::parse("::/129").is_none());
        assert!(Cidr::parse("::/128").is_some());
    }

    #[test]
    fn arn_components() {
        let t = crate::glob::tokenize;
        assert!(arn_match(
            &t("arn:aws:iam::*:role/*"),
            "arn:aws:iam::123:role/a/b:c"
        ));
        assert!(!arn_match(
            &t("arn:aws:iam::*:role/*"),
            "arn:aws:iam::123:user/a"
        ));
        // `*` does not cross component boundaries.
        assert!(!arn_match(
            &t("arn:aws:*:role/x"),
            "arn:aws:iam::123:role/x"
        ));
        assert!(arn_match(&t("*"), "arn:aws:iam::123:role/x"));
        assert!(arn_match(&t("*"), "anything"));
        assert!(arn_match(&t("arn:aws:s3:::b?"), "arn:aws:s3:::b1"));
        assert!(!arn_match(&t("arn:aws:s3:::b"), "arn:aws:s3:::B"));
        assert!(!arn_match(&t("arn:aws:s3:::b"), "not-an-arn"));
    }
}
