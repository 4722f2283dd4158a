//! `coffer demo`: the walkthrough (../shared/seed/walkthrough.md) replayed against a temporary
//! server over real HTTP with SigV4 — KMS key with alias and tags, a bucket encrypting with it by
//! default, an uploaded object encrypted with the key, S3-Admin-User denied for lack of
//! `kms:Decrypt`, S3-KMS-Admin-User made a key user and allowed, clean-up with the key's deletion
//! scheduled. Each step prints what AWS answers and what Coffer answered; any difference makes the
//! command exit non-zero.

use coffer_sigv4::{Flavor, Secret};
use std::io::{Read, Write};
use std::net::TcpStream;

const ROOT_KEY: &str = "AKIADEMODEMODEMODEMO";
const ROOT_SECRET: &str = "demo-secret-demo-secret-demo-secret-0000";
const CONTENT: &str = "kms encryption test file\n";

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The text of the first `<tag>` element.
    fn xml(&self, tag: &str) -> Option<String> {
        let open = format!("<{tag}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{tag}>"))? + start;
        Some(
            self.body[start..end]
                .replace("&quot;", "\"")
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">"),
        )
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// `CODE: message` of an error, whatever the protocol.
    fn error(&self) -> String {
        if let Some(c) = self.xml("Code") {
            return format!("{c}: {}", self.xml("Message").unwrap_or_default());
        }
        let j = self.json();
        format!(
            "{}: {}",
            j["__type"].as_str().unwrap_or("?"),
            j["message"].as_str().unwrap_or("")
        )
    }
}

struct Client {
    addr: String,
    key: String,
    secret: String,
}

fn enc(s: &str) -> String {
    form_encode(s)
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Client {
    fn send(
        &self,
        method: &str,
        path: &str,
        mut headers: http::HeaderMap,
        body: &[u8],
        service: &str,
    ) -> Result<Resp, String> {
        let uri: http::Uri = format!("http://{}{path}", self.addr)
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let m: http::Method = method.parse().map_err(|_| "method")?;
        headers.insert("host", self.addr.parse().map_err(|_| "host")?);
        let hash = coffer_sigv4::sha256_hex(body);
        let flavor = if service == "s3" {
            headers.insert("x-amz-content-sha256", hash.parse().map_err(|_| "hash")?);
            Flavor::S3
        } else {
            Flavor::Standard
        };
        coffer_sigv4::sign_request(
            &m,
            &uri,
            &mut headers,
            &hash,
            &self.key,
            &Secret::new(self.secret.clone()),
            "us-east-1",
            service,
            time::OffsetDateTime::now_utc(),
            None,
            flavor,
        )
        .map_err(|e| e.to_string())?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in &headers {
            req.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap_or_default()));
        }
        req.push_str("\r\n");
        let mut c = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
        c.write_all(req.as_bytes())
            .and_then(|_| c.write_all(body))
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        c.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").ok_or("malformed response")?;
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or("no status")?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    fn query(&self, service: &str, params: &[(&str, &str)]) -> Result<Resp, String> {
        let version = if service == "sts" {
            "2011-06-15"
        } else {
            "2010-05-08"
        };
        let mut body = format!("Version={version}");
        for (k, v) in params {
            body.push_str(&format!("&{}={}", enc(k), enc(v)));
        }
        let mut h = http::HeaderMap::new();
        h.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        self.send("POST", "/", h, body.as_bytes(), service)
    }

    fn kms(&self, op: &str, input: serde_json::Value) -> Result<Resp, String> {
        let mut h = http::HeaderMap::new();
        h.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        h.insert(
            "x-amz-target",
            format!("TrentService.{op}").parse().map_err(|_| "target")?,
        );
        self.send("POST", "/", h, input.to_string().as_bytes(), "kms")
    }

    fn s3(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Resp, String> {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
                v.parse().map_err(|_| "header")?,
            );
        }
        self.send(method, path, h, body, "s3")
    }
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

struct Steps {
    n: usize,
    failed: usize,
}

impl Steps {
    /// Prints a step; `ok` says whether Coffer answered as AWS does.
    fn step(&mut self, what: &str, aws: &str, coffer: &str, ok: bool) {
        self.n += 1;
        if !ok {
            self.failed += 1;
        }
        println!(
            "{:>2}. {what}\n    AWS:    {aws}\n    Coffer: {coffer}\n    {}",
            self.n,
            if ok { "ok" } else { "DIFFERS" }
        );
    }
}

fn user_client(root: &Client, name: &str) -> Result<Client, String> {
    let r = root.query("iam", &[("Action", "CreateAccessKey"), ("UserName", name)])?;
    Ok(Client {
        addr: root.addr.clone(),
        key: r.xml("AccessKeyId").ok_or("CreateAccessKey: no key")?,
        secret: r
            .xml("SecretAccessKey")
            .ok_or("CreateAccessKey: no secret")?,
    })
}

pub fn run() -> Result<(), String> {
    let server = crate::child::start_server("demo", ROOT_KEY, ROOT_SECRET, "error")?;
    let root = Client {
        addr: server.addr.clone(),
        key: ROOT_KEY.into(),
        secret: ROOT_SECRET.into(),
    };
    println!(
        "Coffer demo: the walkthrough against a temporary server on http://{}\n",
        server.addr
    );
    let mut s = Steps { n: 0, failed: 0 };
    let bucket = format!("kms-demo-{}", &coffer_core::ids::uuid()[..8]);

    // 1. The customer managed key, with alias and tags.
    let r = root.kms(
        "CreateKey",
        serde_json::json!({"Description": "Key for S3 encryption demo", "Tags": [{"TagKey": "Project", "TagValue": "kms-demo"}]}),
    )?;
    let key_arn = r.json()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    s.step(
        "Create a customer managed key",
        "200, KeyState Enabled",
        &format!("{} {}", r.status, r.json()["KeyMetadata"]["KeyState"]),
        r.status == 200 && r.json()["KeyMetadata"]["KeyState"] == "Enabled",
    );
    let r = root.kms(
        "CreateAlias",
        serde_json::json!({"AliasName": "alias/my-s3-encryption-key", "TargetKeyId": key_arn}),
    )?;
    s.step(
        "Label it alias/my-s3-encryption-key",
        "200",
        &r.status.to_string(),
        r.status == 200,
    );
    let r = root.kms(
        "GetKeyPolicy",
        serde_json::json!({"KeyId": key_arn, "PolicyName": "default"}),
    )?;
    let policy = r.json()["Policy"].as_str().unwrap_or_default().to_string();
    s.step(
        "Review the key policy",
        "the default policy: \"Enable IAM User Permissions\" for the account",
        if policy.contains("Enable IAM User Permissions") {
            "Enable IAM User Permissions (account root, kms:*)"
        } else {
            "other"
        },
        policy.contains("\"Sid\" : \"Enable IAM User Permissions\""),
    );

    // 2. The bucket, encrypting with the key by default.
    let r = root.s3("PUT", &format!("/{bucket}"), &[], b"")?;
    s.step(
        &format!("Create bucket {bucket}"),
        "200",
        &r.status.to_string(),
        r.status == 200,
    );
    let conf = "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>alias/my-s3-encryption-key</KMSMasterKeyID></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>";
    let md5 = {
        use base64::Engine;
        use s3s::crypto::Checksum;
        base64::engine::general_purpose::STANDARD
            .encode(s3s::crypto::Md5::checksum(conf.as_bytes()))
    };
    let r = root.s3(
        "PUT",
        &format!("/{bucket}?encryption"),
        &[("content-md5", &md5)],
        conf.as_bytes(),
    )?;
    s.step(
        "Enable default encryption with my-s3-encryption-key",
        "200",
        &r.status.to_string(),
        r.status == 200,
    );

    // 3. Upload the test file; it is encrypted with the key.
    let r = root.s3(
        "PUT",
        &format!("/{bucket}/encryption-test-file.txt"),
        &[("content-type", "text/plain")],
        CONTENT.as_bytes(),
    )?;
    let sse = r
        .header("x-amz-server-side-encryption")
        .unwrap_or("-")
        .to_string();
    s.step(
        "Upload encryption-test-file.txt",
        "200, x-amz-server-side-encryption: aws:kms",
        &format!("{}, x-amz-server-side-encryption: {sse}", r.status),
        r.status == 200 && sse == "aws:kms",
    );
    let r = root.s3(
        "HEAD",
        &format!("/{bucket}/encryption-test-file.txt"),
        &[],
        b"",
    )?;
    let kid = r
        .header("x-amz-server-side-encryption-aws-kms-key-id")
        .unwrap_or("-")
        .to_string();
    s.step(
        "Check the object's properties",
        &format!("SSE-KMS with {key_arn}"),
        &format!(
            "{} with {kid}",
            r.header("x-amz-server-side-encryption").unwrap_or("-")
        ),
        kid == key_arn,
    );

    // 4. S3-Admin-User: AmazonS3FullAccess, no right on the key.
    for u in ["S3-Admin-User", "S3-KMS-Admin-User"] {
        let r = root.query("iam", &[("Action", "CreateUser"), ("UserName", u)])?;
        let r2 = root.query(
            "iam",
            &[
                ("Action", "AttachUserPolicy"),
                ("UserName", u),
                ("PolicyArn", "arn:aws:iam::aws:policy/AmazonS3FullAccess"),
            ],
        )?;
        s.step(
            &format!("Create {u} with AmazonS3FullAccess"),
            "200, 200",
            &format!("{}, {}", r.status, r2.status),
            r.status == 200 && r2.status == 200,
        );
    }
    let admin = user_client(&root, "S3-Admin-User")?;
    let kms_admin = user_client(&root, "S3-KMS-Admin-User")?;
    let r = admin.s3(
        "GET",
        &format!("/{bucket}/encryption-test-file.txt"),
        &[],
        b"",
    )?;
    let expected = format!(
        "User: arn:aws:iam::123456789012:user/S3-Admin-User is not authorized to perform: kms:Decrypt on resource: {key_arn} because no identity-based policy allows the kms:Decrypt action"
    );
    s.step(
        "S3-Admin-User opens the file",
        &format!("403 AccessDenied: {expected}"),
        &format!("{} {}", r.status, r.error()),
        r.status == 403 && r.error() == format!("AccessDenied: {expected}"),
    );

    // 5. S3-KMS-Admin-User becomes a key user, and can read.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-consolepolicy-3",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/S3-KMS-Admin-User"},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"}
        ]
    });
    let r = root.kms("PutKeyPolicy", serde_json::json!({"KeyId": key_arn, "PolicyName": "default", "Policy": policy.to_string()}))?;
    s.step(
        "Add S3-KMS-Admin-User as a key user",
        "200",
        &r.status.to_string(),
        r.status == 200,
    );
    let r = kms_admin.s3(
        "GET",
        &format!("/{bucket}/encryption-test-file.txt"),
        &[],
        b"",
    )?;
    s.step(
        "S3-KMS-Admin-User opens the file",
        &format!("200, {CONTENT:?}"),
        &format!("{}, {:?}", r.status, r.body),
        r.status == 200 && r.body == CONTENT,
    );
    let r = admin.s3(
        "GET",
        &format!("/{bucket}/encryption-test-file.txt"),
        &[],
        b"",
    )?;
    s.step(
        "S3-Admin-User is still refused",
        "403 AccessDenied",
        &format!("{} {}", r.status, r.error().split(':').next().unwrap_or("")),
        r.status == 403,
    );

    // 6. Clean-up.
    for (u, c) in [("S3-Admin-User", &admin), ("S3-KMS-Admin-User", &kms_admin)] {
        let a = root
            .query(
                "iam",
                &[
                    ("Action", "DeleteAccessKey"),
                    ("UserName", u),
                    ("AccessKeyId", &c.key),
                ],
            )?
            .status;
        let b = root
            .query(
                "iam",
                &[
                    ("Action", "DetachUserPolicy"),
                    ("UserName", u),
                    ("PolicyArn", "arn:aws:iam::aws:policy/AmazonS3FullAccess"),
                ],
            )?
            .status;
        let d = root
            .query("iam", &[("Action", "DeleteUser"), ("UserName", u)])?
            .status;
        s.step(
            &format!("Delete {u}"),
            "200, 200, 200",
            &format!("{a}, {b}, {d}"),
            a == 200 && b == 200 && d == 200,
        );
    }
    let r = root.s3(
        "DELETE",
        &format!("/{bucket}/encryption-test-file.txt"),
        &[],
        b"",
    )?;
    s.step(
        "Empty the bucket",
        "204",
        &r.status.to_string(),
        r.status == 204,
    );
    let r = root.s3("DELETE", &format!("/{bucket}"), &[], b"")?;
    s.step(
        "Delete the bucket",
        "204",
        &r.status.to_string(),
        r.status == 204,
    );
    let r = root.kms(
        "ScheduleKeyDeletion",
        serde_json::json!({"KeyId": key_arn, "PendingWindowInDays": 7}),
    )?;
    s.step(
        "Schedule the key's deletion (7 days)",
        "200, KeyState PendingDeletion",
        &format!(
            "{}, KeyState {}",
            r.status,
            r.json()["KeyState"].as_str().unwrap_or("-")
        ),
        r.status == 200 && r.json()["KeyState"] == "PendingDeletion",
    );

    println!(
        "\n{} steps, {} as AWS answers, {} different",
        s.n,
        s.n - s.failed,
        s.failed
    );
    if s.failed > 0 {
        return Err(format!("{} step(s) differ from AWS", s.failed));
    }
    Ok(())
}
