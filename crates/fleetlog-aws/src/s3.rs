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

/// One object's bytes.
pub async fn get_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
    let out = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| classify("s3:GetObject", e))?;
    let body = out.body.collect().await.map_err(|e| {
        AwsError::new("s3:GetObject", ErrorKind::Transient, format!("reading s3://{bucket}/{key}: {e}"))
    })?;
    Ok(body.into_bytes().to_vec())
}

/// Stores `bytes` under `key` unless an object is there already (content-addressed keys never
/// change); `true` when it was uploaded.
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
