//! IAM operations over the Query protocol's decoded parameters.

use crate::authz::{base_context, parse_policy_arn};
use crate::model::*;
use crate::params::{invalid_input, validation};
use crate::{Iam, Params, internal, managed};
use base64::Engine;
use coffer_core::{Out, RequestContext, ServiceError, ids};
use coffer_policy::{Policy, PolicyKind};
use coffer_store::{Reader, Txn, get_json, put_json, scan_json};
use zeroize::Zeroizing;

type R = Result<Option<Out>, ServiceError>;

const MAX_USERS_PER_GROUP_LIST: usize = 1000;

fn no_such(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("NoSuchEntity", 404, msg)
}
fn exists(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("EntityAlreadyExists", 409, msg)
}
fn conflict(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("DeleteConflict", 409, msg)
}
fn limit(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("LimitExceeded", 409, msg)
}
fn malformed(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("MalformedPolicyDocument", 400, msg)
}
pub(crate) fn store_err(e: coffer_store::StoreError) -> ServiceError {
    internal(e)
}

/// Runs one write transaction whose closure may fail with a [`ServiceError`] (returned as is,
/// with nothing written) and returns the closure's value. Every read-modify-write re-reads what
/// it changes inside the closure: a copy read before the transaction may be stale.
pub(crate) fn tx<T>(
    iam: &Iam,
    f: impl FnMut(&mut dyn Txn) -> Result<T, ServiceError>,
) -> Result<T, ServiceError> {
    coffer_store::transact(&*iam.store, store_err, f)
}

/// Updates the JSON record `ns/key` inside `t` (see [`coffer_store::update_json`]); `missing`
/// when there is none.
fn update<T, V>(
    t: &mut dyn Txn,
    ns: &str,
    key: &str,
    missing: impl FnOnce() -> ServiceError,
    f: impl FnOnce(&mut T) -> Result<V, ServiceError>,
) -> Result<V, ServiceError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    coffer_store::update_json(t, ns, key, store_err, f)?.ok_or_else(missing)
}

fn get<T: serde::de::DeserializeOwned>(
    r: &(impl Reader + ?Sized),
    ns: &str,
    key: &str,
) -> Result<Option<T>, ServiceError> {
    get_json(r, ns, key).map_err(store_err)
}

fn put<T: serde::Serialize>(
    t: &mut dyn Txn,
    ns: &str,
    key: &str,
    v: &T,
) -> Result<(), ServiceError> {
    put_json(t, ns, key, v).map_err(store_err)
}

// ---------- validation ----------

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn check_name(field: &str, v: &str, max: usize) -> Result<(), ServiceError> {
    if v.is_empty() {
        return Err(validation(format!(
            "1 validation error detected: Value '' at '{field}' failed to satisfy constraint: Member must have length greater than or equal to 1"
        )));
    }
    if v.chars().count() > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        )));
    }
    if !v.chars().all(is_name_char) {
        return Err(validation(format!(
            "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )));
    }
    Ok(())
}

fn check_path(v: &str) -> Result<(), ServiceError> {
    let ok = v.len() <= 512
        && v.starts_with('/')
        && v.ends_with('/')
        && v.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{v}' at 'path' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)"
        )))
    }
}

fn path_of(p: &Params) -> Result<String, ServiceError> {
    let path = p.opt("Path").unwrap_or("/").to_string();
    check_path(&path)?;
    Ok(path)
}

fn tags_of(p: &Params, existing: &[Tag]) -> Result<Vec<Tag>, ServiceError> {
    let mut tags = existing.to_vec();
    for t in p.struct_list("Tags", &["Key", "Value"]) {
        let (Some(k), v) = (t[0].clone(), t[1].clone()) else {
            return Err(validation(
                "1 validation error detected: Value null at 'tags.member.key' failed to satisfy constraint: Member must not be null",
            ));
        };
        let v = v.unwrap_or_default();
        if k.is_empty() || k.chars().count() > 128 || k.starts_with("aws:") {
            return Err(validation(format!(
                "1 validation error detected: Value '{k}' at 'tags.member.key' failed to satisfy constraint: Member must have length less than or equal to 128"
            )));
        }
        let tag_char = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
        if !k.chars().all(tag_char) || !v.chars().all(tag_char) {
            return Err(validation(format!(
                "1 validation error detected: Value at 'tags.member.{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*",
                if k.chars().all(tag_char) {
                    "value"
                } else {
                    "key"
                }
            )));
        }
        if v.chars().count() > 256 {
            return Err(validation(
                "1 validation error detected: Value at 'tags.member.value' failed to satisfy constraint: Member must have length less than or equal to 256",
            ));
        }
        if let Some(e) = tags.iter_mut().find(|e| e.key.eq_ignore_ascii_case(&k)) {
            e.value = v;
        } else {
            tags.push(Tag { key: k, value: v });
        }
    }
    if tags.len() > 50 {
        return Err(limit("The number of tags has reached the maximum limit."));
    }
    Ok(tags)
}

fn tags_out(tags: &[Tag]) -> Out {
    Out::List(
        tags.iter()
            .map(|t| Out::Struct(vec![("Key", Out::s(&t.key)), ("Value", Out::s(&t.value))]))
            .collect(),
    )
}

/// Validates an identity (or trust) policy document and returns its canonical text.
fn check_policy(doc: &str, kind: PolicyKind) -> Result<(), ServiceError> {
    if doc.is_empty() || doc.chars().count() > 131072 {
        return Err(validation(
            "1 validation error detected: Value at 'policyDocument' failed to satisfy constraint: Member must have length less than or equal to 131072",
        ));
    }
    Policy::parse(doc, kind)
        .map(|_| ())
        .map_err(|e| malformed(e.message))
}

/// Policy documents travel URL-encoded (RFC 3986: unreserved characters stay as they are).
fn enc_doc(doc: &str) -> Out {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    Out::s(percent_encoding::utf8_percent_encode(doc, SET).to_string())
}

/// Most argon2id computations (19 MiB and tens of milliseconds each) running at once in the
/// process, whatever the number of concurrent password requests (CreateLoginProfile,
/// UpdateLoginProfile, ChangePassword, console sign-ins): memory and CPU stay bounded.
const ARGON2_AT_ONCE: usize = 4;
static ARGON2_RUNNING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Runs `f` once fewer than [`ARGON2_AT_ONCE`] argon2id computations are running.
fn with_argon2_slot<T>(f: impl FnOnce() -> T) -> T {
    struct Slot;
    impl Drop for Slot {
        fn drop(&mut self) {
            let (m, cv) = &ARGON2_RUNNING;
            *m.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            cv.notify_one();
        }
    }
    let (m, cv) = &ARGON2_RUNNING;
    let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
    while *n >= ARGON2_AT_ONCE {
        n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
    }
    *n += 1;
    drop(n);
    let _slot = Slot;
    f()
}

#[cfg(test)]
mod argon2_limit_tests {
    #[test]
    fn no_more_than_the_limit_run_at_once() {
        let most = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    super::with_argon2_slot(|| {
                        let now = *super::ARGON2_RUNNING.0.lock().unwrap();
                        most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(30));
                    })
                });
            }
        });
        let most = most.load(std::sync::atomic::Ordering::SeqCst);
        assert!(most <= super::ARGON2_AT_ONCE, "{most} at once");
        assert!(most >= 2, "they do run concurrently: {most}");
    }
}

pub(crate) fn hash_password(pw: &str) -> Result<String, ServiceError> {
    with_argon2_slot(|| hash_password_now(pw))
}

fn hash_password_now(pw: &str) -> Result<String, ServiceError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    coffer_crypto::random_fill(&mut salt).map_err(internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(internal)?;
    argon2::Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(internal)
}

/// Verifies a password against an argon2id hash; with no hash, burns the same work and fails.
pub(crate) fn verify_password(hash: Option<&str>, pw: &str) -> bool {
    with_argon2_slot(|| verify_password_now(hash, pw))
}

fn verify_password_now(hash: Option<&str>, pw: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1bJu5yXUbdpcq3VPyqmCk0PY0sgqLLKj2iCTSeM0WTo";
    let (h, real) = match hash {
        Some(h) => (h, true),
        None => (DUMMY, false),
    };
    let Ok(parsed) = PasswordHash::new(h) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(pw.as_bytes(), &parsed)
        .is_ok()
        && real
}

fn check_password_policy(pw: &str) -> Result<(), ServiceError> {
    if pw.chars().count() < 8 || pw.chars().count() > 128 {
        return Err(ServiceError::new(
            "PasswordPolicyViolation",
            400,
            "Password should have a minimum length of 8",
        ));
    }
    Ok(())
}

/// `DeleteConflict` while an entity still has inline or attached policies (AWS's order).
fn ensure_no_policies(h: &mut dyn PolicyHolder) -> Result<(), ServiceError> {
    if !h.inline().is_empty() {
        return Err(conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !h.attached().is_empty() {
        return Err(conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    Ok(())
}

// ---------- pagination ----------

/// The `IsTruncated`/`Marker` fields of a listing.
type PageFields = Vec<(&'static str, Out)>;

struct Page {
    max: usize,
    marker: Option<String>,
}

fn page_of(p: &Params) -> Result<Page, ServiceError> {
    let max = match p.opt_int("MaxItems")? {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(n) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value {}",
                if n < 1 {
                    "greater than or equal to 1"
                } else {
                    "less than or equal to 1000"
                }
            )));
        }
    };
    let marker = match p.opt("Marker") {
        None => None,
        Some(m) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(m)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid_input("Invalid Marker."))?,
        ),
    };
    Ok(Page { max, marker })
}

/// Scans `ns` under `prefix` with a filter, returning one page and the pagination fields.
fn list_page<T: serde::de::DeserializeOwned>(
    r: &dyn Reader,
    ns: &str,
    prefix: &str,
    page: &Page,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, PageFields), ServiceError> {
    let mut out = Vec::new();
    let mut after = page.marker.clone();
    let mut last_key = None;
    let mut truncated = false;
    'outer: loop {
        let rows: Vec<(String, T)> =
            scan_json(r, ns, prefix, after.as_deref(), 256).map_err(store_err)?;
        if rows.is_empty() {
            break;
        }
        for (k, v) in rows {
            after = Some(k.clone());
            if !keep(&v) {
                continue;
            }
            if out.len() == page.max {
                truncated = true;
                break 'outer;
            }
            last_key = Some(k);
            out.push(v);
        }
    }
    let mut fields = vec![("IsTruncated", Out::b(truncated))];
    if truncated && let Some(k) = last_key {
        fields.push((
            "Marker",
            Out::s(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.as_bytes())),
        ));
    }
    Ok((out, fields))
}

/// Pages over an in-memory list (attached policies, group members...).
fn vec_page<T: Clone>(
    items: &[T],
    page: &Page,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, PageFields) {
    let start = match &page.marker {
        Some(m) => items
            .iter()
            .position(|i| &key(i) == m)
            .map(|i| i + 1)
            .unwrap_or(items.len()),
        None => 0,
    };
    let end = (start + page.max).min(items.len());
    let slice = items[start..end].to_vec();
    let truncated = end < items.len();
    let mut fields = vec![("IsTruncated", Out::b(truncated))];
    if truncated && let Some(last) = slice.last() {
        fields.push((
            "Marker",
            Out::s(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key(last).as_bytes())),
        ));
    }
    (slice, fields)
}

// ---------- shapes ----------

fn user_out(u: &User) -> Out {
    let mut f = vec![
        ("Path", Out::s(&u.path)),
        ("UserName", Out::s(&u.name)),
        ("UserId", Out::s(&u.id)),
        ("Arn", Out::s(&u.arn)),
        ("CreateDate", Out::t(u.created)),
    ];
    if let Some(t) = u.password_last_used {
        f.push(("PasswordLastUsed", Out::t(t)));
    }
    if let Some(b) = &u.permissions_boundary {
        f.push((
            "PermissionsBoundary",
            Out::Struct(vec![
                ("PermissionsBoundaryType", Out::s("Policy")),
                ("PermissionsBoundaryArn", Out::s(b)),
            ]),
        ));
    }
    if !u.tags.is_empty() {
        f.push(("Tags", tags_out(&u.tags)));
    }
    Out::Struct(f)
}

fn group_out(g: &Group) -> Out {
    Out::Struct(vec![
        ("Path", Out::s(&g.path)),
        ("GroupName", Out::s(&g.name)),
        ("GroupId", Out::s(&g.id)),
        ("Arn", Out::s(&g.arn)),
        ("CreateDate", Out::t(g.created)),
    ])
}

fn role_out(r: &Role, with_details: bool) -> Out {
    let mut f = vec![
        ("Path", Out::s(&r.path)),
        ("RoleName", Out::s(&r.name)),
        ("RoleId", Out::s(&r.id)),
        ("Arn", Out::s(&r.arn)),
        ("CreateDate", Out::t(r.created)),
        ("AssumeRolePolicyDocument", enc_doc(&r.trust_policy)),
    ];
    if let Some(d) = &r.description {
        f.push(("Description", Out::s(d)));
    }
    f.push(("MaxSessionDuration", Out::n(r.max_session_duration)));
    if with_details {
        if let Some(b) = &r.permissions_boundary {
            f.push((
                "PermissionsBoundary",
                Out::Struct(vec![
                    ("PermissionsBoundaryType", Out::s("Policy")),
                    ("PermissionsBoundaryArn", Out::s(b)),
                ]),
            ));
        }
        if !r.tags.is_empty() {
            f.push(("Tags", tags_out(&r.tags)));
        }
        f.push(("RoleLastUsed", Out::Struct(vec![])));
    }
    Out::Struct(f)
}

struct PolicyView {
    name: String,
    id: String,
    arn: String,
    path: String,
    default_version: String,
    attachment_count: u32,
    created: i64,
    updated: i64,
    description: Option<String>,
    tags: Vec<Tag>,
}

fn policy_out(p: &PolicyView, with_description: bool) -> Out {
    let mut f = vec![
        ("PolicyName", Out::s(&p.name)),
        ("PolicyId", Out::s(&p.id)),
        ("Arn", Out::s(&p.arn)),
        ("Path", Out::s(&p.path)),
        ("DefaultVersionId", Out::s(&p.default_version)),
        ("AttachmentCount", Out::n(p.attachment_count)),
        ("PermissionsBoundaryUsageCount", Out::n(0)),
        ("IsAttachable", Out::b(true)),
    ];
    if with_description && let Some(d) = &p.description {
        f.push(("Description", Out::s(d)));
    }
    f.push(("CreateDate", Out::t(p.created)));
    f.push(("UpdateDate", Out::t(p.updated)));
    if !p.tags.is_empty() {
        f.push(("Tags", tags_out(&p.tags)));
    }
    Out::Struct(f)
}

fn attached_out(arns: &[String]) -> Out {
    Out::List(
        arns.iter()
            .map(|a| {
                let name = a.rsplit('/').next().unwrap_or(a);
                Out::Struct(vec![("PolicyName", Out::s(name)), ("PolicyArn", Out::s(a))])
            })
            .collect(),
    )
}

/// Which entity a policy operation targets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Entity {
    User,
    Group,
    Role,
}

impl Entity {
    fn ns(self) -> &'static str {
        match self {
            Entity::User => NS_USER,
            Entity::Group => NS_GROUP,
            Entity::Role => NS_ROLE,
        }
    }
    fn param(self) -> &'static str {
        match self {
            Entity::User => "UserName",
            Entity::Group => "GroupName",
            Entity::Role => "RoleName",
        }
    }
    fn word(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Group => "group",
            Entity::Role => "role",
        }
    }
    fn not_found(self, name: &str) -> ServiceError {
        match self {
            Entity::User => no_such(format!("The user with name {name} cannot be found.")),
            Entity::Group => no_such(format!("The group with name {name} cannot be found.")),
            Entity::Role => no_such(format!("The role with name {name} cannot be found.")),
        }
    }
    /// Aggregate inline policy size quota (non-whitespace characters).
    fn inline_quota(self) -> usize {
        match self {
            Entity::User => 2048,
            Entity::Group => 5120,
            Entity::Role => 10240,
        }
    }
}

impl Iam {
    fn arn(&self, acct: &str, kind: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{acct}:{kind}{path}{name}")
    }

    /// The user an operation targets: `UserName`, or the caller when omitted (GetUser,
    /// CreateAccessKey, ListAccessKeys...).
    fn target_user_name(
        &self,
        ctx: &RequestContext,
        p: &Params,
    ) -> Result<Option<String>, ServiceError> {
        match p.opt("UserName") {
            Some(n) => {
                check_name("userName", n, 128)?;
                Ok(Some(n.to_string()))
            }
            None => Ok(ctx.principal.username().map(str::to_string)),
        }
    }

    fn authorize(
        &self,
        ctx: &RequestContext,
        action: &str,
        resource: &str,
    ) -> Result<(), ServiceError> {
        let c = base_context(ctx);
        self.authorizer()
            .authorize(ctx, action, resource, None, &c)?
            .map_err(|d| d.to_query_error())
    }

    /// Handles an IAM action. Unknown actions answer `InvalidAction`.
    pub fn handle(&self, ctx: &RequestContext, action: &str, p: &Params) -> R {
        let result = self.dispatch(ctx, action, p);
        // A caller that may not act on an entity learns nothing about whether it exists: decide
        // on the ARN the request names before saying NoSuchEntity.
        if let Err(e) = &result
            && e.code == "NoSuchEntity"
        {
            let resource = self.named_resource(ctx, action, p);
            self.authorize(ctx, &format!("iam:{action}"), &resource)?;
        }
        result
    }

    /// The ARN a request names, as far as the parameters tell (path `/` when unknown).
    fn named_resource(&self, ctx: &RequestContext, action: &str, p: &Params) -> String {
        let a = &ctx.principal.account;
        let pick =
            |kind: &str, param: &str| p.opt(param).map(|n| format!("arn:aws:iam::{a}:{kind}/{n}"));
        let by_kind = if action.contains("Group") {
            pick("group", "GroupName")
        } else if action.contains("Role") {
            pick("role", "RoleName")
        } else {
            None
        };
        by_kind
            .or_else(|| pick("user", "UserName"))
            .or_else(|| p.opt("PolicyArn").map(str::to_string))
            .unwrap_or_else(|| ctx.principal.arn.clone())
    }

    fn dispatch(&self, ctx: &RequestContext, action: &str, p: &Params) -> R {
        let acct = ctx.principal.account.clone();
        let a = acct.as_str();
        match action {
            "CreateUser" => self.create_user(ctx, a, p),
            "GetUser" => self.get_user(ctx, a, p),
            "ListUsers" => self.list_users(ctx, a, p),
            "UpdateUser" => self.update_user(ctx, a, p),
            "DeleteUser" => self.delete_user(ctx, a, p),
            "TagUser" => self.tag_entity(ctx, a, p, Entity::User, true),
            "UntagUser" => self.tag_entity(ctx, a, p, Entity::User, false),
            "ListUserTags" => self.list_tags(ctx, a, p, Entity::User),
            "TagRole" => self.tag_entity(ctx, a, p, Entity::Role, true),
            "UntagRole" => self.tag_entity(ctx, a, p, Entity::Role, false),
            "ListRoleTags" => self.list_tags(ctx, a, p, Entity::Role),
            "CreateAccessKey" => self.create_access_key(ctx, a, p),
            "ListAccessKeys" => self.list_access_keys(ctx, a, p),
            "UpdateAccessKey" => self.update_access_key(ctx, a, p),
            "DeleteAccessKey" => self.delete_access_key(ctx, a, p),
            "GetAccessKeyLastUsed" => self.access_key_last_used(ctx, a, p),
            "ChangePassword" => self.change_password(ctx, a, p),
            "CreateLoginProfile" => self.login_profile(ctx, a, p, "create"),
            "GetLoginProfile" => self.login_profile(ctx, a, p, "get"),
            "UpdateLoginProfile" => self.login_profile(ctx, a, p, "update"),
            "DeleteLoginProfile" => self.login_profile(ctx, a, p, "delete"),
            "CreatePolicy" => self.create_policy(ctx, a, p),
            "GetPolicy" => self.get_policy(ctx, a, p),
            "DeletePolicy" => self.delete_policy(ctx, a, p),
            "ListPolicies" => self.list_policies(ctx, a, p),
            "CreatePolicyVersion" => self.create_policy_version(ctx, a, p),
            "GetPolicyVersion" => self.get_policy_version(ctx, a, p),
            "ListPolicyVersions" => self.list_policy_versions(ctx, a, p),
            "DeletePolicyVersion" => self.delete_policy_version(ctx, a, p),
            "SetDefaultPolicyVersion" => self.set_default_version(ctx, a, p),
            "AttachUserPolicy" => self.attach(ctx, a, p, Entity::User, true),
            "DetachUserPolicy" => self.attach(ctx, a, p, Entity::User, false),
            "AttachGroupPolicy" => self.attach(ctx, a, p, Entity::Group, true),
            "DetachGroupPolicy" => self.attach(ctx, a, p, Entity::Group, false),
            "AttachRolePolicy" => self.attach(ctx, a, p, Entity::Role, true),
            "DetachRolePolicy" => self.attach(ctx, a, p, Entity::Role, false),
            "ListAttachedUserPolicies" => self.list_attached(ctx, a, p, Entity::User),
            "ListAttachedGroupPolicies" => self.list_attached(ctx, a, p, Entity::Group),
            "ListAttachedRolePolicies" => self.list_attached(ctx, a, p, Entity::Role),
            "PutUserPolicy" => self.put_inline(ctx, a, p, Entity::User),
            "PutGroupPolicy" => self.put_inline(ctx, a, p, Entity::Group),
            "PutRolePolicy" => self.put_inline(ctx, a, p, Entity::Role),
            "GetUserPolicy" => self.get_inline(ctx, a, p, Entity::User),
            "GetGroupPolicy" => self.get_inline(ctx, a, p, Entity::Group),
            "GetRolePolicy" => self.get_inline(ctx, a, p, Entity::Role),
            "DeleteUserPolicy" => self.delete_inline(ctx, a, p, Entity::User),
            "DeleteGroupPolicy" => self.delete_inline(ctx, a, p, Entity::Group),
            "DeleteRolePolicy" => self.delete_inline(ctx, a, p, Entity::Role),
            "ListUserPolicies" => self.list_inline(ctx, a, p, Entity::User),
            "ListGroupPolicies" => self.list_inline(ctx, a, p, Entity::Group),
            "ListRolePolicies" => self.list_inline(ctx, a, p, Entity::Role),
            "CreateGroup" => self.create_group(ctx, a, p),
            "GetGroup" => self.get_group(ctx, a, p),
            "ListGroups" => self.list_groups(ctx, a, p),
            "DeleteGroup" => self.delete_group(ctx, a, p),
            "AddUserToGroup" => self.membership(ctx, a, p, true),
            "RemoveUserFromGroup" => self.membership(ctx, a, p, false),
            "ListGroupsForUser" => self.groups_for_user(ctx, a, p),
            "CreateRole" => self.create_role(ctx, a, p),
            "GetRole" => self.get_role(ctx, a, p),
            "ListRoles" => self.list_roles(ctx, a, p),
            "DeleteRole" => self.delete_role(ctx, a, p),
            "UpdateRole" => self.update_role(ctx, a, p),
            "UpdateAssumeRolePolicy" => self.update_trust(ctx, a, p),
            "SimulatePrincipalPolicy" => self.simulate(ctx, a, p),
            "CreateAccountAlias" => self.account_alias(ctx, a, p, true),
            "DeleteAccountAlias" => self.account_alias(ctx, a, p, false),
            "ListAccountAliases" => self.list_account_aliases(ctx, a),
            _ => Err(ServiceError::new(
                "InvalidAction",
                400,
                format!("Could not find operation {action} for version 2010-05-08"),
            )),
        }
    }

    // ---------- account alias ----------

    /// Create/DeleteAccountAlias. An account has at most one alias: a new one replaces it.
    fn account_alias(&self, ctx: &RequestContext, a: &str, p: &Params, create: bool) -> R {
        let alias = p.req("AccountAlias")?;
        let ok = (3..=63).contains(&alias.len())
            && alias
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !alias.starts_with('-')
            && !alias.ends_with('-')
            && !alias.contains("--");
        if !ok {
            return Err(validation(format!(
                "1 validation error detected: Value '{alias}' at 'accountAlias' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-z0-9]([a-z0-9]|-(?!-)){{1,61}}[a-z0-9]$"
            )));
        }
        let verb = if create {
            "iam:CreateAccountAlias"
        } else {
            "iam:DeleteAccountAlias"
        };
        self.authorize(ctx, verb, "*")?;
        let acct_key = format!("account/{a}");
        let alias_key = format!("alias/{alias}");
        // The current alias and the new alias's owner are read in the transaction that changes
        // them: two concurrent changes must not both act on the same old alias.
        tx(self, |t| {
            let current: Option<String> = get(t, NS_ACCOUNT_ALIAS, &acct_key)?;
            if create {
                let owner: Option<String> = get(t, NS_ACCOUNT_ALIAS, &alias_key)?;
                match owner {
                    Some(o) if o == a => return Ok(()),
                    Some(_) => {
                        return Err(ServiceError::new(
                            "EntityAlreadyExists",
                            409,
                            format!("The account alias {alias} already exists."),
                        ));
                    }
                    None => {}
                }
                if let Some(old) = &current {
                    t.delete(NS_ACCOUNT_ALIAS, &format!("alias/{old}"))
                        .map_err(store_err)?;
                }
                put(t, NS_ACCOUNT_ALIAS, &alias_key, &a.to_string())?;
                put(t, NS_ACCOUNT_ALIAS, &acct_key, &alias.to_string())
            } else {
                if current.as_deref() != Some(alias) {
                    return Err(ServiceError::new(
                        "NoSuchEntity",
                        404,
                        format!("The account alias {alias} cannot be found."),
                    ));
                }
                t.delete(NS_ACCOUNT_ALIAS, &alias_key).map_err(store_err)?;
                t.delete(NS_ACCOUNT_ALIAS, &acct_key).map_err(store_err)?;
                Ok(())
            }
        })?;
        Ok(None)
    }

    fn list_account_aliases(&self, ctx: &RequestContext, a: &str) -> R {
        self.authorize(ctx, "iam:ListAccountAliases", "*")?;
        let current: Option<String> =
            get_json(self.reader(), NS_ACCOUNT_ALIAS, &format!("account/{a}")).map_err(internal)?;
        Ok(Some(Out::Struct(vec![
            (
                "AccountAliases",
                Out::List(current.into_iter().map(Out::s).collect()),
            ),
            ("IsTruncated", Out::b(false)),
        ])))
    }

    // ---------- users ----------

    fn load<T: serde::de::DeserializeOwned>(
        &self,
        e: Entity,
        a: &str,
        name: &str,
    ) -> Result<T, ServiceError> {
        get(self.reader(), e.ns(), &name_key(a, name))?.ok_or_else(|| e.not_found(name))
    }

    fn create_user(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("UserName")?;
        check_name("userName", name, 64)?;
        let path = path_of(p)?;
        let tags = tags_of(p, &[])?;
        let arn = self.arn(a, "user", &path, name);
        self.authorize(ctx, "iam:CreateUser", &arn)?;
        let boundary = p.opt("PermissionsBoundary").map(str::to_string);
        if let Some(b) = &boundary {
            self.check_policy_arn(b)?;
        }
        let u = User {
            name: name.to_string(),
            path,
            id: ids::unique_id("AIDA"),
            arn,
            created: self.now(),
            tags,
            attached: vec![],
            inline: Default::default(),
            groups: vec![],
            access_keys: vec![],
            login_profile: None,
            permissions_boundary: boundary,
            password_last_used: None,
        };
        let key = name_key(a, name);
        tx(self, |t| {
            if t.get(NS_USER, &key).map_err(store_err)?.is_some() {
                return Err(exists(format!("User with name {name} already exists.")));
            }
            if t.scan(NS_USER, &format!("{a}/"), None, 5001)
                .map_err(store_err)?
                .len()
                >= 5000
            {
                return Err(limit("Cannot exceed quota for UsersPerAccount: 5000"));
            }
            put(t, NS_USER, &key, &u)
        })?;
        Ok(Some(Out::Struct(vec![("User", user_out(&u))])))
    }

    fn get_user(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let Some(name) = self.target_user_name(ctx, p)? else {
            // Root asking about itself.
            self.authorize(ctx, "iam:GetUser", &ctx.principal.arn)?;
            let acct: Option<Account> = get(self.reader(), NS_ACCOUNT, a)?;
            return Ok(Some(Out::Struct(vec![(
                "User",
                Out::Struct(vec![
                    ("UserId", Out::s(a)),
                    ("Arn", Out::s(coffer_core::root_arn(a))),
                    ("CreateDate", Out::t(acct.map(|x| x.created).unwrap_or(0))),
                ]),
            )])));
        };
        let u: User = self.load(Entity::User, a, &name)?;
        self.authorize(ctx, "iam:GetUser", &u.arn)?;
        Ok(Some(Out::Struct(vec![("User", user_out(&u))])))
    }

    fn list_users(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        self.authorize(ctx, "iam:ListUsers", &format!("arn:aws:iam::{a}:user/"))?;
        let prefix = p.opt("PathPrefix").unwrap_or("/").to_string();
        let page = page_of(p)?;
        let (users, mut fields) =
            list_page::<User>(self.reader(), NS_USER, &format!("{a}/"), &page, |u| {
                u.path.starts_with(&prefix)
            })?;
        let mut f = vec![("Users", Out::List(users.iter().map(user_out).collect()))];
        f.append(&mut fields);
        Ok(Some(Out::Struct(f)))
    }

    fn update_user(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("UserName")?;
        check_name("userName", name, 64)?;
        let new_name = p.opt("NewUserName");
        if let Some(n) = new_name {
            check_name("newUserName", n, 64)?;
        }
        let new_path = p.opt("NewPath");
        if let Some(np) = new_path {
            check_path(np)?;
        }
        let u: User = self.load(Entity::User, a, name)?;
        self.authorize(ctx, "iam:UpdateUser", &u.arn)?;
        tx(self, |t| {
            let mut u: User =
                get(t, NS_USER, &name_key(a, name))?.ok_or_else(|| Entity::User.not_found(name))?;
            let old_key = name_key(a, &u.name);
            let old_name = u.name.clone();
            if let Some(np) = new_path {
                u.path = np.to_string();
            }
            if let Some(n) = new_name {
                let nk = name_key(a, n);
                if nk != old_key && t.get(NS_USER, &nk).map_err(store_err)?.is_some() {
                    return Err(exists(format!("User with name {n} already exists.")));
                }
                u.name = n.to_string();
            }
            u.arn = self.arn(a, "user", &u.path, &u.name);
            // Keep back-references in step: group memberships and access key owners.
            if u.name != old_name {
                for g in &u.groups {
                    if let Some(mut grp) = get::<Group>(t, NS_GROUP, &name_key(a, g))? {
                        for m in grp.members.iter_mut() {
                            if m.eq_ignore_ascii_case(&old_name) {
                                *m = u.name.clone();
                            }
                        }
                        put(t, NS_GROUP, &name_key(a, g), &grp)?;
                    }
                }
                for k in &u.access_keys {
                    if let Some(mut ak) = get::<AccessKey>(t, NS_ACCESS_KEY, k)? {
                        ak.owner = KeyOwner::User(u.name.clone());
                        put(t, NS_ACCESS_KEY, k, &ak)?;
                    }
                }
            }
            t.delete(NS_USER, &old_key).map_err(store_err)?;
            put(t, NS_USER, &name_key(a, &u.name), &u)
        })?;
        Ok(None)
    }

    fn delete_user(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("UserName")?;
        check_name("userName", name, 64)?;
        let u: User = self.load(Entity::User, a, name)?;
        self.authorize(ctx, "iam:DeleteUser", &u.arn)?;
        tx(self, |t| {
            let mut u: User =
                get(t, NS_USER, &name_key(a, name))?.ok_or_else(|| Entity::User.not_found(name))?;
            if u.login_profile.is_some() {
                return Err(conflict(
                    "Cannot delete entity, must delete login profile first.",
                ));
            }
            if !u.access_keys.is_empty() {
                return Err(conflict(
                    "Cannot delete entity, must delete access keys first.",
                ));
            }
            ensure_no_policies(&mut u)?;
            if !u.groups.is_empty() {
                return Err(conflict(
                    "Cannot delete entity, must remove users from group first.",
                ));
            }
            t.delete(NS_USER, &name_key(a, name)).map_err(store_err)?;
            Ok(())
        })?;
        Ok(None)
    }

    fn tag_entity(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity, add: bool) -> R {
        let name = p.req(e.param())?;
        check_name(
            if e == Entity::User {
                "userName"
            } else {
                "roleName"
            },
            name,
            64,
        )?;
        let verb = match (e, add) {
            (Entity::User, true) => "iam:TagUser",
            (Entity::User, false) => "iam:UntagUser",
            (_, true) => "iam:TagRole",
            (_, false) => "iam:UntagRole",
        };
        let keys = p.list("TagKeys");
        tx(self, |t| {
            let key = name_key(a, name);
            macro_rules! apply {
                ($ty:ty) => {{
                    let mut x: $ty = get(t, e.ns(), &key)?.ok_or_else(|| e.not_found(name))?;
                    self.authorize(ctx, verb, &x.arn)?;
                    if add {
                        x.tags = tags_of(p, &x.tags)?;
                    } else {
                        x.tags.retain(|tg| !keys.iter().any(|k| k == &tg.key));
                    }
                    put(t, e.ns(), &key, &x)
                }};
            }
            match e {
                Entity::User => apply!(User),
                _ => apply!(Role),
            }
        })?;
        Ok(None)
    }

    fn list_tags(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity) -> R {
        let name = p.req(e.param())?;
        let (arn, tags) = match e {
            Entity::User => {
                let u: User = self.load(e, a, name)?;
                (u.arn, u.tags)
            }
            _ => {
                let r: Role = self.load(e, a, name)?;
                (r.arn, r.tags)
            }
        };
        let verb = if e == Entity::User {
            "iam:ListUserTags"
        } else {
            "iam:ListRoleTags"
        };
        self.authorize(ctx, verb, &arn)?;
        Ok(Some(Out::Struct(vec![
            ("Tags", tags_out(&tags)),
            ("IsTruncated", Out::b(false)),
        ])))
    }

    // ---------- access keys ----------

    fn create_access_key(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let target = self.target_user_name(ctx, p)?;
        let arn = match &target {
            Some(n) => self.load::<User>(Entity::User, a, n)?.arn,
            None => coffer_core::root_arn(a),
        };
        self.authorize(ctx, "iam:CreateAccessKey", &arn)?;
        let id = ids::access_key_id("AKIA");
        let secret = Zeroizing::new(ids::secret_access_key());
        let wrapped = self.wrap_secret("iam-secret", &id, &secret)?;
        let created = self.now();
        // The owner's key list (and its quota) is read and extended in the transaction that
        // stores the key, with the owner's name as stored there.
        let rec = tx(self, |t| {
            let owner = match &target {
                Some(n) => update(
                    t,
                    NS_USER,
                    &name_key(a, n),
                    || Entity::User.not_found(n),
                    |u: &mut User| {
                        if u.access_keys.len() >= 2 {
                            return Err(limit("Cannot exceed quota for AccessKeysPerUser: 2"));
                        }
                        u.access_keys.push(id.clone());
                        Ok(KeyOwner::User(u.name.clone()))
                    },
                )?,
                None => KeyOwner::Root,
            };
            let rec = AccessKey {
                id: id.clone(),
                account: a.to_string(),
                owner,
                status: "Active".into(),
                created,
                secret: wrapped.clone(),
                last_used: None,
            };
            put(t, NS_ACCESS_KEY, &id, &rec)?;
            Ok(rec)
        })?;
        let mut f = vec![];
        if let KeyOwner::User(n) = &rec.owner {
            f.push(("UserName", Out::s(n)));
        }
        f.extend([
            ("AccessKeyId", Out::s(&id)),
            ("Status", Out::s("Active")),
            ("SecretAccessKey", Out::s(secret.as_str())),
            ("CreateDate", Out::t(rec.created)),
        ]);
        Ok(Some(Out::Struct(vec![("AccessKey", Out::Struct(f))])))
    }

    fn keys_of(
        &self,
        a: &str,
        user: Option<&str>,
    ) -> Result<(String, Vec<AccessKey>), ServiceError> {
        match user {
            Some(n) => {
                let u: User = self.load(Entity::User, a, n)?;
                let mut keys = vec![];
                for k in &u.access_keys {
                    if let Some(ak) = get::<AccessKey>(self.reader(), NS_ACCESS_KEY, k)? {
                        keys.push(ak);
                    }
                }
                Ok((u.arn, keys))
            }
            None => {
                let all: Vec<(String, AccessKey)> =
                    scan_json(self.reader(), NS_ACCESS_KEY, "", None, 10_000).map_err(store_err)?;
                Ok((
                    coffer_core::root_arn(a),
                    all.into_iter()
                        .map(|(_, k)| k)
                        .filter(|k| k.account == a && k.owner == KeyOwner::Root)
                        .collect(),
                ))
            }
        }
    }

    fn list_access_keys(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let target = self.target_user_name(ctx, p)?;
        let (arn, keys) = self.keys_of(a, target.as_deref())?;
        self.authorize(ctx, "iam:ListAccessKeys", &arn)?;
        let items = keys
            .iter()
            .map(|k| {
                let mut f = vec![];
                if let KeyOwner::User(n) = &k.owner {
                    f.push(("UserName", Out::s(n)));
                }
                f.extend([
                    ("AccessKeyId", Out::s(&k.id)),
                    ("Status", Out::s(&k.status)),
                    ("CreateDate", Out::t(k.created)),
                ]);
                Out::Struct(f)
            })
            .collect();
        Ok(Some(Out::Struct(vec![
            ("AccessKeyMetadata", Out::List(items)),
            ("IsTruncated", Out::b(false)),
        ])))
    }

    /// Finds an access key of the target user (or root) by id.
    fn owned_key(
        &self,
        ctx: &RequestContext,
        a: &str,
        p: &Params,
        action: &str,
    ) -> Result<AccessKey, ServiceError> {
        let id = p.req("AccessKeyId")?;
        if id.len() < 16
            || id.len() > 128
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{id}' at 'accessKeyId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w]+"
            )));
        }
        let target = self.target_user_name(ctx, p)?;
        let (arn, keys) = self.keys_of(a, target.as_deref())?;
        self.authorize(ctx, action, &arn)?;
        keys.into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| no_such(format!("The Access Key with id {id} cannot be found.")))
    }

    fn update_access_key(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let status = p.req("Status")?;
        if status != "Active" && status != "Inactive" {
            return Err(validation(
                "1 validation error detected: Value at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]",
            ));
        }
        let k = self.owned_key(ctx, a, p, "iam:UpdateAccessKey")?;
        let missing = || no_such(format!("The Access Key with id {} cannot be found.", k.id));
        tx(self, |t| {
            update(t, NS_ACCESS_KEY, &k.id, missing, |rec: &mut AccessKey| {
                rec.status = status.to_string();
                Ok(())
            })
        })?;
        Ok(None)
    }

    fn delete_access_key(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let k = self.owned_key(ctx, a, p, "iam:DeleteAccessKey")?;
        let own_root_key = k.owner == KeyOwner::Root && k.id == ctx.principal.access_key_id;
        tx(self, |t| {
            // The key, its owner and the root's other keys as they are now: a concurrent rename
            // of the owner or deletion of another root key must be seen.
            let rec: AccessKey = get(t, NS_ACCESS_KEY, &k.id)?.ok_or_else(|| {
                no_such(format!("The Access Key with id {} cannot be found.", k.id))
            })?;
            if own_root_key {
                // Coffer's only way in for the account is the root key: keep one.
                let keys: Vec<(String, AccessKey)> =
                    scan_json(&*t, NS_ACCESS_KEY, "", None, 10_000).map_err(store_err)?;
                let root_keys = keys
                    .iter()
                    .filter(|(_, x)| x.account == a && x.owner == KeyOwner::Root)
                    .count();
                if root_keys <= 1 {
                    return Err(conflict(
                        "Cannot delete the root user's last access key: Coffer would have no way back into the account.",
                    ));
                }
            }
            if let KeyOwner::User(n) = &rec.owner {
                coffer_store::update_json(
                    t,
                    NS_USER,
                    &name_key(a, n),
                    store_err,
                    |u: &mut User| {
                        u.access_keys.retain(|x| x != &k.id);
                        Ok(())
                    },
                )?;
            }
            t.delete(NS_ACCESS_KEY, &k.id).map_err(store_err)?;
            t.delete(NS_KEY_LAST_USED, &k.id).map_err(store_err)?;
            Ok(())
        })?;
        Ok(None)
    }

    fn access_key_last_used(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let id = p.req("AccessKeyId")?;
        let k: AccessKey = get(self.reader(), NS_ACCESS_KEY, id)?
            .filter(|k: &AccessKey| k.account == a)
            .ok_or_else(|| no_such(format!("The Access Key with id {id} cannot be found.")))?;
        let arn = match &k.owner {
            KeyOwner::User(n) => self.load::<User>(Entity::User, a, n)?.arn,
            KeyOwner::Root => coffer_core::root_arn(a),
        };
        self.authorize(ctx, "iam:GetAccessKeyLastUsed", &arn)?;
        // Kept apart from the key record since 2026-12; older records carry it inline.
        let last_used: Option<LastUsed> =
            get(self.reader(), NS_KEY_LAST_USED, id)?.or_else(|| k.last_used.clone());
        let last = match &last_used {
            Some(l) => Out::Struct(vec![
                ("LastUsedDate", Out::t(l.date)),
                ("ServiceName", Out::s(&l.service)),
                ("Region", Out::s(&l.region)),
            ]),
            None => Out::Struct(vec![
                ("ServiceName", Out::s("N/A")),
                ("Region", Out::s("N/A")),
            ]),
        };
        let mut f = vec![];
        if let KeyOwner::User(n) = &k.owner {
            f.push(("UserName", Out::s(n)));
        }
        f.push(("AccessKeyLastUsed", last));
        Ok(Some(Out::Struct(f)))
    }

    // ---------- login profiles ----------

    fn login_profile(&self, ctx: &RequestContext, a: &str, p: &Params, op: &str) -> R {
        let name = match self.target_user_name(ctx, p)? {
            Some(n) => n,
            None => {
                return Err(validation(
                    "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null",
                ));
            }
        };
        let u: User = self.load(Entity::User, a, &name)?;
        let action = match op {
            "create" => "iam:CreateLoginProfile",
            "get" => "iam:GetLoginProfile",
            "update" => "iam:UpdateLoginProfile",
            _ => "iam:DeleteLoginProfile",
        };
        self.authorize(ctx, action, &u.arn)?;
        let missing = || {
            no_such(format!(
                "Login Profile for User {} cannot be found.",
                u.name
            ))
        };
        let reset = p.opt_bool("PasswordResetRequired")?;
        let new_hash = match p.opt("Password") {
            Some(pw) => {
                check_password_policy(pw)?;
                Some(hash_password(pw)?)
            }
            None if op == "create" => {
                return Err(validation(
                    "1 validation error detected: Value null at 'password' failed to satisfy constraint: Member must not be null",
                ));
            }
            None => None,
        };
        let now = self.now();
        // The profile is read, checked and changed in one transaction (AWS's errors decided on
        // what is stored when it commits).
        let result = tx(self, |t| {
            let key = name_key(a, &name);
            let mut u: User =
                get(t, NS_USER, &key)?.ok_or_else(|| Entity::User.not_found(&name))?;
            match op {
                "create" => {
                    if u.login_profile.is_some() {
                        return Err(exists(format!(
                            "Login Profile for user {} already exists.",
                            u.name
                        )));
                    }
                    u.login_profile = Some(LoginProfile {
                        hash: new_hash.clone().unwrap_or_default(),
                        created: now,
                        reset_required: reset.unwrap_or(false),
                    });
                }
                "get" => {
                    let lp = u.login_profile.as_ref().ok_or_else(missing)?;
                    return Ok(Some((lp.created, lp.reset_required)));
                }
                "update" => {
                    let lp = u.login_profile.as_mut().ok_or_else(missing)?;
                    if let Some(h) = &new_hash {
                        lp.hash = h.clone();
                    }
                    if let Some(r) = reset {
                        lp.reset_required = r;
                    }
                }
                _ => {
                    if u.login_profile.take().is_none() {
                        return Err(missing());
                    }
                }
            }
            put(t, NS_USER, &key, &u)?;
            Ok(u.login_profile
                .as_ref()
                .map(|lp| (lp.created, lp.reset_required)))
        })?;
        match (op, result) {
            ("create" | "get", Some((created, reset))) => Ok(Some(Out::Struct(vec![(
                "LoginProfile",
                Out::Struct(vec![
                    ("UserName", Out::s(&u.name)),
                    ("CreateDate", Out::t(created)),
                    ("PasswordResetRequired", Out::b(reset)),
                ]),
            )]))),
            _ => Ok(None),
        }
    }

    /// ChangePassword: an IAM user changes its own console password (clearing a required reset).
    fn change_password(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let old = Zeroizing::new(p.req("OldPassword")?.to_string());
        let new = Zeroizing::new(p.req("NewPassword")?.to_string());
        let name = match &ctx.principal.kind {
            coffer_core::PrincipalKind::User { name, .. } => name.clone(),
            coffer_core::PrincipalKind::UserSession {
                user_name: Some(n), ..
            } => n.clone(),
            _ => {
                return Err(ServiceError::new(
                    "InvalidUserType",
                    400,
                    "Only IAM users can change their password with this operation.",
                ));
            }
        };
        self.authorize(ctx, "iam:ChangePassword", &ctx.principal.arn)?;
        let u: User = self.load(Entity::User, a, &name)?;
        let Some(lp) = &u.login_profile else {
            return Err(no_such(format!(
                "Login Profile for User {} cannot be found.",
                u.name
            )));
        };
        if !verify_password(Some(&lp.hash), &old) {
            return Err(ServiceError::new(
                "InvalidUserType",
                400,
                "The old password is incorrect.",
            ));
        }
        let checked = lp.hash.clone();
        check_password_policy(&new)?;
        let hash = hash_password(&new)?;
        tx(self, |t| {
            let key = name_key(a, &name);
            update(
                t,
                NS_USER,
                &key,
                || Entity::User.not_found(&name),
                |u: &mut User| {
                    let lp = u.login_profile.as_mut().ok_or_else(|| {
                        no_such(format!("Login Profile for User {name} cannot be found."))
                    })?;
                    // The old password was checked against the hash read before: if the password
                    // changed since (UpdateLoginProfile, another ChangePassword), check it again
                    // against the one it would replace, or that change would be lost.
                    if lp.hash != checked && !verify_password(Some(&lp.hash), &old) {
                        return Err(ServiceError::new(
                            "InvalidUserType",
                            400,
                            "The old password is incorrect.",
                        ));
                    }
                    lp.hash = hash.clone();
                    lp.reset_required = false;
                    Ok(())
                },
            )
        })?;
        Ok(None)
    }

    // ---------- managed policies ----------

    fn check_policy_arn(&self, arn: &str) -> Result<(), ServiceError> {
        if managed::by_arn(arn).is_some() {
            return Ok(());
        }
        if parse_policy_arn(arn).is_none() {
            return Err(validation("Invalid ARN:  Could not be parsed!"));
        }
        if self.authorizer().managed_document(arn)?.is_none() {
            return Err(no_such(format!(
                "Policy {arn} does not exist or is not attachable."
            )));
        }
        Ok(())
    }

    fn view_of(&self, a: &str, arn: &str) -> Result<PolicyView, ServiceError> {
        if let Some(m) = managed::by_arn(arn) {
            let count: u32 =
                get(self.reader(), NS_AWS_ATTACH, &format!("{a}/{}", m.name))?.unwrap_or(0);
            return Ok(PolicyView {
                name: m.name.into(),
                id: m.id.into(),
                arn: m.arn(),
                path: "/".into(),
                default_version: m.version.into(),
                attachment_count: count,
                created: m.created,
                updated: m.updated,
                description: Some(m.description.into()),
                tags: vec![],
            });
        }
        let mp = self.customer_policy(a, arn)?;
        Ok(view_of_customer(&mp))
    }

    fn customer_policy(&self, a: &str, arn: &str) -> Result<ManagedPolicy, ServiceError> {
        let (acct, name) = parse_policy_arn(arn)
            .ok_or_else(|| validation("Invalid ARN:  Could not be parsed!"))?;
        if acct != a {
            return Err(no_such(format!("Policy {arn} was not found.")));
        }
        get::<ManagedPolicy>(self.reader(), NS_POLICY, &name_key(a, &name))?
            .filter(|p| p.arn == arn)
            .ok_or_else(|| no_such(format!("Policy {arn} was not found.")))
    }

    fn check_managed_size(doc: &str) -> Result<(), ServiceError> {
        if coffer_policy::size_without_whitespace(doc) > 6144 {
            return Err(limit("Cannot exceed quota for PolicySize: 6144"));
        }
        Ok(())
    }

    fn create_policy(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("PolicyName")?;
        check_name("policyName", name, 128)?;
        let path = path_of(p)?;
        let doc = p.req("PolicyDocument")?;
        let description = p.opt("Description").map(str::to_string);
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 1000)
        {
            return Err(validation(
                "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
            ));
        }
        let tags = tags_of(p, &[])?;
        let arn = self.arn(a, "policy", &path, name);
        self.authorize(ctx, "iam:CreatePolicy", &arn)?;
        check_policy(doc, PolicyKind::Identity)?;
        Self::check_managed_size(doc)?;
        let now = self.now();
        let mp = ManagedPolicy {
            name: name.into(),
            path,
            id: ids::unique_id("ANPA"),
            arn,
            created: now,
            updated: now,
            description,
            default_version: "v1".into(),
            versions: vec![PolicyVersion {
                id: "v1".into(),
                document: doc.into(),
                created: now,
            }],
            next_version: 2,
            attachment_count: 0,
            tags,
        };
        let key = name_key(a, name);
        tx(self, |t| {
            if t.get(NS_POLICY, &key).map_err(store_err)?.is_some() {
                return Err(exists(format!(
                    "A policy called {name} already exists. Duplicate names are not allowed."
                )));
            }
            put(t, NS_POLICY, &key, &mp)
        })?;
        Ok(Some(Out::Struct(vec![(
            "Policy",
            policy_out(&view_of_customer(&mp), false),
        )])))
    }

    fn get_policy(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let arn = p.req("PolicyArn")?;
        self.authorize(ctx, "iam:GetPolicy", arn)?;
        let v = self.view_of(a, arn)?;
        Ok(Some(Out::Struct(vec![("Policy", policy_out(&v, true))])))
    }

    fn delete_policy(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let arn = p.req("PolicyArn")?;
        self.authorize(ctx, "iam:DeletePolicy", arn)?;
        if managed::by_arn(arn).is_some() {
            return Err(ServiceError::new(
                "InvalidInput",
                400,
                format!("Cannot delete AWS managed policy {arn}."),
            ));
        }
        let mp = self.customer_policy(a, arn)?;
        tx(self, |t| {
            let key = name_key(a, &mp.name);
            let cur: ManagedPolicy = get(t, NS_POLICY, &key)?
                .filter(|p: &ManagedPolicy| p.arn == arn)
                .ok_or_else(|| no_such(format!("Policy {arn} was not found.")))?;
            if cur.attachment_count > 0 {
                return Err(conflict("Cannot delete a policy attached to entities."));
            }
            if cur.versions.len() > 1 {
                return Err(conflict(
                    "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
                ));
            }
            t.delete(NS_POLICY, &key).map_err(store_err)?;
            Ok(())
        })?;
        Ok(None)
    }

    fn list_policies(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        self.authorize(
            ctx,
            "iam:ListPolicies",
            &format!("arn:aws:iam::{a}:policy/"),
        )?;
        let scope = p.opt("Scope").unwrap_or("All");
        if !["All", "AWS", "Local"].contains(&scope) {
            return Err(validation(
                "1 validation error detected: Value at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]",
            ));
        }
        let only_attached = p.opt_bool("OnlyAttached")?.unwrap_or(false);
        let prefix = p.opt("PathPrefix").unwrap_or("/");
        let page = page_of(p)?;
        let mut all: Vec<PolicyView> = vec![];
        if scope != "Local" {
            for m in managed::AWS_MANAGED {
                all.push(self.view_of(a, &m.arn())?);
            }
        }
        if scope != "AWS" {
            let rows: Vec<(String, ManagedPolicy)> =
                scan_json(self.reader(), NS_POLICY, &format!("{a}/"), None, 100_000)
                    .map_err(store_err)?;
            all.extend(rows.iter().map(|(_, m)| view_of_customer(m)));
        }
        all.retain(|v| v.path.starts_with(prefix) && (!only_attached || v.attachment_count > 0));
        let (items, mut fields) = vec_page(
            &all.iter().map(|v| v.arn.clone()).collect::<Vec<_>>(),
            &page,
            |s| s.clone(),
        );
        let outs = items
            .iter()
            .filter_map(|arn| all.iter().find(|v| &v.arn == arn))
            .map(|v| policy_out(v, false))
            .collect();
        let mut f = vec![("Policies", Out::List(outs))];
        f.append(&mut fields);
        Ok(Some(Out::Struct(f)))
    }

    fn version_out(v: &PolicyVersion, default: &str, with_doc: bool) -> Out {
        let mut f = vec![];
        if with_doc {
            f.push(("Document", enc_doc(&v.document)));
        }
        f.extend([
            ("VersionId", Out::s(&v.id)),
            ("IsDefaultVersion", Out::b(v.id == default)),
            ("CreateDate", Out::t(v.created)),
        ]);
        Out::Struct(f)
    }

    fn create_policy_version(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let arn = p.req("PolicyArn")?;
        let doc = p.req("PolicyDocument")?;
        let set_default = p.opt_bool("SetAsDefault")?.unwrap_or(false);
        self.authorize(ctx, "iam:CreatePolicyVersion", arn)?;
        if managed::by_arn(arn).is_some() {
            return Err(ServiceError::new(
                "InvalidInput",
                400,
                "Cannot modify an AWS managed policy.",
            ));
        }
        let mp = self.customer_policy(a, arn)?;
        check_policy(doc, PolicyKind::Identity)?;
        Self::check_managed_size(doc)?;
        let now = self.now();
        let key = name_key(a, &mp.name);
        let missing = || no_such(format!("Policy {arn} was not found."));
        let (v, def) = tx(self, |t| {
            update(t, NS_POLICY, &key, missing, |cur: &mut ManagedPolicy| {
                if cur.arn != arn {
                    return Err(missing());
                }
                if cur.versions.len() >= 5 {
                    return Err(limit(
                        "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
                    ));
                }
                let v = PolicyVersion {
                    id: format!("v{}", cur.next_version),
                    document: doc.to_string(),
                    created: now,
                };
                cur.next_version += 1;
                if set_default {
                    cur.default_version = v.id.clone();
                }
                cur.updated = now;
                cur.versions.push(v.clone());
                Ok((v, cur.default_version.clone()))
            })
        })?;
        Ok(Some(Out::Struct(vec![(
            "PolicyVersion",
            Self::version_out(&v, &def, false),
        )])))
    }

    fn get_policy_version(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let arn = p.req("PolicyArn")?;
        let vid = p.req("VersionId")?;
        self.authorize(ctx, "iam:GetPolicyVersion", arn)?;
        if let Some(m) = managed::by_arn(arn) {
            if vid != m.version {
                return Err(no_such(format!(
                    "Policy {arn} version {vid} does not exist or is not attachable."
                )));
            }
            let v = PolicyVersion {
                id: m.version.into(),
                document: m.document.into(),
                created: m.updated,
            };
            return Ok(Some(Out::Struct(vec![(
                "PolicyVersion",
                Self::version_out(&v, m.version, true),
            )])));
        }
        let mp = self.customer_policy(a, arn)?;
        let v = mp.versions.iter().find(|v| v.id == vid).ok_or_else(|| {
            no_such(format!(
                "Policy {arn} version {vid} does not exist or is not attachable."
            ))
        })?;
        Ok(Some(Out::Struct(vec![(
            "PolicyVersion",
            Self::version_out(v, &mp.default_version, true),
        )])))
    }

    fn list_policy_versions(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let arn = p.req("PolicyArn")?;
        self.authorize(ctx, "iam:ListPolicyVersions", arn)?;
        let (versions, def) = if let Some(m) = managed::by_arn(arn) {
            (
                vec![PolicyVersion {
                    id: m.version.into(),
                    document: m.document.into(),
                    created: m.updated,
                }],
                m.version.to_string(),
            )
        } else {
            let mp = self.customer_policy(a, arn)?;
            (mp.versions, mp.default_version)
        };
        let mut vs: Vec<Out> = versions
            .iter()
            .rev()
            .map(|v| Self::version_out(v, &def, false))
            .collect();
        vs.shrink_to_fit();
        Ok(Some(Out::Struct(vec![
            ("Versions", Out::List(vs)),
            ("IsTruncated", Out::b(false)),
        ])))
    }

    fn delete_policy_version(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let arn = p.req("PolicyArn")?;
        let vid = p.req("VersionId")?;
        self.authorize(ctx, "iam:DeletePolicyVersion", arn)?;
        let mp = self.customer_policy(a, arn)?;
        let key = name_key(a, &mp.name);
        let missing = || no_such(format!("Policy {arn} was not found."));
        tx(self, |t| {
            update(t, NS_POLICY, &key, missing, |cur: &mut ManagedPolicy| {
                if cur.arn != arn {
                    return Err(missing());
                }
                if cur.default_version == vid {
                    return Err(conflict("Cannot delete the default version of a policy."));
                }
                let before = cur.versions.len();
                cur.versions.retain(|v| v.id != vid);
                if cur.versions.len() == before {
                    return Err(no_such(format!(
                        "Policy {arn} version {vid} does not exist."
                    )));
                }
                Ok(())
            })
        })?;
        Ok(None)
    }

    fn set_default_version(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let arn = p.req("PolicyArn")?;
        let vid = p.req("VersionId")?;
        self.authorize(ctx, "iam:SetDefaultPolicyVersion", arn)?;
        let mp = self.customer_policy(a, arn)?;
        let now = self.now();
        let key = name_key(a, &mp.name);
        let missing = || no_such(format!("Policy {arn} was not found."));
        tx(self, |t| {
            update(t, NS_POLICY, &key, missing, |cur: &mut ManagedPolicy| {
                if cur.arn != arn {
                    return Err(missing());
                }
                if !cur.versions.iter().any(|v| v.id == vid) {
                    return Err(no_such(format!(
                        "Policy {arn} version {vid} does not exist."
                    )));
                }
                cur.default_version = vid.to_string();
                cur.updated = now;
                Ok(())
            })
        })?;
        Ok(None)
    }

    /// Adjusts a managed policy's attachment count inside a transaction.
    fn bump_attachments(
        &self,
        t: &mut dyn Txn,
        a: &str,
        arn: &str,
        delta: i64,
    ) -> Result<(), ServiceError> {
        if let Some(m) = managed::by_arn(arn) {
            let key = format!("{a}/{}", m.name);
            let n: i64 = get(t, NS_AWS_ATTACH, &key)?.unwrap_or(0);
            return put(t, NS_AWS_ATTACH, &key, &(n + delta).max(0));
        }
        let (_, name) = parse_policy_arn(arn)
            .ok_or_else(|| validation("Invalid ARN:  Could not be parsed!"))?;
        let key = name_key(a, &name);
        let mut mp: ManagedPolicy = get(t, NS_POLICY, &key)?
            .filter(|m: &ManagedPolicy| m.arn == arn)
            .ok_or_else(|| no_such(format!("Policy {arn} does not exist or is not attachable.")))?;
        mp.attachment_count = (i64::from(mp.attachment_count) + delta).max(0) as u32;
        put(t, NS_POLICY, &key, &mp)
    }

    fn attach(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity, on: bool) -> R {
        let name = p.req(e.param())?;
        check_name(&lower_first(e.param()), name, 128)?;
        let arn = p.req("PolicyArn")?;
        let action = format!(
            "iam:{}{}Policy",
            if on { "Attach" } else { "Detach" },
            upper_first(e.word())
        );
        let target_arn = self.entity_arn(e, a, name)?;
        self.authorize(ctx, &action, &target_arn)?;
        if on {
            self.check_policy_arn(arn)?;
        } else if parse_policy_arn(arn).is_none() && managed::by_arn(arn).is_none() {
            return Err(validation("Invalid ARN:  Could not be parsed!"));
        }
        tx(self, |t| {
            let key = name_key(a, name);
            macro_rules! go {
                ($ty:ty) => {{
                    let mut x: $ty = get(t, e.ns(), &key)?.ok_or_else(|| e.not_found(name))?;
                    let list = x.attached();
                    let present = list.iter().any(|p| p == arn);
                    if on {
                        if present {
                            return Ok(());
                        }
                        if list.len() >= 10 {
                            return Err(limit(format!(
                                "Cannot exceed quota for PoliciesPerUser: 10"
                            )));
                        }
                        list.push(arn.to_string());
                        self.bump_attachments(t, a, arn, 1)?;
                    } else {
                        if !present {
                            return Err(no_such(format!("Policy {arn} was not found.")));
                        }
                        list.retain(|p| p != arn);
                        self.bump_attachments(t, a, arn, -1)?;
                    }
                    put(t, e.ns(), &key, &x)
                }};
            }
            match e {
                Entity::User => go!(User),
                Entity::Group => go!(Group),
                Entity::Role => go!(Role),
            }
        })?;
        Ok(None)
    }

    fn entity_arn(&self, e: Entity, a: &str, name: &str) -> Result<String, ServiceError> {
        Ok(match e {
            Entity::User => self.load::<User>(e, a, name)?.arn,
            Entity::Group => self.load::<Group>(e, a, name)?.arn,
            Entity::Role => self.load::<Role>(e, a, name)?.arn,
        })
    }

    fn with_policies<Tt>(
        &self,
        e: Entity,
        a: &str,
        name: &str,
        f: impl FnOnce(&mut dyn PolicyHolder) -> Tt,
    ) -> Result<Tt, ServiceError> {
        Ok(match e {
            Entity::User => f(&mut self.load::<User>(e, a, name)?),
            Entity::Group => f(&mut self.load::<Group>(e, a, name)?),
            Entity::Role => f(&mut self.load::<Role>(e, a, name)?),
        })
    }

    fn list_attached(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity) -> R {
        let name = p.req(e.param())?;
        let (arn, attached) =
            self.with_policies(e, a, name, |x| (x.arn_of(), x.attached().clone()))?;
        self.authorize(
            ctx,
            &format!("iam:ListAttached{}Policies", upper_first(e.word())),
            &arn,
        )?;
        let page = page_of(p)?;
        let (items, mut fields) = vec_page(&attached, &page, |s| s.clone());
        let mut f = vec![("AttachedPolicies", attached_out(&items))];
        f.append(&mut fields);
        Ok(Some(Out::Struct(f)))
    }

    fn put_inline(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity) -> R {
        let name = p.req(e.param())?;
        let pname = p.req("PolicyName")?;
        check_name("policyName", pname, 128)?;
        let doc = p.req("PolicyDocument")?;
        let arn = self.entity_arn(e, a, name)?;
        self.authorize(
            ctx,
            &format!("iam:Put{}Policy", upper_first(e.word())),
            &arn,
        )?;
        check_policy(doc, PolicyKind::Identity)?;
        tx(self, |t| {
            let key = name_key(a, name);
            macro_rules! go {
                ($ty:ty) => {{
                    let mut x: $ty = get(t, e.ns(), &key)?.ok_or_else(|| e.not_found(name))?;
                    let inl = x.inline();
                    inl.insert(pname.to_string(), doc.to_string());
                    let total: usize = inl
                        .values()
                        .map(|d| coffer_policy::size_without_whitespace(d))
                        .sum();
                    if total > e.inline_quota() {
                        return Err(limit(format!(
                            "Maximum policy size of {} bytes exceeded for {} {}",
                            e.inline_quota(),
                            e.word(),
                            name
                        )));
                    }
                    put(t, e.ns(), &key, &x)
                }};
            }
            match e {
                Entity::User => go!(User),
                Entity::Group => go!(Group),
                Entity::Role => go!(Role),
            }
        })?;
        Ok(None)
    }

    fn get_inline(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity) -> R {
        let name = p.req(e.param())?;
        let pname = p.req("PolicyName")?;
        let (arn, real, doc) = self.with_policies(e, a, name, |x| {
            (x.arn_of(), x.name_of(), x.inline().get(pname).cloned())
        })?;
        self.authorize(
            ctx,
            &format!("iam:Get{}Policy", upper_first(e.word())),
            &arn,
        )?;
        let doc = doc.ok_or_else(|| {
            no_such(format!(
                "The {} policy with name {pname} cannot be found.",
                e.word()
            ))
        })?;
        Ok(Some(Out::Struct(vec![
            (e.param(), Out::s(real)),
            ("PolicyName", Out::s(pname)),
            ("PolicyDocument", enc_doc(&doc)),
        ])))
    }

    fn delete_inline(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity) -> R {
        let name = p.req(e.param())?;
        let pname = p.req("PolicyName")?;
        let arn = self.entity_arn(e, a, name)?;
        self.authorize(
            ctx,
            &format!("iam:Delete{}Policy", upper_first(e.word())),
            &arn,
        )?;
        tx(self, |t| {
            let key = name_key(a, name);
            macro_rules! go {
                ($ty:ty) => {{
                    let mut x: $ty = get(t, e.ns(), &key)?.ok_or_else(|| e.not_found(name))?;
                    if x.inline().remove(pname).is_none() {
                        return Err(no_such(format!(
                            "The {} policy with name {pname} cannot be found.",
                            e.word()
                        )));
                    }
                    put(t, e.ns(), &key, &x)
                }};
            }
            match e {
                Entity::User => go!(User),
                Entity::Group => go!(Group),
                Entity::Role => go!(Role),
            }
        })?;
        Ok(None)
    }

    fn list_inline(&self, ctx: &RequestContext, a: &str, p: &Params, e: Entity) -> R {
        let name = p.req(e.param())?;
        let (arn, names) = self.with_policies(e, a, name, |x| {
            (x.arn_of(), x.inline().keys().cloned().collect::<Vec<_>>())
        })?;
        self.authorize(
            ctx,
            &format!("iam:List{}Policies", upper_first(e.word())),
            &arn,
        )?;
        let page = page_of(p)?;
        let (items, mut fields) = vec_page(&names, &page, |s| s.clone());
        let mut f = vec![(
            "PolicyNames",
            Out::List(items.into_iter().map(Out::Str).collect()),
        )];
        f.append(&mut fields);
        Ok(Some(Out::Struct(f)))
    }

    // ---------- groups ----------

    fn create_group(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("GroupName")?;
        check_name("groupName", name, 128)?;
        let path = path_of(p)?;
        let arn = self.arn(a, "group", &path, name);
        self.authorize(ctx, "iam:CreateGroup", &arn)?;
        let g = Group {
            name: name.into(),
            path,
            id: ids::unique_id("AGPA"),
            arn,
            created: self.now(),
            attached: vec![],
            inline: Default::default(),
            members: vec![],
        };
        let key = name_key(a, name);
        tx(self, |t| {
            if t.get(NS_GROUP, &key).map_err(store_err)?.is_some() {
                return Err(exists(format!("Group with name {name} already exists.")));
            }
            put(t, NS_GROUP, &key, &g)
        })?;
        Ok(Some(Out::Struct(vec![("Group", group_out(&g))])))
    }

    fn get_group(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("GroupName")?;
        let g: Group = self.load(Entity::Group, a, name)?;
        self.authorize(ctx, "iam:GetGroup", &g.arn)?;
        let page = page_of(p)?;
        let (members, mut fields) = vec_page(&g.members, &page, |s| s.clone());
        let mut users = Vec::new();
        for m in members.iter().take(MAX_USERS_PER_GROUP_LIST) {
            if let Some(u) = get::<User>(self.reader(), NS_USER, &name_key(a, m))? {
                users.push(user_out(&u));
            }
        }
        let mut f = vec![("Group", group_out(&g)), ("Users", Out::List(users))];
        f.append(&mut fields);
        Ok(Some(Out::Struct(f)))
    }

    fn list_groups(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        self.authorize(ctx, "iam:ListGroups", &format!("arn:aws:iam::{a}:group/"))?;
        let prefix = p.opt("PathPrefix").unwrap_or("/").to_string();
        let page = page_of(p)?;
        let (groups, mut fields) =
            list_page::<Group>(self.reader(), NS_GROUP, &format!("{a}/"), &page, |g| {
                g.path.starts_with(&prefix)
            })?;
        let mut f = vec![("Groups", Out::List(groups.iter().map(group_out).collect()))];
        f.append(&mut fields);
        Ok(Some(Out::Struct(f)))
    }

    fn delete_group(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("GroupName")?;
        let g: Group = self.load(Entity::Group, a, name)?;
        self.authorize(ctx, "iam:DeleteGroup", &g.arn)?;
        tx(self, |t| {
            let key = name_key(a, name);
            let mut g: Group =
                get(t, NS_GROUP, &key)?.ok_or_else(|| Entity::Group.not_found(name))?;
            if !g.members.is_empty() {
                return Err(conflict(
                    "Cannot delete entity, must remove users from group first.",
                ));
            }
            ensure_no_policies(&mut g)?;
            t.delete(NS_GROUP, &key).map_err(store_err)?;
            Ok(())
        })?;
        Ok(None)
    }

    fn membership(&self, ctx: &RequestContext, a: &str, p: &Params, add: bool) -> R {
        let gname = p.req("GroupName")?;
        let uname = p.req("UserName")?;
        check_name("groupName", gname, 128)?;
        check_name("userName", uname, 64)?;
        let g: Group = self.load(Entity::Group, a, gname)?;
        self.authorize(
            ctx,
            if add {
                "iam:AddUserToGroup"
            } else {
                "iam:RemoveUserFromGroup"
            },
            &g.arn,
        )?;
        tx(self, |t| {
            let gk = name_key(a, gname);
            let uk = name_key(a, uname);
            let mut g: Group =
                get(t, NS_GROUP, &gk)?.ok_or_else(|| Entity::Group.not_found(gname))?;
            let mut u: User = get(t, NS_USER, &uk)?.ok_or_else(|| Entity::User.not_found(uname))?;
            let member = u.groups.iter().any(|x| x.eq_ignore_ascii_case(&g.name));
            if add {
                if member {
                    return Ok(());
                }
                if u.groups.len() >= 10 {
                    return Err(limit("Cannot exceed quota for GroupsPerUser: 10"));
                }
                u.groups.push(g.name.clone());
                g.members.push(u.name.clone());
            } else {
                if !member {
                    return Err(no_such(format!(
                        "The user with name {uname} cannot be found in group {gname}."
                    )));
                }
                u.groups.retain(|x| !x.eq_ignore_ascii_case(&g.name));
                g.members.retain(|x| !x.eq_ignore_ascii_case(&u.name));
            }
            put(t, NS_GROUP, &gk, &g)?;
            put(t, NS_USER, &uk, &u)
        })?;
        Ok(None)
    }

    fn groups_for_user(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("UserName")?;
        let u: User = self.load(Entity::User, a, name)?;
        self.authorize(ctx, "iam:ListGroupsForUser", &u.arn)?;
        let mut groups = vec![];
        for g in &u.groups {
            if let Some(g) = get::<Group>(self.reader(), NS_GROUP, &name_key(a, g))? {
                groups.push(group_out(&g));
            }
        }
        Ok(Some(Out::Struct(vec![
            ("Groups", Out::List(groups)),
            ("IsTruncated", Out::b(false)),
        ])))
    }

    // ---------- roles ----------

    fn check_trust(doc: &str) -> Result<(), ServiceError> {
        check_policy(doc, PolicyKind::Trust)?;
        if coffer_policy::size_without_whitespace(doc) > 2048 {
            return Err(limit("Cannot exceed quota for ACLSizePerRole: 2048"));
        }
        Ok(())
    }

    fn create_role(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("RoleName")?;
        check_name("roleName", name, 64)?;
        let path = path_of(p)?;
        let doc = p.req("AssumeRolePolicyDocument")?;
        let max = p.opt_int("MaxSessionDuration")?.unwrap_or(3600);
        if !(3600..=43200).contains(&max) {
            return Err(validation(format!(
                "1 validation error detected: Value '{max}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than or equal to 3600 and less than or equal to 43200"
            )));
        }
        let description = p.opt("Description").map(str::to_string);
        let tags = tags_of(p, &[])?;
        let arn = self.arn(a, "role", &path, name);
        self.authorize(ctx, "iam:CreateRole", &arn)?;
        Self::check_trust(doc)?;
        let boundary = p.opt("PermissionsBoundary").map(str::to_string);
        if let Some(b) = &boundary {
            self.check_policy_arn(b)?;
        }
        let r = Role {
            name: name.into(),
            path,
            id: ids::unique_id("AROA"),
            arn,
            created: self.now(),
            trust_policy: doc.into(),
            description,
            max_session_duration: max,
            tags,
            attached: vec![],
            inline: Default::default(),
            permissions_boundary: boundary,
        };
        let key = name_key(a, name);
        tx(self, |t| {
            if t.get(NS_ROLE, &key).map_err(store_err)?.is_some() {
                return Err(exists(format!("Role with name {name} already exists.")));
            }
            put(t, NS_ROLE, &key, &r)
        })?;
        Ok(Some(Out::Struct(vec![("Role", role_out(&r, false))])))
    }

    fn get_role(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("RoleName")?;
        let r: Role = self.load(Entity::Role, a, name)?;
        self.authorize(ctx, "iam:GetRole", &r.arn)?;
        Ok(Some(Out::Struct(vec![("Role", role_out(&r, true))])))
    }

    fn list_roles(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        self.authorize(ctx, "iam:ListRoles", &format!("arn:aws:iam::{a}:role/"))?;
        let prefix = p.opt("PathPrefix").unwrap_or("/").to_string();
        let page = page_of(p)?;
        let (roles, mut fields) =
            list_page::<Role>(self.reader(), NS_ROLE, &format!("{a}/"), &page, |r| {
                r.path.starts_with(&prefix)
            })?;
        let mut f = vec![(
            "Roles",
            Out::List(roles.iter().map(|r| role_out(r, false)).collect()),
        )];
        f.append(&mut fields);
        Ok(Some(Out::Struct(f)))
    }

    fn delete_role(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("RoleName")?;
        let r: Role = self.load(Entity::Role, a, name)?;
        self.authorize(ctx, "iam:DeleteRole", &r.arn)?;
        tx(self, |t| {
            let key = name_key(a, name);
            let mut r: Role = get(t, NS_ROLE, &key)?.ok_or_else(|| Entity::Role.not_found(name))?;
            ensure_no_policies(&mut r)?;
            t.delete(NS_ROLE, &key).map_err(store_err)?;
            Ok(())
        })?;
        Ok(None)
    }

    fn update_role(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("RoleName")?;
        let r: Role = self.load(Entity::Role, a, name)?;
        self.authorize(ctx, "iam:UpdateRole", &r.arn)?;
        let max = p.opt_int("MaxSessionDuration")?;
        if let Some(m) = max
            && !(3600..=43200).contains(&m)
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{m}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than or equal to 3600 and less than or equal to 43200"
            )));
        }
        let desc = p.opt("Description").map(str::to_string);
        tx(self, |t| {
            let key = name_key(a, name);
            let mut r: Role = get(t, NS_ROLE, &key)?.ok_or_else(|| Entity::Role.not_found(name))?;
            if let Some(m) = max {
                r.max_session_duration = m;
            }
            if desc.is_some() {
                r.description = desc.clone();
            }
            put(t, NS_ROLE, &key, &r)
        })?;
        Ok(Some(Out::Struct(vec![])))
    }

    fn update_trust(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let name = p.req("RoleName")?;
        let doc = p.req("PolicyDocument")?;
        let r: Role = self.load(Entity::Role, a, name)?;
        self.authorize(ctx, "iam:UpdateAssumeRolePolicy", &r.arn)?;
        Self::check_trust(doc)?;
        tx(self, |t| {
            let key = name_key(a, name);
            let mut r: Role = get(t, NS_ROLE, &key)?.ok_or_else(|| Entity::Role.not_found(name))?;
            r.trust_policy = doc.to_string();
            put(t, NS_ROLE, &key, &r)
        })?;
        Ok(None)
    }

    // ---------- simulation ----------

    fn simulate(&self, ctx: &RequestContext, a: &str, p: &Params) -> R {
        let source = p.req("PolicySourceArn")?;
        self.authorize(ctx, "iam:SimulatePrincipalPolicy", source)?;
        let actions = p.list("ActionNames");
        if actions.is_empty() {
            return Err(validation(
                "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null",
            ));
        }
        let mut resources = p.list("ResourceArns");
        if resources.is_empty() {
            resources.push("*".into());
        }
        let resource_policy = match p.opt("ResourcePolicy") {
            Some(d) => {
                Some(Policy::parse(d, PolicyKind::Resource).map_err(|e| malformed(e.message))?)
            }
            None => None,
        };
        // Build the simulated principal from its ARN.
        let principal = self.principal_for_arn(a, source)?;
        let sim_ctx = RequestContext {
            principal,
            ..ctx.clone()
        };
        let ids = self.authorizer().identity_policies(&sim_ctx)?;
        let mut results = vec![];
        for action in &actions {
            for res in &resources {
                let mut c = base_context(&sim_ctx);
                for (i, e) in p
                    .struct_list("ContextEntries", &["ContextKeyName", "ContextKeyType"])
                    .iter()
                    .enumerate()
                {
                    if let Some(k) = &e[0] {
                        let vals = p.nested_list("ContextEntries", i + 1, "ContextKeyValues");
                        let multi = e[1].as_deref().is_some_and(|t| t.ends_with("List"));
                        if multi {
                            c.set_multi(k, vals);
                        } else if let Some(v) = vals.into_iter().next() {
                            c.set(k, v);
                        }
                    }
                }
                let d =
                    crate::authz::decide(&sim_ctx, &ids, action, res, resource_policy.as_ref(), &c);
                let decision = match &d {
                    Ok(()) => "allowed",
                    Err(den)
                        if matches!(
                            den.kind,
                            crate::DenialKind::ExplicitIdentity
                                | crate::DenialKind::ExplicitResource
                                | crate::DenialKind::ExplicitSession
                        ) =>
                    {
                        "explicitDeny"
                    }
                    Err(_) => "implicitDeny",
                };
                results.push(Out::Struct(vec![
                    ("EvalActionName", Out::s(action)),
                    ("EvalResourceName", Out::s(res)),
                    ("EvalDecision", Out::s(decision)),
                    ("MatchedStatements", Out::List(vec![])),
                    ("MissingContextValues", Out::List(vec![])),
                ]));
            }
        }
        Ok(Some(Out::Struct(vec![
            ("EvaluationResults", Out::List(results)),
            ("IsTruncated", Out::b(false)),
        ])))
    }

    /// A principal as it would be when signing in as the entity named by `arn`.
    fn principal_for_arn(
        &self,
        a: &str,
        arn: &str,
    ) -> Result<coffer_core::Principal, ServiceError> {
        use coffer_core::{Principal, PrincipalKind};
        let rest = arn
            .strip_prefix(&format!("arn:aws:iam::{a}:"))
            .ok_or_else(|| invalid_input(format!("Invalid ARN {arn}")))?;
        if rest == "root" {
            return Ok(Principal {
                account: a.into(),
                arn: arn.into(),
                user_id: a.into(),
                kind: PrincipalKind::Root,
                access_key_id: String::new(),
                tags: vec![],
            });
        }
        let name = rest.rsplit('/').next().unwrap_or("");
        if rest.starts_with("user/") {
            let u: User = self.load(Entity::User, a, name)?;
            return Ok(Principal {
                account: a.into(),
                arn: u.arn.clone(),
                user_id: u.id.clone(),
                kind: PrincipalKind::User {
                    name: u.name,
                    id: u.id,
                },
                access_key_id: String::new(),
                tags: u
                    .tags
                    .iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect(),
            });
        }
        if rest.starts_with("role/") {
            let r: Role = self.load(Entity::Role, a, name)?;
            return Ok(Principal {
                account: a.into(),
                arn: format!("arn:aws:sts::{a}:assumed-role/{}/simulation", r.name),
                user_id: format!("{}:simulation", r.id),
                kind: PrincipalKind::AssumedRole {
                    role_name: r.name,
                    role_arn: r.arn,
                    role_id: r.id,
                    session_name: "simulation".into(),
                    session_key_id: String::new(),
                },
                access_key_id: String::new(),
                tags: vec![],
            });
        }
        if rest.starts_with("group/") {
            let g: Group = self.load(Entity::Group, a, name)?;
            // A group is simulated as a user with only the group's policies: Coffer models this
            // by a principal-less evaluation, which AWS also does; not supported yet.
            return Err(invalid_input(format!(
                "Simulating group {} is not supported by Coffer yet; simulate one of its users.",
                g.name
            )));
        }
        Err(invalid_input(format!("Invalid ARN {arn}")))
    }
}

fn view_of_customer(mp: &ManagedPolicy) -> PolicyView {
    PolicyView {
        name: mp.name.clone(),
        id: mp.id.clone(),
        arn: mp.arn.clone(),
        path: mp.path.clone(),
        default_version: mp.default_version.clone(),
        attachment_count: mp.attachment_count,
        created: mp.created,
        updated: mp.updated,
        description: mp.description.clone(),
        tags: mp.tags.clone(),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Users, groups and roles seen through their policies.
trait PolicyHolder {
    fn arn_of(&self) -> String;
    fn name_of(&self) -> String;
    fn attached(&mut self) -> &mut Vec<String>;
    fn inline(&mut self) -> &mut std::collections::BTreeMap<String, String>;
}

macro_rules! holder {
    ($ty:ty) => {
        impl PolicyHolder for $ty {
            fn arn_of(&self) -> String {
                self.arn.clone()
            }
            fn name_of(&self) -> String {
                self.name.clone()
            }
            fn attached(&mut self) -> &mut Vec<String> {
                &mut self.attached
            }
            fn inline(&mut self) -> &mut std::collections::BTreeMap<String, String> {
                &mut self.inline
            }
        }
    };
}
holder!(User);
holder!(Group);
holder!(Role);
