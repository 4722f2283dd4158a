//! KMS pages: customer managed keys, the create-key wizard, a key's page and its actions.

use crate::api::{ApiError, ApiResult, enc};
use crate::layout::{button_form, csrf, row, when};
use crate::policy::{self, Role};
use crate::{Ctx, Form, Resp, done, error_page, html_response, not_found};
use maud::{Markup, html};
use serde_json::{Value, json};

const SPECS: &[&str] = &[
    "SYMMETRIC_DEFAULT",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
];

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

pub async fn get(ctx: &Ctx<'_>, rest: &[&str]) -> Resp {
    match rest {
        [] => list(ctx).await,
        ["create"] => create_form(ctx, None, &Form(vec![])).await,
        ["keys", id] => key_page(ctx, id, None).await,
        _ => not_found(ctx),
    }
}

pub async fn post(ctx: &Ctx<'_>, rest: &[&str], f: &Form) -> Resp {
    match rest {
        ["create"] => create(ctx, f).await,
        ["keys", id, action] => key_action(ctx, id, action, f).await,
        _ => not_found(ctx),
    }
}

/// All aliases of the account: key id → alias names.
async fn aliases(ctx: &Ctx<'_>, key_id: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    let mut out = vec![];
    let mut marker: Option<String> = None;
    loop {
        let mut input = json!({ "Limit": 100 });
        if let Some(k) = key_id {
            input["KeyId"] = json!(k);
        }
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        let v = ctx.api.kms("ListAliases", input).await?;
        for a in v["Aliases"].as_array().into_iter().flatten() {
            let name = s(a, "AliasName");
            if name.starts_with("alias/aws/") && key_id.is_none() && a.get("TargetKeyId").is_none()
            {
                continue;
            }
            out.push((s(a, "TargetKeyId"), name));
        }
        match (v["Truncated"].as_bool(), v["NextMarker"].as_str()) {
            (Some(true), Some(m)) => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

async fn list(ctx: &Ctx<'_>) -> Resp {
    let mut keys = vec![];
    let mut marker: Option<String> = None;
    loop {
        let mut input = json!({ "Limit": 1000 });
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        match ctx.api.kms("ListKeys", input).await {
            Ok(v) => {
                for k in v["Keys"].as_array().into_iter().flatten() {
                    keys.push(s(k, "KeyId"));
                }
                match (v["Truncated"].as_bool(), v["NextMarker"].as_str()) {
                    (Some(true), Some(m)) => marker = Some(m.to_string()),
                    _ => break,
                }
            }
            Err(e) => {
                return error_page(ctx, "Customer managed keys", &e);
            }
        }
    }
    let alias_list = aliases(ctx, None).await.unwrap_or_default();
    let mut rows = vec![];
    for id in &keys {
        // Keys the caller may not describe are listed by id only.
        let meta = ctx
            .api
            .kms("DescribeKey", json!({ "KeyId": id }))
            .await
            .map(|v| v["KeyMetadata"].clone())
            .ok();
        if meta.as_ref().is_some_and(|m| s(m, "KeyManager") == "AWS") {
            continue;
        }
        rows.push((id.clone(), meta));
    }
    let body = html! {
        div.toolbar {
            a #create-key .button href="/console/kms/create" { "Create key" }
        }
        table #keys {
            thead { tr { th { "Aliases" } th { "Key ID" } th { "Status" } th { "Key spec" } th { "Key usage" } th { "Description" } } }
            tbody {
                @for (id, meta) in &rows {
                    tr data-key-id=(id) {
                        td { @for (_, a) in alias_list.iter().filter(|(k, _)| k == id) { (a) br; } }
                        td { a.key-link href={ "/console/kms/keys/" (id) } { (id) } }
                        @if let Some(m) = meta {
                            td class={ "state-" (s(m, "KeyState")) } { (s(m, "KeyState")) }
                            td { (s(m, "KeySpec")) }
                            td { (s(m, "KeyUsage")) }
                            td { (s(m, "Description")) }
                        } @else {
                            td colspan="4" { "(not authorized to describe this key)" }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p.hint { "No customer managed keys yet." } }
    };
    html_response(200, ctx.page("Customer managed keys", body))
}

/// IAM users of the account (name, ARN); None when the caller may not list them.
async fn users(ctx: &Ctx<'_>) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = vec![];
    let mut marker = String::new();
    loop {
        let mut p = vec![("MaxItems", "1000")];
        if !marker.is_empty() {
            p.push(("Marker", marker.as_str()));
        }
        let x = ctx.api.iam("ListUsers", &p).await?;
        for m in x.members("Users") {
            out.push((m.text_of("UserName"), m.text_of("Arn")));
        }
        let next = x.find("Marker").map(|m| m.text.clone()).unwrap_or_default();
        if x.find("IsTruncated").map(|t| t.text.as_str()) == Some("true") && !next.is_empty() {
            marker = next;
        } else {
            break;
        }
    }
    Ok(out)
}

fn spec_usage(f: &Form) -> (String, String) {
    let spec = f.get("key_spec").unwrap_or("SYMMETRIC_DEFAULT").to_string();
    let default_usage = if spec.starts_with("HMAC_") {
        "GENERATE_VERIFY_MAC"
    } else if spec.starts_with("ECC_") {
        "SIGN_VERIFY"
    } else {
        "ENCRYPT_DECRYPT"
    };
    let usage = match f.get("key_usage") {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => default_usage.to_string(),
    };
    (spec, usage)
}

async fn create_form(ctx: &Ctx<'_>, err: Option<&ApiError>, f: &Form) -> Resp {
    let users = users(ctx).await;
    let (spec, usage) = spec_usage(f);
    let admins = f.all("admin");
    let key_users = f.all("user");
    let tag_keys = f.all("tag_key");
    let tag_values = f.all("tag_value");
    let body = html! {
        form #create-key-form method="post" action="/console/kms/create" {
            (csrf(ctx.session))
            fieldset {
                legend { "Step 1: Configure key" }
                label for="key-spec" { "Key spec" }
                select #key-spec name="key_spec" {
                    @for sp in SPECS { option value=(sp) selected[*sp == spec] { (sp) } }
                }
                label for="key-usage" { "Key usage" }
                select #key-usage name="key_usage" {
                    @for u in ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC"] {
                        option value=(u) selected[u == usage] { (u) }
                    }
                }
                p.hint { "Symmetric keys encrypt and decrypt (S3 server-side encryption needs one); RSA keys encrypt or sign; ECC keys sign; HMAC keys generate and verify MACs." }
            }
            fieldset {
                legend { "Step 2: Add labels" }
                label for="alias" { "Alias" }
                input #alias name="alias" type="text" value=(f.val("alias")) placeholder="alias/my-key";
                label for="description" { "Description" }
                textarea #description name="description" { (f.val("description")) }
                p { strong { "Tags" } }
                @for i in 0..3 {
                    div.toolbar {
                        label.check for={ "tag-key-" (i) } { "Tag key" }
                        input id={ "tag-key-" (i) } name="tag_key" type="text" value=(tag_keys.get(i).copied().unwrap_or(""));
                        label.check for={ "tag-value-" (i) } { "Tag value" }
                        input id={ "tag-value-" (i) } name="tag_value" type="text" value=(tag_values.get(i).copied().unwrap_or(""));
                    }
                }
            }
            @match &users {
                Ok(list) => {
                    fieldset {
                        legend { "Step 3: Define key administrative permissions" }
                        p.hint { "Key administrators can manage this key through the KMS API." }
                        @for (name, arn) in list {
                            label.check for={ "admin-" (name) } {
                                input id={ "admin-" (name) } type="checkbox" name="admin" value=(arn) checked[admins.contains(&arn.as_str())];
                                (name)
                            }
                        }
                        @if list.is_empty() { p.hint { "No IAM users yet." } }
                        label.check for="admin-delete" {
                            input #admin-delete type="checkbox" name="admin_delete" value="on" checked[f.0.is_empty() || f.checked("admin_delete")];
                            "Allow key administrators to delete this key"
                        }
                    }
                    fieldset {
                        legend { "Step 4: Define key usage permissions" }
                        p.hint { "Key users can use this key in cryptographic operations (and S3 can use it on their behalf)." }
                        @for (name, arn) in list {
                            label.check for={ "user-" (name) } {
                                input id={ "user-" (name) } type="checkbox" name="user" value=(arn) checked[key_users.contains(&arn.as_str())];
                                (name)
                            }
                        }
                    }
                }
                Err(e) => {
                    p.hint { "Key administrators and users cannot be chosen: " (e.to_string()) }
                }
            }
            button #review-button type="submit" name="step" value="review" { "Next: review" }
        }
    };
    let page = match err {
        Some(e) => ctx.page_err("Create key", e, body),
        None => ctx.page("Create key", body),
    };
    html_response(err.map(|e| e.status).unwrap_or(200), page)
}

fn alias_name(a: &str) -> String {
    let a = a.trim();
    if a.is_empty() || a.starts_with("alias/") {
        a.to_string()
    } else {
        format!("alias/{a}")
    }
}

async fn create(ctx: &Ctx<'_>, f: &Form) -> Resp {
    let (spec, usage) = spec_usage(f);
    if f.val("step") != "create" {
        // Review: the generated policy, editable, and the choices carried along.
        let admins: Vec<String> = f.all("admin").iter().map(|s| s.to_string()).collect();
        let users: Vec<String> = f.all("user").iter().map(|s| s.to_string()).collect();
        let policy = policy::console_default(
            &ctx.session.account,
            &admins,
            &users,
            &spec,
            &usage,
            f.checked("admin_delete"),
        );
        let carried: Vec<&(String, String)> =
            f.0.iter()
                .filter(|(k, _)| k != "csrf" && k != "step" && k != "policy")
                .collect();
        let body = html! {
            form #create-key-review method="post" action="/console/kms/create" {
                (csrf(ctx.session))
                @for (k, v) in &carried { input type="hidden" name=(k) value=(v); }
                dl.props {
                    (row("Key spec", "review-key-spec", &spec))
                    (row("Key usage", "review-key-usage", &usage))
                    (row("Alias", "review-alias", &alias_name(f.val("alias"))))
                    (row("Description", "review-description", f.val("description")))
                }
                label for="policy" { "Key policy" }
                textarea #policy .policy name="policy" { (policy) }
                div.toolbar {
                    button #back-button .secondary type="submit" name="step" value="edit" formaction="/console/kms/create" { "Previous" }
                    button #finish-button type="submit" name="step" value="create" { "Finish" }
                }
            }
        };
        if f.val("step") == "edit" {
            return create_form(ctx, None, f).await;
        }
        return html_response(200, ctx.page("Create key: review", body));
    }
    let mut input = json!({
        "KeySpec": spec,
        "KeyUsage": usage,
        "Description": f.val("description"),
        "Policy": f.val("policy"),
    });
    let tags: Vec<Value> = f
        .all("tag_key")
        .iter()
        .zip(f.all("tag_value"))
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| json!({ "TagKey": k.trim(), "TagValue": v }))
        .collect();
    if !tags.is_empty() {
        input["Tags"] = Value::Array(tags);
    }
    let alias = alias_name(f.val("alias"));
    let v = match ctx.api.kms("CreateKey", input).await {
        Ok(v) => v,
        Err(e) => return create_form(ctx, Some(&e), f).await,
    };
    let id = s(&v["KeyMetadata"], "KeyId");
    let to = format!("/console/kms/keys/{}", enc(&id));
    if !alias.is_empty()
        && let Err(e) = ctx
            .api
            .kms(
                "CreateAlias",
                json!({ "AliasName": alias, "TargetKeyId": id }),
            )
            .await
    {
        return done(
            ctx,
            &to,
            format!("Key {id} created, but its alias was not: {e}"),
        );
    }
    done(ctx, &to, format!("Key {id} created."))
}

struct KeyView {
    meta: Value,
    aliases: ApiResult<Vec<(String, String)>>,
    tags: ApiResult<Vec<(String, String)>>,
    policy: ApiResult<String>,
    rotation: Option<ApiResult<bool>>,
    users: ApiResult<Vec<(String, String)>>,
}

async fn load(ctx: &Ctx<'_>, id: &str) -> ApiResult<KeyView> {
    let meta = ctx.api.kms("DescribeKey", json!({ "KeyId": id })).await?["KeyMetadata"].clone();
    let aliases = aliases(ctx, Some(id)).await;
    let tags = ctx
        .api
        .kms("ListResourceTags", json!({ "KeyId": id }))
        .await
        .map(|v| {
            v["Tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| (s(t, "TagKey"), s(t, "TagValue")))
                .collect()
        });
    let policy = ctx
        .api
        .kms(
            "GetKeyPolicy",
            json!({ "KeyId": id, "PolicyName": "default" }),
        )
        .await
        .map(|v| {
            let p = s(&v, "Policy");
            serde_json::from_str::<Value>(&p)
                .ok()
                .map(|v| crate::policy::pretty(&v))
                .unwrap_or(p)
        });
    let rotation = if s(&meta, "KeySpec") == "SYMMETRIC_DEFAULT" {
        Some(
            ctx.api
                .kms("GetKeyRotationStatus", json!({ "KeyId": id }))
                .await
                .map(|v| v["KeyRotationEnabled"].as_bool().unwrap_or(false)),
        )
    } else {
        None
    };
    let users = users(ctx).await;
    Ok(KeyView {
        meta,
        aliases,
        tags,
        policy,
        rotation,
        users,
    })
}

fn section_error(e: &ApiError) -> Markup {
    html! { p.alert.error { (e.to_string()) } }
}

async fn key_page(ctx: &Ctx<'_>, id: &str, err: Option<ApiError>) -> Resp {
    let kv = match load(ctx, id).await {
        Ok(kv) => kv,
        Err(e) => return error_page(ctx, "Key", &err.unwrap_or(e)),
    };
    let m = &kv.meta;
    let key_id = s(m, "KeyId");
    let state = s(m, "KeyState");
    let base = format!("/console/kms/keys/{}", enc(&key_id));
    let act = |a: &str| format!("{base}/{a}");
    let sess = ctx.session;
    let user_select = |sel_id: &str| -> Markup {
        html! {
            @match &kv.users {
                Ok(list) => {
                    select id=(sel_id) name="principal" {
                        @for (name, arn) in list { option value=(arn) { (name) } }
                    }
                }
                Err(_) => {
                    input id=(sel_id) name="principal" type="text" placeholder="arn:aws:iam::111122223333:user/name";
                }
            }
        }
    };
    let members = |role: Role| -> Vec<String> {
        kv.policy
            .as_ref()
            .map(|p| policy::members(p, role))
            .unwrap_or_default()
    };
    let body = html! {
        section.card {
            h2 { "General configuration" }
            dl.props {
                (row("ARN", "key-arn", &s(m, "Arn")))
                (row("Key ID", "key-id", &key_id))
                dt { "Status" } dd #key-state class={ "state-" (state) } { (state) }
                @if let Some(d) = m.get("DeletionDate") {
                    (row("Scheduled deletion date", "deletion-date", &when(d)))
                }
                (row("Key spec", "key-spec", &s(m, "KeySpec")))
                (row("Key usage", "key-usage", &s(m, "KeyUsage")))
                (row("Description", "key-description", &s(m, "Description")))
                (row("Creation date", "key-created", &when(&m["CreationDate"])))
            }
            div.toolbar {
                @if state == "Enabled" {
                    (button_form(sess, &act("disable"), "Disable key", "secondary", Some("disable-key"), &[], None))
                } @else if state == "Disabled" {
                    (button_form(sess, &act("enable"), "Enable key", "", Some("enable-key"), &[], None))
                }
                @if state == "PendingDeletion" {
                    (button_form(sess, &act("cancel-deletion"), "Cancel key deletion", "", Some("cancel-deletion"), &[], None))
                }
            }
            @if state != "PendingDeletion" {
                form #schedule-deletion method="post" action=(act("schedule-deletion")) {
                    (csrf(sess))
                    label for="pending-days" { "Waiting period (7 to 30 days)" }
                    input #pending-days name="days" type="number" min="7" max="30" value="30" required;
                    button #schedule-deletion-button .danger type="submit" { "Schedule key deletion" }
                }
            }
        }
        section.card {
            h2 { "Aliases" }
            @match &kv.aliases {
                Ok(list) => {
                    ul #key-aliases {
                        @for (_, a) in list {
                            li data-alias=(a) { (a) " " (button_form(sess, &act("alias-delete"), "Delete", "secondary delete-alias", None, &[("alias", a)], None)) }
                        }
                    }
                }
                Err(e) => { (section_error(e)) }
            }
            form #add-alias method="post" action=(act("alias-add")) {
                (csrf(sess))
                label for="new-alias" { "New alias" }
                input #new-alias name="alias" type="text" placeholder="alias/my-key" required;
                button #add-alias-button type="submit" { "Add alias" }
            }
        }
        section.card {
            h2 { "Key administrators" }
            ul #key-admins {
                @for a in members(Role::Admin) {
                    li data-arn=(a) { (a) " " (button_form(sess, &act("admin-remove"), "Remove", "secondary remove-admin", None, &[("principal", &a)], None)) }
                }
            }
            form #add-admin method="post" action=(act("admin-add")) {
                (csrf(sess))
                label for="admin-select" { "Add a key administrator" }
                (user_select("admin-select"))
                button #add-admin-button type="submit" { "Add" }
            }
        }
        section.card {
            h2 { "Key users" }
            ul #key-users {
                @for a in members(Role::User) {
                    li data-arn=(a) { (a) " " (button_form(sess, &act("user-remove"), "Remove", "secondary remove-key-user", None, &[("principal", &a)], None)) }
                }
            }
            form #add-key-user method="post" action=(act("user-add")) {
                (csrf(sess))
                label for="key-user-select" { "Add a key user" }
                (user_select("key-user-select"))
                button #add-key-user-button type="submit" { "Add" }
            }
        }
        section.card {
            h2 { "Key policy" }
            @match &kv.policy {
                Ok(p) => {
                    pre #policy-document { (p) }
                    form #edit-policy method="post" action=(act("policy")) {
                        (csrf(sess))
                        label for="policy-editor" { "Edit the policy document" }
                        textarea #policy-editor .policy name="policy" { (p) }
                        button #save-policy type="submit" { "Save changes" }
                    }
                }
                Err(e) => { (section_error(e)) }
            }
        }
        section.card {
            h2 { "Tags" }
            @match &kv.tags {
                Ok(list) => {
                    table #key-tags {
                        thead { tr { th { "Key" } th { "Value" } th {} } }
                        tbody {
                            @for (k, v) in list {
                                tr data-tag-key=(k) { td { (k) } td { (v) } td { (button_form(sess, &act("tag-remove"), "Remove", "secondary remove-tag", None, &[("tag_key", k)], None)) } }
                            }
                        }
                    }
                }
                Err(e) => { (section_error(e)) }
            }
            form #add-tag method="post" action=(act("tag-add")) {
                (csrf(sess))
                label for="new-tag-key" { "Tag key" }
                input #new-tag-key name="tag_key" type="text" required;
                label for="new-tag-value" { "Tag value" }
                input #new-tag-value name="tag_value" type="text";
                button #add-tag-button type="submit" { "Add tag" }
            }
        }
        @if let Some(r) = &kv.rotation {
            section.card {
                h2 { "Key rotation" }
                @match r {
                    Ok(on) => {
                        p { "Automatic rotation (yearly): " span #rotation-status { @if *on { "Enabled" } @else { "Disabled" } } }
                        @if *on {
                            (button_form(sess, &act("rotation-disable"), "Disable automatic rotation", "secondary", Some("disable-rotation"), &[], None))
                        } @else {
                            (button_form(sess, &act("rotation-enable"), "Enable automatic rotation", "", Some("enable-rotation"), &[], None))
                        }
                    }
                    Err(e) => { (section_error(e)) }
                }
            }
        }
    };
    let title = format!("Key {key_id}");
    match err {
        Some(e) => html_response(e.status, ctx.page_err(&title, &e, body)),
        None => html_response(200, ctx.page(&title, body)),
    }
}

async fn edit_members(ctx: &Ctx<'_>, id: &str, role: Role, arn: &str, add: bool) -> ApiResult<()> {
    if arn.trim().is_empty() {
        return Err(ApiError::new(
            "ValidationException",
            400,
            "Choose a principal.",
        ));
    }
    let meta = ctx.api.kms("DescribeKey", json!({ "KeyId": id })).await?["KeyMetadata"].clone();
    let current = ctx
        .api
        .kms(
            "GetKeyPolicy",
            json!({ "KeyId": id, "PolicyName": "default" }),
        )
        .await?;
    let new = policy::edit(
        &s(&current, "Policy"),
        role,
        arn.trim(),
        add,
        &s(&meta, "KeySpec"),
        &s(&meta, "KeyUsage"),
    )
    .map_err(|m| ApiError::new("MalformedPolicyDocumentException", 400, m))?;
    ctx.api
        .kms(
            "PutKeyPolicy",
            json!({ "KeyId": id, "PolicyName": "default", "Policy": new }),
        )
        .await?;
    Ok(())
}

async fn key_action(ctx: &Ctx<'_>, id: &str, action: &str, f: &Form) -> Resp {
    let kms =
        |op: &'static str, input: Value| async move { ctx.api.kms(op, input).await.map(|_| ()) };
    let result: ApiResult<String> = match action {
        "alias-add" => kms(
            "CreateAlias",
            json!({ "AliasName": alias_name(f.val("alias")), "TargetKeyId": id }),
        )
        .await
        .map(|_| "Alias added.".into()),
        "alias-delete" => kms("DeleteAlias", json!({ "AliasName": f.val("alias") }))
            .await
            .map(|_| "Alias deleted.".into()),
        "tag-add" => kms(
            "TagResource",
            json!({ "KeyId": id, "Tags": [{ "TagKey": f.val("tag_key"), "TagValue": f.val("tag_value") }] }),
        )
        .await
        .map(|_| "Tag saved.".into()),
        "tag-remove" => kms("UntagResource", json!({ "KeyId": id, "TagKeys": [f.val("tag_key")] }))
            .await
            .map(|_| "Tag removed.".into()),
        "policy" => kms(
            "PutKeyPolicy",
            json!({ "KeyId": id, "PolicyName": "default", "Policy": f.val("policy") }),
        )
        .await
        .map(|_| "Key policy saved.".into()),
        "admin-add" => edit_members(ctx, id, Role::Admin, f.val("principal"), true)
            .await
            .map(|_| "Key administrator added.".into()),
        "admin-remove" => edit_members(ctx, id, Role::Admin, f.val("principal"), false)
            .await
            .map(|_| "Key administrator removed.".into()),
        "user-add" => edit_members(ctx, id, Role::User, f.val("principal"), true)
            .await
            .map(|_| "Key user added.".into()),
        "user-remove" => edit_members(ctx, id, Role::User, f.val("principal"), false)
            .await
            .map(|_| "Key user removed.".into()),
        "rotation-enable" => kms("EnableKeyRotation", json!({ "KeyId": id }))
            .await
            .map(|_| "Automatic rotation enabled.".into()),
        "rotation-disable" => kms("DisableKeyRotation", json!({ "KeyId": id }))
            .await
            .map(|_| "Automatic rotation disabled.".into()),
        "enable" => kms("EnableKey", json!({ "KeyId": id }))
            .await
            .map(|_| "Key enabled.".into()),
        "disable" => kms("DisableKey", json!({ "KeyId": id }))
            .await
            .map(|_| "Key disabled.".into()),
        "schedule-deletion" => match f.val("days").trim().parse::<i64>() {
            Ok(days) => ctx
                .api
                .kms(
                    "ScheduleKeyDeletion",
                    json!({ "KeyId": id, "PendingWindowInDays": days }),
                )
                .await
                .map(|v| {
                    format!(
                        "Key deletion scheduled: the key will be deleted on {}.",
                        when(&v["DeletionDate"])
                    )
                }),
            Err(_) => Err(ApiError::new(
                "ValidationException",
                400,
                "The waiting period must be a number of days from 7 to 30.",
            )),
        },
        "cancel-deletion" => kms("CancelKeyDeletion", json!({ "KeyId": id }))
            .await
            .map(|_| "Key deletion cancelled; the key is disabled until you enable it.".into()),
        _ => return not_found(ctx),
    };
    match result {
        Ok(msg) => done(ctx, &format!("/console/kms/keys/{}", enc(id)), msg),
        Err(e) => key_page(ctx, id, Some(e)).await,
    }
}

/// Enabled symmetric customer managed keys the caller can describe: (key ARN, label), for the
/// S3 pages' key pickers.
pub(crate) async fn symmetric_keys(ctx: &Ctx<'_>) -> Vec<(String, String)> {
    let Ok(v) = ctx.api.kms("ListKeys", json!({ "Limit": 1000 })).await else {
        return vec![];
    };
    let alias_list = aliases(ctx, None).await.unwrap_or_default();
    let mut out = vec![];
    for k in v["Keys"].as_array().into_iter().flatten() {
        let id = s(k, "KeyId");
        let Ok(d) = ctx.api.kms("DescribeKey", json!({ "KeyId": id })).await else {
            continue;
        };
        let m = &d["KeyMetadata"];
        if s(m, "KeyManager") != "CUSTOMER"
            || s(m, "KeySpec") != "SYMMETRIC_DEFAULT"
            || s(m, "KeyState") != "Enabled"
        {
            continue;
        }
        let names: Vec<&str> = alias_list
            .iter()
            .filter(|(t, _)| *t == id)
            .map(|(_, a)| a.as_str())
            .collect();
        let label = if names.is_empty() {
            id.clone()
        } else {
            format!("{} ({id})", names.join(", "))
        };
        out.push((s(m, "Arn"), label));
    }
    out
}
