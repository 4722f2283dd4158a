//! Multipart uploads: every part is its own encrypted blob under the upload's data key;
//! CompleteMultipartUpload makes an object of the chosen parts, atomically.

use crate::model::{
    NS_PART, NS_UPLOAD, NS_UPLOAD_BY_KEY, Object, Part, PartBlob, Upload, part_key,
    upload_index_key, upload_key,
};
use crate::objects::{
    BodyIn, CHECKSUM_ALGS, CustomerKey, Ingested, check_conditions, customer_key, ingest,
    new_data_key, open_data_key, set_sse_c_out, set_sse_out, stream_plaintext,
};
use crate::{Inner, internal, principal_owner, s3e, timestamp};
use coffer_core::ServiceError;
use coffer_store::{Txn, get_json, put_json, scan_json};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Every part but the last must be at least 5 MiB.
const MIN_PART: u64 = 5 << 20;
const MAX_PARTS: i32 = 10_000;

fn no_such_upload() -> s3s::S3Error {
    let mut e = s3_error!(
        NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

fn load_upload(s: &Inner, bucket: &str, upload_id: &str, key: &str) -> S3Result<Upload> {
    get_json::<Upload>(&*s.store, NS_UPLOAD, &upload_key(bucket, upload_id, key))
        .map_err(|e| s3e(internal(e)))?
        .ok_or_else(no_such_upload)
}

/// Writes an upload's record with its index row.
fn put_upload(t: &mut dyn Txn, up: &Upload) -> Result<(), ServiceError> {
    let row = upload_key(&up.bucket, &up.id, &up.key);
    put_json(t, NS_UPLOAD, &row, up).map_err(internal)?;
    t.put(NS_UPLOAD_BY_KEY, &upload_index_key(up), row.as_bytes())
        .map_err(internal)
}

/// Deletes an upload's record, its index row and its parts' rows, all read in `t`; returns the
/// parts that were there (their blobs go once `t` commits), or `None` if the upload is gone.
pub(crate) fn delete_upload(
    t: &mut dyn Txn,
    up: &Upload,
) -> Result<Option<Vec<Part>>, ServiceError> {
    let row = upload_key(&up.bucket, &up.id, &up.key);
    if !t.delete(NS_UPLOAD, &row).map_err(internal)? {
        return Ok(None);
    }
    t.delete(NS_UPLOAD_BY_KEY, &upload_index_key(up))
        .map_err(internal)?;
    let parts: Vec<(String, Part)> =
        scan_json(&*t, NS_PART, &format!("{}/", up.id), None, usize::MAX).map_err(internal)?;
    for (part_row, _) in &parts {
        t.delete(NS_PART, part_row).map_err(internal)?;
    }
    Ok(Some(parts.into_iter().map(|(_, p)| p).collect()))
}

/// Writes the index row of every upload that lacks one (uploads made before the index existed);
/// run at start. Returns how many were added.
pub(crate) fn index_uploads(s: &Inner) -> Result<usize, ServiceError> {
    let mut added = 0;
    let mut after: Option<String> = None;
    loop {
        let rows: Vec<(String, Upload)> =
            scan_json(&*s.store, NS_UPLOAD, "", after.as_deref(), 500).map_err(internal)?;
        let Some((last, _)) = rows.last() else { break };
        after = Some(last.clone());
        let missing: Vec<(String, String)> = rows
            .iter()
            .map(|(row, up)| (row.clone(), upload_index_key(up)))
            .filter(|(_, ix)| s.store.get(NS_UPLOAD_BY_KEY, ix).ok().flatten().is_none())
            .collect();
        if !missing.is_empty() {
            coffer_store::transact(&*s.store, internal, |t| {
                for (row, ix) in &missing {
                    t.put(NS_UPLOAD_BY_KEY, ix, row.as_bytes())
                        .map_err(internal)?;
                }
                Ok(())
            })?;
            added += missing.len();
        }
    }
    Ok(added)
}

fn parts_of(s: &Inner, upload_id: &str) -> S3Result<Vec<Part>> {
    let rows: Vec<(String, Part)> = scan_json(
        &*s.store,
        NS_PART,
        &format!("{upload_id}/"),
        None,
        usize::MAX,
    )
    .map_err(|e| s3e(internal(e)))?;
    Ok(rows.into_iter().map(|(_, p)| p).collect())
}

pub(crate) async fn create(
    s: &Inner,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let i = &req.input;
    let key = i.key.clone();
    crate::objects::check_new_key(&key)?;
    let arn = Inner::object_arn(&bucket.name, &key);
    let (sse, extra) = sse_of_request!(s, &ctx, &bucket, i);
    let tags = match &i.tagging {
        Some(h) => crate::tagging::parse_tagging_header(h)?,
        None => vec![],
    };
    s.authorize(&ctx, "s3:PutObject", &arn, Some(&bucket), &extra)?;
    if !tags.is_empty() {
        s.authorize(&ctx, "s3:PutObjectTagging", &arn, Some(&bucket), &extra)?;
    }
    let mode = crate::checksum::upload_mode(
        i.checksum_algorithm.as_ref().map(|a| a.as_str()),
        i.checksum_type.as_ref().map(|t| t.as_str()),
    )?;
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let (_dk, stored, kms_arn) = new_data_key(s, &ctx, &sse, &upload_id, &arn)?;
    let up = Upload {
        initiated_us: crate::versions::now_micros(s),
        id: upload_id.clone(),
        bucket: bucket.name.clone(),
        key: key.clone(),
        initiated: s.now(),
        initiator_arn: ctx.principal.arn.clone(),
        sse: stored.clone(),
        content_type: i.content_type.as_ref().map(|c| c.to_string()),
        content_encoding: i.content_encoding.clone(),
        content_disposition: i.content_disposition.clone(),
        content_language: i.content_language.clone(),
        cache_control: i.cache_control.clone(),
        metadata: i
            .metadata
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        checksum_algorithm: mode.as_ref().map(|(a, _)| a.clone()),
        checksum_type: mode.as_ref().map(|(_, t)| t.clone()),
        tags,
    };
    s.tx(|t| put_upload(t, &up))?;
    let mut out = CreateMultipartUploadOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(key),
        upload_id: Some(upload_id),
        checksum_algorithm: mode
            .as_ref()
            .map(|(a, _)| ChecksumAlgorithm::from(a.clone())),
        checksum_type: mode.as_ref().map(|(_, t)| ChecksumType::from(t.clone())),
        ..Default::default()
    };
    set_sse_out(
        &stored,
        kms_arn.as_deref(),
        &mut out.server_side_encryption,
        &mut out.ssekms_key_id,
        &mut out.bucket_key_enabled,
    );
    set_sse_c_out(
        &stored,
        &mut out.sse_customer_algorithm,
        &mut out.sse_customer_key_md5,
    );
    if let crate::model::Sse::Kms {
        client_context: Some(c),
        ..
    } = &stored
    {
        out.ssekms_encryption_context = Some(c.clone());
    }
    Ok(S3Response::new(out))
}

/// The upload's data key for UploadPart / UploadPartCopy (`kms:Decrypt` as the caller for
/// SSE-KMS): an SSE-C upload needs the customer key it was created with, on every part.
fn part_data_key(
    s: &Inner,
    ctx: &coffer_core::RequestContext,
    up: &Upload,
    ck: Option<&CustomerKey>,
) -> S3Result<zeroize::Zeroizing<Vec<u8>>> {
    check_upload_customer_key(up, ck, true)?;
    open_data_key(s, ctx, &up.sse, &up.id, ck)
}

/// An SSE-C upload's customer key on a request about it: `required` on parts (S3's texts); on
/// Complete and ListParts only when the upload has checksums. A key that is not the upload's is
/// refused; a key for an upload that is not SSE-C too.
fn check_upload_customer_key(
    up: &Upload,
    ck: Option<&CustomerKey>,
    required: bool,
) -> S3Result<()> {
    match (&up.sse, ck) {
        (crate::model::Sse::Customer { key_md5, .. }, Some(k)) => {
            if coffer_crypto::ct_eq(key_md5.as_bytes(), k.md5.as_bytes()) {
                Ok(())
            } else {
                Err(s3_error!(
                    InvalidRequest,
                    "The provided encryption parameters did not match the ones used originally."
                ))
            }
        }
        (crate::model::Sse::Customer { .. }, None) if required => Err(s3_error!(
            InvalidRequest,
            "The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters."
        )),
        (crate::model::Sse::Customer { .. }, None) if up.checksum_algorithm.is_some() => {
            Err(s3_error!(
                InvalidRequest,
                "To retrieve Part Checksum data requests must include appropriate encryption parameters."
            ))
        }
        (crate::model::Sse::Customer { .. }, None) => Ok(()),
        (_, Some(_)) => Err(s3_error!(
            InvalidRequest,
            "The encryption parameters are not applicable to this object."
        )),
        (_, None) => Ok(()),
    }
}

/// The start of every request on an existing upload (UploadPart, Complete, ListParts): `action`
/// authorized on the object, the upload loaded, and the request's SSE-C key read, if any.
fn upload_request(
    s: &Inner,
    ctx: &coffer_core::RequestContext,
    bucket: &crate::model::Bucket,
    key: &str,
    upload_id: &str,
    action: &str,
    sse_c: (
        Option<&SSECustomerAlgorithm>,
        Option<&String>,
        Option<&String>,
    ),
) -> S3Result<(Upload, Option<CustomerKey>)> {
    s.authorize(
        ctx,
        action,
        &Inner::object_arn(&bucket.name, key),
        Some(bucket),
        &[],
    )?;
    let up = load_upload(s, &bucket.name, upload_id, key)?;
    let ck = customer_key(s, ctx.secure_transport, sse_c.0, sse_c.1, sse_c.2)?;
    Ok((up, ck))
}

/// Complete and ListParts: `kms:Decrypt` as the caller for SSE-KMS uploads; the customer key of
/// SSE-C uploads when given (or needed).
fn check_upload_access(
    s: &Inner,
    ctx: &coffer_core::RequestContext,
    up: &Upload,
    ck: Option<&CustomerKey>,
) -> S3Result<()> {
    check_upload_customer_key(up, ck, false)?;
    match (&up.sse, ck) {
        (crate::model::Sse::Customer { .. }, None) => Ok(()),
        _ => open_data_key(s, ctx, &up.sse, &up.id, ck).map(drop),
    }
}

pub(crate) async fn upload_part(
    s: &Inner,
    mut req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let number = req.input.part_number;
    if !(1..=MAX_PARTS).contains(&number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let key = req.input.key.clone();
    let (up, ck) = upload_request(
        s,
        &ctx,
        &bucket,
        &key,
        &req.input.upload_id,
        "s3:PutObject",
        (
            req.input.sse_customer_algorithm.as_ref(),
            req.input.sse_customer_key.as_ref(),
            req.input.sse_customer_key_md5.as_ref(),
        ),
    )?;
    // kms:Decrypt as the caller, as AWS requires for UploadPart; SSE-C: the upload's key.
    let dk = part_data_key(s, &ctx, &up, ck.as_ref())?;
    let provided = [
        req.input.checksum_crc32.clone(),
        req.input.checksum_crc32c.clone(),
        req.input.checksum_sha1.clone(),
        req.input.checksum_sha256.clone(),
        req.input.checksum_crc64nvme.clone(),
    ];
    let sdk_algorithm = req
        .input
        .checksum_algorithm
        .as_ref()
        .map(|a| a.as_str().to_ascii_uppercase());
    let trailer = req
        .headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    check_part_checksum(&up, &provided, sdk_algorithm.as_deref(), trailer.as_deref())?;
    let blob_id = uuid::Uuid::new_v4().simple().to_string();
    let body = BodyIn {
        need_md5: matches!(up.sse, crate::model::Sse::S3 { .. }),
        allow_inline: false,
        body: req.input.body.take(),
        content_length: req.input.content_length,
        content_md5: req.input.content_md5.clone(),
        provided,
        // The upload's algorithm is always computed (the checks above make a request's own
        // algorithm the same).
        algorithm: up.checksum_algorithm.clone().or(sdk_algorithm),
        trailer,
        trailers: req.trailing_headers.clone(),
    };
    let Ingested {
        size,
        etag: md5,
        checksums,
        ..
    } = ingest(s, &blob_id, &dk, body).await?;
    drop(dk);
    store_part(s, &up, number, &blob_id, size, &md5, &checksums)?;
    let mut out = UploadPartOutput {
        e_tag: Some(ETag::Strong(hex::encode(md5))),
        ..Default::default()
    };
    set_sse_out(
        &up.sse,
        None,
        &mut out.server_side_encryption,
        &mut out.ssekms_key_id,
        &mut out.bucket_key_enabled,
    );
    set_sse_c_out(
        &up.sse,
        &mut out.sse_customer_algorithm,
        &mut out.sse_customer_key_md5,
    );
    set_checksums!(out, &checksums);
    Ok(S3Response::new(out))
}

/// The checksum an UploadPart carries must be of the upload's algorithm (S3's checks and texts):
/// a part of a COMPOSITE upload must carry one; a FULL_OBJECT upload computes it if absent.
fn check_part_checksum(
    up: &Upload,
    provided: &[Option<String>; 5],
    sdk_algorithm: Option<&str>,
    trailer: Option<&str>,
) -> S3Result<()> {
    let mut sent: Vec<&str> = CHECKSUM_ALGS
        .iter()
        .zip(provided)
        .filter(|(_, v)| v.is_some())
        .map(|((alg, _), _)| *alg)
        .collect();
    if let Some(t) = trailer {
        sent.extend(
            CHECKSUM_ALGS
                .iter()
                .filter(|(_, header)| t.split(',').any(|x| x.trim() == *header))
                .map(|(alg, _)| *alg),
        );
    }
    if let (Some(sdk), Some(first)) = (sdk_algorithm, sent.first())
        && sdk != *first
    {
        return Err(s3_error!(
            InvalidRequest,
            "Value for x-amz-sdk-checksum-algorithm header is invalid."
        ));
    }
    let Some(expected) = up.checksum_algorithm.as_deref() else {
        return Ok(());
    };
    let actual = sent.first().copied().or(sdk_algorithm);
    let composite = up.checksum_type.as_deref() != Some(crate::checksum::FULL_OBJECT);
    match actual {
        Some(a) if a == expected => Ok(()),
        None if !composite => Ok(()),
        other => Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            expected.to_ascii_lowercase(),
            other.map_or("null".to_string(), str::to_ascii_lowercase)
        )),
    }
}

/// Records part `number` of an upload (replacing an earlier upload of that number, whose blob
/// is then deleted). On failure the new blob is deleted.
fn store_part(
    s: &Inner,
    up: &Upload,
    number: i32,
    blob_id: &str,
    size: u64,
    md5: &[u8; 16],
    checksums: &[(String, String)],
) -> S3Result<()> {
    let part = Part {
        number,
        blob_id: blob_id.to_string(),
        size,
        etag: format!("\"{}\"", hex::encode(md5)),
        last_modified: s.now(),
        checksums: checksums.to_vec(),
    };
    let pk = part_key(&up.id, number);
    let uk = upload_key(&up.bucket, &up.id, &up.key);
    let mut replaced = None;
    let r = s.tx(|t| {
        if t.get(NS_UPLOAD, &uk).map_err(internal)?.is_none() {
            return Err(ServiceError::new(
                "NoSuchUpload",
                404,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            ));
        }
        replaced = get_json::<Part>(t, NS_PART, &pk).map_err(internal)?.map(|p| p.blob_id);
        put_json(t, NS_PART, &pk, &part).map_err(internal)
    });
    if let Err(e) = r {
        let _ = s.blobs.delete(blob_id);
        return Err(e);
    }
    if let Some(old) = replaced {
        let _ = s.blobs.delete(&old);
    }
    Ok(())
}

pub(crate) async fn upload_part_copy(
    s: &Inner,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let ctx = s.context(&req)?;
    let i = &req.input;
    let bucket = s.bucket(&i.bucket)?;
    let number = i.part_number;
    if !(1..=MAX_PARTS).contains(&number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
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
    s.authorize(
        &ctx,
        "s3:PutObject",
        &Inner::object_arn(&bucket.name, &i.key),
        Some(&bucket),
        &[],
    )?;
    let up = load_upload(s, &bucket.name, &i.upload_id, &i.key)?;
    let sb = s.bucket(src_bucket)?;
    let src = crate::objects::copy_source(s, &ctx, &sb, src_key, version_id.as_deref())?;
    check_conditions(
        &src,
        i.copy_source_if_match.as_ref(),
        i.copy_source_if_none_match.as_ref(),
        i.copy_source_if_modified_since.as_ref(),
        i.copy_source_if_unmodified_since.as_ref(),
    )
    .map_err(|mut e| {
        e.set_status_code(http::StatusCode::PRECONDITION_FAILED);
        e
    })?;
    let (start, end) = match &i.copy_source_range {
        None => (0, src.size),
        Some(r) => {
            let bad = || {
                s3_error!(
                    InvalidArgument,
                    "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
                )
            };
            let (a, b) = r
                .strip_prefix("bytes=")
                .and_then(|x| x.split_once('-'))
                .ok_or_else(bad)?;
            let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > b || b >= src.size {
                let mut e = s3_error!(InvalidRange, "The requested range is not satisfiable");
                e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                return Err(e);
            }
            (a, b + 1)
        }
    };
    let src_ck = customer_key(
        s,
        ctx.secure_transport,
        i.copy_source_sse_customer_algorithm.as_ref(),
        i.copy_source_sse_customer_key.as_ref(),
        i.copy_source_sse_customer_key_md5.as_ref(),
    )?;
    let ck = customer_key(
        s,
        ctx.secure_transport,
        i.sse_customer_algorithm.as_ref(),
        i.sse_customer_key.as_ref(),
        i.sse_customer_key_md5.as_ref(),
    )?;
    let src_dk = open_data_key(s, &ctx, &src.sse, &src.blob_id, src_ck.as_ref())?;
    let dk = part_data_key(s, &ctx, &up, ck.as_ref())?;
    let body = stream_plaintext(s, &src, src_dk, start, end)?;
    let blob_id = uuid::Uuid::new_v4().simple().to_string();
    let Ingested {
        size,
        etag: md5,
        checksums,
        ..
    } = ingest(
        s,
        &blob_id,
        &dk,
        BodyIn {
            body: Some(body),
            content_length: Some((end - start) as i64),
            content_md5: None,
            need_md5: matches!(up.sse, crate::model::Sse::S3 { .. }),
            allow_inline: false,
            provided: Default::default(),
            algorithm: up.checksum_algorithm.clone(),
            trailer: None,
            trailers: None,
        },
    )
    .await?;
    drop(dk);
    store_part(s, &up, number, &blob_id, size, &md5, &checksums)?;
    let mut result = CopyPartResult {
        e_tag: Some(ETag::Strong(hex::encode(md5))),
        last_modified: Some(timestamp(s.now())),
        ..Default::default()
    };
    set_checksums!(result, &checksums);
    let mut out = UploadPartCopyOutput {
        copy_part_result: Some(result),
        copy_source_version_id: crate::versions::reported_version(&sb, &src),
        ..Default::default()
    };
    set_sse_out(
        &up.sse,
        None,
        &mut out.server_side_encryption,
        &mut out.ssekms_key_id,
        &mut out.bucket_key_enabled,
    );
    set_sse_c_out(
        &up.sse,
        &mut out.sse_customer_algorithm,
        &mut out.sse_customer_key_md5,
    );
    Ok(S3Response::new(out))
}

pub(crate) async fn complete(
    s: &Inner,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let key = req.input.key.clone();
    // kms:Decrypt as the caller, as AWS requires for CompleteMultipartUpload.
    let (up, ck) = upload_request(
        s,
        &ctx,
        &bucket,
        &key,
        &req.input.upload_id,
        "s3:PutObject",
        (
            req.input.sse_customer_algorithm.as_ref(),
            req.input.sse_customer_key.as_ref(),
            req.input.sse_customer_key_md5.as_ref(),
        ),
    )?;
    check_upload_access(s, &ctx, &up, ck.as_ref())?;
    let requested = req
        .input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.clone())
        .unwrap_or_default();
    if requested.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let composite = up.checksum_type.as_deref() != Some(crate::checksum::FULL_OBJECT);
    if let Some(t) = &req.input.checksum_type
        && up.checksum_algorithm.is_some()
        && up.checksum_type.as_deref() != Some(t.as_str())
    {
        return Err(s3_error!(
            InvalidRequest,
            "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
            up.checksum_type.as_deref().unwrap_or_default()
        ));
    }
    let stored = parts_of(s, &up.id)?;
    let invalid = || {
        s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
        )
    };
    let mut chosen: Vec<&Part> = vec![];
    let mut last = 0;
    for p in &requested {
        let n = p.part_number.ok_or_else(invalid)?;
        if n <= last {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ));
        }
        last = n;
        let part = stored.iter().find(|x| x.number == n).ok_or_else(invalid)?;
        if let Some(tag) = &p.e_tag {
            let given = match tag {
                ETag::Strong(v) | ETag::Weak(v) => v.trim_matches('"'),
            };
            if given != part.etag.trim_matches('"') {
                return Err(invalid());
            }
        }
        if let Some(alg) = up.checksum_algorithm.as_deref() {
            let given = match alg {
                "CRC32" => &p.checksum_crc32,
                "CRC32C" => &p.checksum_crc32c,
                "SHA1" => &p.checksum_sha1,
                "SHA256" => &p.checksum_sha256,
                _ => &p.checksum_crc64nvme,
            };
            match given {
                None if composite => {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {n} in the request.",
                        alg.to_ascii_lowercase()
                    ));
                }
                None => {}
                Some(g) => {
                    if crate::checksum::decode(alg, g).is_none() {
                        return Err(s3_error!(
                            InvalidArgument,
                            "Invalid Base64 or multiple checksums present in request"
                        ));
                    }
                    if stored_checksum(part, alg) != Some(g.as_str()) {
                        return Err(invalid());
                    }
                }
            }
        }
        chosen.push(part);
    }
    for p in &chosen[..chosen.len() - 1] {
        if p.size < MIN_PART {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed size"
            ));
        }
    }
    // The multipart ETag: MD5 of the parts' MD5s, then "-N".
    let mut md5 = <s3s::crypto::Md5 as s3s::crypto::Checksum>::new();
    for p in &chosen {
        let raw = hex::decode(p.etag.trim_matches('"')).map_err(|e| s3e(internal(e)))?;
        s3s::crypto::Checksum::update(&mut md5, &raw);
    }
    let etag = format!(
        "\"{}-{}\"",
        hex::encode(s3s::crypto::Checksum::finalize(md5)),
        chosen.len()
    );
    let whole = whole_checksum(&up, &chosen)?;
    check_whole_checksum(
        &up,
        whole.as_ref(),
        [
            &req.input.checksum_crc32,
            &req.input.checksum_crc32c,
            &req.input.checksum_sha1,
            &req.input.checksum_sha256,
            &req.input.checksum_crc64nvme,
        ],
    )?;
    let obj = Object {
        key: key.clone(),
        size: chosen.iter().map(|p| p.size).sum(),
        etag: etag.clone(),
        last_modified: s.now(),
        blob_id: String::new(),
        segment_size: coffer_crypto::segment::DEFAULT_SEGMENT,
        sse: up.sse.clone(),
        content_type: up.content_type.clone(),
        content_encoding: up.content_encoding.clone(),
        content_disposition: up.content_disposition.clone(),
        content_language: up.content_language.clone(),
        cache_control: up.cache_control.clone(),
        metadata: up.metadata.clone(),
        checksums: whole.iter().cloned().collect(),
        checksum_type: whole
            .as_ref()
            .and(up.checksum_type.clone())
            .filter(|t| t == crate::checksum::COMPOSITE),
        parts: chosen
            .iter()
            .map(|p| PartBlob {
                blob_id: p.blob_id.clone(),
                size: p.size,
            })
            .collect(),
        tags: up.tags.clone(),
        inline: None,
        version_id: None,
        seq: None,
        delete_marker: false,
    };
    let chosen_blobs: Vec<(i32, String)> = chosen
        .iter()
        .map(|p| (p.number, p.blob_id.clone()))
        .collect();
    let uk = upload_key(&up.bucket, &up.id, &up.key);
    let mut replaced: Vec<String> = vec![];
    let mut unused: Vec<String> = vec![];
    let mut obj = obj;
    let mut version_id = None;
    let now_us = crate::versions::now_micros(s);
    s.tx(|t| {
        if t.get(NS_UPLOAD, &uk).map_err(internal)?.is_none() {
            return Err(ServiceError::new("NoSuchUpload", 404, "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."));
        }
        // The parts as this transaction sees them: an UploadPart that replaced a chosen part
        // since they were checked above makes the request's list stale (its old blob is gone),
        // and parts uploaded meanwhile are dropped with the rest.
        let current: Vec<(String, Part)> =
            scan_json(t, NS_PART, &format!("{}/", up.id), None, usize::MAX).map_err(internal)?;
        for (n, blob) in &chosen_blobs {
            if !current.iter().any(|(_, p)| p.number == *n && p.blob_id == *blob) {
                return Err(ServiceError::new("InvalidPart", 400, "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."));
            }
        }
        let versioning = crate::versions::versioning_in(t, &bucket.name)?;
        replaced = crate::versions::place_current(t, &bucket.name, versioning.as_deref(), &mut obj, now_us)?;
        version_id = (versioning.as_deref() == Some(crate::versions::ENABLED))
            .then(|| obj.version_label().to_string());
        unused.clear();
        for p in delete_upload(t, &up)?.unwrap_or_default() {
            if !chosen_blobs.iter().any(|(_, b)| *b == p.blob_id) {
                unused.push(p.blob_id);
            }
        }
        Ok(())
    })?;
    for b in unused.iter().cloned().chain(replaced) {
        let _ = s.blobs.delete(&b);
    }
    let mut out = CompleteMultipartUploadOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(key.clone()),
        location: Some(format!("/{}/{}", bucket.name, key)),
        e_tag: Some(ETag::Strong(etag.trim_matches('"').to_string())),
        version_id,
        ..Default::default()
    };
    set_sse_out(
        &up.sse,
        None,
        &mut out.server_side_encryption,
        &mut out.ssekms_key_id,
        &mut out.bucket_key_enabled,
    );
    set_checksums!(out, &obj.checksums);
    out.checksum_type = crate::objects::checksum_type_of(&obj);
    Ok(S3Response::new(out))
}

fn stored_checksum<'a>(p: &'a Part, alg: &str) -> Option<&'a str> {
    p.checksums
        .iter()
        .find(|(a, _)| a == alg)
        .map(|(_, v)| v.as_str())
}

/// The whole-object checksum of a completed upload with a checksum algorithm: (algorithm, value).
fn whole_checksum(up: &Upload, parts: &[&Part]) -> S3Result<Option<(String, String)>> {
    let Some(alg) = up.checksum_algorithm.as_deref() else {
        return Ok(None);
    };
    let mut raws = Vec::with_capacity(parts.len());
    for p in parts {
        // Every part of such an upload got the upload's checksum when it was stored.
        let raw = stored_checksum(p, alg)
            .and_then(|v| crate::checksum::decode(alg, v))
            .ok_or_else(|| s3e(internal(format!("part {} has no {alg} checksum", p.number))))?;
        raws.push((raw, p.size));
    }
    let value = if up.checksum_type.as_deref() == Some(crate::checksum::FULL_OBJECT) {
        crate::checksum::full_object(alg, &raws)
    } else {
        let raws: Vec<Vec<u8>> = raws.into_iter().map(|(r, _)| r).collect();
        crate::checksum::composite(alg, &raws)
    };
    value
        .map(|v| Some((alg.to_string(), v)))
        .ok_or_else(|| s3e(internal(format!("no {alg} whole-object checksum"))))
}

/// A whole-object checksum sent with CompleteMultipartUpload must match the computed one
/// (a COMPOSITE value may omit its `-N`, which must be the part count if present).
fn check_whole_checksum(
    up: &Upload,
    whole: Option<&(String, String)>,
    given: [&Option<String>; 5],
) -> S3Result<()> {
    for ((alg, header), v) in CHECKSUM_ALGS.iter().zip(given) {
        let Some(v) = v else { continue };
        let Some((expected_alg, value)) = whole else {
            return Err(s3_error!(
                NotImplemented,
                "A whole-object checksum on CompleteMultipartUpload of an upload created without a checksum algorithm is not supported by Coffer yet."
            ));
        };
        if alg != expected_alg {
            return Err(s3_error!(
                InvalidRequest,
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                expected_alg.to_ascii_lowercase(),
                alg.to_ascii_lowercase()
            ));
        }
        let invalid_header = || s3_error!(InvalidRequest, "Value for {header} header is invalid.");
        let (digest, count) = match v.split_once('-') {
            Some((d, n)) if up.checksum_type.as_deref() == Some(crate::checksum::COMPOSITE) => {
                (d, Some(n.parse::<usize>().map_err(|_| invalid_header())?))
            }
            _ => (v.as_str(), None),
        };
        if crate::checksum::decode(alg, digest).is_none() {
            return Err(invalid_header());
        }
        let (want_digest, want_count) = match value.split_once('-') {
            Some((d, n)) => (d, n.parse::<usize>().ok()),
            None => (value.as_str(), None),
        };
        if digest != want_digest || (count.is_some() && count != want_count) {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                alg.to_ascii_lowercase()
            ));
        }
    }
    Ok(())
}

pub(crate) async fn abort(
    s: &Inner,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let key = req.input.key.clone();
    s.authorize(
        &ctx,
        "s3:AbortMultipartUpload",
        &Inner::object_arn(&bucket.name, &key),
        Some(&bucket),
        &[],
    )?;
    let up = load_upload(s, &bucket.name, &req.input.upload_id, &key)?;
    // The parts are read in the deleting transaction: one uploaded meanwhile goes too.
    let mut parts = vec![];
    s.tx(|t| {
        parts = delete_upload(t, &up)?.ok_or_else(|| {
            ServiceError::new(
                "NoSuchUpload",
                404,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            )
        })?;
        Ok(())
    })?;
    for p in parts {
        let _ = s.blobs.delete(&p.blob_id);
    }
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

fn part_out(p: &Part) -> s3s::dto::Part {
    let mut o = s3s::dto::Part {
        part_number: Some(p.number),
        size: Some(p.size as i64),
        e_tag: Some(ETag::Strong(p.etag.trim_matches('"').to_string())),
        last_modified: Some(timestamp(p.last_modified)),
        ..Default::default()
    };
    set_checksums!(o, &p.checksums);
    o
}

pub(crate) async fn list_parts(
    s: &Inner,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let key = req.input.key.clone();
    // kms:Decrypt as the caller, as AWS requires for ListParts.
    let (up, ck) = upload_request(
        s,
        &ctx,
        &bucket,
        &key,
        &req.input.upload_id,
        "s3:ListMultipartUploadParts",
        (
            req.input.sse_customer_algorithm.as_ref(),
            req.input.sse_customer_key.as_ref(),
            req.input.sse_customer_key_md5.as_ref(),
        ),
    )?;
    check_upload_access(s, &ctx, &up, ck.as_ref())?;
    let max = req.input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker: i32 = req.input.part_number_marker.unwrap_or(0);
    let parts: Vec<Part> = parts_of(s, &up.id)?
        .into_iter()
        .filter(|p| p.number > marker)
        .collect();
    let truncated = parts.len() > max;
    let page = &parts[..parts.len().min(max)];
    let owner = Some(principal_owner(&ctx.principal));
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(bucket.name.clone()),
        key: Some(key),
        upload_id: Some(up.id.clone()),
        parts: Some(page.iter().map(part_out).collect()),
        is_truncated: Some(truncated),
        max_parts: Some(max as i32),
        part_number_marker: req.input.part_number_marker,
        next_part_number_marker: page.last().filter(|_| truncated).map(|p| p.number),
        owner: owner.clone(),
        initiator: Some(Initiator {
            id: Some(up.initiator_arn.clone()),
            display_name: None,
        }),
        storage_class: Some(StorageClass::from("STANDARD".to_string())),
        checksum_algorithm: up.checksum_algorithm.clone().map(ChecksumAlgorithm::from),
        checksum_type: up.checksum_type.clone().map(ChecksumType::from),
        ..Default::default()
    }))
}

pub(crate) async fn list_uploads(
    s: &Inner,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let (ctx, bucket) =
        s.bucket_request(&req, &req.input.bucket, "s3:ListBucketMultipartUploads")?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let max = req.input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    // A range scan of the index (by key, then initiation time) from the markers: one page read,
    // however many uploads the bucket has.
    let index_prefix = format!("{}/{prefix}", bucket.name);
    let start_after = match (&req.input.key_marker, req.input.upload_id_marker.as_deref()) {
        (Some(km), Some(um)) if !um.is_empty() => {
            match get_json::<Upload>(&*s.store, NS_UPLOAD, &upload_key(&bucket.name, um, km))
                .map_err(|e| s3e(internal(e)))?
            {
                Some(up) => Some(upload_index_key(&up)),
                // An upload that is gone: continue after every upload of that key.
                None => Some(format!("{}/{km}\u{1}", bucket.name)),
            }
        }
        (Some(km), _) => Some(format!("{}/{km}\u{1}", bucket.name)),
        (None, _) => None,
    };
    let index = s
        .store
        .scan(
            NS_UPLOAD_BY_KEY,
            &index_prefix,
            start_after.as_deref(),
            max + 1,
        )
        .map_err(|e| s3e(internal(e)))?;
    let mut ups: Vec<Upload> = Vec::with_capacity(index.len());
    for (_, row) in index {
        let row = String::from_utf8(row).map_err(|e| s3e(internal(e)))?;
        if let Some(up) =
            get_json::<Upload>(&*s.store, NS_UPLOAD, &row).map_err(|e| s3e(internal(e)))?
        {
            ups.push(up);
        }
    }
    let truncated = ups.len() > max;
    let page = &ups[..ups.len().min(max)];
    let owner = Some(principal_owner(&ctx.principal));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.name.clone()),
        prefix: req.input.prefix.clone(),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        key_marker: req.input.key_marker.clone(),
        upload_id_marker: req.input.upload_id_marker.clone(),
        next_key_marker: page.last().filter(|_| truncated).map(|u| u.key.clone()),
        next_upload_id_marker: page.last().filter(|_| truncated).map(|u| u.id.clone()),
        uploads: Some(
            page.iter()
                .map(|u| MultipartUpload {
                    key: Some(u.key.clone()),
                    upload_id: Some(u.id.clone()),
                    initiated: Some(timestamp(u.initiated)),
                    initiator: Some(Initiator {
                        id: Some(u.initiator_arn.clone()),
                        display_name: None,
                    }),
                    owner: owner.clone(),
                    storage_class: Some(StorageClass::from("STANDARD".to_string())),
                    checksum_algorithm: u.checksum_algorithm.clone().map(ChecksumAlgorithm::from),
                    checksum_type: u.checksum_type.clone().map(ChecksumType::from),
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
