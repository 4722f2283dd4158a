//! S3 pages: buckets, default encryption, objects with prefixes as folders, upload (streamed,
//! with progress), open, download, delete, bucket policy.

use crate::api::{Api, ApiError, ApiResult, El, enc};
use crate::kms::symmetric_keys;
use crate::layout::{button_form, csrf, row};
use crate::{Ctx, Form, Resp, done, error_page, html_response, not_found};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use maud::{Markup, html};
use s3s::Body;

pub async fn get(ctx: &Ctx<'_>, rest: &[&str]) -> Resp {
    match rest {
        [] => buckets(ctx).await,
        ["create"] => create_form(ctx, None, &Form(vec![])).await,
        ["buckets", b] => objects(ctx, b, None).await,
        ["buckets", b, "properties"] => properties(ctx, b, None).await,
        ["object", b] => object(ctx, b, None).await,
        ["open", b] => fetch(ctx, b, true).await,
        ["download", b] => fetch(ctx, b, false).await,
        _ => not_found(ctx),
    }
}

pub async fn post(ctx: &Ctx<'_>, rest: &[&str], f: &Form) -> Resp {
    match rest {
        ["create"] => create(ctx, f).await,
        ["buckets", b, action] => bucket_action(ctx, b, action, f).await,
        ["object", b, "delete"] => {
            let key = f.val("key");
            let path = Api::s3_path(b, Some(key), &[]);
            match ctx
                .api
                .s3(Method::DELETE, &path, HeaderMap::new(), None)
                .await
            {
                Ok(_) => done(
                    ctx,
                    &listing_url(b, parent_prefix(key)),
                    format!("Deleted {key}."),
                ),
                Err(e) => object(ctx, b, Some(e)).await,
            }
        }
        _ => not_found(ctx),
    }
}

fn listing_url(bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("/console/s3/buckets/{}", enc(bucket))
    } else {
        format!("/console/s3/buckets/{}?prefix={}", enc(bucket), enc(prefix))
    }
}

fn object_url(bucket: &str, kind: &str, key: &str) -> String {
    format!("/console/s3/{kind}/{}?key={}", enc(bucket), enc(key))
}

fn parent_prefix(key: &str) -> &str {
    let k = key.strip_suffix('/').unwrap_or(key);
    match k.rfind('/') {
        Some(i) => &key[..=i],
        None => "",
    }
}

fn xml(r: &crate::api::S3Reply) -> ApiResult<El> {
    El::parse(&String::from_utf8_lossy(&r.body))
        .ok_or_else(|| ApiError::new("InternalError", 500, "The response was not XML."))
}

async fn buckets(ctx: &Ctx<'_>) -> Resp {
    let list = match ctx
        .api
        .s3(Method::GET, "/", HeaderMap::new(), None)
        .await
        .and_then(|r| xml(&r))
    {
        Ok(x) => x,
        Err(e) => return error_page(ctx, "Buckets", &e),
    };
    let rows: Vec<(String, String)> = list
        .find("Buckets")
        .map(|b| {
            b.all("Bucket")
                .map(|b| (b.text_of("Name"), b.text_of("CreationDate")))
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        div.toolbar { a #create-bucket .button href="/console/s3/create" { "Create bucket" } }
        table #buckets {
            thead { tr { th { "Name" } th { "Creation date" } } }
            tbody {
                @for (name, created) in &rows {
                    tr data-bucket=(name) {
                        td { a.bucket-link href={ "/console/s3/buckets/" (enc(name)) } { (name) } }
                        td { (created) }
                    }
                }
            }
        }
        @if rows.is_empty() { p.hint { "No buckets yet." } }
    };
    html_response(200, ctx.page("Buckets", body))
}

/// The default-encryption fields (create bucket, bucket properties).
fn encryption_fields(keys: &[(String, String)], algo: &str, key: &str, bucket_key: bool) -> Markup {
    html! {
        fieldset {
            legend { "Default encryption" }
            label.check for="enc-sse-s3" {
                input #enc-sse-s3 type="radio" name="encryption" value="AES256" checked[algo != "aws:kms"];
                "Server-side encryption with Amazon S3 managed keys (SSE-S3)"
            }
            label.check for="enc-sse-kms" {
                input #enc-sse-kms type="radio" name="encryption" value="aws:kms" checked[algo == "aws:kms"];
                "Server-side encryption with AWS Key Management Service keys (SSE-KMS)"
            }
            label for="kms-key-select" { "AWS KMS key (for SSE-KMS)" }
            select #kms-key-select name="kms_key" {
                @for (arn, label) in keys {
                    option value=(arn) selected[arn == key || key.ends_with(label.as_str())] { (label) }
                }
            }
            @if keys.is_empty() { p.hint { "No enabled symmetric customer managed key is visible to you." } }
            label.check for="bucket-key" {
                input #bucket-key type="checkbox" name="bucket_key" value="on" checked[bucket_key];
                "Bucket Key (fewer calls to AWS KMS)"
            }
        }
    }
}

async fn create_form(ctx: &Ctx<'_>, err: Option<&ApiError>, f: &Form) -> Resp {
    let keys = symmetric_keys(ctx).await;
    let body = html! {
        form #create-bucket-form method="post" action="/console/s3/create" {
            (csrf(ctx.session))
            label for="bucket-name" { "Bucket name" }
            input #bucket-name name="bucket" type="text" value=(f.val("bucket")) required;
            p.hint { "3 to 63 lower-case letters, digits, dots and hyphens." }
            (encryption_fields(&keys, f.val("encryption"), f.val("kms_key"), f.checked("bucket_key")))
            button #create-bucket-button type="submit" { "Create bucket" }
        }
    };
    match err {
        Some(e) => html_response(e.status, ctx.page_err("Create bucket", e, body)),
        None => html_response(200, ctx.page("Create bucket", body)),
    }
}

fn encryption_xml(f: &Form) -> String {
    let algo = if f.val("encryption") == "aws:kms" {
        "aws:kms"
    } else {
        "AES256"
    };
    let mut x = String::from(
        "<ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>",
    );
    x.push_str(algo);
    x.push_str("</SSEAlgorithm>");
    if algo == "aws:kms" && !f.val("kms_key").is_empty() {
        x.push_str("<KMSMasterKeyID>");
        x.push_str(&xml_escape(f.val("kms_key")));
        x.push_str("</KMSMasterKeyID>");
    }
    x.push_str("</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>");
    x.push_str(if f.checked("bucket_key") {
        "true"
    } else {
        "false"
    });
    x.push_str("</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>");
    x
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn put_encryption(ctx: &Ctx<'_>, bucket: &str, f: &Form) -> ApiResult<()> {
    let path = Api::s3_path(bucket, None, &[("encryption", "")]);
    ctx.api
        .s3(
            Method::PUT,
            &path,
            HeaderMap::new(),
            Some(Bytes::from(encryption_xml(f))),
        )
        .await
        .map(|_| ())
}

async fn create(ctx: &Ctx<'_>, f: &Form) -> Resp {
    let bucket = f.val("bucket").trim().to_string();
    let body = if ctx.api.region == "us-east-1" {
        None
    } else {
        Some(Bytes::from(format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
            xml_escape(ctx.api.region)
        )))
    };
    let path = Api::s3_path(&bucket, None, &[]);
    if let Err(e) = ctx.api.s3(Method::PUT, &path, HeaderMap::new(), body).await {
        return create_form(ctx, Some(&e), f).await;
    }
    let to = listing_url(&bucket, "");
    match put_encryption(ctx, &bucket, f).await {
        Ok(()) => done(ctx, &to, format!("Bucket {bucket} created.")),
        Err(e) => done(
            ctx,
            &to,
            format!("Bucket {bucket} created, but its default encryption was not set: {e}"),
        ),
    }
}

async fn objects(ctx: &Ctx<'_>, bucket: &str, err: Option<ApiError>) -> Resp {
    let prefix = ctx.q("prefix").unwrap_or("").to_string();
    let mut q = vec![
        ("list-type", "2"),
        ("delimiter", "/"),
        ("prefix", prefix.as_str()),
    ];
    if let Some(t) = ctx.q("token") {
        q.push(("continuation-token", t));
    }
    let path = Api::s3_path(bucket, None, &q);
    let x = match ctx
        .api
        .s3(Method::GET, &path, HeaderMap::new(), None)
        .await
        .and_then(|r| xml(&r))
    {
        Ok(x) => x,
        Err(e) => return error_page(ctx, bucket, &err.unwrap_or(e)),
    };
    let folders: Vec<String> = x
        .all("CommonPrefixes")
        .map(|p| p.text_of("Prefix"))
        .collect();
    let objs: Vec<(String, String, String)> = x
        .all("Contents")
        .map(|c| {
            (
                c.text_of("Key"),
                c.text_of("Size"),
                c.text_of("LastModified"),
            )
        })
        .filter(|(k, _, _)| *k != prefix)
        .collect();
    let next = x.text_of("NextContinuationToken");
    let keys = symmetric_keys(ctx).await;
    let sess = ctx.session;
    let body = html! {
        nav #breadcrumbs .breadcrumbs aria-label="Folder" {
            a href="/console/s3" { "Buckets" } " / "
            a href=(listing_url(bucket, "")) { (bucket) } " / "
            @let parts: Vec<&str> = prefix.split('/').filter(|p| !p.is_empty()).collect();
            @for (i, p) in parts.iter().enumerate() {
                a href=(listing_url(bucket, &format!("{}/", parts[..=i].join("/")))) { (p) } " / "
            }
        }
        div.toolbar {
            a #bucket-properties .button.secondary href={ "/console/s3/buckets/" (enc(bucket)) "/properties" } { "Properties and permissions" }
        }
        table #objects {
            thead { tr { th { "Name" } th { "Size" } th { "Last modified" } } }
            tbody {
                @for p in &folders {
                    tr.folder data-prefix=(p) {
                        td { a.folder-link href=(listing_url(bucket, p)) { "📁 " (p.strip_prefix(prefix.as_str()).unwrap_or(p)) } }
                        td { "—" } td {}
                    }
                }
                @for (k, size, modified) in &objs {
                    tr.object data-key=(k) {
                        td { a.object-link href=(object_url(bucket, "object", k)) { (k.strip_prefix(prefix.as_str()).unwrap_or(k)) } }
                        td { (size) } td { (modified) }
                    }
                }
            }
        }
        @if folders.is_empty() && objs.is_empty() { p.hint { "No objects here." } }
        @if !next.is_empty() {
            a #next-page href={ (listing_url(bucket, &prefix)) (if prefix.is_empty() { "?" } else { "&" }) "token=" (enc(&next)) } { "Next page" }
        }
        section.card {
            h2 { "Upload" }
            form #upload-form method="post" action="#" data-bucket=(bucket) data-prefix=(prefix) {
                (csrf(sess))
                label for="upload-file" { "File" }
                input #upload-file type="file" name="file" required;
                label for="upload-encryption" { "Server-side encryption" }
                select #upload-encryption name="encryption" {
                    option value="" selected { "Use the bucket's default encryption" }
                    option value="AES256" { "SSE-S3" }
                    option value="aws:kms" { "SSE-KMS" }
                }
                label for="upload-kms-key" { "AWS KMS key (for SSE-KMS)" }
                select #upload-kms-key name="kms_key" {
                    option value="" { "The bucket's default key" }
                    @for (arn, label) in &keys { option value=(arn) { (label) } }
                }
                button #upload-button type="submit" { "Upload" }
                div {
                    label for="upload-progress" { "Progress" }
                    progress #upload-progress max="100" value="0" {}
                    span #upload-status role="status" aria-live="polite" {}
                }
            }
        }
        section.card {
            h2 { "Create folder" }
            form #create-folder method="post" action={ "/console/s3/buckets/" (enc(bucket)) "/folder" } {
                (csrf(sess))
                input type="hidden" name="prefix" value=(prefix);
                label for="folder-name" { "Folder name" }
                input #folder-name name="folder" type="text" required;
                button #create-folder-button type="submit" { "Create folder" }
            }
        }
    };
    let title = format!("{bucket}/{prefix}");
    match err {
        Some(e) => html_response(e.status, ctx.page_err(&title, &e, body)),
        None => html_response(200, ctx.page(&title, body)),
    }
}

async fn properties(ctx: &Ctx<'_>, bucket: &str, err: Option<ApiError>) -> Resp {
    let enc_path = Api::s3_path(bucket, None, &[("encryption", "")]);
    let encryption = ctx
        .api
        .s3(Method::GET, &enc_path, HeaderMap::new(), None)
        .await
        .and_then(|r| xml(&r));
    let pol_path = Api::s3_path(bucket, None, &[("policy", "")]);
    let policy = match ctx
        .api
        .s3(Method::GET, &pol_path, HeaderMap::new(), None)
        .await
    {
        Ok(r) => Ok(String::from_utf8_lossy(&r.body).into_owned()),
        Err(e) if e.code == "NoSuchBucketPolicy" => Ok(String::new()),
        Err(e) => Err(e),
    };
    let policy = policy.map(|p| {
        serde_json::from_str::<serde_json::Value>(&p)
            .ok()
            .map(|v| crate::policy::pretty(&v))
            .unwrap_or(p)
    });
    let (algo, key, bucket_key) = match &encryption {
        Ok(x) => (
            x.find("SSEAlgorithm")
                .map(|e| e.text.clone())
                .unwrap_or_default(),
            x.find("KMSMasterKeyID")
                .map(|e| e.text.clone())
                .unwrap_or_default(),
            x.find("BucketKeyEnabled").is_some_and(|e| e.text == "true"),
        ),
        Err(_) => (String::new(), String::new(), false),
    };
    let ver_path = Api::s3_path(bucket, None, &[("versioning", "")]);
    let versioning = ctx
        .api
        .s3(Method::GET, &ver_path, HeaderMap::new(), None)
        .await
        .and_then(|r| xml(&r))
        .map(|x| {
            x.find("Status")
                .map(|s| s.text.trim().to_string())
                .unwrap_or_default()
        });
    let keys = symmetric_keys(ctx).await;
    let sess = ctx.session;
    let base = format!("/console/s3/buckets/{}", enc(bucket));
    let body = html! {
        p { a href=(listing_url(bucket, "")) { "← Objects" } }
        section.card {
            h2 { "Default encryption" }
            @match &encryption {
                Ok(_) => {
                    dl.props #bucket-encryption-summary {
                        (row("Encryption type", "bucket-sse", &algo))
                        @if !key.is_empty() { (row("AWS KMS key", "bucket-kms-key", &key)) }
                        (row("Bucket Key", "bucket-bucket-key", if bucket_key { "Enabled" } else { "Disabled" }))
                    }
                }
                Err(e) => { p.alert.error { (e.to_string()) } }
            }
            form #bucket-encryption-form method="post" action={ (base) "/encryption" } {
                (csrf(sess))
                (encryption_fields(&keys, &algo, &key, bucket_key))
                button #save-encryption type="submit" { "Save changes" }
            }
        }
        section.card {
            h2 { "Bucket Versioning" }
            @match &versioning {
                Ok(status) => {
                    p { "Status: " span #bucket-versioning-status { @if status.is_empty() { "Disabled" } @else { (status) } } }
                    form #bucket-versioning-form method="post" action={ (base) "/versioning" } {
                        (csrf(sess))
                        label for="versioning-select" { "Bucket Versioning" }
                        select #versioning-select name="status" {
                            option value="Enabled" selected[status == "Enabled"] { "Enable" }
                            option value="Suspended" selected[status == "Suspended"] { "Suspend" }
                        }
                        button #save-versioning type="submit" { "Save changes" }
                    }
                }
                Err(e) => { p.alert.error { (e.to_string()) } }
            }
        }
        section.card {
            h2 { "Bucket policy" }
            @match &policy {
                Ok(p) => {
                    form #bucket-policy-form method="post" action={ (base) "/policy" } {
                        (csrf(sess))
                        label for="bucket-policy" { "Policy document (JSON)" }
                        textarea #bucket-policy .policy name="policy" { (p) }
                        button #save-bucket-policy type="submit" { "Save changes" }
                    }
                    @if !p.is_empty() {
                        form #delete-bucket-policy method="post" action={ (base) "/policy-delete" } {
                            (csrf(sess))
                            button #delete-bucket-policy-button .secondary type="submit" { "Delete bucket policy" }
                        }
                    }
                }
                Err(e) => { p.alert.error { (e.to_string()) } }
            }
        }
        section.card {
            h2 { "Empty or delete" }
            p.hint { "A bucket must be empty before it can be deleted." }
            form #empty-bucket method="post" action={ (base) "/empty" } {
                (csrf(sess))
                button #empty-bucket-button .secondary type="submit" { "Empty bucket" }
            }
            form #delete-bucket method="post" action={ (base) "/delete" } {
                (csrf(sess))
                button #delete-bucket-button .danger type="submit" { "Delete bucket" }
            }
        }
    };
    let title = format!("{bucket}: properties");
    match err {
        Some(e) => html_response(e.status, ctx.page_err(&title, &e, body)),
        None => html_response(200, ctx.page(&title, body)),
    }
}

/// Deletes every object of the bucket, a page of up to 1,000 at a time; on a bucket that has
/// (or had) versioning, every version and delete marker, as the AWS console's "Empty" does.
async fn empty(ctx: &Ctx<'_>, bucket: &str) -> ApiResult<usize> {
    let vpath = Api::s3_path(bucket, None, &[("versioning", "")]);
    let versioned = xml(&ctx
        .api
        .s3(Method::GET, &vpath, HeaderMap::new(), None)
        .await?)?
    .find("Status")
    .is_some_and(|s| !s.text.trim().is_empty());
    let mut n = 0;
    loop {
        // (key, version id) of the next page.
        let batch: Vec<(String, Option<String>)> = if versioned {
            let path = Api::s3_path(bucket, None, &[("versions", ""), ("max-keys", "1000")]);
            let x = xml(&ctx
                .api
                .s3(Method::GET, &path, HeaderMap::new(), None)
                .await?)?;
            x.children
                .iter()
                .filter(|c| c.name == "Version" || c.name == "DeleteMarker")
                .map(|c| (c.text_of("Key"), Some(c.text_of("VersionId"))))
                .collect()
        } else {
            let path = Api::s3_path(bucket, None, &[("list-type", "2"), ("max-keys", "1000")]);
            let x = xml(&ctx
                .api
                .s3(Method::GET, &path, HeaderMap::new(), None)
                .await?)?;
            x.all("Contents")
                .map(|c| (c.text_of("Key"), None))
                .collect()
        };
        if batch.is_empty() {
            return Ok(n);
        }
        let mut body = String::from(
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>",
        );
        for (k, v) in &batch {
            body.push_str("<Object><Key>");
            body.push_str(&xml_escape(k));
            body.push_str("</Key>");
            if let Some(v) = v {
                body.push_str("<VersionId>");
                body.push_str(&xml_escape(v));
                body.push_str("</VersionId>");
            }
            body.push_str("</Object>");
        }
        body.push_str("</Delete>");
        let path = Api::s3_path(bucket, None, &[("delete", "")]);
        let r = ctx
            .api
            .s3(
                Method::POST,
                &path,
                HeaderMap::new(),
                Some(Bytes::from(body)),
            )
            .await?;
        if let Some(e) = xml(&r)?.child("Error") {
            return Err(ApiError::new(&e.text_of("Code"), 403, e.text_of("Message")));
        }
        n += batch.len();
    }
}

async fn bucket_action(ctx: &Ctx<'_>, bucket: &str, action: &str, f: &Form) -> Resp {
    let props = format!("/console/s3/buckets/{}/properties", enc(bucket));
    let result: ApiResult<(String, String)> = match action {
        "encryption" => put_encryption(ctx, bucket, f)
            .await
            .map(|_| (props.clone(), "Default encryption saved.".into())),
        "policy" => {
            let path = Api::s3_path(bucket, None, &[("policy", "")]);
            let p = f.val("policy").trim().to_string();
            ctx.api
                .s3(Method::PUT, &path, HeaderMap::new(), Some(Bytes::from(p)))
                .await
                .map(|_| (props.clone(), "Bucket policy saved.".into()))
        }
        "versioning" => {
            let status = if f.val("status") == "Enabled" {
                "Enabled"
            } else {
                "Suspended"
            };
            let path = Api::s3_path(bucket, None, &[("versioning", "")]);
            let body = format!(
                "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{status}</Status></VersioningConfiguration>"
            );
            ctx.api
                .s3(
                    Method::PUT,
                    &path,
                    HeaderMap::new(),
                    Some(Bytes::from(body)),
                )
                .await
                .map(|_| (props.clone(), format!("Bucket Versioning: {status}.")))
        }
        "policy-delete" => {
            let path = Api::s3_path(bucket, None, &[("policy", "")]);
            ctx.api
                .s3(Method::DELETE, &path, HeaderMap::new(), None)
                .await
                .map(|_| (props.clone(), "Bucket policy deleted.".into()))
        }
        "empty" => empty(ctx, bucket)
            .await
            .map(|n| (props.clone(), format!("Deleted {n} objects."))),
        "delete" => {
            let path = Api::s3_path(bucket, None, &[]);
            ctx.api
                .s3(Method::DELETE, &path, HeaderMap::new(), None)
                .await
                .map(|_| {
                    (
                        "/console/s3".to_string(),
                        format!("Bucket {bucket} deleted."),
                    )
                })
        }
        "folder" => {
            let name = f.val("folder").trim().trim_matches('/');
            let key = format!("{}{name}/", f.val("prefix"));
            let path = Api::s3_path(bucket, Some(&key), &[]);
            if name.is_empty() {
                Err(ApiError::new(
                    "InvalidArgument",
                    400,
                    "Enter a folder name.",
                ))
            } else {
                ctx.api
                    .s3(Method::PUT, &path, HeaderMap::new(), None)
                    .await
                    .map(|_| (listing_url(bucket, &key), format!("Folder {key} created.")))
            }
        }
        _ => return not_found(ctx),
    };
    match result {
        Ok((to, msg)) => done(ctx, &to, msg),
        Err(e) if action == "folder" => objects(ctx, bucket, Some(e)).await,
        Err(e) => properties(ctx, bucket, Some(e)).await,
    }
}

async fn object(ctx: &Ctx<'_>, bucket: &str, err: Option<ApiError>) -> Resp {
    let key = ctx.q("key").unwrap_or("").to_string();
    let path = Api::s3_path(bucket, Some(&key), &[]);
    let head = match ctx
        .api
        .s3(Method::HEAD, &path, HeaderMap::new(), None)
        .await
    {
        Ok(h) => h,
        Err(e) => return error_page(ctx, &key, &err.unwrap_or(e)),
    };
    let h = |n: &str| head.header(n).unwrap_or("").to_string();
    let sse = h("x-amz-server-side-encryption");
    let sess = ctx.session;
    let body = html! {
        p { a href=(listing_url(bucket, parent_prefix(&key))) { "← " (bucket) "/" (parent_prefix(&key)) } }
        dl.props {
            (row("Key", "object-key", &key))
            (row("Size (bytes)", "object-size", &h("content-length")))
            (row("ETag", "object-etag", &h("etag")))
            (row("Type", "object-content-type", &h("content-type")))
            (row("Last modified", "object-last-modified", &h("last-modified")))
            @if !h("x-amz-version-id").is_empty() {
                (row("Version ID", "object-version-id", &h("x-amz-version-id")))
            }
            (row("Server-side encryption", "object-sse", if sse.is_empty() { "none" } else { &sse }))
            @if sse == "aws:kms" {
                (row("AWS KMS key ARN", "object-kms-key", &h("x-amz-server-side-encryption-aws-kms-key-id")))
                (row("Bucket Key", "object-bucket-key", if h("x-amz-server-side-encryption-bucket-key-enabled") == "true" { "Enabled" } else { "Disabled" }))
            }
        }
        div.toolbar {
            a #open-object .button href=(object_url(bucket, "open", &key)) { "Open" }
            a #download-object .button.secondary href=(object_url(bucket, "download", &key)) { "Download" }
            (button_form(sess, &format!("/console/s3/object/{}/delete", enc(bucket)), "Delete", "danger", Some("delete-object-button"), &[("key", &key)], None))
        }
    };
    match err {
        Some(e) => html_response(e.status, ctx.page_err(&key, &e, body)),
        None => html_response(200, ctx.page(&key, body)),
    }
}

/// GetObject as the signed-in principal, streamed to the browser (inline or as a download).
async fn fetch(ctx: &Ctx<'_>, bucket: &str, inline: bool) -> Resp {
    let key = ctx.q("key").unwrap_or("").to_string();
    let path = Api::s3_path(bucket, Some(&key), &[]);
    let resp = match ctx
        .api
        .s3_raw(Method::GET, &path, HeaderMap::new(), None)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let back = html! {
                p { a #back-to-object href=(object_url(bucket, "object", &key)) { "← Object properties" } }
            };
            let status = if e.status >= 400 { e.status } else { 500 };
            return html_response(status, ctx.page_err(&key, &e, back));
        }
    };
    let (parts, body) = resp.into_parts();
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    for name in [header::CONTENT_LENGTH, header::ETAG, header::LAST_MODIFIED] {
        if let Some(v) = parts.headers.get(&name) {
            h.insert(name, v.clone());
        }
    }
    let file = key.rsplit('/').next().unwrap_or("download");
    let ascii: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        enc(file)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    let ct = if inline {
        // Stored content is shown as it is only when it is plain: anything else downloads.
        match parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            Some(t)
                if t.starts_with("text/")
                    || t.starts_with("image/")
                    || t == "application/json"
                    || t == "application/pdf" =>
            {
                HeaderValue::from_str(t).unwrap_or(HeaderValue::from_static("text/plain"))
            }
            _ => HeaderValue::from_static("text/plain; charset=utf-8"),
        }
    } else {
        HeaderValue::from_static("application/octet-stream")
    };
    h.insert(header::CONTENT_TYPE, ct);
    // Objects are the users' content, not the console's: never scripts in the console's origin.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The upload script's PUT: the body is the file, streamed into PutObject unchanged.
pub async fn upload(ctx: &Ctx<'_>, bucket: &str, headers: &HeaderMap, body: Body) -> Resp {
    let reply = |status: u16, text: String| {
        let mut r = Response::new(Body::from(text));
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    let key = ctx.q("key").unwrap_or("").to_string();
    if key.is_empty() {
        return reply(400, "InvalidArgument: the object needs a name.".into());
    }
    let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return reply(
            411,
            "MissingContentLength: You must provide the Content-Length HTTP header.".into(),
        );
    };
    let mut h = HeaderMap::new();
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        h.insert(header::CONTENT_TYPE, ct.clone());
    }
    if let Some(a @ ("AES256" | "aws:kms")) = headers
        .get("x-coffer-encryption")
        .and_then(|v| v.to_str().ok())
    {
        h.insert(
            "x-amz-server-side-encryption",
            HeaderValue::from_static(if a == "AES256" { "AES256" } else { "aws:kms" }),
        );
        if a == "aws:kms"
            && let Some(k) = headers.get("x-coffer-kms-key")
            && !k.is_empty()
        {
            h.insert("x-amz-server-side-encryption-aws-kms-key-id", k.clone());
        }
    }
    let path = Api::s3_path(bucket, Some(&key), &[]);
    match ctx.api.s3_upload(&path, h, body, len).await {
        Ok(_) => reply(200, format!("Uploaded {key}.")),
        Err(e) => reply(e.status, e.to_string()),
    }
}
