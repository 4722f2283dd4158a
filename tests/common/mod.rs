//! Shared helpers for the binary-level integration tests: start the real `coffer` binary on a
//! fresh data dir and an ephemeral port, talk to it with a tiny HTTP/1.1 client over
//! `std::net::TcpStream`, sign requests with `coffer_sigv4`, and pick XML apart with substring
//! searches.
#![allow(dead_code)]

use coffer_sigv4::{Flavor, Secret};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

pub const ACCOUNT: &str = "123456789012";
pub const ROOT_AK: &str = "AKIACOFFERTESTROOT01";
pub const ROOT_SK: &str = "cofferTestRootSecretKey0123456789abcdefg";
pub const REGION: &str = "us-east-1";
pub const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub const FORM_CT: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// How long to wait for the server to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket read/write timeout of the test client.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// Environment variables the server reads; cleared so the caller's environment cannot leak in.
const SERVER_ENV: &[&str] = &[
    "COFFER_DATA_DIR",
    "COFFER_LISTEN",
    "COFFER_REGION",
    "COFFER_ROOT_KEY",
    "COFFER_ACCOUNT_ID",
    "COFFER_ROOT_ACCESS_KEY_ID",
    "COFFER_ROOT_SECRET_ACCESS_KEY",
    "COFFER_LOG",
    "COFFER_METRICS_TOKEN",
];

// ------------------------------------------------------------------------------------------
// Credentials
// ------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Creds {
    pub access_key: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Creds {
    pub fn new(ak: &str, sk: &str) -> Self {
        Creds {
            access_key: ak.to_string(),
            secret: sk.to_string(),
            token: None,
        }
    }

    pub fn root() -> Self {
        Creds::new(ROOT_AK, ROOT_SK)
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    pub fn without_token(mut self) -> Self {
        self.token = None;
        self
    }
}

/// How to sign one request.
#[derive(Clone, Debug)]
pub struct Signing {
    pub creds: Creds,
    pub service: String,
    pub region: String,
    pub at: OffsetDateTime,
    pub flavor: Flavor,
}

impl Signing {
    pub fn new(creds: &Creds, service: &str) -> Self {
        Signing {
            creds: creds.clone(),
            service: service.to_string(),
            region: REGION.to_string(),
            at: OffsetDateTime::now_utc(),
            flavor: if service == "s3" {
                Flavor::S3
            } else {
                Flavor::Standard
            },
        }
    }

    pub fn region(mut self, region: &str) -> Self {
        self.region = region.to_string();
        self
    }

    pub fn at(mut self, at: OffsetDateTime) -> Self {
        self.at = at;
        self
    }
}

// ------------------------------------------------------------------------------------------
// Server process
// ------------------------------------------------------------------------------------------

/// Options for one server start.
#[derive(Clone, Debug)]
pub struct Opts {
    pub env: Vec<(String, String)>,
    pub listen: String,
    pub extra_args: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            env: vec![
                ("COFFER_ACCOUNT_ID".into(), ACCOUNT.into()),
                ("COFFER_ROOT_ACCESS_KEY_ID".into(), ROOT_AK.into()),
                ("COFFER_ROOT_SECRET_ACCESS_KEY".into(), ROOT_SK.into()),
            ],
            listen: "127.0.0.1:0".into(),
            extra_args: vec![],
        }
    }
}

impl Opts {
    /// No account / root credentials in the environment.
    pub fn bare() -> Self {
        Opts {
            env: vec![],
            ..Opts::default()
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    pub fn listen(mut self, l: &str) -> Self {
        self.listen = l.to_string();
        self
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffer")
}

fn command(dir: &Path, opts: &Opts) -> Command {
    let mut c = Command::new(bin());
    c.arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(&opts.listen)
        .args(&opts.extra_args);
    for k in SERVER_ENV {
        c.env_remove(k);
    }
    c.env("COFFER_LOG", "info");
    for (k, v) in &opts.env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

/// Runs the binary expecting it to exit on its own (a startup failure); returns its status,
/// stdout and stderr. Kills it and panics if it is still running after 20 s.
pub fn run_to_exit(dir: &Path, opts: &Opts) -> (ExitStatus, String, String) {
    let mut child = command(dir, opts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coffer");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "coffer did not exit; stdout: {}; stderr: {}",
                out.lock().unwrap(),
                err.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Give the drain threads a moment to see EOF.
    std::thread::sleep(Duration::from_millis(50));
    let o = out.lock().unwrap().clone();
    let e = err.lock().unwrap().clone();
    (status, o, e)
}

fn drain<R: Read + Send + 'static>(r: R) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => b.lock().unwrap().push_str(&line),
            }
        }
    });
    buf
}

/// A running `coffer serve`; SIGKILLed on drop if still alive.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// Owns the temporary data dir when the server made it.
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh temporary data dir with the test account and root credentials.
    pub fn start() -> Server {
        Server::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = Server::start_in(tmp.path(), opts);
        s._tmp = Some(tmp);
        s
    }

    /// A server on the given data dir (kept by the caller).
    pub fn start_in(dir: &Path, opts: Opts) -> Server {
        let mut child = command(dir, &opts)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coffer");
        let stderr = drain(child.stderr.take().unwrap());
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        {
            let out = stdout.clone();
            let pipe = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            out.lock().unwrap().push_str(&line);
                            if let Some(rest) = line.strip_prefix("Coffer listening on http://") {
                                let a = rest.split_whitespace().next().unwrap_or("");
                                if let Ok(addr) = a.parse() {
                                    let _ = tx.send(addr);
                                }
                            }
                        }
                    }
                }
            });
        }
        let mut server = Server {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            data_dir: dir.to_path_buf(),
            stdout,
            stderr,
            _tmp: None,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => server.addr = addr,
            Err(_) => {
                let status = server.child.as_mut().unwrap().try_wait().ok().flatten();
                panic!(
                    "coffer did not report its address (status {status:?}); stdout: {}; stderr: {}",
                    server.stdout(),
                    server.stderr()
                );
            }
        }
        server
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits (at most 5 s) until the process catches SIGTERM.
    ///
    /// The server prints its listening line before its SIGTERM handler exists (the handler is
    /// installed when the serve loop first polls its shutdown future), so a SIGTERM sent right
    /// after startup can kill it with the default action (exit by signal 15). Waiting for the
    /// handler keeps the shutdown tests deterministic. On Linux this reads `SigCgt` from
    /// `/proc/PID/status`; elsewhere it falls back to a short sleep.
    pub fn wait_for_sigterm_handler(&self) {
        let path = format!("/proc/{}/status", self.pid());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let Ok(status) = std::fs::read_to_string(&path) else {
                std::thread::sleep(Duration::from_millis(200));
                return;
            };
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .is_some_and(|mask| mask & (1 << (15 - 1)) != 0);
            if caught {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "coffer never installed a SIGTERM handler"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM (via `kill -TERM`), once the server catches it.
    pub fn sigterm(&self) {
        self.wait_for_sigterm_handler();
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM failed: {st}");
    }

    /// Waits for the process to exit; `None` on timeout (the process is left running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait (at most `timeout`) for the exit; returns the status and the time taken.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let t0 = Instant::now();
        self.sigterm();
        match self.wait_timeout(timeout) {
            Some(s) => (s, t0.elapsed()),
            None => panic!(
                "coffer did not exit within {timeout:?} of SIGTERM; stderr: {}",
                self.stderr()
            ),
        }
    }

    pub fn base_uri(&self, path_and_query: &str) -> Uri {
        format!("http://{}{}", self.addr, path_and_query)
            .parse()
            .expect("uri")
    }

    // ---- requests ----

    /// Signs `headers` in place for a request with `body` (adds `host`, `x-amz-date`,
    /// `authorization`, and the token / content hash headers as needed).
    pub fn sign(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &mut HeaderMap,
        body: &[u8],
        s: &Signing,
    ) {
        let uri = self.base_uri(path_and_query);
        let hash = coffer_sigv4::sha256_hex(body);
        coffer_sigv4::sign_request(
            method,
            &uri,
            headers,
            &hash,
            &s.creds.access_key,
            &Secret::new(s.creds.secret.clone()),
            &s.region,
            &s.service,
            s.at,
            s.creds.token.as_deref(),
            s.flavor,
        )
        .expect("sign");
    }

    /// Sends a request, signed if `sign` is given. `headers` are sent as given (and signed).
    pub fn send(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: &[u8],
        sign: Option<&Signing>,
    ) -> Resp {
        if let Some(s) = sign {
            self.sign(&method, path_and_query, &mut headers, body, s);
        }
        http_request(self.addr, &method, path_and_query, &headers, body)
    }

    /// A presigned URL (path and query only) for this server.
    pub fn presign(&self, method: &Method, path: &str, s: &Signing, expires_secs: u64) -> String {
        let url = coffer_sigv4::presign_url(
            method,
            &self.base_uri(path),
            &HeaderMap::new(),
            &s.creds.access_key,
            &Secret::new(s.creds.secret.clone()),
            &s.region,
            &s.service,
            s.at,
            expires_secs,
            s.creds.token.as_deref(),
            s.flavor,
        );
        url.strip_prefix(&format!("http://{}", self.addr))
            .expect("presigned URL on this server")
            .to_string()
    }

    /// A Query-protocol POST: `Action=..&Version=..&params`, form-encoded.
    pub fn query(
        &self,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
        sign: Option<&Signing>,
    ) -> Resp {
        let body = query_body(action, version, params);
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(FORM_CT),
        );
        self.send(Method::POST, "/", h, body.as_bytes(), sign)
    }

    /// An IAM call signed for `iam` with `creds`.
    pub fn iam(&self, creds: &Creds, action: &str, params: &[(&str, &str)]) -> Resp {
        self.query(
            "2010-05-08",
            action,
            params,
            Some(&Signing::new(creds, "iam")),
        )
    }

    /// An STS call signed for `sts` with `creds`.
    pub fn sts(&self, creds: &Creds, action: &str, params: &[(&str, &str)]) -> Resp {
        self.query(
            "2011-06-15",
            action,
            params,
            Some(&Signing::new(creds, "sts")),
        )
    }

    /// A KMS JSON call (`x-amz-target: TrentService.<op>`).
    pub fn kms(&self, op: &str, body: &str, sign: Option<&Signing>) -> Resp {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        h.insert(
            "x-amz-target",
            HeaderValue::from_str(&format!("TrentService.{op}")).unwrap(),
        );
        self.send(Method::POST, "/", h, body.as_bytes(), sign)
    }

    /// An S3 request with an empty body.
    pub fn s3(&self, method: Method, path: &str, sign: Option<&Signing>) -> Resp {
        self.send(method, path, HeaderMap::new(), b"", sign)
    }

    /// Root creates a user and an access key for it; returns the key.
    pub fn create_user_with_key(&self, name: &str) -> Creds {
        let r = self.iam(&Creds::root(), "CreateUser", &[("UserName", name)]);
        r.expect_ok("CreateUser");
        let r = self.iam(&Creds::root(), "CreateAccessKey", &[("UserName", name)]);
        r.expect_ok("CreateAccessKey");
        let ak = r.xml("AccessKeyId").expect("AccessKeyId");
        let sk = r.xml("SecretAccessKey").expect("SecretAccessKey");
        assert_eq!(r.xml("UserName").as_deref(), Some(name), "{}", r.body);
        Creds::new(&ak, &sk)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take()
            && c.try_wait().ok().flatten().is_none()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Encoding helpers
// ------------------------------------------------------------------------------------------

/// `application/x-www-form-urlencoded` body (RFC 3986 unreserved characters kept).
pub fn query_body(action: &str, version: &str, params: &[(&str, &str)]) -> String {
    let mut pairs = vec![("Action", action), ("Version", version)];
    pairs.extend_from_slice(params);
    form(&pairs)
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                coffer_sigv4::uri_encode(k.as_bytes()),
                coffer_sigv4::uri_encode(v.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

// ------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        let n = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
    }

    /// Text of the first `<tag>…</tag>`, entity-decoded.
    pub fn xml(&self, tag: &str) -> Option<String> {
        xml_text(&self.body, tag)
    }

    pub fn xml_all(&self, tag: &str) -> Vec<String> {
        xml_all(&self.body, tag)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    #[track_caller]
    pub fn expect_ok(&self, what: &str) {
        assert_eq!(self.status, 200, "{what}: {} {}", self.status, self.body);
    }

    /// Asserts a Query (IAM/STS) error: status, `<Code>` and a message fragment.
    #[track_caller]
    pub fn expect_query_error(&self, status: u16, code: &str, msg_part: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.body.contains("<ErrorResponse xmlns="),
            "not an ErrorResponse: {}",
            self.body
        );
        assert_eq!(self.xml("Code").as_deref(), Some(code), "{}", self.body);
        let m = self.xml("Message").unwrap_or_default();
        assert!(m.contains(msg_part), "message {m:?} lacks {msg_part:?}");
        assert!(
            self.header("x-amzn-requestid").is_some(),
            "{:?}",
            self.headers
        );
        assert_eq!(
            self.xml("RequestId").as_deref(),
            self.header("x-amzn-requestid")
        );
    }

    /// Asserts a KMS JSON error: status, `__type` and a message fragment.
    #[track_caller]
    pub fn expect_json_error(&self, status: u16, typ: &str, msg_part: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/x-amz-json-1.1")
        );
        let v = self.json();
        assert_eq!(v["__type"], typ, "{}", self.body);
        let m = v["message"].as_str().unwrap_or_default();
        assert!(m.contains(msg_part), "message {m:?} lacks {msg_part:?}");
        assert!(
            self.header("x-amzn-requestid").is_some(),
            "{:?}",
            self.headers
        );
    }

    /// Asserts an S3 XML error: status, `<Code>` and a message fragment.
    #[track_caller]
    pub fn expect_s3_error(&self, status: u16, code: &str, msg_part: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(self.body.contains("<Error><Code>"), "{}", self.body);
        assert_eq!(self.xml("Code").as_deref(), Some(code), "{}", self.body);
        let m = self.xml("Message").unwrap_or_default();
        assert!(m.contains(msg_part), "message {m:?} lacks {msg_part:?}");
        let rid = self.header("x-amz-request-id").expect("x-amz-request-id");
        assert_eq!(self.xml("RequestId").as_deref(), Some(rid));
        assert!(self.header("x-amz-id-2").is_some());
    }
}

pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#xD;", "\r")
        .replace("&amp;", "&")
}

pub fn xml_text(body: &str, tag: &str) -> Option<String> {
    xml_all(body, tag).into_iter().next()
}

pub fn xml_all(body: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = vec![];
    let mut rest = body;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(xml_unescape(&after[..j]));
        rest = &after[j + close.len()..];
    }
    out
}

/// Writes the request head (with `Host` if absent, `Content-Length` and `Connection: close`).
pub fn request_head(
    addr: SocketAddr,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body_len: usize,
    close: bool,
) -> Vec<u8> {
    let mut head = format!("{method} {path_and_query} HTTP/1.1\r\n");
    if !headers.contains_key(http::header::HOST) {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(k.as_str());
        head.push_str(": ");
        head.push_str(v.to_str().expect("ascii header"));
        head.push_str("\r\n");
    }
    head.push_str(&format!("content-length: {body_len}\r\n"));
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// One request on a fresh connection with `Connection: close`; reads the response to EOF.
pub fn http_request(
    addr: SocketAddr,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Resp {
    let mut s = connect(addr);
    let mut req = request_head(addr, method, path_and_query, headers, body.len(), true);
    req.extend_from_slice(body);
    s.write_all(&req).expect("write request");
    let mut raw = vec![];
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw, method == Method::HEAD)
}

/// Reads exactly one `Content-Length`-framed response from a kept-alive connection.
pub fn read_one_response(s: &mut TcpStream) -> Resp {
    let mut raw = vec![];
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().expect("content-length"))
                .expect("a content-length framed response");
            if raw.len() >= end + 4 + len {
                return parse_response(&raw[..end + 4 + len], false);
            }
        }
        let n = s.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "EOF before a full response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Parses a complete response (as read to EOF).
pub fn parse_response(raw: &[u8], head: bool) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head_text = std::str::from_utf8(&raw[..split]).expect("utf-8 head");
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status: u16 = parts.next().unwrap().parse().expect("status");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if head {
        vec![]
    } else if chunked {
        dechunk(rest)
    } else if let Some(n) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        assert!(rest.len() >= n, "short body: {} < {n}", rest.len());
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body: String::from_utf8(body).expect("utf-8 body"),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let line = std::str::from_utf8(&b[..eol]).unwrap();
        let size =
            usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).expect("chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Builds a header map from pairs.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// Mode bits (permission part) of a file.
#[cfg(unix)]
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Like [`run_to_exit`], but its stdout and stderr are complete: they are read to EOF (the
/// reader threads are joined) rather than given a fixed moment after the exit.
pub fn run_to_exit_complete(dir: &Path, opts: &Opts) -> (ExitStatus, String, String) {
    let mut child = command(dir, opts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coffer");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes reach EOF once the process is gone.
    let (o, e) = (out.join().unwrap(), err.join().unwrap());
    let status = status.unwrap_or_else(|| panic!("coffer did not exit; stdout: {o}; stderr: {e}"));
    (status, o, e)
}
