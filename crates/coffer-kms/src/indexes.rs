//! Secondary indexes of KMS records, written in the same transaction as the records they index,
//! so that no request has to scan every alias or grant of an account:
//!
//! | ns | key | value |
//! |---|---|---|
//! | `kms.alias_by_key` | `ACCOUNT/key-uuid/alias/name` | empty |
//! | `kms.grant_by_token` | SHA-256 (hex) of the grant token | the grant's row key |
//! | `kms.grant_by_retiring` | `ACCOUNT/retiring principal` NUL grant row key | empty |
//!
//! [`Kms::build_indexes`] fills them once for records written before they existed.

use crate::grants::{Grant, NS_GRANT};
use crate::model::{Alias, NS_ALIAS};
use crate::{Kms, internal};
use coffer_core::ServiceError;
use coffer_store::{Reader, Txn, get_json, put_json, scan_json};

pub(crate) const NS_ALIAS_BY_KEY: &str = "kms.alias_by_key";
pub(crate) const NS_GRANT_BY_TOKEN: &str = "kms.grant_by_token";
pub(crate) const NS_GRANT_BY_RETIRING: &str = "kms.grant_by_retiring";
/// The `coffer.meta` row marking that the indexes cover every record.
const NS_META: &str = "coffer.meta";
const BUILT_MARKER: &str = "kms-indexes-v1";

fn alias_index_key(account: &str, key_id: &str, name: &str) -> String {
    format!("{account}/{key_id}/{name}")
}

pub(crate) fn grant_row_key(g: &Grant) -> String {
    format!("{}/{}/{}", g.account, g.key_id, g.id)
}

fn retiring_index_key(g: &Grant, retiring: &str) -> String {
    format!("{}/{retiring}\0{}", g.account, grant_row_key(g))
}

/// Writes the alias `name` of `account` (new, or moved to another key) with its index row.
pub(crate) fn put_alias(t: &mut dyn Txn, account: &str, a: &Alias) -> Result<(), ServiceError> {
    let row = format!("{account}/{}", a.name);
    if let Some(old) = get_json::<Alias>(&*t, NS_ALIAS, &row).map_err(internal)? {
        t.delete(
            NS_ALIAS_BY_KEY,
            &alias_index_key(account, &old.target, &old.name),
        )
        .map_err(internal)?;
    }
    put_json(t, NS_ALIAS, &row, a).map_err(internal)?;
    t.put(
        NS_ALIAS_BY_KEY,
        &alias_index_key(account, &a.target, &a.name),
        b"",
    )
    .map_err(internal)
}

/// Deletes the alias `name` of `account` and its index row; whether it existed.
pub(crate) fn delete_alias(
    t: &mut dyn Txn,
    account: &str,
    name: &str,
) -> Result<bool, ServiceError> {
    let row = format!("{account}/{name}");
    let Some(a) = get_json::<Alias>(&*t, NS_ALIAS, &row).map_err(internal)? else {
        return Ok(false);
    };
    t.delete(
        NS_ALIAS_BY_KEY,
        &alias_index_key(account, &a.target, &a.name),
    )
    .map_err(internal)?;
    t.delete(NS_ALIAS, &row).map_err(internal)
}

/// The alias names of one key: a range scan of the index (a key has at most 50 aliases).
pub(crate) fn alias_names(
    r: &(impl Reader + ?Sized),
    account: &str,
    key_id: &str,
) -> Result<Vec<String>, ServiceError> {
    let prefix = format!("{account}/{key_id}/");
    Ok(r.scan(NS_ALIAS_BY_KEY, &prefix, None, 1000)
        .map_err(internal)?
        .into_iter()
        .map(|(k, _)| k[prefix.len()..].to_string())
        .collect())
}

/// Writes a grant with its index rows.
pub(crate) fn put_grant(t: &mut dyn Txn, g: &Grant) -> Result<(), ServiceError> {
    let row = grant_row_key(g);
    put_json(t, NS_GRANT, &row, g).map_err(internal)?;
    t.put(NS_GRANT_BY_TOKEN, &g.token_sha256, row.as_bytes())
        .map_err(internal)?;
    if let Some(r) = &g.retiring {
        t.put(NS_GRANT_BY_RETIRING, &retiring_index_key(g, r), b"")
            .map_err(internal)?;
    }
    Ok(())
}

/// Deletes a grant (read in this transaction) with its index rows; whether it existed.
pub(crate) fn delete_grant(t: &mut dyn Txn, row: &str) -> Result<bool, ServiceError> {
    let Some(g) = get_json::<Grant>(&*t, NS_GRANT, row).map_err(internal)? else {
        return Ok(false);
    };
    t.delete(NS_GRANT_BY_TOKEN, &g.token_sha256)
        .map_err(internal)?;
    if let Some(r) = &g.retiring {
        t.delete(NS_GRANT_BY_RETIRING, &retiring_index_key(&g, r))
            .map_err(internal)?;
    }
    t.delete(NS_GRANT, row).map_err(internal)
}

/// The grant whose token hashes to `token_sha256`, if any.
pub(crate) fn grant_by_token(
    r: &(impl Reader + ?Sized),
    token_sha256: &str,
) -> Result<Option<Grant>, ServiceError> {
    let Some(row) = r.get(NS_GRANT_BY_TOKEN, token_sha256).map_err(internal)? else {
        return Ok(None);
    };
    let row = String::from_utf8(row).map_err(internal)?;
    get_json(r, NS_GRANT, &row).map_err(internal)
}

/// Up to `limit` grants of `account` retirable by `retiring`, after the grant row key `after`.
pub(crate) fn grants_retirable_by(
    r: &(impl Reader + ?Sized),
    account: &str,
    retiring: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Grant>, ServiceError> {
    let prefix = format!("{account}/{retiring}\0");
    let start = after.map(|a| format!("{prefix}{a}"));
    let mut out = vec![];
    for (k, _) in r
        .scan(NS_GRANT_BY_RETIRING, &prefix, start.as_deref(), limit)
        .map_err(internal)?
    {
        if let Some(g) = get_json::<Grant>(r, NS_GRANT, &k[prefix.len()..]).map_err(internal)? {
            out.push(g);
        }
    }
    Ok(out)
}

impl Kms {
    /// Fills the indexes for aliases and grants written before they existed (once per data
    /// directory; later starts only read the marker).
    pub fn build_indexes(&self) -> Result<usize, ServiceError> {
        if self
            .store
            .get(NS_META, BUILT_MARKER)
            .map_err(internal)?
            .is_some()
        {
            return Ok(0);
        }
        self.tx(|t| {
            let mut n = 0;
            let mut after: Option<String> = None;
            loop {
                let rows: Vec<(String, Alias)> =
                    scan_json(&*t, NS_ALIAS, "", after.as_deref(), 1000).map_err(internal)?;
                let Some((last, _)) = rows.last() else { break };
                after = Some(last.clone());
                for (row, a) in rows {
                    let account = row.split('/').next().unwrap_or_default();
                    t.put(
                        NS_ALIAS_BY_KEY,
                        &alias_index_key(account, &a.target, &a.name),
                        b"",
                    )
                    .map_err(internal)?;
                    n += 1;
                }
            }
            let mut after: Option<String> = None;
            loop {
                let rows: Vec<(String, Grant)> =
                    scan_json(&*t, NS_GRANT, "", after.as_deref(), 1000).map_err(internal)?;
                let Some((last, _)) = rows.last() else { break };
                after = Some(last.clone());
                for (_, g) in rows {
                    put_grant(t, &g)?;
                    n += 1;
                }
            }
            t.put(NS_META, BUILT_MARKER, b"1").map_err(internal)?;
            Ok(n)
        })
    }
}
