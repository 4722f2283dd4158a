//! The page frame, sign-in page and small shared widgets.

use crate::Session;
use crate::api::ApiError;
use maud::{DOCTYPE, Markup, html};

/// A whole page: header with navigation and identity, messages, then `body`.
pub fn page(
    title: &str,
    session: Option<&Session>,
    flash: Option<&str>,
    err: Option<&ApiError>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Coffer console" }
                link rel="stylesheet" href="/console/static/app.css";
                script src="/console/static/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console" { "Coffer" }
                    @if let Some(s) = session {
                        nav #nav aria-label="Services" {
                            a #nav-kms href="/console/kms" { "Key Management Service" }
                            a #nav-s3 href="/console/s3" { "S3" }
                            a #nav-iam href="/console/iam/users" { "IAM users" }
                            a #nav-groups href="/console/iam/groups" { "IAM groups" }
                        }
                        div.who {
                            span #whoami title="Signed in as" { (s.arn) }
                            @if !s.is_root {
                                a #change-password-link href="/console/change-password" { "Change password" }
                            }
                            form #signout method="post" action="/console/signout" {
                                (csrf(s))
                                button #signout-button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(e) = err {
                        div #error .alert.error role="alert" { (e.to_string()) }
                    }
                    @if let Some(f) = flash {
                        div #flash .alert.ok role="status" { (f) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// A one-button form posting to `action` (with optional hidden fields).
pub fn button_form(
    s: &Session,
    action: &str,
    label: &str,
    class: &str,
    id: Option<&str>,
    hidden: &[(&str, &str)],
    confirm: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf(s))
            @for (k, v) in hidden {
                input type="hidden" name=(k) value=(v);
            }
            button type="submit" class=(class) id=[id] { (label) }
        }
    }
}

pub fn signin(token: &str, err: Option<&ApiError>) -> Markup {
    let body = html! {
        div.signin {
            section.card {
                h2 { "IAM user" }
                form #signin-iam method="post" action="/console/signin" {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="kind" value="iam";
                    label for="account" { "Account ID or alias" }
                    input #account name="account" type="text" autocomplete="off" required;
                    label for="username" { "IAM user name" }
                    input #username name="username" type="text" autocomplete="username" required;
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button #signin-iam-button type="submit" { "Sign in" }
                }
            }
            section.card {
                h2 { "Root user" }
                p.hint { "Sign in with the root user's access key pair (printed at the first start, or in the data directory's root-credentials file)." }
                form #signin-root method="post" action="/console/signin" {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="kind" value="root";
                    label for="access_key_id" { "Access key ID" }
                    input #access_key_id name="access_key_id" type="text" autocomplete="off" required;
                    label for="secret_access_key" { "Secret access key" }
                    input #secret_access_key name="secret_access_key" type="password" autocomplete="off" required;
                    button #signin-root-button type="submit" { "Sign in" }
                }
            }
        }
    };
    page("Sign in", None, None, err, body)
}

/// A definition list row.
pub fn row(label: &str, id: &str, value: &str) -> Markup {
    html! {
        dt { (label) }
        dd id=(id) { (value) }
    }
}

/// Formats an ISO-8601 or epoch-seconds timestamp for display.
pub fn when(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => n
            .as_f64()
            .and_then(|f| time::OffsetDateTime::from_unix_timestamp(f as i64).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        serde_json::Value::String(s) => s.clone(),
        _ => String::new(),
    }
}
