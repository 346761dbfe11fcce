//! Reading the log bucket: listing keys under a prefix and fetching objects (the CLI's local query
//! engine, the local stack's log hop), and storing deployment artefacts once.

use aws_config::SdkConfig;

use crate::error::{AwsError, ErrorKind, classify};

/// An S3 client for `config`. A custom endpoint (an emulator, an S3-compatible store on loopback)
/// gets path-style addressing, since it has no per-bucket host names; AWS's own endpoints keep
/// virtual-hosted addressing.
pub fn client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build())
}

/// Every object key under `prefix`, in key order (ListObjectsV2, paginated).
pub async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
    let mut keys = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("s3:ListObjectsV2", e))?;
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    Ok(keys)
}

/// One object as a listing describes it: its storage class and, when S3 returns a restore status,
/// whether that restore is still in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub storage_class: Option<String>,
    pub restore_in_progress: Option<bool>,
}

/// Every object under `prefix` with its storage class and restore status (ListObjectsV2 with
/// `OptionalObjectAttributes=RestoreStatus`, paginated).
pub async fn list_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ListedObject>, AwsError> {
    let mut objects = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .optional_object_attributes(aws_sdk_s3::types::OptionalObjectAttributes::RestoreStatus)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("s3:ListObjectsV2", e))?;
        objects.extend(page.contents().iter().filter_map(|o| {
            Some(ListedObject {
                key: o.key()?.to_owned(),
                storage_class: o.storage_class().map(|c| c.as_str().to_owned()),
                restore_in_progress: o.restore_status().map(|r| r.is_restore_in_progress().unwrap_or(false)),
            })
        }));
    }
    Ok(objects)
}

/// The "folders" directly under `prefix` (ListObjectsV2 by `/`), e.g. each `logs/account=…/`.
pub async fn list_prefixes(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
    let mut prefixes = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).delimiter("/").into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("s3:ListObjectsV2", e))?;
        prefixes.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)));
    }
    Ok(prefixes)
}

/// An object's `x-amz-restore` header (HeadObject), where S3 gives one: where a listing carries no
/// restore status.
pub async fn restore_header(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<String>, AwsError> {
    let head = client.head_object().bucket(bucket).key(key).send().await.map_err(|e| classify("s3:HeadObject", e))?;
    Ok(head.restore().map(str::to_owned))
}

/// What a restore request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreRequest {
    Started,
    /// S3 answered `RestoreAlreadyInProgress`: nothing new was asked.
    AlreadyInProgress,
}

/// Asks S3 to restore an archived object for `days` days at `tier` (`Standard` or `Bulk`).
pub async fn restore_object(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    days: i32,
    tier: &str,
) -> Result<RestoreRequest, AwsError> {
    let request = aws_sdk_s3::types::RestoreRequest::builder()
        .days(days)
        .glacier_job_parameters(
            aws_sdk_s3::types::GlacierJobParameters::builder()
                .tier(aws_sdk_s3::types::Tier::from(tier))
                .build()
                .map_err(|e| AwsError::new("s3:RestoreObject", ErrorKind::Permanent, e.to_string()))?,
        )
        .build();
    match client.restore_object().bucket(bucket).key(key).restore_request(request).send().await {
        Ok(_) => Ok(RestoreRequest::Started),
        Err(e) if e.as_service_error().and_then(|s| s.meta().code()) == Some("RestoreAlreadyInProgress") => {
            Ok(RestoreRequest::AlreadyInProgress)
        }
        Err(e) => Err(classify("s3:RestoreObject", e)),
    }
}

/// One object's bytes.
pub async fn get_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
    let out = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| classify("s3:GetObject", e))?;
    let body = out.body.collect().await.map_err(|e| {
        AwsError::new("s3:GetObject", ErrorKind::Transient, format!("reading s3://{bucket}/{key}: {e}"))
    })?;
    Ok(body.into_bytes().to_vec())
}

/// The content address of `bytes` (SHA-256, hex): a key named by it never needs another upload.
pub fn content_address(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores `bytes` under `key` unless an object is there already (content-addressed keys never
/// change, see [`content_address`]); `true` when it was uploaded.
pub async fn put_once(client: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<bool, AwsError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => return Ok(false),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => return Err(classify("s3:HeadObject", e)),
    }
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .map_err(|e| classify("s3:PutObject", e))?;
    Ok(true)
}
