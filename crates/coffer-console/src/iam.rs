//! IAM pages: users (create with console password, access key, managed policies and groups; a
//! user's permissions, groups, access keys, password; delete with what AWS asks to remove first)
//! and groups (members, policies, delete).
//!
//! Every action is an IAM Query request signed with the session's credentials: what the signed-in
//! principal's policies deny comes back as AccessDenied and is shown in the page.

use crate::api::{ApiError, ApiResult, El, enc};
use crate::layout::{button_form, csrf, row};
use crate::{Ctx, Form, Resp, done, html_response, not_found};
use maud::{Markup, html};

const AWS_POLICY_PREFIX: &str = "arn:aws:iam::aws:policy/";

pub async fn get(ctx: &Ctx<'_>, rest: &[&str]) -> Resp {
    match rest {
        [] | ["users"] => users_page(ctx, None).await,
        // Creation pages live outside users/ and groups/, where any name is an entity's page.
        ["create-user"] => create_user_form(ctx, None, &Form(vec![])).await,
        ["users", name] => user_page(ctx, name, None, None).await,
        ["groups"] => groups_page(ctx, None, "").await,
        ["groups", name] => group_page(ctx, name, None, None).await,
        _ => not_found(ctx),
    }
}

pub async fn post(ctx: &Ctx<'_>, rest: &[&str], f: &Form) -> Resp {
    match rest {
        ["create-user"] => create_user(ctx, f).await,
        ["users", name, action] => user_action(ctx, name, action, f).await,
        ["create-group"] => create_group(ctx, f).await,
        ["groups", name, action] => group_action(ctx, name, action, f).await,
        _ => not_found(ctx),
    }
}

// ---------- shared helpers ----------

const CHANGE_PASSWORD_POLICY: &str = "arn:aws:iam::aws:policy/IAMUserChangePassword";

/// Users or groups: the two kinds of IAM entity these pages manage policies for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    /// The word in IAM action names (AttachUserPolicy, AttachGroupPolicy…).
    fn word(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    fn param(self) -> &'static str {
        match self {
            Kind::User => "UserName",
            Kind::Group => "GroupName",
        }
    }

    fn page(self, name: &str) -> String {
        match self {
            Kind::User => format!("/console/iam/users/{}", enc(name)),
            Kind::Group => format!("/console/iam/groups/{}", enc(name)),
        }
    }
}

fn status_of(e: &ApiError) -> u16 {
    if e.status >= 400 { e.status } else { 500 }
}

fn invalid(msg: &str) -> ApiError {
    ApiError::new("ValidationError", 400, msg)
}

fn section_error(e: &ApiError) -> Markup {
    html! { p.alert.error { (e.to_string()) } }
}

/// A page with an optional error above it (the error's status, else 200).
fn respond(ctx: &Ctx<'_>, title: &str, err: Option<&ApiError>, body: Markup) -> Resp {
    match err {
        Some(e) => html_response(status_of(e), ctx.page_err(title, e, body)),
        None => html_response(200, ctx.page(title, body)),
    }
}

/// Every member of the list `list` across all pages of a paginated IAM action (Marker /
/// IsTruncated), with the first page's whole answer.
async fn paged(
    ctx: &Ctx<'_>,
    action: &str,
    params: &[(&str, &str)],
    list: &str,
) -> ApiResult<(El, Vec<El>)> {
    let mut first: Option<El> = None;
    let mut out = vec![];
    let mut marker = String::new();
    loop {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        p.push(("MaxItems", "1000"));
        if !marker.is_empty() {
            p.push(("Marker", marker.as_str()));
        }
        let x = ctx.api.iam(action, &p).await?;
        out.extend(x.members(list).into_iter().cloned());
        let truncated = x
            .find("IsTruncated")
            .is_some_and(|t| t.text.trim() == "true");
        let next = x
            .find("Marker")
            .map(|m| m.text.trim().to_string())
            .unwrap_or_default();
        if first.is_none() {
            first = Some(x);
        }
        if truncated && !next.is_empty() && next != marker {
            marker = next;
        } else {
            break;
        }
    }
    Ok((first.unwrap_or_default(), out))
}

async fn list_all(
    ctx: &Ctx<'_>,
    action: &str,
    params: &[(&str, &str)],
    list: &str,
) -> ApiResult<Vec<El>> {
    paged(ctx, action, params, list).await.map(|(_, v)| v)
}

/// (name, ARN) of managed policies in `scope` (AWS, Local or All).
async fn policies(ctx: &Ctx<'_>, scope: &str) -> ApiResult<Vec<(String, String)>> {
    let list = list_all(
        ctx,
        "ListPolicies",
        &[("Scope", scope), ("OnlyAttached", "false")],
        "Policies",
    )
    .await?;
    Ok(list
        .iter()
        .map(|m| (m.text_of("PolicyName"), m.text_of("Arn")))
        .collect())
}

async fn group_names(ctx: &Ctx<'_>) -> ApiResult<Vec<String>> {
    let list = list_all(ctx, "ListGroups", &[], "Groups").await?;
    Ok(list.iter().map(|m| m.text_of("GroupName")).collect())
}

async fn user_names(ctx: &Ctx<'_>) -> ApiResult<Vec<String>> {
    let list = list_all(ctx, "ListUsers", &[], "Users").await?;
    Ok(list.iter().map(|m| m.text_of("UserName")).collect())
}

/// (name, ARN) of the managed policies attached to a user or group.
async fn attached(ctx: &Ctx<'_>, kind: Kind, name: &str) -> ApiResult<Vec<(String, String)>> {
    let action = format!("ListAttached{}Policies", kind.word());
    let list = list_all(ctx, &action, &[(kind.param(), name)], "AttachedPolicies").await?;
    Ok(list
        .iter()
        .map(|m| (m.text_of("PolicyName"), m.text_of("PolicyArn")))
        .collect())
}

async fn inline_names(ctx: &Ctx<'_>, kind: Kind, name: &str) -> ApiResult<Vec<String>> {
    let action = format!("List{}Policies", kind.word());
    let list = list_all(ctx, &action, &[(kind.param(), name)], "PolicyNames").await?;
    Ok(list.iter().map(|m| m.text.trim().to_string()).collect())
}

/// The inline policies of a user or group: name → document (URL-decoded, pretty when JSON).
async fn inline_policies(
    ctx: &Ctx<'_>,
    kind: Kind,
    name: &str,
) -> ApiResult<Vec<(String, ApiResult<String>)>> {
    let names = inline_names(ctx, kind, name).await?;
    let action = format!("Get{}Policy", kind.word());
    let mut out = vec![];
    for p in names {
        let doc = ctx
            .api
            .iam(&action, &[(kind.param(), name), ("PolicyName", &p)])
            .await
            .map(|x| {
                let doc = x
                    .find("PolicyDocument")
                    .map(|d| d.text.trim())
                    .unwrap_or("");
                pretty(&decode(doc))
            });
        out.push((p, doc));
    }
    Ok(out)
}

/// Policy documents come URL-encoded in IAM's answers.
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Indents a JSON document, keeping its keys in the order written (serde_json's map would sort
/// them); anything that is not JSON is shown as it is.
fn pretty(doc: &str) -> String {
    if serde_json::from_str::<serde_json::Value>(doc).is_err() {
        return doc.to_string();
    }
    let mut out = String::with_capacity(doc.len() * 2);
    let mut depth = 0usize;
    let (mut in_str, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = doc.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Keep empty objects and arrays on one line.
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|n| *n == '}' || *n == ']') {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// A select of managed policies (AWS managed, then customer managed) not yet attached; a text
/// input for an ARN when the caller may not list policies.
fn policy_select(
    sel_id: &str,
    all: &ApiResult<Vec<(String, String)>>,
    attached: &[(String, String)],
) -> Markup {
    html! {
        @match all {
            Ok(list) => {
                @let free: Vec<&(String, String)> = list
                    .iter()
                    .filter(|(_, arn)| !attached.iter().any(|(_, a)| a == arn))
                    .collect();
                @let aws: Vec<&&(String, String)> = free.iter().filter(|(_, a)| a.starts_with(AWS_POLICY_PREFIX)).collect();
                @let local: Vec<&&(String, String)> = free.iter().filter(|(_, a)| !a.starts_with(AWS_POLICY_PREFIX)).collect();
                select id=(sel_id) name="policy_arn" required {
                    @if !aws.is_empty() {
                        optgroup label="AWS managed" {
                            @for (n, arn) in &aws { option value=(arn) { (n) } }
                        }
                    }
                    @if !local.is_empty() {
                        optgroup label="Customer managed" {
                            @for (n, arn) in &local { option value=(arn) { (n) } }
                        }
                    }
                }
                @if free.is_empty() { p.hint { "Every managed policy is attached already." } }
            }
            Err(e) => {
                input id=(sel_id) name="policy_arn" type="text" required placeholder="arn:aws:iam::aws:policy/AmazonS3FullAccess";
                p.hint { "Policies cannot be listed: " (e.to_string()) }
            }
        }
    }
}

/// The attached managed policies of a user or group, with detach buttons and the attach form.
fn attached_section(
    ctx: &Ctx<'_>,
    kind: Kind,
    name: &str,
    attached: &ApiResult<Vec<(String, String)>>,
    all: &ApiResult<Vec<(String, String)>>,
) -> Markup {
    let base = kind.page(name);
    let (table_id, form_id, sel_id, button_id) = match kind {
        Kind::User => (
            "user-policies",
            "attach-policy",
            "attach-policy-select",
            "attach-policy-button",
        ),
        Kind::Group => (
            "group-policies",
            "attach-group-policy",
            "attach-group-policy-select",
            "attach-group-policy-button",
        ),
    };
    let none: Vec<(String, String)> = vec![];
    html! {
        section.card {
            h2 { "Permissions policies (managed)" }
            @match attached {
                Ok(list) => {
                    table id=(table_id) {
                        thead { tr { th { "Policy name" } th { "Type" } th { "ARN" } th { "Actions" } } }
                        tbody {
                            @for (n, arn) in list {
                                tr data-policy-arn=(arn) {
                                    td { (n) }
                                    td { @if arn.starts_with(AWS_POLICY_PREFIX) { "AWS managed" } @else { "Customer managed" } }
                                    td { (arn) }
                                    td { (button_form(ctx.session, &format!("{base}/detach-policy"), "Detach", "secondary detach-policy", None, &[("policy_arn", arn)], None)) }
                                }
                            }
                        }
                    }
                    @if list.is_empty() { p.hint { "No managed policies attached." } }
                }
                Err(e) => { (section_error(e)) }
            }
            form id=(form_id) method="post" action={ (base) "/attach-policy" } {
                (csrf(ctx.session))
                label for=(sel_id) { "Attach a managed policy" }
                (policy_select(sel_id, all, attached.as_ref().map(|v| v.as_slice()).unwrap_or(&none)))
                button id=(button_id) type="submit" { "Attach policy" }
            }
        }
    }
}

/// Inline policies of a user or group, each shown, with delete buttons and the put form.
fn inline_section(
    ctx: &Ctx<'_>,
    kind: Kind,
    name: &str,
    inline: &ApiResult<Vec<(String, ApiResult<String>)>>,
) -> Markup {
    let base = kind.page(name);
    html! {
        section.card {
            h2 { "Inline policies" }
            @match inline {
                Ok(list) => {
                    table #inline-policies {
                        thead { tr { th { "Policy name" } th { "Document" } th { "Actions" } } }
                        tbody {
                            @for (n, doc) in list {
                                tr data-policy-name=(n) {
                                    td { (n) }
                                    td {
                                        @match doc {
                                            Ok(d) => { pre.policy-document { (d) } }
                                            Err(e) => { (section_error(e)) }
                                        }
                                    }
                                    td { (button_form(ctx.session, &format!("{base}/delete-inline-policy"), "Delete", "secondary delete-inline-policy", None, &[("policy_name", n)], None)) }
                                }
                            }
                        }
                    }
                    @if list.is_empty() { p.hint { "No inline policies." } }
                }
                Err(e) => { (section_error(e)) }
            }
            form #put-inline-policy method="post" action={ (base) "/put-inline-policy" } {
                (csrf(ctx.session))
                h3 { "Add or replace an inline policy" }
                label for="inline-policy-name" { "Policy name" }
                input #inline-policy-name name="policy_name" type="text" required maxlength="128";
                label for="inline-policy-document" { "Policy document (JSON)" }
                textarea #inline-policy-document .policy name="policy_document" required
                    placeholder=r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}"# {}
                button #put-inline-policy-button type="submit" { "Save inline policy" }
            }
        }
    }
}

// ---------- users ----------

async fn users_page(ctx: &Ctx<'_>, err: Option<&ApiError>) -> Resp {
    let users = match list_all(ctx, "ListUsers", &[], "Users").await {
        Ok(u) => u,
        Err(e) => {
            let e = err.cloned().unwrap_or(e);
            return respond(ctx, "Users", Some(&e), html! {});
        }
    };
    let body = html! {
        div.toolbar {
            a #create-user .button href="/console/iam/create-user" { "Create user" }
        }
        table #users {
            thead { tr { th { "User name" } th { "ARN" } th { "Path" } th { "Created" } } }
            tbody {
                @for u in &users {
                    @let name = u.text_of("UserName");
                    tr data-user=(name) {
                        td { a.user-link href={ "/console/iam/users/" (enc(&name)) } { (name) } }
                        td { (u.text_of("Arn")) }
                        td { (u.text_of("Path")) }
                        td { (u.text_of("CreateDate")) }
                    }
                }
            }
        }
        @if users.is_empty() { p.hint { "No IAM users yet." } }
    };
    respond(ctx, "Users", err, body)
}

async fn create_user_form(ctx: &Ctx<'_>, err: Option<&ApiError>, f: &Form) -> Resp {
    let aws = policies(ctx, "AWS").await;
    let local = policies(ctx, "Local").await;
    let groups = group_names(ctx).await;
    let chosen_policies = f.all("policy");
    let chosen_groups = f.all("group");
    let body = html! {
        form #create-user-form method="post" action="/console/iam/create-user" {
            (csrf(ctx.session))
            fieldset {
                legend { "User details" }
                label for="new-username" { "User name" }
                input #new-username name="username" type="text" required maxlength="64"
                    autocomplete="off" value=(f.val("username"));
                p.hint { "Up to 64 letters, digits and + = , . @ _ -" }
                label.check for="console-access" {
                    input #console-access type="checkbox" name="console_access" value="on" checked[f.checked("console_access")];
                    "Provide access to the Coffer console (a console password)"
                }
                label for="new-password" { "Console password" }
                input #new-password name="password" type="password" autocomplete="new-password";
                p.hint { "Used only when console access is chosen. The user signs in with account "
                    (ctx.session.account) ", their user name and this password." }
                label.check for="password-reset-required" {
                    input #password-reset-required type="checkbox" name="password_reset" value="on" checked[f.checked("password_reset")];
                    "User must create a new password at next sign-in (attaches IAMUserChangePassword)"
                }
                label.check for="create-access-key" {
                    input #create-access-key type="checkbox" name="access_key" value="on" checked[f.checked("access_key")];
                    "Create an access key (for the CLI and SDKs; the secret is shown once)"
                }
            }
            fieldset {
                legend { "Permissions: attach policies directly" }
                @match &aws {
                    Ok(list) => {
                        @for (n, arn) in list {
                            label.check for={ "policy-" (n) } {
                                input id={ "policy-" (n) } type="checkbox" name="policy" value=(arn) checked[chosen_policies.contains(&arn.as_str())];
                                (n)
                            }
                        }
                    }
                    Err(e) => { p.hint { "AWS managed policies cannot be listed: " (e.to_string()) } }
                }
                @if let Ok(list) = &local {
                    @if !list.is_empty() {
                        p { strong { "Customer managed" } }
                        @for (n, arn) in list {
                            label.check for={ "customer-policy-" (n) } {
                                input id={ "customer-policy-" (n) } type="checkbox" name="policy" value=(arn) checked[chosen_policies.contains(&arn.as_str())];
                                (n)
                            }
                        }
                    }
                }
            }
            fieldset {
                legend { "Permissions: add to groups" }
                @match &groups {
                    Ok(list) => {
                        @for g in list {
                            label.check for={ "group-" (g) } {
                                input id={ "group-" (g) } type="checkbox" name="group" value=(g) checked[chosen_groups.contains(&g.as_str())];
                                (g)
                            }
                        }
                        @if list.is_empty() { p.hint { "No groups yet." } }
                    }
                    Err(e) => { p.hint { "Groups cannot be listed: " (e.to_string()) } }
                }
            }
            button #create-user-button type="submit" { "Create user" }
            " "
            a.button.secondary href="/console/iam/users" { "Cancel" }
        }
    };
    respond(ctx, "Create user", err, body)
}

/// The one-time display of a new access key.
fn new_key_box(id: &str, secret: &str) -> Markup {
    html! {
        section.card #new-access-key {
            h2 { "New access key" }
            p.alert role="note" {
                strong { "This is the only time the secret access key is shown. " }
                "Copy it now and keep it safe: it cannot be retrieved later (create a new key if it is lost)."
            }
            dl.props {
                dt { "Access key ID" }
                dd #new-access-key-id .secret { (id) }
                dt { "Secret access key" }
                dd #new-secret-access-key .secret { (secret) }
            }
        }
    }
}

fn steps_list(steps: &[String]) -> Markup {
    html! {
        @if !steps.is_empty() {
            section.card {
                h2 { "Done" }
                ul #steps-done { @for s in steps { li { (s) } } }
            }
        }
    }
}

async fn create_user(ctx: &Ctx<'_>, f: &Form) -> Resp {
    let name = f.val("username").trim().to_string();
    if name.is_empty() {
        return create_user_form(ctx, Some(&invalid("Enter a user name.")), f).await;
    }
    let console = f.checked("console_access");
    let password = f.val("password");
    if console && password.is_empty() {
        let e =
            invalid("Console access needs a password: enter one, or clear the console access box.");
        return create_user_form(ctx, Some(&e), f).await;
    }
    if let Err(e) = ctx.api.iam("CreateUser", &[("UserName", &name)]).await {
        return create_user_form(ctx, Some(&e), f).await;
    }
    let mut steps = vec![format!("Created user {name}.")];
    let mut key: Option<(String, String)> = None;
    let reset = console && f.checked("password_reset");
    let mut policies = f.all("policy");
    // As the AWS console does: a user who must change their password may do so.
    if reset && !policies.contains(&CHANGE_PASSWORD_POLICY) {
        policies.push(CHANGE_PASSWORD_POLICY);
    }
    let result: ApiResult<()> = async {
        if console {
            ctx.api
                .iam(
                    "CreateLoginProfile",
                    &[
                        ("UserName", &name),
                        ("Password", password),
                        (
                            "PasswordResetRequired",
                            if reset { "true" } else { "false" },
                        ),
                    ],
                )
                .await?;
            steps.push("Set the console password.".into());
        }
        for arn in policies {
            ctx.api
                .iam(
                    "AttachUserPolicy",
                    &[("UserName", &name), ("PolicyArn", arn)],
                )
                .await?;
            steps.push(format!("Attached policy {arn}."));
        }
        for g in f.all("group") {
            ctx.api
                .iam("AddUserToGroup", &[("UserName", &name), ("GroupName", g)])
                .await?;
            steps.push(format!("Added to group {g}."));
        }
        if f.checked("access_key") {
            let x = ctx
                .api
                .iam("CreateAccessKey", &[("UserName", &name)])
                .await?;
            let k = x.find("AccessKey").cloned().unwrap_or_default();
            steps.push("Created an access key.".into());
            key = Some((k.text_of("AccessKeyId"), k.text_of("SecretAccessKey")));
        }
        Ok(())
    }
    .await;
    let user_url = Kind::User.page(&name);
    let body = html! {
        section.card {
            p { "User " a #created-user href=(user_url) { (name) } @if result.is_ok() { " was created." } @else { " was created, but not every step succeeded." } }
            @if console && result.is_ok() {
                p #signin-info { "Console sign-in: account " strong #signin-account { (ctx.session.account) } ", user name " strong { (name) } "." }
            }
        }
        @if let Some((id, secret)) = &key { (new_key_box(id, secret)) }
        (steps_list(&steps))
        div.toolbar {
            a.button href=(user_url) { "View user" }
            a.button.secondary href="/console/iam/users" { "Back to users" }
        }
    };
    match &result {
        Ok(()) => {
            ctx.flash(format!("User {name} created."));
            respond(ctx, "User created", None, body)
        }
        Err(e) => respond(ctx, "User created with errors", Some(e), body),
    }
}

struct UserView {
    user: El,
    attached: ApiResult<Vec<(String, String)>>,
    all_policies: ApiResult<Vec<(String, String)>>,
    inline: ApiResult<Vec<(String, ApiResult<String>)>>,
    groups: ApiResult<Vec<String>>,
    all_groups: ApiResult<Vec<String>>,
    keys: ApiResult<Vec<El>>,
    /// Some(created) when a login profile exists, None when not.
    login: ApiResult<Option<String>>,
}

async fn load_user(ctx: &Ctx<'_>, name: &str) -> ApiResult<UserView> {
    let x = ctx.api.iam("GetUser", &[("UserName", name)]).await?;
    let user = x.find("User").cloned().unwrap_or_default();
    let real = user.text_of("UserName");
    let name = if real.is_empty() { name } else { real.as_str() };
    let groups = list_all(ctx, "ListGroupsForUser", &[("UserName", name)], "Groups")
        .await
        .map(|v| v.iter().map(|g| g.text_of("GroupName")).collect());
    let login = match ctx.api.iam("GetLoginProfile", &[("UserName", name)]).await {
        Ok(x) => Ok(Some(
            x.find("CreateDate")
                .map(|c| c.text.trim().to_string())
                .unwrap_or_default(),
        )),
        Err(e) if e.code == "NoSuchEntity" => Ok(None),
        Err(e) => Err(e),
    };
    Ok(UserView {
        attached: attached(ctx, Kind::User, name).await,
        all_policies: policies(ctx, "All").await,
        inline: inline_policies(ctx, Kind::User, name).await,
        groups,
        all_groups: group_names(ctx).await,
        keys: list_all(
            ctx,
            "ListAccessKeys",
            &[("UserName", name)],
            "AccessKeyMetadata",
        )
        .await,
        login,
        user,
    })
}

async fn user_page(
    ctx: &Ctx<'_>,
    name: &str,
    err: Option<ApiError>,
    extra: Option<Markup>,
) -> Resp {
    let uv = match load_user(ctx, name).await {
        Ok(uv) => uv,
        Err(e) => {
            let e = err.unwrap_or(e);
            let body = html! {
                @if let Some(x) = extra { (x) }
                p { a href="/console/iam/users" { "Back to users" } }
            };
            return respond(ctx, &format!("User {name}"), Some(&e), body);
        }
    };
    let u = &uv.user;
    let real = u.text_of("UserName");
    let name = if real.is_empty() {
        name.to_string()
    } else {
        real
    };
    let base = Kind::User.page(&name);
    let act = |a: &str| format!("{base}/{a}");
    let sess = ctx.session;
    let body = html! {
        @if let Some(x) = extra { (x) }
        section.card {
            h2 { "Summary" }
            dl.props {
                (row("ARN", "user-arn", &u.text_of("Arn")))
                (row("User ID", "user-id", &u.text_of("UserId")))
                (row("Path", "user-path", &u.text_of("Path")))
                (row("Created", "user-created", &u.text_of("CreateDate")))
                @let last = u.text_of("PasswordLastUsed");
                @if !last.is_empty() { (row("Console last sign-in", "user-password-last-used", &last)) }
            }
        }
        (attached_section(ctx, Kind::User, &name, &uv.attached, &uv.all_policies))
        (inline_section(ctx, Kind::User, &name, &uv.inline))
        section.card {
            h2 { "Groups" }
            @match &uv.groups {
                Ok(list) => {
                    ul #user-groups {
                        @for g in list {
                            li data-group=(g) {
                                a.group-link href={ "/console/iam/groups/" (enc(g)) } { (g) }
                                " "
                                (button_form(sess, &act("remove-from-group"), "Remove", "secondary remove-from-group", None, &[("group", g)], None))
                            }
                        }
                    }
                    @if list.is_empty() { p.hint { "Not a member of any group." } }
                }
                Err(e) => { (section_error(e)) }
            }
            form #add-to-group method="post" action=(act("add-to-group")) {
                (csrf(sess))
                label for="group-select" { "Add to a group" }
                @match &uv.all_groups {
                    Ok(all) => {
                        @let mine: &[String] = uv.groups.as_ref().map(|v| v.as_slice()).unwrap_or(&[]);
                        select #group-select name="group" required {
                            @for g in all.iter().filter(|g| !mine.contains(g)) { option value=(g) { (g) } }
                        }
                        @if all.iter().all(|g| mine.contains(g)) { p.hint { "No other groups: create one on the groups page." } }
                    }
                    Err(e) => {
                        input #group-select name="group" type="text" required;
                        p.hint { "Groups cannot be listed: " (e.to_string()) }
                    }
                }
                button #add-to-group-button type="submit" { "Add to group" }
            }
        }
        section.card {
            h2 { "Access keys" }
            @match &uv.keys {
                Ok(keys) => {
                    table #access-keys {
                        thead { tr { th { "Access key ID" } th { "Status" } th { "Created" } th { "Actions" } } }
                        tbody {
                            @for k in keys {
                                @let id = k.text_of("AccessKeyId");
                                @let status = k.text_of("Status");
                                tr data-access-key-id=(id) data-status=(status) {
                                    td { (id) }
                                    td class={ "access-key-status state-" @if status == "Active" { "Enabled" } @else { "Disabled" } } { (status) }
                                    td { (k.text_of("CreateDate")) }
                                    td {
                                        @if status == "Active" {
                                            (button_form(sess, &act("update-access-key"), "Make inactive", "secondary deactivate-access-key", None, &[("access_key_id", &id), ("status", "Inactive")], None))
                                        } @else {
                                            (button_form(sess, &act("update-access-key"), "Make active", "secondary activate-access-key", None, &[("access_key_id", &id), ("status", "Active")], None))
                                        }
                                        (button_form(sess, &act("delete-access-key"), "Delete", "danger delete-access-key", None, &[("access_key_id", &id)], None))
                                    }
                                }
                            }
                        }
                    }
                    @if keys.is_empty() { p.hint { "No access keys." } }
                }
                Err(e) => { (section_error(e)) }
            }
            form #create-access-key-form method="post" action=(act("create-access-key")) {
                (csrf(sess))
                button #create-access-key-button type="submit" { "Create access key" }
                span.hint { " A user can have at most two access keys." }
            }
        }
        section.card {
            h2 { "Console password" }
            @match &uv.login {
                Ok(Some(created)) => {
                    p { "Console access: " span #console-access-status { "Enabled" } @if !created.is_empty() { " (password set " (created) ")" } }
                }
                Ok(None) => {
                    p { "Console access: " span #console-access-status { "Disabled" } }
                }
                Err(e) => { (section_error(e)) }
            }
            form #set-password method="post" action=(act("set-password")) {
                (csrf(sess))
                label for="set-password-input" { "New console password" }
                input #set-password-input name="password" type="password" autocomplete="new-password" required;
                button #set-password-button type="submit" { "Set password" }
            }
            @if matches!(uv.login, Ok(Some(_))) {
                form #delete-login-profile method="post" action=(act("delete-login-profile")) {
                    (csrf(sess))
                    button #delete-login-profile-button .secondary type="submit" { "Remove console access" }
                }
            }
        }
        section.card {
            h2 { "Delete user" }
            p.hint { "Deleting the user first removes its console password, deletes its access keys, detaches its managed policies, deletes its inline policies and removes it from its groups." }
            form #delete-user method="post" action=(act("delete")) {
                (csrf(sess))
                label for="delete-confirm" { "To confirm, type the user name (" (name) ")" }
                input #delete-confirm name="confirm" type="text" autocomplete="off" required;
                button #delete-user-button .danger type="submit" { "Delete user" }
            }
        }
    };
    respond(ctx, &format!("User {name}"), err.as_ref(), body)
}

/// Detaches every managed policy of a user or group and deletes its inline policies (before
/// deleting it, as IAM requires), noting each step.
async fn remove_policies(
    ctx: &Ctx<'_>,
    kind: Kind,
    name: &str,
    steps: &mut Vec<String>,
) -> ApiResult<()> {
    let w = kind.word();
    for (_, arn) in attached(ctx, kind, name).await? {
        ctx.api
            .iam(
                &format!("Detach{w}Policy"),
                &[(kind.param(), name), ("PolicyArn", &arn)],
            )
            .await?;
        steps.push(format!("Detached policy {arn}."));
    }
    for p in inline_names(ctx, kind, name).await? {
        ctx.api
            .iam(
                &format!("Delete{w}Policy"),
                &[(kind.param(), name), ("PolicyName", &p)],
            )
            .await?;
        steps.push(format!("Deleted inline policy {p}."));
    }
    Ok(())
}

/// Deletes a user and what AWS asks to remove first. Returns the steps done and the outcome.
async fn delete_user(ctx: &Ctx<'_>, name: &str) -> (Vec<String>, ApiResult<()>) {
    let mut steps = vec![];
    let r: ApiResult<()> = async {
        let u = [("UserName", name)];
        match ctx.api.iam("DeleteLoginProfile", &u).await {
            Ok(_) => steps.push("Removed the console password.".to_string()),
            Err(e) if e.code == "NoSuchEntity" => {}
            Err(e) => return Err(e),
        }
        for k in list_all(ctx, "ListAccessKeys", &u, "AccessKeyMetadata").await? {
            let id = k.text_of("AccessKeyId");
            ctx.api
                .iam(
                    "DeleteAccessKey",
                    &[("UserName", name), ("AccessKeyId", &id)],
                )
                .await?;
            steps.push(format!("Deleted access key {id}."));
        }
        remove_policies(ctx, Kind::User, name, &mut steps).await?;
        for g in list_all(ctx, "ListGroupsForUser", &u, "Groups").await? {
            let g = g.text_of("GroupName");
            ctx.api
                .iam(
                    "RemoveUserFromGroup",
                    &[("UserName", name), ("GroupName", &g)],
                )
                .await?;
            steps.push(format!("Removed from group {g}."));
        }
        ctx.api.iam("DeleteUser", &u).await?;
        Ok(())
    }
    .await;
    (steps, r)
}

/// Sets the console password: creates the login profile, or updates the existing one.
async fn set_password(ctx: &Ctx<'_>, name: &str, password: &str) -> ApiResult<String> {
    if password.is_empty() {
        return Err(invalid("Enter a password."));
    }
    let p = [
        ("UserName", name),
        ("Password", password),
        ("PasswordResetRequired", "false"),
    ];
    match ctx.api.iam("GetLoginProfile", &[("UserName", name)]).await {
        Ok(_) => {
            ctx.api.iam("UpdateLoginProfile", &p).await?;
            Ok("Console password changed.".into())
        }
        Err(e) if e.code == "NoSuchEntity" => {
            ctx.api.iam("CreateLoginProfile", &p).await?;
            Ok("Console password set: the user can sign in to the console.".into())
        }
        Err(e) => Err(e),
    }
}

/// Actions shared by users and groups: managed and inline policies.
async fn policy_action(
    ctx: &Ctx<'_>,
    kind: Kind,
    name: &str,
    action: &str,
    f: &Form,
) -> Option<ApiResult<String>> {
    let w = kind.word();
    let who = (kind.param(), name);
    let r = match action {
        "attach-policy" => {
            let arn = f.val("policy_arn").trim();
            if arn.is_empty() {
                return Some(Err(invalid("Choose a policy to attach.")));
            }
            ctx.api
                .iam(&format!("Attach{w}Policy"), &[who, ("PolicyArn", arn)])
                .await
                .map(|_| format!("Policy {} attached.", arn.rsplit('/').next().unwrap_or(arn)))
        }
        "detach-policy" => {
            let arn = f.val("policy_arn");
            ctx.api
                .iam(&format!("Detach{w}Policy"), &[who, ("PolicyArn", arn)])
                .await
                .map(|_| format!("Policy {} detached.", arn.rsplit('/').next().unwrap_or(arn)))
        }
        "put-inline-policy" => {
            let pname = f.val("policy_name").trim();
            ctx.api
                .iam(
                    &format!("Put{w}Policy"),
                    &[
                        who,
                        ("PolicyName", pname),
                        ("PolicyDocument", f.val("policy_document")),
                    ],
                )
                .await
                .map(|_| format!("Inline policy {pname} saved."))
        }
        "delete-inline-policy" => {
            let pname = f.val("policy_name");
            ctx.api
                .iam(&format!("Delete{w}Policy"), &[who, ("PolicyName", pname)])
                .await
                .map(|_| format!("Inline policy {pname} deleted."))
        }
        _ => return None,
    };
    Some(r)
}

/// Adds `user` to `group` (or removes it), from either one's page.
async fn membership(ctx: &Ctx<'_>, user: &str, group: &str, add: bool) -> ApiResult<()> {
    if add && (user.is_empty() || group.is_empty()) {
        return Err(invalid(if user.is_empty() {
            "Choose a user."
        } else {
            "Choose a group."
        }));
    }
    let action = if add {
        "AddUserToGroup"
    } else {
        "RemoveUserFromGroup"
    };
    ctx.api
        .iam(action, &[("UserName", user), ("GroupName", group)])
        .await
        .map(|_| ())
}

async fn user_action(ctx: &Ctx<'_>, name: &str, action: &str, f: &Form) -> Resp {
    let u = ("UserName", name);
    let result: ApiResult<String> = match action {
        "add-to-group" => membership(ctx, name, f.val("group").trim(), true)
            .await
            .map(|_| format!("Added to group {}.", f.val("group").trim())),
        "remove-from-group" => membership(ctx, name, f.val("group"), false)
            .await
            .map(|_| format!("Removed from group {}.", f.val("group"))),
        "create-access-key" => {
            return match ctx.api.iam("CreateAccessKey", &[u]).await {
                Ok(x) => {
                    let k = x.find("AccessKey").cloned().unwrap_or_default();
                    ctx.flash("Access key created.");
                    let extra =
                        new_key_box(&k.text_of("AccessKeyId"), &k.text_of("SecretAccessKey"));
                    user_page(ctx, name, None, Some(extra)).await
                }
                Err(e) => user_page(ctx, name, Some(e), None).await,
            };
        }
        "update-access-key" => {
            let id = f.val("access_key_id");
            let status = if f.val("status") == "Active" {
                "Active"
            } else {
                "Inactive"
            };
            ctx.api
                .iam(
                    "UpdateAccessKey",
                    &[u, ("AccessKeyId", id), ("Status", status)],
                )
                .await
                .map(|_| format!("Access key {id} is now {}.", status.to_lowercase()))
        }
        "delete-access-key" => {
            let id = f.val("access_key_id");
            ctx.api
                .iam("DeleteAccessKey", &[u, ("AccessKeyId", id)])
                .await
                .map(|_| format!("Access key {id} deleted."))
        }
        "set-password" => set_password(ctx, name, f.val("password")).await,
        "delete-login-profile" => ctx
            .api
            .iam("DeleteLoginProfile", &[u])
            .await
            .map(|_| "Console access removed.".into()),
        "delete" => {
            if f.val("confirm").trim() != name {
                let e = invalid(&format!(
                    "To delete the user, type its name ({name}) in the confirmation box."
                ));
                return user_page(ctx, name, Some(e), None).await;
            }
            let (steps, r) = delete_user(ctx, name).await;
            return match r {
                Ok(()) => done(ctx, "/console/iam/users", format!("User {name} deleted.")),
                Err(e) => user_page(ctx, name, Some(e), Some(steps_list(&steps))).await,
            };
        }
        _ => match policy_action(ctx, Kind::User, name, action, f).await {
            Some(r) => r,
            None => return not_found(ctx),
        },
    };
    match result {
        Ok(msg) => done(ctx, &Kind::User.page(name), msg),
        Err(e) => user_page(ctx, name, Some(e), None).await,
    }
}

// ---------- groups ----------

async fn groups_page(ctx: &Ctx<'_>, err: Option<&ApiError>, typed: &str) -> Resp {
    let groups = list_all(ctx, "ListGroups", &[], "Groups").await;
    let body = html! {
        @match &groups {
            Ok(list) => {
                table #groups {
                    thead { tr { th { "Group name" } th { "ARN" } th { "Path" } th { "Created" } } }
                    tbody {
                        @for g in list {
                            @let name = g.text_of("GroupName");
                            tr data-group=(name) {
                                td { a.group-link href={ "/console/iam/groups/" (enc(&name)) } { (name) } }
                                td { (g.text_of("Arn")) }
                                td { (g.text_of("Path")) }
                                td { (g.text_of("CreateDate")) }
                            }
                        }
                    }
                }
                @if list.is_empty() { p.hint { "No groups yet." } }
            }
            Err(e) => { (section_error(e)) }
        }
        section.card {
            h2 { "Create group" }
            form #create-group method="post" action="/console/iam/create-group" {
                (csrf(ctx.session))
                label for="new-group-name" { "Group name" }
                input #new-group-name name="group" type="text" required maxlength="128" autocomplete="off" value=(typed);
                button #create-group-button type="submit" { "Create group" }
            }
        }
    };
    // A denied listing with no other error is the page's error.
    let err = match (err, &groups) {
        (Some(e), _) => Some(e.clone()),
        (None, Err(e)) => Some(e.clone()),
        _ => None,
    };
    respond(ctx, "Groups", err.as_ref(), body)
}

async fn create_group(ctx: &Ctx<'_>, f: &Form) -> Resp {
    let name = f.val("group").trim();
    if name.is_empty() {
        return groups_page(ctx, Some(&invalid("Enter a group name.")), name).await;
    }
    match ctx.api.iam("CreateGroup", &[("GroupName", name)]).await {
        Ok(_) => done(
            ctx,
            &Kind::Group.page(name),
            format!("Group {name} created."),
        ),
        Err(e) => groups_page(ctx, Some(&e), name).await,
    }
}

async fn group_page(
    ctx: &Ctx<'_>,
    name: &str,
    err: Option<ApiError>,
    extra: Option<Markup>,
) -> Resp {
    let (first, members) = match paged(ctx, "GetGroup", &[("GroupName", name)], "Users").await {
        Ok(x) => x,
        Err(e) => {
            let e = err.unwrap_or(e);
            let body = html! {
                @if let Some(x) = extra { (x) }
                p { a href="/console/iam/groups" { "Back to groups" } }
            };
            return respond(ctx, &format!("Group {name}"), Some(&e), body);
        }
    };
    let g = first.find("Group").cloned().unwrap_or_default();
    let real = g.text_of("GroupName");
    let name = if real.is_empty() {
        name.to_string()
    } else {
        real
    };
    let attached_list = attached(ctx, Kind::Group, &name).await;
    let all_policies = policies(ctx, "All").await;
    let inline = inline_policies(ctx, Kind::Group, &name).await;
    let all_users = user_names(ctx).await;
    let member_names: Vec<String> = members.iter().map(|m| m.text_of("UserName")).collect();
    let base = Kind::Group.page(&name);
    let act = |a: &str| format!("{base}/{a}");
    let sess = ctx.session;
    let body = html! {
        @if let Some(x) = extra { (x) }
        section.card {
            h2 { "Summary" }
            dl.props {
                (row("ARN", "group-arn", &g.text_of("Arn")))
                (row("Group ID", "group-id", &g.text_of("GroupId")))
                (row("Path", "group-path", &g.text_of("Path")))
                (row("Created", "group-created", &g.text_of("CreateDate")))
            }
        }
        section.card {
            h2 { "Users in this group" }
            ul #group-members {
                @for m in &member_names {
                    li data-user=(m) {
                        a.user-link href={ "/console/iam/users/" (enc(m)) } { (m) }
                        " "
                        (button_form(sess, &act("remove-member"), "Remove", "secondary remove-member", None, &[("user", m)], None))
                    }
                }
            }
            @if member_names.is_empty() { p.hint { "No users in this group." } }
            form #add-group-member method="post" action=(act("add-member")) {
                (csrf(sess))
                label for="member-select" { "Add a user" }
                @match &all_users {
                    Ok(all) => {
                        select #member-select name="user" required {
                            @for u in all.iter().filter(|u| !member_names.contains(u)) { option value=(u) { (u) } }
                        }
                        @if all.iter().all(|u| member_names.contains(u)) { p.hint { "Every user is in this group already." } }
                    }
                    Err(e) => {
                        input #member-select name="user" type="text" required;
                        p.hint { "Users cannot be listed: " (e.to_string()) }
                    }
                }
                button #add-group-member-button type="submit" { "Add user" }
            }
        }
        (attached_section(ctx, Kind::Group, &name, &attached_list, &all_policies))
        (inline_section(ctx, Kind::Group, &name, &inline))
        section.card {
            h2 { "Delete group" }
            p.hint { "Deleting the group first removes its users, detaches its managed policies and deletes its inline policies." }
            form #delete-group method="post" action=(act("delete")) {
                (csrf(sess))
                button #delete-group-button .danger type="submit" { "Delete group" }
            }
        }
    };
    respond(ctx, &format!("Group {name}"), err.as_ref(), body)
}

/// Deletes a group after removing its members and policies. Returns the steps done and the outcome.
async fn delete_group(ctx: &Ctx<'_>, name: &str) -> (Vec<String>, ApiResult<()>) {
    let mut steps = vec![];
    let r: ApiResult<()> = async {
        let g = [("GroupName", name)];
        for m in list_all(ctx, "GetGroup", &g, "Users").await? {
            let u = m.text_of("UserName");
            ctx.api
                .iam(
                    "RemoveUserFromGroup",
                    &[("GroupName", name), ("UserName", &u)],
                )
                .await?;
            steps.push(format!("Removed user {u}."));
        }
        remove_policies(ctx, Kind::Group, name, &mut steps).await?;
        ctx.api.iam("DeleteGroup", &g).await?;
        Ok(())
    }
    .await;
    (steps, r)
}

async fn group_action(ctx: &Ctx<'_>, name: &str, action: &str, f: &Form) -> Resp {
    let result: ApiResult<String> = match action {
        "add-member" => membership(ctx, f.val("user").trim(), name, true)
            .await
            .map(|_| format!("User {} added.", f.val("user").trim())),
        "remove-member" => membership(ctx, f.val("user"), name, false)
            .await
            .map(|_| format!("User {} removed.", f.val("user"))),
        "delete" => {
            let (steps, r) = delete_group(ctx, name).await;
            return match r {
                Ok(()) => done(ctx, "/console/iam/groups", format!("Group {name} deleted.")),
                Err(e) => group_page(ctx, name, Some(e), Some(steps_list(&steps))).await,
            };
        }
        _ => match policy_action(ctx, Kind::Group, name, action, f).await {
            Some(r) => r,
            None => return not_found(ctx),
        },
    };
    match result {
        Ok(msg) => done(ctx, &Kind::Group.page(name), msg),
        Err(e) => group_page(ctx, name, Some(e), None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_keeps_key_order() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:Get*", "a,b\\\"{"],"Resource":"*","Condition":{}}]}"#;
        let p = pretty(doc);
        assert!(p.find("Version").unwrap() < p.find("Statement").unwrap());
        let a: serde_json::Value = serde_json::from_str(doc).unwrap();
        let b: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(a, b);
        assert!(p.contains("\"Condition\": {}"));
        assert_eq!(pretty("not json"), "not json");
        assert_eq!(decode("%7B%22a%22%3A1%7D"), r#"{"a":1}"#);
    }
}
