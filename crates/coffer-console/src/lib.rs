//! Coffer's web console, served at `/console` on the API endpoint.
//!
//! Pages are rendered on the server (maud); the one script and stylesheet are embedded in the
//! binary. A signed-in person holds a console session: temporary credentials of their IAM user
//! (or of the root user), made at sign-in and ended at sign-out. Every action the console takes
//! is a real SigV4-signed API request with those credentials, dispatched in-process to the same
//! service operations and policy engine as any client's: the console has no authority of its own.

pub mod api;
mod iam;
mod kms;
pub mod layout;
pub mod policy;
mod s3;

use api::{Api, ApiError, Creds};
use bytes::Bytes;
use coffer_iam::Iam;
use coffer_iam::model::KeyOwner;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use maud::{Markup, html};
use parking_lot::Mutex;
use s3s::Body;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Sends an API request to the gateway, as if it came from `peer` (in-process, no socket).
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync {
    async fn dispatch(&self, req: Request<Body>, peer: SocketAddr) -> Response<Body>;
}

/// How long a console session lasts (AWS console sessions last up to 12 hours).
const SESSION_SECONDS: i64 = 12 * 3600;
/// Failed sign-ins allowed per client address, and per user name, within `FAIL_WINDOW`.
const MAX_FAILURES: u32 = 5;
const FAIL_WINDOW: i64 = 600;
/// Password verifications (argon2id, 19 MiB each) allowed to run at once.
const MAX_VERIFYING: usize = 4;
/// Most failure counters kept at once.
const MAX_TRACKED: usize = 100_000;
/// Largest form body accepted (policies are at most a few KiB; 1 MiB is generous).
const MAX_FORM: usize = 1 << 20;
const SESSION_COOKIE: &str = "coffer_session";
const SIGNIN_COOKIE: &str = "coffer_signin";

const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");

/// A signed-in person.
pub struct Session {
    pub creds: Creds,
    pub csrf: String,
    /// Wall-clock end of the session (unix seconds).
    pub expires: i64,
    pub arn: String,
    pub account: String,
    pub is_root: bool,
    /// A message for the next page shown (after a redirect).
    pub flash: Mutex<Option<String>>,
    /// The user must set a new password before anything else (login profile reset required).
    pub must_change_password: std::sync::atomic::AtomicBool,
}

pub struct Console {
    iam: Arc<Iam>,
    region: String,
    secure: bool,
    /// By SHA-256 of the cookie value: the value itself is not kept.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Sign-in attempts not given back by a success: key → (count, window start).
    failures: Mutex<HashMap<String, (u32, i64)>>,
    /// Password verifications running at once.
    verifying: tokio::sync::Semaphore,
}

/// What a page handler gets.
pub struct Ctx<'a> {
    pub session: &'a Arc<Session>,
    pub api: Api<'a>,
    pub query: Vec<(String, String)>,
}

impl Ctx<'_> {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets the message shown on the next page.
    pub fn flash(&self, msg: impl Into<String>) {
        *self.session.flash.lock() = Some(msg.into());
    }

    pub fn take_flash(&self) -> Option<String> {
        self.session.flash.lock().take()
    }

    /// A full page for this session.
    pub fn page(&self, title: &str, body: Markup) -> Markup {
        layout::page(
            title,
            Some(self.session),
            self.take_flash().as_deref(),
            None,
            body,
        )
    }

    /// A full page showing `err` above `body`.
    pub fn page_err(&self, title: &str, err: &ApiError, body: Markup) -> Markup {
        layout::page(title, Some(self.session), None, Some(err), body)
    }
}

/// A submitted form.
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn val(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }
}

pub type Resp = Response<Body>;

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub fn html_response(status: u16, m: Markup) -> Resp {
    let mut r = Response::new(Body::from(m.into_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(r.headers_mut());
    r
}

pub fn redirect(to: &str) -> Resp {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    security_headers(r.headers_mut());
    r
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(coffer_core::ids::token(32))
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Splits a console path after `/console` into decoded segments.
fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches("/console")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

impl Console {
    pub fn new(iam: Arc<Iam>, region: String, secure: bool) -> Self {
        Console {
            iam,
            region,
            secure,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            verifying: tokio::sync::Semaphore::new(MAX_VERIFYING),
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn session_of(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let v = cookie_value(headers, SESSION_COOKIE)?;
        let k = coffer_crypto::sha256_hex(v.as_bytes());
        let mut map = self.sessions.lock();
        let s = map.get(&k)?.clone();
        if s.expires <= now_unix() {
            map.remove(&k);
            return None;
        }
        Some(s)
    }

    /// Handles a request for `/console…`.
    pub async fn handle(
        &self,
        parts: http::request::Parts,
        body: Body,
        peer: SocketAddr,
        dispatch: &dyn Dispatch,
    ) -> Resp {
        let mut r = self.route(parts, body, peer, dispatch).await;
        if self.secure {
            // Served over TLS: browsers keep to HTTPS for this host from now on.
            r.headers_mut().insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
        r
    }

    async fn route(
        &self,
        parts: http::request::Parts,
        body: Body,
        peer: SocketAddr,
        dispatch: &dyn Dispatch,
    ) -> Resp {
        let path = parts.uri.path().to_string();
        let segs = segments(&path);
        let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
        match (&parts.method, seg.as_slice()) {
            (&Method::GET, ["static", "app.css"]) => return asset("text/css", CSS),
            (&Method::GET, ["static", "app.js"]) => return asset("text/javascript", JS),
            (&Method::GET, ["signin"]) => return self.signin_page(None, 200, None),
            (&Method::POST, ["signin"]) => return self.signin(&parts, body, peer).await,
            _ => {}
        }
        let Some(session) = self.session_of(&parts.headers) else {
            return redirect("/console/signin");
        };
        let api = Api {
            dispatch,
            peer,
            region: &self.region,
            creds: &session.creds,
        };
        let ctx = Ctx {
            session: &session,
            api,
            query: parse_query(parts.uri.query()),
        };
        // A required password change comes before anything else.
        let must_change = session
            .must_change_password
            .load(std::sync::atomic::Ordering::Acquire);
        // Uploads are streamed: their CSRF token comes in a header, the body is the file.
        if parts.method == Method::PUT {
            if must_change {
                return redirect("/console/change-password");
            }
            let token = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !coffer_crypto::ct_eq(token.as_bytes(), session.csrf.as_bytes()) {
                return csrf_refused(&ctx);
            }
            return match seg.as_slice() {
                ["s3", "upload", bucket] => s3::upload(&ctx, bucket, &parts.headers, body).await,
                _ => not_found(&ctx),
            };
        }
        let form = if parts.method == Method::POST {
            let bytes = match http_body_util::Limited::new(body, MAX_FORM).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    let e = ApiError::new("EntityTooLarge", 413, "The form is too large.");
                    return html_response(413, ctx.page_err("Error", &e, html! {}));
                }
            };
            let form = Form(form_urlencoded::parse(&bytes).into_owned().collect());
            let token = form.val("csrf");
            if !coffer_crypto::ct_eq(token.as_bytes(), session.csrf.as_bytes()) {
                return csrf_refused(&ctx);
            }
            Some(form)
        } else {
            None
        };
        match (form, seg.as_slice()) {
            (Some(_), ["signout"]) => self.signout(&parts.headers, &session).await,
            (None, ["change-password"]) => change_password_page(&ctx, None),
            (Some(f), ["change-password"]) => change_password(&ctx, &f).await,
            _ if must_change => redirect("/console/change-password"),
            (None, []) => redirect("/console/kms"),
            (None, ["kms", rest @ ..]) => kms::get(&ctx, rest).await,
            (Some(f), ["kms", rest @ ..]) => kms::post(&ctx, rest, &f).await,
            (None, ["s3", rest @ ..]) => s3::get(&ctx, rest).await,
            (Some(f), ["s3", rest @ ..]) => s3::post(&ctx, rest, &f).await,
            (None, ["iam", rest @ ..]) => iam::get(&ctx, rest).await,
            (Some(f), ["iam", rest @ ..]) => iam::post(&ctx, rest, &f).await,
            _ => not_found(&ctx),
        }
    }

    fn signin_page(&self, err: Option<&ApiError>, status: u16, token: Option<String>) -> Resp {
        let token = token.unwrap_or_else(random_token);
        let m = layout::signin(&token, err);
        let mut r = html_response(status, m);
        r.headers_mut()
            .append(header::SET_COOKIE, self.cookie(SIGNIN_COOKIE, &token, 3600));
        r
    }

    /// Reserves one sign-in attempt against every key (client address, identity): refused when
    /// a key has used up its attempts in the window. Checked and counted in one critical section,
    /// so concurrent attempts cannot all slip past the check; a successful sign-in gives its
    /// attempt back (`refund`).
    fn reserve(&self, keys: &[String]) -> bool {
        let now = now_unix();
        let mut f = self.failures.lock();
        f.retain(|_, (_, start)| now - *start < FAIL_WINDOW);
        if keys
            .iter()
            .any(|k| f.get(k).is_some_and(|(n, _)| *n >= MAX_FAILURES))
        {
            return false;
        }
        // Bounded memory under a spray of identities: past the cap only known keys and client
        // addresses are counted.
        let full = f.len() >= MAX_TRACKED;
        for k in keys {
            if full && !f.contains_key(k) && !k.starts_with("ip:") {
                continue;
            }
            f.entry(k.clone()).or_insert((0, now)).0 += 1;
        }
        true
    }

    fn refund(&self, keys: &[String]) {
        let mut f = self.failures.lock();
        for k in keys {
            if let Some(e) = f.get_mut(k) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }

    /// The throttling keys of a sign-in: the client address (IPv6 by its /64) and the identity
    /// as the store sees it (trimmed; user names and aliases are case-insensitive).
    fn attempt_keys(&self, ip: IpAddr, form: &Form) -> Vec<String> {
        let ip_key = match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            IpAddr::V6(v6) => format!("ip:{}", v6.to_ipv4_mapped().map_or(ip, IpAddr::V4)),
            v4 => format!("ip:{v4}"),
        };
        let who = if form.val("kind") == "root" {
            format!("root:{}", form.val("access_key_id").trim())
        } else {
            let given = form.val("account").trim().to_ascii_lowercase();
            let account = if given.bytes().all(|b| b.is_ascii_digit()) {
                given
            } else {
                self.iam
                    .account_for_alias(&given)
                    .ok()
                    .flatten()
                    .unwrap_or(given)
            };
            format!(
                "user:{account}/{}",
                form.val("username").trim().to_ascii_lowercase()
            )
        };
        vec![ip_key, who]
    }

    async fn signin(&self, parts: &http::request::Parts, body: Body, peer: SocketAddr) -> Resp {
        let bytes = match http_body_util::Limited::new(body, 64 << 10).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let form = Form(form_urlencoded::parse(&bytes).into_owned().collect());
        let cookie = cookie_value(&parts.headers, SIGNIN_COOKIE).unwrap_or_default();
        if cookie.is_empty()
            || !coffer_crypto::ct_eq(cookie.as_bytes(), form.val("csrf").as_bytes())
        {
            let e = ApiError::new(
                "InvalidCsrfToken",
                403,
                "The sign-in form expired or was not sent by this console. Please try again.",
            );
            return self.signin_page(Some(&e), 403, None);
        }
        let keys = self.attempt_keys(peer.ip(), &form);
        if !self.reserve(&keys) {
            let e = ApiError::new(
                "Throttling",
                429,
                "Too many sign-in attempts. Please wait a few minutes and try again.",
            );
            return self.signin_page(Some(&e), 429, None);
        }
        // Password hashing is deliberately costly (argon2id, 19 MiB): a few at a time.
        let Ok(_permit) = self.verifying.try_acquire() else {
            self.refund(&keys);
            let e = ApiError::new(
                "Throttling",
                429,
                "Too many sign-in attempts in progress. Please try again in a moment.",
            );
            return self.signin_page(Some(&e), 429, None);
        };
        let iam = self.iam.clone();
        let form2 = Form(form.0.clone());
        let started = tokio::task::spawn_blocking(move || start_session(&iam, &form2)).await;
        let started = match started {
            Ok(r) => r,
            Err(_) => Err(ApiError::new("InternalFailure", 500, "Sign-in failed.")),
        };
        match started {
            Ok(Some((creds, arn, account, is_root, expires, reset))) => {
                self.refund(&keys);
                // A new sign-in in this browser ends the session it had.
                if let Some(old) = cookie_value(&parts.headers, SESSION_COOKIE) {
                    let prev = self
                        .sessions
                        .lock()
                        .remove(&coffer_crypto::sha256_hex(old.as_bytes()));
                    if let Some(prev) = prev {
                        self.end_credentials(prev.creds.access_key_id.clone()).await;
                    }
                }
                let token = random_token();
                let session = Arc::new(Session {
                    creds,
                    csrf: random_token(),
                    expires,
                    arn,
                    account,
                    is_root,
                    flash: Mutex::new(None),
                    must_change_password: std::sync::atomic::AtomicBool::new(reset),
                });
                {
                    let mut sessions = self.sessions.lock();
                    let now = now_unix();
                    sessions.retain(|_, s| s.expires > now);
                    sessions.insert(coffer_crypto::sha256_hex(token.as_bytes()), session);
                }
                let mut r = redirect("/console/kms");
                r.headers_mut().append(
                    header::SET_COOKIE,
                    self.cookie(SESSION_COOKIE, &token, SESSION_SECONDS),
                );
                r.headers_mut()
                    .append(header::SET_COOKIE, self.cookie(SIGNIN_COOKIE, "", 0));
                r
            }
            Ok(None) => {
                let e = ApiError::new(
                    "AuthFailure",
                    401,
                    "Your authentication information is incorrect. Please try again.",
                );
                self.signin_page(Some(&e), 401, None)
            }
            Err(e) => self.signin_page(Some(&e), e.status, None),
        }
    }

    /// Ends a session's temporary credentials (a store transaction, so on a blocking thread).
    async fn end_credentials(&self, access_key_id: String) {
        let iam = self.iam.clone();
        match tokio::task::spawn_blocking(move || iam.end_session(&access_key_id)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(code = %e.code, "could not end a console session's credentials")
            }
            Err(e) => tracing::warn!(error = %e, "ending a console session's credentials failed"),
        }
    }

    async fn signout(&self, headers: &HeaderMap, session: &Arc<Session>) -> Resp {
        if let Some(v) = cookie_value(headers, SESSION_COOKIE) {
            self.sessions
                .lock()
                .remove(&coffer_crypto::sha256_hex(v.as_bytes()));
        }
        // The session's credentials stop working too.
        self.end_credentials(session.creds.access_key_id.clone())
            .await;
        let mut r = redirect("/console/signin");
        r.headers_mut()
            .append(header::SET_COOKIE, self.cookie(SESSION_COOKIE, "", 0));
        r
    }
}

type Started = (Creds, String, String, bool, i64, bool);

/// Checks sign-in credentials and makes the session's temporary credentials.
fn start_session(iam: &Iam, form: &Form) -> Result<Option<Started>, ApiError> {
    let internal = |e: coffer_core::ServiceError| ApiError::new(&e.code, e.status, e.message);
    let (account, owner, arn) = if form.val("kind") == "root" {
        let akid = form.val("access_key_id").trim();
        let secret = Zeroizing::new(form.val("secret_access_key").trim().to_string());
        match iam.check_root_key(akid, &secret).map_err(internal)? {
            Some(account) => {
                let arn = format!("arn:aws:iam::{account}:root");
                (account, KeyOwner::Root, arn)
            }
            None => return Ok(None),
        }
    } else {
        let given = form.val("account").trim();
        let account = if !given.is_empty() && given.bytes().all(|b| b.is_ascii_digit()) {
            given.to_string()
        } else {
            iam.account_for_alias(given)
                .map_err(internal)?
                .unwrap_or_default()
        };
        let user = form.val("username").trim().to_string();
        let password = Zeroizing::new(form.val("password").to_string());
        let ok = iam
            .check_password(&account, &user, &password)
            .map_err(internal)?;
        if !ok {
            return Ok(None);
        }
        let arn = match iam.user_arn(&account, &user).map_err(internal)? {
            Some(a) => a,
            None => return Ok(None),
        };
        (account, KeyOwner::User(user), arn)
    };
    let c = iam
        .console_session(&account, owner.clone(), SESSION_SECONDS)
        .map_err(internal)?;
    let creds = Creds {
        access_key_id: c.access_key_id,
        secret: coffer_sigv4::Secret::new(c.secret.to_string()),
        token: c.token,
    };
    let reset = match &owner {
        KeyOwner::User(name) => iam
            .password_reset_required(&account, name)
            .map_err(internal)?,
        KeyOwner::Root => false,
    };
    Ok(Some((
        creds,
        arn,
        account,
        owner == KeyOwner::Root,
        now_unix() + SESSION_SECONDS,
        reset,
    )))
}

fn asset(ct: &'static str, body: &'static str) -> Resp {
    let mut r = Response::new(Body::from(body.to_string()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn csrf_refused(ctx: &Ctx<'_>) -> Resp {
    let e = ApiError::new(
        "InvalidCsrfToken",
        403,
        "The form was not sent by this console session (missing or wrong CSRF token). Nothing was changed.",
    );
    html_response(403, ctx.page_err("Refused", &e, html! {}))
}

pub fn not_found(ctx: &Ctx<'_>) -> Resp {
    let e = ApiError::new("NotFound", 404, "This console page does not exist.");
    html_response(404, ctx.page_err("Not found", &e, html! {}))
}

/// A page showing an API error (the status is the API's).
pub fn error_page(ctx: &Ctx<'_>, title: &str, e: &ApiError) -> Resp {
    let status = if e.status >= 400 { e.status } else { 500 };
    html_response(status, ctx.page_err(title, e, html! {}))
}

/// Redirects to `to` with a flash message.
pub fn done(ctx: &Ctx<'_>, to: &str, msg: impl Into<String>) -> Resp {
    ctx.flash(msg);
    redirect(to)
}

fn change_password_page(ctx: &Ctx<'_>, err: Option<&ApiError>) -> Resp {
    let required = ctx
        .session
        .must_change_password
        .load(std::sync::atomic::Ordering::Acquire);
    let body = html! {
        @if required {
            p #password-reset-notice { "Your administrator requires you to set a new password before you continue." }
        }
        form #change-password-form method="post" action="/console/change-password" {
            (layout::csrf(ctx.session))
            label for="old-password" { "Current password" }
            input #old-password name="old_password" type="password" autocomplete="current-password" required;
            label for="new-password-1" { "New password" }
            input #new-password-1 name="new_password" type="password" autocomplete="new-password" required;
            label for="new-password-2" { "Confirm new password" }
            input #new-password-2 name="confirm_password" type="password" autocomplete="new-password" required;
            button #change-password-button type="submit" { "Change password" }
        }
    };
    match err {
        Some(e) => html_response(e.status, ctx.page_err("Change password", e, body)),
        None => html_response(200, ctx.page("Change password", body)),
    }
}

async fn change_password(ctx: &Ctx<'_>, f: &Form) -> Resp {
    if f.val("new_password") != f.val("confirm_password") {
        let e = ApiError::new(
            "PasswordMismatch",
            400,
            "The new password and its confirmation do not match.",
        );
        return change_password_page(ctx, Some(&e));
    }
    let r = ctx
        .api
        .iam(
            "ChangePassword",
            &[
                ("OldPassword", f.val("old_password")),
                ("NewPassword", f.val("new_password")),
            ],
        )
        .await;
    match r {
        Ok(_) => {
            ctx.session
                .must_change_password
                .store(false, std::sync::atomic::Ordering::Release);
            done(ctx, "/console/kms", "Your password was changed.")
        }
        Err(e) => change_password_page(ctx, Some(&e)),
    }
}
