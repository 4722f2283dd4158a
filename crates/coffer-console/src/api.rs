//! The console's API client: every action is a real, SigV4-signed request to the same service
//! operations the API serves, made in-process with the signed-in principal's session credentials.

use crate::Dispatch;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::Body;
use std::net::SocketAddr;
use zeroize::Zeroizing;

/// Characters left as they are in S3 paths and query values (SigV4's unreserved set).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Same, keeping `/` (object keys).
const KEY_SET: &AsciiSet = &UNRESERVED.remove(b'/');

pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

pub fn enc_key(s: &str) -> String {
    utf8_percent_encode(s, KEY_SET).to_string()
}

/// Largest response body the console reads into memory (listings, policies).
const MAX_RESPONSE: usize = 16 << 20;

/// An error answered by a service, as a client sees it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    pub fn new(code: &str, status: u16, message: impl Into<String>) -> Self {
        ApiError {
            code: code.to_string(),
            message: message.into(),
            status,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A session's temporary credentials.
pub struct Creds {
    pub access_key_id: String,
    pub secret: coffer_sigv4::Secret,
    pub token: Zeroizing<String>,
}

pub struct Api<'a> {
    pub dispatch: &'a dyn Dispatch,
    pub peer: SocketAddr,
    pub region: &'a str,
    pub creds: &'a Creds,
}

/// An S3 answer read whole.
pub struct S3Reply {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl S3Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api<'_> {
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Body,
        body_hash: &str,
        service: &str,
    ) -> ApiResult<Response<Body>> {
        let uri: Uri = path_and_query
            .parse()
            .map_err(|_| ApiError::new("InvalidURI", 400, "Couldn't parse the specified URI."))?;
        headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
        let flavor = if service == "s3" {
            coffer_sigv4::Flavor::S3
        } else {
            coffer_sigv4::Flavor::Standard
        };
        coffer_sigv4::sign_request(
            &method,
            &uri,
            &mut headers,
            body_hash,
            &self.creds.access_key_id,
            &self.creds.secret,
            self.region,
            service,
            time::OffsetDateTime::now_utc(),
            Some(self.creds.token.as_str()),
            flavor,
        )
        .map_err(|_| ApiError::new("InvalidRequest", 400, "The request could not be signed."))?;
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(self.dispatch.dispatch(req, self.peer).await)
    }

    async fn read(resp: Response<Body>) -> ApiResult<(http::response::Parts, Bytes)> {
        let (parts, body) = resp.into_parts();
        let bytes = http_body_util::Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|_| ApiError::new("InternalError", 500, "The response could not be read."))?
            .to_bytes();
        Ok((parts, bytes))
    }

    /// An IAM or STS Query action; returns the parsed XML response.
    pub async fn query(
        &self,
        service: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> ApiResult<El> {
        let version = if service == "sts" {
            "2011-06-15"
        } else {
            "2010-05-08"
        };
        let body = {
            let mut ser = form_urlencoded::Serializer::new(String::new());
            ser.append_pair("Action", action)
                .append_pair("Version", version);
            for (k, v) in params {
                ser.append_pair(k, v);
            }
            ser.finish()
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let hash = coffer_sigv4::sha256_hex(body.as_bytes());
        let resp = self
            .send(Method::POST, "/", headers, Body::from(body), &hash, service)
            .await?;
        let (parts, bytes) = Self::read(resp).await?;
        let text = String::from_utf8_lossy(&bytes);
        let root = El::parse(&text)
            .ok_or_else(|| ApiError::new("InternalError", 500, "The response was not XML."))?;
        if parts.status.is_success() {
            Ok(root)
        } else {
            Err(xml_error(&root, parts.status.as_u16()))
        }
    }

    pub async fn iam(&self, action: &str, params: &[(&str, &str)]) -> ApiResult<El> {
        self.query("iam", action, params).await
    }

    /// A KMS JSON operation.
    pub async fn kms(&self, op: &str, input: serde_json::Value) -> ApiResult<serde_json::Value> {
        let body = input.to_string();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        let target = HeaderValue::from_str(&format!("TrentService.{op}"))
            .map_err(|_| ApiError::new("InvalidAction", 400, "Bad operation name."))?;
        headers.insert("x-amz-target", target);
        let hash = coffer_sigv4::sha256_hex(body.as_bytes());
        let resp = self
            .send(Method::POST, "/", headers, Body::from(body), &hash, "kms")
            .await?;
        let (parts, bytes) = Self::read(resp).await?;
        let v: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|_| ApiError::new("InternalError", 500, "The response was not JSON."))?
        };
        if parts.status.is_success() {
            Ok(v)
        } else {
            let code = v
                .get("__type")
                .and_then(|t| t.as_str())
                .unwrap_or("InternalError");
            let code = code.rsplit('#').next().unwrap_or(code);
            let message = v
                .get("message")
                .or_else(|| v.get("Message"))
                .and_then(|m| m.as_str())
                .unwrap_or("");
            Err(ApiError::new(code, parts.status.as_u16(), message))
        }
    }

    /// Builds an S3 path-style target: `/bucket/key?query`.
    pub fn s3_path(bucket: &str, key: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut p = format!("/{}", enc(bucket));
        if let Some(k) = key {
            p.push('/');
            p.push_str(&enc_key(k));
        }
        for (i, (k, v)) in query.iter().enumerate() {
            p.push(if i == 0 { '?' } else { '&' });
            p.push_str(&enc(k));
            p.push('=');
            p.push_str(&enc(v));
        }
        p
    }

    /// An S3 request whose (small) answer is read whole.
    pub async fn s3(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> ApiResult<S3Reply> {
        let resp = self.s3_raw(method, path, headers, body).await?;
        let (parts, bytes) = Self::read(resp).await?;
        Ok(S3Reply {
            headers: parts.headers,
            body: bytes,
        })
    }

    /// An S3 request whose answer body is handed back unread (downloads stream through).
    pub async fn s3_raw(
        &self,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        body: Option<Bytes>,
    ) -> ApiResult<Response<Body>> {
        let body = body.unwrap_or_default();
        let hash = coffer_sigv4::sha256_hex(&body);
        if !body.is_empty() {
            use base64::Engine;
            use s3s::crypto::Checksum;
            let md5 = s3s::crypto::Md5::checksum(&body);
            if let Ok(v) =
                HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(md5))
            {
                headers.insert("content-md5", v);
            }
        }
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let resp = self
            .send(method, path, headers, Body::from(body), &hash, "s3")
            .await?;
        s3_check(resp).await
    }

    /// A streamed S3 upload (PutObject) of `len` bytes from `body`, unsigned payload.
    pub async fn s3_upload(
        &self,
        path: &str,
        mut headers: HeaderMap,
        body: Body,
        len: u64,
    ) -> ApiResult<Response<Body>> {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
        let resp = self
            .send(Method::PUT, path, headers, body, "UNSIGNED-PAYLOAD", "s3")
            .await?;
        s3_check(resp).await
    }
}

/// Turns an S3 error response into an ApiError (HEAD errors have no body: AWS's default text).
async fn s3_check(resp: Response<Body>) -> ApiResult<Response<Body>> {
    if resp.status().is_success() || resp.status().as_u16() == 304 {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let (_, bytes) = Api::read(resp).await?;
    let text = String::from_utf8_lossy(&bytes);
    match El::parse(&text) {
        Some(root) => Err(xml_error(&root, status)),
        None => Err(match status {
            403 => ApiError::new("AccessDenied", 403, "Access Denied"),
            404 => ApiError::new("NotFound", 404, "Not Found"),
            _ => ApiError::new("Error", status, format!("HTTP {status}")),
        }),
    }
}

fn xml_error(root: &El, status: u16) -> ApiError {
    let e = root.find("Error").unwrap_or(root);
    ApiError::new(&e.text_of("Code"), status, e.text_of("Message"))
}

/// A parsed XML element (namespaces dropped).
#[derive(Debug, Default, Clone)]
pub struct El {
    pub name: String,
    pub text: String,
    pub children: Vec<El>,
}

impl El {
    pub fn parse(xml: &str) -> Option<El> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut stack: Vec<El> = vec![El::default()];
        loop {
            match reader.read_event().ok()? {
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    stack.push(El {
                        name,
                        ..Default::default()
                    });
                }
                Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    stack.last_mut()?.children.push(El {
                        name,
                        ..Default::default()
                    });
                }
                Event::End(_) => {
                    let done = stack.pop()?;
                    stack.last_mut()?.children.push(done);
                }
                Event::Text(t) => {
                    let s = t.decode().ok()?;
                    stack.last_mut()?.text.push_str(&s);
                }
                Event::CData(t) => {
                    let s = t.decode().ok()?;
                    stack.last_mut()?.text.push_str(&s);
                }
                Event::GeneralRef(r) => {
                    let c = match r.resolve_char_ref().ok()? {
                        Some(c) => c.to_string(),
                        None => match r.decode().ok()?.as_ref() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            _ => return None,
                        },
                    };
                    stack.last_mut()?.text.push_str(&c);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let mut doc = stack.pop()?;
        if doc.children.is_empty() {
            return None;
        }
        Some(doc.children.remove(0))
    }

    pub fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s El> + 's {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child named `name` ("" when absent).
    pub fn text_of(&self, name: &str) -> String {
        self.child(name)
            .map(|c| c.text.trim().to_string())
            .unwrap_or_default()
    }

    /// The first descendant (or self) named `name`, depth first.
    pub fn find(&self, name: &str) -> Option<&El> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// The `member` children of the first descendant named `list`.
    pub fn members<'s>(&'s self, list: &str) -> Vec<&'s El> {
        self.find(list)
            .map(|l| l.all("member").collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_errors_and_lists() {
        let x = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: a &amp; b &#60;x&#62; is not</Message></Error><RequestId>1</RequestId></ErrorResponse>"#;
        let e = xml_error(&El::parse(x).unwrap(), 403);
        assert_eq!(e.code, "AccessDenied");
        assert_eq!(e.message, "User: a & b <x> is not");
        let l = r#"<ListUsersResponse><ListUsersResult><Users><member><UserName>a</UserName></member><member><UserName>b</UserName></member></Users><IsTruncated>false</IsTruncated></ListUsersResult></ListUsersResponse>"#;
        let root = El::parse(l).unwrap();
        let names: Vec<String> = root
            .members("Users")
            .iter()
            .map(|m| m.text_of("UserName"))
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(El::parse("").is_none());
    }

    #[test]
    fn encodes_paths() {
        assert_eq!(
            Api::s3_path("b", Some("a b/c+d"), &[("prefix", "x/")]),
            "/b/a%20b/c%2Bd?prefix=x%2F"
        );
    }
}
