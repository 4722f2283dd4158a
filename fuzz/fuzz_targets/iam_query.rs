//! IAM/STS Query-protocol parameter decoding: the gateway's form decoding
//! (`application/x-www-form-urlencoded` body plus URL query, `X-Amz-*` dropped) into
//! `coffer_iam::Params`, then every accessor the IAM/STS handlers use.
//!
//! Input: the form body; if it contains a 0x00 byte, what follows is the URL query.
//!
//! Checked: never panics; `opt` returns the last value of a repeated name; `list` returns
//! exactly the values of the `Name.member.N` keys (N a u32).
#![no_main]

use coffer_iam::Params;
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "Action",
    "Version",
    "UserName",
    "GroupName",
    "RoleName",
    "PolicyArn",
    "PolicyDocument",
    "PolicyName",
    "Path",
    "PathPrefix",
    "Marker",
    "MaxItems",
    "DurationSeconds",
    "RoleArn",
    "RoleSessionName",
    "SerialNumber",
    "TokenCode",
    "ExternalId",
    "Policy",
    "SetAsDefault",
    "OnlyAttached",
    "Scope",
    "AccessKeyId",
    "Status",
    "Password",
    "PasswordResetRequired",
    "NewPassword",
    "OldPassword",
    "AccountAlias",
    "VersionId",
    "PermissionsBoundary",
];
const LISTS: &[&str] = &[
    "Tags",
    "TagKeys",
    "PolicyArns",
    "TransitiveTagKeys",
    "ClientIDList",
];

fuzz_target!(|data: &[u8]| {
    let (body, query) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    pairs.extend(form_urlencoded::parse(query).into_owned());
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !k.starts_with("X-Amz-"))
        .collect();
    let p = Params::from_pairs(pairs.clone());

    for n in NAMES {
        let _ = p.opt(n);
        let _ = p.req(n);
        let _ = p.opt_int(n);
        let _ = p.opt_bool(n);
    }
    for l in LISTS {
        let _ = p.list(l);
        let _ = p.struct_list(l, &["Key", "Value"]);
        let _ = p.nested_list(l, 1, "Values");
        let _ = p.has_prefix(l);
    }
    for (k, _) in pairs.iter().take(32) {
        let last = pairs
            .iter()
            .rev()
            .find(|(k2, _)| k2 == k)
            .map(|(_, v)| v.as_str());
        assert_eq!(p.opt(k), last);
        let _ = p.opt_int(k);
        let _ = p.opt_bool(k);
        let _ = p.req(k).map_err(|e| e.message);
        if let Some((name, idx)) = k.split_once(".member.") {
            let list = p.list(name);
            // Reference: the surviving values of keys `name.member.N`, sorted by N.
            let prefix = format!("{name}.member.");
            let mut expect: Vec<(u32, String)> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for (k2, _) in pairs.iter().rev() {
                if let Some(i) = k2.strip_prefix(&prefix).and_then(|s| s.parse::<u32>().ok())
                    && seen.insert(k2.clone())
                {
                    expect.push((i, p.opt(k2).unwrap_or_default().to_owned()));
                }
            }
            expect.sort_by_key(|(i, _)| *i);
            let mut expect: Vec<String> = expect.into_iter().map(|(_, v)| v).collect();
            let mut got = list.clone();
            got.sort();
            expect.sort();
            assert_eq!(got, expect, "list({name:?})");
            let _ = p.struct_list(name, &["Key", "Value", idx]);
            if let Ok(n) = idx.split('.').next().unwrap_or("").parse::<usize>() {
                let _ = p.nested_list(name, n, "Values");
            }
        }
    }
});
