//! S3: buckets and objects behind s3s's `S3` trait, with every object body encrypted at rest
//! (SSE-S3 or SSE-KMS) in segments (`coffer_crypto::segment`), authorization through the one
//! policy engine (identity policies and bucket policies), and KMS called *as the caller* through
//! `DataKeyProvider` with `kms:ViaService` set.

/// The encryption a write asks for (PutObject, CreateMultipartUpload, CopyObject: their inputs
/// share the field names), chosen against the bucket's default, and the `s3:x-amz-server-side-
/// encryption*` condition keys it sets. Evaluates to `(SseChoice, Vec<(String, String)>)`.
macro_rules! sse_of_request {
    ($s:expr, $ctx:expr, $bucket:expr, $i:expr) => {{
        let i = $i;
        let sse = crate::objects::choose_sse(
            $bucket,
            &crate::objects::SseRequest {
                server_side_encryption: i.server_side_encryption.as_ref(),
                ssekms_key_id: i.ssekms_key_id.as_ref(),
                bucket_key_enabled: i.bucket_key_enabled,
                ssekms_encryption_context: i.ssekms_encryption_context.as_ref(),
                sse_c: crate::objects::customer_key(
                    $s,
                    $ctx.secure_transport,
                    i.sse_customer_algorithm.as_ref(),
                    i.sse_customer_key.as_ref(),
                    i.sse_customer_key_md5.as_ref(),
                )?,
            },
        )?;
        let mut conds: Vec<(String, String)> = vec![];
        if let Some(e) = &i.server_side_encryption {
            conds.push((
                "s3:x-amz-server-side-encryption".to_string(),
                e.as_str().to_string(),
            ));
        }
        if let (crate::objects::SseChoice::Kms { key_id, .. }, Some(_)) = (&sse, &i.ssekms_key_id) {
            conds.push((
                "s3:x-amz-server-side-encryption-aws-kms-key-id".to_string(),
                key_id.clone(),
            ));
        }
        (sse, conds)
    }};
}

/// Sets the `checksum_*` fields of an S3 output from stored `(algorithm, base64)` pairs.
macro_rules! set_checksums {
    ($out:expr, $sums:expr) => {
        for (alg, v) in $sums {
            let v = v.clone();
            match alg.as_str() {
                "CRC32" => $out.checksum_crc32 = Some(v),
                "CRC32C" => $out.checksum_crc32c = Some(v),
                "SHA1" => $out.checksum_sha1 = Some(v),
                "SHA256" => $out.checksum_sha256 = Some(v),
                _ => $out.checksum_crc64nvme = Some(v),
            }
        }
    };
}

mod checksum;
pub mod model;
mod multipart;
mod objects;
mod tagging;
mod versions;

use coffer_core::{Clock, DataKeyProvider, Principal, RequestContext, ServiceError};
use coffer_crypto::RootKey;
use coffer_iam::{CredentialError, Iam};
use coffer_policy::{Context, Policy};
use coffer_store::{BlobStore, MetaStore, Txn, get_json, put_json, scan_json};
use model::{Bucket, DefaultEncryption, NS_BUCKET, NS_OBJECT, Object};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::net::IpAddr;
use std::sync::Arc;

/// What the gateway knows about the connection, passed in the request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub secure: bool,
}

/// The `x-amz-security-token` field of a POST object form, read by the gateway from the form
/// fields before the file (s3s does not hand the form to the service) and passed in the
/// request's extensions. `None`: the form has no such field.
#[derive(Clone)]
pub struct PostFormToken(pub Option<String>);

pub struct Inner {
    pub(crate) iam: Arc<Iam>,
    pub(crate) keys: Arc<dyn DataKeyProvider>,
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) root_key: Arc<RootKey>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) region: String,
    /// SSE-KMS and SSE-C requests need TLS (true when listening beyond loopback).
    pub(crate) require_tls_for_sse: bool,
    /// Bucket keys recently obtained, in memory only (see `objects::bucket_data_key`).
    pub(crate) bucket_key_cache:
        std::sync::Mutex<std::collections::HashMap<String, objects::CachedBucketKey>>,
}

/// The S3 service; cheap to clone.
#[derive(Clone)]
pub struct CofferS3(pub(crate) Arc<Inner>);

impl CofferS3 {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        iam: Arc<Iam>,
        keys: Arc<dyn DataKeyProvider>,
        store: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        root_key: Arc<RootKey>,
        clock: Arc<dyn Clock>,
        region: &str,
        require_tls_for_sse: bool,
    ) -> Self {
        CofferS3(Arc::new(Inner {
            iam,
            keys,
            store,
            blobs,
            root_key,
            clock,
            region: region.to_string(),
            require_tls_for_sse,
            bucket_key_cache: Default::default(),
        }))
    }

    /// Removes blobs that no object version and no upload part names (interrupted uploads,
    /// crashes between a commit and a blob deletion): run at start. The store is read in pages;
    /// only the blob ids are kept.
    pub fn sweep_orphans(&self) -> Result<usize, ServiceError> {
        let indexed = multipart::index_uploads(&self.0)?;
        if indexed > 0 {
            tracing::info!(uploads = indexed, "multipart upload index built");
        }
        let mut live = std::collections::HashSet::<String>::new();
        for ns in [NS_OBJECT, model::NS_VERSION] {
            let mut after: Option<String> = None;
            loop {
                let rows: Vec<(String, Object)> =
                    scan_json(&*self.0.store, ns, "", after.as_deref(), 500).map_err(internal)?;
                let n = rows.len();
                for (row, o) in rows {
                    live.extend(o.blobs().into_iter().map(|b| b.blob_id));
                    after = Some(row);
                }
                if n < 500 {
                    break;
                }
            }
        }
        let parts: Vec<(String, model::Part)> =
            scan_json(&*self.0.store, model::NS_PART, "", None, usize::MAX).map_err(internal)?;
        live.extend(parts.into_iter().map(|(_, p)| p.blob_id));
        self.0
            .blobs
            .sweep(&|id| live.contains(id))
            .map_err(internal)
    }
}

/// Largest file a POST object (browser form upload) may carry. s3s reads the whole file into
/// memory before the upload is stored, so this bounds memory per request (AWS allows 5 GB).
pub const POST_OBJECT_MAX_FILE: u64 = 64 << 20;

/// s3s's limits for Coffer.
pub fn s3s_config() -> s3s::config::S3Config {
    let mut c = s3s::config::S3Config::default();
    c.post_object_max_file_size = POST_OBJECT_MAX_FILE;
    // The form fields before the file (policy, signature, metadata...) are held in memory too.
    c.form_max_fields_size = 1 << 20;
    c.form_max_field_size = 256 << 10;
    c.form_max_parts = 200;
    // s3s applies this skew to a POST form's `x-amz-date`, where AWS only checks the policy's
    // expiration (a presigned POST is used long after it was made). The gateway has already
    // applied AWS's 15-minute rule to header-signed requests and expiry to presigned URLs
    // before s3s verifies them again, so s3s's own bound only needs to be generous.
    c.presigned_url_max_skew_time_secs = 7 * 24 * 3600;
    c
}

/// Secrets for s3s's SigV4 verification; the session token is checked afterwards.
pub struct CofferS3Auth(pub Arc<Iam>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for CofferS3Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.0.secret_of(access_key) {
            Ok(s) => Ok(s3s::auth::SecretKey::from(s.to_string())),
            Err(CredentialError::Internal) => Err(s3_error!(InternalError)),
            Err(_) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

pub(crate) fn internal<E: std::fmt::Display>(e: E) -> ServiceError {
    tracing::error!(error = %e, "internal error");
    internal_error()
}

/// S3's internal error in its own words (ServiceError::internal() is the Query protocol's
/// ServiceFailure), for a failure already logged where it happened.
pub(crate) fn internal_error() -> ServiceError {
    ServiceError::new(
        "InternalError",
        500,
        "We encountered an internal error. Please try again.",
    )
}

/// A Coffer error as an S3 error (custom codes such as `KMS.NotFoundException` keep their status).
pub(crate) fn s3e(e: ServiceError) -> S3Error {
    let code: S3ErrorCode = e.code.parse().unwrap_or(S3ErrorCode::InternalError);
    let mut err = S3Error::with_message(code, e.message);
    if let Ok(st) = http::StatusCode::from_u16(e.status) {
        err.set_status_code(st);
    }
    err
}

pub(crate) fn access_denied(msg: impl Into<String>) -> S3Error {
    s3e(ServiceError::new("AccessDenied", 403, msg))
}

fn no_such_bucket() -> S3Error {
    let mut e = s3_error!(NoSuchBucket, "The specified bucket does not exist");
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

/// Bucket naming rules (general purpose buckets).
fn valid_bucket_name(n: &str) -> bool {
    let b = n.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !n.contains("..")
        && n.parse::<std::net::Ipv4Addr>().is_err()
        && !n.starts_with("xn--")
        && !n.starts_with("sthree-")
        && !n.ends_with("-s3alias")
        && !n.ends_with("--ol-s3")
}

/// The canonical user id S3 shows as an owner (stable per account).
pub(crate) fn canonical_id(account: &str) -> String {
    coffer_crypto::sha256_hex(format!("coffer-canonical-user:{account}").as_bytes())
}

impl Inner {
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// The caller of an S3 request: SigV4 was verified by s3s; the session token is checked here.
    pub(crate) fn context<T>(&self, req: &S3Request<T>) -> S3Result<RequestContext> {
        let token = req
            .headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                req.uri.query().and_then(|q| {
                    url_query(q)
                        .into_iter()
                        .find(|(k, _)| k == "X-Amz-Security-Token")
                        .map(|(_, v)| v)
                })
            });
        self.context_with_token(req, token.as_deref())
    }

    /// The caller of a request whose session token (if any) is `token`: for POST object the
    /// token is a form field, not a header.
    pub(crate) fn context_with_token<T>(
        &self,
        req: &S3Request<T>,
        token: Option<&str>,
    ) -> S3Result<RequestContext> {
        let Some(cred) = &req.credentials else {
            return Err(access_denied("Access Denied"));
        };
        let resolved = self
            .iam
            .resolve(&cred.access_key, token)
            .map_err(|e| match e {
                CredentialError::UnknownAccessKey => s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                ),
                CredentialError::InvalidToken => s3_error!(
                    InvalidToken,
                    "The provided token is malformed or otherwise invalid."
                ),
                CredentialError::ExpiredToken => {
                    s3_error!(ExpiredToken, "The provided token has expired.")
                }
                CredentialError::Internal => s3_error!(InternalError),
            })?;
        let info = req.extensions.get::<ClientInfo>().copied();
        Ok(RequestContext {
            principal: resolved.principal,
            source_ip: info.and_then(|i| i.ip),
            secure_transport: info.is_some_and(|i| i.secure),
            now: self.clock.now(),
            request_id: coffer_core::ids::uuid(),
            region: self.region.clone(),
            user_agent: req
                .headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            via_service: None,
        })
    }

    pub(crate) fn bucket(&self, name: &str) -> S3Result<Bucket> {
        get_json::<Bucket>(&*self.store, NS_BUCKET, name)
            .map_err(|e| s3e(internal(e)))?
            .ok_or_else(no_such_bucket)
    }

    /// Decides an S3 action: identity policies or the bucket policy (same account), explicit
    /// deny anywhere wins. Buckets of other accounts are refused outright for now.
    pub(crate) fn authorize(
        &self,
        ctx: &RequestContext,
        action: &str,
        resource: &str,
        bucket: Option<&Bucket>,
        extra: &[(String, String)],
    ) -> S3Result<()> {
        let mut c: Context = coffer_iam::authz::base_context(ctx);
        for (k, v) in extra {
            c.set(k, v.clone());
        }
        if let Some(b) = bucket
            && b.account != ctx.principal.account
        {
            return Err(access_denied("Access Denied"));
        }
        let policy = match bucket.and_then(|b| b.policy.as_deref()) {
            Some(p) => Some(Policy::parse_bucket_policy(p).map_err(|e| s3e(internal(e.message)))?),
            None => None,
        };
        self.iam
            .authorizer()
            .authorize(ctx, action, resource, policy.as_ref(), &c)
            .map_err(s3e)?
            .map_err(|d| access_denied(d.message(true)))
    }

    /// The caller and the bucket of a bucket-level request, once `action` on the bucket is allowed.
    pub(crate) fn bucket_request<T>(
        &self,
        req: &S3Request<T>,
        bucket: &str,
        action: &str,
    ) -> S3Result<(RequestContext, Bucket)> {
        let ctx = self.context(req)?;
        let b = self.bucket(bucket)?;
        self.authorize(
            &ctx,
            action,
            &format!("arn:aws:s3:::{}", b.name),
            Some(&b),
            &[],
        )?;
        Ok((ctx, b))
    }

    /// Changes a bucket's record in one transaction (`NoSuchBucket` if it went away).
    pub(crate) fn update_bucket(&self, bucket: &str, f: impl Fn(&mut Bucket)) -> S3Result<()> {
        self.tx(|t| {
            let mut b: Bucket = get_json(t, NS_BUCKET, bucket)
                .map_err(internal)?
                .ok_or_else(|| {
                    ServiceError::new("NoSuchBucket", 404, "The specified bucket does not exist")
                })?;
            f(&mut b);
            put_json(t, NS_BUCKET, bucket, &b).map_err(internal)
        })
    }

    /// `arn:aws:s3:::bucket/key`.
    pub(crate) fn object_arn(bucket: &str, key: &str) -> String {
        format!("arn:aws:s3:::{bucket}/{key}")
    }

    /// Runs a metadata transaction (which waits for its commit's fsync) without holding up the
    /// other requests of this async worker (see [`blocking`]).
    pub(crate) fn tx(
        &self,
        f: impl FnMut(&mut dyn Txn) -> Result<(), ServiceError>,
    ) -> S3Result<()> {
        blocking(|| coffer_store::transact(&*self.store, internal, f)).map_err(s3e)
    }
}

/// Runs blocking work (a store commit and its fsync, file writes) from an async handler: on a
/// multi-threaded runtime the worker hands its other tasks to another thread for the duration
/// (`block_in_place`), so two slow writes cannot stall every request of a 2-core runtime.
/// Elsewhere (a current-thread runtime in tests, or no runtime) it just runs `f`.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Decoded query pairs.
pub(crate) fn url_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn principal_owner(p: &Principal) -> Owner {
    Owner {
        display_name: None,
        id: Some(canonical_id(&p.account)),
    }
}

#[async_trait::async_trait]
impl S3 for CofferS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let s = &self.0;
        let ctx = s.context(&req)?;
        let name = req.input.bucket.clone();
        if !valid_bucket_name(&name) {
            return Err(s3_error!(
                InvalidBucketName,
                "The specified bucket is not valid."
            ));
        }
        if let Some(loc) = req
            .input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            && (loc.as_str() != s.region || loc.as_str() == "us-east-1")
        {
            if loc.as_str() == "us-east-1" && s.region == "us-east-1" {
                return Err(s3e(ServiceError::new(
                    "InvalidLocationConstraint",
                    400,
                    "The specified location-constraint is not valid",
                )));
            }
            return Err(s3_error!(
                IllegalLocationConstraintException,
                "The {} location constraint is incompatible for the region specific endpoint this request was sent to.",
                loc.as_str()
            ));
        }
        s.authorize(
            &ctx,
            "s3:CreateBucket",
            &format!("arn:aws:s3:::{name}"),
            None,
            &[],
        )?;
        let b = Bucket {
            name: name.clone(),
            account: ctx.principal.account.clone(),
            region: s.region.clone(),
            created: s.now(),
            encryption: None,
            policy: None,
            tags: vec![],
            bucket_keys: vec![],
            versioning: None,
        };
        let account = ctx.principal.account.clone();
        s.tx(|t| {
            if let Some(existing) = get_json::<Bucket>(t, NS_BUCKET, &name).map_err(internal)? {
                return Err(if existing.account == account {
                    ServiceError::new(
                        "BucketAlreadyOwnedByYou",
                        409,
                        "Your previous request to create the named bucket succeeded and you already own it.",
                    )
                } else {
                    ServiceError::new(
                        "BucketAlreadyExists",
                        409,
                        "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                    )
                });
            }
            put_json(t, NS_BUCKET, &name, &b).map_err(internal)
        })?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:ListBucket")?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(b.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:GetBucketLocation")?;
        // us-east-1 is reported as an empty location constraint, as AWS does.
        let loc =
            (b.region != "us-east-1").then(|| BucketLocationConstraint::from(b.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: loc,
        }))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let s = &self.0;
        let ctx = s.context(&req)?;
        s.authorize(&ctx, "s3:ListAllMyBuckets", "*", None, &[])?;
        let max = req.input.max_buckets.unwrap_or(10_000).clamp(1, 10_000) as usize;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let after = match &req.input.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => None,
        };
        // Read in pages until one more than a page of the caller's buckets is found: the work
        // is bounded by the page, not by the number of buckets.
        let mut mine: Vec<Bucket> = vec![];
        let mut cursor = after;
        while mine.len() <= max {
            let rows: Vec<(String, Bucket)> =
                scan_json(&*s.store, NS_BUCKET, &prefix, cursor.as_deref(), 1000)
                    .map_err(|e| s3e(internal(e)))?;
            let Some((last, _)) = rows.last() else { break };
            cursor = Some(last.clone());
            mine.extend(
                rows.into_iter()
                    .map(|(_, b)| b)
                    .filter(|b| b.account == ctx.principal.account),
            );
        }
        let truncated = mine.len() > max;
        let page = &mine[..mine.len().min(max)];
        let buckets = page
            .iter()
            .map(|b| s3s::dto::Bucket {
                name: Some(b.name.clone()),
                creation_date: Some(timestamp(b.created)),
                bucket_region: Some(b.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(principal_owner(&ctx.principal)),
            continuation_token: if truncated {
                page.last().map(|b| encode_token(&b.name))
            } else {
                None
            },
            prefix: req.input.prefix.clone(),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:DeleteBucket")?;
        let name = b.name.clone();
        let mut part_blobs: Vec<String> = vec![];
        s.tx(|t| {
            part_blobs.clear();
            // Any object, version or delete marker left keeps the bucket.
            let prefix = format!("{name}/");
            if !t
                .scan(NS_OBJECT, &prefix, None, 1)
                .map_err(internal)?
                .is_empty()
                || !t
                    .scan(model::NS_VERSION, &prefix, None, 1)
                    .map_err(internal)?
                    .is_empty()
            {
                return Err(ServiceError::new(
                    "BucketNotEmpty",
                    409,
                    "The bucket you tried to delete is not empty",
                ));
            }
            // Multipart uploads in progress go with the bucket, with their parts (otherwise
            // they would reappear in a later bucket of the same name).
            loop {
                let uploads = t
                    .scan(model::NS_UPLOAD, &prefix, None, 100)
                    .map_err(internal)?;
                if uploads.is_empty() {
                    break;
                }
                for (_, v) in uploads {
                    let up: model::Upload = serde_json::from_slice(&v).map_err(internal)?;
                    for p in multipart::delete_upload(t, &up)?.unwrap_or_default() {
                        part_blobs.push(p.blob_id);
                    }
                }
            }
            t.delete(NS_BUCKET, &name).map_err(internal)?;
            Ok(())
        })?;
        for blob in &part_blobs {
            let _ = s.blobs.delete(blob);
        }
        Ok(S3Response::with_status(
            DeleteBucketOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:PutEncryptionConfiguration")?;
        let rules = &req.input.server_side_encryption_configuration.rules;
        if rules.len() != 1 {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        let rule = &rules[0];
        let Some(def) = &rule.apply_server_side_encryption_by_default else {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        };
        let enc = match def.sse_algorithm.as_str() {
            ServerSideEncryption::AES256 => {
                if def.kms_master_key_id.is_some() {
                    return Err(s3_error!(
                        InvalidArgument,
                        "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
                    ));
                }
                DefaultEncryption {
                    algorithm: "AES256".into(),
                    kms_key_id: None,
                    bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
                }
            }
            ServerSideEncryption::AWS_KMS => DefaultEncryption {
                algorithm: "aws:kms".into(),
                kms_key_id: def.kms_master_key_id.clone(),
                bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
            },
            other => {
                return Err(s3_error!(
                    NotImplemented,
                    "Server-side encryption {other} is not supported by Coffer yet."
                ));
            }
        };
        s.update_bucket(&b.name, |b| b.encryption = Some(enc.clone()))?;
        Ok(S3Response::new(PutBucketEncryptionOutput {}))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:GetEncryptionConfiguration")?;
        // Every bucket encrypts: without a configuration, with SSE-S3, as AWS since 2023.
        let enc = b.encryption.clone().unwrap_or(DefaultEncryption {
            algorithm: "AES256".into(),
            kms_key_id: None,
            bucket_key_enabled: false,
        });
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        kms_master_key_id: enc.kms_key_id.clone(),
                        sse_algorithm: ServerSideEncryption::from(enc.algorithm.clone()),
                    }),
                    bucket_key_enabled: Some(enc.bucket_key_enabled),
                }],
            }),
        }))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:PutEncryptionConfiguration")?;
        s.update_bucket(&b.name, |b| b.encryption = None)?;
        Ok(S3Response::with_status(
            DeleteBucketEncryptionOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:PutBucketPolicy")?;
        let doc = req.input.policy.clone();
        if doc.len() > 20 * 1024 {
            return Err(s3e(ServiceError::new(
                "PolicyTooLarge",
                400,
                "Policy exceeds the maximum allowed document size.",
            )));
        }
        Policy::parse_bucket_policy(&doc)
            .map_err(|e| s3e(ServiceError::new("MalformedPolicy", 400, e.message)))?;
        s.update_bucket(&b.name, |b| b.policy = Some(doc.clone()))?;
        Ok(S3Response::with_status(
            PutBucketPolicyOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:GetBucketPolicy")?;
        let Some(p) = b.policy else {
            return Err(s3e(ServiceError::new(
                "NoSuchBucketPolicy",
                404,
                "The bucket policy does not exist",
            )));
        };
        Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(p) }))
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:DeleteBucketPolicy")?;
        s.update_bucket(&b.name, |b| b.policy = None)?;
        Ok(S3Response::with_status(
            DeleteBucketPolicyOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put_object(&self.0, req).await
    }

    async fn post_object(
        &self,
        req: S3Request<PostObjectInput>,
    ) -> S3Result<S3Response<PostObjectOutput>> {
        objects::post_object(&self.0, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get_object(&self.0, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head_object(&self.0, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete_object(&self.0, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        objects::list_objects_v2(&self.0, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        objects::list_objects(&self.0, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_objects(&self.0, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        objects::copy_object(&self.0, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:GetBucketVersioning")?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: b.versioning.clone().map(BucketVersioningStatus::from),
            mfa_delete: None,
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let s = &self.0;
        let (_, b) = s.bucket_request(&req, &req.input.bucket, "s3:PutBucketVersioning")?;
        let conf = &req.input.versioning_configuration;
        if req.input.mfa.is_some()
            || conf
                .mfa_delete
                .as_ref()
                .is_some_and(|m| m.as_str() == "Enabled")
        {
            return Err(s3_error!(
                NotImplemented,
                "MFA Delete is not supported by Coffer yet."
            ));
        }
        let status = conf.status.as_ref().map(|v| v.as_str().to_string());
        match status.as_deref() {
            // Once Enabled or Suspended, a bucket never returns to unversioned (there is no
            // status for it).
            Some("Suspended") | Some("Enabled") => {}
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        }
        s.update_bucket(&b.name, |b| b.versioning = status.clone())?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        versions::list_object_versions(&self.0, req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        tagging::put_object_tagging(&self.0, req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        tagging::get_object_tagging(&self.0, req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        tagging::delete_object_tagging(&self.0, req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        tagging::put_bucket_tagging(&self.0, req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        tagging::get_bucket_tagging(&self.0, req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        tagging::delete_bucket_tagging(&self.0, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(&self.0, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(&self.0, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(&self.0, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(&self.0, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(&self.0, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(&self.0, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(&self.0, req).await
    }
}

pub(crate) fn timestamp(epoch: i64) -> Timestamp {
    Timestamp::from(
        time::OffsetDateTime::from_unix_timestamp(epoch)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

pub(crate) fn encode_token(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes())
}

pub(crate) fn decode_token(t: &str) -> S3Result<String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

/// Virtual-hosted-style addressing under `localhost` (`bucket.localhost:4566`), whatever the
/// port; any other host (an IP address, `localhost`, a custom name) is path style.
pub struct LocalHostStyle;

impl s3s::host::S3Host for LocalHostStyle {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        match name.strip_suffix(".localhost") {
            Some(bucket) if !bucket.is_empty() => {
                Ok(s3s::host::VirtualHost::new("localhost").with_bucket(bucket))
            }
            _ => Ok(s3s::host::VirtualHost::new(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::host::S3Host;

    #[test]
    fn host_styles() {
        let h = LocalHostStyle;
        assert_eq!(
            h.parse_host_header("bkt.localhost:4566").unwrap().bucket(),
            Some("bkt")
        );
        assert_eq!(
            h.parse_host_header("bkt.localhost").unwrap().bucket(),
            Some("bkt")
        );
        for path_style in [
            "localhost:4566",
            "localhost",
            "127.0.0.1:4566",
            "[::1]:4566",
            "s3.example.com",
        ] {
            assert_eq!(
                h.parse_host_header(path_style).unwrap().bucket(),
                None,
                "{path_style}"
            );
        }
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.example", "a1b2c3"] {
            assert!(valid_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "ABC",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            &"a".repeat(64),
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            url_query("a=1&X-Amz-Security-Token=ab%2Bc%3D&e"),
            vec![
                ("a".into(), "1".into()),
                ("X-Amz-Security-Token".into(), "ab+c=".into()),
                ("e".into(), "".into())
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
