//! Object operations: streamed, segment-encrypted PUT; ranged, streamed GET; HEAD; DELETE;
//! listings.

use crate::model::{Bucket, NS_OBJECT, Object, Sse, object_key};
use crate::versions::{
    self, ENABLED, VersionSel, marker_error, no_such_version, parse_version_id, reported_version,
};
use crate::{Inner, access_denied, decode_token, encode_token, internal, s3e, timestamp};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use coffer_core::{RequestContext, ServiceError};
use coffer_crypto::segment::{self, Decryptor, Encryptor, Layout};
use coffer_store::{get_json, scan_json};
use futures::StreamExt;
use s3s::crypto::Checksum as _;
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// The largest single PUT (5 GiB), as AWS.
const MAX_PUT: u64 = 5 << 30;
/// Ciphertext is written to the blob in batches of about this size.
const WRITE_BATCH: usize = 1 << 20;
/// Objects whose ciphertext is at most this size are kept in the metadata row itself: one durable
/// commit instead of a file write, two fsyncs and a rename.
const INLINE_MAX: usize = 64 * 1024;

/// The caller acting through S3 on KMS: `kms:ViaService`, no source address.
fn via_s3(s: &Inner, ctx: &RequestContext) -> RequestContext {
    RequestContext {
        via_service: Some(format!("s3.{}.amazonaws.com", s.region)),
        source_ip: None,
        ..ctx.clone()
    }
}

/// KMS errors as S3 reports them (aws-behavior.md §3.4): a denial is S3's AccessDenied with
/// KMS's message; other failures keep their code behind a `KMS.` prefix.
fn kms_error(e: ServiceError) -> S3Error {
    match e.code.as_str() {
        "AccessDeniedException" => access_denied(e.message),
        "ServiceFailure" | "KMSInternalException" | "InternalError" => s3e(crate::internal_error()),
        code => s3e(ServiceError::new(format!("KMS.{code}"), 400, e.message)),
    }
}

pub(crate) enum SseChoice {
    S3,
    Customer(CustomerKey),
    Kms {
        key_id: String,
        bucket_key: bool,
        client_context: Option<String>,
    },
}

/// What a request says about encryption (PutObject, CreateMultipartUpload).
pub(crate) struct SseRequest<'a> {
    pub server_side_encryption: Option<&'a ServerSideEncryption>,
    pub ssekms_key_id: Option<&'a String>,
    pub bucket_key_enabled: Option<bool>,
    pub ssekms_encryption_context: Option<&'a String>,
    pub sse_c: Option<CustomerKey>,
}

/// An SSE-C key from a request (never stored, zeroized on drop).
#[derive(Clone)]
pub(crate) struct CustomerKey {
    key: Zeroizing<Vec<u8>>,
    /// Base64 MD5 of the key, as the client sent it (checked).
    pub md5: String,
}

/// Parses and checks SSE-C headers (`…-customer-algorithm`, `…-customer-key`, `…-customer-key-MD5`).
pub(crate) fn customer_key(
    s: &Inner,
    secure: bool,
    alg: Option<&SSECustomerAlgorithm>,
    key: Option<&String>,
    md5: Option<&String>,
) -> S3Result<Option<CustomerKey>> {
    if alg.is_none() && key.is_none() && md5.is_none() {
        return Ok(None);
    }
    if s.require_tls_for_sse && !secure {
        return Err(s3_error!(
            InvalidRequest,
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
        ));
    }
    match alg.map(|a| a.as_str()) {
        Some("AES256") => {}
        Some(_) => {
            return Err(s3e(ServiceError::new(
                "InvalidEncryptionAlgorithmError",
                400,
                "The Encryption request you specified is not valid. Supported value: AES256.",
            )));
        }
        None => {
            return Err(s3_error!(
                InvalidArgument,
                "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."
            ));
        }
    }
    let raw = key
        .and_then(|k| B64.decode(k).ok())
        .filter(|k| k.len() == 32)
        .map(Zeroizing::new)
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The secret key was invalid for the specified algorithm."
            )
        })?;
    let actual = B64.encode(s3s::crypto::Md5::checksum(&raw));
    let given = md5.ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key MD5."
        )
    })?;
    if !coffer_crypto::ct_eq(actual.as_bytes(), given.as_bytes()) {
        return Err(s3_error!(
            InvalidArgument,
            "The calculated MD5 hash of the key did not match the hash that was provided."
        ));
    }
    Ok(Some(CustomerKey {
        key: raw,
        md5: actual,
    }))
}

fn sse_c_aad(blob_id: &str) -> Vec<u8> {
    format!("s3-sse-c:{blob_id}").into_bytes()
}

pub(crate) fn choose_sse(bucket: &Bucket, input: &SseRequest<'_>) -> S3Result<SseChoice> {
    if let Some(k) = &input.sse_c {
        if input.server_side_encryption.is_some() || input.ssekms_key_id.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
            ));
        }
        return Ok(SseChoice::Customer(k.clone()));
    }
    let requested = input
        .server_side_encryption
        .as_ref()
        .map(|s| s.as_str().to_string());
    let (alg, key, bucket_key) = match requested.as_deref() {
        Some(a) => (
            a.to_string(),
            // aws:kms without a key id: the bucket's default KMS key, if it has one.
            input.ssekms_key_id.cloned().or_else(|| {
                bucket
                    .encryption
                    .as_ref()
                    .filter(|e| a == "aws:kms" && e.algorithm == "aws:kms")
                    .and_then(|e| e.kms_key_id.clone())
            }),
            input.bucket_key_enabled.unwrap_or(false),
        ),
        None => match &bucket.encryption {
            Some(e) => (
                e.algorithm.clone(),
                input
                    .ssekms_key_id
                    .cloned()
                    .or_else(|| e.kms_key_id.clone()),
                input.bucket_key_enabled.unwrap_or(e.bucket_key_enabled),
            ),
            None => ("AES256".to_string(), None, false),
        },
    };
    match alg.as_str() {
        "AES256" => {
            if input.ssekms_key_id.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
                ));
            }
            Ok(SseChoice::S3)
        }
        "aws:kms" => match key {
            Some(key_id) => Ok(SseChoice::Kms {
                key_id,
                bucket_key,
                client_context: input.ssekms_encryption_context.cloned(),
            }),
            // No key named anywhere: the AWS managed key, made on first use.
            None => Ok(SseChoice::Kms {
                key_id: AWS_S3_KEY.to_string(),
                bucket_key,
                client_context: input.ssekms_encryption_context.cloned(),
            }),
        },
        "aws:kms:dsse" => Err(s3_error!(
            NotImplemented,
            "Dual-layer SSE-KMS (aws:kms:dsse) is not supported by Coffer yet."
        )),
        _ => Err(s3e(ServiceError::new(
            "InvalidEncryptionAlgorithmError",
            400,
            "The Encryption request you specified is not valid. Supported value: AES256.",
        ))),
    }
}

/// `x-amz-server-side-encryption-context`: base64 of a JSON object of strings.
fn client_context_pairs(b64: &str) -> S3Result<Vec<(String, String)>> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map"
        )
    };
    let raw = B64.decode(b64).map_err(|_| bad())?;
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).map_err(|_| bad())?;
    v.into_iter()
        .map(|(k, v)| v.as_str().map(|s| (k, s.to_string())).ok_or_else(bad))
        .collect()
}

fn sse_s3_aad(blob_id: &str) -> Vec<u8> {
    format!("s3-sse-s3:{blob_id}").into_bytes()
}

pub(crate) const CHECKSUM_ALGS: [(&str, &str); 5] = [
    ("CRC32", "x-amz-checksum-crc32"),
    ("CRC32C", "x-amz-checksum-crc32c"),
    ("SHA1", "x-amz-checksum-sha1"),
    ("SHA256", "x-amz-checksum-sha256"),
    ("CRC64NVME", "x-amz-checksum-crc64nvme"),
];

/// A request body with what the client says about it.
pub(crate) struct BodyIn {
    pub body: Option<StreamingBlob>,
    pub content_length: Option<i64>,
    pub content_md5: Option<String>,
    /// A small result may be returned inline instead of as a blob (objects; not parts).
    pub allow_inline: bool,
    /// Compute the MD5 (the ETag of SSE-S3 objects and parts). MD5 costs about 2 s of CPU per
    /// GiB, so it is computed only where AWS's ETag is the MD5, or to check a Content-MD5.
    pub need_md5: bool,
    /// Checksum headers, in the order of `CHECKSUM_ALGS`.
    pub provided: [Option<String>; 5],
    /// `x-amz-sdk-checksum-algorithm` / `ChecksumAlgorithm`, upper case.
    pub algorithm: Option<String>,
    /// `x-amz-trailer`, lower case.
    pub trailer: Option<String>,
    pub trailers: Option<s3s::TrailingHeaders>,
}

pub(crate) struct Ingested {
    pub size: u64,
    /// The ETag's 16 bytes: the MD5 when computed, else derived from the blob id (SSE-KMS ETags
    /// are not MD5s on AWS either).
    pub etag: [u8; 16],
    /// (algorithm, base64) for every checksum computed.
    pub checksums: Vec<(String, String)>,
    /// The ciphertext, when small enough to live in the metadata row (then no blob exists).
    pub inline: Option<Vec<u8>>,
}

/// Streams a body through MD5, the checksums and the segment encryptor into blob `blob_id`,
/// verifies length, Content-MD5 and checksums (headers or trailer), and makes the blob durable.
/// On any error the blob is discarded. Memory: about one write batch.
/// What a failed object body answers. s3s's reader fails a body whose bytes do not hash to its
/// `x-amz-content-sha256` with an error whose text is pinned by a test (its type is private).
fn body_error(e: s3s::StdError) -> s3s::S3Error {
    if is_sha256_mismatch(&*e) {
        return s3e(ServiceError::new(
            "XAmzContentSHA256Mismatch",
            400,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    let mut err = s3_error!(
        IncompleteBody,
        "The request body could not be read completely."
    );
    err.set_source(e);
    err
}

fn is_sha256_mismatch(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.to_string() == "UploadStreamError: Sha256Mismatch" {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Appends ciphertext to the object's blob file, creating it on first use (off the async
/// worker: see [`crate::blocking`]).
fn write_blob(
    s: &Inner,
    writer: &mut Option<Box<dyn coffer_store::BlobWriter>>,
    blob_id: &str,
    data: &[u8],
) -> S3Result<()> {
    crate::blocking(|| {
        let w = match writer {
            Some(w) => w,
            None => writer.insert(s.blobs.create(blob_id)?),
        };
        w.write_all(data).map_err(coffer_store::StoreError::from)
    })
    .map_err(|e| s3e(internal(e)))
}

pub(crate) async fn ingest(
    s: &Inner,
    blob_id: &str,
    data_key: &[u8],
    mut b: BodyIn,
) -> S3Result<Ingested> {
    let wants = |i: usize| {
        let (alg, header) = CHECKSUM_ALGS[i];
        b.provided[i].is_some()
            || b.algorithm.as_deref() == Some(alg)
            || b.trailer.as_deref() == Some(header)
    };
    let mut sums = s3s::checksum::ChecksumHasher::default();
    if wants(0) {
        sums.crc32 = Some(Default::default());
    }
    if wants(1) {
        sums.crc32c = Some(Default::default());
    }
    if wants(2) {
        sums.sha1 = Some(Default::default());
    }
    if wants(3) {
        sums.sha256 = Some(Default::default());
    }
    if wants(4) {
        sums.crc64nvme = Some(Default::default());
    }
    // The blob file is created once the ciphertext outgrows what may stay inline.
    let mut writer: Option<Box<dyn coffer_store::BlobWriter>> = None;
    let mut enc = Encryptor::new(data_key, blob_id.as_bytes(), segment::DEFAULT_SEGMENT)
        .map_err(|e| s3e(internal(e)))?;
    let mut md5 = (b.need_md5 || b.content_md5.is_some()).then(s3s::crypto::Md5::new);
    let mut out = Vec::with_capacity(WRITE_BATCH + segment::DEFAULT_SEGMENT);
    let mut size: u64 = 0;
    if let Some(mut body) = b.body.take() {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(body_error)?;
            size += chunk.len() as u64;
            if size > MAX_PUT {
                return Err(s3_error!(
                    EntityTooLarge,
                    "Your proposed upload exceeds the maximum allowed size"
                ));
            }
            if let Some(m) = &mut md5 {
                m.update(&chunk);
            }
            sums.update(&chunk);
            enc.push(&chunk, &mut out).map_err(|e| s3e(internal(e)))?;
            if out.len() >= WRITE_BATCH {
                write_blob(s, &mut writer, blob_id, &out)?;
                out.clear();
            }
        }
    }
    enc.finish(&mut out).map_err(|e| s3e(internal(e)))?;
    let inline = if writer.is_none() && b.allow_inline && out.len() <= INLINE_MAX {
        Some(std::mem::take(&mut out))
    } else {
        write_blob(s, &mut writer, blob_id, &out)?;
        None
    };
    drop(out);
    if let Some(len) = b.content_length
        && len as u64 != size
    {
        return Err(s3_error!(
            IncompleteBody,
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        ));
    }
    let digest: [u8; 16] = match md5 {
        Some(m) => m.finalize(),
        None => {
            let h = sha256_bytes(format!("coffer-etag:{blob_id}").as_bytes());
            let mut d = [0u8; 16];
            d.copy_from_slice(&h[..16]);
            d
        }
    };
    if let Some(given) = &b.content_md5
        && B64.decode(given).map(|d| d.len()).ok() != Some(16)
    {
        return Err(s3e(ServiceError::new(
            "InvalidDigest",
            400,
            "The Content-MD5 you specified was invalid.",
        )));
    }
    if let Some(given) = &b.content_md5
        && B64.decode(given).ok().as_deref() != Some(&digest[..])
    {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    // Checksums: from headers, or from the (verified) trailer once the body has ended.
    let computed = sums.finalize();
    let trailers = b.trailers.as_ref().and_then(|t| t.take());
    let got = [
        computed.checksum_crc32,
        computed.checksum_crc32c,
        computed.checksum_sha1,
        computed.checksum_sha256,
        computed.checksum_crc64nvme,
    ];
    let mut checksums = vec![];
    for (i, (alg, header)) in CHECKSUM_ALGS.iter().enumerate() {
        let provided = b.provided[i].clone().or_else(|| {
            trailers
                .as_ref()
                .and_then(|h| h.get(*header))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        match (provided, &got[i]) {
            (Some(p), Some(g)) if &p != g => {
                return Err(s3_error!(
                    BadDigest,
                    "The {alg} you specified did not match the calculated checksum."
                ));
            }
            (_, Some(g)) => checksums.push((alg.to_string(), g.clone())),
            _ => {}
        }
    }
    // Durable before visible: fsync and rename the blob; the caller then commits the metadata.
    if let Some(w) = writer {
        tokio::task::spawn_blocking(move || w.commit())
            .await
            .map_err(|e| s3e(internal(e)))?
            .map_err(|e| s3e(internal(e)))?;
    }
    Ok(Ingested {
        size,
        etag: digest,
        checksums,
        inline,
    })
}

pub(crate) async fn put_object(
    s: &Inner,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let ctx = s.context(&req)?;
    put_object_as(s, ctx, req).await
}

/// POST object (browser form upload). s3s has parsed the form, verified the policy's SigV4
/// signature, its expiration and its conditions (every form field covered, content-length-range)
/// and read the file (at most `post_object_max_file_size`); what remains is PutObject as the
/// signer: the same authorization, encryption and KMS calls.
pub(crate) async fn post_object(
    s: &Inner,
    req: S3Request<PostObjectInput>,
) -> S3Result<S3Response<PostObjectOutput>> {
    if req.credentials.is_none() {
        return Err(access_denied("Access Denied"));
    }
    // s3s also accepts SigV2 form signatures; they carry no credential scope.
    let Some(region) = req.region.as_ref().map(|r| r.as_str().to_string()) else {
        return Err(s3_error!(
            InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        ));
    };
    if req.service.as_deref() != Some("s3") {
        return Err(s3_error!(
            InvalidArgument,
            "Credential should be scoped to correct service: 's3'. "
        ));
    }
    if region != s.region {
        return Err(s3_error!(
            InvalidArgument,
            "the region '{}' is wrong; expecting '{}'",
            region,
            s.region
        ));
    }
    // The session token is the form field `x-amz-security-token`, which the gateway read from
    // the form (s3s has checked it, like every field, against the signed policy). Without it,
    // session credentials fail with `InvalidToken`; long-term keys need none.
    let token = req
        .extensions
        .get::<crate::PostFormToken>()
        .and_then(|t| t.0.clone());
    let ctx = s.context_with_token(&req, token.as_deref())?;
    let host = req
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let secure = ctx.secure_transport;
    // s3s answers a redirect with its own Location.
    let redirect = req.input.success_action_redirect.is_some();
    let req = req.map_input(post_object_input_into_put_object_input);
    let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
    let resp = put_object_as(s, ctx, req).await?;
    let out = &resp.output;
    // s3s writes the status and body (success_action_status / redirect) but not the output's
    // headers: set the ones AWS sends.
    let mut headers = http::HeaderMap::new();
    let mut set = |name: &'static str, value: Option<String>| {
        if let Some(v) = value
            && let Ok(v) = http::HeaderValue::from_str(&v)
        {
            headers.insert(name, v);
        }
    };
    set(
        "etag",
        out.e_tag.as_ref().map(|e| format!("\"{}\"", e.value())),
    );
    set(
        "x-amz-server-side-encryption",
        out.server_side_encryption
            .as_ref()
            .map(|e| e.as_str().to_string()),
    );
    set(
        "x-amz-server-side-encryption-aws-kms-key-id",
        out.ssekms_key_id.clone(),
    );
    set(
        "x-amz-server-side-encryption-bucket-key-enabled",
        out.bucket_key_enabled.map(|b| b.to_string()),
    );
    set(
        "x-amz-server-side-encryption-context",
        out.ssekms_encryption_context.clone(),
    );
    set(
        "x-amz-server-side-encryption-customer-algorithm",
        out.sse_customer_algorithm.clone(),
    );
    set(
        "x-amz-server-side-encryption-customer-key-md5",
        out.sse_customer_key_md5.clone(),
    );
    set("x-amz-version-id", out.version_id.clone());
    set(
        "location",
        host.filter(|_| !redirect).map(|h| {
            let path: String = key
                .split('/')
                .map(|seg| percent_encoding::utf8_percent_encode(seg, URI_SEGMENT).to_string())
                .collect::<Vec<_>>()
                .join("/");
            let scheme = if secure { "https" } else { "http" };
            if h.starts_with(&format!("{bucket}.")) {
                format!("{scheme}://{h}/{path}")
            } else {
                format!("{scheme}://{h}/{bucket}/{path}")
            }
        }),
    );
    let mut resp = resp.map_output(put_object_output_into_post_object_output);
    resp.headers.extend(headers);
    Ok(resp)
}

/// The PutObject input of a POST object (the same fields; s3s keeps its own mapping private).
fn post_object_input_into_put_object_input(x: PostObjectInput) -> PutObjectInput {
    PutObjectInput {
        acl: x.acl,
        body: x.body,
        bucket: x.bucket,
        bucket_key_enabled: x.bucket_key_enabled,
        cache_control: x.cache_control,
        checksum_algorithm: x.checksum_algorithm,
        checksum_crc32: x.checksum_crc32,
        checksum_crc32c: x.checksum_crc32c,
        checksum_crc64nvme: x.checksum_crc64nvme,
        checksum_sha1: x.checksum_sha1,
        checksum_sha256: x.checksum_sha256,
        content_disposition: x.content_disposition,
        content_encoding: x.content_encoding,
        content_language: x.content_language,
        content_length: x.content_length,
        content_md5: x.content_md5,
        content_type: x.content_type,
        expected_bucket_owner: x.expected_bucket_owner,
        expires: x.expires,
        grant_full_control: x.grant_full_control,
        grant_read: x.grant_read,
        grant_read_acp: x.grant_read_acp,
        grant_write_acp: x.grant_write_acp,
        if_match: x.if_match,
        if_none_match: x.if_none_match,
        key: x.key,
        metadata: x.metadata,
        object_lock_legal_hold_status: x.object_lock_legal_hold_status,
        object_lock_mode: x.object_lock_mode,
        object_lock_retain_until_date: x.object_lock_retain_until_date,
        request_payer: x.request_payer,
        sse_customer_algorithm: x.sse_customer_algorithm,
        sse_customer_key: x.sse_customer_key,
        sse_customer_key_md5: x.sse_customer_key_md5,
        ssekms_encryption_context: x.ssekms_encryption_context,
        ssekms_key_id: x.ssekms_key_id,
        server_side_encryption: x.server_side_encryption,
        storage_class: x.storage_class,
        tagging: x.tagging,
        website_redirect_location: x.website_redirect_location,
        write_offset_bytes: x.write_offset_bytes,
    }
}

/// The POST object output of a PutObject.
fn put_object_output_into_post_object_output(x: PutObjectOutput) -> PostObjectOutput {
    PostObjectOutput {
        bucket_key_enabled: x.bucket_key_enabled,
        checksum_crc32: x.checksum_crc32,
        checksum_crc32c: x.checksum_crc32c,
        checksum_crc64nvme: x.checksum_crc64nvme,
        checksum_sha1: x.checksum_sha1,
        checksum_sha256: x.checksum_sha256,
        checksum_type: x.checksum_type,
        e_tag: x.e_tag,
        expiration: x.expiration,
        request_charged: x.request_charged,
        sse_customer_algorithm: x.sse_customer_algorithm,
        sse_customer_key_md5: x.sse_customer_key_md5,
        ssekms_encryption_context: x.ssekms_encryption_context,
        ssekms_key_id: x.ssekms_key_id,
        server_side_encryption: x.server_side_encryption,
        size: x.size,
        version_id: x.version_id,
    }
}

/// What a URI path segment keeps unescaped: RFC 3986's unreserved characters.
const URI_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// PutObject once the caller is known.
async fn put_object_as(
    s: &Inner,
    ctx: RequestContext,
    mut req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let bucket = s.bucket(&req.input.bucket)?;
    let key = req.input.key.clone();
    check_new_key(&key)?;
    let arn = Inner::object_arn(&bucket.name, &key);
    let (sse, mut extra) = sse_of_request!(s, &ctx, &bucket, &req.input);
    let tags = match &req.input.tagging {
        Some(h) => crate::tagging::parse_tagging_header(h)?,
        None => vec![],
    };
    extra.extend(
        tags.iter()
            .map(|(k, v)| (format!("s3:RequestObjectTag/{k}"), v.clone())),
    );
    s.authorize(&ctx, "s3:PutObject", &arn, Some(&bucket), &extra)?;
    if !tags.is_empty() {
        s.authorize(&ctx, "s3:PutObjectTagging", &arn, Some(&bucket), &extra)?;
    }
    if s.require_tls_for_sse
        && !ctx.secure_transport
        && req
            .input
            .server_side_encryption
            .as_ref()
            .is_some_and(|e| e.as_str() == "aws:kms")
    {
        return Err(s3_error!(
            InvalidRequest,
            "Requests specifying Server Side Encryption with AWS KMS managed keys require HTTPS."
        ));
    }
    if let Some(len) = req.input.content_length
        && len as u64 > MAX_PUT
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }

    let blob_id = uuid::Uuid::new_v4().simple().to_string();
    let (data_key, stored_sse, kms_arn) = new_data_key(s, &ctx, &sse, &blob_id, &arn)?;
    let body_in = BodyIn {
        need_md5: matches!(stored_sse, Sse::S3 { .. }),
        allow_inline: true,
        body: req.input.body.take(),
        content_length: req.input.content_length,
        content_md5: req.input.content_md5.clone(),
        provided: [
            req.input.checksum_crc32.clone(),
            req.input.checksum_crc32c.clone(),
            req.input.checksum_sha1.clone(),
            req.input.checksum_sha256.clone(),
            req.input.checksum_crc64nvme.clone(),
        ],
        algorithm: req
            .input
            .checksum_algorithm
            .as_ref()
            .map(|a| a.as_str().to_ascii_uppercase()),
        trailer: req
            .headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase),
        trailers: req.trailing_headers.clone(),
    };
    let Ingested {
        size,
        etag: digest,
        checksums,
        inline,
    } = ingest(s, &blob_id, &data_key, body_in).await?;
    let etag = quoted_etag(&digest);
    let obj = Object {
        key: key.clone(),
        size,
        etag: etag.clone(),
        last_modified: s.now(),
        blob_id: blob_id.clone(),
        segment_size: segment::DEFAULT_SEGMENT,
        sse: stored_sse.clone(),
        content_type: req.input.content_type.as_ref().map(|c| c.to_string()),
        content_encoding: req.input.content_encoding.clone(),
        content_disposition: req.input.content_disposition.clone(),
        content_language: req.input.content_language.clone(),
        cache_control: req.input.cache_control.clone(),
        metadata: req
            .input
            .metadata
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        checksums: checksums.clone(),
        checksum_type: None,
        parts: vec![],
        inline: inline.map(|c| B64.encode(c)),
        tags,
        version_id: None,
        seq: None,
        delete_marker: false,
    };
    let version_id = commit_object(s, &bucket.name, obj)?;
    let mut o = PutObjectOutput {
        e_tag: Some(ETag::Strong(etag.trim_matches('"').to_string())),
        version_id,
        ..Default::default()
    };
    set_sse_out(
        &stored_sse,
        kms_arn.as_deref(),
        &mut o.server_side_encryption,
        &mut o.ssekms_key_id,
        &mut o.bucket_key_enabled,
    );
    set_sse_c_out(
        &stored_sse,
        &mut o.sse_customer_algorithm,
        &mut o.sse_customer_key_md5,
    );
    if let Sse::Kms {
        client_context: Some(c),
        ..
    } = &stored_sse
    {
        o.ssekms_encryption_context = Some(c.clone());
    }
    set_checksums!(o, &checksums);
    if !checksums.is_empty() {
        o.checksum_type = Some(ChecksumType::from(crate::checksum::FULL_OBJECT.to_string()));
    }
    Ok(S3Response::new(o))
}

/// SHA-256 of `data` (for ETags that are not MD5s).
fn sha256_bytes(data: &[u8]) -> Vec<u8> {
    hex::decode(coffer_crypto::sha256_hex(data)).unwrap_or_default()
}

/// The quoted ETag of a single-blob object or a part.
pub(crate) fn quoted_etag(etag: &[u8; 16]) -> String {
    format!("\"{}\"", hex::encode(etag))
}

/// Makes `obj` (whose blob is durable) the current version of its key, atomically: it replaces
/// the object of an unversioned bucket (or the `null` version of a suspended one), or becomes a
/// new version of a versioned one (`versions::place_current`). Blobs no version names any more
/// are deleted after the commit; on failure the new blob is deleted. Returns the version id to
/// report (`x-amz-version-id`) on a versioning-enabled bucket.
fn commit_object(s: &Inner, bucket: &str, mut obj: Object) -> S3Result<Option<String>> {
    let now_us = versions::now_micros(s);
    let mut replaced: Vec<String> = vec![];
    let mut reported = None;
    let committed = s.tx(|t| {
        let versioning = versions::versioning_in(t, bucket)?;
        replaced = versions::place_current(t, bucket, versioning.as_deref(), &mut obj, now_us)?;
        reported =
            (versioning.as_deref() == Some(ENABLED)).then(|| obj.version_label().to_string());
        Ok(())
    });
    if let Err(e) = committed {
        for b in obj.blobs() {
            let _ = s.blobs.delete(&b.blob_id);
        }
        return Err(e);
    }
    for old in replaced {
        let _ = s.blobs.delete(&old);
    }
    Ok(reported)
}

/// What deleting one key (or one version) did.
pub(crate) struct Deleted {
    /// The version removed, or the delete marker made.
    pub version_id: Option<String>,
    /// A delete marker was made, or the version removed was one.
    pub delete_marker: bool,
}

/// Deletes `key` (`sel` = None: the object, or a new delete marker on a versioned bucket) or one
/// version of it permanently (`sel`), in one transaction; blobs go after the commit (a crash in
/// between leaves an orphan the start sweep removes).
pub(crate) fn delete_one(
    s: &Inner,
    bucket: &str,
    key: &str,
    sel: Option<&VersionSel>,
) -> S3Result<Deleted> {
    let (now_us, now) = (versions::now_micros(s), s.now());
    let mut dead: Vec<String> = vec![];
    let mut res = None;
    s.tx(|t| {
        dead.clear();
        res = Some(delete_in(t, bucket, key, sel, now_us, now, &mut dead)?);
        Ok(())
    })?;
    for b in dead {
        let _ = s.blobs.delete(&b);
    }
    res.ok_or_else(|| s3e(internal("delete transaction did not run")))
}

/// Deletes `key` or one version of it inside the transaction `t` (see [`delete_one`]), adding
/// the blobs to remove once it commits to `dead`.
fn delete_in(
    t: &mut dyn coffer_store::Txn,
    bucket: &str,
    key: &str,
    sel: Option<&VersionSel>,
    now_us: u64,
    now: i64,
    dead: &mut Vec<String>,
) -> Result<Deleted, ServiceError> {
    let mut res = Deleted {
        version_id: None,
        delete_marker: false,
    };
    let versioning = versions::versioning_in(t, bucket)?;
    match (sel, versioning.as_deref()) {
        (Some(sel), _) => {
            res.version_id = Some(match sel {
                VersionSel::Null => "null".to_string(),
                VersionSel::Id { id, .. } => id.clone(),
            });
            if let Some(o) = versions::remove_version(t, bucket, key, sel)? {
                res.delete_marker = o.delete_marker;
                dead.extend(o.blobs().into_iter().map(|b| b.blob_id));
            }
        }
        (None, None) => {
            let row = object_key(bucket, key);
            if let Some(o) = get_json::<Object>(t, NS_OBJECT, &row).map_err(internal)? {
                dead.extend(o.blobs().into_iter().map(|b| b.blob_id));
            }
            t.delete(NS_OBJECT, &row).map_err(internal)?;
        }
        (None, Some(state)) => {
            let mut m = Object::new_delete_marker(key, now);
            dead.extend(versions::place_current(
                t,
                bucket,
                Some(state),
                &mut m,
                now_us,
            )?);
            res.version_id = Some(m.version_label().to_string());
            res.delete_marker = true;
        }
    }
    Ok(res)
}

pub(crate) async fn delete_objects(
    s: &Inner,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let objects = &req.input.delete.objects;
    if objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let quiet = req.input.delete.quiet.unwrap_or(false);
    let (mut deleted, mut errors) = (vec![], vec![]);
    let mut allowed = vec![];
    for id in objects {
        let sel = match id.version_id.as_deref().map(parse_version_id).transpose() {
            Ok(sel) => sel,
            Err(e) => {
                errors.push(s3s::dto::Error {
                    key: Some(id.key.clone()),
                    version_id: id.version_id.clone(),
                    code: Some("InvalidArgument".into()),
                    message: e.message().map(str::to_string),
                });
                continue;
            }
        };
        let arn = Inner::object_arn(&bucket.name, &id.key);
        let action = if sel.is_some() {
            "s3:DeleteObjectVersion"
        } else {
            "s3:DeleteObject"
        };
        if let Err(e) = s.authorize(&ctx, action, &arn, Some(&bucket), &[]) {
            errors.push(s3s::dto::Error {
                key: Some(id.key.clone()),
                version_id: id.version_id.clone(),
                code: Some("AccessDenied".into()),
                message: e.message().map(str::to_string),
            });
            continue;
        }
        allowed.push((id, sel));
    }
    // Every authorized deletion in one transaction: one commit and one fsync for the request,
    // not one per key.
    let (now_us, now) = (versions::now_micros(s), s.now());
    let mut dead: Vec<String> = vec![];
    let mut done: Vec<Deleted> = vec![];
    s.tx(|t| {
        dead.clear();
        done.clear();
        for (id, sel) in &allowed {
            done.push(delete_in(
                t,
                &bucket.name,
                &id.key,
                sel.as_ref(),
                now_us,
                now,
                &mut dead,
            )?);
        }
        Ok(())
    })?;
    for b in dead {
        let _ = s.blobs.delete(&b);
    }
    if !quiet {
        for ((id, _), d) in allowed.iter().zip(done) {
            deleted.push(DeletedObject {
                key: Some(id.key.clone()),
                version_id: id.version_id.clone(),
                delete_marker: d.delete_marker.then_some(true),
                delete_marker_version_id: if d.delete_marker {
                    d.version_id.clone()
                } else {
                    None
                },
            });
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(crate) async fn copy_object(
    s: &Inner,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let ctx = s.context(&req)?;
    let i = &req.input;
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id,
    } = &i.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "Copying from an access point is not supported by Coffer yet."
        ));
    };
    let sb = s.bucket(src_bucket)?;
    let src = copy_source(s, &ctx, &sb, src_key, version_id.as_deref())?;
    check_conditions(
        &src,
        i.copy_source_if_match.as_ref(),
        i.copy_source_if_none_match.as_ref(),
        i.copy_source_if_modified_since.as_ref(),
        i.copy_source_if_unmodified_since.as_ref(),
    )
    .map_err(|e| {
        // A copy whose source condition fails is 412, whichever condition it was.
        let mut e = e;
        e.set_status_code(http::StatusCode::PRECONDITION_FAILED);
        e
    })?;
    let bucket = s.bucket(&i.bucket)?;
    let key = i.key.clone();
    check_new_key(&key)?;
    let arn = Inner::object_arn(&bucket.name, &key);
    let (sse, mut extra) = sse_of_request!(s, &ctx, &bucket, i);
    // New tags are parsed and authorized (with their s3:RequestObjectTag conditions) as PutObject
    // does, before anything is written.
    let new_tags = if i
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == "REPLACE")
    {
        Some(match &i.tagging {
            Some(h) => crate::tagging::parse_tagging_header(h)?,
            None => vec![],
        })
    } else {
        None
    };
    if let Some(tags) = &new_tags {
        extra.extend(
            tags.iter()
                .map(|(k, v)| (format!("s3:RequestObjectTag/{k}"), v.clone())),
        );
    }
    s.authorize(&ctx, "s3:PutObject", &arn, Some(&bucket), &extra)?;
    if new_tags.as_ref().is_some_and(|t| !t.is_empty()) {
        s.authorize(&ctx, "s3:PutObjectTagging", &arn, Some(&bucket), &extra)?;
    }
    let replace = i
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == "REPLACE");
    if sb.name == bucket.name
        && **src_key == *key
        && version_id.is_none()
        && !replace
        && i.server_side_encryption.is_none()
        && i.ssekms_key_id.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    // Decrypt the source as the caller (kms:Decrypt), encrypt the copy (kms:GenerateDataKey).
    let src_ck = customer_key(
        s,
        ctx.secure_transport,
        i.copy_source_sse_customer_algorithm.as_ref(),
        i.copy_source_sse_customer_key.as_ref(),
        i.copy_source_sse_customer_key_md5.as_ref(),
    )?;
    let src_dk = open_data_key(s, &ctx, &src.sse, &src.blob_id, src_ck.as_ref())?;
    let blob_id = uuid::Uuid::new_v4().simple().to_string();
    let (dk, stored_sse, kms_arn) = new_data_key(s, &ctx, &sse, &blob_id, &arn)?;
    let body = stream_plaintext(s, &src, src_dk, 0, src.size)?;
    let ingested = ingest(
        s,
        &blob_id,
        &dk,
        BodyIn {
            body: Some(body),
            content_length: Some(src.size as i64),
            content_md5: None,
            need_md5: matches!(stored_sse, Sse::S3 { .. }),
            allow_inline: true,
            provided: Default::default(),
            algorithm: i
                .checksum_algorithm
                .as_ref()
                .map(|a| a.as_str().to_ascii_uppercase()),
            trailer: None,
            trailers: None,
        },
    )
    .await?;
    drop(dk);
    let etag = quoted_etag(&ingested.etag);
    let (ct, ce, cd, cl, cc, md) = if replace {
        (
            i.content_type.as_ref().map(|c| c.to_string()),
            i.content_encoding.clone(),
            i.content_disposition.clone(),
            i.content_language.clone(),
            i.cache_control.clone(),
            i.metadata
                .clone()
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
        )
    } else {
        (
            src.content_type.clone(),
            src.content_encoding.clone(),
            src.content_disposition.clone(),
            src.content_language.clone(),
            src.cache_control.clone(),
            src.metadata.clone(),
        )
    };
    let obj = Object {
        key: key.clone(),
        size: ingested.size,
        etag: etag.clone(),
        last_modified: s.now(),
        blob_id: blob_id.clone(),
        segment_size: segment::DEFAULT_SEGMENT,
        sse: stored_sse.clone(),
        content_type: ct,
        content_encoding: ce,
        content_disposition: cd,
        content_language: cl,
        cache_control: cc,
        metadata: md,
        checksums: ingested.checksums,
        checksum_type: None,
        parts: vec![],
        inline: ingested.inline.map(|c| B64.encode(c)),
        tags: new_tags.unwrap_or_else(|| src.tags.clone()),
        version_id: None,
        seq: None,
        delete_marker: false,
    };
    let last_modified = obj.last_modified;
    let new_version = commit_object(s, &bucket.name, obj)?;
    let mut out = CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(etag.trim_matches('"').to_string())),
            last_modified: Some(timestamp(last_modified)),
            ..Default::default()
        }),
        copy_source_version_id: reported_version(&sb, &src),
        version_id: new_version,
        ..Default::default()
    };
    set_sse_out(
        &stored_sse,
        kms_arn.as_deref(),
        &mut out.server_side_encryption,
        &mut out.ssekms_key_id,
        &mut out.bucket_key_enabled,
    );
    set_sse_c_out(
        &stored_sse,
        &mut out.sse_customer_algorithm,
        &mut out.sse_customer_key_md5,
    );
    Ok(S3Response::new(out))
}

pub(crate) fn set_sse_out(
    sse: &Sse,
    arn: Option<&str>,
    alg: &mut Option<ServerSideEncryption>,
    key: &mut Option<String>,
    bucket_key: &mut Option<bool>,
) {
    match sse {
        Sse::S3 { .. } => {
            *alg = Some(ServerSideEncryption::from(
                ServerSideEncryption::AES256.to_string(),
            ))
        }
        Sse::Kms {
            key_arn,
            bucket_key_enabled,
            ..
        } => {
            *alg = Some(ServerSideEncryption::from(
                ServerSideEncryption::AWS_KMS.to_string(),
            ));
            *key = Some(arn.unwrap_or(key_arn).to_string());
            if *bucket_key_enabled {
                *bucket_key = Some(true);
            }
        }
        Sse::Customer { .. } => {}
    }
}

/// The SSE-C response headers of an SSE-C object.
pub(crate) fn set_sse_c_out(
    sse: &Sse,
    alg: &mut Option<SSECustomerAlgorithm>,
    md5: &mut Option<String>,
) {
    if let Sse::Customer { key_md5, .. } = sse {
        *alg = Some(SSECustomerAlgorithm::from("AES256".to_string()));
        *md5 = Some(key_md5.clone());
    }
}

/// Loads an object for `action` on it, or with a `versionId` the version it names for
/// `version_action` (`s3:GetObjectVersion`…; a malformed id is `InvalidArgument`): authorized
/// first (with `s3:ExistingObjectTag/*` from the object's tags). A missing key (or version) is
/// `NoSuchKey` (`NoSuchVersion`) only for callers that may list the bucket, else
/// `AccessDenied` (as AWS); so is a key whose current version is a delete marker (404 with
/// `x-amz-delete-marker: true`). A delete marker named by its version id is 405.
#[allow(clippy::too_many_arguments)]
pub(crate) fn readable_version(
    s: &Inner,
    ctx: &RequestContext,
    bucket: &Bucket,
    key: &str,
    version: Option<&str>,
    action: &str,
    version_action: &str,
    extra: &[(String, String)],
) -> S3Result<Object> {
    let arn = Inner::object_arn(&bucket.name, key);
    let sel = version.map(parse_version_id).transpose()?;
    let found = match &sel {
        None => get_json::<Object>(&*s.store, NS_OBJECT, &object_key(&bucket.name, key))
            .map_err(|e| s3e(internal(e)))?,
        Some(sel) => versions::find_version(&*s.store, &bucket.name, key, sel)
            .map_err(s3e)?
            .map(|(_, o)| o),
    };
    let mut conds = extra.to_vec();
    if let Some(v) = version {
        conds.push(("s3:versionid".to_string(), v.to_string()));
    }
    if let Some(o) = &found {
        conds.extend(
            o.tags
                .iter()
                .map(|(k, v)| (format!("s3:ExistingObjectTag/{k}"), v.clone())),
        );
    }
    let action = if sel.is_some() {
        version_action
    } else {
        action
    };
    s.authorize(ctx, action, &arn, Some(bucket), &conds)?;
    match found {
        Some(o) if o.delete_marker && sel.is_some() => Err(marker_error(&o, true)),
        Some(o) if !o.delete_marker => Ok(o),
        found => {
            s.authorize(
                ctx,
                "s3:ListBucket",
                &format!("arn:aws:s3:::{}", bucket.name),
                Some(bucket),
                &[],
            )
            .map_err(|_| access_denied("Access Denied"))?;
            if let Some(marker) = found {
                return Err(marker_error(&marker, false));
            }
            if sel.is_some() {
                return Err(no_such_version());
            }
            let mut e = s3_error!(NoSuchKey, "The specified key does not exist.");
            e.set_status_code(http::StatusCode::NOT_FOUND);
            Err(e)
        }
    }
}

/// The source of a copy (`s3:GetObject`, or `s3:GetObjectVersion` with a version id, which may
/// not name a delete marker).
pub(crate) fn copy_source(
    s: &Inner,
    ctx: &RequestContext,
    bucket: &Bucket,
    key: &str,
    version: Option<&str>,
) -> S3Result<Object> {
    readable_version(
        s,
        ctx,
        bucket,
        key,
        version,
        "s3:GetObject",
        "s3:GetObjectVersion",
        &[],
    )
    .map_err(|e| {
        if e.status_code() == Some(http::StatusCode::METHOD_NOT_ALLOWED) {
            s3_error!(
                InvalidRequest,
                "The source of a copy request may not specifically refer to a delete marker by version id."
            )
        } else {
            e
        }
    })
}

/// Conditional request headers (RFC 9110 as S3 applies them).
pub(crate) fn check_conditions(
    o: &Object,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let etag = ETag::Strong(o.etag.trim_matches('"').to_string());
    let modified = time::OffsetDateTime::from_unix_timestamp(o.last_modified)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let ts = |t: &Timestamp| time::OffsetDateTime::from(t.clone());
    let failed = || {
        let mut e = s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        );
        e.set_status_code(http::StatusCode::PRECONDITION_FAILED);
        e
    };
    let not_modified = || {
        let mut e = S3Error::new(s3s::S3ErrorCode::Custom("NotModified".into()));
        e.set_status_code(http::StatusCode::NOT_MODIFIED);
        e
    };
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.strong_cmp(&etag),
    };
    if let Some(c) = if_match {
        if !matches(c) {
            return Err(failed());
        }
    } else if let Some(t) = if_unmodified_since
        && modified > ts(t)
    {
        return Err(failed());
    }
    if let Some(c) = if_none_match {
        if matches(c) {
            return Err(not_modified());
        }
    } else if let Some(t) = if_modified_since
        && modified <= ts(t)
    {
        return Err(not_modified());
    }
    Ok(())
}

/// A new data key for an object or upload: SSE-S3 (wrapped by the root key, AAD bound to
/// `aad_id`) or SSE-KMS (from KMS as the caller, bound to the object's ARN).
/// Checks the name of an object about to be written. Keys are at most 1,024 bytes; Coffer also
/// refuses U+0000 in keys, because its store orders a key's versions after the key with a NUL
/// separator (and XML 1.0 listings could not carry it anyway).
pub(crate) fn check_new_key(key: &str) -> S3Result<()> {
    if key.is_empty() || key.len() > 1024 {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    if key.contains('\0') {
        return Err(s3_error!(
            InvalidArgument,
            "Object keys containing the character U+0000 are not supported."
        ));
    }
    Ok(())
}

/// The alias of the AWS managed key S3 uses when no key is named (users cannot create `alias/aws/…`).
pub(crate) const AWS_S3_KEY: &str = "alias/aws/s3";

pub(crate) fn new_data_key(
    s: &Inner,
    ctx: &RequestContext,
    sse: &SseChoice,
    aad_id: &str,
    object_arn: &str,
) -> S3Result<(Zeroizing<Vec<u8>>, Sse, Option<String>)> {
    match sse {
        SseChoice::S3 => {
            let mut dk = Zeroizing::new(vec![0u8; 32]);
            coffer_crypto::random_fill(&mut dk).map_err(|e| s3e(internal(e)))?;
            let wrapped = s
                .root_key
                .wrap(&sse_s3_aad(aad_id), &dk)
                .map_err(|e| s3e(internal(e)))?;
            Ok((
                dk,
                Sse::S3 {
                    wrapped_key: B64.encode(wrapped),
                    aad_id: Some(aad_id.to_string()),
                },
                None,
            ))
        }
        SseChoice::Customer(ck) => {
            let mut dk = Zeroizing::new(vec![0u8; 32]);
            coffer_crypto::random_fill(&mut dk).map_err(|e| s3e(internal(e)))?;
            let wrapper =
                coffer_crypto::RootKey::from_bytes(&ck.key).map_err(|e| s3e(internal(e)))?;
            let wrapped = wrapper
                .wrap(&sse_c_aad(aad_id), &dk)
                .map_err(|e| s3e(internal(e)))?;
            Ok((
                dk,
                Sse::Customer {
                    wrapped_key: B64.encode(wrapped),
                    key_md5: ck.md5.clone(),
                    aad_id: Some(aad_id.to_string()),
                },
                None,
            ))
        }
        SseChoice::Kms {
            key_id,
            bucket_key,
            client_context,
        } => {
            let mut ec = match client_context {
                Some(c) => client_context_pairs(c)?,
                None => vec![],
            };
            ec.retain(|(k, _)| k != "aws:s3:arn");
            let managed;
            let key_id = if key_id == AWS_S3_KEY {
                managed = s
                    .keys
                    .aws_managed_key(&via_s3(s, ctx), "s3")
                    .map_err(kms_error)?;
                &managed
            } else {
                key_id
            };
            if *bucket_key {
                let bucket_arn = object_arn.split_once('/').map_or(object_arn, |(b, _)| b);
                ec.push(("aws:s3:arn".to_string(), bucket_arn.to_string()));
                return bucket_data_key(s, ctx, key_id, ec, client_context.clone());
            }
            ec.push(("aws:s3:arn".to_string(), object_arn.to_string()));
            let dk = s
                .keys
                .generate_data_key(&via_s3(s, ctx), key_id, &ec)
                .map_err(kms_error)?;
            let arn = dk.key_arn.clone();
            Ok((
                dk.plaintext,
                Sse::Kms {
                    key_arn: dk.key_arn,
                    ciphertext: B64.encode(&dk.ciphertext),
                    context: ec,
                    bucket_key_enabled: false,
                    client_context: client_context.clone(),
                    bucket_key_salt: None,
                },
                Some(arn),
            ))
        }
    }
}

/// A bucket key obtained recently: reused (with the caller's authorization checked by KMS on
/// every request) for `BUCKET_KEY_CACHE_SECS`. Memory only; the plaintext is zeroized on drop.
pub(crate) struct CachedBucketKey {
    key_arn: String,
    ciphertext: Vec<u8>,
    plaintext: Zeroizing<Vec<u8>>,
    at: i64,
}

/// How long a bucket key stays in memory.
const BUCKET_KEY_CACHE_SECS: i64 = 300;
/// How long a stored bucket key is used before S3 asks KMS for a new one.
const BUCKET_KEY_MAX_AGE_SECS: i64 = 24 * 3600;
/// Most bucket keys kept in a bucket's record (one per key identifier and encryption context,
/// which callers choose): the oldest go first. Objects keep their own copy of the ciphertext, so
/// dropping a record only means the next PUT with that context asks KMS for a new bucket key.
const MAX_BUCKET_KEYS: usize = 32;
/// Most bucket keys kept in memory across buckets.
const MAX_CACHED_BUCKET_KEYS: usize = 1024;

/// A new object (or upload) data key under a bucket key: the bucket-level data key for
/// (`key_id`, `ec`) comes from memory (after KMS says the caller may `kms:GenerateDataKey`
/// under it), else from the bucket's record (opened by KMS as the caller), else from a new
/// `GenerateDataKey` as the caller, recorded in the bucket; the object's key is derived from
/// it with a random salt, so objects do not each ask KMS for a data key.
fn bucket_data_key(
    s: &Inner,
    ctx: &RequestContext,
    key_id: &str,
    ec: Vec<(String, String)>,
    client_context: Option<String>,
) -> S3Result<(Zeroizing<Vec<u8>>, Sse, Option<String>)> {
    let via = via_s3(s, ctx);
    let bucket_arn = ec
        .iter()
        .find(|(k, _)| k == "aws:s3:arn")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let bucket = bucket_arn.trim_start_matches("arn:aws:s3:::").to_string();
    let mut sorted = ec.clone();
    sorted.sort();
    let slot = format!("{bucket}\n{key_id}\n{sorted:?}");
    let now = s.now();
    let cached = {
        let cache = s.bucket_key_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&slot)
            .filter(|c| now - c.at < BUCKET_KEY_CACHE_SECS)
            .map(|c| (c.key_arn.clone(), c.ciphertext.clone(), c.plaintext.clone()))
    };
    let (key_arn, ciphertext, bucket_key) = match cached {
        Some(hit) => {
            s.keys
                .authorize_generate_data_key(&via, key_id, &ec)
                .map_err(kms_error)?;
            hit
        }
        None => {
            let b = s.bucket(&bucket)?;
            let mut sorted_ec = ec.clone();
            sorted_ec.sort();
            let record = b.bucket_keys.iter().find(|k| {
                let mut c = k.context.clone();
                c.sort();
                k.key_id == key_id && c == sorted_ec && now - k.created < BUCKET_KEY_MAX_AGE_SECS
            });
            let (arn, ct, pt) = match record {
                Some(r) => {
                    s.keys
                        .authorize_generate_data_key(&via, key_id, &ec)
                        .map_err(kms_error)?;
                    let ct = B64.decode(&r.ciphertext).map_err(|e| s3e(internal(e)))?;
                    let dk = s
                        .keys
                        .decrypt_data_key(&via, Some(&r.key_arn), &ct, &ec)
                        .map_err(kms_error)?;
                    (r.key_arn.clone(), ct, dk.plaintext)
                }
                None => {
                    let dk = s
                        .keys
                        .generate_data_key(&via, key_id, &ec)
                        .map_err(kms_error)?;
                    let rec = crate::model::BucketKey {
                        key_id: key_id.to_string(),
                        key_arn: dk.key_arn.clone(),
                        ciphertext: B64.encode(&dk.ciphertext),
                        context: ec.clone(),
                        created: now,
                    };
                    s.update_bucket(&bucket, |b| {
                        b.bucket_keys.retain(|k| {
                            let mut c = k.context.clone();
                            c.sort();
                            !(k.key_id == rec.key_id && c == sorted_ec)
                                && now - k.created < BUCKET_KEY_MAX_AGE_SECS
                        });
                        b.bucket_keys.push(rec.clone());
                        if b.bucket_keys.len() > MAX_BUCKET_KEYS {
                            b.bucket_keys.sort_by_key(|k| k.created);
                            let excess = b.bucket_keys.len() - MAX_BUCKET_KEYS;
                            b.bucket_keys.drain(..excess);
                        }
                    })?;
                    (dk.key_arn, dk.ciphertext, dk.plaintext)
                }
            };
            let mut cache = s.bucket_key_cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= MAX_CACHED_BUCKET_KEYS {
                cache.retain(|_, c| now - c.at < BUCKET_KEY_CACHE_SECS);
                if cache.len() >= MAX_CACHED_BUCKET_KEYS {
                    cache.clear();
                }
            }
            cache.insert(
                slot,
                CachedBucketKey {
                    key_arn: arn.clone(),
                    ciphertext: ct.clone(),
                    plaintext: pt.clone(),
                    at: now,
                },
            );
            (arn, ct, pt)
        }
    };
    let mut salt = [0u8; 32];
    coffer_crypto::random_fill(&mut salt).map_err(|e| s3e(internal(e)))?;
    let dk = derive_object_key(&bucket_key, &salt)?;
    Ok((
        dk,
        Sse::Kms {
            key_arn: key_arn.clone(),
            ciphertext: B64.encode(&ciphertext),
            context: ec,
            bucket_key_enabled: true,
            client_context,
            bucket_key_salt: Some(B64.encode(salt)),
        },
        Some(key_arn),
    ))
}

/// The object's data key from a bucket key and the object's salt.
fn derive_object_key(bucket_key: &[u8], salt: &[u8]) -> S3Result<Zeroizing<Vec<u8>>> {
    hkdf_sha256_32(bucket_key, salt, b"coffer-s3-bucket-key-v1")
        .ok_or_else(|| s3e(internal("hmac")))
}

/// HKDF-SHA256 (RFC 5869) with a 32-byte output: T(1) = HMAC(HMAC(salt, ikm), info | 0x01).
fn hkdf_sha256_32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let prk = Zeroizing::new(coffer_crypto::hmac(256, salt, ikm)?);
    let mut msg = info.to_vec();
    msg.push(1);
    coffer_crypto::hmac(256, &prk, &msg).map(Zeroizing::new)
}

/// An SSE-C object needs its key (400 without, 403 with another); other objects refuse one.
pub(crate) fn check_customer(sse: &Sse, customer: Option<&CustomerKey>) -> S3Result<()> {
    match (sse, customer) {
        (Sse::Customer { key_md5, .. }, Some(ck)) => {
            if coffer_crypto::ct_eq(key_md5.as_bytes(), ck.md5.as_bytes()) {
                Ok(())
            } else {
                Err(access_denied(
                    "The SSE-C key provided does not match the key the object was encrypted with.",
                ))
            }
        }
        (Sse::Customer { .. }, None) => Err(s3_error!(
            InvalidRequest,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
        )),
        (_, Some(_)) => Err(s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object."
        )),
        (_, None) => Ok(()),
    }
}

/// Opens a data key as the caller (`kms:Decrypt` for SSE-KMS). `blob_id` is the AAD id of
/// SSE-S3 keys stored before `aad_id` existed.
pub(crate) fn open_data_key(
    s: &Inner,
    ctx: &RequestContext,
    sse: &Sse,
    blob_id: &str,
    customer: Option<&CustomerKey>,
) -> S3Result<Zeroizing<Vec<u8>>> {
    check_customer(sse, customer)?;
    match sse {
        Sse::Customer {
            wrapped_key,
            aad_id,
            ..
        } => {
            let ck = customer.ok_or_else(|| s3e(internal("checked above")))?;
            let w = B64.decode(wrapped_key).map_err(|e| s3e(internal(e)))?;
            let wrapper =
                coffer_crypto::RootKey::from_bytes(&ck.key).map_err(|e| s3e(internal(e)))?;
            let aad = sse_c_aad(aad_id.as_deref().unwrap_or(blob_id));
            wrapper.unwrap(&aad, &w).map_err(|_| {
                access_denied(
                    "The SSE-C key provided does not match the key the object was encrypted with.",
                )
            })
        }
        Sse::S3 {
            wrapped_key,
            aad_id,
        } => {
            let w = B64.decode(wrapped_key).map_err(|e| s3e(internal(e)))?;
            s.root_key
                .unwrap(&sse_s3_aad(aad_id.as_deref().unwrap_or(blob_id)), &w)
                .map_err(|e| s3e(internal(e)))
        }
        Sse::Kms {
            key_arn,
            ciphertext,
            context,
            bucket_key_salt,
            ..
        } => {
            let ct = B64.decode(ciphertext).map_err(|e| s3e(internal(e)))?;
            let key = s
                .keys
                .decrypt_data_key(&via_s3(s, ctx), Some(key_arn), &ct, context)
                .map_err(kms_error)?
                .plaintext;
            match bucket_key_salt {
                None => Ok(key),
                Some(salt) => {
                    let salt = B64.decode(salt).map_err(|e| s3e(internal(e)))?;
                    derive_object_key(&key, &salt)
                }
            }
        }
    }
}

pub(crate) async fn get_object(
    s: &Inner,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let i = &req.input;
    let o = read_checked(
        s,
        &ctx,
        &bucket,
        &i.key,
        i.version_id.as_deref(),
        Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        },
    )?;
    if i.part_number.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "GetObject with partNumber is not supported by Coffer yet."
        ));
    }
    let ck = customer_key(
        s,
        ctx.secure_transport,
        i.sse_customer_algorithm.as_ref(),
        i.sse_customer_key.as_ref(),
        i.sse_customer_key_md5.as_ref(),
    )?;
    let dk = open_data_key(s, &ctx, &o.sse, &o.blob_id, ck.as_ref())?;
    let range = match &i.range {
        None => None,
        Some(r) => Some(r.check(o.size).map_err(|_| {
            let mut e = s3_error!(InvalidRange, "The requested range is not satisfiable");
            e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            e
        })?),
    };
    let (start, end) = match &range {
        Some(r) => (r.start, r.end),
        None => (0, o.size),
    };
    let body = stream_plaintext(s, &o, dk, start, end)?;
    let mut out = GetObjectOutput {
        body: Some(body),
        content_length: Some((end - start) as i64),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(o.etag.trim_matches('"').to_string())),
        last_modified: Some(timestamp(o.last_modified)),
        content_type: i
            .response_content_type
            .clone()
            .or(o.content_type.clone())
            .or_else(|| Some("binary/octet-stream".to_string()))
            .and_then(|c| c.parse().ok()),
        content_encoding: i
            .response_content_encoding
            .clone()
            .or(o.content_encoding.clone()),
        content_disposition: i
            .response_content_disposition
            .clone()
            .or(o.content_disposition.clone()),
        content_language: i
            .response_content_language
            .clone()
            .or(o.content_language.clone()),
        cache_control: i.response_cache_control.clone().or(o.cache_control.clone()),
        metadata: (!o.metadata.is_empty()).then(|| o.metadata.iter().cloned().collect()),
        tag_count: (!o.tags.is_empty()).then_some(o.tags.len() as i32),
        version_id: reported_version(&bucket, &o),
        ..Default::default()
    };
    if range.is_some() {
        out.content_range = Some(format!(
            "bytes {}-{}/{}",
            start,
            end.saturating_sub(1),
            o.size
        ));
    }
    set_sse_out(
        &o.sse,
        None,
        &mut out.server_side_encryption,
        &mut out.ssekms_key_id,
        &mut out.bucket_key_enabled,
    );
    set_sse_c_out(
        &o.sse,
        &mut out.sse_customer_algorithm,
        &mut out.sse_customer_key_md5,
    );
    if checksum_mode_enabled(i.checksum_mode.as_ref())? && range.is_none() {
        set_checksums!(out, &o.checksums);
        out.checksum_type = checksum_type_of(&o);
    }
    Ok(if range.is_some() {
        S3Response::with_status(out, http::StatusCode::PARTIAL_CONTENT)
    } else {
        S3Response::new(out)
    })
}

/// Streams plaintext bytes `start..end` of an object: a blocking reader decrypts only the
/// segments (of the blobs, for multipart objects) that cover the range and hands them over a
/// bounded channel (memory: a few segments). A segment that fails authentication ends the stream
/// with an error: never wrong bytes.
pub(crate) fn stream_plaintext(
    s: &Inner,
    o: &Object,
    dk: Zeroizing<Vec<u8>>,
    start: u64,
    end: u64,
) -> S3Result<StreamingBlob> {
    if let Some(ct) = &o.inline {
        return inline_plaintext(o, ct, &dk, start, end);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    // The blobs overlapping the range, and the range within each. They are opened one at a time
    // as the stream reaches them (a 10,000-part object holds one file open, not 10,000); the
    // first is opened here, so that a missing blob is an error before the response starts.
    let mut plan: Vec<(String, u64, u64, u64)> = vec![];
    let mut offset = 0u64;
    for b in o.blobs() {
        let (b_start, b_end) = (offset, offset + b.size);
        offset = b_end;
        if b_end <= start || b_start >= end || b.size == 0 {
            continue;
        }
        let (from, to) = (start.max(b_start) - b_start, end.min(b_end) - b_start);
        plan.push((b.blob_id.clone(), b.size, from, to));
    }
    let blobs = s.blobs.clone();
    let seg_size = o.segment_size;
    let first = match plan.first() {
        Some((id, size, from, to)) => Some(
            open_range(&*blobs, &dk, seg_size, id, *size, *from, *to)
                .map_err(|e| s3e(internal(e)))?,
        ),
        None => None,
    };
    tokio::task::spawn_blocking(move || {
        let mut first = first;
        for (id, size, start, end) in plan {
            let opened = match first.take() {
                Some(o) => Ok(o),
                None => open_range(&*blobs, &dk, seg_size, &id, size, start, end),
            };
            let (mut f, dec, layout, segments) = match opened {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "an object's blob could not be opened");
                    let _ = tx.blocking_send(Err(std::io::Error::other("object data unavailable")));
                    return;
                }
            };
            let seg = layout.segment_size as u64;
            let mut buf = vec![0u8; layout.segment_size + segment::TAG_LEN];
            for i in segments {
                let n = layout.segment_ct_len(i);
                let item = f.read_exact(&mut buf[..n]).and_then(|_| {
                    dec.open_segment(i, i + 1 == layout.segments(), &mut buf[..n])
                        .map(|pt| {
                            let seg_start = i * seg;
                            let from = start.saturating_sub(seg_start) as usize;
                            let to = ((end - seg_start).min(pt.len() as u64)) as usize;
                            Bytes::copy_from_slice(&pt[from..to])
                        })
                        .map_err(|_| {
                            tracing::warn!(
                                segment = i,
                                "stored object data failed authentication: refusing to serve it"
                            );
                            std::io::Error::other("object data failed authentication")
                        })
                });
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    Ok(StreamingBlob::wrap(stream))
}

/// Opens one blob of an object for reading plaintext bytes `from..to` of it: the reader
/// positioned at the first segment needed, its decryptor, its layout and the segments to read.
#[allow(clippy::type_complexity)]
fn open_range(
    blobs: &dyn coffer_store::BlobStore,
    dk: &[u8],
    segment_size: usize,
    blob_id: &str,
    size: u64,
    from: u64,
    to: u64,
) -> Result<
    (
        Box<dyn Read + Send>,
        Decryptor,
        Layout,
        std::ops::RangeInclusive<u64>,
    ),
    String,
> {
    let mut header = [0u8; segment::HEADER_LEN];
    blobs
        .open(blob_id, 0)
        .and_then(|mut f| f.read_exact(&mut header).map_err(Into::into))
        .map_err(|e| e.to_string())?;
    let dec = Decryptor::new(dk, blob_id.as_bytes(), &header).map_err(|e| e.to_string())?;
    // Version-1 blobs do not authenticate their header's segment size: hold it to the record's.
    if dec.segment_size() != segment_size {
        return Err(format!(
            "blob {blob_id}: segment size {} where {segment_size} was written",
            dec.segment_size()
        ));
    }
    let layout = Layout {
        segment_size: dec.segment_size(),
        plaintext_len: size,
    };
    let segments = layout.segments_for(from, to - 1);
    let f = blobs
        .open(blob_id, layout.segment_offset(*segments.start()))
        .map_err(|e| e.to_string())?;
    Ok((f, dec, layout, segments))
}

/// Plaintext bytes `start..end` of an object kept inline (small: decrypted at once, only the
/// segments the range covers).
fn inline_plaintext(
    o: &Object,
    ct_b64: &str,
    dk: &[u8],
    start: u64,
    end: u64,
) -> S3Result<StreamingBlob> {
    let mut ct = B64.decode(ct_b64).map_err(|e| s3e(internal(e)))?;
    let dec = Decryptor::new(dk, o.blob_id.as_bytes(), &ct).map_err(|e| s3e(internal(e)))?;
    if dec.segment_size() != o.segment_size {
        return Err(s3e(internal(
            "inline object: segment size differs from its record",
        )));
    }
    let layout = Layout {
        segment_size: dec.segment_size(),
        plaintext_len: o.size,
    };
    let mut out = Vec::with_capacity((end - start) as usize);
    if start < end {
        let seg = layout.segment_size as u64;
        for i in layout.segments_for(start, end - 1) {
            let off = layout.segment_offset(i) as usize;
            let n = layout.segment_ct_len(i);
            let buf = ct
                .get_mut(off..off + n)
                .ok_or_else(|| s3e(internal("inline object truncated")))?;
            let pt = dec
                .open_segment(i, i + 1 == layout.segments(), buf)
                .map_err(|_| {
                    tracing::warn!(
                        segment = i,
                        "stored object data failed authentication: refusing to serve it"
                    );
                    s3e(internal("object data failed authentication"))
                })?;
            let seg_start = i * seg;
            let from = start.saturating_sub(seg_start) as usize;
            let to = ((end - seg_start).min(pt.len() as u64)) as usize;
            out.extend_from_slice(&pt[from..to]);
        }
    }
    let item: Result<Bytes, std::io::Error> = Ok(Bytes::from(out));
    Ok(StreamingBlob::wrap(futures::stream::iter([item])))
}

/// A GET or HEAD's conditional headers.
struct Conditions<'a> {
    if_match: Option<&'a s3s::dto::IfMatch>,
    if_none_match: Option<&'a s3s::dto::IfNoneMatch>,
    if_modified_since: Option<&'a s3s::dto::IfModifiedSince>,
    if_unmodified_since: Option<&'a s3s::dto::IfUnmodifiedSince>,
}

/// The object (or version) a GET or HEAD reads, authorized (`s3:GetObject`, or
/// `s3:GetObjectVersion` with a version id) and checked against the conditional headers.
fn read_checked(
    s: &Inner,
    ctx: &RequestContext,
    bucket: &Bucket,
    key: &str,
    version: Option<&str>,
    c: Conditions<'_>,
) -> S3Result<Object> {
    let o = readable_version(
        s,
        ctx,
        bucket,
        key,
        version,
        "s3:GetObject",
        "s3:GetObjectVersion",
        &[],
    )?;
    check_conditions(
        &o,
        c.if_match,
        c.if_none_match,
        c.if_modified_since,
        c.if_unmodified_since,
    )?;
    Ok(o)
}

pub(crate) async fn head_object(
    s: &Inner,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let i = &req.input;
    let o = read_checked(
        s,
        &ctx,
        &bucket,
        &i.key,
        i.version_id.as_deref(),
        Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        },
    )?;
    let ck = customer_key(
        s,
        ctx.secure_transport,
        i.sse_customer_algorithm.as_ref(),
        i.sse_customer_key.as_ref(),
        i.sse_customer_key_md5.as_ref(),
    )?;
    check_customer(&o.sse, ck.as_ref())?;
    let with_checksums =
        checksum_mode_enabled(i.checksum_mode.as_ref())? && !o.checksums.is_empty();
    if with_checksums && matches!(o.sse, Sse::Kms { .. }) {
        // HEAD with x-amz-checksum-mode needs kms:Decrypt as the caller (the checksum is
        // protected with the object's data key on AWS).
        drop(open_data_key(s, &ctx, &o.sse, &o.blob_id, None)?);
    }
    let mut out = HeadObjectOutput {
        content_length: Some(o.size as i64),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(ETag::Strong(o.etag.trim_matches('"').to_string())),
        last_modified: Some(timestamp(o.last_modified)),
        content_type: o
            .content_type
            .clone()
            .or_else(|| Some("binary/octet-stream".to_string()))
            .and_then(|c| c.parse().ok()),
        content_encoding: o.content_encoding.clone(),
        content_disposition: o.content_disposition.clone(),
        content_language: o.content_language.clone(),
        cache_control: o.cache_control.clone(),
        metadata: (!o.metadata.is_empty()).then(|| o.metadata.iter().cloned().collect()),
        version_id: reported_version(&bucket, &o),
        ..Default::default()
    };
    set_sse_out(
        &o.sse,
        None,
        &mut out.server_side_encryption,
        &mut out.ssekms_key_id,
        &mut out.bucket_key_enabled,
    );
    set_sse_c_out(
        &o.sse,
        &mut out.sse_customer_algorithm,
        &mut out.sse_customer_key_md5,
    );
    if with_checksums {
        set_checksums!(out, &o.checksums);
        out.checksum_type = checksum_type_of(&o);
    }
    Ok(S3Response::new(out))
}

/// `x-amz-checksum-mode`: only `ENABLED` is valid.
fn checksum_mode_enabled(mode: Option<&ChecksumMode>) -> S3Result<bool> {
    match mode.map(|m| m.as_str()) {
        None => Ok(false),
        Some("ENABLED") => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidRequest,
            "Value for x-amz-checksum-mode header is invalid."
        )),
    }
}

/// `x-amz-checksum-type` of an object with checksums: `COMPOSITE` for composite multipart
/// checksums, else `FULL_OBJECT`.
pub(crate) fn checksum_type_of(o: &Object) -> Option<ChecksumType> {
    (!o.checksums.is_empty()).then(|| {
        ChecksumType::from(
            o.checksum_type
                .clone()
                .unwrap_or_else(|| crate::checksum::FULL_OBJECT.to_string()),
        )
    })
}

pub(crate) async fn delete_object(
    s: &Inner,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let key = req.input.key.clone();
    let sel = req
        .input
        .version_id
        .as_deref()
        .map(parse_version_id)
        .transpose()?;
    s.authorize(
        &ctx,
        if sel.is_some() {
            "s3:DeleteObjectVersion"
        } else {
            "s3:DeleteObject"
        },
        &Inner::object_arn(&bucket.name, &key),
        Some(&bucket),
        &[],
    )?;
    let d = delete_one(s, &bucket.name, &key, sel.as_ref())?;
    Ok(S3Response::with_status(
        DeleteObjectOutput {
            delete_marker: d.delete_marker.then_some(true),
            version_id: d.version_id,
            ..Default::default()
        },
        http::StatusCode::NO_CONTENT,
    ))
}

/// One page of a listing.
struct Listing {
    contents: Vec<Object>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Where the next page starts (after this key).
    next: Option<String>,
}

fn list(
    s: &Inner,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> S3Result<Listing> {
    let row_prefix = format!("{bucket}/{prefix}");
    let mut cursor = after.map(|a| format!("{bucket}/{a}"));
    let mut l = Listing {
        contents: vec![],
        prefixes: vec![],
        truncated: false,
        next: None,
    };
    if max == 0 {
        return Ok(l);
    }
    // Rows one request may read: delete markers are skipped, and a key space full of them must
    // not make one request read without bound. Past this a page ends early (truncated, resuming
    // after the last row read), as S3 allows.
    let budget = max.saturating_mul(10).max(1000);
    let mut scanned = 0usize;
    loop {
        let rows: Vec<(String, Object)> =
            scan_json(&*s.store, NS_OBJECT, &row_prefix, cursor.as_deref(), 1000)
                .map_err(|e| s3e(internal(e)))?;
        if rows.is_empty() {
            return Ok(l);
        }
        for (row, o) in rows {
            cursor = Some(row);
            scanned += 1;
            // A key whose current version is a delete marker is not listed.
            if o.delete_marker {
                if scanned >= budget {
                    l.truncated = true;
                    l.next = Some(o.key.clone());
                    return Ok(l);
                }
                continue;
            }
            let rest = &o.key[prefix.len()..];
            let common = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                rest.find(d)
                    .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
            });
            // A common prefix already returned on this page, or at or before the marker it
            // resumes from (ListObjects gives the prefix itself as NextMarker), is not repeated.
            if let Some(cp) = &common
                && (l.prefixes.last() == Some(cp) || after.is_some_and(|a| cp.as_str() <= a))
            {
                cursor = Some(format!("{bucket}/{cp}\u{10FFFF}"));
                continue;
            }
            if l.contents.len() + l.prefixes.len() == max {
                l.truncated = true;
                return Ok(l);
            }
            match common {
                Some(cp) => {
                    // Skip every other key under this common prefix.
                    cursor = Some(format!("{bucket}/{cp}\u{10FFFF}"));
                    l.next = Some(format!("{cp}\u{10FFFF}"));
                    l.prefixes.push(cp);
                }
                None => {
                    l.next = Some(o.key.clone());
                    l.contents.push(o);
                }
            }
        }
    }
}

/// `encoding-type=url`: keys as S3 encodes them (RFC 3986, `/` kept).
pub(crate) fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn to_objects(contents: &[Object], owner: Option<Owner>, url: bool) -> Vec<s3s::dto::Object> {
    contents
        .iter()
        .map(|o| s3s::dto::Object {
            key: Some(if url {
                url_encode(&o.key)
            } else {
                o.key.clone()
            }),
            size: Some(o.size as i64),
            e_tag: Some(ETag::Strong(o.etag.trim_matches('"').to_string())),
            last_modified: Some(timestamp(o.last_modified)),
            storage_class: Some(ObjectStorageClass::from("STANDARD".to_string())),
            owner: owner.clone(),
            ..Default::default()
        })
        .collect()
}

pub(crate) fn list_conditions(
    prefix: &str,
    delimiter: Option<&str>,
    max: i32,
) -> Vec<(String, String)> {
    let mut v = vec![
        ("s3:prefix".to_string(), prefix.to_string()),
        ("s3:max-keys".to_string(), max.to_string()),
    ];
    if let Some(d) = delimiter {
        v.push(("s3:delimiter".to_string(), d.to_string()));
    }
    v
}

pub(crate) fn check_max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "Provided max-keys not an integer or within integer range"
        )),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

pub(crate) async fn list_objects_v2(
    s: &Inner,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let i = &req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let max = check_max_keys(i.max_keys)?;
    let extra = list_conditions(&prefix, i.delimiter.as_deref(), max as i32);
    s.authorize(
        &ctx,
        "s3:ListBucket",
        &format!("arn:aws:s3:::{}", bucket.name),
        Some(&bucket),
        &extra,
    )?;
    let after = match (&i.continuation_token, &i.start_after) {
        (Some(t), _) => Some(decode_token(t)?),
        (None, Some(a)) => Some(a.clone()),
        _ => None,
    };
    let l = list(
        s,
        &bucket.name,
        &prefix,
        i.delimiter.as_deref(),
        after.as_deref(),
        max,
    )?;
    let url = i
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == "url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let owner = i
        .fetch_owner
        .unwrap_or(false)
        .then(|| crate::principal_owner(&ctx.principal));
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(bucket.name.clone()),
        prefix: Some(enc(&prefix)),
        max_keys: Some(max as i32),
        key_count: Some((l.contents.len() + l.prefixes.len()) as i32),
        continuation_token: i.continuation_token.clone(),
        is_truncated: Some(l.truncated),
        next_continuation_token: if l.truncated {
            l.next.as_deref().map(encode_token)
        } else {
            None
        },
        contents: (!l.contents.is_empty()).then(|| to_objects(&l.contents, owner, url)),
        common_prefixes: (!l.prefixes.is_empty()).then(|| {
            l.prefixes
                .iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect()
        }),
        delimiter: i.delimiter.as_deref().map(enc),
        encoding_type: i.encoding_type.clone(),
        start_after: i.start_after.as_deref().map(enc),
        ..Default::default()
    }))
}

pub(crate) async fn list_objects(
    s: &Inner,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let i = &req.input;
    let prefix = i.prefix.clone().unwrap_or_default();
    let max = check_max_keys(i.max_keys)?;
    let extra = list_conditions(&prefix, i.delimiter.as_deref(), max as i32);
    s.authorize(
        &ctx,
        "s3:ListBucket",
        &format!("arn:aws:s3:::{}", bucket.name),
        Some(&bucket),
        &extra,
    )?;
    let l = list(
        s,
        &bucket.name,
        &prefix,
        i.delimiter.as_deref(),
        i.marker.as_deref(),
        max,
    )?;
    let url = i
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == "url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let owner = Some(crate::principal_owner(&ctx.principal));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(bucket.name.clone()),
        prefix: Some(enc(&prefix)),
        marker: Some(i.marker.clone().unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(l.truncated),
        // Clients take the next marker from the last key, unless NextMarker is given: a page
        // cut short among delete markers may have no key, so it always names where to resume.
        next_marker: if l.truncated && (i.delimiter.is_some() || l.contents.is_empty()) {
            l.next
                .as_deref()
                .map(|n| enc(n.trim_end_matches('\u{10FFFF}')))
        } else {
            None
        },
        contents: (!l.contents.is_empty()).then(|| to_objects(&l.contents, owner, url)),
        common_prefixes: (!l.prefixes.is_empty()).then(|| {
            l.prefixes
                .iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc(p)),
                })
                .collect()
        }),
        delimiter: i.delimiter.as_deref().map(enc),
        encoding_type: i.encoding_type.clone(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        let okm = super::hkdf_sha256_32(
            &[0x0b; 22],
            &hex::decode("000102030405060708090a0b0c").unwrap(),
            &hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap(),
        )
        .unwrap();
        // the first 32 bytes of the RFC's 42-byte OKM
        assert_eq!(
            hex::encode(&*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }
}
