//! Decoded Query-protocol parameters (`Name=value`, `Name.member.N`, `Name.member.N.Key`).

use coffer_core::ServiceError;
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

pub fn validation(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("ValidationError", 400, msg)
}

pub fn invalid_input(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("InvalidInput", 400, msg)
}

/// `Name` → `name` as AWS's validation messages spell member paths.
fn member_path(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

impl Params {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Params(pairs.into_iter().collect())
    }

    pub fn opt(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn req(&self, name: &str) -> Result<&str, ServiceError> {
        self.opt(name).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                member_path(name)
            ))
        })
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ServiceError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                validation(format!(
                    "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a number",
                    member_path(name)
                ))
            }),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ServiceError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(validation(format!(
                "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must be a boolean",
                member_path(name)
            ))),
        }
    }

    /// `Name.member.1`, `Name.member.2`, … in index order.
    pub fn list(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.member.");
        let mut items: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let idx = k.strip_prefix(&prefix)?;
                idx.parse::<u32>().ok().map(|i| (i, v.clone()))
            })
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Name.member.N.Key` / `Name.member.N.Value` pairs (tags), or other field names.
    pub fn struct_list(&self, name: &str, fields: &[&str]) -> Vec<Vec<Option<String>>> {
        let prefix = format!("{name}.member.");
        let mut idx: Vec<u32> = self
            .0
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix)?.split('.').next()?.parse().ok())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter()
            .map(|i| {
                fields
                    .iter()
                    .map(|f| self.0.get(&format!("{prefix}{i}.{f}")).cloned())
                    .collect()
            })
            .collect()
    }

    /// Nested list inside a struct-list item: `Name.member.N.Field.member.M`.
    pub fn nested_list(&self, name: &str, n: usize, field: &str) -> Vec<String> {
        self.list(&format!("{name}.member.{n}.{field}"))
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.0.keys().any(|k| k.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_structs() {
        let p = Params::from_pairs(
            [
                ("A.member.2", "b"),
                ("A.member.1", "a"),
                ("A.member.10", "j"),
                ("Tags.member.1.Key", "k1"),
                ("Tags.member.1.Value", "v1"),
                ("Tags.member.2.Key", "k2"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string())),
        );
        assert_eq!(p.list("A"), vec!["a", "b", "j"]);
        let t = p.struct_list("Tags", &["Key", "Value"]);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], vec![Some("k1".into()), Some("v1".into())]);
        assert_eq!(t[1], vec![Some("k2".into()), None]);
        assert!(
            p.req("UserName")
                .unwrap_err()
                .message
                .contains("'userName'")
        );
    }
}
