//! Prometheus metrics at `GET /_coffer/metrics` (text exposition format 0.0.4), written by hand:
//! counters are atomics, and the few labelled families sit behind a short lock keyed by static
//! strings. Every label value comes from a fixed list or from the server's own records (key ids),
//! never from a client's raw input, so the number of series stays bounded.
//! docs/ARCHITECTURE.md ("Metrics") lists the families.

use crate::{Body, Proto};
use coffer_store::MetaStore;
use coffer_store::metrics::{Histogram, HistogramSnapshot, LATENCY_BUCKETS};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The path the metrics are served at.
pub const PATH: &str = "/_coffer/metrics";

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The `service` label of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Iam,
    Sts,
    Kms,
    S3,
    Console,
    Other,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Iam,
        Service::Sts,
        Service::Kms,
        Service::S3,
        Service::Console,
        Service::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Sts => "sts",
            Service::Kms => "kms",
            Service::S3 => "s3",
            Service::Console => "console",
            Service::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `service` label of an API protocol.
pub(crate) fn service_of(p: Proto) -> Service {
    match p {
        Proto::Iam => Service::Iam,
        Proto::Sts => Service::Sts,
        Proto::Kms => Service::Kms,
        Proto::S3 => Service::S3,
    }
}

/// What a response is counted as; the gateway puts it in the response's extensions, and the
/// connection handler takes it out when it counts the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    pub service: Service,
    pub operation: &'static str,
}

/// The operation label when the request's operation is not one the server knows.
pub const UNKNOWN: &str = "unknown";

/// The background jobs counted in `coffer_background_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// KMS deletions and rotations falling due (`Kms::run_due`).
    KmsDue,
    /// The sweep of expired STS sessions.
    StsSweep,
}

impl Job {
    const ALL: [Job; 2] = [Job::KmsDue, Job::StsSweep];

    fn as_str(self) -> &'static str {
        match self {
            Job::KmsDue => "kms_due",
            Job::StsSweep => "sts_sweep",
        }
    }
}

/// The server's counters. One per process, shared by the gateway and the background jobs.
pub struct Metrics {
    /// With a token, scrapes must send `Authorization: Bearer <token>`; without one, only
    /// loopback clients are answered.
    token: Option<String>,
    store: Option<Arc<dyn MetaStore>>,
    requests: Mutex<HashMap<(Service, &'static str, u16), u64>>,
    durations: [Histogram; 6],
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    /// `[job][ok, error]`.
    background: [[AtomicU64; 2]; 2],
    keys_destroyed: AtomicU64,
    keys_rotated: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None, None)
    }
}

/// Takes one open connection back when dropped.
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// `token`: what scrapes must present (an empty one counts as none); `store`: whose commit
    /// statistics to report.
    pub fn new(token: Option<String>, store: Option<Arc<dyn MetaStore>>) -> Self {
        Metrics {
            token: token.filter(|t| !t.is_empty()),
            store,
            requests: Mutex::new(HashMap::new()),
            durations: std::array::from_fn(|_| Histogram::new(LATENCY_BUCKETS)),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            background: Default::default(),
            keys_destroyed: AtomicU64::new(0),
            keys_rotated: AtomicU64::new(0),
        }
    }

    /// Counts one answered request and the time to its response head.
    pub fn record(&self, labels: Labels, status: u16, took: Duration) {
        {
            let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry((labels.service, labels.operation, status))
                .or_insert(0) += 1;
        }
        self.durations[labels.service.index()].observe_duration(took);
    }

    /// Counts a connection opened; it counts as open until the guard drops.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    /// Counts a connection closed at once because the server was at its connection cap.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one run of a background job.
    pub fn background_run(&self, job: Job, ok: bool) {
        self.background[job as usize][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts what a run of `Kms::run_due` did.
    pub fn kms_due_done(&self, destroyed: usize, rotated: usize) {
        self.keys_destroyed
            .fetch_add(destroyed as u64, Ordering::Relaxed);
        self.keys_rotated
            .fetch_add(rotated as u64, Ordering::Relaxed);
    }

    /// Whether a scrape from `peer` with `headers` may read the metrics: with a token, the
    /// request must carry it as a bearer token (compared in constant time); without one, only
    /// loopback clients may.
    fn allowed(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<(), StatusCode> {
        let Some(token) = &self.token else {
            return if crate::canonical_ip(peer.ip()).is_loopback() {
                Ok(())
            } else {
                Err(StatusCode::FORBIDDEN)
            };
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            });
        match presented {
            Some(p) if coffer_crypto::ct_eq(p.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(StatusCode::UNAUTHORIZED),
        }
    }

    /// Answers `GET /_coffer/metrics`.
    pub(crate) fn respond(
        &self,
        method: &Method,
        headers: &HeaderMap,
        peer: SocketAddr,
        kms: &coffer_kms::Kms,
    ) -> Response<Body> {
        let (status, body) = if method != Method::GET && method != Method::HEAD {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed\n".into(),
            )
        } else {
            match self.allowed(headers, peer) {
                Ok(()) => (
                    StatusCode::OK,
                    if method == Method::HEAD {
                        String::new()
                    } else {
                        self.render(kms)
                    },
                ),
                Err(s) if s == StatusCode::UNAUTHORIZED => {
                    (s, "a bearer token is required\n".into())
                }
                Err(s) => (
                    s,
                    "metrics are served to loopback clients only unless the server has a metrics token\n"
                        .into(),
                ),
            }
        };
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"coffer-metrics\""),
            );
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        r
    }

    /// The text exposition of every family.
    pub fn render(&self, kms: &coffer_kms::Kms) -> String {
        let mut out = String::with_capacity(16 << 10);
        let w = &mut out;

        family(
            w,
            "coffer_requests_total",
            "counter",
            "Requests answered, by service, operation and HTTP status.",
        );
        let mut reqs: Vec<_> = {
            let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            m.iter().map(|(k, v)| (*k, *v)).collect()
        };
        reqs.sort();
        for ((svc, op, status), n) in reqs {
            sample(
                w,
                "coffer_requests_total",
                &[
                    ("service", svc.as_str()),
                    ("operation", op),
                    ("status", &status.to_string()),
                ],
                n,
            );
        }

        family(
            w,
            "coffer_request_duration_seconds",
            "histogram",
            "Time from a request's head to its response's head, by service.",
        );
        for svc in Service::ALL {
            histogram(
                w,
                "coffer_request_duration_seconds",
                &[("service", svc.as_str())],
                &self.durations[svc.index()].snapshot(),
            );
        }

        if let Some(st) = self.store.as_ref().and_then(|s| s.stats()) {
            family(
                w,
                "coffer_store_commits_total",
                "counter",
                "Metadata store commits (each one fsync).",
            );
            sample(
                w,
                "coffer_store_commits_total",
                &[],
                st.commits.load(Ordering::Relaxed),
            );
            family(
                w,
                "coffer_store_failed_commits_total",
                "counter",
                "Metadata store batches that failed to commit.",
            );
            sample(
                w,
                "coffer_store_failed_commits_total",
                &[],
                st.failed_commits.load(Ordering::Relaxed),
            );
            family(
                w,
                "coffer_store_commit_batch_size",
                "histogram",
                "Transactions per metadata store commit.",
            );
            histogram(
                w,
                "coffer_store_commit_batch_size",
                &[],
                &st.batch_size.snapshot(),
            );
            family(
                w,
                "coffer_store_fsync_seconds",
                "histogram",
                "Time of the metadata store's COMMIT, which fsyncs.",
            );
            histogram(
                w,
                "coffer_store_fsync_seconds",
                &[],
                &st.commit_seconds.snapshot(),
            );
        }

        family(
            w,
            "coffer_cache_lookups_total",
            "counter",
            "Lookups in the in-memory caches, by cache and result.",
        );
        for (name, hits, misses) in coffer_store::metrics::cache_stats() {
            sample(
                w,
                "coffer_cache_lookups_total",
                &[("cache", name), ("result", "hit")],
                hits,
            );
            sample(
                w,
                "coffer_cache_lookups_total",
                &[("cache", name), ("result", "miss")],
                misses,
            );
        }

        family(
            w,
            "coffer_kms_key_operations_total",
            "counter",
            "Successful KMS cryptographic operations, by key id (the first 1000 keys; then \"other\") and operation.",
        );
        for (key, op, n) in kms.key_operation_counts() {
            sample(
                w,
                "coffer_kms_key_operations_total",
                &[("key_id", &key), ("operation", op)],
                n,
            );
        }

        family(
            w,
            "coffer_background_runs_total",
            "counter",
            "Runs of the background jobs, by job and result.",
        );
        for job in Job::ALL {
            for (i, result) in ["ok", "error"].into_iter().enumerate() {
                sample(
                    w,
                    "coffer_background_runs_total",
                    &[("job", job.as_str()), ("result", result)],
                    self.background[job as usize][i].load(Ordering::Relaxed),
                );
            }
        }
        for (name, help, v) in [
            (
                "coffer_kms_keys_destroyed_total",
                "KMS keys destroyed at the end of their waiting period.",
                &self.keys_destroyed,
            ),
            (
                "coffer_kms_keys_rotated_total",
                "KMS keys rotated automatically.",
                &self.keys_rotated,
            ),
        ] {
            family(w, name, "counter", help);
            sample(w, name, &[], v.load(Ordering::Relaxed));
        }

        family(
            w,
            "coffer_connections_open",
            "gauge",
            "Client connections being served.",
        );
        sample(
            w,
            "coffer_connections_open",
            &[],
            self.connections_open.load(Ordering::Relaxed),
        );
        family(
            w,
            "coffer_connections_refused_total",
            "counter",
            "Connections closed at once because the connection cap was reached.",
        );
        sample(
            w,
            "coffer_connections_refused_total",
            &[],
            self.connections_refused.load(Ordering::Relaxed),
        );
        out
    }
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and line feeds escaped, as the text format requires.
pub fn escape_label(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    let mut s = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.into()
}

/// HELP text: `\` and line feeds escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn labels(w: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    w.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            w.push(',');
        }
        let _ = write!(w, "{k}=\"{}\"", escape_label(v));
    }
    w.push('}');
}

fn sample(w: &mut String, name: &str, ls: &[(&str, &str)], v: u64) {
    w.push_str(name);
    labels(w, ls);
    let _ = writeln!(w, " {v}");
}

/// A float as the text format writes it.
fn float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

fn histogram(w: &mut String, name: &str, ls: &[(&str, &str)], h: &HistogramSnapshot) {
    let bucket = format!("{name}_bucket");
    for (le, n) in h
        .buckets
        .iter()
        .map(|(b, n)| (float(*b), *n))
        .chain(std::iter::once(("+Inf".to_string(), h.count)))
    {
        let mut with_le: Vec<(&str, &str)> = ls.to_vec();
        with_le.push(("le", &le));
        sample(w, &bucket, &with_le, n);
    }
    w.push_str(name);
    w.push_str("_sum");
    labels(w, ls);
    let _ = writeln!(w, " {}", float(h.sum));
    sample(w, &format!("{name}_count"), ls, h.count);
}

// ---- operation labels ----

/// The IAM actions Coffer implements (`Iam::handle`).
const IAM_ACTIONS: &[&str] = &[
    "CreateUser",
    "GetUser",
    "ListUsers",
    "UpdateUser",
    "DeleteUser",
    "TagUser",
    "UntagUser",
    "ListUserTags",
    "TagRole",
    "UntagRole",
    "ListRoleTags",
    "CreateAccessKey",
    "ListAccessKeys",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "GetAccessKeyLastUsed",
    "ChangePassword",
    "CreateLoginProfile",
    "GetLoginProfile",
    "UpdateLoginProfile",
    "DeleteLoginProfile",
    "CreatePolicy",
    "GetPolicy",
    "DeletePolicy",
    "ListPolicies",
    "CreatePolicyVersion",
    "GetPolicyVersion",
    "ListPolicyVersions",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "ListAttachedUserPolicies",
    "ListAttachedGroupPolicies",
    "ListAttachedRolePolicies",
    "PutUserPolicy",
    "PutGroupPolicy",
    "PutRolePolicy",
    "GetUserPolicy",
    "GetGroupPolicy",
    "GetRolePolicy",
    "DeleteUserPolicy",
    "DeleteGroupPolicy",
    "DeleteRolePolicy",
    "ListUserPolicies",
    "ListGroupPolicies",
    "ListRolePolicies",
    "CreateGroup",
    "GetGroup",
    "ListGroups",
    "DeleteGroup",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "ListGroupsForUser",
    "CreateRole",
    "GetRole",
    "ListRoles",
    "DeleteRole",
    "UpdateRole",
    "UpdateAssumeRolePolicy",
    "SimulatePrincipalPolicy",
    "CreateAccountAlias",
    "DeleteAccountAlias",
    "ListAccountAliases",
];

/// The STS actions Coffer implements (`Iam::handle_sts`).
const STS_ACTIONS: &[&str] = &["GetCallerIdentity", "AssumeRole", "GetSessionToken"];

/// The KMS operations Coffer implements (`Kms::handle`).
const KMS_OPERATIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "UpdateKeyDescription",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "TagResource",
    "UntagResource",
    "ListResourceTags",
    "GetKeyPolicy",
    "ListKeyPolicies",
    "PutKeyPolicy",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateRandom",
    "GenerateMac",
    "VerifyMac",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKeyOnDemand",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "CreateGrant",
    "ListGrants",
    "ListRetirableGrants",
    "RetireGrant",
    "RevokeGrant",
    "ListKeyRotations",
];

/// `name` as the static entry of `list` that equals it, else [`UNKNOWN`]: the client's text
/// itself never becomes a label.
fn known(list: &'static [&'static str], name: Option<&str>) -> &'static str {
    name.and_then(|n| list.iter().find(|k| **k == n).copied())
        .unwrap_or(UNKNOWN)
}

/// The operation label of an API request of protocol `proto`.
pub(crate) fn operation(
    proto: Proto,
    parts: &http::request::Parts,
    form: Option<&coffer_iam::Params>,
) -> &'static str {
    match proto {
        Proto::Iam => known(IAM_ACTIONS, form.and_then(|f| f.opt("Action"))),
        Proto::Sts => known(STS_ACTIONS, form.and_then(|f| f.opt("Action"))),
        Proto::Kms => known(
            KMS_OPERATIONS,
            parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.strip_prefix("TrentService.")),
        ),
        Proto::S3 => {
            let (bucket, key) = crate::s3_target(parts);
            s3_operation(
                &parts.method,
                &parts.headers,
                parts.uri.query().unwrap_or_default(),
                bucket.is_some(),
                key.is_some(),
            )
        }
    }
}

/// The operation label of a console request (by method: console paths are client input).
pub(crate) fn console_operation(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// S3's operation name for a request, from its method, its subresources (query parameter
/// names), and whether it names a bucket and a key.
pub(crate) fn s3_operation(
    method: &Method,
    headers: &HeaderMap,
    query: &str,
    bucket: bool,
    key: bool,
) -> &'static str {
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p.split('=').next().is_some_and(|k| k == name))
    };
    // The first subresource of `table` the query names.
    let sub =
        |table: &[(&str, &'static str)]| table.iter().find(|(n, _)| has(n)).map(|(_, op)| *op);
    if !bucket {
        return if *method == Method::GET {
            "ListBuckets"
        } else {
            UNKNOWN
        };
    }
    if !key {
        return match *method {
            Method::GET => sub(&[
                ("policy", "GetBucketPolicy"),
                ("policyStatus", "GetBucketPolicyStatus"),
                ("tagging", "GetBucketTagging"),
                ("encryption", "GetBucketEncryption"),
                ("versioning", "GetBucketVersioning"),
                ("versions", "ListObjectVersions"),
                ("uploads", "ListMultipartUploads"),
                ("location", "GetBucketLocation"),
                ("acl", "GetBucketAcl"),
                ("cors", "GetBucketCors"),
                ("lifecycle", "GetBucketLifecycleConfiguration"),
                ("website", "GetBucketWebsite"),
                ("logging", "GetBucketLogging"),
                ("notification", "GetBucketNotificationConfiguration"),
                ("ownershipControls", "GetBucketOwnershipControls"),
                ("publicAccessBlock", "GetPublicAccessBlock"),
                ("object-lock", "GetObjectLockConfiguration"),
                ("replication", "GetBucketReplication"),
                ("accelerate", "GetBucketAccelerateConfiguration"),
                ("requestPayment", "GetBucketRequestPayment"),
            ])
            .unwrap_or(if has("list-type") {
                "ListObjectsV2"
            } else {
                "ListObjects"
            }),
            Method::PUT => sub(&[
                ("policy", "PutBucketPolicy"),
                ("tagging", "PutBucketTagging"),
                ("encryption", "PutBucketEncryption"),
                ("versioning", "PutBucketVersioning"),
                ("acl", "PutBucketAcl"),
                ("cors", "PutBucketCors"),
                ("lifecycle", "PutBucketLifecycleConfiguration"),
                ("website", "PutBucketWebsite"),
                ("logging", "PutBucketLogging"),
                ("notification", "PutBucketNotificationConfiguration"),
                ("ownershipControls", "PutBucketOwnershipControls"),
                ("publicAccessBlock", "PutPublicAccessBlock"),
                ("object-lock", "PutObjectLockConfiguration"),
                ("replication", "PutBucketReplication"),
                ("accelerate", "PutBucketAccelerateConfiguration"),
                ("requestPayment", "PutBucketRequestPayment"),
            ])
            .unwrap_or("CreateBucket"),
            Method::DELETE => sub(&[
                ("policy", "DeleteBucketPolicy"),
                ("tagging", "DeleteBucketTagging"),
                ("encryption", "DeleteBucketEncryption"),
                ("cors", "DeleteBucketCors"),
                ("lifecycle", "DeleteBucketLifecycle"),
                ("website", "DeleteBucketWebsite"),
                ("ownershipControls", "DeleteBucketOwnershipControls"),
                ("publicAccessBlock", "DeletePublicAccessBlock"),
                ("replication", "DeleteBucketReplication"),
            ])
            .unwrap_or("DeleteBucket"),
            Method::HEAD => "HeadBucket",
            Method::POST if has("delete") => "DeleteObjects",
            Method::POST => "PostObject",
            _ => UNKNOWN,
        };
    }
    match *method {
        Method::GET => sub(&[
            ("uploadId", "ListParts"),
            ("tagging", "GetObjectTagging"),
            ("acl", "GetObjectAcl"),
            ("retention", "GetObjectRetention"),
            ("legal-hold", "GetObjectLegalHold"),
            ("attributes", "GetObjectAttributes"),
            ("torrent", "GetObjectTorrent"),
        ])
        .unwrap_or("GetObject"),
        Method::HEAD => "HeadObject",
        Method::PUT => {
            let copy = headers.contains_key("x-amz-copy-source");
            if has("partNumber") && has("uploadId") {
                if copy { "UploadPartCopy" } else { "UploadPart" }
            } else {
                sub(&[
                    ("tagging", "PutObjectTagging"),
                    ("acl", "PutObjectAcl"),
                    ("retention", "PutObjectRetention"),
                    ("legal-hold", "PutObjectLegalHold"),
                ])
                .unwrap_or(if copy { "CopyObject" } else { "PutObject" })
            }
        }
        Method::DELETE => sub(&[
            ("uploadId", "AbortMultipartUpload"),
            ("tagging", "DeleteObjectTagging"),
        ])
        .unwrap_or("DeleteObject"),
        Method::POST => sub(&[
            ("uploads", "CreateMultipartUpload"),
            ("uploadId", "CompleteMultipartUpload"),
            ("restore", "RestoreObject"),
            ("select", "SelectObjectContent"),
        ])
        .unwrap_or(UNKNOWN),
        _ => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("plain-id"), "plain-id");
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("line\nfeed"), "line\\nfeed");
        let mut w = String::new();
        sample(&mut w, "m", &[("k", "x\"}\n"), ("o", "y")], 3);
        assert_eq!(w, "m{k=\"x\\\"}\\n\",o=\"y\"} 3\n");
    }

    #[test]
    fn operation_labels_come_only_from_fixed_lists() {
        assert_eq!(known(IAM_ACTIONS, Some("CreateUser")), "CreateUser");
        assert_eq!(known(IAM_ACTIONS, Some("CreateUser\"} 1")), UNKNOWN);
        assert_eq!(known(KMS_OPERATIONS, Some("Encrypt")), "Encrypt");
        assert_eq!(known(KMS_OPERATIONS, Some("encrypt")), UNKNOWN);
        assert_eq!(known(STS_ACTIONS, None), UNKNOWN);
        // Any number of made-up names are one label.
        let labels: std::collections::HashSet<&str> = (0..10_000)
            .map(|i| known(KMS_OPERATIONS, Some(&format!("Op{i}"))))
            .collect();
        assert_eq!(labels.len(), 1);
    }

    /// Every IAM action and KMS operation the services dispatch has its own label.
    #[test]
    fn the_lists_cover_the_dispatch_tables() {
        let arms = |src: &str, start: &str| -> Vec<String> {
            let body = &src[src.find(start).expect(start)..];
            let body = &body[..body.find("\n            _ =>").expect("default arm")];
            body.lines()
                // The match arms, 12 spaces in.
                .filter_map(|l| {
                    let arm = l.strip_prefix("            \"")?;
                    arm.contains("=>")
                        .then(|| format!("\"{}", arm.split("=>").next().unwrap()))
                })
                .flat_map(|pat| {
                    pat.split('|')
                        .map(|p| p.trim().trim_matches('"').to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let iam = arms(
            include_str!("../../coffer-iam/src/service.rs"),
            "fn dispatch(",
        );
        assert!(iam.len() > 50, "{iam:?}");
        for a in &iam {
            assert!(
                IAM_ACTIONS.contains(&a.as_str()),
                "IAM action {a} has no label"
            );
        }
        let sts = arms(
            include_str!("../../coffer-iam/src/sts.rs"),
            "pub fn handle_sts(",
        );
        for a in &sts {
            assert!(
                STS_ACTIONS.contains(&a.as_str()),
                "STS action {a} has no label"
            );
        }
        let kms = arms(include_str!("../../coffer-kms/src/ops.rs"), "fn dispatch(");
        assert!(kms.len() > 30, "{kms:?}");
        for o in &kms {
            assert!(
                KMS_OPERATIONS.contains(&o.as_str()),
                "KMS operation {o} has no label"
            );
        }
    }

    #[test]
    fn s3_operations() {
        let op =
            |m: Method, q: &str, b: bool, k: bool| s3_operation(&m, &HeaderMap::new(), q, b, k);
        assert_eq!(op(Method::GET, "", false, false), "ListBuckets");
        assert_eq!(
            op(Method::GET, "list-type=2&prefix=a", true, false),
            "ListObjectsV2"
        );
        assert_eq!(op(Method::GET, "prefix=a", true, false), "ListObjects");
        assert_eq!(
            op(Method::GET, "versions", true, false),
            "ListObjectVersions"
        );
        assert_eq!(op(Method::PUT, "", true, false), "CreateBucket");
        assert_eq!(op(Method::PUT, "policy", true, false), "PutBucketPolicy");
        assert_eq!(op(Method::DELETE, "", true, false), "DeleteBucket");
        assert_eq!(op(Method::HEAD, "", true, false), "HeadBucket");
        assert_eq!(op(Method::POST, "delete", true, false), "DeleteObjects");
        assert_eq!(op(Method::GET, "", true, true), "GetObject");
        assert_eq!(op(Method::HEAD, "", true, true), "HeadObject");
        assert_eq!(op(Method::PUT, "", true, true), "PutObject");
        assert_eq!(op(Method::PUT, "tagging", true, true), "PutObjectTagging");
        assert_eq!(
            op(Method::PUT, "partNumber=1&uploadId=x", true, true),
            "UploadPart"
        );
        assert_eq!(
            op(Method::POST, "uploads", true, true),
            "CreateMultipartUpload"
        );
        assert_eq!(
            op(Method::POST, "uploadId=x", true, true),
            "CompleteMultipartUpload"
        );
        assert_eq!(
            op(Method::DELETE, "uploadId=x", true, true),
            "AbortMultipartUpload"
        );
        assert_eq!(op(Method::DELETE, "", true, true), "DeleteObject");
        assert_eq!(op(Method::PATCH, "", true, true), UNKNOWN);
        let mut h = HeaderMap::new();
        h.insert("x-amz-copy-source", HeaderValue::from_static("/b/k"));
        assert_eq!(s3_operation(&Method::PUT, &h, "", true, true), "CopyObject");
    }

    #[test]
    fn histograms_render_cumulative_buckets_with_sum_and_count() {
        let h = Histogram::new(&[0.5, 1.0]);
        h.observe(0.25);
        h.observe(0.75);
        h.observe(3.0);
        let mut w = String::new();
        histogram(&mut w, "x", &[("service", "kms")], &h.snapshot());
        assert_eq!(
            w,
            "x_bucket{service=\"kms\",le=\"0.5\"} 1\n\
             x_bucket{service=\"kms\",le=\"1\"} 2\n\
             x_bucket{service=\"kms\",le=\"+Inf\"} 3\n\
             x_sum{service=\"kms\"} 4\n\
             x_count{service=\"kms\"} 3\n"
        );
    }

    #[test]
    fn the_token_is_required_when_set() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let open = Metrics::new(None, None);
        assert_eq!(open.allowed(&HeaderMap::new(), peer), Ok(()));
        assert_eq!(
            open.allowed(&HeaderMap::new(), remote),
            Err(StatusCode::FORBIDDEN)
        );
        let m = Metrics::new(Some("s3cret".into()), None);
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert_eq!(
            m.allowed(&HeaderMap::new(), peer),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            m.allowed(&with("Bearer wrong"), peer),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            m.allowed(&with("Basic s3cret"), peer),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(m.allowed(&with("Bearer s3cret"), remote), Ok(()));
        assert_eq!(m.allowed(&with("bearer s3cret"), peer), Ok(()));
        // An empty token is no token.
        let empty = Metrics::new(Some(String::new()), None);
        assert_eq!(empty.allowed(&HeaderMap::new(), peer), Ok(()));
    }
}
