//! The HTTP edge: one listener for KMS, S3, IAM and STS. Classifies each request by protocol,
//! authenticates it with SigV4, decodes it, calls the service, and encodes the result or the
//! error in the protocol's shape.

pub mod edge;
pub mod encode;
pub mod metrics;
pub mod tls;

pub use edge::{Edge, Limits};

use bytes::Bytes;
use coffer_core::{RequestContext, ServiceError};
use coffer_iam::{CredentialError, Iam, Params};
use coffer_sigv4::{AuthError, Flavor, ParsedAuth, Secret, SigningKeyCache};
use encode::{IAM_NS, STS_NS};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Largest IAM/STS/KMS request body accepted (policies are at most 128 KiB, URL-encoded).
const MAX_QUERY_BODY: usize = 1 << 20;

pub type Body = s3s::Body;

/// Everything the request handler needs; shared by all connections.
pub struct App {
    pub iam: Arc<Iam>,
    pub kms: Arc<coffer_kms::Kms>,
    /// S3 through s3s (which verifies S3's SigV4 itself, aws-chunked bodies included).
    pub s3: s3s::service::S3Service,
    /// Present only with `serve --test-clock`.
    pub test_clock: Option<Arc<coffer_core::TestClock>>,
    pub region: String,
    pub sig_cache: SigningKeyCache,
    pub clock: Arc<dyn coffer_core::Clock>,
    pub secure: bool,
    /// The web console, at `/console`.
    pub console: coffer_console::Console,
    /// Connection and body limits (timeouts, connection cap, pre-authentication memory).
    pub edge: Edge,
    /// Request, store, cache and background counters, served at `GET /_coffer/metrics`.
    pub metrics: Arc<metrics::Metrics>,
}

/// The console's in-process API calls come back through the gateway's request path.
#[async_trait::async_trait]
impl coffer_console::Dispatch for App {
    async fn dispatch(&self, req: Request<Body>, peer: SocketAddr) -> Response<Body> {
        let (parts, body) = req.into_parts();
        self.handle_api(parts, body, peer).await
    }
}

/// The protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Kms,
    Iam,
    Sts,
    S3,
}

impl Proto {
    fn signing_name(self) -> &'static str {
        match self {
            Proto::Kms => "kms",
            Proto::Iam => "iam",
            Proto::Sts => "sts",
            Proto::S3 => "s3",
        }
    }
}

struct Reply {
    proto: Proto,
    request_id: String,
    /// S3's `x-amz-id-2`, the same in the header and the error body.
    host_id: String,
    /// The request body was left unread: the connection must close after the response.
    close: bool,
    /// The operation the request is counted as (a fixed name, see `metrics::operation`).
    op: &'static str,
}

impl Reply {
    fn new(proto: Proto) -> Self {
        use base64::Engine;
        let request_id = match proto {
            // S3 request ids are 16 upper-case hex characters (64 random bits).
            Proto::S3 => coffer_core::ids::token(8)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect(),
            _ => coffer_core::ids::uuid(),
        };
        Reply {
            proto,
            request_id,
            host_id: base64::engine::general_purpose::STANDARD.encode(coffer_core::ids::token(24)),
            close: false,
            op: metrics::UNKNOWN,
        }
    }

    /// Adds the headers every response carries.
    fn finish(&self, mut r: Response<Body>) -> Response<Body> {
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            match self.proto {
                Proto::S3 => {
                    h.insert("x-amz-request-id", v);
                    if let Ok(id2) = HeaderValue::from_str(&self.host_id) {
                        h.insert("x-amz-id-2", id2);
                    }
                }
                _ => {
                    h.insert("x-amzn-requestid", v);
                }
            }
        }
        if let Ok(d) = HeaderValue::from_str(&httpdate(time::OffsetDateTime::now_utc())) {
            h.insert(header::DATE, d);
        }
        h.insert(header::SERVER, HeaderValue::from_static("Coffer"));
        if self.close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r.extensions_mut().insert(metrics::Labels {
            service: metrics::service_of(self.proto),
            operation: self.op,
        });
        r
    }
}

fn httpdate(t: time::OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[t.weekday().number_days_from_monday() as usize],
        t.day(),
        MONTHS[u8::from(t.month()) as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn response(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

impl Reply {
    fn error(&self, e: &ServiceError, extra: &[(&str, String)], head: bool) -> Response<Body> {
        let r = match self.proto {
            Proto::Kms => response(
                e.status,
                "application/x-amz-json-1.1",
                encode::json_error(e),
            ),
            Proto::Iam => response(
                e.status,
                "text/xml",
                encode::query_error(IAM_NS, e, &self.request_id),
            ),
            Proto::Sts => response(
                e.status,
                "text/xml",
                encode::query_error(STS_NS, e, &self.request_id),
            ),
            Proto::S3 => {
                let body = if head {
                    String::new()
                } else {
                    encode::s3_error(e, extra, &self.request_id, &self.host_id)
                };
                response(e.status, "application/xml", body)
            }
        };
        self.finish(r)
    }
}

/// AWS's message for S3 error codes that s3s may raise without one.
fn s3_default_message(code: &str) -> &'static str {
    match code {
        "InvalidBucketName" => "The specified bucket is not valid.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "InvalidArgument" => "Invalid Argument",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema"
        }
        "InvalidRange" => "The requested range is not satisfiable",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed size",
        "NotImplemented" => "A header you provided implies functionality that is not implemented",
        "InvalidRequest" => "Invalid Request",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "MalformedPOSTRequest" => {
            "The body of your POST request is not well-formed multipart/form-data."
        }
        _ => "The request could not be completed.",
    }
}

/// Maps a SigV4 failure to the service's own error (aws-behavior.md §1.6).
fn auth_error(
    proto: Proto,
    e: &AuthError,
    access_key: &str,
) -> (ServiceError, Vec<(&'static str, String)>) {
    const SIG_TEXT: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    match (proto, e) {
        (
            Proto::S3,
            AuthError::SignatureMismatch {
                canonical_request,
                string_to_sign,
            },
        ) => (
            ServiceError::new(
                "SignatureDoesNotMatch",
                403,
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            ),
            vec![
                ("AWSAccessKeyId", access_key.to_string()),
                ("StringToSign", string_to_sign.clone()),
                ("CanonicalRequest", canonical_request.clone()),
            ],
        ),
        (Proto::Kms, AuthError::SignatureMismatch { .. }) => (
            ServiceError::new("InvalidSignatureException", 400, SIG_TEXT),
            vec![],
        ),
        (_, AuthError::SignatureMismatch { .. }) => (
            ServiceError::new("SignatureDoesNotMatch", 403, SIG_TEXT),
            vec![],
        ),
        (
            Proto::S3,
            AuthError::Skewed {
                request_time,
                server_time,
            },
        ) => (
            ServiceError::new(
                "RequestTimeTooSkewed",
                403,
                "The difference between the request time and the current time is too large.",
            ),
            vec![
                ("RequestTime", coffer_sigv4::format_amz_date(*request_time)),
                ("ServerTime", coffer_core::iso8601(*server_time)),
                ("MaxAllowedSkewMilliseconds", "900000".into()),
            ],
        ),
        (
            Proto::Kms,
            AuthError::Skewed {
                request_time,
                server_time,
            },
        ) => (
            ServiceError::new(
                "InvalidSignatureException",
                400,
                coffer_sigv4::kms_skew_message(*request_time, *server_time),
            ),
            vec![],
        ),
        (
            _,
            AuthError::Skewed {
                request_time,
                server_time,
            },
        ) => (
            ServiceError::new(
                "SignatureDoesNotMatch",
                403,
                coffer_sigv4::kms_skew_message(*request_time, *server_time),
            ),
            vec![],
        ),
        (
            Proto::S3,
            AuthError::Expired {
                expires_at,
                server_time,
            },
        ) => (
            ServiceError::new("AccessDenied", 403, "Request has expired"),
            vec![
                ("Expires", coffer_core::iso8601(*expires_at)),
                ("ServerTime", coffer_core::iso8601(*server_time)),
            ],
        ),
        (Proto::Kms, AuthError::Expired { .. }) => (
            ServiceError::new("InvalidSignatureException", 400, "Signature expired"),
            vec![],
        ),
        (_, AuthError::Expired { .. }) => (
            ServiceError::new("SignatureDoesNotMatch", 403, "Signature expired"),
            vec![],
        ),
        (Proto::S3, AuthError::HeadersNotSigned(h)) => (
            ServiceError::new(
                "AccessDenied",
                403,
                "There were headers present in the request which were not signed",
            ),
            vec![("HeadersNotSigned", h.join(", "))],
        ),
        (Proto::Kms, AuthError::HeadersNotSigned(_)) => (
            ServiceError::new("InvalidSignatureException", 400, SIG_TEXT),
            vec![],
        ),
        (_, AuthError::HeadersNotSigned(_)) => (
            ServiceError::new("SignatureDoesNotMatch", 403, SIG_TEXT),
            vec![],
        ),
        (Proto::S3, AuthError::QueryParams(m)) => (
            ServiceError::new("AuthorizationQueryParametersError", 400, m.clone()),
            vec![],
        ),
        (Proto::S3, AuthError::Malformed(m)) => (
            ServiceError::new("AuthorizationHeaderMalformed", 400, m.clone()),
            vec![],
        ),
        (Proto::S3, AuthError::UnsupportedAlgorithm(m)) => {
            (ServiceError::new("NotImplemented", 501, m.clone()), vec![])
        }
        (
            Proto::Kms,
            AuthError::QueryParams(m)
            | AuthError::Malformed(m)
            | AuthError::UnsupportedAlgorithm(m),
        ) => (
            ServiceError::new("IncompleteSignatureException", 400, m.clone()),
            vec![],
        ),
        (
            _,
            AuthError::QueryParams(m)
            | AuthError::Malformed(m)
            | AuthError::UnsupportedAlgorithm(m),
        ) => (
            ServiceError::new("IncompleteSignature", 400, m.clone()),
            vec![],
        ),
        (_, AuthError::ContentSha256Mismatch { client, computed }) => (
            ServiceError::new(
                "XAmzContentSHA256Mismatch",
                400,
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ),
            vec![
                ("ClientComputedContentSHA256", client.clone()),
                ("S3ComputedContentSHA256", computed.clone()),
            ],
        ),
        (_, AuthError::BadChunk(m)) => (
            ServiceError::new("SignatureDoesNotMatch", 403, m.clone()),
            vec![],
        ),
    }
}

fn credential_error(
    proto: Proto,
    e: &CredentialError,
    access_key: &str,
) -> (ServiceError, Vec<(&'static str, String)>) {
    match (proto, e) {
        (_, CredentialError::Internal) => (ServiceError::internal(), vec![]),
        (Proto::S3, CredentialError::UnknownAccessKey) => (
            ServiceError::new(
                "InvalidAccessKeyId",
                403,
                "The AWS Access Key Id you provided does not exist in our records.",
            ),
            vec![("AWSAccessKeyId", access_key.to_string())],
        ),
        (Proto::S3, CredentialError::InvalidToken) => (
            ServiceError::new(
                "InvalidToken",
                400,
                "The provided token is malformed or otherwise invalid.",
            ),
            vec![],
        ),
        (Proto::S3, CredentialError::ExpiredToken) => (
            ServiceError::new("ExpiredToken", 400, "The provided token has expired."),
            vec![],
        ),
        (Proto::Kms, CredentialError::UnknownAccessKey | CredentialError::InvalidToken) => (
            ServiceError::new(
                "UnrecognizedClientException",
                400,
                "The security token included in the request is invalid.",
            ),
            vec![],
        ),
        (Proto::Kms, CredentialError::ExpiredToken) => (
            ServiceError::new(
                "ExpiredTokenException",
                400,
                "The security token included in the request is expired",
            ),
            vec![],
        ),
        (_, CredentialError::UnknownAccessKey | CredentialError::InvalidToken) => (
            ServiceError::new(
                "InvalidClientTokenId",
                403,
                "The security token included in the request is invalid.",
            ),
            vec![],
        ),
        (_, CredentialError::ExpiredToken) => (
            ServiceError::new(
                "ExpiredToken",
                403,
                "The security token included in the request is expired",
            ),
            vec![],
        ),
    }
}

fn classify(headers: &HeaderMap, auth: Option<&ParsedAuth>, form: Option<&Params>) -> Proto {
    if headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("TrentService."))
    {
        return Proto::Kms;
    }
    if let Some(p) = form {
        match p.opt("Version") {
            Some("2011-06-15") => return Proto::Sts,
            Some("2010-05-08") => return Proto::Iam,
            _ => {}
        }
    }
    match auth.map(|a| a.service.as_str()) {
        Some("kms") => Proto::Kms,
        Some("iam") => Proto::Iam,
        Some("sts") => Proto::Sts,
        _ => Proto::S3,
    }
}

/// Whether the request announces a body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// Whether the request's `Range` is one byte range as s3s parses it (`bytes=a-b`, `a-`, `-n`).
fn single_byte_range(headers: &HeaderMap) -> bool {
    let mut all = headers.get_all(header::RANGE).iter();
    match (all.next(), all.next()) {
        (Some(v), None) => v.to_str().is_ok_and(|v| s3s::dto::Range::parse(v).is_ok()),
        _ => false,
    }
}

/// A browser form upload: `POST` of `multipart/form-data` to a bucket (no key, no query).
fn is_post_upload(parts: &http::request::Parts) -> bool {
    parts.method == Method::POST
        && parts.uri.query().is_none_or(str::is_empty)
        && is_multipart_form(&parts.headers)
        && matches!(s3_target(parts), (Some(_), None))
}

/// Whether the body is `multipart/form-data`.
fn is_multipart_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// How much of a POST form the gateway reads to find the fields before the file (s3s's own
/// limit for them is 1 MiB, `coffer_s3::s3s_config`).
const MAX_FORM_PREFIX: usize = 1 << 20;

/// Reads a form upload's fields before the file part and returns the first
/// `x-amz-security-token` field's value, whether a signature and a policy came before the file,
/// and a body that yields every byte read plus the rest.
async fn form_token(headers: &HeaderMap, body: Body) -> (Option<String>, bool, Body) {
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(multipart_boundary);
    let (fields, body) = form_prefix(boundary.as_deref(), body).await;
    (fields.token, fields.signed, body)
}

/// What the fields before a form's file say (all empty unless the file part or the end of the
/// form was reached within [`MAX_FORM_PREFIX`]).
#[derive(Debug, Default, PartialEq, Eq)]
struct FormFields {
    token: Option<String>,
    /// A `policy` and a signature (`x-amz-signature` or `signature`) came before the file.
    signed: bool,
}

async fn form_prefix(boundary: Option<&str>, mut body: Body) -> (FormFields, Body) {
    let Some(boundary) = boundary else {
        return (FormFields::default(), body);
    };
    let mut buf = Vec::new();
    let mut scan = FormScanner::new(boundary);
    loop {
        if scan.advance(&buf) || buf.len() > MAX_FORM_PREFIX {
            break;
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            // The body ended or failed: s3s sees the same bytes (and the error) and refuses it.
            Some(Err(e)) => {
                let b = Body::http_body(Prefixed::new(Bytes::from(buf), Some(e), body));
                return (FormFields::default(), b);
            }
            None => break,
        }
    }
    (
        scan.fields(),
        Body::http_body(Prefixed::new(Bytes::from(buf), None, body)),
    )
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn multipart_boundary(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// Where a [`FormScanner`] stands; offsets index the bytes read so far.
enum ScanState {
    /// Before the first delimiter, searched for from `from`.
    Preamble { from: usize },
    /// Just after a delimiter: `--` (the end of the form) or a part's head follows at `at`.
    Delimiter { at: usize },
    /// A part's head starts at `start`; its end (`\r\n\r\n`) is searched for from `from`.
    Head { start: usize, from: usize },
    /// A field's value starts at `start`; the next delimiter is searched for from `from`.
    Value {
        field: Option<String>,
        start: usize,
        from: usize,
    },
    /// The file part or the end of the form was reached.
    Done,
}

/// Scans a form's parts before the file as its bytes arrive. Each search resumes where the last
/// one stopped (less the needle's length), so every byte is looked at a bounded number of
/// times however finely the body is framed.
struct FormScanner {
    delim: Vec<u8>,
    next_delim: Vec<u8>,
    state: ScanState,
    token: Option<String>,
    policy: bool,
    signature: bool,
}

/// The first `needle` in `hay[from..]`, as an offset in `hay`.
fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Where to resume a search for `needle` that failed over `hay` from `from`.
fn resume(hay: &[u8], needle: &[u8], from: usize) -> usize {
    hay.len()
        .saturating_sub(needle.len().saturating_sub(1))
        .max(from)
}

impl FormScanner {
    fn new(boundary: &str) -> Self {
        FormScanner {
            delim: format!("--{boundary}").into_bytes(),
            next_delim: format!("\r\n--{boundary}").into_bytes(),
            state: ScanState::Preamble { from: 0 },
            token: None,
            policy: false,
            signature: false,
        }
    }

    /// Scans what `buf` (every byte so far) adds to the last call's; true once the file part or
    /// the end of the form is reached.
    fn advance(&mut self, buf: &[u8]) -> bool {
        loop {
            match &mut self.state {
                ScanState::Done => return true,
                ScanState::Preamble { from } => match find_from(buf, &self.delim, *from) {
                    Some(p) => {
                        self.state = ScanState::Delimiter {
                            at: p + self.delim.len(),
                        }
                    }
                    None => {
                        *from = resume(buf, &self.delim, *from);
                        return false;
                    }
                },
                ScanState::Delimiter { at } => {
                    let at = *at;
                    let Some(rest) = buf.get(at..) else {
                        return false;
                    };
                    if rest.len() < 2 {
                        return false;
                    }
                    self.state = if rest.starts_with(b"--") {
                        ScanState::Done
                    } else {
                        ScanState::Head {
                            start: at,
                            from: at,
                        }
                    };
                }
                ScanState::Head { start, from } => match find_from(buf, b"\r\n\r\n", *from) {
                    None => {
                        *from = resume(buf, b"\r\n\r\n", *from);
                        return false;
                    }
                    Some(end) => {
                        let field = part_field_name(&buf[*start..end]);
                        self.state = if field.as_deref() == Some("file") {
                            ScanState::Done
                        } else {
                            ScanState::Value {
                                field,
                                start: end + 4,
                                from: end + 4,
                            }
                        };
                    }
                },
                ScanState::Value { field, start, from } => {
                    match find_from(buf, &self.next_delim, *from) {
                        None => {
                            *from = resume(buf, &self.next_delim, *from);
                            return false;
                        }
                        Some(end) => {
                            let field = field.take();
                            let value = std::str::from_utf8(&buf[*start..end]).ok();
                            self.record(field.as_deref(), value);
                            self.state = ScanState::Delimiter {
                                at: end + self.next_delim.len(),
                            };
                        }
                    }
                }
            }
        }
    }

    /// Notes a field (the first UTF-8 value of each name counts).
    fn record(&mut self, field: Option<&str>, value: Option<&str>) {
        let Some(value) = value else { return };
        match field {
            Some("x-amz-security-token") if self.token.is_none() => {
                self.token = Some(value.to_string());
            }
            Some("policy") => self.policy = true,
            Some("x-amz-signature" | "signature") => self.signature = true,
            _ => {}
        }
    }

    fn fields(self) -> FormFields {
        if !matches!(self.state, ScanState::Done) {
            return FormFields::default();
        }
        FormFields {
            signed: self.policy && self.signature,
            token: self.token,
        }
    }
}

/// The lower-cased `name` of a part's `Content-Disposition`.
fn part_field_name(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    head.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if !k.trim().eq_ignore_ascii_case("content-disposition") {
            return None;
        }
        v.split(';').find_map(|p| {
            let (pk, pv) = p.trim().split_once('=')?;
            (pk.trim() == "name").then(|| pv.trim().trim_matches('"').to_ascii_lowercase())
        })
    })
}

/// A body that yields `prefix` (then `error`, if any) before the rest of `inner`.
struct Prefixed {
    prefix: Option<Bytes>,
    error: Option<s3s::StdError>,
    inner: Body,
}

impl Prefixed {
    fn new(prefix: Bytes, error: Option<s3s::StdError>, inner: Body) -> Self {
        Prefixed {
            prefix: (!prefix.is_empty()).then_some(prefix),
            error,
            inner,
        }
    }
}

impl hyper::body::Body for Prefixed {
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if let Some(p) = self.prefix.take() {
            return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(p))));
        }
        if let Some(e) = self.error.take() {
            return std::task::Poll::Ready(Some(Err(e)));
        }
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }
}

/// The text of the first `<name>` element of an XML document, unescaped.
fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let (_, rest) = text.split_once(&open)?;
    let (v, _) = rest.split_once(&close)?;
    Some(xml_unescape(v))
}

fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let ent = &tail[1..end];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// AWS's error for a POST form refusal s3s phrased its own way (s3s 0.14's messages in
/// `post_policy.rs`, `ops/mod.rs` and the PostObject deserializer), or `None` to keep s3s's.
fn post_upload_error(code: &str, message: Option<&str>) -> Option<ServiceError> {
    let m = message.unwrap_or_default();
    let policy = |text: String| {
        ServiceError::new(
            "AccessDenied",
            403,
            format!("Invalid according to Policy: {text}"),
        )
    };
    let json = |v: &str| serde_json::Value::String(v.to_string()).to_string();
    match code {
        "AccessDenied" if m == "Request has expired" => Some(policy("Policy expired.".into())),
        // An unsigned form (s3s lets it through as anonymous, then refuses it).
        "AccessDenied" if m == "Signature is required" => {
            Some(ServiceError::new("AccessDenied", 403, "Access Denied"))
        }
        "AccessDenied" => {
            let name = m
                .strip_prefix("Each form field that you specify in a form must appear in the list of policy conditions. \"")?
                .strip_suffix("\" not specified in the policy.")?;
            Some(policy(format!("Extra input fields: {name}")))
        }
        "InvalidPolicyDocument" => {
            if let Some(rest) = m.strip_prefix("Policy condition '") {
                let (op, rest) = rest.split_once("' for field '")?;
                let (field, rest) = rest.split_once("' failed: expected ")?;
                let rest = rest.strip_prefix("prefix ").unwrap_or(rest);
                let value = rest.strip_prefix('\'')?;
                let value = &value[..value.rfind("', got '")?];
                Some(policy(format!(
                    "Policy Condition failed: [{}, {}, {}]",
                    json(op),
                    json(&format!("${field}")),
                    json(value)
                )))
            } else if m.is_empty() || m == "failed to parse POST policy" {
                Some(ServiceError::new(
                    "InvalidPolicyDocument",
                    400,
                    "Invalid Policy: Invalid JSON.",
                ))
            } else {
                None
            }
        }
        "EntityTooLarge" => Some(ServiceError::new(
            "EntityTooLarge",
            400,
            "Your proposed upload exceeds the maximum allowed size",
        )),
        "EntityTooSmall" => Some(ServiceError::new(
            "EntityTooSmall",
            400,
            "Your proposed upload is smaller than the minimum allowed size",
        )),
        "InvalidRequest" if m == "missing key" => Some(ServiceError::new(
            "InvalidArgument",
            400,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )),
        _ => None,
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// S3's text for a connection that stopped sending (also used for Query and JSON requests).
const REQUEST_TIMEOUT_MESSAGE: &str = "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.";

fn request_timeout() -> ServiceError {
    ServiceError::new("RequestTimeout", 400, REQUEST_TIMEOUT_MESSAGE)
}

/// The protocol's throttling error, for a request that found no pre-authentication memory free
/// within the body timeout.
fn busy_error(proto: Proto) -> ServiceError {
    match proto {
        Proto::S3 => ServiceError::new("SlowDown", 503, "Please reduce your request rate."),
        Proto::Kms => ServiceError::new("ThrottlingException", 400, "Rate exceeded"),
        Proto::Iam | Proto::Sts => ServiceError::new("Throttling", 400, "Rate exceeded"),
    }
}

/// AWS's error for a body fault the gateway recorded.
fn fault_error(
    f: &edge::BodyFault,
    cap: Option<DocCap>,
) -> (ServiceError, Vec<(&'static str, String)>) {
    match f {
        edge::BodyFault::Stalled => (request_timeout(), vec![]),
        edge::BodyFault::TooLarge => (
            cap.map_or_else(|| DocCap::DOCUMENT.error(), DocCap::error),
            vec![],
        ),
        edge::BodyFault::Sha256Mismatch { client, computed } => auth_error(
            Proto::S3,
            &AuthError::ContentSha256Mismatch {
                client: client.clone(),
                computed: computed.clone(),
            },
            "",
        ),
    }
}

/// Bodies up to this size are read and dropped after an early refusal ([`linger`]).
const LINGER_MAX: u64 = 8 << 20;
/// How long [`linger`] reads at most.
const LINGER_TIME: Duration = Duration::from_secs(10);

/// Reads and drops the rest of a refused request's body in the background, so that a client
/// which writes its whole body before reading the response (most do) reads the refusal instead
/// of a connection reset; the connection closes once the body is done. Only bodies announced at
/// most [`LINGER_MAX`] long are drained (the body timeout still applies, and [`LINGER_TIME`]
/// bounds it); larger ones are dropped at once and their connection closed. Nothing is kept.
fn linger(body: Body, length: Option<u64>) {
    if length.is_none_or(|n| n > LINGER_MAX) {
        return;
    }
    tokio::spawn(async move {
        let mut body = body;
        let _ = tokio::time::timeout(LINGER_TIME, async {
            let mut seen: u64 = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    seen = seen.saturating_add(d.len() as u64);
                    if seen > LINGER_MAX {
                        break;
                    }
                }
            }
        })
        .await;
    });
}

fn header_u64(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_u64(headers, header::CONTENT_LENGTH)
}

/// How large an S3 document body (one s3s reads into memory) may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DocCap {
    limit: u64,
    /// A bucket policy (AWS: at most 20 KB, `PolicyTooLarge`).
    policy: bool,
}

impl DocCap {
    /// Bucket policies: 20 KiB, as coffer-s3 checks the policy text.
    const POLICY: DocCap = DocCap {
        limit: 20 * 1024,
        policy: true,
    };
    /// Configuration, tagging, ACL, retention... documents.
    const DOCUMENT: DocCap = DocCap {
        limit: 1 << 20,
        policy: false,
    };
    /// Lists: DeleteObjects (1,000 keys of up to 1,024 bytes) and CompleteMultipartUpload
    /// (10,000 parts with checksums).
    const LIST: DocCap = DocCap {
        limit: 4 << 20,
        policy: false,
    };

    fn error(self) -> ServiceError {
        if self.policy {
            ServiceError::new(
                "PolicyTooLarge",
                400,
                "Policy exceeds the maximum allowed document size.",
            )
        } else {
            ServiceError::new(
                "MaxMessageLengthExceeded",
                400,
                "Your request was too large.",
            )
        }
    }
}

/// The bound on an S3 request's body when s3s reads it whole into memory (bucket configuration,
/// policy, tagging, ACL, object retention and legal hold, DeleteObjects, CompleteMultipartUpload,
/// RestoreObject, SelectObjectContent, CreateBucket's configuration); `None` for object data
/// (PutObject, UploadPart, POST object), which is streamed.
fn s3_document_cap(parts: &http::request::Parts) -> Option<DocCap> {
    let query = parts.uri.query().unwrap_or_default();
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p.split('=').next().is_some_and(|k| k == name))
    };
    let multipart = is_multipart_form(&parts.headers);
    let (_, key) = s3_target(parts);
    let document = match parts.method {
        Method::POST => !multipart,
        // On a bucket every PUT carries a document; on an object only these subresources do.
        Method::PUT => {
            key.is_none()
                || ["tagging", "acl", "retention", "legal-hold"]
                    .iter()
                    .any(|n| has(n))
        }
        _ => false,
    };
    if !document {
        return None;
    }
    Some(
        if parts.method == Method::PUT && key.is_none() && has("policy") {
            DocCap::POLICY
        } else if parts.method == Method::POST && (has("delete") || has("uploadId")) {
            DocCap::LIST
        } else {
            DocCap::DOCUMENT
        },
    )
}

impl App {
    /// Hands an S3 request to s3s, with what the gateway knows of the connection.
    async fn s3_call(
        &self,
        parts: http::request::Parts,
        body: Body,
        peer: SocketAddr,
        reply: &Reply,
        post_upload: bool,
    ) -> Response<Body> {
        let target = s3_target(&parts);
        let mut req = Request::from_parts(parts, body);
        req.extensions_mut().insert(coffer_s3::ClientInfo {
            ip: Some(canonical_ip(peer.ip())),
            secure: self.secure,
        });
        match self.s3.call(req).await {
            Ok(mut r) => {
                // s3s checks a POST form's policy with its own words: answer with AWS's.
                if post_upload
                    && r.status().as_u16() >= 400
                    && let Some(b) = r.body().bytes()
                    && let Ok(text) = std::str::from_utf8(&b)
                    && let Some(code) = xml_element(text, "Code")
                    && let Some(e) =
                        post_upload_error(&code, xml_element(text, "Message").as_deref())
                {
                    return reply.error(&e, &[], false);
                }
                // s3s's error bodies lack AWS's RequestId and HostId: add them, matching the headers.
                if r.status().as_u16() >= 400
                    && let Some(b) = r.body().bytes()
                    && let Ok(text) = std::str::from_utf8(&b)
                    && let Some(at) = text.rfind("</Error>")
                    && !text.contains("<RequestId>")
                {
                    let mut body = String::with_capacity(text.len() + 128);
                    body.push_str(&text[..at]);
                    // Errors s3s raises itself may come without a message: give AWS's.
                    if !text.contains("<Message>")
                        && let Some(code) = text
                            .split_once("<Code>")
                            .and_then(|(_, r)| r.split_once("</Code>"))
                            .map(|(c, _)| c)
                    {
                        body.push_str("<Message>");
                        encode::xml_escape(s3_default_message(code), &mut body);
                        body.push_str("</Message>");
                    }
                    // AWS names the missing bucket or key in the error.
                    let code = text
                        .split_once("<Code>")
                        .and_then(|(_, r)| r.split_once("</Code>"))
                        .map(|(c, _)| c);
                    match (code, &target) {
                        (Some("NoSuchBucket"), (Some(b), _)) if !text.contains("<BucketName>") => {
                            body.push_str("<BucketName>");
                            encode::xml_escape(b, &mut body);
                            body.push_str("</BucketName>");
                        }
                        (Some("NoSuchKey"), (_, Some(k))) if !text.contains("<Key>") => {
                            body.push_str("<Key>");
                            encode::xml_escape(k, &mut body);
                            body.push_str("</Key>");
                        }
                        _ => {}
                    }
                    body.push_str("<RequestId>");
                    encode::xml_escape(&reply.request_id, &mut body);
                    body.push_str("</RequestId><HostId>");
                    encode::xml_escape(&reply.host_id, &mut body);
                    body.push_str("</HostId>");
                    body.push_str(&text[at..]);
                    r.headers_mut().remove(header::CONTENT_LENGTH);
                    *r.body_mut() = Body::from(body);
                }
                // Objects are served on the console's origin: whatever a stored object holds
                // (HTML, SVG…), a browser opening it runs no script and gets an opaque origin,
                // so it cannot act on the console with a signed-in person's session.
                r.headers_mut().insert(
                    "content-security-policy",
                    HeaderValue::from_static("sandbox"),
                );
                reply.finish(r)
            }
            Err(e) => {
                tracing::warn!(error = ?e, "S3 request aborted");
                reply.error(&ServiceError::internal(), &[], false)
            }
        }
    }

    /// Reads a body needed before authentication (Query and KMS JSON requests): at most
    /// [`MAX_QUERY_BODY`], within the pre-authentication memory budget (waiting for a share at
    /// most the body timeout) and within [`edge::PREAUTH_READ_DEADLINE`].
    async fn read_preauth(
        &self,
        proto: Proto,
        headers: &HeaderMap,
        body: Body,
        faults: &edge::Faults,
    ) -> Result<Bytes, ServiceError> {
        let too_large =
            || ServiceError::new("RequestEntityTooLarge", 413, "Request body is too large.");
        // In-process (console) requests may come without a Content-Length: their body knows.
        // A larger announced body is still read up to the limit (as before), so that a client
        // that writes its whole body before reading gets the answer rather than a reset.
        let len = content_length(headers).or_else(|| hyper::body::Body::size_hint(&body).exact());
        let _permit = if len == Some(0) {
            None
        } else {
            match self.edge.reserve_preauth(len, MAX_QUERY_BODY).await {
                Some(p) => Some(p),
                None => return Err(busy_error(proto)),
            }
        };
        let read = tokio::time::timeout(
            edge::PREAUTH_READ_DEADLINE,
            Limited::new(body, MAX_QUERY_BODY).collect(),
        )
        .await;
        match read {
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(_)) if faults.get() == Some(&edge::BodyFault::Stalled) => Err(request_timeout()),
            Ok(Err(_)) => Err(too_large()),
            Err(_) => Err(request_timeout()),
        }
    }

    /// Handles one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = std::time::Instant::now();
        let mut r = self.handle_inner(req, peer).await;
        // Counted here, at the edge, once per request (the console's in-process API calls are
        // part of its request), until the response head.
        let labels = r
            .extensions_mut()
            .remove::<metrics::Labels>()
            .unwrap_or(metrics::Labels {
                service: metrics::Service::Other,
                operation: metrics::UNKNOWN,
            });
        self.metrics
            .record(labels, r.status().as_u16(), started.elapsed());
        r
    }

    async fn handle_inner(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if req.uri().path() == metrics::PATH {
            let mut r = self
                .metrics
                .respond(req.method(), req.headers(), peer, &self.kms);
            r.extensions_mut().insert(metrics::Labels {
                service: metrics::Service::Other,
                operation: "Metrics",
            });
            return r;
        }
        let (mut parts, body) = req.into_parts();
        // Every body fails once it stalls for the body timeout; the handler learns why from
        // the fault slot it carries in the request's extensions.
        let faults = edge::Faults::default();
        let body = Body::http_body(edge::Guarded::timed(
            body,
            self.edge.limits.body_timeout,
            faults.clone(),
        ));
        parts.extensions.insert(edge::BodyWatch(faults));
        let path = parts.uri.path();
        // Browsers do not sign requests and API clients always do: a signed request for
        // `/console/…` is S3 path-style access to a bucket named "console".
        let signed = parts.headers.contains_key(header::AUTHORIZATION)
            || parts
                .uri
                .query()
                .is_some_and(|q| q.contains("X-Amz-Credential=") || q.contains("X-Amz-Signature="));
        if !signed && (path == "/console" || path.starts_with("/console/")) {
            let operation = metrics::console_operation(&parts.method);
            let mut r = self.console.handle(parts, body, peer, self).await;
            r.extensions_mut().insert(metrics::Labels {
                service: metrics::Service::Console,
                operation,
            });
            return r;
        }
        self.handle_api(parts, body, peer).await
    }

    /// Handles an API request (or health/test endpoints).
    async fn handle_api(
        &self,
        parts: http::request::Parts,
        body: Body,
        peer: SocketAddr,
    ) -> Response<Body> {
        if parts.uri.path() == "/_coffer/health" && parts.method == Method::GET {
            let mut r = response(
                200,
                "application/json",
                serde_json::json!({"status": "ok", "service": "coffer", "version": env!("CARGO_PKG_VERSION")}).to_string(),
            );
            r.extensions_mut().insert(metrics::Labels {
                service: metrics::Service::Other,
                operation: "Health",
            });
            return r;
        }
        if parts.uri.path() == "/_coffer/test/advance-clock"
            && parts.method == Method::POST
            && let Some(tc) = &self.test_clock
        {
            let secs: i64 = parts
                .uri
                .query()
                .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "seconds"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            tc.advance(time::Duration::seconds(secs));
            let kms = self.kms.clone();
            let due = tokio::task::spawn_blocking(move || kms.run_due()).await;
            self.metrics
                .background_run(metrics::Job::KmsDue, matches!(due, Ok(Ok(_))));
            let (deleted, rotated) = match due {
                Ok(Ok(x)) => {
                    self.metrics.kms_due_done(x.0, x.1);
                    x
                }
                _ => {
                    return response(
                        500,
                        "application/json",
                        "{\"error\":\"scheduled work failed\"}".into(),
                    );
                }
            };
            let mut r = response(
                200,
                "application/json",
                serde_json::json!({"now": coffer_core::iso8601(self.clock.now()), "deleted": deleted, "rotated": rotated}).to_string(),
            );
            r.extensions_mut().insert(metrics::Labels {
                service: metrics::Service::Other,
                operation: "AdvanceClock",
            });
            return r;
        }
        let parsed = coffer_sigv4::parse(&parts.method, &parts.uri, &parts.headers);
        let auth_scope = parsed.as_ref().ok().and_then(|a| a.as_ref());
        // Query APIs need their body to be classified; others are classified by header/scope.
        let maybe_query = auth_scope
            .map(|a| a.service == "iam" || a.service == "sts")
            .unwrap_or(false)
            // A form POST may be a Query request whatever its scope says: read it (bounded) to tell.
            || (parts.method == Method::POST && is_form(&parts.headers));
        let pre = classify(&parts.headers, auth_scope, None);
        let needs_body = maybe_query || pre == Proto::Kms;
        let mut body = Some(body);
        // The fault slot of this request's body (absent for in-process console calls).
        let faults = parts
            .extensions
            .get::<edge::BodyWatch>()
            .map(|w| w.0.clone())
            .unwrap_or_default();
        let body_bytes = if needs_body && let Some(body) = body.take() {
            match self.read_preauth(pre, &parts.headers, body, &faults).await {
                Ok(b) => b,
                Err(e) => {
                    let mut reply = Reply::new(pre);
                    reply.op = metrics::operation(pre, &parts, None);
                    // The rest of the body is not read.
                    reply.close = true;
                    return reply.error(&e, &[], false);
                }
            }
        } else {
            Bytes::new()
        };
        let form = if maybe_query {
            let mut pairs: Vec<(String, String)> =
                form_urlencoded::parse(&body_bytes).into_owned().collect();
            if let Some(q) = parts.uri.query() {
                pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
            }
            Some(Params::from_pairs(
                pairs.into_iter().filter(|(k, _)| !k.starts_with("X-Amz-")),
            ))
        } else {
            None
        };
        let proto = classify(&parts.headers, auth_scope, form.as_ref());
        let mut reply = Reply::new(proto);
        reply.op = metrics::operation(proto, &parts, form.as_ref());
        // A body nobody reads would be taken for the next request on this connection (S3 bodies
        // are read by s3s once authentication passes; an early refusal leaves them unread).
        reply.close = !needs_body && has_body(&parts.headers);
        let head = parts.method == Method::HEAD;

        // ---- authenticate ----
        // A browser form upload (POST object) is signed inside its form, which s3s reads and
        // verifies (policy signature, expiration, conditions); coffer-s3 then authorizes the
        // signer. Only that shape goes through without SigV4 here.
        if proto == Proto::S3 && matches!(parsed, Ok(None)) && is_post_upload(&parts) {
            let body = body.unwrap_or_else(|| Body::from(body_bytes));
            // The session token is a form field: read the fields before the file (bounded, and
            // within the pre-authentication memory budget) to find it, and hand s3s the body
            // unchanged.
            let Some(permit) = self
                .edge
                .reserve_preauth(content_length(&parts.headers), MAX_FORM_PREFIX)
                .await
            else {
                reply.close = true;
                return reply.error(&busy_error(proto), &[], false);
            };
            let read = tokio::time::timeout(
                edge::PREAUTH_READ_DEADLINE,
                form_token(&parts.headers, body),
            )
            .await;
            drop(permit);
            let Ok((token, signed, body)) = read else {
                reply.close = true;
                return reply.error(&request_timeout(), &[], false);
            };
            // Anonymous form uploads are not supported: refuse before s3s reads (and buffers)
            // the file.
            if !signed {
                reply.close = true;
                return reply.error(
                    &ServiceError::new("AccessDenied", 403, "Access Denied"),
                    &[],
                    false,
                );
            }
            let mut parts = parts;
            parts.extensions.insert(coffer_s3::PostFormToken(token));
            let mut r = self.s3_call(parts, body, peer, &reply, true).await;
            if r.status().as_u16() >= 400
                && let Some(f) = faults.get()
            {
                reply.close = true;
                let (e, extra) = fault_error(f, None);
                return reply.error(&e, &extra, false);
            }
            if r.status().as_u16() >= 400 {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return r;
        }
        let auth = match parsed {
            Err(e) => {
                let (se, extra) = auth_error(proto, &e, "");
                return reply.error(&se, &extra, head);
            }
            Ok(None) => {
                let e = match proto {
                    Proto::Kms => ServiceError::new(
                        "MissingAuthenticationTokenException",
                        400,
                        "Missing Authentication Token",
                    ),
                    Proto::Iam | Proto::Sts => ServiceError::new(
                        "MissingAuthenticationToken",
                        403,
                        "Request is missing Authentication Token",
                    ),
                    Proto::S3 => ServiceError::new("AccessDenied", 403, "Access Denied"),
                };
                return reply.error(&e, &[], head);
            }
            Ok(Some(a)) => a,
        };
        if auth.service != proto.signing_name() {
            let e = ServiceError::new(
                if proto == Proto::Kms {
                    "InvalidSignatureException"
                } else if proto == Proto::S3 {
                    "AuthorizationHeaderMalformed"
                } else {
                    "SignatureDoesNotMatch"
                },
                if proto == Proto::Kms || proto == Proto::S3 {
                    400
                } else {
                    403
                },
                format!(
                    "Credential should be scoped to correct service: '{}'. ",
                    proto.signing_name()
                ),
            );
            return reply.error(&e, &[], head);
        }
        // IAM and STS accept any region in the scope (clients sign with their configured region).
        if matches!(proto, Proto::Kms | Proto::S3) && auth.region != self.region {
            let e = if proto == Proto::S3 {
                ServiceError::new(
                    "AuthorizationHeaderMalformed",
                    400,
                    format!(
                        "The authorization header is malformed; the region '{}' is wrong; expecting '{}'",
                        auth.region, self.region
                    ),
                )
            } else {
                ServiceError::new(
                    "InvalidSignatureException",
                    400,
                    "Credential should be scoped to a valid region. ",
                )
            };
            return reply.error(&e, &[("Region", self.region.clone())], head);
        }
        // Credentials are cached in memory; a miss is one short read of the store (no writes),
        // so this runs inline.
        let resolved = match self
            .iam
            .resolve(&auth.access_key_id, auth.security_token.as_deref())
        {
            Ok(r) => r,
            Err(e) => {
                // S3 says a temporary key presented without its token does not exist.
                let e = if proto == Proto::S3
                    && auth.security_token.is_none()
                    && e == CredentialError::InvalidToken
                {
                    CredentialError::UnknownAccessKey
                } else {
                    e
                };
                let (se, extra) = credential_error(proto, &e, &auth.access_key_id);
                return reply.error(&se, &extra, head);
            }
        };
        let (flavor, payload_hash) = match proto {
            Proto::S3 => match auth.s3_payload_hash() {
                Some(h) => (Flavor::S3, h.to_string()),
                None => {
                    let e = ServiceError::new(
                        "InvalidRequest",
                        400,
                        "Missing required header for this request: x-amz-content-sha256",
                    );
                    return reply.error(&e, &[], head);
                }
            },
            _ => (Flavor::Standard, coffer_sigv4::sha256_hex(&body_bytes)),
        };
        let secret = Secret::new(resolved.secret.to_string());
        // Signatures are checked against the wall clock (the client's clock is a wall clock); the
        // services see the service clock, which tests may move.
        let now = self.clock.now();
        if let Err(e) = coffer_sigv4::verify_with_cache(
            &auth,
            &secret,
            &parts.method,
            &parts.uri,
            &parts.headers,
            &payload_hash,
            flavor,
            time::OffsetDateTime::now_utc(),
            Some(&self.sig_cache),
        ) {
            let (se, extra) = auth_error(proto, &e, &auth.access_key_id);
            return reply.error(&se, &extra, head);
        }
        // AWS ignores a Range header that is not one byte range (`bytes=abc`, several ranges)
        // and answers 200 with the whole object; s3s would refuse it with 400 before Coffer's
        // code runs. Drop it; when the client signed it, re-sign for s3s's second check with
        // the caller's own credentials (already verified above), minus `range`.
        let mut parts = parts;
        if proto == Proto::S3
            && (parts.method == Method::GET || parts.method == Method::HEAD)
            && parts.headers.contains_key(header::RANGE)
            && !single_byte_range(&parts.headers)
        {
            let signed_range = auth.signed_headers.iter().any(|h| h == "range");
            match auth.kind {
                coffer_sigv4::AuthKind::Header => {
                    parts.headers.remove(header::RANGE);
                    if signed_range {
                        let signed: Vec<String> = auth
                            .signed_headers
                            .iter()
                            .filter(|h| *h != "range")
                            .cloned()
                            .collect();
                        if coffer_sigv4::resign_header_auth(
                            &auth,
                            &parts.method,
                            &parts.uri,
                            &mut parts.headers,
                            &signed,
                            &payload_hash,
                            &secret,
                            flavor,
                        )
                        .is_err()
                        {
                            return reply.error(&ServiceError::internal(), &[], head);
                        }
                    }
                }
                // A presigned URL that signed `range` keeps it (its signature is in the query).
                _ if !signed_range => {
                    parts.headers.remove(header::RANGE);
                }
                _ => {}
            }
        }
        if !auth.access_key_id.starts_with("ASIA") && self.iam.key_use_due(&auth.access_key_id) {
            let iam = self.iam.clone();
            let (k, svc, region) = (
                auth.access_key_id.clone(),
                proto.signing_name().to_string(),
                auth.region.clone(),
            );
            tokio::task::spawn_blocking(move || iam.note_key_used(&k, &svc, &region));
        }
        let ctx = RequestContext {
            principal: resolved.principal,
            source_ip: Some(canonical_ip(peer.ip())),
            secure_transport: self.secure,
            now,
            request_id: reply.request_id.clone(),
            region: auth.region.clone(),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            via_service: None,
        };

        // ---- dispatch ----
        match proto {
            Proto::Iam | Proto::Sts => {
                let params = form.unwrap_or_default();
                let Some(action) = params.opt("Action").map(str::to_string) else {
                    return reply.error(
                        &ServiceError::new("MissingAction", 400, "Missing Action"),
                        &[],
                        false,
                    );
                };
                let version = if proto == Proto::Sts {
                    "2011-06-15"
                } else {
                    "2010-05-08"
                };
                match params.opt("Version") {
                    Some(v) if v == version => {}
                    Some(v) => {
                        let e = ServiceError::new(
                            "InvalidAction",
                            400,
                            format!("Could not find operation {action} for version {v}"),
                        );
                        return reply.error(&e, &[], false);
                    }
                    None => {
                        let e = ServiceError::new(
                            "MissingParameter",
                            400,
                            "The request must contain the parameter Version",
                        );
                        return reply.error(&e, &[], false);
                    }
                }
                let iam = self.iam.clone();
                let ctx2 = ctx.clone();
                let action2 = action.clone();
                let run = move || {
                    if proto == Proto::Sts {
                        iam.handle_sts(&ctx2, &action2, &params)
                    } else {
                        iam.handle(&ctx2, &action2, &params)
                    }
                };
                // IAM Get*/List* only read; in STS only GetCallerIdentity does (GetSessionToken writes).
                let read_only = match proto {
                    Proto::Sts => action == "GetCallerIdentity",
                    _ => action.starts_with("Get") || action.starts_with("List"),
                };
                let result = run_service(read_only, run).await;
                match result {
                    Ok(out) => {
                        tracing::info!(request_id = %ctx.request_id, principal = %ctx.principal.arn, action = %action, "ok");
                        let ns = if proto == Proto::Sts { STS_NS } else { IAM_NS };
                        let body =
                            encode::query_response(&action, ns, out.as_ref(), &reply.request_id);
                        reply.finish(response(200, "text/xml", body))
                    }
                    Err(e) => {
                        tracing::info!(request_id = %ctx.request_id, principal = %ctx.principal.arn, action = %action, code = %e.code, "error");
                        reply.error(&e, &[], false)
                    }
                }
            }
            Proto::Kms => {
                let op = parts
                    .headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|t| t.strip_prefix("TrentService."))
                    .unwrap_or("")
                    .to_string();
                let input: serde_json::Value = if body_bytes.is_empty() {
                    serde_json::Value::Object(Default::default())
                } else {
                    match serde_json::from_slice(&body_bytes) {
                        Ok(v) => v,
                        Err(_) => {
                            let e = ServiceError::new(
                                "SerializationException",
                                400,
                                "The request body is not valid JSON.",
                            );
                            return reply.error(&e, &[], false);
                        }
                    }
                };
                let kms = self.kms.clone();
                let ctx2 = ctx.clone();
                let op2 = op.clone();
                let result =
                    run_service(kms_inline(&op), move || kms.handle(&ctx2, &op2, &input)).await;
                match result {
                    Ok(v) => {
                        tracing::info!(request_id = %ctx.request_id, principal = %ctx.principal.arn, op = %op, "ok");
                        reply.finish(response(200, "application/x-amz-json-1.1", v.to_string()))
                    }
                    Err(e) => {
                        tracing::info!(request_id = %ctx.request_id, principal = %ctx.principal.arn, op = %op, code = %e.code, "error");
                        reply.error(&e, &[], false)
                    }
                }
            }
            Proto::S3 => {
                // Authenticated here with AWS's exact errors; s3s verifies again (cheaply) and
                // decodes aws-chunked bodies, then the S3 service authorizes.
                let mut body = match body {
                    Some(b) => b,
                    None => Body::from(body_bytes),
                };
                // s3s reads the body; but an error may be answered before it was read (auth,
                // policy, missing bucket): then the connection cannot be reused.
                reply.close = false;
                let had_body = has_body(&parts.headers);
                // Documents s3s reads into memory (policies, tagging, delete lists...) are
                // bounded here, before s3s buffers them and before the service authorizes.
                let cap = if had_body {
                    s3_document_cap(&parts)
                } else {
                    None
                };
                if let Some(cap) = cap {
                    let mode = auth
                        .s3_payload_hash()
                        .and_then(coffer_sigv4::PayloadMode::from_header);
                    let streaming = mode.as_ref().is_some_and(|m| {
                        m.chunked_mode().is_some()
                            || *m == coffer_sigv4::PayloadMode::StreamingEcdsa
                    });
                    let length = content_length(&parts.headers);
                    let declared = if streaming {
                        header_u64(&parts.headers, "x-amz-decoded-content-length")
                    } else {
                        length
                    };
                    if declared.is_some_and(|n| n > cap.limit) {
                        reply.close = true;
                        linger(body, length);
                        return reply.error(&cap.error(), &[], head);
                    }
                    // aws-chunked framing adds to the bytes on the wire; s3s checks the decoded
                    // length itself.
                    let wire_limit = if streaming {
                        cap.limit.saturating_mul(2).saturating_add(64 << 10)
                    } else {
                        cap.limit
                    };
                    let sha = match (&mode, length) {
                        (Some(coffer_sigv4::PayloadMode::Sha256(h)), Some(n)) => {
                            Some((h.as_str(), n))
                        }
                        _ => None,
                    };
                    body = Body::http_body(edge::Guarded::limited(
                        body,
                        wire_limit,
                        sha,
                        faults.clone(),
                    ));
                }
                let mut r = self.s3_call(parts, body, peer, &reply, false).await;
                // A body the gateway failed (stalled, too large, wrong SHA-256) surfaces from
                // s3s as whatever error its reader made of it: answer with AWS's.
                if r.status().as_u16() >= 400
                    && let Some(f) = faults.get()
                {
                    reply.close = true;
                    let (e, extra) = fault_error(f, cap);
                    return reply.error(&e, &extra, head);
                }
                if had_body && r.status().as_u16() >= 400 {
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                r
            }
        }
    }
}

/// KMS operations that only read the store and do bounded, small CPU work: they run on the
/// async worker. Everything else (writes that fsync, RSA key generation) runs on the blocking pool.
fn kms_inline(op: &str) -> bool {
    matches!(
        op,
        "Encrypt"
            | "Decrypt"
            | "ReEncrypt"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateRandom"
            | "DescribeKey"
            | "GetKeyPolicy"
            | "GetKeyRotationStatus"
            | "GetPublicKey"
            | "GenerateMac"
            | "VerifyMac"
            | "Verify"
            | "ListResourceTags"
            | "ListKeyPolicies"
    )
}

/// Runs a service call inline (`inline`: reads only, short) or on the blocking pool.
async fn run_service<T: Send + 'static>(
    inline: bool,
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    if inline {
        f()
    } else {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|_| Err(ServiceError::internal()))
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight connections
/// (at most `drain` long).
///
/// At most `app.edge.limits.max_connections` connections are served at once: one over the cap
/// is accepted and closed at once (rather than left in the kernel's backlog, where its client
/// would wait without knowing). A connection must send each request head within the header
/// timeout of its first byte (the first one within the header timeout of the connection
/// opening), and is closed after the idle timeout without a request (hyper's header-read timer,
/// which runs from the moment hyper waits for a head).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    use hyper_util::server::graceful::GracefulShutdown;
    let graceful = GracefulShutdown::new();
    let limits = app.edge.limits.clone();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut refused: u64 = 0;
    let mut last_refusal_log: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // Counted before the close, so that a client seeing the close also sees it
                    // counted.
                    app.metrics.connection_refused();
                    drop(stream);
                    refused += 1;
                    if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(refused, max = limits.max_connections, "connection limit reached: closing new connections");
                        last_refusal_log = Some(tokio::time::Instant::now());
                    }
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let http = http.clone();
                let watcher = graceful.watcher();
                let acceptor = tls.clone();
                let header_timeout = limits.header_timeout;
                let open = app.metrics.connection_opened();
                tokio::spawn(async move {
                    let _slot = slot;
                    let _open = open;
                    match acceptor {
                        None => serve_conn(&http, stream, app, peer, watcher, header_timeout).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => serve_conn(&http, s, app, peer, watcher, header_timeout).await,
                                _ => tracing::debug!("TLS handshake failed"),
                            }
                        }
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(drain) => tracing::warn!("drain timeout; closing remaining connections"),
    }
}

/// Serves one connection until it ends, or until a request head is overdue.
async fn serve_conn<S>(
    http: &hyper::server::conn::http1::Builder,
    io: S,
    app: Arc<App>,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let watch = Arc::new(edge::ConnWatch::new());
    let w = watch.clone();
    let svc = hyper::service::service_fn(move |req| {
        let app = app.clone();
        // Taken when hyper hands over the parsed head: the head is no longer pending.
        let busy = w.begin_request();
        async move {
            let r = app.handle(req, peer).await;
            drop(busy);
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let io = hyper_util::rt::TokioIo::new(edge::WatchedIo::new(io, watch.clone()));
    let conn = watcher.watch(http.serve_connection(io, svc));
    tokio::select! {
        _ = conn => {}
        _ = watch.head_overdue(header_timeout) => {
            tracing::debug!(%peer, "request head not received in time: connection closed");
        }
    }
}

/// The bucket and key an S3 request names (virtual-hosted style under `localhost`, else path
/// style), percent-decoded: for AWS's `<BucketName>` and `<Key>` in error bodies.
fn s3_target(parts: &http::request::Parts) -> (Option<String>, Option<String>) {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let path = parts.uri.path().trim_start_matches('/');
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    match name.strip_suffix(".localhost").filter(|b| !b.is_empty()) {
        Some(bucket) => (Some(bucket.to_string()), non_empty(decode(path))),
        None => {
            let (b, k) = path.split_once('/').unwrap_or((path, ""));
            (non_empty(decode(b)), non_empty(decode(k)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields `data` one byte per frame.
    struct Trickle(Bytes);

    impl hyper::body::Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            if self.0.is_empty() {
                return std::task::Poll::Ready(None);
            }
            let b = self.0.split_to(1);
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b))))
        }
    }

    fn form_with_big_field(boundary: &str, field_len: usize) -> Bytes {
        let mut f = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n")
            .into_bytes();
        f.resize(f.len() + field_len, b'k');
        f.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"x-amz-security-token\"\r\n\r\ntok\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata\r\n--{boundary}--\r\n"
            )
            .as_bytes(),
        );
        Bytes::from(f)
    }

    /// One-byte frames must not make the scan of the fields before the file quadratic.
    #[tokio::test]
    async fn form_prefix_scan_is_linear_in_tiny_frames() {
        let form = form_with_big_field("XyZ", 256 << 10);
        let body = Body::http_body(Trickle(form));
        let t = std::time::Instant::now();
        let (fields, rest) = form_prefix(Some("XyZ"), body).await;
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "scanning a 256 KiB field in 1-byte frames took {took:?}"
        );
        assert_eq!(fields.token.as_deref(), Some("tok"));
        assert!(!fields.signed);
        // The body handed on still yields every byte.
        let all = rest.collect().await.unwrap().to_bytes();
        assert_eq!(all, form_with_big_field("XyZ", 256 << 10));
    }

    #[test]
    fn which_s3_bodies_are_documents() {
        let cap = |method: Method, uri: &str, ct: Option<&str>| {
            let mut b = Request::builder().method(method).uri(uri);
            if let Some(ct) = ct {
                b = b.header(header::CONTENT_TYPE, ct);
            }
            let (parts, ()) = b.body(()).unwrap().into_parts();
            s3_document_cap(&parts)
        };
        assert_eq!(cap(Method::PUT, "/b?policy", None), Some(DocCap::POLICY));
        assert_eq!(cap(Method::PUT, "/b?tagging", None), Some(DocCap::DOCUMENT));
        assert_eq!(cap(Method::PUT, "/b", None), Some(DocCap::DOCUMENT));
        assert_eq!(
            cap(Method::PUT, "/b/k?tagging", None),
            Some(DocCap::DOCUMENT)
        );
        assert_eq!(
            cap(Method::PUT, "/b/k?retention", None),
            Some(DocCap::DOCUMENT)
        );
        assert_eq!(cap(Method::POST, "/b?delete", None), Some(DocCap::LIST));
        assert_eq!(
            cap(Method::POST, "/b/k?uploadId=abc", None),
            Some(DocCap::LIST)
        );
        // Object data streams.
        assert_eq!(cap(Method::PUT, "/b/k", None), None);
        assert_eq!(cap(Method::PUT, "/b/k?partNumber=1&uploadId=x", None), None);
        assert_eq!(cap(Method::PUT, "/b/policy", None), None);
        assert_eq!(
            cap(Method::POST, "/b", Some("multipart/form-data; boundary=x")),
            None
        );
        assert_eq!(cap(Method::GET, "/b?policy", None), None);
    }

    #[tokio::test]
    async fn form_fields_before_the_file_whatever_the_framing() {
        let b = "bnd";
        let form = format!(
            "preamble\r\n--{b}\r\nContent-Disposition: form-data; name=\"Policy\"\r\n\r\neyJ9\r\n--{b}\r\nContent-Disposition: form-data; name=\"X-Amz-Security-Token\"\r\n\r\nT1\r\n--{b}\r\nContent-Disposition: form-data; name=\"x-amz-security-token\"\r\n\r\nT2\r\n--{b}\r\nContent-Disposition: form-data; name=\"X-Amz-Signature\"\r\n\r\nabc\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx-amz-security-token\r\n--{b}--\r\n"
        );
        let want = FormFields {
            token: Some("T1".into()),
            signed: true,
        };
        let bulk = Body::from(form.clone());
        assert_eq!(form_prefix(Some(b), bulk).await.0, want);
        let trickle = Body::http_body(Trickle(Bytes::from(form.clone())));
        assert_eq!(form_prefix(Some(b), trickle).await.0, want);
        // Cut before the file part: nothing is known.
        let cut = form[..form.find("name=\"file\"").unwrap()].to_string();
        assert_eq!(
            form_prefix(Some(b), Body::from(cut)).await.0,
            FormFields::default()
        );
        // A signature after the file does not count.
        let late = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\np\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--{b}\r\nContent-Disposition: form-data; name=\"signature\"\r\n\r\ns\r\n--{b}--\r\n"
        );
        assert!(!form_prefix(Some(b), Body::from(late)).await.0.signed);
    }
}
