//! Object and bucket tagging.

use crate::model::{NS_OBJECT, NS_VERSION, Object, object_key};
use crate::objects::readable_version;
use crate::versions::{self, Loc, parse_version_id, reported_version};
use crate::{Inner, internal, s3e};
use coffer_core::ServiceError;
use coffer_store::{get_json, put_json};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

fn invalid_tag(msg: &str) -> s3s::S3Error {
    s3e(ServiceError::new("InvalidTag", 400, msg))
}

/// Validates a tag set (AWS's limits: 10 per object, 50 per bucket; keys 1–128, values 0–256
/// characters; no duplicate keys; no `aws:` prefix).
pub(crate) fn check_tags(
    tags: Vec<(String, String)>,
    max: usize,
) -> S3Result<Vec<(String, String)>> {
    if tags.len() > max {
        return Err(s3e(ServiceError::new(
            if max == 10 {
                "BadRequest"
            } else {
                "InvalidTag"
            },
            400,
            if max == 10 {
                "Object tags cannot be greater than 10"
            } else {
                "Bucket tag count cannot be greater than 50"
            },
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, v) in &tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if v.chars().count() > 256 {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if !seen.insert(k.clone()) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(tags)
}

fn from_dto(t: &Tagging) -> Vec<(String, String)> {
    t.tag_set
        .iter()
        .map(|t| {
            (
                t.key.clone().unwrap_or_default(),
                t.value.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn to_dto(tags: &[(String, String)]) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// `x-amz-tagging: k1=v1&k2=v2` (URL-encoded query form).
pub(crate) fn parse_tagging_header(h: &str) -> S3Result<Vec<(String, String)>> {
    check_tags(crate::url_query(h), 10)
}

/// Changes the current version of an object, or the version `version` names, in one
/// transaction.
fn update_object(
    s: &Inner,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    f: impl Fn(&mut Object),
) -> S3Result<()> {
    let sel = version.map(parse_version_id).transpose()?;
    s.tx(|t| {
        let found = match &sel {
            None => get_json::<Object>(t, NS_OBJECT, &object_key(bucket, key))
                .map_err(internal)?
                .map(|o| (Loc::Current, o)),
            Some(sel) => versions::find_version(t, bucket, key, sel)?,
        };
        let (loc, mut o) = found.filter(|(_, o)| !o.delete_marker).ok_or_else(|| {
            if sel.is_some() {
                ServiceError::new(
                    "NoSuchVersion",
                    404,
                    "The specified version does not exist.",
                )
            } else {
                ServiceError::new("NoSuchKey", 404, "The specified key does not exist.")
            }
        })?;
        f(&mut o);
        match loc {
            Loc::Current => put_json(t, NS_OBJECT, &object_key(bucket, key), &o),
            Loc::Noncurrent(row) => put_json(t, NS_VERSION, &row, &o),
        }
        .map_err(internal)
    })
}

pub(crate) async fn put_object_tagging(
    s: &Inner,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let tags = check_tags(from_dto(&req.input.tagging), 10)?;
    let extra: Vec<(String, String)> = tags
        .iter()
        .map(|(k, v)| (format!("s3:RequestObjectTag/{k}"), v.clone()))
        .collect();
    let version = req.input.version_id.as_deref();
    let o = readable_version(
        s,
        &ctx,
        &bucket,
        &req.input.key,
        version,
        "s3:PutObjectTagging",
        "s3:PutObjectVersionTagging",
        &extra,
    )?;
    // The version authorized above is the one changed, even if a newer one lands meanwhile.
    let pinned = version.map(str::to_string).or_else(|| o.version_id.clone());
    update_object(s, &bucket.name, &req.input.key, pinned.as_deref(), |o| {
        o.tags = tags.clone()
    })?;
    Ok(S3Response::new(PutObjectTaggingOutput {
        version_id: reported_version(&bucket, &o),
    }))
}

pub(crate) async fn get_object_tagging(
    s: &Inner,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let o = readable_version(
        s,
        &ctx,
        &bucket,
        &req.input.key,
        req.input.version_id.as_deref(),
        "s3:GetObjectTagging",
        "s3:GetObjectVersionTagging",
        &[],
    )?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: to_dto(&o.tags),
        version_id: reported_version(&bucket, &o),
    }))
}

pub(crate) async fn delete_object_tagging(
    s: &Inner,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let ctx = s.context(&req)?;
    let bucket = s.bucket(&req.input.bucket)?;
    let version = req.input.version_id.as_deref();
    let o = readable_version(
        s,
        &ctx,
        &bucket,
        &req.input.key,
        version,
        "s3:DeleteObjectTagging",
        "s3:DeleteObjectVersionTagging",
        &[],
    )?;
    let pinned = version.map(str::to_string).or_else(|| o.version_id.clone());
    update_object(s, &bucket.name, &req.input.key, pinned.as_deref(), |o| {
        o.tags.clear()
    })?;
    Ok(S3Response::with_status(
        DeleteObjectTaggingOutput {
            version_id: reported_version(&bucket, &o),
        },
        http::StatusCode::NO_CONTENT,
    ))
}

pub(crate) async fn put_bucket_tagging(
    s: &Inner,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let (_, bucket) = s.bucket_request(&req, &req.input.bucket, "s3:PutBucketTagging")?;
    let tags = check_tags(from_dto(&req.input.tagging), 50)?;
    s.update_bucket(&bucket.name, |b| b.tags = tags.clone())?;
    Ok(S3Response::with_status(
        PutBucketTaggingOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(crate) async fn get_bucket_tagging(
    s: &Inner,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let (_, bucket) = s.bucket_request(&req, &req.input.bucket, "s3:GetBucketTagging")?;
    if bucket.tags.is_empty() {
        return Err(s3e(ServiceError::new(
            "NoSuchTagSet",
            404,
            "The TagSet does not exist",
        )));
    }
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: to_dto(&bucket.tags),
    }))
}

pub(crate) async fn delete_bucket_tagging(
    s: &Inner,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let (_, bucket) = s.bucket_request(&req, &req.input.bucket, "s3:PutBucketTagging")?;
    s.update_bucket(&bucket.name, |b| b.tags.clear())?;
    Ok(S3Response::with_status(
        DeleteBucketTaggingOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}
